# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m traeumer_blender ...``: see cli.py."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
