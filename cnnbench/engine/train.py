"""The one training loop every scenario and the pretraining run through (SPEC §3).

Models are split into a trainable state and the rest (frozen parameters, BatchNorm statistics, RNG state) and
stepped by pure functions compiled ahead of time, many steps per dispatch: one program runs a chunk of steps on
a stack of batches. Learning rates, weight decay and the clipping norm are optimizer *state*
(``optax.inject_hyperparams``) and the schedule is an argument, so scenarios that differ only in those numbers
share one compiled program. A group's seeds can train together: one program, vmapped over their stacked states
(``fit_seeds``). A fit can run data-parallel over several devices (``DataParallel``): the states replicated, each
batch split over the devices, the same program partitioned by XLA's SPMD partitioner.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cnnbench import profiling
from cnnbench.config.training import OPTIMIZERS, TrainConfig, TrainSettings, Watch
from cnnbench.engine.batches import Batches, chunk_steps
from cnnbench.engine.mesh import SINGLE, DataParallel
from cnnbench.engine.programs import PROGRAMS, Program, jitted
from cnnbench.zoo import ZooModel

# ----------------------------------------------------------------------------------------------- models


AUX_LOSS_WEIGHT = 0.3  # GoogLeNet's weight on each auxiliary classifier's loss (Szegedy et al. 2015)


class TransferModel(nnx.Module):
    """A convolutional base (a zoo model built with ``num_classes=0``) under a new head, and, for archs trained
    with auxiliary classifiers, fresh ones (``aux``) that add to the training loss and are dropped at inference."""

    def __init__(self, base: ZooModel, head: nnx.Module, aux: nnx.Module | None = None) -> None:
        self.base = base
        self.head = head
        self.aux = aux

    @classmethod
    def build(cls, base: ZooModel, head: nnx.Module, num_classes: int, seed: int) -> TransferModel:
        """``base`` under ``head``, with new auxiliary classifiers for ``num_classes`` where the arch has them."""
        return cls(base, head, base.new_aux_classifiers(num_classes, nnx.Rngs(seed)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.base.forward_features(x))

    def forward_train(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """Logits and the auxiliary logits (``()`` without auxiliary classifiers)."""
        if self.aux is None:
            return self(x), ()
        feats, taps = self.base.forward_features_aux(x)
        return self.head(feats), self.aux(taps)


class HeadOnly(nnx.Module):
    """A head trained alone on cached base features (the ``s3`` fast path); paths still start with ``head``."""

    def __init__(self, head: nnx.Module) -> None:
        self.head = head

    def __call__(self, features: jax.Array) -> jax.Array:
        return self.head(features)

    def forward_train(self, features: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        return self(features), ()


def trainable_filter(frozen: tuple[str, ...]) -> nnx.filterlib.Filter:
    """Parameters outside the frozen base stages: the only leaves the optimizer and the gradient see."""

    def is_frozen(path: tuple, _value: Any) -> bool:
        return len(path) > 1 and path[0] == "base" and path[1] in frozen

    return nnx.All(nnx.Param, nnx.Not(is_frozen))


def freeze(model: TransferModel, frozen: Sequence[str]) -> None:
    """Put the frozen stages in inference mode, so their BatchNorm statistics stay as pretrained."""
    for stage in frozen:
        getattr(model.base, stage).eval()


def count(state: nnx.State) -> int:
    """Number of scalars in a state."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(state)))


# -------------------------------------------------------------------------------------------- optimizer


def _param_groups(params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(lambda path, _: "base" if path[0].key == "base" else "head", params)


def _make_optimizer(
    name: str, lr_base: float, lr_head: float, wd_base: float, wd_head: float, clip_norm: float
) -> optax.GradientTransformation:
    def group(lr: float, wd: float) -> optax.GradientTransformation:
        if name == "adamw":
            return optax.adamw(lr, weight_decay=wd)
        return optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, momentum=0.9, nesterov=True))

    return optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.multi_transform({"base": group(lr_base, wd_base), "head": group(lr_head, wd_head)}, _param_groups),
    )


def optimizer(name: str) -> optax.GradientTransformation:
    """The optimizer ``name`` with every number in its state, so one compiled step serves all scenarios."""
    return _OPTIMIZERS[name]


_OPTIMIZERS = {
    name: optax.inject_hyperparams(partial(_make_optimizer, name))(
        lr_base=0.0, lr_head=0.0, wd_base=0.0, wd_head=0.0, clip_norm=1.0
    )
    for name in OPTIMIZERS
}


# ---------------------------------------------------------------------------------------------- programs


def _train_step(graphdef, frozen, loss, opt_name, trainable, rest, opt_state, hyper, x, y):
    def loss_fn(trainable, rest):  # copy=True: fresh Variables of this trace, so BatchNorm can update
        model = nnx.merge(graphdef, trainable, rest, copy=True)
        logits, aux = model.forward_train(x)  # losses in float32 whatever the compute dtype (mixed precision)
        value = loss(_f32(logits), y) + AUX_LOSS_WEIGHT * sum(loss(_f32(a), y) for a in aux)
        _, _, new_rest = nnx.split(model, trainable_filter(frozen), ...)  # type: ignore[misc]  # 2 filters: 2 states
        return value, new_rest

    (value, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, rest)
    opt_state.hyperparams.update(hyper)
    updates, opt_state = optimizer(opt_name).update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), new_rest, opt_state, value


def _train_steps(graphdef, frozen, loss, opt_name, trainable, rest, opt_state, hyper, lr_scales, xs, ys, n):
    """The first ``n`` steps of a chunk in one program: step i trains on ``xs[i], ys[i]`` with both learning
    rates times ``lr_scales[i]``; returns the states and each step's loss (rows from ``n`` on stay NaN)."""

    def body(i, carry):
        trainable, rest, opt_state, losses = carry
        h = dict(hyper, lr_base=hyper["lr_base"] * lr_scales[i], lr_head=hyper["lr_head"] * lr_scales[i])
        trainable, rest, opt_state, value = _train_step(
            graphdef, frozen, loss, opt_name, trainable, rest, opt_state, h, xs[i], ys[i]
        )
        return trainable, rest, opt_state, losses.at[i].set(value)

    losses = jnp.full(len(xs), jnp.nan, jnp.float32)
    return jax.lax.fori_loop(0, n, body, (trainable, rest, opt_state, losses))


def _train_steps_seeds(graphdef, frozen, loss, opt_name, trainable, rest, opt_state, hyper, lr_scales, xs, ys, n):
    """``_train_steps`` of S seeds in one program, vmapped over a leading seed axis of every argument but ``hyper``:
    seed s runs its first ``n[s]`` steps on its own batches and learning-rate scales. The loop runs until every seed
    is done and leaves a seed past its ``n`` as it was, so a seed that stopped early (``n`` 0) rides along
    untouched."""
    steps = partial(_train_steps, graphdef, frozen, loss, opt_name)
    return jax.vmap(steps, in_axes=(0, 0, 0, None, 0, 0, 0, 0))(trainable, rest, opt_state, hyper, lr_scales, xs, ys, n)


def _apply(graphdef, method, states, x):
    model = nnx.merge(graphdef, *states)
    return _f32(model(x) if method is None else getattr(model, method)(x))


def _f32(x: jax.Array) -> jax.Array:
    """``x`` as float32: logits and features leave a mixed-precision model in full precision."""
    return x.astype(jnp.float32)


def train_program(seeds: bool, parallel: DataParallel = SINGLE) -> Any:
    """The jitted train program, of one model or of several seeds' stacked states (``_train_steps_seeds``), its
    outputs (states, losses) replicated on ``parallel``'s devices; it takes the batches split along their batch
    axis and every other argument replicated, so the partitioner reduces the gradients and BatchNorm's statistics
    over the global batch."""
    fn = _train_steps_seeds if seeds else _train_steps
    return jitted(fn, parallel.replicated, static_argnums=(0, 1, 2, 3), donate_argnums=(4, 5, 6))


def apply_program(parallel: DataParallel = SINGLE) -> Any:
    """The jitted prediction program, its outputs replicated on ``parallel``'s devices so
    the host can read them; it takes the states replicated and a batch split along its first axis."""
    return jitted(_apply, parallel.replicated, static_argnums=(0, 1))


# ------------------------------------------------------------------------------------------------ config


@dataclass
class TrainStep:
    """The compiled train program and the states and arguments it can be called with again: the final model
    states, the optimizer state after the last step, the un-scheduled hyper-parameters and the first chunk of
    batches; all with a leading seed axis where ``seeds`` > 1 (a group's seeds trained in one program), and the
    devices they are on."""

    program: Program
    trainable: nnx.State
    rest: nnx.State
    opt_state: Any
    hyper: dict[str, Any]
    xs: Any
    ys: Any
    seeds: int = 1
    parallel: DataParallel = SINGLE

    @property
    def batch_size(self) -> int:
        return int(self.xs.shape[2 if self.seeds > 1 else 1])  # xs: ([seeds,] steps, batch, ...)

    @property
    def images_per_call(self) -> int:
        """Images one call of ``replay``'s step trains on: a batch for each seed."""
        return self.batch_size * self.seeds

    def replay(self) -> Callable[[], None]:
        """A function that runs one more step (a dispatch of the program for one step, of every seed) on the first
        batch and blocks until it is done: what a train-step timing calls, so the rate it gives includes a
        dispatch per step, which training spreads over a chunk. Each call donates the states it steps and keeps
        the new ones here, so it can be timed again (a group's items each time it); whatever shared the
        original buffers is spent."""
        k = self.xs.shape[1 if self.seeds > 1 else 0]
        lr_scales = self.parallel.replicate(jnp.ones((self.seeds, k) if self.seeds > 1 else k, jnp.float32))
        n = np.ones(self.seeds, np.int32) if self.seeds > 1 else np.int32(1)

        def step() -> None:
            self.trainable, self.rest, self.opt_state, losses = self.program.compiled(
                self.trainable, self.rest, self.opt_state, self.hyper, lr_scales, self.xs, self.ys, n
            )
            jax.block_until_ready(losses)

        return step


@dataclass
class FitResult:
    """What training left behind: the states, the validation curve and the compile/train times."""

    trainable: nnx.State
    rest: nnx.State
    graphdef: Any
    eval_graphdef: Any
    curve: list[dict] = field(default_factory=list)
    compile_s: float = 0.0
    train_s: float = 0.0
    time_to_final_s: float | None = None
    stopped_at: int | None = None  # the step early stopping ended training at (the best evaluation's state is kept)
    step: TrainStep | None = None

    def model(self) -> TransferModel | HeadOnly:
        """The trained model in inference mode."""
        return cast(TransferModel | HeadOnly, nnx.merge(self.eval_graphdef, self.trainable, self.rest))

    def after(self, first: FitResult, steps: int) -> FitResult:
        """This fit as the second phase of one run whose first phase was ``first``, of ``steps`` steps: one curve
        (the first phase's points marked ``phase="head"``, this one's steps and times shifted), summed compile and
        train times, and the step early stopping ended at counted from the start."""
        shifted = [dict(p, step=p["step"] + steps, elapsed_s=p["elapsed_s"] + first.train_s) for p in self.curve]
        return replace(
            self,
            curve=[dict(p, phase="head") for p in first.curve] + shifted,
            compile_s=first.compile_s + self.compile_s,
            train_s=self.train_s + first.train_s,
            time_to_final_s=None if self.time_to_final_s is None else self.time_to_final_s + first.train_s,
            stopped_at=None if self.stopped_at is None else steps + self.stopped_at,
        )


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class _Plateau:
    """optax's ``reduce_on_plateau`` fed the validation loss at each evaluation; ``scale`` multiplies the LR of
    the steps after it (the compiled step is unchanged: the LR is data)."""

    # reduce_on_plateau only scales updates; a scalar tree suffices
    _PROBE: ClassVar[dict[str, jax.Array]] = {"lr": jnp.zeros(())}

    def __init__(self, watch: Watch) -> None:
        self.transform = None
        if watch.plateau_patience:
            self.transform = optax.contrib.reduce_on_plateau(
                factor=watch.plateau_factor, patience=watch.plateau_patience
            )
            self.state = self.transform.init(self._PROBE)

    @property
    def scale(self) -> float:
        return 1.0 if self.transform is None else float(self.state.scale)

    def observe(self, val_loss: float) -> None:
        if self.transform is not None:
            _, self.state = self.transform.update(self._PROBE, self.state, value=val_loss)


def lr_multipliers(config: TrainConfig) -> np.ndarray:
    """Per-step LR multiplier: linear warm-up then cosine decay to zero (optax schedule)."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if config.warmup_steps else 1.0,
        peak_value=1.0,
        warmup_steps=config.warmup_steps,
        decay_steps=max(config.steps, config.warmup_steps + 1),
        end_value=0.0,
    )
    return np.asarray(jax.vmap(schedule)(jnp.arange(config.steps)), dtype=np.float32)


def epoch_batches(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) indices: each pass over the data is a fresh permutation; batches never change shape."""
    rng = np.random.default_rng(seed)
    passes = -(-steps * batch_size // n)
    order = np.concatenate([rng.permutation(n) for _ in range(passes)])
    return order[: steps * batch_size].reshape(steps, batch_size)


PREDICT_BATCH = TrainSettings.infer_batch  # the default batch of prediction programs and of the timed inference


def predict(
    graphdef: Any,
    states: tuple,
    x: np.ndarray,
    batch_size: int = PREDICT_BATCH,
    method: str | None = None,
    parallel: DataParallel = SINGLE,
) -> tuple[np.ndarray, float]:
    """Outputs of the model (or of ``method``) on ``x`` in batches of ``batch_size`` (the last one padded);
    returns them and compile time. The model's states are passed as one state, however training split them, and
    every set is padded to the same batch, so a model's validation and test predictions and its deployed copy's
    timed inference (batch ``batch_size``) all run one compiled program. Over several devices each batch is split
    over them, ``batch_size`` rounded up to a multiple of their number (``DataParallel.padded``)."""
    graphdef, state = nnx.split(nnx.merge(graphdef, *states))
    state, batch_size = parallel.replicate(state), parallel.padded(batch_size)
    n = len(x)
    pad = -n % batch_size
    xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    program, fresh = PROGRAMS.get(apply_program(parallel), (graphdef, method), (state,),
                                  parallel.shard(xp[:batch_size], 0))  # fmt: skip
    outs = [np.asarray(program.compiled((state,), parallel.shard(xp[i : i + batch_size], 0)))
            for i in range(0, len(xp), batch_size)]  # fmt: skip
    return np.concatenate(outs)[:n], program.compile_s if fresh else 0.0


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((np.argmax(logits, -1) == y).mean())


def fit(
    model: nnx.Module,
    frozen: tuple[str, ...],
    loss: Callable,
    batches: Batches,
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    lr_base: float,
    lr_head: float,
    weight_decay_head: float,
    progress: Callable[[dict], None] | None = None,
    watch: Watch | None = None,
    *,
    parallel: DataParallel = SINGLE,
) -> FitResult:
    """Train ``model``'s non-frozen parameters for ``config.steps`` steps, evaluating on ``val`` along the way.

    The steps run in chunks of up to ``chunk_steps`` steps per dispatch of one compiled program, a chunk ending
    at each evaluation point; ``batches`` supplies each chunk's batches, so in-memory targets and the streamed
    source domain share this loop. ``parallel``: the devices each batch is split over (data parallel). Raises
    ``Diverged`` when the loss stops being finite.
    """
    (result,) = fit_seeds([model], frozen, loss, [batches], val, config, lr_base, lr_head, weight_decay_head,
                          progress, watch, parallel=parallel)  # fmt: skip
    if isinstance(result, Diverged):
        raise result
    return result


@dataclass
class _Lane:
    """One seed's side of a fit: its result so far, plateau, best evaluation (validation accuracy and copies of
    the states, for early stopping), the losses since its last evaluation, and whether it has stopped."""

    result: FitResult
    plateau: _Plateau
    best: tuple[float, Any] | None = None
    since_best: int = 0
    losses: list = field(default_factory=list)
    stopped: bool = False
    diverged: Diverged | None = None


def fit_seeds(
    models: Sequence[nnx.Module],
    frozen: tuple[str, ...],
    loss: Callable,
    batches: Sequence[Batches],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    lr_base: float,
    lr_head: float,
    weight_decay_head: float,
    progress: Callable[[dict], None] | None = None,
    watch: Watch | None = None,
    *,
    parallel: DataParallel = SINGLE,
    predict_batch: int = PREDICT_BATCH,
) -> list[FitResult | Diverged]:
    """``fit`` of one model per seed, each on its own ``batches``; several train together in one program
    (``train_program(seeds=True)``, vmapped over their stacked states), one alone in the single-model program.
    Over ``parallel``'s devices the states are replicated and every batch split along its batch axis; a global
    batch (``config.batch_size``) that does not split evenly raises ``ValueError`` before anything compiles.
    ``predict_batch``: the batch of the validation predictions (the test predictions' and the timed inference's).

    Each seed keeps its own curve, plateau, early stopping and divergence: a seed that stopped or diverged rides
    along untouched, and a diverged one is returned as its ``Diverged``. Every seed shares the training clock:
    its ``train_s`` and curve times are the group's wall time over the number of seeds, what training one of them
    cost; the first seed's ``compile_s`` counts the shared programs.
    """
    parallel.check(config.batch_size)
    seeds = len(models)
    together = seeds > 1
    splits: list[tuple[Any, nnx.State, nnx.State]] = []
    for model in models:
        model.train()
        if isinstance(model, TransferModel):
            freeze(model, frozen)
        graphdef, trainable, rest = nnx.split(model, trainable_filter(frozen), ...)  # type: ignore[misc]  # 2 filters: 2 states
        splits.append((graphdef, trainable, rest))
    graphdef = splits[0][0]  # the seeds' models differ only in their values
    eval_model = nnx.merge(*splits[0])
    eval_model.eval()
    eval_graphdef = nnx.graphdef(eval_model)
    opt = optimizer(config.optimizer)

    def pack(trees: Sequence[Any]) -> Any:  # the program's form of per-seed values: stacked, or the one seed's own
        return jax.tree.map(lambda *a: jnp.stack(a), *trees) if together else trees[0]

    def pack_batches(chunk: Sequence[tuple[Any, Any]]) -> tuple[Any, Any]:  # ([seeds,] k, batch, ...), batch split
        return parallel.shard((pack([x for x, _ in chunk]), pack([y for _, y in chunk])), 2 if together else 1)

    def lane_of(tree: Any, i: int) -> Any:
        return jax.tree.map(lambda a: a[i], tree) if together else tree

    trainable, rest = parallel.replicate((pack([t for _, t, _ in splits]), pack([r for _, _, r in splits])))
    opt_state = parallel.replicate(pack([opt.init(t) for _, t, _ in splits]))
    multipliers = lr_multipliers(config)
    static = (graphdef, frozen, loss, config.optimizer)
    hyper = {
        "lr_base": np.float32(lr_base),
        "lr_head": np.float32(lr_head),
        "wd_base": np.float32(config.weight_decay),
        "wd_head": np.float32(weight_decay_head),
        "clip_norm": np.float32(config.clip_norm),
    }
    eval_at = np.linspace(0, config.steps, config.eval_points + 1, dtype=int)[1:].tolist()
    k = chunk_steps(batches[0].batch_nbytes)
    ends = [0, *eval_at]
    chunks = [(s, min(s + k, end)) for begin, end in itertools.pairwise(ends) for s in range(begin, end, k)]
    compiled_before = PROGRAMS.seconds
    # the first chunk: compiles the programs gathering the batches if new
    xs0, ys0 = pack_batches([b.chunk(0, chunks[0][1], k) for b in batches])
    ones, counts = pack([np.ones(k, np.float32)] * seeds), pack([np.int32(k)] * seeds)
    program, _ = PROGRAMS.get(train_program(together, parallel), static, trainable, rest, opt_state, hyper, ones,
                              xs0, ys0, counts)  # fmt: skip
    watch = Watch() if watch is None else watch
    lanes = [_Lane(FitResult(t, r, graphdef, eval_graphdef), _Plateau(watch)) for _, t, r in splits]
    lanes[0].result.compile_s = PROGRAMS.seconds - compiled_before

    t0 = time.perf_counter()
    for start, stop in chunks:
        if all(lane.stopped for lane in lanes):
            break
        n = stop - start
        if start == 0:
            xs, ys = xs0, ys0
        else:
            xs, ys = pack_batches([b.chunk(start, n, k) for b in batches])
        lr_scales = pack([np.resize(multipliers[start:stop] * np.float32(lane.plateau.scale), k) for lane in lanes])
        steps = pack([np.int32(0 if lane.stopped else n) for lane in lanes])
        trainable, rest, opt_state, chunk_losses = program.compiled(
            trainable, rest, opt_state, hyper, lr_scales, xs, ys, steps
        )
        for i, lane in enumerate(lanes):
            if not lane.stopped:
                lane.losses.append((lane_of(chunk_losses, i), n))
        if stop not in eval_at:
            continue
        for i, lane in enumerate(lanes):
            if lane.stopped:
                continue
            train_loss = float(np.mean(np.concatenate([np.asarray(values)[:m] for values, m in lane.losses])))
            lane.losses = []
            if not np.isfinite(train_loss):
                lane.diverged, lane.stopped = Diverged(f"training loss became {train_loss} at step {stop}"), True
                continue
            states = (lane_of(trainable, i), lane_of(rest, i))
            with profiling.phase("evaluate"):
                logits, compile_s = predict(eval_graphdef, states, val[0], predict_batch, parallel=parallel)
            t_eval = time.perf_counter()
            lanes[0].result.compile_s += compile_s
            t0 += compile_s  # the training clock leaves out compiling the validation program (counted in compile_s)
            point = {
                "step": stop,
                "train_loss": train_loss,
                "val_loss": float(loss(logits, val[1])),
                "val_accuracy": accuracy(logits, val[1]),
                "lr_scale": float(lane.plateau.scale),
                "elapsed_s": (t_eval - t0) / seeds,
            }
            lane.result.curve.append(point)
            if progress is not None:
                progress(dict(point, steps=config.steps))
            lane.plateau.observe(point["val_loss"])
            if watch.early_stopping:
                if lane.best is None or point["val_accuracy"] > lane.best[0]:
                    # copies: the compiled step donates (and so invalidates) the buffers it is given
                    lane.best, lane.since_best = (point["val_accuracy"], jax.tree.map(jnp.copy, states)), 0
                else:
                    lane.since_best += 1
                if lane.since_best >= watch.early_stopping and stop < config.steps:
                    lane.result.stopped_at, lane.stopped = stop, True
    train_s = (time.perf_counter() - t0) / seeds
    step = TrainStep(program, trainable, rest, opt_state, dict(hyper), xs0, ys0, seeds, parallel)
    return [_finish(lane, lane.best[1] if lane.best else (lane_of(trainable, i), lane_of(rest, i)), train_s, step)
            for i, lane in enumerate(lanes)]  # fmt: skip


def _finish(lane: _Lane, states: tuple[Any, Any], train_s: float, step: TrainStep) -> FitResult | Diverged:
    """A lane's result: its final (or best) states, training time and the time it reached its final accuracy."""
    if lane.diverged is not None:
        return lane.diverged
    result = lane.result
    result.trainable, result.rest = states
    result.train_s = train_s
    final = (
        max(p["val_accuracy"] for p in result.curve)
        if lane.best is not None
        else (result.curve[-1]["val_accuracy"] if result.curve else None)
    )
    result.time_to_final_s = next(
        (p["elapsed_s"] for p in result.curve if final is not None and p["val_accuracy"] >= final), None
    )
    result.step = step
    return result
