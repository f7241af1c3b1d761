# SPDX-License-Identifier: GPL-3.0-or-later
"""Read a TensorFlow 1.x checkpoint (``.index`` + ``.data-00000-of-00001``) without TensorFlow.

The ``.index`` file is a LevelDB-style sorted table without compression: data blocks of
prefix-compressed ``key -> value`` entries, an index block pointing at them and a 48-byte
footer.  Each value is a ``BundleEntryProto`` protobuf telling where a tensor's raw
little-endian bytes lie in the data shard.  Only what a checkpoint of float/int tensors needs
is implemented; anything else is reported as a ``TraeumerError``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import TraeumerError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_BLOCK_TRAILER_BYTES = 5  # compression type (1 byte) + masked crc32c (4 bytes)

# tensorflow/core/framework/types.proto → numpy
_TF_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    19: np.float16,
}


def _read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(buffer):
            raise TraeumerError("TensorFlow checkpoint index is truncated (varint past the end)")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _read_block(index_bytes: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if end + _BLOCK_TRAILER_BYTES > len(index_bytes):
        raise TraeumerError("TensorFlow checkpoint index is truncated (block past the end)")
    if index_bytes[end] != 0:
        raise TraeumerError("TensorFlow checkpoint index uses a compressed block; not supported")
    return index_bytes[offset:end]


def _block_entries(block: bytes):
    """Yield (key, value) pairs of one table block (keys are prefix-compressed)."""
    if len(block) < 4:
        raise TraeumerError("TensorFlow checkpoint index has a malformed block")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * num_restarts
    position = 0
    key = b""
    while position < entries_end:
        shared, position = _read_varint(block, position)
        unshared, position = _read_varint(block, position)
        value_length, position = _read_varint(block, position)
        key = key[:shared] + block[position:position + unshared]
        position += unshared
        value = block[position:position + value_length]
        position += value_length
        yield key, value


def _parse_bundle_entry(message: bytes) -> dict:
    """Decode the fields of a BundleEntryProto that locate a tensor."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0}
    position = 0
    while position < len(message):
        tag, position = _read_varint(message, position)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _read_varint(message, position)
            name = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}.get(field)
            if name:
                entry[name] = value
        elif wire_type == 2:
            length, position = _read_varint(message, position)
            payload = message[position:position + length]
            position += length
            if field == 2:
                entry["shape"] = _parse_tensor_shape(payload)
        elif wire_type == 5:  # fixed32: crc32c
            position += 4
        elif wire_type == 1:
            position += 8
        else:
            raise TraeumerError(f"TensorFlow checkpoint index: unexpected protobuf wire type {wire_type}")
    return entry


def _parse_tensor_shape(message: bytes) -> list[int]:
    dims = []
    position = 0
    while position < len(message):
        tag, position = _read_varint(message, position)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 2:
            length, position = _read_varint(message, position)
            payload = message[position:position + length]
            position += length
            if field == 2:  # Dim { int64 size = 1; string name = 2; }
                size = 0
                inner = 0
                while inner < len(payload):
                    inner_tag, inner = _read_varint(payload, inner)
                    if inner_tag & 7 == 0:
                        inner_value, inner = _read_varint(payload, inner)
                        if inner_tag >> 3 == 1:
                            size = inner_value
                    elif inner_tag & 7 == 2:
                        skip, inner = _read_varint(payload, inner)
                        inner += skip
                    else:
                        raise TraeumerError("TensorFlow checkpoint index: malformed tensor shape")
                dims.append(size)
        elif wire_type == 0:
            _, position = _read_varint(message, position)  # unknown_rank flag
        else:
            raise TraeumerError("TensorFlow checkpoint index: malformed tensor shape")
    return dims


def read_tf_checkpoint(prefix: str | Path, skip_optimizer_slots: bool = True) -> dict[str, np.ndarray]:
    """Return ``{tensor name: array}`` for the checkpoint ``<prefix>.index``.

    ``prefix`` may be a folder path ending in a separator when the files are named just
    ``.index`` / ``.data-00000-of-00001`` (as in the musicnn wheel).  Adam slots are skipped.
    """
    prefix = str(prefix)
    index_path = Path(prefix + ".index")
    if not index_path.is_file():
        raise TraeumerError(f"TensorFlow checkpoint index not found: {index_path}")
    index_bytes = index_path.read_bytes()
    if len(index_bytes) < _FOOTER_BYTES:
        raise TraeumerError(f"TensorFlow checkpoint index is too short: {index_path}")
    footer = index_bytes[-_FOOTER_BYTES:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_BYTES - 8)
    if magic != _TABLE_MAGIC:
        raise TraeumerError(f"not a TensorFlow checkpoint index (bad magic): {index_path}")
    position = 0
    _metaindex_offset, position = _read_varint(footer, position)
    _metaindex_size, position = _read_varint(footer, position)
    index_offset, position = _read_varint(footer, position)
    index_size, position = _read_varint(footer, position)

    entries: dict[str, dict] = {}
    for _last_key, handle in _block_entries(_read_block(index_bytes, index_offset, index_size)):
        block_offset, inner = _read_varint(handle, 0)
        block_size, inner = _read_varint(handle, inner)
        for key, value in _block_entries(_read_block(index_bytes, block_offset, block_size)):
            if key == b"":  # BundleHeaderProto
                continue
            name = key.decode("utf-8")
            if skip_optimizer_slots and (name.endswith("/Adam") or name.endswith("/Adam_1")
                                         or name.startswith("beta1_power") or name.startswith("beta2_power")):
                continue
            entries[name] = _parse_bundle_entry(value)

    tensors: dict[str, np.ndarray] = {}
    shard_handles = {}
    try:
        for name, entry in entries.items():
            dtype = _TF_DTYPES.get(entry["dtype"])
            if dtype is None:
                continue  # strings or other types a network's weights never need
            shard = entry["shard_id"]
            if shard not in shard_handles:
                # the shard count is in the header; musicnn's have one shard
                shard_path = Path(f"{prefix}.data-{shard:05d}-of-00001")
                if not shard_path.is_file():
                    raise TraeumerError(f"TensorFlow checkpoint data shard not found: {shard_path}")
                shard_handles[shard] = open(shard_path, "rb")
            handle = shard_handles[shard]
            handle.seek(entry["offset"])
            raw = handle.read(entry["size"])
            count = int(np.prod(entry["shape"])) if entry["shape"] else 1
            if len(raw) != count * np.dtype(dtype).itemsize:
                raise TraeumerError(f"TensorFlow checkpoint tensor {name!r} has {len(raw)} bytes, "
                                    f"expected {count * np.dtype(dtype).itemsize}")
            tensors[name] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(entry["shape"]).copy()
    finally:
        for handle in shard_handles.values():
            handle.close()
    return tensors
