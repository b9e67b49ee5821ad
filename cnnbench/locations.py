"""Where cnnbench keeps its cache by default, the one rule every entry point shares (the plugin, the ``cnnbench``
command and the Python API): ``CNNBENCH_CACHE`` when set, else ``.cnnbench-cache`` under the project's directory.
A path given explicitly (an option, an argument) always wins over both."""

from __future__ import annotations

import os
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
