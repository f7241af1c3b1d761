# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line: ``python -m traeumer_blender generate|render|tags|analyze|inspect-model|demo|train-mapper``.

Exit status 0 on success, 2 with one line on stderr for bad input (TraeumerError and usage
errors), 1 with one line for an internal error (the traceback only with TRAEUMER_DEBUG=1),
130 when interrupted. Progress goes to stderr, results to stdout.
"""

import argparse
import json
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

from .allocator import keep_freed_memory
from .errors import TraeumerError
from .layer_groups import DEFAULT_SMOOTHING_SECONDS

PROG = "python -m traeumer_blender"
EXAMPLE_AUDIO = Path(__file__).resolve().parents[1] / "examples" / "hr-savino-ocean.ogg"
# stages worth a progress line (short stages would only add noise before an early error)
_SHOWN_STAGES = {"embed": "embedding music", "draft": "drafting frames", "render": "rendering frames",
                 "train": "training mapper"}


class UsageError(Exception):
    """A bad command line (argparse's error), reported like TraeumerError."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _debug() -> bool:
    return os.environ.get("TRAEUMER_DEBUG", "") not in ("", "0")


def _one_line(text) -> str:
    return " ".join(str(text).split())


class ProgressPrinter:
    """Progress events -> lines on stderr, at most one a second per stage (plus the last)."""

    def __init__(self, stream=None, quiet=False, interval=1.0):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interval = interval
        self.last = {}
        self.printed = {}

    def __call__(self, event):
        label = _SHOWN_STAGES.get(event.stage)
        if self.quiet or label is None or event.total <= 0:
            return
        now = time.monotonic()
        finished = event.done >= event.total
        if not finished and now - self.last.get(event.stage, -1e9) < self.interval:
            return
        if (event.done == 0 and event.stage in self.last) or self.printed.get(event.stage) == event.done:
            return
        self.last[event.stage] = now
        self.printed[event.stage] = event.done
        from .timing import format_duration

        percent = 100.0 * event.done / event.total
        eta = "" if event.eta_seconds is None or finished else f", about {format_duration(event.eta_seconds)} left"
        print(f"{label}: {event.done}/{event.total} ({percent:.0f}%){eta}", file=self.stream, flush=True)




# ----------------------------------------------------------------------------- commands

def _add_generate_options(parser, audio_required=True):
    if audio_required:
        parser.add_argument("--audio", required=True, help="music file (WAV, FLAC, Ogg, MP3, ...)")
        parser.add_argument("--out", required=True, help="folder for frame_000001.png ... and styles.npz")
    parser.add_argument("--model", default="default",
                        help="StyleGAN2 generator: 'default' (built in) or a checkpoint file")
    parser.add_argument("--mapper", default=None,
                        help="trained mapper .npz (default: zero-label mapping seeded by --seed)")
    parser.add_argument("--encoder", default="default", help="music encoder name or weights file")
    parser.add_argument("--fps", default="30", help="frame rate: 30, 29.97, 30000/1001, 23.976 ...")
    parser.add_argument("--start", type=float, default=0.0, help="start of the excerpt (s)")
    parser.add_argument("--duration", type=float, default=None, help="length of the excerpt (s; default: to the end)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the zero-label mapping")
    parser.add_argument("--truncation", type=float, default=1.0, help="truncation psi (1 = none)")
    parser.add_argument("--smoothing", default=",".join(f"{w:g}" for w in DEFAULT_SMOOTHING_SECONDS),
                        help="moving-average windows in seconds for coarse,middle,fine layers")
    parser.add_argument("--window", choices=("box", "triangular"), default="box",
                        help="smoothing window shape")
    parser.add_argument("--resolution", type=int, default=None,
                        help="frame size in pixels (a power of two up to the generator's; preview)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16, bf16")
    parser.add_argument("--batch", type=int, default=None, help="frames per generator call")
    parser.add_argument("--styles-only", action="store_true", help="write styles.npz, render no frames")
    shape = parser.add_argument_group("frame shape and drafts")
    shape.add_argument("--aspect", default="1:1", metavar="W:H",
                       help="frame shape: 1:1 (default), 16:9, 9:16, 2.39:1 ...; the height is the resolution")
    shape.add_argument("--draft", action="store_true",
                       help="first draft frames of the whole song into OUT/draft/ (small, fast), then the frames")
    shape.add_argument("--draft-size", type=int, default=None, metavar="N",
                       help="draft frame height (a power of two below the resolution; default 64)")
    shape.add_argument("--first", default=None, metavar="FRAMES",
                       help="frames to render first, e.g. 100-400 (1-based file numbers)")
    motion = parser.add_argument_group("musical motion (beats, onsets and sections; on by default)")
    motion.add_argument("--pulse", default=None, metavar="C,M,F",
                        help="pulse amount of the coarse,middle,fine layers, 0..1 (default 0,0.6,0.8)")
    motion.add_argument("--pulse-bands", default=None, metavar="B,B,B",
                        help="band driving each group: full, low, mid or high (default low,full,full)")
    motion.add_argument("--pulse-direction", choices=("hit", "leading"), default=None,
                        help="toward a seeded hit style, or along the track's leading style direction")
    motion.add_argument("--attack", type=float, default=None, help="pulse attack (s, default 0.01)")
    motion.add_argument("--release", type=float, default=None, help="pulse release (s, default 0.2)")
    motion.add_argument("--power", type=float, default=None, help="pulse shaping power (default 2)")
    motion.add_argument("--no-cuts", action="store_true", help="smooth across section boundaries")
    motion.add_argument("--crossfade", type=float, default=None, help="crossfade at a cut (s, default 0.25)")
    motion.add_argument("--hold", choices=("none", "beat", "bar"), default=None,
                        help="hold the look per beat or per bar (default none)")
    motion.add_argument("--no-motion", action="store_true",
                        help="no pulse, no cuts, no hold: the paper's smoothing alone")
    camera = parser.add_argument_group("camera (StyleGAN3 models; x, y in frame heights, rotation in degrees)")
    camera.add_argument("--camera", choices=("still", "music"), default="still",
                        help="still (default), or drifting with the tempo and nudged on downbeats")
    camera.add_argument("--camera-drift", type=float, default=None,
                        help="music: radius of the slow drift (frame heights, default 0.05)")
    camera.add_argument("--camera-nudge", type=float, default=None,
                        help="music: push on each downbeat (frame heights, default 0.02)")
    camera.add_argument("--camera-x", type=float, default=0.0,
                        help="where the camera looks, to the right (frame heights; the picture slides left)")
    camera.add_argument("--camera-y", type=float, default=0.0, help="... and up (frame heights)")
    camera.add_argument("--camera-rotation", type=float, default=0.0,
                        help="camera roll, counter-clockwise (degrees; the picture turns clockwise)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _settings_from(args, audio, out):
    from .pipeline import GenerateSettings

    return GenerateSettings(
        audio=audio, out_dir=out, model=args.model, mapper=args.mapper, encoder=args.encoder,
        fps=args.fps, start=args.start, duration=args.duration, seed=args.seed,
        truncation=args.truncation, smoothing=args.smoothing, smoothing_kind=args.window,
        resolution=args.resolution, device=args.device, precision=args.precision,
        batch=args.batch, styles_only=args.styles_only, motion=_motion_from(args),
        aspect=args.aspect, draft=args.draft or args.draft_size is not None, draft_size=args.draft_size,
        first_frames=_first_frames(args.first), camera=_camera_from(args))


def _first_frames(text):
    """"100-400,900" (1-based file numbers) -> [(99, 400), (899, 900)] (0-based, end exclusive)."""
    if text is None:
        return None
    ranges = []
    for part in text.split(","):
        try:
            first, _, last = part.strip().partition("-")
            first = int(first)
            last = int(last) if last else first
        except ValueError:
            raise TraeumerError(f"--first must look like 100-400,900, not {text!r}") from None
        if not 1 <= first <= last:
            raise TraeumerError(f"--first frame numbers start at 1 and rise, got {part.strip()}")
        ranges.append((first - 1, last))
    return ranges


def _camera_from(args):
    """CameraSettings from the camera options (one clear line for a bad one)."""
    from .camera import CameraSettings

    changes = {"mode": args.camera, "x": args.camera_x, "y": args.camera_y, "rotation": args.camera_rotation}
    for name in ("drift", "nudge"):
        value = getattr(args, f"camera_{name}")
        if value is not None:
            if args.camera != "music":
                raise TraeumerError(f"--camera-{name} moves the camera with the music: add --camera music")
            changes[name] = value
    return CameraSettings(**changes).checked()


def _motion_from(args):
    """MotionSettings from the motion options (one clear line for a bad one)."""
    from .motion import MOTION_OFF, MotionSettings, parse_amounts, parse_bands

    if args.no_motion:
        return MOTION_OFF
    changes = {}
    if args.pulse is not None:
        changes["pulse_amounts"] = parse_amounts(args.pulse)
    if args.pulse_bands is not None:
        changes["pulse_bands"] = parse_bands(args.pulse_bands)
    for name, key in (("pulse_direction", "direction"), ("attack", "attack"), ("release", "release"),
                      ("power", "power"), ("crossfade", "crossfade"), ("hold", "hold")):
        if getattr(args, name) is not None:
            changes[key] = getattr(args, name)
    if args.no_cuts:
        changes["cuts"] = False
    return MotionSettings(**changes).checked()


def _run_generate(settings, quiet):
    from .pipeline import run_generate
    from .timing import describe_fps

    result = run_generate(settings, progress=ProgressPrinter(quiet=quiet))
    frames = ("no frames (styles only)" if settings.styles_only else
              f"{result.frame_count} frames ({result.frames_rendered} rendered, {result.frames_reused} kept)")
    for note in result.notes:
        print(note, file=sys.stderr)
    if result.draft_size:
        frames += f", drafts of {result.draft_width}x{result.draft_size} px in draft/"
    size = f"{result.width}x{result.resolution}" if result.width != result.resolution else f"{result.resolution}"
    print(f"{frames} at {describe_fps(result.fps)}, {size} px, "
          f"{result.duration:.2f} s of music from {result.start:g} s -> {result.out_dir} "
          f"({result.seconds:.1f} s)")
    return 0


def cmd_generate(args):
    return _run_generate(_settings_from(args, args.audio, args.out), args.quiet)


def cmd_demo(args):
    if not EXAMPLE_AUDIO.is_file():
        raise TraeumerError(f"the bundled example is missing: {EXAMPLE_AUDIO}")
    if args.duration is None:
        args.duration = 20.0
    return _run_generate(_settings_from(args, str(EXAMPLE_AUDIO), args.out), args.quiet)


def _parse_frames(text, count):
    """"1-10,25" (1-based file numbers, as in frame_000001.png) -> 0-based indices."""
    indices = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(v) for v in part.split("-", 1))
            else:
                first = last = int(part)
        except ValueError:
            raise TraeumerError(f"frames must look like 1-10,25, not {text!r}") from None
        if not 1 <= first <= last <= count:
            raise TraeumerError(f"frame numbers must lie in 1..{count}, got {part}")
        indices.extend(range(first - 1, last))
    return sorted(set(indices))


def cmd_render(args):
    from .frames import render_frames
    from .styles_file import load_styles

    styles = load_styles(args.styles)
    indices = None if args.frames is None else _parse_frames(args.frames, styles.frame_count)
    paths = render_frames(args.styles, indices, out_dir=args.out, model=args.model,
                          device=args.device, precision=args.precision, batch=args.batch,
                          progress=ProgressPrinter(quiet=args.quiet), only_missing=args.missing)
    print(f"rendered {len(paths)} frames")
    return 0


def cmd_tags(args):
    import numpy as np

    from .audio import load_audio, probe_audio
    from .model_cache import get_encoder

    probe_audio(args.audio)
    encoder = get_encoder(args.encoder, device="cpu" if args.device == "auto" else args.device)
    audio = load_audio(args.audio, sample_rate=encoder.sample_rate)
    probabilities = np.asarray(encoder.tag_windows(audio), dtype=np.float64)
    if args.json:
        json.dump({"tags": list(encoder.tag_names), "window_seconds": float(encoder.window_seconds),
                   "probabilities": probabilities.tolist()}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    for index, row in enumerate(probabilities):
        start = index * float(encoder.window_seconds)
        best = np.argsort(-row, kind="stable")[:args.top]
        tags = ", ".join(f"{encoder.tag_names[k]} {row[k]:.2f}" for k in best)
        print(f"{_clock(start)}-{_clock(start + encoder.window_seconds)}  {tags}")
    return 0


def cmd_analyze(args):
    import math

    import numpy as np

    from .analysis import EMBEDDING_STEP_SECONDS, analyze
    from .audio import load_audio, probe_audio
    from .model_cache import get_encoder

    info = probe_audio(args.audio)
    start = float(args.start)
    if not math.isfinite(start) or start < 0:
        raise TraeumerError("start must be a finite number of seconds >= 0")
    if start >= info.duration:
        raise TraeumerError(f"start {start:g} s is beyond the end of the audio ({info.duration:.2f} s)")
    if args.duration is not None and (not math.isfinite(args.duration) or args.duration <= 0):
        raise TraeumerError("duration must be a positive number of seconds")
    duration = info.duration - start if args.duration is None else min(float(args.duration), info.duration - start)
    encoder = get_encoder(args.encoder, device="cpu")
    # audio around the excerpt: the encoder's windows and the spectrogram's frames see real music
    context = float(encoder.window_seconds) / 2.0 + 0.05
    audio_start = max(0.0, start - context)
    audio = load_audio(args.audio, sample_rate=encoder.sample_rate, start=audio_start,
                       duration=min(info.duration, start + duration + context) - audio_start)
    # a header's length may be an estimate (MP3): keep to what was decoded
    duration = min(duration, audio_start + len(audio) / encoder.sample_rate - start)
    if duration <= 0:
        raise TraeumerError(f"no audio at {start:g} s of {args.audio}")
    times = start + EMBEDDING_STEP_SECONDS * (np.arange(max(1, math.ceil(duration / EMBEDDING_STEP_SECONDS))) + 0.5)
    times = np.minimum(times, start + duration - 1e-6)
    embeddings = encoder.embed_frames(audio, times - audio_start)
    result = analyze(audio, encoder.sample_rate, audio_start, start, duration, embeddings=embeddings,
                     embedding_times=times, encoder=encoder)
    if args.json:
        json.dump(result.to_json(envelopes=True), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if result.tempo is None:
        print(f"tempo: none (no steady beat; periodicity {result.tempo_confidence:.2f})")
    else:
        print(f"tempo: {result.tempo:.1f} BPM (periodicity {result.tempo_confidence:.2f})")
    if len(result.beats):
        print(f"beats: {len(result.beats)} ({_clock(result.beats[0])} to {_clock(result.beats[-1])})")
    else:
        print("beats: 0")
    bars = f" ({result.beats_per_bar} beats per bar)" if len(result.downbeats) else ""
    print(f"downbeats: {len(result.downbeats)}{bars}")
    print(f"sections: {len(result.sections)}")
    for section in result.sections:
        tags = ", ".join(f"{tag} {score:.2f}" for tag, score in zip(section.tags, section.scores))
        print(f"  {_clock(section.start)}-{_clock(section.end)}  {tags}")
    return 0


def _clock(seconds) -> str:
    minutes, seconds = divmod(float(seconds), 60.0)
    return f"{int(minutes)}:{seconds:05.2f}"


def cmd_inspect_model(args):
    from .stylegan2 import inspect_checkpoint

    path = args.file
    if path != "default" and not os.path.lexists(path):
        raise TraeumerError(f"model file not found: {path}")
    info = dict(inspect_checkpoint(path))   # "default", or a file (a folder, FIFO ... is named)
    if args.json:
        json.dump(info, sys.stdout, default=str, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    c_dim = int(info.get("c_dim") or 0)
    rows = [("format", info.get("format")), ("resolution", info.get("resolution")),
            ("w layers (n_latent)", info.get("n_latent")), ("w_dim", info.get("w_dim")),
            ("z_dim", info.get("z_dim")),
            ("conditional", f"yes ({c_dim}-d label)" if c_dim else "no"),
            ("mapping layers", info.get("mapping_layers"))]
    shown = {"format", "resolution", "n_latent", "w_dim", "z_dim", "c_dim", "mapping_layers"}
    rows += [(key, value) for key, value in sorted(info.items()) if key not in shown]
    for key, value in rows:
        print(f"{key}: {value}")
    return 0


def cmd_train_mapper(args):
    from .mapping import train_from_pairs_file

    if args.labels:
        return _train_from_label_set(args)

    result = train_from_pairs_file(args.pairs, args.out, model=args.model, encoder=args.encoder,
                                   steps=args.steps, seed=args.seed, device=args.device,
                                   progress=ProgressPrinter(quiet=args.quiet))
    print(f"mapper written to {args.out}: {result['pairs']} windows, L1 {result['l1_before']:.4f} -> "
          f"{result['l1_after']:.4f}")
    return 0


def _train_from_label_set(args):
    from .labels import train_from_label_file

    result = train_from_label_file(args.labels, args.out, model=args.model, steps=args.steps,
                                   seed=args.seed, device=args.device,
                                   progress=ProgressPrinter(quiet=args.quiet))
    print(f"mapper written to {args.out}: {result['pairs']} clips, {result['windows']} windows, "
          f"L1 {result['l1_after']:.4f} (zero-label mapping: {result['l1_zero_label']:.4f})")
    return 0


def cmd_worker(argv):
    from . import worker

    return worker.main(argv)


def build_parser():
    parser = _Parser(prog=PROG, description="TräumerAI for Blender: music -> StyleGAN2 frames.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    generate = commands.add_parser("generate", help="render the frames of a piece of music")
    _add_generate_options(generate)
    generate.set_defaults(run=cmd_generate)

    demo = commands.add_parser("demo", help="generate from the bundled example (20 s excerpt)")
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    _add_generate_options(demo, audio_required=False)
    demo.set_defaults(run=cmd_demo)

    render = commands.add_parser("render", help="render frames of a styles.npz again")
    render.add_argument("--styles", required=True, help="styles.npz of an earlier generate")
    render.add_argument("--frames", default=None, help="frame numbers, e.g. 1-10,25 (default: all)")
    render.add_argument("--missing", action="store_true", help="only frames missing or damaged")
    render.add_argument("--out", default=None, help="output folder (default: the styles' folder)")
    render.add_argument("--model", default=None, help="generator file, if it was moved")
    render.add_argument("--device", default="auto")
    render.add_argument("--precision", default=None)
    render.add_argument("--batch", type=int, default=None)
    render.add_argument("--quiet", action="store_true")
    render.set_defaults(run=cmd_render)

    tags = commands.add_parser("tags", help="MagnaTagATune tags of the music, window by window")
    tags.add_argument("--audio", required=True)
    tags.add_argument("--encoder", default="default")
    tags.add_argument("--device", default="auto")
    tags.add_argument("--top", type=int, default=5, help="tags shown per window")
    tags.add_argument("--json", action="store_true",
                      help='all probabilities: {"tags", "window_seconds", "probabilities"}')
    tags.set_defaults(run=cmd_tags)

    analyze = commands.add_parser("analyze", help="tempo, beats, downbeats and sections of the music")
    analyze.add_argument("--audio", required=True)
    analyze.add_argument("--start", type=float, default=0.0, help="start of the excerpt (s)")
    analyze.add_argument("--duration", type=float, default=None, help="length of the excerpt (s; default: to the end)")
    analyze.add_argument("--encoder", default="default", help="music encoder (sections, tags): name or weights file")
    analyze.add_argument("--json", action="store_true",
                         help="the whole analysis as JSON, with the onset envelopes of every band")
    analyze.set_defaults(run=cmd_analyze)

    inspect = commands.add_parser("inspect-model", help="describe a StyleGAN2 checkpoint")
    inspect.add_argument("file", help="checkpoint file, or 'default' for the built-in generator")
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(run=cmd_inspect_model)

    train = commands.add_parser("train-mapper", help="train the Eq. 1 mapper from labelled clips")
    labelled = train.add_mutually_exclusive_group(required=True)
    labelled.add_argument("--pairs", help="JSON file of labelled clips (see README)")
    labelled.add_argument("--labels", help="label set file (.labels.npz) from Blender's Label panel")
    train.add_argument("--out", required=True, help="mapper file to write (.npz)")
    train.add_argument("--model", default="default")
    train.add_argument("--encoder", default="default")
    train.add_argument("--steps", type=int, default=30000)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(run=cmd_train_mapper)

    commands.add_parser("worker", help="background worker of the Blender extension (JSON lines)",
                        add_help=False)
    return parser


def _check_arguments(args):
    """What can be refused before any work: a device this machine does not have."""
    if getattr(args, "device", None) is not None:
        from .devices import check_device

        check_device(args.device)


def _silence_native_stderr():
    """Keep Python's stderr, drop what C libraries write to file descriptor 2.

    Decoders (libmpg123 inside libsndfile) print notes such as "Illegal Audio-MPEG-Header"
    straight to fd 2; the user gets our one-line error instead. TRAEUMER_DEBUG=1 keeps them.
    """
    try:
        sys.stderr.flush()
        python_stderr = os.dup(2)
        sys.stderr = open(python_stderr, "w", encoding="utf-8", errors="backslashreplace",
                          buffering=1, closefd=True)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()
    if not _debug():
        warnings.simplefilter("ignore")
        logging.basicConfig(level=logging.ERROR, format="%(message)s")
    try:
        if argv[:1] == ["worker"]:
            return cmd_worker(argv[1:])
        if not _debug():
            _silence_native_stderr()
        args = build_parser().parse_args(argv)
        _check_arguments(args)
        return int(args.run(args) or 0)
    except (TraeumerError, UsageError) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (frames written so far are complete; run again to resume)", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input
        from .progress import Cancelled

        if isinstance(error, Cancelled):
            print("cancelled", file=sys.stderr)
            return 130
        if _debug():
            traceback.print_exc()
        print(f"internal error: {type(error).__name__}: {_one_line(error)} "
              "(set TRAEUMER_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
