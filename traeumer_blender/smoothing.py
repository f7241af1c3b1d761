# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-group moving average over time (groups: ``layer_groups.py``).

Smoothing is a moving average in *seconds*, so the result does not depend on the frame rate:
each frame gets the kernel weight of the time span it covers (a box window gets fractional
edge weights), and near the ends of the clip the kernel is cut off and renormalised over the
frames that exist. Nothing is padded, so clips shorter than a window work (a clip shorter than
the window simply averages towards its own mean).

scipy is imported where it is used, so this module (and ``motion``, which imports it) loads
without scipy: Blender's side reads the defaults of both.
"""

import math

import numpy as np

from .errors import TraeumerError
from .layer_groups import DEFAULT_SMOOTHING_SECONDS

WINDOW_KINDS = ("box", "triangular")


def parse_windows(value):
    """"3,2,0.3" or a sequence of three numbers -> tuple of three window lengths in seconds."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = list(value)
    try:
        windows = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise TraeumerError(
            f"smoothing must be three window lengths in seconds such as 3,2,0.3, not {value!r}"
        ) from None
    if len(windows) != 3:
        raise TraeumerError(
            f"smoothing needs three window lengths (coarse, middle, fine), got {len(windows)}"
        )
    if not all(math.isfinite(w) and 0 <= w <= 600 for w in windows):
        raise TraeumerError("smoothing windows must be between 0 and 600 seconds")
    return windows


def kernel_weights(window_seconds: float, fps, kind: str = "box") -> np.ndarray:
    """Symmetric weights (odd length, centre = this frame) of a window of the given length.

    Frame j (offset j/fps from the centre) stands for the time span [j-1/2, j+1/2]/fps.
    box: the part of that span inside [-W/2, W/2]. triangular: the triangle of half-width W/2
    integrated over the span. Weights are normalised to sum 1.
    """
    if kind not in WINDOW_KINDS:
        raise TraeumerError(f"smoothing window must be one of {', '.join(WINDOW_KINDS)}, not {kind!r}")
    fps = float(fps)
    half = float(window_seconds) * fps / 2.0  # half-width in frames
    if half <= 0.5:
        return np.ones(1, dtype=np.float64)
    reach = int(math.ceil(half + 0.5))
    offsets = np.arange(-reach, reach + 1, dtype=np.float64)
    lower = offsets - 0.5
    upper = offsets + 0.5
    if kind == "box":
        weights = np.clip(np.minimum(upper, half) - np.maximum(lower, -half), 0.0, None)
    else:
        weights = _triangle_integral(upper, half) - _triangle_integral(lower, half)
    weights = np.trim_zeros(weights)
    return weights / weights.sum()


def _triangle_integral(x, half):
    """Integral from -inf to x of the triangle max(0, 1 - |t|/half)."""
    x = np.clip(x, -half, half)
    left = np.where(x < 0, 0.5 * (x + half) ** 2 / half, 0.5 * half)
    right = np.where(x > 0, x - 0.5 * x * x / half, 0.0)
    return left + right


def smooth_sequence(values: np.ndarray, window_seconds: float, fps, kind: str = "box") -> np.ndarray:
    """Moving average over axis 0 (frames) of ``values`` [N, ...]; ends renormalised, no padding."""
    values = np.asarray(values, dtype=np.float64)
    weights = kernel_weights(window_seconds, fps, kind)
    if len(weights) == 1 or values.shape[0] <= 1:
        return values.copy()
    from scipy.ndimage import correlate1d

    flat = values.reshape(values.shape[0], -1)
    summed = correlate1d(flat, weights, axis=0, mode="constant", cval=0.0)
    coverage = correlate1d(np.ones(values.shape[0]), weights, mode="constant", cval=0.0)
    return (summed / coverage[:, None]).reshape(values.shape)


def smooth_groups(ws: np.ndarray, fps, windows_seconds=DEFAULT_SMOOTHING_SECONDS, kind: str = "box",
                  groups=(0, 1, 2)) -> np.ndarray:
    """One w per frame [N, w_dim] -> one smoothed w per frame and group [N, len(groups), w_dim]."""
    ws = np.asarray(ws, dtype=np.float64)
    if ws.ndim != 2:
        raise ValueError(f"expected [frames, w_dim], got shape {ws.shape}")
    out = np.empty((ws.shape[0], len(groups), ws.shape[1]), dtype=np.float64)
    for slot, group in enumerate(groups):
        out[:, slot] = smooth_sequence(ws, windows_seconds[group], fps, kind)
    return out
