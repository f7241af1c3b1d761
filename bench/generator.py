# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the StyleGAN2 generator (a script, not a test).

    .venv/bin/python bench/generator.py [--res 256 1024] [--batch 1 4 8] [--precision fp32 bf16]

For each resolution (config-f channel counts, random weights), batch size and precision it
prints images per second and the achieved GFLOP/s (nominal model FLOPs / time), next to the
machine's conv throughput measured in the same run (a 512->512 3x3 conv on 64x64, the best of
NCHW and channels_last), and the speed-up over the straightforward implementation
(traeumer_blender.stylegan2.reference: grouped conv, separate up-sample and FIR passes) on the
same weights. Ratios measured within one run are what count on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from traeumer_blender.stylegan2.generator import Generator, bf16_psnr, cpu_has_native_bf16  # noqa: E402
from traeumer_blender.stylegan2.network import GeneratorConfig  # noqa: E402
from traeumer_blender.stylegan2.reference import reference_synthesis  # noqa: E402


def config_f(resolution: int) -> GeneratorConfig:
    lg = resolution.bit_length() - 1
    ch = {2 ** i: min(32768 // 2 ** i, 512) for i in range(2, lg + 1)}
    return GeneratorConfig(resolution=resolution, z_dim=512, w_dim=512, mapping_dims=[512] * 9, channels=ch)


def synthesis_flops(cfg: GeneratorConfig) -> float:
    """Nominal multiply-add x2 per image (a stride-2 transposed conv costs a quarter of a plain one)."""
    ch, total = cfg.channels, 0.0
    for r in cfg.resolutions:
        c = ch[r]
        if r > 4:
            total += 2 * ch[r // 2] * c * 9 * (r // 2) ** 2
        total += 2 * c * c * 9 * r * r + 2 * c * 3 * r * r
    return total


def timed(fn, min_time=1.0, max_reps=5):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < min_time):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def conv_throughput(dtype=torch.float32) -> float:
    best = 0.0
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(1, 512, 64, 64).to(dtype=dtype, memory_format=fmt)
        w = torch.randn(512, 512, 3, 3).to(dtype=dtype, memory_format=fmt)
        t = timed(lambda: F.conv2d(x, w, padding=1), min_time=0.5)
        best = max(best, 2 * 512 * 512 * 9 * 64 * 64 / t / 1e9)
    return best


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--baseline-max-batch", type=int, default=4,
                    help="largest batch timed with the straightforward implementation")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}")
    peak = {"fp32": conv_throughput(torch.float32)}
    if "bf16" in args.precision:
        peak["bf16"] = conv_throughput(torch.bfloat16)
    print("machine conv throughput (512->512 3x3 @64x64): "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    print()
    print("| res | batch | precision | img/s | ms/img | GFLOP/s | % of conv fp32 | vs straightforward |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for res in args.res:
        cfg = config_f(res)
        G = Generator(cfg, source_id="bench")
        G.eval().requires_grad_(False)
        G.configure(torch.device("cpu"), "fp32")
        flops = synthesis_flops(cfg)
        sd = G.net.state_dict()
        base = {}
        for batch in args.batch:
            ws = torch.randn(batch, cfg.n_latent, cfg.w_dim)
            if batch <= args.baseline_max_batch:
                base[batch] = timed(lambda: reference_synthesis(cfg, sd, ws), max_reps=2) / batch
            for prec in args.precision:
                G.configure(torch.device("cpu"), prec)
                t = timed(lambda: G.synthesis(ws), max_reps=3) / batch
                gf = flops / t / 1e9
                ratio = f"{base[batch] / t:.2f}x" if batch in base else "-"
                print(f"| {res} | {batch} | {prec} | {1 / t:.2f} | {t * 1e3:.0f} | {gf:.0f} | "
                      f"{100 * gf / peak['fp32']:.0f}% | {ratio} |", flush=True)
        if "bf16" in args.precision:
            G.configure(torch.device("cpu"), "fp32")
            print(f"\nbf16 vs fp32 at {res} px, 4 random ws: PSNR {bf16_psnr(G, n=4):.1f} dB (min over images)\n",
                  flush=True)
        print(f"(nominal synthesis cost at {res} px: {flops / 1e9:.1f} GFLOP per image)\n")


if __name__ == "__main__":
    main()
