"""Suite parsing: the built-ins load, and every malformed suite is rejected with the file, key and fix."""

from __future__ import annotations

import tomllib

import pytest

from cnnbench.engine.catalog import registry_catalog
from cnnbench.config.suite import SuiteError, builtin_suites, load_suite, parse_suite


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
        (lambda r: r["quadrants"]["q4"].update(target="mnist"),
         "key 'quadrants.q4.target': 'mnist' is neither a built-in target (digits, font-digits, textures) nor an existing"),
        (lambda r: r["quadrants"]["q4"].update(n_train=5000), "q4 is a small quadrant: n_train must be at most 1000"),
        (lambda r: r["quadrants"]["q4"].update(steps="ten"), "key 'quadrants.q4.steps': expected an integer"),
        (lambda r: r["train"].update(learning_rate=-1), "key 'train.learning_rate': must not be negative"),
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
        (lambda r: r["quadrants"]["q3"].update(augment=["flip", "mixup"]),
         "key 'quadrants.q3.augment': expected a list of flip, crop, affine, got ['flip', 'mixup']"),
        (lambda r: r["quadrants"]["q3"].update(s2_freeze=1.5), "key 'quadrants.q3.s2_freeze': expected \"half\""),
        (lambda r: r["quadrants"]["q3"].update(s2_freeze="layer1"), "'layer1' does not fit lenet5"),
    ],
)
def test_malformed_suite_names_file_key_and_fix(tiny_suite_text: str, edit, message: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    edit(raw)
    with pytest.raises(SuiteError, match="suite my.toml") as info:
        parse_suite(raw, registry_catalog(), "my.toml")
    assert message in str(info.value)


def test_unknown_suite_name_and_bad_toml(tmp_path) -> None:
    with pytest.raises(SuiteError, match="unknown suite 'smok'; built-in: .*smoke"):
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
    child.write_text('extends = "base.toml"\nseeds = [1, 2]\n[train]\nlearning_rate = 0.05\n[quadrants.q4]\nsteps = 7\n')
    base, suite = load_suite(str(tmp_path / "base.toml"), registry_catalog()), load_suite(str(child), registry_catalog())
    assert suite.name == "child" and base.name == "tiny" and suite.seeds == (1, 2)
    assert suite.train == {**base.train, "learning_rate": 0.05}
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
    with pytest.raises(SuiteError, match="suite .*child.toml") as info:
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
    with pytest.raises(SuiteError, match=r"key 'quadrants.q4.target': 'data/oak' is neither a built-in target .*"
                                         r"looked for .*data/oak"):
        load_suite(str(suite_file), registry_catalog())
