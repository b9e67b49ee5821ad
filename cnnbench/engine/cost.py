"""What each scenario of a suite costs, in seconds on the reference CPU, from measured train steps: the estimate
``--cnnbench-shard`` balances its parts by (``cnnbench.config.shard``).

``STEP_S`` is one train step of each zoo arch at benchmark scale (32×32 grey, the zoo's benchmark width, batch 64,
every parameter training), measured on the 2-core CPU the suites are sized for (``benchmarks/step_costs.py``). A
suite at another input size, width or batch scales it by the work per step: (size / 32)² × (width / benchmark
width)² × batch / 64, convolutions' multiply-accumulates growing with the pixels and with input × output channels.
An arch the table lacks costs the table's median step. From the step:

* a scenario that trains on images: its quadrant's steps, its evaluations (a forward pass, a third of a training
  image, over the validation split at each evaluation point and the test split once), and its timing (a few
  replayed steps and inference batches);
* a scenario that trains a head on cached features (``s3``): its timing only, the head's steps being negligible;
* shared by every pretrained scenario of an arch, paid once per part: pretraining its base, and the base's forward
  passes over every target (the features ``s3`` trains on, the similarity measurement).

Only the ratios matter for balancing, and they hold on other hardware about as well as the archs' relative step
times do; the seconds are this CPU's.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from cnnbench.config.scenario import Scenario
from cnnbench.config.shard import Unit
from cnnbench.config.strategies import STRATEGIES
from cnnbench.config.suite import Suite
from cnnbench.engine.estimate import SIMILARITY_SOURCE_IMAGES, TRAIN_FORWARDS, split_sizes

# seconds per train step at benchmark scale in the training loop, on the reference CPU (benchmarks/step_costs.py,
# 2026-12-02, nothing else running)
STEP_S: dict[str, float] = {
    "lenet5": 0.0164,
    "alexnet": 0.0128,
    "vgg11": 0.0373,
    "vgg16": 0.4028,
    "vgg19": 0.4197,
    "vgg11_bn": 0.0439,
    "vgg16_bn": 0.3460,
    "vgg19_bn": 0.3291,
    "googlenet": 0.0481,
    "googlenet_aux": 0.0598,
    "resnet18": 0.0355,
    "resnet34": 0.0602,
    "resnet50": 0.0846,
    "seresnet50": 0.0933,
    "xception": 0.1181,
    "densenet121": 0.1016,
    "mobilenetv2": 0.0779,
}
BENCH_IMG, BENCH_BATCH = 32, 64
SCENARIO_S = 0.3  # bookkeeping per scenario: building its model and head, its record, the report rewrite
TIMED_STEPS = 7  # train steps and inference batches the timing runs (calibration and 5 rounds)


def step_seconds(suite: Suite, arch: str, batch: int) -> float:
    """Estimated seconds of one train step of ``arch`` in ``suite`` at ``batch`` on the reference CPU."""
    measured = STEP_S.get(arch, statistics.median(STEP_S.values()))
    width = suite.width(arch) / suite.catalog.archs[arch].bench_width
    return measured * (suite.img_size / BENCH_IMG) ** 2 * width**2 * batch / BENCH_BATCH


def shard_units(
    suite: Suite, scenarios: Sequence[Scenario], sizes: Mapping[str, tuple[int, int, int]]
) -> tuple[list[Unit], dict[str, float]]:
    """The units ``--cnnbench-shard`` splits ``scenarios`` into — one per program (arch × strategy × head), so each
    gate group and each throughput verdict stays in one part — with their estimated seconds, and the seconds of
    the shared work they name (``base:<arch>``). ``sizes``: per quadrant its target's (train, val, test) counts."""
    own: dict[str, float] = {}
    members: dict[str, list[str]] = {}
    shared: dict[str, float] = {}
    needs: dict[str, set[str]] = {}
    for s in scenarios:
        seconds = scenario_seconds(suite, s, sizes)
        members.setdefault(s.program, []).append(s.id)
        own[s.program] = own.get(s.program, 0.0) + seconds
        needs.setdefault(s.program, set())
        if STRATEGIES.get(s.strategy).pretrained:
            key = f"base:{s.arch}"
            needs[s.program].add(key)
            if key not in shared:
                shared[key] = base_seconds(suite, s.arch, sizes)
    units = [Unit(p, tuple(members[p]), own[p], frozenset(needs[p])) for p in members]
    return units, shared


def scenario_seconds(suite: Suite, scenario: Scenario, sizes: Mapping[str, tuple[int, int, int]]) -> float:
    """Estimated seconds of ``scenario``'s own work (its training, evaluations and timing; not its base) on the
    reference CPU; ``sizes`` as in :func:`shard_units`."""
    strategy, binding = STRATEGIES.get(scenario.strategy), suite.quadrants[scenario.quadrant]
    n_train, n_val, n_test = sizes[scenario.quadrant]
    step = step_seconds(suite, scenario.arch, min(suite.train.batch_size, n_train))
    image = step_seconds(suite, scenario.arch, 1) / TRAIN_FORWARDS  # one image forward
    seconds = SCENARIO_S + TIMED_STEPS * (step + suite.train.infer_batch * image)
    if not strategy.on_features:
        seconds += binding.steps * step + (suite.train.eval_points * n_val + n_test) * image
    return seconds


def base_seconds(suite: Suite, arch: str, sizes: Mapping[str, tuple[int, int, int]], *, cached: bool = False) -> float:
    """Pretraining ``arch``'s base (nothing when it is ``cached``), and its forward passes over every target and
    the similarity's source images."""
    config = suite.pretrain_config(arch).train
    image = step_seconds(suite, arch, 1) / TRAIN_FORWARDS
    pretrain = 0.0 if cached else config.steps * step_seconds(suite, arch, config.batch_size)
    forwards = sum(3 * n_train + 2 * n_val + n_test for n_train, n_val, n_test in sizes.values())
    return pretrain + (forwards + SIMILARITY_SOURCE_IMAGES) * image


def run_seconds(
    suite: Suite, scenarios: Sequence[Scenario], sizes: Mapping[str, tuple[int, int, int]], cached: Collection[str]
) -> dict[str, float]:
    """Per scenario id, the estimated seconds it takes when ``scenarios`` run in this order: its own work, and for
    the first scenario of an arch that needs a pretrained base, the base's (pretraining it unless the arch is in
    ``cached``). The progress lines' ETA scales these by the run's measured pace."""
    seconds: dict[str, float] = {}
    based: set[str] = set()
    for s in scenarios:
        seconds[s.id] = scenario_seconds(suite, s, sizes)
        if STRATEGIES.get(s.strategy).pretrained and s.arch not in based:
            based.add(s.arch)
            seconds[s.id] += base_seconds(suite, s.arch, sizes, cached=s.arch in cached)
    return seconds


def run_estimate(suite: Suite, scenarios: Sequence[Scenario], cache_dir: Path) -> dict[str, float]:
    """:func:`run_seconds` of ``scenarios`` with their targets' sizes and the bases ``cache_dir`` holds already."""
    from cnnbench.engine.runner import Runner  # JAX: only a run that reports its progress asks

    runner = Runner(suite, cache_dir)
    cached = {arch for arch in dict.fromkeys(s.arch for s in scenarios) if runner.is_pretrained(arch)}
    return run_seconds(suite, scenarios, split_sizes(suite, cache_dir), cached)
