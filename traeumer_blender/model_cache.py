# SPDX-License-Identifier: GPL-3.0-or-later
"""Generators and encoders loaded once per process (the worker keeps them between jobs).

A key includes a model file's path, modification time and size, so a changed file is loaded
again; the least recently used model goes when more than ``_CACHE_SIZE`` are kept.
"""

import json
import os
import threading
from collections import OrderedDict

_CACHE_LOCK = threading.Lock()
_CACHE = OrderedDict()
_CACHE_SIZE = 4


def _source_key(source):
    """A cache key that changes when a model file changes."""
    source = os.fspath(source)
    if os.path.isfile(source):
        stat = os.stat(source)
        return (os.path.realpath(source), stat.st_mtime_ns, stat.st_size)
    return (source,)


def _cached(kind, source, device, precision, loader, extra=()):
    key = (kind, _source_key(source), device, precision, extra)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = loader()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def get_generator(source="default", device="auto", precision="auto", label=None):
    """The generator, loaded once per (source, device, precision, label) in this process."""
    from .stylegan2 import load_generator

    label_key = None if label is None else json.dumps(label, sort_keys=True, default=str)
    return _cached("generator", source, device, precision,
                   lambda: load_generator(source, device=device, precision=precision, label=label),
                   extra=label_key)


def get_encoder(source="default", device="cpu"):
    """The music encoder, loaded once per (source, device) in this process."""
    from .encoders import load_encoder

    return _cached("encoder", source, device, None, lambda: load_encoder(source, device=device))


def clear_model_cache():
    with _CACHE_LOCK:
        _CACHE.clear()
