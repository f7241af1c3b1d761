# SPDX-License-Identifier: GPL-3.0-or-later
"""The styles file of a job, ``styles.npz``: what every frame shows, so any frame can be
rendered again. Plain numpy: Blender's side reads it without the engine's heavy parts.

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

import io
import json
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .errors import TraeumerError
from .layer_groups import GROUP_NAMES
from .npz_files import open_npz
from .output_folder import FRAME_PATTERN
from .png import write_atomic

STYLES_FORMAT = "traeumer-styles-1"


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
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


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
    n_groups = len(GROUP_NAMES)
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
