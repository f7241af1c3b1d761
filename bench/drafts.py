# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of draft frames and frame shapes (issue #15; a script, not a test).

    .venv/bin/python bench/drafts.py [--res 1024] [--song-seconds 180] [--frames 8] [--reps 2]

For a config-f StyleGAN2 of ``--res`` px (random weights, saved in the package's own format) it
measures, in one run:

* the styles stage of a whole song (model load with a cold cache, decode, embed, map, smooth;
  ``generate --styles-only`` on ``--song-seconds`` of the bundled music, looped if it is shorter),
* the cost per frame of draft frames (64 px, ``generate --draft``) and of final frames, square
  and 16:9, each the best of ``--reps`` runs over ``--frames`` frames, taking turns,

and prints: time until the whole strip is scrubbable (styles + all drafts) against the time for
all final frames (styles + all finals), and the cost of a 16:9 frame against a square one
next to the width ratio. The CPU capability is printed with every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.generator import config_f  # noqa: E402
from traeumer_blender import frames as frames_mod  # noqa: E402
from traeumer_blender.aspect import frame_width  # noqa: E402
from traeumer_blender.model_cache import get_generator  # noqa: E402
from traeumer_blender.pipeline import DEFAULT_DRAFT_SIZE, GenerateSettings, run_generate  # noqa: E402
from traeumer_blender.progress import Reporter  # noqa: E402
from traeumer_blender.stylegan2.generator import Generator, cpu_has_native_bf16  # noqa: E402
from traeumer_blender.styles_file import load_styles  # noqa: E402

AUDIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "audio", "hr-savino-ocean.ogg")


def capability() -> str:
    return f"{torch.backends.cpu.get_cpu_capability()}, native bf16 {cpu_has_native_bf16()}"


def song(seconds: float, folder: str) -> str:
    """A WAV of ``seconds`` of the bundled music (looped when shorter)."""
    import soundfile

    data, rate = soundfile.read(AUDIO, dtype="float32", always_2d=True)
    need = int(seconds * rate)
    data = np.concatenate([data] * (need // len(data) + 1))[:need]
    path = os.path.join(folder, "song.wav")
    soundfile.write(path, data, rate)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, default=1024)
    ap.add_argument("--song-seconds", type=float, default=180.0)
    ap.add_argument("--fps", default="30")
    ap.add_argument("--frames", type=int, default=8, help="final frames timed per run")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="traeumer-bench-drafts-")
    # a cold cache: the styles stage includes what a first Generate pays (w statistics, the
    # bf16 check), as for a model the user has just brought
    os.environ["TRAEUMER_CACHE_DIR"] = os.path.join(folder, "cache")
    try:
        torch.manual_seed(0)
        model = os.path.join(folder, f"config-f-{args.res}.pt")
        Generator(config_f(args.res), source_id="bench").save(model)
        audio = song(args.song_seconds, folder)
        out = os.path.join(folder, "out")
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability {capability()}")
        started = time.perf_counter()
        result = run_generate(GenerateSettings(audio=audio, out_dir=out, model=model, fps=args.fps, styles_only=True))
        styles_seconds = time.perf_counter() - started
        n = result.frame_count
        print(f"styles of {args.song_seconds:g} s at {args.fps} fps ({n} frames): {styles_seconds:.1f} s "
              f"[{capability()}]", flush=True)

        styles = load_styles(result.styles_path)
        generator = get_generator(model)
        print(f"final frames in {generator.precision}, drafts in {generator.draft_precision}")
        wide = frame_width(args.res, "16:9")
        draft_wide = frame_width(DEFAULT_DRAFT_SIZE, "16:9")
        report = Reporter(None, None)
        sample = list(range(args.frames))
        drafts = list(range(4 * args.frames))

        def finals(width):
            return lambda: frames_mod.render_batches(
                generator, styles.layer_ws, sample, out, None, 4, 6, report, "bench", width=width)

        def draft(width):
            return lambda: frames_mod.render_drafts(
                generator, styles.layer_ws, drafts, out, DEFAULT_DRAFT_SIZE, width, 16, 6, report, "bench")

        runs = {"final 1:1": (finals(None), len(sample)), "final 16:9": (finals(wide), len(sample)),
                "draft 1:1": (draft(None), len(drafts)), "draft 16:9": (draft(draft_wide), len(drafts))}
        best = {k: float("inf") for k in runs}
        for fn, _ in runs.values():
            fn()    # warm-up
        for _ in range(args.reps):
            for key, (fn, count) in runs.items():
                t = time.perf_counter()
                fn()
                best[key] = min(best[key], (time.perf_counter() - t) / count)
        for key, per in best.items():
            print(f"{key}: {per * 1e3:.1f} ms per frame [{capability()}]")
        print()
        print("| shape | drafts scrubbable (styles + all drafts) | all finals (styles + all finals) | ratio | bar |")
        print("|---|---:|---:|---:|---|")
        for shape in ("1:1", "16:9"):
            scrub = styles_seconds + n * best[f"draft {shape}"]
            full = styles_seconds + n * best[f"final {shape}"]
            print(f"| {shape} | {scrub / 60:.1f} min | {full / 60:.1f} min | 1/{full / scrub:.1f} | <= 1/8 |")
        ratio = best["final 16:9"] / best["final 1:1"]
        print(f"\n16:9 final frame ({wide}x{args.res}) costs {ratio:.2f}x a square one; width ratio "
              f"{wide / args.res:.2f}x; bar: within 10 % ({0.9 * wide / args.res:.2f}-{1.1 * wide / args.res:.2f}x) "
              f"[{capability()}]")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
