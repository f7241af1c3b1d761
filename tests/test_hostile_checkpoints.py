# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile and malformed checkpoints and encoder files (issue #12, "Nothing lost, nothing crashes").

Each test writes tiny files in the real formats (tests/stylegan2_fixtures.py) with one defect:
memory bombs (stride-0 tensors, storages shared by many tensors, zip records that inflate),
NaN/Inf numbers and weights, malformed pickles, forbidden globals, and paths that are not files.
Every one is refused with exit status 2 and one line (CLI) or a TraeumerError naming the file
and the problem; the memory tests measure the refusing process's peak resident memory.
"""

import collections
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import stylegan2_fixtures as fx
from traeumer_blender.errors import TraeumerError
from traeumer_blender.stylegan2 import inspect_checkpoint, load_generator

ROOT = Path(__file__).resolve().parents[1]
PEAK_LIMIT = 1536 << 20          # a refusing process stays below 1.5 GiB resident
ADDRESS_CAP = 4 << 30            # CLI runs get this much address space: a regression fails, the host lives
BOMB_VALUES = 550_000_000        # fp16 values one stored value claims (2.2 GB once made float32)

_MEASURED_RUN = r"""
import json, resource, subprocess, sys
cap, timeout = int(sys.argv[1]), float(sys.argv[2])
def cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
try:
    p = subprocess.run(sys.argv[3:], capture_output=True, text=True, preexec_fn=cap_memory, timeout=timeout)
    rc, out, err = p.returncode, p.stdout, p.stderr
except subprocess.TimeoutExpired as exc:
    rc, out, err = "timeout", "", str(exc)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": rc, "stdout": out, "stderr": err, "peak": peak}))
"""


def run_cli(*args, timeout=240):
    """Run ``python -m traeumer_blender ARGS`` in a fresh parent that reports the child's peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TRAEUMER_DEBUG", None)
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURED_RUN, str(ADDRESS_CAP), str(timeout),
         sys.executable, "-m", "traeumer_blender", *map(str, args)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60)
    assert measured.returncode == 0, measured.stderr
    return json.loads(measured.stdout)


def assert_refused(result, *mentions):
    """Exit 2, exactly one line on stderr, no traceback, no escape codes, under the memory limit."""
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["rc"] == 2, result["stderr"][-2000:]
    assert len(lines) == 1, result["stderr"][-2000:]
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in result["stderr"] and "\x1b" not in line
    assert result["peak"] < PEAK_LIMIT, f"peak {result['peak'] / 2**20:.0f} MiB: {line}"
    for text in mentions:
        assert text.lower() in line.lower(), line
    return line


def fails(path, *mentions, load=True):
    """inspect_checkpoint (and load_generator) refuse with one line starting with the path."""
    calls = [inspect_checkpoint] + ([lambda p: load_generator(p, device="cpu", precision="fp32")] if load else [])
    for call in calls:
        with pytest.raises(TraeumerError) as err:
            call(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}:") and "\n" not in msg, msg
        for text in mentions:
            assert text.lower() in msg.lower(), msg
    return msg


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAEUMER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def weights():
    cfg = fx.tiny_config()
    return cfg, fx.random_state(cfg, seed=3)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "two_seconds.wav"
    t = np.arange(2 * 16000) / 16000
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


def one_value(n, dtype=torch.float16):
    """n values that are one stored value (stride 0): 2 bytes in the file."""
    return torch.zeros(1, dtype=dtype).expand(n)


def nvidia_with(cfg, sd, path, edit):
    """An NVIDIA PyTorch pickle whose G_ema was changed by edit(generator object) before writing."""
    with fx.fake_nvidia_modules():
        g = fx.nvidia_generator_object(cfg, sd)
        edit(g)
    fx.write_nvidia_pytorch(path, cfg, sd, top={"G_ema": g, "G": g})
    return path


def module_state(g, *names):
    state = g.meta["state"]
    for name in names:
        state = state["_modules"][name].meta["state"]
    return state


def tf_with(cfg, sd, path, edit):
    """An NVIDIA TF pickle whose (Gs, mapping, synthesis) stand-ins were changed by edit."""
    mv, sv, gv = fx.tf_variables(cfg, sd)
    kw = dict(num_channels=3, resolution=cfg.resolution, label_size=0, fmap_base=16 << 10,
              mapping_layers=len(cfg.mapping_dims) - 1, architecture="skip", latent_size=cfg.z_dim,
              dlatent_size=cfg.w_dim, mapping_lrmul=cfg.mapping_lr_mul)
    with fx.fake_nvidia_modules():
        mapping = fx.TFNetworkW("G_mapping", "G_mapping", dict(kw), mv)
        synthesis = fx.TFNetworkW("G_synthesis", "G_synthesis_stylegan2", dict(kw), sv)
        gs = fx.TFNetworkW("G", "G_main", dict(kw), gv, {"mapping": mapping, "synthesis": synthesis})
        edit(gs, mapping, synthesis)
        with open(path, "wb") as handle:
            pickle.dump((gs, gs, gs), handle, protocol=4)
    return path


def own_format_with(cfg, sd, path, edit):
    """This package's own format (Generator.save), its dict changed by edit."""
    fx.make_generator(cfg, sd).save(path)
    obj = torch.load(path, weights_only=True)
    edit(obj)
    torch.save(obj, path)
    return path


# ---------------------------------------------------------------------------------------------
# 1. memory bombs: refused from the numbers, before anything is allocated

def _bomb_file(kind, tmp_path, cfg, sd):
    bias = "synthesis.b8.conv1.bias"
    if kind in ("rosinality", "rosinality-legacy"):
        path = tmp_path / f"{kind}.pt"
        fx.write_rosinality(path, cfg, sd, legacy=kind.endswith("legacy"),
                            mutate=lambda g: g.__setitem__("convs.1.activate.bias", one_value(BOMB_VALUES)))
    elif kind == "nvidia-pytorch":
        path = nvidia_with(cfg, sd, tmp_path / "nvidia.pkl", lambda g: module_state(
            g, "synthesis", "b8", "conv1")["_parameters"].__setitem__("bias", one_value(BOMB_VALUES)))
    else:
        path = own_format_with(cfg, sd, tmp_path / "own.pt",
                               lambda o: o["state_dict"].__setitem__(bias, one_value(BOMB_VALUES)))
    return path


@pytest.mark.parametrize("kind", ["rosinality", "rosinality-legacy", "nvidia-pytorch", "traeumer"])
def test_stride_zero_tensor_is_refused_before_it_is_copied(tmp_path, weights, kind):
    cfg, sd = weights
    path = _bomb_file(kind, tmp_path, cfg, sd)
    assert path.stat().st_size < 200_000               # 550 million values from a tiny file
    line = assert_refused(run_cli("inspect-model", path), str(path), f"{BOMB_VALUES} values", "refused")
    assert "1 stored one" in line


def test_stride_zero_bomb_through_generate(tmp_path, weights, wav):
    cfg, sd = weights
    path = _bomb_file("rosinality", tmp_path, cfg, sd)
    out = tmp_path / "out"
    result = run_cli("generate", "--audio", wav, "--out", out, "--model", path, "--fps", "4",
                     "--resolution", "32", "--quiet")
    assert_refused(result, str(path), f"{BOMB_VALUES} values")
    assert not out.exists() or not [p for p in out.iterdir() if p.name.startswith("frame_")]


def test_architecture_made_of_stride_zero_tensors_is_refused(tmp_path, weights, wav):
    """Every tensor consistent with 20000 channels and z/w sizes: the network built from it would
    need about 100 GB; the file is tiny because every tensor repeats one value."""
    cfg, sd = weights
    big = 20_000
    g = fx.rosinality_state(cfg, sd)
    for key in list(g):
        if not key.startswith("noises.") and not key.endswith("kernel"):
            g[key] = one_value(1, torch.float32).reshape([1] * g[key].ndim).expand(
                [big if d == 16 else d for d in g[key].shape])
    path = tmp_path / "wide.pt"
    torch.save({"g_ema": g}, path)                       # no latent_avg: it would be computed
    assert path.stat().st_size < 200_000
    result = run_cli("generate", "--audio", wav, "--out", tmp_path / "out", "--model", path,
                     "--fps", "4", "--resolution", "32", "--quiet")
    assert_refused(result, str(path), "values", "refused")


def test_tensors_sharing_one_storage_are_refused(tmp_path, weights):
    """150 tensors, each a full dense view of the same 8 MB storage: each would be copied."""
    cfg, sd = weights
    shared = torch.zeros(4 << 20, dtype=torch.float16)

    def alias(g):
        for i in range(150):
            g[f"convs.0.extra_{i}"] = shared[:]

    path = tmp_path / "aliased.pt"
    fx.write_rosinality(path, cfg, sd, mutate=alias)
    assert path.stat().st_size < 12 << 20
    assert_refused(run_cli("inspect-model", path), str(path), "tensors claim", "the file stores")


def test_zip_records_that_inflate_far_beyond_the_file_are_refused(tmp_path):
    """A deflated record declaring 1.6 GB inside a 1.6 MB torch.save zip (torch.load inflates it)."""
    small = tmp_path / "small.pt"
    values = 400_000_000
    torch.save({"g_ema": {"input.input": torch.zeros(8)}}, small)
    bomb = tmp_path / "inflates.pt"
    with zipfile.ZipFile(small) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("/data.pkl"):   # the storage now claims 400 million floats
                data = data.replace(b"K\x08t", b"J" + struct.pack("<i", values) + b"t")
                assert struct.pack("<i", values) in data
            if info.filename.endswith("/data/0"):
                with target.open(info.filename, "w", force_zip64=True) as record:
                    left = values * 4
                    while left:
                        record.write(bytes(min(left, 1 << 24)))
                        left -= min(left, 1 << 24)
                continue
            target.writestr(info.filename, data)
    assert bomb.stat().st_size < 20 << 20
    assert_refused(run_cli("inspect-model", bomb), str(bomb), "inflate", "refused")


def test_views_beyond_their_storage_and_malformed_views_are_refused():
    from traeumer_blender.stylegan2.untrusted import CheckpointError, check_view
    assert check_view("t", 64, 4, 0, (4, 4), (4, 1)) == 16
    assert check_view("t", 64, 4, 0, (4, 4), (1, 4)) == 16          # transposed: fine
    assert check_view("t", 4, 4, 0, (1, 1, 1), (0, 0, 0)) == 1       # size-1 dims may have any stride
    for args in [(64, 4, 0, (5, 4), (4, 1)), (64, 4, 1, (4, 4), (4, 1)), (64, 4, 0, (4, 4), (1, 1)),
                 (64, 4, 0, (100,), (0,)), (64, 4, 0, (4, -1), (4, 1)), (64, 4, 0, (4, 4), (4,)),
                 (64, 4, 0, (4.0, 4), (4, 1)), (64, 4, -1, (4,), (1,))]:
        with pytest.raises(CheckpointError):
            check_view("t", *args)


# ---------------------------------------------------------------------------------------------
# 2. NaN / Inf: numbers of a pickled network, weights, w_avg, encoder weights

@pytest.mark.parametrize("where, attribute, value", [
    (("mapping", "fc0"), "bias_gain", math.nan),
    ((), "_init_kwargs.mapping_kwargs.lr_multiplier", math.nan),
    (("mapping",), "w_avg_beta", math.nan),
    (("synthesis", "b8", "conv1"), "conv_clamp", math.inf),
    (("synthesis", "b16", "torgb"), "conv_clamp", -math.inf),
])
def test_non_finite_numbers_of_an_nvidia_pickle_are_refused(tmp_path, weights, where, attribute, value):
    cfg, sd = weights

    def edit(g):
        target = module_state(g, *where)
        *parents, last = attribute.split(".")
        for name in parents:
            target = target[name]
        target[last] = value

    path = nvidia_with(cfg, sd, tmp_path / "numbers.pkl", edit)
    fails(path, ".".join(where + (attribute,)), str(value))


@pytest.mark.parametrize("network, key, value", [
    ("mapping", "mapping_lrmul", math.nan), ("gs", "dlatent_avg_beta", math.inf),
    ("synthesis", "conv_clamp", math.nan), ("gs", "truncation_psi", -math.inf)])
def test_non_finite_numbers_of_a_tf_pickle_are_refused(tmp_path, weights, network, key, value):
    cfg, sd = weights

    def edit(gs, mapping, synthesis):
        {"gs": gs, "mapping": mapping, "synthesis": synthesis}[network].state["static_kwargs"][key] = value

    path = tf_with(cfg, sd, tmp_path / "numbers_tf.pkl", edit)
    fails(path, f"static_kwargs.{key}", str(value))


def test_non_finite_weights_and_w_avg_are_refused_where_the_file_is_read(tmp_path, weights):
    cfg, sd = weights
    nan = float("nan")
    p = tmp_path / "weight.pt"
    fx.write_rosinality(p, cfg, sd, mutate=lambda g: g["convs.0.conv.weight"].view(-1).__setitem__(5, nan))
    fails(p, "'convs.0.conv.weight'", "NaN or infinite")
    p = tmp_path / "latent_avg.pt"
    torch.save({"g_ema": fx.rosinality_state(cfg, sd), "latent_avg": torch.full([cfg.w_dim], math.inf)}, p)
    fails(p, "latent_avg", "NaN or infinite")
    p = nvidia_with(cfg, sd, tmp_path / "w_avg.pkl", lambda g: module_state(g, "mapping")["_buffers"].__setitem__(
        "w_avg", torch.full([cfg.w_dim], nan)))
    fails(p, "mapping.w_avg", "NaN or infinite")
    p = tf_with(cfg, sd, tmp_path / "dlatent.pkl", lambda gs, m, s: gs.state["variables"].__setitem__(
        1, ("dlatent_avg", np.full(cfg.w_dim, np.nan, np.float32))))
    fails(p, "dlatent_avg", "NaN or infinite")
    p = own_format_with(cfg, sd, tmp_path / "own.pt", lambda o: o["config"].__setitem__("mapping_lr_mul", nan))
    fails(p, "learning-rate multiplier", "nan")
    # through the CLI: inspect-model used to describe such files with exit status 0
    assert_refused(run_cli("inspect-model", tmp_path / "weight.pt"), "NaN or infinite")


def _short_chunk_state(seed=1):
    from traeumer_blender.encoders.short_chunk_res import ShortChunkCnnRes
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in ShortChunkCnnRes().state_dict().items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif value.is_floating_point():
            state[key] = 0.1 * torch.randn(value.shape, generator=generator)
        else:
            state[key] = value
    return state


def test_short_chunk_res_with_nan_weights_is_refused_by_tags(tmp_path, wav):
    state = _short_chunk_state()
    state["layer3.conv_2.weight"][0, 0, 1, 1] = float("nan")
    path = tmp_path / "best_model.pth"
    torch.save(state, path)
    assert_refused(run_cli("tags", "--audio", wav, "--encoder", path, "--json"),
                   str(path), "'layer3.conv_2.weight'", "NaN or infinite")
    state = _short_chunk_state()
    state["dense2.weight"] = state["dense2.weight"].to(torch.complex64)
    torch.save(state, path)
    from traeumer_blender.encoders import load_encoder
    with pytest.raises(TraeumerError, match="dense2.weight.*complex64"):
        load_encoder(path)


def test_musicnn_weights_with_nan_are_refused_and_a_nan_cache_is_rebuilt(tmp_path, monkeypatch):
    from traeumer_blender.encoders import load_encoder, musicnn_models
    from traeumer_blender.encoders.tf_checkpoint import read_tf_checkpoint
    original = musicnn_models.musicnn_checkpoint_folder("MTT_vgg")
    # a NaN in the cached conversion: never trusted, rebuilt from the TF checkpoint
    good = load_encoder("mtt_vgg")
    cached = next((tmp_path / "cache" / "encoders").glob("mtt_vgg-*.pt"))
    state = torch.load(cached, weights_only=True)
    state["convs.0.weight"].view(-1)[0] = float("nan")
    torch.save(state, cached)
    again = load_encoder("mtt_vgg")
    assert torch.isfinite(again.network.convs[0].weight).all()
    assert torch.equal(again.network.convs[0].weight, good.network.convs[0].weight)
    # a NaN in the TF checkpoint itself (a damaged installation)
    damaged = tmp_path / "MTT_vgg"
    shutil.copytree(original, damaged)
    kernel = read_tf_checkpoint(str(original) + "/")["1CNN/kernel"]
    shard = damaged / ".data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    at = bytes(data).find(kernel.astype("<f4").tobytes())
    assert at >= 0
    data[at:at + 4] = struct.pack("<f", float("nan"))
    shard.write_bytes(bytes(data))
    monkeypatch.setattr(musicnn_models, "musicnn_checkpoint_folder", lambda folder: damaged)
    with pytest.raises(TraeumerError, match=r"1CNN/kernel.*NaN or infinite"):
        load_encoder("mtt_vgg")


# ---------------------------------------------------------------------------------------------
# 3. malformed pickles and torch files: one clear line, never an internal error

TF_DEFECTS = {
    "variables as triples": (lambda gs, m, s: m.state.__setitem__(
        "variables", [(n, v, 0) for n, v in m.state["variables"]]), "variable 0 is not a (name, array) pair"),
    "variables an int": (lambda gs, m, s: m.state.__setitem__("variables", 5), "variables is an int"),
    "variables a dict": (lambda gs, m, s: m.state.__setitem__("variables", dict(m.state["variables"])),
                         "variables is a dict"),
    "scalar dense weight": (lambda gs, m, s: m.state["variables"].__setitem__(
        0, ("Dense0/weight", np.float32(1.0))), "'Dense0/weight' is [], expected a 2-d tensor"),
    "1-d conv weight": (lambda gs, m, s: s.state["variables"].__setitem__(
        1, ("4x4/Conv/weight", np.ones(5, np.float32))), "'4x4/Conv/weight' is [5], expected a 4-d"),
    "integer components": (lambda gs, m, s: gs.state.__setitem__("components", 7), "components is an int"),
    "integer static_kwargs": (lambda gs, m, s: m.state.__setitem__("static_kwargs", 5),
                              "static_kwargs is an int"),
    "text learning rate": (lambda gs, m, s: m.state["static_kwargs"].__setitem__("mapping_lrmul", "fast"),
                           "mapping_lrmul is 'fast'"),
    "text resolution": (lambda gs, m, s: gs.state["static_kwargs"].__setitem__("resolution", "big"),
                        "resolution is 'big'"),
    "integer weights": (lambda gs, m, s: m.state["variables"].__setitem__(
        0, ("Dense0/weight", np.ones((16, 16), np.int32))), "int32"),
    "object array": (lambda gs, m, s: m.state["variables"].__setitem__(
        0, ("Dense0/weight", np.array([[1.0, "x"]], dtype=object))), "array of object"),
    "Gs is its own mapping": (lambda gs, m, s: gs.state["components"].__setitem__("mapping", gs),
                              "names itself"),
}


@pytest.mark.parametrize("defect", sorted(TF_DEFECTS))
def test_malformed_tf_pickles_are_refused_clearly(tmp_path, weights, defect):
    cfg, sd = weights
    edit, mention = TF_DEFECTS[defect]
    fails(tf_with(cfg, sd, tmp_path / "malformed_tf.pkl", edit), mention, load=False)


class _ContainsItself(fx.Persistent):
    """An NVIDIA persistent object whose state, set by BUILD once it exists, lists itself among
    its own submodules (a pickle can express that; a loader that recurses never ends)."""

    def __reduce__(self):
        state = dict(self.meta["state"])
        state["_modules"] = collections.OrderedDict(state["_modules"], loop=self)
        return (fx._fake_reconstruct, (self.meta,), {"state": state})


def _contains_itself(g):
    mapping = g.meta["state"]["_modules"]["mapping"]
    g.meta["state"]["_modules"]["mapping"] = _ContainsItself(mapping.meta["class_name"], mapping.meta["state"])


NVIDIA_DEFECTS = {
    "parameters as a list": (lambda g: module_state(g, "mapping", "fc0").__setitem__(
        "_parameters", list(module_state(g, "mapping", "fc0")["_parameters"].values())),
        "mapping.fc0: _parameters is a list"),
    "submodules as a list": (lambda g: module_state(g, "mapping").__setitem__("_modules", [1, 2]),
                             "mapping: _modules is a list"),
    "buffer set an int": (lambda g: module_state(g, "mapping", "fc0").__setitem__(
        "_non_persistent_buffers_set", 5), "_non_persistent_buffers_set is an int"),
    "module contains itself": (_contains_itself, "contains itself"),
    "1-d mapping weight": (lambda g: module_state(g, "mapping", "fc0")["_parameters"].__setitem__(
        "weight", torch.ones(16)), "'mapping.fc0.weight' is [16], expected a 2-d tensor"),
    "integer weights": (lambda g: module_state(g, "mapping", "fc1")["_parameters"].__setitem__(
        "weight", torch.ones(16, 16, dtype=torch.int64)), "'mapping.fc1.weight' is int64"),
    "text bias gain": (lambda g: module_state(g, "mapping", "fc0").__setitem__("bias_gain", "x"),
                       "bias_gain is 'x'"),
    "zero bias gain": (lambda g: module_state(g, "mapping", "fc0").__setitem__("bias_gain", 0.0),
                       "bias_gain is 0.0"),
}


@pytest.mark.parametrize("defect", sorted(NVIDIA_DEFECTS))
def test_malformed_nvidia_pickles_are_refused_clearly(tmp_path, weights, defect):
    cfg, sd = weights
    edit, mention = NVIDIA_DEFECTS[defect]
    fails(nvidia_with(cfg, sd, tmp_path / "malformed.pkl", edit), mention, load=False)


TORCH_DEFECTS = {
    "integer weight": (lambda g: g.__setitem__("convs.0.conv.weight", g["convs.0.conv.weight"].to(torch.int32)),
                       "'convs.0.conv.weight' is int32 (weights are floating point)"),
    "complex weight": (lambda g: g.__setitem__("convs.0.conv.weight", g["convs.0.conv.weight"].to(torch.complex64)),
                       "is complex64"),
    "boolean weight": (lambda g: g.__setitem__("style.1.bias", g["style.1.bias"] > 0), "is bool"),
    "1-d constant input": (lambda g: g.__setitem__("input.input", torch.ones(16)),
                           "'input.input' is [16], expected a 4-d tensor"),
    "scalar mapping weight": (lambda g: g.__setitem__("style.1.weight", torch.tensor(1.0)),
                              "'style.1.weight' is [], expected a 2-d tensor"),
    "sparse weight": (lambda g: g.__setitem__("style.2.weight", g["style.2.weight"].to_sparse()),
                      "sparse"),
}


@pytest.mark.parametrize("defect", sorted(TORCH_DEFECTS))
def test_torch_zip_with_wrong_dtypes_or_shapes_is_refused_clearly(tmp_path, weights, defect):
    cfg, sd = weights
    edit, mention = TORCH_DEFECTS[defect]
    path = tmp_path / "malformed.pt"
    fx.write_rosinality(path, cfg, sd, mutate=edit)
    fails(path, mention, load=False)


def test_malformed_own_format_and_rosinality_args_are_refused_clearly(tmp_path, weights):
    import argparse
    cfg, sd = weights
    fails(own_format_with(cfg, sd, tmp_path / "res.pt", lambda o: o["config"].__setitem__("resolution", 2 ** 20)),
          "resolution is 1048576")
    fails(own_format_with(cfg, sd, tmp_path / "ch.pt", lambda o: o["config"].__setitem__("channels", 5)),
          "damaged traeumer-stylegan2 file")
    fails(own_format_with(cfg, sd, tmp_path / "shape.pt", lambda o: o["state_dict"].__setitem__(
        "synthesis.b8.conv1.bias", torch.ones(3))), "shape mismatch", "'synthesis.b8.conv1.bias'")
    p = tmp_path / "args.pt"
    torch.save({"g_ema": fx.rosinality_state(cfg, sd), "latent_avg": sd["mapping.w_avg"],
                "args": argparse.Namespace(size="big", n_mlp=2, latent=16)}, p)
    fails(p, "args.size is 'big'")


@pytest.mark.parametrize("kind", ["tf", "nvidia", "torch"])
def test_malformed_files_exit_2_not_1_on_the_command_line(tmp_path, weights, kind):
    cfg, sd = weights
    if kind == "tf":
        path = tf_with(cfg, sd, tmp_path / "bad.pkl", TF_DEFECTS["variables as triples"][0])
    elif kind == "nvidia":
        path = nvidia_with(cfg, sd, tmp_path / "bad.pkl", _contains_itself)
    else:
        path = tmp_path / "bad.pt"
        fx.write_rosinality(path, cfg, sd, mutate=TORCH_DEFECTS["1-d constant input"][0])
    assert_refused(run_cli("inspect-model", path), str(path))


# ---------------------------------------------------------------------------------------------
# 4. forbidden globals: one wording in every container, whatever torch says

class _RunsCommand:
    def __reduce__(self):
        return (os.system, ("true",))


def _forbidden_files(tmp_path, cfg, sd):
    files = {}
    files["rosinality zip"] = tmp_path / "evil.pt"
    torch.save({"g_ema": _RunsCommand(), "latent_avg": torch.zeros(3)}, files["rosinality zip"])
    files["legacy torch.save"] = tmp_path / "evil_legacy.pt"
    torch.save({"g_ema": _RunsCommand()}, files["legacy torch.save"], _use_new_zipfile_serialization=False)
    files["nvidia pickle"] = tmp_path / "evil.pkl"
    with fx.fake_nvidia_modules():
        g = fx.nvidia_generator_object(cfg, sd)
    fx.write_nvidia_pytorch(files["nvidia pickle"], cfg, sd, top={"G_ema": g, "augment_pipe": _RunsCommand()})
    files["tensor storage blob"] = tmp_path / "evil_blob.pkl"
    with fx.fake_nvidia_modules(), open(files["tensor storage blob"], "wb") as handle:
        pickle.dump({"G_ema": fx._Blob(pickle.dumps(_RunsCommand(), protocol=2))}, handle)
    return files


def test_forbidden_globals_read_the_same_in_every_container(tmp_path, weights, wav):
    cfg, sd = weights
    expected = "refused: the file asks to run code (os.system)"
    for kind, path in _forbidden_files(tmp_path, cfg, sd).items():
        line = assert_refused(run_cli("inspect-model", path))
        assert line == f"error: {path}: {expected}", (kind, line)
    encoder = tmp_path / "evil_encoder.pth"
    torch.save({"state_dict": _RunsCommand()}, encoder)
    line = assert_refused(run_cli("tags", "--audio", wav, "--encoder", encoder))
    assert line == f"error: {encoder}: {expected}", line


def test_forbidden_global_message_does_not_depend_on_torchs_wording(tmp_path, weights, monkeypatch):
    cfg, sd = weights
    from traeumer_blender.encoders import load_encoder
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _RunsCommand()}, path)
    encoder = tmp_path / "evil.pth"
    torch.save({"weights": _RunsCommand()}, encoder)

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(
            "\x1b[1mWeights only load failed.\x1b[0m Re-running `torch.load` with `weights_only` set to "
            "`False` will likely succeed.\n\nsomething about posix.system, worded anew.")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "get_unsafe_globals_in_checkpoint",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("gone")))
    with pytest.raises(TraeumerError) as err:
        inspect_checkpoint(path)
    assert str(err.value) == f"{path}: refused: the file asks to run code (os.system)"
    with pytest.raises(TraeumerError) as err:
        load_encoder(encoder)
    assert str(err.value) == f"{encoder}: refused: the file asks to run code (os.system)"


def test_other_weights_only_refusals_keep_torchs_reason_without_its_advice(tmp_path, weights):
    """A torch.save zip written with pickle protocol 4 uses an opcode torch's safe loader lacks."""
    cfg, sd = weights
    path = tmp_path / "protocol4.pt"
    torch.save({"g_ema": {"x": collections.Counter(a=1)}}, path, pickle_protocol=4)
    msg = fails(path, "refused", load=False)[len(str(path)):]
    assert "weights_only" not in msg and "\x1b" not in msg and len(msg) < 200, msg


# ---------------------------------------------------------------------------------------------
# 5. paths that are not checkpoint files; the built-in default

def test_a_folder_as_model_says_it_is_a_folder(tmp_path, wav):
    folder = tmp_path / "models"
    folder.mkdir()
    assert_refused(run_cli("inspect-model", folder), str(folder), "is a folder")
    result = run_cli("generate", "--audio", wav, "--out", tmp_path / "out", "--model", folder,
                     "--fps", "4", "--resolution", "32", "--quiet")
    assert_refused(result, str(folder), "is a folder")
    from traeumer_blender.encoders import load_encoder
    with pytest.raises(TraeumerError, match="is a folder"):
        load_encoder(folder)


def test_inspect_model_default_describes_the_built_in_generator():
    result = run_cli("inspect-model", "default")
    assert result["rc"] == 0, result["stderr"]
    assert "format: default" in result["stdout"] and "resolution: 256" in result["stdout"]
    assert "built-in default generator" in result["stdout"] and "untrained" in result["stdout"]
    result = run_cli("inspect-model", "default", "--json")
    assert json.loads(result["stdout"])["format"] == "default"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fifo_or_device_file_as_model_is_refused_without_waiting(tmp_path, wav):
    fifo = tmp_path / "model.pkl"
    os.mkfifo(fifo)
    assert_refused(run_cli("inspect-model", fifo, timeout=60), str(fifo), "named pipe (FIFO)")
    result = run_cli("generate", "--audio", wav, "--out", tmp_path / "out", "--model", fifo,
                     "--fps", "4", "--resolution", "32", "--quiet", timeout=60)
    assert_refused(result, str(fifo), "named pipe (FIFO)")
    encoder = tmp_path / "encoder.pth"
    os.mkfifo(encoder)
    assert_refused(run_cli("tags", "--audio", wav, "--encoder", encoder, timeout=60), str(encoder), "named pipe")
    for device in ("/dev/null", "/dev/zero"):
        if os.path.exists(device):
            with pytest.raises(TraeumerError, match="is a device file"):
                inspect_checkpoint(device)
    assert_refused(run_cli("inspect-model", "/dev/zero", timeout=60), "/dev/zero", "device file")


# ---------------------------------------------------------------------------------------------
# the helper the early shape checks rely on

def test_canonical_shapes_match_the_network():
    from traeumer_blender.stylegan2.default import default_config
    from traeumer_blender.stylegan2.generator import _Net
    from traeumer_blender.stylegan2.network import canonical_shapes
    for cfg in (fx.tiny_config(), fx.tiny_config("concat"), fx.tiny_config("embed", resolution=8),
                default_config()):
        real = {k: tuple(v.shape) for k, v in _Net(cfg).state_dict().items()}
        assert canonical_shapes(cfg) == real
