"""The reference models the zoo is checked against — torchvision's and timm's, and Keras' Xception — with every value
random, for the equivalence tests (``tests/test_weights.py``) and the figures of docs/weights.md
(``scripts/weights_equivalence.py``). Needs the ``[weights]`` extra: torch, torchvision, timm, keras (on the JAX
backend: ``KERAS_BACKEND=jax`` before Keras is imported).

A freshly initialised model hides a wrong mapping behind its defaults (BatchNorm's 1 and 0, zero biases), and deep
random models blow their activations up until rounding is all a comparison sees. :func:`randomise` sets every
BatchNorm's statistics from a random batch, then perturbs them and draws the affine parameters and every bias, so
each tensor holds values of its own and the logits stay of order one; :func:`keras_xception` does the same to Keras'
model.
"""

from __future__ import annotations

import importlib
from typing import Any

import jax
import numpy as np

from .files import WeightsError

TORCHVISION_NAMES = {"mobilenetv2": "mobilenet_v2", "googlenet_aux": "googlenet"}
TIMM_ARCHS = ("seresnet50",)
# The zoo's AlexNet adds the paper's LRN after conv1's and conv2's ReLU: torchvision's layers at these indices move
# up by one and two; this maps the reference's feature indices back to torchvision's own.
ALEXNET_FEATURES = {"4": "3", "8": "6", "10": "8", "12": "10"}


def _torch() -> tuple[Any, Any, Any]:
    try:
        return importlib.import_module("torch"), importlib.import_module("torchvision"), importlib.import_module("timm")
    except ImportError:
        raise WeightsError(
            "the reference models need torch, torchvision and timm: pip install 'cnnbench[weights]'"
        ) from None


def reference_model(arch: str) -> Any:
    """The reference implementation of zoo arch ``arch`` (a ``torch.nn.Module``, random init from torch's current
    seed): torchvision's, timm's for ``seresnet50``, torchvision's AlexNet with LRN inserted as the zoo has it."""
    torch, torchvision, timm = _torch()
    if arch in TIMM_ARCHS:
        return timm.create_model(arch)
    if arch.startswith("googlenet"):
        return torchvision.models.googlenet(aux_logits=arch == "googlenet_aux", init_weights=True)
    model = getattr(torchvision.models, TORCHVISION_NAMES.get(arch, arch))()
    if arch == "alexnet":
        layers = list(model.features)
        for at in (5, 2):  # after conv2's ReLU (index 4 before the first insertion), then after conv1's
            layers.insert(at, torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0))
        model.features = torch.nn.Sequential(*layers)
    return model


def reference_state(arch: str, model: Any) -> dict:
    """``model``'s state dict under the names a file of the reference would use (AlexNet: without the LRN layers)."""
    state = model.state_dict()
    if arch != "alexnet":
        return state
    renamed = {}
    for key, value in state.items():
        part, index, leaf = key.split(".")
        renamed[f"{part}.{ALEXNET_FEATURES.get(index, index) if part == 'features' else index}.{leaf}"] = value
    return renamed


def randomise(model: Any, size: int, seed: int = 1) -> None:
    """Give every BatchNorm statistics from one random batch of ``size``-pixel images, perturbed, and random affine
    parameters; draw every bias; leave ``model`` in eval mode."""
    torch, _, _ = _torch()
    nn = torch.nn
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = 1.0  # the running statistics become this batch's
    model.train()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model(torch.randn(4, 3, size, size, generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.8, 1.25, generator=g))
                m.weight.uniform_(0.4, 0.9, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
            elif isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.2, generator=g)
    model.eval()


def keras_xception(seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    """Keras 3's Xception (logits, no softmax) randomised as :func:`randomise` does a PyTorch model, a batch of two
    299-pixel images and its eval-mode logits."""
    keras = importlib.import_module("keras")
    keras.utils.set_random_seed(seed)
    model = keras.applications.Xception(weights=None, classifier_activation=None)
    rng = np.random.default_rng(seed)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bns:
        bn.momentum = 0.0  # one training call sets the moving statistics to that batch's
    # compiled, on the JAX backend (Keras' eager call dispatches layer by layer: 7 s a call here, compiled 1 s)
    stateless = jax.jit(model.stateless_call, static_argnames="training")

    def call(x: np.ndarray, training: bool) -> tuple[Any, list[Any]]:
        values = [[v.value for v in vs] for vs in (model.trainable_variables, model.non_trainable_variables)]
        return stateless(*values, x, training=training)

    _, statistics = call(rng.normal(size=(2, 299, 299, 3)).astype(np.float32), True)
    for variable, value in zip(model.non_trainable_variables, statistics, strict=True):
        variable.assign(value)
    for bn in bns:
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([rng.uniform(0.4, 0.9, gamma.shape), rng.normal(0, 0.2, beta.shape), mean,
                        var * rng.uniform(0.8, 1.25, var.shape)])  # fmt: skip
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, rng.normal(0, 0.2, bias.shape)])
    x = rng.normal(size=(2, 299, 299, 3)).astype(np.float32)
    return model, x, np.asarray(call(x, False)[0])
