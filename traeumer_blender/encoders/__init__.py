# SPDX-License-Identifier: GPL-3.0-or-later
"""Music encoders: frozen MagnaTagATune taggers that turn audio into per-frame embeddings.

``load_encoder("default")`` gives musicnn's MTT_vgg (closest stand-in for the paper's short-chunk
CNN among weights we can ship); ``"mtt_musicnn"`` the musicnn network; a path to a ``.pth`` /
``.ckpt`` file the paper's ShortChunkCNN_Res.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TraeumerError
from .base import MTAT_TAGS, Encoder

DEFAULT_ENCODER = "mtt_vgg"
ENCODER_NAMES = ("default", "mtt_vgg", "mtt_musicnn")

__all__ = ["DEFAULT_ENCODER", "ENCODER_NAMES", "MTAT_TAGS", "Encoder", "load_encoder"]


def load_encoder(name_or_path: str = "default", device: str = "cpu") -> Encoder:
    """An encoder by name (see ENCODER_NAMES) or from a ShortChunkCNN_Res checkpoint file."""
    key = str(name_or_path)
    if key == "default":
        key = DEFAULT_ENCODER
    if key in ("mtt_vgg", "mtt_musicnn"):
        from .musicnn_models import make_musicnn_encoder
        return make_musicnn_encoder(key, device=device)
    path = Path(os.fspath(name_or_path))
    if path.suffix.lower() in (".pth", ".pt", ".ckpt") or path.exists():
        from .short_chunk_res import load_short_chunk_res
        return load_short_chunk_res(path, device=device)
    raise TraeumerError(f"unknown encoder {name_or_path!r}: use one of {', '.join(ENCODER_NAMES)} "
                        f"or the path of a ShortChunkCNN_Res .pth/.ckpt file")
