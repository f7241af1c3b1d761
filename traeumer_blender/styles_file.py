# SPDX-License-Identifier: GPL-3.0-or-later
"""The styles file of a job, ``styles.npz``: what every frame shows, so any frame can be
rendered again. Plain numpy: Blender's side reads it without the engine's heavy parts.

styles.npz (format ``traeumer-styles-2``; ``-1`` files, without motion, load too; ``allow_pickle=False``):

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
------------------  -----------------------  ------------------------------------------------------------
with musical motion (format 2 only, all optional; see ``MotionRecord`` and ``motion.py``):
motion_json         str                      MotionSettings.record()
analysis_json       str                      tempo, sections (start, end, tags), envelope rate and start
beats, downbeats    float64 [K]              seconds in the audio file
envelopes           float32 [4, M]           onset strength per band (ENVELOPE_BANDS) at the analysis rate
pulse_bands         str [B]                  the bands in ``pulse``
pulse               float32 [N, B]           shaped pulse per frame and band
pulse_targets       float32 [3, w_dim]       where each group's pulse moves its style
base_group_ws       float32 [N, 3, w_dim]    the styles before the pulse
cut_frames          int64 [C]                frames that begin a section
------------------  -----------------------  ------------------------------------------------------------
with a camera (generators that have one, StyleGAN3; optional; see ``camera.py``):
camera_json         str                      CameraSettings.record()
camera              float64 [N, 3]           x, y (frame heights, right/up), rotation (degrees, ccw)
                                             per frame; zeros for the still camera
==================  =======================  ============================================================
"""

import io
import json
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import TraeumerError
from .layer_groups import GROUP_NAMES
from .mapping import MAX_EMBEDDING_DIM, MAX_W_DIM
from .npz_files import GIB, INTEGERS, NUMBERS, Member, open_npz, scalar_member, text_member
from .output_folder import FRAME_PATTERN
from .png import write_atomic

STYLES_FORMAT = "traeumer-styles-2"
# version 1 has no motion: it loads as styles without pulse or cuts and renders as before
READABLE_STYLES_FORMATS = ("traeumer-styles-1", STYLES_FORMAT)


@dataclass
class MotionRecord:
    """What musical motion did to a track (``motion.py``); None in styles without motion.

    ``settings``: MotionSettings.record(). ``pulse`` [N, B]: the shaped pulse of each band in
    ``pulse_bands`` at each frame. ``pulse_targets`` [3, D]: where each group's pulse moves its
    style. ``base_group_ws`` [N, 3, D]: the styles before the pulse (smoothing with cuts,
    truncation, hold), so an edited pulse curve can be applied again. ``cut_frames``: frames that
    begin a section. ``analysis``: the analysis as JSON (tempo, sections with tags, envelope rate
    and start), with ``beats``, ``downbeats`` and ``envelopes`` [4, M] (bands ``ENVELOPE_BANDS``).
    """

    settings: dict
    pulse_bands: tuple
    pulse: np.ndarray
    pulse_targets: np.ndarray
    base_group_ws: np.ndarray
    cut_frames: np.ndarray
    analysis: dict
    beats: np.ndarray
    downbeats: np.ndarray
    envelopes: np.ndarray

    @property
    def section_starts(self) -> list:
        return [float(section["start"]) for section in self.analysis.get("sections", [])]

    def pulse_weights(self, amounts=None) -> np.ndarray:
        """[N, 3]: amount × pulse of each group's band (``amounts`` override the settings')."""
        amounts = self.settings["pulse_amounts"] if amounts is None else amounts
        columns = []
        for g, band in enumerate(self.settings["pulse_bands"]):
            if band in self.pulse_bands:
                columns.append(float(amounts[g]) * self.pulse[:, list(self.pulse_bands).index(band)])
            else:
                columns.append(np.zeros(self.pulse.shape[0]))
        return np.stack(columns, axis=1)


ENVELOPE_BANDS = ("full", "low", "mid", "high")


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
    motion: MotionRecord = None
    camera: np.ndarray = None           # [N, 3] (camera.py); None: the generator has no camera
    camera_settings: dict = None        # CameraSettings.record() with ``camera``

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
        "group_names": np.array(GROUP_NAMES),
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
    if styles.motion is not None:
        record = styles.motion
        arrays.update({
            "motion_json": np.array(json.dumps(record.settings, sort_keys=True)),
            "pulse_bands": np.array(list(record.pulse_bands), dtype="U8"),
            "pulse": np.asarray(record.pulse, dtype=np.float32).reshape(len(styles.group_ws), -1),
            "pulse_targets": np.asarray(record.pulse_targets, dtype=np.float32),
            "base_group_ws": np.asarray(record.base_group_ws, dtype=np.float32),
            "cut_frames": np.asarray(record.cut_frames, dtype=np.int64),
            "analysis_json": np.array(json.dumps(record.analysis, sort_keys=True)),
            "beats": np.asarray(record.beats, dtype=np.float64),
            "downbeats": np.asarray(record.downbeats, dtype=np.float64),
            "envelopes": np.asarray(record.envelopes, dtype=np.float32),
        })
    if styles.camera is not None:
        arrays["camera"] = np.asarray(styles.camera, dtype=np.float64).reshape(len(styles.group_ws), 3)
        arrays["camera_json"] = np.array(json.dumps(styles.camera_settings or {}, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


# the members load_styles reads, with what each may hold; frame arrays are bounded by the
# inflation limit of npz_files and by agreeing on the frame count (checked from their headers)
_FRAME_ARRAY_BYTES = 8 * GIB
MAX_LAYERS = 64
MAX_RESOLUTION = 16384
_TEXT_FIELDS = ("generator_source", "generator_source_id", "encoder_source", "encoder_source_id",
                "mapper_kind", "mapper_source", "audio_path", "audio_digest", "fingerprint",
                "smoothing_kind")
STYLES_MEMBERS = {
    "group_ws": Member(NUMBERS, 3, _FRAME_ARRAY_BYTES),
    "raw_ws": Member(NUMBERS, 2, _FRAME_ARRAY_BYTES),
    "embeddings": Member(NUMBERS, 2, _FRAME_ARRAY_BYTES),
    "frame_times": Member(NUMBERS, 1, _FRAME_ARRAY_BYTES),
    "layer_group": Member(INTEGERS, 1, 8 * MAX_LAYERS),
    "layer_resolutions": Member(INTEGERS, 1, 8 * MAX_LAYERS),
    "smoothing_seconds": Member(NUMBERS, 1, 8 * len(GROUP_NAMES)),
    "fps_num": scalar_member(INTEGERS), "fps_den": scalar_member(INTEGERS),
    "seed": scalar_member(INTEGERS), "resolution": scalar_member(INTEGERS),
    "start": scalar_member(), "duration": scalar_member(), "truncation": scalar_member(),
    "settings_json": text_member(256 * 1024),
    **{name: text_member() for name in _TEXT_FIELDS},
    # musical motion (version 2; all optional)
    "motion_json": text_member(64 * 1024),
    "analysis_json": text_member(4 * 1024 * 1024),
    "pulse_bands": Member("U", 1, 4 * 8 * 4),
    "pulse": Member(NUMBERS, 2, _FRAME_ARRAY_BYTES),
    "pulse_targets": Member(NUMBERS, 2, 8 * 3 * 4096),
    "base_group_ws": Member(NUMBERS, 3, _FRAME_ARRAY_BYTES),
    "cut_frames": Member(INTEGERS, 1, 8 * 1 << 20),
    "beats": Member(NUMBERS, 1, 8 * 1 << 22),
    "downbeats": Member(NUMBERS, 1, 8 * 1 << 22),
    "envelopes": Member(NUMBERS, 2, _FRAME_ARRAY_BYTES),
    # the camera (optional)
    "camera": Member(NUMBERS, 2, _FRAME_ARRAY_BYTES),
    "camera_json": text_member(16 * 1024),
}


def _motion_record(data, path, shape) -> MotionRecord:
    frames, groups, w_dim = shape
    settings, analysis = json.loads(data.text("motion_json")), json.loads(data.text("analysis_json"))
    bands = tuple(str(b) for b in data["pulse_bands"].tolist())
    record = MotionRecord(
        settings=settings, pulse_bands=bands, pulse=data.finite("pulse"),
        pulse_targets=data.finite("pulse_targets"), base_group_ws=data.finite("base_group_ws", np.float32),
        cut_frames=data["cut_frames"].astype(np.int64), analysis=analysis, beats=data.finite("beats"),
        downbeats=data.finite("downbeats"), envelopes=data.finite("envelopes", np.float32))
    problems = []
    if not isinstance(settings, dict) or not isinstance(analysis, dict):
        problems.append("motion_json and analysis_json must be objects")
    elif not all(isinstance(s, dict) and {"start", "end", "tags"} <= set(s) for s in analysis.get("sections", [])):
        problems.append("analysis sections need start, end and tags")
    if record.pulse.shape != (frames, len(bands)) or not all(b in ENVELOPE_BANDS for b in bands):
        problems.append(f"pulse {record.pulse.shape} for bands {bands}")
    if record.pulse_targets.shape != (groups, w_dim) or record.base_group_ws.shape != shape:
        problems.append("pulse_targets or base_group_ws do not match group_ws")
    if record.cut_frames.size and (record.cut_frames.min() < 1 or record.cut_frames.max() >= frames):
        problems.append("cut_frames outside the frames")
    if record.envelopes.ndim != 2 or record.envelopes.shape[0] != len(ENVELOPE_BANDS):
        problems.append(f"envelopes {record.envelopes.shape}")
    if problems:
        raise TraeumerError(f"{path} is a damaged styles.npz: {'; '.join(problems)}")
    return record


def _check_frame_shapes(data, path):
    """Every per-frame array has the same frame count and sane sizes; from the headers alone,
    so nothing is read (or allocated) for a file that does not add up."""
    frames, _, w_dim = data.shape("group_ws")
    dim = data.shape("embeddings")[1]
    expected = {"group_ws": (frames, len(GROUP_NAMES), w_dim), "raw_ws": (frames, w_dim),
                "embeddings": (frames, dim), "frame_times": (frames,)}
    for name, shape in expected.items():
        if data.shape(name) != shape:
            raise TraeumerError(f"{path} is a damaged styles.npz: {name} has shape {data.shape(name)}, "
                                f"expected {shape}")
    if not 1 <= w_dim <= MAX_W_DIM or not 1 <= dim <= MAX_EMBEDDING_DIM:
        raise TraeumerError(f"{path} is a damaged styles.npz: {w_dim}-d ws and {dim}-d embeddings")


def _checked_settings(text, path) -> dict:
    settings = json.loads(text)
    if not isinstance(settings, dict):
        raise TraeumerError(f"{path} is a damaged styles.npz: settings_json is a "
                            f"{type(settings).__name__}, not a JSON object")
    compression = settings.get("png_compression", 6)
    if isinstance(compression, bool) or not isinstance(compression, int) or not 0 <= compression <= 9:
        raise TraeumerError(f"{path} is a damaged styles.npz: png_compression is {compression!r}, "
                            "not a whole number from 0 to 9")
    precision = settings.get("precision")
    if precision is not None and not isinstance(precision, str):
        raise TraeumerError(f"{path} is a damaged styles.npz: precision is {precision!r}")
    return settings


def load_styles(path) -> Styles:
    """Read a styles.npz written by save_styles (no pickles; every value checked)."""
    path = os.fspath(path)
    with open_npz(path, READABLE_STYLES_FORMATS, "styles file", STYLES_MEMBERS) as data:
        _check_frame_shapes(data, path)
        text = {name: data.text(name) for name in _TEXT_FIELDS}
        fps_num, fps_den = data.integer("fps_num"), data.integer("fps_den")
        if fps_num <= 0 or fps_den <= 0:
            raise TraeumerError(f"{path} is a damaged styles.npz: frame rate {fps_num}/{fps_den}")
        styles = Styles(
            group_ws=data.finite("group_ws", np.float32), layer_group=data["layer_group"].astype(np.int64),
            layer_resolutions=data["layer_resolutions"].astype(np.int64),
            raw_ws=data.finite("raw_ws", np.float32), embeddings=data.finite("embeddings", np.float32),
            frame_times=data.finite("frame_times"), fps=Fraction(fps_num, fps_den),
            start=data.number("start"), duration=data.number("duration"),
            smoothing_seconds=tuple(float(v) for v in data.finite("smoothing_seconds")),
            truncation=data.number("truncation"), seed=data.integer("seed"),
            resolution=data.integer("resolution"),
            settings=_checked_settings(data.text("settings_json"), path), **text)
        if "motion_json" in data:
            styles.motion = _motion_record(data, path, styles.group_ws.shape)
        if "camera" in data:
            styles.camera = data.finite("camera")
            styles.camera_settings = json.loads(data.text("camera_json")) if "camera_json" in data else {}
            if styles.camera.shape != (styles.frame_count, 3) or not isinstance(styles.camera_settings, dict):
                raise TraeumerError(f"{path} is a damaged styles.npz: camera {styles.camera.shape} for "
                                    f"{styles.frame_count} frames")
    n_groups = len(GROUP_NAMES)
    layer_group = styles.layer_group
    problems = []
    if not 1 <= len(layer_group) <= MAX_LAYERS or len(styles.layer_resolutions) != len(layer_group):
        problems.append(f"{len(layer_group)} layer groups for {len(styles.layer_resolutions)} layers")
    elif layer_group.min() < 0 or layer_group.max() >= n_groups:
        problems.append(f"layer_group {layer_group.tolist()} is not within 0..{n_groups - 1}")
    if len(styles.smoothing_seconds) != n_groups or min(styles.smoothing_seconds, default=0) < 0:
        problems.append(f"smoothing_seconds {styles.smoothing_seconds}")
    resolution = styles.resolution
    if not 4 <= resolution <= MAX_RESOLUTION or resolution & (resolution - 1):
        problems.append(f"resolution {resolution} is not a power of two from 4 to {MAX_RESOLUTION}")
    if styles.start < 0 or styles.duration < 0:
        problems.append(f"excerpt from {styles.start} s for {styles.duration} s")
    if problems:
        raise TraeumerError(f"{path} is a damaged styles.npz: {'; '.join(problems)}")
    return styles


def check_styles_fit(styles: Styles, generator, name="styles.npz") -> None:
    """Refuse styles the generator cannot render: another w size or number of w layers, or a
    resolution above its own (one line; ``render_frames`` should call it after loading)."""
    problems = []
    if styles.group_ws.shape[2] != int(generator.w_dim):
        problems.append(f"{styles.group_ws.shape[2]}-d ws (the generator's are {generator.w_dim}-d)")
    if len(styles.layer_group) != int(generator.n_latent):
        problems.append(f"{len(styles.layer_group)} w layers (the generator has {generator.n_latent})")
    if styles.resolution > int(generator.resolution):
        problems.append(f"{styles.resolution} px frames (the generator makes {generator.resolution} px)")
    if problems:
        raise TraeumerError(f"{name} does not fit this generator: it has {' and '.join(problems)}")


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
