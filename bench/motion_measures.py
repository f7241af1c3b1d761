# SPDX-License-Identifier: GPL-3.0-or-later
"""Musical motion, measured (issue #13): do frames move with the beat, and do styles cut with
the music? Run by ``bench/motion.py`` (``--styles``); every figure compares the defaults with
motion off in the same run.

* beats: mean frame-to-frame image change (frames downscaled to 16 × 16) on frames within 0.1 s
  after a beat, over that on frames more than 0.15 s from any beat; and Pearson's r between
  the image change and the onset strength since the previous frame;
* cuts: pieces joined by hard cuts; the time the coarse style takes to cross from one piece's
  look to the next (10 % → 90 % along the line between the two looks), and the mean
  frame-to-frame coarse style change inside the pieces (away from the cuts).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from traeumer_blender.audio import load_audio  # noqa: E402
from traeumer_blender.motion import MOTION_OFF, MotionSettings  # noqa: E402
from traeumer_blender.pipeline import GenerateSettings, run_generate  # noqa: E402
from traeumer_blender.png import read_png  # noqa: E402
from traeumer_blender.styles_file import load_styles  # noqa: E402

AUDIO = ROOT.parent / "shared" / "audio"
# pieces with a steady beat: (file, start s)
BEAT_PIECES = [("machine_wars.mp3", 40.0), ("time_to_strike.mp3", 30.0), ("frontiers.mp3", 60.0)]
# pieces of clearly different music joined by hard cuts
MEDLEY = [("hr-domina-mountain.ogg", 20.0), ("machine_wars.mp3", 60.0), ("hr-savino-ocean.ogg", 10.0),
          ("time_to_strike.mp3", 90.0)]


def _small(image, size=16):
    h, w, _ = image.shape
    return image.reshape(size, h // size, size, w // size, 3).mean(axis=(1, 3))


def beat_response(piece, start, seconds, motion, fps=30, resolution=None, folder=None):
    """(on/off-beat image change ratio, Pearson r with onset strength, figures dict)."""
    folder = folder or tempfile.mkdtemp(prefix="motion_bench_")
    settings = GenerateSettings(audio=str(AUDIO / piece), out_dir=folder, start=start, duration=seconds,
                                fps=str(fps), resolution=resolution, motion=motion)
    result = run_generate(settings)
    frames = np.stack([_small(read_png(p).astype(np.float64)) for p in result.frame_paths])
    change = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))        # change into frame i (i >= 1)
    styles = load_styles(result.styles_path)
    times = styles.frame_times[1:]
    analysis = _analysis_of(styles, piece, start, seconds)
    beats = np.asarray(analysis["beats"], dtype=np.float64)
    if beats.size == 0:
        return float("nan"), float("nan"), {"beats": 0}
    previous = beats[np.clip(np.searchsorted(beats, times, side="right") - 1, 0, None)]
    since = times - previous
    nearest = np.min(np.abs(times[:, None] - beats[None, :]), axis=1)
    on = (since >= 0) & (since <= 0.1)
    off = nearest > 0.15
    ratio = float(change[on].mean() / change[off].mean())
    strength = _onset_since_previous_frame(analysis, styles.frame_times)
    r = float(np.corrcoef(change, strength)[0, 1])
    return ratio, r, {"beats": int(beats.size), "on": int(on.sum()), "off": int(off.sum()),
                      "tempo": analysis.get("tempo")}


def _analysis_of(styles, piece, start, seconds):
    """The analysis behind a track (recorded with motion; made for the same excerpt without)."""
    if styles.motion is not None:
        record = dict(styles.motion.analysis)
        record["envelope_full"] = styles.motion.envelopes[0]
        return record
    from traeumer_blender import analysis as music

    rate = 16000
    audio = load_audio(str(AUDIO / piece), sample_rate=rate, start=start, duration=seconds)
    heard = music.analyze(audio, rate, start, start, seconds)
    record = heard.to_json()
    record["envelope_full"] = heard.envelopes["full"]
    return record


def _onset_since_previous_frame(analysis, frame_times):
    """The strongest full-band onset between each frame and the one before it (frames 1..N-1)."""
    envelope = np.asarray(analysis["envelope_full"], dtype=np.float64)
    grid = analysis["start"] + np.arange(len(envelope)) / analysis["rate"]
    edges = np.searchsorted(grid, frame_times)
    return np.array([envelope[a:max(b, a + 1)].max() if a < len(envelope) else 0.0
                     for a, b in zip(edges[:-1], edges[1:])])


def make_medley(path, pieces=MEDLEY, seconds=20.0, rate=44100):
    parts = [load_audio(str(AUDIO / name), sample_rate=rate, start=start, duration=seconds)
             for name, start in pieces]
    soundfile.write(str(path), np.concatenate(parts).astype(np.float32), rate, subtype="PCM_16")
    return [seconds * k for k in range(1, len(pieces))]


def cut_response(medley, cuts, motion, fps=30):
    """Per cut the coarse style's crossing time (s), and the mean coarse change inside pieces."""
    folder = tempfile.mkdtemp(prefix="motion_medley_")
    settings = GenerateSettings(audio=str(medley), out_dir=folder, fps=str(fps), styles_only=True, motion=motion)
    styles = load_styles(run_generate(settings).styles_path)
    coarse = np.asarray(styles.group_ws[:, 0], dtype=np.float64)
    times = styles.frame_times
    crossings = []
    for cut in cuts:
        before = coarse[(times > cut - 4.0) & (times < cut - 2.0)].mean(axis=0)
        after = coarse[(times > cut + 2.0) & (times < cut + 4.0)].mean(axis=0)
        direction = after - before
        window = (times > cut - 3.0) & (times < cut + 3.0)
        along = (coarse[window] - before) @ direction / float(direction @ direction)
        t = times[window]
        first = t[np.argmax(along >= 0.1)]
        last = t[np.argmax(along >= 0.9)]
        crossings.append(float(last - first))
    inside = np.ones(len(times) - 1, dtype=bool)
    for cut in cuts:
        inside &= np.abs(times[1:] - cut) > 2.0
    change = np.linalg.norm(np.diff(coarse, axis=0), axis=1)[inside].mean()
    sections = [] if styles.motion is None else [round(s["start"], 2) for s in styles.motion.analysis["sections"]]
    return crossings, float(change), sections


def run(print_line):
    """Print the figures (one run; defaults vs motion off)."""
    started = time.monotonic()
    print_line("## beats: image change on/off beat and r with onset strength (30 fps, the model's 256 px, "
               "30 s each)")
    for piece, start in BEAT_PIECES:
        on_ratio, on_r, info = beat_response(piece, start, 30.0, MotionSettings())
        off_ratio, off_r, _ = beat_response(piece, start, 30.0, MOTION_OFF)
        print_line(f"{piece} from {start:g} s (tempo {info.get('tempo')}, {info['beats']} beats): "
                   f"on/off-beat change ratio {on_ratio:.2f} (motion off {off_ratio:.2f}); "
                   f"r with onset strength {on_r:.2f} (motion off {off_r:.2f})")
    print_line("## cuts: medley of 4 pieces x 20 s, hard cuts at 20/40/60 s (30 fps)")
    with tempfile.TemporaryDirectory() as folder:
        medley = Path(folder) / "medley.wav"
        cuts = make_medley(medley)
        on_cross, on_change, sections = cut_response(medley, cuts, MotionSettings())
        off_cross, off_change, _ = cut_response(medley, cuts, MOTION_OFF)
    print_line(f"sections found at {sections} (true cuts {cuts})")
    print_line("coarse style crossing time per cut: " + ", ".join(f"{a:.2f} s" for a in on_cross)
               + " (motion off: " + ", ".join(f"{b:.2f} s" for b in off_cross) + ")")
    print_line(f"mean frame-to-frame coarse style change inside pieces: {on_change:.4f} vs {off_change:.4f} "
               f"with motion off ({100 * (on_change / off_change - 1):+.1f} %)")
    print_line(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    os.environ.setdefault("TRAEUMER_CACHE_DIR", tempfile.mkdtemp(prefix="motion_cache_"))
    run(print)
