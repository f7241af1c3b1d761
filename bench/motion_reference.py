# SPDX-License-Identifier: GPL-3.0-or-later
"""Our beats against librosa's ``beat.beat_track``: a test-only reference, never bundled.

librosa needs numba/llvmlite, so this runs in a separate environment:

    python3.11 -m venv .venv-librosa && .venv-librosa/bin/pip install librosa
    .venv-librosa/bin/python bench/motion_reference.py [PIECE ...] [--ours DIR] [--python .venv/bin/python]

For every piece (default: all of ../shared/audio) our analysis comes from the command line,
``python -m traeumer_blender analyze --audio PIECE --json``, run with --python (the project's
environment), or from ``DIR/<piece name>.json`` files made that way (--ours).  librosa loads
the file at its default 22,050 Hz and runs ``beat_track`` with its defaults (hop 512) and
once more with hop 128 (a finer tempo grid): where librosa's two runs disagree, the piece's
beat is ambiguous for librosa itself.

Per piece: tempo (ours, librosa's, and librosa's median beat interval) and whether ours is
within 4 %; F-measure of our beats against librosa's at ±70 ms (one-to-one matching), goal
>= 0.9 on the steady-beat pieces; the median offset of matched beats (ours - librosa) and the F
after removing it; F against librosa's hop-128 run; librosa's own F between its two runs.  A piece counts as steady-beat when
librosa's two runs agree (F >= 0.9), a criterion that does not look at our beats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MUSIC = ROOT.parent / "shared" / "audio"
TOLERANCE = 0.070
STEADY_AGREEMENT = 0.9


def f_measure(estimated, reference, tolerance=TOLERANCE) -> float:
    """F-measure of beat times with one-to-one matching within ±tolerance (a maximum matching:
    on a line with equal windows, matching each earliest pair in turn is optimal)."""
    estimated, reference = np.sort(np.asarray(estimated)), np.sort(np.asarray(reference))
    if len(estimated) == 0 or len(reference) == 0:
        return 0.0
    i = j = hits = 0
    while i < len(reference) and j < len(estimated):
        if abs(estimated[j] - reference[i]) <= tolerance:
            hits, i, j = hits + 1, i + 1, j + 1
        elif estimated[j] < reference[i]:
            j += 1
        else:
            i += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)


def median_offset(estimated, reference, tolerance=TOLERANCE) -> float:
    estimated = np.asarray(estimated)
    if len(estimated) == 0:
        return 0.0
    offsets = [estimated[np.argmin(np.abs(estimated - r))] - r for r in reference]
    offsets = [o for o in offsets if abs(o) <= tolerance]
    return float(np.median(offsets)) if offsets else 0.0


def ours_for(piece: Path, args) -> dict:
    if args.ours:
        return json.loads((Path(args.ours) / f"{piece.name}.json").read_text())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.run([args.python, "-m", "traeumer_blender", "analyze", "--audio", str(piece), "--json"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if process.returncode != 0:
        raise SystemExit(f"analyze failed on {piece}: {process.stderr.strip()}")
    return json.loads(process.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pieces", nargs="*", help="audio files (default: every piece in ../shared/audio)")
    parser.add_argument("--ours", default=None, help="folder of <piece name>.json from the analyze command")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                        help="the project's Python, to run the analyze command")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import librosa

    pieces = [Path(p) for p in args.pieces] or sorted(p for p in MUSIC.iterdir() if p.suffix in (".ogg", ".mp3"))
    print(f"librosa {librosa.__version__}; tolerance ±{TOLERANCE * 1000:.0f} ms")
    header = (f"{'piece':24s} {'ours BPM':>8s} {'librosa':>8s} {'(ibi)':>7s} {'tempo':>6s} {'F':>6s} "
              f"{'offset':>7s} {'F-off':>6s} {'F-128':>6s} {'lib/lib':>7s} steady")
    print(header)
    rows = []
    for piece in pieces:
        ours = ours_for(piece, args)
        y, sr = librosa.load(str(piece), sr=22050)
        started = time.perf_counter()
        tempo, reference = librosa.beat.beat_track(y=y, sr=sr, units="time")
        librosa_seconds = time.perf_counter() - started
        _, fine = librosa.beat.beat_track(y=y, sr=sr, units="time", hop_length=128)
        tempo = float(np.atleast_1d(tempo)[0])
        beats = np.asarray(ours["beats"], dtype=np.float64)
        ibi = 60.0 / float(np.median(np.diff(reference))) if len(reference) > 1 else float("nan")
        our_tempo = ours["tempo"]
        tempo_ok = our_tempo is not None and abs(our_tempo - tempo) <= 0.04 * tempo
        offset = median_offset(beats, reference)
        row = {
            "piece": piece.name, "duration": len(y) / sr, "ours_tempo": our_tempo, "librosa_tempo": tempo,
            "librosa_ibi_tempo": ibi, "tempo_within_4pct": bool(tempo_ok),
            "f_measure": f_measure(beats, reference), "median_offset": offset,
            "f_measure_offset_removed": f_measure(beats - offset, reference),
            "librosa_self_agreement": f_measure(fine, reference), "f_measure_vs_hop128": f_measure(beats, fine),
            "ours_beats": len(beats),
            "librosa_beats": len(reference), "librosa_seconds": librosa_seconds,
        }
        row["steady"] = row["librosa_self_agreement"] >= STEADY_AGREEMENT
        rows.append(row)
        shown_tempo = "none" if our_tempo is None else f"{our_tempo:.1f}"
        print(f"{piece.name:24s} {shown_tempo:>8s} {tempo:8.1f} {ibi:7.1f} {'ok' if tempo_ok else 'NO':>6s} "
              f"{row['f_measure']:6.3f} {offset * 1000:+5.0f}ms {row['f_measure_offset_removed']:6.3f} "
              f"{row['f_measure_vs_hop128']:6.3f} "
              f"{row['librosa_self_agreement']:7.3f} {'yes' if row['steady'] else 'no'}", flush=True)
    steady = [r for r in rows if r["steady"]]
    if steady:
        print(f"steady-beat pieces: {len(steady)} of {len(rows)}; F-measure min {min(r['f_measure'] for r in steady):.3f} "
              f"mean {np.mean([r['f_measure'] for r in steady]):.3f} (goal >= 0.9); tempo within 4 %: "
              f"{sum(r['tempo_within_4pct'] for r in steady)} of {len(steady)}")
    print(f"all pieces: F-measure mean {np.mean([r['f_measure'] for r in rows]):.3f}; tempo within 4 %: "
          f"{sum(r['tempo_within_4pct'] for r in rows)} of {len(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
