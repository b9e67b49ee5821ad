"""Running one scenario end to end: data, base, strategy, head, training, evaluation, timing (SPEC §1, §3, §8).

``Runner`` owns what scenarios share — target datasets, pretrained bases, ``s3`` feature caches — and builds
each lazily, so a filtered run only pays for what it uses. ``Runner.run`` turns a ``Scenario`` into a report
record and never raises for a scenario's own failure: a diverged or crashed scenario is a record with its
status and error, and the caller decides how the pytest item fails.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from cnnbench.data.augment import augment
from cnnbench.data.dataset import Dataset
from cnnbench.data.source import SourceConfig, SourceDomain
from cnnbench.data.targets import build_target
from cnnbench.data.user import load_user_dataset
from cnnbench.engine.heads import create_head
from cnnbench.engine.pretrain import ModelConfig, Pretrained, PretrainConfig, describe, load_into, load_or_pretrain
from cnnbench.engine.similarity import THRESHOLD, Separability, Similarity, pooled, separability
from cnnbench.engine.similarity import summarize as summarize_similarity
from cnnbench.config.strategies import STRATEGIES, frozen_stages
from cnnbench.config.quadrants import placement, size_class
from cnnbench.config.scenario import Scenario
from cnnbench.config.suite import Suite
from cnnbench.engine.timing import Timer, summarize
from cnnbench.engine.train import (
    PROGRAMS,
    Diverged,
    HeadOnly,
    TrainConfig,
    TransferModel,
    Watch,
    accuracy,
    count,
    epoch_batches,
    fit,
    predict,
)

DATA_SEED = 0  # the splits are fixed per suite, so every strategy sees the same images
INFER_BATCH = 256
SOURCE_NCM_SIZE = 2600  # held-out source glyphs for the similarity's source gain: 25 per class to fit, 25 to test


@dataclass
class Features:
    """A frozen base's feature maps of a target's three splits, computed once (the ``s3`` fast path)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    global_pool: str  # how the arch's classifier consumes a map: "avg" or "flatten"
    compile_s: float
    seconds: float

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation maps as the vectors a head would see (for the similarity measurement)."""
        return pooled(self.train, self.global_pool), pooled(self.val, self.global_pool)


class Runner:
    """Runs the scenarios of one suite, sharing datasets, pretrained bases and features between them."""

    def __init__(
        self, suite: Suite, cache_dir: Path, log: Callable[[str], None] = print, datasets: dict[str, Dataset] | None = None
    ) -> None:
        """``datasets``: targets already loaded, by quadrant (they are used instead of building the binding's)."""
        self.suite = suite
        self.cache_dir = Path(cache_dir)
        self.log = log
        self.source = SourceConfig(img_size=suite.img_size, in_chans=suite.in_chans)
        self._datasets: dict[str, Dataset] = dict(datasets or {})
        self._dataset_errors: dict[str, Exception] = {}
        self._pretrained: dict[str, Pretrained] = {}
        self._features: dict[tuple[str, str], Features] = {}
        self._similarity: dict[tuple[str, str], Similarity] = {}
        self._source_separabilities: dict[str, Separability] = {}
        self._unmeasurable: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------------------------ shared pieces

    def model_config(self, arch: str) -> ModelConfig:
        return ModelConfig(arch, self.suite.img_size, self.suite.in_chans, self.suite.width(arch))

    def dataset(self, quadrant: str) -> Dataset:
        """The target bound to ``quadrant``, converted to the suite's input format. A user dataset that cannot be
        loaded raises its ``UserDataError`` again for every scenario of the quadrant without re-reading it."""
        if quadrant in self._dataset_errors:
            raise self._dataset_errors[quadrant]
        if quadrant not in self._datasets:
            binding, size, chans = self.suite.quadrants[quadrant], self.suite.img_size, self.suite.in_chans
            try:
                if binding.path is None:
                    ds = build_target(binding.target, binding.n_train, DATA_SEED, size, chans)
                else:
                    ds = load_user_dataset(binding.path, size, chans, DATA_SEED)
                    ds = ds if binding.n_train is None else ds.with_train_size(binding.n_train, DATA_SEED)
            except ValueError as exc:  # UserDataError, or an n_train the dataset cannot provide
                self._dataset_errors[quadrant] = exc
                self.log(f"target {binding.name} ({quadrant}) cannot be used: {exc}")
                raise
            self._datasets[quadrant] = ds
        return self._datasets[quadrant]

    def pretrained(self, arch: str) -> Pretrained:
        """The source-pretrained base of ``arch``, from the cache or trained now with progress lines."""
        if arch not in self._pretrained:
            options = dict(self.suite.pretrain)
            steps = self.suite.pretrain_steps.get(arch, options.pop("steps", 1000))
            seed, eval_size = options.pop("seed", 0), options.pop("eval_size", 2000)
            config = PretrainConfig(TrainConfig(steps=steps, **options), seed=seed, eval_size=eval_size)
            t0 = time.perf_counter()

            def progress(p: dict) -> None:
                left = (time.perf_counter() - t0) / p["step"] * (p["steps"] - p["step"])
                self.log(
                    f"pretraining {arch}: step {p['step']}/{p['steps']}  loss {p['train_loss']:.3f}  "
                    f"source accuracy {p['val_accuracy']:.1%}  ~{left:.0f} s left"
                )

            result = load_or_pretrain(self.model_config(arch), self.source, config, self.cache_dir, progress)
            self.log(describe(result, arch))
            self._pretrained[arch] = result
        return self._pretrained[arch]

    def features(self, arch: str, quadrant: str) -> tuple[Features, bool]:
        """Feature maps of the pretrained ``arch`` base on every split of ``quadrant``'s target; True if new."""
        key = (arch, quadrant)
        fresh = key not in self._features
        if fresh:
            self._features[key] = self._feature_maps(arch, quadrant, pretrained=True)
        return self._features[key], fresh

    def similarity(self, arch: str, quadrant: str) -> Similarity:
        """What share of its source-domain separability the pretrained ``arch`` base keeps on ``quadrant``'s
        target (``cnnbench.engine.similarity``)."""
        key = (arch, quadrant)
        if key not in self._similarity:
            ds = self.dataset(quadrant)
            trained = self.features(arch, quadrant)[0]
            random = self._feature_maps(arch, quadrant, pretrained=False)
            target = separability(trained.pooled(), random.pooled(), ds.y_train, ds.y_val)
            self._similarity[key] = Similarity(arch, target, self._source_separability(arch))
        return self._similarity[key]

    def _source_separability(self, arch: str) -> Separability:
        """NCM separability of held-out source images (half fit, half evaluated) by the pretrained and the
        random-init ``arch`` base."""
        if arch not in self._source_separabilities:
            x, y = (np.asarray(a) for a in SourceDomain(self.source).eval_set(SOURCE_NCM_SIZE))
            half = SOURCE_NCM_SIZE // 2
            vectors = []
            for pretrained in (True, False):
                maps, global_pool, _ = self._maps(arch, pretrained, (x[:half], x[half:]))
                vectors.append(tuple(pooled(m, global_pool) for m in maps))
            self._source_separabilities[arch] = separability(*vectors, y[:half], y[half:])
        return self._source_separabilities[arch]

    def _feature_maps(self, arch: str, quadrant: str, pretrained: bool) -> Features:
        ds = self.dataset(quadrant)
        t0 = time.perf_counter()
        maps, global_pool, compile_s = self._maps(arch, pretrained, (ds.x_train, ds.x_val, ds.x_test))
        return Features(*maps, global_pool, compile_s, time.perf_counter() - t0 - compile_s)

    def _maps(
        self, arch: str, pretrained: bool, batches: tuple[np.ndarray, ...]
    ) -> tuple[list[np.ndarray], str, float]:
        """Feature maps of each of ``batches`` by the source-pretrained or the seed-0 random-init base (in
        inference mode), the arch's global pooling, and the compile time spent."""
        base = self.model_config(arch).create(0)
        if pretrained:
            load_into(base, self.pretrained(arch).state)
        base.eval()
        graphdef, state = nnx.split(base)
        maps, compile_s = [], 0.0
        for x in batches:
            feats, c = predict(graphdef, (state,), x, method="forward_features")
            maps.append(feats)
            compile_s += c
        return maps, base.global_pool, compile_s

    def target_info(self) -> list[dict]:
        """What the report says about each target that has been built (SPEC §8 ``targets``), with its measured
        similarity over the archs that ran on it and, where that contradicts the suite's binding, a warning."""
        return [self._target_record(q, ds) for q, ds in sorted(self._datasets.items())]

    def _target_record(self, quadrant: str, ds: Dataset) -> dict:
        measured = [m for (_, q), m in sorted(self._similarity.items()) if q == quadrant]
        detail = summarize_similarity(measured) if measured else None
        record = {
            "name": self.suite.quadrants[quadrant].name,
            "quadrant": quadrant,
            "n_train": ds.n_train,
            "n_val": ds.n_val,
            "n_test": ds.n_test,
            "n_classes": ds.n_classes,
            "similarity": detail["score"] if detail else None,
            "similarity_detail": detail,
            "measured_quadrant": placement(ds.n_train, detail["similar"]) if detail else None,
            "conversion": ds.provenance,
        }
        if detail and record["measured_quadrant"] != quadrant:
            side = "similar" if detail["similar"] else "dissimilar"
            record["warning"] = (
                f"bound to {quadrant} but measured {side} (score {detail['score']:+.2f}, threshold "
                f"{detail['threshold']:g}, {len(measured)} arch(s)): with {ds.n_train} training images it belongs in "
                f"{record['measured_quadrant']}"
            )
        return record

    def _measure_similarity(self, scenario: Scenario) -> None:
        """Measure the target's similarity with this scenario's arch once, and warn if it contradicts the
        suite's binding; a failed measurement is logged and leaves the scenario alone."""
        key = (scenario.arch, scenario.quadrant)
        if key in self._similarity or key in self._unmeasurable:
            return
        try:
            self.similarity(*key)
        except Exception as exc:  # e.g. a base too weakly pretrained to measure with
            self._unmeasurable.add(key)
            if scenario.quadrant not in self._dataset_errors:  # dataset() has already said why
                self.log(f"similarity of {self.suite.quadrants[scenario.quadrant].name} not measured: {exc}")
            return
        target = self._target_record(scenario.quadrant, self.dataset(scenario.quadrant))
        m, size = self._similarity[key], size_class(target["n_train"])
        self.log(
            f"target {target['name']} ({scenario.quadrant}): {target['n_train']} training images ({size}), "
            f"similarity {m.score:+.2f} with {m.arch} (threshold {THRESHOLD:g}; mean over archs so far "
            f"{target['similarity']:+.2f}): measured {target['measured_quadrant']}"
        )
        if target.get("warning"):
            self.log(f"warning: target {target['name']}: {target['warning']}")

    # --------------------------------------------------------------------------------------- scenarios

    def run(self, scenario: Scenario, timer: Timer) -> dict:
        """Train and measure one scenario; returns its report record (status passed, diverged or error)."""
        record = {
            "id": scenario.id,
            **scenario.coordinates,
            "target": self.suite.quadrants[scenario.quadrant].name,
            "status": "error",
            "error": None,
            "metrics": None,
            "curve": [],
            "frozen_stages": [],
        }
        try:
            if STRATEGIES.get(scenario.strategy).pretrained:
                self._measure_similarity(scenario)
            record.update(self._run(scenario, timer))
            record["status"] = "passed"
        except Diverged as exc:
            record["status"], record["error"] = "diverged", str(exc)
        except Exception as exc:  # the scenario fails alone; the run and its report go on
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc()
        return record

    def _run(self, scenario: Scenario, timer: Timer) -> dict:
        suite, strategy = self.suite, STRATEGIES.get(scenario.strategy)
        ds, binding = self.dataset(scenario.quadrant), suite.quadrants[scenario.quadrant]
        config = TrainConfig(steps=binding.steps, **suite.train)
        config = replace(config, batch_size=min(config.batch_size, ds.n_train))
        base = self.model_config(scenario.arch).create(scenario.seed)
        if strategy.pretrained:
            load_into(base, self.pretrained(scenario.arch).state)
        cut = binding.s2_freeze if scenario.freeze is None else scenario.freeze
        frozen = frozen_stages(strategy, base.stage_names, cut)
        head = create_head(scenario.head, base.feature_shape, ds.n_classes, seed=scenario.seed)
        ratio = config.finetune_lr_ratio if strategy.base_lr_scale is None else strategy.base_lr_scale
        compile_s = 0.0

        augmentations: tuple[str, ...] = ()
        if strategy.freeze == "all":  # the head trains on cached features of the un-augmented images
            feats, fresh = self.features(scenario.arch, scenario.quadrant)
            model, fit_frozen = HeadOnly(head), ()
            x_train, x_val, x_test = feats.train, feats.val, feats.test
            compile_s += feats.compile_s if fresh else 0.0
        else:
            model, fit_frozen = TransferModel.build(base, head, ds.n_classes, scenario.seed), frozen
            x_train, x_val, x_test = ds.x_train, ds.x_val, ds.x_test
            augmentations = binding.augment

        batches = epoch_batches(len(x_train), config.batch_size, config.steps, scenario.seed)
        y_train = ds.y_train

        def next_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
            x = x_train[batches[step]]
            if augmentations:
                x = augment(x, augmentations, np.random.default_rng((scenario.seed, step)))
            return x, y_train[batches[step]]

        train = partial(
            fit, loss=head.loss, val=(x_val, ds.y_val), lr_head=config.learning_rate,
            weight_decay_head=head.weight_decay, watch=Watch(**suite.watch),
        )
        head_first = suite.head_first_steps if strategy.pretrained and strategy.freeze != "all" else 0
        if head_first:  # two-phase: the head alone on the frozen base, then unfreeze at the low base LR
            first = train(model, tuple(base.stage_names), next_batch=next_batch,
                          config=replace(config, steps=head_first), lr_base=0.0)
            model, compile_s = first.model(), compile_s + first.compile_s
        fitted = train(
            model, fit_frozen, next_batch=lambda step: next_batch(head_first + step),
            config=replace(config, steps=config.steps - head_first), lr_base=config.learning_rate * ratio,
        )
        if head_first:
            fitted.curve = [dict(p, phase="head") for p in first.curve] + [
                dict(p, step=p["step"] + head_first, elapsed_s=p["elapsed_s"] + first.train_s) for p in fitted.curve
            ]
            fitted.train_s += first.train_s
            if fitted.time_to_final_s is not None:
                fitted.time_to_final_s += first.train_s
        compile_s += fitted.compile_s
        logits, c = predict(fitted.eval_graphdef, (fitted.trainable, fitted.rest), x_test)
        compile_s += c
        test_accuracy = accuracy(logits, ds.y_test)

        # The deployed model is always base + head: s3's head trained on cached features, and auxiliary
        # classifiers are dropped at inference.
        trained = fitted.model()
        full = TransferModel(base if strategy.freeze == "all" else trained.base, trained.head)
        full.eval()
        graphdef, state = nnx.split(full)
        xb = np.resize(ds.x_test, (INFER_BATCH, *ds.x_test.shape[1:]))
        infer, fresh = PROGRAMS.get("apply", (graphdef, None), (state,), xb)
        compile_s += infer.compile_s if fresh else 0.0
        infer_stats = timer.inference(lambda: jax.block_until_ready(infer.compiled((state,), xb)))

        step = fitted.step_program
        carry = [fitted.trainable, fitted.rest, fitted.step_args[0]]
        hyper, x0, y0 = fitted.step_args[1:]

        def train_step() -> None:
            carry[0], carry[1], carry[2], loss = step.compiled(*carry, hyper, x0, y0)
            jax.block_until_ready(loss)

        train_stats = timer.train_step(train_step)
        train_timing, infer_timing = summarize(train_stats, len(x0)), summarize(infer_stats, INFER_BATCH)
        params_total = count(nnx.state(full, nnx.Param))
        return {
            "metrics": {
                "test_accuracy": test_accuracy,
                "val_accuracy": fitted.curve[-1]["val_accuracy"] if fitted.curve else None,
                "transfer_gain": None,
                "train_images_per_s": train_timing["images_per_s"],
                "infer_images_per_s": infer_timing["images_per_s"],
                "compile_s": compile_s,
                "train_s": fitted.train_s,
                "time_to_final_s": fitted.time_to_final_s,
                "params_trainable": count(fitted.trainable),
                "params_total": params_total,
                "gflops": infer.flops / INFER_BATCH / 1e9 if infer.flops else None,
                "peak_memory_bytes": _peak_memory_bytes(),
            },
            "curve": fitted.curve,
            "frozen_stages": list(frozen),
            "augment": list(augmentations),
            "head_first_steps": head_first,
            "stopped_at": None if fitted.stopped_at is None else head_first + fitted.stopped_at,
            "timing": {"train_step": train_timing, "inference": infer_timing},
        }


def _peak_memory_bytes() -> int | None:
    """Peak device memory where the backend reports it (GPU, TPU); None on CPU, which does not."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")
