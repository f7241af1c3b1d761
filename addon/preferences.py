# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: which Python runs the worker, and when an idle worker stops."""

import bpy
from bpy.props import FloatProperty, StringProperty

from ..traeumer_blender.protocol import DEFAULT_IDLE_TIMEOUT_SECONDS
from . import compat
from .extension import EXTENSION_PACKAGE


class TRAEUMER_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = EXTENSION_PACKAGE

    worker_python: StringProperty(
        name="Worker Python",
        description=("Python that runs the generator; empty uses Blender's own Python with the "
                     "extension's bundled wheels. Point it at a Python with a CUDA build of torch "
                     "to use an NVIDIA GPU"),
        subtype="FILE_PATH", options=compat.path_options(),
        default="",
    )
    idle_timeout: FloatProperty(
        name="Idle Timeout",
        description="Stop the worker (and free its memory) after this many seconds without work",
        default=DEFAULT_IDLE_TIMEOUT_SECONDS, min=0.0, max=86400.0, unit="TIME_ABSOLUTE",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "worker_python")
        layout.prop(self, "idle_timeout")
        row = layout.row()
        row.operator("traeumer.stop_worker", icon="CANCEL")


def get_preferences(context=None):
    """The preferences, or ``None`` when the extension was loaded outside the add-on system."""
    context = context or bpy.context
    addon = context.preferences.addons.get(EXTENSION_PACKAGE)
    return addon.preferences if addon is not None else None


def worker_settings(context=None):
    """(python path or "", idle timeout seconds) with defaults when there are no preferences."""
    prefs = get_preferences(context)
    if prefs is None:
        return "", DEFAULT_IDLE_TIMEOUT_SECONDS
    return bpy.path.abspath(prefs.worker_python) if prefs.worker_python else "", float(prefs.idle_timeout)


classes = (TRAEUMER_AP_preferences,)


register, unregister = bpy.utils.register_classes_factory(classes)
