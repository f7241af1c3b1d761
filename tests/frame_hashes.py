# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame files compared by content, for tests and for the scripts they run inside Blender
(standard library only)."""

import glob
import hashlib
import os


def frame_digests(folder) -> dict:
    """{file name: sha256 of the file} of every frame_NNNNNN.png in ``folder``."""
    return {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in sorted(glob.glob(os.path.join(str(folder), "frame_*.png")))}


def changed_frames(before: dict, after: dict) -> list:
    """0-based indices of the frames in ``before`` whose file differs (or is gone) in ``after``."""
    return sorted(int(name[6:12]) - 1 for name in before if before[name] != after.get(name))
