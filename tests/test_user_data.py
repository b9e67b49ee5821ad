"""A user's own dataset: a folder of class sub-folders of mixed images or an .npz, its splits and provenance, and a
clear UserDataError for every kind of bad data."""

from __future__ import annotations

import io
import json
import os
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cnnbench.data import user
from cnnbench.data.dataset import SPLITS
from cnnbench.data.user import UserDataError, load_user_dataset

# class folder -> base brightness; sorted names (apple, mango, zebra) differ from this order
BRIGHTNESS = {"zebra": 0.15, "apple": 0.45, "mango": 0.75}
PER_CLASS = 8


def _save(path, grey: float, kind: int) -> None:
    """A uniform image of brightness ``grey`` in [0, 1], in one of five sizes, modes and formats."""
    if kind == 0:  # 20x24 8-bit grey PNG
        Image.fromarray(np.full((20, 24), round(grey * 255), np.uint8)).save(path.with_suffix(".png"))
    elif kind == 1:  # 40x40 RGB JPEG, upper-case suffix
        Image.fromarray(np.full((40, 40, 3), round(grey * 255), np.uint8)).save(path.with_suffix(".JPG"), quality=95)
    elif kind == 2:  # 28x28 opaque RGBA PNG
        rgba = np.full((28, 28, 4), round(grey * 255), np.uint8)
        rgba[..., 3] = 255
        Image.fromarray(rgba).save(path.with_suffix(".png"))
    elif kind == 3:  # 16x16 16-bit grey PNG
        Image.fromarray(np.full((16, 16), round(grey * 65535), np.uint16)).save(path.with_suffix(".png"))
    else:  # 32x32 palette PNG: no resize
        img = Image.fromarray(np.full((32, 32, 3), round(grey * 255), np.uint8)).convert(
            "P", palette=Image.Palette.ADAPTIVE
        )
        img.save(path.with_suffix(".png"))


def _expected_grey(name: str, i: int) -> float:
    return BRIGHTNESS[name] + 0.012 * i  # unique per image: 3 grey levels apart, classes 0.3 apart


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("user") / "my_data"
    root.mkdir()
    for name in BRIGHTNESS:
        (root / name).mkdir()
        for i in range(PER_CLASS):
            _save(root / name / f"img{i}", _expected_grey(name, i), kind=i % 5)
        (root / name / "README.txt").write_text("not an image")
        (root / name / ".hidden.png").write_bytes(b"not an image either")
    (root / ".DS_Store").write_bytes(b"\0\0")
    (root / ".git").mkdir()  # a hidden folder is not a class
    (root / "notes.txt").write_text("ignored")
    return root


def _all(ds):
    return tuple(np.concatenate([getattr(ds, f"{k}_{s}") for s in SPLITS]) for k in "xy")


# --------------------------------------------------------------------------------------------- folder


@pytest.mark.parametrize("in_chans", [1, 3])
def test_folder_keeps_every_image_once_with_its_class(image_folder, in_chans):
    ds = load_user_dataset(image_folder, img_size=32, in_chans=in_chans)
    assert ds.name == "my_data" and ds.class_names == ("apple", "mango", "zebra")
    assert (ds.n_train, ds.n_val, ds.n_test) == (15, 3, 6)  # per class: 2 test, 1 val, 5 train
    for s in SPLITS:
        x, y = getattr(ds, f"x_{s}"), getattr(ds, f"y_{s}")
        assert x.shape == (len(y), 32, 32, in_chans) and x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert len(set(np.bincount(y, minlength=3))) == 1 and min(np.bincount(y, minlength=3)) >= 1
    x, y = _all(ds)
    if in_chans == 3:
        assert np.abs(x - x[..., :1]).max() < 0.02  # grey images stay grey in all three channels
    means = x.mean(axis=(1, 2, 3))
    assert np.abs(x - means[:, None, None, None]).max() < 0.02  # uniform images stay uniform after resizing
    # every image appears exactly once over the three splits, with the label of its folder
    expected = sorted(_expected_grey(n, i) for n in BRIGHTNESS for i in range(PER_CLASS))
    np.testing.assert_allclose(np.sort(means), expected, atol=0.004)
    assert np.diff(np.sort(means)).min() > 0.006
    for c, name in enumerate(ds.class_names):
        got = means[y == c]
        assert len(got) == PER_CLASS and BRIGHTNESS[name] - 0.01 < got.min() and got.max() < BRIGHTNESS[name] + 0.1


def test_folder_provenance_is_compact_and_serialisable(image_folder):
    ds = load_user_dataset(image_folder)
    p = json.loads(json.dumps(ds.provenance))
    assert p["source"] == "user" and p["path"] == str(image_folder.resolve())
    assert p["classes"] == {"apple": 8, "mango": 8, "zebra": 8}
    assert p["sizes"] == {"train": 15, "val": 3, "test": 6}
    assert p["class_counts"] == {"train": [5, 5, 5], "val": [1, 1, 1], "test": [2, 2, 2]}
    steps = p["conversion"]["images_per_step"]
    assert steps["read PNG L (Pillow)"] == 6 and steps["read JPEG RGB (Pillow)"] == 6
    assert steps["read PNG P as RGB (Pillow)"] == 3 and steps["read PNG I;16 (Pillow)"] == 3
    assert steps["values 0..65535 -> 0..1"] == 3 and steps["values 0..255 -> 0..1"] == 21
    assert steps["rgba->rgb (alpha composited on black)"] == 6
    assert steps["resize 20x24->32x32 (skimage.transform.resize, bilinear)"] == 6
    assert steps["resize 40x40->32x32 (skimage.transform.resize, bilinear, anti-aliased)"] == 6
    assert len(steps) < 15  # one entry per distinct step, not per image


def test_folder_is_deterministic_and_the_seed_moves_images_between_splits(image_folder):
    a, b, c = (load_user_dataset(image_folder, img_size=16, seed=s) for s in (3, 3, 4))
    for s in SPLITS:
        for k in ("x", "y"):
            assert np.array_equal(getattr(a, f"{k}_{s}"), getattr(b, f"{k}_{s}"))
    assert a.provenance == b.provenance and a.input_shape == (16, 16, 1)
    test_means = [np.sort(d.x_test.mean(axis=(1, 2, 3))) for d in (a, c)]
    assert not np.allclose(*test_means)


def test_folder_classes_of_different_sizes_split_in_proportion(tmp_path):
    for name, n in {"big": 20, "small": 3}.items():
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(np.full((8, 8), i, np.uint8)).save(tmp_path / name / f"{i}.png")
    counts = load_user_dataset(tmp_path).provenance["class_counts"]
    assert counts == {"train": [13, 1], "val": [3, 1], "test": [4, 1]}


# ------------------------------------------------------------------------------------------------ npz


def _unique_images(n: int, offset: int, shape=(8, 8)) -> np.ndarray:
    """n uint8 images, image i filled with the value offset + i, so each can be recognised after conversion."""
    return np.broadcast_to((offset + np.arange(n, dtype=np.uint8))[:, None, None], (n, *shape)).copy()


def _identities(x: np.ndarray) -> list[int]:
    return np.round(x.reshape(len(x), -1).mean(axis=1) * 255).astype(int).tolist()


def test_npz_without_validation_carves_it_out_of_train(tmp_path):
    y_train, y_test = np.repeat(np.arange(4), 10), np.tile(np.arange(4), 3)
    path = tmp_path / "my_arrays.npz"
    np.savez(path, x_train=_unique_images(40, 0), y_train=y_train, x_test=_unique_images(12, 100), y_test=y_test)
    ds = load_user_dataset(path, img_size=16, in_chans=3, seed=1)
    assert ds.name == "my_arrays" and ds.class_names == ("0", "1", "2", "3")
    assert ds.x_train.shape == (32, 16, 16, 3) and (ds.n_val, ds.n_test) == (8, 12)
    train, val, test = (_identities(getattr(ds, f"x_{s}")) for s in SPLITS)
    assert sorted(train + val) == list(range(40)) and not set(train) & set(val)  # disjoint, nothing lost
    assert test == list(range(100, 112))  # the file's test split, unchanged and in order
    assert np.array_equal(ds.y_val, y_train[val]) and np.array_equal(ds.y_train, y_train[train])
    assert np.array_equal(np.bincount(ds.y_val), [2, 2, 2, 2])
    p = json.loads(json.dumps(ds.provenance))
    assert p["source"] == "user" and p["path"] == str(path.resolve()) and p["validation"].startswith("carved")
    assert p["conversion"]["value_range"] == [0.0, 255.0]
    again = load_user_dataset(path, img_size=16, in_chans=3, seed=1)
    assert np.array_equal(again.x_val, ds.x_val) and np.array_equal(again.y_train, ds.y_train)
    assert _identities(load_user_dataset(path, img_size=16, seed=2).x_val) != val


def test_npz_with_validation_and_class_names_is_used_as_given(tmp_path):
    rng = np.random.default_rng(0)
    x = {s: rng.random((n, 10, 12, 3)).astype(np.float32) for s, n in (("train", 9), ("val", 6), ("test", 3))}
    y = {"train": np.arange(9) % 3, "val": np.arange(6) % 3, "test": np.array([2, 1, 0])}
    path = tmp_path / "colours.npz"
    np.savez(
        path,
        **{f"x_{s}": x[s] for s in x},
        **{f"y_{s}": y[s][:, None] for s in y},  # (N, 1) labels
        class_names=np.array(["red", "green", "blue"]),
        notes=np.array("hi"),
    )
    ds = load_user_dataset(path, img_size=10, in_chans=1)
    assert ds.class_names == ("red", "green", "blue") and ds.input_shape == (10, 10, 1)
    assert (ds.n_train, ds.n_val, ds.n_test) == (9, 6, 3)
    assert all(np.array_equal(getattr(ds, f"y_{s}"), y[s]) for s in SPLITS)
    grey = x["val"] @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    assert np.allclose(ds.x_val[..., 0].mean(axis=(1, 2)), grey.mean(axis=(1, 2)), atol=0.01)
    assert ds.provenance["ignored_keys"] == ["notes"] and ds.provenance["validation"] == "x_val/y_val from the file"
    assert ds.provenance["classes"] == {"red": 6, "green": 6, "blue": 6}


def test_npz_float_splits_share_one_value_range(tmp_path):
    """Pixels outside 0..1 are scaled by the range over all splits, so equal values stay equal across splits."""
    x_train = np.linspace(0, 1000, 6 * 16).reshape(6, 4, 4)
    x_test = np.full((3, 4, 4), 500.0)
    path = tmp_path / "raw.npz"
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(6) % 3,
        x_test=x_test,
        y_test=np.arange(3),
        x_val=x_train[:3],
        y_val=np.arange(3),
    )
    ds = load_user_dataset(path, img_size=4)
    assert ds.provenance["conversion"]["value_range"] == [0.0, 1000.0]
    np.testing.assert_allclose(ds.x_test, 0.5)


# ------------------------------------------------------------------------------------------ bad data


def _folder(root, counts: dict[str, int]):
    root.mkdir(exist_ok=True)
    for name, n in counts.items():
        (root / name).mkdir()
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


def _truncated_png(tmp_path):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (root / "dogs" / "broken.png").write_bytes(data[: len(data) // 2])
    return root


def _renamed_text(tmp_path):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    (root / "cats" / "notes.png").write_text("this is not a picture")
    return root


def _empty_class(tmp_path):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    (root / "birds").mkdir()
    (root / "birds" / "README.txt").write_text("todo")
    return root


def _loose_images(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a.png")
    return root


def _npz(tmp_path, **changes):
    """A valid 3-class npz with ``changes`` applied; a change to None removes the key."""
    arrays = {
        "x_train": _unique_images(12, 0),
        "y_train": np.arange(12) % 3,
        "x_test": _unique_images(6, 50),
        "y_test": np.arange(6) % 3,
    }
    arrays.update(changes)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _nan_pixels(tmp_path):
    x = np.zeros((6, 8, 8), np.float32)
    x[0, 0, :2], x[1, 1, 1] = np.nan, np.inf
    return _npz(tmp_path, x_train=np.zeros((12, 8, 8), np.float32), x_test=x)


def _corrupt_member(tmp_path):
    path = _npz(tmp_path, x_train=np.zeros((12, 64, 64), np.uint8), x_test=np.zeros((6, 64, 64), np.uint8))
    data = bytearray(path.read_bytes())
    data[30_000:30_010] = b"\xff" * 10  # inside x_train's stored bytes: the CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def _npy_renamed(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    (tmp_path / "a.npy").rename(tmp_path / "a.npz")
    return tmp_path / "a.npz"


def _not_a_zip(tmp_path):
    (tmp_path / "junk.npz").write_text("x_train,y_train\n1,2\n")
    return tmp_path / "junk.npz"


def _zip_members(tmp_path, **members: bytes):
    """An .npz whose members are written byte for byte: the three valid arrays plus ``members``."""
    path = tmp_path / "bad.npz"
    valid = {"y_train": np.arange(12) % 3, "x_test": _unique_images(6, 50), "y_test": np.arange(6) % 3}
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in valid.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _npy_header(shape, descr="|u1") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _file(name, text="a,b\n"):
    def make(tmp_path):
        (tmp_path / name).write_text(text)
        return tmp_path / name

    return make


BAD = {
    # paths
    "missing-path": (lambda t: t / "nope", ["nope", "does not exist", "sub-folder", ".npz"]),
    "csv-file": (_file("data.csv"), ["data.csv", "neither a folder nor an .npz", "x_train, y_train"]),
    # folders
    "truncated-png": (_truncated_png, ["broken.png", "truncated", "re-save or delete"]),
    "text-as-png": (_renamed_text, ["notes.png", "cannot identify image", "re-save or delete"]),
    "empty-class": (_empty_class, ["birds", "contain no .png/.jpg/.jpeg images", "add images or remove"]),
    "no-class-folders": (_loose_images, ["no class sub-folders", "its own sub-folder"]),
    "single-class": (lambda t: _folder(t / "d", {"cats": 4}), ["single class folder 'cats'", "at least 2"]),
    "too-few-images": (lambda t: _folder(t / "d", {"cats": 4, "dogs": 2}), ["'dogs' has 2", "at least 3"]),
    # npz
    "missing-key": (lambda t: _npz(t, y_test=None), ["lacks key(s) y_test", "required: x_train, y_train, x_test"]),
    "x-val-only": (lambda t: _npz(t, x_val=_unique_images(3, 90)), ["x_val but no y_val", "give both"]),
    "y-val-only": (lambda t: _npz(t, y_val=np.arange(3)), ["y_val but no x_val", "give both"]),
    "negative-label": (lambda t: _npz(t, y_train=np.arange(12) % 3 - 1), ["y_train", "negative labels [-1]"]),
    "float-labels": (lambda t: _npz(t, y_test=np.arange(6) % 3.0), ["y_test", "float64", "labels must be integers"]),
    "one-hot-labels": (lambda t: _npz(t, y_test=np.eye(3, dtype=int)[np.arange(6) % 3]), ["y_test", "argmax"]),
    "label-past-class-names": (
        lambda t: _npz(t, y_train=np.arange(12) % 4, class_names=np.array(["a", "b", "c"])),
        ["class_names", "labels 0..3 need 4 names", "out of range"],
    ),
    "repeated-class-names": (
        lambda t: _npz(t, class_names=np.array(["a", "b", "a"])),
        ["class_names repeats ['a']", "own name"],
    ),
    "length-mismatch": (lambda t: _npz(t, y_train=np.arange(11) % 3), ["'train'", "12 images", "11 labels"]),
    "nan-pixels": (_nan_pixels, ["x_test", "2 NaN and 1 infinite", "drop those images"]),
    "mixed-shapes": (
        lambda t: _npz(t, x_test=np.zeros((6, 32, 32, 3), np.uint8)),
        ["x_train (8, 8) vs x_test (32, 32, 3)"],
    ),
    "mixed-dtypes": (
        lambda t: _npz(t, x_test=np.zeros((6, 8, 8), np.float32)),
        ["x_train is uint8 but x_test is float32"],
    ),
    "flat-images": (lambda t: _npz(t, x_train=np.zeros((12, 64))), ["x_train", "(12, 64)", "(N, H, W)"]),
    "channels-first": (lambda t: _npz(t, x_test=np.zeros((6, 3, 8, 8))), ["x_test", "(6, 3, 8, 8)", "channels last"]),
    "empty-split": (lambda t: _npz(t, x_test=np.zeros((0, 8, 8)), y_test=np.zeros(0, int)), ["x_test is empty"]),
    "object-array": (
        lambda t: _npz(t, x_train=np.array([np.zeros((8, 8)), "?"], dtype=object)),
        ["'x_train'", "object arrays"],
    ),
    "label-only-in-test": (
        lambda t: _npz(t, y_test=np.arange(6) % 4),
        ["labels [3] have no training images ([3] in y_test)", "relabel"],
    ),
    "label-gaps": (
        lambda t: _npz(t, y_train=np.arange(12) % 3 * 2, y_test=np.arange(6) % 3 * 2),
        ["labels [1, 3] have no training images ([1, 3] in no split)", "without gaps"],
    ),
    "huge-label": (lambda t: _npz(t, y_test=np.full(6, 10**9)), ["labels go up to 1000000000", "only 12 images"]),
    "uint64-label-past-int64": (  # 2**63 + 1 wrapped to class 1 when cast to int64 before it was checked
        lambda t: _npz(t, y_train=np.array([0, 1, 2] * 3 + [0, 1, 2**63 + 1], np.uint64)),
        ["labels go up to 9223372036854775809", "only 12 images"],
    ),
    "zero-width-images": (
        lambda t: _npz(t, x_train=np.zeros((12, 8, 0), np.uint8), x_test=np.zeros((6, 8, 0), np.uint8)),
        ["x_train has shape (12, 8, 0)", "at least one row and one column"],
    ),
    "values-beyond-float32": (
        lambda t: _npz(t, x_train=np.full((12, 8, 8), 1e300), x_test=np.full((6, 8, 8), -1e300)),
        ["pixel values span -1e+300..1e+300", "too wide for float32", "rescale"],
    ),
    "member-not-npy": (
        lambda t: _zip_members(t, x_train=b"\x93NUMPY not really"),
        ["'x_train' is corrupt", "member 'x_train' is not a .npy array"],
    ),
    "header-claims-more-than-stored": (  # 100 bytes claiming 100 GB: refused before numpy allocates them
        lambda t: _zip_members(t, **{"x_train.npy": _npy_header((100_000, 1000, 1000)) + bytes(100)}),
        ["'x_train' is corrupt", "declares (100000, 1000, 1000) uint8, 100,000,000,000 bytes", "holds 100"],
    ),
    "negative-shape-header": (
        lambda t: _zip_members(t, **{"x_train.npy": _npy_header((12, -8, 8))}),
        ["'x_train' is corrupt", "declares the shape (12, -8, 8)"],
    ),
    "object-header-unloaded": (  # refused from the header's dtype alone, the pickle never read
        lambda t: _zip_members(t, **{"x_train.npy": _npy_header((12, 8, 8), "|O") + b"\x80\x04junk"}),
        ["'x_train' cannot be loaded", "dtype object", "object arrays and pickled data are not supported"],
    ),
    "single-train-image": (
        lambda t: _npz(t, y_train=np.array([0] * 6 + [1] * 5 + [2])),
        ["labels [2] have a single training image", "x_val/y_val"],
    ),
    "not-a-zip": (_not_a_zip, ["junk.npz", "not a valid .npz"]),
    "npy-renamed": (_npy_renamed, ["a.npz", "not a valid .npz"]),
    "corrupt-member": (_corrupt_member, ["bad.npz", "'x_train' is corrupt", "re-save"]),
}


@pytest.mark.parametrize("make, fragments", list(BAD.values()), ids=list(BAD))
def test_bad_data_fails_early_naming_what_to_fix(tmp_path, make, fragments):
    path = make(tmp_path)
    with pytest.raises(UserDataError) as err:
        load_user_dataset(path)
    message = str(err.value)
    assert str(path) in message, message  # the file the user has to fix is named in full
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("path", ["~no_such_user_cnnbench/data", "a\x00b.npz"], ids=["unknown-user", "nul-byte"])
def test_path_that_cannot_name_a_file_is_refused(path):
    with pytest.raises(UserDataError) as err:
        load_user_dataset(path)
    message = str(err.value)
    assert message.startswith(f"{path!r} is not a usable path (") and "a user dataset is a folder" in message


# ------------------------------------------------------------------------------------------ hostile data


def _png_header(path, width: int, height: int) -> None:
    """A PNG of a few dozen bytes that declares width x height grey pixels (its pixel data a tiny stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    stub = chunk(b"IDAT", zlib.compress(bytes(16)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + stub + chunk(b"IEND", b""))


@pytest.fixture
def decoded(monkeypatch):
    """The files Pillow decodes during the test."""
    files = []
    load = ImageFile.ImageFile.load

    def recording(self):
        files.append(self.filename)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording)
    return files


@pytest.fixture
def loaded(monkeypatch):
    """The .npy arrays numpy loads (reads past the header) during the test."""
    calls = []
    read_array = np.lib.format.read_array

    def recording(fp, *args, **kwargs):
        calls.append(fp)
        return read_array(fp, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "read_array", recording)
    return calls


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    for name in (user.PIXELS_ENV, user.MEMORY_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "side, fragments",
    [
        (13_000, ["13000x13000 = 169,000,000 pixels"]),  # a 20 KB file of these took 133 s and 3.5 GB
        (10_000, ["10000x10000 = 100,000,000 pixels"]),  # Pillow's warning (an error here) does not preempt ours
        (20_000, ["Pillow refuses it as a possible decompression bomb", "PIL.Image.MAX_IMAGE_PIXELS"]),
    ],
    ids=["over-ours", "pillow-warns", "pillow-raises"],
)
def test_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path, decoded, side, fragments):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    _png_header(root / "dogs" / "huge.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning from Pillow would surface as itself, not as our error
        with pytest.raises(UserDataError) as err:
            load_user_dataset(root)
    message = str(err.value)
    expected = [
        f"1 image(s) exceed the limit of 50,000,000 pixels per image: {root / 'dogs' / 'huge.png'} (",
        "shrink them, or raise the limit with the environment variable CNNBENCH_MAX_IMAGE_PIXELS=<pixels> "
        "(default 50,000,000)",
        *fragments,
    ]
    for fragment in expected:
        assert fragment in message, message
    assert decoded == []  # refused from the headers, before any image was decoded


def test_pixel_limit_is_set_by_the_environment(tmp_path, monkeypatch):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    Image.fromarray(np.full((1000, 2000), 77, np.uint8)).save(root / "dogs" / "wide.png")
    monkeypatch.setenv("CNNBENCH_MAX_IMAGE_PIXELS", "1_999_999")
    with pytest.raises(UserDataError, match=r"limit of 1,999,999 pixels per image: .*wide.png \(2000x1000 = 2,000,000"):
        load_user_dataset(root)
    monkeypatch.setenv("CNNBENCH_MAX_IMAGE_PIXELS", "2e6")
    ds = load_user_dataset(root)
    assert ds.provenance["classes"] == {"cats": 3, "dogs": 4}
    monkeypatch.setenv("CNNBENCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(UserDataError, match="CNNBENCH_MAX_IMAGE_PIXELS='lots' is not a positive whole number"):
        load_user_dataset(root)


def test_memory_limit_is_half_the_physical_memory_unless_set(monkeypatch):
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, source = user.max_data_bytes()
    assert limit == physical // 2 and source.startswith("50% of this machine's")
    for value, expected in (("16G", 16 * 2**30), ("1.5 GiB", 3 * 2**29), ("500_000", 500_000), ("2e9", 2 * 10**9)):
        monkeypatch.setenv("CNNBENCH_MAX_DATA_BYTES", value)
        assert user.max_data_bytes() == (expected, "set by CNNBENCH_MAX_DATA_BYTES")
    for value in ("-1", "0", "1e999", "12 apples"):
        monkeypatch.setenv("CNNBENCH_MAX_DATA_BYTES", value)
        with pytest.raises(UserDataError, match=f"CNNBENCH_MAX_DATA_BYTES='{value}' is not a positive whole number"):
            user.max_data_bytes()
    monkeypatch.delenv("CNNBENCH_MAX_DATA_BYTES")

    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(os, "sysconf", no_sysconf)
    assert user.max_data_bytes()[0] == user.FALLBACK_MEMORY_LIMIT == 8 * 2**30


def test_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, monkeypatch, decoded):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    monkeypatch.setenv("CNNBENCH_MAX_DATA_BYTES", "200K")
    assert load_user_dataset(root, img_size=32, in_chans=3).n_train == 2  # 6 x 32x32x3 float32: 72 KiB
    decoded.clear()
    with pytest.raises(UserDataError) as err:
        load_user_dataset(root, img_size=64, in_chans=3)  # 6 x 64x64x3 float32: 288 KiB
    message = str(err.value)
    expected = [
        f"{root}: loading it needs about 384.2 KiB of memory (6 images of 64x64x3 float32 take 288.0 KiB, and "
        f"decoding the largest, {root / 'cats' / '0.png'} (8x8 L), about 96.2 KiB), more than the limit of 200.0 KiB "
        "(set by CNNBENCH_MAX_DATA_BYTES)",
        "use a smaller img_size or fewer or smaller images, or raise the limit with the environment variable "
        "CNNBENCH_MAX_DATA_BYTES=<bytes> (e.g. CNNBENCH_MAX_DATA_BYTES=32G)",
    ]
    for fragment in expected:
        assert fragment in message, message
    assert decoded == []


def test_npz_too_large_for_memory_is_refused_before_loading(tmp_path, monkeypatch, loaded):
    path = _npz(tmp_path)  # 12 + 6 images of 8x8 uint8
    monkeypatch.setenv("CNNBENCH_MAX_DATA_BYTES", "1M")
    with pytest.raises(UserDataError) as err:
        load_user_dataset(path, img_size=128, in_chans=3)  # 18 x 128x128x3 float32: 3.4 MiB
    assert str(err.value) == (
        f"{path}: loading it needs about 3.6 MiB of memory (its arrays take 1.3 KiB as stored, 18 images of "
        "128x128x3 float32 take 3.4 MiB, and converting them about 191.8 KiB), more than the limit of 1.0 MiB (set by "
        "CNNBENCH_MAX_DATA_BYTES); use a smaller img_size or fewer or smaller images, or raise the limit with the "
        "environment variable CNNBENCH_MAX_DATA_BYTES=<bytes> (e.g. CNNBENCH_MAX_DATA_BYTES=32G)"
    )
    assert loaded == []


def _deflated_npz(path, x_train: np.ndarray) -> None:
    np.savez_compressed(
        path, x_train=x_train, y_train=np.arange(len(x_train)) % 3, x_test=x_train[:6], y_test=np.arange(6) % 3
    )


def test_npz_headers_are_checked_before_any_array_is_loaded(tmp_path, monkeypatch, loaded):
    """A 100 KB deflated file of 2 x 4000x4000 images over the pixel limit: refused from its headers, without
    allocating the 32 MB the arrays would take (it used to reach the full size before its shape was refused)."""
    path = tmp_path / "bomb.npz"
    _deflated_npz(path, np.zeros((2, 4000, 4000), np.uint8))
    assert path.stat().st_size < 200_000
    monkeypatch.setenv("CNNBENCH_MAX_IMAGE_PIXELS", "1000000")
    tracemalloc.start()
    try:
        with pytest.raises(UserDataError) as err:
            load_user_dataset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (
        f"{path}: x_train holds images of 4000x4000 = 16,000,000 pixels, over the limit of 1,000,000 pixels per "
        "image; shrink them, or raise the limit with the environment variable CNNBENCH_MAX_IMAGE_PIXELS=<pixels> "
        "(default 50,000,000)"
    ) == str(err.value)
    assert loaded == [] and peak < 2 * 2**20, peak


def test_npz_of_very_wide_images_loads_in_memory_linear_in_its_pixels(tmp_path):
    """Images of 1x100000 pixels: the dense resize needed a 100000x100000 identity (80 GB: MemoryError)."""
    path = tmp_path / "wide.npz"
    rng = np.random.default_rng(0)
    _deflated_npz(path, rng.integers(0, 256, (12, 1, 100_000), dtype=np.uint8))
    tracemalloc.start()
    try:
        ds = load_user_dataset(path, img_size=32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.x_train.shape == (9, 32, 32, 1) and ds.x_test.shape == (6, 32, 32, 1)
    assert peak < 96 * 2**20, peak
    np.testing.assert_allclose(ds.x_test.mean(axis=(1, 2, 3)), np.load(path)["x_test"].mean(axis=(1, 2)) / 255,
                               atol=0.02)  # fmt: skip


def _link(link, target) -> None:
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except (OSError, NotImplementedError):
        pytest.skip("this system cannot make symbolic links")


@pytest.mark.parametrize("what", ["class-folder", "image"])
def test_links_leading_out_of_the_folder_are_refused(tmp_path, what, decoded):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3})
    outside = _folder(tmp_path / "elsewhere", {"birds": 3})
    link, target = (
        (root / "birds", outside / "birds")
        if what == "class-folder"
        else (root / "dogs" / "x.png", outside / "birds" / "0.png")
    )
    _link(link, target)
    with pytest.raises(UserDataError) as err:
        load_user_dataset(root)
    assert str(err.value) == (
        f"{root}: 1 link(s) lead outside the dataset folder: {link} -> {target}; copy the files into {root} instead "
        "of linking them (links that stay inside it are fine)"
    )
    assert decoded == []


def test_links_inside_the_folder_are_followed(tmp_path):
    root = _folder(tmp_path / "d", {"cats": 3, "dogs": 3, "store": 3})
    _link(root / "birds", root / "store")  # a class folder linked to another inside the root
    _link(root / "cats" / "extra.png", root / "dogs" / "0.png")
    ds = load_user_dataset(root)
    assert ds.provenance["classes"] == {"birds": 3, "cats": 4, "dogs": 3, "store": 3}
