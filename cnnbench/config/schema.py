"""The suite format as a JSON Schema (Draft 2020-12), for editors and for checking a suite file before a run.

It is generated from the same settings dataclasses the suite reader is driven by (keys, types, defaults, bounds,
allowed values and descriptions) and from the names a :class:`~cnnbench.config.catalog.Catalog` knows, so it
accepts every file the reader accepts. A few checks need more than one file or the file system — an ``extends``
chain merged, a user dataset's path existing, an ``[arch.NAME]`` or ``s2_freeze`` fitting the archs the suite
runs, ``head_first_steps`` below every quadrant's steps — and are the reader's alone. A file with ``extends`` may
leave out any key its parent sets.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, fields
from typing import Any

from cnnbench.config.catalog import Catalog
from cnnbench.config.gate import Tolerances
from cnnbench.config.hardware import HARDWARE, MODES, BenchSettings
from cnnbench.config.precision import DEFAULT_PRECISION, PRECISIONS
from cnnbench.config.quadrants import QUADRANT_LABELS, QUADRANTS, SMALL_MAX
from cnnbench.config.settings import value_type
from cnnbench.config.strategies import STRATEGIES
from cnnbench.config.suite import ArchSettings, InputConfig, QuadrantBinding
from cnnbench.config.training import PretrainSettings, TrainSettings, Watch

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def suite_json_schema(catalog: Catalog) -> dict[str, Any]:
    """The JSON Schema of a suite TOML file of either kind whose names are checked against ``catalog``."""
    return {
        "$schema": DRAFT,
        "title": "cnnbench suite",
        "description": "A cnnbench suite: a transfer suite (the default kind) says which scenarios to run and with "
        'what budgets; a hardware suite (kind = "hardware") which archs to time at which batch sizes, precisions '
        "and modes. A file with `extends` may leave out anything its parent sets.",
        "$defs": {"transfer": _transfer(catalog), "hardware": _hardware(catalog)},
        "if": {"properties": {"kind": {"const": HARDWARE}}, "required": ["kind"]},
        "then": {"$ref": "#/$defs/hardware"},
        "else": {"$ref": "#/$defs/transfer"},
    }


def _transfer(catalog: Catalog) -> dict[str, Any]:
    """A transfer suite: archs × strategies × quadrants × heads × seeds, their budgets and the gate."""
    archs, heads = list(catalog.archs), list(catalog.heads)
    stages = sorted({stage for info in catalog.archs.values() for stage in info.stages})
    s2_freeze = _s2_freeze(stages, max((len(info.stages) for info in catalog.archs.values()), default=0))
    train = _table(TrainSettings, "[train]: how each scenario trains; the budget is its quadrant's steps")
    train["properties"].update(_table(Watch)["properties"])
    train["properties"]["s2_freeze"] = {
        **s2_freeze,
        "default": "half",
        "description": "where s2 cuts, on every quadrant that does not say",
    }
    return {
        "type": "object",
        "properties": {
            **_common(),
            "kind": {"const": "transfer", "default": "transfer", "description": "a transfer suite (the default)"},
            "precision": {
                "enum": list(PRECISIONS),
                "default": DEFAULT_PRECISION,
                "description": "fp32, or bf16 mixed precision (parameters, optimizer state and BatchNorm "
                "statistics fp32; convolutions and matrix products bf16)",
            },
            "requires_accelerator": {
                "type": "boolean",
                "default": False,
                "description": "meant for a GPU or TPU: on a CPU a run is refused, with an estimate of its cost, "
                "unless --cnnbench-force",
            },
            "archs": _names(archs, "zoo archs to run"),
            "strategies": _names(STRATEGIES.names(), "transfer strategies to run"),
            "heads": _names(heads, "classifier heads to run"),
            "seeds": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 1,
                "default": [0],
                "description": "seeds of every scenario; several seeds add -seedN to the ids",
            },
            "input": _table(InputConfig, "[input]: the image format of the source domain and every target"),
            "arch": {
                "type": "object",
                "description": "[arch.NAME]: what differs for one of the suite's archs",
                "propertyNames": {"enum": archs},
                "additionalProperties": _table(ArchSettings),
            },
            "pretrain": _table(PretrainSettings, "[pretrain]: how each arch's base is pretrained on the source"),
            "train": train,
            "quadrants": {
                "type": "object",
                "description": "[quadrants.qN]: the target dataset and budget bound to each quadrant",
                "minProperties": 1,
                "properties": {q: _quadrant(q, catalog, s2_freeze) for q in QUADRANTS},
                "additionalProperties": False,
            },
            "gate": _table(Tolerances, "[gate]: what the quality gate tolerates against a baseline"),
            "layer_transfer": {
                "type": "object",
                "description": "[layer_transfer]: accuracy against how many stages s2 freezes, on one arch × quadrant "
                "× head",
                "properties": {"arch": {"enum": archs}, "quadrant": {"enum": list(QUADRANTS)}, "head": {"enum": heads}},
                "required": ["arch", "quadrant", "head"],
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
        # a file of its own must say what to run; one that extends another inherits it
        "if": {"required": ["extends"]},
        "else": {
            "required": ["archs", "strategies", "heads", "quadrants"],
            "properties": {
                "quadrants": {
                    "additionalProperties": {
                        "required": ["target", "steps"],
                        "if": {"properties": {"target": {"enum": list(catalog.targets)}}},
                        "then": {"required": ["n_train"]},
                    }
                }
            },
        },
    }


def _hardware(catalog: Catalog) -> dict[str, Any]:
    """A hardware suite: which archs to time at their canonical config, per batch × precision × mode."""
    return {
        "type": "object",
        "properties": {
            **_common(),
            "kind": {"const": HARDWARE, "description": "a hardware suite: it times archs and trains nothing"},
            "archs": _names(list(catalog.archs), "zoo archs to time at their canonical config"),
            "batches": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 1,
                "uniqueItems": True,
                "description": "batch sizes to time",
            },
            "precisions": {**_names(list(PRECISIONS), "precisions to time"), "default": [DEFAULT_PRECISION]},
            "modes": {**_names(list(MODES), "train step and/or inference"), "default": list(MODES)},
            "bench": _table(BenchSettings, "[bench]: how each bench point is timed"),
        },
        "additionalProperties": False,
        "if": {"required": ["extends"]},
        "else": {"required": ["archs", "batches"]},
    }


def _common() -> dict[str, Any]:
    """The keys every suite has: what it extends, its name and its description."""
    return {
        "extends": {
            "type": "string",
            "description": "a built-in suite's name or a .toml path (relative to this "
            "file) whose settings this file overrides, table by table, key by key",
        },
        "name": {"type": "string", "description": "the suite's name in reports (default: the file's stem)"},
        "description": {"type": "string", "default": ""},
    }


def _names(known: list[str], description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"enum": known}, "minItems": 1, "uniqueItems": True, "description": description}


def _table(cls: type, description: str = "") -> dict[str, Any]:
    """An object with a property per field of the settings dataclass ``cls``, and no other."""
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = {f.name: _field(cls, f) for f in fields(cls)}
    schema["additionalProperties"] = False
    return schema


def _field(cls: type, f: Any) -> dict[str, Any]:
    """A settings field as a JSON Schema: type, default, bounds, allowed values and description."""
    meta = f.metadata
    schema: dict[str, Any] = {"type": _JSON_TYPES[value_type(cls, f.name)]}
    if f.default is not MISSING and f.default is not None:
        schema["default"] = f.default
    if meta.get("minimum") is not None:
        schema["minimum"] = meta["minimum"]
    if (within := meta.get("within")) is not None:
        schema["exclusiveMinimum" if within.low_open else "minimum"] = within.low
        if math.isfinite(within.high):
            schema["exclusiveMaximum" if within.high_open else "maximum"] = within.high
    if meta.get("choices"):
        schema["enum"] = list(meta["choices"])
    if meta.get("doc"):
        schema["description"] = meta["doc"]
    return schema


def _s2_freeze(stages: list[str], most: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"const": "half", "description": "the lower half of the stages"},
            {"type": "integer", "minimum": 0, "maximum": most, "description": "how many stages, from the bottom"},
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": "a fraction of the stages"},
            {"enum": stages, "description": "the last frozen stage"},
        ]
    }


def _quadrant(quadrant: str, catalog: Catalog, s2_freeze: dict[str, Any]) -> dict[str, Any]:
    """A ``[quadrants.qN]`` table: its keys are ``QuadrantBinding``'s fields but ``path``; a built-in target's
    ``n_train`` must fit the quadrant's size class and what the target provides."""
    doc = {f.name: f.metadata.get("doc", "") for f in fields(QuadrantBinding)}
    small = quadrant in ("q3", "q4")
    targets = list(catalog.targets)
    properties: dict[str, Any] = {
        "target": {
            "type": "string",
            "description": doc["target"],
            "anyOf": [
                {"enum": targets, "description": "a built-in target"},
                {"type": "string", "description": "a folder of class sub-folders or an .npz file"},
            ],
        },
        "n_train": {"type": "integer", "minimum": 1, "description": doc["n_train"]},
        "steps": {"type": "integer", "minimum": 1, "description": doc["steps"]},
        "augment": {
            "type": "array",
            "items": {"enum": list(catalog.augmentations)},
            "default": [],
            "description": doc["augment"],
        },
        "s2_freeze": {**s2_freeze, "description": doc["s2_freeze"]},
    }
    size = {"maximum": SMALL_MAX} if small else {"minimum": SMALL_MAX + 1}
    builtin_rules = [
        {
            "if": {"properties": {"target": {"const": name}}, "required": ["target"]},
            "then": {
                "properties": {
                    "n_train": {
                        "minimum": max(info.n_classes, size.get("minimum", 1)),
                        "maximum": min(info.max_train, size.get("maximum", info.max_train)),
                    }
                }
            },
        }
        for name, info in catalog.targets.items()
    ]
    return {
        "type": "object",
        "description": f"{quadrant} ({QUADRANT_LABELS[quadrant]}): a built-in target's n_train is "
        f"{'at most' if small else 'more than'} {SMALL_MAX}",
        "properties": properties,
        "additionalProperties": False,
        "allOf": builtin_rules,
    }
