"""One scenario end to end through the Runner: deterministic on CPU, and s3 trains on cached features."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cnnbench.scenario import Runner
from cnnbench.suite import Scenario, parse_suite
from cnnbench.timing import Timer


class _NoTiming(Timer):
    """Times each call once: these tests check training, not throughput."""

    def train_step(self, fn):
        from cnnbench.timing import measure

        return measure(fn, rounds=1, warmup_rounds=0)

    inference = train_step


def test_a_scenario_run_twice_gives_the_same_accuracy(tiny_suite_text: str, shared_cache: Path) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite_text), "tiny.toml")
    scenario = Scenario("lenet5", "s1", "q4", "fc", seed=0)
    first = Runner(suite, shared_cache, log=lambda _: None).run(scenario, _NoTiming())
    second = Runner(suite, shared_cache, log=lambda _: None).run(scenario, _NoTiming())
    other_seed = Runner(suite, shared_cache, log=lambda _: None).run(
        Scenario("lenet5", "s1", "q4", "fc", seed=1), _NoTiming()
    )
    assert first["status"] == second["status"] == "passed"
    assert first["metrics"]["test_accuracy"] == second["metrics"]["test_accuracy"]
    assert [p["val_accuracy"] for p in first["curve"]] == [p["val_accuracy"] for p in second["curve"]]
    assert [p["train_loss"] for p in first["curve"]] == [p["train_loss"] for p in second["curve"]]
    assert [p["train_loss"] for p in other_seed["curve"]] != [p["train_loss"] for p in first["curve"]]


def test_s3_computes_features_once_per_target_and_trains_only_the_head(
    tiny_suite_text: str, shared_cache: Path
) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite_text), "tiny.toml")
    runner = Runner(suite, shared_cache, log=lambda _: None)
    gap = runner.run(Scenario("lenet5", "s3", "q4", "gap", seed=0), _NoTiming())
    fc = runner.run(Scenario("lenet5", "s3", "q4", "fc", seed=0), _NoTiming())
    feats, fresh = runner.features("lenet5", "q4")
    assert not fresh and feats.train.shape == (40, 1, 1, 120)  # computed by the first s3 scenario, reused
    assert gap["frozen_stages"] == fc["frozen_stages"] == ["c1", "c3", "c5"]
    assert gap["metrics"]["params_trainable"] == 120 * 10 + 10  # the gap head alone
    assert fc["metrics"]["params_trainable"] == 120 * 256 + 256 + 256 * 10 + 10
    assert gap["metrics"]["params_total"] == 50_692 + 1_210  # the deployed model is base + head
