# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the extension is: its package name, its folder, and its user folder."""

import os

import bpy

# the extension's own package (``bl_ext.<repo>.traeumer``): add-on preferences and the
# extension's user folder are keyed by it, not by this subpackage
EXTENSION_PACKAGE = __package__.rpartition(".")[0]
# the extension's root folder (holds ``traeumer_blender``, the engine the worker imports)
EXTENSION_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_folder(name: str) -> str:
    """``<extension user folder>/<name>``, created; "" when not loaded as an extension."""
    try:
        return bpy.utils.extension_path_user(EXTENSION_PACKAGE, path=name, create=True)
    except (ValueError, RuntimeError, TypeError, AttributeError):
        return ""
