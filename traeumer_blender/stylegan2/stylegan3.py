# SPDX-License-Identifier: GPL-3.0-or-later
"""StyleGAN3 (alias-free, configs T and R) synthesis in plain PyTorch, no custom ops.

Written from the paper and the format facts (docs FACTS.md section 7); no NVIDIA code.

    ws[:, 0]      -> SynthesisInput: Fourier features (freqs, phases, transform; the affine of
                     w rotates/translates them), band-limited amplitudes, a C x C linear map
    ws[:, 1 + i]  -> layer i: modulated conv (demodulated; input gain magnitude_ema^-1/2), bias,
                     filtered leaky ReLU (up-sample with up_filter, pad, lrelu*sqrt(2), clamp,
                     down_filter, down-sample); the last layer is ToRGB (1x1, not demodulated,
                     linear + clamp); the output is multiplied by output_scale.

The filtered leaky ReLU (``filtered_lrelu``) runs every filter pass as band-matrix products:
one axis of up-sample/pad/FIR/decimate is a banded matrix, the same band for every block of
outputs, so the passes are a few large matrix products instead of depthwise convolutions
(slow on the CPU); the y passes and the activation run on cache-sized strips; -R's radial down
filters run as their separable SVD components. This is the same arithmetic as
``filtered_lrelu_reference`` (full-size zero-stuffed up-sampling, activation, full-size
filtering, then decimation) up to float rounding.

Precision: fp32, or fp16/bf16 for the layers sampled above R/16 (``configure``).

Layer resolutions (``layer_resolutions``, used to name the coarse/middle/fine groups): a w layer
is given the StyleGAN2 block resolution whose band limit matches the layer's output cutoff
frequency, ``2 ** round(log2(2 * cutoff))`` clipped to [4, R] (the input layer: its bandwidth).
A 1024 px config-T model gives 4, 4, 8, 8, 16, 32, 32, 64, 128, 128, 256, 512, 512, 1024, 1024,
1024: coarse/middle/fine keep the paper's meaning (coarse = low frequencies).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TraeumerError
from . import untrusted
from .generator import LOW_PRECISION_RESOLUTIONS, Generator, _as_tensor, check_frame_width, checked_camera, shape_facts
from .network import Dense, MappingNetwork
from .untrusted import CheckpointError, clean_text, finite_number, whole_number

SQRT2 = math.sqrt(2.0)
MAX_TAPS = 256          # filter length (NVIDIA's: filter_size x factor, 6 x 2..4)
MAX_FACTOR = 16         # up/down-sampling factors
MAX_LAYERS = 64
FP16_CLAMP = 256.0     # NVIDIA's conv_clamp, for fp16 layers of a file without one


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
    sampling_rate: float = 0.0  # output sampling rate (which layers run in low precision)


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


REFERENCE_CHUNK = 1 << 26     # elements of the up-sampled image the reference holds at once (256 MB)


def filtered_lrelu_reference(x, fu, fd, b, up=1, down=1, padding=(0, 0, 0, 0), gain=SQRT2, slope=0.2, clamp=None):
    """The straightforward form: bias, full-size up-sample + FIR, activation, full FIR, decimate.

    Channels go through in groups, so a 1024 px layer (a few GB per full-size copy of its
    up-sampled image) fits in memory; each group is the same arithmetic."""
    n, c, h, w = x.shape
    per_channel = n * (h * up + abs(padding[0]) + abs(padding[1])) * (w * up + abs(padding[2]) + abs(padding[3]))
    group = max(1, REFERENCE_CHUNK // max(per_channel, 1))
    if group < c:
        return torch.cat([filtered_lrelu_reference(x[:, i:i + group], fu, fd, b[i:i + group], up, down, padding,
                                                   gain, slope, clamp) for i in range(0, c, group)], dim=1)
    x = x + b.reshape(1, -1, 1, 1)
    x = _upfirdn_reference(x, fu, up, 1, padding, up * up)
    x = _act(x, gain, slope, clamp)
    return _upfirdn_reference(x, fd, 1, down, (0, 0, 0, 0), 1.0)


def _act_(x, gain, slope, clamp):
    """``_act`` in place on a tensor this module made (saves two full-size temporaries)."""
    if slope != 1.0:
        x = F.leaky_relu_(x, slope)
    if gain != 1.0:
        x = x.mul_(gain)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp)
    return x



# --- banded-matrix form: every filter pass is a few large matrix products -------------------

UP_TILE = 32            # outputs per band tile of the up-sampling passes (rounded to a multiple of up)
DOWN_TILE = 16          # outputs per band tile of the down-sampling passes
FIR_GROUP = 4           # down-y tiles per block of the y passes
FIR_BYTES = 1024 * 1024  # up-sampled rows of one block of the y passes (about one core's L2 cache)
FIR_MIN_BLOCK = 32      # output columns per block at least (a block recomputes kd - down columns)
_BANDS: Dict[tuple, tuple] = {}   # cached band matrices and radial components


class _Axis:
    """One axis of upfirdn (zero-stuff by ``up``, pad ``p0`` in front, FIR, keep every
    ``down``-th sample) as a band matrix: out[q] = sum_i x[i] * gain * g[i*up - q*down + p0],
    g = f flipped, x = 0 outside the input. Every block of ``tile`` outputs uses the same band
    ``matrix`` [tile, width], shifted by ``step`` = tile*down/up inputs; block 0 starts at input
    ``first``."""

    def __init__(self, taps: int, up: int, down: int, p0: int, length: int, out_len: int, tile: int):
        self.taps, self.up, self.down, self.p0, self.tile = taps, up, down, p0, tile
        self.first = -(p0 // up)                                  # ceil(-p0 / up)
        self.width = ((tile - 1) * down - p0 + taps - 1) // up - self.first + 1
        self.step = tile * down // up
        self.length, self.out_len = length, out_len
        # inputs the valid outputs need, counted from ``first``
        self.need = ((out_len - 1) * down - p0 + taps - 1) // up - self.first + 1

    def matrix(self, g: torch.Tensor, gain: float) -> torch.Tensor:
        ii = torch.arange(self.width, dtype=torch.int64)[None, :]
        qq = torch.arange(self.tile, dtype=torch.int64)[:, None]
        idx = (self.first + ii) * self.up - qq * self.down + self.p0
        ok = (idx >= 0) & (idx < self.taps)
        return torch.where(ok, g[idx.clamp(0, self.taps - 1)], torch.zeros((), dtype=g.dtype)) * gain


def _taps(f) -> torch.Tensor:
    return torch.ones(1, dtype=torch.float64) if f is None else f.detach().to("cpu", torch.float64).flip(0)


def _key(f):
    """A filter's identity: its memory and version (the cache entry keeps the tensor alive, so
    its memory cannot be reused by another filter while cached)."""
    return None if f is None else (f.data_ptr(), f._version, tuple(f.shape), f.stride(), f.dtype, f.device)


def _components(fd, dtype) -> List[tuple]:
    """The down filter as separable (row taps, column taps) pairs: itself, or -R's radial filter
    by its singular value decomposition, numerically of low rank: the components kept are those
    above the compute precision's epsilon (relative to the first), smaller ones are below its
    rounding (fp32: 3-5 components, bf16: 2)."""
    if fd is None or fd.ndim == 1:
        t = _taps(fd)
        return [(t, t)]
    f2 = fd.detach().to("cpu", torch.float64).flip([0, 1])
    u, s, vh = torch.linalg.svd(f2)
    keep = int((s > s[0] * torch.finfo(dtype).eps).sum().clamp(min=1))
    return [(u[:, r] * s[r], vh[r]) for r in range(keep)]


def _bands(fu, fd, up, down, padding, h, w, dtype, device, down_gain=1.0):
    """(up x axis, its matrix, up y axis, its matrix, [(down y axis, down x axis, down y matrix,
    down x taps) per component], the up-sampled row width, the filters) for these filters and this
    input size; cached. ``down_gain`` scales the down y matrices (before rounding to ``dtype``)."""
    key = (_key(fu), _key(fd), up, down, tuple(padding), h, w, dtype, device, down_gain)
    hit = _BANDS.get(key)
    if hit is not None:
        return hit
    px0, px1, py0, py1 = padding
    ku = 1 if fu is None else fu.shape[0]
    kd = 1 if fd is None else fd.shape[0]
    tile_u = -(-UP_TILE // up) * up
    lux, luy = w * up + px0 + px1 - ku + 1, h * up + py0 + py1 - ku + 1
    ldx, ldy = (lux - kd) // down + 1, (luy - kd) // down + 1
    dx = _Axis(kd, 1, down, 0, lux, ldx, DOWN_TILE)
    dy = _Axis(kd, 1, down, 0, luy, ldy, DOWN_TILE)
    # up-sampled rows: whole up x tiles, enough inputs per row that the up x windows never
    # reach the next row for a valid output
    need_ux = _Axis(ku, up, 1, px0, w, lux, tile_u).need * up
    wu = -(-max(lux, need_ux) // tile_u) * tile_u
    ux = _Axis(ku, up, 1, px0, w, wu, tile_u)
    uy = _Axis(ku, up, 1, py0, h, luy, tile_u)
    gu = _taps(fu)
    comps = [(dy, dx, dy.matrix(r, down_gain).to(device, dtype), c.to(device, dtype)) for r, c in _components(fd, dtype)]
    hit = (ux, ux.matrix(gu, up).to(device, dtype), uy, uy.matrix(gu, up).to(device, dtype), comps, wu, (fu, fd))
    if len(_BANDS) > 256:
        _BANDS.clear()
    _BANDS[key] = hit
    return hit


def _tiles(axis: _Axis, out_len: int) -> int:
    return max(-(-out_len // axis.tile), -(-axis.need // axis.step))


def _col_buffer(n, h, tiles, axis: _Axis, c, dtype, device, lo, hi):
    """A flat buffer whose rows hold ``tiles * step`` inputs each, plus the spill of the last
    window: every window of the x pass is then a plain [width, C] matrix of it. Zero outside
    the columns [lo, hi) of each row, which the caller fills."""
    row = tiles * axis.step
    spill = max(axis.width - axis.step, 0)
    buf = torch.empty(n * h * row * c + spill * c, dtype=dtype, device=device)
    rows = buf[:n * h * row * c].view(n, h, row, c)
    rows[:, :, :lo].zero_()
    rows[:, :, hi:].zero_()
    buf[n * h * row * c:].zero_()
    return buf, rows


class _Threads(ThreadPoolExecutor):
    """A thread pool that says how many threads it has."""

    def __init__(self, workers: int):
        super().__init__(max_workers=workers)
        self.workers = workers


def _in_parts(pool, total: int, fn) -> None:
    """fn(start, stop) over ``total`` items: in one go, or split among the pool's threads."""
    parts = 1 if pool is None else min(total, pool.workers)
    bounds = [total * i // parts for i in range(parts + 1)]
    if parts <= 1:
        fn(0, total)
    else:
        list(pool.map(lambda i: fn(bounds[i], bounds[i + 1]), range(parts)))


def _bmm_band(m, buf, offset, count, axis: _Axis, c, out, pool):
    """out[b] = m @ window b of the buffer, for ``count`` windows ``step * c`` apart."""
    win = buf.as_strided((count, axis.width, c), (axis.step * c, c, 1), offset)

    def part(b0, b1):
        torch.bmm(m.expand(b1 - b0, -1, -1), win[b0:b1], out=out[b0:b1])
    _in_parts(pool, count, part)


def filtered_lrelu(x, fu, fd, b, up=1, down=1, padding=(0, 0, 0, 0), gain=SQRT2, slope=0.2, clamp=None, pool=None):
    """Same result as :func:`filtered_lrelu_reference`, as banded matrix products.

    Channels last ([N, H, W, C] in memory). Up x: each window of a row times the band matrix
    (batched). Then, per sample, block of columns of the flattened rows and group of
    ``FIR_GROUP`` down-y tiles, up y, the activation and down y run on about ``FIR_BYTES`` of
    up-sampled rows that stay in the core's cache (the full-size up-sampled image is never
    written out), and down x follows on the block's rows (strided depthwise convolutions). -R's
    radial down filter runs as its few separable SVD components, summed per block. ``pool`` (a thread pool, with torch at one thread): the work
    split among its threads. Returns a channels-last tensor.
    """
    padding = [int(p) for p in padding]
    n, c, h, w = x.shape
    dtype, dev = x.dtype, x.device
    bias = b.to(dtype)
    if up == 1 and down == 1 and fu is None and fd is None and not any(padding):
        return _act_(x + bias.reshape(1, -1, 1, 1), gain, slope, clamp)
    # the activation's gain moves into the down y filter (leaky ReLU and clamp commute with it)
    ux, mux, uy, muy, comps, wu, _ = _bands(fu, fd, up, down, padding, h, w, dtype, dev, gain)
    xl = x.permute(0, 2, 3, 1)                                  # [N, H, W, C] (a view if channels last)
    # up x; the bias is added while copying into the padded row buffer
    tx = wu // ux.tile
    lo, hi = max(ux.first, 0), min(w, ux.first + tx * ux.step)
    buf, rows = _col_buffer(n, h, tx, ux, c, dtype, dev, lo - ux.first, hi - ux.first)
    torch.add(xl[:, :, lo:hi], bias, out=rows[:, :, lo - ux.first:hi - ux.first])
    tyu = _tiles(uy, uy.out_len)
    top = max(-uy.first, 0)
    hp = top + max(h, uy.first + (tyu - 1) * uy.step + uy.width)
    xu = torch.empty(n, hp, wu, c, dtype=dtype, device=dev)    # rows padded with zeros for up y
    xu[:, :top].zero_()
    xu[:, top + h:].zero_()
    for s in range(n):
        _bmm_band(mux, buf, s * h * tx * ux.step * c, h * tx, ux, c,
                  xu[s, top:top + h].view(h * tx, ux.tile, c), pool)
    # up y, activation, down y and down x: per sample, block of output columns and group of
    # down-y tiles, on up-sampled rows that stay in the CPU's caches
    ld = wu * c
    dy0, dx0 = comps[0][0], comps[0][1]
    oy, ox, kd = dy0.out_len, dx0.out_len, dx0.taps
    ut, ds, dw, dt = uy.tile, dy0.step, dy0.width, dy0.tile
    tyd = -(-oy // dt)
    group = min(FIR_GROUP, tyd)
    buf_rows = (-(-((group - 1) * ds + dw) // ut) + 1) * ut      # up tiles a group reads, any alignment
    bw = min(ox, max(FIR_MIN_BLOCK, FIR_BYTES // (buf_rows * down * c * x.element_size())))
    blocks, groups = -(-ox // bw), -(-tyd // group)
    pw_max = (bw - 1) * down + kd                                 # up-sampled columns of a block
    mdys = [mdy for _, _, mdy, _ in comps]
    taps_x = [t.reshape(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous() for *_, t in comps]
    act_clamp = None if clamp is None else clamp / gain
    out = torch.empty(n, oy, ox, c, dtype=dtype, device=dev)

    def strips(j0, j1):
        ub = torch.empty(buf_rows * pw_max * c, dtype=dtype, device=dev)
        db = torch.empty(group * dt * pw_max * c, dtype=dtype, device=dev)
        for j in range(j0, j1):
            s, rest = divmod(j, blocks * groups)
            k, g = divmod(rest, groups)
            q0, q1 = k * bw, min(ox, (k + 1) * bw)
            pw = (q1 - 1 - q0) * down + kd
            wc = pw * c
            t0, t1 = g * group, min(tyd, (g + 1) * group)
            r0, r1 = t0 * ds, (t1 - 1) * ds + dw                  # up-sampled rows this group reads
            a, b = r0 // ut, min(tyu, -(-r1 // ut))
            u = ub[:buf_rows * wc].view(buf_rows, wc)
            win = xu.as_strided((b - a, uy.width, wc), (uy.step * ld, ld, 1),
                                (s * hp + top + uy.first + a * uy.step) * ld + q0 * down * c)
            torch.bmm(muy.expand(b - a, -1, -1), win, out=u[:(b - a) * ut].view(b - a, ut, wc))
            valid = max(0, min((b - a) * ut, uy.out_len - a * ut))
            _act_(u[:valid], 1.0, slope, act_clamp)
            if (b - a) * ut < r1 - a * ut:
                u[(b - a) * ut:r1 - a * ut].zero_()
            urows = u.as_strided((t1 - t0, dw, wc), (ds * wc, wc, 1), (r0 - a * ut) * wc)
            y0, y1 = t0 * dt, min(oy, t1 * dt)
            d = db[:(t1 - t0) * dt * wc].view(t1 - t0, dt, wc)
            acc = None
            for mdy, tx_ in zip(mdys, taps_x):
                torch.bmm(mdy.expand(t1 - t0, -1, -1), urows, out=d)
                dv = d.view(1, (t1 - t0) * dt, pw, c)[:, :y1 - y0].permute(0, 3, 1, 2)
                y = F.conv2d(dv, tx_, stride=(1, down), groups=c)         # [1, C, y1 - y0, q1 - q0]
                acc = y if acc is None else acc.add_(y)
            out[s, y0:y1, q0:q1] = acc[0].permute(1, 2, 0)
    _in_parts(pool, n * blocks * groups, strips)
    return out.permute(0, 3, 1, 2)


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
        self.dtype = torch.float32          # compute dtype (configure)
        self.clamp = spec.clamp
        self.channels_last = False

    def _prepared(self):
        """Cached: the weight (demodulated layers: normalised to unit mean square, as the
        reference does) and its sum of squares over the kernel [out, in], both fp32."""
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device, self.channels_last)
        if getattr(self, "_prep_key", None) != key:
            w = self.weight.detach().float()
            if not self.spec.is_torgb:
                w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            self._prep = (w.contiguous(memory_format=fmt), w.square().sum([2, 3]))
            self._prep_key = key
        return self._prep

    def _conv(self, x, styles):
        """The modulated conv, styles and demodulation folded into one sample's weights (or, for a
        batch, scaling the input and output of one shared-weight conv; CUDA: grouped)."""
        s = self.spec
        w, wsq = self._prepared()
        if not s.is_torgb:
            styles = styles * styles.square().mean(1, keepdim=True).rsqrt()
        d = None if s.is_torgb else (styles.square() @ wsq.t() + 1e-8).rsqrt()      # [N, out]
        styles = styles * self.magnitude_ema.rsqrt()
        n, pad = x.shape[0], s.kernel - 1
        if n == 1 or x.device.type == "cuda":
            wt = w[None] * styles[:, None, :, None, None]
            if d is not None:
                wt = wt * d[:, :, None, None, None]
            wt = wt.to(self.dtype)
            if n == 1:
                return F.conv2d(x, wt[0], padding=pad)
            y = F.conv2d(x.reshape(1, -1, *x.shape[2:]), wt.reshape(-1, *wt.shape[2:]), padding=pad, groups=n)
            return y.reshape(n, -1, *y.shape[2:])
        y = F.conv2d(x * styles.to(self.dtype)[:, :, None, None], w.to(self.dtype), padding=pad)
        return y if d is None else y.mul_(d.to(self.dtype)[:, :, None, None])

    def forward(self, x: torch.Tensor, w: torch.Tensor, pool=None) -> torch.Tensor:
        """pool: threads for the filters (one sample on the CPU: the convs use torch's own threads)."""
        s = self.spec
        styles = self.affine(w.float())
        if s.is_torgb:
            styles = styles * (1.0 / math.sqrt(s.in_channels * s.kernel ** 2))
        gain, slope = (1.0, 1.0) if s.is_torgb else (SQRT2, 0.2)
        if self.reference:
            x = modulated_conv_reference(x.float(), self.weight, styles, not s.is_torgb, self.magnitude_ema.rsqrt(),
                                         s.kernel - 1)
            return filtered_lrelu_reference(x, self.up_filter, self.down_filter, self.bias, s.up, s.down, s.padding,
                                            gain, slope, s.clamp)
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self._conv(x, styles)
        if pool is None:
            return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, s.up, s.down, s.padding,
                                  gain, slope, self.clamp)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, s.up, s.down, s.padding,
                                  gain, slope, self.clamp, pool=pool)
        finally:
            torch.set_num_threads(threads)


class SynthesisNetwork3(nn.Module):
    def __init__(self, cfg: StyleGAN3Config):
        super().__init__()
        self.cfg = cfg
        self.input = SynthesisInput(cfg)
        self.layers = nn.ModuleList(SynthesisLayer(spec, cfg.w_dim) for spec in cfg.layers)
        self.cpu_workers = 1   # CPU batches: samples run in this many threads

    def set_reference(self, on: bool) -> None:
        for layer in self.layers:
            layer.reference = bool(on)

    def forward(self, ws: torch.Tensor, input_width: Optional[int] = None,
                camera: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.input(ws[:, 0], input_width, camera)
        return self.run_layers(x, ws) * self.cfg.output_scale

    def run_layers(self, x: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """The layers after the input, fp32 out. A CPU batch runs its samples in parallel threads,
        one core each (as StyleGAN2's "split" mode: no OpenMP barriers between the many small
        matrix products of the filters, one sample's weights folded into plain convs)."""
        n = x.shape[0]
        workers = min(n, self.cpu_workers)
        if self.layers[0].reference or x.device.type != "cpu" or self.cpu_workers <= 1:
            return self._sequential(x, ws)
        if workers <= 1:        # one sample: its filters' matrix products split among the threads
            with _Threads(self.cpu_workers) as pool:
                return self._sequential(x, ws, pool)

        def one(i):
            with torch.no_grad():   # grad mode is per thread
                return self._sequential(x[i:i + 1], ws[i:i + 1])

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with _Threads(workers) as pool:
                return torch.cat(list(pool.map(one, range(n))))
        finally:
            torch.set_num_threads(threads)

    def _sequential(self, x, ws, pool=None):
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i + 1], pool)
        return x.float().contiguous()      # NCHW images, as the reference path gives


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
        rate = _number(_attr(st, "out_sampling_rate", where), f"{where}.out_sampling_rate")
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
                               down_radial=radial, is_torgb=is_torgb, clamp=clamp, cutoff=cutoff,
                               sampling_rate=rate))
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


def config_from_dict(d) -> StyleGAN3Config:
    """The config of a file saved by ``StyleGAN3Generator.save`` (untrusted: every field is
    checked as the NVIDIA reader checks it, and the layers must chain)."""
    if not isinstance(d, dict) or not isinstance(d.get("layers"), list):
        raise CheckpointError("damaged StyleGAN3 config (not a dict with a list of layers)")
    if not 2 <= len(d["layers"]) <= MAX_LAYERS:
        raise CheckpointError(f"StyleGAN3 config with {len(d['layers'])} layers (2..{MAX_LAYERS} supported)")
    try:
        layers = [LayerSpec(**spec) for spec in d["layers"]]
        cfg = StyleGAN3Config(**{**d, "layers": layers})
    except TypeError as exc:
        raise CheckpointError(f"damaged StyleGAN3 config ({clean_text(exc, 120)})") from None
    if cfg.variant not in ("stylegan3-t", "stylegan3-r") or cfg.label_mode not in ("none", "embed"):
        raise CheckpointError(f"StyleGAN3 config: unknown variant {clean_text(repr(cfg.variant), 40)} "
                              f"or label mode {clean_text(repr(cfg.label_mode), 40)}")
    for key in ("resolution", "z_dim", "w_dim", "c_dim", "embed_dim", "input_channels", "input_size"):
        whole_number(getattr(cfg, key), key, 0 if key in ("c_dim", "embed_dim") else 1, untrusted.MAX_FEATURES)
    for key in ("mapping_lr_mul", "input_sampling_rate", "input_bandwidth", "output_scale"):
        setattr(cfg, key, _number(getattr(cfg, key), key))
    if not isinstance(cfg.mapping_dims, list) or not isinstance(cfg.normalize_z, bool):
        raise CheckpointError("damaged StyleGAN3 config (mapping_dims, normalize_z)")
    if not cfg.input_bandwidth < cfg.input_sampling_rate / 2 or (cfg.label_mode == "embed") != (cfg.c_dim > 0):
        raise CheckpointError("StyleGAN3 config: input bandwidth or label fields do not fit")
    prev_ch, prev_size, kernels, radial_any = cfg.input_channels, cfg.input_size, set(), False
    for i, spec in enumerate(cfg.layers):
        where = f"layer {i}"
        if not isinstance(spec.name, str) or not isinstance(spec.padding, list) or len(spec.padding) != 4:
            raise CheckpointError(f"{where}: damaged name or padding")
        for key, lo, hi in (("in_channels", 1, untrusted.MAX_FEATURES), ("out_channels", 1, untrusted.MAX_FEATURES),
                            ("in_size", 1, untrusted.MAX_RESOLUTION + 1024), ("out_size", 1, untrusted.MAX_RESOLUTION + 1024),
                            ("kernel", 1, 7), ("up", 1, MAX_FACTOR), ("down", 1, MAX_FACTOR),
                            ("up_taps", 1, MAX_TAPS), ("down_taps", 1, MAX_TAPS)):
            whole_number(getattr(spec, key), f"{where}.{key}", lo, hi)
        spec.padding = [whole_number(p, f"{where}.padding", -100_000, 100_000) for p in spec.padding]
        for key in ("down_radial", "is_torgb"):
            _flag(getattr(spec, key), f"{where}.{key}")
        spec.cutoff = _number(spec.cutoff, f"{where}.cutoff")
        spec.sampling_rate = _number(spec.sampling_rate, f"{where}.sampling_rate")
        spec.clamp = None if spec.clamp is None else _number(spec.clamp, f"{where}.clamp")
        k, up, down, pad = spec.kernel, spec.up, spec.down, spec.padding
        length = (spec.in_size + k - 1) * up + pad[0] + pad[1] - (spec.up_taps - 1) - (spec.down_taps - 1)
        length_y = (spec.in_size + k - 1) * up + pad[2] + pad[3] - (spec.up_taps - 1) - (spec.down_taps - 1)
        if (spec.in_channels, spec.in_size) != (prev_ch, prev_size) or spec.is_torgb != (i == len(cfg.layers) - 1) \
                or (up > 1) != (spec.up_taps > 1) or (down > 1) != (spec.down_taps > 1) \
                or length < 1 or length_y != length or (length - 1) // down + 1 != spec.out_size \
                or any(abs(p) > 4 * MAX_TAPS + 16 * (spec.in_size + k) for p in pad) \
                or (spec.is_torgb and (up != 1 or down != 1 or k != 1)):
            raise CheckpointError(f"{where}: sizes, factors, filters or padding do not chain")
        if not spec.is_torgb:
            kernels.add(k)
        radial_any |= spec.down_radial
        prev_ch, prev_size = spec.out_channels, spec.out_size
    variant = "stylegan3-t" if (kernels == {3} and not radial_any) else "stylegan3-r" if (kernels == {1} and radial_any) else None
    if variant != cfg.variant or prev_ch != 3 or prev_size != cfg.resolution:
        raise CheckpointError(f"StyleGAN3 config: the layers do not make a {clean_text(cfg.variant, 20)} "
                              f"generator of {cfg.resolution} px")
    check_config(cfg)
    return cfg


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
        **shape_facts(cfg),
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
    bf16_check_samples = 1      # pick_precision's bf16 check renders full-size images here

    @property
    def device(self) -> torch.device:
        return self.net.synthesis.input.freqs.device

    @property
    def layer_resolutions(self):
        """Per w layer, the StyleGAN2 block resolution of its cutoff (see the module docstring)."""
        return self.cfg.layer_resolutions()

    @property
    def preview_resolutions(self):
        """4 .. R in powers of two; below R the full image area-downscaled (no cheaper path:
        every StyleGAN3 layer works at about the output's sampling rate or its own)."""
        return [2 ** i for i in range(2, int(math.log2(self.resolution)) + 1)]

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
        ws = _as_tensor(ws, self.device)
        if ws.ndim == 2:
            ws = ws[:, None, :].expand(-1, self.n_latent, -1)
        if ws.ndim != 3 or ws.shape[1] != self.n_latent or ws.shape[2] != self.w_dim:
            raise TraeumerError(f"ws must be [N, {self.n_latent}, {self.w_dim}], got {list(ws.shape)}")
        if resolution is not None and int(resolution) not in self.preview_resolutions:
            raise TraeumerError(f"preview resolution {resolution} is not one of {self.preview_resolutions}")
        cam = checked_camera(camera, ws.shape[0])
        if cam is not None and not bool(torch.any(cam != 0)):
            cam = None
        width = check_frame_width(width, self.resolution)
        if width is None:
            img = self.net.synthesis(ws.contiguous(), None, cam).float().clamp_(-1.0, 1.0)
        else:
            img = self.net.synthesis(ws.contiguous(), self.cfg.input_width_for(width), cam)
            first = (img.shape[-1] - width) // 2
            img = img[..., first:first + width].float().clamp_(-1.0, 1.0)
        return _preview(img, self.resolution, resolution).cpu()

    def configure(self, device: torch.device, precision: str) -> None:
        """fp16/bf16 for the layers whose sampling rate is above R / 2**LOW_PRECISION_RESOLUTIONS
        (NVIDIA's rule for its fp16 layers, the same share as StyleGAN2's top resolutions); fp16
        layers clamp at conv_clamp (256 where the file has none)."""
        self.to(device)
        low = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        for layer in self.net.synthesis.layers:
            spec = layer.spec
            use_low = low is not None and spec.sampling_rate * 2 ** LOW_PRECISION_RESOLUTIONS > self.resolution
            layer.dtype = low if use_low else torch.float32
            layer.clamp = spec.clamp
            if layer.dtype == torch.float16 and layer.clamp is None:
                layer.clamp = FP16_CLAMP
            layer.channels_last = device.type == "cpu"
        self.net.synthesis.cpu_workers = torch.get_num_threads() if device.type == "cpu" else 1
        self.precision = precision

    def save(self, path) -> None:
        """Write this generator (weights, buffers, config) in the package's own format."""
        from .formats import OWN_FORMAT
        state = {k: v.detach().float().cpu().clone() for k, v in self.net.state_dict().items()}
        torch.save({"format": OWN_FORMAT, "version": 1, "architecture": self.cfg.variant,
                    "config": asdict(self.cfg), "state_dict": state}, os.fspath(path))


def _preview(img: torch.Tensor, full: int, resolution: Optional[int]) -> torch.Tensor:
    """The full-size image area-downscaled by full / resolution (a power of two)."""
    if resolution is None or int(resolution) == full:
        return img
    return F.avg_pool2d(img, full // int(resolution))
