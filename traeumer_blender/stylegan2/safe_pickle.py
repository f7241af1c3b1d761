# SPDX-License-Identifier: GPL-3.0-or-later
"""Restricted unpickling of checkpoint files: data only, never code.

Checkpoints are untrusted downloads, and every official loader of these formats runs code from
the file (pickle's REDUCE on arbitrary callables, NVIDIA's embedded ``module_src``,
dnnlib's ``build_module_src``). Here ``find_class`` answers from an allow-list:

* NVIDIA's persistence and dnnlib names map to inert stand-in classes that only record the
  state they are given; embedded source code is kept as a string and never executed.
* tensors are rebuilt with torch's own rebuild functions, and the storage blobs inside
  (legacy torch.save streams) are read with ``torch.load(weights_only=True)``.
* numpy arrays through numpy's reconstruct functions; a few plain containers.

Anything else (``os.system``, ``builtins.eval``, any other class) raises
:class:`UnsafePickleError` before it can be called.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import warnings

import numpy as np
import torch

from .untrusted import _torch_reason, check_view, code_refusal, forbidden_global


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for something outside the allow-list (usually: it wants to run code).

    ``global_name`` is set when the file names a global (module.name) that is not allowed.
    """

    def __init__(self, message, global_name=None):
        super().__init__(message)
        self.global_name = global_name

    def refusal(self) -> str:
        """The one line shown for it: every refused global reads the same."""
        if self.global_name:
            return code_refusal(self.global_name)
        return f"refused: the file builds an object other than weights ({self})"


def forbidden(name: str) -> UnsafePickleError:
    return UnsafePickleError(name, global_name=name)


class Inert:
    """Stand-in for a class named by a checkpoint: records attributes and state, runs nothing."""

    stand_in_for = "?"

    def __init__(self, *args, **kwargs):
        self.__dict__["_init_args"] = args
        self.__dict__["_init_kwargs_pickle"] = kwargs

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:   # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __repr__(self):
        return f"<inert {self.stand_in_for}>"


class EasyDict(dict):
    """Stand-in for ``dnnlib.EasyDict`` / ``dnnlib.util.EasyDict`` (a plain dict here)."""

    def __setstate__(self, state):  # EasyDict pickles its (empty) __dict__ as state
        pass


class PersistentObject(Inert):
    """What NVIDIA's ``_reconstruct_persistent_obj(meta)`` returns here: the meta, not the class.

    ``meta`` = {type, version, module_src, class_name, state}; ``state`` is the module's __dict__.
    ``module_src`` stays a string; it is never compiled or run.
    """

    stand_in_for = "torch_utils.persistence persistent object"

    def __init__(self, meta):
        super().__init__()
        if not isinstance(meta, dict) or "state" not in meta:
            raise UnsafePickleError("persistent object without a meta dict")
        self.__dict__["meta"] = meta
        self.__dict__["class_name"] = str(meta.get("class_name", "?"))
        state = meta.get("state")
        self.__dict__["state"] = state if isinstance(state, dict) else {}


class TFNetwork(Inert):
    """Stand-in for ``dnnlib.tflib.network.Network``; its real ``__setstate__`` would run
    ``build_module_src`` under TensorFlow. Here the state dict is only stored."""

    stand_in_for = "dnnlib.tflib.network.Network"

    def __setstate__(self, state):
        self.__dict__["state"] = state if isinstance(state, dict) else {}


def _inert_class(qualname: str):
    return type("Inert_" + qualname.replace(".", "_"), (Inert,), {"stand_in_for": qualname})


def _load_storage_bytes(blob):
    """Replacement for ``torch.storage._load_from_bytes`` (which uses weights_only=False)."""
    if not isinstance(blob, (bytes, bytearray)):
        raise UnsafePickleError("tensor storage is not a byte string")
    blob = bytes(blob)
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = forbidden_global(blob, exc)
        if name:
            raise forbidden(name) from None
        raise UnsafePickleError(f"a tensor storage that is not plain data ({_torch_reason(exc) or 'refused'})") from None


def _rebuild_tensor(storage, storage_offset=0, size=(), stride=(), *args):
    """torch's _rebuild_tensor_v2, after checking the view fits its storage without repeating
    values: a stride-0 view of one stored value claiming millions is refused here, before
    anything could copy it."""
    if not isinstance(storage, (torch.storage.TypedStorage, torch.storage.UntypedStorage)):
        raise UnsafePickleError("tensor rebuilt from something that is not a storage")
    with warnings.catch_warnings():         # TypedStorage is what these files hold
        warnings.simplefilter("ignore", UserWarning)
        typed = isinstance(storage, torch.storage.TypedStorage)
        itemsize = storage.element_size() if typed else 1
        nbytes = storage.nbytes()
    check_view("a tensor in the file", nbytes, itemsize, storage_offset, size, stride)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), *args)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data  # a plain tensor is all we need


def _reconstructor(cls, base, state=None):
    """copyreg._reconstructor restricted to our stand-ins and plain containers."""
    if isinstance(cls, type) and issubclass(cls, (Inert, EasyDict)):
        obj = cls.__new__(cls)
        if isinstance(obj, dict) and isinstance(state, dict):
            obj.update(state)
        return obj
    if cls in (dict, collections.OrderedDict, list, set, tuple):
        return cls() if state is None else cls(state)
    raise UnsafePickleError(f"copyreg._reconstructor for {getattr(cls, '__name__', type(cls).__name__)}")


_TORCH_DTYPES = {name for name in dir(torch) if isinstance(getattr(torch, name, None), torch.dtype)}

_NUMPY_NAMES = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose find_class only hands out allow-listed, side-effect-free callables."""

    def find_class(self, module, name):
        key = (module, name)
        if key == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return PersistentObject
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_class":
            raise forbidden("torch_utils.persistence._reconstruct_persistent_class")
        if key in {("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")}:
            return EasyDict
        if key == ("dnnlib.tflib.network", "Network"):
            return TFNetwork
        if key == ("torch.storage", "_load_from_bytes"):
            return _load_storage_bytes
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if key in {("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state")}:
            return _rebuild_parameter
        if module == "torch" and (name in _TORCH_DTYPES):
            return getattr(torch, name)
        if key == ("torch", "Size"):
            return torch.Size
        if key == ("torch", "device"):
            return _inert_class("torch.device")
        if key == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if key in {("builtins", "set"), ("__builtin__", "set")}:
            return set
        if key in {("builtins", "frozenset"), ("__builtin__", "frozenset")}:
            return frozenset
        if key == ("copyreg", "_reconstructor") or key == ("copy_reg", "_reconstructor"):
            return _reconstructor
        if key in {("builtins", "object"), ("__builtin__", "object")}:
            return object
        if key == ("_codecs", "encode"):
            return _codecs_encode
        if key in _NUMPY_NAMES:
            return {"_frombuffer": _np_frombuffer, "_reconstruct": _np_reconstruct, "dtype": _np_dtype,
                    "ndarray": np.ndarray, "scalar": _np_scalar}[name]
        if module.startswith("torch.nn.modules.") or module.startswith("torch.nn.parameter"):
            return _inert_class(f"{module}.{name}")  # container modules record their state only
        raise forbidden(f"{module}.{name}")


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str):
        raise UnsafePickleError("_codecs.encode on a non-string")
    return text.encode(encoding, errors)


def _np_dtype(spec, align=False, copy=False):
    """numpy.dtype for plain numbers only: object, structured and text arrays are refused."""
    if not isinstance(spec, str):
        raise UnsafePickleError("a numpy dtype named by something other than text")
    dtype = np.dtype(spec)
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafePickleError(f"a numpy array of {dtype.name} (only numbers are weights)")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _np_reconstruct(cls, shape, dtype_code):
    """numpy's pickled arrays start empty ((0,) of dtype 'b') and get their data from BUILD."""
    if cls is not np.ndarray or not isinstance(shape, tuple) or math.prod(
            int(s) if isinstance(s, int) else 2 for s in shape) > 1:
        raise UnsafePickleError("a numpy array reconstructed other than numpy writes it")
    return np.core.multiarray._reconstruct(cls, shape, dtype_code)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or not isinstance(data, (bytes, type(None))):
        raise UnsafePickleError("a numpy scalar that is not a plain number")
    return np.core.multiarray.scalar(dtype, data) if data is not None else np.core.multiarray.scalar(dtype)


def _np_frombuffer(buf, dtype, shape, order):
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def restricted_load(handle) -> object:
    """Unpickle one object from a binary file handle with the allow-list above."""
    return RestrictedUnpickler(handle, encoding="latin1").load()
