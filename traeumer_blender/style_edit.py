# SPDX-License-Identifier: GPL-3.0-or-later
"""Style curves: a few editable numbers per frame that stand for the 3 × 512-d styles of a track.

Per layer group (coarse, middle, fine) the style trajectory ``group_ws[:, g]`` is described by
its mean and its leading principal components; each component's coefficient, scaled to unit
standard deviation, becomes one curve (``coarse_pc1`` ...). Beside them: ``truncation`` (the
job's ψ) and one ``<group>_intensity`` per group (1 = as generated), which scale a frame's style
around the generator's average style.

Exactness: Blender keys the curves with few keyframes (``reduce_keys``), evaluates the keyed
curves at every frame and stores that as the *baseline* in ``curves.npz`` beside ``styles.npz``.
An edit is the difference between the curves' values and that baseline, so frames where the
curves were not touched have no difference at all, keep their stored styles bit for bit and are
not rendered again. ``applied`` records what the frames on disk show, so "Update frames" renders
only frames whose curve values changed since the last update.

This module is plain numpy (Blender's side imports it); ``update_frames`` and the helpers that
need the generator import the engine (torch) lazily and run in the worker only.
"""

import io
import os

import numpy as np

from .errors import TraeumerError
from .layer_groups import GROUP_NAMES
from .npz_files import GIB, INTEGERS, KIB, MIB, NUMBERS, TEXT, Member, open_npz, parse_errors_as, scalar_member
from .output_folder import FolderLock, frame_path
from .png import write_atomic

# principal components per group that become curves (Coarse PC 1 ... Fine PC 4)
COMPONENTS = 4
CURVES_NAME = "curves.npz"
CURVES_FORMAT = "traeumer-curves-1"
# keyframe reduction: a reduced curve stays within this many standard deviations of the exact one
KEY_TOLERANCE = 0.05
# curve values closer than this count as unchanged (evaluation of untouched curves is exact)
CHANGE_EPSILON = 1e-7


def curve_names(groups=(0, 1, 2), components: int = COMPONENTS):
    """Names of the curves for the given groups, in column order."""
    names = [f"{GROUP_NAMES[g]}_pc{k + 1}" for g in groups for k in range(components)]
    names.append("truncation")
    names += [f"{GROUP_NAMES[g]}_intensity" for g in groups]
    return names


def principal_components(group_ws: np.ndarray, groups=(0, 1, 2), components: int = COMPONENTS):
    """Per group: mean [3, D], scaled basis [3, K, D], unit-variance coefficients [N, 3, K].

    ``group_ws[:, g] ≈ mean[g] + Σ_k coefficients[:, g, k] · basis[g, k]``. A component that does
    not vary (short or constant clips) gets coefficient 0 and a zero basis vector.
    """
    ws = np.asarray(group_ws, dtype=np.float64)
    n, n_groups, dim = ws.shape
    mean = ws.mean(axis=0)
    basis = np.zeros((n_groups, components, dim))
    coefficients = np.zeros((n, n_groups, components))
    for g in groups:
        centred = ws[:, g] - mean[g]
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        for k in range(min(components, len(singular))):
            std = singular[k] / np.sqrt(max(n, 1))
            if std <= 1e-9:
                continue
            vector = vt[k]
            # a deterministic sign: the largest entry is positive
            if vector[np.argmax(np.abs(vector))] < 0:
                vector = -vector
            coefficients[:, g, k] = centred @ vector / std
            basis[g, k] = vector * std
    return mean, basis, coefficients


def reduce_keys(values: np.ndarray, tolerance: float = KEY_TOLERANCE) -> np.ndarray:
    """Indices of keys such that linear interpolation between them stays within ``tolerance``
    of ``values`` at every index (Ramer–Douglas–Peucker with vertical distance)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n <= 2:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        inner = np.arange(first + 1, last)
        line = values[first] + (values[last] - values[first]) * (inner - first) / (last - first)
        errors = np.abs(values[inner] - line)
        worst = int(np.argmax(errors))
        if errors[worst] > tolerance:
            split = int(inner[worst])
            keep[split] = True
            stack.append((first, split))
            stack.append((split, last))
    return np.flatnonzero(keep)


def curve_values(group_ws: np.ndarray, truncation: float, groups):
    """The exact (unreduced) value of every curve at every frame [N, C], and the PCA."""
    mean, basis, coefficients = principal_components(group_ws, groups)
    n = group_ws.shape[0]
    columns = [coefficients[:, g, k] for g in groups for k in range(COMPONENTS)]
    columns.append(np.full(n, float(truncation)))
    columns += [np.ones(n) for _ in groups]
    return np.stack(columns, axis=1), mean, basis


# ----------------------------------------------------------------------------- curves.npz

def curves_path(out_dir) -> str:
    return os.path.join(os.fspath(out_dir), CURVES_NAME)


def save_curves(path, names, groups, frame_start, baseline, applied, mean, basis, truncation) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, format=np.array(CURVES_FORMAT), names=np.array(list(names)),
             groups=np.asarray(groups, dtype=np.int64), frame_start=np.array(int(frame_start)),
             baseline=np.asarray(baseline, dtype=np.float64), applied=np.asarray(applied, dtype=np.float64),
             mean=np.asarray(mean, dtype=np.float64), basis=np.asarray(basis, dtype=np.float64),
             truncation=np.array(float(truncation)))
    write_atomic(path, buffer.getvalue())


# the members load_curves reads (npz_files checks their sizes before reading them)
CURVES_MEMBERS = {
    "names": Member(TEXT, 1, 64 * KIB), "groups": Member(INTEGERS, 1, 64),
    "frame_start": scalar_member(INTEGERS), "truncation": scalar_member(),
    "baseline": Member(NUMBERS, 2, 4 * GIB), "applied": Member(NUMBERS, 2, 4 * GIB),
    "mean": Member(NUMBERS, 2, 64 * MIB), "basis": Member(NUMBERS, 3, 256 * MIB),
}


def load_curves(path) -> dict:
    with open_npz(path, CURVES_FORMAT, "curves file", CURVES_MEMBERS,
                  missing_hint="generate the track again") as data:
        curves = {key: data[key] for key in data.files}
        curves["names"] = [str(name) for name in curves["names"]]
        curves["groups"] = [int(g) for g in curves["groups"]]
    return curves


def forget_edits(out_dir) -> list:
    """Before generating again into ``out_dir``: delete frames that show edited styles (they no
    longer match styles.npz) and the old curves file. Returns the deleted frame indices."""
    path = curves_path(out_dir)
    if not os.path.isfile(path):
        return []
    deleted = []
    try:
        curves = load_curves(path)
        edited = np.flatnonzero(np.any(np.abs(curves["applied"] - curves["baseline"]) > CHANGE_EPSILON, axis=1))
        for index in edited.tolist():
            frame = frame_path(out_dir, index)
            if os.path.exists(frame):
                os.unlink(frame)
                deleted.append(index)
    except TraeumerError:
        pass   # a damaged curves file: edited frames are still known by their tags (frames.py)
    try:
        os.unlink(path)
    except OSError as error:
        raise TraeumerError(f"cannot remove the old style curves {path}: {error.strerror}") from None
    return deleted


# ----------------------------------------------------------------------------- applying edits

def apply_edits(stored, values, baseline, names, groups, basis, w_avg, untruncated=None):
    """New group ws [n, 3, D] of frames whose curve values are ``values`` [n, C].

    stored: their group ws from styles.npz [n, 3, D]; baseline: the keyed curves at those frames.
    w_avg: the generator's average w [D]. Rows equal to their baseline return ``stored`` exactly.
    ``untruncated`` (a callable giving untruncated group ws of these frames) is only needed when
    the job's truncation was 0, where the stored styles have lost their variation.
    """
    stored = np.asarray(stored, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    column = {name: i for i, name in enumerate(names)}
    result = stored.copy()
    delta = values - baseline
    truncation = values[:, column["truncation"]]
    truncation0 = baseline[:, column["truncation"]]
    base = stored
    if np.any(truncation0 == 0):
        base = np.where((truncation0 == 0)[:, None, None], untruncated(), stored) if untruncated else stored
    truncation_moved = delta[:, column["truncation"]] != 0
    for g in groups:
        shift = np.zeros_like(stored[:, g])
        moved = truncation_moved.copy()
        for k in range(basis.shape[1]):
            name = f"{GROUP_NAMES[g]}_pc{k + 1}"
            if name in column:
                shift += delta[:, column[name], None] * basis[g, k][None, :]
                moved |= delta[:, column[name]] != 0
        intensity = values[:, column[f"{GROUP_NAMES[g]}_intensity"]]
        intensity0 = baseline[:, column[f"{GROUP_NAMES[g]}_intensity"]]
        moved |= intensity != intensity0
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(truncation0 != 0, truncation / truncation0, truncation)
            scale = scale * np.where(intensity0 != 0, intensity / intensity0, intensity)
        edited = w_avg[None, :] + scale[:, None] * (base[:, g] + shift - w_avg[None, :])
        # a group none of whose curves moved keeps its stored style bit for bit
        result[:, g] = np.where(moved[:, None], edited, stored[:, g])
    return result


def changed_frames(values, applied, epsilon: float = CHANGE_EPSILON) -> np.ndarray:
    return np.flatnonzero(np.any(np.abs(np.asarray(values) - np.asarray(applied)) > epsilon, axis=1))


def frame_ranges(indices) -> list:
    """[[first, last], ...] runs of consecutive indices."""
    ranges = []
    for index in (int(i) for i in indices):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ranges


def update_frames(styles_path, edits_path, progress=None, cancel=None, device="auto") -> dict:
    """Worker side of "Update frames": render the frames whose curve values changed.

    edits_path: an .npz with ``values`` [N, C] (the curves evaluated by Blender, columns as in
    curves.npz). styles.npz is left as generated; curves.npz records what is now on disk.
    """
    out_dir = os.path.dirname(os.path.abspath(os.fspath(styles_path)))
    with FolderLock(out_dir, "update frames"):
        return _update_frames_locked(styles_path, edits_path, progress, cancel, device, out_dir)


def _update_frames_locked(styles_path, edits_path, progress, cancel, device, out_dir) -> dict:
    from . import smoothing
    from .frames import render_frames
    from .model_cache import get_generator
    from .styles_file import load_styles

    cpath = curves_path(out_dir)
    curves = load_curves(cpath)
    with parse_errors_as(f"cannot read the curve values {edits_path}"):
        with np.load(os.fspath(edits_path), allow_pickle=False) as data:
            values = np.asarray(data["values"], dtype=np.float64)
    if values.shape != curves["baseline"].shape:
        raise TraeumerError(f"curve values have shape {values.shape}, the track has {curves['baseline'].shape}")
    if not np.all(np.isfinite(values)):
        raise TraeumerError("a style curve has a value that is not a finite number")
    changed = changed_frames(values, curves["applied"])
    if len(changed) == 0:
        return {"frames_rendered": 0, "changed": []}
    styles = load_styles(styles_path)
    settings = styles.settings
    generator = get_generator(styles.generator_source, device=device, precision="auto",
                              label=settings.get("label"))
    w_avg = generator_average_w(generator, styles.group_ws.shape[2])

    def untruncated():
        fps = styles.fps
        smoothed = smoothing.smooth_groups(styles.raw_ws, fps, styles.smoothing_seconds, styles.smoothing_kind)
        return smoothed[changed]

    new_ws = apply_edits(styles.group_ws[changed], values[changed], curves["baseline"][changed],
                         curves["names"], curves["groups"], curves["basis"], w_avg, untruncated)

    render_frames(styles_path, changed, ws_override=new_ws, device=device, progress=progress,
                  cancel=cancel, lock=False)
    applied = np.array(curves["applied"])
    applied[changed] = values[changed]
    save_curves(cpath, curves["names"], curves["groups"], int(curves["frame_start"]), curves["baseline"],
                applied, curves["mean"], curves["basis"], float(curves["truncation"]))
    return {"frames_rendered": int(len(changed)), "changed": frame_ranges(changed)}


def generator_average_w(generator, dim: int) -> np.ndarray:
    """The generator's average w (the centre of truncation): truncate(w, ψ=0)."""
    import torch

    zeros = torch.zeros((1, dim), dtype=torch.float32, device=generator.device)
    with torch.no_grad():
        average = generator.truncate(zeros, 0.0)
    if isinstance(average, torch.Tensor):
        average = average.detach().cpu().numpy()
    return np.asarray(average, dtype=np.float64).reshape(-1)[:dim]
