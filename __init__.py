# SPDX-License-Identifier: GPL-3.0-or-later
"""TräumerAI for Blender: dream music into pictures with StyleGAN.

The extension's entry. What runs inside Blender is ``addon/`` (with ``operators/`` and
``panels/``); it never imports torch. The engine (``traeumer_blender/``) runs in a background
worker process.
"""

from . import addon, operators, panels

_modules = (addon, operators, panels)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
