# SPDX-License-Identifier: GPL-3.0-or-later
"""Write tiny StyleGAN2 checkpoints in every real container format, from the format facts.

One set of canonical weights (traeumer_blender.stylegan2.network layout) is written as
* rosinality .pt (converted file or training snapshot with argparse args),
* an NVIDIA PyTorch pickle (persistence objects, nested or flat init kwargs, optionally with
  tensor storages tagged cuda:0 as if saved from a GPU),
* an NVIDIA TF pickle ((G, D, Gs) of dnnlib.tflib.network.Network with numpy variables).
The fake ``torch_utils``/``dnnlib`` modules exist only while a file is being WRITTEN.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import math
import pickle
import sys
import types
import warnings

import numpy as np
import torch

from traeumer_blender.stylegan2.generator import Generator
from traeumer_blender.stylegan2.network import GeneratorConfig, fir_2d

# ---------------------------------------------------------------------------------------------
# canonical random weights

def tiny_config(label_mode="none", resolution=32, mapping_layers=2, z_dim=16, w_dim=16, c_dim=5):
    ch = {4: 16, 8: 16, 16: 8, 32: 8, 64: 4, 128: 4}
    return GeneratorConfig(
        resolution=resolution, z_dim=z_dim, w_dim=w_dim,
        mapping_dims=[z_dim * (2 if label_mode in ("concat", "embed") else 1)] + [w_dim] * mapping_layers,
        channels={r: ch[r] for r in ch if r <= resolution},
        c_dim=c_dim if label_mode != "none" else 0, label_mode=label_mode,
        embed_dim=z_dim if label_mode == "embed" else 0)


def random_state(cfg: GeneratorConfig, seed=0):
    """Canonical tensors with every value non-trivial (biases, noise strengths, w_avg)."""
    torch.manual_seed(seed)
    G = Generator(cfg)
    sd = G.net.state_dict()
    gen = torch.Generator().manual_seed(seed + 1)
    out = {}
    for k, v in sd.items():
        v = v.clone()
        if k.endswith("noise_strength"):
            v = torch.rand([], generator=gen) * 0.5 + 0.1
        elif k.endswith(".bias") and "affine" in k:
            v = 1.0 + 0.3 * torch.randn(v.shape, generator=gen)
        elif k.endswith(".bias"):
            v = 0.2 * torch.randn(v.shape, generator=gen)
        elif k == "mapping.w_avg":
            v = 0.3 * torch.randn(v.shape, generator=gen)
        out[k] = v
    return out


def make_generator(cfg, sd):
    G = Generator(cfg, source_id="test")
    G.net.load_state_dict(sd)
    G.configure(torch.device("cpu"), "fp32")
    return G.eval()


# ---------------------------------------------------------------------------------------------
# rosinality

def rosinality_state(cfg, sd):
    out = {}
    n_mlp = len(cfg.mapping_dims) - 1
    for i in range(n_mlp):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.const"][None]

    def styled(src, dst, noise_idx, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        if up:
            out[f"{dst}.conv.blur.kernel"] = fir_2d() * 4
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        r = sd[f"{src}.noise_const"].shape[0]
        out[f"noises.noise_{noise_idx}"] = sd[f"{src}.noise_const"].reshape(1, 1, r, r)

    def torgb(src, dst, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, 3, 1, 1)
        if up:
            out[f"{dst}.upsample.kernel"] = fir_2d() * 4

    styled("synthesis.b4.conv1", "conv1", 0, False)
    torgb("synthesis.b4.torgb", "to_rgb1", False)
    for i, r in enumerate(cfg.resolutions[1:]):
        styled(f"synthesis.b{r}.conv0", f"convs.{2 * i}", 2 * i + 1, True)
        styled(f"synthesis.b{r}.conv1", f"convs.{2 * i + 1}", 2 * i + 2, False)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{i}", True)
    return {k: v.clone() for k, v in out.items()}


def write_rosinality(path, cfg, sd, snapshot=False, legacy=False, mutate=None):
    g = rosinality_state(cfg, sd)
    if mutate:
        mutate(g)
    if snapshot:
        args = argparse.Namespace(size=cfg.resolution, n_mlp=len(cfg.mapping_dims) - 1,
                                  latent=cfg.w_dim, channel_multiplier=2, arch="stylegan2",
                                  lr=0.002, batch=16, path="/data/lmdb")
        ckpt = {"g": g, "d": {"convs.0.0.weight": torch.randn(4, 3, 1, 1)}, "g_ema": g,
                "g_optim": {"state": {}, "param_groups": []}, "d_optim": {"state": {}, "param_groups": []},
                "args": args, "ada_aug_p": 0.0}
    else:
        ckpt = {"g_ema": g, "latent_avg": sd["mapping.w_avg"].clone()}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)


# ---------------------------------------------------------------------------------------------
# NVIDIA PyTorch (persistence pickles)

def _fake_reconstruct(meta):  # never called: only its name is pickled
    raise AssertionError("writer-only stand-in")


_fake_reconstruct.__name__ = _fake_reconstruct.__qualname__ = "_reconstruct_persistent_obj"


class EasyDictW(dict):
    pass


@contextlib.contextmanager
def fake_nvidia_modules():
    """Register torch_utils.persistence / dnnlib.util so pickle can name them (writing only)."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util",
             "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _fake_reconstruct
    mods["dnnlib.util"].EasyDict = EasyDictW
    mods["dnnlib.tflib.network"].Network = TFNetworkW
    old = (_fake_reconstruct.__module__, EasyDictW.__module__, TFNetworkW.__module__)
    _fake_reconstruct.__module__ = "torch_utils.persistence"
    EasyDictW.__module__, EasyDictW.__qualname__ = "dnnlib.util", "EasyDict"
    TFNetworkW.__module__, TFNetworkW.__qualname__ = "dnnlib.tflib.network", "Network"
    sys.modules.update(mods)
    try:
        yield
    finally:
        _fake_reconstruct.__module__, EasyDictW.__module__, TFNetworkW.__module__ = old
        EasyDictW.__qualname__ = "EasyDictW"
        TFNetworkW.__qualname__ = "TFNetworkW"
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class Persistent:
    """Pickles like an NVIDIA persistent_class instance: a call with a meta dict."""

    def __init__(self, class_name, state, module_src="# module source (never run)\n"):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

    def __reduce__(self):
        return (_fake_reconstruct, (self.meta,))


class GpuTensor:
    """A tensor that pickles with its storage tagged 'cuda:0' (as saved from a GPU)."""

    def __init__(self, t):
        self.t = t.detach().contiguous()

    def __reduce__(self):
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # TypedStorage: what NVIDIA's files hold
            torch.save(self.t.storage(), buf, _use_new_zipfile_serialization=False)
        blob = buf.getvalue().replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
        assert b"cuda:0" in blob
        return (torch._utils._rebuild_tensor_v2,
                (_Blob(blob), 0, tuple(self.t.shape), tuple(self.t.stride()), False, collections.OrderedDict()))


class _Blob:
    def __init__(self, blob):
        self.blob = blob

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.blob,))


def _module(class_name, params=None, buffers=None, modules=None, gpu=False, **attrs):
    wrap = (lambda t: GpuTensor(t)) if gpu else (lambda t: torch.nn.Parameter(t.clone(), requires_grad=False))
    state = {
        "training": False,
        "_parameters": collections.OrderedDict((k, wrap(v)) for k, v in (params or {}).items()),
        "_buffers": collections.OrderedDict((k, GpuTensor(v) if gpu else v.clone()) for k, v in (buffers or {}).items()),
        "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict(modules or {}),
        "_forward_hooks": collections.OrderedDict(),
    }
    state.update(attrs)
    return Persistent(class_name, state)


def nvidia_generator_object(cfg, sd, flat_kwargs=False, gpu=False, module_src=None, extra=None):
    lr = cfg.mapping_lr_mul
    m = {}
    for i in range(len(cfg.mapping_dims) - 1):
        m[f"fc{i}"] = _module("FullyConnectedLayer", {"weight": sd[f"mapping.fc{i}.weight"], "bias": sd[f"mapping.fc{i}.bias"]},
                              gpu=gpu, activation="lrelu", weight_gain=lr / math.sqrt(cfg.mapping_dims[i]), bias_gain=lr)
    if cfg.label_mode == "embed":
        m["embed"] = _module("FullyConnectedLayer", {"weight": sd["mapping.embed.weight"], "bias": sd["mapping.embed.bias"]},
                             gpu=gpu, activation="linear", bias_gain=1.0)
    mapping = _module("MappingNetwork", buffers={"w_avg": sd["mapping.w_avg"]}, modules=m, gpu=gpu,
                      z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, num_ws=cfg.n_latent, w_avg_beta=0.995)
    blocks = {}
    for r in cfg.resolutions:
        b = f"synthesis.b{r}"
        subs = {}
        for conv in ("conv0", "conv1"):
            if conv == "conv0" and r == 4:
                continue
            p = f"{b}.{conv}"
            aff = _module("FullyConnectedLayer", {"weight": sd[f"{p}.affine.weight"], "bias": sd[f"{p}.affine.bias"]},
                          gpu=gpu, activation="linear", bias_gain=1.0)
            bufs = {"noise_const": sd[f"{p}.noise_const"]}
            if conv == "conv0":
                bufs["resample_filter"] = fir_2d()
            subs[conv] = _module("SynthesisLayer", {"weight": sd[f"{p}.weight"], "bias": sd[f"{p}.bias"],
                                                    "noise_strength": sd[f"{p}.noise_strength"]},
                                 bufs, {"affine": aff}, gpu=gpu, activation="lrelu", use_noise=True,
                                 conv_clamp=256, up=2 if conv == "conv0" else 1, resolution=r)
        p = f"{b}.torgb"
        aff = _module("FullyConnectedLayer", {"weight": sd[f"{p}.affine.weight"], "bias": sd[f"{p}.affine.bias"]},
                      gpu=gpu, activation="linear", bias_gain=1.0)
        subs["torgb"] = _module("ToRGBLayer", {"weight": sd[f"{p}.weight"], "bias": sd[f"{p}.bias"]},
                                modules={"affine": aff}, gpu=gpu, conv_clamp=256)
        params = {"const": sd["synthesis.const"]} if r == 4 else {}
        bufs = {} if r == 4 else {"resample_filter": fir_2d()}
        blocks[f"b{r}"] = _module("SynthesisBlock", params, bufs, subs, gpu=gpu, architecture="skip", resolution=r)
    synthesis = _module("SynthesisNetwork", modules=blocks, gpu=gpu, w_dim=cfg.w_dim,
                        img_resolution=cfg.resolution, img_channels=3, num_ws=cfg.n_latent)
    if flat_kwargs:   # stylegan3 repository: synthesis kwargs flat
        kwargs = EasyDictW(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.resolution,
                           img_channels=3, mapping_kwargs=EasyDictW(num_layers=len(cfg.mapping_dims) - 1),
                           channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)
    else:             # stylegan2-ada-pytorch: nested
        kwargs = EasyDictW(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.resolution,
                           img_channels=3, mapping_kwargs=EasyDictW(num_layers=len(cfg.mapping_dims) - 1),
                           synthesis_kwargs=EasyDictW(channel_base=32768, channel_max=512, num_fp16_res=4,
                                                      conv_clamp=256, architecture="skip"))
    gen = _module("Generator", modules={"mapping": mapping, "synthesis": synthesis}, gpu=gpu,
                  _init_args=(), _init_kwargs=kwargs, z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim,
                  img_resolution=cfg.resolution, img_channels=3)
    if module_src is not None:
        gen.meta["module_src"] = module_src
    if extra:
        gen.meta["state"]["_parameters"].update({k: torch.nn.Parameter(v) for k, v in extra.items()})
    return gen


def write_nvidia_pytorch(path, cfg, sd, flat_kwargs=False, gpu=False, module_src=None, extra=None, top=None):
    with fake_nvidia_modules():
        g = nvidia_generator_object(cfg, sd, flat_kwargs=flat_kwargs, gpu=gpu, module_src=module_src, extra=extra)
        d = _module("Discriminator", {"b4.fc.weight": torch.randn(4, 4)})
        data = top if top is not None else {
            "G": g, "D": d, "G_ema": g, "augment_pipe": None,
            "training_set_kwargs": EasyDictW(path="~/datasets/tiny.zip", resolution=cfg.resolution)}
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=4)


# ---------------------------------------------------------------------------------------------
# NVIDIA TensorFlow (dnnlib.tflib pickles)

class TFNetworkW:
    """Writer-side stand-in for dnnlib.tflib.network.Network: pickles the v4 state dict."""

    def __init__(self, name, build_func_name, static_kwargs, variables, components=None):
        self.state = {"version": 4, "name": name, "static_kwargs": dict(static_kwargs),
                      "components": EasyDictW(components or {}),
                      "build_module_src": "import os\n# TensorFlow graph builder (never run)\n",
                      "build_func_name": build_func_name, "variables": variables}

    def __getstate__(self):
        return self.state


def tf_variables(cfg, sd):
    """(mapping vars, synthesis vars, Gs own vars) in TF names and layouts."""
    npy = lambda t: t.detach().numpy().astype(np.float32).copy()  # noqa: E731
    mv = []
    for i in range(len(cfg.mapping_dims) - 1):
        mv.append((f"Dense{i}/weight", npy(sd[f"mapping.fc{i}.weight"].t())))
        mv.append((f"Dense{i}/bias", npy(sd[f"mapping.fc{i}.bias"])))
    if cfg.label_mode == "concat":
        mv.append(("LabelConcat/weight", npy(sd["mapping.label_concat"])))
    elif cfg.label_mode == "embed":
        mv.append(("LabelEmbed/weight", npy(sd["mapping.embed.weight"].t())))
        mv.append(("LabelEmbed/bias", npy(sd["mapping.embed.bias"])))
    sv = [("4x4/Const/const", npy(sd["synthesis.const"][None]))]

    def layer(src, scope, up):
        w = sd[f"{src}.weight"]
        if up:
            w = w.flip([2, 3])
        sv.append((f"{scope}/weight", npy(w.permute(2, 3, 1, 0))))
        sv.append((f"{scope}/mod_weight", npy(sd[f"{src}.affine.weight"].t())))
        sv.append((f"{scope}/mod_bias", npy(sd[f"{src}.affine.bias"] - 1.0)))
        sv.append((f"{scope}/noise_strength", npy(sd[f"{src}.noise_strength"])))
        sv.append((f"{scope}/bias", npy(sd[f"{src}.bias"])))

    def torgb(src, scope):
        sv.append((f"{scope}/weight", npy(sd[f"{src}.weight"].permute(2, 3, 1, 0))))
        sv.append((f"{scope}/mod_weight", npy(sd[f"{src}.affine.weight"].t())))
        sv.append((f"{scope}/mod_bias", npy(sd[f"{src}.affine.bias"] - 1.0)))
        sv.append((f"{scope}/bias", npy(sd[f"{src}.bias"])))

    layer("synthesis.b4.conv1", "4x4/Conv", False)
    torgb("synthesis.b4.torgb", "4x4/ToRGB")
    noises = [npy(sd["synthesis.b4.conv1.noise_const"][None, None])]
    for r in cfg.resolutions[1:]:
        layer(f"synthesis.b{r}.conv0", f"{r}x{r}/Conv0_up", True)
        layer(f"synthesis.b{r}.conv1", f"{r}x{r}/Conv1", False)
        torgb(f"synthesis.b{r}.torgb", f"{r}x{r}/ToRGB")
        noises.append(npy(sd[f"synthesis.b{r}.conv0.noise_const"][None, None]))
        noises.append(npy(sd[f"synthesis.b{r}.conv1.noise_const"][None, None]))
    sv += [(f"noise{i}", n) for i, n in enumerate(noises)]
    gv = [("lod", np.float32(0.0)), ("dlatent_avg", npy(sd["mapping.w_avg"]))]
    return mv, sv, gv


def write_nvidia_tf(path, cfg, sd, extra_kwargs=None, ada=False, protocol=4):
    mv, sv, gv = tf_variables(cfg, sd)
    kw = dict(num_channels=3, resolution=cfg.resolution, label_size=cfg.c_dim,
              fmap_base=16 << 10, mapping_layers=len(cfg.mapping_dims) - 1, architecture="skip",
              latent_size=cfg.z_dim, dlatent_size=cfg.w_dim, mapping_lrmul=cfg.mapping_lr_mul)
    if ada:
        kw.update(num_fp16_res=0, conv_clamp=None, fused_modconv=False)
    if extra_kwargs:
        kw.update(extra_kwargs)
    with fake_nvidia_modules():
        mapping = TFNetworkW("G_mapping", "G_mapping", dict(kw, dlatent_broadcast=cfg.n_latent), mv)
        synthesis = TFNetworkW("G_synthesis", "G_synthesis" if ada else "G_synthesis_stylegan2", kw, sv)
        gs = TFNetworkW("G", "G_main", kw, gv, {"mapping": mapping, "synthesis": synthesis})
        d = TFNetworkW("D", "D_stylegan2", kw, [("4x4/Dense0/weight", np.ones((4, 4), np.float32))])
        with open(path, "wb") as handle:
            pickle.dump((gs, d, gs), handle, protocol=protocol)
