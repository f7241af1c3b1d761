# SPDX-License-Identifier: GPL-3.0-or-later
"""Which compute devices a ``--device`` / ``device`` setting may name, checked against this
machine before any model is loaded, so a device torch cannot use here is one clear line.

``check_device`` accepts "auto", "cpu", "cuda", "cuda:N" (N below the number of GPUs) and "mps"
(Apple's Metal). torch is imported only when a GPU is asked for.
"""

from .errors import TraeumerError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def check_device(device) -> str:
    """The setting in lower case when this machine has that device; TraeumerError otherwise."""
    text = "auto" if device is None else str(device).strip().lower()
    if text in ("", "auto", "cpu"):
        return text or "auto"
    kind, colon, index_text = text.partition(":")
    if kind not in ("cpu", "cuda", "mps"):
        raise TraeumerError(f"unknown device {device!r}: use {DEVICE_CHOICES}")
    index = None
    if colon:
        if not index_text.isdigit() or not index_text.isascii():
            raise TraeumerError(f"device {device!r} has no valid index: use {DEVICE_CHOICES}")
        index = int(index_text)
    if kind == "cpu":
        if index not in (None, 0):
            raise TraeumerError(f"there is only one CPU device (cpu), not {device!r}")
        return text
    import torch

    if kind == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is a build without CUDA" if getattr(torch.version, "cuda", None) is None
                   else "torch finds no NVIDIA GPU")
            raise TraeumerError(f"device {device!r} requested but no CUDA GPU is available ({why}); "
                                "use --device cpu or auto")
        count = torch.cuda.device_count()
        if index is not None and index >= count:
            raise TraeumerError(f"device {device!r} requested but this machine has {count} CUDA "
                                f"GPU{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
        return text
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise TraeumerError(f"device {device!r} requested but Apple's Metal (MPS) is not available "
                            "here; use --device cpu or auto")
    if index not in (None, 0):
        raise TraeumerError(f"there is only one MPS device (mps), not {device!r}")
    return text
