"""The model zoo (SPEC §2): CNN families in Flax NNX, NHWC, registered by name with their canonical configs.

``create_model(name, ...)`` builds one, ``list_models()`` and ``get_spec(name)`` describe them without
building, and ``count_params`` counts trainable and total parameters. Importing a family module registers it.
"""

from . import lenet, resnet
from ._base import ZooModel
from ._builder import MODELS, ModelSpec, count_params, create_model, get_spec, list_models, register_model

__all__ = [
    "MODELS",
    "ModelSpec",
    "ZooModel",
    "count_params",
    "create_model",
    "get_spec",
    "lenet",
    "list_models",
    "register_model",
    "resnet",
]
