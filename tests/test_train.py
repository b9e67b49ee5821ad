"""The training core: freezing is exact, strategies train what SPEC §3 says, runs are deterministic."""

from __future__ import annotations

import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from cnnbench.config.strategies import STRATEGIES, frozen_stages
from cnnbench.engine.batches import StepBatches, TargetBatches
from cnnbench.engine.heads import HEADS, create_head, squared_hinge
from cnnbench.engine.programs import PROGRAMS
from cnnbench.engine.train import (
    AUX_LOSS_WEIGHT,
    PREDICT_BATCH,
    TrainConfig,
    TransferModel,
    Watch,
    apply_program,
    epoch_batches,
    fit,
    lr_multipliers,
    predict,
)
from cnnbench.zoo import create_model

RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def _flat(module: nnx.Module) -> dict[tuple, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(
        nnx.to_pure_dict(nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat)))
    )
    return {tuple(k.key for k in path): np.array(v) for path, v in flat}


def _data(n: int = 64, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int32)
    x = rng.random((n, 32, 32, 1), dtype=np.float32) * 0.3 + y[:, None, None, None] / classes
    return x, y


def _fixed(x: np.ndarray, y: np.ndarray) -> StepBatches:
    """The first 16 images at every step."""
    return StepBatches(lambda _: (x[:16], y[:16]))


def _train(arch: str, strategy: str, head: str = "gap", seed: int = 0, steps: int = 3, **kw):
    width = 0.125 if arch.startswith("resnet") else 1.0
    base = create_model(arch, num_classes=0, in_chans=1, img_size=32, width=width, rngs=nnx.Rngs(seed))
    frozen = frozen_stages(STRATEGIES.get(strategy), base.stage_names, kw.pop("lower", None))
    model = TransferModel(base, create_head(head, base.feature_shape, 4, seed=seed))
    before = _flat(model)
    x, y = _data()
    idx = epoch_batches(len(x), 16, steps, seed)
    config = TrainConfig(steps=steps, batch_size=16, learning_rate=1e-2, eval_points=1)
    result = fit(
        model,
        frozen,
        model.head.loss,
        TargetBatches.of(x, y, idx),
        (x, y),
        config,
        lr_base=1e-2,
        lr_head=1e-2,
        weight_decay_head=1e-4,
    )
    return before, _flat(result.model()), frozen, result


def _changed(before: dict, after: dict, prefix: tuple) -> dict[tuple, bool]:
    return {p: not np.array_equal(before[p], after[p]) for p in before if p[: len(prefix)] == prefix}


def test_s2_freezes_lower_stages_bit_for_bit_including_batchnorm_statistics() -> None:
    before, after, frozen, _ = _train("resnet18", "s2")
    assert frozen == ("stem", "layer1")
    for stage in frozen:
        changed = _changed(before, after, ("base", stage))
        assert changed and not any(changed.values()), f"frozen stage {stage} changed: {changed}"
        assert any(p[-1] == "mean" for p in changed), "the frozen stage has BatchNorm statistics to check"
    for stage in ("layer2", "layer3", "layer4"):
        changed = _changed(before, after, ("base", stage))
        params = {p: c for p, c in changed.items() if p[-1] in ("kernel", "scale", "bias")}
        stats = {p: c for p, c in changed.items() if p[-1] in ("mean", "var")}
        assert all(params.values()), f"trainable {stage} parameters did not all change"
        assert all(stats.values()), f"{stage} BatchNorm statistics should track the target data"
    assert all(_changed(before, after, ("head",)).values())


def test_s1_and_scratch_train_everything_s3_freezes_the_whole_base() -> None:
    before, after, frozen, _ = _train("resnet18", "s1")
    assert frozen == () and all(_changed(before, after, ()).values())
    before, after, frozen, _ = _train("resnet18", "s3")
    assert frozen == RESNET_STAGES
    assert not any(_changed(before, after, ("base",)).values())
    assert all(_changed(before, after, ("head",)).values())


@pytest.mark.parametrize(
    ("lower", "expected"),
    [
        (None, ("stem", "layer1")),
        (3, ("stem", "layer1", "layer2")),
        ("layer3", RESNET_STAGES[:4]),
        (0, ()),
        (0.25, ("stem",)),
        (0.8, RESNET_STAGES[:4]),
        (0.05, ("stem",)),
    ],  # fractions round down, at least one stage
)
def test_s2_freeze_point_by_count_fraction_or_stage_name(lower, expected) -> None:
    assert frozen_stages(STRATEGIES.get("s2"), RESNET_STAGES, lower) == expected
    assert frozen_stages(STRATEGIES.get("s1"), RESNET_STAGES, lower) == ()
    assert frozen_stages(STRATEGIES.get("s3"), RESNET_STAGES, lower) == RESNET_STAGES


def test_s2_freeze_point_errors_name_the_stages() -> None:
    with pytest.raises(ValueError, match="'layer9' is not a stage; stages: stem, layer1"):
        frozen_stages(STRATEGIES.get("s2"), RESNET_STAGES, "layer9")
    with pytest.raises(ValueError, match="freezes 7 stages but the base has 5"):
        frozen_stages(STRATEGIES.get("s2"), RESNET_STAGES, 7)


def test_s2_freezes_named_stage_on_lenet_too() -> None:
    before, after, frozen, _ = _train("lenet5", "s2", lower="c3")
    assert frozen == ("c1", "c3")
    assert not any(_changed(before, after, ("base", "c1")).values())
    assert not any(_changed(before, after, ("base", "c3")).values())
    assert all(_changed(before, after, ("base", "c5")).values())


def test_training_is_deterministic_given_the_seed() -> None:
    _, a, _, ra = _train("lenet5", "scratch", head="fc", seed=3, steps=6)
    _, b, _, rb = _train("lenet5", "scratch", head="fc", seed=3, steps=6)
    _, c, _, _ = _train("lenet5", "scratch", head="fc", seed=4, steps=6)
    assert all(np.array_equal(a[p], b[p]) for p in a)
    assert ra.curve == [dict(p, elapsed_s=q["elapsed_s"]) for p, q in zip(rb.curve, ra.curve, strict=True)]
    assert not all(np.array_equal(a[p], c[p]) for p in a)


def test_many_steps_per_dispatch_train_exactly_as_one_step_per_dispatch() -> None:
    """An evaluation ends a chunk: evaluating after every step runs one step per dispatch, evaluating once runs
    all eight in one. The program is the same, so the weights must match bit for bit, and the chunk's mean loss
    the mean of the per-step losses; the schedule (warm-up, cosine) is sliced per chunk."""
    x, y = _data()
    idx = epoch_batches(len(x), 16, 8, 0)

    def run(eval_points: int):
        base = create_model("lenet5", num_classes=0, rngs=nnx.Rngs(0))
        model = TransferModel(base, create_head("gap", base.feature_shape, 4, seed=0))
        config = TrainConfig(steps=8, batch_size=16, learning_rate=1e-2, warmup_steps=3, eval_points=eval_points)
        return fit(model, (), model.head.loss, TargetBatches.of(x, y, idx, ["flip"], seed=1), (x, y), config,
                   1e-2, 1e-2, 1e-4)  # fmt: skip

    stepwise, chunked = run(8), run(1)
    assert [p["step"] for p in stepwise.curve] == list(range(1, 9)) and [p["step"] for p in chunked.curve] == [8]
    assert stepwise.step.program is chunked.step.program
    a, b = _flat(stepwise.model()), _flat(chunked.model())
    assert all(np.array_equal(a[p], b[p]) for p in a)
    per_step = [p["train_loss"] for p in stepwise.curve]
    assert chunked.curve[0]["train_loss"] == pytest.approx(np.mean(per_step), rel=1e-6)
    assert len(set(per_step)) == 8  # eight different batches and weights: each step's own loss


def test_validation_test_and_deployed_predictions_share_one_program() -> None:
    """However training split the states (here around a frozen stage) and whatever a set's size, predictions run
    on one merged state in batches of PREDICT_BATCH: the deployed model's timed inference reuses the program the
    validation predictions compiled."""
    x, y = _data(n=300)
    base = create_model("lenet5", num_classes=0, rngs=nnx.Rngs(0))
    model = TransferModel(base, create_head("gap", base.feature_shape, 6, seed=0))  # 6 classes: no other test's
    config = TrainConfig(steps=1, batch_size=16, eval_points=1)
    result = fit(model, ("c1",), model.head.loss, _fixed(x, y), (x, y), config, 1e-3, 1e-3, 1e-4)
    logits, compile_s = predict(result.eval_graphdef, (result.trainable, result.rest), x[:40])
    assert compile_s == 0.0 and logits.shape == (40, 6)
    trained = result.model()
    deployed = TransferModel(trained.base, trained.head)
    deployed.eval()
    graphdef, state = nnx.split(deployed)
    batch = np.resize(x, (PREDICT_BATCH, *x.shape[1:]))
    program, fresh = PROGRAMS.get(apply_program(), (graphdef, None), (state,), batch)
    assert not fresh
    np.testing.assert_allclose(np.asarray(program.compiled((state,), batch))[:40], logits, rtol=1e-6, atol=1e-6)


def test_learning_rate_is_data_so_scenarios_share_a_compiled_step() -> None:
    base = create_model("lenet5", num_classes=0, rngs=nnx.Rngs(0))
    model = TransferModel(base, create_head("gap", base.feature_shape, 4, seed=0))
    x, y = _data()
    config = TrainConfig(steps=2, batch_size=16, eval_points=1)
    first = fit(model, (), model.head.loss, _fixed(x, y), (x, y), config, 1e-3, 1e-3, 1e-4)
    model2 = TransferModel(
        create_model("lenet5", num_classes=0, rngs=nnx.Rngs(1)), create_head("gap", base.feature_shape, 4, seed=1)
    )
    second = fit(model2, (), model2.head.loss, _fixed(x, y), (x, y), config, 5e-2, 1e-1, 1e-2)
    assert first.step.program is second.step.program and second.compile_s == 0.0


def test_training_time_leaves_out_compiling_the_validation_program() -> None:
    # 7 classes: a head no other test compiles, so this fit compiles its own validation program (about a second)
    base = create_model("lenet5", num_classes=0, rngs=nnx.Rngs(0))
    model = TransferModel(base, create_head("gap", base.feature_shape, 7, seed=0))
    x, y = _data()
    config = TrainConfig(steps=2, batch_size=16, eval_points=2)
    t0 = time.perf_counter()
    result = fit(model, (), model.head.loss, _fixed(x, y), (x, y), config, 1e-3, 1e-3, 1e-4)
    wall = time.perf_counter() - t0
    assert result.compile_s > 0
    assert result.train_s + result.compile_s <= wall  # each second counted once: compiling is not training
    assert result.curve[-1]["elapsed_s"] <= result.train_s


def test_schedule_warms_up_then_decays_to_zero() -> None:
    m = lr_multipliers(TrainConfig(steps=100, warmup_steps=10))
    assert m[0] == 0.0 and m[10] == pytest.approx(1.0, abs=1e-3) and m[-1] < 0.01
    assert np.all(np.diff(m[10:]) <= 1e-7)


def test_epoch_batches_cover_every_image_once_per_pass() -> None:
    idx = epoch_batches(48, 16, 6, seed=0)
    assert idx.shape == (6, 16)
    assert sorted(idx[:3].ravel()) == list(range(48)) and sorted(idx[3:].ravel()) == list(range(48))


def test_heads_match_the_spec_layers_and_losses() -> None:
    assert HEADS.names() == ["fc", "gap", "svm"]
    fc = create_head("fc", (2, 2, 8), 10, seed=0)
    assert fc.hidden.kernel.shape == (32, 256) and fc.out.kernel.shape == (256, 10)
    gap = create_head("gap", (2, 2, 8), 10, seed=0)
    assert gap.out.kernel.shape == (8, 10)
    assert gap(np.ones((3, 2, 2, 8), np.float32)).shape == (3, 10)
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)
    # targets (+1, -1, -1): hinge terms max(0, 1 - t*z)^2 = 0, 0, 1.5^2
    assert float(squared_hinge(logits, np.array([0]))) == pytest.approx(2.25)
    assert float(HEADS.get("fc").loss(logits, np.array([0]))) == pytest.approx(
        float(optax.softmax_cross_entropy_with_integer_labels(logits, np.array([0]))[0])
    )


class ConstantAux(nnx.Module):
    """Auxiliary 'classifiers' that ignore their taps and output uniform logits: each adds exactly log(classes)."""

    def __call__(self, taps: tuple) -> tuple[jax.Array, jax.Array]:
        return jnp.zeros((16, 4)), jnp.zeros((16, 4))


def test_auxiliary_losses_add_to_the_training_loss_with_weight_0_3() -> None:
    x, y = _data()
    config = TrainConfig(steps=1, batch_size=16, learning_rate=1e-2, eval_points=1)

    def first_loss(aux: nnx.Module | None) -> float:
        base = create_model("lenet5", num_classes=0, rngs=nnx.Rngs(0))
        model = TransferModel(base, create_head("gap", base.feature_shape, 4, seed=0), aux)
        result = fit(
            model,
            (),
            model.head.loss,
            _fixed(x, y),
            (x, y),
            config,
            lr_base=1e-2,
            lr_head=1e-2,
            weight_decay_head=0.0,
        )
        return result.curve[0]["train_loss"]

    assert first_loss(ConstantAux()) - first_loss(None) == pytest.approx(AUX_LOSS_WEIGHT * 2 * np.log(4), rel=1e-5)
    assert AUX_LOSS_WEIGHT == 0.3


def test_only_archs_with_auxiliary_classifiers_get_them_for_a_new_head() -> None:
    def built(arch: str) -> TransferModel:
        """Built abstractly (``nnx.eval_shape``): which modules exist and their shapes need no initialised weights."""

        def build() -> TransferModel:
            base = create_model(arch, num_classes=0, in_chans=1, img_size=32, width=0.125, rngs=nnx.Rngs(0))
            return TransferModel.build(base, create_head("gap", base.feature_shape, 5, seed=0), 5, seed=0)

        return nnx.eval_shape(build)

    assert built("googlenet").aux is None and built("resnet18").aux is None
    aux = built("googlenet_aux").aux
    assert aux.aux1.fc2.kernel.shape[-1] == 5 and aux.aux2.fc2.kernel.shape[-1] == 5


def _watched(watch: Watch, steps: int = 40):
    """lenet5 + gap trained on learnable data but validated on random labels: validation never really improves."""
    x, y = _data(n=128)
    val = (x[:64], np.random.default_rng(7).integers(0, 4, 64).astype(np.int32))
    base = create_model("lenet5", num_classes=0, rngs=nnx.Rngs(0))
    model = TransferModel(base, create_head("gap", base.feature_shape, 4, seed=0))
    idx = epoch_batches(len(x), 16, steps, 0)
    config = TrainConfig(steps=steps, batch_size=16, learning_rate=3e-2, eval_points=10)
    return fit(
        model,
        (),
        model.head.loss,
        TargetBatches.of(x, y, idx),
        val,
        config,
        lr_base=3e-2,
        lr_head=3e-2,
        weight_decay_head=1e-4,
        watch=watch,
    )


def test_early_stopping_stops_and_keeps_the_best_evaluation() -> None:
    from cnnbench.engine.train import accuracy

    result = _watched(Watch(early_stopping=2))
    accs = [p["val_accuracy"] for p in result.curve]
    best = int(np.argmax(accs))  # the first best: later ties do not count as improvements
    assert result.stopped_at is not None and result.stopped_at < 40
    assert len(accs) == best + 3 and result.stopped_at == result.curve[-1]["step"]  # patience 2 after the best
    logits, _ = predict(result.eval_graphdef, (result.trainable, result.rest), _data(n=128)[0][:64])
    val_y = np.random.default_rng(7).integers(0, 4, 64).astype(np.int32)
    assert accuracy(logits, val_y) == accs[best]  # the returned model is the best one, not the last


def test_plateau_cuts_the_learning_rate_through_optax() -> None:
    curve = _watched(Watch(plateau_patience=1, plateau_factor=0.5)).curve
    scales = [p["lr_scale"] for p in curve]
    assert scales[0] == 1.0 and scales[-1] < 1.0 and all(a >= b for a, b in itertools.pairwise(scales))
    assert all(s in {0.5**k for k in range(12)} for s in scales)
    best = curve[0]["val_loss"]  # optax's rule with patience 1: every evaluation that does not improve cuts
    for point, nxt in itertools.pairwise(curve):
        improved = point["val_loss"] < best * (1 - 1e-4)
        best = min(best, point["val_loss"]) if improved or point is curve[0] else best
        if point is not curve[0]:
            assert nxt["lr_scale"] == point["lr_scale"] * (1.0 if improved else 0.5)
    assert _watched(Watch()).curve[-1]["lr_scale"] == 1.0
