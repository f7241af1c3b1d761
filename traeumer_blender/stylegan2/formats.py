# SPDX-License-Identifier: GPL-3.0-or-later
"""Read StyleGAN2 checkpoints of every supported kind into one canonical layout.

The kind is chosen by what the file contains, never by its name:

* ``rosinality``      torch.save zip (or legacy) dict with ``g_ema`` (converted files,
                      training snapshots with ``args``); read with ``torch.load(weights_only=True)``.
* ``nvidia-pytorch``  pickled dict of ``torch_utils.persistence`` objects (stylegan2-ada-pytorch,
                      the stylegan3 repository's StyleGAN2 files).
* ``nvidia-tf``       pickled ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` (NVlabs stylegan2,
                      stylegan2-ada TF, forks such as the WikiArt model); read without TensorFlow.
* ``traeumer``        this package's own save format (``Generator.save``).

The architecture is inferred from tensor names and shapes. Conversion is strict: every tensor
of the file must be used and every parameter filled, otherwise the load fails with one line
that names the file and the problem (:class:`~traeumer_blender.errors.TraeumerError`).
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import zipfile
from typing import Dict, Tuple

import numpy as np
import torch

from .network import GeneratorConfig, fir_2d
from .safe_pickle import PersistentObject, TFNetwork, UnsafePickleError, restricted_load

OWN_FORMAT = "traeumer-stylegan2"
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class CheckpointError(Exception):
    """A problem with the file; the loader prefixes the file name."""


# ---------------------------------------------------------------------------------------------
# reading containers

def read_container(path) -> Tuple[str, object]:
    """Return (container kind, raw object): kinds "torch" (torch.save) or "pickle"."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise CheckpointError(f"cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError("the file is empty")
    if head.startswith(b"PK\x03\x04"):
        return "torch", _torch_load(path)
    if head[:1] != b"\x80":
        raise CheckpointError("not a generator checkpoint (neither a torch.save file nor a pickle)")
    try:
        with open(path, "rb") as handle:
            obj = restricted_load(handle)
    except UnsafePickleError as exc:
        raise CheckpointError(
            f"refused: the file asks to run code or build an unknown object ({exc}); "
            "only weights are loaded") from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, UnicodeDecodeError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"truncated or corrupt file ({type(exc).__name__}: {_short(exc)})") from None
    if isinstance(obj, int) and obj == TORCH_LEGACY_MAGIC:  # legacy (pre-zip) torch.save
        return "torch", _torch_load(path)
    return "pickle", obj


def _short(exc, limit=160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _torch_load(path):
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = _short(exc, 400)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
        what = m.group(1) if m else msg
        raise CheckpointError(
            f"refused: the file asks to run code or build an unknown object ({what}); "
            "only weights are loaded") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as exc:
        raise CheckpointError(f"truncated or corrupt file ({type(exc).__name__}: {_short(exc)})") from None


# ---------------------------------------------------------------------------------------------
# strict bookkeeping

class Source:
    """A flat dict of source tensors that must all be consumed."""

    def __init__(self, tensors: Dict[str, object], what: str):
        self.t = {}
        for k, v in tensors.items():
            if isinstance(v, np.ndarray):
                v = torch.from_numpy(np.array(v, order="C", copy=True))
            if not isinstance(v, torch.Tensor):
                raise CheckpointError(f"{what} entry {k!r} is not a tensor ({type(v).__name__})")
            self.t[k] = v.detach().to(torch.float32) if v.is_floating_point() else v.detach()
        self.used = set()
        self.what = what

    def has(self, key) -> bool:
        return key in self.t

    def take(self, key, shape=None) -> torch.Tensor:
        if key not in self.t:
            raise CheckpointError(f"{self.what} lacks tensor {key!r}")
        v = self.t[key]
        if shape is not None and tuple(v.shape) != tuple(shape):
            raise CheckpointError(
                f"shape mismatch: {key!r} is {list(v.shape)}, expected {list(shape)}")
        self.used.add(key)
        return v

    def finish(self):
        left = sorted(set(self.t) - self.used)
        if left:
            more = f" (+{len(left) - 5} more)" if len(left) > 5 else ""
            raise CheckpointError(f"unused tensors, unknown architecture: {', '.join(left[:5])}{more}")


def _check_fir(t: torch.Tensor, key: str, gain: float = 1.0):
    ref = fir_2d() * gain
    if tuple(t.shape) != (4, 4) or not torch.allclose(t.float(), ref, atol=1e-5):
        raise CheckpointError(f"{key}: resampling filter is not [1,3,3,1] (unsupported)")


def _pow2(n) -> bool:
    return n >= 4 and (n & (n - 1)) == 0


# ---------------------------------------------------------------------------------------------
# rosinality

def convert_rosinality(ckpt: dict) -> Tuple[GeneratorConfig, Dict[str, torch.Tensor], dict]:
    args = ckpt.get("args")
    if isinstance(args, argparse.Namespace) and getattr(args, "arch", "stylegan2") == "swagan":
        raise CheckpointError("SWAGAN architecture (not supported yet)")
    g = ckpt["g_ema"]
    if not isinstance(g, dict):
        raise CheckpointError("'g_ema' is not a state dict")
    src = Source(g, "g_ema")
    if src.has("to_rgb1.conv.weight") and src.t["to_rgb1.conv.weight"].shape[1] == 12:
        raise CheckpointError("SWAGAN architecture (not supported yet)")
    if not src.has("input.input") or not src.has("conv1.conv.weight"):
        raise CheckpointError("not a StyleGAN2 generator (no input.input / conv1 in g_ema)")
    n_mlp = 0
    while src.has(f"style.{n_mlp + 1}.weight"):
        n_mlp += 1
    if n_mlp == 0:
        raise CheckpointError("no mapping layers (style.1.weight missing)")
    n_convs = 0
    while src.has(f"convs.{n_convs}.conv.weight"):
        n_convs += 1
    if n_convs % 2:
        raise CheckpointError("odd number of convs: not a StyleGAN2 generator")
    log2 = 2 + n_convs // 2
    resolution = 2 ** log2
    c4 = src.t["input.input"].shape[1]
    z_dim = src.t["style.1.weight"].shape[1]
    w_dim = src.t[f"style.{n_mlp}.weight"].shape[0]
    dims = [z_dim] + [src.t[f"style.{i}.weight"].shape[0] for i in range(1, n_mlp + 1)]
    channels = {4: c4}
    for i in range(n_convs // 2):
        channels[2 ** (i + 3)] = src.t[f"convs.{2 * i}.conv.weight"].shape[1]
    img_ch = src.t["to_rgb1.conv.weight"].shape[1]
    if img_ch != 3:
        raise CheckpointError(f"{img_ch} output channels; only RGB generators are supported")
    cfg = GeneratorConfig(resolution=resolution, z_dim=z_dim, w_dim=w_dim, mapping_dims=dims,
                          channels=channels, mapping_lr_mul=0.01)
    out = {}
    for i in range(1, n_mlp + 1):
        out[f"mapping.fc{i - 1}.weight"] = src.take(f"style.{i}.weight", (dims[i], dims[i - 1]))
        out[f"mapping.fc{i - 1}.bias"] = src.take(f"style.{i}.bias", (dims[i],))
    out["synthesis.const"] = src.take("input.input", (1, c4, 4, 4))[0]

    def styled(prefix, dst, cin, cout, r, noise_key, up):
        out[f"{dst}.weight"] = src.take(f"{prefix}.conv.weight", (1, cout, cin, 3, 3))[0]
        out[f"{dst}.affine.weight"] = src.take(f"{prefix}.conv.modulation.weight", (cin, w_dim))
        out[f"{dst}.affine.bias"] = src.take(f"{prefix}.conv.modulation.bias", (cin,))
        out[f"{dst}.noise_strength"] = src.take(f"{prefix}.noise.weight", (1,)).reshape([])
        out[f"{dst}.bias"] = src.take(f"{prefix}.activate.bias", (cout,))
        if up:
            _check_fir(src.take(f"{prefix}.conv.blur.kernel"), f"{prefix}.conv.blur.kernel", 4.0)
        if src.has(noise_key):
            out[f"{dst}.noise_const"] = src.take(noise_key, (1, 1, r, r))[0, 0]

    def torgb(prefix, dst, cin, up):
        out[f"{dst}.weight"] = src.take(f"{prefix}.conv.weight", (1, 3, cin, 1, 1))[0]
        out[f"{dst}.affine.weight"] = src.take(f"{prefix}.conv.modulation.weight", (cin, w_dim))
        out[f"{dst}.affine.bias"] = src.take(f"{prefix}.conv.modulation.bias", (cin,))
        out[f"{dst}.bias"] = src.take(f"{prefix}.bias", (1, 3, 1, 1)).reshape(3)
        if up:
            _check_fir(src.take(f"{prefix}.upsample.kernel"), f"{prefix}.upsample.kernel", 4.0)

    styled("conv1", "synthesis.b4.conv1", c4, c4, 4, "noises.noise_0", False)
    torgb("to_rgb1", "synthesis.b4.torgb", c4, False)
    for i in range(n_convs // 2):
        r = 2 ** (i + 3)
        cin, cout = channels[r // 2], channels[r]
        styled(f"convs.{2 * i}", f"synthesis.b{r}.conv0", cin, cout, r, f"noises.noise_{2 * i + 1}", True)
        styled(f"convs.{2 * i + 1}", f"synthesis.b{r}.conv1", cout, cout, r, f"noises.noise_{2 * i + 2}", False)
        torgb(f"to_rgbs.{i}", f"synthesis.b{r}.torgb", cout, True)
    src.finish()
    if isinstance(ckpt.get("latent_avg"), torch.Tensor):
        out["mapping.w_avg"] = ckpt["latent_avg"].float().reshape(-1)
        if out["mapping.w_avg"].shape[0] != w_dim:
            raise CheckpointError(f"shape mismatch: latent_avg has {out['mapping.w_avg'].shape[0]} values, w_dim is {w_dim}")
    info = {"format": "rosinality", "snapshot": "args" in ckpt}
    if isinstance(args, argparse.Namespace):
        for name, want in (("n_mlp", n_mlp), ("latent", w_dim), ("size", resolution)):
            got = getattr(args, name, None)
            if got is not None and int(got) != want:
                raise CheckpointError(f"args.{name}={got} disagrees with the tensors ({want})")
    return cfg, out, info


# ---------------------------------------------------------------------------------------------
# NVIDIA PyTorch (persistence pickles)

def _module_tensors(obj, prefix="", out=None, attrs=None):
    """Flatten a pickled nn.Module stand-in into {name: tensor}; collect per-module attributes."""
    if out is None:
        out, attrs = {}, {}
    state = obj.state if isinstance(obj, PersistentObject) else getattr(obj, "__dict__", {})
    attrs[prefix.rstrip(".")] = (getattr(obj, "class_name", type(obj).__name__), state)
    skip = set(state.get("_non_persistent_buffers_set", ()) or ())
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if t is None or name in skip:
                continue
            out[prefix + name] = t
    for name, sub in (state.get("_modules") or {}).items():
        if sub is not None:
            _module_tensors(sub, prefix + name + ".", out, attrs)
    return out, attrs


def convert_nvidia_pytorch(obj: dict):
    for name in ("G_ema", "G"):
        if isinstance(obj.get(name), PersistentObject) or hasattr(obj.get(name), "__dict__"):
            net = obj[name]
            break
    else:
        raise CheckpointError("not a generator: NVIDIA pickle without 'G_ema' or 'G'")
    tensors, attrs = _module_tensors(net)
    if any(k.startswith("synthesis.input.") or re.match(r"synthesis\.L\d+_", k) for k in tensors):
        raise CheckpointError("StyleGAN3 architecture (not supported yet)")
    src = Source(tensors, "generator")
    if not src.has("synthesis.b4.const"):
        raise CheckpointError("not a StyleGAN2 generator (no synthesis.b4.const)")
    n_fc = 0
    while src.has(f"mapping.fc{n_fc}.weight"):
        n_fc += 1
    dims = [src.t["mapping.fc0.weight"].shape[1]] + [src.t[f"mapping.fc{i}.weight"].shape[0] for i in range(n_fc)]
    w_dim = dims[-1]
    c_dim = embed = 0
    label_mode = "none"
    if src.has("mapping.embed.weight"):
        embed, c_dim = src.t["mapping.embed.weight"].shape
        label_mode = "embed"
    z_dim = dims[0] - embed
    res = sorted(int(m.group(1)) for k in tensors for m in [re.match(r"synthesis\.b(\d+)\.conv1\.weight$", k)] if m)
    if not res or res[0] != 4 or any(b != 2 * a for a, b in zip(res, res[1:])):
        raise CheckpointError(f"unexpected synthesis blocks {res}")
    channels = {r: src.t[f"synthesis.b{r}.conv1.weight"].shape[0] for r in res}
    lr_mul = 0.01
    fc_state = attrs.get("mapping.fc0", (None, {}))[1]
    if isinstance(fc_state.get("bias_gain"), (int, float)):
        lr_mul = float(fc_state["bias_gain"])
    syn = attrs.get("synthesis", (None, {}))[1]
    if syn.get("architecture", "skip") not in (None, "skip"):
        raise CheckpointError(f"'{syn.get('architecture')}' synthesis architecture (only 'skip' is supported)")
    for name, (cls, st) in attrs.items():
        act = st.get("activation")
        if name.startswith("mapping.fc") and act not in (None, "lrelu"):
            raise CheckpointError(f"{name}: activation {act!r} (only lrelu is supported)")
    for r in res:
        if not src.has(f"synthesis.b{r}.torgb.weight"):
            raise CheckpointError(f"no torgb in block {r}: not the 'skip' architecture")
    img_ch = src.t[f"synthesis.b{res[0]}.torgb.weight"].shape[0]
    if img_ch != 3:
        raise CheckpointError(f"{img_ch} output channels; only RGB generators are supported")
    use_noise = src.has("synthesis.b4.conv1.noise_strength")
    cfg = GeneratorConfig(resolution=res[-1], z_dim=z_dim, w_dim=w_dim, mapping_dims=dims,
                          channels=channels, c_dim=int(c_dim), label_mode=label_mode,
                          embed_dim=int(embed), mapping_lr_mul=lr_mul, use_noise=use_noise)
    out = {}
    for i in range(n_fc):
        out[f"mapping.fc{i}.weight"] = src.take(f"mapping.fc{i}.weight", (dims[i + 1], dims[i]))
        out[f"mapping.fc{i}.bias"] = src.take(f"mapping.fc{i}.bias", (dims[i + 1],))
    if label_mode == "embed":
        out["mapping.embed.weight"] = src.take("mapping.embed.weight", (embed, c_dim))
        out["mapping.embed.bias"] = src.take("mapping.embed.bias", (embed,))
    if src.has("mapping.w_avg"):
        out["mapping.w_avg"] = src.take("mapping.w_avg", (w_dim,))
    out["synthesis.const"] = src.take("synthesis.b4.const", (channels[4], 4, 4))
    for r in res:
        p = f"synthesis.b{r}"
        cout = channels[r]
        for conv, cin in (("conv0", channels.get(r // 2)), ("conv1", cout)):
            if conv == "conv0" and r == 4:
                continue
            q = f"{p}.{conv}"
            out[f"{q}.weight"] = src.take(f"{q}.weight", (cout, cin, 3, 3))
            out[f"{q}.bias"] = src.take(f"{q}.bias", (cout,))
            out[f"{q}.affine.weight"] = src.take(f"{q}.affine.weight", (cin, w_dim))
            out[f"{q}.affine.bias"] = src.take(f"{q}.affine.bias", (cin,))
            if use_noise:
                out[f"{q}.noise_strength"] = src.take(f"{q}.noise_strength", ()).reshape([])
                out[f"{q}.noise_const"] = src.take(f"{q}.noise_const", (r, r))
            if src.has(f"{q}.resample_filter"):
                _check_fir(src.take(f"{q}.resample_filter"), f"{q}.resample_filter")
        if src.has(f"{p}.resample_filter"):
            _check_fir(src.take(f"{p}.resample_filter"), f"{p}.resample_filter")
        q = f"{p}.torgb"
        out[f"{q}.weight"] = src.take(f"{q}.weight", (3, cout, 1, 1))
        out[f"{q}.bias"] = src.take(f"{q}.bias", (3,))
        out[f"{q}.affine.weight"] = src.take(f"{q}.affine.weight", (cout, w_dim))
        out[f"{q}.affine.bias"] = src.take(f"{q}.affine.bias", (cout,))
    src.finish()
    return cfg, out, {"format": "nvidia-pytorch"}


# ---------------------------------------------------------------------------------------------
# NVIDIA TensorFlow (dnnlib.tflib pickles)

TF_KNOWN_KWARGS = {
    # G_main
    "truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val",
    "dlatent_avg_beta", "style_mixing_prob", "is_training", "is_validation", "return_dlatents",
    "is_template_graph", "components", "mapping_func", "synthesis_func",
    # G_mapping
    "latent_size", "label_size", "dlatent_size", "dlatent_broadcast", "mapping_layers",
    "mapping_fmaps", "mapping_lrmul", "mapping_nonlinearity", "normalize_latents", "label_fmaps",
    "dtype",
    # G_synthesis (stylegan2 and ada)
    "num_channels", "resolution", "fmap_base", "fmap_decay", "fmap_min", "fmap_max", "fmap_const",
    "use_noise", "randomize_noise", "architecture", "nonlinearity", "num_fp16_res", "conv_clamp",
    "resample_kernel", "fused_modconv", "structure", "force_clean_graph",
}


def _tf_check_kwargs(net: TFNetwork, what: str):
    kw = net.state.get("static_kwargs") or {}
    unknown = sorted(set(kw) - TF_KNOWN_KWARGS)
    if unknown:
        raise CheckpointError(f"unknown TF kwargs in {what}: {', '.join(unknown)} (a fork this loader does not know)")
    checks = {"architecture": ("skip",), "nonlinearity": ("lrelu",), "mapping_nonlinearity": ("lrelu",),
              "num_channels": (3,), "structure": ("auto", "fixed")}
    for k, allowed in checks.items():
        if k in kw and kw[k] not in allowed:
            raise CheckpointError(f"TF kwarg {k}={kw[k]!r} is not supported (only {allowed[0]!r})")
    if "resample_kernel" in kw and list(kw["resample_kernel"] or []) != [1, 3, 3, 1]:
        raise CheckpointError(f"TF kwarg resample_kernel={kw['resample_kernel']!r} is not supported")
    return kw


def _tf_vars(net: TFNetwork, strip: str) -> Dict[str, np.ndarray]:
    out = {}
    for item in net.state.get("variables") or []:
        name, value = item
        name = str(name)
        if name.startswith(strip + "/"):
            name = name[len(strip) + 1:]
        out[name] = np.asarray(value)
    return out


def convert_nvidia_tf(obj):
    gs = obj[2] if isinstance(obj, tuple) and len(obj) == 3 else obj
    if not isinstance(gs, TFNetwork):
        raise CheckpointError("not a generator: TF pickle without a Gs network")
    comps = gs.state.get("components") or {}
    mapping, synthesis = comps.get("mapping"), comps.get("synthesis")
    if not isinstance(mapping, TFNetwork) or not isinstance(synthesis, TFNetwork):
        raise CheckpointError("not a generator: TF network without mapping/synthesis components")
    if gs.state.get("version", 4) not in (2, 3, 4, 5):
        raise CheckpointError(f"unknown TF network pickle version {gs.state.get('version')}")
    kw = dict(_tf_check_kwargs(gs, "Gs"))
    mkw = _tf_check_kwargs(mapping, "G_mapping")
    _tf_check_kwargs(synthesis, "G_synthesis")                  # refuses unknown kwargs
    sfunc = str(synthesis.state.get("build_func_name", ""))
    if sfunc not in ("G_synthesis_stylegan2", "G_synthesis", ""):
        raise CheckpointError(f"synthesis network {sfunc!r} is not the StyleGAN2 skip generator")
    mv = Source(_tf_vars(mapping, "G_mapping"), "G_mapping")
    sv = Source(_tf_vars(synthesis, "G_synthesis"), "G_synthesis")
    gv = Source(_tf_vars(gs, "G"), "Gs")
    if any(k.endswith("/StyleMod/weight") or "/Noise/" in k for k in sv.t):
        raise CheckpointError("StyleGAN (version 1) architecture, not StyleGAN2")
    if not sv.has("4x4/Const/const"):
        raise CheckpointError("not a StyleGAN2 generator (no 4x4/Const/const)")
    if any(k.startswith("ToRGB_lod") for k in sv.t):
        raise CheckpointError("progressive-growing synthesis (configs B-D) is not supported")
    n_fc = 0
    while mv.has(f"Dense{n_fc}/weight"):
        n_fc += 1
    if n_fc == 0:
        raise CheckpointError("mapping network without Dense layers")
    dims = [mv.t["Dense0/weight"].shape[0]] + [mv.t[f"Dense{i}/weight"].shape[1] for i in range(n_fc)]
    w_dim = dims[-1]
    label_mode, c_dim, embed = "none", 0, 0
    z_dim = dims[0]
    if mv.has("LabelConcat/weight"):
        label_mode = "concat"
        c_dim, z_dim = mv.t["LabelConcat/weight"].shape
        if dims[0] != 2 * z_dim:
            raise CheckpointError(f"shape mismatch: Dense0 takes {dims[0]} inputs, expected {2 * z_dim} (latent + label)")
    elif mv.has("LabelEmbed/weight"):
        label_mode = "embed"
        c_dim, embed = mv.t["LabelEmbed/weight"].shape
        z_dim = dims[0] - embed
    res = sorted(int(m.group(1)) for k in sv.t for m in [re.match(r"(\d+)x\1/Conv1/weight$", k)] if m)
    res = [4] + res
    if any(b != 2 * a for a, b in zip(res, res[1:])):
        raise CheckpointError(f"unexpected synthesis blocks {res}")
    resolution = res[-1]
    if "resolution" in kw and int(kw["resolution"]) != resolution:
        raise CheckpointError(f"TF kwarg resolution={kw['resolution']} disagrees with the tensors ({resolution})")
    channels = {4: sv.t["4x4/Conv/weight"].shape[3]}
    for r in res[1:]:
        channels[r] = sv.t[f"{r}x{r}/Conv1/weight"].shape[3]
    lr_mul = float(mkw.get("mapping_lrmul", kw.get("mapping_lrmul", 0.01)))
    normalize = bool(mkw.get("normalize_latents", kw.get("normalize_latents", True)))
    use_noise = sv.has("4x4/Conv/noise_strength")
    cfg = GeneratorConfig(resolution=resolution, z_dim=int(z_dim), w_dim=int(w_dim), mapping_dims=[int(d) for d in dims],
                          channels=channels, c_dim=int(c_dim), label_mode=label_mode, embed_dim=int(embed),
                          mapping_lr_mul=lr_mul, normalize_z=normalize, use_noise=use_noise)
    out = {}
    for i in range(n_fc):
        out[f"mapping.fc{i}.weight"] = mv.take(f"Dense{i}/weight", (dims[i], dims[i + 1])).t().contiguous()
        out[f"mapping.fc{i}.bias"] = mv.take(f"Dense{i}/bias", (dims[i + 1],))
    if label_mode == "concat":
        out["mapping.label_concat"] = mv.take("LabelConcat/weight", (c_dim, z_dim))
    elif label_mode == "embed":
        out["mapping.embed.weight"] = mv.take("LabelEmbed/weight", (c_dim, embed)).t().contiguous()
        out["mapping.embed.bias"] = mv.take("LabelEmbed/bias", (embed,))
    mv.finish()
    out["mapping.w_avg"] = gv.take("dlatent_avg", (w_dim,))
    if gv.has("lod"):
        gv.take("lod")
    gv.finish()
    if sv.has("lod"):
        sv.take("lod")
    out["synthesis.const"] = sv.take("4x4/Const/const", (1, channels[4], 4, 4))[0]

    def layer(scope, dst, cin, cout, r, noise_idx, up):
        w = sv.take(f"{scope}/weight", (3, 3, cin, cout)).permute(3, 2, 0, 1)
        if up:
            w = w.flip([2, 3])
        out[f"{dst}.weight"] = w.contiguous()
        out[f"{dst}.affine.weight"] = sv.take(f"{scope}/mod_weight", (w_dim, cin)).t().contiguous()
        out[f"{dst}.affine.bias"] = sv.take(f"{scope}/mod_bias", (cin,)) + 1.0
        out[f"{dst}.bias"] = sv.take(f"{scope}/bias", (cout,))
        if use_noise:
            out[f"{dst}.noise_strength"] = sv.take(f"{scope}/noise_strength", ()).reshape([])
            out[f"{dst}.noise_const"] = sv.take(f"noise{noise_idx}", (1, 1, r, r))[0, 0]

    def torgb(scope, dst, cin):
        out[f"{dst}.weight"] = sv.take(f"{scope}/weight", (1, 1, cin, 3)).permute(3, 2, 0, 1).contiguous()
        out[f"{dst}.affine.weight"] = sv.take(f"{scope}/mod_weight", (w_dim, cin)).t().contiguous()
        out[f"{dst}.affine.bias"] = sv.take(f"{scope}/mod_bias", (cin,)) + 1.0
        out[f"{dst}.bias"] = sv.take(f"{scope}/bias", (3,))

    layer("4x4/Conv", "synthesis.b4.conv1", channels[4], channels[4], 4, 0, False)
    torgb("4x4/ToRGB", "synthesis.b4.torgb", channels[4])
    for r in res[1:]:
        lg = int(math.log2(r))
        layer(f"{r}x{r}/Conv0_up", f"synthesis.b{r}.conv0", channels[r // 2], channels[r], r, 2 * lg - 5, True)
        layer(f"{r}x{r}/Conv1", f"synthesis.b{r}.conv1", channels[r], channels[r], r, 2 * lg - 4, False)
        torgb(f"{r}x{r}/ToRGB", f"synthesis.b{r}.torgb", channels[r])
    sv.finish()
    return cfg, out, {"format": "nvidia-tf"}


# ---------------------------------------------------------------------------------------------
# dispatch

def read_checkpoint(path) -> Tuple[GeneratorConfig, Dict[str, torch.Tensor], dict]:
    """Read any supported file into (config, canonical tensors, info). Raises CheckpointError."""
    kind, obj = read_container(path)
    if kind == "torch":
        if isinstance(obj, dict) and obj.get("format") == OWN_FORMAT:
            try:
                cfg = GeneratorConfig.from_dict(obj["config"])
                tensors = dict(obj["state_dict"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"damaged {OWN_FORMAT} file ({_short(exc)})") from None
            return cfg, tensors, {"format": "traeumer"}
        if isinstance(obj, dict) and "g_ema" in obj:
            return convert_rosinality(obj)
        if isinstance(obj, dict) and any(k.startswith("convs.") or k.startswith("style.") for k in obj):
            raise CheckpointError("a bare state dict: expected rosinality's {'g_ema': ...} checkpoint")
        raise CheckpointError("not a generator: torch file without 'g_ema'")
    if isinstance(obj, dict) and any(isinstance(v, PersistentObject) for v in obj.values()):
        return convert_nvidia_pytorch(obj)
    if isinstance(obj, PersistentObject):
        return convert_nvidia_pytorch({"G": obj})
    if (isinstance(obj, tuple) and obj and all(isinstance(x, TFNetwork) for x in obj)) or isinstance(obj, TFNetwork):
        return convert_nvidia_tf(obj)
    raise CheckpointError(f"not a generator checkpoint (a pickled {type(obj).__name__})")
