# SPDX-License-Identifier: GPL-3.0-or-later
"""Quality benchmark: do different pieces of music get clearly different pictures?

A medley of four pieces of different character (20 s each, joined back to back) goes through
the whole pipeline with the zero-label mapping and the built-in generator. Then:

* separation ratio = mean distance between frames of *different* pieces / mean distance between
  frames of the *same* piece, leaving out frames within 3 s of a join; in style space (the
  per-layer ws after smoothing) and in image space (frames downscaled to 32 x 32 RGB). Goal >= 3.
* flicker = mean RMS change between consecutive frames at 30 fps within a piece (0-255 scale),
  on 2 s stretches in the middle of every piece.

Usage (from the repository root)::

    .venv/bin/python bench/quality.py [--fps-images 10] [--resolution 256] [--seed 0] [--keep DIR]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AUDIO = ROOT.parent / "shared" / "audio"

from traeumer_blender import png  # noqa: E402
from traeumer_blender.audio import load_audio  # noqa: E402
from traeumer_blender.frames import render_frames  # noqa: E402
from traeumer_blender.output_folder import frame_path  # noqa: E402
from traeumer_blender.pipeline import GenerateSettings, run_generate  # noqa: E402
from traeumer_blender.styles_file import load_styles  # noqa: E402

# (file, start s, character)
PIECES = [
    ("hr-savino-ocean.ogg", 30.0, "acoustic guitar and strings, slow"),
    ("hr-domina-mountain.ogg", 30.0, "choir"),
    ("machine_wars.mp3", 30.0, "techno / electronic beat"),
    ("frontiers.mp3", 30.0, "ambient, slow"),
]
PIECE_SECONDS = 20.0
JOIN_MARGIN = 3.0
FPS = 30
SAMPLE_RATE = 16000


def build_medley(path):
    parts = [load_audio(AUDIO / name, sample_rate=SAMPLE_RATE, start=start, duration=PIECE_SECONDS)
             for name, start, _ in PIECES]
    for (name, _, _), part in zip(PIECES, parts):
        if len(part) != int(PIECE_SECONDS * SAMPLE_RATE):
            raise SystemExit(f"{name}: expected {PIECE_SECONDS} s, decoded {len(part) / SAMPLE_RATE} s")
    soundfile.write(str(path), np.concatenate(parts), SAMPLE_RATE, subtype="FLOAT")


def separation_ratio(features, labels):
    """mean distance across labels / mean distance within labels (pairs of distinct frames)."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    squared = (features ** 2).sum(axis=1)
    distances = np.sqrt(np.clip(squared[:, None] + squared[None] - 2 * features @ features.T, 0, None))
    same = labels[:, None] == labels[None]
    distinct = ~np.eye(len(labels), dtype=bool)
    return float(distances[~same].mean() / distances[same & distinct].mean())


def downscale(image, size=32):
    height, width, _ = image.shape
    return image.reshape(size, height // size, size, width // size, 3).mean(axis=(1, 3)) / 255.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fps-images", type=int, default=10, help="rate of the frames compared in image space")
    parser.add_argument("--resolution", type=int, default=None, help="frame size (default: the generator's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--keep", default=None, help="keep medley and frames in this folder")
    args = parser.parse_args(argv)
    if FPS % args.fps_images:
        raise SystemExit("--fps-images must divide 30")

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.keep) if args.keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        medley = work / "medley.wav"
        build_medley(medley)
        out = work / "frames"
        started = time.monotonic()
        result = run_generate(GenerateSettings(audio=str(medley), out_dir=str(out), model=args.model,
                                               fps=str(FPS), seed=args.seed, resolution=args.resolution,
                                               styles_only=True))
        styles = load_styles(result.styles_path)
        times = styles.frame_times
        piece = np.minimum((times // PIECE_SECONDS).astype(int), len(PIECES) - 1)
        away = np.ones(len(times), dtype=bool)
        for join in range(1, len(PIECES)):
            away &= np.abs(times - join * PIECE_SECONDS) >= JOIN_MARGIN

        style_ratio = separation_ratio(styles.layer_ws(np.flatnonzero(away)), piece[away])
        group_ratios = [separation_ratio(styles.group_ws[away, g], piece[away]) for g in range(3)]

        step = FPS // args.fps_images
        image_frames = np.flatnonzero(away & (np.arange(len(times)) % step == 0))
        flicker_frames = []
        for k in range(len(PIECES)):
            middle = int(round((k + 0.5) * PIECE_SECONDS * FPS))
            flicker_frames.extend(range(middle - FPS, middle + FPS))
        to_render = sorted(set(image_frames.tolist()) | set(flicker_frames))
        render_started = time.monotonic()
        render_frames(result.styles_path, to_render)
        render_seconds = time.monotonic() - render_started

        small = np.stack([downscale(png.read_png(frame_path(out, i)).astype(np.float64))
                          for i in image_frames])
        image_ratio = separation_ratio(small, piece[image_frames])
        changes = []
        for k in range(len(PIECES)):
            middle = int(round((k + 0.5) * PIECE_SECONDS * FPS))
            frames = [png.read_png(frame_path(out, i)).astype(np.float64) for i in range(middle - FPS, middle + FPS)]
            changes.extend(float(np.sqrt(np.mean((b - a) ** 2))) for a, b in zip(frames, frames[1:]))
        report = {
            "pieces": [f"{name} from {start:g} s ({character})" for name, start, character in PIECES],
            "frames": int(len(times)),
            "resolution": int(styles.resolution),
            "style_ratio": round(style_ratio, 2),
            "style_ratio_per_group": [round(r, 2) for r in group_ratios],
            "image_ratio": round(image_ratio, 2),
            "image_frames_compared": int(len(image_frames)),
            "flicker_rms_0_255_at_30fps": round(float(np.mean(changes)), 2),
            "render_seconds_per_frame": round(render_seconds / len(to_render), 3),
            "total_seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(report, indent=2))
        goal = min(style_ratio, image_ratio) >= 3.0
        print(f"goal (ratio >= 3 in style and image space): {'met' if goal else 'NOT met'}")
        return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
