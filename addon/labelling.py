# SPDX-License-Identifier: GPL-3.0-or-later
"""Labelling state in Blender: the clip being labelled, the label set mirrored for the panel,
thumbnails as previews, and what each labelling job's result changes.

The label set itself is a file (``traeumer_blender/labels.py``, plain numpy); the scene's
``traeumer_label`` collections only mirror it (``refresh_pairs``). Thumbnails are written to the
session's temporary folder, so a load handler writes them again for an opened file.
"""

import json
import os

import bpy
import numpy as np

from ..traeumer_blender import labels as label_sets
from ..traeumer_blender.errors import TraeumerError
from . import label_properties, timeline
from .jobs import JobError

_previews = None        # bpy.utils.previews collection of candidate and pair thumbnails


def preview_icon(path: str) -> int:
    """Icon id of an image file for ``template_icon`` (0 when previews are unavailable)."""
    global _previews
    if not path or not os.path.isfile(path):
        return 0
    try:
        if _previews is None:
            import bpy.utils.previews
            _previews = bpy.utils.previews.new()
        # a file written again under the same name (a new batch) gets a new preview
        key = f"{path}:{os.stat(path).st_mtime_ns}"
        preview = _previews.get(key) or _previews.load(key, path, "IMAGE")
        return preview.icon_id
    except (RuntimeError, KeyError, ValueError, OSError):
        return 0


def free_previews():
    global _previews
    if _previews is not None:
        import bpy.utils.previews
        bpy.utils.previews.remove(_previews)
        _previews = None


def model_settings(scene):
    settings = scene.traeumer
    model = bpy.path.abspath(settings.model_path) if settings.model_path else "default"
    if model != "default" and not os.path.isfile(model):
        raise JobError(f"Model file not found: {model}")
    return model, settings.device


def set_clip(scene, audio, start, duration, strip=None):
    """Make a clip the current one (and its candidates stale)."""
    settings = scene.traeumer_label
    settings.clip_audio = audio
    settings.clip_start = max(0.0, float(start))
    settings.clip_duration = float(duration)
    strip = strip or timeline.strip_for_clip(scene, audio, start, duration)
    settings.clip_strip = strip.name if strip is not None else ""
    if strip is not None:
        timeline.set_preview_range(scene, strip, settings.clip_start, settings.clip_duration)


def music_files(scene):
    """The user's music: files added to the label set, then the scene's sound strips' files."""
    files = []
    for item in scene.traeumer_label.audio_files:
        path = bpy.path.abspath(item.filepath)
        if path and path not in files:
            files.append(path)
    for strip in timeline.sound_strips(scene):
        path = os.path.abspath(bpy.path.abspath(strip.sound.filepath))
        if strip.sound.filepath and path not in files:
            files.append(path)
    return files


def add_audio_file(scene, path) -> bool:
    settings = scene.traeumer_label
    path = os.path.abspath(bpy.path.abspath(path))
    if any(os.path.abspath(bpy.path.abspath(item.filepath)) == path for item in settings.audio_files):
        return False
    item = settings.audio_files.add()
    item.filepath = path
    item.name = os.path.basename(path)
    return True


def _thumbnail_folder(path):
    import hashlib
    key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
    return os.path.join(bpy.app.tempdir or os.path.dirname(path), "traeumer_label_thumbs", key)


def refresh_pairs(scene) -> int:
    """Mirror the label set file in ``scene.traeumer_label.pairs``; returns the pair count."""
    settings = scene.traeumer_label
    settings.pairs.clear()
    try:
        path = label_properties.set_path(scene)
    except label_properties.LabelLocationError:
        return 0
    if not os.path.isfile(path):
        return 0
    label_set = label_sets.LabelSet.load(path)
    thumbnails = label_sets.write_thumbnails(label_set, _thumbnail_folder(path))
    for pair, thumbnail in zip(label_set.pairs, thumbnails):
        item = settings.pairs.add()
        item.name = pair["id"]
        item.audio_name = pair["audio_name"]
        item.audio = pair["audio"]
        item.start = pair["start"]
        item.duration = pair["duration"]
        item.thumbnail = thumbnail
    for path in label_set.audio_files:
        if os.path.isfile(path):
            add_audio_file(scene, path)
    settings.active_pair = min(settings.active_pair, max(0, len(settings.pairs) - 1))
    return len(settings.pairs)


def show_candidates(scene, result):
    settings = scene.traeumer_label
    settings.candidates.clear()
    for row, (image, origin) in enumerate(zip(result["images"], result["origins"])):
        item = settings.candidates.add()
        item.name = f"{origin.get('kind', 'seed')} {origin.get('seed', 0)}"
        item.image = image
        item.row = row
        item.seed = int(origin.get("seed", 0))
        item.origin_json = json.dumps(origin)
        preview_icon(image)
    settings.candidates_ws = result["ws_path"]
    settings.active_candidate = 0
    return f"{len(result['images'])} candidates"


def candidate_w(settings, index):
    if not 0 <= index < len(settings.candidates):
        raise JobError("No such candidate: make a new batch")
    try:
        with np.load(settings.candidates_ws, allow_pickle=False) as data:
            ws = np.asarray(data["ws"], dtype=np.float32)
    except (OSError, KeyError, ValueError):
        raise JobError("The candidates are gone (temporary files): make a new batch") from None
    return ws[settings.candidates[index].row]


def after_pick(scene, result):
    count = refresh_pairs(scene)
    settings = scene.traeumer_label
    settings.clip_start = float(result["start"])
    return f"Labelled: {count} pair(s) in '{settings.set_name}'"


def show_suggestion(scene, result):
    set_clip(scene, result["audio"], result["start"], result["duration"])
    skipped = result.get("skipped") or []
    note = f"; {len(skipped)} file(s) could not be decoded" if skipped else ""
    return (f"Suggested: {os.path.basename(result['audio'])} from {result['start']:.0f} s "
            f"(the least covered of {result['candidates']} clips{note})")


def use_trained_mapping(scene, result):
    settings = scene.traeumer_label
    stored = result["out"]
    if settings.location == "BLEND" and bpy.data.filepath:
        try:
            stored = bpy.path.relpath(stored)
        except ValueError:
            pass
    settings.mapper_file = stored
    scene.traeumer.mapper_path = stored        # Generate uses the trained mapping from now on
    settings.report = (f"L1 on labelled clips {result['l1_after']:.3f} "
                       f"(zero-label {result['l1_zero_label']:.3f})")
    return f"Trained on {result['pairs']} pair(s): {settings.report}; Generate now uses it"


@bpy.app.handlers.persistent
def _refresh_after_load(*_args):
    """Thumbnails live in the session's temporary folder: write them again for an opened file."""
    for scene in bpy.data.scenes:
        settings = getattr(scene, "traeumer_label", None)
        if settings is None or not len(settings.pairs):
            continue
        if all(os.path.isfile(pair.thumbnail) for pair in settings.pairs):
            continue
        try:
            refresh_pairs(scene)
        except (TraeumerError, OSError):
            pass


def register():
    if _refresh_after_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_refresh_after_load)


def unregister():
    if _refresh_after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_refresh_after_load)
    free_previews()
