"""The suite JSON Schema: valid Draft 2020-12, accepts what the reader accepts, rejects what it rejects, and knows
the same keys."""

from __future__ import annotations

import copy
import json
import re
import tomllib

import jsonschema
import pytest

from cnnbench.config.schema import suite_json_schema
from cnnbench.config.suite import (
    BUILTIN_DIR,
    SuiteError,
    builtin_suites,
    load_suite,
    parse_hardware_suite,
    parse_suite,
)
from cnnbench.engine.catalog import registry_catalog


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = suite_json_schema(registry_catalog())
    assert json.loads(json.dumps(schema)) == schema  # plain JSON, for `cnnbench suites --schema`
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator: jsonschema.Draft202012Validator, raw: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(raw)]


def test_builtin_suites_validate_as_written_and_merged(validator) -> None:
    assert {"smoke", "standard", "hardware"} <= set(builtin_suites())
    for name in builtin_suites():
        raw = tomllib.loads((BUILTIN_DIR / f"{name}.toml").read_text())  # standard: its partial file, with extends
        assert _errors(validator, raw) == [], name
        if name != "hardware":
            assert _errors(validator, load_suite(name, registry_catalog()).raw) == [], name


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: None,
        lambda r: r.update(seeds=[0, 1], description="d", input={"img_size": 40, "in_chans": 3}),
        lambda r: r.update(
            arch={"lenet5": {"width": 0.5, "pretrain_steps": 10}},
            layer_transfer={"arch": "lenet5", "quadrant": "q4", "head": "gap"},
        ),
        lambda r: r["train"].update(
            s2_freeze="c3",
            head_first_steps=4,
            early_stopping=2,
            plateau_patience=1,
            plateau_factor=0.5,
            optimizer="sgd",
            learning_rate=1,
            clip_norm=2,
        ),
        lambda r: r["quadrants"]["q3"].update(s2_freeze=0.25, augment=["flip", "crop"]),
        lambda r: r["quadrants"]["q4"].update(s2_freeze=2),
        lambda r: r["quadrants"]["q4"].update(s2_freeze="half"),
        lambda r: r.update(gate={"accuracy_drop": 0, "noise_sigmas": 1, "throughput_drop": 0.5}),
    ],
)
def test_schema_accepts_what_the_reader_accepts(validator, tiny_suite_text: str, edit) -> None:
    raw = tomllib.loads(tiny_suite_text)
    edit(raw)
    parse_suite(copy.deepcopy(raw), registry_catalog())
    assert _errors(validator, raw) == []


def test_schema_accepts_a_users_dataset_without_n_train_and_a_partial_extending_file(
    validator, tmp_path, tiny_suite_text: str
) -> None:
    (tmp_path / "leaves.npz").write_bytes(b"")
    mine = tmp_path / "mine.toml"
    mine.write_text(tiny_suite_text.replace('target = "digits"\nn_train = 40', 'target = "leaves.npz"'))
    child = tmp_path / "child.toml"
    child.write_text(
        'extends = "mine.toml"\nseeds = [1, 2]\n[train]\nlearning_rate = 0.05\n[quadrants.q3]\ntarget = "digits"\n'
    )
    for path in (mine, child):
        load_suite(str(path), registry_catalog())
        assert _errors(validator, tomllib.loads(path.read_text())) == [], path.name


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda r: r.update(archs=["resnet19"]), "archs/0"),
        (lambda r: r.update(archs=[]), "archs"),
        (lambda r: r.update(strategies=["s4"]), "strategies/0"),
        (lambda r: r.update(heads=["fc", "fc"]), "heads"),
        (lambda r: r.update(seeds=[]), "seeds"),
        (lambda r: r.update(sedes=[0]), ""),
        (lambda r: r.pop("quadrants"), ""),
        (lambda r: r["quadrants"].update(q5=r["quadrants"]["q4"]), "quadrants"),
        (lambda r: r["quadrants"]["q4"].update(steps="ten"), "quadrants/q4/steps"),
        (lambda r: r["quadrants"]["q4"].pop("n_train"), "quadrants/q4"),
        (lambda r: r["quadrants"]["q4"].update(n_train=5000), "quadrants/q4/n_train"),
        (lambda r: r["quadrants"]["q4"].update(n_train=5), "quadrants/q4/n_train"),
        (lambda r: r["quadrants"]["q3"].update(augment=["flip", "mixup"]), "quadrants/q3/augment/1"),
        (lambda r: r["quadrants"]["q3"].update(s2_freeze=1.5), "quadrants/q3/s2_freeze"),
        (lambda r: r["train"].update(lr=0.1), "train"),
        (lambda r: r["train"].update(learning_rate=-1), "train/learning_rate"),
        (lambda r: r["train"].update(optimizer="rmsprop"), "train/optimizer"),
        (lambda r: r["train"].update(plateau_factor=1.5), "train/plateau_factor"),
        (lambda r: r["train"].update(eval_points=True), "train/eval_points"),
        (lambda r: r["pretrain"].update(steps=0), "pretrain/steps"),
        (lambda r: r.update(input={"in_chans": 2}), "input/in_chans"),
        (lambda r: r.update(arch={"vgg99": {"width": 0.5}}), "arch"),
        (lambda r: r.update(arch={"lenet5": {"width": 5}}), "arch/lenet5/width"),
        (lambda r: r.update(gate={"accuracy_drop": 1.0}), "gate/accuracy_drop"),
        (lambda r: r.update(layer_transfer={"arch": "lenet5", "quadrant": "q4"}), "layer_transfer"),
    ],
)
def test_schema_rejects_what_the_reader_rejects(validator, tiny_suite_text: str, edit, where: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    edit(raw)
    with pytest.raises(SuiteError):
        parse_suite(copy.deepcopy(raw), registry_catalog(), "my.toml")
    errors = _errors(validator, raw)
    assert errors and any(e.startswith(f"{where}: ") for e in errors), errors


@pytest.mark.parametrize("table", ["", "input", "arch.lenet5", "pretrain", "train", "quadrants.q4", "gate",
                                   "layer_transfer"])  # fmt: skip
def test_schema_and_reader_know_the_same_keys(validator, tiny_suite_text: str, table: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    raw.update(layer_transfer={"arch": "lenet5", "quadrant": "q4", "head": "gap"}, arch={"lenet5": {}})
    node, schema = raw, validator.schema["$defs"]["transfer"]
    for key in filter(None, table.split(".")):
        node = node.setdefault(key, {})
        props = schema.get("properties", {})
        schema = props[key] if key in props else schema["additionalProperties"]
    node["zz_unknown"] = 1
    with pytest.raises(SuiteError, match="unknown key; expected one of: ") as info:
        parse_suite(raw, registry_catalog(), "my.toml")
    known = set(re.search(r"expected one of: (.*)$", str(info.value)).group(1).split(", "))
    assert set(schema["properties"]) - {"extends"} == known  # extends is resolved before the reader sees the table


HARDWARE_SUITE = {"kind": "hardware", "archs": ["lenet5"], "batches": [1, 8]}


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda r: None, None),
        (lambda r: r.update(precisions=["fp32", "bf16"], modes=["infer"], bench={"rounds": 3, "warmup": 0}), None),
        (lambda r: r.update(batches=[0]), "batches/0"),
        (lambda r: r.update(batches=[]), "batches"),
        (lambda r: r.update(precisions=["fp16"]), "precisions/0"),
        (lambda r: r.update(modes=["eval"]), "modes/0"),
        (lambda r: r.update(bench={"rounds": 0}), "bench/rounds"),
        (lambda r: r.update(bench={"repeat": 2}), "bench"),
        (lambda r: r.update(quadrants={}), ""),
        (lambda r: r.pop("batches"), ""),
    ],
)
def test_schema_and_reader_agree_on_hardware_suites(validator, edit, where: str | None) -> None:
    raw = copy.deepcopy(HARDWARE_SUITE)
    edit(raw)
    errors = _errors(validator, raw)
    if where is None:
        parse_hardware_suite(copy.deepcopy(raw), registry_catalog())
        assert errors == []
        return
    with pytest.raises(SuiteError):
        parse_hardware_suite(copy.deepcopy(raw), registry_catalog(), "hw.toml")
    assert errors and any(e.startswith(f"{where}: ") for e in errors), errors


def test_schema_and_reader_know_the_same_hardware_keys(validator) -> None:
    for table, schema in (("", validator.schema["$defs"]["hardware"]),
                          ("bench", validator.schema["$defs"]["hardware"]["properties"]["bench"])):  # fmt: skip
        raw = copy.deepcopy(HARDWARE_SUITE)
        (raw.setdefault(table, {}) if table else raw)["zz_unknown"] = 1
        with pytest.raises(SuiteError, match="unknown key; expected one of: ") as info:
            parse_hardware_suite(raw, registry_catalog(), "hw.toml")
        known = set(re.search(r"expected one of: (.*)$", str(info.value)).group(1).split(", "))
        assert set(schema["properties"]) - {"extends"} == known, table
