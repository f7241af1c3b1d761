# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the music-listening half: decoding, per-frame embeddings, memory.

    .venv/bin/python bench/audio.py [--encoder default] [--fps 30] [--skip-hour]

1. A 5-minute song (the first 300 s of ../shared/audio/time_to_strike.mp3): decode time,
   ``embed_frames`` time at --fps as a multiple of real time, and the exact per-window
   reference on an evenly spread subset of the same frames: its time per window (extrapolated
   to all frames, for the speed-up) and the cosine similarity to the fast embeddings.
2. The same song at other numbers of phases (--phases, default 8 and 16): speed and agreement.
3. The same agreement on every piece in ../shared/audio (60 s from 0:20 of each, --pieces-windows
   evenly spread frames), split into windows on a computed phase and windows between two.
4. Peak memory (max RSS of a fresh process) for decode + embed of 1 minute and of 60 minutes
   of audio; the 60-minute file is a 44.1 kHz stereo WAV made in a temp dir by concatenating
   the real HyperRogue pieces.

Like the CLI and the worker, the bench first calls ``keep_freed_memory()`` (allocator.py).
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MUSIC = ROOT.parent / "shared" / "audio"


def matmul_gflops() -> float:
    """fp32 GFLOP/s of a 2048² matmul right now: how much of the (shared) CPU we are getting."""
    import torch
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 2048 ** 3 / best / 1e9


def max_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM; getrusage's maxrss would also count
    the parent's peak, which Linux carries across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def on_computed_phase(encoder, times: np.ndarray) -> np.ndarray:
    """True for windows whose first frame is on one of the song pass's phases."""
    first = np.floor((np.round(times * encoder.sample_rate) + encoder.first_frame_offset)
                     / encoder.frontend.hop + 0.5).astype(np.int64)
    return first % (encoder.feature_stride // encoder.phases) == 0


def song_benchmark(encoder_name: str, fps: float, exact_windows: int) -> dict:
    from traeumer_blender.audio import load_audio
    from traeumer_blender.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    started = time.perf_counter()
    audio = load_audio(MUSIC / "time_to_strike.mp3", duration=300.0)
    decode_s = time.perf_counter() - started
    seconds = len(audio) / encoder.sample_rate
    times = np.arange(0.0, seconds, 1.0 / fps)

    # the machine is shared: fast and exact runs alternate, and each keeps its best time
    encoder.embed_frames(audio[: encoder.sample_rate * 5], times[times < 5])   # warm-up
    subset = np.linspace(0, len(times) - 1, exact_windows).round().astype(int)
    embed_s, exact_per_window_s, exact_parts = float("inf"), float("inf"), []
    for part in np.array_split(subset, 3):
        started = time.perf_counter()
        fast = encoder.embed_frames(audio, times)
        embed_s = min(embed_s, time.perf_counter() - started)
        started = time.perf_counter()
        exact_parts.append(encoder.embed_windows_exact(audio, times[part]))
        exact_per_window_s = min(exact_per_window_s, (time.perf_counter() - started) / len(part))
    exact = np.concatenate(exact_parts)
    chosen = fast[subset]
    cosine = cosine_rows(chosen, exact)
    mean = exact.mean(axis=0)
    centred = cosine_rows(chosen - mean, exact - mean)
    on_phase = on_computed_phase(encoder, times[subset])
    return {
        "encoder": encoder.source_id, "song_seconds": round(seconds, 1), "frames": len(times),
        "decode_s": round(decode_s, 2), "embed_frames_best_of_3_s": round(embed_s, 2),
        "embed_x_realtime": round(seconds / embed_s, 1),
        "decode_plus_embed_x_realtime": round(seconds / (decode_s + embed_s), 1),
        "exact_s_per_window": round(exact_per_window_s, 4),
        "exact_all_frames_s_extrapolated": round(exact_per_window_s * len(times), 1),
        "speed_up_vs_exact": round(exact_per_window_s * len(times) / embed_s, 1),
        "exact_windows_compared": len(subset),
        "cosine_mean": round(float(cosine.mean()), 4), "cosine_min": round(float(cosine.min()), 4),
        "cosine_centred_mean": round(float(centred.mean()), 4),
        "cosine_on_phase_mean": round(float(cosine[on_phase].mean()), 4) if on_phase.any() else None,
        "cosine_between_phases_mean": round(float(cosine[~on_phase].mean()), 4) if (~on_phase).any() else None,
        "windows_between_phases": int((~on_phase).sum()),
    }


def phases_benchmark(encoder_name: str, fps: float, exact_windows: int, phase_counts: list[int]) -> list[dict]:
    """The song pass at other numbers of phases: speed and agreement, alternating runs."""
    from traeumer_blender.audio import load_audio
    from traeumer_blender.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    phase_counts = [count for count in phase_counts if encoder.feature_stride % count == 0]
    if not phase_counts:
        return []
    audio = load_audio(MUSIC / "time_to_strike.mp3", duration=300.0)
    seconds = len(audio) / encoder.sample_rate
    times = np.arange(0.0, seconds, 1.0 / fps)
    subset = np.linspace(0, len(times) - 1, exact_windows).round().astype(int)
    exact = encoder.embed_windows_exact(audio, times[subset])
    best = {count: float("inf") for count in phase_counts}
    cosine = {}
    for _ in range(2):
        for count in phase_counts:
            encoder.phases = count
            started = time.perf_counter()
            fast = encoder.embed_frames(audio, times)
            best[count] = min(best[count], time.perf_counter() - started)
            cosine[count] = float(cosine_rows(fast[subset], exact).mean())
    return [{"phases": count, "embed_s": round(best[count], 2), "embed_x_realtime": round(seconds / best[count], 1),
             "cosine_mean": round(cosine[count], 4)} for count in phase_counts]


def pieces_benchmark(encoder_name: str, fps: float, windows: int) -> list[dict]:
    """Cosine to exact windows on every piece of ../shared/audio (60 s from 0:20)."""
    from traeumer_blender.audio import load_audio
    from traeumer_blender.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    rows = []
    for path in sorted(MUSIC.iterdir()):
        if path.suffix.lower() not in (".mp3", ".ogg", ".flac", ".wav"):
            continue
        audio = load_audio(path, start=20.0, duration=60.0)
        times = np.arange(0.0, len(audio) / encoder.sample_rate, 1.0 / fps)
        subset = np.linspace(0, len(times) - 1, windows).round().astype(int)
        cosine = cosine_rows(encoder.embed_frames(audio, times)[subset],
                             encoder.embed_windows_exact(audio, times[subset]))
        on_phase = on_computed_phase(encoder, times[subset])
        rows.append({"piece": path.name, "cosine_mean": round(float(cosine.mean()), 4),
                     "cosine_min": round(float(cosine.min()), 4),
                     "on_phase": round(float(cosine[on_phase].mean()), 4) if on_phase.any() else None,
                     "between_phases": round(float(cosine[~on_phase].mean()), 4) if (~on_phase).any() else None})
    return rows


def make_hour_wav(path: Path, minutes: float) -> None:
    """Concatenate the HyperRogue pieces (44.1 kHz stereo) into a WAV of ``minutes``."""
    import soundfile
    pieces = sorted(MUSIC.glob("hr-*.ogg"))
    target = int(minutes * 60 * 44100)
    written = 0
    with soundfile.SoundFile(path, "w", 44100, 2, subtype="PCM_16") as out:
        while written < target:
            for piece in pieces:
                data, rate = soundfile.read(piece, dtype="float32", always_2d=True)
                assert rate == 44100 and data.shape[1] == 2
                take = data[: target - written]
                out.write(take)
                written += len(take)
                if written >= target:
                    break


def memory_child(path: str, encoder_name: str, fps: float) -> None:
    """Run in a fresh process: decode + embed one file, print RSS figures as JSON."""
    import torch  # noqa: F401  (baseline includes the libraries)

    from traeumer_blender.allocator import keep_freed_memory
    keep_freed_memory()
    from traeumer_blender.audio import load_audio
    from traeumer_blender.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    baseline = max_rss_mb()
    started = time.perf_counter()
    audio = load_audio(path)
    decode_s = time.perf_counter() - started
    after_decode = max_rss_mb()
    times = np.arange(0.0, len(audio) / encoder.sample_rate, 1.0 / fps)
    started = time.perf_counter()
    embeddings = encoder.embed_frames(audio, times)
    embed_s = time.perf_counter() - started
    print(json.dumps({
        "audio_minutes": round(len(audio) / encoder.sample_rate / 60, 2),
        "rss_after_imports_and_encoder_mb": round(baseline, 1),
        "peak_rss_after_decode_mb": round(after_decode, 1),
        "peak_rss_after_embed_mb": round(max_rss_mb(), 1),
        "audio_array_mb": round(audio.nbytes / 2**20, 1),
        "embeddings_array_mb": round(embeddings.nbytes / 2**20, 1),
        "decode_s": round(decode_s, 1), "embed_s": round(embed_s, 1),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="default")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--exact-windows", type=int, default=300)
    parser.add_argument("--pieces-windows", type=int, default=150,
                        help="windows compared per piece of ../shared/audio (0: skip that part)")
    parser.add_argument("--phases", type=int, nargs="*", default=[8, 16],
                        help="also time the 5-minute song at these numbers of phases (none: skip)")
    parser.add_argument("--skip-hour", action="store_true", help="only the 1-minute memory case")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.encoder, args.fps)
        return

    from traeumer_blender.allocator import keep_freed_memory
    kept = keep_freed_memory()
    print(f"# bench/audio.py  encoder={args.encoder} fps={args.fps}  cpus={os.cpu_count()}  "
          f"load average before: {os.getloadavg()[0]:.1f}  matmul {matmul_gflops():.0f} GFLOP/s  "
          f"keep_freed_memory: {kept}")
    song = song_benchmark(args.encoder, args.fps, args.exact_windows)
    print("5-minute song:", json.dumps(song))
    if args.phases:
        for row in phases_benchmark(args.encoder, args.fps, args.exact_windows, args.phases):
            print("phases:", json.dumps(row))
    if args.pieces_windows:
        rows = pieces_benchmark(args.encoder, args.fps, args.pieces_windows)
        for row in rows:
            print("piece:", json.dumps(row))
        print(f"pieces: mean cosine {np.mean([row['cosine_mean'] for row in rows]):.4f} over {len(rows)} pieces, "
              f"lowest piece {min(row['cosine_mean'] for row in rows):.4f}")
    with tempfile.TemporaryDirectory() as folder:
        cases = [("1 min", 1.0)] + ([] if args.skip_hour else [("60 min", 60.0)])
        for label, minutes in cases:
            path = Path(folder) / f"{label.replace(' ', '')}.wav"
            make_hour_wav(path, minutes)
            result = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(path), "--encoder", args.encoder,
                 "--fps", str(args.fps)], capture_output=True, text=True, check=True)
            print(f"memory {label} ({path.stat().st_size / 2**20:.0f} MiB WAV 44.1 kHz stereo):",
                  result.stdout.strip())
            path.unlink()
    print(f"load average after: {os.getloadavg()[0]:.1f}  matmul {matmul_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
