"""The equivalence figures of docs/weights.md: for each zoo arch with a reference implementation, the reference
model with every value random (``cnnbench.weights.reference``), saved as a file, imported, and both models' eval-mode
logits on the same batch of two images compared at fp32. Xception is compared with Keras 3's own model (JAX backend).

    python scripts/weights_equivalence.py [ARCH ...]     # default: every arch with a reference; needs [weights]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras is imported

import jax.numpy as jnp
import numpy as np

from cnnbench.weights.convert import import_file
from cnnbench.weights.reference import keras_xception, randomise, reference_model, reference_state

TORCH_ARCHS = ("resnet18", "resnet34", "resnet50", "seresnet50", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "vgg19",
               "vgg19_bn", "alexnet", "mobilenetv2", "densenet121", "googlenet", "googlenet_aux")  # fmt: skip


def torch_row(arch: str, root: Path) -> tuple[float, float]:
    import torch

    torch.manual_seed(0)
    model = reference_model(arch)
    randomise(model, 224)
    torch.save(reference_state(arch, model), root / f"{arch}.pth")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    zoo = import_file(root / f"{arch}.pth", arch).model
    zoo.eval()
    got = np.asarray(zoo(jnp.asarray(x.numpy().transpose(0, 2, 3, 1))))
    return float(np.abs(got - expected).max()), float(expected.std())


def keras_row(root: Path) -> tuple[float, float]:
    model, x, expected = keras_xception()
    model.save_weights(root / "xception.weights.h5")
    zoo = import_file(root / "xception.weights.h5", "xception").model
    zoo.eval()
    return float(np.abs(np.asarray(zoo(jnp.asarray(x))) - expected).max()), float(expected.std())


def controls(root: Path) -> None:
    """The negative controls of the tests: what a swapped pair of tensors and transposed kernels do to ResNet-18."""
    import torch

    from cnnbench.weights import mapping

    torch.manual_seed(0)
    model = reference_model("resnet18")
    randomise(model, 224)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    state = reference_state("resnet18", model)
    a, b = "layer2.0.conv2.weight", "layer2.1.conv1.weight"
    state[a], state[b] = state[b], state[a]
    torch.save(state, root / "swapped.pth")
    torch.save(reference_state("resnet18", model), root / "right.pth")

    def diff(path: Path) -> float:
        zoo = import_file(path, "resnet18").model
        zoo.eval()
        return float(np.abs(np.asarray(zoo(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))) - expected).max())

    print(f"\nresnet18, {a} and {b} swapped: max abs difference {diff(root / 'swapped.pth'):.2f}")
    right = mapping._leaf_layout
    mapping._leaf_layout = lambda *args: (  # type: ignore[assignment]
        mapping.Layout((3, 2, 1, 0)) if right(*args).perm == (2, 3, 1, 0) else right(*args)
    )
    print(f"resnet18, every kernel's height and width swapped: max abs difference {diff(root / 'right.pth'):.2f}")
    mapping._leaf_layout = right


def main(archs: list[str]) -> None:
    print("| arch | reference | max abs difference | logits std | seconds |\n|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            t0 = time.perf_counter()
            diff, std = keras_row(Path(tmp)) if arch == "xception" else torch_row(arch, Path(tmp))
            source = "Keras 3" if arch == "xception" else "timm" if arch == "seresnet50" else "torchvision"
            print(f"| {arch} | {source} | {diff:.1e} | {std:.2f} | {time.perf_counter() - t0:.0f} |", flush=True)
            for leftover in Path(tmp).iterdir():
                leftover.unlink()
        controls(Path(tmp))


if __name__ == "__main__":
    main(sys.argv[1:] or [*TORCH_ARCHS, "xception"])
