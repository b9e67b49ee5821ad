"""Data parallelism (SPEC §10): a scenario trained over 4 devices trains as on one, within fp32's reduction order,
with the global batch's BatchNorm statistics; its programs really are partitioned; a batch that does not split
evenly is refused; and one device keeps the unsharded programs.

The multi-device checks run in a child process, started with ``XLA_FLAGS`` forcing 4 host devices (this process's
JAX has already started with one): ``_measure`` trains and measures there and prints its figures as JSON, which
the tests below judge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from flax import nnx

from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import parse_suite
from cnnbench.engine.batches import TargetBatches
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.heads import Head, create_head
from cnnbench.engine.mesh import SINGLE, DataParallel
from cnnbench.engine.programs import ProgramCache
from cnnbench.engine.runner import Runner, Trained
from cnnbench.engine.timing import Timer
from cnnbench.engine.train import (
    PREDICT_BATCH,
    TrainConfig,
    TransferModel,
    _train_steps,  # what the one-device train program must stay
    apply_program,
    epoch_batches,
    fit,
    fit_seeds,
    predict,
    train_program,
)
from cnnbench.zoo import create_model
from cnnbench.zoo.layers import batch_norm

DEVICES = 4
BATCH = 32  # the global batch: 8 images a device
SUITE = """
name = "data-parallel"
archs = ["lenet5"]
strategies = ["scratch"]
heads = ["gap"]
seeds = [0]

[train]
batch_size = 32
eval_points = 6
optimizer = "sgd"
learning_rate = 0.05

[quadrants.q4]
target = "digits"
n_train = 120
steps = 24
augment = ["flip"]
"""


# ----------------------------------------------------------------------------------------- the child process


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(np.int32)
    return (rng.random((n, 32, 32, 1)) * 0.5 + y[:, None, None, None] / 4).astype(np.float32), y


def _lenet(seed: int = 0, batchnorm: bool = False) -> TransferModel:
    """lenet5 under a GAP head; ``batchnorm``: with a BatchNorm after C1's convolution (over 28×28 maps) and one
    on the features (over the batch alone), the zoo's (momentum 0.9)."""
    base = create_model("lenet5", num_classes=0, in_chans=1, img_size=32, rngs=nnx.Rngs(seed))
    if batchnorm:
        conv, *rest = base.c1.layers
        base.c1 = nnx.Sequential(conv, batch_norm(6, rngs=nnx.Rngs(seed)), *rest)
    head = create_head("gap", base.feature_shape, 4, seed=seed)
    if batchnorm:
        head = _NormedHead(head)
    return TransferModel(base, head)


class _NormedHead(nnx.Module):
    """``head`` on BatchNorm-ed features."""

    def __init__(self, head: Head) -> None:
        self.norm = batch_norm(120, rngs=nnx.Rngs(0))
        self.head = head
        self.loss = head.loss

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.norm(x))


def _config(order: np.ndarray) -> TrainConfig:
    """SGD, whose update is proportional to the gradient, so the runs differ by rounding alone. adamw's first
    updates are about the gradient's sign: a weight whose gradient is rounding noise moves by the learning rate,
    either way (4 devices against 1, adamw: losses 2.5e-5 apart after 24 lenet5 steps, 1e-2 after 4 resnet18
    steps)."""
    return TrainConfig(steps=len(order), batch_size=order.shape[1], learning_rate=1e-2, eval_points=2, optimizer="sgd")


def _fit(parallel: DataParallel, model: TransferModel, order: np.ndarray, data: DataParallel | None = None) -> Any:
    """``model`` trained with SGD on 256 images in ``order`` over ``parallel``'s devices, the images placed for
    ``data``'s (``parallel``'s unless given)."""
    x, y = _data(256)
    batches = TargetBatches.of(x, y, order, ["flip"], seed=1, parallel=parallel if data is None else data)
    return fit(model, (), model.head.loss, batches, _data(96, seed=1), _config(order), 1e-2, 1e-2, 1e-4,
               parallel=parallel)  # fmt: skip


def _specs(shardings: Any) -> list[list]:
    """The distinct partition specs and device counts of these shardings."""
    leaves = jax.tree.leaves(shardings, is_leaf=lambda s: hasattr(s, "spec"))
    return [list(spec) for spec in sorted({(repr(tuple(s.spec)), len(s.device_set)) for s in leaves})]


def _stats(model: nnx.Module) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in jax.tree.leaves(nnx.state(model, nnx.BatchStat))])


def _diff(a: Any, b: Any) -> dict[str, float]:
    """The largest absolute difference of ``a`` from ``b``, and relative to ``b`` (magnitudes floored at 1e-3)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return {"abs": float(np.abs(a - b).max()), "rel": float((np.abs(a - b) / np.maximum(np.abs(b), 1e-3)).max())}


def _measure(cache: Path) -> dict[str, Any]:
    """Everything the tests judge, measured over 1 and 4 devices (3 for predictions) of this process."""
    assert jax.device_count() == DEVICES
    one, four = DataParallel.of(1), DataParallel.of(DEVICES)
    out: dict[str, Any] = {}

    # a scenario end to end (plan, fit, evaluate, time): lenet5 from scratch on 120 digits, flipped batches
    suite = parse_suite(tomllib.loads(SUITE), registry_catalog(), "data-parallel.toml")
    scenario = Scenario("lenet5", "scratch", "q4", "gap", seed=0)
    runners = {n: Runner(suite, cache, devices=n) for n in (None, DEVICES)}
    trained = {n: runner.train([scenario])[0] for n, runner in runners.items()}
    single, split = trained[None], trained[DEVICES]
    assert isinstance(single, Trained) and isinstance(split, Trained), trained
    curves = [[(p["train_loss"], p["val_loss"]) for p in t.fitted.curve] for t in (split, single)]
    out["curve"] = _diff(*curves) | {"points": len(curves[1])}
    out["test_accuracy"] = [single.evaluation.test_accuracy, split.evaluation.test_accuracy]
    step = split.fitted.step
    assert step is not None
    shardings = step.program.compiled.input_shardings[0]
    out["train_in"], out["state_in"] = _specs(shardings[5:7]), _specs(shardings[:5])
    out["train_out"] = _specs(step.program.compiled.output_shardings)
    out["chunk"] = _specs([step.xs.sharding, step.ys.sharding])  # gathered and augmented on the devices
    out["infer_in"] = _specs(split.evaluation.program.compiled.input_shardings[0][1])
    out["flops"] = [t.evaluation.program.flops for t in (single, split)]
    out["status"] = runners[DEVICES].measure(split, Timer(rounds=1, min_round_s=0.0)).status

    # predictions over 3 devices: the batch padded to 258, a multiple of 3
    fitted, x_test = single.fitted, single.plan.inputs.test
    logits = {n: predict(fitted.eval_graphdef, (fitted.trainable, fitted.rest), x_test, parallel=DataParallel.of(n))
              for n in (1, 3)}  # fmt: skip
    out["predict3"] = _diff(logits[3][0], logits[1][0]) | {"shape": list(logits[3][0].shape)}
    out["padded3"] = DataParallel.of(3).padded(PREDICT_BATCH)

    # BatchNorm statistics: lenet5 with two BatchNorms, 8 steps over 1 and 4 devices, and on a quarter of each
    # batch (what one device's statistics would be)
    order = epoch_batches(256, BATCH, 8, 0)
    norm = {n: _fit(p, _lenet(batchnorm=True), order) for n, p in ((1, one), (DEVICES, four))}
    quarter = _fit(one, _lenet(batchnorm=True), order[:, : BATCH // DEVICES])
    stats = {n: _stats(r.model()) for n, r in norm.items()}
    out["bn"] = _diff(stats[DEVICES], stats[1]) | {"count": int(stats[1].size)}
    out["bn_quarter"] = _diff(_stats(quarter.model()), stats[1])

    # two seeds together over 4 devices: seed 0 trains as alone on 1 device above
    models, x, y = [_lenet(0, batchnorm=True), _lenet(1, batchnorm=True)], *_data(256)
    orders = (order, epoch_batches(256, BATCH, 8, 1))
    batches = [TargetBatches.of(x, y, o, ["flip"], seed=1, parallel=four) for o in orders]
    together = fit_seeds(models, (), models[0].head.loss, batches, _data(96, seed=1), _config(order), 1e-2, 1e-2, 1e-4,
                         parallel=four)  # fmt: skip
    out["seeds_in"] = _specs(together[0].step.program.compiled.input_shardings[0][5:7])
    out["seeds_chunk"] = _specs([a.sharding for a in batches[0].chunk(0, 8, 8)])  # the gather and augment programs'
    out["seeds_bn"] = _diff(_stats(together[0].model()), stats[1])

    # one jitted function at one shape, its argument on 1 device and split over 4: two programs, the same FLOPs
    programs, double, ones = ProgramCache(), jax.jit(lambda a: a @ a.T), np.ones((8, 16), np.float32)
    (whole, _), (split_program, fresh) = programs.get(double, (), ones), programs.get(double, (), four.shard(ones, 0))
    out["programs"] = {
        "fresh": fresh,
        "distinct": whole is not split_program,
        "flops": [whole.flops, split_program.flops],
    }

    errors = []
    bad = parse_suite(tomllib.loads(SUITE) | {"train": {"batch_size": 30}}, registry_catalog(), "bad.toml")
    for attempt in (
        lambda: Runner(bad, cache, devices=DEVICES).plan(scenario),
        lambda: TargetBatches.of(x, y, epoch_batches(256, 30, 4, 0), parallel=four),
        lambda: _fit(four, _lenet(), epoch_batches(256, 30, 4, 0), data=one),
        lambda: DataParallel.of(DEVICES + 1),
    ):
        try:
            attempt()
            errors.append(None)
        except ValueError as exc:
            errors.append(str(exc))
    out["errors"] = errors
    return out


if __name__ == "__main__":  # the child: its figures as the last line of its output
    print(json.dumps(_measure(Path(sys.argv[1]))))


# ------------------------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``_measure``'s figures from a child process with 4 host devices (about 30 s on 2 CPU cores)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={DEVICES}".strip()
    cache = tmp_path_factory.mktemp("data-parallel")
    child = subprocess.run([sys.executable, __file__, str(cache)], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, XLA_FLAGS=flags))  # fmt: skip
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.splitlines()[-1])


# fp32 rounds each sum to 2**-24 of its size; 4 devices sum each gradient and batch statistic as 4 partial sums
# reduced across them, 1 device in one pass, so the two runs differ by a few units in the last place. Measured with
# SGD (``_config``): losses at most 2.4e-7 apart (about 1 ulp of a loss near 2), BatchNorm statistics 1.2e-7 (1 ulp
# of a variance near 1), predictions not at all. The tolerances allow about 8 ulps.
RTOL, ATOL = 1e-6, 1e-6
BN_ATOL = 4e-6  # jax before 0.10.2 (the dependency floor, 0.8.1) reduces the statistics apart by up to 3.2e-6


def test_four_devices_train_the_loss_curve_and_accuracy_of_one(measured: dict[str, Any]) -> None:
    """A scenario through ``Runner`` (plan, fit, evaluate, time) over 4 devices and over 1, same global batch."""
    curve = measured["curve"]
    assert curve["points"] == 6 and curve["rel"] <= RTOL and curve["abs"] <= ATOL, curve
    one, four = measured["test_accuracy"]
    assert one > 0.3 and abs(four - one) <= 0.005  # better than chance (10 classes); within 0.5 points
    assert measured["status"] == "passed"  # timed: the replayed train step and the inference over 4 devices
    assert measured["flops"][0] == measured["flops"][1]  # the partitioned program's FLOPs counted over its devices


def test_batchnorm_statistics_are_the_global_batchs(measured: dict[str, Any]) -> None:
    """The SPMD partitioner reduces BatchNorm's batch mean and variance over the devices: the running statistics
    after 8 steps match one device's, where a device's own quarter of each batch gives statistics thousands of
    tolerances away (what a per-device BatchNorm would keep)."""
    bn, quarter = measured["bn"], measured["bn_quarter"]
    assert bn["count"] == 2 * (6 + 120)  # the mean and variance of both BatchNorms
    assert bn["abs"] <= BN_ATOL and quarter["abs"] > 1e3 * ATOL, (bn, quarter)
    assert measured["seeds_bn"]["abs"] <= BN_ATOL  # seed 0 of two trained together over 4 devices: the same


def test_the_programs_are_partitioned_over_the_devices(measured: dict[str, Any]) -> None:
    """The train program takes each chunk split along its batch axis over the 4 devices, the states and optimizer
    state replicated, and returns them replicated; the gathered, augmented chunks and the inference batch come
    split. The programs cache keys on the shardings: a function's argument split over devices is another program,
    its FLOPs counted over all of them."""
    split, whole = [["(None, 'data')", DEVICES]], [["()", DEVICES]]  # PartitionSpecs as tuples of mesh axes
    assert measured["train_in"] == split and measured["chunk"] == split and measured["seeds_chunk"] == split
    assert measured["state_in"] == whole and measured["train_out"] == whole
    assert measured["seeds_in"] == [["(None, None, 'data')", DEVICES]]  # (seeds, k, batch, ...)
    assert measured["infer_in"] == [["('data',)", DEVICES]]
    programs = measured["programs"]
    assert programs["fresh"] and programs["distinct"] and programs["flops"][0] == programs["flops"][1] > 0


def test_predictions_over_three_devices_pad_the_batch_to_a_multiple_of_three(measured: dict[str, Any]) -> None:
    predicted = measured["predict3"]
    assert measured["padded3"] == 258 and SINGLE.padded(PREDICT_BATCH) == PREDICT_BATCH
    assert predicted["shape"] == [540, 10] and predicted["abs"] <= ATOL, predicted


def test_a_global_batch_that_does_not_divide_over_the_devices_is_refused(measured: dict[str, Any]) -> None:
    """By ``Runner.plan``, ``TargetBatches.of`` and ``fit``, each before compiling anything."""
    *batch, devices = measured["errors"]
    message = (
        "global batch 30 does not divide over 4 devices; choose a batch that is a multiple of 4 or "
        "--cnnbench-devices that divides 30"
    )
    assert batch == [message] * 3
    assert devices == "5 data-parallel devices asked for, but JAX sees 4"


def test_one_device_keeps_the_unsharded_programs() -> None:
    """None or 1 device is no mesh: nothing is placed, and the train and prediction programs are the jits the
    engine had before data parallelism, lowering to the same StableHLO with no sharding in it."""
    assert DataParallel.of(None) is SINGLE and DataParallel.of(1) is SINGLE
    assert SINGLE.replicated is None and SINGLE.batch(1) is None and SINGLE.padded(30) == 30
    tree = {"x": np.ones(3)}
    assert SINGLE.replicate(tree) is tree and SINGLE.shard(tree, 0) is tree
    SINGLE.check(30)
    assert apply_program() is apply_program(DataParallel.of(1))
    model, (x, y) = _lenet(), _data(64)  # the shapes of tests/test_train.py's lenet5 fits: their programs
    config = TrainConfig(steps=2, batch_size=16, eval_points=1)
    result = fit(model, (), model.head.loss, TargetBatches.of(x, y, epoch_batches(64, 16, 2, 0)), (x, y), config,
                 1e-3, 1e-3, 1e-4)  # fmt: skip
    step = result.step
    assert step is not None and step.parallel is SINGLE
    args = (result.graphdef, (), model.head.loss, "adamw", step.trainable, step.rest, step.opt_state, step.hyper,
            np.ones(len(step.xs), np.float32), step.xs, step.ys, np.int32(1))  # fmt: skip
    before = jax.jit(_train_steps, static_argnums=(0, 1, 2, 3), donate_argnums=(4, 5, 6))  # as it was
    text = train_program(False).lower(*args).as_text()
    assert text == before.lower(*args).as_text() and "sharding" not in text
    shardings = step.program.compiled.input_shardings[0]
    assert all(len(s.device_set) == 1 for s in jax.tree.leaves(shardings, is_leaf=lambda s: hasattr(s, "spec")))
