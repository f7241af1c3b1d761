# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of musical motion.

    .venv/bin/python bench/motion.py --analysis [--repeats 3] [--seconds 300] [--confidence [--trials 10]]
    .venv/bin/python bench/motion.py --styles

--styles: do the pictures move with the music (``bench/motion_measures.py``)? With the default
motion settings against motion off, in one run: the image change on beats over that between
them and its correlation with onset strength on three steady-beat pieces, and on a medley of
four pieces joined by hard cuts the coarse style's crossing time at each cut and its change
inside the pieces.

--analysis: the music analysis (``traeumer_blender.analysis.analyze``) of a 5-minute song made
by joining the HyperRogue pieces of ../shared/audio (decoded to 16 kHz mono, the encoder's
rate, as the CLI and the pipeline have it), as a multiple of real time, best of --repeats:

1. envelopes, tempo, beats and downbeats (no embeddings, no encoder);
2. the same with sections from embeddings computed beforehand, as the pipeline passes them
   (30 fps, 9000 frames): the analysis proper, whose goal is >= 200x real time;
3. the same with the encoder given, for each section's tags (the encoder's own work);
4. for reference, the encoder's ``embed_frames`` at 2 and 30 per second (not part of the
   analysis: the pipeline computes them anyway).

--confidence: the tempo's confidence (``tempo_details``) on signals without a steady beat
(white noise, random clicks, slow pads; --trials each at 5, 10, 20, 60 s) against the
threshold, and on the real pieces, whole and in 10 s excerpts.

Every figure is printed with the CPU capability torch reports and the load average, since
the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MUSIC = ROOT.parent / "shared" / "audio"
PIECES = ["hr-domina-hunting.ogg", "hr-domina-mountain.ogg", "hr-savino-caribbean.ogg",
          "hr-savino-ivory.ogg", "hr-savino-ocean.ogg", "hr-savino-palace.ogg"]


def cpu_capability() -> str:
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def song(seconds: float, sample_rate: int) -> np.ndarray:
    from traeumer_blender.audio import load_audio

    parts, total = [], 0
    while total < seconds * sample_rate:
        for name in PIECES:
            parts.append(load_audio(MUSIC / name, sample_rate=sample_rate))
            total += len(parts[-1])
    return np.concatenate(parts)[:int(seconds * sample_rate)]


def best_of(repeats, function):
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_analysis(seconds: float, repeats: int) -> None:
    from traeumer_blender import analysis
    from traeumer_blender.allocator import keep_freed_memory
    from traeumer_blender.model_cache import get_encoder

    keep_freed_memory()
    capability = cpu_capability()
    encoder = get_encoder("default")
    rate = encoder.sample_rate
    audio = song(seconds, rate)
    duration = len(audio) / rate
    print(f"song: {duration:.0f} s joined from {', '.join(PIECES)} at {rate} Hz mono")

    def line(what, elapsed, extra=""):
        print(f"  {what}: {elapsed:.3f} s -> {duration / elapsed:.0f}x real time{extra} "
              f"[cpu {capability}, load {load_average()}]", flush=True)

    elapsed, result = best_of(repeats, lambda: analysis.analyze(audio, rate, 0.0, 0.0, duration))
    line("envelopes + tempo + beats + downbeats", elapsed,
         f" (tempo {result.tempo:.1f} BPM, {len(result.beats)} beats)" if result.tempo else " (no tempo)")

    stages = {}
    started = time.perf_counter()
    envelopes = analysis.onset_envelopes(audio, rate)
    stages["onset_envelopes"] = time.perf_counter() - started
    started = time.perf_counter()
    tempo = analysis.estimate_tempo(envelopes["full"], analysis.ENVELOPE_RATE)
    stages["estimate_tempo"] = time.perf_counter() - started
    started = time.perf_counter()
    beats = analysis.track_beats(envelopes["full"], analysis.ENVELOPE_RATE, tempo)
    stages["track_beats"] = time.perf_counter() - started
    started = time.perf_counter()
    analysis.find_downbeats(beats, envelopes, analysis.ENVELOPE_RATE)
    stages["find_downbeats"] = time.perf_counter() - started
    print("  of which (one run): " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))

    frame_times = np.arange(int(duration * 30)) / 30.0
    started = time.perf_counter()
    embeddings = encoder.embed_frames(audio, frame_times)
    embed_30 = time.perf_counter() - started
    started = time.perf_counter()
    boundaries = analysis.section_boundaries(embeddings, frame_times)
    sections_alone = time.perf_counter() - started
    elapsed, result = best_of(repeats, lambda: analysis.analyze(
        audio, rate, 0.0, 0.0, duration, embeddings=embeddings, embedding_times=frame_times))
    line("ANALYSIS with sections from 30 fps embeddings (goal >= 200x)", elapsed,
         f" ({len(result.sections)} sections; section_boundaries alone {sections_alone:.3f} s,"
         f" {len(boundaries)} boundaries)")

    elapsed, result = best_of(repeats, lambda: analysis.analyze(
        audio, rate, 0.0, 0.0, duration, embeddings=embeddings, embedding_times=frame_times, encoder=encoder))
    line("the same + tags per section (encoder.tag_windows)", elapsed,
         f" ({sum(len(s.tags) > 0 for s in result.sections)} sections tagged)")

    half_second = np.arange(0.25, duration, 0.5)
    started = time.perf_counter()
    encoder.embed_frames(audio, half_second)
    embed_2 = time.perf_counter() - started
    line("(reference, not analysis) encoder.embed_frames every 0.5 s", embed_2)
    line("(reference, not analysis) encoder.embed_frames at 30 fps", embed_30)


def _random_clicks(seconds, per_second, rng, sample_rate):
    audio = np.zeros(int(seconds * sample_rate), dtype=np.float32)
    t = np.arange(int(0.03 * sample_rate)) / sample_rate
    for at in np.sort(rng.uniform(0, seconds - 0.1, int(per_second * seconds))):
        click = rng.standard_normal(len(t)) * np.exp(-t / 0.005) * rng.uniform(0.1, 0.5)
        i = int(at * sample_rate)
        audio[i:i + len(click)] += click.astype(np.float32)
    return audio


def _pad(seconds, rng, sample_rate):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    base = rng.uniform(100, 300)
    chord = sum(np.sin(2 * np.pi * base * m * t * (1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)))
                for m in (1.0, 1.25, 1.5, 2.0))
    return (0.08 * chord * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.03, 0.25) * t))).astype(np.float32)


def bench_confidence(trials: int) -> None:
    """The tempo's confidence on music without a steady beat (the threshold must stay above
    it) and on the real pieces (which must clear it), per excerpt length."""
    from traeumer_blender import analysis
    from traeumer_blender.audio import load_audio

    rate, sample_rate = analysis.ENVELOPE_RATE, 16000
    rng = np.random.default_rng(0)
    makers = {
        "white noise": lambda d: (0.1 * rng.standard_normal(int(d * sample_rate))).astype(np.float32),
        "random clicks 2/s": lambda d: _random_clicks(d, 2, rng, sample_rate),
        "random clicks 8/s": lambda d: _random_clicks(d, 8, rng, sample_rate),
        "slow pad": lambda d: _pad(d, rng, sample_rate),
    }
    print(f"no steady beat, {trials} trials each: largest confidence / largest strength (threshold) "
          f"[cpu {cpu_capability()}]; a tempo needs confidence >= threshold and strength >= "
          f"{analysis.TEMPO_STRENGTH_MIN_DB} dB")
    for seconds in (5, 10, 20, 60):
        cells = []
        for name, make in makers.items():
            estimates = [analysis.tempo_details(analysis.onset_envelopes(make(seconds), sample_rate)["full"], rate)
                         for _ in range(trials)]
            trusted = sum(e.bpm is not None for e in estimates)
            cells.append(f"{name} {max(e.confidence for e in estimates):.2f} / {max(e.strength_db for e in estimates):.2f} dB"
                         + (f" ({trusted} with tempo!)" if trusted else ""))
        print(f"  {seconds:3d} s (threshold {estimates[0].threshold:.2f}): " + "; ".join(cells))
    print("real pieces: confidence of the whole piece and the lowest of its 10 s excerpts (every 10 s)")
    for name in sorted(p.name for p in MUSIC.iterdir() if p.suffix in (".ogg", ".mp3")):
        audio = load_audio(MUSIC / name, sample_rate=sample_rate)
        whole = analysis.tempo_details(analysis.onset_envelopes(audio, sample_rate)["full"], rate)
        parts = [analysis.tempo_details(analysis.onset_envelopes(audio[i:i + 10 * sample_rate], sample_rate)["full"], rate)
                 for i in range(0, len(audio) - 10 * sample_rate + 1, 10 * sample_rate)]
        lowest = min(parts, key=lambda e: e.confidence)
        untrusted = sum(e.bpm is None for e in parts)
        weakest = min(parts, key=lambda e: e.strength_db)
        print(f"  {name:24s} whole {whole.confidence:.2f} / {whole.strength_db:.2f} dB ({whole.bpm:.1f} BPM); "
              f"10 s excerpts: lowest {lowest.confidence:.2f} / {weakest.strength_db:.2f} dB, "
              f"{untrusted} of {len(parts)} without tempo")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analysis", action="store_true", help="speed of the music analysis")
    parser.add_argument("--confidence", action="store_true",
                        help="the tempo's confidence on music without a beat and on the real pieces")
    parser.add_argument("--trials", type=int, default=10, help="signals per kind and length (--confidence)")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the joined song")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--styles", action="store_true", help="frames on the beat and styles at cuts")
    args = parser.parse_args(argv)
    if not (args.analysis or args.confidence or args.styles):
        parser.error("choose a part: --analysis, --confidence and/or --styles")
    print(f"torch CPU capability: {cpu_capability()}; load average before: {load_average()}")
    if args.analysis:
        bench_analysis(args.seconds, args.repeats)
    if args.confidence:
        bench_confidence(args.trials)
    if args.styles:
        import motion_measures

        motion_measures.run(lambda line: print(f"{line}  [{cpu_capability()}, load {load_average()}]"
                                               if not line.startswith("##") else line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
