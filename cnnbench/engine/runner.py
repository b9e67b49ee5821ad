"""Running one scenario end to end: data, base, strategy, head, training, evaluation, timing (SPEC §1, §3, §8).

``Runner`` owns what scenarios share — target datasets, pretrained bases, ``s3`` feature caches — and builds
each lazily, so a filtered run only pays for what it uses. ``Runner.run`` takes a ``Scenario`` through four named
steps — ``plan`` (what it trains with), ``fit`` (one or two phases), ``evaluate`` (test accuracy, the deployed
model) and ``time`` (train step and inference) — and returns its ``Outcome``. It never raises for a scenario's own
failure: a diverged or crashed scenario is an outcome with its status and error, and the caller decides how the
pytest item fails.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from cnnbench import profiling
from cnnbench.config.quadrants import size_class
from cnnbench.config.scenario import Scenario
from cnnbench.config.strategies import STRATEGIES, Strategy, frozen_stages
from cnnbench.config.suite import Suite
from cnnbench.data.dataset import Dataset
from cnnbench.data.source import SourceConfig, SourceDomain
from cnnbench.data.targets import build_target
from cnnbench.data.user import load_user_dataset
from cnnbench.engine import imported, kept
from cnnbench.engine.batches import TargetBatches
from cnnbench.engine.heads import Head, create_head
from cnnbench.engine.integrity import SUMS
from cnnbench.engine.measurement import CurvePoint, Measurement, Metrics, Outcome, TargetRecord, Timing
from cnnbench.engine.mesh import SINGLE, DataParallel
from cnnbench.engine.precision import apply_precision
from cnnbench.engine.pretrain import ModelConfig, Pretrained, describe, entry_path, load_into, load_or_pretrain
from cnnbench.engine.programs import PROGRAMS, Program
from cnnbench.engine.separability_cache import SeparabilityCache, data_digest
from cnnbench.engine.similarity import THRESHOLD, Separability, Similarity, pooled, separability
from cnnbench.engine.timing import Timer, summarize
from cnnbench.engine.train import (
    Diverged,
    FitResult,
    HeadOnly,
    TrainConfig,
    TransferModel,
    Watch,
    accuracy,
    apply_program,
    count,
    epoch_batches,
    fit_seeds,
    predict,
)
from cnnbench.weights import Preprocessing, WeightsError
from cnnbench.weights.convert import reference_source
from cnnbench.zoo import ZooModel

DATA_SEED = 0  # the splits are fixed per suite, so every strategy sees the same images
SOURCE_NCM_SIZE = 2600  # held-out source glyphs for the similarity's source gain: 25 per class to fit, 25 to test

log = logging.getLogger(__name__)


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
        self,
        suite: Suite,
        cache_dir: Path,
        datasets: dict[str, Dataset] | None = None,
        *,
        devices: int | None = None,
    ) -> None:
        """``datasets``: targets already loaded, by quadrant (they are used instead of building the binding's).
        ``devices``: how many devices every scenario trains, evaluates and is timed on, data parallel (None: one,
        nothing sharded); pretraining stays on one device, so a cached base serves every device count."""
        self.suite = suite
        self.parallel = DataParallel.of(devices)
        self.cache_dir = Path(cache_dir)
        self.source = SourceConfig(img_size=suite.img_size, in_chans=suite.in_chans)
        self._datasets: dict[str, Dataset] = dict(datasets or {})
        self._normalised: dict[tuple[str, Preprocessing], Dataset] = {}  # by quadrant and imported weights' input
        self._normalisations: dict[str, dict[str, str]] = {}  # by quadrant: each imported arch's, for the report
        self._imported: dict[str, imported.Entry] = {}  # by arch: the meta of its imported weights
        self._dataset_errors: dict[str, Exception] = {}
        self._pretrained: dict[str, Pretrained] = {}
        self._features: dict[tuple[str, str], Features] = {}
        self._similarity: dict[tuple[str, str], Similarity] = {}
        self._source_separabilities: dict[str, Separability] = {}
        self._separabilities = SeparabilityCache(self.cache_dir)
        self._unmeasurable: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------------------------ shared pieces

    def model_config(self, arch: str) -> ModelConfig:
        return ModelConfig(arch, self.suite.img_size, self.suite.in_chans, self.suite.width(arch))

    def dataset(self, quadrant: str, arch: str | None = None) -> Dataset:
        """The target bound to ``quadrant``, converted to the suite's input format, and for an ``arch`` that starts
        from imported weights normalised as they expect (every strategy of that arch sees the same images). A user
        dataset that cannot be loaded raises its ``UserDataError`` again for every scenario of the quadrant without
        re-reading it."""
        if arch in self.suite.weights:
            preprocessing = self._imported_entry(arch).preprocessing
            key = (quadrant, preprocessing)
            if key not in self._normalised:
                ds = self.dataset(quadrant)
                self._normalised[key] = ds.normalised(preprocessing.mean, preprocessing.std)
            self._normalisations.setdefault(quadrant, {})[arch] = preprocessing.describe()
            return self._normalised[key]
        if quadrant in self._dataset_errors:
            raise self._dataset_errors[quadrant]
        if quadrant not in self._datasets:
            binding, size, chans = self.suite.quadrants[quadrant], self.suite.img_size, self.suite.in_chans
            try:
                with profiling.phase("data"):
                    if binding.path is None:
                        ds = build_target(binding.target, binding.n_train, DATA_SEED, size, chans)
                    else:
                        ds = load_user_dataset(binding.path, size, chans, DATA_SEED)
                        ds = ds if binding.n_train is None else ds.with_train_size(binding.n_train, DATA_SEED)
            except ValueError as exc:  # UserDataError, or an n_train the dataset cannot provide
                self._dataset_errors[quadrant] = exc
                log.warning(f"target {binding.name} ({quadrant}) cannot be used: {exc}")
                raise
            self._datasets[quadrant] = ds
        return self._datasets[quadrant]

    def _imported_entry(self, arch: str) -> imported.Entry:
        """The meta of the imported weights the suite names for ``arch``, checked against their digests once."""
        if arch not in self._imported:
            entry = imported.find(self.suite.weights[arch], self.cache_dir)
            if entry.arch != arch:
                raise WeightsError(f"weights {entry.tag!r} are for {entry.arch}, not {arch}")
            self._imported[arch] = entry
        return self._imported[arch]

    def is_pretrained(self, arch: str) -> bool:
        """Whether ``arch``'s base is in the cache already (loading it costs seconds, building it minutes)."""
        if arch in self.suite.weights:
            return True
        config = self.suite.pretrain_config(arch)
        return (entry_path(self.model_config(arch), self.source, config, self.cache_dir) / SUMS).is_file()

    def pretrained(self, arch: str) -> Pretrained:
        """The source-pretrained base of ``arch``: the imported weights the suite names for it, or the glyph-pretrained
        base from the cache or trained now with progress lines."""
        if arch not in self._pretrained and arch in self.suite.weights:
            entry = self._imported_entry(arch)
            with profiling.phase("pretrain", inclusive=True):
                state = imported.load_state(entry, self.cache_dir)
            log.info(f"pretrained {arch}: imported weights {entry.tag} ({entry.source}, from {entry.file})")
            path = imported.weights_dir(self.cache_dir) / entry.tag  # no source accuracy: they never saw the glyphs
            self._pretrained[arch] = Pretrained(imported.base_state(state), float("nan"), 0.0, True, path)
        if arch not in self._pretrained:
            config = self.suite.pretrain_config(arch)
            t0 = time.perf_counter()

            def progress(p: dict) -> None:
                left = (time.perf_counter() - t0) / p["step"] * (p["steps"] - p["step"])
                log.info(
                    f"pretraining {arch}: step {p['step']}/{p['steps']}  loss {p['train_loss']:.3f}  "
                    f"source accuracy {p['val_accuracy']:.1%}  ~{left:.0f} s left"
                )

            with profiling.phase("pretrain", inclusive=True):
                result = load_or_pretrain(self.model_config(arch), self.source, config, self.cache_dir, progress)
            log.info(describe(result, arch))
            self._pretrained[arch] = result
        return self._pretrained[arch]

    def features(self, arch: str, quadrant: str) -> tuple[Features, bool]:
        """Feature maps of the pretrained ``arch`` base on every split of ``quadrant``'s target; True if new."""
        key = (arch, quadrant)
        fresh = key not in self._features
        if fresh:
            with profiling.phase("features"):
                self._features[key] = self._feature_maps(arch, quadrant, pretrained=True)
        return self._features[key], fresh

    def similarity(self, arch: str, quadrant: str) -> Similarity:
        """What share of its source-domain separability the pretrained ``arch`` base keeps on ``quadrant``'s
        target (``cnnbench.engine.similarity``); measured once per base, precision and target, then read from the
        cache (``SeparabilityCache``)."""
        if arch in self.suite.weights:
            raise ValueError(f"{arch} starts from imported weights: no similarity to cnnbench's source domain")
        key = (arch, quadrant)
        if key not in self._similarity:
            ds = self.dataset(quadrant)
            with profiling.phase("similarity"):
                target = self._separabilities.get(
                    self.pretrained(arch).path.name,
                    self.suite.precision,
                    data_digest(ds.x_train, ds.y_train, ds.x_val, ds.y_val),
                    lambda: self._target_separability(arch, quadrant),
                )
                self._similarity[key] = Similarity(arch, target, self._source_separability(arch))
        return self._similarity[key]

    def _target_separability(self, arch: str, quadrant: str) -> Separability:
        """NCM separability of the target's validation images (class means from its training images) by the
        pretrained and the random-init ``arch`` base."""
        ds = self.dataset(quadrant)
        trained = self.features(arch, quadrant)[0]
        random = self._feature_maps(arch, quadrant, pretrained=False)
        return separability(trained.pooled(), random.pooled(), ds.y_train, ds.y_val)

    def _source_separability(self, arch: str) -> Separability:
        """NCM separability of held-out source images (half fit, half evaluated) by the pretrained and the
        random-init ``arch`` base."""
        if arch not in self._source_separabilities:

            def measure() -> Separability:
                x, y = (np.asarray(a) for a in SourceDomain(self.source).eval_set(SOURCE_NCM_SIZE))
                half = SOURCE_NCM_SIZE // 2
                vectors = []
                for pretrained in (True, False):
                    maps, global_pool, _ = self._maps(arch, pretrained, (x[:half], x[half:]))
                    vectors.append(tuple(pooled(m, global_pool) for m in maps))
                (trained, random) = vectors
                return separability(trained, random, y[:half], y[half:])

            # the source images are a function of the source config, which the base's cache entry name covers
            name = self.pretrained(arch).path.name
            data = f"source{SOURCE_NCM_SIZE}"
            self._source_separabilities[arch] = self._separabilities.get(name, self.suite.precision, data, measure)
        return self._source_separabilities[arch]

    def _feature_maps(self, arch: str, quadrant: str, pretrained: bool) -> Features:
        ds = self.dataset(quadrant, arch)
        t0 = time.perf_counter()
        maps, global_pool, compile_s = self._maps(arch, pretrained, (ds.x_train, ds.x_val, ds.x_test))
        train, val, test = maps
        return Features(train, val, test, global_pool, compile_s, time.perf_counter() - t0 - compile_s)

    def _maps(
        self, arch: str, pretrained: bool, batches: tuple[np.ndarray, ...]
    ) -> tuple[list[np.ndarray], str, float]:
        """Feature maps of each of ``batches`` by the source-pretrained or the seed-0 random-init base (in
        inference mode, at the suite's precision), the arch's global pooling, and the compile time spent."""
        base = self.model_config(arch).create(0)
        if pretrained:
            load_into(base, self.pretrained(arch).state)
        apply_precision(base, self.suite.precision)
        base.eval()
        graphdef, state = nnx.split(base)
        maps, compile_s = [], 0.0
        for x in batches:
            feats, c = predict(graphdef, (state,), x, self.suite.train.infer_batch, method="forward_features",
                               parallel=self.parallel)  # fmt: skip
            maps.append(feats)
            compile_s += c
        return maps, base.global_pool, compile_s

    def target_info(self) -> list[TargetRecord]:
        """What the report says about each target that has been built (SPEC §8 ``targets``), with its measured
        similarity over the archs that ran on it and, where that contradicts the suite's binding, a warning."""
        return [self._target_record(q, ds) for q, ds in sorted(self._datasets.items())]

    def _target_record(self, quadrant: str, ds: Dataset) -> TargetRecord:
        measured = [m for (_, q), m in sorted(self._similarity.items()) if q == quadrant]
        normalised = self._normalisations.get(quadrant)
        conversion = ds.provenance | ({"imported_weights": normalised} if normalised else {})
        record = TargetRecord(self.suite.quadrants[quadrant].name, quadrant, ds.n_train, ds.n_val, ds.n_test,
                              ds.n_classes, conversion=conversion)  # fmt: skip
        return record.with_similarity([m.to_dict() for m in measured]) if measured else record

    def _measure_similarity(self, scenario: Scenario) -> None:
        """Measure the target's similarity with this scenario's arch once, and warn if it contradicts the
        suite's binding; a failed measurement is logged and leaves the scenario alone."""
        key = (scenario.arch, scenario.quadrant)
        if key in self._similarity or key in self._unmeasurable:
            return
        if scenario.arch in self.suite.weights:  # the similarity compares with the glyph source domain
            self._unmeasurable.add(key)
            log.info(f"similarity with {scenario.arch} not measured: it starts from imported weights, whose source "
                     "domain cnnbench does not have")  # fmt: skip
            return
        try:
            self.similarity(*key)
        except Exception as exc:  # e.g. a base too weakly pretrained to measure with
            self._unmeasurable.add(key)
            if scenario.quadrant not in self._dataset_errors:  # dataset() has already said why
                log.warning(f"similarity of {self.suite.quadrants[scenario.quadrant].name} not measured: {exc}")
            return
        ds = self.dataset(scenario.quadrant)
        target = self._target_record(scenario.quadrant, ds)
        m, size = self._similarity[key], size_class(ds.n_train)
        log.info(
            f"target {target.name} ({scenario.quadrant}): {ds.n_train} training images ({size}), "
            f"similarity {m.score:+.2f} with {m.arch} (threshold {THRESHOLD:g}; mean over archs so far "
            f"{target.similarity:+.2f}): measured {target.measured_quadrant}"
        )
        if target.warning:
            log.warning(f"target {target.name}: {target.warning}")

    # --------------------------------------------------------------------------------------- scenarios

    def run(self, scenario: Scenario, timer: Timer) -> Outcome:
        """Train and measure one scenario: plan, fit, evaluate, time. Returns its outcome (passed with its
        measurement, diverged or error) and never raises for the scenario's own failure."""
        (trained,) = self.train([scenario])
        return self.measure(trained, timer)

    def train(self, scenarios: list[Scenario]) -> list[Trained | Outcome]:
        """Plan, fit and evaluate one scenario, or the seeds of one group together (``fit_seeds``: one program
        vmapped over their stacked states). Each comes back ``Trained``, ready for ``measure``, or as the outcome
        it already has: diverged, or an error (which fails the whole group). Never raises for their own failure."""
        try:
            if STRATEGIES.get(scenarios[0].strategy).pretrained:
                self._measure_similarity(scenarios[0])
            with profiling.phase("models"):
                plans = [self.plan(s) for s in scenarios]
            with profiling.phase("train"):
                fits = self.fit_seeds(plans)
            trained: list[Trained | Outcome] = []
            for plan, fitted in zip(plans, fits, strict=True):
                if isinstance(fitted, Diverged):
                    trained.append(Outcome("diverged", error=str(fitted)))
                    continue
                with profiling.phase("evaluate"):
                    trained.append(Trained(plan, fitted, self.evaluate(plan, fitted)))
            return trained
        except Exception as exc:  # the scenarios fail alone; the run and its report go on
            return [_error(exc)] * len(scenarios)

    def keep(self, trained: Trained, root: Path) -> Path | None:
        """Save ``trained``'s deployed model (base and head) to ``root/<scenario id>`` (``cnnbench.engine.kept``), with
        what exporting it needs to know; before it is timed, which donates its buffers."""
        scenario, arch = trained.plan.scenario, trained.plan.scenario.arch
        config = self.model_config(arch)
        entry = self._imported_entry(arch) if arch in self.suite.weights else None
        meta = {
            "scenario": scenario.id, "arch": arch, "strategy": scenario.strategy, "quadrant": scenario.quadrant,
            "head": scenario.head, "seed": scenario.seed, "num_classes": trained.plan.dataset.n_classes,
            "img_size": config.img_size, "in_chans": config.in_chans, "width": config.width,
            "weights": entry.tag if entry else None, "source": entry.source if entry else reference_source(arch),
            "preprocessing": entry.preprocessing.describe() if entry else "values in [0, 1]",
            "test_accuracy": trained.evaluation.test_accuracy, "suite": self.suite.name,
        }  # fmt: skip
        return kept.save(root / scenario.id, trained.evaluation.deployed, meta)

    def measure(self, trained: Trained | Outcome, timer: Timer) -> Outcome:
        """Time a trained scenario's train step and inference and return its outcome; an outcome passes through."""
        if isinstance(trained, Outcome):
            return trained
        try:
            with profiling.phase("timing"):
                train_timing, infer_timing = self.time(trained.fitted, trained.evaluation, timer)
            measurement = _measurement(trained.plan, trained.fitted, trained.evaluation, train_timing, infer_timing)
            return Outcome("passed", measurement)
        except Exception as exc:
            return _error(exc)

    def plan(self, scenario: Scenario) -> Plan:
        """Everything ``scenario`` trains with, decided before training: its target and budget, the base
        (pretrained or not) and new head, the frozen stages, the inputs (the base's cached features for a strategy
        that trains on them, else the images) and the two-phase and learning-rate settings. Raises ``ValueError``
        when the global batch does not split evenly over the data-parallel devices."""
        strategy = STRATEGIES.get(scenario.strategy)
        ds, binding = self.dataset(scenario.quadrant, scenario.arch), self.suite.quadrants[scenario.quadrant]
        config = self.suite.train.config(binding.steps)
        config = replace(config, batch_size=min(config.batch_size, ds.n_train))
        self.parallel.check(config.batch_size)
        base = self.model_config(scenario.arch).create(scenario.seed)
        if strategy.pretrained:
            load_into(base, self.pretrained(scenario.arch).state)
        cut = binding.s2_freeze if scenario.freeze is None else scenario.freeze
        frozen = frozen_stages(strategy, base.stage_names, cut)
        head = create_head(scenario.head, base.feature_shape, ds.n_classes, seed=scenario.seed)
        augmentations: tuple[str, ...] = ()
        if strategy.on_features:  # the features of the un-augmented images, computed once per target
            feats, fresh = self.features(scenario.arch, scenario.quadrant)
            inputs, compile_s = Inputs(feats.train, feats.val, feats.test), feats.compile_s if fresh else 0.0
        else:
            inputs, augmentations, compile_s = Inputs(ds.x_train, ds.x_val, ds.x_test), tuple(binding.augment), 0.0
        return Plan(
            scenario=scenario,
            strategy=strategy,
            dataset=ds,
            config=config,
            watch=self.suite.watch,
            base=base,
            head=head,
            frozen=frozen,
            inputs=inputs,
            augment=augmentations,
            head_first=self.suite.train.head_first_steps if strategy.pretrained and not strategy.on_features else 0,
            lr_ratio=config.finetune_lr_ratio if strategy.base_lr_scale is None else strategy.base_lr_scale,
            compile_s=compile_s,
        )

    def fit(self, plan: Plan) -> FitResult:
        """Train one scenario as planned (``fit_seeds``); raises ``Diverged`` where its loss stopped being finite."""
        (fitted,) = self.fit_seeds([plan])
        if isinstance(fitted, Diverged):
            raise fitted
        return fitted

    def fit_seeds(self, plans: list[Plan]) -> list[FitResult | Diverged]:
        """Train as planned — one scenario, or a group's seeds together — in one phase, or two (the head alone on
        the frozen base, then the planned stages unfrozen at the base LR, within the same step budget) merged into
        one result per seed, on the runner's devices. A seed that diverges in the first phase skips the second;
        a global batch that does not split evenly over the devices raises ``ValueError`` before anything runs."""
        plan, config = plans[0], plans[0].config
        orders = [epoch_batches(len(p.inputs.train), config.batch_size, config.steps, p.scenario.seed) for p in plans]
        with profiling.phase("data"):  # the training set goes on the device once, whatever the number of seeds
            shared = TargetBatches.of(plan.inputs.train, plan.dataset.y_train, orders[0], plan.augment,
                                      parallel=self.parallel)  # fmt: skip
            batches = [replace(shared, order=o, seed=p.scenario.seed) for o, p in zip(orders, plans, strict=True)]
        train = partial(
            fit_seeds,
            loss=plan.head.loss,
            val=(plan.inputs.val, plan.dataset.y_val),
            lr_head=config.learning_rate,
            weight_decay_head=plan.head.weight_decay,
            watch=plan.watch,
            parallel=self.parallel,
            predict_batch=self.suite.train.infer_batch,
        )
        trainees = [p.trainee() for p in plans]
        models, frozen = [m for m, _ in trainees], trainees[0][1]
        head_first = plan.head_first
        firsts: list[FitResult | Diverged | None] = [None] * len(plans)
        if head_first:
            firsts = list(train(models, tuple(plan.base.stage_names), batches=batches,
                                config=replace(config, steps=head_first), lr_base=0.0))  # fmt: skip
        live = [i for i, f in enumerate(firsts) if not isinstance(f, Diverged)]
        seconds = train(
            [models[i] if firsts[i] is None else firsts[i].model() for i in live],  # type: ignore[union-attr]
            frozen,
            batches=[batches[i].after(head_first) for i in live],
            config=replace(config, steps=config.steps - head_first),
            lr_base=config.learning_rate * plan.lr_ratio,
        )
        fits: dict[int, FitResult | Diverged] = {i: f for i, f in enumerate(firsts) if isinstance(f, Diverged)}
        for i, second in zip(live, seconds, strict=True):
            first = firsts[i]
            both = isinstance(first, FitResult) and isinstance(second, FitResult)
            fits[i] = second.after(first, head_first) if both else second  # type: ignore[union-attr,arg-type]
        return [fits[i] for i in range(len(plans))]

    def evaluate(self, plan: Plan, fitted: FitResult) -> Evaluation:
        """Test accuracy of the trained model, and the deployed model compiled for the inference timing, both on
        the runner's devices."""
        infer_batch = self.suite.train.infer_batch
        logits, compile_s = predict(fitted.eval_graphdef, (fitted.trainable, fitted.rest), plan.inputs.test,
                                    infer_batch, parallel=self.parallel)  # fmt: skip
        test_accuracy = accuracy(logits, plan.dataset.y_test)
        deployed = plan.deployed(fitted.model())
        deployed.eval()
        graphdef, state = nnx.split(deployed)
        state = self.parallel.replicate(state)
        x_test = plan.dataset.x_test
        batch = np.resize(x_test, (self.parallel.padded(infer_batch), *x_test.shape[1:]))
        program, fresh = PROGRAMS.get(apply_program(self.parallel), (graphdef, None), (state,),
                                      self.parallel.shard(batch, 0))  # fmt: skip
        compile_s += program.compile_s if fresh else 0.0
        return Evaluation(test_accuracy, deployed, state, program, batch, compile_s, self.parallel)

    @staticmethod
    def time(fitted: FitResult, evaluation: Evaluation, timer: Timer) -> tuple[Timing, Timing]:
        """Steady-state timings of the train step and of the deployed model's inference. Inference goes first:
        the replayed train step donates the trained states, which the deployed model shares."""
        step = fitted.step
        assert step is not None  # fit leaves one whenever it returns
        infer_stats = timer.inference(evaluation.infer)
        train_stats = timer.train_step(step.replay())
        return summarize(train_stats, step.images_per_call), summarize(infer_stats, len(evaluation.batch))


@dataclass(frozen=True)
class Inputs:
    """What a model trains, validates and tests on: images, or a frozen base's features of them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True, eq=False)
class Plan:
    """What a scenario trains with (``Runner.plan``); ``Runner.fit`` and ``Runner.evaluate`` follow it."""

    scenario: Scenario
    strategy: Strategy
    dataset: Dataset
    config: TrainConfig  # the quadrant's budget, the batch no larger than the training set
    watch: Watch
    base: ZooModel  # pretrained or random-init
    head: Head
    frozen: tuple[str, ...]  # the base stages the strategy freezes
    inputs: Inputs  # the target's images, or the base's cached features of them (``strategy.on_features``)
    augment: tuple[str, ...]  # applied to training batches of images
    head_first: int  # two-phase: head-only steps before the base unfreezes (0: one phase)
    lr_ratio: float  # the base's learning rate over the head's
    compile_s: float  # compile time spent planning: the features, when computed for this scenario

    def trainee(self) -> tuple[nnx.Module, tuple[str, ...]]:
        """The module training steps and the base stages it keeps frozen, at the scenario's precision: the head
        alone on cached features, else the base under the head (with new auxiliary classifiers where the arch has
        them)."""
        if self.strategy.on_features:
            return apply_precision(HeadOnly(self.head), self.scenario.precision), ()
        model = TransferModel.build(self.base, self.head, self.dataset.n_classes, self.scenario.seed)
        return apply_precision(model, self.scenario.precision), self.frozen

    def deployed(self, trained: TransferModel | HeadOnly) -> TransferModel:
        """The model a user would ship, at the scenario's precision: always base + head, auxiliary classifiers
        dropped (a head trained on features goes back on the base that computed them)."""
        base = self.base if isinstance(trained, HeadOnly) else trained.base
        return apply_precision(TransferModel(base, trained.head), self.scenario.precision)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """A trained scenario's test accuracy, and its deployed model compiled for a batch of the suite's ``infer_batch``
    (rounded up to a multiple of the data-parallel devices)."""

    test_accuracy: float
    deployed: TransferModel  # in inference mode
    state: nnx.State
    program: Program
    batch: np.ndarray  # test images, repeated to fill the batch
    compile_s: float  # compiling the test predictions and the deployed model, where done for this scenario
    parallel: DataParallel = SINGLE  # the devices the batch is split over

    def infer(self) -> None:
        """One inference call of the deployed model on the host batch, blocking until done (what the inference
        timing calls); over several devices the call splits the batch over them, as one device's copies it there."""
        jax.block_until_ready(self.program.compiled((self.state,), self.parallel.shard(self.batch, 0)))


@dataclass(frozen=True, eq=False)
class Trained:
    """A scenario trained and evaluated, waiting for ``Runner.measure`` to time it (a group's seeds train at once
    and are timed one pytest item each)."""

    plan: Plan
    fitted: FitResult
    evaluation: Evaluation


def _error(exc: Exception) -> Outcome:
    return Outcome("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())


def _measurement(
    plan: Plan, fitted: FitResult, evaluation: Evaluation, train_timing: Timing, infer_timing: Timing
) -> Measurement:
    """The figures of a scenario that trained to the end; the transfer gain is left to the results layer, which
    has the scenario's ``scratch`` control."""
    program = evaluation.program
    metrics = Metrics(
        test_accuracy=evaluation.test_accuracy,
        val_accuracy=fitted.curve[-1]["val_accuracy"] if fitted.curve else None,
        transfer_gain=None,
        train_images_per_s=train_timing.images_per_s,
        infer_images_per_s=infer_timing.images_per_s,
        compile_s=plan.compile_s + fitted.compile_s + evaluation.compile_s,
        train_s=fitted.train_s,
        time_to_final_s=fitted.time_to_final_s,
        params_trainable=count(fitted.trainable),  # shapes only: the timed train step has donated the buffers
        params_total=count(nnx.state(evaluation.deployed, nnx.Param)),
        gflops=program.flops / len(evaluation.batch) / 1e9 if program.flops else None,
        peak_memory_bytes=_peak_memory_bytes(),
    )
    return Measurement(
        metrics=metrics,
        curve=tuple(CurvePoint(**p) for p in fitted.curve),
        frozen_stages=tuple(plan.frozen),
        augment=plan.augment,
        head_first_steps=plan.head_first,
        stopped_at=fitted.stopped_at,
        train_timing=train_timing,
        infer_timing=infer_timing,
    )


def _peak_memory_bytes() -> int | None:
    """Peak device memory where the backend reports it (GPU, TPU); None on CPU, which does not."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")
