"""Suite parsing: the built-ins load, and every malformed suite is rejected with the file, key and fix."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, fields, replace

import pytest

from cnnbench.config.gate import Tolerances
from cnnbench.config.suite import InputConfig, SuiteError, builtin_suites, load_suite, parse_suite
from cnnbench.config.training import PretrainConfig, PretrainSettings, TrainConfig, TrainSettings, Watch
from cnnbench.engine.catalog import registry_catalog


def test_builtin_smoke_covers_the_whole_matrix() -> None:
    suite = load_suite("smoke", registry_catalog())
    assert "smoke" in builtin_suites()
    assert suite.archs == ("lenet5", "resnet18")
    assert set(suite.strategies) == {"s1", "s2", "s3", "scratch"}
    assert set(suite.heads) == {"fc", "gap", "svm"}
    assert list(suite.quadrants) == ["q1", "q2", "q3", "q4"]
    scenarios = suite.scenarios()
    assert len(scenarios) == 2 * 4 * 4 * 3
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert "resnet18-s2-q3-gap" in {s.id for s in scenarios}
    assert suite.quadrants["q4"].n_train <= 1000 < suite.quadrants["q1"].n_train


def test_ids_get_a_seed_suffix_only_with_several_seeds(tiny_suite_text: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    assert parse_suite(raw, registry_catalog()).scenarios()[0].id == "lenet5-s1-q3-gap"
    raw["seeds"] = [0, 2]
    ids = [s.id for s in parse_suite(raw, registry_catalog()).scenarios()]
    assert "lenet5-s3-q4-fc-seed2" in ids and len(ids) == 2 * 2 * 2 * 4


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(archs=["resnet19"]), "unknown arch 'resnet19'; known: lenet5"),
        (lambda r: r.update(strategies=["s4"]), "unknown strategy 's4'; known: s1, s2, s3, scratch"),
        (lambda r: r.update(heads=["mlp"]), "unknown head 'mlp'; known: fc, gap, svm"),
        (lambda r: r["quadrants"].update(q5=r["quadrants"]["q4"]), "unknown quadrant 'q5'"),
        (
            lambda r: r["quadrants"]["q4"].update(target="mnist"),
            "key 'quadrants.q4.target': 'mnist' is neither a built-in target (digits, font-digits, textures) "
            "nor an existing",
        ),
        (lambda r: r["quadrants"]["q4"].update(n_train=5000), "q4 is a small quadrant: n_train must be at most 1000"),
        (lambda r: r["quadrants"]["q4"].update(steps="ten"), "key 'quadrants.q4.steps': expected an integer"),
        (lambda r: r["train"].update(learning_rate=-1), "key 'train.learning_rate': expected a positive learning rate"),
        (lambda r: r["train"].update(lr=0.1), "key 'train.lr': unknown key; expected one of"),
        (lambda r: r["train"].update(optimizer="rmsprop"), "unknown value 'rmsprop'; expected one of: adamw, sgd"),
        (lambda r: r.update(seeds=[]), "key 'seeds': expected a non-empty list of integers"),
        (lambda r: r.pop("quadrants"), "key 'quadrants': missing"),
        (lambda r: r.update(arch={"vgg16": {"width": 0.5}}), "configures arch 'vgg16', which the suite does not run"),
        (lambda r: r["train"].update(s2_freeze="layer2"), "'layer2' does not fit lenet5, whose stages are: c1, c3, c5"),
        (lambda r: r["train"].update(s2_freeze=4), "4 does not fit lenet5"),
        (lambda r: r["quadrants"]["q4"].update(n_train=5), "target 'digits' takes 10..1000 training images, got 5"),
        (lambda r: r["train"].update(head_first_steps=12), "12 head-only steps leave none to fine-tune in q3, q4"),
        (lambda r: r["train"].update(plateau_factor=1.5), "key 'train.plateau_factor': expected a factor in (0, 1)"),
        (lambda r: r["train"].update(early_stopping=-1), "key 'train.early_stopping': must not be negative"),
        (
            lambda r: r["quadrants"]["q3"].update(augment=["flip", "mixup"]),
            "key 'quadrants.q3.augment': expected a list of flip, crop, affine, got ['flip', 'mixup']",
        ),
        (lambda r: r["quadrants"]["q3"].update(s2_freeze=1.5), "key 'quadrants.q3.s2_freeze': expected \"half\""),
        (lambda r: r["quadrants"]["q3"].update(s2_freeze="layer1"), "'layer1' does not fit lenet5"),
    ],
)
def test_malformed_suite_names_file_key_and_fix(tiny_suite_text: str, edit, message: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    edit(raw)
    with pytest.raises(SuiteError, match=r"suite my\.toml") as info:
        parse_suite(raw, registry_catalog(), "my.toml")
    assert message in str(info.value)


def test_unknown_suite_name_and_bad_toml(tmp_path) -> None:
    with pytest.raises(SuiteError, match=r"unknown suite 'smok'; built-in: .*smoke"):
        load_suite("smok", registry_catalog())
    bad = tmp_path / "bad.toml"
    bad.write_text("archs = [lenet5\n")
    with pytest.raises(SuiteError, match=f"suite {bad}: not valid TOML"):
        load_suite(str(bad), registry_catalog())


def test_q3_unfreezes_deeper_than_q2_with_augmentation_in_the_builtins() -> None:
    from cnnbench.config.strategies import STRATEGIES, frozen_stages
    from cnnbench.zoo import get_spec

    suite = load_suite("standard", registry_catalog())
    q2, q3 = suite.quadrants["q2"], suite.quadrants["q3"]
    assert q3.augment == ("flip", "crop", "affine") and q2.augment == ()
    for arch in suite.archs:
        cut = {q: len(frozen_stages(STRATEGIES.get("s2"), get_spec(arch).stages, b.s2_freeze)) for q, b in
               (("q2", q2), ("q3", q3))}  # fmt: skip
        assert 1 <= cut["q3"] <= cut["q2"] and (cut["q3"] < cut["q2"] or arch == "lenet5"), (arch, cut)


def test_builtin_standard_runs_every_family_over_three_seeds_with_smokes_recipe() -> None:
    from cnnbench.zoo import get_spec, list_models

    smoke, standard = load_suite("smoke", registry_catalog()), load_suite("standard", registry_catalog())
    assert {get_spec(a).family for a in standard.archs} == {get_spec(n).family for n in list_models()}
    assert standard.seeds == (0, 1, 2) and standard.layer_transfer == ("resnet18", "q2", "gap")
    assert len(standard.scenarios()) == len(standard.archs) * 4 * 4 * 3 * 3 + 6 * 3  # + resnet18 cut at 0 … 5
    assert (standard.quadrants, standard.train, standard.pretrain) == (smoke.quadrants, smoke.train, smoke.pretrain)
    assert standard.name == "standard" and standard.digest != smoke.digest
    assert [standard.width(a) for a in ("resnet18", "vgg11", "mobilenetv2")] == [0.25, 0.125, 0.5]  # zoo's bench widths


def test_extends_merges_tables_key_by_key_and_never_inherits_the_name(tmp_path, tiny_suite_text: str) -> None:
    (tmp_path / "base.toml").write_text(tiny_suite_text)
    child = tmp_path / "child.toml"
    child.write_text(
        'extends = "base.toml"\nseeds = [1, 2]\n[train]\nlearning_rate = 0.05\n[quadrants.q4]\nsteps = 7\n'
    )
    base, suite = (
        load_suite(str(tmp_path / "base.toml"), registry_catalog()),
        load_suite(str(child), registry_catalog()),
    )
    assert suite.name == "child" and base.name == "tiny" and suite.seeds == (1, 2)
    assert suite.train == replace(base.train, learning_rate=0.05) and suite.pretrain == base.pretrain
    assert suite.quadrants["q4"].steps == 7 and suite.quadrants["q4"].target == "digits"
    assert suite.quadrants["q3"] == base.quadrants["q3"] and suite.digest != base.digest


@pytest.mark.parametrize(
    ("extends", "message"),
    [
        ('"smok"', "key 'extends': unknown suite 'smok'"),
        ('"child.toml"', "key 'extends': the chain loops back to this file"),
        ("3", "key 'extends': expected a suite name or a .toml path, got 3"),
    ],
)
def test_bad_extends_is_named(tmp_path, extends: str, message: str) -> None:
    child = tmp_path / "child.toml"
    child.write_text(f"extends = {extends}\n")
    with pytest.raises(SuiteError, match=r"suite .*child\.toml") as info:
        load_suite(str(child), registry_catalog())
    assert message in str(info.value)


def test_a_quadrant_binds_a_users_dataset_by_path_relative_to_the_suite(tmp_path, tiny_suite_text: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "leaves.npz").write_bytes(b"")  # the suite checks it exists; loading is the run's job
    suite_file = tmp_path / "mine.toml"
    suite_file.write_text(tiny_suite_text.replace('target = "digits"\nn_train = 40', 'target = "data/leaves.npz"'))
    binding = load_suite(str(suite_file), registry_catalog()).quadrants["q4"]
    assert binding.path == tmp_path / "data" / "leaves.npz" and binding.name == "leaves" and binding.n_train is None
    suite_file.write_text(tiny_suite_text.replace('target = "digits"', 'target = "data/oak"'))
    with pytest.raises(
        SuiteError,
        match=r"key 'quadrants.q4.target': 'data/oak' is neither a built-in target .*"
        r"looked for .*data/oak",
    ):
        load_suite(str(suite_file), registry_catalog())


# What the runner computed from the dict-valued suite before the settings were typed, written out: the
# pretrained-base cache key is asdict(PretrainConfig), so the typed settings must give the very same values.
_FLOAT_KEYS = {"learning_rate", "finetune_lr_ratio", "clip_norm", "weight_decay"}


def _todays_pretrain_config(raw: dict, arch: str) -> PretrainConfig:
    options = {k: float(v) if k in _FLOAT_KEYS else v for k, v in raw.get("pretrain", {}).items()}
    steps = options.pop("steps", 1000)
    steps = raw.get("arch", {}).get(arch, {}).get("pretrain_steps", steps)
    seed, eval_size = options.pop("seed", 0), options.pop("eval_size", 2000)
    return PretrainConfig(TrainConfig(steps=steps, **options), seed=seed, eval_size=eval_size)


def _todays_train_config(raw: dict, steps: int) -> TrainConfig:
    watch_keys = {"early_stopping", "plateau_patience", "plateau_factor", "head_first_steps", "s2_freeze"}
    options = {k: float(v) if k in _FLOAT_KEYS else v for k, v in raw.get("train", {}).items() if k not in watch_keys}
    return TrainConfig(steps=steps, **options)


@pytest.mark.parametrize("name", ["smoke", "standard"])
@pytest.mark.parametrize("arch", ["lenet5", "resnet18"])
def test_typed_settings_give_the_same_configs_and_cache_keys_as_before(name: str, arch: str) -> None:
    suite = load_suite(name, registry_catalog())
    assert asdict(suite.pretrain_config(arch)) == asdict(_todays_pretrain_config(suite.raw, arch)) == {
        "train": {"steps": 800, "batch_size": 128, "optimizer": "adamw", "learning_rate": 6e-3,
                  "finetune_lr_ratio": 0.1, "warmup_steps": 50, "clip_norm": 1.0, "weight_decay": 1e-4,
                  "eval_points": 5},
        "seed": 0, "eval_size": 2000,
    }  # fmt: skip
    for binding in suite.quadrants.values():
        assert suite.train.config(binding.steps) == _todays_train_config(suite.raw, binding.steps)
    assert suite.watch == Watch() and suite.train.head_first_steps == 0
    assert suite.gate == Tolerances(accuracy_drop=0.05 if name == "smoke" else 0.02, throughput_drop=0.8)


def test_typed_settings_take_every_key_and_default_from_their_dataclasses(tiny_suite_text: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    raw["arch"] = {"lenet5": {"pretrain_steps": 7, "width": 2}}
    raw["train"].update(head_first_steps=3, early_stopping=2, plateau_factor=0.25, clip_norm=2)
    raw["gate"] = {"noise_sigmas": 3}
    suite = parse_suite(raw, registry_catalog())
    assert suite.pretrain_config("lenet5") == _todays_pretrain_config(raw, "lenet5")
    assert suite.pretrain_config("lenet5").train.steps == 7 and suite.pretrain.config().train.steps == 60
    assert suite.train.config(12) == _todays_train_config(raw, 12) and suite.train.config(12).clip_norm == 2.0
    assert suite.train == TrainSettings(batch_size=32, eval_points=2, clip_norm=2.0, head_first_steps=3)
    assert suite.watch == Watch(early_stopping=2, plateau_factor=0.25)
    assert suite.gate == Tolerances(noise_sigmas=3.0) and suite.width("lenet5") == 2.0
    assert suite.input == InputConfig() and (suite.img_size, suite.in_chans) == (32, 1)
    # [train] and [pretrain] share TrainConfig's keys but steps, with its defaults and constraints
    recipe = [f for f in fields(TrainConfig) if f.name != "steps"]
    for cls in (TrainSettings, PretrainSettings):
        mirrored = {f.name: (f.default, f.metadata) for f in fields(cls)}
        assert all(mirrored[f.name] == (f.default, f.metadata) for f in recipe)
    assert PretrainSettings().config() == PretrainConfig(TrainConfig(steps=1000), seed=0, eval_size=2000)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["pretrain"].update(steps=0), "key 'pretrain.steps': must be at least 1, got 0"),
        (lambda r: r["pretrain"].update(seed=-1), "key 'pretrain.seed': must not be negative"),
        (lambda r: r["pretrain"].update(optimizer="lion"), "key 'pretrain.optimizer': unknown value 'lion'"),
        (lambda r: r["train"].update(batch_size=0), "key 'train.batch_size': must be at least 1, got 0"),
        (lambda r: r["train"].update(clip_norm="high"), "key 'train.clip_norm': expected a number, got 'high'"),
        (lambda r: r["train"].update(early_stopping=1.5), "key 'train.early_stopping': expected an integer"),
        (lambda r: r.update(gate={"accuracy_drop": 1.0}), "key 'gate.accuracy_drop': expected a fraction in [0, 1)"),
        (lambda r: r.update(gate={"noise_sigmas": -1}), "key 'gate.noise_sigmas': must not be negative"),
        (lambda r: r.update(gate={"drop": 0.1}), "key 'gate.drop': unknown key; expected one of: accuracy_drop, "),
        (lambda r: r.update(input={"in_chans": 2}), "key 'input.in_chans': unknown value 2; expected one of: 1, 3"),
        (lambda r: r.update(arch={"lenet5": {"width": 5}}), "key 'arch.lenet5.width': expected a multiplier in (0, 4]"),
        (lambda r: r.update(arch={"lenet5": {"pretrain_steps": 0}}), "key 'arch.lenet5.pretrain_steps': must be at"),
        (lambda r: r["quadrants"]["q4"].update(steps=0), "key 'quadrants.q4.steps': must be at least 1, got 0"),
        (
            lambda r: r.update(gate={"accuracy_drop": math.nan}),
            "key 'gate.accuracy_drop': expected a finite number, got nan",
        ),
        (lambda r: r["train"].update(learning_rate=math.nan), "key 'train.learning_rate': expected a finite number"),
        (lambda r: r["pretrain"].update(learning_rate=math.inf), "key 'pretrain.learning_rate': expected a finite"),
        (lambda r: r.update(seeds=[0, 1, 0]), "key 'seeds': lists seed 0 more than once: [0, 1, 0]; list each once"),
        (lambda r: r.update(name="runs/mine"), "key 'name': 'runs/mine' cannot name a report folder"),
        (lambda r: r.update(name=" "), "key 'name': ' ' cannot name a report folder"),
        (lambda r: r.update(arch={"lenet5": {"pretrain_steps": -3}}), "must be at least 1, got -3"),
        (lambda r: r["train"].update(learning_rate=0), "key 'train.learning_rate': expected a positive learning rate"),
        (lambda r: r["pretrain"].update(learning_rate=-1e-3), "key 'pretrain.learning_rate': expected a positive"),
        (lambda r: r.update(input={"img_size": 0}), "key 'input.img_size': expected an image side in pixels in [8, "
                                                    "1024], got 0"),
        (lambda r: r.update(input={"img_size": -32}), "key 'input.img_size': expected an image side in pixels"),
        (lambda r: r.update(input={"img_size": 100_000}), "key 'input.img_size': expected an image side in pixels"),
        (lambda r: r.update(input={"img_size": 16}), "key 'input.img_size': 16 px is too small for lenet5 (at least "
                                                     "32): its stages would leave an empty map; use img_size = 32 or "
                                                     "more, or drop those archs"),
    ],
)  # fmt: skip
def test_settings_constraints_are_checked(tiny_suite_text: str, edit, message: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    edit(raw)
    with pytest.raises(SuiteError, match=r"suite my\.toml") as info:
        parse_suite(raw, registry_catalog(), "my.toml")
    assert message in str(info.value)
