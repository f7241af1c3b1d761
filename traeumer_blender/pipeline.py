# SPDX-License-Identifier: GPL-3.0-or-later
"""Music -> styles -> frames: the job the CLI and the Blender worker run.

    audio --encoder--> one embedding per frame --mapper (Eq. 1)--> one w per frame
          --smoothing per layer group--> --truncation--> styles.npz --generator--> PNG frames

Entry point: ``run_generate(GenerateSettings(...), progress=None, cancel=None) -> GenerateResult``.
The parts it runs live beside it: ``model_cache`` (models loaded once), ``styles_file``
(styles.npz), ``frames`` (rendering, and ``render_frames`` to render frames of a styles.npz
again), ``output_folder`` (file names, partial files), ``progress`` (events, ``Cancelled``).

Frames are written atomically; a re-run with the same settings renders only frames that are
missing or damaged, and the same inputs and seed give byte-identical files. Changed settings
re-render everything (frames of other settings are removed first). ``progress`` receives
``Progress`` events and ``cancel`` is checked between batches (``progress.py``).
"""

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from . import smoothing, timing
from .aspect import SQUARE, frame_width, parse_aspect
from .camera import STILL, CameraSettings, camera_path
from .errors import TraeumerError
from .frames import (
    default_batch,
    draft_batch,
    draft_tag,
    frame_is_kept,
    frame_order,
    frames_tag,
    has_skip_branch,
    render_batches,
    render_drafts,
    render_resolution,
)
from .layer_groups import DEFAULT_SMOOTHING_SECONDS, layer_groups
from .mapping import Mapper, target_w_for_seed, zero_label_mapper
from .model_cache import get_encoder, get_generator
from .motion import HIT_SEED_OFFSET, MotionSettings, move_styles
from .output_folder import (
    STYLES_NAME,
    FolderLock,
    draft_dir,
    ensure_writable_folder,
    frame_names,
    frame_path,
    remove_frames,
    remove_partial_files,
)
from .paths import file_digest
from .png import complete_png_tag
from .progress import Reporter
from .style_edit import forget_edits
from .styles_file import ENVELOPE_BANDS, MotionRecord, Styles, load_styles, save_styles

DEFAULT_DRAFT_SIZE = 64

# what the styles' maths is: part of every styles fingerprint (styles without motion keep the
# fingerprint, and so the frame tags, they had before motion existed)
STYLES_MATHS = "traeumer-styles-1"


@dataclass
class GenerateSettings:
    audio: str
    out_dir: str
    model: str = "default"          # "default" or a checkpoint file
    mapper: str = None              # a mapper .npz; None: zero-label mapping seeded by `seed`
    encoder: str = "default"        # encoder name or weights file
    fps: object = "30"              # "30", "29.97", "30000/1001", Fraction
    start: float = 0.0              # seconds into the audio file
    duration: float = None          # seconds; None: to the end of the file
    seed: int = 0
    truncation: float = 1.0
    smoothing: tuple = DEFAULT_SMOOTHING_SECONDS  # coarse, middle, fine window (s)
    smoothing_kind: str = "box"     # "box" (paper) or "triangular"
    resolution: int = None          # frame size; None: the generator's own
    device: str = "auto"
    precision: str = "auto"
    batch: int = None               # frames per generator call; None: automatic
    styles_only: bool = False       # write styles.npz, render nothing
    label: object = None            # class label of a conditional generator
    png_compression: int = 6
    motion: MotionSettings = field(default_factory=MotionSettings)   # pulse, cuts, hold (motion.py)
    aspect: str = SQUARE            # frame shape, "16:9", "9:16", "W:H" (aspect.py); height = resolution
    draft: bool = False             # draft frames of the whole song first, in DIR/draft/
    draft_size: int = None          # draft frame height; None: DEFAULT_DRAFT_SIZE
    first_frames: list = None       # [(first, end), ...] 0-based frame ranges to render first
    camera: CameraSettings = STILL  # StyleGAN3 only: still, or moved by the music (camera.py)


@dataclass
class GenerateResult:
    out_dir: str
    styles_path: str
    frame_count: int
    frames_rendered: int
    frames_reused: int
    fps: Fraction
    start: float
    duration: float
    resolution: int
    styles_reused: bool
    seconds: float
    frame_paths: list = field(default_factory=list, repr=False)
    width: int = None               # frame width (the resolution for square frames)
    draft_size: int = None          # draft frame height; None: no drafts were made
    draft_width: int = None
    notes: list = field(default_factory=list)   # things the user should know (e.g. why no drafts)


def _check_settings(settings: GenerateSettings):
    fps = timing.parse_fps(settings.fps)
    windows = smoothing.parse_windows(settings.smoothing)
    if settings.smoothing_kind not in smoothing.WINDOW_KINDS:
        raise TraeumerError(f"smoothing window must be one of {', '.join(smoothing.WINDOW_KINDS)}")
    for name in ("start", "truncation"):
        value = getattr(settings, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TraeumerError(f"{name} must be a finite number, not {value!r}")
    if settings.start < 0:
        raise TraeumerError("start must not be negative")
    if settings.duration is not None and (not math.isfinite(settings.duration) or settings.duration <= 0):
        raise TraeumerError("duration must be a positive number of seconds")
    if not 0.0 <= settings.truncation <= 2.0:
        raise TraeumerError("truncation must be between 0 and 2 (1 = none)")
    if settings.batch is not None and not 1 <= int(settings.batch) <= 256:
        raise TraeumerError("batch must be between 1 and 256 frames")
    if settings.resolution is not None and (int(settings.resolution) < 4 or int(settings.resolution) & (int(settings.resolution) - 1)):
        raise TraeumerError("resolution must be a power of two (e.g. 64, 256, 1024)")
    if not 0 <= int(settings.png_compression) <= 9:
        raise TraeumerError("PNG compression must be between 0 and 9")
    parse_aspect(settings.aspect)
    if settings.draft_size is not None and (int(settings.draft_size) < 16 or int(settings.draft_size) & (int(settings.draft_size) - 1)):
        raise TraeumerError("draft size must be a power of two of at least 16 (e.g. 64, 128)")
    for pair in settings.first_frames or ():
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
            raise TraeumerError("first frames must be (first, end) pairs of frame indices")
    if isinstance(settings.motion, dict):
        settings.motion = MotionSettings.from_record(settings.motion)
    elif settings.motion is None:
        settings.motion = MotionSettings()
    settings.motion = settings.motion.checked()
    if isinstance(settings.camera, dict):
        settings.camera = CameraSettings.from_record(settings.camera)
    elif settings.camera is None:
        settings.camera = STILL
    settings.camera = settings.camera.checked()
    return fps, windows


def _digest_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _fingerprints(settings, fps, windows, start, duration, audio_digest, generator, encoder_id,
                  mapper_digest, resolution, width):
    """(styles fingerprint, frames fingerprint): what styles.npz and the frame pixels depend on."""
    from .encoders.base import EMBEDDING_METHOD
    styles_inputs = {
        "audio": audio_digest, "start": start, "duration": duration, "fps": timing.format_fps(fps),
        "seed": int(settings.seed), "truncation": float(settings.truncation), "smoothing": list(windows),
        "smoothing_kind": settings.smoothing_kind, "generator": generator.source_id,
        "encoder": encoder_id, "embedding_method": EMBEDDING_METHOD, "mapper": mapper_digest,
        "label": settings.label, "format": STYLES_MATHS,
    }
    if not settings.motion.off:
        styles_inputs["motion"] = settings.motion.record()
    if not settings.camera.still:   # a still camera keeps the fingerprint (and frame tags) of before
        styles_inputs["camera"] = settings.camera.record()
    styles_fp = _digest_json(styles_inputs)
    return styles_fp, frames_tag(styles_fp, resolution, str(generator.precision), int(settings.png_compression), width)


def _existing_styles(path):
    """The styles of an earlier run in this folder, or None."""
    if not os.path.isfile(path):
        return None
    try:
        return load_styles(path)
    except TraeumerError:
        return None


def _refuse_foreign_frames(out_dir, previous) -> None:
    """Frames are only ever deleted or overwritten when they are ours: accounted for by the
    folder's styles.npz, or tagged by us (``png``). Anything else: refuse, delete nothing."""
    accounted = previous.frame_count if previous is not None else 0
    for number, name in sorted(frame_names(out_dir).items()):
        if number <= accounted:
            continue
        if not complete_png_tag(os.path.join(out_dir, name))[1]:
            raise TraeumerError(f"output folder {out_dir} holds {name}, which TräumerAI did not make "
                                f"(no styles.npz of ours accounts for it): choose an empty folder; "
                                f"nothing was deleted")


def _encoder_id_for_fingerprint(source):
    """Identity of the encoder without loading it: its name, or the digest of its file."""
    return file_digest(source) if os.path.isfile(os.fspath(source)) else str(source)


def run_generate(settings: GenerateSettings, progress=None, cancel=None) -> GenerateResult:
    """Run a whole job; see the module docstring. Raises TraeumerError (bad input) or Cancelled."""
    from .audio import load_audio, probe_audio

    started = time.monotonic()
    report = Reporter(progress, cancel)
    fps, windows = _check_settings(settings)
    audio_path = os.fspath(settings.audio)
    info = probe_audio(audio_path)
    if settings.start >= info.duration:
        raise TraeumerError(f"start {settings.start:g} s is beyond the end of the audio ({info.duration:.2f} s)")
    available = info.duration - settings.start
    duration = available if settings.duration is None else min(float(settings.duration), available)
    n_frames = timing.frame_count(duration, fps)
    if n_frames < 1:
        raise TraeumerError(f"audio excerpt of {duration:.3f} s is too short for one frame at {float(fps):g} fps")
    out_dir = os.fspath(settings.out_dir)
    ensure_writable_folder(out_dir)
    report.check()
    # the whole job owns the folder: a second generate (another process, another Blender) is
    # refused instead of mixing its frames with ours
    with FolderLock(out_dir, "generate"):
        return _run_generate_locked(settings, report, started, fps, windows, audio_path, info, duration,
                                    n_frames, out_dir, load_audio)


def _run_generate_locked(settings, report, started, fps, windows, audio_path, info, duration, n_frames,
                         out_dir, load_audio) -> GenerateResult:
    report("load", 0, 2)
    generator = get_generator(settings.model, settings.device, settings.precision, settings.label)
    report("load", 1, 2)
    resolution = int(settings.resolution or generator.resolution)
    if resolution > generator.resolution:
        raise TraeumerError(f"resolution {resolution} is above the generator's {generator.resolution}")
    if not settings.camera.still and not getattr(generator, "has_camera", False):
        raise TraeumerError(f"camera: {_source_text(settings.model)} is a StyleGAN2 generator, which has no "
                            f"camera (only StyleGAN3 models move the picture); use the still camera")
    mapper_file = None
    if settings.mapper:
        mapper_file = Mapper.load(settings.mapper)
        mapper_file.check_compatible(None, generator.source_id, name=f"mapper {settings.mapper}")
        mapper_file.check_sizes(generator.w_dim, name=f"mapper {settings.mapper}")
    audio_digest = file_digest(audio_path)
    mapper_digest = file_digest(settings.mapper) if settings.mapper else f"zero-label:{int(settings.seed)}"
    width = frame_width(resolution, settings.aspect)
    styles_fp, frames_fp = _fingerprints(
        settings, fps, windows, settings.start, duration, audio_digest, generator,
        _encoder_id_for_fingerprint(settings.encoder), mapper_digest, resolution, width)
    notes = []
    draft_size, draft_width = _draft_shape(settings, generator, resolution, notes)
    styles_path = os.path.join(out_dir, STYLES_NAME)
    previous = _existing_styles(styles_path)
    _refuse_foreign_frames(out_dir, previous)
    _refuse_foreign_frames(draft_dir(out_dir), previous)
    # frames rendered from edited style curves no longer match styles.npz: render them again
    forget_edits(out_dir)
    styles_reused = previous is not None and previous.fingerprint == styles_fp
    frames_reusable = styles_reused and previous.settings.get("frames_fingerprint") == frames_fp

    if styles_reused:
        styles = previous
        report("load", 2, 2)
    else:
        styles = _compute_styles(settings, generator, fps, windows, duration, n_frames, info,
                                 audio_path, audio_digest, mapper_file, resolution, report,
                                 load_audio)
        styles.fingerprint = styles_fp
    shape = {"frame_width": width if width != resolution else None,
             "draft_size": draft_size, "draft_width": draft_width}
    shape_changed = any(previous is None or previous.settings.get(k) != v for k, v in shape.items())
    styles.settings["frames_fingerprint"] = frames_fp
    styles.settings.update(shape)
    styles.resolution = resolution
    if not (styles_reused and frames_reusable) or shape_changed:
        save_styles(styles_path, styles)
    # frames of other styles are stale: remove them all, so that a resumed run stays consistent
    remove_partial_files(out_dir, n_frames if styles_reused else 0)
    remove_partial_files(draft_dir(out_dir), n_frames if styles_reused else 0)

    rendered = []
    reused = 0
    if not settings.styles_only:
        report.check()
        order = frame_order(n_frames, settings.first_frames)
        compression = int(settings.png_compression)
        # a frame is kept only when it was made with these very settings (its tag); stale ones
        # go before the drafts, so that a stale frame is never shown over its fresh draft
        todo = _stale_frames(out_dir, order, resolution, frames_fp, width)
        if draft_size:
            dtag = draft_tag(styles_fp, draft_size, generator.draft_precision, compression, draft_width)
            drafts = _stale_frames(draft_dir(out_dir), order, draft_size, dtag, draft_width)
            render_drafts(generator, styles.layer_ws, drafts, out_dir, draft_size, draft_width,
                          draft_batch(generator), compression, report, dtag)
        reused = n_frames - len(todo)
        batch = int(settings.batch or default_batch(generator))
        rendered = render_batches(
            generator, styles.layer_ws, todo, out_dir, render_resolution(generator, resolution),
            batch, compression, report, frames_fp, width=width,
            camera_for=(lambda chunk: styles.camera[chunk]) if styles.camera is not None else None)
    return GenerateResult(
        out_dir=out_dir, styles_path=styles_path, frame_count=n_frames,
        frames_rendered=len(rendered), frames_reused=reused, fps=fps, start=float(settings.start),
        duration=duration, resolution=resolution, styles_reused=styles_reused,
        seconds=time.monotonic() - started,
        frame_paths=[] if settings.styles_only else [frame_path(out_dir, i) for i in range(n_frames)],
        width=width, draft_size=draft_size, draft_width=draft_width, notes=notes)


def _stale_frames(folder, order, height, tag, width) -> list:
    """The frames of ``order`` (in that order) not kept in ``folder``; their files are removed."""
    todo = [i for i in order if not frame_is_kept(folder, i, height, tag, width)]
    remove_frames(folder, todo)
    return todo


def _draft_shape(settings, generator, resolution, notes):
    """(draft height, draft width) of a job, or (None, None) without drafts (with a note why)."""
    if not settings.draft:
        return None, None
    size = int(settings.draft_size or DEFAULT_DRAFT_SIZE)
    if not has_skip_branch(generator):
        notes.append("no draft frames: StyleGAN3 models have no skip branch to draw them from cheaply")
        return None, None
    if size >= resolution:
        notes.append(f"no draft frames: the frames themselves are only {resolution} px high")
        return None, None
    if size not in generator.draft_resolutions:
        raise TraeumerError(f"draft size {size} is not one of this model's "
                            f"{', '.join(str(r) for r in generator.draft_resolutions)}")
    return size, frame_width(size, settings.aspect)


def _compute_styles(settings, generator, fps, windows, duration, n_frames, info, audio_path,
                    audio_digest, mapper_file, resolution, report, load_audio):
    """Decode, embed, map, smooth and truncate: the Styles of a job."""
    encoder = get_encoder(settings.encoder, device=_encoder_device(settings.device))
    report("load", 2, 2)
    if mapper_file is not None:
        mapper_file.check_compatible(encoder.source_id, generator.source_id,
                                     name=f"mapper {settings.mapper}")
    # frames near the excerpt's edges see real audio around it; zeros only at the file's edges
    context = float(encoder.window_seconds) / 2.0 + 0.05
    audio_start = max(0.0, settings.start - context)
    audio_end = min(info.duration, settings.start + duration + context)
    report("decode", 0, 1)
    audio = load_audio(audio_path, sample_rate=encoder.sample_rate, start=audio_start,
                       duration=audio_end - audio_start)
    report("decode", 1, 1)
    report.check()
    times_in_audio = timing.frame_times(n_frames, fps, offset_seconds=settings.start - audio_start)

    def embed_progress(*args):
        done, total = _progress_numbers(args, n_frames)
        report("embed", done, total)
        report.check()

    report("embed", 0, n_frames)
    embeddings = np.asarray(encoder.embed_frames(audio, times_in_audio, progress=embed_progress),
                            dtype=np.float32)
    report("embed", n_frames, n_frames)
    if embeddings.shape[0] != n_frames or not np.all(np.isfinite(embeddings)):
        raise RuntimeError(f"encoder returned {embeddings.shape} embeddings, some not finite")
    report("style", 0, 1)
    mu, sigma = (np.asarray(v, dtype=np.float64) for v in generator.w_stats())
    if mapper_file is not None:
        mapper = mapper_file
    else:
        mapper = zero_label_mapper(embeddings.shape[1], mu, sigma, seed=int(settings.seed),
                                   encoder_source_id=encoder.source_id,
                                   generator_source_id=generator.source_id)
    raw_ws = mapper.map(embeddings, fps=fps)
    layer_group = layer_groups(generator.layer_resolutions)
    motion = None
    if settings.motion.off:
        group_ws = smoothing.smooth_groups(raw_ws, fps, windows, settings.smoothing_kind)
        if float(settings.truncation) != 1.0:
            group_ws = _truncate(generator, group_ws, float(settings.truncation))
    else:
        group_ws, motion = _moved_styles(settings, generator, encoder, audio, audio_start, duration, fps,
                                         windows, raw_ws, embeddings, report)
    camera = None
    if getattr(generator, "has_camera", False):
        camera = _camera_path(settings, motion, audio, encoder, audio_start, duration,
                              timing.frame_times(n_frames, fps, offset_seconds=settings.start))
    report("style", 1, 1)
    settings_record = {k: (v if isinstance(v, (str, int, float, bool, type(None), list, tuple)) else str(v))
                       for k, v in asdict(settings).items()}
    settings_record["fps"] = timing.format_fps(fps)
    settings_record["smoothing"] = list(windows)
    settings_record["duration"] = duration
    settings_record["camera"] = settings.camera.record()
    return Styles(
        group_ws=group_ws.astype(np.float32), layer_group=layer_group,
        layer_resolutions=np.asarray(generator.layer_resolutions, dtype=np.int64),
        raw_ws=raw_ws, embeddings=embeddings,
        frame_times=timing.frame_times(n_frames, fps, offset_seconds=settings.start),
        fps=fps, start=float(settings.start), duration=float(duration),
        smoothing_seconds=tuple(windows), smoothing_kind=settings.smoothing_kind,
        truncation=float(settings.truncation), seed=int(settings.seed), resolution=resolution,
        generator_source=_source_text(settings.model), generator_source_id=generator.source_id,
        encoder_source=_source_text(settings.encoder), encoder_source_id=encoder.source_id,
        mapper_kind=mapper.kind, mapper_source=_source_text(settings.mapper or ""),
        audio_path=os.path.abspath(audio_path), audio_digest=audio_digest,
        settings=settings_record, fingerprint="", motion=motion, camera=camera,
        camera_settings=None if camera is None else settings.camera.record())


def _camera_path(settings, motion, audio, encoder, audio_start, duration, frame_times):
    """The camera path [N, 3] of a generator with a camera; a music camera follows the motion's
    analysis, or analyses the music itself when motion is off (tempo and downbeats only)."""
    chosen = settings.camera
    if chosen.mode != "music" or chosen.still:
        return camera_path(chosen, frame_times)
    if motion is not None:
        tempo, downbeats = motion.analysis.get("tempo"), motion.downbeats
        per_bar = motion.analysis.get("beats_per_bar")
    else:
        from . import analysis as music

        heard = music.analyze(audio, encoder.sample_rate, audio_start, float(settings.start), float(duration))
        tempo, downbeats, per_bar = heard.tempo, heard.downbeats, heard.beats_per_bar
    return camera_path(chosen, frame_times, tempo, downbeats, per_bar)


def _moved_styles(settings, generator, encoder, audio, audio_start, duration, fps, windows, raw_ws,
                  embeddings, report):
    """Analysis, then smoothing with cuts, truncation, hold and pulse: (group ws, MotionRecord)."""
    from . import analysis as music

    report.check()
    frame_times = timing.frame_times(len(raw_ws), fps, offset_seconds=settings.start)
    heard = music.analyze(audio, encoder.sample_rate, audio_start, float(settings.start), float(duration),
                          embeddings=embeddings, embedding_times=frame_times, encoder=encoder)
    psi = float(settings.truncation)

    def truncate(group_ws):
        return _truncate(generator, group_ws, psi) if psi != 1.0 else group_ws

    hit_w = None
    if settings.motion.direction == "hit" and settings.motion.pulsing:
        hit_w = target_w_for_seed(generator, int(settings.seed) + HIT_SEED_OFFSET, psi)
    group_ws, moved = move_styles(raw_ws, fps, windows, settings.smoothing_kind, frame_times, heard,
                                  settings.motion, truncate, hit_w=hit_w,
                                  reach_seconds=float(encoder.window_seconds) / 2.0)
    bands = tuple(b for b in ENVELOPE_BANDS if b in moved.pulses)
    pulse = (np.stack([moved.pulses[b] for b in bands], axis=1) if bands
             else np.zeros((len(raw_ws), 0)))
    envelopes = np.stack([np.asarray(heard.envelopes[b], dtype=np.float32) for b in ENVELOPE_BANDS])
    record = MotionRecord(
        settings=settings.motion.record(), pulse_bands=bands, pulse=pulse,
        pulse_targets=moved.targets if moved.targets is not None else np.zeros(group_ws.shape[1:]),
        base_group_ws=moved.base_group_ws if moved.base_group_ws is not None else group_ws,
        cut_frames=moved.cuts, analysis=heard.to_json(envelopes=False),
        beats=np.asarray(heard.beats, dtype=np.float64), downbeats=np.asarray(heard.downbeats, dtype=np.float64),
        envelopes=envelopes)
    return group_ws, record


def _source_text(source):
    """A model given as a file is recorded by absolute path, a built-in one by name."""
    source = os.fspath(source)
    return os.path.abspath(source) if source and os.path.isfile(source) else source


def _encoder_device(device):
    return "cpu" if device in (None, "auto") else device


def _progress_numbers(args, default_total):
    """The encoder's progress callback may pass (done, total), (fraction) or an event."""
    if len(args) >= 2:
        return int(args[0]), int(args[1])
    if len(args) == 1:
        value = args[0]
        if hasattr(value, "done"):
            return int(value.done), int(value.total)
        if isinstance(value, float) and value <= 1.0:
            return int(round(value * default_total)), default_total
    return 0, default_total


def _truncate(generator, group_ws, psi):
    """w_avg + psi·(w - w_avg) per group, through the generator's own truncate."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(group_ws, dtype=np.float32))
    truncated = generator.truncate(tensor.to(generator.device), psi)
    if isinstance(truncated, torch.Tensor):
        truncated = truncated.detach().cpu().numpy()
    return np.asarray(truncated, dtype=np.float64)
