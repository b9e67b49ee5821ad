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
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from cnnbench.data.dataset import Dataset
from cnnbench.data.source import SourceConfig
from cnnbench.data.targets import build_target
from cnnbench.heads import create_head
from cnnbench.pretrain import ModelConfig, Pretrained, PretrainConfig, describe, load_into, load_or_pretrain
from cnnbench.strategies import STRATEGIES, frozen_stages
from cnnbench.suite import Scenario, Suite
from cnnbench.timing import Timer, summarize
from cnnbench.train import (
    PROGRAMS,
    Diverged,
    HeadOnly,
    TrainConfig,
    TransferModel,
    accuracy,
    count,
    epoch_batches,
    fit,
    predict,
)

DATA_SEED = 0  # the splits are fixed per suite, so every strategy sees the same images
INFER_BATCH = 256


@dataclass
class Features:
    """A frozen base's feature maps of a target's three splits, computed once (the ``s3`` fast path)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    compile_s: float
    seconds: float


class Runner:
    """Runs the scenarios of one suite, sharing datasets, pretrained bases and features between them."""

    def __init__(self, suite: Suite, cache_dir: Path, log: Callable[[str], None] = print) -> None:
        self.suite = suite
        self.cache_dir = Path(cache_dir)
        self.log = log
        self.source = SourceConfig(img_size=suite.img_size, in_chans=suite.in_chans)
        self._datasets: dict[str, Dataset] = {}
        self._pretrained: dict[str, Pretrained] = {}
        self._features: dict[tuple[str, str], Features] = {}

    # ------------------------------------------------------------------------------------ shared pieces

    def model_config(self, arch: str) -> ModelConfig:
        return ModelConfig(arch, self.suite.img_size, self.suite.in_chans, self.suite.width(arch))

    def dataset(self, quadrant: str) -> Dataset:
        """The target bound to ``quadrant``, converted to the suite's input format."""
        if quadrant not in self._datasets:
            binding = self.suite.quadrants[quadrant]
            self._datasets[quadrant] = build_target(
                binding.target, binding.n_train, DATA_SEED, self.suite.img_size, self.suite.in_chans
            )
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
            ds = self.dataset(quadrant)
            base = self.model_config(arch).create(0)
            load_into(base, self.pretrained(arch).state)
            base.eval()
            graphdef, state = nnx.split(base)
            t0 = time.perf_counter()
            outputs, compile_s = [], 0.0
            for x in (ds.x_train, ds.x_val, ds.x_test):
                feats, c = predict(graphdef, (state,), x, method="forward_features")
                outputs.append(feats)
                compile_s += c
            self._features[key] = Features(*outputs, compile_s, time.perf_counter() - t0 - compile_s)
        return self._features[key], fresh

    def target_info(self) -> list[dict]:
        """What the report says about each target that has been built (SPEC §8 ``targets``)."""
        return [
            {
                "name": self.suite.quadrants[q].target,
                "quadrant": q,
                "n_train": ds.n_train,
                "n_val": ds.n_val,
                "n_test": ds.n_test,
                "n_classes": ds.n_classes,
                "similarity": None,
                "conversion": ds.provenance,
            }
            for q, ds in sorted(self._datasets.items())
        ]

    # --------------------------------------------------------------------------------------- scenarios

    def run(self, scenario: Scenario, timer: Timer) -> dict:
        """Train and measure one scenario; returns its report record (status passed, diverged or error)."""
        record = {
            "id": scenario.id,
            "arch": scenario.arch,
            "strategy": scenario.strategy,
            "quadrant": scenario.quadrant,
            "head": scenario.head,
            "seed": scenario.seed,
            "target": self.suite.quadrants[scenario.quadrant].target,
            "status": "error",
            "error": None,
            "metrics": None,
            "curve": [],
            "frozen_stages": [],
        }
        try:
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
        ds = self.dataset(scenario.quadrant)
        config = TrainConfig(steps=suite.quadrants[scenario.quadrant].steps, **suite.train)
        config = replace(config, batch_size=min(config.batch_size, ds.n_train))
        base = self.model_config(scenario.arch).create(scenario.seed)
        if strategy.pretrained:
            load_into(base, self.pretrained(scenario.arch).state)
        frozen = frozen_stages(strategy, base.stage_names, suite.s2_freeze)
        head = create_head(scenario.head, base.feature_shape, ds.n_classes, seed=scenario.seed)
        ratio = config.finetune_lr_ratio if strategy.base_lr_scale is None else strategy.base_lr_scale
        compile_s = 0.0

        if strategy.freeze == "all":
            feats, fresh = self.features(scenario.arch, scenario.quadrant)
            model, fit_frozen = HeadOnly(head), ()
            x_train, x_val, x_test = feats.train, feats.val, feats.test
            compile_s += feats.compile_s if fresh else 0.0
        else:
            model, fit_frozen = TransferModel.build(base, head, ds.n_classes, scenario.seed), frozen
            x_train, x_val, x_test = ds.x_train, ds.x_val, ds.x_test

        batches = epoch_batches(len(x_train), config.batch_size, config.steps, scenario.seed)
        y_train = ds.y_train

        def next_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
            return x_train[batches[step]], y_train[batches[step]]

        fitted = fit(
            model, fit_frozen, head.loss, next_batch, (x_val, ds.y_val), config,
            lr_base=config.learning_rate * ratio, lr_head=config.learning_rate, weight_decay_head=head.weight_decay,
        )
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
            "timing": {"train_step": train_timing, "inference": infer_timing},
        }


def _peak_memory_bytes() -> int | None:
    """Peak device memory where the backend reports it (GPU, TPU); None on CPU, which does not."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")
