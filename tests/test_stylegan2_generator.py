# SPDX-License-Identifier: GPL-3.0-or-later
"""StyleGAN2 generator behaviour: modulated-conv paths, previews, API, statistics, precision, default."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import stylegan2_fixtures as fx
from traeumer_blender.errors import TraeumerError
from traeumer_blender.stylegan2 import generator as gen_mod
from traeumer_blender.stylegan2 import inspect_checkpoint, load_generator
from traeumer_blender.stylegan2.reference import reference_synthesis


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAEUMER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = fx.tiny_config()
    sd = fx.random_state(cfg, seed=9)
    path = tmp_path_factory.mktemp("g") / "tiny.pkl"
    fx.write_nvidia_pytorch(path, cfg, sd)
    return cfg, sd, path


def _ws(G, n, seed=1):
    return torch.randn(n, G.n_latent, G.w_dim, generator=torch.Generator().manual_seed(seed))


def test_modulated_conv_paths_agree(tiny):
    cfg, sd, path = tiny
    G = load_generator(path, device="cpu", precision="fp32")
    ws = _ws(G, 3)
    want = reference_synthesis(cfg, sd, ws).clamp(-1, 1)
    outs = {}
    for mode in ("grouped", "split", "nongrouped", "auto"):
        G.modconv = mode
        outs[mode] = G.synthesis(ws)
        assert float((outs[mode] - want).abs().max()) <= 1e-4, mode
    # batch independence: a sample's image does not depend on the rest of the batch
    G.modconv = "auto"
    assert float((G.synthesis(ws[1:2]) - outs["auto"][1:2]).abs().max()) <= 1e-5


def test_preview_from_skip_branch_skips_top_layers(tiny):
    cfg, sd, path = tiny
    G = load_generator(path, device="cpu", precision="fp32")
    ws = _ws(G, 2)
    top = G.net.synthesis.b32
    calls = []
    handle = top.register_forward_hook(lambda *a: calls.append(1))
    try:
        for r in (8, 16):
            img = G.synthesis(ws, resolution=r)
            assert img.shape == (2, 3, r, r)
            want = reference_synthesis(cfg, sd, ws, resolution=r).clamp(-1, 1)
            assert float((img - want).abs().max()) <= 1e-4
        assert calls == []
        G.synthesis(ws)
        assert len(calls) >= 1   # once per batch, or once per sample on the CPU "split" path
    finally:
        handle.remove()
    with pytest.raises(TraeumerError, match="preview resolution"):
        G.synthesis(ws, resolution=12)


def test_api_shapes_types_and_errors(tiny):
    cfg, sd, path = tiny
    G = load_generator(path, device="auto", precision="auto")
    if torch.cuda.is_available():
        assert G.device.type == "cuda" and G.precision == "fp16"
        G = load_generator(path, device="cpu", precision="auto")
    assert G.device.type == "cpu"
    # CPU: fp32, unless the CPU has bf16 instructions and bf16 keeps >= 40 dB
    assert G.precision == ("bf16" if G.info.get("bf16_psnr_db", 0) >= 40 else "fp32")
    assert gen_mod.cpu_has_native_bf16() or "bf16_psnr_db" not in G.info
    assert isinstance(G, torch.nn.Module)
    z = np.random.default_rng(0).standard_normal((2, G.z_dim)).astype(np.float32)
    ws = G.mapping(z)
    assert ws.shape == (2, G.n_latent, G.w_dim) and ws.dtype == torch.float32
    img_t = G.synthesis(ws)
    img_np = G.synthesis(ws.numpy())
    assert torch.equal(img_t, img_np)
    assert img_t.dtype == torch.float32 and img_t.device.type == "cpu"
    assert float(img_t.min()) >= -1.0 and float(img_t.max()) <= 1.0
    assert torch.equal(G.synthesis(ws), img_t)  # constant noise: same ws, same image
    t = G.truncate(ws.numpy(), 0.5)
    assert isinstance(t, np.ndarray)
    assert np.allclose(t, G.net.mapping.w_avg.numpy() + 0.5 * (ws.numpy() - G.net.mapping.w_avg.numpy()), atol=1e-6)
    with pytest.raises(TraeumerError, match="ws must be"):
        G.synthesis(torch.zeros(1, G.n_latent + 1, G.w_dim))
    with pytest.raises(TraeumerError, match="z must be"):
        G.mapping(torch.zeros(1, G.z_dim + 1))
    with pytest.raises(TraeumerError, match="takes no label"):
        G.set_label([1.0])
    with pytest.raises(TraeumerError, match="fp16 needs a CUDA GPU"):
        load_generator(path, device="cpu", precision="fp16")
    with pytest.raises(TraeumerError, match="unknown precision"):
        load_generator(path, device="cpu", precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(TraeumerError, match="CUDA"):
            load_generator(path, device="cuda")
    with pytest.raises(TraeumerError, match="no such file"):
        load_generator(str(path) + ".missing")


def test_layer_resolutions_and_inspect(tmp_path):
    cfg = fx.tiny_config(resolution=128)
    G = gen_mod.Generator(cfg)
    assert G.n_latent == 12
    assert G.layer_resolutions == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128]
    big = gen_mod.GeneratorConfig(resolution=1024, z_dim=8, w_dim=8, mapping_dims=[8, 8],
                                  channels={2 ** i: 2 for i in range(2, 11)})
    G = gen_mod.Generator(big)
    assert G.n_latent == 18 and G.layer_resolutions[:6] == [4, 4, 8, 8, 16, 16]
    assert G.layer_resolutions[-2:] == [1024, 1024]
    info = inspect_checkpoint("default")
    assert info["format"] == "default" and info["resolution"] == 256 and info["n_latent"] == 14


def test_w_stats_seeded_and_cached(tiny, tmp_path):
    cfg, sd, path = tiny
    assert gen_mod.W_STATS_SAMPLES >= 10_000
    G = load_generator(path, device="cpu", precision="fp32")
    mu, sigma = G.w_stats()
    assert mu.shape == (G.w_dim,) and sigma.shape == (G.w_dim,) and (sigma > 0).all()
    files = list((tmp_path / "cache" / "wstats").glob("*.npz"))
    assert len(files) == 1
    # the cache is keyed by content: a second load reads it back
    G2 = load_generator(path, device="cpu", precision="fp32")
    mu2, sigma2 = G2.w_stats()
    assert np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    # and it matches a direct computation over the same seeded samples
    w = G._sample_ws(gen_mod.W_STATS_SAMPLES, gen_mod.W_STATS_SEED)
    assert np.allclose(w.mean(0).numpy(), mu, atol=1e-6)
    assert np.allclose(w.std(0).numpy(), sigma, atol=1e-6)


@pytest.mark.skipif(not gen_mod.cpu_has_native_bf16(), reason="the bf16 check runs only on CPUs with native bf16")
def test_auto_precision_check_is_remembered(tiny, tmp_path):
    """precision="auto" compares bf16 with fp32 images once per model file (and label, torch, CPU
    kind); a second load reads the result back instead of rendering again."""
    cfg, sd, path = tiny
    first = load_generator(path, device="cpu", precision="auto")
    files = list((tmp_path / "cache" / "precision").glob("*.json"))
    assert len(files) == 1 and "bf16_psnr_remembered" not in first.info
    second = load_generator(path, device="cpu", precision="auto")
    assert second.info.get("bf16_psnr_remembered") is True
    assert second.info["bf16_psnr_db"] == pytest.approx(first.info["bf16_psnr_db"])
    assert second.precision == first.precision
    files[0].write_text("not json")                                       # a damaged entry is redone
    again = load_generator(path, device="cpu", precision="auto")
    assert "bf16_psnr_remembered" not in again.info and again.precision == first.precision


def test_bf16_on_cpu_is_close_to_fp32(tiny):
    cfg, sd, path = tiny
    G = load_generator(path, device="cpu", precision="fp32")
    p = gen_mod.bf16_psnr(G, n=2)
    assert 40.0 <= p < 200, p          # close, but really computed in bf16 (not bit-identical)
    G.configure(G.device, "bf16")
    assert G.net.synthesis.b32.conv1.dtype == torch.bfloat16
    img = G.synthesis(_ws(G, 1))
    assert img.dtype == torch.float32
    if not gen_mod.cpu_has_native_bf16():
        assert gen_mod.pick_precision(G, G.device, "auto") == "fp32"


def _bands(img):
    """Share of variance in each octave band (finest first) of a [3, H, W] image."""
    lvl, out, tot = img[None], [], float(img.var())
    for _ in range(6):
        low = F.avg_pool2d(lvl, 2)
        out.append(float((lvl - F.interpolate(low, scale_factor=2, mode="nearest")).var()) / tot)
        lvl = low
    return out


def test_default_generator_looks_like_abstract_paintings():
    G = load_generator("default", device="cpu", precision="fp32")
    assert G.source_id == "default:v1" and G.resolution == 256 and G.device.type == "cpu"
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0))
    img = G.synthesis(G.mapping(z))
    again = load_generator("default", device="cpu", precision="fp32").synthesis(G.mapping(z))
    assert torch.equal(img, again)                       # fixed seed: reproducible
    # full use of the colour range
    assert float(img.min()) <= -0.9 and float(img.max()) >= 0.9
    for x in img:
        q = torch.quantile(x.reshape(3, -1), torch.tensor([0.02, 0.98]), dim=1)
        assert float((q[1] - q[0]).max()) >= 1.0
        assert float((x[0] - x[1]).abs().mean()) > 0.1   # coloured, not grey
        # not noise: neighbouring pixels are strongly correlated
        a, b = x[:, :, :-1].reshape(-1).numpy(), x[:, :, 1:].reshape(-1).numpy()
        assert np.corrcoef(a, b)[0, 1] > 0.9
        # structure at several scales: at least 3 octave bands carry >= 1% of the variance
        assert sum(e >= 0.01 for e in _bands(x)) >= 3, _bands(x)
    # different ws give clearly different images
    diffs = [float((img[i] - img[j]).abs().mean()) for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 0.15, diffs


def test_four_phase_transposed_conv_matches_conv_transpose2d():
    from traeumer_blender.stylegan2.network import PHASE_CONV_MIN_SIZE, conv_transpose_s2
    g = torch.Generator().manual_seed(4)
    r = PHASE_CONV_MIN_SIZE
    w = torch.randn(6, 5, 3, 3, generator=g)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 6, r, r, generator=g).contiguous(memory_format=fmt)
        got = conv_transpose_s2(x, w)
        want = F.conv_transpose2d(x, w, stride=2)
        assert got.shape == (2, 5, 2 * r + 1, 2 * r + 1)
        assert float((got - want).abs().max()) <= 1e-4


def test_fp16_paths_match_fp32(tiny):
    """The CUDA fp16 code paths (grouped, and non-grouped with normalised weights/styles for
    batches, +-256 clamp) run here on the CPU's slow fp16 kernels to check their arithmetic."""
    cfg, sd, path = tiny
    G = load_generator(path, device="cpu", precision="fp32")
    ws = _ws(G, 3)
    ref = G.synthesis(ws)
    G.configure(G.device, "fp16")
    G.net.synthesis.channels_last = False      # as on CUDA
    assert G.net.synthesis.b32.conv0.clamp == 256.0 and G.net.synthesis.b32.dtype == torch.float16
    for mode in ("grouped", "auto-gpu"):
        try:
            out = G.net.synthesis(ws, None, mode).float().clamp(-1, 1)
        except RuntimeError as exc:  # a CPU build without fp16 convolutions
            pytest.skip(f"no fp16 convolution on this CPU: {exc}")
        assert min(gen_mod.psnr(ref[i], out[i]) for i in range(3)) >= 50.0, mode
