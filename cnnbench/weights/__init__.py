"""Checkpoints from other frameworks: torchvision, timm and Keras files mapped into zoo models, and back.

:mod:`files` reads and writes the files, :mod:`conventions` registers each source's names per zoo family
(:mod:`torch_names`, :mod:`keras_names`), :mod:`mapping` moves tensors between a file and a model with their
layouts, and :mod:`convert` puts these together for one file and one arch. No cache and no JAX program here: the
engine stores what this package imports (:mod:`cnnbench.engine.imported`).
"""

from . import keras_names, torch_names  # noqa: F401  (importing a source's module registers its conventions)
from .conventions import CONVENTIONS, IMAGENET, SIGNED, SOURCES, Convention, Preprocessing, get_convention
from .files import WeightsError, read_tensors

__all__ = ["CONVENTIONS", "IMAGENET", "SIGNED", "SOURCES", "Convention", "Preprocessing", "WeightsError",
           "get_convention", "read_tensors"]  # fmt: skip
