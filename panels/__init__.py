# SPDX-License-Identifier: GPL-3.0-or-later
"""Sidebar panels of the Video Sequencer."""

import bpy

from . import generate, label

classes = generate.classes + label.classes


register, unregister = bpy.utils.register_classes_factory(classes)
