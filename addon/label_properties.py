# SPDX-License-Identifier: GPL-3.0-or-later
"""Labelling settings and state, stored on the scene as ``scene.traeumer_label``.

The label set itself lives in its own file (``<name>.labels.npz``, see
``traeumer_blender/labels.py``), beside the .blend (``//traeumer/labels/``) or in the
extension's user folder; the collections here only mirror it for the panel.
"""

import os

import bpy
from bpy.props import CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from ..traeumer_blender.labels import SUFFIX, default_set_path
from . import compat
from .extension import user_folder

BLEND_FOLDER = "//traeumer/labels/"


class LabelLocationError(Exception):
    """The label set has no place to live yet (e.g. beside an unsaved .blend)."""


class TRAEUMER_PG_label_candidate(bpy.types.PropertyGroup):
    """One candidate image of the current batch (row ``row`` of the batch's ws file)."""

    image: StringProperty(name="Image", subtype="FILE_PATH", options=compat.path_options())
    row: IntProperty(name="Row", min=0)
    seed: IntProperty(name="Seed")
    origin_json: StringProperty(name="Origin", description="How the candidate's w was made (JSON)")


class TRAEUMER_PG_label_pair(bpy.types.PropertyGroup):
    """One labelled pair of the set (``name`` is the pair's id in the file)."""

    audio_name: StringProperty(name="Audio")
    audio: StringProperty(name="Audio File", subtype="FILE_PATH", options=compat.path_options())
    start: FloatProperty(name="Start", unit="TIME_ABSOLUTE")
    duration: FloatProperty(name="Duration", unit="TIME_ABSOLUTE")
    thumbnail: StringProperty(name="Thumbnail", subtype="FILE_PATH", options=compat.path_options())


class TRAEUMER_PG_label_audio(bpy.types.PropertyGroup):
    filepath: StringProperty(name="File", subtype="FILE_PATH", options=compat.path_options())


def _set_changed(self, context):
    """Another set was chosen (name or place): show its pairs."""
    from . import labelling  # labelling imports this module
    try:
        labelling.refresh_pairs(self.id_data)
    except Exception:  # a damaged or foreign file: the panel shows no pairs; Reload reports why
        self.pairs.clear()


class TRAEUMER_PG_label_settings(bpy.types.PropertyGroup):
    set_name: StringProperty(name="Label Set", description="Name of the label set (its file name)",
                             default="My taste", update=_set_changed)
    location: EnumProperty(
        name="Keep In",
        description="Where the label set file and its trained mapping are kept",
        items=[("BLEND", "Beside the .blend", "//traeumer/labels/ next to the saved .blend file"),
               ("USER", "User Folder", "The extension's user folder: shared by all .blend files")],
        default="BLEND", update=_set_changed,
    )
    # the clip being labelled
    clip_audio: StringProperty(name="Clip Audio", subtype="FILE_PATH", options=compat.path_options())
    clip_start: FloatProperty(name="Start", description="Start of the clip in its audio file",
                              default=0.0, min=0.0, unit="TIME_ABSOLUTE")
    clip_duration: FloatProperty(name="Clip Length", description="Length of a labelled clip (the paper: 10 s)",
                                 default=10.0, min=3.0, max=30.0, unit="TIME_ABSOLUTE")
    clip_strip: StringProperty(name="Clip Strip", description="Sound strip the clip was taken from ('' for a file)")
    # candidates
    candidates: CollectionProperty(type=TRAEUMER_PG_label_candidate)
    candidates_ws: StringProperty(name="Candidate ws", subtype="FILE_PATH", options=compat.path_options())
    active_candidate: IntProperty(name="Chosen Candidate", default=0, min=0)
    candidate_count: IntProperty(name="Candidates", description="Images per batch", default=6, min=1, max=16)
    preview_resolution: EnumProperty(
        name="Preview Resolution", description="Resolution the candidates are rendered at",
        items=[("32", "32 px", ""), ("64", "64 px", ""), ("128", "128 px", ""), ("256", "256 px", "")],
        default="64",
    )
    variation: FloatProperty(name="Variation", description="How far “More like this” moves from the chosen image",
                             default=0.35, min=0.05, max=1.0, subtype="FACTOR")
    next_seed: IntProperty(name="Next Seed", default=1, min=0)
    # the set, mirrored
    pairs: CollectionProperty(type=TRAEUMER_PG_label_pair)
    active_pair: IntProperty(name="Active Pair", default=0, min=0)
    audio_files: CollectionProperty(type=TRAEUMER_PG_label_audio)
    active_audio: IntProperty(name="Active Audio File", default=0, min=0)
    # training
    train_steps: IntProperty(name="Steps", description="Training steps (the paper: 30,000)",
                             default=5000, min=1, max=100000)
    mapper_file: StringProperty(name="Trained Mapping", subtype="FILE_PATH", options=compat.path_options())
    report: StringProperty(name="Last Result")


def set_folder(scene) -> str:
    """Absolute folder of the current label set; LabelLocationError when there is none."""
    settings = scene.traeumer_label
    if settings.location == "BLEND":
        if not bpy.data.filepath:
            raise LabelLocationError("Save the .blend first, or keep the label set in the user folder")
        return os.path.normpath(bpy.path.abspath(BLEND_FOLDER))
    folder = user_folder("labels")
    if not folder:
        raise LabelLocationError("The extension has no user folder (not installed as an extension)")
    return folder


def set_path(scene) -> str:
    return default_set_path(set_folder(scene), scene.traeumer_label.set_name)


def mapper_path(scene) -> str:
    path = set_path(scene)
    return path[: -len(SUFFIX)] + ".mapper.npz"


classes = (TRAEUMER_PG_label_candidate, TRAEUMER_PG_label_pair, TRAEUMER_PG_label_audio,
           TRAEUMER_PG_label_settings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.traeumer_label = PointerProperty(type=TRAEUMER_PG_label_settings)


def unregister():
    del bpy.types.Scene.traeumer_label
    _unregister_classes()
