# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the engine keeps derived files (converted weights, w statistics).

``TRAEUMER_CACHE_DIR`` wins; the Blender extension sets it to its user directory.
Otherwise ``$XDG_CACHE_HOME/traeumer`` (``~/.cache/traeumer``).
"""

import hashlib
import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder inside the engine's cache."""
    root = os.environ.get("TRAEUMER_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "traeumer")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_digest(path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's content (hex); cache keys follow content, not names."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk_bytes)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()
