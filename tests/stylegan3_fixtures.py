# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny StyleGAN3-T/-R checkpoints in NVIDIA's container, written from the format facts.

The layer plan follows the paper's rule (geometric cutoffs and stopbands, sampling rates the
next power of two above twice the stopband, margins, critically sampled last layers); filters
are Kaiser-windowed low-pass filters (separable sinc, or -R's radial jinc for down-sampling).
Weights are random, the buffers perturbed (magnitude EMAs, the input transform).
"""

import math
import pickle

import numpy as np
import scipy.signal
import scipy.special
import torch

from stylegan2_fixtures import EasyDictW, _module, fake_nvidia_modules


def _lowpass(taps, cutoff, width, fs, radial=False):
    if taps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=taps, cutoff=cutoff, width=width, fs=fs), dtype=torch.float32)
    x = (np.arange(taps) - (taps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = scipy.special.j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    f[r == 0] = cutoff            # the limit of j1(2 pi c r) / (pi r) at r = 0
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(taps, width / (fs / 2)))
    w = np.kaiser(taps, beta)
    f = f * np.outer(w, w)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# NVIDIA's default configs (channel_base, channel_max; -R also doubles them and uses 1x1 convs)
NVIDIA_CONFIGS = {"t": dict(channel_base=32768, channel_max=512), "r": dict(channel_base=65536, channel_max=1024)}


def plan(resolution=32, num_layers=4, num_critical=2, margin=4, channel_base=256, channel_max=8,
         variant="t"):
    """NVIDIA's published layer plan for any resolution, layer count, margin and channel budget."""
    last_cutoff = resolution / 2
    last_stop = last_cutoff * 2 ** 0.3
    exps = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = 2 * (last_cutoff / 2) ** exps
    stops = 2 ** 2.1 * (last_stop / 2 ** 2.1) ** exps
    rates = np.exp2(np.ceil(np.log2(np.minimum(stops * 2, resolution))))
    halfw = np.maximum(stops, rates / 2) - cutoffs
    sizes = rates + margin * 2
    sizes[-2:] = resolution
    chans = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    chans[-1] = 3
    layers = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        torgb = idx == num_layers
        critical = idx >= num_layers - num_critical
        k = 1 if (torgb or variant == "r") else 3
        tmp = max(rates[prev], rates[idx]) * (1 if torgb else 2)
        up, down = int(round(tmp / rates[prev])), int(round(tmp / rates[idx]))
        up_taps = 6 * up if up > 1 and not torgb else 1
        down_taps = 6 * down if down > 1 and not torgb else 1
        radial = variant == "r" and not critical
        total = (int(sizes[idx]) - 1) * down + 1 - (int(sizes[prev]) + k - 1) * up + up_taps + down_taps - 2
        lo = (total + up) // 2
        layers.append(dict(
            idx=idx, is_torgb=torgb, critical=critical, cin=int(chans[prev]), cout=int(chans[idx]),
            in_size=int(sizes[prev]), out_size=int(sizes[idx]), in_rate=int(rates[prev]), out_rate=int(rates[idx]),
            in_cutoff=float(cutoffs[prev]), out_cutoff=float(cutoffs[idx]), k=k, up=up, down=down,
            padding=[lo, total - lo, lo, total - lo],
            up_filter=_lowpass(up_taps, cutoffs[prev], halfw[prev] * 2, tmp),
            down_filter=_lowpass(down_taps, cutoffs[idx], halfw[idx] * 2, tmp, radial)))
    return dict(resolution=resolution, rates=rates, cutoffs=cutoffs, sizes=sizes, chans=chans, layers=layers,
                margin=margin, num_critical=num_critical, channel_base=channel_base, channel_max=channel_max)


def nvidia_sg3_object(variant="t", seed=0, z_dim=12, w_dim=12, mapping_layers=2, c_dim=0, drop=None,
                      reshape=None, **plan_kw):
    p = plan(variant=variant, **plan_kw)
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    lr = 0.01
    m = {}
    dims = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * mapping_layers
    for i in range(mapping_layers):
        m[f"fc{i}"] = _module("FullyConnectedLayer", {"weight": rnd(dims[i + 1], dims[i], scale=1 / lr),
                                                      "bias": rnd(dims[i + 1], scale=0.1 / lr)},
                              in_features=dims[i], out_features=dims[i + 1], activation="lrelu",
                              weight_gain=lr / math.sqrt(dims[i]), bias_gain=lr)
    if c_dim:
        m["embed"] = _module("FullyConnectedLayer", {"weight": rnd(w_dim, c_dim), "bias": rnd(w_dim)},
                             activation="linear", weight_gain=1 / math.sqrt(c_dim), bias_gain=1)
    n_ws = len(p["layers"]) + 1
    mapping = _module("MappingNetwork", buffers={"w_avg": rnd(w_dim, scale=0.3)}, modules=m, z_dim=z_dim,
                      c_dim=c_dim, w_dim=w_dim, num_ws=n_ws, num_layers=mapping_layers, w_avg_beta=0.998)
    c0 = int(p["chans"][0])
    freqs = rnd(c0, 2)
    radii = freqs.square().sum(1, keepdim=True).sqrt()
    freqs = freqs / (radii * radii.square().exp().pow(0.25)) * float(p["cutoffs"][0])
    angle, tx, ty = 0.3, 0.11, -0.07
    user = torch.tensor([[math.cos(angle), math.sin(angle), tx], [-math.sin(angle), math.cos(angle), ty], [0, 0, 1.0]])
    inp_aff = _module("FullyConnectedLayer", {"weight": rnd(4, w_dim, scale=0.3),
                                              "bias": torch.tensor([1.0, 0.2, 0.05, -0.1])},
                      activation="linear", weight_gain=1 / math.sqrt(w_dim), bias_gain=1)
    inp = _module("SynthesisInput", {"weight": rnd(c0, c0)},
                  {"transform": torch.linalg.inv(user), "freqs": freqs, "phases": torch.rand(c0, generator=g) - 0.5},
                  {"affine": inp_aff}, w_dim=w_dim, channels=c0, size=np.array([int(p["sizes"][0])] * 2),
                  sampling_rate=np.float64(p["rates"][0]), bandwidth=np.float64(p["cutoffs"][0]))
    subs, names = {"input": inp}, []
    for L in p["layers"]:
        name = f"L{L['idx']}_{L['out_size']}_{L['cout']}"
        names.append(name)
        aff = _module("FullyConnectedLayer", {"weight": rnd(L["cin"], w_dim), "bias": 1 + rnd(L["cin"], scale=0.1)},
                      activation="linear", weight_gain=1 / math.sqrt(w_dim), bias_gain=1)
        bufs = {"magnitude_ema": torch.tensor(float(np.exp(rnd(1, scale=0.5).item())))}
        for key in ("up_filter", "down_filter"):
            if L[key] is not None:
                bufs[key] = L[key]
        attrs = dict(w_dim=w_dim, is_torgb=L["is_torgb"], is_critically_sampled=L["critical"], use_fp16=False,
                     in_channels=L["cin"], out_channels=L["cout"], in_size=np.array([L["in_size"]] * 2),
                     out_size=np.array([L["out_size"]] * 2), in_sampling_rate=L["in_rate"],
                     out_sampling_rate=L["out_rate"], in_cutoff=np.float64(L["in_cutoff"]),
                     out_cutoff=np.float64(L["out_cutoff"]), conv_kernel=L["k"], conv_clamp=256,
                     up_factor=L["up"], down_factor=L["down"], padding=list(L["padding"]),
                     magnitude_ema_beta=0.999)
        subs[name] = _module("SynthesisLayer", {"weight": rnd(L["cout"], L["cin"], L["k"], L["k"]),
                                                "bias": rnd(L["cout"], scale=0.1)},
                             bufs, {"affine": aff}, **attrs)
    for key in drop or ():
        mod, _, leaf = key.rpartition(".")
        st = subs[mod].meta["state"] if mod in subs else None
        (st["_parameters"] if leaf in st["_parameters"] else st["_buffers"]).pop(leaf)
    for key, shape in (reshape or {}).items():
        mod, _, leaf = key.rpartition(".")
        st = subs[mod].meta["state"]
        group = st["_parameters"] if leaf in st["_parameters"] else st["_buffers"]
        group[leaf] = torch.zeros(shape)
    synthesis = _module("SynthesisNetwork", modules=subs, w_dim=w_dim, num_ws=n_ws, img_resolution=p["resolution"],
                        img_channels=3, num_layers=len(names) - 1, num_critical=p["num_critical"],
                        margin_size=p["margin"],
                        output_scale=0.25, num_fp16_res=0, layer_names=names)
    kwargs = EasyDictW(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=p["resolution"], img_channels=3,
                       mapping_kwargs=EasyDictW(num_layers=mapping_layers), channel_base=p["channel_base"],
                       channel_max=p["channel_max"],
                       conv_kernel=1 if variant == "r" else 3, use_radial_filters=variant == "r")
    return _module("Generator", modules={"mapping": mapping, "synthesis": synthesis}, _init_args=(),
                   _init_kwargs=kwargs, z_dim=z_dim, c_dim=c_dim, w_dim=w_dim,
                   img_resolution=p["resolution"], img_channels=3), names


def write_nvidia_sg3(path, variant="t", module_src=None, **kw):
    with fake_nvidia_modules():
        gen, names = nvidia_sg3_object(variant, **kw)
        if module_src is not None:
            gen.meta["module_src"] = module_src
        data = {"G": gen, "D": _module("Discriminator", {"b4.fc.weight": torch.randn(4, 4)}), "G_ema": gen,
                "augment_pipe": None, "training_set_kwargs": EasyDictW(path="~/datasets/tiny.zip")}
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=4)
    return names
