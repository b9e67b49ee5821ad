"""How a model is trained (SPEC §3): the budget, batch, optimizer and schedule, and what the loop watches on
validation. Plain data, read from a suite's ``[train]`` and ``[pretrain]`` tables; the engine runs it."""

from __future__ import annotations

from dataclasses import dataclass

OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained: budget, batch, optimizer and schedule (SPEC §3)."""

    steps: int
    batch_size: int = 64
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    finetune_lr_ratio: float = 0.1
    warmup_steps: int = 0
    clip_norm: float = 1.0
    weight_decay: float = 1e-4
    eval_points: int = 5


@dataclass(frozen=True)
class Watch:
    """What ``fit`` does with each validation evaluation besides recording it (SPEC §3, seed note 003); kept out
    of ``TrainConfig`` so pretraining keys and compiled programs do not depend on it."""

    early_stopping: int = 0  # stop after this many evaluations without a better validation accuracy (0: never)
    plateau_patience: int = 0  # cut the LR after this many evaluations without a lower validation loss (0: never)
    plateau_factor: float = 0.5  # ... by this factor (optax.contrib.reduce_on_plateau)


@dataclass(frozen=True)
class PretrainConfig:
    """The pretraining budget and recipe; part of the pretrained base's cache key."""

    train: TrainConfig
    seed: int = 0
    eval_size: int = 2000
