"""What a transfer suite costs before it runs: its model FLOPs, counted from the archs' jaxprs at the suite's
input size and width, and the time that takes at a measured peak.

A suite meant for accelerators (``requires_accelerator = true``, the built-in ``full``) is refused on a CPU with
this estimate unless forced: its scenarios would take hours or days there. The count is of multiply-accumulates
(``cnnbench.engine.macs``; 2 FLOPs each) of the base's forward pass per image, times the images each phase
pushes through it:

* pretraining: ``steps × batch`` images forward and backward (3 forward passes), plus its evaluation;
* a trained scenario (``s1``, ``s2``, ``scratch``): ``steps × batch`` images forward and backward — ``s2``'s
  frozen stages still run forward and pass gradients through, so this is an upper bound for it — plus a forward
  pass over the validation split at each evaluation and over the test split once;
* ``s3``: a forward pass over the target's three splits, once per arch and target (the head trains on those
  features, at negligible cost);
* the similarity measurement: forward passes of the pretrained and a random base over the target's training and
  validation images and 2,600 source images, once per arch and target.

An arch that starts from imported weights has neither pretraining nor similarity measurement. Heads, the optimizer
and data preparation are left out; time is FLOPs over the peak times :data:`EFFICIENCY`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from flax import nnx

from cnnbench.config.strategies import STRATEGIES
from cnnbench.config.suite import InputConfig, Suite
from cnnbench.engine.macs import count_macs
from cnnbench.engine.runner import Runner
from cnnbench.zoo import create_model

TRAIN_FORWARDS = 3  # a training image costs a forward pass and a backward pass of about twice its work
EFFICIENCY = 0.5  # of the measured peak a whole run sustains: on this CPU a benchmark step reached 40-70 %
SIMILARITY_SOURCE_IMAGES = 2 * 2600  # engine.runner.SOURCE_NCM_SIZE, through a pretrained and a random base


@dataclass(frozen=True)
class Cost:
    """A suite's model compute in FLOPs, by phase."""

    pretrain: float
    train: float
    features: float

    @property
    def total(self) -> float:
        return self.pretrain + self.train + self.features

    def seconds(self, peak_tflops: float) -> float:
        """Wall time at ``EFFICIENCY`` of a peak of ``peak_tflops``."""
        return self.total / (peak_tflops * 1e12 * EFFICIENCY)


def forward_flops(suite: Suite, arch: str) -> float:
    """FLOPs of one image through ``arch``'s base at the suite's input size and width (2 per MAC)."""
    build = partial(create_model, arch, num_classes=0, in_chans=suite.in_chans, img_size=suite.img_size,
                    width=suite.width(arch))  # fmt: skip
    base = nnx.eval_shape(build)  # abstract: nothing is allocated
    base.eval()
    return 2.0 * count_macs(base, (1, suite.img_size, suite.img_size, suite.in_chans))


def suite_cost(suite: Suite, sizes: dict[str, tuple[int, int, int]]) -> Cost:
    """The model FLOPs of every scenario of ``suite``; ``sizes``: per quadrant its target's (train, val, test)
    image counts."""
    pretrain = train = features = 0.0
    for arch in suite.archs:
        per_image = forward_flops(suite, arch)
        imported = arch in suite.weights  # imported weights: no pretraining, no similarity measurement
        config = suite.pretrain_config(arch)
        if not imported:
            pretrain += per_image * (TRAIN_FORWARDS * config.train.steps * config.train.batch_size + config.eval_size)
        for quadrant, binding in suite.quadrants.items():
            n_train, n_val, n_test = sizes[quadrant]
            runs = [s for s in suite.scenarios() if (s.arch, s.quadrant) == (arch, quadrant)]
            pretrained = not imported and any(STRATEGIES.get(s.strategy).pretrained for s in runs)
            on_features = any(STRATEGIES.get(s.strategy).on_features for s in runs)
            features += per_image * (
                (2 * (n_train + n_val) + SIMILARITY_SOURCE_IMAGES if pretrained else 0)
                + (n_train + n_val + n_test if on_features else 0)
            )
            batch = min(suite.train.batch_size, n_train)
            for s in runs:
                if not STRATEGIES.get(s.strategy).on_features:
                    evaluations = suite.train.eval_points * n_val + n_test
                    train += per_image * (TRAIN_FORWARDS * binding.steps * batch + evaluations)
    return Cost(pretrain, train, features)


def split_sizes(suite: Suite, cache_dir: Path) -> dict[str, tuple[int, int, int]]:
    """Per quadrant, the (train, val, test) image counts of its target, built at 32×32 grey: the splits are cut the
    same way at any size, and a small build costs a second where the suite's own size may take minutes."""
    runner = Runner(replace(suite, input=InputConfig(img_size=32, in_chans=1)), cache_dir)
    return {q: (ds.n_train, ds.n_val, ds.n_test) for q in suite.quadrants for ds in [runner.dataset(q)]}
