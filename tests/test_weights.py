"""Imported checkpoints compute what the reference models compute (docs/weights.md).

For each zoo family with a PyTorch reference, the reference model is built with a seeded random init, its BatchNorm
statistics set from a batch and then perturbed, and every bias and BN affine randomised
(``cnnbench.weights.reference``), so no tensor holds a value a wrong mapping could hide behind (a default 0 or 1);
its state dict is saved as .pth and .safetensors, imported,
and the eval-mode logits on one batch of two images are compared: max abs difference below 1e-4 at fp32. Xception is
checked against Keras 3's own model, on the JAX backend, in its three file formats. Two negative controls show that
the comparison sees a wrong mapping: a swapped pair of same-shaped tensors, and kernels with height and width swapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")

import jax.numpy as jnp  # noqa: E402  (after the skips: without the [weights] extra the module is skipped)
from flax import nnx  # noqa: E402

from cnnbench import api, cli  # noqa: E402
from cnnbench.engine import imported, kept  # noqa: E402
from cnnbench.engine.heads import create_head  # noqa: E402
from cnnbench.engine.train import TransferModel  # noqa: E402
from cnnbench.weights import WeightsError, mapping, read_tensors  # noqa: E402
from cnnbench.weights.convert import export_model, import_file  # noqa: E402
from cnnbench.weights.keras_names import xception_names  # noqa: E402
from cnnbench.weights.reference import keras_xception, randomise, reference_model, reference_state  # noqa: E402
from cnnbench.zoo import create_model, get_spec  # noqa: E402

TOLERANCE = 1e-4


@nnx.jit
def _forward(model, x):
    return model(x)


def zoo_logits(model, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``model``'s eval-mode logits on NCHW ``x`` (a torch batch) or NHWC ``x`` (numpy), compiled: an eager forward
    pass dispatches each layer's ops one by one, several times slower on CPU."""
    model.eval()
    nhwc = x.numpy().transpose(0, 2, 3, 1) if isinstance(x, torch.Tensor) else x
    return np.asarray(_forward(model, jnp.asarray(nhwc)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    """arch -> (reference model, .pth path, .safetensors path), built once per module."""
    root = tmp_path_factory.mktemp("checkpoints")
    made: dict[str, tuple] = {}

    def make(arch: str) -> tuple:
        if arch not in made:
            torch.manual_seed(0)
            model = reference_model(arch)
            randomise(model, 224)
            state = reference_state(arch, model)
            pth, st = root / f"{arch}.pth", root / f"{arch}.safetensors"
            torch.save(state, pth)
            safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, st)
            made[arch] = (model, pth, st)
        return made[arch]

    return make


@pytest.mark.parametrize(
    "arch",
    ["resnet18", "seresnet50", "vgg11_bn", "alexnet", "mobilenetv2", "densenet121", "googlenet_aux"],
)
def test_imported_weights_give_the_reference_logits(arch: str, saved) -> None:
    model, pth, st = saved(arch)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    assert expected.std() > 0.1  # logits a wrong tensor would visibly change
    from_pth = import_file(pth, arch)
    assert from_pth.num_classes == 1000 and from_pth.source == ("timm" if arch == "seresnet50" else "torchvision")
    from_st = read_tensors(st)  # the same tensors under the same names: the same import
    assert from_st.keys() == (state := read_tensors(pth)).keys()
    assert all(np.array_equal(from_st[k], state[k]) for k in state)
    got = zoo_logits(from_pth.model, x)
    assert got.shape == expected.shape and np.abs(got - expected).max() < TOLERANCE
    if arch == "googlenet_aux":  # eval-mode logits skip the auxiliary heads: compare them on the maps they read
        taps = {}
        model.inception4a.register_forward_hook(lambda m, i, o: taps.setdefault("a", o))
        model.inception4d.register_forward_hook(lambda m, i, o: taps.setdefault("d", o))
        with torch.no_grad():
            model(x)
            expected_aux = [model.aux1(taps["a"]).numpy(), model.aux2(taps["d"]).numpy()]
        aux = from_pth.model.classifier.aux
        for head, tap, want in zip((aux.aux1, aux.aux2), ("a", "d"), expected_aux, strict=True):
            out = np.asarray(head(jnp.asarray(taps[tap].numpy().transpose(0, 2, 3, 1))))
            assert np.abs(out - want).max() < TOLERANCE


@pytest.mark.parametrize(
    "arch", ["resnet34", "resnet50", "vgg11", "vgg16", "vgg19", "vgg16_bn", "vgg19_bn", "googlenet"]
)
def test_every_other_torchvision_arch_maps_name_for_name_and_shape_for_shape(arch: str) -> None:
    """The mapping of the other entries, checked without allocating them: their blocks are their family's, whose
    forward pass the test above checks (resnet50's bottleneck in seresnet50, whose names are torchvision's)."""
    with torch.device("meta"):
        state = reference_model(arch).state_dict()
    convention = imported_convention(arch)
    plan = mapping.slots(nnx.eval_shape(lambda: create_model(arch)), convention)
    mapping.check(plan, {k: FakeTensor(v.shape) for k, v in state.items()}, convention, arch)
    assert len(plan) == len([k for k in state if not mapping.ignored(convention, k)])


class FakeTensor:
    """A shape without data, for :func:`mapping.check`."""

    def __init__(self, shape) -> None:
        self.shape = tuple(shape)
        self.ndim = len(self.shape)

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("check() read a value")


def imported_convention(arch: str):
    from cnnbench.weights import get_convention

    return get_convention("timm" if arch == "seresnet50" else "torchvision", get_spec(arch).family)


# ---------------------------------------------------------------------------------------- negative controls


def test_a_swapped_pair_of_tensors_fails_the_comparison(saved, tmp_path: Path) -> None:
    """What a mapping that confused two same-shaped tensors would do: the logits move far past the tolerance."""
    model, pth, _ = saved("resnet18")
    state = torch.load(pth, weights_only=True)
    a, b = "layer2.0.conv2.weight", "layer2.1.conv1.weight"
    state[a], state[b] = state[b], state[a]
    torch.save(state, tmp_path / "swapped.pth")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    assert (
        np.abs(zoo_logits(import_file(tmp_path / "swapped.pth", "resnet18").model, x) - expected).max()
        > 100 * TOLERANCE
    )


def test_kernels_with_height_and_width_swapped_fail_the_comparison(saved, monkeypatch: pytest.MonkeyPatch) -> None:
    model, pth, _ = saved("resnet18")
    right = mapping._leaf_layout

    def transposed(framework, module, leaf, chw):
        layout = right(framework, module, leaf, chw)
        return mapping.Layout((3, 2, 1, 0)) if layout.perm == (2, 3, 1, 0) else layout

    monkeypatch.setattr(mapping, "_leaf_layout", transposed)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(zoo_logits(import_file(pth, "resnet18").model, x) - expected).max() > 100 * TOLERANCE


# ---------------------------------------------------------------------------------------------------- Keras


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own numpy 2 copy warnings
def test_xception_matches_keras_in_each_file_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keras 3's Xception on the JAX backend, random BN statistics and biases; its .weights.h5, .keras and Keras 2
    style .h5 (layer names, unnamed residual projections: what keras.applications downloads) all import."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    pytest.importorskip("keras")
    h5py = pytest.importorskip("h5py")
    from keras.src.legacy.saving import legacy_h5_format

    model, x, expected = keras_xception()
    assert expected.std() > 0.1
    model.save_weights(tmp_path / "x.weights.h5")
    model.save(tmp_path / "x.keras")
    with h5py.File(tmp_path / "legacy.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    files = [xception_names(read_tensors(tmp_path / name)) for name in ("x.weights.h5", "x.keras", "legacy.h5")]
    assert all(f.keys() == files[0].keys() and all(np.array_equal(f[k], files[0][k]) for k in f) for f in files[1:])
    result = import_file(tmp_path / "legacy.h5", "xception")  # the three formats hold the same tensors by name
    assert result.source == "keras" and result.preprocessing.mean == (0.5, 0.5, 0.5)
    assert np.abs(zoo_logits(result.model, x) - expected).max() < TOLERANCE


# ------------------------------------------------------------------------------------------- bad files


def test_a_file_for_another_arch_names_the_missing_and_unused_tensors_and_the_arch_it_fits(saved) -> None:
    _, pth, _ = saved("resnet18")
    with pytest.raises(WeightsError) as error:
        import_file(pth, "resnet34")
    message = str(error.value)
    assert "missing from the file (80): layer1.2.bn1.bias [64]" in message
    assert "its tensors are exactly those of resnet18: use --arch resnet18" in message


def test_unused_and_misshapen_tensors_are_refused_before_anything_is_written(saved, tmp_path: Path) -> None:
    _, pth, _ = saved("resnet18")
    state = torch.load(pth, weights_only=True)
    state["extra.weight"] = torch.zeros(3)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as error:
        import_file(tmp_path / "bad.pth", "resnet18")
    assert "in the file but unused (1): extra.weight [3]" in str(error.value)
    assert "wrong shape (1): layer1.0.conv1.weight: file [64, 64, 1, 1], model [64, 64, 3, 3]" in str(error.value)


def test_the_class_count_comes_from_the_file_and_a_base_without_classifier_imports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ten = torchvision.models.resnet18(num_classes=10)
    torch.save(ten.state_dict(), tmp_path / "ten.pth")
    assert import_file(tmp_path / "ten.pth", "resnet18").num_classes == 10
    base = {k: v for k, v in ten.state_dict().items() if not k.startswith("fc.")}
    torch.save(base, tmp_path / "base.pth")
    result = import_file(tmp_path / "base.pth", "resnet18")
    assert result.num_classes == 0 and result.model.classifier is None


def test_a_pickled_object_is_not_unpickled_and_a_broken_file_says_so(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(2), "hook": Path("/")}, tmp_path / "pickled.pth")
    with pytest.raises(WeightsError, match=r"not a readable torch checkpoint"):
        read_tensors(tmp_path / "pickled.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(WeightsError, match=r"cut.safetensors: not a readable safetensors checkpoint"):
        read_tensors(tmp_path / "cut.safetensors")
    (tmp_path / "m.onnx").touch()
    with pytest.raises(WeightsError, match=r"unknown checkpoint type '.onnx'"):
        read_tensors(tmp_path / "m.onnx")


# ------------------------------------------------------------------------ store, create_model, export, CLI


def test_import_list_export_round_trip_through_the_cli(saved, tmp_path: Path, capsys) -> None:
    """Imported, stored, loaded by create_model, changed (as training would), exported: torchvision loads the
    file strictly and computes the changed model's logits."""
    model, pth, _ = saved("resnet18")
    cache = tmp_path / "cache"
    assert cli.main(["weights", "import", str(pth), "--arch", "resnet18", "--name", "r18", "--cache", str(cache)]) == 0
    assert cli.main(["weights", "import", str(pth), "--arch", "resnet18", "--name", "r18", "--cache", str(cache)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["weights", "list", "--cache", str(cache)]) == 0
    assert "r18                      resnet18      torchvision    1000   224×224×3" in capsys.readouterr().out

    zoo = api.create_model("resnet18", pretrained="r18", cache=cache)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert np.abs(zoo_logits(zoo, x) - model(x).numpy()).max() < TOLERANCE
    assert api.create_model("resnet18", pretrained="r18", cache=cache, num_classes=0).classifier is None
    head = api.create_model("resnet18", pretrained="r18", cache=cache, num_classes=7)
    assert np.array_equal(np.asarray(head.layer4.layers[1].conv2.conv.kernel[...]),
                          np.asarray(zoo.layer4.layers[1].conv2.conv.kernel[...]))  # fmt: skip
    with pytest.raises(WeightsError, match=r"no imported weights 'nope'.*imported: r18"):
        api.create_model("resnet18", pretrained="nope", cache=cache)

    zoo.layer3.layers[0].conv1.conv.kernel[...] *= 1.5  # a changed model, as a transfer run's training leaves it
    zoo.classifier.bias[...] += 0.25
    exported = export_model(zoo, "resnet18", "torchvision", tmp_path / "out.pth", "torchvision", {})
    again = torchvision.models.resnet18()
    again.load_state_dict(torch.load(exported, weights_only=True), strict=True)
    again.eval()
    with torch.no_grad():
        assert np.abs(zoo_logits(zoo, x) - again(x).numpy()).max() < TOLERANCE

    out = tmp_path / "r18.safetensors"
    assert cli.main(["weights", "export", "r18", "--to", "safetensors", "-o", str(out), "--cache", str(cache)]) == 0
    again.load_state_dict(safetensors_torch.load_file(out), strict=True)
    with torch.no_grad():
        assert np.abs(again(x).numpy() - model(x).numpy()).max() < TOLERANCE


def test_a_damaged_entry_is_refused(saved, tmp_path: Path) -> None:
    _, pth, _ = saved("resnet18")
    cache = tmp_path / "cache"
    imported.save(import_file(pth, "resnet18"), "r18", pth, cache)
    meta = imported.weights_dir(cache) / "r18" / "meta.json"
    meta.write_text(meta.read_text().replace('"num_classes": 1000', '"num_classes": 10'))
    with pytest.raises(WeightsError, match=r"imported weights 'r18' are damaged.*meta.json"):
        imported.find("r18", cache)


def test_a_kept_model_exports_with_its_head_as_the_classifier(saved, tmp_path: Path, capsys) -> None:
    """What a run keeps (--cnnbench-save-models): an imported base under a trained gap head exports as torchvision's
    resnet18 with 5 classes, computing the kept model's logits; heads and widths without a place are refused."""
    _, pth, _ = saved("resnet18")
    base = import_file(pth, "resnet18").model
    base.classifier = None
    head = create_head("gap", (7, 7, 512), 5, seed=3)
    trained = TransferModel(base, head)
    trained.eval()
    meta = {"scenario": "resnet18-s1-q4-gap", "arch": "resnet18", "head": "gap", "num_classes": 5, "img_size": 224,
            "in_chans": 3, "width": 1.0, "source": "torchvision"}  # fmt: skip
    kept.save(tmp_path / "resnet18-s1-q4-gap", trained, meta)
    out = tmp_path / "winner.pth"
    assert cli.main(["weights", "export", str(tmp_path / "resnet18-s1-q4-gap"), "-o", str(out)]) == 0
    again = torchvision.models.resnet18(num_classes=5)
    again.load_state_dict(torch.load(out, weights_only=True), strict=True)
    again.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert np.abs(zoo_logits(trained, x) - again(x).numpy()).max() < TOLERANCE

    for change, message in (({"head": "fc"}, "the fc head has no place in resnet18's reference classifier"),
                            ({"width": 0.25}, "trained at width 0.25; the reference models have width 1")):  # fmt: skip
        kept.save(tmp_path / "other", trained, meta | change)
        assert cli.main(["weights", "export", str(tmp_path / "other"), "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
