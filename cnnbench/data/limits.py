"""Resource limits on a user dataset, read from the environment each time one is loaded: the pixels one image may
have (``CNNBENCH_MAX_IMAGE_PIXELS``) and the memory the decoded dataset may take (``CNNBENCH_MAX_DATA_BYTES``, else
a share of the machine's physical memory). The folder and .npz loaders check what their files declare against them
before decoding anything, so hostile or oversized data fails early with a message saying how to raise the limit.
UserDataError, raised by every user-data check, lives here, in the module all the loaders build on.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from cnnbench.fileio import readable_size

MAX_IMAGE_PIXELS = 50_000_000  # per image (width x height), read from the header before decoding
PIXELS_ENV = "CNNBENCH_MAX_IMAGE_PIXELS"  # overrides MAX_IMAGE_PIXELS
MEMORY_SHARE = 0.5  # the decoded dataset may take at most this share of the machine's physical memory
FALLBACK_MEMORY_LIMIT = 8 * 2**30  # bytes, where the physical memory cannot be read
MEMORY_ENV = "CNNBENCH_MAX_DATA_BYTES"  # overrides the memory limit: bytes, or with a K/M/G/T suffix


class UserDataError(ValueError):
    """A user dataset that cannot be used; the message names the file (and key/class) and what is wrong."""


def max_image_pixels() -> int:
    """The largest image, in pixels, a dataset may hold: ``CNNBENCH_MAX_IMAGE_PIXELS`` if set, else
    MAX_IMAGE_PIXELS."""
    return _env_amount(PIXELS_ENV, units=False) or MAX_IMAGE_PIXELS


def max_data_bytes() -> tuple[int, str]:
    """The most memory a decoded dataset may take, and where that limit comes from: ``CNNBENCH_MAX_DATA_BYTES`` if
    set, else MEMORY_SHARE of the physical memory (FALLBACK_MEMORY_LIMIT where the system does not say)."""
    limit = _env_amount(MEMORY_ENV, units=True)
    if limit:
        return limit, f"set by {MEMORY_ENV}"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        physical = -1
    if physical <= 0:
        return FALLBACK_MEMORY_LIMIT, f"the default where physical memory is unknown, set {MEMORY_ENV} to change it"
    return int(physical * MEMORY_SHARE), f"{MEMORY_SHARE:.0%} of this machine's {readable_size(physical)} of memory"


def _env_amount(name: str, units: bool) -> int | None:
    """The positive whole number in the environment variable ``name`` (None when unset or empty): digits, 5e7 or
    50_000_000, and with ``units`` a K/M/G/T suffix (binary: 16G is 16 GiB); a malformed value is a
    UserDataError naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    found = re.fullmatch(r"([0-9_.eE+]+)\s*(?:([KMGT])i?B?)?" if units else r"([0-9_.eE+]+)()", text, re.IGNORECASE)
    try:
        value = float(found[1].replace("_", "")) * 1024 ** " KMGT".index((found[2] or " ").upper()) if found else 0.0
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value >= 1):
        kind = "a number of bytes such as 8000000000 or 8G" if units else "a number of pixels such as 100000000"
        raise UserDataError(f"environment variable {name}={text!r} is not a positive whole number; set {kind}, or "
                            "unset it for the default")  # fmt: skip
    return int(value)


def check_memory(where: Path, estimate: int, parts: str) -> None:
    """Refuse, before anything is decoded, a dataset whose decoding is estimated to take more than the limit."""
    limit, source = max_data_bytes()
    if estimate > limit:
        raise UserDataError(
            f"{where}: loading it needs about {readable_size(estimate)} of memory ({parts}), more than the limit of "
            f"{readable_size(limit)} ({source}); use a smaller img_size or fewer or smaller images, or raise the limit "
            f"with the environment variable {MEMORY_ENV}=<bytes> (e.g. {MEMORY_ENV}=32G)"
        )
