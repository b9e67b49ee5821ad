"""A user dataset given as a folder with one sub-folder of images per class. The files are checked before any
image is decoded (class folders, links leading out of the folder, each image's size and mode from its header, the
memory the dataset will take), then each image is decoded with Pillow straight into its split and converted to the
suite's input format.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.dataset import Dataset, resize_bytes, to_input_format
from cnnbench.data.limits import (
    MAX_IMAGE_PIXELS,
    PIXELS_ENV,
    UserDataError,
    check_memory,
    max_image_pixels,
)
from cnnbench.data.splits import HELD_OUT, assemble, hold_out
from cnnbench.fileio import readable_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MIN_PER_CLASS = 3  # a folder class needs one image each for train, validation and test


def load_folder(root: Path, img_size: int, in_chans: int, seed: int) -> Dataset:
    """Class = sub-folder (sorted by name); per class 20% test, then 20% of the rest validation. The splits are
    drawn from the file list, then each image is decoded straight into its split."""
    files = _class_files(root)
    paths = [f for fs in files.values() for f in fs]
    y = np.repeat(np.arange(len(files), dtype=np.int32), [len(fs) for fs in files.values()])
    test, rest = hold_out(y, seed, 0)
    val, train = (rest[i] for i in hold_out(y[rest], seed, 1))
    idx = {"train": train, "val": val, "test": test}
    x, steps = _read_images(root, {split: [paths[i] for i in i_split] for split, i_split in idx.items()}, img_size,
                            in_chans)  # fmt: skip
    return assemble(
        root.name,
        x,
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
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise UserDataError(f"{folder} cannot be listed ({err}); check that it exists and is readable") from err


def _class_files(root: Path) -> dict[str, list[Path]]:
    """Image files per class folder, checked before any image is decoded: at least two classes, each with
    at least MIN_PER_CLASS images, and no link (class folder or image) that leads out of ``root``."""
    folders = [p for p in _visible(root) if p.is_dir()]
    if not folders:
        raise UserDataError(
            f"{root} has no class sub-folders; put each class's images in its own sub-folder, "
            f"e.g. {root / 'cat'}/*.png and {root / 'dog'}/*.png"
        )
    files = {d.name: [f for f in _visible(d) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES] for d in folders}
    _check_links(root, [*folders, *(f for fs in files.values() for f in fs)])
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


def _check_links(root: Path, paths: list[Path]) -> None:
    """Refuse class folders and images that are, or lie under, links resolving outside ``root`` (itself resolved):
    a dataset folder holds its data, and a link could make it read any file of the machine."""
    outside = []
    for path in paths:
        if not _resolved(path).is_relative_to(root):
            link = next((p for p in (path, *path.parents) if p.is_symlink()), path)
            outside.append(f"{link} -> {_resolved(link)}")
    if outside:
        outside = list(dict.fromkeys(outside))  # a linked class folder is named once, not once per image
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        raise UserDataError(
            f"{root}: {len(outside)} link(s) lead outside the dataset folder: {'; '.join(outside[:5])}{more}; copy "
            f"the files into {root} instead of linking them (links that stay inside it are fine)"
        )


def _resolved(path: Path) -> Path:
    """Where ``path`` leads; a link loop (RuntimeError before Python 3.13) leads nowhere: the root folder, /."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(path.anchor or "/")


@dataclass(frozen=True)
class _ImageHeader:
    """What an image file declares before it is decoded."""

    width: int
    height: int
    mode: str

    def working_bytes(self, img_size: int) -> int:
        """An upper bound on the memory decoding and converting the image to ``img_size`` takes: Pillow's buffer
        (4 bytes a pixel for 3 and 4 bands), its copy as an array and a conversion's, float32 work arrays
        (measured: at most ~2/3 of this for L, RGB, RGBA, P and I;16 at 9 megapixels) and the resize maps."""
        working = _working_mode_of(self.mode)
        bands = _bands(working)
        stored = 4 if bands >= 3 else (2 if working.startswith("I;16") else 4 if working in ("I", "F") else 1)
        pixels = self.width * self.height * (3 * stored + 4 * _bands(self.mode) + 8 * bands + 4)
        return pixels + resize_bytes(self.width, img_size) + resize_bytes(self.height, img_size)


def _bands(mode: str) -> int:
    """Pillow's band count of ``mode``; 4, the most, for a mode it does not list."""
    from PIL import Image

    try:
        return Image.getmodebands(mode)
    except (KeyError, ValueError):
        return 4


def _read_images(
    root: Path, splits: dict[str, list[Path]], img_size: int, in_chans: int
) -> tuple[dict[str, np.ndarray], Counter[str]]:
    """Decode and convert each image on its own, as sizes and modes may differ, into its split's array; also count
    the images each conversion step applied to, a compact record. First every header is read: images over the
    pixel limit, unreadable files and a dataset too large for memory fail before anything is decoded. Every
    unreadable file is reported at once."""
    files = [f for fs in splits.values() for f in fs]
    limit = max_image_pixels()
    headers, bad, too_large = {}, {}, []
    for file in files:
        try:
            header = _header(file)
        except _TooLarge as err:
            too_large.append(f"{file} ({err})")
            continue
        except Exception as err:  # Pillow raises several types for truncated or foreign files
            bad[file] = f"{file} ({err})"
            continue
        if header.width * header.height > limit:
            too_large.append(f"{file} ({header.width}x{header.height} = {header.width * header.height:,} pixels)")
        else:
            headers[file] = header
    if too_large:
        more = f" and {len(too_large) - 5} more" if len(too_large) > 5 else ""
        raise UserDataError(
            f"{len(too_large)} image(s) exceed the limit of {limit:,} pixels per image: {'; '.join(too_large[:5])}"
            f"{more}; shrink them, or raise the limit with the environment variable {PIXELS_ENV}=<pixels> (default "
            f"{MAX_IMAGE_PIXELS:,})"
        )
    if headers:
        out = len(files) * img_size * img_size * in_chans * 4
        work = {file: h.working_bytes(img_size) for file, h in headers.items()}
        largest = max(sorted(work), key=work.__getitem__)  # ties: the first by path
        big = headers[largest]
        check_memory(
            root,
            out + work[largest],
            f"{len(files)} images of {img_size}x{img_size}x{in_chans} float32 take {readable_size(out)}, and decoding "
            f"the largest, {largest} ({big.width}x{big.height} {big.mode}), about {readable_size(work[largest])}",
        )
    x = {split: np.zeros((len(fs), img_size, img_size, in_chans), np.float32) for split, fs in splits.items()}
    steps: Counter[str] = Counter()
    for split, split_files in splits.items():
        for i, file in enumerate(split_files):
            if file in bad:
                continue
            try:
                pixels, value_range, read = _decode(file, limit)
            except Exception as err:
                bad[file] = f"{file} ({err})"
                continue
            converted, info = to_input_format(pixels[None], img_size, in_chans, value_range=value_range)
            x[split][i] = converted[0]
            steps.update([read, *info["steps"]])
    if bad:
        listed = [bad[f] for f in files if f in bad]
        more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
        raise UserDataError(
            f"{len(listed)} image(s) cannot be read: {'; '.join(listed[:5])}{more}; re-save or delete them"
        )
    return x, steps


class _TooLarge(Exception):
    """Pillow refused an image as a possible decompression bomb."""


def _open(file: Path) -> Any:
    """The image at ``file``, opened lazily (the header only). Pillow's decompression-bomb warning is silenced, as
    the caller checks its own pixel limit; Pillow's error (over twice PIL.Image.MAX_IMAGE_PIXELS) is _TooLarge."""
    from PIL import Image  # Pillow loads for image folders only, not for .npz datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(file)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise _TooLarge(
                f"Pillow refuses it as a possible decompression bomb: {err} Pillow's own limit, "
                "PIL.Image.MAX_IMAGE_PIXELS, applies too"
            ) from None


def _header(file: Path) -> _ImageHeader:
    """The size and mode ``file`` declares, read without decoding its pixels."""
    with _open(file) as img:
        return _ImageHeader(img.width, img.height, img.mode)


def _decode(file: Path, max_pixels: int) -> tuple[np.ndarray, tuple[float, float], str]:
    """Pixels of one image as L, RGB or RGBA (8-bit) or 16-bit grey, their value range, and how it was read;
    its size is checked against ``max_pixels`` before it is decoded."""
    with _open(file) as img:
        if img.width * img.height > max_pixels:
            raise UserDataError(f"{img.width}x{img.height} pixels, over the limit of {max_pixels:,}; see {PIXELS_ENV}")
        img.load()  # decode now, so a truncated file fails here
        mode = _working_mode(img)
        pixels = np.asarray(img if mode == img.mode else img.convert(mode))
        read = f"read {img.format} {img.mode}" + (f" as {mode}" if mode != img.mode else "") + " (Pillow)"
    return pixels, (0.0, 65535.0 if mode.startswith("I") else 255.0), read


def _working_mode(img: Any) -> str:
    """L, RGB, RGBA or a 16/32-bit grey mode kept as is; others (bilevel, palette, CMYK, grey + alpha) map to
    the nearest of L, RGB and RGBA, keeping transparency."""
    return _working_mode_of(img.mode, img.mode == "P" and "transparency" in img.info)


def _working_mode_of(mode: str, transparent: bool = False) -> str:
    if mode in ("L", "RGB", "RGBA") or mode.startswith("I"):
        return mode
    if "A" in mode.upper() or transparent:
        return "RGBA"
    return "L" if mode == "1" else "RGB"
