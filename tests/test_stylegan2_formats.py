# SPDX-License-Identifier: GPL-3.0-or-later
"""StyleGAN2 checkpoints: every container kind gives the same images; bad and hostile files fail clearly."""

import os
import pickle

import numpy as np
import pytest
import torch

import stylegan2_fixtures as fx
from traeumer_blender.errors import TraeumerError
from traeumer_blender.stylegan2 import inspect_checkpoint, load_generator
from traeumer_blender.stylegan2.reference import reference_mapping, reference_synthesis

TOL = 1e-4


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAEUMER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def weights():
    cfg = fx.tiny_config()
    return cfg, fx.random_state(cfg, seed=3)


def _inputs(G, n=3, seed=11):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g)
    ws = torch.randn(n, G.n_latent, G.w_dim, generator=g) * 0.7
    return z, ws


def _max_diff(a, b):
    return float((a.float() - b.float()).abs().max())


def write_all(tmp_path, cfg, sd):
    files = {
        "rosinality": tmp_path / "g.pt",
        "rosinality-legacy": tmp_path / "g_legacy.pt",
        "nvidia-pytorch": tmp_path / "network-snapshot.pkl",
        "nvidia-pytorch-flat": tmp_path / "sg3repo.pkl",
        "nvidia-pytorch-gpu": tmp_path / "saved_on_gpu.pkl",
        "nvidia-tf": tmp_path / "stylegan2-tf.pkl",
        "nvidia-tf-p2": tmp_path / "stylegan2-tf-p2.pkl",
    }
    fx.write_rosinality(files["rosinality"], cfg, sd)
    fx.write_rosinality(files["rosinality-legacy"], cfg, sd, legacy=True)
    fx.write_nvidia_pytorch(files["nvidia-pytorch"], cfg, sd)
    fx.write_nvidia_pytorch(files["nvidia-pytorch-flat"], cfg, sd, flat_kwargs=True)
    fx.write_nvidia_pytorch(files["nvidia-pytorch-gpu"], cfg, sd, gpu=True)
    fx.write_nvidia_tf(files["nvidia-tf"], cfg, sd)
    fx.write_nvidia_tf(files["nvidia-tf-p2"], cfg, sd, protocol=2)
    return files


def test_same_weights_same_images_in_every_format(tmp_path, weights):
    cfg, sd = weights
    ref_G = fx.make_generator(cfg, sd)
    z, ws = _inputs(ref_G)
    want_img = reference_synthesis(cfg, sd, ws).clamp(-1, 1)
    want_w = reference_mapping(cfg, sd, z)
    assert _max_diff(ref_G.synthesis(ws), want_img) <= TOL
    for kind, path in write_all(tmp_path, cfg, sd).items():
        G = load_generator(path, device="cpu", precision="fp32")
        info = inspect_checkpoint(path)
        assert info["format"] == kind.split("-flat")[0].split("-gpu")[0].split("-legacy")[0].split("-p2")[0], kind
        assert (G.resolution, G.n_latent, G.w_dim, G.z_dim, G.c_dim) == (32, 8, 16, 16, 0), kind
        assert info["mapping_layers"] == 2 and info["channels"] == cfg.channels, kind
        img = G.synthesis(ws)
        assert img.dtype == torch.float32 and img.shape == (3, 3, 32, 32)
        assert _max_diff(img, want_img) <= TOL, kind
        assert _max_diff(G.mapping(z)[:, 0], want_w) <= TOL, kind
        assert torch.equal(G.mapping(z)[:, 0], G.mapping(z)[:, -1])
        assert _max_diff(G.truncate(ws, 0.0)[0, 0], sd["mapping.w_avg"]) <= 1e-6, kind
        assert len(G.source_id) == 64


def test_rosinality_training_snapshot_with_args(tmp_path, weights):
    cfg, sd = weights
    path = tmp_path / "000100.pt"
    fx.write_rosinality(path, cfg, sd, snapshot=True)
    G = load_generator(path, device="cpu", precision="fp32")
    z, ws = _inputs(G)
    assert _max_diff(G.synthesis(ws), reference_synthesis(cfg, sd, ws).clamp(-1, 1)) <= TOL
    # no latent_avg in snapshots: w_avg is the mean of w over the seeded samples
    mu, sigma = G.w_stats()
    assert np.allclose(G.net.mapping.w_avg.numpy(), mu)
    assert G.info.get("w_avg") == "computed"


def test_conditional_models_embed_and_concat(tmp_path):
    for mode in ("embed", "concat"):
        cfg = fx.tiny_config(label_mode=mode)
        sd = fx.random_state(cfg, seed=5)
        paths = []
        if mode == "embed":
            paths.append(tmp_path / "ada.pkl")
            fx.write_nvidia_pytorch(paths[-1], cfg, sd)
            paths.append(tmp_path / "ada_tf.pkl")
            fx.write_nvidia_tf(paths[-1], cfg, sd, ada=True)
        else:
            paths.append(tmp_path / "wikiart_like.pkl")
            fx.write_nvidia_tf(paths[-1], cfg, sd)
        g = torch.Generator().manual_seed(2)
        z = torch.randn(2, cfg.z_dim, generator=g)
        label = torch.zeros(2, cfg.c_dim)
        label[:, 1] = 2.0
        label[:, 3] = 2.0
        for path in paths:
            G = load_generator(path, device="cpu", precision="fp32")
            assert G.c_dim == cfg.c_dim and inspect_checkpoint(path)["label_mode"] == mode
            w_label = G.mapping(z, label)[:, 0]
            assert _max_diff(w_label, reference_mapping(cfg, sd, z, label)) <= TOL, path
            w_zero = G.mapping(z)[:, 0]  # default label: zeros
            assert _max_diff(w_zero, reference_mapping(cfg, sd, z, torch.zeros(2, cfg.c_dim))) <= TOL
            assert _max_diff(w_label, w_zero) > 1e-2
            # label given at load time, as a {index: value} dict
            G2 = load_generator(path, device="cpu", precision="fp32", label={1: 2.0, 3: 2.0})
            assert _max_diff(G2.mapping(z)[:, 0], w_label) <= TOL
            with pytest.raises(TraeumerError, match="label"):
                G.mapping(z, torch.zeros(2, cfg.c_dim + 1))


def test_saved_and_reloaded_generator_is_identical(tmp_path, weights):
    cfg, sd = weights
    path = tmp_path / "tiny.pt"
    fx.write_nvidia_tf(path, cfg, sd)
    G = load_generator(path, device="cpu", precision="fp32")
    out = tmp_path / "saved.pt"
    G.save(out)
    G2 = load_generator(out, device="cpu", precision="fp32")
    z, ws = _inputs(G)
    assert torch.equal(G.synthesis(ws), G2.synthesis(ws))
    assert torch.equal(G.mapping(z), G2.mapping(z))
    assert inspect_checkpoint(out)["format"] == "traeumer"
    d = load_generator("default", device="cpu", precision="fp32")
    d_path = tmp_path / "default.pt"
    d.save(d_path)
    d2 = load_generator(d_path, device="cpu", precision="fp32")
    ws = d.mapping(torch.randn(1, 512))
    assert torch.equal(d.synthesis(ws), d2.synthesis(ws))


def test_any_resolution_and_mapping_depth(tmp_path):
    for res, layers in ((4, 1), (8, 8), (64, 3)):
        cfg = fx.tiny_config(resolution=res, mapping_layers=layers)
        sd = fx.random_state(cfg, seed=res)
        path = tmp_path / f"r{res}.pt"
        fx.write_rosinality(path, cfg, sd)
        G = load_generator(path, device="cpu", precision="fp32")
        assert G.resolution == res and G.n_latent == 2 * int(np.log2(res)) - 2
        assert inspect_checkpoint(path)["mapping_layers"] == layers
        _, ws = _inputs(G, n=2)
        assert _max_diff(G.synthesis(ws), reference_synthesis(cfg, sd, ws).clamp(-1, 1)) <= TOL


def test_missing_noise_is_seeded(tmp_path, weights):
    cfg, sd = weights
    path = tmp_path / "nonoise.pt"
    fx.write_rosinality(path, cfg, sd, mutate=lambda g: [g.pop(k) for k in list(g) if k.startswith("noises.")])
    a = load_generator(path, device="cpu", precision="fp32")
    b = load_generator(path, device="cpu", precision="fp32")
    _, ws = _inputs(a)
    assert torch.equal(a.synthesis(ws), b.synthesis(ws))   # constant and seeded
    assert torch.equal(a.synthesis(ws), a.synthesis(ws))


# ---------------------------------------------------------------------------------------------
# hostile files: unpickling would run a command; it must be refused and never run

class _RunsCommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _assert_refused(path, marker):
    with pytest.raises(TraeumerError) as err:
        load_generator(path, device="cpu")
    msg = str(err.value)
    assert str(path) in msg and "refused" in msg and "\n" not in msg
    assert not os.path.exists(marker)
    with pytest.raises(TraeumerError):
        inspect_checkpoint(path)
    assert not os.path.exists(marker)


def test_hostile_files_of_every_container_are_refused(tmp_path, weights):
    cfg, sd = weights
    marker = tmp_path / "PWNED"
    # the hostile object really runs the command under plain pickle (proves the test is live)
    pickle.loads(pickle.dumps(_RunsCommand(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    # 1. torch.save zip (rosinality container)
    p = tmp_path / "evil_zip.pt"
    torch.save({"g_ema": _RunsCommand(marker), "latent_avg": torch.zeros(3)}, p)
    _assert_refused(p, marker)
    # 2. legacy torch.save
    p = tmp_path / "evil_legacy.pt"
    torch.save({"g_ema": _RunsCommand(marker)}, p, _use_new_zipfile_serialization=False)
    _assert_refused(p, marker)
    # 3. NVIDIA PyTorch pickle
    p = tmp_path / "evil_nv.pkl"
    with fx.fake_nvidia_modules():
        g = fx.nvidia_generator_object(cfg, sd)
    fx.write_nvidia_pytorch(p, cfg, sd, top={"G_ema": g, "augment_pipe": _RunsCommand(marker)})
    _assert_refused(p, marker)
    # 4. NVIDIA TF pickle
    p = tmp_path / "evil_tf.pkl"
    with fx.fake_nvidia_modules():
        mv, sv, gv = fx.tf_variables(cfg, sd)
        net = fx.TFNetworkW("G", "G_main", {}, gv + [("evil", _RunsCommand(marker))])
        with open(p, "wb") as handle:
            pickle.dump((net, net, net), handle)
    _assert_refused(p, marker)
    # 5. a tensor storage blob inside an NVIDIA pickle that would run code
    p = tmp_path / "evil_blob.pkl"
    inner = pickle.dumps(_RunsCommand(marker), protocol=2)
    with fx.fake_nvidia_modules():
        with open(p, "wb") as handle:
            pickle.dump({"G_ema": fx._Blob(inner)}, handle)
    _assert_refused(p, marker)


def test_nvidia_embedded_source_is_never_run(tmp_path, weights):
    cfg, sd = weights
    marker = tmp_path / "SRC_RAN"
    p = tmp_path / "src.pkl"
    src = f"import os\nos.system('touch {marker}')\nclass Generator: pass\n"
    fx.write_nvidia_pytorch(p, cfg, sd, module_src=src)
    G = load_generator(p, device="cpu", precision="fp32")
    assert G.resolution == 32
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# bad files: one clear line naming the file and the problem

def _fails(path, pattern):
    with pytest.raises(TraeumerError, match=pattern) as err:
        load_generator(path, device="cpu")
    msg = str(err.value)
    assert msg.startswith(str(path) + ":") and "\n" not in msg
    return msg


def test_truncated_files(tmp_path, weights):
    cfg, sd = weights
    for kind, path in write_all(tmp_path, cfg, sd).items():
        data = path.read_bytes()
        cut = tmp_path / f"cut_{path.name}"
        cut.write_bytes(data[: len(data) // 2])
        _fails(cut, "truncated or corrupt")
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    _fails(empty, "empty")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"GIF89a" + bytes(100))
    _fails(junk, "not a generator")


def test_not_a_generator_and_unsupported_architectures(tmp_path, weights):
    cfg, sd = weights
    p = tmp_path / "dict.pkl"
    p.write_bytes(pickle.dumps({"a": 1, "b": [1.0, 2.0]}))
    _fails(p, "not a generator")
    p = tmp_path / "weights.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, p)
    _fails(p, "not a generator")
    # SWAGAN: 12-channel (wavelet) ToRGB
    p = tmp_path / "swagan.pt"
    fx.write_rosinality(p, cfg, sd, mutate=lambda g: g.__setitem__(
        "to_rgb1.conv.weight", torch.zeros(1, 12, cfg.channels[4], 1, 1)))
    _fails(p, "SWAGAN")
    # StyleGAN3 (the stylegan3 repo's own architecture)
    p = tmp_path / "sg3.pkl"
    fx.write_nvidia_pytorch(p, cfg, sd, extra={"synthesis.input.freqs": torch.zeros(4, 2)})
    # extra params land at top level; rename to a StyleGAN3 synthesis name via a dedicated writer
    with fx.fake_nvidia_modules():
        g = fx.nvidia_generator_object(cfg, sd)
        syn = g.meta["state"]["_modules"]["synthesis"].meta["state"]
        syn["_modules"]["L0_36_512"] = fx._module("SynthesisLayer", {"weight": torch.zeros(2, 2)})
    fx.write_nvidia_pytorch(p, cfg, sd, top={"G_ema": g})
    _fails(p, "StyleGAN3")


def test_tf_unknown_kwargs_and_shape_mismatch(tmp_path, weights):
    cfg, sd = weights
    p = tmp_path / "fork.pkl"
    fx.write_nvidia_tf(p, cfg, sd, extra_kwargs={"style_blend_magic": 3})
    _fails(p, "unknown TF kwargs.*style_blend_magic")
    p = tmp_path / "resnet.pkl"
    fx.write_nvidia_tf(p, cfg, sd, extra_kwargs={"architecture": "resnet"})
    _fails(p, "architecture")
    p = tmp_path / "shape.pt"
    fx.write_rosinality(p, cfg, sd, mutate=lambda g: g.__setitem__(
        "convs.1.activate.bias", torch.zeros(cfg.channels[8] + 1)))
    _fails(p, "shape mismatch")
    p = tmp_path / "extra.pt"
    fx.write_rosinality(p, cfg, sd, mutate=lambda g: g.__setitem__("convs.1.extra_gain", torch.ones(1)))
    _fails(p, "unused tensors.*extra_gain")
    p = tmp_path / "missing.pt"
    fx.write_rosinality(p, cfg, sd, mutate=lambda g: g.pop("to_rgbs.1.bias"))
    _fails(p, "lacks tensor 'to_rgbs.1.bias'")
    p = tmp_path / "missing.pkl"
    sd2 = dict(sd)
    with fx.fake_nvidia_modules():
        g = fx.nvidia_generator_object(cfg, sd2)
        g.meta["state"]["_modules"]["mapping"].meta["state"]["_modules"]["fc1"].meta["state"]["_parameters"].pop("bias")
    fx.write_nvidia_pytorch(p, cfg, sd, top={"G_ema": g})
    _fails(p, "lacks tensor 'mapping.fc1.bias'")
