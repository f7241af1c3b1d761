# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything of the extension that runs inside Blender, except operators and panels.

It imports bpy and never torch: the engine (``traeumer_blender``) runs in the background
worker, and only its torch-free modules (the worker protocol, the styles file, labels, style
editing, timing) are imported here.
"""

from . import label_properties, labelling, preferences, properties, worker_client

_modules = (preferences, properties, label_properties, labelling, worker_client)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
