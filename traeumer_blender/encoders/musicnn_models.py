# SPDX-License-Identifier: GPL-3.0-or-later
"""PyTorch ports of musicnn's MagnaTagATune taggers (MTT_vgg, MTT_musicnn).

The weights come from the TF1 checkpoints inside the ``musicnn`` wheel (ISC license, Music
Technology Group, Universitat Pompeu Fabra; see LICENSES/musicnn-ISC.txt).  They are read with
our own checkpoint reader, converted once to PyTorch layout and cached by content digest.

Architecture facts (from musicnn's model description): input log-mel patches of 187 frames ×
96 mels; TF layers in NHWC with H = time, W = frequency; batch norm after the ReLU with
epsilon 1e-3; TF "same" padding puts the odd extra pad at the end.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TraeumerError
from ..paths import cache_dir, file_digest
from .base import Encoder, TaggingNetwork, WindowFeatures
from .frontend import MelFrontEnd, mel_filterbank_slaney
from .tf_checkpoint import read_tf_checkpoint

TF_BATCH_NORM_EPSILON = 1e-3
CONVERTER_VERSION = "1"  # bump when the converted layout changes, so caches are rebuilt
MUSICNN_PATCH_FRAMES = 187
SAMPLE_RATE, N_FFT, HOP, N_MELS = 16000, 512, 256, 96


class FrozenBatchNorm(torch.nn.Module):
    """Inference batch norm as ``x·scale + shift`` over dimension 1 (channels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("shift", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(view) + self.shift.view(view)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """In place (x must be a fresh intermediate)."""
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x.mul_(self.scale.view(view)).add_(self.shift.view(view))

    @staticmethod
    def state_from_tf(tensors: dict, prefix: str) -> dict[str, torch.Tensor]:
        gamma = tensors[f"{prefix}/gamma"].astype(np.float64)
        beta = tensors[f"{prefix}/beta"].astype(np.float64)
        mean = tensors[f"{prefix}/moving_mean"].astype(np.float64)
        variance = tensors[f"{prefix}/moving_variance"].astype(np.float64)
        scale = gamma / np.sqrt(variance + TF_BATCH_NORM_EPSILON)
        return {"scale": torch.from_numpy(scale.astype(np.float32)),
                "shift": torch.from_numpy((beta - mean * scale).astype(np.float32))}


def _conv2d_state(tensors: dict, name: str) -> dict[str, torch.Tensor]:
    """TF kernel [kh, kw, in, out] → torch [out, in, kh, kw]."""
    kernel = tensors[f"{name}/kernel"]
    return {"weight": torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))),
            "bias": torch.from_numpy(tensors[f"{name}/bias"].copy())}


def _dense_state(tensors: dict, name: str) -> dict[str, torch.Tensor]:
    """TF kernel [in, out] → torch [out, in]."""
    return {"weight": torch.from_numpy(np.ascontiguousarray(tensors[f"{name}/kernel"].T)),
            "bias": torch.from_numpy(tensors[f"{name}/bias"].copy())}


def _prefixed(prefix: str, state: dict) -> dict:
    return {f"{prefix}.{key}": value for key, value in state.items()}


class MttVgg(TaggingNetwork):
    """musicnn's "vgg": 5 × (3×3 conv 128, ReLU, BN, max-pool), dense 50.

    Last conv layer: 128 channels × 6 frequency bands × 11 time positions for a 187-frame patch
    (time stride 16 frames); the embedding keeps the bands: 768 dims.
    """

    channels = 128
    bands = 6

    def __init__(self):
        super().__init__()
        self.input_norm = FrozenBatchNorm(1)
        self.convs = torch.nn.ModuleList(
            [torch.nn.Conv2d(1 if i == 0 else self.channels, self.channels, 3, padding=1) for i in range(5)])
        self.norms = torch.nn.ModuleList([FrozenBatchNorm(self.channels) for _ in range(5)])
        self.output = torch.nn.Linear(2 * self.channels, 50)
        # pooling after convs 1..4 (TF "valid"): (time, frequency) windows (4, 1) then 2×2, all
        # with stride 2×2; see _first_conv_pooled_signed and _last_conv_inputs

    def last_conv(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """[B, T, 96] → [B, 128, T', 6] (after conv 5's ReLU and batch norm)."""
        pooled, _, _ = self._last_conv_inputs(spectrogram, [0], with_window_start=False)
        previous, same, following = _time_taps(pooled, self.convs[4].weight, self.convs[4].bias)
        return self._relu_norm_last(previous + same + following)

    def _last_conv_inputs(self, spectrogram: torch.Tensor, shifts: list[int], with_window_start: bool = True
                          ) -> tuple[torch.Tensor, torch.Tensor | None, list[tuple[int, int]]]:
        """Conv 5's input (pool 4's output) for the input started ``shift`` frames later.

        Returns ``(pooled, pooled_at_start, [(variant, positions to drop) per shift])``: the
        distinct variants stacked on the batch dimension ([variants·B, 128, T', 6]), and pool 4
        as at a window's start, where its first conv 4 row saw zero padding before it, as in
        a window cut out on its own (its last conv 4 row is never pooled).  A shift that is a
        multiple of a pooling stride only shifts that pooling's output, so the shifted inputs
        share every layer up to the first pooling whose grid they cross; only then is the
        pooling repeated at the other offset, as one more variant.  ``with_window_start=False``
        skips the second (None), for callers that run whole windows.
        """
        x = self.input_norm(spectrogram[:, None])                       # [B, 1, T, 96]
        batch = x.shape[0]
        layer = None                                                    # conv 1 is fused with pool 1
        pending = [(0, shift) for shift in shifts]                      # (variant, shift left)
        for i in range(4):
            if i > 0:
                layer = self._conv_signed(i, layer, with_window_start)  # conv 4: (plain, at start)
            stride = 2
            parts, index_of, moved = [], {}, []
            for variant, shift in pending:
                offset = shift % stride
                if (variant, offset) not in index_of:
                    index_of[variant, offset] = len(parts)
                    rows = slice(variant * batch, (variant + 1) * batch)
                    if i == 0:
                        parts.append(self._first_conv_pooled_signed(x, offset))
                    elif i < 3:
                        parts.append(F.max_pool2d(layer[rows, :, offset:], 2, 2))
                    elif with_window_start:
                        full, at_start = (v[rows, :, offset:] for v in layer)
                        parts.append((F.max_pool2d(full, 2, 2), _max_pool_window_start(at_start, full)))
                    else:
                        parts.append((F.max_pool2d(layer[rows, :, offset:], 2, 2), None))
                moved.append((index_of[variant, offset], shift // stride))
            pending = moved
            if i < 3:
                layer = self._relu_norm_signed(i, _stack_cropped(parts))
            else:
                pooled = self._relu_norm_signed(i, _stack_cropped([part[0] for part in parts]))
                pooled_at_start = (self._relu_norm_signed(i, _stack_cropped([part[1] for part in parts]))
                                   if with_window_start else None)
        return pooled, pooled_at_start, pending

    def _relu_norm_last(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[4].apply_(x.relu())

    # Layers 1-4 are conv → ReLU → BN → max-pool.  ReLU and BN are monotone per channel
    # (BN decreasing where its scale is negative), so they are applied after the pooling, on a
    # quarter of the values: a channel with a negative scale needs the minimum instead of the
    # maximum, which max-pooling gives when its conv output is negated ("signed" below).

    def _signs(self, i: int) -> torch.Tensor:
        return torch.where(self.norms[i].scale < 0, -1.0, 1.0)

    def _conv_signed(self, i: int, x: torch.Tensor, with_window_start: bool = False):
        """Signed conv i; conv 4 ``with_window_start`` also as at a window's start:
        ``(plain, without the previous row)``."""
        sign = self._signs(i)
        weight, bias = self.convs[i].weight * sign.view(-1, 1, 1, 1), self.convs[i].bias * sign
        if i == 3 and with_window_start:
            previous, same, following = _time_taps(x, weight, bias)
            at_start = same.add_(following)
            return at_start + previous, at_start
        return F.conv2d(x.contiguous(memory_format=torch.channels_last), weight, bias, padding=1)

    def _relu_norm_signed(self, i: int, pooled: torch.Tensor) -> torch.Tensor:
        """BN(ReLU(.)) of a max-pooled signed conv output (in place)."""
        view = (1, -1, 1, 1)
        return self.norms[i].apply_(pooled.mul_(self._signs(i).view(view)).relu_())

    def _first_conv_pooled_signed(self, x: torch.Tensor, offset: int, block: int = 256) -> torch.Tensor:
        """Pool 1 of signed conv 1 of [B, 1, T, 96] started ``offset`` frames later →
        [B, 128, T', 48] (channels-last memory).

        Pool 1 keeps every other frequency bin (window 1, stride 2), so only those bins are
        computed.  With one input channel the conv is a [9 → 128] matmul on 3×3 patches, which
        writes its output straight in the channels-last layout the next layers want.  The
        full-rate conv output is the network's largest tensor, so it is made and pooled
        ``block`` output rows at a time and never exists whole.
        """
        padded = F.pad(x[:, 0], (1, 1, 1, 1))                          # [B, T+2, 98]
        patches = padded.unfold(1, 3, 1).unfold(2, 3, 2)               # [B, T, 48, 3 time, 3 freq]
        batch, frames, bands = patches.shape[:3]
        sign = self._signs(0)
        weight = self.convs[0].weight.reshape(self.channels, 9).T * sign   # [9, 128], (time, freq) order
        bias = self.convs[0].bias * sign
        n_out = max(0, (frames - offset - 4) // 2 + 1)                 # pool 1: 4 frames, stride 2
        pooled = x.new_empty((batch, n_out, bands, self.channels))
        for first in range(0, n_out, block):
            count = min(block, n_out - first)
            frame = offset + 2 * first
            conv = torch.mm(patches[:, frame:frame + 2 * count + 2].reshape(-1, 9), weight).add_(bias)
            conv = conv.view(batch, 2 * count + 2, bands, self.channels)
            pairs = torch.maximum(conv[:, 0:-1:2], conv[:, 1::2])      # frames (2j, 2j+1)
            torch.maximum(pairs[:, :-1], pairs[:, 1:], out=pooled[:, first:first + count])
        return pooled.permute(0, 3, 1, 2)

    def conv_features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self._as_features(self.last_conv(spectrogram))

    def conv_features_shifted(self, spectrogram: torch.Tensor, shifts: list[int]) -> list[torch.Tensor]:
        return [window.inner for window in self.window_features_shifted(spectrogram, shifts)]

    def window_features_shifted(self, spectrogram: torch.Tensor, shifts: list[int]) -> list[WindowFeatures]:
        """Conv 5 features, also as a window cut out on its own sees its first two and last
        positions: its conv 5 pads the first and last with zeros, and its first pool 4
        position comes from a conv 4 row that was zero-padded too (the earlier layers' padding
        changes little: mean cosine ≥ 0.997 to exact windows of real music).
        """
        pooled, pooled_at_start, pending = self._last_conv_inputs(spectrogram, shifts)
        n_variants = pooled.shape[0]
        # what each position receives through each time tap, zero past the ends
        previous, same, following = _time_taps(torch.cat([pooled, pooled_at_start]),
                                               self.convs[4].weight, self.convs[4].bias)
        start_previous, start_same = previous[n_variants:], same[n_variants:]
        previous, same, following = previous[:n_variants], same[:n_variants], following[:n_variants]
        maps = (previous + same + following,                           # inner
                start_same + following,                                 # window's position 0 at p
                _shift_time(start_previous + same + following, -1),     # its position 1
                previous + same)                                        # window's last position at p
        maps = [self._as_features(self._relu_norm_last(y)) for y in maps]
        batch = spectrogram.shape[0]
        result = []
        for variant, drop in pending:
            inner, first, second, last = (y[variant * batch:(variant + 1) * batch, :, drop:] for y in maps)
            result.append(WindowFeatures(inner, (first, second), last))
        return result

    @staticmethod
    def _as_features(x: torch.Tensor) -> torch.Tensor:
        """[B, C, T', F'] → [B, C·F', T'] (bands kept as separate features)."""
        batch, channels, positions, bands = x.shape
        return x.permute(0, 1, 3, 2).reshape(batch, channels * bands, positions)

    def tag_logits(self, spectrogram: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.last_conv(spectrogram), 4, 4)             # [B, 128, 2, 1]
        flat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)            # TF flatten order (t, f, c)
        return self.output(flat)

    @classmethod
    def state_from_tf(cls, tensors: dict) -> dict:
        state = _prefixed("input_norm", FrozenBatchNorm.state_from_tf(tensors, "batch_normalization"))
        for i in range(5):
            state.update(_prefixed(f"convs.{i}", _conv2d_state(tensors, f"{i + 1}CNN")))
            state.update(_prefixed(f"norms.{i}", FrozenBatchNorm.state_from_tf(tensors, f"batch_normalization_{i + 1}")))
        state.update(_prefixed("output", _dense_state(tensors, "dense")))
        return state


def _time_taps(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A 3×3 "same" conv of [B, C, T, F] split by time tap: what each position receives from
    the previous row, from its own row (with the bias) and from the next row; zero past the
    ends, so the three sum to the plain conv.  Costs one conv: leaving out a tap gives the
    position as the first or last row of a window cut out on its own sees it."""
    out = weight.shape[0]
    taps = F.conv2d(x.contiguous(memory_format=torch.channels_last),
                    weight.permute(2, 0, 1, 3).reshape(3 * out, weight.shape[1], 1, 3), padding=(0, 1))
    previous, same, following = taps.split(out, dim=1)
    return _shift_time(previous, 1), same + bias.view(1, -1, 1, 1), _shift_time(following, -1)


def _shift_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """out[:, :, t] = x[:, :, t - steps], zero where that is outside x."""
    if steps > 0:
        return F.pad(x[:, :, :-steps], (0, 0, steps, 0))
    return F.pad(x[:, :, -steps:], (0, 0, 0, -steps))


def _stack_cropped(parts: list[torch.Tensor]) -> torch.Tensor:
    """Variants [B, C, T_k, F] stacked on the batch dimension, cut to the shortest T_k."""
    if len(parts) == 1:
        return parts[0]
    length = min(part.shape[2] for part in parts)
    return torch.cat([part[:, :, :length] for part in parts])


def _max_pool_window_start(at_start: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """2×2 max-pool (stride 2) whose first row of each pair comes from ``at_start``."""
    rows, bands = full.shape[2] // 2, full.shape[3] // 2
    pairs = torch.maximum(at_start[:, :, 0:2 * rows:2], full[:, :, 1:2 * rows:2])
    return torch.maximum(pairs[:, :, :, 0:2 * bands:2], pairs[:, :, :, 1:2 * bands:2])


def _pad_time_same(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """TF "same" padding along the time axis (dim 2 of [B, C, T, F]): extra pad at the end."""
    total = kernel - 1
    return F.pad(x, (0, 0, total // 2, total - total // 2))


class MttMusicnn(TaggingNetwork):
    """musicnn: musically motivated front end, 3 dense 1-D conv layers, global pooling, 2 dense.

    Time resolution is kept throughout (stride 1), so the song-wide pass is exact away from
    the window edges.  Embedding: the 753 mid-end features max-pooled over time.
    """

    timbral_filters, temporal_filters, midend_filters = 204, 51, 64
    timbral_kernels = [(7, 38), (7, 67)]      # (time, frequency), frequency "valid"
    temporal_kernels = [128, 64, 32]          # time, "same"

    def __init__(self):
        super().__init__()
        self.input_norm = FrozenBatchNorm(1)
        self.timbral = torch.nn.ModuleList([torch.nn.Conv2d(1, self.timbral_filters, k) for k in self.timbral_kernels])
        self.timbral_norms = torch.nn.ModuleList([FrozenBatchNorm(self.timbral_filters) for _ in self.timbral_kernels])
        self.temporal = torch.nn.ModuleList([torch.nn.Conv2d(1, self.temporal_filters, (k, 1)) for k in self.temporal_kernels])
        self.temporal_norms = torch.nn.ModuleList([FrozenBatchNorm(self.temporal_filters) for _ in self.temporal_kernels])
        frontend_channels = 2 * self.timbral_filters + 3 * self.temporal_filters    # 561
        self.midend = torch.nn.ModuleList([
            torch.nn.Conv1d(frontend_channels if i == 0 else self.midend_filters, self.midend_filters, 7)
            for i in range(3)])
        self.midend_norms = torch.nn.ModuleList([FrozenBatchNorm(self.midend_filters) for _ in range(3)])
        self.feature_dim = frontend_channels + 3 * self.midend_filters            # 753
        self.pool_norm = FrozenBatchNorm(2 * self.feature_dim)
        self.penultimate = torch.nn.Linear(2 * self.feature_dim, 200)
        self.penultimate_norm = FrozenBatchNorm(200)
        self.output = torch.nn.Linear(200, 50)

    def conv_features(self, spectrogram: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(spectrogram[:, None])                       # [B, 1, T, 96]
        branches = []
        padded = F.pad(x, (0, 0, 3, 3))
        for conv, norm in zip(self.timbral, self.timbral_norms):
            branches.append(self._conv_relu_norm_max_over_frequency(conv, norm, padded))   # [B, 204, T]
        for kernel, conv, norm in zip(self.temporal_kernels, self.temporal, self.temporal_norms):
            branches.append(self._conv_relu_norm_max_over_frequency(conv, norm, _pad_time_same(x, kernel)))
        frontend = torch.cat(branches, dim=1)                           # [B, 561, T]
        layers = [frontend]
        h = frontend
        for i, (conv, norm) in enumerate(zip(self.midend, self.midend_norms)):
            out = norm(F.relu(conv(F.pad(h, (3, 3)))))                  # [B, 64, T]
            h = out if i == 0 else out + h
            layers.append(h)
        return torch.cat(layers, dim=1)                                 # [B, 753, T]

    @staticmethod
    def _conv_relu_norm_max_over_frequency(conv, norm: FrozenBatchNorm, x: torch.Tensor) -> torch.Tensor:
        """max over frequency of BN(ReLU(conv(x))), with BN and ReLU applied after the max.

        Both are monotone per channel (BN decreasing where its scale is negative), so a
        channel with a negative scale takes the minimum instead: its conv is negated, maxed,
        and negated back.  Saves two passes over the large [B, C, T, F] tensor.
        """
        sign = torch.where(norm.scale < 0, -1.0, 1.0)
        z = F.conv2d(x, conv.weight * sign.view(-1, 1, 1, 1), conv.bias * sign)
        extreme = z.amax(dim=3) * sign.view(1, -1, 1)                   # [B, C, T]
        return norm.apply_(extreme.relu_())

    def tag_logits(self, spectrogram: torch.Tensor) -> torch.Tensor:
        features = self.conv_features(spectrogram)
        pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2)  # TF order: (c, {max, mean})
        x = self.pool_norm(pooled.reshape(features.shape[0], -1))
        x = self.penultimate_norm(F.relu(self.penultimate(x)))
        return self.output(x)

    @classmethod
    def state_from_tf(cls, tensors: dict) -> dict:
        state = _prefixed("input_norm", FrozenBatchNorm.state_from_tf(tensors, "batch_normalization"))
        # TF names follow creation order: timbral 74, 77, temporal 128, 64, 32, mid-end 1..3
        for i in range(2):
            state.update(_prefixed(f"timbral.{i}", _conv2d_state(tensors, "conv2d" if i == 0 else f"conv2d_{i}")))
            state.update(_prefixed(f"timbral_norms.{i}", FrozenBatchNorm.state_from_tf(tensors, f"batch_normalization_{i + 1}")))
        for i in range(3):
            state.update(_prefixed(f"temporal.{i}", _conv2d_state(tensors, f"conv2d_{i + 2}")))
            state.update(_prefixed(f"temporal_norms.{i}", FrozenBatchNorm.state_from_tf(tensors, f"batch_normalization_{i + 3}")))
        for i in range(3):
            conv = _conv2d_state(tensors, f"conv2d_{i + 5}")             # [out, 1, 7, in]
            state[f"midend.{i}.weight"] = conv["weight"][:, 0].permute(0, 2, 1).contiguous()  # [out, in, 7]
            state[f"midend.{i}.bias"] = conv["bias"]
            state.update(_prefixed(f"midend_norms.{i}", FrozenBatchNorm.state_from_tf(tensors, f"batch_normalization_{i + 6}")))
        state.update(_prefixed("pool_norm", FrozenBatchNorm.state_from_tf(tensors, "batch_normalization_9")))
        state.update(_prefixed("penultimate", _dense_state(tensors, "dense")))
        state.update(_prefixed("penultimate_norm", FrozenBatchNorm.state_from_tf(tensors, "batch_normalization_10")))
        state.update(_prefixed("output", _dense_state(tensors, "dense_1")))
        return state


_ARCHITECTURES = {"mtt_vgg": ("MTT_vgg", MttVgg), "mtt_musicnn": ("MTT_musicnn", MttMusicnn)}


def musicnn_checkpoint_folder(model_folder: str) -> Path:
    """Folder of a TF checkpoint inside the installed musicnn wheel (found without importing it)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise TraeumerError("the musicnn package (its weights) is not installed: "
                            "pip install --no-deps musicnn==0.1.0")
    folder = Path(list(spec.submodule_search_locations)[0]) / model_folder
    if not (folder / ".index").is_file():
        raise TraeumerError(f"musicnn's {model_folder} checkpoint is missing from {folder}")
    return folder


def load_musicnn_network(name: str) -> tuple[TaggingNetwork, str]:
    """Build the network ``name`` with converted weights (cached); return it and its digest."""
    model_folder, architecture = _ARCHITECTURES[name]
    folder = musicnn_checkpoint_folder(model_folder)
    digest = hashlib.sha256()
    for part in (".index", ".data-00000-of-00001"):
        digest.update(file_digest(folder / part).encode())
    digest.update(f"converter {CONVERTER_VERSION} {name}".encode())
    content_id = digest.hexdigest()[:16]

    cached = cache_dir("encoders") / f"{name}-{content_id}.pt"
    network = architecture()
    state = None
    if cached.is_file():
        try:
            state = torch.load(cached, map_location="cpu", weights_only=True)
            if _first_not_finite(state) is not None:
                raise ValueError("cached weights are not finite")
            network.load_state_dict(state)
        except Exception:  # a damaged or stale cache file is rebuilt, never trusted
            state = None
    if state is None:
        tensors = read_tf_checkpoint(str(folder) + "/")
        bad = _first_not_finite(tensors)
        if bad is not None:
            raise TraeumerError(f"musicnn checkpoint {folder}: tensor {bad!r} holds NaN or infinite values "
                                f"(a damaged installation: reinstall musicnn)")
        try:
            state = architecture.state_from_tf(tensors)
        except KeyError as missing:
            raise TraeumerError(f"musicnn checkpoint {folder} lacks tensor {missing}") from None
        bad = _first_not_finite(state)
        if bad is not None:   # e.g. a negative moving variance: its batch norm has no real scale
            raise TraeumerError(f"musicnn checkpoint {folder}: converted tensor {bad!r} is not finite "
                                f"(a damaged installation: reinstall musicnn)")
        network.load_state_dict(state)
        temporary = cached.with_suffix(f".tmp{id(state)}")
        torch.save(state, temporary)
        temporary.replace(cached)
    return network, content_id


def _first_not_finite(tensors: dict):
    """Name of the first floating-point tensor or array holding NaN/Inf (None if all are finite)."""
    for key, value in tensors.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
            return key
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return key
    return None


def make_musicnn_encoder(name: str, device: str = "cpu") -> Encoder:
    network, content_id = load_musicnn_network(name)
    frontend = MelFrontEnd(SAMPLE_RATE, N_FFT, HOP, mel_filterbank_slaney(SAMPLE_RATE, N_FFT, N_MELS), "log10_10000")
    patch = MUSICNN_PATCH_FRAMES
    common = dict(name=name, source_id=f"{name}:{content_id}", network=network, frontend=frontend,
                  window_frames=patch, window_samples=patch * HOP,
                  first_frame_offset=-(patch // 2) * HOP, device=device)
    if name == "mtt_vgg":
        # pool4 position p covers frames 16p … 16p+29: centre 16p + 14.5; 11 positions per patch
        return Encoder(**common, feature_stride=16, feature_offset=14.5, positions_per_window=11,
                       context_frames=64, phases=8, embedding_dim=MttVgg.channels * MttVgg.bands)
    return Encoder(**common, feature_stride=1, feature_offset=0.0, positions_per_window=patch,
                   context_frames=80, phases=1, embedding_dim=network.feature_dim)
