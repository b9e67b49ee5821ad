"""Content digests that make every cache entry checkable: written last, when an entry is committed, and checked when
it is read, so that a file changed since (a disk error, a stray write, a copy cut short) is found and the entry
rebuilt, never used.

One shape per writer (docs/architecture.md, Caches): a directory entry (a pretrained base) holds a ``SHA256SUMS``
over every other file in it, in ``sha256sum``'s format, so ``sha256sum -c SHA256SUMS`` in the entry checks it by
hand too; a JSON entry (a separability) holds a ``digest`` field over the rest of its object; and a program that JAX
wrote into its persistent compilation cache gets a ``<file>.sha256`` beside it, in the same format, from the process
that compiled it. Where an entry must be rebuilt but the cache cannot be written, :class:`ReadOnlyCacheError` says
which entry and what to do. No JAX here: ``cnnbench cache info`` checks entries with these functions and starts at
once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

from cnnbench.fileio import atomic_write
from cnnbench.locations import CACHE_ENV, unwritable_dir

SUMS = "SHA256SUMS"  # a directory entry's digests, written last
BASE_FORMAT = 2  # a pretrained base's layout, in its cache key: 2 added SHA256SUMS, so format 1's entries are not read
DIGEST = "digest"  # a JSON entry's digest field
PROGRAM_SUFFIX = "-cache"  # JAX's file of one compiled program (its LRU cache: <key>-cache, and <key>-atime)
PROGRAM_ATIME_SUFFIX = "-atime"
PROGRAM_SUM_SUFFIX = ".sha256"  # <key>-cache.sha256: the program's digest, beside it
_LINE = re.compile(r"([0-9a-f]{64})  ([^\n]+)")  # sha256sum's text format: digest, two spaces, name


class IntegrityError(ValueError):
    """A cache entry's content differs from the digests written when it was committed, or it has none."""


class ReadOnlyCacheError(RuntimeError):
    """A cache entry has to be built or rebuilt, and the cache cannot be written."""


class ProgramCacheWarning(UserWarning):
    """A program in JAX's persistent compilation cache differed from its digest; it is removed and compiled again."""


def file_sha256(path: Path) -> str:
    """The sha256 of the file at ``path``, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(root: Path) -> list[str]:
    """The files under the directory ``root`` (its SHA256SUMS aside) as sorted relative POSIX paths."""
    names = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(name for name in names if name != SUMS)


def write_sums(root: Path) -> None:
    """Record the sha256 of every file under the directory ``root`` in ``root/SHA256SUMS``: the last file an entry
    gets, just before it is committed (renamed into place)."""
    lines = "".join(f"{file_sha256(root / name)}  {name}\n" for name in _files(root))
    atomic_write(root / SUMS, lines)


def check_sums(root: Path) -> None:
    """Check the directory entry ``root`` against its SHA256SUMS; an IntegrityError names the first file that
    differs from its digest, is missing, or is not listed, or says what is wrong with SHA256SUMS itself."""
    try:
        text = (root / SUMS).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IntegrityError(f"no {SUMS}: the entry was never completed, or an older cnnbench wrote it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{SUMS} is unreadable ({type(exc).__name__}: {exc})") from None
    recorded = _parse_sums(text)
    present = _files(root)
    for name in sorted(set(recorded) | set(present)):
        if name not in present:
            raise IntegrityError(f"{name} is listed in {SUMS} but missing")
        if name not in recorded:
            raise IntegrityError(f"{name} is not listed in {SUMS}: it was added after the entry was written")
        found = file_sha256(root / name)
        if found != recorded[name]:
            raise IntegrityError(_differs(name, recorded[name], found, SUMS))


def _parse_sums(text: str) -> dict[str, str]:
    """File name → sha256 from sha256sum's format; IntegrityError where a line is not one (or the text does not end
    with a newline, as a cut one does not)."""
    lines = text.split("\n")
    if lines[-1]:
        raise IntegrityError(f"{SUMS} is malformed: its last line is incomplete")
    recorded: dict[str, str] = {}
    for number, line in enumerate(lines[:-1], 1):
        match = _LINE.fullmatch(line)
        if match is None or match[2] in recorded:
            raise IntegrityError(f"{SUMS} is malformed at line {number}")
        recorded[match[2]] = match[1]
    return recorded


def _differs(name: str, recorded: str, found: str, where: str) -> str:
    return (f"{name} differs from its sha256 in {where} (recorded {recorded[:12]}…, found {found[:12]}…): it "
            "changed after it was written")  # fmt: skip


def _json_sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(obj: dict) -> dict:
    """``obj`` with a ``digest`` field: the sha256 of the rest as canonical JSON (sorted keys, no spaces), so the
    digest holds however the file is indented."""
    return {**obj, DIGEST: _json_sha256(obj)}


def unseal(obj: Any) -> dict:
    """The JSON object ``obj`` without its ``digest``, once checked against it; IntegrityError where it is not an
    object, has no digest, or differs from it."""
    if not isinstance(obj, dict):
        raise IntegrityError(f"not a JSON object but {type(obj).__name__}")
    if DIGEST not in obj:
        raise IntegrityError(f"no {DIGEST}: an older cnnbench wrote it")
    rest = {k: v for k, v in obj.items() if k != DIGEST}
    if obj[DIGEST] != _json_sha256(rest):
        raise IntegrityError(f"its content differs from its {DIGEST}: it changed after it was written")
    return rest


def unwritable(path: Path) -> str | None:
    """Why cache entries cannot be written under the folder ``path`` (:func:`cnnbench.locations.unwritable_dir`),
    or None; asked only when something has to be written, never on a hit."""
    return unwritable_dir(Path(path))


def read_only_error(what: str, entry: Path, problem: str | None, why: str) -> ReadOnlyCacheError:
    """The error for ``what`` (``"pretraining cache entry"``…) at ``entry``, unusable for ``problem`` (None: absent),
    that cannot be rebuilt because the cache cannot be written (``why``), with the ways out."""
    if problem is None:
        return ReadOnlyCacheError(
            f"{what} {entry} is not in the cache, and it cannot be built there: {why}. Build it once where the cache "
            f"can be written, or point {CACHE_ENV} (or --cnnbench-cache) at a writable directory"
        )
    return ReadOnlyCacheError(
        f"{what} {entry} is unusable ({problem}), and it cannot be rebuilt: {why}. Delete it (rm -r '{entry}') as a "
        f"user who can write there, or point {CACHE_ENV} (or --cnnbench-cache) at a writable directory"
    )


# ------------------------------------------------------------------------------- JAX's compiled programs


def programs(directory: Path) -> list[Path]:
    """The compiled programs JAX keeps in the persistent-cache folder ``directory``, sorted."""
    return sorted(directory.glob(f"*{PROGRAM_SUFFIX}")) if directory.is_dir() else []


def _program_sum(program: Path) -> Path:
    return program.with_name(program.name + PROGRAM_SUM_SUFFIX)


def program_problem(program: Path) -> str | None:
    """What is wrong with a compiled program that has a digest beside it (None: it matches, or it has none, and is
    left to JAX's own checks)."""
    digest_file = _program_sum(program)
    try:
        text = digest_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"its digest file {digest_file.name} is unreadable ({type(exc).__name__}: {exc})"
    match = _LINE.fullmatch(text.removesuffix("\n"))
    if match is None or match[2] != program.name:
        return f"its digest file {digest_file.name} is malformed"
    found = file_sha256(program)
    return None if found == match[1] else _differs(program.name, match[1], found, digest_file.name)


def check_programs(directory: Path) -> list[Path]:
    """Remove, each with a :class:`ProgramCacheWarning`, the compiled programs in ``directory`` that differ from
    the digest beside them, so that JAX compiles them again instead of loading them; return them. A digest whose
    program is gone (evicted, cleared) is dropped. Raises :class:`ReadOnlyCacheError` where a bad program cannot
    be removed."""
    removed = []
    for digest_file in sorted(directory.glob(f"*{PROGRAM_SUFFIX}{PROGRAM_SUM_SUFFIX}")) if directory.is_dir() else []:
        program = digest_file.with_name(digest_file.name.removesuffix(PROGRAM_SUM_SUFFIX))
        if not program.exists():
            _unlink(digest_file)
            continue
        problem = program_problem(program)
        if problem is None:
            continue
        why = unwritable(directory)
        if why:
            raise read_only_error("compiled program", program, problem, why)
        warnings.warn(f"compiled program {program} is unusable ({problem}); removing it, so JAX compiles it again",
                      ProgramCacheWarning, stacklevel=3)  # fmt: skip
        atime = program.with_name(program.name.removesuffix(PROGRAM_SUFFIX) + PROGRAM_ATIME_SUFFIX)
        for path in (program, atime, digest_file):
            path.unlink(missing_ok=True)
        removed.append(program)
    return removed


def record_programs(directory: Path, known: Collection[str]) -> int:
    """Write the digest beside each compiled program in ``directory`` that has none and is not in ``known`` (the
    programs there before this process enabled the cache: an older cnnbench's, not checked now); return how many.
    A program whose file changes while it is read (another process is still writing it) is left for a later
    call, one whose digest cannot be written unrecorded."""
    count = 0
    for program in programs(directory):
        if program.name in known or _program_sum(program).exists():
            continue
        try:
            before = program.stat()
            digest = file_sha256(program)
            after = program.stat()
        except FileNotFoundError:  # evicted or removed meanwhile
            continue
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            continue
        try:
            atomic_write(_program_sum(program), f"{digest}  {program.name}\n")
        except OSError:  # a read-only cache: the program stays unrecorded, left to JAX's own checks
            continue
        count += 1
    return count


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache keeps a stale digest: harmless, it names no program
        path.unlink(missing_ok=True)
