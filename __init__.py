# SPDX-License-Identifier: GPL-3.0-or-later
"""TräumerAI for Blender: dream music into pictures with StyleGAN2.

Blender's side of the extension. It never imports torch: the engine
(``traeumer_blender``) runs in a background worker process.
"""

from . import label_properties, operators, panels, preferences, properties, worker_client

_modules = (preferences, properties, label_properties, operators, panels, worker_client)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
