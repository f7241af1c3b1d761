# SPDX-License-Identifier: GPL-3.0-or-later
"""TräumerAI engine: music → StyleGAN2 frames.

Plain Python, numpy and torch. This package never imports bpy: it runs as a CLI
(``python -m traeumer_blender``) and as the background worker of the Blender extension.
"""

import tomllib
from pathlib import Path


def _extension_version() -> str:
    """The version written once, in the extension's ``blender_manifest.toml`` beside this package."""
    manifest = Path(__file__).resolve().parent.parent / "blender_manifest.toml"
    try:
        with open(manifest, "rb") as stream:
            return str(tomllib.load(stream)["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


__version__ = _extension_version()
