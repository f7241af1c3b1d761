# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings stored on the scene as ``scene.traeumer`` (saved with the .blend)."""

import bpy
from bpy.props import CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from ..traeumer_blender.layer_groups import DEFAULT_SMOOTHING_SECONDS, GROUP_NAMES
from ..traeumer_blender.style_edit import COMPONENTS
from . import compat


class TRAEUMER_PG_track(bpy.types.PropertyGroup):
    """A track generated in this file: where its frames and styles are, and its style curves.

    ``name`` is the sound strip's name when it was generated. The style curves
    (``coarse_pc1`` ... ``fine_intensity``) are animated by F-curves on the scene's action.
    """

    sound_strip: StringProperty(name="Sound Strip", description="Sound strip the track was generated from")
    image_strip: StringProperty(name="Image Strip", description="Image strip that shows the frames")
    image_name: StringProperty(name="Image", description="Image datablock (image sequence) of the frames")
    material_name: StringProperty(name="Material", description="Material that shows the frames")
    action_name: StringProperty(name="Action", description="Action holding the style curves")
    output_dir: StringProperty(name="Folder", description="Folder of the frames (relative to the .blend when saved)",
                               subtype="DIR_PATH", options=compat.path_options())
    styles_path: StringProperty(name="Styles", description="styles.npz of the track", subtype="FILE_PATH",
                                options=compat.path_options())
    frame_start: IntProperty(name="Start", description="Scene frame of the first generated frame")
    frame_count: IntProperty(name="Frames", description="Number of generated frames", min=0)
    resolution: IntProperty(name="Resolution", description="Frame size in pixels", min=0)
    state: EnumProperty(
        name="State",
        items=[("NEW", "New", ""), ("RUNNING", "Running", ""), ("DONE", "Done", ""),
               ("CANCELLED", "Cancelled", ""), ("FAILED", "Failed", "")],
        default="NEW",
    )
    message: StringProperty(name="Message", description="Last report of the track's job")


def _add_curve_properties(cls):
    """The animatable style properties, named so the Graph Editor says what they are."""
    for group in GROUP_NAMES:
        for k in range(1, COMPONENTS + 1):
            cls.__annotations__[f"{group}_pc{k}"] = FloatProperty(
                name=f"{group.title()} PC {k}",
                description=(f"Principal component {k} of the {group} layers' style "
                             f"(in standard deviations of the generated track)"),
                default=0.0, soft_min=-5.0, soft_max=5.0, options={"ANIMATABLE"})
    cls.__annotations__["truncation"] = FloatProperty(
        name="Truncation", description="Pull styles toward the average style (1 = as generated with ψ=1)",
        default=1.0, soft_min=0.0, soft_max=2.0, options={"ANIMATABLE"})
    for group in GROUP_NAMES:
        cls.__annotations__[f"{group}_intensity"] = FloatProperty(
            name=f"{group.title()} Intensity",
            description=f"Scale of the {group} layers' style around the average style (1 = as generated)",
            default=1.0, soft_min=0.0, soft_max=2.0, options={"ANIMATABLE"})


_add_curve_properties(TRAEUMER_PG_track)


class TRAEUMER_PG_settings(bpy.types.PropertyGroup):
    strip_name: StringProperty(
        name="Sound Strip",
        description="Sound strip to dream from; empty uses the active sound strip",
        default="",
    )
    model_path: StringProperty(
        name="Model",
        description="StyleGAN2 checkpoint (.pkl or .pt); empty uses the built-in generator",
        subtype="FILE_PATH", options=compat.path_options(),
        default="",
    )
    mapper_path: StringProperty(
        name="Mapping",
        description="Trained mapping file; empty uses the zero-label mapping",
        subtype="FILE_PATH", options=compat.path_options(),
        default="",
    )
    output_dir: StringProperty(
        name="Output",
        description="Folder for frames and styles; empty uses //traeumer/<strip name>/",
        subtype="DIR_PATH", options=compat.path_options(),
        default="",
    )
    resolution: IntProperty(
        name="Resolution",
        description="Frame size in pixels; 0 uses the model's own resolution",
        default=0, min=0, max=4096,
    )
    smoothing_coarse: FloatProperty(
        name="Coarse", description="Smoothing window of the coarse layers (seconds)",
        default=DEFAULT_SMOOTHING_SECONDS[0], min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    smoothing_middle: FloatProperty(
        name="Middle", description="Smoothing window of the middle layers (seconds)",
        default=DEFAULT_SMOOTHING_SECONDS[1], min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    smoothing_fine: FloatProperty(
        name="Fine", description="Smoothing window of the fine layers (seconds)",
        default=DEFAULT_SMOOTHING_SECONDS[2], min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    truncation: FloatProperty(
        name="Truncation", description="Pull styles toward the average style (1 = none)",
        default=1.0, min=0.0, max=2.0,
    )
    seed: IntProperty(name="Seed", description="Seed of the zero-label mapping and noise", default=0, min=0)
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Auto", "GPU when there is one, else CPU"),
            ("cpu", "CPU", "Always the CPU"),
            ("cuda", "CUDA", "NVIDIA GPU"),
            ("mps", "Metal", "Apple GPU"),
        ],
        default="auto",
    )
    tracks: CollectionProperty(type=TRAEUMER_PG_track, name="Tracks",
                               description="Tracks generated in this file")
    active_track_index: IntProperty(name="Active Track", default=0, min=0)


classes = (TRAEUMER_PG_track, TRAEUMER_PG_settings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.traeumer = PointerProperty(type=TRAEUMER_PG_settings)


def unregister():
    del bpy.types.Scene.traeumer
    _unregister_classes()
