# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators (``traeumer.*``)."""

import bpy

from . import generate, label, strip

classes = strip.classes + generate.classes + label.classes


register, unregister = bpy.utils.register_classes_factory(classes)
