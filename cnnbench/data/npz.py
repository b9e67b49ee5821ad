"""A user dataset given as an .npz of arrays (x_train, y_train, x_test, y_test, optionally x_val, y_val and
class_names). Every array's shape and dtype is read from its .npy header in the zip and checked, with the memory
the dataset will take, before any array is loaded, so a small file cannot claim gigabytes; then the labels and
class names are checked and the images converted to the suite's input format a chunk at a time.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.dataset import SPLITS, Dataset, resize_bytes, to_input_format
from cnnbench.data.limits import (
    MAX_IMAGE_PIXELS,
    PIXELS_ENV,
    UserDataError,
    check_memory,
    max_image_pixels,
)
from cnnbench.data.splits import HELD_OUT, assemble, hold_out
from cnnbench.fileio import readable_size

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CHUNK_BYTES = 64 * 2**20  # .npz images are checked and converted in chunks of about this many float32 bytes
# what zipfile, zlib and numpy.lib.format raise for damaged or foreign data
_CORRUPT = (
    ValueError,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
)


def load_npz(file: Path, img_size: int, in_chans: int, seed: int) -> Dataset:
    """Splits from the file; without x_val/y_val, validation is 20% of each class of x_train. Every array's
    header is checked before any array is loaded (_read_npz); images are converted a chunk at a time."""
    arrays, ignored = _read_npz(file, img_size, in_chans)
    splits = [s for s in SPLITS if f"x_{s}" in arrays]
    xs = {s: arrays[f"x_{s}"] for s in splits}
    for s in splits:
        _check_finite(file, f"x_{s}", xs[s])
    ys = {s: _labels(file, s, arrays[f"y_{s}"]) for s in splits}
    top = max(int(y.max()) for y in ys.values())  # a Python int: exact for every integer dtype, uint64 included
    if top >= len(ys["train"]):
        raise UserDataError(
            f"{file}: the labels go up to {top} but x_train has only {len(ys['train'])} images; every class "
            f"0..{top} needs images in x_train/y_train: add them, or relabel 0..k-1 without gaps"
        )
    ys = {s: y.astype(np.int64) for s, y in ys.items()}  # safe now: 0 <= label < len(x_train)
    n_classes = top + 1
    _check_train_covers_classes(file, ys, n_classes)
    class_names = _class_names(file, arrays.get("class_names"), n_classes)
    index: dict[str, np.ndarray | None] = dict.fromkeys(splits, None)
    sources = dict(xs)
    if "val" in xs:
        validation = "x_val/y_val from the file"
    else:
        few = np.flatnonzero(np.bincount(ys["train"]) < 2)
        if len(few):
            raise UserDataError(
                f"{file}: labels {_listed(few)} have a single training image; carving a validation split out "
                "of x_train needs at least 2 per class: add images or give x_val/y_val"
            )
        index["val"], index["train"] = hold_out(ys["train"], seed, 1)
        sources["val"] = xs["train"]
        ys["val"], ys["train"] = ys["train"][index["val"]], ys["train"][index["train"]]
        validation = f"carved from x_train: {HELD_OUT:.0%} of each class (at least 1)"
    value_range = _value_range(file, xs)
    converted = {s: _convert(sources[s], index[s], img_size, in_chans, value_range) for s in SPLITS}
    return assemble(
        file.stem,
        {s: converted[s][0] for s in SPLITS},
        {s: y.astype(np.int32) for s, y in ys.items()},
        class_names,
        path=str(file),
        format="npz",
        seed=seed,
        validation=validation,
        ignored_keys=ignored,
        conversion={"to": [img_size, img_size, in_chans], **converted["train"][1]},
    )


def _chunks(x: np.ndarray | _ArrayHeader, n: int | None = None) -> Iterator[slice]:
    """Slices over ``n`` (default: all) images of ``x`` holding about CHUNK_BYTES of float32 pixels each."""
    per_image = 4 * math.prod(x.shape[1:])
    step = max(1, CHUNK_BYTES // max(per_image, 1))
    total = x.shape[0] if n is None else n
    return (slice(i, min(i + step, total)) for i in range(0, total, step))


def _convert(
    x: np.ndarray, index: np.ndarray | None, img_size: int, in_chans: int, value_range: tuple[float, float]
) -> tuple[np.ndarray, dict[str, Any]]:
    """``x[index]`` (all of ``x`` for None) in the input format, converted a chunk at a time so the work arrays
    stay small whatever the dataset's size."""
    n = len(x) if index is None else len(index)
    out = np.empty((n, img_size, img_size, in_chans), np.float32)
    info: dict[str, Any] = {}
    for part in _chunks(x, n):
        out[part], info = to_input_format(x[part] if index is None else x[index[part]], img_size, in_chans,
                                          value_range=value_range)  # fmt: skip
    return out, info


@dataclass(frozen=True)
class _ArrayHeader:
    """What one .npy member of an .npz declares in its header, read without loading the array."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # where the data starts in the member

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_npz(file: Path, img_size: int, in_chans: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays the format uses (required keys checked, x/y in pairs) and the names of the keys it ignores.
    Every used array's .npy header is read and checked (dtype, shape, pixels per image, the memory the decoded
    dataset will take) before any array is loaded, so a small file cannot claim gigabytes."""
    if not zipfile.is_zipfile(file):
        raise UserDataError(f"{file} is not a valid .npz (zip) archive; save it with numpy.savez")
    try:
        archive = zipfile.ZipFile(file)
    except _CORRUPT as err:
        raise UserDataError(f"{file} is not a valid .npz (zip) archive ({err}); save it with numpy.savez") from err
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in sorted(archive.infolist(), key=lambda i: i.filename.endswith(".npy")):  # .npy wins a clash
            members[info.filename.removesuffix(".npy")] = info
        keys = set(members)
        missing = [k for k in NPZ_KEYS if k not in keys]
        if missing:
            raise UserDataError(
                f"{file} lacks key(s) {', '.join(missing)}; required: {', '.join(NPZ_KEYS)} "
                f"(optional: x_val, y_val, class_names); found: {', '.join(sorted(keys)) or 'nothing'}"
            )
        if ("x_val" in keys) != ("y_val" in keys):
            has, lacks = ("x_val", "y_val") if "x_val" in keys else ("y_val", "x_val")
            raise UserDataError(
                f"{file} has {has} but no {lacks}; give both, or neither to carve validation out of x_train"
            )
        used = [k for k in (*NPZ_KEYS, "x_val", "y_val", "class_names") if k in keys]
        headers = {k: _array_header(file, archive, k, members[k]) for k in used}
        _check_headers(file, headers, img_size, in_chans)
        return {k: _read_key(file, archive, k, members[k]) for k in used}, sorted(keys - set(used))


def _pickled(file: Path, key: str, why: str) -> UserDataError:
    return UserDataError(
        f"{file}: key {key!r} cannot be loaded ({why}); object arrays and pickled data are not supported, "
        "save plain numeric arrays (and class_names as strings) with numpy.savez"
    )


def _corrupt(file: Path, key: str, why: Any) -> UserDataError:
    return UserDataError(f"{file}: key {key!r} is corrupt ({why}); re-save the file with numpy.savez")


def _array_header(file: Path, archive: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> _ArrayHeader:
    """The shape and dtype ``key``'s member declares, read from its .npy header without reading its data; a header
    that claims more data than the member holds is corrupt."""
    if not info.filename.endswith(".npy"):
        raise _corrupt(file, key, f"member {info.filename!r} is not a .npy array")
    try:
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fp)
            offset = fp.tell()
    except _CORRUPT as err:
        raise _corrupt(file, key, err) from err
    if dtype.hasobject:
        raise _pickled(file, key, f"it holds Python objects, dtype {dtype}")
    if any(d < 0 for d in shape):
        raise _corrupt(file, key, f"its header declares the shape {shape}")
    header = _ArrayHeader(shape, dtype, offset)
    if info.file_size < offset + header.nbytes:
        raise _corrupt(
            file,
            key,
            f"its header declares {shape} {dtype}, {header.nbytes:,} bytes, but the member holds "
            f"{max(info.file_size - offset, 0):,}",
        )
    return header


def _read_key(file: Path, archive: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> np.ndarray:
    """``key``'s array, its header already checked; the zip's CRC is checked as its data is read."""
    try:
        with archive.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except _CORRUPT as err:
        raise _corrupt(file, key, err) from err


def _check_headers(file: Path, headers: dict[str, _ArrayHeader], img_size: int, in_chans: int) -> None:
    """Everything checkable from the headers alone: the images (_check_images), one label per image of an
    integer dtype (_check_label_header) and the memory loading and converting the dataset will take."""
    xs = {s: headers[f"x_{s}"] for s in SPLITS if f"x_{s}" in headers}
    _check_images(file, xs)
    for split, x in xs.items():
        _check_label_header(file, split, headers[f"y_{split}"], x.shape[0])
    raw = sum(h.nbytes for h in headers.values())
    n = sum(x.shape[0] for x in xs.values())
    out = n * img_size * img_size * in_chans * 4
    x = xs["train"]
    chunk = min(n, next(_chunks(x)).stop) * math.prod(x.shape[1:])  # pixels of one chunk of images
    work = chunk * (x.dtype.itemsize + 4 * 3)  # its copy, float32 pixels and their resized/converted copies
    work += resize_bytes(x.shape[1], img_size) + resize_bytes(x.shape[2], img_size)
    check_memory(
        file,
        raw + out + work,
        f"its arrays take {readable_size(raw)} as stored, {n} images of {img_size}x{img_size}x{in_chans} float32 take "
        f"{readable_size(out)}, and converting them about {readable_size(work)}",
    )


def _check_images(file: Path, xs: dict[str, _ArrayHeader]) -> None:
    """Each x array numeric, (N, H, W[, C]) with C in 1/3/4, non-empty and of at most max_image_pixels() per image;
    all splits of one image shape and dtype, so they are scaled alike."""
    limit = max_image_pixels()
    for split, x in xs.items():
        key = f"x_{split}"
        if x.dtype.kind not in "biuf":
            raise UserDataError(f"{file}: {key} has dtype {x.dtype}; images must be integer or float arrays")
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
            raise UserDataError(
                f"{file}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C = 1, 3 or 4 "
                "(channels last)"
            )
        if x.shape[0] == 0:
            raise UserDataError(f"{file}: {key} is empty; every split needs images")
        height, width = x.shape[1:3]
        if not height or not width:
            raise UserDataError(f"{file}: {key} has shape {x.shape}; images need at least one row and one column")
        if height * width > limit:
            raise UserDataError(
                f"{file}: {key} holds images of {height}x{width} = {height * width:,} pixels, over the limit of "
                f"{limit:,} pixels per image; shrink them, or raise the limit with the environment variable "
                f"{PIXELS_ENV}=<pixels> (default {MAX_IMAGE_PIXELS:,})"
            )
    (ref, x_ref), *others = xs.items()
    for split, x in others:
        if _image_shape(x.shape) != _image_shape(x_ref.shape):
            raise UserDataError(
                f"{file}: image shapes differ across splits: x_{ref} {x_ref.shape[1:]} vs x_{split} {x.shape[1:]}; "
                "save all splits at one size and channel count"
            )
        if x.dtype != x_ref.dtype:
            raise UserDataError(
                f"{file}: x_{ref} is {x_ref.dtype} but x_{split} is {x.dtype}; save all splits with one dtype "
                "and value scale"
            )


def _check_finite(file: Path, key: str, x: np.ndarray) -> None:
    """No NaN or infinite pixel in a float array, counted a chunk at a time."""
    if x.dtype.kind != "f":
        return
    n_nan = n_inf = 0
    for part in _chunks(x):
        n_nan += int(np.count_nonzero(np.isnan(x[part])))
        n_inf += int(np.count_nonzero(np.isinf(x[part])))
    if n_nan or n_inf:
        raise UserDataError(
            f"{file}: {key} has {n_nan} NaN and {n_inf} infinite pixel values; replace them or drop those images"
        )


def _image_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(H, W, C) of one image of a batch of ``shape``; (N, H, W) counts as one channel."""
    return (*shape[1:3], shape[3] if len(shape) == 4 else 1)


def _check_label_header(file: Path, split: str, y: _ArrayHeader, n_images: int) -> None:
    """``y_{split}`` holds one integer per image: shape (N,) or (N, 1)."""
    key = f"y_{split}"
    if y.dtype.kind not in "iu":
        raise UserDataError(
            f"{file}: {key} has dtype {y.dtype}; labels must be integers 0..k-1 "
            "(if they are whole numbers, save y.astype(np.int64))"
        )
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] != 1):
        raise UserDataError(
            f"{file}: {key} has shape {y.shape}; expected one label per image, shape (N,) "
            "(for one-hot labels save y.argmax(axis=1))"
        )
    if y.shape[0] != n_images:
        raise UserDataError(
            f"{file}: split {split!r} has {n_images} images in x_{split} but {y.shape[0]} labels in {key}; "
            "give one label per image"
        )


def _labels(file: Path, split: str, y: np.ndarray) -> np.ndarray:
    """``y_{split}`` (its header checked) as a flat array in its own dtype, after checking no label is
    negative; (N, 1) is accepted."""
    y = y.reshape(-1)
    negative = np.unique(y[y < 0])
    if len(negative):
        raise UserDataError(f"{file}: y_{split} has negative labels {_listed(negative)}; labels must be 0..k-1")
    return y


def _class_names(file: Path, names: np.ndarray | None, n_classes: int) -> tuple[str, ...]:
    """The file's class_names (one per label 0..max label, distinct), else "0".."k-1"."""
    if names is None:
        return tuple(str(c) for c in range(n_classes))
    if names.ndim != 1 or len(names) != n_classes:
        raise UserDataError(
            f"{file}: class_names has shape {names.shape} but the labels 0..{n_classes - 1} need {n_classes} "
            "names; labels out of range, or a name list of the wrong length"
        )
    out = tuple(str(n) for n in names)
    repeated = sorted(n for n, count in Counter(out).items() if count > 1)
    if repeated:
        raise UserDataError(f"{file}: class_names repeats {repeated}; each class needs its own name")
    return out


def _check_train_covers_classes(file: Path, ys: dict[str, np.ndarray], n_classes: int) -> None:
    """Every class 0..k-1 has training images: a label only in validation or test cannot be learnt."""
    fix = f"every class 0..{n_classes - 1} needs images in x_train/y_train: add them, or relabel 0..k-1 without gaps"
    missing = np.setdiff1d(np.arange(n_classes), ys["train"])
    if not len(missing):
        return
    where = [f"{_listed(np.intersect1d(missing, y))} in y_{s}" for s, y in ys.items() if np.isin(missing, y).any()]
    unused = np.setdiff1d(missing, np.concatenate(list(ys.values())))
    found = "; ".join(where + ([f"{_listed(unused)} in no split"] if len(unused) else []))
    raise UserDataError(f"{file}: labels {_listed(missing)} have no training images ({found}); {fix}")


def _listed(values: np.ndarray, limit: int = 10) -> str:
    """Up to ``limit`` values as a list, with how many there are in all when cut short."""
    shown = str(values[:limit].tolist())
    return shown if len(values) <= limit else f"{shown[:-1]}, ... ({len(values)} in all)]"


def _value_range(file: Path, xs: dict[str, np.ndarray]) -> tuple[float, float]:
    """One (low, high) for all splits, so a pixel value means the same everywhere: the full range for uint8
    and uint16, 0..1 for data already in it, else the data's own min..max, which float32 must hold."""
    dtype = xs["train"].dtype
    if dtype.kind == "u" and dtype.itemsize <= 2:
        return 0.0, float(np.iinfo(dtype).max)
    lo, hi = min(float(x.min()) for x in xs.values()), max(float(x.max()) for x in xs.values())
    if hi - lo > float(np.finfo(np.float32).max):  # (x - lo) would overflow float32, as would values beyond it
        raise UserDataError(
            f"{file}: pixel values span {lo:g}..{hi:g}, too wide for float32 images; rescale them (e.g. to 0..1) "
            "and save again"
        )
    return (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
