"""Suites: TOML files that say which scenarios to run and with what budgets (SPEC §6).

A suite is parsed and checked completely before anything runs: an unknown key, a wrong type or a name that no
registry knows is a ``SuiteError`` naming the file, the key, the value and what was expected. A suite may
``extends`` another (a built-in name or a path) and override only what differs. Checking names
against the registries imports the zoo (and so JAX): the plugin does it only when ``--cnnbench`` is given.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from cnnbench.config.catalog import Catalog
from cnnbench.config.gate import Tolerances
from cnnbench.config.hardware import HARDWARE, MODES, BenchSettings, HardwareSuite
from cnnbench.config.precision import DEFAULT_PRECISION, PRECISIONS
from cnnbench.config.quadrants import QUADRANTS, SMALL_MAX
from cnnbench.config.scenario import Scenario
from cnnbench.config.settings import Range, setting, value_type, violation
from cnnbench.config.strategies import STRATEGIES
from cnnbench.config.training import PretrainConfig, PretrainSettings, TrainSettings, Watch

T = TypeVar("T")


class SuiteError(ValueError):
    """A suite file that cannot be run; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class InputConfig:
    """A suite's ``[input]`` table: the image size and channels of the source domain and every target."""

    img_size: int = setting(
        32,
        within=Range(8, 1024, noun="an image side in pixels"),
        doc="height and width of every image, source and targets (at least 8, the procedural source's smallest, and "
        "each arch's own minimum; at most 1024)",
    )
    in_chans: int = setting(1, choices=(1, 3), doc="1: grey, 3: RGB (grey images repeated)")


@dataclass(frozen=True)
class ArchSettings:
    """A suite's ``[arch.NAME]`` table: what differs for one of its archs."""

    width: float | None = setting(
        None,
        within=Range(0, 4, True, False, "a multiplier"),
        doc="width multiplier (the zoo's benchmark width if unset)",
    )
    pretrain_steps: int | None = setting(
        None, minimum=1, doc="pretraining steps of this arch ([pretrain] steps if unset)"
    )
    weights: str | None = setting(
        None,
        doc="the tag of weights imported with `cnnbench weights import` (docs/weights.md): this arch's pretrained "
        "strategies start from them instead of the glyph-pretrained base; [input] must be the arch's canonical one "
        "(its image size, 3 channels), and the arch runs at width 1",
    )


@dataclass(frozen=True)
class QuadrantBinding:
    """The target dataset a suite binds to a quadrant, its training-set size and training budget. ``target`` is a
    built-in target's name or, for a user's dataset, the absolute path of its folder or ``.npz`` (``path`` set);
    a user dataset's ``n_train`` may be None: all of its training split. Each field but ``path`` is a key of the
    suite's ``[quadrants.qN]`` table."""

    target: str = setting(doc="a built-in target, or the path of a folder of class sub-folders or an .npz "
                              "(relative to the suite file)")  # fmt: skip
    n_train: int | None = setting(minimum=1, doc="training images (a user dataset: all of them if left out)")
    steps: int = setting(minimum=1, doc="the training budget of each scenario on this quadrant")
    path: Path | None = None
    augment: tuple[str, ...] = setting((), doc="data augmentation of training batches")
    s2_freeze: int | float | str | None = setting(  # None: the lower half
        None, doc="where s2 cuts on this quadrant: \"half\", a stage count, a fraction of the stages or the last "
        "frozen stage's name (default: [train] s2_freeze)"
    )  # fmt: skip

    @property
    def name(self) -> str:
        """The target's name in reports: the built-in name, or the folder or file name of a user dataset."""
        return self.target if self.path is None else self.path.stem


@dataclass(frozen=True)
class Suite:
    """A parsed, validated suite."""

    name: str
    path: str
    description: str
    archs: tuple[str, ...]
    strategies: tuple[str, ...]
    heads: tuple[str, ...]
    seeds: tuple[int, ...]
    quadrants: dict[str, QuadrantBinding]
    input: InputConfig
    widths: dict[str, float]  # [arch.NAME] width
    pretrain: PretrainSettings
    pretrain_steps: dict[str, int]  # [arch.NAME] pretrain_steps
    weights: dict[str, str]  # [arch.NAME] weights, or --cnnbench-pretrained: imported weights' tags by arch
    train: TrainSettings  # the budget is each quadrant's steps
    watch: Watch  # [train]'s early stopping and plateau LR cuts
    layer_transfer: tuple[str, str, str] | None  # (arch, quadrant, head) of the layer-transfer curve, if any
    gate: Tolerances  # what the quality gate tolerates
    precision: str  # fp32, or bf16 mixed precision (cnnbench.config.precision)
    requires_accelerator: bool  # refused on a CPU, with an estimate of its cost, unless forced
    digest: str
    catalog: Catalog = field(repr=False, compare=False)  # what the suite was checked against
    raw: dict = field(repr=False, default_factory=dict)

    def scenarios(self) -> list[Scenario]:
        """Every scenario of the suite, arch by arch, quadrant by quadrant, then the layer-transfer points."""
        multi = len(self.seeds) > 1
        matrix = [
            Scenario(arch, strategy, quadrant, head, seed, multi, precision=self.precision)
            for arch in self.archs
            for quadrant in self.quadrants
            for head in self.heads
            for strategy in self.strategies
            for seed in self.seeds
        ]
        if self.layer_transfer is None:
            return matrix
        arch, quadrant, head = self.layer_transfer
        return matrix + [
            Scenario(arch, "s2", quadrant, head, seed, multi, freeze=k, precision=self.precision)
            for k in range(len(self.catalog.archs[arch].stages) + 1)
            for seed in self.seeds
        ]

    def width(self, arch: str) -> float:
        """The suite's width multiplier for ``arch``; by default the zoo's benchmark-scale width, and 1 for an arch
        that starts from imported weights (the width they were trained at)."""
        return 1.0 if arch in self.weights else self.widths.get(arch, self.catalog.archs[arch].bench_width)

    def with_weights(self, tags: dict[str, str], origin: str = "--cnnbench-pretrained") -> Suite:
        """This suite with ``tags`` (imported weights' tags by arch) added to its ``[arch.NAME] weights``, checked
        as the suite's own are (:func:`check_weights`)."""
        check_weights(self, tags, origin)
        weights = {**self.weights, **tags}
        if weights == self.weights:
            return self
        text = f"{self.digest}\0weights={sorted(weights.items())}".encode()  # the report's suite hash says which
        return replace(self, weights=weights, digest=hashlib.sha256(text).hexdigest()[:16])

    def pretrain_config(self, arch: str) -> PretrainConfig:
        """How ``arch``'s base is pretrained: ``[pretrain]``, with the arch's ``pretrain_steps`` if the suite sets
        them."""
        return self.pretrain.config(self.pretrain_steps.get(arch))

    @property
    def img_size(self) -> int:
        return self.input.img_size

    @property
    def in_chans(self) -> int:
        return self.input.in_chans


# ----------------------------------------------------------------------------------------------- parsing


class _Reader:
    """Typed access to one TOML table, rejecting unknown keys and wrong types with the file and key."""

    def __init__(self, path: str, table: dict, where: str = "") -> None:
        self.path, self.table, self.where = path, table, where
        self.seen: set[str] = set()

    def fail(self, key: str, message: str) -> SuiteError:
        name = f"{self.where}.{key}" if self.where else key
        return SuiteError(f"suite {self.path}: key '{name}': {message}")

    def get(self, key: str, kind: type, default: Any = ..., allowed: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, f"missing; expected {_describe(kind)}")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {_describe(kind)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):  # TOML has nan and inf; no setting means either
            raise self.fail(key, f"expected a finite number, got {value}")
        if allowed is not None and value not in allowed:
            raise self.fail(key, f"unknown value {value!r}; expected one of: {', '.join(map(str, allowed))}")
        return value

    def names(self, key: str, known: list[str], kind: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        if not values:
            raise self.fail(key, f"empty; expected a list of {kind} names from: {', '.join(known)}")
        for v in values:
            if v not in known:
                raise self.fail(key, f"unknown {kind} {v!r}; known: {', '.join(known)}")
        if len(set(values)) != len(values):
            raise self.fail(key, f"lists a {kind} twice: {values}")
        return tuple(values)

    def sub(self, key: str) -> _Reader:
        table = self.get(key, dict, {})
        return _Reader(self.path, table, f"{self.where}.{key}" if self.where else key)

    def settings(self, cls: type[T]) -> T:
        """The settings dataclass ``cls`` from this table: each of its fields is a known key, type-checked and
        checked against the field's constraints; a key the table leaves out gets the field's default."""
        values = {}
        for f in fields(cls):  # type: ignore[arg-type]
            self.seen.add(f.name)
            if f.name in self.table:
                values[f.name] = self.get(f.name, value_type(cls, f.name))
                self.check(f, values[f.name])
        return cls(**values)

    def check(self, f: Field, value: Any) -> None:
        """Raise naming this table's key ``f.name`` when ``value`` breaks the field's constraints."""
        problem = violation(f, value)
        if problem is not None:
            raise self.fail(f.name, problem)

    def done(self) -> None:
        extra = sorted(set(self.table) - self.seen)
        if extra:
            raise self.fail(extra[0], f"unknown key; expected one of: {', '.join(sorted(self.seen))}")


def _name(reader: _Reader, path: str) -> str:
    """The suite's ``name`` (default: its file's stem), which names its runs' report folders
    (``<date>-<time>-<name>``): neither blank nor holding a path separator."""
    name = reader.get("name", str, Path(path).stem)
    if not name.strip() or any(c in name for c in "/\\\0"):
        raise reader.fail("name", f"{name!r} cannot name a report folder (<date>-<time>-<name>); use a plain name "
                                  "such as my-suite, without / or \\")  # fmt: skip
    return name


def _describe(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table",
            bool: "true or false"}[kind]  # fmt: skip


def _check(reader: _Reader, cls: type, values: dict[str, Any]) -> None:
    """``values`` of fields of ``cls`` checked against the fields' constraints."""
    for f in fields(cls):
        if values.get(f.name) is not None:
            reader.check(f, values[f.name])


TRANSFER = "transfer"  # the default kind of suite; ``hardware`` is the other (cnnbench.config.hardware)
BUILTIN_DIR = Path(__file__).parent.parent / "suites"  # a link to the top-level suites/ folder, shipped in the wheel


def builtin_suites() -> list[str]:
    """Names of the suites shipped with cnnbench."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def resolve(name_or_path: str) -> Path:
    """The file of a built-in suite name or a path. A built-in name is never shadowed by a file or folder of that
    name; a path must name a file. An unknown name lists the built-in names."""
    if name_or_path in builtin_suites():
        return BUILTIN_DIR / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if path.is_dir():
        raise SuiteError(f"suite path {path} is a folder; a suite is a .toml file or a built-in name "
                         f"({', '.join(builtin_suites())})")  # fmt: skip
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SuiteError(f"suite file {path} does not exist")
        return path
    raise SuiteError(f"unknown suite {name_or_path!r}; built-in: {', '.join(builtin_suites())}, or a path to a .toml")


def builtin_name(path: str | Path) -> str | None:
    """The built-in suite name of the file ``path``; None for a user's suite file."""
    path = Path(path)
    same = path.resolve().parent == BUILTIN_DIR.resolve() and path.suffix == ".toml"
    return path.stem if same and path.stem in builtin_suites() else None


def load_suite(name_or_path: str, catalog: Catalog) -> Suite:
    """Parse and validate a transfer suite by built-in name or path, after resolving its ``extends`` chain; names
    are checked against ``catalog``. A hardware suite is refused: :func:`read_suite` reads either kind."""
    suite = read_suite(name_or_path, catalog)
    if isinstance(suite, HardwareSuite):
        raise SuiteError(
            f'suite {suite.path} is a hardware suite (kind = "{HARDWARE}"): it times archs and trains nothing; run '
            f"it with `pytest --cnnbench --cnnbench-suite {name_or_path}` or `cnnbench bench --suite {name_or_path}`"
        )
    return suite


def read_suite(name_or_path: str, catalog: Catalog) -> Suite | HardwareSuite:
    """Parse and validate a suite of either kind (its ``kind`` key: ``transfer``, the default, or ``hardware``)
    by built-in name or path, after resolving its ``extends`` chain."""
    path = resolve(name_or_path)
    raw, texts = _read_chain(path, ())
    digest = hashlib.sha256(b"\0".join(texts)).hexdigest()[:16]
    kind = raw.get("kind", TRANSFER)
    if kind == HARDWARE:
        return parse_hardware_suite(raw, catalog, str(path), digest)
    if kind != TRANSFER:
        raise SuiteError(f"suite {path}: key 'kind': unknown value {kind!r}; expected one of: {TRANSFER}, {HARDWARE}")
    return parse_suite(raw, catalog, str(path), digest)


def _read_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict, list[bytes]]:
    """The TOML at ``path`` merged over the suite it ``extends`` (a built-in name, or a path relative to the
    file), and the texts that went in. ``name`` and ``description`` are never inherited."""
    if path.resolve() in seen:
        raise SuiteError(f"suite {path}: key 'extends': the chain loops back to this file")
    text = path.read_bytes()
    try:
        raw = tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite {path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise SuiteError(f"suite {path}: nested too deeply for TOML's reader; a suite is a few tables deep") from None
    parent = raw.pop("extends", None)
    if parent is None:
        return raw, [text]
    if not isinstance(parent, str):
        raise SuiteError(f"suite {path}: key 'extends': expected a suite name or a .toml path, got {parent!r}")
    try:
        parent_path = resolve(str(path.parent / parent) if parent.endswith(".toml") else parent)
    except SuiteError as exc:
        raise SuiteError(f"suite {path}: key 'extends': {exc}") from None
    base, texts = _read_chain(parent_path, (*seen, path.resolve()))
    base = {k: v for k, v in base.items() if k not in ("name", "description")}
    return _merge(base, raw), [*texts, text]


def _merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``: tables merge key by key, any other value replaces the base's."""
    merged = dict(base)
    for key, value in override.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_tables else value
    return merged


def _s2_freeze(t: _Reader, archs: tuple[str, ...], catalog: Catalog, default: Any) -> int | float | str | None:
    """The table's ``s2_freeze`` (``"half"``: None, a stage count, a fraction of the stages or the last frozen
    stage's name), checked against every arch's stages; ``default`` where the table has none."""
    value = t.table.get("s2_freeze", default)
    t.seen.add("s2_freeze")
    if value == "half":
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, str, type(None)))
        or (isinstance(value, float) and not 0 < value < 1)
    ):
        raise t.fail(
            "s2_freeze", f'expected "half", a stage count, a fraction in (0, 1) or a stage name, got {value!r}'
        )
    for arch in archs:
        stages = catalog.archs[arch].stages
        too_many = isinstance(value, int) and not 0 <= value <= len(stages)
        if (isinstance(value, str) and value not in stages) or too_many:
            raise t.fail("s2_freeze", f"{value!r} does not fit {arch}, whose stages are: {', '.join(stages)}")
    return value


def _check_builtin_size(t: _Reader, quadrant: str, binding: QuadrantBinding, catalog: Catalog) -> None:
    """A built-in target's n_train fits both the quadrant's size class and what the target can provide."""
    _check(t, QuadrantBinding, {"steps": binding.steps, "n_train": binding.n_train})
    assert binding.n_train is not None  # a built-in target's is read as required
    small = quadrant in ("q3", "q4")
    if small != (binding.n_train <= SMALL_MAX):
        size = f"at most {SMALL_MAX}" if small else f"more than {SMALL_MAX}"
        raise t.fail(
            "n_train",
            f"{quadrant} is a {'small' if small else 'large'} quadrant: n_train must be {size}, got {binding.n_train}",
        )
    spec = catalog.targets[binding.target]
    if not spec.n_classes <= binding.n_train <= spec.max_train:
        raise t.fail(
            "n_train",
            f"target {binding.target!r} takes {spec.n_classes}..{spec.max_train} training "
            f"images, got {binding.n_train}",
        )


def _user_dataset_path(t: _Reader, suite_path: str, target: str, catalog: Catalog) -> Path:
    """A target that no registry knows must be a folder of class sub-folders or an .npz file; a relative path is
    taken from the suite file's folder."""
    try:
        path = Path(target).expanduser()
        if not path.is_absolute() and Path(suite_path).is_file():
            path = Path(suite_path).parent / path
        path = path.resolve()
    except (RuntimeError, ValueError, OSError) as exc:  # an unknown ~user, a NUL byte
        raise t.fail(
            "target",
            f"{target!r} is not a usable path ({exc}); name a built-in target "
            f"({', '.join(catalog.targets)}) or a dataset folder or .npz file",
        ) from None
    if not (path.is_dir() or (path.is_file() and path.suffix.lower() == ".npz")):
        raise t.fail(
            "target",
            f"{target!r} is neither a built-in target ({', '.join(catalog.targets)}) nor an "
            f"existing folder of class sub-folders or .npz file (looked for {path}; relative "
            "paths start at the suite file's folder)",
        )
    return path


def parse_suite(raw: dict, catalog: Catalog, path: str = "<suite>", digest: str = "") -> Suite:
    """Validate a transfer suite already read from TOML; names are checked against ``catalog``."""
    r = _Reader(path, raw)
    r.get("kind", str, TRANSFER, allowed=(TRANSFER,))
    archs = r.names("archs", list(catalog.archs), "arch")
    strategies = r.names("strategies", STRATEGIES.names(), "strategy")
    heads = r.names("heads", list(catalog.heads), "head")
    seeds = tuple(r.get("seeds", list, [0]))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise r.fail("seeds", f"expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):  # one run would count as two seeds, with no spread between them
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        raise r.fail("seeds", f"lists seed {', '.join(map(str, twice))} more than once: {list(seeds)}; list each once")

    inp = r.sub("input")
    input_config = inp.settings(InputConfig)
    inp.done()
    small = {a: catalog.archs[a].min_img_size for a in archs if catalog.archs[a].min_img_size > input_config.img_size}
    if small:
        raise inp.fail("img_size", f"{input_config.img_size} px is too small for "
                                   f"{', '.join(f'{a} (at least {m})' for a, m in small.items())}: its stages would "
                                   f"leave an empty map; use img_size = {max(small.values())} or more, or drop "
                                   "those archs")  # fmt: skip

    widths, pretrain_steps, weights = {}, {}, {}
    arch_tables = r.sub("arch")
    for arch in arch_tables.table:
        if arch not in archs:
            raise arch_tables.fail(arch, f"configures arch {arch!r}, which the suite does not run: {', '.join(archs)}")
        t = arch_tables.sub(arch)
        arch_settings = t.settings(ArchSettings)
        t.done()
        if arch_settings.width is not None:
            widths[arch] = arch_settings.width
        if arch_settings.pretrain_steps is not None:
            pretrain_steps[arch] = arch_settings.pretrain_steps
        if arch_settings.weights is not None:
            weights[arch] = arch_settings.weights
            if arch_settings.width not in (None, 1.0):
                raise t.fail("width", f"{arch_settings.width} with imported weights; they fit width 1 only: drop it")
    arch_tables.done()

    pre = r.sub("pretrain")
    pretrain = pre.settings(PretrainSettings)
    pre.done()

    tr = r.sub("train")
    train, watch = tr.settings(TrainSettings), tr.settings(Watch)
    s2_freeze = _s2_freeze(tr, archs, catalog, "half")
    tr.done()

    quadrants: dict[str, QuadrantBinding] = {}
    qs = r.sub("quadrants")
    if not qs.table:
        raise r.fail("quadrants", f"missing; expected a table per quadrant ({', '.join(QUADRANTS)})")
    for q in qs.table:
        if q not in QUADRANTS:
            raise qs.fail(q, f"unknown quadrant {q!r}; known: {', '.join(QUADRANTS)}")
        t = qs.sub(q)
        target = t.get("target", str)
        if target in catalog.targets:
            binding = QuadrantBinding(target, t.get("n_train", int), t.get("steps", int))
            _check_builtin_size(t, q, binding, catalog)
        else:
            data_path = _user_dataset_path(t, path, target, catalog)
            binding = QuadrantBinding(str(data_path), t.get("n_train", int, None), t.get("steps", int), data_path)
            _check(t, QuadrantBinding, {"steps": binding.steps, "n_train": binding.n_train})
        augmentations = tuple(t.get("augment", list, []))
        if not all(isinstance(a, str) and a in catalog.augmentations for a in augmentations):
            raise t.fail(
                "augment", f"expected a list of {', '.join(catalog.augmentations)}, got {list(augmentations)!r}"
            )
        binding = replace(binding, augment=augmentations, s2_freeze=_s2_freeze(t, archs, catalog, s2_freeze))
        t.done()
        quadrants[q] = binding
    qs.done()
    short = [q for q, b in quadrants.items() if b.steps <= train.head_first_steps]
    if short:
        raise tr.fail(
            "head_first_steps",
            f"{train.head_first_steps} head-only steps leave none to fine-tune in "
            f"{', '.join(short)}; they come out of each quadrant's steps",
        )

    gt = r.sub("gate")
    gate = gt.settings(Tolerances)
    gt.done()

    layer_transfer = None
    if "layer_transfer" in raw:
        lt = r.sub("layer_transfer")
        layer_transfer = (lt.get("arch", str, allowed=archs), lt.get("quadrant", str, allowed=tuple(quadrants)),
                          lt.get("head", str, allowed=heads))  # fmt: skip
        lt.done()

    suite = Suite(
        name=_name(r, path),
        path=path,
        description=r.get("description", str, ""),
        archs=archs,
        strategies=strategies,
        heads=heads,
        seeds=seeds,
        quadrants=dict(sorted(quadrants.items())),
        input=input_config,
        widths=widths,
        pretrain=pretrain,
        pretrain_steps=pretrain_steps,
        weights=weights,
        train=train,
        watch=watch,
        layer_transfer=layer_transfer,
        gate=gate,
        precision=r.get("precision", str, DEFAULT_PRECISION, allowed=PRECISIONS),
        requires_accelerator=r.get("requires_accelerator", bool, False),
        digest=digest,
        catalog=catalog,
        raw=raw,
    )
    r.done()
    check_weights(suite, weights, f"{path}: [arch.NAME] weights")
    return suite


def check_weights(suite: Suite, tags: dict[str, str], origin: str) -> None:
    """Raise a :class:`SuiteError` unless each arch of ``tags`` (imported weights' tags by arch, named in ``origin``)
    is one the suite runs and the suite's ``[input]`` is that arch's canonical input, the only one its weights fit."""
    for arch, tag in tags.items():
        if arch not in suite.archs:
            raise SuiteError(f"{origin}: {tag!r} holds {arch} weights, and suite {suite.name!r} does not run {arch} "
                             f"(its archs: {', '.join(suite.archs)})")  # fmt: skip
        info = suite.catalog.archs[arch]
        if (suite.img_size, suite.in_chans) != (info.img_size, info.in_chans):
            raise SuiteError(
                f"{origin}: {tag!r} holds {arch} weights for {info.img_size}×{info.img_size}×{info.in_chans} input, "
                f"and suite {suite.name!r} feeds {suite.img_size}×{suite.img_size}×{suite.in_chans}; set its [input] "
                f"img_size = {info.img_size} and in_chans = {info.in_chans} (targets are converted to it: RGB, "
                "resized, normalised as the weights expect)"
            )


def parse_hardware_suite(raw: dict, catalog: Catalog, path: str = "<suite>", digest: str = "") -> HardwareSuite:
    """Validate a hardware suite already read from TOML; arch names are checked against ``catalog``."""
    r = _Reader(path, raw)
    r.get("kind", str, allowed=(HARDWARE,))
    batches = tuple(r.get("batches", list))
    if not batches or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in batches):
        raise r.fail("batches", f"expected a non-empty list of batch sizes (integers >= 1), got {list(batches)!r}")
    if len(set(batches)) != len(batches):
        raise r.fail("batches", f"lists a batch size twice: {list(batches)}")
    bench = r.sub("bench")
    settings = bench.settings(BenchSettings)
    bench.done()
    suite = HardwareSuite(
        name=_name(r, path),
        path=path,
        description=r.get("description", str, ""),
        archs=r.names("archs", list(catalog.archs), "arch"),
        batches=batches,
        precisions=r.names("precisions", list(PRECISIONS), "precision", [DEFAULT_PRECISION]),
        modes=r.names("modes", list(MODES), "mode", list(MODES)),
        bench=settings,
        digest=digest,
        catalog=catalog,
    )
    r.done()
    return suite
