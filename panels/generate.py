# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Generate from audio" panel in the Sequencer sidebar."""

import os

import bpy

from .. import compat
from ..timeline import format_fps, sound_strip_span, target_sound_strip


class TRAEUMER_PT_generate(bpy.types.Panel):
    bl_idname = "TRAEUMER_PT_generate"
    bl_label = "Generate from audio"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "TräumerAI"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.traeumer

        row = layout.row(align=True)
        if scene.sequence_editor is not None:
            row.prop_search(settings, "strip_name", scene.sequence_editor, compat.all_strips_attribute(),
                            text="Strip", icon="SOUND")
        else:
            row.prop(settings, "strip_name", text="Strip", icon="SOUND")
        row.operator("traeumer.use_active_strip", text="", icon="EYEDROPPER")

        strip = target_sound_strip(scene)
        box = layout.box()
        if strip is None:
            box.label(text="No sound strip: add one or make it active", icon="INFO")
            return
        span = sound_strip_span(scene, strip)
        column = box.column(align=True)
        column.label(text=span.name, icon="SOUND")
        column.label(text=os.path.basename(span.filepath) or "(no file)", icon="FILE_SOUND")
        column.label(text=f"Frames {span.frame_start}–{span.frame_end - 1} ({span.frame_count})")
        column.label(text=f"{float(span.duration_seconds):.3f} s at {format_fps(span.fps)}")


classes = (TRAEUMER_PT_generate,)
