"""Runs whose pretrained strategies start from imported weights (``--cnnbench-pretrained``, ``[arch.NAME] weights``):
the glyph base is never built, the targets are normalised as the weights expect and the report says so, and a suite
whose input the weights do not fit is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import cnnbench.engine.runner  # noqa: E402, F401  (the engine first: pytester's in-process runs must not re-import jaxlib)
from cnnbench import cli  # noqa: E402
from cnnbench.engine import imported  # noqa: E402  (after the skips: without the [weights] extra the module is skipped)
from cnnbench.weights.convert import import_file  # noqa: E402

# AlexNet: the cheapest canonical forward pass to compile here; a 40-image dataset of 8×8 grey images, resized to 224.
SUITE = """
name = "imported"
archs = ["alexnet"]
strategies = ["s3", "scratch"]
heads = ["fc"]
seeds = [0]

[input]
img_size = 224
in_chans = 3

[train]
batch_size = 16
eval_points = 1
infer_batch = 16   # 256 AlexNet images at 224 px take seconds a call on a CPU

[quadrants.q4]
target = "small.npz"
steps = 4
"""


@pytest.fixture(scope="module")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding torchvision AlexNet weights (seeded random init) under the tag ``alex``."""
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), root / "alex.pth")
    imported.save(import_file(root / "alex.pth", "alexnet"), "alex", root / "alex.pth", root / "cache")
    return root / "cache"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A folder with a small grey dataset (4 classes: 16 training, 12 test images of 8×8)."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(16) % 4, np.arange(12) % 4
    images = lambda y: (rng.random((len(y), 8, 8)) * 0.3 + y[:, None, None] * 0.2).astype(np.float32)
    arrays = {"x_train": images(y_train), "y_train": y_train, "x_test": images(y_test), "y_test": y_test}
    np.savez(pytester.path / "small.npz", **arrays)
    return pytester


def test_the_pretrained_strategies_start_from_imported_weights(
    project: pytest.Pytester, weights_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project.makefile(".toml", imported=SUITE)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--cnnbench", "--cnnbench-suite=imported.toml",
                                          f"--cnnbench-cache={weights_cache}", "--cnnbench-pretrained=alex",
                                          "--cnnbench-strategy=s3", "--cnnbench-save-models=models")  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*pretrained alexnet: imported weights alex (torchvision, from *alex.pth)*"])
    assert not (weights_cache / "pretrained").exists()  # no glyph base was built
    report = json.loads((project.path / "reports" / "latest" / "report.json").read_text())
    assert report["suite"]["weights"] == {"alexnet": "alex"}
    page = (project.path / "reports" / "latest" / "report.md").read_text()
    assert "the pretrained strategies of alexnet (alex) start from them, not from a glyph-pretrained base" in page
    (target,) = report["targets"]
    assert target["conversion"]["conversion"]["steps"][-2:] == [
        "resize 8x8->224x224 (skimage.transform.resize, bilinear)", "grey->rgb (channel repeated)"]  # fmt: skip
    assert "minus mean (0.485, 0.456, 0.406)" in target["conversion"]["imported_weights"]["alexnet"]
    assert target["similarity"] is None  # measured against the glyph source domain: not for imported weights
    (scenario,) = report["scenarios"]
    assert scenario["status"] == "passed" and scenario["metrics"]["test_accuracy"] > 0
    meta = json.loads((project.path / "models" / "alexnet-s3-q4-fc" / "meta.json").read_text())  # the kept model
    assert meta["weights"] == "alex" and meta["test_accuracy"] == scenario["metrics"]["test_accuracy"]
    # AlexNet's reference classifier is an MLP on the flattened map: no place for a new head
    assert cli.main(["weights", "export", str(project.path / "models" / "alexnet-s3-q4-fc")]) == 2
    assert "the fc head has no place in alexnet's reference classifier" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("suite_text", "args", "expected"),
    [
        (SUITE.replace("img_size = 224", "img_size = 64"), ["--cnnbench-pretrained=alex"],
         "--cnnbench-pretrained: 'alex' holds alexnet weights for 224×224×3 input, and suite 'imported' feeds "
         "64×64×3; set its [input] img_size = 224 and in_chans = 3"),
        (SUITE, ["--cnnbench-pretrained=r50"],
         "/weights (imported: alex); import a checkpoint with `cnnbench weights import FILE --arch ARCH --name r50`"),
        (SUITE.replace('archs = ["alexnet"]', 'archs = ["resnet18"]'), ["--cnnbench-pretrained=alex"],
         "'alex' holds alexnet weights, and suite 'imported' does not run alexnet (its archs: resnet18)"),
        (SUITE + '\n[arch.alexnet]\nweights = "alex"\nwidth = 0.5\n', [],
         "key 'arch.alexnet.width': 0.5 with imported weights; they fit width 1 only: drop it"),
        (SUITE + '\n[arch.alexnet]\nweights = "nope"\n', [], "no imported weights 'nope'"),
    ],
)  # fmt: skip
def test_weights_that_do_not_fit_the_run_are_refused_before_it_starts(
    project: pytest.Pytester, weights_cache: Path, suite_text: str, args: list[str], expected: str
) -> None:
    project.makefile(".toml", imported=suite_text)
    result = project.runpytest_inprocess("-p", "no:cacheprovider", "--cnnbench", "--cnnbench-suite=imported.toml",
                                          f"--cnnbench-cache={weights_cache}", *args)  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()
