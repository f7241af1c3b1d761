# SPDX-License-Identifier: GPL-3.0-or-later
"""What a job's output folder holds and how it is kept consistent (no bpy, no torch).

    frame_000001.png ...   one PNG per frame; frame index i is file number i + 1
    styles.npz             the styles of every frame (``styles_file.py``)
    .<name>.<pid>.<token>.tmp
                           a file being written (``png.write_atomic``): renamed when complete,
                           so a frame or styles file is either whole or absent

Both the engine and Blender's side use these names and checks.
"""

import os
import re

from .errors import TraeumerError

FRAME_PATTERN = "frame_{:06d}.png"
STYLES_NAME = "styles.npz"
_FRAME_RE = re.compile(r"^frame_(\d{6,})\.png$")
# temporary files of frames and styles.npz being written (png.write_atomic names them)
_PARTIAL_RE = re.compile(r"^\.(frame_\d{6,}\.png|styles\.npz|curves\.npz)\..*\.tmp$")


def frame_path(out_dir, index: int) -> str:
    """Path of frame ``index`` (0-based) in ``out_dir``: frame_000001.png for index 0."""
    return os.path.join(os.fspath(out_dir), FRAME_PATTERN.format(int(index) + 1))


def frame_number(name: str):
    """The file number of a frame file name (frame_000001.png -> 1), or None."""
    match = _FRAME_RE.match(name)
    return int(match.group(1)) if match else None


def ensure_writable_folder(out_dir) -> None:
    """Create the output folder; one clear TraeumerError when that is impossible."""
    out_dir = os.fspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except FileExistsError:
        raise TraeumerError(f"output path exists and is not a folder: {out_dir}") from None
    except NotADirectoryError:
        raise TraeumerError(f"cannot create output folder {out_dir}: a parent is a file") from None
    except OSError as error:
        raise TraeumerError(f"cannot create output folder {out_dir}: {error.strerror}") from None
    if not os.path.isdir(out_dir):
        raise TraeumerError(f"output path exists and is not a folder: {out_dir}")
    probe = os.path.join(out_dir, f".write-test-{os.getpid()}.tmp")
    try:
        with open(probe, "wb") as stream:
            stream.write(b"ok")
        os.unlink(probe)
    except OSError as error:
        raise TraeumerError(f"output folder is not writable: {out_dir} ({error.strerror})") from None


def remove_partial_files(out_dir, frame_count=None) -> None:
    """Remove temporary files of an interrupted job (frames and styles.npz being written) and,
    with ``frame_count``, frames beyond it (a job of another length wrote them)."""
    try:
        names = os.listdir(os.fspath(out_dir))
    except OSError:
        return
    for name in names:
        number = frame_number(name)
        stale = frame_count is not None and number is not None and number > frame_count
        if stale or _PARTIAL_RE.match(name):
            try:
                os.unlink(os.path.join(os.fspath(out_dir), name))
            except OSError:
                pass
