"""Hostile and random inputs: the suite reader, the .npz and folder dataset loaders and the report reader either
accept an input or refuse it with their own clear error (SuiteError, UserDataError, ValueError naming the file),
never with a traceback from tomllib, numpy, Pillow, zipfile or json. The property tests are derandomized and
bounded (well under a minute in all on one core), so they are as repeatable as the rest of the suite."""

from __future__ import annotations

import io
import json
import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnbench.config.hardware import HardwareSuite
from cnnbench.config.quadrants import QUADRANTS
from cnnbench.config.strategies import STRATEGIES
from cnnbench.config.suite import Suite, SuiteError, parse_suite, read_suite, resolve
from cnnbench.data.dataset import Dataset
from cnnbench.data.user import UserDataError, load_user_dataset
from cnnbench.engine.catalog import registry_catalog
from cnnbench.results.schema import load_report

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
SMOKE = resolve("smoke")
SMOKE_TEXT = SMOKE.read_text(encoding="utf-8")
SMOKE_RAW = tomllib.loads(SMOKE_TEXT)
IMG_SIZE = 8  # small conversions keep the loader fuzzing fast


# ------------------------------------------------------------------------------------------------ suites


def _words() -> list[str]:
    """Strings a suite may hold, so mutations often reach the checks behind the type checks, paths that are no
    paths among them."""
    catalog = registry_catalog()
    return [*catalog.archs, *catalog.targets, *catalog.heads, *catalog.augmentations, *STRATEGIES.names(),
            *QUADRANTS, "half", "transfer", "hardware", "adamw", "sgd", "fp32", "bf16", "", " ", "smoke", "q5",
            "/", "..", "data", "./data", "data.npz", "data/cat", "missing/folder", "~", "é",
            "~no_such_user_cnnbench/data", "a\x00b"]  # fmt: skip


def _keys(table: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in a nested dict/list, the root included."""
    paths = [prefix]
    if isinstance(table, dict):
        for k, v in table.items():
            paths += _keys(v, (*prefix, k))
    elif isinstance(table, list):
        for i, v in enumerate(table):
            paths += _keys(v, (*prefix, i))
    return paths


def _values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.integers(-3, 3000),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=8),
        st.sampled_from(_words()),
        st.dates(),
        st.datetimes(),
    )
    keys = st.one_of(st.text(max_size=6), st.sampled_from([*SMOKE_RAW, *SMOKE_RAW["train"], "extends", "kind"]))
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=8
    )


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of ``value``'s TOML type, edge cases included."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-2, 5), st.integers(0, 5000), st.sampled_from([2**63 - 1, -(2**63), 10**12]))
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, -1.0])
    if isinstance(value, str):
        return st.sampled_from(_words())
    if isinstance(value, list):
        items = value[0] if value else ""
        return st.lists(_like(items) | st.sampled_from(_words()), max_size=4)
    return _values()


@st.composite
def mutated_suites(draw: st.DrawFn) -> dict[str, Any]:
    """smoke.toml's table with a few keys removed, replaced by random values or added."""
    raw = json.loads(json.dumps(SMOKE_RAW))  # a deep copy
    for _ in range(draw(st.integers(1, 5))):
        path = draw(st.sampled_from(_keys(raw)[1:]))
        *parents, last = path
        holder = raw
        for k in parents:
            holder = holder[k]
        action = draw(st.sampled_from(["remove", "replace", "tweak", "tweak", "add", "target"]))
        if action == "target" and isinstance(raw.get("quadrants"), dict) and raw["quadrants"]:
            quadrant = raw["quadrants"][draw(st.sampled_from(sorted(raw["quadrants"])))]
            if isinstance(quadrant, dict):
                quadrant["target"] = draw(st.sampled_from(_words()))
            continue
        value = holder[last]
        if action == "remove":
            del holder[last]
        elif action == "tweak" and not isinstance(value, dict):  # a value of the same type: past the type checks
            holder[last] = draw(_like(value))
        elif action in ("replace", "tweak") or not isinstance(value, dict):
            holder[last] = draw(_values())
        else:
            holder[last][draw(st.text(min_size=1, max_size=6))] = draw(_values())
    return raw


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    """A folder holding a suite file, so relative user-dataset targets have a place to start from."""
    folder = tmp_path_factory.mktemp("suites")
    (folder / "my.toml").write_text(SMOKE_TEXT, encoding="utf-8")
    for name in ("cat", "dog"):  # user datasets a target may name: data (a folder) and data.npz
        (folder / "data" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / "data" / name / f"{i}.png")
    x = np.zeros((12, 8, 8), np.uint8)
    np.savez(folder / "data.npz", x_train=x, y_train=np.arange(12) % 3, x_test=x[:6], y_test=np.arange(6) % 3)
    return folder


@settings(FUZZ, max_examples=400)
@given(raw=mutated_suites())
def test_fuzzed_suite_tables_parse_or_raise_suite_error(suite_dir, raw):
    try:
        suite = parse_suite(raw, registry_catalog(), str(suite_dir / "my.toml"))
    except SuiteError as err:
        event(f"refused: {str(err).split(': ')[2][:30] if str(err).count(': ') > 1 else str(err)[:30]}")
        return
    event("parsed")
    assert isinstance(suite, Suite) and suite.archs and suite.quadrants


TOML_PIECES = ["[", "]", "[[", "{", "}", "=", '"', "'", '"""', ",", ".", "#", "\n", " ", "\t", "0", "1e9", "-", "+",
               "nan", "inf", "true", "x", "é", "\x00", "\\", "\\u12", "1979-05-27", "[train]", "[quadrants.q1]",
               "extends = ", "kind = ", "target = ", "steps = "]  # fmt: skip


@st.composite
def mutated_toml(draw: st.DrawFn) -> str:
    """smoke.toml's text with spans deleted, replaced or repeated, or random text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=200))
    text = SMOKE_TEXT
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        piece = draw(
            st.one_of(st.just(""), st.sampled_from(TOML_PIECES), st.text(max_size=6), st.just(text[start:end] * 2))
        )
        text = text[:start] + piece + text[end:]
    return text


@settings(FUZZ, max_examples=250)
@given(text=mutated_toml())
def test_fuzzed_suite_files_read_or_raise_suite_error(suite_dir, text):
    path = suite_dir / "fuzzed.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        suite = read_suite(str(path), registry_catalog())
    except SuiteError as err:
        event("refused: not valid TOML" if "not valid TOML" in str(err) else "refused: other")
        return
    event("read")
    assert isinstance(suite, (Suite, HardwareSuite))


@pytest.mark.parametrize("target", ["~no_such_user_cnnbench/data", "a\x00b"], ids=["unknown-user", "nul"])
def test_suite_user_target_that_is_no_path_is_a_suite_error(suite_dir, target):
    raw = json.loads(json.dumps(SMOKE_RAW))
    raw["quadrants"]["q1"]["target"] = target
    with pytest.raises(SuiteError, match=r"key 'quadrants\.q1\.target'"):
        parse_suite(raw, registry_catalog(), str(suite_dir / "my.toml"))


@pytest.mark.parametrize("value", ["[" * 1000 + "]" * 1000, "{a = " * 1000 + "1" + "}" * 1000], ids=["array", "table"])
def test_suite_nested_too_deeply_is_a_suite_error(tmp_path, value):
    path = tmp_path / "deep.toml"
    path.write_text(f"name = 'deep'\nx = {value}\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=r"deep\.toml"):
        read_suite(str(path), registry_catalog())


# ---------------------------------------------------------------------------------------------- datasets


def _gist(message: str, path: Path) -> str:
    """The kind of a refusal, for hypothesis's statistics (pytest --hypothesis-show-statistics)."""
    words = message.replace(str(path), "").replace(":", " ").split()
    return " ".join(w for w in words if w.isalpha())[:40]


def _check_dataset(ds: Dataset, in_chans: int) -> None:
    """What every accepted dataset holds, however odd its source."""
    assert ds.input_shape == (IMG_SIZE, IMG_SIZE, in_chans)
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert len(x) == len(y) > 0 and x.dtype == np.float32 and y.dtype == np.int32
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
        assert y.min() >= 0 and y.max() < ds.n_classes
    assert set(np.unique(ds.y_train)) == set(range(ds.n_classes))  # every class can be learnt


IMAGE_DTYPES = ["u1", "u2", "i1", "<i8", "<u8", ">u2", "<f2", "<f4", ">f4", "<f8", "?"]
LABEL_DTYPES = ["<i8", "i1", "u1", "<u8", ">i4", "<u2"]
ODD_DTYPES = ["c8", "U3", "M8[s]", "V4", "O"]


def _array_like(draw: st.DrawFn, shape: list[int], dtype: str, high: int) -> np.ndarray:
    """Random values 0..high-1 of ``shape`` and ``dtype``; odd dtypes (complex, text, dates, objects) as zeros."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dt.kind == "O":
        return np.array([None, "x"] * (math.prod(shape) // 2 + 1), dtype=object)[: math.prod(shape)].reshape(shape)
    if dt.kind in "UMVc":
        return np.zeros(shape, dt)
    return rng.integers(0, 2 if dt.kind == "b" else high, shape).astype(dt)


NPZ_CHANGES = ["dtype", "shape", "drop", "nan", "label", "labels-length", "labels-dtype", "empty", "class-names",
               "extra-key", "fortran", "truncate", "overwrite", "odd-dtype", "zero-dim", "scalar"]  # fmt: skip


@st.composite
def npz_files(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """The bytes of an .npz: a valid dataset (random classes, sizes, image shape and dtypes, with or without
    x_val/y_val and class_names) with none to three random changes, and the changes made."""
    k = draw(st.integers(2, 4))
    image = [draw(st.integers(1, 12)), draw(st.integers(1, 12)), *draw(st.sampled_from([[], [1], [3], [4]]))]
    x_dtype, y_dtype = draw(st.sampled_from(IMAGE_DTYPES)), draw(st.sampled_from(LABEL_DTYPES))
    splits = ["train", "test", *(["val"] if draw(st.booleans()) else [])]
    members: dict[str, np.ndarray] = {}
    for split in splits:
        n = draw(st.integers(2 * k if split == "train" else 1, 3 * k))
        members[f"x_{split}"] = _array_like(draw, [n, *image], x_dtype, 256)
        members[f"y_{split}"] = (np.arange(n) % k).astype(y_dtype)
    if draw(st.booleans()):
        members["class_names"] = np.array([f"class {c}" for c in range(k)])
    changes = draw(st.lists(st.sampled_from(NPZ_CHANGES), min_size=int(draw(st.integers(0, 5)) > 0), max_size=3))
    for change in changes:
        key = draw(st.sampled_from(sorted(members) or ["x_train"]))
        if key not in members:
            continue
        a = members[key]
        if change == "dtype" and a.dtype.kind in "biuf":
            members[key] = a.astype(draw(st.sampled_from(IMAGE_DTYPES + LABEL_DTYPES)))
        elif change == "odd-dtype":
            members[key] = _array_like(draw, list(a.shape), draw(st.sampled_from(ODD_DTYPES)), 3)
        elif change == "shape" and a.ndim and a.size:
            members[key] = a.reshape(draw(st.sampled_from([[-1], [a.shape[0], -1], [1, *a.shape], [*a.shape, 1]])))
        elif change == "zero-dim" and a.ndim:
            members[key] = np.zeros([0 if i == draw(st.integers(0, a.ndim - 1)) else d for i, d in enumerate(a.shape)],
                                    a.dtype)  # fmt: skip
        elif change == "scalar":
            members[key] = np.array(draw(st.sampled_from([0, 1.5, "x"])))
        elif change == "drop":
            del members[key]
        elif change == "empty":
            members[key] = a[:0]
        elif change == "nan" and a.dtype.kind == "f" and a.size:
            with np.errstate(over="ignore"):
                a.flat[0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, 65504.0, -3.0]))
        elif change == "label" and a.dtype.kind in "iu" and a.size:
            info = np.iinfo(a.dtype)
            fits = [v for v in (-1, k, k + 5, 2**31, 2**63 + 1, info.max) if info.min <= v <= info.max]
            a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(fits))
        elif change == "labels-length":
            members[key] = np.concatenate([a, a[:1]]) if draw(st.booleans()) or len(a) < 2 else a[:-1]
        elif change == "labels-dtype":
            members[key] = a.astype(draw(st.sampled_from(["<f8", "?", "<u8", "i1"])))
        elif change == "class-names":
            names = draw(st.lists(st.sampled_from(["a", "b", "", "é", "a b"]), max_size=5))
            members["class_names"] = np.array(names) if draw(st.booleans()) else np.arange(len(names))
        elif change == "extra-key":
            members[draw(st.sampled_from(["notes", "x_extra", "y_val", "x_val"]))] = np.arange(3)
        elif change == "fortran":
            members[key] = np.asfortranarray(a)
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **members)
    data = bytearray(buffer.getvalue())
    if "truncate" in changes:
        data = data[: draw(st.integers(0, len(data)))]
    if "overwrite" in changes and data:
        at = draw(st.integers(0, len(data) - 1))
        patch = draw(st.binary(min_size=1, max_size=8))
        data[at : at + len(patch)] = patch
    return bytes(data), changes


@settings(FUZZ, max_examples=300)
@given(npz=npz_files(), in_chans=st.sampled_from([1, 3]))
def test_fuzzed_npz_files_load_or_raise_user_data_error(npz, in_chans):
    data, changes = npz
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.npz"
        path.write_bytes(data)
        try:
            ds = load_user_dataset(path, img_size=IMG_SIZE, in_chans=in_chans)
        except UserDataError as err:
            assert str(path) in str(err)
            event(f"refused: {_gist(str(err), path)}")
            return
    event("loaded" + (" after " + ", ".join(sorted(set(changes))) if changes else ""))
    _check_dataset(ds, in_chans)


def _image_file(draw: st.DrawFn, valid: bool) -> tuple[str, bytes]:
    """A file name suffix and content: a small PNG or JPEG of a random mode and size or, unless ``valid``, maybe
    no image at all (garbage, empty, cut short) or a GIF under an image suffix."""
    kind = draw(st.sampled_from(["png", "jpeg"] if valid else ["garbage", "empty", "truncated", "gif", "png"]))
    if kind in ("garbage", "empty"):
        return draw(st.sampled_from([".png", ".jpg"])), draw(st.binary(max_size=64)) if kind == "garbage" else b""
    modes = {"jpeg": ["L", "RGB", "CMYK"], "gif": ["P", "L"]}.get(kind, ["L", "RGB", "RGBA", "P", "1", "LA", "I;16"])
    mode = draw(st.sampled_from(modes))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    pixels = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, (size[1], size[0], 4), np.uint8)
    if mode == "I;16":
        img = Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    else:
        img = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format={"png": "PNG", "truncated": "PNG", "jpeg": "JPEG", "gif": "GIF"}[kind])
    data = buffer.getvalue()
    if kind == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
    suffixes = [".png", ".PNG", ".jpg", ".jpeg"] if valid else [".png", ".jpg", ".txt", ""]
    return draw(st.sampled_from(suffixes)), data


@st.composite
def image_folders(draw: st.DrawFn) -> dict[str, dict[str, bytes]]:
    """Class folder name -> file name -> content: 2 or 3 classes of 3 to 5 valid images of random formats,
    modes and sizes, with random extra classes (hidden, empty) and files (hidden, broken, foreign)."""
    names = draw(
        st.lists(st.sampled_from(["cat", "dog", "bird", "Ünïcode", "x y"]), min_size=2, max_size=3, unique=True)
    )
    folders: dict[str, dict[str, bytes]] = {}
    for name in names:
        folders[name] = {}
        for i in range(draw(st.integers(3, 5))):
            suffix, data = _image_file(draw, valid=True)
            folders[name][f"{i}{suffix}"] = data
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from([*names, ".hidden", "empty"]))
        folders.setdefault(name, {})
        if draw(st.integers(0, 3)):
            suffix, data = _image_file(draw, valid=False)
            folders[name][f"{'.' if draw(st.integers(0, 3)) == 0 else ''}extra{len(folders[name])}{suffix}"] = data
    return folders


@settings(FUZZ, max_examples=150)
@given(folders=image_folders(), in_chans=st.sampled_from([1, 3]))
def test_fuzzed_image_folders_load_or_raise_user_data_error(folders, in_chans):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        root.mkdir()
        for name, files in folders.items():
            (root / name).mkdir()
            for file, data in files.items():
                (root / name / file).write_bytes(data)
        (root / "loose.png").write_bytes(b"ignored: not in a class folder")
        try:
            ds = load_user_dataset(root, img_size=IMG_SIZE, in_chans=in_chans)
        except UserDataError as err:
            event(f"refused: {_gist(str(err), root)}")
            return
    event("loaded")
    _check_dataset(ds, in_chans)
    assert ds.class_names == tuple(sorted(n for n in folders if not n.startswith(".")))


# ----------------------------------------------------------------------------------------------- reports


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        '{"a": ' * 100_000 + "[]" + "}" * 100_000,
    ],
    ids=["lists", "objects", "objects-around-a-list"],
)
def test_report_nested_too_deeply_is_a_clear_error(tmp_path, text):
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_report(path)
    assert type(err.value) is ValueError and str(err.value).startswith(f"{path} is not a usable report: its JSON is "
                                                                        "nested too deeply")  # fmt: skip
    assert "regenerate it or point to another report.json" in str(err.value)


def test_report_values_are_quoted_short_in_problems(tmp_path):
    """A metric nested as deep as json accepts, or a huge string, is named in a line, not repeated in full."""
    report = json.loads((Path(__file__).parent.parent / "reports" / "baselines" / "smoke-cpu.json").read_text())
    report["scenarios"][0]["metrics"]["test_accuracy"] = "X"
    report["scenarios"][1]["status"] = "y" * 1_000_000
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report).replace('"X"', "[" * 900 + "]" * 900, 1), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_report(path)
    message = str(err.value)
    assert ".metrics.test_accuracy is [[[[...]]]], not a number or null" in message, message[:500]
    assert "has status 'yyyyyyyy" in message and len(message) < 1000, message[:500]


def test_report_with_an_integer_too_long_to_convert_is_a_clear_error(tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"schema": ' + "9" * 5000 + "}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"report.json is not usable JSON \(Exceeds the limit \(4300 digits\)"):
        load_report(path)
