# SPDX-License-Identifier: GPL-3.0-or-later
"""The built-in "default" generator: no file, fixed seed, 256 px, cheap on a CPU.

It is NOT a trained model. Its weights are random (seeded), then shaped so the pictures read as
abstract paintings rather than noise: each block's RGB contribution is scaled so coarse blocks
dominate and finer ones add progressively smaller detail (structure at several scales), the
constant noise is faint, and the overall output is scaled to use the full colour range.
Real results (faces, landscapes, WikiArt paintings) need a trained checkpoint.
"""

from __future__ import annotations

import torch

from .generator import NOISE_SEED, Generator
from .network import GeneratorConfig

DEFAULT_ID = "default:v1"
DEFAULT_SEED = 20_201_021
BLOCK_DECAY = 0.75        # RGB amplitude ratio between neighbouring blocks (fine over coarse)
TARGET_STD = 0.62         # per-pixel std of the final image before clamping
NOISE_STRENGTH = 0.02


def default_config() -> GeneratorConfig:
    return GeneratorConfig(
        resolution=256, z_dim=512, w_dim=512, mapping_dims=[512] * 9,
        channels={4: 256, 8: 256, 16: 192, 32: 128, 64: 64, 128: 32, 256: 24},
        mapping_lr_mul=0.01)


def _round_sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


_CACHED_STATE = None


@torch.no_grad()
def build_default_generator() -> Generator:
    """Build the default generator (the calibrated weights are computed once per process)."""
    global _CACHED_STATE
    if _CACHED_STATE is None:
        G = _build()
        _CACHED_STATE = {k: v.clone() for k, v in G.net.state_dict().items()}
    G = Generator(default_config(), source_id=DEFAULT_ID)
    G.net.load_state_dict(_CACHED_STATE)
    G.info["format"] = "default"
    return G.eval().requires_grad_(False)


def _build() -> Generator:
    cfg = default_config()
    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(DEFAULT_SEED)
        G = Generator(cfg, source_id=DEFAULT_ID)
    finally:
        torch.random.set_rng_state(torch_state)
    G.info["format"] = "default"
    G.eval().requires_grad_(False)
    syn = G.net.synthesis
    gen = torch.Generator().manual_seed(NOISE_SEED)
    for block in syn.blocks():
        for conv in (block.conv0, block.conv1):
            if conv is not None:
                conv.noise_const.copy_(torch.randn(conv.noise_const.shape, generator=gen))
                conv.noise_strength.fill_(NOISE_STRENGTH)
        block.torgb.bias.zero_()
    G.configure(torch.device("cpu"), "fp32")
    # w_avg: mean over seeded samples (as training would track it)
    ws = G._sample_ws(2000, DEFAULT_SEED).float()
    G.net.mapping.w_avg.copy_(ws.mean(0))
    # Calibrate each block's RGB amplitude on a few seeded ws. A block's ToRGB output does not
    # depend on any ToRGB weight, so one pass measures them all; the image is linear in the
    # ToRGB weights (bias is zero), so the final scale needs one more pass. Scales are rounded
    # to 3 digits so tiny float differences between machines do not change the generator.
    calib = ws[:4, None, :].expand(-1, cfg.n_latent, -1).contiguous()
    record = []
    syn(calib, cfg.resolution, "nongrouped", record)
    amp = 1.0
    for block, y in zip(syn.blocks(), record):
        block.torgb.weight.mul_(_round_sig(amp / max(float(y.std()), 1e-6)))
        amp *= BLOCK_DECAY
    final = syn(calib, cfg.resolution, "nongrouped")
    scale = _round_sig(TARGET_STD / float(final.std()))
    for block in syn.blocks():
        block.torgb.weight.mul_(scale)
    return G
