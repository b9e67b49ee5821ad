"""Suite parsing: the built-ins load, and every malformed suite is rejected with the file, key and fix."""

from __future__ import annotations

import tomllib

import pytest

from cnnbench.suite import SuiteError, builtin_suites, load_suite, parse_suite


def test_builtin_smoke_covers_the_whole_matrix() -> None:
    suite = load_suite("smoke")
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
    assert parse_suite(raw).scenarios()[0].id == "lenet5-s1-q3-gap"
    raw["seeds"] = [0, 2]
    ids = [s.id for s in parse_suite(raw).scenarios()]
    assert "lenet5-s3-q4-fc-seed2" in ids and len(ids) == 2 * 2 * 2 * 4


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(archs=["resnet19"]), "unknown arch 'resnet19'; known: lenet5"),
        (lambda r: r.update(strategies=["s4"]), "unknown strategy 's4'; known: s1, s2, s3, scratch"),
        (lambda r: r.update(heads=["mlp"]), "unknown head 'mlp'; known: fc, gap, svm"),
        (lambda r: r["quadrants"].update(q5=r["quadrants"]["q4"]), "unknown quadrant 'q5'"),
        (lambda r: r["quadrants"]["q4"].update(target="mnist"), "key 'quadrants.q4.target': unknown value 'mnist'"),
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
    ],
)
def test_malformed_suite_names_file_key_and_fix(tiny_suite_text: str, edit, message: str) -> None:
    raw = tomllib.loads(tiny_suite_text)
    edit(raw)
    with pytest.raises(SuiteError, match="suite my.toml") as info:
        parse_suite(raw, "my.toml")
    assert message in str(info.value)


def test_unknown_suite_name_and_bad_toml(tmp_path) -> None:
    with pytest.raises(SuiteError, match="unknown suite 'smok'; built-in: .*smoke"):
        load_suite("smok")
    bad = tmp_path / "bad.toml"
    bad.write_text("archs = [lenet5\n")
    with pytest.raises(SuiteError, match=f"suite {bad}: not valid TOML"):
        load_suite(str(bad))
