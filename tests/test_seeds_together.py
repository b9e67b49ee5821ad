"""A group's seeds trained together in one program (``fit_seeds``, ``--cnnbench-seeds-together``): each seed ends
as it does trained alone, within fp32 tolerance, with its own batches, augmentation, two phases, early stopping and
divergence; the session trains a group at its first seed and times each seed in its own item."""

from __future__ import annotations

import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import Suite, SuiteError, parse_suite
from cnnbench.engine.batches import TargetBatches
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.heads import create_head
from cnnbench.engine.runner import Runner, Trained
from cnnbench.engine.timing import Timer
from cnnbench.engine.train import Diverged, FitResult, TrainConfig, TransferModel, epoch_batches, fit, fit_seeds
from cnnbench.session import Filters, Session
from cnnbench.zoo import create_model

SEEDS = (0, 1, 2)


def _suite(text: str, q3: dict | None = None, **train: object) -> Suite:
    """The tiny suite with three seeds, these ``[train]`` settings and these for q3."""
    raw = tomllib.loads(text)
    raw["seeds"] = list(SEEDS)
    raw["train"].update(train)
    raw["quadrants"]["q3"].update(q3 or {})
    return parse_suite(raw, registry_catalog(), "tiny.toml")


def _close(a: object, b: object) -> None:
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=2e-4, atol=2e-6), a, b)


def test_each_seed_trained_together_ends_as_trained_alone(tiny_suite_text: str, shared_cache: Path) -> None:
    """s2 on q3: frozen stages, augmentation keyed by each seed, the head trained alone first, early stopping."""
    suite = _suite(tiny_suite_text, {"augment": ["flip", "crop", "affine"]}, head_first_steps=4, eval_points=3,
                   early_stopping=1)  # fmt: skip
    group = [Scenario("lenet5", "s2", "q3", "gap", seed=s, multi_seed=True) for s in SEEDS]
    runner = Runner(suite, shared_cache)
    together = runner.train(group)
    alone = [runner.train([s])[0] for s in group]
    for t, a in zip(together, alone, strict=True):
        assert isinstance(t, Trained) and isinstance(a, Trained)
        assert t.plan.augment == ("flip", "crop", "affine") and t.plan.head_first == 4
        assert [p["step"] for p in t.fitted.curve] == [p["step"] for p in a.fitted.curve]
        assert t.fitted.stopped_at == a.fitted.stopped_at
        np.testing.assert_allclose([p["train_loss"] for p in t.fitted.curve],
                                   [p["train_loss"] for p in a.fitted.curve], rtol=1e-5)  # fmt: skip
        assert [p["val_accuracy"] for p in t.fitted.curve] == [p["val_accuracy"] for p in a.fitted.curve]
        assert t.evaluation.test_accuracy == a.evaluation.test_accuracy
        _close((t.fitted.trainable, t.fitted.rest), (a.fitted.trainable, a.fitted.rest))
    losses = [tuple(p["train_loss"] for p in t.fitted.curve) for t in together]  # type: ignore[union-attr]
    assert len(set(losses)) == len(SEEDS)  # each seed its own head, batches and augmentation
    assert len({t.fitted.stopped_at for t in together}) > 1  # type: ignore[union-attr]  # one rode along stopped
    step = together[0].fitted.step  # type: ignore[union-attr]
    assert step is not None and step.seeds == len(SEEDS) and step.images_per_call == len(SEEDS) * step.batch_size
    replay = step.replay()
    replay()
    replay()  # the group's step is timed once per seed: a replay keeps the states it stepped


def _model(seed: int, classes: int = 4) -> TransferModel:
    base = create_model("lenet5", num_classes=0, img_size=32, in_chans=1, rngs=nnx.Rngs(seed))
    return TransferModel(base, create_head("gap", base.feature_shape, classes, seed=seed))


def test_a_diverged_seed_rides_along_untouched_and_the_others_train_as_alone() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 32, 32, 1)).astype(np.float32), rng.integers(0, 4, 64).astype(np.int32)
    val = (x[:32], y[:32])
    config = TrainConfig(steps=8, batch_size=16, learning_rate=1e-2, eval_points=2)
    batches = [TargetBatches.of(x, y, epoch_batches(64, 16, 8, s), seed=s) for s in SEEDS]

    def models() -> list[TransferModel]:
        ms = [_model(s) for s in SEEDS]
        kernel = ms[1].head.out.kernel
        kernel[...] = kernel[...] * np.nan  # seed 1 diverges at its first evaluation (step 4)
        return ms

    args = {"loss": models()[0].head.loss, "val": val, "config": config, "lr_base": 1e-2, "lr_head": 1e-2,
            "weight_decay_head": 1e-4}  # fmt: skip
    together = fit_seeds(models(), (), batches=batches, **args)
    assert isinstance(together[1], Diverged) and "at step 4" in str(together[1])
    for i in (0, 2):
        alone = fit(models()[i], (), batches=batches[i], **args)
        result = together[i]
        assert isinstance(result, FitResult) and [p["step"] for p in result.curve] == [4, 8]
        np.testing.assert_allclose([p["train_loss"] for p in result.curve], [p["train_loss"] for p in alone.curve],
                                   rtol=1e-5)  # fmt: skip
        _close(result.trainable, alone.trainable)
    with pytest.raises(Diverged):
        fit(models()[1], (), batches=batches[1], **args)


class _Once(Timer):
    """One call per timing: these tests check who trains what, not throughput."""

    def __init__(self) -> None:
        super().__init__(rounds=1, min_round_s=0.0)


def test_the_session_trains_a_group_at_its_first_seed_and_times_each_seed_in_its_own_item(
    tiny_suite_text: str, shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``on`` trains the group's three seeds in one call; ``auto`` is off on this CPU: a call per seed. The records
    agree, and a seed trained with the group reports a step of the group over all its images."""
    calls: list[int] = []
    original = Runner.train
    monkeypatch.setattr(Runner, "train", lambda self, group: calls.append(len(group)) or original(self, group))
    # scratch: no pretrained base, so no similarity to measure, in either session
    suite, filters = _suite(tiny_suite_text), Filters(strategy=("scratch",), quadrant=("q4",), head=("gap",))
    runs = {}
    for together in ("on", "auto"):
        session = Session(suite, filters, tmp_path / together, shared_cache,
                          seeds_together=together)  # fmt: skip
        runs[together] = [session.run(s, _Once()) for s in session.scenarios()]
    assert calls == [len(SEEDS), 1, 1, 1]
    on, auto = runs["on"], runs["auto"]
    assert [r.id for r in on] == [r.id for r in auto] == [f"lenet5-scratch-q4-gap-seed{s}" for s in SEEDS]
    assert all(r.status == "passed" for r in on + auto)
    assert [r.metrics.test_accuracy for r in on] == [r.metrics.test_accuracy for r in auto]
    assert len({r.metrics.test_accuracy for r in on}) > 1 or len({r.metrics.val_accuracy for r in on}) > 1
    batch = suite.train.config(suite.quadrants["q4"].steps).batch_size
    for r, images in [(on[0], len(SEEDS) * batch), (auto[0], batch)]:
        assert r.timing is not None
        assert r.timing.train_step.images_per_s == pytest.approx(images / r.timing.train_step.median_s)


def test_seeds_together_takes_on_off_or_auto(tiny_suite_text: str, shared_cache: Path) -> None:
    with pytest.raises(SuiteError, match="expected one of auto, on, off"):
        Session(_suite(tiny_suite_text), Filters(), Path("r"), shared_cache, seeds_together="yes")
