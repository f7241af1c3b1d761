# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep freed memory in the process instead of handing it back to the system (glibc only).

The music and image passes allocate the same large tensors (tens of MB, a StyleGAN3 layer's
buffers hundreds of MB) again for every chunk or frame.  By default glibc serves blocks that
large with a fresh ``mmap`` and unmaps them on free, so every chunk pays a page fault for each
4 KiB it touches (~8 % of the song-wide encoder pass, BENCHMARKS.md "Audio"; a 1024 px
StyleGAN2 frame ran 1.7x faster without them, "StyleGAN3").  Raising the mmap and trim
thresholds lets the freed blocks be reused.  Threads share the main arena: a thread's own arena
serves blocks above its 64 MiB heap size by ``mmap`` whatever the threshold, and the CPU renders
the rows of its frames in parallel threads.  Peak memory is unchanged: the blocks are reused,
not added.  A process that lives on after a job (the worker) hands the kept memory back with
``release_freed_memory``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 2 ** 31 - 1               # blocks up to 2 GiB from the heap (glibc 2.36 takes it)
_MMAP_THRESHOLD_OLD_MAX = 32 * 1024 * 1024  # what older glibc versions accept at most
_TRIM_THRESHOLD = 2 ** 31 - 1

_applied = False


def _glibc_function(name: str):
    """A libc function by name, or None off Linux or where libc lacks it (musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Apply once per process; True where it took effect (Linux with glibc)."""
    global _applied
    if _applied:
        return True
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) or mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_OLD_MAX)
    _applied = (bool(mmap_set) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
                and bool(mallopt(_M_ARENA_MAX, 1)))
    return _applied


def release_freed_memory() -> bool:
    """Hand memory that was freed but kept back to the system (after a job); True if any was."""
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return bool(malloc_trim(0))
