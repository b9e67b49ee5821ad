"""Suites: TOML files that say which scenarios to run and with what budgets (SPEC §6).

A suite is parsed and checked completely before anything runs: an unknown key, a wrong type or a name that no
registry knows is a ``SuiteError`` naming the file, the key, the value and what was expected. A suite may
``extends`` another (a built-in name or a path) and override only what differs. Checking names
against the registries imports the zoo (and so JAX): the plugin does it only when ``--cnnbench`` is given.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnbench.config.catalog import Catalog
from cnnbench.config.gate import Tolerances
from cnnbench.config.quadrants import QUADRANTS, SMALL_MAX
from cnnbench.config.scenario import Scenario
from cnnbench.config.strategies import STRATEGIES
from cnnbench.config.training import OPTIMIZERS

class SuiteError(ValueError):
    """A suite file that cannot be run; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class QuadrantBinding:
    """The target dataset a suite binds to a quadrant, its training-set size and training budget. ``target`` is a
    built-in target's name or, for a user's dataset, the absolute path of its folder or ``.npz`` (``path`` set);
    a user dataset's ``n_train`` may be None: all of its training split."""

    target: str
    n_train: int | None
    steps: int
    path: Path | None = None
    augment: tuple[str, ...] = ()  # data augmentation of training batches (cnnbench.data.augment)
    s2_freeze: int | float | str | None = None  # where s2 cuts on this quadrant (None: the lower half)

    @property
    def name(self) -> str:
        """The target's name in reports: the built-in name, or the folder or file name of a user dataset."""
        return self.target if self.path is None else self.path.stem


@dataclass(frozen=True)
class Suite:
    """A parsed, validated suite."""

    name: str
    path: str
    description: str
    archs: tuple[str, ...]
    strategies: tuple[str, ...]
    heads: tuple[str, ...]
    seeds: tuple[int, ...]
    quadrants: dict[str, QuadrantBinding]
    img_size: int
    in_chans: int
    widths: dict[str, float]
    pretrain: dict[str, Any]
    pretrain_steps: dict[str, int]
    train: dict[str, Any]  # TrainConfig keywords
    watch: dict[str, Any]  # Watch keywords: early stopping, plateau LR cuts
    head_first_steps: int  # two-phase fine-tuning: steps of head-only training before s1/s2 unfreeze (0: off)
    layer_transfer: tuple[str, str, str] | None  # (arch, quadrant, head) of the layer-transfer curve, if any
    gate: dict[str, float]  # cnnbench.results.gate.Tolerances keywords: what the quality gate tolerates
    digest: str
    catalog: Catalog = field(repr=False, compare=False)  # what the suite was checked against
    raw: dict = field(repr=False, default_factory=dict)

    def scenarios(self) -> list[Scenario]:
        """Every scenario of the suite, arch by arch, quadrant by quadrant, then the layer-transfer points."""
        multi = len(self.seeds) > 1
        matrix = [
            Scenario(arch, strategy, quadrant, head, seed, multi)
            for arch in self.archs
            for quadrant in self.quadrants
            for head in self.heads
            for strategy in self.strategies
            for seed in self.seeds
        ]
        if self.layer_transfer is None:
            return matrix
        arch, quadrant, head = self.layer_transfer
        return matrix + [
            Scenario(arch, "s2", quadrant, head, seed, multi, freeze=k)
            for k in range(len(self.catalog.archs[arch].stages) + 1)
            for seed in self.seeds
        ]

    def width(self, arch: str) -> float:
        """The suite's width multiplier for ``arch``; by default the zoo's benchmark-scale width."""
        return self.widths.get(arch, self.catalog.archs[arch].bench_width)


# ----------------------------------------------------------------------------------------------- parsing

_TRAIN_KEYS = {
    "batch_size": int,
    "optimizer": str,
    "learning_rate": float,
    "finetune_lr_ratio": float,
    "warmup_steps": int,
    "clip_norm": float,
    "weight_decay": float,
    "eval_points": int,
}
_PRETRAIN_KEYS = {**_TRAIN_KEYS, "steps": int, "seed": int, "eval_size": int}
_WATCH_KEYS = {"early_stopping": int, "plateau_patience": int, "plateau_factor": float}  # [train] only


class _Reader:
    """Typed access to one TOML table, rejecting unknown keys and wrong types with the file and key."""

    def __init__(self, path: str, table: dict, where: str = "") -> None:
        self.path, self.table, self.where = path, table, where
        self.seen: set[str] = set()

    def fail(self, key: str, message: str) -> SuiteError:
        name = f"{self.where}.{key}" if self.where else key
        return SuiteError(f"suite {self.path}: key '{name}': {message}")

    def get(self, key: str, kind: type, default: Any = ..., allowed: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, f"missing; expected {_describe(kind)}")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {_describe(kind)}, got {value!r}")
        if allowed is not None and value not in allowed:
            raise self.fail(key, f"unknown value {value!r}; expected one of: {', '.join(map(str, allowed))}")
        return value

    def names(self, key: str, known: list[str], kind: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        if not values:
            raise self.fail(key, f"empty; expected a list of {kind} names from: {', '.join(known)}")
        for v in values:
            if v not in known:
                raise self.fail(key, f"unknown {kind} {v!r}; known: {', '.join(known)}")
        if len(set(values)) != len(values):
            raise self.fail(key, f"lists a {kind} twice: {values}")
        return tuple(values)

    def sub(self, key: str) -> _Reader:
        table = self.get(key, dict, {})
        return _Reader(self.path, table, f"{self.where}.{key}" if self.where else key)

    def typed(self, schema: dict[str, type]) -> dict[str, Any]:
        """The schema's keys present in the table, type-checked; all of them count as known keys."""
        self.seen.update(schema)
        return {k: self.get(k, t) for k, t in schema.items() if k in self.table}

    def done(self) -> None:
        extra = sorted(set(self.table) - self.seen)
        if extra:
            raise self.fail(extra[0], f"unknown key; expected one of: {', '.join(sorted(self.seen))}")


def _describe(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}[kind]


def _positive(reader: _Reader, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise reader.fail(key, f"must not be negative, got {value}")
        if key in ("steps", "batch_size", "eval_points") and value < 1:
            raise reader.fail(key, f"must be at least 1, got {value}")


BUILTIN_DIR = Path(__file__).parent.parent / "suites"  # a link to the top-level suites/ folder, shipped in the wheel


def builtin_suites() -> list[str]:
    """Names of the suites shipped with cnnbench."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """The file of a built-in suite name or a path; an unknown one lists the built-in names."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        return path
    if name_or_path in builtin_suites():
        return BUILTIN_DIR / f"{name_or_path}.toml"
    raise SuiteError(f"unknown suite {name_or_path!r}; built-in: {', '.join(builtin_suites())}, or a path to a .toml")


def load_suite(name_or_path: str, catalog: Catalog) -> Suite:
    """Parse and validate a suite by built-in name or path, after resolving its ``extends`` chain; names are
    checked against ``catalog``."""
    path = resolve(name_or_path)
    raw, texts = _read_chain(path, ())
    return parse_suite(raw, catalog, str(path), hashlib.sha256(b"\0".join(texts)).hexdigest()[:16])


def _read_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict, list[bytes]]:
    """The TOML at ``path`` merged over the suite it ``extends`` (a built-in name, or a path relative to the
    file), and the texts that went in. ``name`` and ``description`` are never inherited."""
    if path.resolve() in seen:
        raise SuiteError(f"suite {path}: key 'extends': the chain loops back to this file")
    text = path.read_bytes()
    try:
        raw = tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite {path}: not valid TOML: {exc}") from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw, [text]
    if not isinstance(parent, str):
        raise SuiteError(f"suite {path}: key 'extends': expected a suite name or a .toml path, got {parent!r}")
    try:
        parent_path = resolve(str(path.parent / parent) if parent.endswith(".toml") else parent)
    except SuiteError as exc:
        raise SuiteError(f"suite {path}: key 'extends': {exc}") from None
    base, texts = _read_chain(parent_path, (*seen, path.resolve()))
    base = {k: v for k, v in base.items() if k not in ("name", "description")}
    return _merge(base, raw), [*texts, text]


def _merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``: tables merge key by key, any other value replaces the base's."""
    merged = dict(base)
    for key, value in override.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_tables else value
    return merged


def _s2_freeze(t: _Reader, archs: tuple[str, ...], catalog: Catalog, default: Any) -> int | float | str | None:
    """The table's ``s2_freeze`` (``"half"``: None, a stage count, a fraction of the stages or the last frozen
    stage's name), checked against every arch's stages; ``default`` where the table has none."""
    value = t.table.get("s2_freeze", default)
    t.seen.add("s2_freeze")
    if value == "half":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))) or (
        isinstance(value, float) and not 0 < value < 1
    ):
        raise t.fail("s2_freeze", f"expected \"half\", a stage count, a fraction in (0, 1) or a stage name, "
                                  f"got {value!r}")
    for arch in archs:
        stages = catalog.archs[arch].stages
        if (isinstance(value, str) and value not in stages) or (isinstance(value, int) and not 0 <= value <= len(stages)):
            raise t.fail("s2_freeze", f"{value!r} does not fit {arch}, whose stages are: {', '.join(stages)}")
    return value


def _check_builtin_size(t: _Reader, quadrant: str, binding: QuadrantBinding, catalog: Catalog) -> None:
    """A built-in target's n_train fits both the quadrant's size class and what the target can provide."""
    _positive(t, {"steps": binding.steps, "n_train": binding.n_train})
    small = quadrant in ("q3", "q4")
    if small != (binding.n_train <= SMALL_MAX):
        size = f"at most {SMALL_MAX}" if small else f"more than {SMALL_MAX}"
        raise t.fail("n_train", f"{quadrant} is a {'small' if small else 'large'} quadrant: n_train must be {size}, "
                                f"got {binding.n_train}")
    spec = catalog.targets[binding.target]
    if not spec.n_classes <= binding.n_train <= spec.max_train:
        raise t.fail("n_train", f"target {binding.target!r} takes {spec.n_classes}..{spec.max_train} training "
                                f"images, got {binding.n_train}")


def _user_dataset_path(t: _Reader, suite_path: str, target: str, catalog: Catalog) -> Path:
    """A target that no registry knows must be a folder of class sub-folders or an .npz file; a relative path is
    taken from the suite file's folder."""
    path = Path(target).expanduser()
    if not path.is_absolute() and Path(suite_path).is_file():
        path = Path(suite_path).parent / path
    path = path.resolve()
    if not (path.is_dir() or (path.is_file() and path.suffix.lower() == ".npz")):
        raise t.fail("target", f"{target!r} is neither a built-in target ({', '.join(catalog.targets)}) nor an "
                               f"existing folder of class sub-folders or .npz file (looked for {path}; relative "
                               "paths start at the suite file's folder)")
    return path


def _gate(t: _Reader) -> dict[str, float]:
    """The ``[gate]`` tolerances: ``accuracy_drop`` (a fraction: 0.02 is 2 points) and ``throughput_drop`` (a
    share of images/s) in [0, 1), ``noise_sigmas`` at least 0."""
    values = t.typed({key: float for key in Tolerances.keys()})
    _positive(t, values)
    for key in ("accuracy_drop", "throughput_drop"):
        if values.get(key, 0.0) >= 1:
            raise t.fail(key, f"expected a fraction in [0, 1), got {values[key]}")
    t.done()
    return values


def parse_suite(raw: dict, catalog: Catalog, path: str = "<suite>", digest: str = "") -> Suite:
    """Validate a suite already read from TOML; names are checked against ``catalog``."""
    r = _Reader(path, raw)
    archs = r.names("archs", list(catalog.archs), "arch")
    strategies = r.names("strategies", STRATEGIES.names(), "strategy")
    heads = r.names("heads", list(catalog.heads), "head")
    seeds = tuple(r.get("seeds", list, [0]))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise r.fail("seeds", f"expected a non-empty list of integers, got {seeds!r}")

    inp = r.sub("input")
    img_size, in_chans = inp.get("img_size", int, 32), inp.get("in_chans", int, 1, allowed=(1, 3))
    inp.done()

    widths, pretrain_steps = {}, {}
    arch_tables = r.sub("arch")
    for arch in arch_tables.table:
        if arch not in archs:
            raise arch_tables.fail(arch, f"configures arch {arch!r}, which the suite does not run: {', '.join(archs)}")
        t = arch_tables.sub(arch)
        if "width" in t.table:
            widths[arch] = t.get("width", float)
            if not 0 < widths[arch] <= 4:
                raise t.fail("width", f"expected a multiplier in (0, 4], got {widths[arch]}")
        if "pretrain_steps" in t.table:
            pretrain_steps[arch] = t.get("pretrain_steps", int)
        t.done()
    arch_tables.done()

    pre = r.sub("pretrain")
    pretrain = pre.typed(_PRETRAIN_KEYS)
    _positive(pre, pretrain)
    pre.get("optimizer", str, "adamw", allowed=OPTIMIZERS)
    pre.done()

    tr = r.sub("train")
    train = tr.typed(_TRAIN_KEYS)
    _positive(tr, train)
    tr.get("optimizer", str, "adamw", allowed=OPTIMIZERS)
    watch = tr.typed(_WATCH_KEYS)
    head_first_steps = tr.get("head_first_steps", int, 0)
    _positive(tr, {**watch, "head_first_steps": head_first_steps})
    if not 0 < watch.get("plateau_factor", 0.5) < 1:
        raise tr.fail("plateau_factor", f"expected a factor in (0, 1), got {watch['plateau_factor']}")
    s2_freeze = _s2_freeze(tr, archs, catalog, "half")
    tr.done()

    quadrants: dict[str, QuadrantBinding] = {}
    qs = r.sub("quadrants")
    if not qs.table:
        raise r.fail("quadrants", f"missing; expected a table per quadrant ({', '.join(QUADRANTS)})")
    for q in qs.table:
        if q not in QUADRANTS:
            raise qs.fail(q, f"unknown quadrant {q!r}; known: {', '.join(QUADRANTS)}")
        t = qs.sub(q)
        target = t.get("target", str)
        if target in catalog.targets:
            binding = QuadrantBinding(target, t.get("n_train", int), t.get("steps", int))
            _check_builtin_size(t, q, binding, catalog)
        else:
            data_path = _user_dataset_path(t, path, target, catalog)
            binding = QuadrantBinding(str(data_path), t.get("n_train", int, None), t.get("steps", int), data_path)
            _positive(t, {"steps": binding.steps, "n_train": binding.n_train or 1})
        augmentations = tuple(t.get("augment", list, []))
        if not all(isinstance(a, str) and a in catalog.augmentations for a in augmentations):
            raise t.fail("augment", f"expected a list of {', '.join(catalog.augmentations)}, "
                                    f"got {list(augmentations)!r}")
        binding = replace(binding, augment=augmentations, s2_freeze=_s2_freeze(t, archs, catalog, s2_freeze))
        t.done()
        quadrants[q] = binding
    qs.done()
    short = [q for q, b in quadrants.items() if b.steps <= head_first_steps]
    if short:
        raise tr.fail("head_first_steps", f"{head_first_steps} head-only steps leave none to fine-tune in "
                                          f"{', '.join(short)}; they come out of each quadrant's steps")

    gate = _gate(r.sub("gate"))

    layer_transfer = None
    if "layer_transfer" in raw:
        lt = r.sub("layer_transfer")
        layer_transfer = (lt.get("arch", str, allowed=archs), lt.get("quadrant", str, allowed=tuple(quadrants)),
                          lt.get("head", str, allowed=heads))  # fmt: skip
        lt.done()

    suite = Suite(
        name=r.get("name", str, Path(path).stem),
        path=path,
        description=r.get("description", str, ""),
        archs=archs,
        strategies=strategies,
        heads=heads,
        seeds=seeds,
        quadrants=dict(sorted(quadrants.items())),
        img_size=img_size,
        in_chans=in_chans,
        widths=widths,
        pretrain=pretrain,
        pretrain_steps=pretrain_steps,
        train=train,
        watch=watch,
        head_first_steps=head_first_steps,
        layer_transfer=layer_transfer,
        gate=gate,
        digest=digest,
        catalog=catalog,
        raw=raw,
    )
    r.done()
    return suite
