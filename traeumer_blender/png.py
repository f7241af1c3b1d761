# SPDX-License-Identifier: GPL-3.0-or-later
"""A small PNG writer/reader for 8-bit RGB frames (zlib only, no Pillow).

Rows use the "Up" filter (difference to the row above), which numpy computes in one step and
which compresses generated images well. Files are written atomically: a temporary name in the
same folder, flushed, then ``os.replace``, so a frame file is either complete or absent. A frame
can carry a tag (a ``tEXt`` chunk, keyword ``TAG_KEYWORD``): what it was made from, so a resumed
job keeps only frames of its own settings.
"""

import os
import secrets
import struct
import zlib

import numpy as np

from .errors import TraeumerError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TAG_KEYWORD = b"traeumer:frame"
_IEND_CHUNK = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgb: np.ndarray, compression: int = 6, tag: str = None) -> bytes:
    """PNG bytes of an [H, W, 3] uint8 image (with ``tag`` in a tEXt chunk when given)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] uint8 image, got {rgb.dtype} {rgb.shape}")
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type "Up"
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps mod 256
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b"" if tag is None else _chunk(b"tEXt", TAG_KEYWORD + b"\0" + tag.encode("latin-1"))
    return b"".join((
        SIGNATURE,
        _chunk(b"IHDR", header),
        text,
        _chunk(b"IDAT", zlib.compress(filtered.tobytes(), compression)),
        _IEND_CHUNK,
    ))


def write_atomic(path, data: bytes) -> None:
    """Write bytes to ``path`` via a temporary file in the same folder and os.replace.

    A failed write (disk full, a folder made read-only) leaves no temporary file and raises
    TraeumerError naming the file: the user's to fix, not a bug.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    temp_path = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 lets the umask decide the mode, as for any normally created file
        handle = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise TraeumerError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_path, path)
    except BaseException as error:
        try:
            os.unlink(temp_path)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise TraeumerError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def write_png(path, rgb: np.ndarray, compression: int = 6, tag: str = None) -> None:
    """Encode and write atomically."""
    write_atomic(path, encode_png(rgb, compression, tag))


def _chunks(data: bytes):
    """Yield (kind, payload) of each chunk; ValueError on bad structure or CRC."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    position = len(SIGNATURE)
    while position < len(data):
        if position + 12 > len(data):
            raise ValueError("truncated chunk")
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4:position + 8]
        end = position + 8 + length
        if end + 4 > len(data):
            raise ValueError("truncated chunk")
        payload = data[position + 8:end]
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(kind + payload) != crc:
            raise ValueError(f"bad CRC in {kind!r} chunk")
        yield kind, payload
        position = end + 4


def png_size(data: bytes):
    """(width, height) from the IHDR chunk."""
    if len(data) < 24 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack_from(">II", data, 16)


def complete_png_tag(path, width: int = None, height: int = None):
    """(complete, tag): the cheap integrity check (signature, size, every chunk's CRC, IEND last,
    nothing after it) and the frame's tag ("" when it has none)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
        if not data.endswith(_IEND_CHUNK):
            return False, ""
        if width is not None and png_size(data) != (width, height):
            return False, ""
        chunks = list(_chunks(data))
        kinds = [kind for kind, _ in chunks]
        complete = kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
        tags = [payload[len(TAG_KEYWORD) + 1:] for kind, payload in chunks
                if kind == b"tEXt" and payload.startswith(TAG_KEYWORD + b"\0")]
        return complete, tags[0].decode("latin-1") if tags else ""
    except (OSError, ValueError, struct.error):
        return False, ""


def is_complete_png(path, width: int = None, height: int = None) -> bool:
    return complete_png_tag(path, width, height)[0]


def read_png(path) -> np.ndarray:
    """Decode an 8-bit RGB, non-interlaced PNG (filters None/Sub/Up/Average/Paeth) to [H, W, 3]."""
    with open(path, "rb") as stream:
        data = stream.read()
    header = None
    compressed = []
    for kind, payload in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            compressed.append(payload)
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color != 2 or interlace != 0:
        raise ValueError("only 8-bit RGB, non-interlaced PNG files are supported")
    stride = width * 3
    raw = np.frombuffer(zlib.decompress(b"".join(compressed)), dtype=np.uint8)
    raw = raw.reshape(height, stride + 1)
    image = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind = raw[y, 0]
        line = raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 2:
            row = line + previous
        elif kind == 1:
            row = np.cumsum(line.reshape(width, 3), axis=0, dtype=np.uint8).reshape(stride)
        else:
            row = _unfilter_slow(kind, line, previous)
        image[y] = row
        previous = row
    return image.reshape(height, width, 3)


def _unfilter_slow(kind, line, previous):
    """Average (3) and Paeth (4) need a per-byte loop; we never write them."""
    row = np.zeros(len(line), dtype=np.int64)
    above = previous.astype(np.int64)
    line = line.astype(np.int64)
    for x in range(len(line)):
        left = row[x - 3] if x >= 3 else 0
        upper_left = above[x - 3] if x >= 3 else 0
        if kind == 3:
            predictor = (left + above[x]) // 2
        elif kind == 4:
            estimate = left + above[x] - upper_left
            distances = (abs(estimate - left), abs(estimate - above[x]), abs(estimate - upper_left))
            predictor = (left, above[x], upper_left)[distances.index(min(distances))]
        else:
            raise ValueError(f"unknown PNG filter type {kind}")
        row[x] = (line[x] + predictor) & 0xFF
    return row.astype(np.uint8)
