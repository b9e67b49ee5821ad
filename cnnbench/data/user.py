"""A user's own dataset, a folder of class sub-folders of images or an .npz of arrays, loaded into a Dataset in
the suite's input format; data that cannot be used fails before any training with a message naming the file
(and key or class) and what to fix.

This is the entry point: ``load_user_dataset`` resolves the path and hands a folder to cnnbench.data.folder and an
.npz to cnnbench.data.npz, which split alike through cnnbench.data.splits. Hostile or oversized data is refused
before it is decoded, from what the files declare, against the limits of cnnbench.data.limits (re-exported here):
each image's size from its header (at most ``MAX_IMAGE_PIXELS`` pixels; raise it with the environment variable
``CNNBENCH_MAX_IMAGE_PIXELS``), each .npz array's shape and dtype from its .npy header, and the memory the whole
decoded dataset will take (at most ``MEMORY_SHARE`` of the machine's physical memory, or
``FALLBACK_MEMORY_LIMIT`` where that cannot be read; set ``CNNBENCH_MAX_DATA_BYTES``, e.g. ``16G``, to change
it). Links out of a dataset folder are refused.
"""

from __future__ import annotations

from pathlib import Path

from cnnbench.data.dataset import Dataset
from cnnbench.data.folder import load_folder
from cnnbench.data.limits import (
    FALLBACK_MEMORY_LIMIT,
    MAX_IMAGE_PIXELS,
    MEMORY_ENV,
    MEMORY_SHARE,
    PIXELS_ENV,
    UserDataError,
    max_data_bytes,
    max_image_pixels,
)
from cnnbench.data.npz import load_npz

__all__ = [
    "FALLBACK_MEMORY_LIMIT",
    "MAX_IMAGE_PIXELS",
    "MEMORY_ENV",
    "MEMORY_SHARE",
    "PIXELS_ENV",
    "UserDataError",
    "load_user_dataset",
    "max_data_bytes",
    "max_image_pixels",
]

_ACCEPTED = (
    "a folder with one sub-folder of .png/.jpg/.jpeg images per class, or an .npz file with x_train, y_train, "
    "x_test, y_test (optionally x_val, y_val, class_names)"
)


def load_user_dataset(path: str | Path, img_size: int = 32, in_chans: int = 1, seed: int = 0) -> Dataset:
    """Load ``path``, a folder of class sub-folders or an .npz file, as a validated Dataset of
    (img_size, img_size, in_chans) images; the same arguments give a bit-identical dataset."""
    try:
        path = Path(path).expanduser().resolve()
    except (RuntimeError, ValueError, OSError) as err:  # ~unknown_user, an embedded NUL byte, a link loop
        raise UserDataError(f"{str(path)!r} is not a usable path ({err}); a user dataset is {_ACCEPTED}") from None
    if path.is_dir():
        return load_folder(path, img_size, in_chans, seed).validate()
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_npz(path, img_size, in_chans, seed).validate()
    problem = "does not exist" if not path.exists() else "is neither a folder nor an .npz file"
    raise UserDataError(f"{path} {problem}; a user dataset is {_ACCEPTED}")
