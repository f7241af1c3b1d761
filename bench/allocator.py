# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the allocator setting on whole generator frames (a script, not a test).

    .venv/bin/python bench/allocator.py [--res 1024] [--reps 3] [--arch sg2 sg3]

glibc serves a block above its mmap threshold with fresh pages and unmaps it on free, so a
frame whose layers allocate blocks of hundreds of MB page-faults on every 4 KiB it touches,
every frame. ``keep_freed_memory`` (allocator.py) raises the threshold. This times one frame of
a StyleGAN2 config-f and of a StyleGAN3-T (random weights, batch 1; fp32, and bf16 where the CPU
has native bf16) with the threshold at 32 MiB (the most older glibc versions take, the
project's setting before) and at 2 GiB (the setting now), the two taking turns in one run (a
warm-up frame after each switch, then the best of ``--reps``), and prints ms per frame, the
ratio and the process's system time (page faults) per frame. Linux with glibc only.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from generator import config_f, sg3_generator  # noqa: E402

from traeumer_blender import allocator  # noqa: E402
from traeumer_blender.stylegan2.generator import Generator, cpu_has_native_bf16  # noqa: E402

THRESHOLDS = {"32 MiB": allocator._MMAP_THRESHOLD_OLD_MAX, "2 GiB": allocator._MMAP_THRESHOLD}


def set_threshold(value: int) -> None:
    mallopt = allocator._glibc_function("mallopt")
    if mallopt is None or not mallopt(allocator._M_MMAP_THRESHOLD, value):
        sys.exit("bench/allocator.py: glibc's mallopt is not available or refused the threshold")
    mallopt(allocator._M_TRIM_THRESHOLD, allocator._TRIM_THRESHOLD)
    allocator.release_freed_memory()


def frame_time(G, ws, reps: int):
    """(best seconds per frame, system seconds per frame) after a warm-up frame."""
    G.synthesis(ws)
    best, sys0 = float("inf"), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for _ in range(reps):
        t = time.perf_counter()
        G.synthesis(ws)
        best = min(best, time.perf_counter() - t)
    return best, (resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0) / reps


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3, help="timed frames per setting and round")
    ap.add_argument("--rounds", type=int, default=2, help="times each setting takes its turn")
    ap.add_argument("--arch", nargs="+", choices=["sg2", "sg3"], default=["sg2", "sg3"])
    args = ap.parse_args(argv)
    native_bf16 = cpu_has_native_bf16()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16}")
    models = {}
    if "sg2" in args.arch:
        g2 = Generator(config_f(args.res), source_id="bench")
        g2.eval().requires_grad_(False)
        models["stylegan2-f"] = (g2, torch.randn(1, g2.n_latent, g2.w_dim))
    if "sg3" in args.arch:
        with tempfile.TemporaryDirectory() as folder:
            g3 = sg3_generator("t", args.res, folder)
        models["stylegan3-t"] = (g3, g3.mapping(torch.randn(1, g3.z_dim)))
    print("| CPU | model | res | precision | ms/frame, 32 MiB | ms/frame, 2 GiB | speed-up | "
          "system s/frame, 32 MiB | system s/frame, 2 GiB |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    cpu = f"{torch.backends.cpu.get_cpu_capability()}, {'avx512_bf16' if native_bf16 else 'no avx512_bf16'}"
    for name, (G, ws) in models.items():
        for prec in ["fp32", "bf16"] if native_bf16 else ["fp32"]:
            G.configure(torch.device("cpu"), prec)
            best = {k: (float("inf"), 0.0) for k in THRESHOLDS}
            for _ in range(args.rounds):
                for label, value in THRESHOLDS.items():
                    set_threshold(value)
                    t, s = frame_time(G, ws, args.reps)
                    if t < best[label][0]:
                        best[label] = (t, s)
            (t_old, s_old), (t_new, s_new) = best["32 MiB"], best["2 GiB"]
            print(f"| {cpu} | {name} | {args.res} | {prec} | {t_old * 1e3:.0f} | {t_new * 1e3:.0f} | "
                  f"{t_old / t_new:.2f}x | {s_old:.2f} | {s_new:.2f} |", flush=True)


if __name__ == "__main__":
    main()
