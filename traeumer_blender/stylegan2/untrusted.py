# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks on what an untrusted checkpoint holds, made before anything is built from it.

A checkpoint is a download: its numbers may be NaN, its tensors may claim billions of values
over a one-element storage (stride 0), its pickles may name code to run or nest a module inside
itself. Everything here looks without materialising or running anything, and reports a problem
as one line (:class:`CheckpointError`, the loader adds the file name):

* :func:`path_problem`: folders, named pipes and device files are named as such (opening a
  FIFO would block forever).
* :func:`check_view`: a tensor's shape and strides against the bytes its storage really holds;
  overlapping views (a stride of 0 repeating one value) are refused before anything copies them.
* :func:`check_weights`: dtype (floating point only), layout, views, a byte budget (the weights
  cannot hold more bytes than the file stores: aliasing storages are caught), NaN/Inf.
* :func:`check_numbers`: NaN/Inf in the non-tensor numbers of a pickled network (gains, betas).
* :func:`check_zip_expansion`: zip records that inflate far beyond the file (torch.save stores).
* :func:`torch_load_refusal`: ``torch.load(weights_only=True)``'s refusal as our one line,
  naming the global the file asks for, whatever torch's wording, without torch's advice.

The encoders use these too (``encoders/short_chunk_res.py``).
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickletools
import re
import stat
import zipfile
from typing import Iterable, Optional

import numpy as np
import torch

MAX_RESOLUTION = 8192          # output size of a generator (noise images, frames)
MAX_FEATURES = 65536           # channels, z/w/label sizes, mapping widths
MAX_MAPPING_LAYERS = 64
MAX_TENSOR_DIMS = 8
MAX_NESTING = 64               # modules inside modules, containers inside containers
ZIP_EXPANSION_SLACK = 64 << 20  # bytes a zip's records may inflate beyond 4x the file size
BUDGET_SLACK = 1 << 16

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")
_SHOWN_MODULES = {"posix": "os", "nt": "os"}   # os.system pickles as posix.system on Linux
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class CheckpointError(Exception):
    """A problem with the file; the loader prefixes the file name."""


def kind_of(value) -> str:
    """'an int', 'a list': the type of a value from a file, for messages."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def clean_text(text, limit: int = 160) -> str:
    """One line without terminal escape codes or control characters, at most ``limit`` long."""
    text = " ".join(_ANSI.sub(" ", str(text)).split())
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------
# files

def path_problem(path) -> Optional[str]:
    """None for a readable regular file, else what the path is instead (one phrase)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file (a broken link)" if os.path.islink(path) else "no such file"
    except NotADirectoryError:
        return "no such file"
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "is a folder, not a checkpoint file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a checkpoint file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device file, not a checkpoint file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a checkpoint file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


def check_zip_expansion(path) -> int:
    """Refuse zip records that inflate far beyond the file; return the bytes they hold.

    torch.save stores its records uncompressed; torch.load also inflates compressed ones, and
    allocates each record's declared size first, so a small deflated file could claim gigabytes.
    """
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(max(0, int(info.file_size)) for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, OverflowError):
        return size     # torch.load reports what is wrong with it
    if declared > 4 * size + ZIP_EXPANSION_SLACK:
        raise CheckpointError(
            f"refused: its zip records inflate to {declared / 2**20:.0f} MiB from a "
            f"{size / 2**20:.1f} MiB file (torch.save stores weights uncompressed)")
    return max(size, declared)


# ---------------------------------------------------------------------------------------------
# forbidden globals

def shown_global(name: str) -> str:
    module, _, attr = str(name).rpartition(".")
    return f"{_SHOWN_MODULES.get(module, module)}.{attr}" if module else attr


def code_refusal(name: str) -> str:
    """The one wording of every refusal of a global: ``refused: the file asks to run code (os.system)``."""
    return f"refused: the file asks to run code ({clean_text(shown_global(name), 120)})"


def _pickle_globals(handle, pickles: int) -> list:
    """Names of the GLOBAL opcodes of the next ``pickles`` pickles, in order (nothing is built)."""
    names = []
    for _ in range(pickles):
        try:
            for opcode, arg, _pos in pickletools.genops(handle):
                if opcode.name == "GLOBAL" and isinstance(arg, str) and " " in arg:
                    module, name = arg.split(" ", 1)
                    if (module, name) in _compat_pickle.NAME_MAPPING:
                        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
                    else:
                        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
                    names.append(f"{module}.{name}")
        except Exception:  # noqa: BLE001 - a damaged stream just ends the scan
            break
    return names


def _globals_of_torch_file(source) -> tuple:
    """(GLOBAL names in file order, the ones torch does not allow or None if unknown)."""
    data = source if isinstance(source, (bytes, bytearray)) else None
    if data is None:
        try:
            with open(source, "rb") as handle:
                head = handle.read(4)
        except OSError:
            return [], None
        if head.startswith(b"PK\x03\x04"):
            names = []
            try:
                with zipfile.ZipFile(source) as archive:
                    record = next((n for n in archive.namelist()
                                   if n.endswith("data.pkl") and n.count("/") == 1), None)
                    if record is not None:
                        names = _pickle_globals(io.BytesIO(archive.read(record)), 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError):
                pass
            unsafe = None
            try:
                unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(source))
            except Exception:  # noqa: BLE001 - only a better message is lost
                pass
            return names, unsafe
        with open(source, "rb") as handle:   # legacy torch.save: magic, protocol, sys info, object
            return _pickle_globals(handle, 4), None
    return _pickle_globals(io.BytesIO(bytes(data)), 4), None


def forbidden_global(source, error) -> Optional[str]:
    """The global that made ``torch.load(weights_only=True)`` refuse ``source`` (a path or the
    bytes of a legacy stream), or None when the refusal was about something else.

    Found from the file's own GLOBAL opcodes: torch's list of unsafe ones where it gives one,
    else the first of them that torch's message names (its wording changes between versions).
    """
    names, unsafe = _globals_of_torch_file(source)
    if unsafe:
        for name in names:
            if name in unsafe:
                return name
    text = _ANSI.sub(" ", str(error))
    for name in names:
        short = name[len("builtins."):] if name.startswith("builtins.") else None
        for candidate in filter(None, (name, short)):
            if re.search(r"(?<![\w.])" + re.escape(candidate) + r"(?![\w.])", text):
                return name
    match = re.search(r"GLOBAL\s+([\w.]+)", text)
    return match.group(1) if match else None


def _torch_reason(error) -> str:
    """torch's own reason without its advice (paragraphs about weights_only, docs, trust)."""
    advice = ("weights_only", "weights only", "torch.load", "trusted source", "add_safe_globals",
              "safe_globals", "file an issue", "arbitrary code")
    parts = [p for p in re.split(r"\n\s*\n|WeightsUnpickler error:", _ANSI.sub(" ", str(error)))
             if p.strip() and not any(a in p.lower() for a in advice)]
    return clean_text(" ".join(parts), 120) if parts else ""


def torch_load_refusal(source, error) -> str:
    """One line for an UnpicklingError of ``torch.load(weights_only=True)`` on ``source``."""
    name = forbidden_global(source, error)
    if name:
        return code_refusal(name)
    reason = _torch_reason(error)
    return ("refused: the file holds objects other than plain weights"
            + (f" ({reason})" if reason else ""))


# ---------------------------------------------------------------------------------------------
# tensors

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_view(what: str, storage_bytes: int, itemsize: int, offset, size, stride) -> int:
    """Refuse a view its storage cannot back with distinct values; return its element count.

    Runs on the numbers a pickle gives to torch's rebuild functions, before any tensor exists.
    """
    if not (isinstance(size, (tuple, list, torch.Size)) and isinstance(stride, (tuple, list))):
        raise CheckpointError(f"{what}: malformed tensor (size/stride are not sequences)")
    if len(size) != len(stride) or len(size) > MAX_TENSOR_DIMS:
        raise CheckpointError(f"{what}: malformed tensor ({len(size)} sizes, {len(stride)} strides)")
    if not all(_is_int(v) for v in (offset, *size, *stride)):
        raise CheckpointError(f"{what}: malformed tensor (non-integer size, stride or offset)")
    if offset < 0 or any(s < 0 for s in size) or any(st < 0 for st in stride):
        raise CheckpointError(f"{what}: malformed tensor (negative size, stride or offset)")
    numel = math.prod(int(s) for s in size)
    if numel == 0:
        return 0
    stored = int(storage_bytes) // max(1, int(itemsize))
    dims = sorted((int(st), int(s)) for s, st in zip(size, stride) if s > 1)
    extent = 0
    for st, s in dims:
        if st <= extent:
            raise CheckpointError(
                f"{what} claims {numel} values over {stored} stored one{'s' if stored != 1 else ''} "
                f"(strides {list(stride)} repeat values); refused before allocating it")
        extent += (s - 1) * st
    if offset + extent + 1 > stored:
        raise CheckpointError(
            f"{what} claims {numel} values but its storage holds {max(0, stored - offset)}")
    return numel


def _tensor_name(what, key) -> str:
    return f"tensor {key!r}" if not what else f"{what} tensor {key!r}"


def check_tensor(t, name: str) -> int:
    """Dtype, layout and view of one torch tensor or numpy array; returns its byte size."""
    if isinstance(t, np.ndarray):
        if t.dtype.kind != "f" or t.dtype.itemsize not in (2, 4, 8):
            raise CheckpointError(f"{name} is {t.dtype.name} (weights are floating point)")
        if t.ndim > MAX_TENSOR_DIMS:
            raise CheckpointError(f"{name} has {t.ndim} dimensions")
        return int(t.nbytes)
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(f"{name} is not a tensor ({type(t).__name__})")
    if t.layout != torch.strided:
        raise CheckpointError(f"{name} is a {str(t.layout).replace('torch.', '')} tensor (weights are dense)")
    if t.device.type != "cpu":
        raise CheckpointError(f"{name} is on device {t.device.type} (expected the CPU)")
    if t.dtype not in _FLOAT_DTYPES:
        raise CheckpointError(f"{name} is {str(t.dtype).replace('torch.', '')} (weights are floating point)")
    check_view(name, t.untyped_storage().nbytes(), t.element_size(), t.storage_offset(),
               tuple(t.shape), tuple(t.stride()))
    return t.numel() * t.element_size()


def check_finite(t, name: str) -> None:
    if isinstance(t, np.ndarray):
        ok = bool(np.isfinite(t).all())
    else:
        ok = bool(torch.isfinite(t).all())
    if not ok:
        raise CheckpointError(f"{name} holds NaN or infinite values (a corrupt file)")


def check_weights(tensors: dict, what: str = "", budget: Optional[int] = None) -> None:
    """Every entry a dense floating-point tensor or array with distinct values, all finite.

    ``budget``: bytes the file really stores; the weights together may not claim more (tensors
    that alias one storage would each be copied later). Layout is checked for all before any
    value is read, so nothing is materialised for a refused file.
    """
    total = 0
    for key, t in tensors.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{what or 'the file'} has a tensor named {key!r} (names are text)")
        total += check_tensor(t, _tensor_name(what, key))
    if budget is not None and total > budget + BUDGET_SLACK:
        raise CheckpointError(
            f"{what or 'its'} tensors claim {total / 2**20:.1f} MiB but the file stores "
            f"{budget / 2**20:.1f} MiB (tensors sharing their values); refused")
    for key, t in tensors.items():
        check_finite(t, _tensor_name(what, key))


# ---------------------------------------------------------------------------------------------
# non-tensor numbers

def check_numbers(value, where: str, skip: Iterable[str] = (), _depth: int = 0, _seen=None) -> None:
    """Refuse NaN/Inf among the plain numbers of a pickled structure (dicts, lists, stand-ins).

    Tensors and arrays are not looked at here (see check_weights); ``skip`` names dict keys
    left out at the top level (e.g. ``_parameters``).
    """
    if _seen is None:
        _seen = set()
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise CheckpointError(f"{where} is {float(value)} (a number must be finite)")
        return
    if isinstance(value, (str, bytes, bool, int, type(None), torch.Tensor, np.ndarray, np.integer)):
        return
    if _depth > MAX_NESTING:
        raise CheckpointError(f"{where}: containers nested more than {MAX_NESTING} deep")
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = ((str(i), v) for i, v in enumerate(value))
    elif hasattr(value, "__dict__") and isinstance(getattr(value, "__dict__", None), dict):
        items = value.__dict__.items()
    else:
        return
    if id(value) in _seen:
        return
    _seen.add(id(value))
    skip = set(skip)
    for key, item in items:
        if _depth == 0 and key in skip:
            continue
        check_numbers(item, f"{where}.{key}" if where else str(key), (), _depth + 1, _seen)


def finite_number(value, where: str, positive: bool = False) -> float:
    """A real number from a checkpoint's settings (not a bool or text), finite (and > 0)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CheckpointError(f"{where} is {clean_text(repr(value), 60)}, expected a number")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise CheckpointError(f"{where} is {number}, expected a {'positive ' if positive else ''}finite number")
    return number


def whole_number(value, where: str, low: int = 0, high: Optional[int] = None) -> int:
    """An integer setting (an int, or a float with an integral value) within [low, high]."""
    if isinstance(value, (bool, np.bool_)):
        raise CheckpointError(f"{where} is {value!r}, expected a whole number")
    if isinstance(value, (float, np.floating)) and math.isfinite(float(value)) and float(value).is_integer():
        value = int(value)
    if not _is_int(value):
        raise CheckpointError(f"{where} is {clean_text(repr(value), 60)}, expected a whole number")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise CheckpointError(f"{where} is {value}, expected {low}..{high if high is not None else ''}")
    return value


# ---------------------------------------------------------------------------------------------
# architecture

def check_config(cfg) -> None:
    """The architecture a file describes, within bounds and self-consistent, before building it."""
    resolution = whole_number(cfg.resolution, "resolution", 4, MAX_RESOLUTION)
    if resolution & (resolution - 1):
        raise CheckpointError(f"resolution {resolution} is not a power of two")
    z_dim = whole_number(cfg.z_dim, "z_dim", 1, MAX_FEATURES)
    w_dim = whole_number(cfg.w_dim, "w_dim", 1, MAX_FEATURES)
    c_dim = whole_number(cfg.c_dim, "c_dim", 0, MAX_FEATURES)
    embed = whole_number(cfg.embed_dim, "label embedding size", 0, MAX_FEATURES)
    dims = cfg.mapping_dims
    if not isinstance(dims, (list, tuple)) or not 2 <= len(dims) <= MAX_MAPPING_LAYERS + 1:
        raise CheckpointError(f"the mapping network has {len(dims) - 1 if isinstance(dims, (list, tuple)) else '?'} "
                              f"layers (1..{MAX_MAPPING_LAYERS} supported)")
    dims = [whole_number(d, f"mapping layer width {i}", 1, MAX_FEATURES) for i, d in enumerate(dims)]
    mode = cfg.label_mode
    want_in = {"none": z_dim, "concat": 2 * z_dim, "embed": z_dim + embed}.get(mode) if isinstance(mode, str) else None
    if want_in is None:
        raise CheckpointError(f"unknown label mode {clean_text(repr(mode), 40)}")
    if (mode == "none") != (c_dim == 0) or (mode == "embed") != (embed > 0):
        raise CheckpointError(f"label size {c_dim} / embedding {embed} do not fit label mode {mode!r}")
    if dims[0] != want_in or dims[-1] != w_dim:
        raise CheckpointError(f"mapping widths {dims[0]}..{dims[-1]} do not fit z_dim {z_dim}, w_dim {w_dim}")
    channels = cfg.channels
    want = [2 ** i for i in range(2, resolution.bit_length())]
    if not isinstance(channels, dict) or sorted(channels) != want:
        raise CheckpointError(f"channel counts are given for {sorted(channels) if isinstance(channels, dict) else '?'}, "
                              f"expected {want}")
    for r in want:
        whole_number(channels[r], f"channels at {r} px", 1, MAX_FEATURES)
    finite_number(cfg.mapping_lr_mul, "mapping learning-rate multiplier", positive=True)
    if cfg.conv_clamp is not None:
        finite_number(cfg.conv_clamp, "conv_clamp", positive=True)
    if cfg.img_channels != 3 or isinstance(cfg.img_channels, bool):
        raise CheckpointError(f"{cfg.img_channels!r} output channels; only RGB generators are supported")
    for name in ("normalize_z", "use_noise"):
        if not isinstance(getattr(cfg, name), bool):
            raise CheckpointError(f"{name} is {clean_text(repr(getattr(cfg, name)), 40)}, expected true or false")
