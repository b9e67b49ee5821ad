"""The pretraining cache (SPEC §4): built on first use, restored bit for bit after, keyed by everything that
determines the base, and an unusable entry (incomplete, damaged, or sound by its SHA256SUMS yet unreadable) is
rebuilt with a ``CacheWarning`` — never silently used. Byte-level corruption, read-only caches and the other caches'
digests: tests/test_cache_integrity.py."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from cnnbench.data.source import SourceConfig, SourceDomain
from cnnbench.engine import integrity, pretrain
from cnnbench.engine.pretrain import CacheWarning, ModelConfig, PretrainConfig, Pretrained, load_into, load_or_pretrain
from cnnbench.engine.train import TrainConfig

MODEL = ModelConfig("lenet5", img_size=32, in_chans=1, width=1.0)
SOURCE = SourceConfig(img_size=32, in_chans=1)
QUICK = PretrainConfig(TrainConfig(steps=4, batch_size=16, eval_points=1), seed=0, eval_size=64)


def _leaves(state: dict) -> list[tuple[str, np.ndarray]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return [(jax.tree_util.keystr(path), np.asarray(leaf)) for path, leaf in flat]


def assert_identical(a: dict, b: dict) -> None:
    """Same tree, same shapes and dtypes, same bits."""
    la, lb = _leaves(a), _leaves(b)
    assert [k for k, _ in la] == [k for k, _ in lb]
    for (key, x), (_, y) in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert np.array_equal(x, y), key


def load(cache: Path, config: PretrainConfig = QUICK, model: ModelConfig = MODEL, source: SourceConfig = SOURCE):
    """``load_or_pretrain`` that fails on any warning: a healthy cache entry is used silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_or_pretrain(model, source, config, cache)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pretrained]:
    """One quick pretraining in its own cache; tests copy the cache before damaging it."""
    cache = tmp_path_factory.mktemp("pretrain-cache")
    return cache, load(cache)


@pytest.fixture
def cache_copy(built: tuple[Path, Pretrained], tmp_path: Path) -> tuple[Path, Pretrained]:
    cache, first = built
    shutil.copytree(cache, tmp_path / "cache")
    return tmp_path / "cache", first


def test_first_call_builds_and_second_is_a_bit_identical_hit(built: tuple[Path, Pretrained]) -> None:
    cache, first = built
    assert not first.cache_hit
    assert first.path.parent == cache / "pretrained" and first.path.name.startswith("lenet5-")
    assert (first.path / "meta.json").is_file() and (first.path / "state").is_dir()
    assert not list(first.path.parent.glob("*.tmp"))  # the entry was renamed into place, no leftovers
    assert 0 <= first.source_accuracy <= 1 and first.seconds > 0

    second = load(cache)
    assert second.cache_hit and second.path == first.path
    assert_identical(second.state, first.state)
    assert (second.source_accuracy, second.seconds) == (first.source_accuracy, first.seconds)

    # the restored state is a usable lenet5 base: it loads into a fresh one, whose parameters are then the cache's
    base = MODEL.create(seed=7)
    load_into(base, second.state)
    assert_identical(nnx.to_pure_dict(nnx.state(base)), first.state)
    random = nnx.to_pure_dict(nnx.state(MODEL.create(seed=0)))
    assert not np.array_equal(random["c1"]["layers"][0]["kernel"], first.state["c1"]["layers"][0]["kernel"])


@pytest.mark.parametrize(
    "change",
    [
        lambda: (dataclasses.replace(QUICK, train=dataclasses.replace(QUICK.train, steps=5)), MODEL, SOURCE),
        lambda: (dataclasses.replace(QUICK, seed=1), MODEL, SOURCE),
        lambda: (QUICK, dataclasses.replace(MODEL, width=0.5), SOURCE),
        lambda: (QUICK, MODEL, dataclasses.replace(SOURCE, eval_seed=SOURCE.eval_seed + 1)),
    ],
    ids=["steps", "seed", "width", "source"],
)
def test_another_config_gets_its_own_entry(cache_copy: tuple[Path, Pretrained], change: Callable) -> None:
    cache, first = cache_copy
    config, model, source = change()
    other = load(cache, config, model, source)
    assert not other.cache_hit and other.path != first.path
    assert sorted(p.name for p in (cache / "pretrained").iterdir() if p.is_dir()) == sorted(
        [first.path.name, other.path.name]
    )
    assert load(cache).cache_hit  # the first entry is untouched
    assert load(cache, config, model, source).cache_hit


def test_an_edit_to_the_arch_code_gets_its_own_entry(
    cache_copy: tuple[Path, Pretrained], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same configs, different model code (e.g. another BatchNorm momentum): the old base must not be reused."""
    cache, first = cache_copy
    monkeypatch.setattr(pretrain, "code_digest", lambda arch: "edited-" + arch)
    edited = load(cache)
    assert not edited.cache_hit and edited.path.name != first.path.name
    assert json.loads((edited.path / "meta.json").read_text())["key"]["code"] == "edited-lenet5"
    monkeypatch.undo()
    assert load(cache).cache_hit  # the entry of the unedited code is untouched


def test_another_backend_gets_its_own_entry(
    cache_copy: tuple[Path, Pretrained], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One cache directory serves CPU and GPU runs: a GPU run never restores a CPU-built base (other numerics)."""
    cache, first = cache_copy
    assert pretrain.cache_key(MODEL, SOURCE, QUICK)["backend"] == jax.default_backend() == "cpu"
    assert json.loads((first.path / "meta.json").read_text())["key"]["backend"] == "cpu"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert pretrain.cache_key(MODEL, SOURCE, QUICK)["backend"] == "gpu"
    other = load(cache)
    assert not other.cache_hit and other.path.name != first.path.name
    monkeypatch.undo()
    assert load(cache).cache_hit  # the CPU entry is untouched


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _other_key(meta_path: Path) -> None:
    meta = json.loads(meta_path.read_text())
    meta["key"]["pretrain"]["train"]["steps"] += 1
    meta_path.write_text(json.dumps(meta))


def _largest_file(state_dir: Path) -> Path:  # the OCDBT data file that holds the kernels
    return max((f for f in state_dir.rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)


def _resealed(harm: Callable[[Path], object]) -> Callable[[Path], None]:
    """The damage, then the entry's SHA256SUMS written again over it (by hand, say): the checks past the digests
    still turn the entry down."""

    def apply(entry: Path) -> None:
        harm(entry)
        integrity.write_sums(entry)

    return apply


def _unlink_meta(e: Path) -> None:
    (e / "meta.json").unlink()


def _no_accuracy(e: Path) -> None:
    (e / "meta.json").write_text(json.dumps({"key": json.loads((e / "meta.json").read_text())["key"]}))


DIFFERS = "differs from its sha256 in SHA256SUMS"
DAMAGE = {
    "meta-other-key": (lambda e: _other_key(e / "meta.json"), f"meta.json {DIFFERS}"),
    "meta-missing-resealed": (_resealed(_unlink_meta), "no meta.json"),
    "meta-garbage-resealed": (_resealed(lambda e: (e / "meta.json").write_text("{not json")), "Expecting property"),
    "meta-not-object-resealed": (_resealed(lambda e: (e / "meta.json").write_text("[1, 2]")), "lacks key"),
    "meta-other-key-resealed": (_resealed(lambda e: _other_key(e / "meta.json")), "for a different configuration"),
    "meta-no-accuracy-resealed": (_resealed(_no_accuracy), "source_accuracy"),
    "sums-missing": (lambda e: (e / "SHA256SUMS").unlink(), "no SHA256SUMS: the entry was never completed"),
    "sums-cut": (lambda e: _truncate(e / "SHA256SUMS"), "SHA256SUMS is malformed"),
    "state-missing": (lambda e: shutil.rmtree(e / "state"), "is listed in SHA256SUMS but missing"),
    "state-data-deleted": (lambda e: _largest_file(e / "state").unlink(), "is listed in SHA256SUMS but missing"),
    "state-data-truncated": (lambda e: _truncate(_largest_file(e / "state")), DIFFERS),
    "state-data-truncated-resealed": (_resealed(lambda e: _truncate(_largest_file(e / "state"))), "unusable"),
    "state-emptied": (lambda e: [f.write_bytes(b"") for f in (e / "state").rglob("*") if f.is_file()], DIFFERS),
    "state-file-added": (lambda e: (e / "state" / "extra").write_text("x"), "state/extra is not listed in SHA256SUMS"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_unusable_entry_is_rebuilt_with_a_warning(cache_copy: tuple[Path, Pretrained], damage: str) -> None:
    cache, first = cache_copy
    entry = cache / "pretrained" / first.path.name
    harm, reason = DAMAGE[damage]
    harm(entry)

    with pytest.warns(CacheWarning, match="rebuilding it") as caught:
        rebuilt = load_or_pretrain(MODEL, SOURCE, QUICK, cache)
    message = str(caught[0].message)
    assert str(entry) in message and reason in message
    assert not rebuilt.cache_hit and rebuilt.path == entry
    assert_identical(rebuilt.state, first.state)  # pretraining is deterministic: the same base comes back

    again = load(cache)  # and the rebuilt entry is a healthy one
    assert again.cache_hit
    assert_identical(again.state, first.state)


def test_pretrained_base_beats_random_on_the_source(tmp_path: Path) -> None:
    """A modest budget (150 steps of 32 glyphs) lifts source accuracy far above chance, and the cached base's
    features separate the 52 letters better than a random base's (nearest class mean on held-out glyphs)."""
    config = PretrainConfig(TrainConfig(steps=150, batch_size=32, learning_rate=3e-3, eval_points=1), eval_size=200)
    pretrained = load(tmp_path, config)
    n_classes = SourceDomain(SOURCE).n_classes
    assert n_classes == 52
    assert pretrained.source_accuracy > 5 / n_classes  # chance is 1/52 ≈ 0.019; this budget reaches ~0.35

    x, y = (np.asarray(a) for a in SourceDomain(SOURCE).eval_set(1040))
    restored = load(tmp_path, config)  # judge the base as the benchmark gets it: restored from the cache
    assert restored.cache_hit
    trained = MODEL.create(seed=0)
    load_into(trained, restored.state)
    pre, rand = _nearest_class_mean(trained, x, y, n_classes), _nearest_class_mean(MODEL.create(0), x, y, n_classes)
    assert pre > rand + 0.05, (pre, rand)


def _nearest_class_mean(base: nnx.Module, x: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """Accuracy on the second half of ``x`` of the class means of the base's features on the first half."""
    base.eval()
    features = np.asarray(base.forward_features(x)).reshape(len(x), -1)
    half = len(x) // 2
    means = np.stack([features[:half][y[:half] == k].mean(0) for k in range(n_classes)])
    distances = ((features[half:, None, :] - means[None]) ** 2).sum(-1)
    return float((distances.argmin(1) == y[half:]).mean())


CONCURRENT = f"""
import sys, time
from pathlib import Path
from cnnbench.data.source import SourceConfig
from cnnbench.engine.pretrain import ModelConfig, PretrainConfig, load_or_pretrain
from cnnbench.engine.train import TrainConfig
cache, me = Path(sys.argv[1]), sys.argv[2]
(cache / me).touch()
while len(list(cache.glob("ready-*"))) < 2:  # both processes ask for the base once both have imported JAX
    time.sleep(0.01)
result = load_or_pretrain({MODEL!r}, SourceConfig(img_size=32, in_chans=1), {QUICK!r}, cache)
print("hit" if result.cache_hit else "built", result.source_accuracy)
"""


def test_concurrent_processes_pretrain_a_base_once(tmp_path: Path) -> None:
    """Two processes (pytest-xdist workers, shards on one machine) asking for the same uncached base at once: one
    builds it while the other waits on the entry's lock, then loads what the first built."""
    workers = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path), f"ready-{i}"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]  # fmt: skip
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    lines = sorted(out.split() for out, _ in outputs)
    assert [how for how, _ in lines] == ["built", "hit"] and lines[0][1] == lines[1][1]
    assert len([p for p in (tmp_path / "pretrained").iterdir() if p.is_dir()]) == 1


WITHOUT_FCNTL = """
import importlib, pkgutil, sys
sys.modules["fcntl"] = None  # as on Windows: `import fcntl` raises ImportError
import cnnbench
names = [module.name for module in pkgutil.walk_packages(cnnbench.__path__, "cnnbench.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_module_imports_without_fcntl() -> None:
    """The entry lock is filelock's, not ``fcntl``'s: every cnnbench module (the engine's pretraining, the plugin,
    the command, the session among them) imports where ``fcntl`` does not exist, as on Windows."""
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", WITHOUT_FCNTL], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 80  # it walked the package, not an empty list
