# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading the engine's own .npz formats: styles, style curves, mappers, label sets.

They are numpy .npz archives (zips of .npy members) read without pickles, so nothing in a file
is executed, even in a file someone else made. A missing, foreign or damaged file becomes one
TraeumerError line instead of a traceback.

A small file must not be able to make us allocate gigabytes, so a format names the members it
uses (``Member``: accepted dtype kinds, number of dimensions, most bytes) and only those are ever
read. Before a member is read its sizes are checked: the size the zip's directory declares
(``ZipInfo.file_size``), how far it inflates (``MAX_INFLATION``) and the .npy header's
shape × itemsize, which must fit the declared size exactly, since numpy allocates what the header
says before it reads the data.
"""

import contextlib
import math
import os
import stat
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import TraeumerError

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
# dtype kinds (numpy's dtype.kind): real numbers, integers, text
NUMBERS = "fiu"
INTEGERS = "iu"
TEXT = "U"
# a member larger than this may not inflate more than MAX_INFLATION-fold: the engine writes
# its big arrays uncompressed (styles, mappers) or as noisy floats that hardly compress
INFLATION_FREE_BYTES = 256 * MIB
MAX_INFLATION = 64
# .npy headers are a few hundred bytes; numpy's own default limit
_MAX_HEADER_BYTES = 10000


@dataclass(frozen=True)
class Member:
    """What a format accepts for one member: dtype kinds, dimensions (None: any), most bytes."""

    kinds: str
    ndim: object = None
    max_bytes: int = 64 * KIB


def text_member(max_chars: int = 16 * KIB) -> Member:
    """A 0-d string (numpy stores 4 bytes a character)."""
    return Member(TEXT, 0, 4 * max_chars)


def scalar_member(kinds: str = NUMBERS) -> Member:
    return Member(kinds, 0, 64)


FORMAT_MEMBER = text_member(256)


def _size(count: int) -> str:
    if count >= GIB:
        return f"{count / GIB:.1f} GiB"
    if count >= MIB:
        return f"{count / MIB:.1f} MiB"
    return f"{count} bytes"


def _kind_name(dtype) -> str:
    return {"f": "numbers", "i": "integers", "u": "integers", "U": "text", "S": "bytes",
            "c": "complex numbers", "b": "booleans", "O": "Python objects", "V": "records",
            "M": "dates", "m": "time spans"}.get(dtype.kind, str(dtype))


def _expected_kinds(kinds: str) -> str:
    return {NUMBERS: "real numbers", INTEGERS: "integers", TEXT: "text"}.get(kinds, kinds)


def check_regular_file(path, what: str, missing_hint: str = "") -> str:
    """``path`` as a string when it is a regular file; one TraeumerError line otherwise.

    Only ``stat`` is used, so a FIFO or a device is refused without being opened (opening a
    FIFO would wait for a writer).
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        hint = f" ({missing_hint})" if missing_hint else ""
        raise TraeumerError(f"{what} not found: {path}{hint}") from None
    except OSError as error:
        raise TraeumerError(f"cannot read {what} {path}: {error.strerror}") from None
    if stat.S_ISDIR(mode):
        raise TraeumerError(f"{what} is a folder, not a file: {path}")
    if not stat.S_ISREG(mode):
        raise TraeumerError(f"{what} is not a regular file (a pipe, socket or device): {path}")
    return path


def _read_header(stream, where: str):
    """(shape, fortran_order, dtype, header bytes) of the .npy stream at its start."""
    try:
        version = np.lib.format.read_magic(stream)
    except ValueError:
        raise TraeumerError(f"{where} is not a .npy array") from None
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=_MAX_HEADER_BYTES)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=_MAX_HEADER_BYTES)
    else:
        raise TraeumerError(f"{where} is a .npy array of an unsupported version {version}")
    return tuple(int(n) for n in shape), bool(fortran), dtype, stream.tell()


def _check_header(where: str, spec: Member, shape, dtype, data_bytes_declared=None):
    """Refuse a header whose dtype, dimensions or size the format does not accept."""
    if dtype.hasobject or dtype.kind not in spec.kinds or dtype.fields is not None or dtype.subdtype:
        raise TraeumerError(f"{where} holds {_kind_name(dtype)}, expected {_expected_kinds(spec.kinds)}")
    if spec.ndim is not None and len(shape) != spec.ndim:
        raise TraeumerError(f"{where} has {len(shape)} dimensions {shape}, expected {spec.ndim}")
    if any(n < 0 for n in shape):
        raise TraeumerError(f"{where} has a negative size {shape}")
    data_bytes = math.prod(shape) * dtype.itemsize
    if data_bytes > spec.max_bytes:
        raise TraeumerError(f"{where} would take {_size(data_bytes)}, more than the "
                            f"{_size(spec.max_bytes)} this kind of file may hold")
    if data_bytes_declared is not None and data_bytes != data_bytes_declared:
        raise TraeumerError(f"{where} says {shape} {dtype} ({_size(data_bytes)}) but holds "
                            f"{_size(max(data_bytes_declared, 0))}")
    return data_bytes


class NpzMembers:
    """The members a format uses, read one by one with their sizes checked first."""

    def __init__(self, archive: zipfile.ZipFile, path: str, what: str, members: dict):
        self._archive = archive
        self._path = path
        self._what = what
        self._members = dict(members)
        self._infos = {}
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name in self._members and name not in self._infos:
                self._infos[name] = info

    @property
    def files(self) -> list:
        """The format's members this file has (others in the zip are never looked at)."""
        return [name for name in self._members if name in self._infos]

    def __contains__(self, name) -> bool:
        return name in self._infos

    def _where(self, name) -> str:
        return f"{self._path} is not a TräumerAI {self._what}: its member {name!r}"

    def _spec_and_info(self, name):
        if name not in self._members:
            raise KeyError(f"{name} is not a member of this format")   # a bug, not the file
        if name not in self._infos:
            raise TraeumerError(f"{self._path} is a damaged {self._what}: it has no {name!r}")
        spec, info = self._members[name], self._infos[name]
        if info.file_size > spec.max_bytes + _MAX_HEADER_BYTES:
            raise TraeumerError(f"{self._where(name)} is {_size(info.file_size)} uncompressed, more "
                                f"than the {_size(spec.max_bytes)} this kind of file may hold")
        if info.file_size > INFLATION_FREE_BYTES and info.file_size > MAX_INFLATION * max(info.compress_size, 1):
            raise TraeumerError(f"{self._where(name)} inflates from {_size(info.compress_size)} to "
                                f"{_size(info.file_size)} (more than {MAX_INFLATION}-fold)")
        return spec, info

    def shape(self, name) -> tuple:
        """The member's shape from its .npy header alone (nothing else is read)."""
        return self._header(name)[0]

    def _header(self, name):
        spec, info = self._spec_and_info(name)
        where = self._where(name)
        with self._archive.open(info) as stream:
            shape, _, dtype, header_bytes = _read_header(stream, where)
        _check_header(where, spec, shape, dtype, info.file_size - header_bytes)
        return shape, dtype

    def __getitem__(self, name) -> np.ndarray:
        self._header(name)
        with self._archive.open(self._infos[name]) as stream:
            return np.lib.format.read_array(stream, allow_pickle=False,
                                            max_header_size=_MAX_HEADER_BYTES)

    def text(self, name) -> str:
        return str(self[name])

    def integer(self, name) -> int:
        value = self[name]
        return int(value)

    def number(self, name) -> float:
        """A finite real number."""
        value = float(self[name])
        if not math.isfinite(value):
            raise TraeumerError(f"{self._where(name)} is {value}, not a finite number")
        return value

    def finite(self, name, dtype=np.float64) -> np.ndarray:
        """A real array without NaN or infinity, as ``dtype``."""
        array = np.asarray(self[name], dtype=dtype)
        if not np.all(np.isfinite(array)):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise TraeumerError(f"{self._where(name)} has {bad} values that are not finite "
                                "numbers (NaN or infinity)")
        return array


@contextlib.contextmanager
def parse_errors_as(message: str):
    """Inside the block, any error but TraeumerError becomes ``TraeumerError("<message> (<type>)")``.

    The block only turns a file's bytes into values, so whatever fails there (KeyError, a
    JSONDecodeError, a truncated zip, int() of a many-valued array...) means the file is not
    what it claims; the error's type stays in the line so that a real bug can still be told apart.
    """
    try:
        yield
    except TraeumerError:
        raise
    except MemoryError:
        raise TraeumerError(f"{message} (it is too large to read)") from None
    except Exception as error:
        raise TraeumerError(f"{message} ({type(error).__name__})") from None


@contextlib.contextmanager
def open_npz(path, file_format, what: str, members: dict, missing_hint: str = ""):
    """Yield the ``members`` (name -> Member) of one of our .npz files whose ``format`` is
    ``file_format`` (or one of a tuple of formats: older versions a reader still accepts) as an
    ``NpzMembers``; members the format does not name are never read.

    ``what`` names the kind of file in messages ("mapper file"). Convert the fields inside the
    ``with`` block: an error there is reported like a damaged file.
    """
    path = check_regular_file(path, what, missing_hint)
    members = dict(members, format=FORMAT_MEMBER)
    with parse_errors_as(f"{path} is not a TräumerAI {what}"):
        with zipfile.ZipFile(path) as archive:
            data = NpzMembers(archive, path, what, members)
            accepted = (file_format,) if isinstance(file_format, str) else tuple(file_format)
            if "format" not in data or data.text("format") not in accepted:
                raise ValueError(f"format is not {' or '.join(accepted)}")
            data.format = data.text("format")
            yield data


def read_npy(path, what: str, spec: Member) -> np.ndarray:
    """One standalone .npy file (no pickles), its header checked against ``spec`` first."""
    path = check_regular_file(path, what)
    size = os.path.getsize(path)
    with parse_errors_as(f"cannot read {what} {path}"):
        with open(path, "rb") as stream:
            if stream.read(6) != b"\x93NUMPY":
                raise TraeumerError(f"{what} {path} is not a .npy file (numpy.save writes one)")
            stream.seek(0)
            shape, _, dtype, header_bytes = _read_header(stream, f"{what} {path}")
            _check_header(f"{what} {path}", spec, shape, dtype, size - header_bytes)
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False, max_header_size=_MAX_HEADER_BYTES)
