"""A user's own dataset, a folder of class sub-folders of images or an .npz of arrays, loaded into a Dataset in
the suite's input format; data that cannot be used fails before any training with a message naming the file
(and key or class) and what to fix.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.dataset import SPLITS, Dataset, stratified_split, to_input_format

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
HELD_OUT = 0.2  # share of each class (at least one example) held out for test, then for validation
MIN_PER_CLASS = 3  # a folder class needs one image each for train, validation and test
_ACCEPTED = (
    "a folder with one sub-folder of .png/.jpg/.jpeg images per class, or an .npz file with x_train, y_train, "
    "x_test, y_test (optionally x_val, y_val, class_names)"
)


class UserDataError(ValueError):
    """A user dataset that cannot be used; the message names the file (and key/class) and what is wrong."""


def load_user_dataset(path: str | Path, img_size: int = 32, in_chans: int = 1, seed: int = 0) -> Dataset:
    """Load ``path``, a folder of class sub-folders or an .npz file, as a validated Dataset of
    (img_size, img_size, in_chans) images; the same arguments give a bit-identical dataset."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        return _load_folder(path, img_size, in_chans, seed).validate()
    if path.is_file() and path.suffix.lower() == ".npz":
        return _load_npz(path, img_size, in_chans, seed).validate()
    problem = "does not exist" if not path.exists() else "is neither a folder nor an .npz file"
    raise UserDataError(f"{path} {problem}; a user dataset is {_ACCEPTED}")


def _hold_out(y: np.ndarray, seed: int, stage: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``y``: HELD_OUT of each class (at least one) and the rest, both sorted. Each class is cut
    by stratified_split under its own seed, so classes of any size split in proportion."""
    held, rest = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = max(1, round(HELD_OUT * len(members)))
        a, b = stratified_split(y[members], [k, len(members) - k], [seed, stage, int(c)])
        held.append(members[a])
        rest.append(members[b])
    return np.sort(np.concatenate(held)), np.sort(np.concatenate(rest))


def _dataset(
    name: str, x: dict[str, np.ndarray], y: dict[str, np.ndarray], class_names: tuple[str, ...], **provenance: Any
) -> Dataset:
    """The Dataset with the provenance both formats share: source, class counts overall and per split."""
    counts = {split: np.bincount(y[split], minlength=len(class_names)).tolist() for split in SPLITS}
    return Dataset(
        name,
        x["train"],
        y["train"],
        x["val"],
        y["val"],
        x["test"],
        y["test"],
        class_names=class_names,
        provenance={
            "source": "user",
            **provenance,
            "classes": {n: sum(counts[s][c] for s in SPLITS) for c, n in enumerate(class_names)},
            "sizes": {split: len(y[split]) for split in SPLITS},
            "class_counts": counts,
        },
    )


# --------------------------------------------------------------------------------------------- folder


def _load_folder(root: Path, img_size: int, in_chans: int, seed: int) -> Dataset:
    """Class = sub-folder (sorted by name); per class 20% test, then 20% of the rest validation."""
    files = _class_files(root)
    x, steps = _read_images([f for fs in files.values() for f in fs], img_size, in_chans)
    y = np.repeat(np.arange(len(files), dtype=np.int32), [len(fs) for fs in files.values()])
    test, rest = _hold_out(y, seed, 0)
    val, train = (rest[i] for i in _hold_out(y[rest], seed, 1))
    idx = {"train": train, "val": val, "test": test}
    return _dataset(
        root.name,
        {split: x[i] for split, i in idx.items()},
        {split: y[i] for split, i in idx.items()},
        tuple(files),
        path=str(root),
        format="folder with one sub-folder of images per class",
        seed=seed,
        split=f"per class {HELD_OUT:.0%} (at least 1) test, then {HELD_OUT:.0%} of the rest (at least 1) "
        "validation, the rest train",
        conversion={"to": [img_size, img_size, in_chans], "images_per_step": dict(steps)},
    )


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _class_files(root: Path) -> dict[str, list[Path]]:
    """Image files per class folder, checked before any image is decoded: at least two classes, each with
    at least MIN_PER_CLASS images."""
    folders = [p for p in _visible(root) if p.is_dir()]
    if not folders:
        raise UserDataError(
            f"{root} has no class sub-folders; put each class's images in its own sub-folder, "
            f"e.g. {root / 'cat'}/*.png and {root / 'dog'}/*.png"
        )
    files = {d.name: [f for f in _visible(d) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES] for d in folders}
    empty = [str(root / name) for name, fs in files.items() if not fs]
    if empty:
        raise UserDataError(
            f"class folder(s) {', '.join(empty)} contain no {'/'.join(IMAGE_SUFFIXES)} images; "
            "add images or remove the folder"
        )
    if len(files) < 2:
        raise UserDataError(f"{root} has a single class folder {folders[0].name!r}; at least 2 classes are needed")
    few = [f"{name!r} has {len(fs)}" for name, fs in files.items() if len(fs) < MIN_PER_CLASS]
    if few:
        raise UserDataError(
            f"{root}: class {', '.join(few)} image(s); each class needs at least {MIN_PER_CLASS} "
            "(one each for train, validation and test)"
        )
    return files


def _read_images(files: list[Path], img_size: int, in_chans: int) -> tuple[np.ndarray, Counter[str]]:
    """Decode and convert each image on its own, as sizes and modes may differ; also count the images each
    conversion step applied to, a compact record. Every unreadable file is reported at once."""
    x = np.empty((len(files), img_size, img_size, in_chans), np.float32)
    steps: Counter[str] = Counter()
    bad = []
    for i, file in enumerate(files):
        try:
            pixels, value_range, read = _decode(file)
        except Exception as err:  # Pillow raises several types for truncated or foreign files
            bad.append(f"{file} ({err})")
            continue
        converted, info = to_input_format(pixels[None], img_size, in_chans, value_range=value_range)
        x[i] = converted[0]
        steps.update([read, *info["steps"]])
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise UserDataError(f"{len(bad)} image(s) cannot be read: {'; '.join(bad[:5])}{more}; re-save or delete them")
    return x, steps


def _decode(file: Path) -> tuple[np.ndarray, tuple[float, float], str]:
    """Pixels of one image as L, RGB or RGBA (8-bit) or 16-bit grey, their value range, and how it was read."""
    from PIL import Image  # Pillow loads for image folders only, not for .npz datasets

    with Image.open(file) as img:
        img.load()  # decode now, so a truncated file fails here
        mode = _working_mode(img)
        pixels = np.asarray(img if mode == img.mode else img.convert(mode))
        read = f"read {img.format} {img.mode}" + (f" as {mode}" if mode != img.mode else "") + " (Pillow)"
    return pixels, (0.0, 65535.0 if mode.startswith("I") else 255.0), read


def _working_mode(img: Any) -> str:
    """L, RGB, RGBA or a 16/32-bit grey mode kept as is; others (bilevel, palette, CMYK, grey + alpha) map to
    the nearest of L, RGB and RGBA, keeping transparency."""
    if img.mode in ("L", "RGB", "RGBA") or img.mode.startswith("I"):
        return img.mode
    if "A" in img.mode.upper() or (img.mode == "P" and "transparency" in img.info):
        return "RGBA"
    return "L" if img.mode == "1" else "RGB"


# ------------------------------------------------------------------------------------------------ npz


def _load_npz(file: Path, img_size: int, in_chans: int, seed: int) -> Dataset:
    """Splits from the file; without x_val/y_val, validation is 20% of each class of x_train."""
    arrays, ignored = _read_npz(file)
    splits = [s for s in SPLITS if f"x_{s}" in arrays]
    xs = {s: arrays[f"x_{s}"] for s in splits}
    _check_images(file, xs)
    ys = {s: _labels(file, s, arrays[f"y_{s}"], len(xs[s])) for s in splits}
    n_classes = 1 + max(int(y.max()) for y in ys.values())
    _check_train_covers_classes(file, ys, n_classes)
    class_names = _class_names(file, arrays.get("class_names"), n_classes)
    if "val" in xs:
        validation = "x_val/y_val from the file"
    else:
        few = np.flatnonzero(np.bincount(ys["train"]) < 2)
        if len(few):
            raise UserDataError(
                f"{file}: labels {_listed(few)} have a single training image; carving a validation split out "
                "of x_train needs at least 2 per class: add images or give x_val/y_val"
            )
        val, train = _hold_out(ys["train"], seed, 1)
        xs["val"], ys["val"] = xs["train"][val], ys["train"][val]
        xs["train"], ys["train"] = xs["train"][train], ys["train"][train]
        validation = f"carved from x_train: {HELD_OUT:.0%} of each class (at least 1)"
    value_range = _value_range(xs)
    converted = {s: to_input_format(x, img_size, in_chans, value_range=value_range) for s, x in xs.items()}
    return _dataset(
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


def _read_npz(file: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays the format uses (required keys checked, x/y in pairs) and the names of the keys it ignores."""
    if not zipfile.is_zipfile(file):
        raise UserDataError(f"{file} is not a valid .npz (zip) archive; save it with numpy.savez")
    with np.load(file, allow_pickle=False) as npz:
        keys = set(npz.files)
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
        return {k: _read_key(file, npz, k) for k in used}, sorted(keys - set(used))


def _read_key(file: Path, npz: Any, key: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as err:
        raise UserDataError(
            f"{file}: key {key!r} cannot be loaded ({err}); object arrays and pickled data are not supported, "
            "save plain numeric arrays (and class_names as strings) with numpy.savez"
        ) from err
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise UserDataError(f"{file}: key {key!r} is corrupt ({err}); re-save the file with numpy.savez") from err


def _check_images(file: Path, xs: dict[str, np.ndarray]) -> None:
    """Each x array numeric, (N, H, W[, C]) with C in 1/3/4, non-empty and finite; all splits of one image
    shape and dtype, so they are scaled alike."""
    for split, x in xs.items():
        key = f"x_{split}"
        if x.dtype.kind not in "biuf":
            raise UserDataError(f"{file}: {key} has dtype {x.dtype}; images must be integer or float arrays")
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3, 4)):
            raise UserDataError(
                f"{file}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C = 1, 3 or 4 "
                "(channels last)"
            )
        if len(x) == 0:
            raise UserDataError(f"{file}: {key} is empty; every split needs images")
        if x.dtype.kind == "f":
            n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
            if n_nan or n_inf:
                raise UserDataError(
                    f"{file}: {key} has {n_nan} NaN and {n_inf} infinite pixel values; replace them or drop "
                    "those images"
                )
    (ref, x_ref), *others = xs.items()
    for split, x in others:
        if _image_shape(x) != _image_shape(x_ref):
            raise UserDataError(
                f"{file}: image shapes differ across splits: x_{ref} {x_ref.shape[1:]} vs x_{split} {x.shape[1:]}; "
                "save all splits at one size and channel count"
            )
        if x.dtype != x_ref.dtype:
            raise UserDataError(
                f"{file}: x_{ref} is {x_ref.dtype} but x_{split} is {x.dtype}; save all splits with one dtype "
                "and value scale"
            )


def _image_shape(x: np.ndarray) -> tuple[int, ...]:
    """(H, W, C) of one image; (N, H, W) counts as one channel."""
    return (*x.shape[1:3], x.shape[3] if x.ndim == 4 else 1)


def _labels(file: Path, split: str, y: np.ndarray, n_images: int) -> np.ndarray:
    """``y_{split}`` as int64 after checking it holds one non-negative integer per image; (N, 1) is accepted."""
    key = f"y_{split}"
    if y.dtype.kind not in "iu":
        raise UserDataError(
            f"{file}: {key} has dtype {y.dtype}; labels must be integers 0..k-1 "
            "(if they are whole numbers, save y.astype(np.int64))"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UserDataError(
            f"{file}: {key} has shape {y.shape}; expected one label per image, shape (N,) "
            "(for one-hot labels save y.argmax(axis=1))"
        )
    if len(y) != n_images:
        raise UserDataError(
            f"{file}: split {split!r} has {n_images} images in x_{split} but {len(y)} labels in {key}; "
            "give one label per image"
        )
    negative = np.unique(y[y < 0])
    if len(negative):
        raise UserDataError(f"{file}: {key} has negative labels {_listed(negative)}; labels must be 0..k-1")
    return y.astype(np.int64)


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
    if n_classes > len(ys["train"]):
        raise UserDataError(
            f"{file}: the labels go up to {n_classes - 1} but x_train has only {len(ys['train'])} images; {fix}"
        )
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


def _value_range(xs: dict[str, np.ndarray]) -> tuple[float, float]:
    """One (low, high) for all splits, so a pixel value means the same everywhere: the full range for uint8
    and uint16, 0..1 for data already in it, else the data's own min..max."""
    dtype = xs["train"].dtype
    if dtype.kind == "u" and dtype.itemsize <= 2:
        return 0.0, float(np.iinfo(dtype).max)
    lo, hi = min(float(x.min()) for x in xs.values()), max(float(x.max()) for x in xs.values())
    return (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
