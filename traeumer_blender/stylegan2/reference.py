# SPDX-License-Identifier: GPL-3.0-or-later
"""A straightforward StyleGAN2 forward pass, written independently of :mod:`.network`.

It works directly on the canonical tensors (see network.py) with the textbook formulation:
per-sample weights in one grouped convolution (NCHW), a transposed convolution for the
up-sampling conv, then a separate general up-fir-down pass (zero insertion, padding, a 4x4
depthwise FIR convolution), noise, bias and activation as separate steps. Tests compare the
fast paths against it; the benchmark uses it as the baseline ("straightforward implementation").
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .network import GeneratorConfig


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Up-sample by zero insertion, pad (pad0 before, pad1 after), correlate with the FIR kernel."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = kernel.flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def _fir(device, gain=1.0):
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    k = f[:, None] * f[None, :]
    return k / k.sum() * gain


def _dense(x, weight, bias, lr_mul, act):
    y = x @ (weight * (lr_mul / math.sqrt(weight.shape[1]))).t() + bias * lr_mul
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if act else y


def reference_mapping(cfg: GeneratorConfig, sd: Dict[str, torch.Tensor], z, c=None):
    def norm(v):
        return v / torch.sqrt((v * v).mean(dim=1, keepdim=True) + 1e-8)

    x = z
    if cfg.label_mode == "concat":
        x = torch.cat([z, c @ sd["mapping.label_concat"]], 1)
        x = norm(x) if cfg.normalize_z else x
    else:
        x = norm(x) if cfg.normalize_z else x
        if cfg.label_mode == "embed":
            e = _dense(c, sd["mapping.embed.weight"], sd["mapping.embed.bias"], 1.0, False)
            x = torch.cat([x, norm(e)], 1)
    for i in range(len(cfg.mapping_dims) - 1):
        x = _dense(x, sd[f"mapping.fc{i}.weight"], sd[f"mapping.fc{i}.bias"], cfg.mapping_lr_mul, True)
    return x


def _modconv(x, w, sd, p, up, demod=True, k=3):
    """Grouped modulated conv: x [N, in, h, w], w [N, w_dim] -> [N, out, h', w']."""
    n, cin, h, wd = x.shape
    weight = sd[f"{p}.weight"]
    cout = weight.shape[0]
    s = _dense(w, sd[f"{p}.affine.weight"], sd[f"{p}.affine.bias"], 1.0, False)   # [N, in]
    wt = weight[None] / math.sqrt(cin * k * k) * s[:, None, :, None, None]        # [N, out, in, k, k]
    if demod:
        wt = wt / torch.sqrt((wt * wt).sum(dim=[2, 3, 4], keepdim=True) + 1e-8)
    xg = x.reshape(1, n * cin, h, wd)
    if up:
        wg = wt.transpose(1, 2).reshape(n * cin, cout, k, k)
        y = F.conv_transpose2d(xg, wg, stride=2, groups=n)
        y = y.reshape(n, cout, y.shape[2], y.shape[3])
        return upfirdn2d(y, _fir(x.device, 4.0), up=1, pad=(1, 1))
    y = F.conv2d(xg, wt.reshape(n * cout, cin, k, k), padding=k // 2, groups=n)
    return y.reshape(n, cout, h, wd)


def _layer(x, w, sd, p, up):
    y = _modconv(x, w, sd, p, up)
    y = y + sd[f"{p}.noise_strength"] * sd[f"{p}.noise_const"][None, None]
    y = y + sd[f"{p}.bias"][None, :, None, None]
    return F.leaky_relu(y, 0.2) * math.sqrt(2)


def reference_synthesis(cfg: GeneratorConfig, sd: Dict[str, torch.Tensor], ws,
                        resolution: Optional[int] = None) -> torch.Tensor:
    top = resolution or cfg.resolution
    n = ws.shape[0]
    x = sd["synthesis.const"][None].repeat(n, 1, 1, 1)
    img = None
    for k, r in enumerate(cfg.resolutions):
        if r > top:
            break
        b = f"synthesis.b{r}"
        if r > 4:
            x = _layer(x, ws[:, 2 * k - 1], sd, f"{b}.conv0", up=True)
        x = _layer(x, ws[:, 2 * k], sd, f"{b}.conv1", up=False)
        y = _modconv(x, ws[:, 2 * k + 1], sd, f"{b}.torgb", up=False, demod=False, k=1)
        y = y + sd[f"{b}.torgb.bias"][None, :, None, None]
        img = y if img is None else upfirdn2d(img, _fir(x.device, 4.0), up=2, pad=(2, 1)) + y
    return img
