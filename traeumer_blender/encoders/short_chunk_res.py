# SPDX-License-Identifier: GPL-3.0-or-later
"""The paper's encoder: ShortChunkCNN_Res (Won et al. 2020), for users who own its weights.

Two checkpoint layouts load: a plain state_dict (``best_model.pth`` of sota-music-tagging-models)
and a PyTorch-Lightning ``.ckpt`` whose ``state_dict`` keys carry a ``model.`` prefix.  Files are
read with ``torch.load(weights_only=True)``: no code from the file runs.  Module names below
match those checkpoints' keys.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import TraeumerError
from ..paths import file_digest
from ..stylegan2.untrusted import (
    CheckpointError,
    check_finite,
    check_zip_expansion,
    clean_text,
    forbidden_global,
    path_problem,
    torch_load_refusal,
)
from .base import Encoder, TaggingNetwork
from .frontend import MelFrontEnd, mel_filterbank_htk

SAMPLE_RATE, N_FFT, HOP, N_MELS = 16000, 512, 256, 128
INPUT_SAMPLES = 59049                         # 3.69 s
INPUT_FRAMES = 1 + INPUT_SAMPLES // HOP       # 231
CHANNELS = [1, 128, 128, 256, 256, 256, 256, 512]


class ResidualBlock(torch.nn.Module):
    """3×3 conv stride 2 + BN + ReLU, 3×3 conv + BN, plus a strided 3×3 conv + BN shortcut."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_1 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.bn_1 = torch.nn.BatchNorm2d(out_channels)
        self.conv_2 = torch.nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn_2 = torch.nn.BatchNorm2d(out_channels)
        self.conv_3 = torch.nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.bn_3 = torch.nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn_2(self.conv_2(F.relu(self.bn_1(self.conv_1(x)))))
        return F.relu(self.bn_3(self.conv_3(x)) + residual)


class ShortChunkCnnRes(TaggingNetwork):
    """7 residual blocks on a [1, 128 mels, time] dB spectrogram; embedding 512-d.

    Each block halves frequency and time: 128 mels → 1 band; position p of the last block is
    centred on input frame 128·p.  The mel filterbank is a buffer (the checkpoint's own copy
    replaces it when present).
    """

    def __init__(self):
        super().__init__()
        self.spec_bn = torch.nn.BatchNorm2d(1)
        for i in range(7):
            self.add_module(f"layer{i + 1}", ResidualBlock(CHANNELS[i], CHANNELS[i + 1]))
        self.dense1 = torch.nn.Linear(512, 512)
        self.bn = torch.nn.BatchNorm1d(512)
        self.dense2 = torch.nn.Linear(512, 50)

    def conv_features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """[B, T, 128] dB mel → [B, 512, T'] (last block, frequency 1)."""
        x = self.spec_bn(spectrogram.transpose(1, 2)[:, None])          # [B, 1, mels, T]
        for i in range(7):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.amax(dim=2)                                             # frequency is 1 here

    def conv_features_shifted(self, spectrogram: torch.Tensor, shifts: list[int]) -> list[torch.Tensor]:
        """conv_features of the input started ``shift`` frames later, for each shift.

        Every block halves time, so an even shift of a block's input is a half-as-large shift
        of its output: shifted inputs share all blocks until their shift turns odd, and only
        from there on is a block run again on the input offset by one step.
        """
        x = self.spec_bn(spectrogram.transpose(1, 2)[:, None])          # [B, 1, mels, T]
        variants = {(): x}
        pending = [((), shift) for shift in shifts]
        for i in range(7):
            block = getattr(self, f"layer{i + 1}")
            outputs, moved = {}, []
            for key, shift in pending:
                offset = shift % 2
                new_key = key + (offset,)
                if new_key not in outputs:
                    outputs[new_key] = block(variants[key][..., offset:])
                moved.append((new_key, shift // 2))
            variants, pending = outputs, moved
        return [variants[key][..., shift:].amax(dim=2) for key, shift in pending]

    def tag_logits(self, spectrogram: torch.Tensor) -> torch.Tensor:
        x = self.conv_features(spectrogram).amax(dim=2)                 # global max over time
        x = F.relu(self.bn(self.dense1(x)))                             # dropout is off at inference
        return self.dense2(x)


class _StandIn(dict):
    """Harmless replacement for classes pickled in a checkpoint's metadata (e.g. hparams)."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


# modules whose classes may appear in a training checkpoint's metadata (hyper-parameters)
_METADATA_MODULES = ("pytorch_lightning", "lightning", "lightning_fabric", "argparse", "omegaconf", "types")


def _load_checkpoint(path: Path) -> dict:
    """torch.load with weights_only=True; metadata classes it refuses become plain stand-ins.

    Only classes of the training frameworks' metadata get a stand-in; any other global (a
    function such as ``os.system`` in a malicious file) makes the load fail.
    """
    allowed: list = []
    for _ in range(8):
        with torch.serialization.safe_globals(allowed):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as error:
                name = forbidden_global(path, error)     # whatever torch's wording
                if (not name or any(name == known for _, known in allowed)
                        or name.split(".")[0] not in _METADATA_MODULES):
                    raise TraeumerError(f"{path}: {torch_load_refusal(path, error)}") from None
            except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, IndexError,
                    AttributeError, OverflowError, UnicodeDecodeError, MemoryError) as error:
                raise TraeumerError(f"cannot read {path} as a PyTorch checkpoint: "
                                    f"{clean_text(error) or type(error).__name__}") from None
        allowed.append((_StandIn, name))
    raise TraeumerError(f"{path} refers to too many unknown classes to load safely")


def short_chunk_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """Tensors of either layout, keyed as in ShortChunkCnnRes (``model.`` prefix removed)."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise TraeumerError("checkpoint holds no state_dict")
    tensors = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if any(key.startswith("model.") for key in tensors):
        tensors = {key[len("model."):]: value for key, value in tensors.items() if key.startswith("model.")}
    return tensors


def load_short_chunk_res(path, device: str = "cpu") -> Encoder:
    path = Path(os.fspath(path))
    problem = path_problem(path)
    if problem == "no such file":
        raise TraeumerError(f"encoder checkpoint not found: {path}")
    if problem:         # a folder, a FIFO (opening it would wait forever), a device file
        raise TraeumerError(f"{path}: {problem}")
    try:
        check_zip_expansion(path)
    except CheckpointError as error:
        raise TraeumerError(f"{path}: {error}") from None
    tensors = short_chunk_state_dict(_load_checkpoint(path))
    network = ShortChunkCnnRes()
    expected = network.state_dict()
    for key in expected:  # older files may lack the batch-norm step counters
        if key.endswith("num_batches_tracked") and key not in tensors:
            tensors[key] = torch.zeros((), dtype=torch.long)
    missing = [key for key in expected if key not in tensors]
    if missing:
        raise TraeumerError(f"{path} is not a ShortChunkCNN_Res checkpoint "
                            f"(missing {len(missing)} tensors, e.g. {missing[0]!r})")
    wrong = [key for key in expected if tuple(tensors[key].shape) != tuple(expected[key].shape)]
    if wrong:
        raise TraeumerError(f"{path}: tensor {wrong[0]!r} has shape {tuple(tensors[wrong[0]].shape)}, "
                            f"expected {tuple(expected[wrong[0]].shape)} (ShortChunkCNN_Res, 50 tags)")
    fb = tensors.get("spec.mel_scale.fb")
    for key in list(expected) + (["spec.mel_scale.fb"] if fb is not None else []):
        value = tensors[key]
        want_float = key not in expected or expected[key].is_floating_point()
        if want_float and not value.is_floating_point():
            raise TraeumerError(f"{path}: tensor {key!r} is {str(value.dtype).replace('torch.', '')}, "
                                f"expected floating point")
        try:
            check_finite(value, f"tensor {key!r}")
        except CheckpointError as error:   # NaN weights would give NaN tags and embeddings
            raise TraeumerError(f"{path}: {error}") from None
    network.load_state_dict({key: tensors[key].float() if tensors[key].is_floating_point() else tensors[key]
                             for key in expected})

    filterbank = mel_filterbank_htk(SAMPLE_RATE, N_FFT, N_MELS, 0.0, 8000.0)
    stored = tensors.get("spec.mel_scale.fb")
    if stored is not None and tuple(stored.shape) == filterbank.shape:
        filterbank = stored.float().numpy()
    frontend = MelFrontEnd(SAMPLE_RATE, N_FFT, HOP, filterbank, "db")
    digest = file_digest(path)[:16]
    return Encoder(name="short_chunk_res", source_id=f"short_chunk_res:{digest}", network=network,
                   frontend=frontend, window_frames=INPUT_FRAMES, window_samples=INPUT_SAMPLES,
                   first_frame_offset=-(INPUT_SAMPLES // 2), feature_stride=128, feature_offset=0.0,
                   positions_per_window=2, context_frames=384, phases=8, embedding_dim=512,
                   device=device, reflect_window_edges=True)
