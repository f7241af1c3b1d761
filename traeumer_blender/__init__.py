# SPDX-License-Identifier: GPL-3.0-or-later
"""TräumerAI engine: music → StyleGAN2 frames.

Plain Python, numpy and torch. This package never imports bpy: it runs as a CLI
(``python -m traeumer_blender``) and as the background worker of the Blender extension.
"""

__version__ = "0.1.0"
