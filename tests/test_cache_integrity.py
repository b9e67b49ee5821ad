"""Every cache entry carries a content digest written last, when it is committed, and checked when it is read
(cnnbench.engine.integrity): a pretrained base's SHA256SUMS, a separability's ``digest`` field, a compiled program's
``.sha256`` beside it. One byte, 64 bytes or a whole file of random bytes in an entry is found, named in a warning,
and the entry rebuilt, bit for bit the same; where the cache is read-only, a sound entry serves without the write
lock and a bad one is an error that names it and the fix. An interrupted build is removed with a warning."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_pretrain import MODEL, QUICK, SOURCE, _largest_file, assert_identical, load

from cnnbench.engine import integrity, pretrain
from cnnbench.engine.integrity import IntegrityError, ProgramCacheWarning, ReadOnlyCacheError
from cnnbench.engine.pretrain import CacheWarning, Pretrained, load_or_pretrain
from cnnbench.engine.separability_cache import SeparabilityCache, SeparabilityCacheWarning
from cnnbench.engine.similarity import Separability


def flip_one_byte(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    out[rng.randrange(len(out))] ^= 0xFF
    return bytes(out)


def overwrite_64_bytes(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data) - 64)
    out = bytearray(data)
    out[start : start + 64] = bytes(b ^ rng.randrange(1, 256) for b in data[start : start + 64])  # each byte changes
    return bytes(out)


def random_file(data: bytes, rng: random.Random) -> bytes:
    return rng.randbytes(len(data))


CORRUPT: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "1-byte": flip_one_byte,
    "64-bytes": overwrite_64_bytes,
    "whole-file": random_file,
}


def corrupt(path: Path, how: str, seed: int = 0) -> None:
    data = path.read_bytes()
    damaged = CORRUPT[how](data, random.Random(seed))
    assert damaged != data and len(damaged) == len(data)
    path.write_bytes(damaged)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pretrained]:
    """One quick pretraining (tests/test_pretrain.py's configs) in its own cache; tests copy it before harm."""
    cache = tmp_path_factory.mktemp("integrity-cache")
    return cache, load(cache)


@pytest.fixture
def cache_copy(built: tuple[Path, Pretrained], tmp_path: Path) -> tuple[Path, Path, Pretrained]:
    """A copy of the built cache, its entry, and the first build."""
    cache, first = built
    shutil.copytree(cache, tmp_path / "cache")
    return tmp_path / "cache", tmp_path / "cache" / "pretrained" / first.path.name, first


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a cache read-only: its folders 0o555 and files 0o444 (restored after the test), and, where the tests run
    as root, whom permissions do not stop, the writability check told so too."""
    changed: list[tuple[Path, int]] = []

    def make(root: Path) -> None:
        for path in [*sorted(root.rglob("*"), reverse=True), root]:
            changed.append((path, stat.S_IMODE(path.stat().st_mode)))
            path.chmod(0o555 if path.is_dir() else 0o444)
        if os.geteuid() == 0:
            monkeypatch.setattr(integrity, "unwritable_dir", lambda path: f"{path} cannot be written (read-only)")

    try:
        yield make
    finally:
        for path, mode in reversed(changed):
            path.chmod(mode)


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, integrity.file_sha256(p))
            for p in root.rglob("*") if p.is_file()}  # fmt: skip


# ------------------------------------------------------------------------------------ pretrained bases


def test_a_base_entry_carries_sha256sums_of_every_other_file_written_last(built: tuple[Path, Pretrained]) -> None:
    _, first = built
    entry = first.path
    files = sorted(p for p in entry.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    sums = (entry / "SHA256SUMS").read_text()
    expected = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(entry).as_posix()}\n"
                       for p in sorted(files, key=lambda p: p.relative_to(entry).as_posix()))  # fmt: skip
    assert sums == expected
    assert "  meta.json\n" in sums and sum("  state/" in line for line in sums.splitlines()) == len(files) - 1
    assert (entry / "SHA256SUMS").stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in files)  # written last
    assert json.loads((entry / "meta.json").read_text())["key"]["format"] == integrity.BASE_FORMAT == 2
    if shutil.which("sha256sum"):  # the format is sha256sum's: it checks an entry by hand
        subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=entry, check=True)


@pytest.mark.parametrize("how", list(CORRUPT))
@pytest.mark.parametrize("which", ["state-data", "meta.json", "SHA256SUMS"])
def test_a_corrupted_base_is_found_named_and_rebuilt_bit_identical(
    cache_copy: tuple[Path, Path, Pretrained], which: str, how: str
) -> None:
    """Random bytes in the checkpoint's data file (the issue's 64 bytes restored as a hit; 20 KB diverged
    training), in meta.json or in SHA256SUMS itself: a warning names the entry and the file, and the base built
    again is the first one, bit for bit; then the entry is sound again."""
    cache, entry, first = cache_copy
    target = {"state-data": _largest_file(entry / "state"), "meta.json": entry / "meta.json",
              "SHA256SUMS": entry / "SHA256SUMS"}[which]  # fmt: skip
    corrupt(target, how)

    with pytest.warns(CacheWarning, match="rebuilding it") as caught:
        rebuilt = load_or_pretrain(MODEL, SOURCE, QUICK, cache)
    (message,) = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert message.startswith(f"pretraining cache entry {entry} is unusable (")
    name = target.relative_to(entry).as_posix()
    if which == "SHA256SUMS":
        assert "SHA256SUMS is" in message or "differs from its sha256 in SHA256SUMS" in message, message
    else:
        assert f"({name} differs from its sha256 in SHA256SUMS (recorded " in message, message
    assert not rebuilt.cache_hit and rebuilt.path == entry
    assert_identical(rebuilt.state, first.state)
    assert rebuilt.source_accuracy == first.source_accuracy
    integrity.check_sums(entry)

    again = load(cache)  # no warning: the rebuilt entry is sound
    assert again.cache_hit
    assert_identical(again.state, first.state)


def test_an_interrupted_build_is_removed_with_a_warning_naming_it(cache_copy: tuple[Path, Path, Pretrained]) -> None:
    cache, entry, first = cache_copy
    tmp = entry.with_name(entry.name + ".tmp")
    shutil.move(entry, tmp)  # a build that stopped before its rename: complete or not, never read
    (tmp / "SHA256SUMS").unlink()

    with pytest.warns(CacheWarning) as caught:
        built = load_or_pretrain(MODEL, SOURCE, QUICK, cache)
    (message,) = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert message == f"pretraining cache: removing {tmp}, an unfinished build of this entry (interrupted)"
    assert not tmp.exists() and not built.cache_hit
    assert_identical(built.state, first.state)
    assert load(cache).cache_hit


def test_a_read_only_cache_serves_a_sound_base_without_the_write_lock(
    cache_copy: tuple[Path, Path, Pretrained], read_only: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, entry, first = cache_copy
    before = _snapshot(cache)

    def no_lock(entry: Path) -> None:
        raise AssertionError(f"a sound entry took the write lock {entry}.lock")

    monkeypatch.setattr(pretrain, "_lock", no_lock)
    read_only(cache)
    hit = load(cache)  # and no warning
    assert hit.cache_hit and hit.path == entry
    assert_identical(hit.state, first.state)
    assert (hit.source_accuracy, hit.seconds) == (first.source_accuracy, first.seconds)
    assert _snapshot(cache) == before  # nothing written, touched or added


@pytest.mark.parametrize("state", ["corrupted", "missing"])
def test_a_read_only_cache_that_must_rebuild_raises_naming_the_entry_and_the_fix(
    cache_copy: tuple[Path, Path, Pretrained], read_only: Callable[[Path], None], state: str
) -> None:
    cache, entry, _ = cache_copy
    if state == "corrupted":
        corrupt(_largest_file(entry / "state"), "64-bytes")
    else:
        shutil.rmtree(entry)
    before = _snapshot(cache)
    read_only(cache)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, not a warning and a failed rebuild
        with pytest.raises(ReadOnlyCacheError) as raised:
            load_or_pretrain(MODEL, SOURCE, QUICK, cache)
    message = str(raised.value)
    assert message.startswith(f"pretraining cache entry {entry} ")
    assert "cannot be written" in message and "CNNBENCH_CACHE (or --cnnbench-cache) at a writable directory" in message
    if state == "corrupted":
        assert "is unusable (state/ocdbt.process_0/d/" in message and "differs from its sha256" in message
        assert f"Delete it (rm -r '{entry}')" in message
    else:
        assert "is not in the cache, and it cannot be built there" in message
    assert _snapshot(cache) == before


# ------------------------------------------------------------------------------------ check_sums itself


@pytest.mark.parametrize(
    ("harm", "reason"),
    [
        (lambda e: (e / "SHA256SUMS").write_bytes(b"\xff\xfe"), "SHA256SUMS is unreadable (UnicodeDecodeError"),
        (lambda e: (e / "SHA256SUMS").write_text("not a digest  a\n"), "SHA256SUMS is malformed at line 1"),
        (lambda e: (e / "SHA256SUMS").write_text((e / "SHA256SUMS").read_text() * 2), "SHA256SUMS is malformed at "
                                                                                     "line 3"),
        (lambda e: (e / "b" / "c").unlink(), "b/c is listed in SHA256SUMS but missing"),
        (lambda e: (e / "b" / "d").write_text(""), "b/d is not listed in SHA256SUMS: it was added after"),
        (lambda e: (e / "a").write_text("A"), "a differs from its sha256 in SHA256SUMS (recorded ca978112ca1b…, "
                                              "found 559aead08264…): it changed after it was written"),
    ],
    ids=["not-text", "malformed", "listed-twice", "missing", "added", "changed"],
)  # fmt: skip
def test_check_sums_names_what_is_wrong(tmp_path: Path, harm: Callable[[Path], object], reason: str) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").write_text("a")
    (tmp_path / "b" / "c").write_bytes(b"")
    integrity.write_sums(tmp_path)
    integrity.check_sums(tmp_path)
    harm(tmp_path)
    with pytest.raises(IntegrityError) as raised:
        integrity.check_sums(tmp_path)
    assert str(raised.value).startswith(reason), str(raised.value)


# ------------------------------------------------------------------------------------ separabilities


VALUE = Separability(0.8123456789, 0.3456789012)


class Measure:
    """A separability measurement that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Separability:
        self.calls += 1
        return VALUE


def _one_digit_changed(path: Path) -> None:
    """The pretrained separability's last digit, changed: still valid JSON, another number — what only a digest
    finds."""
    text = path.read_text()
    assert text.count("0.8123456789") == 1
    path.write_text(text.replace("0.8123456789", "0.8123456788"))


SEPARABILITY_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "1-byte": (_one_digit_changed, "its content differs from its digest: it changed after it was written"),
    "64-bytes": (lambda p: corrupt(p, "64-bytes"), "is unusable ("),
    "whole-file": (lambda p: corrupt(p, "whole-file"), "is unusable ("),
    "no-digest": (lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items()
                                                     if k != "digest"})), "no digest: an older cnnbench wrote it"),
}  # fmt: skip


def _separability_entry(cache: Path) -> tuple[SeparabilityCache, Path]:
    store, measure = SeparabilityCache(cache), Measure()
    assert store.get("lenet5-0123456789abcdef", "fp32", "data0", measure) == VALUE and measure.calls == 1
    (path,) = (cache / "similarity").glob("*.json")
    return store, path


@pytest.mark.parametrize("damage", list(SEPARABILITY_DAMAGE))
def test_a_corrupted_separability_is_found_named_and_measured_again(tmp_path: Path, damage: str) -> None:
    store, path = _separability_entry(tmp_path)
    entry = json.loads(path.read_text())
    assert entry == integrity.seal({"key": entry["key"], "pretrained": VALUE.pretrained, "random": VALUE.random})
    assert integrity.unseal(entry)["pretrained"] == VALUE.pretrained
    harm, reason = SEPARABILITY_DAMAGE[damage]
    harm(path)

    measure = Measure()
    with pytest.warns(SeparabilityCacheWarning) as caught:
        assert store.get("lenet5-0123456789abcdef", "fp32", "data0", measure) == VALUE
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"similarity cache entry {path} is unusable (") and message.endswith("measuring again")
    assert reason in message, message
    assert measure.calls == 1 and json.loads(path.read_text()) == entry  # measured again, stored sealed again

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get("lenet5-0123456789abcdef", "fp32", "data0", measure) == VALUE
    assert measure.calls == 1  # the entry is read again, sound


def test_a_read_only_similarity_cache_serves_raises_and_measures_without_storing(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    store, path = _separability_entry(tmp_path)
    read_only(tmp_path)
    measure = Measure()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get("lenet5-0123456789abcdef", "fp32", "data0", measure) == VALUE  # a sound entry: read
        assert store.get("lenet5-0123456789abcdef", "fp32", "data1", measure) == VALUE  # none: measured, not kept
    assert measure.calls == 1 and [p.name for p in (tmp_path / "similarity").iterdir()] == [path.name]

    path.chmod(0o644)
    _one_digit_changed(path)
    path.chmod(0o444)
    with pytest.raises(ReadOnlyCacheError) as raised:
        store.get("lenet5-0123456789abcdef", "fp32", "data0", measure)
    message = str(raised.value)
    assert message.startswith(f"similarity cache entry {path} is unusable (its content differs from its digest")
    assert f"rm -r '{path}'" in message and "CNNBENCH_CACHE" in message


# ------------------------------------------------------------------------------------ compiled programs


def _program(directory: Path, name: str, data: bytes) -> Path:
    path = directory / f"jit_{name}-{hashlib.sha256(name.encode()).hexdigest()}-cache"
    path.write_bytes(data)
    return path


def test_check_programs_removes_a_program_that_differs_from_its_digest(tmp_path: Path) -> None:
    old = _program(tmp_path, "old", b"there before this process enabled the cache")
    kept, bad = _program(tmp_path, "kept", os.urandom(5000)), _program(tmp_path, "bad", os.urandom(5000))
    atime = bad.with_name(bad.name.removesuffix("-cache") + "-atime")
    atime.write_bytes(b"12345678")
    assert integrity.record_programs(tmp_path, known={old.name}) == 2  # the old program is not vouched for
    assert integrity.record_programs(tmp_path, known={old.name}) == 0  # nor is anything recorded twice
    assert sorted(p.name for p in tmp_path.glob("*.sha256")) == sorted([f"{kept.name}.sha256", f"{bad.name}.sha256"])
    assert (tmp_path / f"{kept.name}.sha256").read_text() == f"{integrity.file_sha256(kept)}  {kept.name}\n"
    gone = _program(tmp_path, "gone", b"evicted")
    assert integrity.record_programs(tmp_path, known={old.name}) == 1
    gone.unlink()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert integrity.check_programs(tmp_path) == []  # all sound; the digest of a program gone is dropped
    assert not (tmp_path / f"{gone.name}.sha256").exists()

    corrupt(bad, "1-byte")
    corrupt(old, "whole-file")  # no digest: left to JAX's own checks
    with pytest.warns(ProgramCacheWarning) as caught:
        assert integrity.check_programs(tmp_path) == [bad]
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"compiled program {bad} is unusable ({bad.name} differs from its sha256 in "
                              f"{bad.name}.sha256 (recorded ")  # fmt: skip
    assert message.endswith("removing it, so JAX compiles it again")
    assert not bad.exists() and not atime.exists() and not (tmp_path / f"{bad.name}.sha256").exists()
    assert kept.exists() and old.exists()


def test_check_programs_in_a_read_only_cache_raises_naming_the_program(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    program = _program(tmp_path, "f", os.urandom(3000))
    integrity.record_programs(tmp_path, known=set())
    corrupt(program, "64-bytes")
    read_only(tmp_path)
    with pytest.raises(ReadOnlyCacheError) as raised:
        integrity.check_programs(tmp_path)
    message = str(raised.value)
    assert message.startswith(f"compiled program {program} is unusable ({program.name} differs from its sha256")
    assert f"rm -r '{program}'" in message and program.exists()


COMPILE = """
import json, sys, warnings
from pathlib import Path
import jax, jax.numpy as jnp, numpy as np
from cnnbench.engine import programs
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    path = programs.persist(Path(sys.argv[1]))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # these programs compile in milliseconds
x = np.linspace(-1, 1, 48 * 16, dtype=np.float32).reshape(48, 16)
out = {}
for name, scale in (("one_byte", 1.0), ("sixty_four", 2.0), ("whole_file", 3.0), ("payload", 4.0)):
    def fn(a, scale=scale):
        return jnp.tanh(a @ a.T).sum(0) * scale
    fn.__name__ = fn.__qualname__ = name
    program, _ = programs.PROGRAMS.get(programs.jitted(fn), (), x)
    out[name] = np.asarray(program.compiled(x)).tolist()
recorded = len(list(path.glob("*.sha256")))  # before exit: recorded as each program was written
print(json.dumps({"out": out, "hits": programs._CACHE_HITS[0], "recorded": recorded,
                  "warnings": [str(w.message) for w in caught]}))
"""


def _compile(cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", COMPILE, str(cache)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_corrupted_compiled_programs_are_removed_before_jax_reads_them_and_compiled_again(tmp_path: Path) -> None:
    """In a process of its own (a bad program could crash one): four programs compiled and recorded, then each
    corrupted — one byte, 64 bytes, the whole file, and one byte of the compressed payload, recompressed, which
    passes JAX's own check where its compression has no checksum (zstd) — are each named in a warning and removed,
    compiled again with the same results, and loaded from the cache in the next process."""
    first = _compile(tmp_path)
    directory = tmp_path / "xla" / "cpu"
    files = {name: next(directory.glob(f"jit_{name}-*-cache")) for name in first["out"]}
    assert first["hits"] == 0 and first["recorded"] == 4 and first["warnings"] == []
    x = np.linspace(-1, 1, 48 * 16, dtype=np.float32).reshape(48, 16).astype(np.float64)
    for name, scale in (("one_byte", 1.0), ("sixty_four", 2.0), ("whole_file", 3.0), ("payload", 4.0)):
        assert np.allclose(first["out"][name], np.tanh(x @ x.T).sum(0) * scale, rtol=1e-4, atol=1e-4)

    corrupt(files["one_byte"], "1-byte")
    corrupt(files["sixty_four"], "64-bytes")
    corrupt(files["whole_file"], "whole-file")
    payload = files["payload"].read_bytes()
    try:
        raw = zlib.decompress(payload)
    except zlib.error:  # zstd: no zlib stream to alter; a plain byte is the same test
        corrupt(files["payload"], "1-byte", seed=1)
    else:
        files["payload"].write_bytes(zlib.compress(flip_one_byte(raw[: len(raw) // 2], random.Random(1))
                                                   + raw[len(raw) // 2 :]))  # fmt: skip
    damaged = {name: path.read_bytes() for name, path in files.items()}

    second = _compile(tmp_path)
    assert second["hits"] == 0 and second["out"] == first["out"]
    assert len(second["warnings"]) == 4
    for name, path in files.items():
        (message,) = [w for w in second["warnings"] if str(path) in w]
        assert message.startswith(f"compiled program {path} is unusable ({path.name} differs from its sha256 in ")
        assert path.read_bytes() != damaged[name]  # written anew by JAX, and its digest with it
        assert not integrity.program_problem(path) and path.with_name(path.name + ".sha256").exists()

    third = _compile(tmp_path)
    assert third["hits"] == 4 and third["warnings"] == [] and third["out"] == first["out"]
