# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the allocator setting on whole generator frames (a script, not a test).

    .venv/bin/python bench/allocator.py [--res 1024] [--batch 1 4] [--reps 2] [--rounds 2]

glibc serves a block above its mmap threshold with fresh pages and unmaps it on free, so a
frame whose layers allocate blocks of hundreds of MB page-faults on every 4 KiB it touches,
every frame; a thread's own arena does so above 64 MiB whatever the threshold (the CPU renders
the rows of a batch in parallel threads). ``keep_freed_memory`` (allocator.py) raises the
threshold and makes the threads share the main arena. This times frames of a StyleGAN2
config-f and of a StyleGAN3-T (random weights; batch 1 and 4, the pipeline's CPU calls having
4 rows; fp32, and bf16 where the CPU has native bf16) under three settings: the threshold at
32 MiB (the most older glibc versions take, the project's setting before), at 2 GiB, and at
2 GiB with one arena (the setting now). The arena limit only holds for arenas not yet made, so
each setting runs in a fresh process that applies it first; the processes take turns, one at
a time, ``--rounds`` times (a warm-up call, then the best of ``--reps``). It prints ms per
frame, the ratios against the first setting and the system (kernel, page-fault) time per
frame. Linux with glibc only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from traeumer_blender import allocator  # noqa: E402

# (mmap threshold, arenas at most); 64 stands for glibc's default limit (8 per core)
SETTINGS = {"32 MiB": (allocator._MMAP_THRESHOLD_OLD_MAX, 64), "2 GiB": (allocator._MMAP_THRESHOLD, 64),
            "2 GiB, one arena": (allocator._MMAP_THRESHOLD, 1)}


def apply(setting) -> None:
    threshold, arenas = setting
    mallopt = allocator._glibc_function("mallopt")
    if mallopt is None or not (mallopt(allocator._M_MMAP_THRESHOLD, threshold)
                               and mallopt(allocator._M_ARENA_MAX, arenas)
                               and mallopt(allocator._M_TRIM_THRESHOLD, allocator._TRIM_THRESHOLD)):
        sys.exit("bench/allocator.py: glibc's mallopt is not available or refused a setting")


def frame_time(G, ws, reps: int):
    """(best seconds per frame, system seconds per frame) after a warm-up call."""
    G.synthesis(ws)
    best, sys0 = float("inf"), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for _ in range(reps):
        t = time.perf_counter()
        G.synthesis(ws)
        best = min(best, time.perf_counter() - t)
    frames = ws.shape[0]
    return best / frames, (resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0) / reps / frames


@torch.no_grad()
def child(setting: str, model: str, res: int, batches, precisions, reps: int) -> None:
    """One process, one setting (applied before anything allocates in threads): a JSON line."""
    apply(SETTINGS[setting])
    from generator import config_f, sg3_generator

    from traeumer_blender.stylegan2.generator import Generator

    torch.manual_seed(0)
    if model == "stylegan2-f":
        G = Generator(config_f(res), source_id="bench")
        G.eval().requires_grad_(False)

        def make_ws(n):
            return torch.randn(n, G.n_latent, G.w_dim, generator=torch.Generator().manual_seed(n))
    else:
        with tempfile.TemporaryDirectory() as folder:
            G = sg3_generator("t", res, folder)

        def make_ws(n):
            return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(n)))
    out = {}
    for batch in batches:
        ws = make_ws(batch)
        for prec in precisions:
            G.configure(torch.device("cpu"), prec)
            out[f"{batch} {prec}"] = frame_time(G, ws, reps)
    print(json.dumps(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="frames per call")
    ap.add_argument("--reps", type=int, default=2, help="timed calls per setting, round and case")
    ap.add_argument("--rounds", type=int, default=2, help="times each setting takes its turn")
    ap.add_argument("--arch", nargs="+", choices=["sg2", "sg3"], default=["sg2", "sg3"])
    ap.add_argument("--child", nargs=2, metavar=("SETTING", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--precision", nargs="+", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], args.res, args.batch, args.precision, args.reps)
    from traeumer_blender.stylegan2.generator import cpu_has_native_bf16

    native_bf16 = cpu_has_native_bf16()
    precisions = ["fp32", "bf16"] if native_bf16 else ["fp32"]
    cpu = f"{torch.backends.cpu.get_cpu_capability()}, {'avx512_bf16' if native_bf16 else 'no avx512_bf16'}"
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {cpu}")
    labels = list(SETTINGS)
    models = [m for a, m in (("sg2", "stylegan2-f"), ("sg3", "stylegan3-t")) if a in args.arch]
    best = {}
    for _ in range(args.rounds):
        for model in models:
            for label in labels:
                cmd = [sys.executable, os.path.abspath(__file__), "--child", label, model, "--res", str(args.res),
                       "--reps", str(args.reps), "--batch", *map(str, args.batch), "--precision", *precisions]
                result = subprocess.run(cmd, capture_output=True, text=True, check=True)
                for case, (t, s) in json.loads(result.stdout.strip().splitlines()[-1]).items():
                    key = (model, case, label)
                    if key not in best or t < best[key][0]:
                        best[key] = (t, s)
    print("| CPU | model | res | batch | precision | " + " | ".join(f"ms/frame, {k}" for k in labels)
          + " | speed-up, 2 GiB | speed-up, now | " + " | ".join(f"system s/frame, {k}" for k in labels) + " |")
    print("|---|---|---:|---:|---|" + "---:|" * (2 * len(labels) + 2))
    for model in models:
        for batch in args.batch:
            for prec in precisions:
                row = [best[(model, f"{batch} {prec}", k)] for k in labels]
                t = [r[0] for r in row]
                print(f"| {cpu} | {model} | {args.res} | {batch} | {prec} | "
                      + " | ".join(f"{v * 1e3:.0f}" for v in t) + f" | {t[0] / t[1]:.2f}x | {t[0] / t[2]:.2f}x | "
                      + " | ".join(f"{r[1]:.2f}" for r in row) + " |")


if __name__ == "__main__":
    main()
