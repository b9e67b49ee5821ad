"""cnnbench from Python, without pytest (docs/api.md): the zoo's models, random or pretrained, a suite run
in-process, and stored reports, for scripts and notebooks.

:func:`create_model` is timm's entry point over the zoo (``list_models`` is the zoo's own), whose pretrained weights
are the bases cnnbench pretrains on its source domain and caches (``cnnbench.engine.pretrain``); :func:`run` drives
the same :class:`~cnnbench.session.Session` as the pytest plugin and returns the typed report; :func:`load_report`
reads a stored one. The engine loads JAX, so the functions that need it import it when called: importing this module
and reading reports stay light. Progress lines go to the ``cnnbench`` logger.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.config.suite import Suite, SuiteError
from cnnbench.locations import default_cache, unwritable_dir
from cnnbench.progress import Progress, outcome
from cnnbench.results.gate import load_baseline, other_suite
from cnnbench.results.records import Report
from cnnbench.results.schema import read_report, report_file
from cnnbench.session import Filters, Session, cpu_refusal, place_target, use_weights

if TYPE_CHECKING:  # the engine and the zoo load JAX: imported by the functions that build or run models
    from cnnbench.engine.pretrain import ModelConfig
    from cnnbench.zoo import ZooModel

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Names = str | Sequence[str] | None
ENTRY = (
    "a pretrained-base cache entry, <cache>/pretrained/<arch>-<digest>/ holding orbax's state/, meta.json and "
    "SHA256SUMS"
)


def create_model(
    name: str,
    pretrained: bool | PathLike = False,
    *,
    suite: PathLike = "smoke",
    cache: PathLike | None = None,
    num_classes: int | None = None,
    **config: Any,
) -> ZooModel:
    """Zoo model ``name`` as an ``nnx`` module, in training mode as nnx builds it (``model.eval()`` for inference).

    ``pretrained=False``: random init at the zoo's canonical config (``cnnbench.zoo.create_model``; ``num_classes``
    and ``config`` — ``in_chans``, ``img_size``, ``width``, ``rngs`` — override it). ``pretrained=True``: the base
    cnnbench pretrains with ``suite``'s recipe, at the suite's input and width for ``name``, read from ``cache``
    (default: ``cnnbench.locations.default_cache()``) or pretrained into it now. ``pretrained=PATH``: the base stored
    in that cache entry. A pretrained model is the base alone (``num_classes=0``: it returns pooled features) unless
    ``num_classes`` asks for the arch's classifier, freshly initialised (``rngs``), on top of it.
    ``pretrained=TAG``: weights imported with ``cnnbench weights import`` (docs/weights.md), at the arch's canonical
    input, with the file's own classifier unless ``num_classes`` asks for another (0: none; else a fresh one).
    """
    from cnnbench.engine.pretrain import load_into  # the engine and the zoo load JAX
    from cnnbench.zoo import create_model as build
    from cnnbench.zoo import get_spec

    get_spec(name)  # an unknown name fails first, listing the zoo
    if isinstance(pretrained, str) and os.sep not in pretrained and not Path(pretrained).exists():
        return _imported(name, pretrained, cache, num_classes, config)
    if isinstance(pretrained, bool):
        if not pretrained:
            return build(name, num_classes=num_classes, **config)
        model_config, state = _suite_base(name, suite, cache)
    else:
        model_config, state = _entry_base(name, pretrained)
    fixed = {"in_chans": model_config.in_chans, "img_size": model_config.img_size, "width": model_config.width}
    clash = {k: v for k, v in config.items() if k in fixed and v != fixed[k]}
    if clash:
        raise ValueError(
            f"{name}: the pretrained base was built with {fixed}, so {clash} would not fit its weights; leave "
            "them out, pass a suite whose [input] and width give them, or pretrained=False for a random model"
        )
    model = build(name, num_classes=num_classes or 0, **(fixed | config))
    load_into(model, state)
    return model


def _imported(name: str, tag: str, cache: PathLike | None, num_classes: int | None, config: dict) -> ZooModel:
    """``name`` holding the weights imported under ``tag``; they fit the arch's canonical input only."""
    from cnnbench.engine import imported

    entry = imported.find(tag, _cache_dir(cache))
    if entry.arch != name:
        raise ValueError(f"pretrained={tag!r} holds {entry.arch} weights, not {name}; create_model({entry.arch!r}, "
                         f"pretrained={tag!r}) builds them")  # fmt: skip
    canonical = {"in_chans": entry.in_chans, "img_size": entry.img_size, "width": 1.0}
    clash = {k: v for k, v in config.items() if k in canonical and v != canonical[k]}
    if clash or set(config) - {*canonical, "rngs"}:
        raise ValueError(f"{name}: imported weights {tag!r} fit the canonical config {canonical} only; leave out "
                         f"{clash or sorted(set(config) - set(canonical))}")  # fmt: skip
    return imported.load_model(tag, _cache_dir(cache), num_classes, config.get("rngs"))


def _suite_base(name: str, suite: PathLike, cache: PathLike | None) -> tuple[ModelConfig, dict]:
    """``name``'s base as ``suite``'s runs use it: its config and pretrained state, from the cache or pretrained."""
    from cnnbench.engine.runner import Runner

    runner = Runner(_transfer_suite(suite), _cache_dir(cache))
    if not runner.is_pretrained(name):
        log.info("%s: no base pretrained with suite %s's recipe in %s; pretraining one now (cached for next time)",
                 name, runner.suite.name, runner.cache_dir)  # fmt: skip
    return runner.model_config(name), runner.pretrained(name).state


def _entry_base(name: str, path: PathLike) -> tuple[ModelConfig, dict]:
    """The config and state of the base stored in the cache entry ``path``, which must be one of ``name``'s."""
    from cnnbench.engine.pretrain import ModelConfig, restore

    entry = Path(path).expanduser().absolute()
    try:
        key = json.loads((entry / "meta.json").read_text())["key"]
        model = ModelConfig(**key["model"])
    except (OSError, ValueError, LookupError, TypeError) as exc:
        raise ValueError(f"pretrained={str(path)!r} is not {ENTRY} ({type(exc).__name__}: {exc}); pass such a "
                         "directory, or pretrained=True for the suite's base") from None  # fmt: skip
    if model.arch != name:
        raise ValueError(f"pretrained={str(path)!r} holds a {model.arch} base, not {name}; pass a {name} entry, or "
                         f"create_model({model.arch!r}, ...) for this one")  # fmt: skip
    try:
        state, _ = restore(entry, key, model)
    except Exception as exc:  # orbax's own errors for a missing or truncated state/
        raise ValueError(f"pretrained={str(path)!r} cannot be used ({exc}); it is not a sound {ENTRY}") from None
    return model, state


def run(
    suite: PathLike = "smoke",
    archs: Names = None,
    strategies: Names = None,
    quadrants: Names = None,
    heads: Names = None,
    target: PathLike | None = None,
    cache: PathLike | None = None,
    report: PathLike | None = None,
    baseline: PathLike | None = None,
    *,
    pretrained: Names = None,
    save_models: PathLike | None = None,
    force: bool = False,
    baseline_any_suite: bool = False,
) -> Report:
    """Run ``suite``'s scenarios here, in order, as ``pytest --cnnbench`` would, and return the finished report.

    ``archs``, ``strategies``, ``quadrants``, ``heads``: run only these (a name, comma-separated names or a list;
    None: all). ``target``: your dataset, run alone in the quadrant it is measured to belong to. ``report``: a
    directory to write ``<run-id>/`` and ``latest/`` in, rewritten after every scenario; None writes no file.
    ``baseline``: a stored report of the same suite to gate against (regressions get status ``regressed``;
    ``baseline_any_suite``: of any suite). ``pretrained``: tags of imported weights (``cnnbench weights import``)
    that their archs' pretrained strategies start from (``--cnnbench-pretrained``; the suite's ``[input]`` must be
    their canonical one). ``save_models``: a folder to keep each passed scenario's trained model in
    (``--cnnbench-save-models``). ``force``: run a suite meant for an accelerator on a CPU. A bad argument,
    or a report folder that cannot be written, raises ``ValueError`` naming it before anything is trained. Ctrl-C
    (KeyboardInterrupt) writes the report of the finished scenarios, marked ``interrupted``, then propagates.
    """
    from cnnbench.engine.timing import Timer  # the engine loads JAX

    cache_dir = _cache_dir(cache)
    chosen = use_weights(_transfer_suite(suite), _names(pretrained), cache_dir)
    filters = Filters(*(_names(v) for v in (archs, strategies, quadrants, heads)))
    filters.check(chosen)
    refusal = None if force else cpu_refusal(chosen, filters, cache_dir)
    if refusal:
        raise SuiteError(refusal)
    gate = None if baseline is None else load_baseline(Path(baseline))
    mismatch = gate and other_suite(gate, chosen.name)
    if mismatch and not baseline_any_suite:
        raise ValueError(mismatch.replace("--cnnbench-baseline-any-suite", "baseline_any_suite=True"))
    for name, folder in (("report", report), ("save_models", save_models)):
        unwritable = None if folder is None else unwritable_dir(Path(folder))
        if unwritable:
            raise ValueError(f"{name}={str(folder)!r} cannot be written: {unwritable}")
    if target is not None:
        chosen = place_target(chosen, filters, Path(target), cache_dir)
        filters.check(chosen)
    timer = Timer()
    session = Session(chosen, filters, None if report is None else Path(report), cache_dir,
                      writes_reports=report is not None, baseline=gate,
                      save_models=None if save_models is None else Path(save_models))  # fmt: skip
    scenarios = session.scenarios()
    progress = Progress([s.id for s in scenarios])
    try:
        for scenario in scenarios:
            record = session.run(scenario, timer)
            log.info(progress.done(record.id, outcome(record.status, record.test_accuracy)))
    except KeyboardInterrupt:
        session.interrupted = "KeyboardInterrupt"
        session.write(finished=True)
        raise
    session.write(finished=True)
    assert session.report is not None  # written above: every selected scenario has a record
    if report is not None:
        log.info("report: %s", session.run_dir)
    return session.report


def load_report(path: PathLike) -> Report:
    """The report at ``path`` — a ``report.json``, or a run directory holding one such as ``reports/latest`` —
    checked against its schema and typed; raises ``ValueError`` naming the file and what is wrong."""
    return read_report(report_file(path))


def _transfer_suite(suite: PathLike) -> Suite:
    """The transfer suite of that built-in name or path, checked against the live registries."""
    from cnnbench.config.suite import load_suite
    from cnnbench.engine.catalog import registry_catalog  # the registries import the zoo

    return load_suite(os.fspath(suite), registry_catalog())


def _cache_dir(cache: PathLike | None) -> Path:
    return default_cache() if cache is None else Path(cache).expanduser().absolute()


def _names(values: Names) -> tuple[str, ...]:
    """A filter's values: a name, comma-separated names (as on the command line) or a sequence; None: all."""
    if values is None:
        return ()
    items = values.split(",") if isinstance(values, str) else values
    names = tuple(v.strip() for v in items if v.strip())
    if not names:  # `",,"` or `[]` would otherwise select everything
        raise ValueError(f"{values!r} names no value; name one, or pass None for all")
    return names
