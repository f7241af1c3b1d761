# SPDX-License-Identifier: GPL-3.0-or-later
"""Music -> styles -> frames: the job the CLI and the Blender worker run.

    audio --encoder--> one embedding per frame --mapper (Eq. 1)--> one w per frame
          --smoothing per layer group--> --truncation--> styles.npz --generator--> PNG frames

Entry points:

* ``run_generate(GenerateSettings(...), progress=None, cancel=None) -> GenerateResult``
* ``render_frames(styles_path, frame_indices=None, ws_override=None, ...)`` re-renders chosen frames
  from a ``styles.npz`` (the Blender "Update frames" feature: edit styles with ``update_styles``,
  then render the frames it reports as changed).
* ``load_styles(path) -> Styles`` / ``save_styles(path, styles)``.

Frames are ``frame_000001.png`` ... (frame index i is file number i + 1), each written
atomically; a re-run with the same settings renders only frames that are missing or damaged.
Same inputs and seed give byte-identical files. On the CPU every generator call has the same
number of rows (padded), so a resumed or re-rendered frame is byte-identical too; on a GPU frames
are batched for speed and a frame rendered in another batch may differ in the last bit of a few
pixels.
``progress`` receives ``Progress(stage, done, total, eta_seconds)`` events; it may raise to stop
the job. ``cancel`` (a callable returning True, or a ``threading.Event``) is checked between
batches; either way no partial frame file is left behind.

styles.npz (format ``traeumer-styles-1``, load with ``allow_pickle=False``):

==================  =======================  ============================================================
key                 shape / type             meaning
==================  =======================  ============================================================
group_ws            float32 [N, 3, w_dim]    w per frame and group (coarse, middle, fine) after
                                             smoothing and truncation: what the frames show
layer_group         int64 [n_latent]         group of each w layer: ws of frame i, layer l =
                                             ``group_ws[i, layer_group[l]]`` (``Styles.layer_ws``)
layer_resolutions   int64 [n_latent]         ``G.layer_resolutions``
raw_ws              float32 [N, w_dim]       mapper output before smoothing and truncation
embeddings          float32 [N, D]           encoder embedding per frame (re-map without the encoder)
frame_times         float64 [N]              time of each frame in the audio file (s): start + i/fps
fps_num, fps_den    int                      exact frame rate num/den
start, duration     float                    excerpt of the audio file (s)
group_names         str [3]                  "coarse", "middle", "fine"
smoothing_seconds   float64 [3]              window per group; ``smoothing_kind`` "box"/"triangular"
truncation, seed    float, int
resolution          int                      frame size in pixels (square)
generator_source, generator_source_id, encoder_source, encoder_source_id, mapper_kind,
mapper_source, audio_path, audio_digest: str
settings_json       str                      every setting (JSON); ``fingerprint``: digest of the
                                             settings the styles depend on
frame_pattern       str                      "frame_{:06d}.png", numbered from 1
==================  =======================  ============================================================
"""

import hashlib
import io
import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from . import png, smoothing, timing
from .errors import TraeumerError
from .mapping import Mapper, zero_label_mapper
from .npz_files import open_npz
from .paths import file_digest

STYLES_FORMAT = "traeumer-styles-1"
STYLES_NAME = "styles.npz"
FRAME_PATTERN = "frame_{:06d}.png"
_FRAME_RE = re.compile(r"^frame_(\d{6,})\.png$")
_TEMP_RE = re.compile(r"^\.(frame_\d{6,}\.png|styles\.npz)\..*\.tmp$")


class Cancelled(Exception):
    """The caller asked to stop; everything written so far is complete and reusable."""


@dataclass(frozen=True)
class Progress:
    stage: str          # "load", "decode", "embed", "style", "render", "train"
    done: int
    total: int
    eta_seconds: float  # None when unknown


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
    smoothing: tuple = smoothing.DEFAULT_WINDOWS_SECONDS  # coarse, middle, fine window (s)
    smoothing_kind: str = "box"     # "box" (paper) or "triangular"
    resolution: int = None          # frame size; None: the generator's own
    device: str = "auto"
    precision: str = "auto"
    batch: int = None               # frames per generator call; None: automatic
    styles_only: bool = False       # write styles.npz, render nothing
    label: object = None            # class label of a conditional generator
    png_compression: int = 6


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


# ----------------------------------------------------------------------------- helpers

def frame_path(out_dir, index: int) -> str:
    """Path of frame ``index`` (0-based) in ``out_dir``: frame_000001.png for index 0."""
    return os.path.join(os.fspath(out_dir), FRAME_PATTERN.format(int(index) + 1))


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


class _Reporter:
    """Sends Progress events with an ETA from this stage's own rate; checks cancellation."""

    def __init__(self, progress, cancel):
        self.progress = progress
        self.cancel = cancel
        self.stage = None
        self.stage_started = 0.0

    def check(self):
        if _is_cancelled(self.cancel):
            raise Cancelled("cancelled")

    def __call__(self, stage, done, total):
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.stage_started, self.first_done = stage, now, done
        eta = None
        if total and done >= total:
            eta = 0.0
        elif done > self.first_done:
            eta = (now - self.stage_started) / (done - self.first_done) * (total - done)
        if self.progress is not None:
            self.progress(Progress(stage, int(done), int(total), eta))


# ----------------------------------------------------------------------------- model cache

_CACHE_LOCK = threading.Lock()
_CACHE = OrderedDict()
_CACHE_SIZE = 4


def _source_key(source):
    """A cache key that changes when a model file changes."""
    source = os.fspath(source)
    if os.path.isfile(source):
        stat = os.stat(source)
        return (os.path.realpath(source), stat.st_mtime_ns, stat.st_size)
    return (source,)


def _cached(kind, source, device, precision, loader, extra=()):
    key = (kind, _source_key(source), device, precision, extra)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = loader()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def get_generator(source="default", device="auto", precision="auto", label=None):
    """The generator, loaded once per (source, device, precision, label) in this process."""
    from .stylegan2 import load_generator

    label_key = None if label is None else json.dumps(label, sort_keys=True, default=str)
    return _cached("generator", source, device, precision,
                   lambda: load_generator(source, device=device, precision=precision, label=label),
                   extra=label_key)


def get_encoder(source="default", device="cpu"):
    """The music encoder, loaded once per (source, device) in this process."""
    from .encoders import load_encoder

    return _cached("encoder", source, device, None, lambda: load_encoder(source, device=device))


def clear_model_cache():
    with _CACHE_LOCK:
        _CACHE.clear()


def _w_stats(generator):
    mean, std = generator.w_stats()
    return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


# ----------------------------------------------------------------------------- styles file

@dataclass
class Styles:
    """Everything in styles.npz (see the module docstring)."""

    group_ws: np.ndarray
    layer_group: np.ndarray
    layer_resolutions: np.ndarray
    raw_ws: np.ndarray
    embeddings: np.ndarray
    frame_times: np.ndarray
    fps: Fraction
    start: float
    duration: float
    smoothing_seconds: tuple
    smoothing_kind: str
    truncation: float
    seed: int
    resolution: int
    generator_source: str
    generator_source_id: str
    encoder_source: str
    encoder_source_id: str
    mapper_kind: str
    mapper_source: str
    audio_path: str
    audio_digest: str
    settings: dict
    fingerprint: str

    @property
    def frame_count(self) -> int:
        return int(self.group_ws.shape[0])

    def layer_ws(self, frame_indices=None) -> np.ndarray:
        """Per-layer ws [k, n_latent, w_dim] of the given frames (all when None)."""
        selected = self.group_ws if frame_indices is None else self.group_ws[np.asarray(frame_indices)]
        return selected[:, self.layer_group]


def save_styles(path, styles: Styles) -> None:
    """Write styles.npz atomically."""
    arrays = {
        "format": np.array(STYLES_FORMAT),
        "group_ws": np.asarray(styles.group_ws, dtype=np.float32),
        "layer_group": np.asarray(styles.layer_group, dtype=np.int64),
        "layer_resolutions": np.asarray(styles.layer_resolutions, dtype=np.int64),
        "group_names": np.array(smoothing.GROUP_NAMES),
        "raw_ws": np.asarray(styles.raw_ws, dtype=np.float32),
        "embeddings": np.asarray(styles.embeddings, dtype=np.float32),
        "frame_times": np.asarray(styles.frame_times, dtype=np.float64),
        "fps_num": np.array(styles.fps.numerator),
        "fps_den": np.array(styles.fps.denominator),
        "start": np.array(float(styles.start)),
        "duration": np.array(float(styles.duration)),
        "smoothing_seconds": np.asarray(styles.smoothing_seconds, dtype=np.float64),
        "smoothing_kind": np.array(styles.smoothing_kind),
        "truncation": np.array(float(styles.truncation)),
        "seed": np.array(int(styles.seed)),
        "resolution": np.array(int(styles.resolution)),
        "frame_pattern": np.array(FRAME_PATTERN),
        "settings_json": np.array(json.dumps(styles.settings, sort_keys=True)),
    }
    for name in ("generator_source", "generator_source_id", "encoder_source", "encoder_source_id",
                 "mapper_kind", "mapper_source", "audio_path", "audio_digest", "fingerprint"):
        arrays[name] = np.array(str(getattr(styles, name)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    png.write_atomic(path, buffer.getvalue())


def load_styles(path) -> Styles:
    """Read a styles.npz written by save_styles (no pickles)."""
    path = os.fspath(path)
    with open_npz(path, STYLES_FORMAT, "styles file") as data:
        text = {name: str(data[name]) for name in (
            "generator_source", "generator_source_id", "encoder_source", "encoder_source_id",
            "mapper_kind", "mapper_source", "audio_path", "audio_digest", "fingerprint",
            "smoothing_kind")}
        styles = Styles(
            group_ws=data["group_ws"], layer_group=data["layer_group"],
            layer_resolutions=data["layer_resolutions"], raw_ws=data["raw_ws"],
            embeddings=data["embeddings"], frame_times=data["frame_times"],
            fps=Fraction(int(data["fps_num"]), int(data["fps_den"])),
            start=float(data["start"]), duration=float(data["duration"]),
            smoothing_seconds=tuple(float(v) for v in data["smoothing_seconds"]),
            truncation=float(data["truncation"]), seed=int(data["seed"]),
            resolution=int(data["resolution"]),
            settings=json.loads(str(data["settings_json"])), **text)
    n_groups = len(smoothing.GROUP_NAMES)
    if (styles.group_ws.ndim != 3 or styles.group_ws.shape[1] != n_groups
            or len(styles.frame_times) != len(styles.group_ws)
            or styles.layer_group.max(initial=0) >= n_groups):
        raise TraeumerError(f"{path} is a damaged styles.npz (inconsistent shapes)")
    return styles


def update_styles(styles_path, frame_indices, group_ws) -> list:
    """Replace the group ws of some frames in styles.npz; return the indices that changed.

    ``group_ws`` is [k, 3, w_dim] for the k ``frame_indices``. Render the returned frames with
    ``render_frames(styles_path, changed)`` afterwards.
    """
    styles = load_styles(styles_path)
    indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    new = np.asarray(group_ws, dtype=np.float32).reshape((len(indices),) + styles.group_ws.shape[1:])
    if indices.size and (indices.min() < 0 or indices.max() >= styles.frame_count):
        raise TraeumerError(f"frame index out of range 0..{styles.frame_count - 1}")
    group_ws = np.array(styles.group_ws)
    changed = sorted({int(i) for i, row in zip(indices, new) if not np.array_equal(group_ws[i], row)})
    if changed:
        for i, row in zip(indices, new):
            group_ws[i] = row
        styles.group_ws = group_ws
        save_styles(styles_path, styles)
    return changed


# ----------------------------------------------------------------------------- rendering

def default_batch(generator) -> int:
    """Frames per step (between progress events and cancel checks; one generator call on GPU)."""
    return 8 if str(getattr(generator, "device", "cpu")).startswith("cuda") else 4


def _to_uint8_images(images) -> np.ndarray:
    """[N,3,H,W] in [-1,1] (torch) -> [N,H,W,3] uint8."""
    import torch

    with torch.no_grad():
        scaled = ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        return scaled.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _render_batches(generator, layer_ws_for, indices, out_dir, resolution, batch, compression,
                    report, stage="render"):
    """Render frames ``indices`` in batches, writing each PNG atomically. Returns paths."""
    import torch

    written = []
    total = len(indices)
    report(stage, 0, total)
    for first in range(0, total, batch):
        report.check()
        chunk = indices[first:first + batch]
        ws = torch.from_numpy(np.ascontiguousarray(layer_ws_for(chunk), dtype=np.float32))
        with torch.no_grad():
            if _fixed_rows(generator):
                images = torch.cat([_synthesize_rows(generator, ws[k:k + CPU_SYNTHESIS_ROWS], resolution)
                                    for k in range(0, len(chunk), CPU_SYNTHESIS_ROWS)])
            else:
                images = generator.synthesis(ws.to(generator.device), resolution=resolution)
        pixels = _to_uint8_images(images)
        for index, image in zip(chunk, pixels):
            path = frame_path(out_dir, index)
            png.write_png(path, image, compression)
            written.append(path)
        report(stage, min(first + batch, total), total)
    return written


# On the CPU every synthesis call gets exactly this many rows (the last group padded with
# copies): a row's pixels depend on the batch size but not on the other rows, so a frame comes
# out bit for bit the same whichever frames share its call (resumed runs, Update frames), while
# the generator still runs its rows in parallel (4 rows: ~4x faster per frame than 1 here).
CPU_SYNTHESIS_ROWS = 4


def _fixed_rows(generator) -> bool:
    """Fixed-size calls on the CPU; GPU batches trade bit-exact resumes for speed."""
    return not str(getattr(generator, "device", "cpu")).startswith("cuda")


def _synthesize_rows(generator, ws, resolution):
    """Synthesize ``ws`` ([n ≤ CPU_SYNTHESIS_ROWS, L, D]) in one call of exactly that many rows."""
    import torch

    count = ws.shape[0]
    if count < CPU_SYNTHESIS_ROWS:
        ws = torch.cat([ws, ws[-1:].expand(CPU_SYNTHESIS_ROWS - count, *ws.shape[1:])])
    return generator.synthesis(ws, resolution=resolution)[:count]


def _frame_is_valid(out_dir, index, resolution) -> bool:
    return png.is_complete_png(frame_path(out_dir, index), resolution, resolution)


def _cleanup_folder(out_dir, frame_count):
    """Remove temp files of an interrupted run and frames beyond the new frame count."""
    for name in os.listdir(out_dir):
        match = _FRAME_RE.match(name)
        if (match and int(match.group(1)) > frame_count) or _TEMP_RE.match(name):
            try:
                os.unlink(os.path.join(out_dir, name))
            except OSError:
                pass


def render_frames(styles_path, frame_indices=None, ws_override=None, out_dir=None, model=None,
                  device="auto", precision="auto", batch=None, progress=None, cancel=None,
                  only_missing=False, png_compression=None) -> list:
    """Render frames of a styles.npz again; returns the written paths.

    frame_indices: 0-based frame indices (None: all). ws_override: optional array aligned with
    frame_indices, either group ws [k, 3, w_dim] or per-layer ws [k, n_latent, w_dim]; it is used
    for these frames instead of the stored styles (styles.npz is not changed; use update_styles
    to store edits). model: the generator file when it was moved (its source_id must match).
    only_missing: skip frames whose file is already a complete PNG.
    """
    report = _Reporter(progress, cancel)
    styles = load_styles(styles_path)
    out_dir = os.fspath(out_dir) if out_dir is not None else os.path.dirname(os.path.abspath(styles_path))
    _ensure_writable_folder(out_dir)
    n_frames = styles.frame_count
    indices = np.arange(n_frames) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= n_frames):
        raise TraeumerError(f"frame index out of range 0..{n_frames - 1}")
    override = None
    if ws_override is not None:
        override = np.asarray(ws_override, dtype=np.float32)
        if override.ndim != 3 or override.shape[0] != len(indices):
            raise TraeumerError("ws_override must have one row per frame index")
        if override.shape[1] not in (styles.group_ws.shape[1], len(styles.layer_group)):
            raise TraeumerError(f"ws_override must be [k, 3, w_dim] or [k, {len(styles.layer_group)}, w_dim]")
        if override.shape[1] == styles.group_ws.shape[1] != len(styles.layer_group):
            override = override[:, styles.layer_group]
    settings = styles.settings
    source = model if model is not None else styles.generator_source
    report("load", 0, 1)
    generator = get_generator(source, device=device,
                              precision=precision if precision else settings.get("precision", "auto"),
                              label=settings.get("label"))
    report("load", 1, 1)
    if generator.source_id != styles.generator_source_id:
        raise TraeumerError(
            f"styles were made with generator {styles.generator_source_id}, but {source} is "
            f"{generator.source_id}")
    if only_missing:
        keep = [not _frame_is_valid(out_dir, i, styles.resolution) for i in indices]
        indices = indices[np.asarray(keep, dtype=bool)] if len(indices) else indices
        if override is not None:
            override = override[np.asarray(keep, dtype=bool)]
    position = {int(i): k for k, i in enumerate(indices)}

    def layer_ws_for(chunk):
        if override is not None:
            return override[[position[int(i)] for i in chunk]]
        return styles.layer_ws(chunk)

    compression = png_compression if png_compression is not None else settings.get("png_compression", 6)
    return _render_batches(generator, layer_ws_for, list(int(i) for i in indices), out_dir,
                           _render_resolution(generator, styles.resolution), batch or default_batch(generator),
                           compression, report)


def _render_resolution(generator, resolution):
    """The resolution argument for G.synthesis: None for the generator's own size."""
    return None if resolution in (None, generator.resolution) else int(resolution)


# ----------------------------------------------------------------------------- generate

def _ensure_writable_folder(out_dir):
    """Create the output folder; one clear error when that is impossible."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except FileExistsError:
        raise TraeumerError(f"output path exists and is not a folder: {out_dir}") from None
    except NotADirectoryError:
        raise TraeumerError(f"cannot create output folder {out_dir}: a parent is a file") from None
    except OSError as error:
        raise TraeumerError(f"cannot create output folder {out_dir}: {error.strerror}") from None
    if not os.path.isdir(out_dir):
        raise TraeumerError(f"output path exists and is not a folder: {out_dir}")
    probe = os.path.join(out_dir, f".write-test-{os.getpid()}.tmp")
    try:
        with open(probe, "wb") as stream:
            stream.write(b"ok")
        os.unlink(probe)
    except OSError as error:
        raise TraeumerError(f"cannot write to output folder {out_dir}: {error.strerror}") from None


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
    return fps, windows


def _digest_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _fingerprints(settings, fps, windows, start, duration, audio_digest, generator, encoder_id,
                  mapper_digest, resolution):
    """(styles fingerprint, frames fingerprint): what styles.npz and the frame pixels depend on."""
    from .encoders.base import EMBEDDING_METHOD
    styles_inputs = {
        "audio": audio_digest, "start": start, "duration": duration, "fps": timing.format_fps(fps),
        "seed": int(settings.seed), "truncation": float(settings.truncation), "smoothing": list(windows),
        "smoothing_kind": settings.smoothing_kind, "generator": generator.source_id,
        "encoder": encoder_id, "embedding_method": EMBEDDING_METHOD, "mapper": mapper_digest,
        "label": settings.label, "format": STYLES_FORMAT,
    }
    frames_inputs = {"styles": styles_inputs, "resolution": resolution,
                     "precision": str(generator.precision), "compression": int(settings.png_compression)}
    return _digest_json(styles_inputs), _digest_json(frames_inputs)


def _existing_styles(path):
    """(styles, frames fingerprint) of an earlier run in this folder, or (None, None)."""
    if not os.path.isfile(path):
        return None, None
    try:
        styles = load_styles(path)
    except TraeumerError:
        return None, None
    return styles, styles.settings.get("frames_fingerprint")


def _encoder_id_for_fingerprint(source):
    """Identity of the encoder without loading it: its name, or the digest of its file."""
    return file_digest(source) if os.path.isfile(os.fspath(source)) else str(source)


def run_generate(settings: GenerateSettings, progress=None, cancel=None) -> GenerateResult:
    """Run a whole job; see the module docstring. Raises TraeumerError (bad input) or Cancelled."""
    from .audio import load_audio, probe_audio

    started = time.monotonic()
    report = _Reporter(progress, cancel)
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
    _ensure_writable_folder(out_dir)
    report.check()

    report("load", 0, 2)
    generator = get_generator(settings.model, settings.device, settings.precision, settings.label)
    report("load", 1, 2)
    resolution = int(settings.resolution or generator.resolution)
    if resolution > generator.resolution:
        raise TraeumerError(f"resolution {resolution} is above the generator's {generator.resolution}")
    mapper_file = None
    if settings.mapper:
        mapper_file = Mapper.load(settings.mapper)
        mapper_file.check_compatible(None, generator.source_id, name=f"mapper {settings.mapper}")
    audio_digest = file_digest(audio_path)
    mapper_digest = file_digest(settings.mapper) if settings.mapper else f"zero-label:{int(settings.seed)}"
    styles_fp, frames_fp = _fingerprints(
        settings, fps, windows, settings.start, duration, audio_digest, generator,
        _encoder_id_for_fingerprint(settings.encoder), mapper_digest, resolution)
    styles_path = os.path.join(out_dir, STYLES_NAME)
    previous, previous_frames_fp = _existing_styles(styles_path)
    styles_reused = previous is not None and previous.fingerprint == styles_fp
    frames_reusable = styles_reused and previous_frames_fp == frames_fp

    if styles_reused:
        styles = previous
        report("load", 2, 2)
    else:
        styles = _compute_styles(settings, generator, fps, windows, duration, n_frames, info,
                                 audio_path, audio_digest, mapper_file, resolution, report,
                                 load_audio)
        styles.fingerprint = styles_fp
    styles.settings["frames_fingerprint"] = frames_fp
    styles.resolution = resolution
    if not (styles_reused and frames_reusable):
        save_styles(styles_path, styles)
    # frames of other settings are stale: remove them all, so that a resumed run stays consistent
    _cleanup_folder(out_dir, n_frames if frames_reusable else 0)

    rendered = []
    reused = 0
    if not settings.styles_only:
        report.check()
        if frames_reusable:
            todo = [i for i in range(n_frames) if not _frame_is_valid(out_dir, i, resolution)]
        else:
            todo = list(range(n_frames))
        reused = n_frames - len(todo)
        batch = int(settings.batch or default_batch(generator))
        rendered = _render_batches(
            generator, styles.layer_ws, todo, out_dir, _render_resolution(generator, resolution),
            batch, int(settings.png_compression), report)
    return GenerateResult(
        out_dir=out_dir, styles_path=styles_path, frame_count=n_frames,
        frames_rendered=len(rendered), frames_reused=reused, fps=fps, start=float(settings.start),
        duration=duration, resolution=resolution, styles_reused=styles_reused,
        seconds=time.monotonic() - started,
        frame_paths=[] if settings.styles_only else [frame_path(out_dir, i) for i in range(n_frames)])


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
    mu, sigma = _w_stats(generator)
    if mapper_file is not None:
        mapper = mapper_file
    else:
        mapper = zero_label_mapper(embeddings.shape[1], mu, sigma, seed=int(settings.seed),
                                   encoder_source_id=encoder.source_id,
                                   generator_source_id=generator.source_id)
    raw_ws = mapper.map(embeddings, fps=fps)
    layer_group = smoothing.layer_groups(generator.layer_resolutions)
    group_ws = smoothing.smooth_groups(raw_ws, fps, windows, settings.smoothing_kind)
    if float(settings.truncation) != 1.0:
        group_ws = _truncate(generator, group_ws, float(settings.truncation))
    report("style", 1, 1)
    settings_record = {k: (v if isinstance(v, (str, int, float, bool, type(None), list, tuple)) else str(v))
                       for k, v in asdict(settings).items()}
    settings_record["fps"] = timing.format_fps(fps)
    settings_record["smoothing"] = list(windows)
    settings_record["duration"] = duration
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
        settings=settings_record, fingerprint="")


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
