# SPDX-License-Identifier: GPL-3.0-or-later
"""StyleGAN2 generator ("skip" architecture, config E/F) in plain PyTorch.

Parameter names and storage conventions (the canonical layout every loader converts to):

    mapping.fc{i}.weight         [out, in]      stored / lr_mul; runtime scale lr_mul / sqrt(in)
    mapping.fc{i}.bias           [out]          runtime scale lr_mul
    mapping.embed.{weight,bias}  [E, c], [E]    label embedding (ADA), lr_mul 1
    mapping.label_concat         [c, z]         label projection (NVlabs TF), used as stored
    mapping.w_avg                [w_dim]        buffer, the tracked mean of w
    synthesis.const              [C4, 4, 4]
    synthesis.b{r}.conv{0,1}.weight            [out, in, 3, 3]  runtime scale 1/sqrt(in*9)
    synthesis.b{r}.conv{0,1}.affine.{weight,bias}  [in, w_dim], [in]  (bias includes the +1)
    synthesis.b{r}.conv{0,1}.noise_strength    []
    synthesis.b{r}.conv{0,1}.bias              [out]
    synthesis.b{r}.conv{0,1}.noise_const       [r, r]  buffer, the constant noise image
    synthesis.b{r}.torgb.weight                [3, in, 1, 1]    runtime scale 1/sqrt(in)
    synthesis.b{r}.torgb.{affine.*, bias}

b4 has no conv0. conv0 of b{r} up-samples: transposed 3x3 conv, stride 2, then the 4x4 FIR
[1,3,3,1] (outer product, normalised, gain 4). Every conv is followed by
noise * strength, bias, leaky ReLU(0.2) * sqrt(2).

w index layout (n_latent = 2*log2(resolution) - 2):
    b4.conv1 <- w0, b4.torgb <- w1;  b{r}.conv0 <- w(2k-1), conv1 <- w(2k), torgb <- w(2k+1)
with k = log2(r) - 2.  So the ToRGB of block r shares its w with conv0 of block 2r.

Three ways to run a modulated convolution (same maths, different speed):
    "grouped"     per-sample weights, one grouped conv (NCHW); the classic formulation.
    "split"       per-sample weights, one plain conv per sample (channels_last); fastest on CPU
                  for fp32: bias folds into the conv and no extra passes over activations.
    "nongrouped"  scale activations by the styles, one shared-weight conv for the batch,
                  scale outputs by the demodulation coefficients; for fp16/bf16 batches.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)
MODCONV_MODES = ("auto", "grouped", "split", "nongrouped")
CANVAS_NOISE_SEED = 7_654_321   # the noise beside the trained noise images on a widened canvas


def fir_2d(device=None, dtype=torch.float32) -> torch.Tensor:
    """The normalised 4x4 low-pass filter [1,3,3,1] x [1,3,3,1] / 64."""
    f = torch.tensor(FIR_TAPS, dtype=torch.float64)
    f2 = torch.outer(f, f)
    return (f2 / f2.sum()).to(device=device, dtype=dtype)


def blur_after_transposed_conv(y: torch.Tensor) -> torch.Tensor:
    """The 4x4 FIR (no gain) with one pixel of zero padding each side: [.., L, L] -> [.., L-1, L-1].

    [1,3,3,1] is [1,1] convolved three times, so three 2x2 box averages give exactly the
    normalised filter; avg_pool2d is a fast single pass that keeps channels_last.
    """
    y = F.avg_pool2d(y, 2, stride=1, padding=1, count_include_pad=True)
    y = F.avg_pool2d(y, 2, stride=1)
    return F.avg_pool2d(y, 2, stride=1)


PHASE_CONV_MIN_SIZE = 64   # input size from which the 4-phase form beats conv_transpose2d (measured)


def conv_transpose_s2(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """3x3 transposed conv, stride 2, no padding: x [N, in, h, r], w [in, out, 3, 3] -> [N, out, 2h+1, 2r+1].

    For large inputs it runs as four ordinary convolutions, one per output phase (even/odd row x
    even/odd column, kernels 2x2, 2x1, 1x2, 1x1 taken from w), written into the interleaved
    output: the same multiply-adds, but oneDNN's plain convolutions are much faster on the CPU
    than its transposed one.
    """
    h, r = x.shape[-2], x.shape[-1]
    if min(h, r) < PHASE_CONV_MIN_SIZE:
        return F.conv_transpose2d(x, w, stride=2)
    wc = w.transpose(0, 1)                                   # [out, in, 3, 3]
    n, c_out = x.shape[0], wc.shape[0]
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty(n, c_out, 2 * h + 1, 2 * r + 1, dtype=x.dtype, device=x.device, memory_format=fmt)
    out[:, :, 0::2, 0::2] = F.conv2d(x, wc[:, :, 0::2, 0::2].flip([2, 3]), padding=1)
    out[:, :, 0::2, 1::2] = F.conv2d(x, wc[:, :, 0::2, 1:2].flip([2]), padding=(1, 0))
    out[:, :, 1::2, 0::2] = F.conv2d(x, wc[:, :, 1:2, 0::2].flip([3]), padding=(0, 1))
    if fmt == torch.channels_last:   # the 1x1 phase is a plain matrix product over channels
        out[:, :, 1::2, 1::2] = (x.permute(0, 2, 3, 1) @ wc[:, :, 1, 1].t()).permute(0, 3, 1, 2)
    else:
        out[:, :, 1::2, 1::2] = F.conv2d(x, wc[:, :, 1:2, 1:2])
    return out


def upsample_skip(img: torch.Tensor) -> torch.Tensor:
    """Up-sample the RGB skip image x2 with the FIR (gain 4, padding 2/1): [N,C,H,L] -> [N,C,2H,2L]."""
    c = img.shape[1]
    k = (fir_2d(img.device, img.dtype) * 4.0).expand(c, 1, 4, 4)
    return F.conv_transpose2d(img, k, stride=2, padding=1, groups=c)


# how far (columns, at a block's resolution) the zero padding at a cut reaches inward within one
# block: the up-sampling conv and its FIR, the 3x3 conv, the skip image's FIR (see Canvas)
CANVAS_REACH = 5


@dataclass(frozen=True)
class Canvas:
    """The columns computed for a frame ``width`` px wide and ``top`` px high (``aspect.py``).

    Column coordinates at resolution r are centred: the square frame covers [-r/2, r/2). The
    canvas is ``const_width`` columns of the 4x4 constant wide (even; the trained constant in
    the middle, repeated sideways), i.e. [-const_width*r/8, const_width*r/8) at resolution r.
    Each block computes only the columns over the frame plus a margin on either side: the zero
    padding at such a cut reaches at most CANVAS_REACH columns inward within a block, so a block
    at r needs a margin m(r) with 2 m(r) - CANVAS_REACH >= m(2r), and the top block none (its
    frame is the frame): 3, 4, 5, 5, ... columns going down. The kept columns equal those of the
    whole canvas computed at once (tested), and the cost grows with the frame's width, not the
    canvas's.
    """

    top: int
    width: int
    const_width: int

    @classmethod
    def for_frame(cls, top: int, width: int) -> "Canvas":
        const_width = max(4, 2 * math.ceil(2 * width / top))     # even, >= 4 * width / top
        return cls(int(top), int(width), const_width)

    def edge(self, r: int) -> int:
        """Half the canvas's width at resolution r."""
        return self.const_width * r // 8

    def margin(self, r: int) -> int:
        """Columns kept beyond the frame at resolution r (see the class docstring)."""
        margin, level = 0, self.top
        while level > r:
            margin, level = -(-(margin + CANVAS_REACH) // 2), level // 2
        return margin

    def span(self, r: int):
        """(first, end) columns computed at resolution r (the frame, a margin, inside the canvas)."""
        half = self.width * r / (2 * self.top)
        margin = self.margin(r)
        return (max(-self.edge(r), math.floor(-half) - margin),
                min(self.edge(r), math.ceil(half) + margin))

    def frame(self):
        """(first, end) columns of the frame at the top resolution."""
        return -(self.width // 2), self.width - self.width // 2


@dataclass
class GeneratorConfig:
    """Everything needed to build the network (all plain types, so it can be saved)."""

    resolution: int
    z_dim: int
    w_dim: int
    mapping_dims: List[int]            # fc{i}: mapping_dims[i] -> mapping_dims[i+1]
    channels: Dict[int, int]           # resolution -> feature maps (4 .. resolution)
    c_dim: int = 0
    label_mode: str = "none"           # "none" | "concat" (NVlabs TF) | "embed" (ADA)
    embed_dim: int = 0
    mapping_lr_mul: float = 0.01
    normalize_z: bool = True
    img_channels: int = 3
    conv_clamp: Optional[float] = 256.0
    use_noise: bool = True

    def __post_init__(self):
        self.channels = {int(k): int(v) for k, v in self.channels.items()}

    @property
    def log2_res(self) -> int:
        return int(round(math.log2(self.resolution)))

    @property
    def n_latent(self) -> int:
        return 2 * self.log2_res - 2

    @property
    def resolutions(self) -> List[int]:
        return [2 ** i for i in range(2, self.log2_res + 1)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = {str(k): v for k, v in self.channels.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        return cls(**d)


def canonical_shapes(cfg: GeneratorConfig) -> Dict[str, tuple]:
    """Name -> shape of every parameter and buffer of the network for ``cfg`` (the layout in
    the module docstring), computed without building it: a checkpoint's tensors are compared
    with these before any memory is allocated for the network."""
    shapes: Dict[str, tuple] = {}
    if cfg.label_mode == "embed":
        shapes["mapping.embed.weight"] = (cfg.embed_dim, cfg.c_dim)
        shapes["mapping.embed.bias"] = (cfg.embed_dim,)
    elif cfg.label_mode == "concat":
        shapes["mapping.label_concat"] = (cfg.c_dim, cfg.z_dim)
    dims = cfg.mapping_dims
    for i in range(len(dims) - 1):
        shapes[f"mapping.fc{i}.weight"] = (dims[i + 1], dims[i])
        shapes[f"mapping.fc{i}.bias"] = (dims[i + 1],)
    shapes["mapping.w_avg"] = (cfg.w_dim,)
    ch = cfg.channels
    shapes["synthesis.const"] = (ch[4], 4, 4)
    for r in cfg.resolutions:
        p = f"synthesis.b{r}"
        convs = [("conv1", ch[r])] if r == 4 else [("conv0", ch[r // 2]), ("conv1", ch[r])]
        for conv, cin in convs:
            q = f"{p}.{conv}"
            shapes[f"{q}.weight"] = (ch[r], cin, 3, 3)
            shapes[f"{q}.affine.weight"] = (cin, cfg.w_dim)
            shapes[f"{q}.affine.bias"] = (cin,)
            shapes[f"{q}.noise_strength"] = ()
            shapes[f"{q}.bias"] = (ch[r],)
            shapes[f"{q}.noise_const"] = (r, r)
        shapes[f"{p}.torgb.weight"] = (cfg.img_channels, ch[r], 1, 1)
        shapes[f"{p}.torgb.affine.weight"] = (ch[r], cfg.w_dim)
        shapes[f"{p}.torgb.affine.bias"] = (ch[r],)
        shapes[f"{p}.torgb.bias"] = (cfg.img_channels,)
    return shapes


class Dense(nn.Module):
    """Fully connected layer with equalised learning rate: y = x @ (W*lr_mul/sqrt(in))^T + b*lr_mul."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_dim], float(bias_init)) / lr_mul)
        self.weight_gain = lr_mul / math.sqrt(in_dim)
        self.bias_gain = lr_mul
        self.activate = activate

    def _scaled(self):
        """Cached runtime weight^T [in, out] and bias (the stored ones are fixed at inference)."""
        key = (self.weight._version, self.bias._version, self.weight.data_ptr(), self.weight.device)
        if getattr(self, "_cache_key", None) != key:
            self._cache = ((self.weight.detach() * self.weight_gain).t().contiguous(),
                           self.bias.detach() * self.bias_gain)
            self._cache_key = key
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w_t, b = self._scaled()
        x = torch.addmm(b, x, w_t)
        if self.activate:
            x = F.leaky_relu(x, LRELU_SLOPE) * SQRT2
        return x


def _normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ label c [N, c_dim]) -> w [N, w_dim]."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.label_mode == "embed":
            self.embed = Dense(cfg.c_dim, cfg.embed_dim)
        elif cfg.label_mode == "concat":
            self.label_concat = nn.Parameter(torch.randn(cfg.c_dim, cfg.z_dim))
        dims = cfg.mapping_dims
        for i in range(len(dims) - 1):
            setattr(self, f"fc{i}", Dense(dims[i], dims[i + 1], lr_mul=cfg.mapping_lr_mul, activate=True))
        self.num_layers = len(dims) - 1
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        cfg = self.cfg
        x = z
        if cfg.label_mode == "concat":
            x = torch.cat([x, c @ self.label_concat], dim=1)
            if cfg.normalize_z:
                x = _normalize_2nd_moment(x)
        else:
            if cfg.normalize_z:
                x = _normalize_2nd_moment(x)
            if cfg.label_mode == "embed":
                x = torch.cat([x, _normalize_2nd_moment(self.embed(c))], dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally up-sampling x2) + constant noise + bias + lrelu*sqrt(2).

    x [N, in, r/2 or r, ...] -> [N, out, r, r].
    """

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool):
        super().__init__()
        self.in_ch, self.out_ch, self.up, self.resolution = in_ch, out_ch, up, resolution
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.affine = Dense(w_dim, in_ch, bias_init=1.0)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.weight_gain = 1.0 / math.sqrt(in_ch * 9)
        self.clamp: Optional[float] = None   # set for low-precision layers
        self.dtype = torch.float32            # compute dtype of this layer

    def _styles(self, w: torch.Tensor) -> torch.Tensor:
        return self.affine(w.float())  # [N, in], fp32

    def _noise_term(self, dtype, cols=None) -> torch.Tensor:  # [1, 1, r, r], includes the sqrt(2) gain
        noise = self.noise_const if cols is None else self._canvas_noise(*cols)
        return (noise * (self.noise_strength * SQRT2)).to(dtype)[None, None]

    def _canvas_noise(self, first: int, end: int, edge: int) -> torch.Tensor:
        """Columns [first, end) of a canvas 2*edge wide: the trained noise image in the middle,
        seeded noise beside it (the same for every frame, like the trained one)."""
        r = self.resolution
        key = (edge, self.noise_const._version, self.noise_const.device)
        if getattr(self, "_canvas_key", None) != key:
            gen = torch.Generator().manual_seed(CANVAS_NOISE_SEED + 2 * r + int(self.up))
            wide = torch.randn(r, 2 * edge, generator=gen).to(self.noise_const.device)
            wide[:, edge - r // 2: edge + r // 2] = self.noise_const
            self._canvas, self._canvas_key = wide, key
        return self._canvas[:, first + edge: end + edge]

    def _finish(self, y: torch.Tensor, bias_done: bool, cols=None) -> torch.Tensor:
        """noise, bias, lrelu (all pre-multiplied by sqrt(2): lrelu is positively homogeneous)."""
        y = y.add_(self._noise_term(y.dtype, cols))
        if not bias_done:
            y = y.add_((self.bias * SQRT2).to(y.dtype)[None, :, None, None])
        y = F.leaky_relu_(y, LRELU_SLOPE)
        if self.clamp is not None:
            y = y.clamp_(-self.clamp, self.clamp)
        return y

    def _prepared(self):
        """Cached (scaled weight [out,in,3,3], its transpose [in,out,3,3], sum of squares [out,in])."""
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device)
        if getattr(self, "_prep_key", None) != key:
            w = (self.weight.detach().float() * self.weight_gain).contiguous()
            self._prep = (w, w.transpose(0, 1).contiguous(), w.square().sum(dim=[2, 3]))
            self._prep_key = key
        return self._prep

    def demod_coefficients(self, styles: torch.Tensor) -> torch.Tensor:
        """[N, out]: 1 / |W * s| per output channel, from the cached sum of squares (no big temporaries)."""
        wsq = self._prepared()[2]
        return torch.rsqrt(styles.square() @ wsq.t() + 1e-8)

    def modulated_weights(self, styles: torch.Tensor, gain: float, transposed: bool = False) -> torch.Tensor:
        """Per-sample demodulated weights times gain, built in one pass over the weight tensor.

        [N, out, in, 3, 3], or [N, in, out, 3, 3] if transposed (the layout conv_transpose2d wants).
        """
        w, w_t, _ = self._prepared()
        coef = (self.demod_coefficients(styles) * gain)[:, :, None] * styles[:, None, :]   # [N, out, in]
        if transposed:
            return w_t[None] * coef.transpose(1, 2)[:, :, :, None, None]
        return w[None] * coef[:, :, :, None, None]

    def forward(self, x: torch.Tensor, w: torch.Tensor, mode: str, cols=None) -> torch.Tensor:
        """cols: (first, end, edge) canvas columns of the output on a widened canvas (``Canvas``)."""
        styles = self._styles(w)
        n = x.shape[0]
        gain = SQRT2 * (4.0 if self.up else 1.0)   # act gain, FIR up-sampling gain
        if mode == "nongrouped":
            return self._forward_nongrouped(x, styles, gain, cols)
        wt = self.modulated_weights(styles, gain, transposed=self.up).to(self.dtype)
        if n == 1:  # plain conv with this sample's weights (the "split" path runs one sample at a time)
            if self.up:
                y = conv_transpose_s2(x, wt[0])
                return self._finish(blur_after_transposed_conv(y), bias_done=False, cols=cols)
            y = F.conv2d(x, wt[0], (self.bias * SQRT2).to(self.dtype), padding=1)
            return self._finish(y, bias_done=True, cols=cols)
        # grouped: batch folded into channels
        h, wd = x.shape[2], x.shape[3]
        xg = x.contiguous().reshape(1, n * self.in_ch, h, wd)
        if self.up:
            y = F.conv_transpose2d(xg, wt.reshape(n * self.in_ch, self.out_ch, 3, 3), stride=2, groups=n)
            y = blur_after_transposed_conv(y)
        else:
            y = F.conv2d(xg, wt.reshape(n * self.out_ch, self.in_ch, 3, 3), padding=1, groups=n)
        y = y.reshape(n, self.out_ch, y.shape[2], y.shape[3])
        return self._finish(y, bias_done=False, cols=cols)

    def _shared_kernel(self, gain):
        """Cached shared-weight kernel for the non-grouped path: scaled weight x gain, in the layer
        dtype and the layout of its conv; for fp16 divided by its largest magnitude (returned)."""
        prep = self._prepared()
        key = (self._prep_key, self.dtype, gain)
        if getattr(self, "_kernel_key", None) != key:
            w = prep[1] if self.up else prep[0]
            w_max = float(w.abs().amax()) if self.dtype == torch.float16 else 1.0
            self._kernel = ((w * (gain / w_max)).to(self.dtype).contiguous(), w_max)
            self._kernel_key = key
        return self._kernel

    def _forward_nongrouped(self, x, styles, gain, cols=None):
        """Shared-weight conv; styles scale the input, demodulation scales the output."""
        d = self.demod_coefficients(styles)                          # [N, out]
        k, w_max = self._shared_kernel(gain)
        s = styles
        if self.dtype == torch.float16:
            # keep fp16 in range: normalised weight and styles, undone in d (exact in real arithmetic)
            s_max = s.abs().amax(dim=1, keepdim=True)
            s = s / s_max
            d = d * (w_max * s_max)
        xs = x * s.to(x.dtype)[:, :, None, None]
        if self.up:
            y = blur_after_transposed_conv(conv_transpose_s2(xs, k))
            return self._finish(y.mul_(d.to(y.dtype)[:, :, None, None]), bias_done=False, cols=cols)
        if x.shape[0] == 1:  # conv(x) * d + b == (conv(x) + b / d) * d: the bias rides in the conv
            y = F.conv2d(xs, k, ((self.bias * SQRT2) / d[0]).to(self.dtype), padding=1)
            return self._finish(y.mul_(d.to(y.dtype)[:, :, None, None]), bias_done=True, cols=cols)
        y = F.conv2d(xs, k, padding=1)
        return self._finish(y.mul_(d.to(y.dtype)[:, :, None, None]), bias_done=False, cols=cols)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation + bias: [N, in, r, r] -> [N, 3, r, r] (fp32)."""

    def __init__(self, in_ch: int, w_dim: int, img_channels: int = 3):
        super().__init__()
        self.in_ch, self.img_channels = in_ch, img_channels
        self.weight = nn.Parameter(torch.randn(img_channels, in_ch, 1, 1))
        self.affine = Dense(w_dim, in_ch, bias_init=1.0)
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_ch)
        self.clamp: Optional[float] = None
        self.dtype = torch.float32

    def forward(self, x: torch.Tensor, w: torch.Tensor, mode: str) -> torch.Tensor:
        styles = self.affine(w.float()) * self.weight_gain          # [N, in]
        n = x.shape[0]
        if n == 1:
            wt = (self.weight[None] * styles[:, None, :, None, None]).to(x.dtype)
            y = F.conv2d(x, wt[0])
        else:
            # tiny output: a batched matmul is the simplest correct form for any mode
            wt = self.weight[:, :, 0, 0][None] * styles[:, None, :]  # [N, 3, in]
            y = torch.einsum("noi,nihw->nohw", wt.to(x.dtype), x)
        y = y.float() + self.bias[None, :, None, None]
        if self.clamp is not None:
            y = y.clamp(-self.clamp, self.clamp)
        return y


class SynthesisBlock(nn.Module):
    def __init__(self, resolution: int, in_ch: int, out_ch: int, w_dim: int, img_channels: int):
        super().__init__()
        self.resolution = resolution
        self.conv0 = StyledConv(in_ch, out_ch, w_dim, resolution, up=True) if resolution > 4 else None
        self.conv1 = StyledConv(out_ch, out_ch, w_dim, resolution, up=False)
        self.torgb = ToRGB(out_ch, w_dim, img_channels)
        self.dtype = torch.float32

    def forward(self, x, img, ws_block, mode, record=None, canvas=None, span=None):
        """ws_block [N, 3, w_dim] (conv0, conv1, torgb); b4 uses [:, 1:].

        On a widened canvas (``Canvas``), ``span`` is the (first, end) columns x and img cover
        at the block below (at b4: the constant's); returns (x, img, span) cropped to this
        block's span. The up-sampled x is cut to that span plus the one column the 3x3 conv
        needs on each side before the conv runs. Without a canvas span stays None.
        """
        x = x.to(self.dtype)
        r = self.resolution
        cols = None
        if canvas is not None:
            span = (2 * span[0], 2 * span[1]) if self.conv0 is not None else span
            cols = (span[0], span[1], canvas.edge(r))
        if self.conv0 is not None:
            x = self.conv0(x, ws_block[:, 0], mode, cols)
        up = span
        if canvas is not None:
            first, end = canvas.span(r)
            span = (max(up[0], first - 1), min(up[1], end + 1))
            x = _columns(x, up, span)
            cols = (span[0], span[1], canvas.edge(r))
        x = self.conv1(x, ws_block[:, 1], mode, cols)
        y = self.torgb(x, ws_block[:, 2], mode)
        if record is not None:
            record.append(y.clone())
        if img is None:
            img = y
        else:
            img = upsample_skip(img)
            img = (img if canvas is None else _columns(img, up, span)).add_(y)
        if canvas is not None:
            x, img = _columns(x, span, (first, end)), _columns(img, span, (first, end))
            span = (first, end)
        return x, img, span


def _columns(t: torch.Tensor, have, want) -> torch.Tensor:
    """Columns ``want`` of a tensor covering columns ``have`` (both (first, end)), contiguous in
    the tensor's memory format."""
    if tuple(have) == tuple(want):
        return t
    fmt = (torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
           else torch.contiguous_format)
    return t[..., want[0] - have[0]:want[1] - have[0]].contiguous(memory_format=fmt)


class SynthesisNetwork(nn.Module):
    """ws [N, n_latent, w_dim] -> images [N, 3, R, R] (not clamped)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.const = nn.Parameter(torch.randn(ch[4], 4, 4))
        self.block_resolutions = cfg.resolutions
        for r in self.block_resolutions:
            in_ch = ch[r // 2] if r > 4 else ch[4]
            setattr(self, f"b{r}", SynthesisBlock(r, in_ch, ch[r], cfg.w_dim, cfg.img_channels))
        self.channels_last = False
        self.cpu_workers = 1   # "split" path: samples of a batch run in this many threads

    def blocks(self):
        return [getattr(self, f"b{r}") for r in self.block_resolutions]

    @staticmethod
    def block_w_indices(level: int):
        """w indices (conv0, conv1, torgb) of block level k (b4 is k=0; its conv0 is absent)."""
        return (2 * level - 1, 2 * level, 2 * level + 1)

    def _run(self, blocks, first, x, img, ws, mode, record, canvas=None, span=None):
        n = ws.shape[0]
        for k in range(first, len(blocks)):
            block = blocks[k]
            i0, i1, i2 = self.block_w_indices(k)
            wsb = ws[:, max(i0, 0):i2 + 1]
            if k == 0:
                wsb = torch.cat([wsb[:, :1], wsb], dim=1)  # placeholder for the absent conv0
            m = mode
            if mode == "auto-gpu":  # NVIDIA's choice: shared-weight conv for low-precision batches
                m = "nongrouped" if (block.dtype != torch.float32 and n > 1) else "grouped"
            x, img, span = block(x, img, wsb, m, record, canvas, span)
        return x, img, span

    def forward(self, ws: torch.Tensor, resolution: Optional[int] = None, mode: str = "grouped",
                record: Optional[list] = None, width: Optional[int] = None):
        """record: if a list, each block's ToRGB output is appended (for calibration/tests).
        width: frame width at ``resolution`` on a widened canvas (``Canvas``); None: square.

        mode "split" (the CPU path): the low-resolution blocks, whose activations are smaller
        than their weights, run batched on the shared-weight path; from the first block where
        the activations outgrow the weights, each sample runs alone with its own modulated
        weights (plain convs, bias folded in, no extra passes over the big activations).
        """
        top = resolution or self.cfg.resolution
        n = ws.shape[0]
        blocks = [b for b in self.blocks() if b.resolution <= top]
        canvas = span = None
        if width is not None and int(width) != top:
            canvas = Canvas.for_frame(top, int(width))
            span = canvas.span(4)
            columns = (torch.arange(span[0], span[1], device=self.const.device) + 2) % 4
            x = self.const[:, :, columns][None].expand(n, -1, -1, -1).to(blocks[0].dtype)
        else:
            x = self.const[None].expand(n, -1, -1, -1).to(blocks[0].dtype)
        if self.channels_last and mode != "grouped":
            x = x.contiguous(memory_format=torch.channels_last)
        if mode != "split" or record is not None:
            img = self._run(blocks, 0, x, None, ws, mode if mode != "split" else "grouped", record, canvas, span)[1]
        else:
            img = self._split_in_threads(blocks, x, ws, canvas, span)
        if canvas is not None:
            first, end = canvas.frame()
            top_first = canvas.span(top)[0]
            img = img[..., first - top_first:end - top_first]
        return img

    def _split_in_threads(self, blocks, x, ws, canvas, span):
        n = ws.shape[0]
        workers = min(n, self.cpu_workers)
        if workers <= 1:
            return self._split(blocks, x, ws, None, canvas, span)
        # Samples in parallel, one core each: no OpenMP barriers between the many operations
        # (measured 2-6x faster than 2 OpenMP threads per op on a busy 2-core machine).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                return self._split(blocks, x, ws, pool, canvas, span)
        finally:
            torch.set_num_threads(threads)

    def _split(self, blocks, x, ws, pool, canvas=None, span=None):
        first = 0
        while first < len(blocks) and blocks[first].resolution ** 2 < 9 * blocks[first].conv1.out_ch:
            first += 1
        x, img, span = self._run(blocks[:first], 0, x, None, ws, "nongrouped", None, canvas, span)
        if first == len(blocks):
            return img

        def one(i):
            with torch.no_grad():   # grad mode is per thread
                imgi = None if img is None else img[i:i + 1]
                return self._run(blocks, first, x[i:i + 1], imgi, ws[i:i + 1], "split", None, canvas, span)[1]

        outs = list(pool.map(one, range(ws.shape[0]))) if pool else [one(i) for i in range(ws.shape[0])]
        return torch.cat(outs, dim=0)
