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
import struct
import zipfile
from typing import Dict, Tuple

import numpy as np
import torch

from . import untrusted
from .network import GeneratorConfig, canonical_shapes, fir_2d
from .safe_pickle import PersistentObject, TFNetwork, UnsafePickleError, restricted_load
from .untrusted import CheckpointError, check_weights, clean_text, finite_number, whole_number

OWN_FORMAT = "traeumer-stylegan2"
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# ---------------------------------------------------------------------------------------------
# reading containers

def read_container(path) -> Tuple[str, object]:
    """Return (container kind, raw object): kinds "torch" (torch.save) or "pickle"."""
    path = os.fspath(path)
    problem = untrusted.path_problem(path)
    if problem:
        raise CheckpointError(problem)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise CheckpointError(f"cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError("the file is empty")
    if head.startswith(b"PK\x03\x04"):
        untrusted.check_zip_expansion(path)
        return "torch", _torch_load(path)
    if head[:1] != b"\x80":
        raise CheckpointError("not a generator checkpoint (neither a torch.save file nor a pickle)")
    try:
        with open(path, "rb") as handle:
            obj = restricted_load(handle)
    except UnsafePickleError as exc:
        raise CheckpointError(exc.refusal()) from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, UnicodeDecodeError, RuntimeError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"truncated or corrupt file ({type(exc).__name__}: {_short(exc)})") from None
    if isinstance(obj, int) and obj == TORCH_LEGACY_MAGIC:  # legacy (pre-zip) torch.save
        return "torch", _torch_load(path)
    return "pickle", obj


def _short(exc, limit=160) -> str:
    return clean_text(exc, limit)


def _torch_load(path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(untrusted.torch_load_refusal(path, exc)) from None
        except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, TypeError,
                IndexError, AttributeError, OverflowError, UnicodeDecodeError, MemoryError,
                struct.error) as exc:
            raise CheckpointError(f"truncated or corrupt file ({type(exc).__name__}: {_short(exc)})") from None


# ---------------------------------------------------------------------------------------------
# strict bookkeeping

class Source:
    """A flat dict of source tensors that must all be consumed.

    Every entry is checked (untrusted.check_weights: floating point, a view its storage backs,
    no more bytes than the file stores, finite) before any is converted to float32.
    """

    def __init__(self, tensors: Dict[str, object], what: str, budget=None, checked=False):
        if not isinstance(tensors, dict):
            raise CheckpointError(f"{what} is {untrusted.kind_of(tensors)}, expected a dict of tensors")
        for k, v in tensors.items():
            if not isinstance(v, (torch.Tensor, np.ndarray)):
                raise CheckpointError(f"{what} entry {clean_text(repr(k), 80)} is not a tensor ({type(v).__name__})")
        if not checked:
            check_weights(tensors, what, budget)
        self.t = {}
        for k, v in tensors.items():
            if isinstance(v, np.ndarray):
                v = torch.from_numpy(np.array(v, order="C", copy=True))
            self.t[k] = v.detach().to(torch.float32)
        self.used = set()
        self.what = what

    def shape(self, key, ndim: int) -> tuple:
        """The shape of a tensor the architecture is read from, which must have ``ndim`` axes."""
        if key not in self.t:
            raise CheckpointError(f"{self.what} lacks tensor {key!r}")
        shape = tuple(self.t[key].shape)
        if len(shape) != ndim:
            raise CheckpointError(f"shape mismatch: {key!r} is {list(shape)}, expected a {ndim}-d tensor")
        return shape

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


def _is_text(value, text: str) -> bool:
    return isinstance(value, str) and value == text


def _pow2(n) -> bool:
    return n >= 4 and (n & (n - 1)) == 0


# ---------------------------------------------------------------------------------------------
# rosinality

def convert_rosinality(ckpt: dict, budget=None) -> Tuple[GeneratorConfig, Dict[str, torch.Tensor], dict]:
    args = ckpt.get("args")
    if isinstance(args, argparse.Namespace) and getattr(args, "arch", "stylegan2") == "swagan":
        raise CheckpointError("SWAGAN architecture (not supported yet)")
    g = ckpt["g_ema"]
    if not isinstance(g, dict):
        raise CheckpointError("'g_ema' is not a state dict")
    src = Source(g, "g_ema", budget)
    rgb = src.t.get("to_rgb1.conv.weight")
    if rgb is not None and rgb.ndim >= 2 and rgb.shape[1] == 12:
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
    if n_mlp > untrusted.MAX_MAPPING_LAYERS or resolution > untrusted.MAX_RESOLUTION:
        raise CheckpointError(f"{n_mlp} mapping layers, {resolution} px: beyond what this loader supports")
    c4 = src.shape("input.input", 4)[1]
    z_dim = src.shape("style.1.weight", 2)[1]
    w_dim = src.shape(f"style.{n_mlp}.weight", 2)[0]
    dims = [z_dim] + [src.shape(f"style.{i}.weight", 2)[0] for i in range(1, n_mlp + 1)]
    channels = {4: c4}
    for i in range(n_convs // 2):
        channels[2 ** (i + 3)] = src.shape(f"convs.{2 * i}.conv.weight", 5)[1]
    img_ch = src.shape("to_rgb1.conv.weight", 5)[1]
    if img_ch != 3:
        raise CheckpointError(f"{img_ch} output channels; only RGB generators are supported")
    cfg = GeneratorConfig(resolution=resolution, z_dim=z_dim, w_dim=w_dim, mapping_dims=dims,
                          channels=channels, mapping_lr_mul=0.01)
    untrusted.check_config(cfg)
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
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        check_weights({"latent_avg": latent_avg}, "", budget)
        count = math.prod(latent_avg.shape)
        if count != w_dim:
            raise CheckpointError(f"shape mismatch: latent_avg has {count} values, w_dim is {w_dim}")
        out["mapping.w_avg"] = torch.as_tensor(latent_avg).float().reshape(-1)
    info = {"format": "rosinality", "snapshot": "args" in ckpt}
    if isinstance(args, argparse.Namespace):
        for name, want in (("n_mlp", n_mlp), ("latent", w_dim), ("size", resolution)):
            got = getattr(args, name, None)
            if got is not None and whole_number(got, f"args.{name}") != want:
                raise CheckpointError(f"args.{name}={got} disagrees with the tensors ({want})")
    return cfg, out, info


# ---------------------------------------------------------------------------------------------
# NVIDIA PyTorch (persistence pickles)

_MODULE_GROUPS = ("_parameters", "_buffers", "_modules")


def _module_tensors(obj, prefix="", out=None, attrs=None, seen=None):
    """Flatten a pickled nn.Module stand-in into {name: tensor}; collect per-module attributes.

    The structure comes from the file: every group must be a dict, a module may not contain
    itself or appear twice, nesting is bounded, and the module's plain numbers must be finite.
    """
    if out is None:
        out, attrs, seen = {}, {}, {}
    where = prefix.rstrip(".") or "the generator"
    if id(obj) in seen:
        first = seen[id(obj)]
        if first == "the generator" or where.startswith(first + "."):
            raise CheckpointError(f"module {where} is {first} again (a module that contains itself)")
        raise CheckpointError(f"module {where} is the same object as {first} (one module in two places)")
    if prefix.count(".") > untrusted.MAX_NESTING:
        raise CheckpointError(f"modules nested more than {untrusted.MAX_NESTING} deep at {where}")
    seen[id(obj)] = where
    state = obj.state if isinstance(obj, PersistentObject) else getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        raise CheckpointError(f"module {where} has no state dict")
    for group in _MODULE_GROUPS + ("_non_persistent_buffers_set",):
        value = state.get(group)
        kinds = (dict,) if group in _MODULE_GROUPS else (set, frozenset, list, tuple)
        if value is not None and not isinstance(value, kinds):
            raise CheckpointError(f"module {where}: {group} is {untrusted.kind_of(value)}, "
                                  f"expected a {kinds[0].__name__}")
        if isinstance(value, dict) and any(not isinstance(k, str) for k in value):
            raise CheckpointError(f"module {where}: {group} has names that are not text")
    untrusted.check_numbers(state, prefix.rstrip("."), skip=_MODULE_GROUPS)
    attrs[prefix.rstrip(".")] = (getattr(obj, "class_name", type(obj).__name__), state)
    skip = set(str(n) for n in (state.get("_non_persistent_buffers_set") or ()))
    for group in ("_parameters", "_buffers"):
        for name, t in (state.get(group) or {}).items():
            if t is None or name in skip:
                continue
            out[prefix + name] = t
    for name, sub in (state.get("_modules") or {}).items():
        if sub is not None:
            _module_tensors(sub, prefix + name + ".", out, attrs, seen)
    return out, attrs


def convert_nvidia_pytorch(obj: dict, budget=None):
    for name in ("G_ema", "G"):
        if isinstance(obj.get(name), PersistentObject) or hasattr(obj.get(name), "__dict__"):
            net = obj[name]
            break
    else:
        raise CheckpointError("not a generator: NVIDIA pickle without 'G_ema' or 'G'")
    tensors, attrs = _module_tensors(net)
    if any(k.startswith("synthesis.input.") or re.match(r"synthesis\.L\d+_", k) for k in tensors):
        # training.networks_stylegan3 (-T, -R)
        from .stylegan3 import convert_nvidia_stylegan3
        return convert_nvidia_stylegan3(tensors, attrs, budget)
    src = Source(tensors, "generator", budget)
    if not src.has("synthesis.b4.const"):
        raise CheckpointError("not a StyleGAN2 generator (no synthesis.b4.const)")
    n_fc, dims, w_dim, z_dim, c_dim, embed, label_mode = nvidia_mapping_layout(src)
    res = sorted(int(m.group(1)) for k in tensors for m in [re.match(r"synthesis\.b(\d{1,6})\.conv1\.weight$", k)] if m)
    if not res or res[0] != 4 or any(b != 2 * a for a, b in zip(res, res[1:])):
        raise CheckpointError(f"unexpected synthesis blocks {res[:12]}")
    if res[-1] > untrusted.MAX_RESOLUTION:
        raise CheckpointError(f"{res[-1]} px: beyond what this loader supports ({untrusted.MAX_RESOLUTION})")
    channels = {r: src.shape(f"synthesis.b{r}.conv1.weight", 4)[0] for r in res}
    lr_mul = 0.01
    fc_state = attrs.get("mapping.fc0", (None, {}))[1]
    if fc_state.get("bias_gain") is not None:
        lr_mul = finite_number(fc_state["bias_gain"], "mapping.fc0.bias_gain", positive=True)
    syn = attrs.get("synthesis", (None, {}))[1]
    arch = syn.get("architecture")
    if arch is not None and not _is_text(arch, "skip"):
        raise CheckpointError(f"{clean_text(repr(arch), 40)} synthesis architecture (only 'skip' is supported)")
    for name, (cls, st) in attrs.items():
        act = st.get("activation")
        if name.startswith("mapping.fc") and act is not None and not _is_text(act, "lrelu"):
            raise CheckpointError(f"{name}: activation {clean_text(repr(act), 40)} (only lrelu is supported)")
    for r in res:
        if not src.has(f"synthesis.b{r}.torgb.weight"):
            raise CheckpointError(f"no torgb in block {r}: not the 'skip' architecture")
    img_ch = src.shape(f"synthesis.b{res[0]}.torgb.weight", 4)[0]
    if img_ch != 3:
        raise CheckpointError(f"{img_ch} output channels; only RGB generators are supported")
    use_noise = src.has("synthesis.b4.conv1.noise_strength")
    cfg = GeneratorConfig(resolution=res[-1], z_dim=z_dim, w_dim=w_dim, mapping_dims=dims,
                          channels=channels, c_dim=int(c_dim), label_mode=label_mode,
                          embed_dim=int(embed), mapping_lr_mul=lr_mul, use_noise=use_noise)
    untrusted.check_config(cfg)
    out = {}
    take_nvidia_mapping(src, dims, c_dim, embed, out)
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


def _tf_state(net: TFNetwork, what: str) -> dict:
    state = getattr(net, "state", None)
    if not isinstance(state, dict):
        raise CheckpointError(f"{what}: the TF network has no state dict")
    return state


def _one_of(value, allowed) -> bool:
    return (isinstance(value, (str, int, np.integer)) and not isinstance(value, bool)
            and any(value == a for a in allowed))


def _tf_check_kwargs(net: TFNetwork, what: str):
    kw = _tf_state(net, what).get("static_kwargs")
    if kw is None:
        kw = {}
    if not isinstance(kw, dict) or any(not isinstance(k, str) for k in kw):
        raise CheckpointError(f"{what}: static_kwargs is {untrusted.kind_of(kw)}, expected a dict of settings")
    unknown = sorted(set(kw) - TF_KNOWN_KWARGS)
    if unknown:
        raise CheckpointError(f"unknown TF kwargs in {what}: {', '.join(unknown)} (a fork this loader does not know)")
    untrusted.check_numbers(kw, f"{what} static_kwargs")
    checks = {"architecture": ("skip",), "nonlinearity": ("lrelu",), "mapping_nonlinearity": ("lrelu",),
              "num_channels": (3,), "structure": ("auto", "fixed")}
    for k, allowed in checks.items():
        if k in kw and not _one_of(kw[k], allowed):
            raise CheckpointError(f"TF kwarg {k}={clean_text(repr(kw[k]), 40)} is not supported (only {allowed[0]!r})")
    kernel = kw.get("resample_kernel")
    if "resample_kernel" in kw and not (isinstance(kernel, (list, tuple)) and len(kernel) == 4
                                        and all(_one_of(v, (t,)) for v, t in zip(kernel, (1, 3, 3, 1)))):
        raise CheckpointError(f"TF kwarg resample_kernel={clean_text(repr(kernel), 40)} is not supported")
    return kw


def _tf_vars(net: TFNetwork, strip: str) -> Dict[str, np.ndarray]:
    variables = _tf_state(net, strip).get("variables")
    if variables is None:
        variables = []
    if not isinstance(variables, (list, tuple)):
        raise CheckpointError(f"{strip}: variables is {untrusted.kind_of(variables)}, expected a list of (name, array) pairs")
    out = {}
    for index, item in enumerate(variables):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise CheckpointError(f"{strip}: variable {index} is not a (name, array) pair")
        name, value = item
        if name.startswith(strip + "/"):
            name = name[len(strip) + 1:]
        if isinstance(value, (float, np.generic)) and not isinstance(value, (np.bool_, np.object_)):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{strip}: variable {clean_text(repr(name), 80)} is {untrusted.kind_of(value)}, not an array")
        if name in out:
            raise CheckpointError(f"{strip}: variable {clean_text(repr(name), 80)} appears twice")
        out[name] = value
    return out


def convert_nvidia_tf(obj, budget=None):
    gs = obj[2] if isinstance(obj, tuple) and len(obj) == 3 else obj
    if not isinstance(gs, TFNetwork):
        raise CheckpointError("not a generator: TF pickle without a Gs network")
    comps = _tf_state(gs, "Gs").get("components")
    if comps is None:
        comps = {}
    if not isinstance(comps, dict):
        raise CheckpointError(f"Gs: components is {untrusted.kind_of(comps)}, expected a dict of networks")
    mapping, synthesis = comps.get("mapping"), comps.get("synthesis")
    if not isinstance(mapping, TFNetwork) or not isinstance(synthesis, TFNetwork):
        raise CheckpointError("not a generator: TF network without mapping/synthesis components")
    if len({id(gs), id(mapping), id(synthesis)}) != 3:
        raise CheckpointError("Gs names itself or one network twice as its mapping/synthesis components")
    version = gs.state.get("version", 4)
    if not _one_of(version, (2, 3, 4, 5)):
        raise CheckpointError(f"unknown TF network pickle version {clean_text(repr(version), 40)}")
    kw = dict(_tf_check_kwargs(gs, "Gs"))
    mkw = _tf_check_kwargs(mapping, "G_mapping")
    _tf_check_kwargs(synthesis, "G_synthesis")                  # refuses unknown kwargs
    sfunc = synthesis.state.get("build_func_name", "")
    if not (isinstance(sfunc, str) and sfunc in ("G_synthesis_stylegan2", "G_synthesis", "")):
        raise CheckpointError(f"synthesis network {clean_text(repr(sfunc), 60)} is not the StyleGAN2 skip generator")
    parts = {"G_mapping": _tf_vars(mapping, "G_mapping"), "G_synthesis": _tf_vars(synthesis, "G_synthesis"),
             "Gs": _tf_vars(gs, "G")}
    check_weights({f"{what}/{k}": v for what, vs in parts.items() for k, v in vs.items()}, "", budget)
    mv = Source(parts["G_mapping"], "G_mapping", checked=True)
    sv = Source(parts["G_synthesis"], "G_synthesis", checked=True)
    gv = Source(parts["Gs"], "Gs", checked=True)
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
    dims = [mv.shape("Dense0/weight", 2)[0]] + [mv.shape(f"Dense{i}/weight", 2)[1] for i in range(n_fc)]
    w_dim = dims[-1]
    label_mode, c_dim, embed = "none", 0, 0
    z_dim = dims[0]
    if mv.has("LabelConcat/weight"):
        label_mode = "concat"
        c_dim, z_dim = mv.shape("LabelConcat/weight", 2)
        if dims[0] != 2 * z_dim:
            raise CheckpointError(f"shape mismatch: Dense0 takes {dims[0]} inputs, expected {2 * z_dim} (latent + label)")
    elif mv.has("LabelEmbed/weight"):
        label_mode = "embed"
        c_dim, embed = mv.shape("LabelEmbed/weight", 2)
        z_dim = dims[0] - embed
    res = sorted(int(m.group(1)) for k in sv.t for m in [re.match(r"(\d{1,6})x\1/Conv1/weight$", k)] if m)
    res = [4] + res
    if any(b != 2 * a for a, b in zip(res, res[1:])):
        raise CheckpointError(f"unexpected synthesis blocks {res[:12]}")
    resolution = res[-1]
    if resolution > untrusted.MAX_RESOLUTION:
        raise CheckpointError(f"{resolution} px: beyond what this loader supports ({untrusted.MAX_RESOLUTION})")
    if "resolution" in kw and whole_number(kw["resolution"], "TF kwarg resolution") != resolution:
        raise CheckpointError(f"TF kwarg resolution={kw['resolution']} disagrees with the tensors ({resolution})")
    channels = {4: sv.shape("4x4/Conv/weight", 4)[3]}
    for r in res[1:]:
        channels[r] = sv.shape(f"{r}x{r}/Conv1/weight", 4)[3]
    lr_mul = finite_number(mkw.get("mapping_lrmul", kw.get("mapping_lrmul", 0.01)), "TF kwarg mapping_lrmul",
                           positive=True)
    normalize = mkw.get("normalize_latents", kw.get("normalize_latents", True))
    if not isinstance(normalize, (bool, int, np.bool_, np.integer)):
        raise CheckpointError(f"TF kwarg normalize_latents={clean_text(repr(normalize), 40)} is not true or false")
    normalize = bool(normalize)
    use_noise = sv.has("4x4/Conv/noise_strength")
    cfg = GeneratorConfig(resolution=resolution, z_dim=int(z_dim), w_dim=int(w_dim), mapping_dims=[int(d) for d in dims],
                          channels=channels, c_dim=int(c_dim), label_mode=label_mode, embed_dim=int(embed),
                          mapping_lr_mul=lr_mul, normalize_z=normalize, use_noise=use_noise)
    untrusted.check_config(cfg)
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

def _data_budget(path) -> int:
    """Bytes of weights the file can really hold: its size, or what its zip records inflate to."""
    with open(path, "rb") as handle:
        zipped = handle.read(4).startswith(b"PK\x03\x04")
    return untrusted.check_zip_expansion(path) if zipped else os.path.getsize(path)


def _check_canonical(cfg: GeneratorConfig, tensors: Dict[str, torch.Tensor]) -> None:
    """The converted tensors against the architecture, before the network is built."""
    untrusted.check_config(cfg)
    expected = canonical_shapes(cfg)
    optional = {k for k in expected if k.endswith(".noise_const")} | {"mapping.w_avg"}
    if not cfg.use_noise:
        optional |= {k for k in expected if k.endswith(".noise_strength")}
    for key, t in tensors.items():
        if key not in expected:
            raise CheckpointError(f"unexpected tensor {clean_text(repr(key), 80)} for this architecture")
        if tuple(t.shape) != expected[key]:
            raise CheckpointError(f"shape mismatch: {key!r} is {list(t.shape)}, expected {list(expected[key])}")
    missing = sorted(set(expected) - set(tensors) - optional)
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"lacks tensor {missing[0]!r}{more}")


def _read_own_format(obj: dict, budget: int):
    """StyleGAN2 files (no "architecture" entry) and StyleGAN3 ones ("stylegan3-t"/"-r")."""
    arch = obj.get("architecture", "stylegan2")
    if arch not in ("stylegan2", "stylegan3-t", "stylegan3-r"):
        raise CheckpointError(f"{OWN_FORMAT} file of unknown architecture {clean_text(repr(arch), 40)}")
    try:
        config, state = obj["config"], obj["state_dict"]
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise TypeError("config and state_dict must be dicts")
        if arch == "stylegan2":
            cfg = GeneratorConfig.from_dict(config)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"damaged {OWN_FORMAT} file ({_short(exc)})") from None
    info = {"format": "traeumer"}
    if arch == "stylegan2":
        untrusted.check_config(cfg)
    else:
        from .stylegan3 import config_from_dict
        cfg = config_from_dict(config)
        info["architecture"] = cfg.variant
    check_weights(state, "state_dict", budget)
    tensors = {k: (torch.from_numpy(np.array(v, order="C", copy=True)) if isinstance(v, np.ndarray)
                   else v.detach()).float() for k, v in state.items()}
    return cfg, tensors, info


def _convert(kind, obj, budget):
    if kind == "torch":
        if isinstance(obj, dict) and obj.get("format") == OWN_FORMAT:
            return _read_own_format(obj, budget)
        if isinstance(obj, dict) and "g_ema" in obj:
            return convert_rosinality(obj, budget)
        if isinstance(obj, dict) and any(isinstance(k, str) and (k.startswith("convs.") or k.startswith("style."))
                                         for k in obj):
            raise CheckpointError("a bare state dict: expected rosinality's {'g_ema': ...} checkpoint")
        raise CheckpointError("not a generator: torch file without 'g_ema'")
    if isinstance(obj, dict) and any(isinstance(v, PersistentObject) for v in obj.values()):
        return convert_nvidia_pytorch(obj, budget)
    if isinstance(obj, PersistentObject):
        return convert_nvidia_pytorch({"G": obj}, budget)
    if (isinstance(obj, tuple) and obj and all(isinstance(x, TFNetwork) for x in obj)) or isinstance(obj, TFNetwork):
        return convert_nvidia_tf(obj, budget)
    raise CheckpointError(f"not a generator checkpoint (a pickled {type(obj).__name__})")


def read_checkpoint(path) -> Tuple[GeneratorConfig, Dict[str, torch.Tensor], dict]:
    """Read any supported file into (config, canonical tensors, info). Raises CheckpointError.

    Everything the file says is checked before it is used: tensor layouts and dtypes, the
    bytes they claim against the bytes stored, finite values and numbers, the architecture's
    bounds, and every converted tensor against the architecture's shapes.
    """
    path = os.fspath(path)
    kind, obj = read_container(path)
    budget = _data_budget(path)
    try:
        cfg, tensors, info = _convert(kind, obj, budget)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, RecursionError, OverflowError) as exc:
        # the structure came from the file; what the explicit checks above did not foresee
        raise CheckpointError(f"malformed checkpoint ({type(exc).__name__}: {_short(exc)})") from None
    if info.get("architecture", "").startswith("stylegan3"):
        from .stylegan3 import check_canonical
        check_canonical(cfg, tensors)
    else:
        _check_canonical(cfg, tensors)
    return cfg, tensors, info


def nvidia_mapping_layout(src):
    """The mapping network of an NVIDIA PyTorch generator (ADA, StyleGAN2 and StyleGAN3 alike),
    from its tensors' shapes: (layers, dims, w_dim, z_dim, c_dim, embed_dim, label_mode)."""
    n_fc = 0
    while src.has(f"mapping.fc{n_fc}.weight"):
        n_fc += 1
    if n_fc == 0:
        raise CheckpointError("mapping network without layers (no mapping.fc0.weight)")
    dims = [src.shape("mapping.fc0.weight", 2)[1]] + [src.shape(f"mapping.fc{i}.weight", 2)[0] for i in range(n_fc)]
    c_dim = embed = 0
    label_mode = "none"
    if src.has("mapping.embed.weight"):
        embed, c_dim = src.shape("mapping.embed.weight", 2)
        label_mode = "embed"
    return n_fc, dims, dims[-1], dims[0] - embed, c_dim, embed, label_mode


def take_nvidia_mapping(src, dims, c_dim, embed, out) -> None:
    """Move the mapping network's tensors (checked against ``dims``) from ``src`` into ``out``."""
    for i in range(len(dims) - 1):
        out[f"mapping.fc{i}.weight"] = src.take(f"mapping.fc{i}.weight", (dims[i + 1], dims[i]))
        out[f"mapping.fc{i}.bias"] = src.take(f"mapping.fc{i}.bias", (dims[i + 1],))
    if embed:
        out["mapping.embed.weight"] = src.take("mapping.embed.weight", (embed, c_dim))
        out["mapping.embed.bias"] = src.take("mapping.embed.bias", (embed,))
