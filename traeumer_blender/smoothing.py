# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer groups (coarse / middle / fine) and the per-group moving average over time.

Groups follow the paper: for a 1024 px generator (18 w layers) coarse = layers 0-5, middle =
6-11, fine = 12-17. The rule behind it: a w layer styles the blocks up to a resolution; counting
the synthesis layers in pairs (one pair per block, 4x4 first), layers of blocks up to 16x16 are
coarse, up to 128x128 middle, above that fine. It gives 0-5 / 6-11 / 12-13 at 256 px and
0-5 / 6-9 / none at 64 px. An empty group is simply left out.

Smoothing is a moving average in *seconds*, so the result does not depend on the frame rate:
each frame gets the kernel weight of the time span it covers (a box window gets fractional
edge weights), and near the ends of the clip the kernel is cut off and renormalised over the
frames that exist. Nothing is padded, so clips shorter than a window work (a clip shorter than
the window simply averages towards its own mean).
"""

import math

import numpy as np
from scipy.ndimage import correlate1d

from .errors import TraeumerError

GROUP_NAMES = ("coarse", "middle", "fine")
# the largest block resolution of each group (fine: everything above)
GROUP_MAX_RESOLUTION = (16, 128, math.inf)
DEFAULT_WINDOWS_SECONDS = (3.0, 2.0, 0.3)
WINDOW_KINDS = ("box", "triangular")


def layer_block_resolutions(n_latent: int):
    """Block resolution of each w layer, counting layers in pairs from 4x4 (4,4,8,8,16,16,...)."""
    return [4 * 2 ** (index // 2) for index in range(int(n_latent))]


def layer_groups(layer_resolutions):
    """Group index (0 coarse, 1 middle, 2 fine) of each w layer.

    ``layer_resolutions`` is the generator's ``G.layer_resolutions``; only its length decides the
    layout (see the module docstring), so both common ways of naming the resolution of a w layer
    that is shared by a ToRGB and the next block's first conv give the paper's split.
    """
    groups = []
    for resolution in layer_block_resolutions(len(layer_resolutions)):
        groups.append(next(g for g, top in enumerate(GROUP_MAX_RESOLUTION) if resolution <= top))
    return np.asarray(groups, dtype=np.int64)


def used_groups(layer_group):
    """Sorted group indices that own at least one layer."""
    return sorted(set(int(g) for g in np.asarray(layer_group).tolist()))


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
    flat = values.reshape(values.shape[0], -1)
    summed = correlate1d(flat, weights, axis=0, mode="constant", cval=0.0)
    coverage = correlate1d(np.ones(values.shape[0]), weights, mode="constant", cval=0.0)
    return (summed / coverage[:, None]).reshape(values.shape)


def smooth_groups(ws: np.ndarray, fps, windows_seconds=DEFAULT_WINDOWS_SECONDS, kind: str = "box",
                  groups=(0, 1, 2)) -> np.ndarray:
    """One w per frame [N, w_dim] -> one smoothed w per frame and group [N, len(groups), w_dim]."""
    ws = np.asarray(ws, dtype=np.float64)
    if ws.ndim != 2:
        raise ValueError(f"expected [frames, w_dim], got shape {ws.shape}")
    out = np.empty((ws.shape[0], len(groups), ws.shape[1]), dtype=np.float64)
    for slot, group in enumerate(groups):
        out[:, slot] = smooth_sequence(ws, windows_seconds[group], fps, kind)
    return out
