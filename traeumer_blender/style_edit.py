# SPDX-License-Identifier: GPL-3.0-or-later
"""Style curves: a few editable numbers per frame that stand for the 3 × 512-d styles of a track.

Per layer group (coarse, middle, fine) the style trajectory ``group_ws[:, g]`` is described by
its mean and its leading principal components; each component's coefficient, scaled to unit
standard deviation, becomes one curve (``coarse_pc1`` ...). Beside them: ``truncation`` (the
job's ψ) and one ``<group>_intensity`` per group (1 = as generated), which scale a frame's style
around the generator's average style.

Musical motion (``motion.py``; styles with a ``MotionRecord``) adds two kinds of curves: the
shaped pulse of each band that drives a group (``pulse_low``, ``pulse_high`` ..., 0..1) and each
group's pulse amount (``coarse_pulse``, ``middle_pulse``, ``fine_pulse``, keyed constant). The
engine made the styles as ``stored = base + w·(target − base)`` with ``w = amount × pulse``
(``MotionRecord.pulse_weights``), so an edited pulse or amount gives ``stored + (w_new − w_old)·
(target − base)``, and the principal-component, truncation and intensity edits act on that.
Section cuts can move too: ``update_frames`` gets the track's section starts, recomputes the
styles before the pulse for the new cuts (smoothing per section with the crossfade, truncation,
hold: as the pipeline does) and renders the frames whose styles that changes.

Generators with a camera (StyleGAN3; ``camera.py``) add ``camera_x``, ``camera_y`` and
``camera_rotation``: the camera path, keyed like the others. An edited camera curve moves the
camera of its frames by the edit (``stored + values − baseline``, per column), the styles stay.

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
from dataclasses import dataclass

import numpy as np

from .camera import CAMERA_CURVES, CAMERA_KEY_TOLERANCE
from .errors import TraeumerError
from .layer_groups import GROUP_NAMES
from .npz_files import GIB, INTEGERS, KIB, MIB, NUMBERS, TEXT, Member, open_npz, parse_errors_as, scalar_member
from .output_folder import FolderLock, frame_path
from .png import write_atomic

# principal components per group that become curves (Coarse PC 1 ... Fine PC 4)
COMPONENTS = 4
CURVES_NAME = "curves.npz"
CURVES_FORMAT = "traeumer-curves-2"
# version 1: no pulse curves, no frame times, no applied cuts (tracks made before motion)
READABLE_CURVES_FORMATS = ("traeumer-curves-1", CURVES_FORMAT)
# keyframe reduction: a reduced curve stays within this many standard deviations of the exact one
KEY_TOLERANCE = 0.05
# ... and a reduced pulse curve (values 0..1) within this much of the exact pulse
PULSE_KEY_TOLERANCE = 0.02
# curve values closer than this count as unchanged (evaluation of untouched curves is exact)
CHANGE_EPSILON = 1e-7


def curve_names(groups=(0, 1, 2), components: int = COMPONENTS, pulse_bands=(), camera: bool = False):
    """Names of the curves for the given groups, in column order; with ``pulse_bands`` (bands
    whose pulse drives one of the groups) the pulse curves and the groups' pulse amounts follow,
    with ``camera`` (styles with a camera path) the three camera curves last."""
    names = [f"{GROUP_NAMES[g]}_pc{k + 1}" for g in groups for k in range(components)]
    names.append("truncation")
    names += [f"{GROUP_NAMES[g]}_intensity" for g in groups]
    if pulse_bands:
        names += [pulse_curve_name(band) for band in pulse_bands]
        names += [amount_curve_name(g) for g in groups]
    if camera:
        names += list(CAMERA_CURVES)
    return names


def pulse_curve_name(band: str) -> str:
    return f"pulse_{band}"


def amount_curve_name(group: int) -> str:
    return f"{GROUP_NAMES[group]}_pulse"


def key_tolerance(name: str) -> float:
    """How far the reduced keys of curve ``name`` may stray from its exact values."""
    if name in CAMERA_CURVES:
        return CAMERA_KEY_TOLERANCE
    return PULSE_KEY_TOLERANCE if name.startswith("pulse_") else KEY_TOLERANCE


def pulse_curve_bands(record, groups) -> tuple:
    """The bands of a MotionRecord whose pulse drives one of ``groups`` (their pulse curves);
    () for styles without a pulse."""
    if record is None or not record.pulse_bands:
        return ()
    driving = {record.settings["pulse_bands"][g] for g in groups}
    return tuple(band for band in record.pulse_bands if band in driving)


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


def curve_values(group_ws: np.ndarray, truncation: float, groups, motion=None, camera=None):
    """The exact (unreduced) value of every curve at every frame [N, C], and the PCA.

    ``motion`` (a MotionRecord) adds the pulse curves and the pulse amounts (``curve_names``
    with ``pulse_curve_bands``), ``camera`` (the path [N, 3]) the camera curves."""
    mean, basis, coefficients = principal_components(group_ws, groups)
    n = group_ws.shape[0]
    columns = [coefficients[:, g, k] for g in groups for k in range(COMPONENTS)]
    columns.append(np.full(n, float(truncation)))
    columns += [np.ones(n) for _ in groups]
    bands = pulse_curve_bands(motion, groups)
    if bands:
        columns += [np.asarray(motion.pulse[:, motion.pulse_bands.index(band)], dtype=np.float64)
                    for band in bands]
        columns += [np.full(n, float(motion.settings["pulse_amounts"][g])) for g in groups]
    if camera is not None:
        columns += [np.asarray(camera, dtype=np.float64)[:, k] for k in range(len(CAMERA_CURVES))]
    return np.stack(columns, axis=1), mean, basis


# ----------------------------------------------------------------------------- curves.npz

def curves_path(out_dir) -> str:
    return os.path.join(os.fspath(out_dir), CURVES_NAME)


def save_curves(path, names, groups, frame_start, baseline, applied, mean, basis, truncation,
                frame_times=None, cuts=None) -> None:
    """Write curves.npz. ``frame_times`` [N]: each frame's time in the audio file (Blender turns
    marker frames into section starts with them). ``cuts``: the frames that begin a section in
    the frames on disk (the applied cuts), or None when the track's cuts cannot move (no motion,
    or motion without cuts)."""
    arrays = dict(format=np.array(CURVES_FORMAT), names=np.array(list(names)),
                  groups=np.asarray(groups, dtype=np.int64), frame_start=np.array(int(frame_start)),
                  baseline=np.asarray(baseline, dtype=np.float64), applied=np.asarray(applied, dtype=np.float64),
                  mean=np.asarray(mean, dtype=np.float64), basis=np.asarray(basis, dtype=np.float64),
                  truncation=np.array(float(truncation)))
    if frame_times is not None:
        arrays["frame_times"] = np.asarray(frame_times, dtype=np.float64)
    if cuts is not None:
        arrays["applied_cuts"] = np.asarray(cuts, dtype=np.int64).reshape(-1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


# the members load_curves reads (npz_files checks their sizes before reading them)
CURVES_MEMBERS = {
    "names": Member(TEXT, 1, 64 * KIB), "groups": Member(INTEGERS, 1, 64),
    "frame_start": scalar_member(INTEGERS), "truncation": scalar_member(),
    "baseline": Member(NUMBERS, 2, 4 * GIB), "applied": Member(NUMBERS, 2, 4 * GIB),
    "mean": Member(NUMBERS, 2, 64 * MIB), "basis": Member(NUMBERS, 3, 256 * MIB),
    # version 2, optional
    "frame_times": Member(NUMBERS, 1, GIB), "applied_cuts": Member(INTEGERS, 1, 8 * MIB),
}


def load_curves(path) -> dict:
    """curves.npz as a dict; ``applied_cuts`` is None where the track's cuts cannot move."""
    with open_npz(path, READABLE_CURVES_FORMATS, "curves file", CURVES_MEMBERS,
                  missing_hint="generate the track again") as data:
        curves = {key: data[key] for key in data.files}
        curves["names"] = [str(name) for name in curves["names"]]
        curves["groups"] = [int(g) for g in curves["groups"]]
    count = curves["baseline"].shape[0]
    problems = []
    if curves["applied"].shape != curves["baseline"].shape or curves["baseline"].shape[1:] != (len(curves["names"]),):
        problems.append(f"{len(curves['names'])} curve names for values of shape {curves['baseline'].shape}")
    if "frame_times" in curves and (curves["frame_times"].shape != (count,) or not np.all(np.isfinite(curves["frame_times"]))):
        problems.append("frame_times do not match the frames")
    cuts = curves.get("applied_cuts")
    if cuts is not None and cuts.size and (cuts.min() < 1 or cuts.max() >= count):
        problems.append("applied_cuts outside the frames")
    if problems:
        raise TraeumerError(f"{path} is a damaged curves file: {'; '.join(problems)}; generate the track again")
    curves.setdefault("applied_cuts", None)
    curves.setdefault("frame_times", None)
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

@dataclass
class PulseInputs:
    """What the pulse did at the frames ``apply_edits`` gets (rows aligned with them).

    base [n, 3, D]: the styles before the pulse; targets [3, D]; pulse [n, B]: the exact pulse
    of each band in ``bands``; amounts [3] and group_bands [3]: each group's amount and band as
    generated (``MotionRecord.settings``)."""

    base: np.ndarray
    targets: np.ndarray
    pulse: np.ndarray
    bands: tuple
    amounts: tuple
    group_bands: tuple

    @classmethod
    def from_record(cls, record, rows, base=None) -> "PulseInputs":
        """The inputs of frames ``rows`` of a MotionRecord (``base`` overrides its base ws)."""
        rows = np.asarray(rows, dtype=np.int64)
        return cls(base=np.asarray(record.base_group_ws[rows] if base is None else base, dtype=np.float64),
                   targets=np.asarray(record.pulse_targets, dtype=np.float64),
                   pulse=np.asarray(record.pulse[rows], dtype=np.float64), bands=tuple(record.pulse_bands),
                   amounts=tuple(float(a) for a in record.settings["pulse_amounts"]),
                   group_bands=tuple(record.settings["pulse_bands"]))

    def weights(self, group: int, delta_pulse=0.0, delta_amount=0.0) -> np.ndarray:
        """[n] amount × pulse of ``group``, with the curves' changes added."""
        band = self.group_bands[group]
        pulse = (self.pulse[:, self.bands.index(band)] if band in self.bands
                 else np.zeros(self.pulse.shape[0]))
        return (self.amounts[group] + delta_amount) * (pulse + delta_pulse)


def apply_edits(stored, values, baseline, names, groups, basis, w_avg, untruncated=None, pulse=None):
    """New group ws [n, 3, D] of frames whose curve values are ``values`` [n, C].

    stored: their group ws from styles.npz [n, 3, D]; baseline: the keyed curves at those frames.
    w_avg: the generator's average w [D]. Rows equal to their baseline return ``stored`` exactly.
    ``untruncated`` (a callable giving untruncated group ws of these frames; with ``pulse``,
    before the pulse) is only needed when the job's truncation was 0, where the stored styles
    have lost their variation. ``pulse`` (PulseInputs) is needed when ``names`` has pulse curves:
    a changed pulse or amount moves a group by ``(w_new − w_old)·(target − base)`` first, then
    the other curves act as on styles without motion.
    """
    stored = np.asarray(stored, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    column = {name: i for i, name in enumerate(names)}
    delta = values - baseline
    pulsed = stored
    weights = None
    if pulse is not None:
        pulsed = stored.copy()
        weights = np.zeros(stored.shape[:2])
        for g in groups:
            band_column = column.get(pulse_curve_name(pulse.group_bands[g]))
            amount_column = column.get(amount_curve_name(g))
            delta_pulse = delta[:, band_column] if band_column is not None else np.zeros(len(stored))
            delta_amount = delta[:, amount_column] if amount_column is not None else np.zeros(len(stored))
            weights[:, g] = pulse.weights(g, delta_pulse, delta_amount)
            moved = (delta_pulse != 0) | (delta_amount != 0)
            change = (weights[:, g] - pulse.weights(g))[:, None] * (pulse.targets[g][None, :] - pulse.base[:, g])
            # a group whose pulse and amount did not move keeps its stored style bit for bit
            pulsed[:, g] = np.where(moved[:, None], stored[:, g] + change, stored[:, g])
    result = pulsed.copy()
    truncation = values[:, column["truncation"]]
    truncation0 = baseline[:, column["truncation"]]
    base = pulsed
    if np.any(truncation0 == 0) and untruncated:
        unpulsed = untruncated()
        if pulse is not None:
            unpulsed = unpulsed + weights[:, :, None] * (pulse.targets[None] - unpulsed)
        base = np.where((truncation0 == 0)[:, None, None], unpulsed, pulsed)
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
        # a group none of these curves moved keeps its (pulsed) style bit for bit
        result[:, g] = np.where(moved[:, None], edited, pulsed[:, g])
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


def update_frames(styles_path, edits_path, progress=None, cancel=None, device="auto",
                  section_starts=None, draft=True) -> dict:
    """Worker side of "Update frames": render the frames whose curve values or cuts changed.

    edits_path: an .npz with ``values`` [N, C] (the curves evaluated by Blender, columns as in
    curves.npz). section_starts: the track's section starts (seconds in the audio file, from its
    markers), or None to keep the cuts as they are; they move the cuts of styles made with motion
    and cuts (others ignore them). styles.npz is left as generated; curves.npz records what is now
    on disk (curve values and cuts), so a second update with nothing changed renders nothing.
    draft: a job that made drafts gives the edited frames fresh drafts first (False: the caller
    cannot show them, so the old frames stay until they are replaced).
    """
    out_dir = os.path.dirname(os.path.abspath(os.fspath(styles_path)))
    with FolderLock(out_dir, "update frames"):
        return _update_frames_locked(styles_path, edits_path, progress, cancel, device, out_dir, section_starts,
                                     draft)


def section_cuts(section_starts, frame_times) -> np.ndarray:
    """The frames that begin a section (``motion.cut_frames``) for section starts in seconds."""
    from .motion import cut_frames

    starts = np.asarray([float(s) for s in section_starts], dtype=np.float64)
    if not np.all(np.isfinite(starts)):
        raise TraeumerError("a section start is not a finite number")
    return cut_frames(np.sort(starts), frame_times).astype(np.int64)


def motion_base_styles(styles, cuts, truncate) -> np.ndarray:
    """The styles before the pulse [N, 3, D] of styles made with motion, for the given cuts: the
    per-section smoothing with its crossfade, truncation (``truncate``: group ws -> group ws) and
    hold, as ``pipeline`` makes them (``motion.move_styles``)."""
    from . import motion, smoothing

    record = styles.motion
    settings = record.settings
    times = np.asarray(styles.frame_times, dtype=np.float64)
    windows, kind = styles.smoothing_seconds, styles.smoothing_kind
    if len(cuts):
        smoothed = motion.smooth_groups_with_cuts(styles.raw_ws, styles.fps, windows, kind, cuts, times,
                                                  float(settings.get("crossfade", motion.DEFAULT_CROSSFADE_SECONDS)))
    else:
        smoothed = smoothing.smooth_groups(styles.raw_ws, styles.fps, windows, kind)
    group_ws = truncate(smoothed)
    hold = settings.get("hold", "none")
    if hold != "none":
        group_ws = motion.hold_frames(group_ws, times, record.beats if hold == "beat" else record.downbeats)
    return np.asarray(group_ws, dtype=np.float64)


class _CutStyles:
    """Styles of a track with motion for other cuts than the generated ones, computed once per
    set of cuts (smoothing all frames is cheap next to rendering one)."""

    def __init__(self, styles, generator):
        from .pipeline import _truncate

        self.styles = styles
        self.generated = np.asarray(styles.motion.cut_frames, dtype=np.int64)
        psi = float(styles.truncation)
        self.truncate = (lambda ws: _truncate(generator, ws, psi)) if psi != 1.0 else (lambda ws: ws)
        self._bases = {}

    def base(self, cuts, truncate=None) -> np.ndarray:
        key = (tuple(int(c) for c in cuts), truncate is None)
        if key not in self._bases:
            self._bases[key] = motion_base_styles(self.styles, cuts, truncate or self.truncate)
        return self._bases[key]

    def rows_moved(self, cuts, other) -> np.ndarray:
        """[N] frames whose styles before the pulse differ between two sets of cuts."""
        if np.array_equal(cuts, other):
            return np.zeros(self.styles.frame_count, dtype=bool)
        return np.any(self.base(cuts) != self.base(other), axis=(1, 2))

    def stored_and_base(self, cuts, rows):
        """(stored styles, styles before the pulse) of frames ``rows`` with these cuts: the
        generated ones, bit for bit, where the cuts change nothing."""
        record, rows = self.styles.motion, np.asarray(rows, dtype=np.int64)
        stored = np.asarray(self.styles.group_ws[rows], dtype=np.float64)
        base = np.asarray(record.base_group_ws[rows], dtype=np.float64)
        moved = self.rows_moved(cuts, self.generated)[rows]
        if np.any(moved):
            from .motion import apply_pulse

            fresh = self.base(cuts)[rows]
            pulsed = apply_pulse(fresh, record.pulse_weights()[rows], record.pulse_targets)
            stored = np.where(moved[:, None, None], pulsed, stored)
            base = np.where(moved[:, None, None], fresh, base)
        return stored, base


def _update_frames_locked(styles_path, edits_path, progress, cancel, device, out_dir, section_starts,
                          draft=True) -> dict:
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
    styles = None
    applied_cuts = cuts = curves["applied_cuts"]
    if section_starts is not None and applied_cuts is not None:
        styles = load_styles(styles_path)
        if styles.motion is not None and styles.motion.settings.get("cuts", False):
            cuts = section_cuts(section_starts, styles.frame_times)
    cuts_moved = cuts is not None and not np.array_equal(cuts, applied_cuts)
    if len(changed) == 0 and not cuts_moved:
        return {"frames_rendered": 0, "changed": []}
    styles = styles or load_styles(styles_path)
    record = styles.motion
    settings = styles.settings
    generator = get_generator(styles.generator_source, device=device, precision="auto",
                              label=settings.get("label"))
    w_avg = generator_average_w(generator, styles.group_ws.shape[2])
    moving = _CutStyles(styles, generator) if record is not None and cuts is not None else None
    if cuts_moved:
        changed = np.union1d(changed, np.flatnonzero(moving.rows_moved(cuts, applied_cuts))).astype(np.int64)
    if len(changed) == 0:   # the cuts moved where they change no frame
        _save_applied(cpath, curves, curves["applied"], cuts)
        return {"frames_rendered": 0, "changed": [], "cuts": [int(c) for c in cuts]}

    stored = styles.group_ws[changed]
    pulse = None
    if moving is not None:
        stored, base = moving.stored_and_base(cuts, changed)
        if record.pulse_bands:
            pulse = PulseInputs.from_record(record, changed, base=base)
    elif record is not None and record.pulse_bands:
        pulse = PulseInputs.from_record(record, changed)

    def untruncated():
        if record is not None:
            return motion_base_styles(styles, cuts if cuts is not None else record.cut_frames, lambda ws: ws)[changed]
        smoothed = smoothing.smooth_groups(styles.raw_ws, styles.fps, styles.smoothing_seconds, styles.smoothing_kind)
        return smoothed[changed]

    new_ws = apply_edits(stored, values[changed], curves["baseline"][changed], curves["names"], curves["groups"],
                         curves["basis"], w_avg, untruncated, pulse=pulse)
    cameras = edited_cameras(styles.camera, changed, values, curves["baseline"], curves["names"])

    render_frames(styles_path, changed, ws_override=new_ws, device=device, progress=progress,
                  cancel=cancel, lock=False, draft=draft and bool(settings.get("draft_size")), camera_override=cameras)
    applied = np.array(curves["applied"])
    applied[changed] = values[changed]
    _save_applied(cpath, curves, applied, cuts)
    result = {"frames_rendered": int(len(changed)), "changed": frame_ranges(changed)}
    if cuts is not None:
        result["cuts"] = [int(c) for c in cuts]
    return result


def edited_cameras(camera, rows, values, baseline, names):
    """The cameras [n, 3] of frames ``rows`` after the camera curves' edits (the stored path plus
    the edit; unedited values stay bit for bit), or None for curves without a camera."""
    if camera is None or not all(name in names for name in CAMERA_CURVES):
        return None
    columns = [list(names).index(name) for name in CAMERA_CURVES]
    rows = np.asarray(rows, dtype=np.int64)
    stored = np.asarray(camera, dtype=np.float64)[rows]
    delta = np.asarray(values, dtype=np.float64)[rows][:, columns] - np.asarray(baseline, dtype=np.float64)[rows][:, columns]
    return np.where(delta != 0, stored + delta, stored)


def _save_applied(path, curves, applied, cuts) -> None:
    save_curves(path, curves["names"], curves["groups"], int(curves["frame_start"]), curves["baseline"],
                applied, curves["mean"], curves["basis"], float(curves["truncation"]),
                frame_times=curves["frame_times"], cuts=cuts)


def generator_average_w(generator, dim: int) -> np.ndarray:
    """The generator's average w (the centre of truncation): truncate(w, ψ=0)."""
    import torch

    zeros = torch.zeros((1, dim), dtype=torch.float32, device=generator.device)
    with torch.no_grad():
        average = generator.truncate(zeros, 0.0)
    if isinstance(average, torch.Tensor):
        average = average.detach().cpu().numpy()
    return np.asarray(average, dtype=np.float64).reshape(-1)[:dim]
