"""One scenario end to end through the Runner: determinism, s3 on cached features, per-quadrant settings,
two-phase fine-tuning, user datasets beside broken ones, and layer-transfer points."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import SuiteError, parse_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner
from cnnbench.engine.timing import Timer
from cnnbench.engine.train import PREDICT_BATCH


class _NoTiming(Timer):
    """Times each call once: these tests check training, not throughput."""

    def train_step(self, fn):
        from cnnbench.engine.timing import measure

        return measure(fn, rounds=1, min_round_s=0.0)

    inference = train_step


def test_a_scenario_run_twice_gives_the_same_accuracy(tiny_suite_text: str, shared_cache: Path) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite_text), registry_catalog(), "tiny.toml")
    scenario = Scenario("lenet5", "s1", "q4", "fc", seed=0)
    first = Runner(suite, shared_cache).run(scenario, _NoTiming())
    second = Runner(suite, shared_cache).run(scenario, _NoTiming())
    other_seed = Runner(suite, shared_cache).run(Scenario("lenet5", "s1", "q4", "fc", seed=1), _NoTiming())
    assert first.status == second.status == "passed"
    first, second, other_seed = first.measurement, second.measurement, other_seed.measurement
    assert first.metrics.test_accuracy == second.metrics.test_accuracy
    assert [p.val_accuracy for p in first.curve] == [p.val_accuracy for p in second.curve]
    assert [p.train_loss for p in first.curve] == [p.train_loss for p in second.curve]
    assert [p.train_loss for p in other_seed.curve] != [p.train_loss for p in first.curve]


def test_s3_computes_features_once_per_target_and_trains_only_the_head(
    tiny_suite_text: str, shared_cache: Path
) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite_text), registry_catalog(), "tiny.toml")
    runner = Runner(suite, shared_cache)
    gap = runner.run(Scenario("lenet5", "s3", "q4", "gap", seed=0), _NoTiming()).measurement
    fc = runner.run(Scenario("lenet5", "s3", "q4", "fc", seed=0), _NoTiming()).measurement
    feats, fresh = runner.features("lenet5", "q4")
    assert not fresh and feats.train.shape == (40, 1, 1, 120)  # computed by the first s3 scenario, reused
    assert gap.frozen_stages == fc.frozen_stages == ("c1", "c3", "c5")
    assert gap.metrics.params_trainable == 120 * 10 + 10  # the gap head alone
    assert fc.metrics.params_trainable == 120 * 256 + 256 + 256 * 10 + 10
    assert gap.metrics.params_total == 50_692 + 1_210  # the deployed model is base + head


def test_quadrant_settings_augment_and_cut_s2_where_the_suite_says(tiny_suite_text: str, shared_cache: Path) -> None:
    raw = tomllib.loads(tiny_suite_text)
    raw["quadrants"]["q3"].update(augment=["flip", "crop"], s2_freeze="c3")
    runner = Runner(parse_suite(raw, registry_catalog()), shared_cache)
    q3 = runner.run(Scenario("lenet5", "s2", "q3", "gap", seed=0), _NoTiming())
    q4 = runner.run(Scenario("lenet5", "s2", "q4", "gap", seed=0), _NoTiming())
    s3 = runner.run(Scenario("lenet5", "s3", "q3", "gap", seed=0), _NoTiming())
    assert q3.status == q4.status == s3.status == "passed"
    q3, q4, s3 = q3.measurement, q4.measurement, s3.measurement
    assert q3.frozen_stages == ("c1", "c3") and q4.frozen_stages == ("c1",)  # q4: the default, half
    assert q3.augment == ("flip", "crop") and q4.augment == () and s3.augment == ()  # s3: cached features


def test_two_phase_trains_the_head_first_then_fine_tunes_within_the_budget(
    tiny_suite_text: str, shared_cache: Path
) -> None:
    raw = tomllib.loads(tiny_suite_text)
    raw["train"].update(head_first_steps=4, eval_points=2, early_stopping=5)
    runner = Runner(parse_suite(raw, registry_catalog()), shared_cache)
    s2, s3, scratch = (
        runner.run(Scenario("lenet5", s, "q4", "gap", seed=0), _NoTiming()) for s in ("s2", "s3", "scratch")
    )
    assert s2.status == s3.status == scratch.status == "passed"
    s2, s3, scratch = s2.measurement, s3.measurement, scratch.measurement
    assert s2.head_first_steps == 4 and s3.head_first_steps == scratch.head_first_steps == 0
    assert [(p.phase, p.step) for p in s2.curve] == [("head", 2), ("head", 4), (None, 8), (None, 12)]
    assert [p.step for p in scratch.curve] == [6, 12] and s2.stopped_at is None


def _user_npz(path: Path) -> Path:
    """Three classes of 32×32 grey images told apart by which horizontal band is bright, plus noise."""
    rng = np.random.default_rng(0)

    def split(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(3), n_per_class)
        x = rng.integers(0, 60, (len(y), 32, 32), dtype=np.uint8)
        for i, c in enumerate(y):
            x[i, 10 * c : 10 * c + 10] += 150
        return x, y

    (x_train, y_train), (x_test, y_test) = split(20), split(10)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_a_users_dataset_runs_beside_a_broken_one(tiny_suite_text: str, shared_cache: Path, tmp_path: Path) -> None:
    """A suite binds a user's .npz and a corrupt one: the good one trains (above chance, reported under its own
    name); the broken one fails its scenarios with the file named, before any training, and nothing else."""
    _user_npz(tmp_path / "bands.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip at all")
    raw = tomllib.loads(tiny_suite_text)
    raw["quadrants"]["q4"] = {"target": "bands.npz", "n_train": 30, "steps": 12}
    raw["quadrants"]["q3"] = {"target": str(tmp_path / "broken.npz"), "steps": 12}
    (tmp_path / "mine.toml").write_text("")  # relative targets start at the suite file's folder
    runner = Runner(parse_suite(raw, registry_catalog(), str(tmp_path / "mine.toml")), shared_cache)
    good = runner.run(Scenario("lenet5", "s3", "q4", "gap", seed=0), _NoTiming())
    bad = runner.run(Scenario("lenet5", "scratch", "q3", "gap", seed=0), _NoTiming())
    assert good.status == "passed" and good.measurement.metrics.test_accuracy > 0.6
    assert runner.suite.quadrants["q4"].name == "bands"  # reported under its own name
    assert bad.status == "error" and "broken.npz is not a valid .npz" in bad.error and bad.measurement is None
    (bands,) = runner.target_info()
    assert bands.name == "bands" and bands.n_train == 30
    assert bands.conversion is not None and bands.conversion["n_train_available"] == 48


def test_suite_option_adds_one_point_per_cut_and_a_runner_freezes_that_many(
    tiny_suite_text: str, shared_cache: Path
) -> None:
    raw = tomllib.loads(tiny_suite_text)
    raw["layer_transfer"] = {"arch": "lenet5", "quadrant": "q4", "head": "gap"}
    suite = parse_suite(raw, registry_catalog())
    points = [s for s in suite.scenarios() if s.freeze is not None]
    assert [s.id for s in points] == [f"lenet5-s2-q4-gap-freeze{k}" for k in range(4)]  # lenet5: 3 stages
    assert len(suite.scenarios()) == 16 + 4
    result = Runner(suite, shared_cache).run(points[2], _NoTiming())
    assert points[2].coordinates["layer_transfer"] == 2
    assert result.status == "passed" and result.measurement.frozen_stages == ("c1", "c3")
    raw["layer_transfer"]["quadrant"] = "q1"
    with pytest.raises(SuiteError, match=r"key 'layer_transfer.quadrant': unknown value 'q1'; expected one of: q3, q4"):
        parse_suite(raw, registry_catalog())
    assert Scenario("lenet5", "s2", "q4", "gap", 1, True, freeze=0).id == "lenet5-s2-q4-gap-freeze0-seed1"


def test_infer_batch_sets_the_batch_of_the_predictions_and_the_timed_inference(
    tiny_suite_text: str, shared_cache: Path
) -> None:
    """``[train] infer_batch``: the deployed model is compiled and timed for that batch (images/s per call of it),
    and the test predictions, cut into batches of that size, give the same accuracy as at the default 256."""
    raw = tomllib.loads(tiny_suite_text)
    default = parse_suite(raw, registry_catalog(), "tiny.toml")
    raw["train"]["infer_batch"] = 24
    small = parse_suite(raw, registry_catalog(), "tiny.toml")
    assert default.train.infer_batch == PREDICT_BATCH and small.train.infer_batch == 24
    scenario = Scenario("lenet5", "s1", "q4", "gap", seed=0)
    (at_256,), (at_24,) = Runner(default, shared_cache).train([scenario]), Runner(small, shared_cache).train([scenario])
    assert at_256.evaluation.batch.shape[0] == 256 and at_24.evaluation.batch.shape[0] == 24
    assert at_24.evaluation.test_accuracy == at_256.evaluation.test_accuracy
    timer = Timer(rounds=1, min_round_s=0.0)
    outcome = Runner(small, shared_cache).measure(at_24, timer)
    infer = outcome.measurement.infer_timing
    assert infer.images_per_s == pytest.approx(24 / infer.median_s)
    with pytest.raises(SuiteError, match=r"infer_batch"):
        parse_suite({**raw, "train": {**raw["train"], "infer_batch": 0}}, registry_catalog(), "tiny.toml")
