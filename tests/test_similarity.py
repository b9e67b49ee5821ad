"""Measured similarity: the nearest-class-mean score, its normalisation by the source gain, the quadrant it puts a
target in, and the ordering of a similar and a dissimilar built-in target on a real pretrained base."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from cnnbench.config.quadrants import placement
from cnnbench.config.suite import parse_suite
from cnnbench.engine.catalog import registry_catalog
from cnnbench.engine.runner import Runner
from cnnbench.engine.separability_cache import SeparabilityCacheWarning
from cnnbench.engine.similarity import THRESHOLD, Separability, Similarity, ncm_accuracy, pooled


def _clusters(n: int, classes: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, 16))
    y = rng.integers(0, classes, n)
    return centres[y] + spread * rng.normal(size=(n, 16)), y


def test_ncm_separates_clusters_and_ignores_offset_and_scale() -> None:
    (xa, ya), (xb, yb) = _clusters(300, 5, 0.1, 0), _clusters(300, 5, 0.1, 1)
    assert ncm_accuracy(xa, ya, xb, yb) == 1.0
    assert ncm_accuracy(3 * xa + 50, ya, 3 * xb + 50, yb) == 1.0  # a shared offset (ReLU-like) does not matter
    noise = np.random.default_rng(2).normal(size=(600, 16))  # features unrelated to the labels: chance
    assert abs(ncm_accuracy(noise[:300], ya, noise[300:], yb) - 0.2) < 0.1


def test_score_is_the_target_gain_over_the_source_gain() -> None:
    m = Similarity("lenet5", target=Separability(0.8, 0.5), source=Separability(0.9, 0.3))
    assert m.score == pytest.approx(0.5) and m.similar == (THRESHOLD <= 0.5)
    assert Similarity("x", Separability(0.3, 0.5), Separability(0.9, 0.3)).score == pytest.approx(-1 / 3)
    assert m.to_dict()["target"] == {"pretrained": 0.8, "random": 0.5}
    with pytest.raises(ValueError, match=r"no better than a random one .*pretrain longer"):
        Similarity("alexnet", Separability(0.8, 0.5), Separability(0.31, 0.30))


def test_placement_by_size_and_similarity() -> None:
    assert [placement(2000, False), placement(2000, True), placement(200, False), placement(1000, True)] == [
        "q1",
        "q2",
        "q3",
        "q4",
    ]


def test_pooling_matches_what_the_head_sees() -> None:
    maps = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    np.testing.assert_array_equal(pooled(maps, "avg"), maps.mean(axis=(1, 2)))
    assert pooled(maps, "flatten").shape == (2, 12)


def test_similar_target_scores_above_the_threshold_dissimilar_below(tiny_suite_text: str, shared_cache: Path) -> None:
    """On a real (briefly) pretrained lenet5: held-out-font digits are similar to the glyph source, textures are
    not; bound to the wrong quadrant, the target gets a warning naming the right one."""
    raw = tomllib.loads(tiny_suite_text)
    raw["quadrants"]["q3"] = {"target": "font-digits", "n_train": 100, "steps": 12}  # deliberately misbound
    raw["quadrants"]["q4"] = {"target": "textures", "n_train": 60, "steps": 12}  # deliberately misbound
    runner = Runner(parse_suite(raw, registry_catalog()), shared_cache)
    digits, textures = runner.similarity("lenet5", "q3"), runner.similarity("lenet5", "q4")
    assert digits.score > THRESHOLD > textures.score
    assert digits.target.gain > 0 > textures.target.gain and digits.source.gain > 0
    targets = {t.name: t for t in runner.target_info()}
    assert targets["font-digits"].similarity == pytest.approx(digits.score)
    assert targets["font-digits"].measured_quadrant == "q4" and targets["textures"].measured_quadrant == "q3"
    assert "bound to q3 but measured similar" in (targets["font-digits"].warning or "")
    assert "it belongs in q4" in (targets["font-digits"].warning or "")
    assert targets["textures"].warning is not None and targets["textures"].similarity_detail is not None
    assert targets["textures"].similarity_detail["by_arch"][0]["arch"] == "lenet5"


def test_a_measured_similarity_is_cached_per_base_precision_and_images(
    tiny_suite_text: str, shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second runner on the same cache reads both separabilities and computes no feature map; an entry that
    cannot be read is measured again with a warning; other images get their own entry."""
    (tmp_path / "pretrained").symlink_to(shared_cache / "pretrained", target_is_directory=True)  # the base is shared
    suite = parse_suite(tomllib.loads(tiny_suite_text), registry_catalog())
    first = Runner(suite, tmp_path).similarity("lenet5", "q4")
    entries = sorted((tmp_path / "similarity").glob("*.json"))
    assert len(entries) == 2  # the target's and the held-out source's
    assert sum("-fp32-source2600" in p.name for p in entries) == 1

    def no_maps(*args: object) -> None:
        raise AssertionError("a cached similarity computed feature maps")

    monkeypatch.setattr(Runner, "_maps", no_maps)
    again = Runner(suite, tmp_path).similarity("lenet5", "q4")
    assert (again.target, again.source, again.score) == (first.target, first.source, first.score)

    monkeypatch.undo()
    (target,) = (p for p in entries if "source" not in p.name)
    target.write_text('{"key": ')  # truncated
    with pytest.warns(SeparabilityCacheWarning, match=r"similarity cache entry .* is unusable .*measuring again"):
        remeasured = Runner(suite, tmp_path).similarity("lenet5", "q4")
    assert remeasured.target == first.target and json.loads(target.read_text())["pretrained"] == first.target.pretrained

    raw = tomllib.loads(tiny_suite_text)
    raw["quadrants"]["q4"]["n_train"] = 50
    Runner(parse_suite(raw, registry_catalog()), tmp_path).similarity("lenet5", "q4")
    assert len(list((tmp_path / "similarity").glob("*.json"))) == 3  # new images, one new entry; the source's reused
