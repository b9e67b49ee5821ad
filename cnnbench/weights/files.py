"""Checkpoint files in and out, as flat ``{name: numpy array}`` dicts in the file's own layout and names.

Reading never executes code from the file: PyTorch files are loaded with ``torch.load(weights_only=True)``,
safetensors and HDF5 files are plain tensor containers. torch, safetensors and h5py are the ``[weights]`` extra and
are imported only by the reader or writer that needs them, so a missing one is named with its install command.
"""

from __future__ import annotations

import importlib
import io
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

Tensors = dict[str, np.ndarray]

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)
KERAS_SUFFIXES = (".h5", ".keras")
# Where training scripts nest the state dict: timm's train.py ("state_dict", "state_dict_ema"), torchvision's
# reference scripts ("model", "model_ema"), Lightning ("state_dict"); the first one present is the model.
_NESTED = ("state_dict", "model", "state_dict_ema", "model_ema")
_WRAPPER = re.compile(r"^(module|_orig_mod)\.")  # DistributedDataParallel's and torch.compile's prefixes
# Keras 2's HDF5 weight names ("kernel:0") as the index Keras 3 stores the same variable under ("vars/0").
KERAS_VAR_INDEX = {"kernel": 0, "depthwise_kernel": 0, "gamma": 0, "pointwise_kernel": 1, "beta": 1,
                   "moving_mean": 2, "moving_variance": 3}  # fmt: skip


class WeightsError(ValueError):
    """A checkpoint file that cannot be read, or whose tensors do not fit the model; the message says which and
    what to do."""


def _need(module: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            f"{what} needs the {module} package, which is not installed; install it with "
            f"`pip install 'cnnbench[weights]'`"
        ) from None


def file_kind(path: Path) -> str:
    """``torch``, ``safetensors`` or ``keras``, from the file's suffix; an unknown suffix is an error listing them."""
    suffix = path.suffix.lower()
    for kind, suffixes in (("torch", TORCH_SUFFIXES), ("safetensors", SAFETENSORS_SUFFIXES), ("keras", KERAS_SUFFIXES)):
        if suffix in suffixes:
            return kind
    known = ", ".join(TORCH_SUFFIXES + SAFETENSORS_SUFFIXES + KERAS_SUFFIXES)
    raise WeightsError(f"{path}: unknown checkpoint type {suffix or '(no suffix)'!r}; cnnbench reads {known}")


def read_tensors(path: Path) -> Tensors:
    """Every tensor in the checkpoint at ``path``, by its name in the file; Keras variables are named
    ``<layer>/<index>`` (Keras 3's order: kernel or gamma 0, bias or beta 1, …)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    kind = file_kind(path)
    try:
        if kind == "torch":
            return _read_torch(path)
        if kind == "safetensors":
            return _read_safetensors(path)
        return _read_keras(path)
    except WeightsError:
        raise
    except Exception as exc:  # a truncated, corrupt or foreign file: say so, with the reader's own words
        raise WeightsError(f"{path}: not a readable {kind} checkpoint ({type(exc).__name__}: {exc})") from exc


def _read_torch(path: Path) -> Tensors:
    torch = _need("torch", "reading a PyTorch checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # mmap needs the zip format; legacy (pre-1.6) files load without it
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping):
        for key in _NESTED:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: holds {type(obj).__name__}, not a state dict of tensors (name -> tensor)")
    tensors = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        tensors[_WRAPPER.sub("", str(name))] = value.detach().to(torch.float32 if value.is_floating_point() else
                                                                  value.dtype).numpy()  # fmt: skip
    return tensors


def _read_safetensors(path: Path) -> Tensors:
    numpy_io = _need("safetensors.numpy", "reading a safetensors checkpoint")
    return {_WRAPPER.sub("", k): np.asarray(v) for k, v in numpy_io.load_file(str(path)).items()}


def _read_keras(path: Path) -> Tensors:
    h5py = _need("h5py", "reading a Keras checkpoint")
    if path.suffix.lower() == ".keras":  # a zip holding config.json and model.weights.h5
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise WeightsError(f"{path}: a .keras archive without model.weights.h5")
            with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
                return _keras_tensors(h5, h5py)
    with h5py.File(path, "r") as h5:
        return _keras_tensors(h5, h5py)


def _keras_tensors(h5: Any, h5py: Any) -> Tensors:
    """Keras 3 files (``layers/<layer>/vars/<i>``) and Keras 2 ones (``<layer>/<layer>/<var>:0``, the format
    ``keras.applications`` downloads) as ``<layer>/<i>``."""
    tensors: Tensors = {}
    if "layers" in h5 and isinstance(h5["layers"], h5py.Group):
        for layer, group in h5["layers"].items():
            for index, value in group.get("vars", {}).items():
                tensors[f"{layer}/{index}"] = np.asarray(value)
        return tensors

    found: dict[str, dict[str, np.ndarray]] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            parts = name.split("/")
            var = parts[-1].split(":")[0]
            if var not in KERAS_VAR_INDEX and var != "bias":
                raise WeightsError(f"Keras weight {name!r}: unknown variable {var!r}")
            found.setdefault(parts[0], {})[var] = np.asarray(obj)

    h5.visititems(visit)
    for layer, variables in found.items():
        for var, value in variables.items():  # a bias comes after the layer's other variables
            index = KERAS_VAR_INDEX[var] if var != "bias" else len(variables) - 1
            tensors[f"{layer}/{index}"] = value
    return tensors


def write_safetensors(tensors: Mapping[str, np.ndarray], path: Path, metadata: Mapping[str, str]) -> None:
    """Write ``tensors`` as a safetensors file (with string ``metadata`` in its header)."""
    numpy_io = _need("safetensors.numpy", "writing a safetensors checkpoint")
    numpy_io.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata=dict(metadata))


def write_torch(tensors: Mapping[str, np.ndarray], path: Path) -> None:
    """Write ``tensors`` as a PyTorch state dict (``torch.save``), loadable with ``weights_only=True``."""
    torch = _need("torch", "writing a PyTorch checkpoint")
    # torch tensors are writable: a read-only array (a JAX array's host copy) is copied, not shared
    torch.save({k: torch.from_numpy(np.require(v, requirements=["C", "W"])) for k, v in tensors.items()}, path)
