"""How a model is trained (SPEC §3): the budget, batch, optimizer and schedule, and what the loop watches on
validation. Plain data, read from a suite's ``[train]`` and ``[pretrain]`` tables; the engine runs it.

``TrainConfig`` and ``PretrainConfig`` are what the engine trains with (``PretrainConfig`` is part of the
pretrained base's cache key); ``TrainSettings`` and ``PretrainSettings`` are the suite tables they come from,
whose fields — keys, types, defaults and allowed values — the suite reader and its JSON Schema are driven by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from cnnbench.config.settings import Range, like, setting

OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained: budget, batch, optimizer and schedule (SPEC §3)."""

    steps: int
    batch_size: int = setting(64, minimum=1, doc="images per training step")
    optimizer: str = setting("adamw", choices=OPTIMIZERS, doc="the optimizer")
    learning_rate: float = setting(
        1e-3,
        within=Range(0, math.inf, True, True, "a positive learning rate"),
        doc="peak learning rate (of the new head when fine-tuning)",
    )
    finetune_lr_ratio: float = setting(
        0.1, minimum=0, doc="the pretrained base's learning rate as a multiple of the head's (s1, s2)"
    )
    warmup_steps: int = setting(0, minimum=0, doc="steps of linear warm-up before the cosine decay")
    clip_norm: float = setting(1.0, minimum=0, doc="global gradient-norm clip")
    weight_decay: float = setting(
        1e-4, minimum=0, doc="weight decay of the base (in pretraining, of the whole model; a head brings its own)"
    )
    eval_points: int = setting(5, minimum=1, doc="validation evaluations spread over the run")


@dataclass(frozen=True)
class Watch:
    """What ``fit`` does with each validation evaluation besides recording it (SPEC §3, seed note 003); kept out
    of ``TrainConfig`` so pretraining keys and compiled programs do not depend on it."""

    early_stopping: int = setting(
        0, minimum=0, doc="evaluations without a better validation accuracy before stopping (0: never)"
    )
    plateau_patience: int = setting(
        0, minimum=0, doc="evaluations without a lower validation loss before the LR is cut (0: never)"
    )
    plateau_factor: float = setting(
        0.5, within=Range(0, 1, True, True, "a factor"), doc="what a plateau multiplies the LR by (reduce_on_plateau)"
    )


@dataclass(frozen=True)
class PretrainConfig:
    """The pretraining budget and recipe; part of the pretrained base's cache key."""

    train: TrainConfig
    seed: int = 0
    eval_size: int = 2000


@dataclass(frozen=True)
class Recipe:
    """``TrainConfig`` without its budget: what a suite's ``[train]`` and ``[pretrain]`` tables share, with
    ``TrainConfig``'s defaults and constraints."""

    batch_size: int = like(TrainConfig, "batch_size")
    optimizer: str = like(TrainConfig, "optimizer")
    learning_rate: float = like(TrainConfig, "learning_rate")
    finetune_lr_ratio: float = like(TrainConfig, "finetune_lr_ratio")
    warmup_steps: int = like(TrainConfig, "warmup_steps")
    clip_norm: float = like(TrainConfig, "clip_norm")
    weight_decay: float = like(TrainConfig, "weight_decay")
    eval_points: int = like(TrainConfig, "eval_points")

    def train_config(self, steps: int) -> TrainConfig:
        """This recipe with a budget of ``steps``."""
        return TrainConfig(steps=steps, **{f.name: getattr(self, f.name) for f in fields(Recipe)})


@dataclass(frozen=True)
class TrainSettings(Recipe):
    """A suite's ``[train]`` table: how each scenario trains; the budget is its quadrant's ``steps``. (The table's
    ``s2_freeze`` default ends up in each ``QuadrantBinding``, its early-stopping keys in a ``Watch``.)"""

    head_first_steps: int = setting(
        0, minimum=0, doc="two-phase fine-tuning for s1/s2: steps of head-only training on the frozen base before "
        "unfreezing, out of the quadrant's steps (0: off)"
    )  # fmt: skip
    infer_batch: int = setting(
        256, minimum=1, doc="the batch of the predictions (validation, test, a frozen base's features) and of the "
        "timed inference; lower it for canonical-scale models on a CPU, where one batch of 256 can take seconds"
    )  # fmt: skip

    def config(self, steps: int) -> TrainConfig:
        """What a scenario with a budget of ``steps`` trains with."""
        return self.train_config(steps)


@dataclass(frozen=True)
class PretrainSettings(Recipe):
    """A suite's ``[pretrain]`` table: how each arch's base is pretrained on the source domain."""

    steps: int = setting(1000, minimum=1, doc="pretraining steps (an [arch.NAME] table's pretrain_steps overrides)")
    seed: int = setting(0, minimum=0, doc="seed of the pretrained base's initialisation and batches")
    eval_size: int = setting(2000, minimum=0, doc="source-domain images the pretrained base is evaluated on")

    def config(self, steps: int | None = None) -> PretrainConfig:
        """The pretraining of an arch whose suite overrides the budget with ``steps`` (None: this table's)."""
        return PretrainConfig(
            self.train_config(self.steps if steps is None else steps), seed=self.seed, eval_size=self.eval_size
        )
