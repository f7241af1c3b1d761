# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators (``traeumer.*``)."""

import bpy

from . import generate, label, strip

classes = strip.classes + generate.classes + label.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
