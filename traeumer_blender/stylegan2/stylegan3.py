# SPDX-License-Identifier: GPL-3.0-or-later
"""StyleGAN3 (alias-free, configs T and R) synthesis in plain PyTorch, fp32, no custom ops.

Written from the paper and the format facts (docs FACTS.md section 7); no NVIDIA code.

    ws[:, 0]      -> SynthesisInput: Fourier features (freqs, phases, transform; the affine of
                     w rotates/translates them), band-limited amplitudes, a C x C linear map
    ws[:, 1 + i]  -> layer i: modulated conv (demodulated; input gain magnitude_ema^-1/2), bias,
                     filtered leaky ReLU (up-sample with up_filter, pad, lrelu*sqrt(2), clamp,
                     down_filter, down-sample); the last layer is ToRGB (1x1, not demodulated,
                     linear + clamp); the output is multiplied by output_scale.

The filtered leaky ReLU runs separably and polyphase (``filtered_lrelu``): the up-sampling FIR
is split into ``up`` phase filters applied to the input (no zero-stuffed image, no multiplies by
zeros) and the down-sampling FIR is a strided convolution (only the kept samples are
computed); -R's 2-D radial down filters run as one strided 2-D convolution. This is the same
arithmetic as ``filtered_lrelu_reference`` (full-size zero-stuffed up-sampling, activation,
full-size filtering, then decimation) up to float rounding.

Layer resolutions (``layer_resolutions``, used to name the coarse/middle/fine groups): a w layer
is given the StyleGAN2 block resolution whose band limit matches the layer's output cutoff
frequency, ``2 ** round(log2(2 * cutoff))`` clipped to [4, R] (the input layer: its bandwidth).
A 1024 px config-T model gives 4, 4, 8, 8, 16, 32, 32, 64, 128, 128, 256, 512, 512, 1024, 1024,
1024: coarse/middle/fine keep the paper's meaning (coarse = low frequencies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TraeumerError
from . import untrusted
from .generator import Generator, _as_tensor, checked_camera
from .network import Dense, MappingNetwork
from .untrusted import CheckpointError, clean_text, finite_number, whole_number

SQRT2 = math.sqrt(2.0)
MAX_TAPS = 256          # filter length (NVIDIA's: filter_size x factor, 6 x 2..4)
MAX_FACTOR = 16         # up/down-sampling factors
MAX_LAYERS = 64


# ---------------------------------------------------------------------------------------------
# configuration

@dataclass
class LayerSpec:
    name: str
    in_channels: int
    out_channels: int
    in_size: int
    out_size: int
    kernel: int
    up: int
    down: int
    padding: List[int]          # [x0, x1, y0, y1] in the up-sampled domain (negative = crop)
    up_taps: int                # 1 = no filter
    down_taps: int
    down_radial: bool
    is_torgb: bool
    clamp: Optional[float]
    cutoff: float               # output cutoff frequency (for layer_resolutions)


@dataclass
class StyleGAN3Config:
    variant: str                # "stylegan3-t" or "stylegan3-r"
    resolution: int
    z_dim: int
    w_dim: int
    c_dim: int
    mapping_dims: List[int]
    mapping_lr_mul: float
    label_mode: str             # "none" or "embed"
    embed_dim: int
    input_channels: int
    input_size: int
    input_sampling_rate: float
    input_bandwidth: float
    layers: List[LayerSpec] = field(default_factory=list)
    output_scale: float = 0.25
    normalize_z: bool = True

    @property
    def n_latent(self) -> int:
        return len(self.layers) + 1

    def output_width(self, input_width: int) -> int:
        """Columns of the output for a Fourier-feature grid ``input_width`` columns wide (each
        layer: full conv, up-sampling, padding, both filters, decimation)."""
        s = int(input_width)
        for spec in self.layers:
            length = ((s + spec.kernel - 1) * spec.up + spec.padding[0] + spec.padding[1]
                      - (spec.up_taps - 1) - (spec.down_taps - 1))
            s = (length - 1) // spec.down + 1
        return s

    def input_width_for(self, width: int) -> int:
        """The narrowest grid (as many columns more or fewer than ``input_size`` on each side)
        whose output covers a frame ``width`` px wide."""
        columns = self.input_size
        while columns > 2 and self.output_width(columns - 2) >= width:
            columns -= 2
        while self.output_width(columns) < width:
            columns += 2
        return columns

    def layer_resolutions(self) -> List[int]:
        def res(cutoff):
            r = 2 ** int(round(math.log2(max(2.0 * cutoff, 1e-6))))
            return int(min(max(r, 4), self.resolution))
        return [res(self.input_bandwidth)] + [res(spec.cutoff) for spec in self.layers]


def canonical_shapes(cfg: StyleGAN3Config) -> Dict[str, tuple]:
    """Every tensor of the network this package builds, by name, with its shape."""
    shapes = {}
    dims = cfg.mapping_dims
    for i in range(len(dims) - 1):
        shapes[f"mapping.fc{i}.weight"] = (dims[i + 1], dims[i])
        shapes[f"mapping.fc{i}.bias"] = (dims[i + 1],)
    if cfg.label_mode == "embed":
        shapes["mapping.embed.weight"] = (cfg.embed_dim, cfg.c_dim)
        shapes["mapping.embed.bias"] = (cfg.embed_dim,)
    shapes["mapping.w_avg"] = (cfg.w_dim,)
    c = cfg.input_channels
    shapes.update({"synthesis.input.weight": (c, c), "synthesis.input.affine.weight": (4, cfg.w_dim),
                   "synthesis.input.affine.bias": (4,), "synthesis.input.transform": (3, 3),
                   "synthesis.input.freqs": (c, 2), "synthesis.input.phases": (c,)})
    for i, s in enumerate(cfg.layers):
        p = f"synthesis.layers.{i}"
        shapes[f"{p}.weight"] = (s.out_channels, s.in_channels, s.kernel, s.kernel)
        shapes[f"{p}.bias"] = (s.out_channels,)
        shapes[f"{p}.affine.weight"] = (s.in_channels, cfg.w_dim)
        shapes[f"{p}.affine.bias"] = (s.in_channels,)
        shapes[f"{p}.magnitude_ema"] = ()
        if s.up_taps > 1:
            shapes[f"{p}.up_filter"] = (s.up_taps,)
        if s.down_taps > 1:
            shapes[f"{p}.down_filter"] = (s.down_taps, s.down_taps) if s.down_radial else (s.down_taps,)
    return shapes


# ---------------------------------------------------------------------------------------------
# filtered leaky ReLU

def _act(x, gain, slope, clamp):
    if slope != 1.0:
        x = F.leaky_relu(x, slope)
    if gain != 1.0:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def _upfirdn_reference(x, f, up, down, padding, gain):
    """Zero-stuff by ``up``, pad (negative crops), convolve with ``f`` (1-D separable or 2-D), decimate."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, list(padding))
    if f is None:
        f = x.new_ones(1, 1)
    if f.ndim == 1:
        f2 = f[:, None] * f[None, :]
    else:
        f2 = f
    f2 = (f2 * gain).flip([0, 1])   # a true convolution
    x = F.conv2d(x.reshape(n * c, 1, *x.shape[2:]), f2[None, None]).reshape(n, c, *[d - k + 1 for d, k in zip(x.shape[2:], f2.shape)])
    return x[:, :, ::down, ::down]


def filtered_lrelu_reference(x, fu, fd, b, up=1, down=1, padding=(0, 0, 0, 0), gain=SQRT2, slope=0.2, clamp=None):
    """The straightforward form: bias, full-size up-sample + FIR, activation, full FIR, decimate."""
    x = x + b.reshape(1, -1, 1, 1)
    x = _upfirdn_reference(x, fu, up, 1, padding, up * up)
    x = _act(x, gain, slope, clamp)
    return _upfirdn_reference(x, fd, 1, down, (0, 0, 0, 0), 1.0)


def _phase_bank(f: torch.Tensor, up: int, p0: int):
    """Split a zero-stuffed up-sampling FIR into ``up`` phase filters on the original samples.

    Output sample j = up*q + r of (zero-stuff, pad p0 in front, convolve with f) is
    sum_t bank[r, t] * x[q + lo + t]. Returns (bank [up, W], lo).
    """
    g = f.flip(0)                       # convolution = correlation with the flipped filter
    taps = []
    for r in range(up):
        kr = (p0 - r) % up              # first tap of g that lands on an original sample
        off = (r + kr - p0) // up
        taps.append((off, g[kr::up]))
    lo = min(off for off, t in taps)
    width = max(off + t.shape[0] for off, t in taps) - lo
    bank = f.new_zeros(up, max(width, 1))
    for r, (off, t) in enumerate(taps):
        bank[r, off - lo: off - lo + t.shape[0]] = t
    return bank, lo


def _up_axis(x, f, up, p0, p1, dim):
    """Up-sample along one axis (dim 2 or 3) by ``up`` with FIR ``f`` (gain ``up``) and padding p0/p1."""
    length = x.shape[dim]
    k = f.shape[0]
    out_len = length * up + p0 + p1 - k + 1
    bank, lo = _phase_bank(f * up, up, p0)
    width = bank.shape[1]
    q = -(-out_len // up)               # samples per phase
    left, right = -lo, (q - 1 + lo + width) - length    # pad x so indices lo .. q-1+lo+width-1 exist
    n, c = x.shape[:2]
    if dim == 3:
        xp = F.pad(x, [left, right, 0, 0])
        wt = bank.reshape(up, 1, 1, width).repeat(c, 1, 1, 1)
        y = F.conv2d(xp, wt, groups=c)                                  # [n, c*up, h, q]
        y = y.reshape(n, c, up, x.shape[2], q).permute(0, 1, 3, 4, 2).reshape(n, c, x.shape[2], q * up)
        return y[..., :out_len]
    xp = F.pad(x, [0, 0, left, right])
    wt = bank.reshape(up, 1, width, 1).repeat(c, 1, 1, 1)
    y = F.conv2d(xp, wt, groups=c)                                      # [n, c*up, q, w]
    y = y.reshape(n, c, up, q, x.shape[3]).permute(0, 1, 3, 2, 4).reshape(n, c, q * up, x.shape[3])
    return y[:, :, :out_len]


def _act_(x, gain, slope, clamp):
    """``_act`` in place on a tensor this module made (saves two full-size temporaries)."""
    if slope != 1.0:
        x = F.leaky_relu_(x, slope)
    if gain != 1.0:
        x = x.mul_(gain)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp)
    return x


def _pad_or_crop(x, padding):
    return F.pad(x, list(padding)) if any(padding) else x


def filtered_lrelu(x, fu, fd, b, up=1, down=1, padding=(0, 0, 0, 0), gain=SQRT2, slope=0.2, clamp=None):
    """Same result as :func:`filtered_lrelu_reference`, separable and polyphase."""
    x = x + b.reshape(1, -1, 1, 1)
    px0, px1, py0, py1 = (int(p) for p in padding)
    if up > 1 and fu is not None:
        x = _up_axis(x, fu, up, px0, px1, 3)
        x = _up_axis(x, fu, up, py0, py1, 2)
    elif up > 1:                        # zero-stuffing without a filter: no shortcut needed
        x = _upfirdn_reference(x, None, up, 1, (px0, px1, py0, py1), up * up)
    else:
        x = _pad_or_crop(x, (px0, px1, py0, py1))
    x = _act_(x, gain, slope, clamp)
    n, c = x.shape[:2]
    if fd is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    if fd.ndim == 2:
        wt = fd.flip([0, 1])[None, None].repeat(c, 1, 1, 1)
        return F.conv2d(x, wt, stride=down, groups=c)
    g = fd.flip(0)
    x = F.conv2d(x, g.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), stride=(1, down), groups=c)
    return F.conv2d(x, g.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), stride=(down, 1), groups=c)


# ---------------------------------------------------------------------------------------------
# layers

def camera_matrices(camera) -> torch.Tensor:
    """[N, 3] cameras (x, y, rotation) -> [N, 3, 3] maps from output to feature coordinates.

    x, y: where the frame's centre looks, in frame heights (the input grid's unit: the final
    image is one unit tall), x to the right, y up; the picture slides the other way (x = 1/R
    moves it one pixel left). rotation: the camera's roll in degrees, counter-clockwise (the
    picture turns clockwise). Pixel p then shows what the still camera shows at
    ``[[c, s, x], [-s, c, -y]] @ p`` (grid rows grow downward, hence the signs). The angle is
    reduced modulo 360 before it is used, so 360 degrees is exactly the still camera.
    """
    cam = torch.as_tensor(camera, dtype=torch.float64).reshape(-1, 3)
    angle = torch.remainder(cam[:, 2], 360.0) * (math.pi / 180.0)
    c, s = torch.cos(angle), torch.sin(angle)
    m = torch.eye(3, dtype=torch.float64).repeat(cam.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = c, s, cam[:, 0]
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = -s, c, -cam[:, 1]
    return m


class SynthesisInput(nn.Module):
    """w [N, w_dim] -> Fourier features [N, C, size, size], rotated/translated by affine(w)."""

    def __init__(self, cfg: StyleGAN3Config):
        super().__init__()
        c = cfg.input_channels
        self.channels, self.size = c, cfg.input_size
        self.sampling_rate, self.bandwidth = float(cfg.input_sampling_rate), float(cfg.input_bandwidth)
        self.affine = Dense(cfg.w_dim, 4)
        self.weight = nn.Parameter(torch.zeros(c, c))
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", torch.zeros(c, 2))
        self.register_buffer("phases", torch.zeros(c))

    def forward(self, w: torch.Tensor, width: Optional[int] = None,
                camera: Optional[torch.Tensor] = None) -> torch.Tensor:
        """width: columns of a widened grid (centred like the square one); None: ``size``.
        ``camera`` [N, 3] (x, y, rotation: ``camera_matrices``) per sample, or None (still)."""
        n = w.shape[0]
        t = self.affine(w)                                  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, dtype=w.dtype, device=w.device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, dtype=w.dtype, device=w.device).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform[None]              # rotate, translate, then the user's transform
        if camera is not None:                              # ... which the camera moves (acts first)
            m = m @ camera_matrices(camera).to(device=w.device, dtype=w.dtype)
        freqs = self.freqs[None] @ m[:, :2, :2]                              # [N, C, 2]
        phases = self.phases[None] + (self.freqs[None] @ m[:, :2, 2:])[..., 0]   # [N, C]
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # sample centres of a size x size grid, in units of the sampling rate, centred on 0
        grid = (torch.arange(self.size, dtype=w.dtype, device=w.device) + 0.5 - self.size / 2) / self.sampling_rate
        columns = self.size if width is None else int(width)
        grid_x = grid if width is None else \
            (torch.arange(columns, dtype=w.dtype, device=w.device) + 0.5 - columns / 2) / self.sampling_rate
        arg = (freqs[:, :, 0, None, None] * grid_x[None, None, None, :]
               + freqs[:, :, 1, None, None] * grid[None, None, :, None] + phases[:, :, None, None])
        x = torch.sin(arg * (2 * math.pi)) * amp[:, :, None, None]          # [N, C, H, W]
        weight = self.weight / math.sqrt(self.channels)
        return torch.einsum("nchw,dc->ndhw", x, weight)


def modulated_conv_reference(x, weight, styles, demodulate, input_gain, padding):
    """Per-sample modulated weights, one grouped conv (the classic formulation)."""
    n = x.shape[0]
    w = weight
    s = styles
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean(1, keepdim=True).rsqrt()
    w = w[None] * s[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum([2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    w = w * input_gain
    y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, *w.shape[2:]), padding=padding, groups=n)
    return y.reshape(n, -1, *y.shape[2:])


def modulated_conv(x, weight, styles, demodulate, input_gain, padding):
    """Same as the reference: styles scale the input, one shared-weight conv, demodulation scales the output."""
    w = weight
    s = styles
    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean(1, keepdim=True).rsqrt()
    y = F.conv2d(x * (s * input_gain)[:, :, None, None], w, padding=padding)
    if demodulate:
        d = (s.square() @ w.square().sum([2, 3]).t() + 1e-8).rsqrt()    # [N, out]
        y = y * d[:, :, None, None]
    return y


class SynthesisLayer(nn.Module):
    """x [N, in, s_in, s_in], w -> [N, out, s_out, s_out] (a ToRGB layer when spec.is_torgb)."""

    def __init__(self, spec: LayerSpec, w_dim: int):
        super().__init__()
        self.spec = spec
        self.affine = Dense(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.zeros(spec.out_channels, spec.in_channels, spec.kernel, spec.kernel))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.register_buffer("up_filter", torch.zeros(spec.up_taps) if spec.up_taps > 1 else None)
        fd = None
        if spec.down_taps > 1:
            fd = torch.zeros(spec.down_taps, spec.down_taps) if spec.down_radial else torch.zeros(spec.down_taps)
        self.register_buffer("down_filter", fd)
        self.reference = False

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.spec
        styles = self.affine(w)
        if s.is_torgb:
            styles = styles * (1.0 / math.sqrt(s.in_channels * s.kernel ** 2))
        conv = modulated_conv_reference if self.reference else modulated_conv
        x = conv(x, self.weight, styles, not s.is_torgb, self.magnitude_ema.rsqrt(), s.kernel - 1)
        act = filtered_lrelu_reference if self.reference else filtered_lrelu
        return act(x, self.up_filter, self.down_filter, self.bias, s.up, s.down, s.padding,
                   1.0 if s.is_torgb else SQRT2, 1.0 if s.is_torgb else 0.2, s.clamp)


class SynthesisNetwork3(nn.Module):
    def __init__(self, cfg: StyleGAN3Config):
        super().__init__()
        self.cfg = cfg
        self.input = SynthesisInput(cfg)
        self.layers = nn.ModuleList(SynthesisLayer(spec, cfg.w_dim) for spec in cfg.layers)

    def set_reference(self, on: bool) -> None:
        for layer in self.layers:
            layer.reference = bool(on)

    def forward(self, ws: torch.Tensor, input_width: Optional[int] = None,
                camera: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.input(ws[:, 0], input_width, camera)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i + 1])
        return x * self.cfg.output_scale


class Net3(nn.Module):
    def __init__(self, cfg: StyleGAN3Config):
        super().__init__()
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork3(cfg)


# ---------------------------------------------------------------------------------------------
# reading NVIDIA's stylegan3 pickles (training.networks_stylegan3 in the ADA container)

def _attr(state: dict, key: str, where: str):
    if key not in state:
        raise CheckpointError(f"StyleGAN3 file: {where} lacks attribute {key!r} (not a layout this loader knows)")
    return state[key]


def _size(value, where: str) -> int:
    """An int, or NVIDIA's [width, height] array with equal entries (square layers only)."""
    if isinstance(value, np.ndarray):
        if value.shape != (2,) or value.dtype.kind not in "iuf":
            raise CheckpointError(f"{where} is an array of shape {list(value.shape)}, expected [width, height]")
        if value[0] != value[1]:
            raise CheckpointError(f"{where} is {value.tolist()}: non-square StyleGAN3 layers are not supported")
        value = value[0].item()
    return whole_number(value, where, 1, untrusted.MAX_RESOLUTION + 1024)


def _number(value, where: str, positive=True) -> float:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    return finite_number(value, where, positive=positive)


def _flag(value, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise CheckpointError(f"{where} is {clean_text(repr(value), 40)}, expected true or false")


def _check_filter(t: torch.Tensor, where: str):
    total = float(t.sum())
    if not 0.5 < total < 2.0:
        raise CheckpointError(f"{where}: low-pass filter taps sum to {total:.4g}, expected about 1")


def convert_nvidia_stylegan3(tensors: dict, attrs: dict, budget=None):
    """(config, canonical tensors, info) from a flattened stylegan3 generator (strict)."""
    from .formats import Source, nvidia_mapping_layout, take_nvidia_mapping  # shared with StyleGAN2

    for name, (cls, st) in attrs.items():
        act = st.get("activation")
        if name.startswith("mapping.fc") and act is not None and act != "lrelu":
            raise CheckpointError(f"{name}: activation {clean_text(repr(act), 40)} (only lrelu is supported)")
    syn_cls, syn = attrs.get("synthesis", (None, {}))
    names = _attr(syn, "layer_names", "synthesis")
    if not isinstance(names, (list, tuple)) or not 2 <= len(names) <= MAX_LAYERS or \
            not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise CheckpointError(f"synthesis.layer_names is {clean_text(repr(names), 60)}, expected a list of layer names")
    src = Source(tensors, "generator", budget)
    # mapping (as StyleGAN2/ADA)
    n_fc, dims, w_dim, z_dim, c_dim, embed, label_mode = nvidia_mapping_layout(src)
    lr_mul = _number(attrs.get("mapping.fc0", (None, {}))[1].get("bias_gain", 0.01), "mapping.fc0.bias_gain")
    resolution = whole_number(_attr(syn, "img_resolution", "synthesis"), "synthesis.img_resolution",
                              4, untrusted.MAX_RESOLUTION)
    img_ch = whole_number(_attr(syn, "img_channels", "synthesis"), "synthesis.img_channels", 1, 64)
    if img_ch != 3:
        raise CheckpointError(f"{img_ch} output channels; only RGB generators are supported")
    output_scale = _number(_attr(syn, "output_scale", "synthesis"), "synthesis.output_scale")
    num_ws = whole_number(_attr(syn, "num_ws", "synthesis"), "synthesis.num_ws", 2, MAX_LAYERS + 1)
    if num_ws != len(names) + 1:
        raise CheckpointError(f"synthesis.num_ws is {num_ws}, but {len(names)} layers need {len(names) + 1}")
    # input
    _, inp = attrs.get("synthesis.input", (None, None))
    if inp is None:
        raise CheckpointError("StyleGAN3 generator without synthesis.input")
    c_in = whole_number(_attr(inp, "channels", "synthesis.input"), "synthesis.input.channels", 1, untrusted.MAX_FEATURES)
    in_size = _size(_attr(inp, "size", "synthesis.input"), "synthesis.input.size")
    in_rate = _number(_attr(inp, "sampling_rate", "synthesis.input"), "synthesis.input.sampling_rate")
    bandwidth = _number(_attr(inp, "bandwidth", "synthesis.input"), "synthesis.input.bandwidth")
    if not bandwidth < in_rate / 2:
        raise CheckpointError(f"synthesis.input: bandwidth {bandwidth:g} is not below half the sampling rate {in_rate:g}")
    # layers
    specs, kernels, radial_any = [], set(), False
    prev_ch, prev_size = c_in, in_size
    for i, name in enumerate(names):
        where = f"synthesis.{name}"
        if where not in attrs:
            raise CheckpointError(f"{where} is named in layer_names but missing")
        _, st = attrs[where]
        is_torgb = _flag(_attr(st, "is_torgb", where), f"{where}.is_torgb")
        if is_torgb != (i == len(names) - 1):
            raise CheckpointError(f"{where}: ToRGB must be the last layer and only the last")
        cin = whole_number(_attr(st, "in_channels", where), f"{where}.in_channels", 1, untrusted.MAX_FEATURES)
        cout = whole_number(_attr(st, "out_channels", where), f"{where}.out_channels", 1, untrusted.MAX_FEATURES)
        s_in = _size(_attr(st, "in_size", where), f"{where}.in_size")
        s_out = _size(_attr(st, "out_size", where), f"{where}.out_size")
        k = whole_number(_attr(st, "conv_kernel", where), f"{where}.conv_kernel", 1, 7)
        up = whole_number(_attr(st, "up_factor", where), f"{where}.up_factor", 1, MAX_FACTOR)
        down = whole_number(_attr(st, "down_factor", where), f"{where}.down_factor", 1, MAX_FACTOR)
        pad = _attr(st, "padding", where)
        if not isinstance(pad, (list, tuple)) or len(pad) != 4:
            raise CheckpointError(f"{where}.padding is {clean_text(repr(pad), 60)}, expected [x0, x1, y0, y1]")
        pad = [whole_number(p, f"{where}.padding", -100_000, 100_000) for p in pad]
        if any(abs(p) > 4 * MAX_TAPS + 16 * (s_in + k) for p in pad):
            raise CheckpointError(f"{where}.padding {pad} is out of range")
        clamp = st.get("conv_clamp")
        clamp = None if clamp is None else _number(clamp, f"{where}.conv_clamp")
        cutoff = _number(_attr(st, "out_cutoff", where), f"{where}.out_cutoff")
        if cin != prev_ch or s_in != prev_size:
            raise CheckpointError(f"{where} takes {cin} channels at {s_in} px, the layer before gives {prev_ch} at {prev_size}")
        ushape = src.shape(f"{where}.up_filter", 1) if src.has(f"{where}.up_filter") else (1,)
        dshape = tuple(src.t[f"{where}.down_filter"].shape) if src.has(f"{where}.down_filter") else (1,)
        if len(dshape) not in (1, 2) or (len(dshape) == 2 and dshape[0] != dshape[1]):
            raise CheckpointError(f"{where}.down_filter is {list(dshape)}, expected [taps] or [taps, taps]")
        up_taps, down_taps, radial = ushape[0], dshape[0], len(dshape) == 2
        if not (1 <= up_taps <= MAX_TAPS and 1 <= down_taps <= MAX_TAPS):
            raise CheckpointError(f"{where}: filters of {up_taps}/{down_taps} taps (1..{MAX_TAPS} supported)")
        if (up > 1) != (up_taps > 1) or (down > 1) != (down_taps > 1):
            raise CheckpointError(f"{where}: up/down factors {up}/{down} do not fit filters of {up_taps}/{down_taps} taps")
        if is_torgb and (up != 1 or down != 1 or k != 1):
            raise CheckpointError(f"{where}: a ToRGB layer that resamples or has a {k}x{k} kernel")
        # the sizes must chain: conv (full, k-1 pad), up-sample, pad, filters, decimate
        length = (s_in + k - 1) * up + pad[0] + pad[1] - (up_taps - 1) - (down_taps - 1)
        length_y = (s_in + k - 1) * up + pad[2] + pad[3] - (up_taps - 1) - (down_taps - 1)
        if length < 1 or length_y != length or (length - 1) // down + 1 != s_out:
            raise CheckpointError(f"{where}: padding {pad} does not turn {s_in} px into {s_out} px")
        if not is_torgb:
            kernels.add(k)
        radial_any |= radial
        specs.append(LayerSpec(name=name, in_channels=cin, out_channels=cout, in_size=s_in, out_size=s_out,
                               kernel=k, up=up, down=down, padding=pad, up_taps=up_taps, down_taps=down_taps,
                               down_radial=radial, is_torgb=is_torgb, clamp=clamp, cutoff=cutoff))
        prev_ch, prev_size = cout, s_out
    if prev_size != resolution or prev_ch != 3:
        raise CheckpointError(f"the last layer gives {prev_ch} channels at {prev_size} px, expected 3 at {resolution}")
    if kernels == {3} and not radial_any:
        variant = "stylegan3-t"
    elif kernels == {1} and radial_any:
        variant = "stylegan3-r"
    else:
        raise CheckpointError(f"unknown StyleGAN3 variant (conv kernels {sorted(kernels)}, "
                              f"{'radial' if radial_any else 'separable'} filters; only -T and -R are supported)")
    cfg = StyleGAN3Config(variant=variant, resolution=resolution, z_dim=z_dim, w_dim=w_dim, c_dim=int(c_dim),
                          mapping_dims=dims, mapping_lr_mul=lr_mul, label_mode=label_mode, embed_dim=int(embed),
                          input_channels=c_in, input_size=in_size, input_sampling_rate=in_rate,
                          input_bandwidth=bandwidth, layers=specs, output_scale=output_scale)
    check_config(cfg)
    out = {}
    take_nvidia_mapping(src, dims, c_dim, embed, out)
    out["mapping.w_avg"] = src.take("mapping.w_avg", (w_dim,))
    shapes = canonical_shapes(cfg)
    for key in ("weight", "affine.weight", "affine.bias", "transform", "freqs", "phases"):
        out[f"synthesis.input.{key}"] = src.take(f"synthesis.input.{key}", shapes[f"synthesis.input.{key}"])
    if abs(float(out["synthesis.input.transform"][2, 2]) - 1) > 1e-6 or out["synthesis.input.transform"][2, :2].abs().max() > 1e-6:
        raise CheckpointError("synthesis.input.transform is not an affine 3x3 matrix (last row 0, 0, 1)")
    if float(out["synthesis.input.freqs"].norm(dim=1).max()) > in_rate:
        raise CheckpointError("synthesis.input.freqs lie beyond the input's sampling rate")
    for i, spec in enumerate(specs):
        p, q = f"synthesis.{spec.name}", f"synthesis.layers.{i}"
        for key in ("weight", "bias", "affine.weight", "affine.bias", "magnitude_ema"):
            out[f"{q}.{key}"] = src.take(f"{p}.{key}", shapes[f"{q}.{key}"])
        if not float(out[f"{q}.magnitude_ema"]) > 0:
            raise CheckpointError(f"{p}.magnitude_ema is {float(out[f'{q}.magnitude_ema']):g}, expected > 0")
        for key in ("up_filter", "down_filter"):
            if f"{q}.{key}" in shapes:
                out[f"{q}.{key}"] = src.take(f"{p}.{key}", shapes[f"{q}.{key}"])
                _check_filter(out[f"{q}.{key}"], f"{p}.{key}")
    src.finish()
    return cfg, out, {"format": "nvidia-pytorch", "architecture": variant}


def check_config(cfg: StyleGAN3Config) -> None:
    """Bounds of the mapping network (as StyleGAN2's) and the layer sizes."""
    whole_number(cfg.z_dim, "z_dim", 1, untrusted.MAX_FEATURES)
    whole_number(cfg.w_dim, "w_dim", 1, untrusted.MAX_FEATURES)
    dims = cfg.mapping_dims
    if not 2 <= len(dims) <= untrusted.MAX_MAPPING_LAYERS + 1:
        raise CheckpointError(f"the mapping network has {len(dims) - 1} layers (1..{untrusted.MAX_MAPPING_LAYERS} supported)")
    for i, d in enumerate(dims):
        whole_number(d, f"mapping layer width {i}", 1, untrusted.MAX_FEATURES)
    if dims[0] != cfg.z_dim + cfg.embed_dim or dims[-1] != cfg.w_dim:
        raise CheckpointError(f"mapping widths {dims[0]}..{dims[-1]} do not fit z_dim {cfg.z_dim}, w_dim {cfg.w_dim}")
    if cfg.resolution & (cfg.resolution - 1):
        raise CheckpointError(f"resolution {cfg.resolution} is not a power of two")
    # the largest intermediate image (after up-sampling) bounds the memory a layer takes
    for s in cfg.layers:
        big = (s.in_size + s.kernel - 1) * s.up
        if big > 4 * untrusted.MAX_RESOLUTION:
            raise CheckpointError(f"layer {s.name}: intermediate images of {big} px are beyond what this loader supports")


def check_canonical(cfg: StyleGAN3Config, tensors: Dict[str, torch.Tensor]) -> None:
    expected = canonical_shapes(cfg)
    for key, t in tensors.items():
        if key not in expected:
            raise CheckpointError(f"unexpected tensor {clean_text(repr(key), 80)} for this architecture")
        if tuple(t.shape) != expected[key]:
            raise CheckpointError(f"shape mismatch: {key!r} is {list(t.shape)}, expected {list(expected[key])}")
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"lacks tensor {missing[0]!r}")


def describe(cfg: StyleGAN3Config) -> dict:
    """What ``inspect_checkpoint`` shows for a StyleGAN3 file."""
    sizes = [f"{s.name}: {s.out_size}px x {s.out_channels}" for s in cfg.layers]
    return {
        "architecture": cfg.variant,
        "resolution": cfg.resolution,
        "n_latent": cfg.n_latent,
        "w_dim": cfg.w_dim,
        "z_dim": cfg.z_dim,
        "c_dim": cfg.c_dim,
        "label_mode": cfg.label_mode,
        "mapping_layers": len(cfg.mapping_dims) - 1,
        "input": f"{cfg.input_size}px x {cfg.input_channels} (Fourier features, bandwidth {cfg.input_bandwidth:g})",
        "layers": sizes,
        "layer_resolutions": cfg.layer_resolutions(),
    }


# ---------------------------------------------------------------------------------------------
# the public generator object (the StyleGAN2 generator's API)

class StyleGAN3Generator(Generator):
    """A StyleGAN3-T/-R generator with the engine's API (mapping, truncate, synthesis, w_stats)."""

    def __init__(self, cfg: StyleGAN3Config, source_id: str = "unsaved"):
        nn.Module.__init__(self)
        self.cfg = cfg
        self.net = Net3(cfg)
        self.source_id = source_id
        self.info = {"architecture": cfg.variant}
        self.precision = "fp32"
        self.modconv = "auto"
        self._label = None
        self._w_stats = None

    architecture = property(lambda self: self.cfg.variant)

    @property
    def device(self) -> torch.device:
        return self.net.synthesis.input.freqs.device

    @property
    def layer_resolutions(self):
        """Per w layer, the StyleGAN2 block resolution of its cutoff (see the module docstring)."""
        return self.cfg.layer_resolutions()

    @property
    def preview_resolutions(self):
        return [self.resolution]

    @property
    def draft_resolutions(self):
        """None: StyleGAN3 has no skip branch to take small frames from cheaply."""
        return []

    def set_reference(self, on: bool) -> None:
        """Run the straightforward grouped conv + full-size filtered lrelu (for tests)."""
        self.net.synthesis.set_reference(on)

    has_camera = True

    @torch.no_grad()
    def synthesis(self, ws, resolution: Optional[int] = None, width: Optional[int] = None,
                  camera=None) -> torch.Tensor:
        """ws [N, n_latent, w_dim] -> images [N, 3, R, R] float32 CPU tensor clamped to [-1, 1].

        width: frames ``width`` px wide from a Fourier-feature grid widened (or narrowed) to
        cover them, cropped to the centre; None or R: square.
        camera: None (still) or [N, 3] per sample: x, y in frame heights (x right, y up: where
        the camera looks; the picture slides the other way) and the camera's roll in degrees,
        counter-clockwise (``camera_matrices``). A zero row renders exactly as no camera.
        """
        from .generator import check_frame_width

        ws = _as_tensor(ws, self.device)
        if ws.ndim == 2:
            ws = ws[:, None, :].expand(-1, self.n_latent, -1)
        if ws.ndim != 3 or ws.shape[1] != self.n_latent or ws.shape[2] != self.w_dim:
            raise TraeumerError(f"ws must be [N, {self.n_latent}, {self.w_dim}], got {list(ws.shape)}")
        if resolution is not None and int(resolution) != self.resolution:
            raise TraeumerError(f"preview resolution {resolution} is not one of {self.preview_resolutions}")
        cam = checked_camera(camera, ws.shape[0])
        if cam is not None and not bool(torch.any(cam != 0)):
            cam = None
        width = check_frame_width(width, self.resolution)
        if width is None:
            return self.net.synthesis(ws.contiguous(), None, cam).float().clamp_(-1.0, 1.0).cpu()
        img = self.net.synthesis(ws.contiguous(), self.cfg.input_width_for(width), cam)
        first = (img.shape[-1] - width) // 2
        return img[..., first:first + width].float().clamp_(-1.0, 1.0).cpu()

    def configure(self, device: torch.device, precision: str) -> None:
        if precision != "fp32":
            raise TraeumerError(f"StyleGAN3 generators run in fp32 only (for now), not {precision}")
        self.to(device)
        self.precision = "fp32"

    def save(self, path) -> None:
        raise TraeumerError("saving StyleGAN3 generators in the package's own format is not supported yet")
