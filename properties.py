# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings stored on the scene as ``scene.traeumer`` (saved with the .blend)."""

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty


class TRAEUMER_PG_settings(bpy.types.PropertyGroup):
    strip_name: StringProperty(
        name="Sound Strip",
        description="Sound strip to dream from; empty uses the active sound strip",
        default="",
    )
    model_path: StringProperty(
        name="Model",
        description="StyleGAN2 checkpoint (.pkl or .pt); empty uses the built-in generator",
        subtype="FILE_PATH",
        default="",
    )
    mapper_path: StringProperty(
        name="Mapping",
        description="Trained mapping file; empty uses the zero-label mapping",
        subtype="FILE_PATH",
        default="",
    )
    output_dir: StringProperty(
        name="Output",
        description="Folder for frames and styles; empty uses //traeumer/<strip name>/",
        subtype="DIR_PATH",
        default="",
    )
    size: IntProperty(
        name="Size",
        description="Frame size in pixels; 0 uses the model's own resolution",
        default=0, min=0, max=4096,
    )
    smoothing_coarse: FloatProperty(
        name="Coarse", description="Smoothing window of the coarse layers (seconds)",
        default=3.0, min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    smoothing_middle: FloatProperty(
        name="Middle", description="Smoothing window of the middle layers (seconds)",
        default=2.0, min=0.0, max=60.0, unit="TIME_ABSOLUTE",
    )
    smoothing_fine: FloatProperty(
        name="Fine", description="Smoothing window of the fine layers (seconds)",
        default=0.3, min=0.0, max=60.0, unit="TIME_ABSOLUTE",
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


classes = (TRAEUMER_PG_settings,)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.traeumer = PointerProperty(type=TRAEUMER_PG_settings)


def unregister():
    del bpy.types.Scene.traeumer
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
