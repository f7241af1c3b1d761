# SPDX-License-Identifier: GPL-3.0-or-later
"""Style curves of a track on the timeline (see ``traeumer_blender/style_edit.py`` for the idea).

Keys live on the scene's action as F-curves of ``traeumer.tracks["<name>"].<curve>``, grouped
per track ("TräumerAI <name>"), so the Graph Editor lists them as "Coarse PC 1 (<name>)" ...
Each principal-component curve is reduced to the keys that keep linear interpolation within
``style_edit.KEY_TOLERANCE`` standard deviations of the exact per-frame value. Tracks made with
musical motion also get each used band's pulse (``pulse_low`` ..., within
``style_edit.PULSE_KEY_TOLERANCE`` of the exact pulse) and each group's pulse amount
(``coarse_pulse`` ..., keyed constant at the first and last frame). Tracks of a model with a
camera (StyleGAN3) get ``camera_x``, ``camera_y``, ``camera_rotation`` keyed from the camera path
(within ``camera.CAMERA_KEY_TOLERANCE``); StyleGAN2 tracks have none.
"""

import os

import bpy
import numpy as np

from ..traeumer_blender import style_edit
from ..traeumer_blender.camera import CAMERA_CURVES
from ..traeumer_blender.layer_groups import used_groups
from ..traeumer_blender.styles_file import load_styles
from . import compat


def track_data_path(track_name: str) -> str:
    return f'traeumer.tracks["{bpy.utils.escape_identifier(track_name)}"]'


def curve_group_name(track_name: str) -> str:
    return f"TräumerAI {track_name}"


def write_track_curves(scene, track, styles_path: str, styles=None) -> dict:
    """Key the track's style curves from its styles.npz (``styles``: already loaded) and store
    their baseline in curves.npz."""
    styles = load_styles(styles_path) if styles is None else styles
    group_ws = np.asarray(styles.group_ws, dtype=np.float64)
    groups = used_groups(styles.layer_group)
    record = styles.motion
    names = style_edit.curve_names(groups, pulse_bands=style_edit.pulse_curve_bands(record, groups),
                                   camera=styles.camera is not None)
    values, mean, basis = style_edit.curve_values(group_ws, styles.truncation, groups, motion=record,
                                                  camera=styles.camera)
    count = group_ws.shape[0]
    frames = track.frame_start + np.arange(count)
    base_path = track_data_path(track.name)
    compat.remove_fcurves(scene, base_path + ".")
    action_name = track.action_name or f"{scene.name} TräumerAI"
    fcurves = []
    keys = 0
    for column, name in enumerate(names):
        fcurve = compat.ensure_fcurve(scene, f"{base_path}.{name}", group=curve_group_name(track.name),
                                      action_name=action_name)
        keep = style_edit.reduce_keys(values[:, column], style_edit.key_tolerance(name))
        compat.set_keys_linear(fcurve, frames[keep], values[keep, column])
        keys += len(keep)
        fcurves.append(fcurve)
    track.action_name = scene.animation_data.action.name
    track.has_camera = styles.camera is not None
    baseline = evaluate(fcurves, frames)
    # the cuts can move (section markers) when the styles were made with motion and cuts
    cuts = record.cut_frames if record is not None and record.settings.get("cuts", False) else None
    style_edit.save_curves(style_edit.curves_path(os.path.dirname(styles_path)), names, groups,
                           track.frame_start, baseline, baseline, mean, basis, styles.truncation,
                           frame_times=styles.frame_times, cuts=cuts)
    return {"curves": len(names), "keys": keys, "frames": count,
            "pulse_curves": sum(1 for name in names if name.startswith("pulse_")),
            "camera_curves": sum(1 for name in names if name in CAMERA_CURVES)}


def evaluate(fcurves, frames) -> np.ndarray:
    """Values [len(frames), len(fcurves)]; a missing curve gives NaN."""
    out = np.full((len(frames), len(fcurves)), np.nan)
    for column, fcurve in enumerate(fcurves):
        if fcurve is None:
            continue
        evaluate_at = fcurve.evaluate
        out[:, column] = [evaluate_at(float(frame)) for frame in frames]
    return out


def current_values(scene, track, curves: dict) -> np.ndarray:
    """The curves as they are now, per frame; a deleted curve counts as unedited."""
    frames = int(curves["frame_start"]) + np.arange(curves["baseline"].shape[0])
    base_path = track_data_path(track.name)
    fcurves = [compat.find_fcurve(scene, f"{base_path}.{name}") for name in curves["names"]]
    values = evaluate(fcurves, frames)
    missing = np.isnan(values)
    values[missing] = curves["baseline"][missing]
    return values


def track_fcurves(scene, track):
    base_path = track_data_path(track.name)
    fcurves = compat.action_fcurves(scene)
    if fcurves is None:
        return []
    return [fcurve for fcurve in fcurves if fcurve.data_path.startswith(base_path + ".")]
