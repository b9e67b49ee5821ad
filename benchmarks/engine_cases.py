"""What the scripts in ``benchmarks/`` share: the models they time, the engine's own train step on each, and
rounds interleaved between the systems compared.

The models are lenet5, resnet18, mobilenetv2 and densenet121 at benchmark scale (the ``standard`` suite's input,
32×32 grey, and each arch's benchmark width) under the ``gap`` head with 10 classes, batch 64; and resnet50 at its
canonical 224×224×3 with 1,000 classes, batch 32. The engine's step is ``engine.train``'s program, the one every
scenario runs, here as ``scratch`` (every parameter trains) with the ``standard`` suite's recipe: AdamW, the base's
and the head's weight decay, the gradient clipped to the suite's global norm.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import jax
import numpy as np
from flax import nnx

from cnnbench.config.suite import load_suite
from cnnbench.config.training import TrainConfig
from cnnbench.engine.batches import StepBatches
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.heads import create_head
from cnnbench.engine.timing import calls_per_round
from cnnbench.engine.train import TrainStep, TransferModel, count, fit
from cnnbench.zoo import create_model, layers


@dataclass(frozen=True)
class Case:
    """One model of a table: the zoo's config and the batch it trains at."""

    arch: str
    img_size: int
    in_chans: int
    width: float
    classes: int
    batch: int

    @property
    def name(self) -> str:
        return f"{self.arch} {self.img_size}px×{self.in_chans} w{self.width:g} b{self.batch}"

    def batch_data(self) -> tuple[np.ndarray, np.ndarray]:
        """A fixed batch of random images and labels (seed 0)."""
        rng = np.random.default_rng(0)
        x = rng.standard_normal((self.batch, self.img_size, self.img_size, self.in_chans), dtype=np.float32)
        return x, rng.integers(0, self.classes, self.batch).astype(np.int32)


CASES = {
    "lenet5": Case("lenet5", 32, 1, 1.0, 10, 64),
    "resnet18": Case("resnet18", 32, 1, 0.25, 10, 64),
    "mobilenetv2": Case("mobilenetv2", 32, 1, 0.5, 10, 64),
    "densenet121": Case("densenet121", 32, 1, 0.25, 10, 64),
    "resnet50": Case("resnet50", 224, 3, 1.0, 1000, 32),
}


def standard_recipe() -> TrainConfig:
    """The ``standard`` suite's training config (AdamW with clipping), which every case trains with."""
    config = load_suite("standard", registry_catalog()).train.config(1)
    assert config.optimizer == "adamw", config.optimizer
    return config


@dataclass
class EngineStep:
    """The engine's compiled train step of a case and what building it told."""

    step: Callable[[], None]  # one more step on the batch, blocking until done
    params: int  # trainable parameters
    head_decay: float  # the head's weight decay
    compile_s: float  # the train program's, and the one-step fit's evaluation program's
    loss: float  # the loss on the batch after the first step: what tells two builds' numerics apart
    train_step: TrainStep  # the program and states ``step`` replays: call one or the other, not both


def use_xla_convolutions(model: nnx.Module) -> None:
    """Every convolution of ``model`` that the zoo routes through ``layers.patch_conv`` computed by XLA's
    ``lax.conv_general_dilated`` instead, for comparing the two."""
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Conv) and module.conv_general_dilated is layers.patch_conv:
            module.conv_general_dilated = jax.lax.conv_general_dilated


def engine_step(
    case: Case, config: TrainConfig, x: np.ndarray, y: np.ndarray, xla_convolutions: bool = False
) -> EngineStep:
    """The engine's train step of ``case`` on the batch ``x, y``: ``fit`` of one step compiles and runs it, and
    the step it leaves steps again. ``xla_convolutions``: every ungrouped convolution as XLA's, not the zoo's
    choice (``layers.patch_conv``), for comparing the two."""
    base = create_model(case.arch, num_classes=0, img_size=case.img_size, in_chans=case.in_chans, width=case.width)
    if xla_convolutions:
        use_xla_convolutions(base)
    head = create_head("gap", base.feature_shape, case.classes, seed=0)
    model = TransferModel.build(base, head, case.classes, seed=0)
    trainable = count(nnx.state(model, nnx.Param))
    one = replace(config, steps=1, eval_points=1, warmup_steps=0, batch_size=case.batch)
    fitted = fit(model, (), head.loss, StepBatches(lambda _: (x, y)), (x, y), one, lr_base=config.learning_rate,
                 lr_head=config.learning_rate, weight_decay_head=head.weight_decay)  # fmt: skip
    assert fitted.step is not None
    loss = fitted.curve[-1]["val_loss"]
    return EngineStep(fitted.step.replay(), trainable, head.weight_decay, fitted.compile_s, loss, fitted.step)


def interleaved(steps: dict[str, Callable[[], None]], n: int, min_round_s: float) -> dict[str, list[float]]:
    """Seconds per step of each system, ``n`` rounds in which every system runs in turn."""
    calls = {name: calls_per_round(fn, min_round_s) for name, fn in steps.items()}  # warm-up and calibration
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / calls[name])
    return times


def case_arguments(
    doc: str, default_archs: tuple[str, ...] = ("lenet5", "resnet18", "mobilenetv2")
) -> argparse.ArgumentParser:
    """A script's parser with the options interleaved rounds share: the archs, ``--rounds`` and ``--min-round-s``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("archs", nargs="*", default=list(default_archs), help=f"any of {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-round-s", type=float, default=1.0)
    return parser
