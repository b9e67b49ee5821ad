"""Transfer strategies (SPEC §3): what a scenario initialises from, what it freezes and at what learning rate.

A strategy is data, not a code path: the one training loop reads these fields. ``s3`` trains the head on
features that the frozen base computes once per dataset, the fast path SPEC §3 expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cnnbench.registry import Registry


@dataclass(frozen=True)
class Strategy:
    """One way of reusing a pretrained base; ``freeze`` is "none", "lower" (configurable) or "all"."""

    name: str
    pretrained: bool
    freeze: str
    base_lr_scale: float | None  # multiplier on the head LR for the base; None: use the suite's fine-tune ratio
    summary: str
    on_features: bool = False  # the head trains alone on features the frozen base computes once per target


STRATEGIES: Registry[Strategy] = Registry("strategy")

for _s in (
    Strategy("s1", True, "none", None, "fine-tune the whole pretrained base and the new head"),
    Strategy("s2", True, "lower", None, "freeze the lower stages, fine-tune the upper ones and the head"),
    Strategy("s3", True, "all", 0.0, "freeze the whole base, train the head on its features", on_features=True),
    Strategy("scratch", False, "none", 1.0, "random init, train everything (the control)"),
):
    STRATEGIES.register(_s.name)(_s)


def frozen_stages(
    strategy: Strategy, stage_names: Sequence[str], lower: int | float | str | None = None
) -> tuple[str, ...]:
    """The stages ``strategy`` freezes on a base with ``stage_names``.

    ``lower`` says where ``s2`` cuts: a stage count, the name of the last frozen stage, a fraction of the stages
    (rounded down, at least one), or None for the lower half.
    """
    stages = tuple(stage_names)
    if strategy.freeze == "none":
        return ()
    if strategy.freeze == "all":
        return stages
    if lower is None or isinstance(lower, float):
        count = max(1, int(len(stages) * (0.5 if lower is None else lower)))
    elif isinstance(lower, str):
        if lower not in stages:
            raise ValueError(f"s2 freeze point {lower!r} is not a stage; stages: {', '.join(stages)}")
        count = stages.index(lower) + 1
    else:
        if not 0 <= lower <= len(stages):
            raise ValueError(f"s2 freezes {lower} stages but the base has {len(stages)}: {', '.join(stages)}")
        count = lower
    return stages[:count]
