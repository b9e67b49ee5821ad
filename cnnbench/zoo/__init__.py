"""The model zoo (SPEC §2): CNN families in Flax NNX, NHWC, registered by name with their canonical configs.

``create_model(name, ...)`` builds one, ``list_models()`` and ``get_spec(name)`` describe them without
building, and ``count_params`` counts trainable and total parameters. Importing a family module registers it.
"""

# Registration order is the zoo's listing order: the families in the order of their papers (SPEC §2).
from . import lenet, alexnet, vgg, googlenet, resnet, xception, densenet, mobilenetv2  # noqa: I001
from ._base import ZooModel
from ._builder import MODELS, ModelSpec, code_digest, count_params, create_model, get_spec, list_models, register_model

__all__ = [
    "MODELS",
    "ModelSpec",
    "ZooModel",
    "alexnet",
    "code_digest",
    "count_params",
    "create_model",
    "densenet",
    "get_spec",
    "googlenet",
    "lenet",
    "list_models",
    "mobilenetv2",
    "register_model",
    "resnet",
    "vgg",
    "xception",
]
