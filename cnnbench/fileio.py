"""The one way cnnbench writes a file: :func:`atomic_write`. Reports, baselines, ``cnnbench compare``'s pages and
the pretraining cache's metadata all go through it, so a reader, or a crash, sees the old file or the new one,
never half of one. And the one way it shows a size in bytes (:func:`readable_size`). It sits at the bottom of the
layers, beside the registry, so every layer can use it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Replace ``path`` by ``data`` (text as UTF-8) through a synced temporary file in the same directory, creating
    the directory if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a report is meant to be read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def readable_size(n_bytes: float) -> str:
    """``n_bytes`` for people: 512 B, 3.1 MiB, 12.0 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"
