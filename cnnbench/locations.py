"""Where cnnbench keeps its cache by default, the one rule every entry point shares (the plugin, the ``cnnbench``
command and the Python API): ``CNNBENCH_CACHE`` when set, else ``.cnnbench-cache`` under the project's directory.
A path given explicitly (an option, an argument) always wins over both. And whether a path can be written, asked
before a run starts rather than found out when it ends."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_ENV = "CNNBENCH_CACHE"
DEFAULT_CACHE = ".cnnbench-cache"


def default_cache(project: Path | None = None) -> Path:
    """``$CNNBENCH_CACHE`` (relative to the working directory when relative), else ``.cnnbench-cache`` in
    ``project`` (default: the working directory)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return (project or Path.cwd()) / DEFAULT_CACHE


def unwritable_dir(path: Path) -> str | None:
    """Why cnnbench could not write files into the folder ``path`` (made when missing), or None when it can: a file
    stands where it or a parent should be, or the nearest existing folder refuses a trial file."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder" if existing == path else f"its parent {existing} is a file"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"{existing} cannot be written ({exc.strerror or exc})"
    return None


def unwritable_file(path: Path) -> str | None:
    """Why cnnbench could not write the file ``path``, or None when it can (see :func:`unwritable_dir`)."""
    if path.is_dir():
        return f"{path} is a folder; name a file in it, such as {path / 'baseline.json'}"
    return unwritable_dir(path.parent)
