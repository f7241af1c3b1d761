# SPDX-License-Identifier: GPL-3.0-or-later
"""The camera of StyleGAN3 models: where each frame looks, as a path [T, 3] of (x, y, rotation).

Units (the same in the engine, styles.npz, the CLI and Blender's curves "Camera X", "Camera Y",
"Camera Rotation"): x and y in frame heights, x to the right and y up, where the frame's centre
looks on the picture's plane, so the picture slides the other way (x = 0.1 moves it left by a
tenth of the frame's height); rotation in degrees, the camera's roll counter-clockwise (the
picture turns clockwise). StyleGAN3 applies it through its input transform
(``stylegan2.stylegan3.camera_matrices``); StyleGAN2 generators have no camera.

Modes (``CameraSettings``):

* ``still`` (the default): the constant ``x``, ``y``, ``rotation`` (all 0: no camera at all; the
  frames are exactly those of a generator without one).
* ``music``: the constant plus two things that follow the analysis of the music (``analysis.py``),
  both functions of the frames' times in seconds (never of the frame rate or frame order):
  a **drift**, a slow Lissajous figure of radius ``drift`` frame heights that goes round once
  every ``DRIFT_BARS`` bars of the tempo (x) and ``DRIFT_BARS * 4/3`` bars (y), starting at the
  centre; and a **nudge** on each downbeat: the camera is pushed ``nudge`` frame heights in a
  direction that turns by the golden angle from one downbeat to the next, rises within
  ``NUDGE_RISE_BEATS`` and settles back (the shape ``(τ/a)·e^(1 − τ/a)``, 1 at τ = a). Music
  without a tempo drifts at ``FALLBACK_BPM``; music without downbeats gets no nudge.

Plain numpy: Blender's side reads the settings and the curve names.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from .errors import TraeumerError

CAMERA_MODES = ("still", "music")
DEFAULT_DRIFT = 0.05          # frame heights
DEFAULT_NUDGE = 0.02          # frame heights
MAX_OFFSET = 10.0             # frame heights: the constant x, y and the drift/nudge amounts
DRIFT_BARS = 16               # bars per drift cycle (x; y takes 4/3 as long)
BEATS_PER_BAR = 4             # when the analysis has no bar length
FALLBACK_BPM = 120.0
NUDGE_RISE_BEATS = 0.25       # the nudge peaks a quarter beat after the downbeat
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))

# the curves of a track with a camera (style_edit.py, addon/style_curves.py), in column order
CAMERA_CURVES = ("camera_x", "camera_y", "camera_rotation")
CAMERA_LABELS = ("Camera X", "Camera Y", "Camera Rotation")
# a keyed camera curve stays within this of the exact path (frame heights or degrees)
CAMERA_KEY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CameraSettings:
    """Where the camera looks (see the module docstring for the units)."""

    mode: str = "still"
    drift: float = DEFAULT_DRIFT        # music: radius of the slow drift (frame heights)
    nudge: float = DEFAULT_NUDGE        # music: push on each downbeat (frame heights)
    x: float = 0.0                      # constant offset (frame heights, right)
    y: float = 0.0                      # constant offset (frame heights, up)
    rotation: float = 0.0               # constant roll (degrees, counter-clockwise)

    @property
    def still(self) -> bool:
        """No camera at all: every frame is exactly as a generator without a camera makes it."""
        moving = self.mode == "music" and (self.drift != 0.0 or self.nudge != 0.0)
        return not moving and self.x == 0.0 and self.y == 0.0 and self.rotation == 0.0

    def checked(self) -> "CameraSettings":
        """These settings, or TraeumerError naming the bad one."""
        if self.mode not in CAMERA_MODES:
            raise TraeumerError(f"camera must be one of {', '.join(CAMERA_MODES)}, not {self.mode!r}")
        values = {}
        for name, low, high in (("drift", 0.0, MAX_OFFSET), ("nudge", 0.0, MAX_OFFSET),
                                ("x", -MAX_OFFSET, MAX_OFFSET), ("y", -MAX_OFFSET, MAX_OFFSET),
                                ("rotation", -3600.0, 3600.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high:
                raise TraeumerError(f"camera {name} must be a number between {low:g} and {high:g}")
            values[name] = float(value) + 0.0    # -0.0 -> 0.0
        return CameraSettings(mode=self.mode, **values)

    def record(self) -> dict:
        """JSON-ready settings (the generate request's ``camera``, styles.npz, fingerprints)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record) -> "CameraSettings":
        if not isinstance(record, dict):
            raise TraeumerError("camera settings must be an object")
        unknown = sorted(set(record) - set(cls.__dataclass_fields__))
        if unknown:
            raise TraeumerError(f"unknown camera setting(s) {', '.join(unknown)}")
        return cls(**record).checked()


STILL = CameraSettings()


def camera_path(settings: CameraSettings, frame_times, tempo=None, downbeats=(), beats_per_bar=None) -> np.ndarray:
    """[T, 3] float64 (x, y, rotation) per frame at ``frame_times`` (seconds in the audio file;
    the analysis' ``tempo`` in BPM or None, its ``downbeats`` in the same seconds)."""
    settings = settings.checked()
    times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    path = np.zeros((len(times), 3))
    path[:, 0], path[:, 1], path[:, 2] = settings.x, settings.y, settings.rotation
    if settings.mode != "music" or not len(times):
        return path
    bpm = float(tempo) if tempo is not None and math.isfinite(float(tempo)) and float(tempo) > 0 else FALLBACK_BPM
    beat = 60.0 / bpm
    bar = beat * float(beats_per_bar or BEATS_PER_BAR)
    if settings.drift:
        elapsed = times - times[0]
        cycle = DRIFT_BARS * bar
        path[:, 0] += settings.drift * np.sin(2 * math.pi * elapsed / cycle)
        path[:, 1] += settings.drift * np.sin(2 * math.pi * elapsed / (cycle * 4.0 / 3.0))
    if settings.nudge:
        rise = NUDGE_RISE_BEATS * beat
        for k, at in enumerate(np.asarray(downbeats, dtype=np.float64).reshape(-1)):
            tau = (times - at) / rise
            after = tau >= 0
            if not np.any(after):
                continue
            shape = np.zeros_like(times)
            shape[after] = tau[after] * np.exp(1.0 - tau[after])
            direction = GOLDEN_ANGLE * k
            path[:, 0] += settings.nudge * math.cos(direction) * shape
            path[:, 1] += settings.nudge * math.sin(direction) * shape
    return path


def parse_camera_mode(text) -> str:
    if text not in CAMERA_MODES:
        raise TraeumerError(f"camera must be one of {', '.join(CAMERA_MODES)}, not {text!r}")
    return text
