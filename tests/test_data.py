"""The data layer: glyph rendering, the source domain, input conversion, splits and the built-in targets."""

from __future__ import annotations

import json
import tracemalloc

import jax
import numpy as np
import pytest
from skimage.transform import resize

from cnnbench.data import (
    TARGETS,
    Dataset,
    SourceConfig,
    SourceDomain,
    build_target,
    glyphs,
    stratified_split,
    to_input_format,
)
from cnnbench.data.dataset import _build_resize_matrix, _cached_resize_matrix, resize_bytes
from cnnbench.data.targets import TEXTURE_IMAGES, texture_layout, texture_patches
from cnnbench.data.targets import load_digits as shipped_digits
from cnnbench.registry import UnknownNameError

ALL_CHARS = glyphs.LETTERS + glyphs.DIGITS


# ---------------------------------------------------------------------------------------------- glyphs


def test_font_lists_are_disjoint_and_large_enough():
    assert not set(glyphs.SOURCE_FONTS) & set(glyphs.HELDOUT_FONTS)
    assert len(glyphs.SOURCE_FONTS) >= 18 and len(glyphs.HELDOUT_FONTS) >= 4
    assert len(set(glyphs.SOURCE_FONTS)) == len(glyphs.SOURCE_FONTS)


@pytest.mark.parametrize("font", glyphs.SOURCE_FONTS + glyphs.HELDOUT_FONTS)
def test_every_font_renders_real_distinct_glyphs(font):
    chars = ALL_CHARS if font in glyphs.SOURCE_FONTS else glyphs.DIGITS
    assert all(glyphs.has_glyph(font, c) for c in chars)
    bank = np.stack([glyphs.render_glyph(font, c) for c in chars]).reshape(len(chars), -1)
    assert bank.dtype == np.float32 and bank.min() == 0.0 and bank.max() > 0.9
    ink = bank.sum(axis=1)
    assert ink.min() > 40  # every glyph has ink: at least ~40 fully inked pixels of 64x64
    assert (bank[:, :64].sum(axis=1) == 0).all()  # top row empty: glyphs fit on the canvas
    dist = np.abs(bank[:, None] - bank[None]).sum(axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 10  # no two characters render alike (min measured: 13, DejaVuSans i/l)


def test_lowercase_is_smaller_than_uppercase_and_glyphs_are_centred():
    o, big_o = glyphs.render_glyph("DejaVuSans", "o"), glyphs.render_glyph("DejaVuSans", "O")
    assert o.sum() < 0.8 * big_o.sum()
    cols = np.flatnonzero(big_o.max(axis=0) > 0.5)
    assert abs((cols[0] + cols[-1]) / 2 - 31.5) <= 1.0


def test_stroke_variants_thicken_in_order():
    for font in ("DejaVuSans", "cmr10", "STIXGeneral"):
        ink = [glyphs.render_glyph(font, "a", 64, s).sum() for s in glyphs.STROKES]
        assert ink[0] < 0.85 * ink[1] and ink[2] > 1.15 * ink[1]
    with pytest.raises(ValueError, match="unknown stroke 'heavy'"):
        glyphs.render_glyph("DejaVuSans", "a", 64, "heavy")
    with pytest.raises(ValueError, match="unknown font 'Comic'"):
        glyphs.font_path("Comic")


def test_augment_is_a_pure_function_of_the_key():
    bank = glyphs.glyph_bank(glyphs.HELDOUT_FONTS, glyphs.DIGITS, glyphs.STROKES, 64, 32)
    idx = np.arange(64) % bank.shape[0]
    aug = glyphs.Augment()
    a = np.asarray(glyphs.augment_glyphs(bank, idx, jax.random.key(1), img_size=32, aug=aug))
    b = np.asarray(glyphs.augment_glyphs(bank, idx, jax.random.key(1), img_size=32, aug=aug))
    c = np.asarray(glyphs.augment_glyphs(bank, idx, jax.random.key(2), img_size=32, aug=aug))
    assert a.shape == (64, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05
    assert a.min() >= 0 and a.max() <= 1
    # the glyph is in the middle: the centre carries more ink contrast than the border
    centre, border = a[:, 8:24, 8:24].std(axis=(1, 2)), a[:, :3, :].std(axis=(1, 2))
    assert (centre > border).mean() > 0.9


def test_augment_without_randomness_reproduces_the_glyph():
    still = glyphs.Augment(rotation_deg=0, scale=(1, 1), aspect=(1, 1), shear_deg=0, translate=0,
                           ink=(1, 1), background=(0, 0), noise_std=(0, 0), blur_sigma=(0, 0))  # fmt: skip
    bank = glyphs.glyph_bank(("DejaVuSans",), "H", ("normal",), 64, 64)
    out = np.asarray(glyphs.augment_glyphs(bank, np.zeros(1, np.int32), jax.random.key(0), img_size=64, aug=still))
    np.testing.assert_allclose(out[0], np.asarray(bank[0]), atol=1e-5)


# ---------------------------------------------------------------------------------------------- source


@pytest.fixture(scope="module")
def source() -> SourceDomain:
    return SourceDomain(SourceConfig())


def test_source_batches_are_deterministic_in_seed_and_step(source):
    x, y = source.batch(seed=3, step=7, batch_size=256)
    x2, y2 = source.batch(seed=3, step=7, batch_size=256)
    assert x.shape == (256, 32, 32, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(x), np.asarray(x2))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(y2))
    for other in (source.batch(3, 8, 256), source.batch(4, 7, 256)):
        assert np.abs(np.asarray(x) - np.asarray(other[0])).mean() > 0.05
        assert (np.asarray(y) != np.asarray(other[1])).mean() > 0.9
    assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_source_covers_every_class_font_and_stroke_uniformly(source):
    assert source.n_classes == 52 and "".join(source.class_names) == glyphs.LETTERS
    assert not set(glyphs.DIGITS) & set(source.class_names)
    meta = np.concatenate([source.batch_glyphs(0, step, 256) for step in range(16)])
    np.testing.assert_array_equal(meta[-256:, 0], np.asarray(source.batch(0, 15, 256)[1]))
    counts = np.bincount(meta[:, 0], minlength=52)
    assert counts.min() > 0.5 * 4096 / 52 and counts.max() < 1.5 * 4096 / 52
    assert set(meta[:, 1]) == set(range(len(glyphs.SOURCE_FONTS)))
    assert set(meta[:, 2]) == set(range(len(glyphs.STROKES)))


def test_source_eval_set_is_fixed_and_not_a_training_batch(source):
    xe, ye = source.eval_set(256)
    np.testing.assert_array_equal(np.asarray(xe), np.asarray(source.eval_set(256)[0]))
    for seed in (0, source.config.eval_seed):
        xt, _ = source.batch(seed, 0, 256)
        assert np.abs(np.asarray(xe) - np.asarray(xt)).mean() > 0.05
    assert len(np.unique(np.asarray(ye))) > 40


def test_source_config_is_a_json_cache_key():
    config = SourceConfig()
    as_json = json.dumps(config.to_dict(), sort_keys=True)
    assert json.loads(as_json)["fonts"] == list(glyphs.SOURCE_FONTS)
    assert as_json != json.dumps(SourceConfig(img_size=48).to_dict(), sort_keys=True)
    assert as_json == json.dumps(SourceConfig().to_dict(), sort_keys=True)
    with pytest.raises(ValueError, match="in_chans must be 1 or 3, got 4"):
        SourceConfig(in_chans=4)


def test_source_rgb_repeats_grey():
    x, _ = SourceDomain(SourceConfig(in_chans=3)).batch(0, 0, 256)
    x = np.asarray(x)
    assert x.shape == (256, 32, 32, 3)
    np.testing.assert_array_equal(x[..., 0], x[..., 2])


# ------------------------------------------------------------------------------------ input conversion


def test_to_input_format_converts_grey_uint8_and_resizes_like_skimage():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 20, 12), dtype=np.uint8)
    x, info = to_input_format(images, 16, 1)
    assert x.shape == (5, 16, 16, 1) and x.dtype == np.float32
    expected = resize(images[..., None] / 255.0, (5, 16, 16, 1), order=1, anti_aliasing=True)
    np.testing.assert_allclose(x, expected, atol=1e-5)
    assert info["value_range"] == [0.0, 255.0] and "anti-aliased" in info["steps"][-1]


def test_to_input_format_channel_conversions():
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    grey, info = to_input_format(red, 4, 1)
    np.testing.assert_allclose(grey, 0.2125, atol=1e-6)
    assert "rgb->grey (ITU-R 709 luminance)" in info["steps"]

    rgba = np.concatenate([red, np.full((1, 4, 4, 1), 255, np.uint8)], axis=-1)
    rgba[0, :2, :, 3] = 0  # top half transparent -> black
    rgb, _ = to_input_format(rgba, 4, 3)
    np.testing.assert_allclose(rgb[0, :2], 0.0)
    np.testing.assert_allclose(rgb[0, 2:, :, 0], 1.0)

    digits = np.arange(16, dtype=np.float64).reshape(1, 4, 4)
    x, info = to_input_format(digits, 8, 3, value_range=(0.0, 16.0))
    assert x.shape == (1, 8, 8, 3) and x.max() <= 15 / 16 + 1e-6 and x.min() >= 0
    np.testing.assert_array_equal(x[..., 0], x[..., 1])
    assert info["steps"][-1] == "grey->rgb (channel repeated)"

    with pytest.raises(ValueError, match="C in 1/3/4"):
        to_input_format(np.zeros((2, 4, 4, 2)), 4, 1)


def test_to_input_format_antialiases_when_shrinking():
    checker = np.indices((64, 64)).sum(axis=0) % 2  # finest possible stripes
    x, _ = to_input_format(checker[None].astype(np.float32), 16, 1)
    assert abs(x.mean() - 0.5) < 0.01 and x.std() < 0.05  # averaged to grey, not aliased


@pytest.mark.parametrize("n_in, n_out", [(1, 5), (2, 3), (5, 32), (20, 16), (24, 32), (40, 32), (33, 7), (64, 32),
                                         (97, 13), (500, 32), (1000, 7), (333, 224), (20, 224)])  # fmt: skip
def test_resize_matrix_is_skimage_resize_of_an_identity(n_in, n_out):
    """The taps built directly are the map skimage's resize applies (what the dense identity used to give), to
    the last float32 bit: datasets convert exactly as before."""
    eye = np.eye(n_in)
    expected = resize(eye, (n_out, n_in), order=1, anti_aliasing=n_out < n_in).astype(np.float32)
    np.testing.assert_array_equal(_build_resize_matrix(n_in, n_out), expected)


def test_resize_memory_grows_with_the_side_not_its_square():
    """Shrinking a 6000-pixel-wide image to 32 needs a few MB; the dense 6000x6000 identity took 288 MB (a 13000-
    pixel side: 1.35 GB and two minutes)."""
    image = np.random.default_rng(0).integers(0, 256, (1, 4, 6000), dtype=np.uint8)
    _cached_resize_matrix.cache_clear()
    tracemalloc.start()
    try:
        x, info = to_input_format(image, 32, 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.shape == (1, 32, 32, 1) and "resize 4x6000->32x32" in info["steps"][-1]
    assert peak < 8 * 2**20, peak
    assert resize_bytes(6000, 32) < 8 * 2**20 < resize_bytes(100_000, 32)  # the estimate used before decoding
    np.testing.assert_allclose(x.mean(), image.mean() / 255, atol=0.01)  # an average, nothing lost or doubled


# ---------------------------------------------------------------------------------- splits and Dataset


def test_stratified_split_is_disjoint_balanced_and_seeded():
    y = np.repeat(np.arange(4), 50)
    a, b, c = stratified_split(y, [40, 20, 21], seed=0)
    assert (len(a), len(b), len(c)) == (40, 20, 21)
    assert not (set(a) & set(b) or set(a) & set(c) or set(b) & set(c))
    np.testing.assert_array_equal(np.bincount(y[a]), [10, 10, 10, 10])
    np.testing.assert_array_equal(np.bincount(y[c]), [6, 5, 5, 5])
    assert set(stratified_split(y, [40], seed=0)[0]) == set(a)  # a split ignores the sizes after it
    assert set(stratified_split(y, [40], seed=1)[0]) != set(a)
    with pytest.raises(ValueError, match="has 50 examples"):
        stratified_split(y, [200, 40], seed=0)


def _tiny(**changes) -> Dataset:
    arrays = {f"{k}_{s}": None for k in "xy" for s in ("train", "val", "test")}
    for s in ("train", "val", "test"):
        arrays[f"x_{s}"], arrays[f"y_{s}"] = np.zeros((4, 8, 8, 1), np.float32), np.arange(4, dtype=np.int32) % 2
    arrays.update(changes)
    return Dataset("tiny", **arrays, class_names=("a", "b"))


def test_dataset_validate_names_the_problem():
    ds = _tiny().validate()
    assert (ds.n_classes, ds.n_train, ds.input_shape) == (2, 4, (8, 8, 1))
    with pytest.raises(ValueError, match="assignment destination is read-only"):
        ds.x_train[0] = 1
    bad = [
        ({"y_val": np.array([0, 1, 2, 0], np.int32)}, "labels must be in \\[0, 2\\), got 0..2"),
        ({"y_test": np.zeros(3, np.int32)}, "4 images but 3 labels"),
        ({"x_train": np.full((4, 8, 8, 1), np.nan, np.float32)}, "without NaN"),
        ({"x_test": np.zeros((4, 8, 8), np.float32)}, "must be \\(N, H, W, C\\)"),
        ({"x_val": np.zeros((0, 8, 8, 1), np.float32), "y_val": np.zeros(0, np.int32)}, "'val': split is empty"),
    ]
    for changes, message in bad:
        with pytest.raises(ValueError, match=message):
            _tiny(**changes).validate()


# --------------------------------------------------------------------------------------------- targets


def test_registry_lists_the_builtin_targets_with_metadata():
    assert TARGETS.names() == ["digits", "font-digits", "textures"]
    assert [TARGETS.get(n).similar_by_design for n in TARGETS] == [True, True, False]
    assert TARGETS.get("digits").max_train == 1000
    with pytest.raises(UnknownNameError, match="unknown target 'mnist'; known: digits, font-digits, textures"):
        build_target("mnist", 100, 0)
    with pytest.raises(ValueError, match=r"n_train=5000 is out of range; use 10\.\.1000"):
        build_target("digits", 5000, 0)


@pytest.mark.parametrize("name", ["digits", "font-digits", "textures"])
def test_targets_are_balanced_seeded_and_in_range(name):
    ds = build_target(name, 200, 0)
    assert ds.input_shape == (32, 32, 1) and ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.n_train == 200 and ds.n_val == 50 and ds.n_test >= 540
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 20))
    assert np.bincount(ds.y_test).min() >= 54
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1 and ds.x_train.std() > 0.1
    json.dumps(ds.provenance)
    again = build_target.__wrapped__(name, 200, 0)  # rebuilt, not the cached object
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    other = build_target(name, 200, 1)
    assert not np.array_equal(ds.x_train, other.x_train)
    rgb = build_target(name, 200, 0, 32, 3)
    assert rgb.input_shape == (32, 32, 3)
    np.testing.assert_array_equal(rgb.x_train[..., 1], ds.x_train[..., 0])


def test_digits_splits_are_disjoint_index_sets():
    ds = build_target("digits", 1000, 0)
    idx = {k: np.array(v) for k, v in ds.provenance["indices"].items()}
    assert {k: len(v) for k, v in idx.items()} == {"train": 1000, "val": 200, "test": 540}
    assert len(np.unique(np.concatenate(list(idx.values())))) == 1740
    from sklearn.datasets import load_digits

    data = load_digits()
    images, labels = shipped_digits()  # read from scikit-learn's file without importing it: the same arrays
    np.testing.assert_array_equal(images, data.images)
    np.testing.assert_array_equal(labels, data.target)
    np.testing.assert_array_equal(ds.y_test, data.target[idx["test"]])
    expected, _ = to_input_format(data.images[idx["train"]], 32, 1, value_range=(0.0, 16.0))
    np.testing.assert_array_equal(ds.x_train, expected)
    small = build_target("digits", 30, 0)
    np.testing.assert_array_equal(small.x_test, ds.x_test)  # the test set depends on the seed only


def test_font_digits_never_repeat_a_training_image_in_test():
    ds = build_target("font-digits", 2000, 0)
    train = {x.tobytes() for x in ds.x_train}
    assert len(train) == 2000
    assert not any(x.tobytes() in train for x in ds.x_test)
    assert not any(x.tobytes() in train for x in ds.x_val)
    assert ds.provenance["fonts"] == list(glyphs.HELDOUT_FONTS)
    assert ds.provenance["strokes"]["test"] == ["normal"] and "normal" not in ds.provenance["strokes"]["train"]


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_texture_regions_are_disjoint_and_patches_stay_inside():
    layout = texture_layout(32)
    for c in range(len(TEXTURE_IMAGES)):
        boxes = {s: layout.boxes[s][c] for s in ("train", "val", "test")}
        assert all(boxes.values())
        for s, t in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not any(_intersects(a, b) for a in boxes[s] for b in boxes[t])
    ds = build_target("textures", 300, 0)
    for split in ("train", "val", "test"):
        x, _y, where = texture_patches(split, len(getattr(ds, f"y_{split}")), 0, 32)
        np.testing.assert_array_equal(x, getattr(ds, f"x_{split}")[..., 0])
        for (c, top, left, flip), patch in zip(where, x, strict=False):
            assert any(b[0] <= top and top + 32 <= b[2] and b[1] <= left and left + 32 <= b[3]
                       for b in layout.boxes[split][c])  # fmt: skip
            crop = layout.images[c][top : top + 32, left : left + 32]
            np.testing.assert_array_equal(patch, crop[:, ::-1] if flip else crop)
        assert 0.3 < where[:, 3].mean() < 0.7  # about half the patches flipped
    regions = ds.provenance["regions"]
    assert regions["test"]["brick"] == [list(b) for b in layout.boxes["test"][0]]
