# SPDX-License-Identifier: GPL-3.0-or-later
"""Choosing the sound strip to work on."""

import bpy

from ..addon import compat


class TRAEUMER_OT_use_active_strip(bpy.types.Operator):
    """Work on the active sound strip"""

    bl_idname = "traeumer.use_active_strip"
    bl_label = "Use Active Strip"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        strip = compat.active_strip(context.scene)
        if not compat.is_sound_strip(strip):
            self.report({"ERROR"}, "The active strip is not a sound strip")
            return {"CANCELLED"}
        context.scene.traeumer.strip_name = strip.name
        self.report({"INFO"}, f"Working on sound strip '{strip.name}'")
        return {"FINISHED"}


classes = (TRAEUMER_OT_use_active_strip,)
