# SPDX-License-Identifier: GPL-3.0-or-later
"""What a job's output folder holds and how it is kept consistent (no bpy, no torch).

    frame_000001.png ...   one PNG per frame; frame index i is file number i + 1
    styles.npz             the styles of every frame (``styles_file.py``)
    draft/frame_000001.png ...
                           draft frames (small, from the skip branch), rendered before the
                           full-size frames so the whole song can be scrubbed at once
    .<name>.<pid>.<token>.tmp
                           a file being written (``png.write_atomic``): renamed when complete,
                           so a frame or styles file is either whole or absent
    .traeumer.lock         held while a job works in the folder (``FolderLock``)

Both the engine and Blender's side use these names and checks.

Locking: a job that writes styles.npz or deletes frames (generate, Update Frames) holds the
folder exclusively; jobs that only render frames of an existing styles.npz (``render --frames``,
the unit a render farm hands out) share it, so several run side by side on disjoint frames. The
lock is an OS file lock (``flock``, ``LockFileEx`` on Windows) on ``.traeumer.lock``: the system
releases it when its process dies, so a stale lock file is simply taken over. The file names its
holder (pid, host, job) for the message that refuses a second job.
"""

import json
import os
import re
import socket
import time

from .errors import TraeumerError

LOCK_NAME = ".traeumer.lock"

FRAME_PATTERN = "frame_{:06d}.png"
STYLES_NAME = "styles.npz"
DRAFT_DIR = "draft"
_FRAME_RE = re.compile(r"^frame_(\d{6,})\.png$")
# temporary files of frames and styles.npz being written (png.write_atomic names them)
_PARTIAL_RE = re.compile(r"^\.(frame_\d{6,}\.png|styles\.npz|curves\.npz)\..*\.tmp$")


def frame_names(out_dir) -> dict:
    """{file number: name} of the frame files in ``out_dir``."""
    try:
        names = os.listdir(os.fspath(out_dir))
    except OSError:
        return {}
    return {number: name for name in names if (number := frame_number(name)) is not None}


def frame_path(out_dir, index: int) -> str:
    """Path of frame ``index`` (0-based) in ``out_dir``: frame_000001.png for index 0."""
    return os.path.join(os.fspath(out_dir), FRAME_PATTERN.format(int(index) + 1))


def draft_dir(out_dir) -> str:
    """The folder of a job's draft frames (same numbering as the full-size frames)."""
    return os.path.join(os.fspath(out_dir), DRAFT_DIR)


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


def _writer_alive(temp_name: str) -> bool:
    """Whether another live process on this machine is writing this temporary file (its name
    carries the writer's pid: ``.<name>.<pid>.<token>.tmp``)."""
    try:
        pid = int(temp_name.rsplit(".", 3)[-3])
    except (ValueError, IndexError):
        return False
    if pid == os.getpid() or os.name == "nt":   # Windows: os.kill(pid, 0) would send Ctrl+C
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_frames(out_dir, indices) -> None:
    """Delete the frame files of frame indices ``indices`` (those that exist)."""
    for index in indices:
        try:
            os.unlink(frame_path(out_dir, index))
        except FileNotFoundError:
            pass


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
        if stale or (_PARTIAL_RE.match(name) and not _writer_alive(name)):
            try:
                os.unlink(os.path.join(os.fspath(out_dir), name))
            except OSError:
                pass


# ----------------------------------------------------------------------------- locking

if os.name == "nt":
    import msvcrt

    def _try_lock(fd, exclusive: bool) -> bool:
        # Windows has no shared byte-range lock through msvcrt: every lock is exclusive there
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
else:
    import fcntl

    def _try_lock(fd, exclusive: bool) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _holder_text(path) -> str:
    """Who holds a lock, from what its holder wrote into the lock file."""
    try:
        with open(path, encoding="utf-8") as stream:
            holder = json.loads(stream.read() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or not holder.get("pid"):
        return "frames being rendered by other jobs"
    since = time.strftime("%H:%M:%S", time.localtime(float(holder.get("since", 0) or 0)))
    return (f"{holder.get('job', 'a job')} (pid {holder.get('pid')} on {holder.get('host', '?')}, "
            f"since {since})")


class FolderLock:
    """``with FolderLock(out_dir, "generate"):`` holds the folder; TraeumerError naming the other
    job when it is held already. ``exclusive=False`` for jobs that only render frames."""

    def __init__(self, out_dir, job: str, exclusive: bool = True):
        self.path = os.path.join(os.fspath(out_dir), LOCK_NAME)
        self.job = job
        self.exclusive = exclusive
        self.fd = None

    def __enter__(self):
        for _attempt in range(20):
            try:
                # read-only: a job holds no file open for writing between its writes
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
            except OSError as error:
                raise TraeumerError(f"cannot lock the output folder {os.path.dirname(self.path)}: "
                                    f"{error.strerror}") from None
            if not _try_lock(fd, self.exclusive):
                os.close(fd)
                what = "is in use by" if self.exclusive else "is being rewritten by"
                raise TraeumerError(f"output folder {os.path.dirname(self.path)} {what} "
                                    f"{_holder_text(self.path)}; wait for it or cancel it")
            # the holder before us may have removed the file between our open and our lock
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if not same:
                _unlock(fd)
                os.close(fd)
                continue
            self.fd = fd
            if self.exclusive:
                record = {"pid": os.getpid(), "host": socket.gethostname(), "job": self.job, "since": time.time()}
                try:
                    with open(self.path, "w", encoding="utf-8") as stream:
                        json.dump(record, stream)
                except OSError as error:
                    self.__exit__()
                    raise TraeumerError(f"cannot lock the output folder {os.path.dirname(self.path)}: "
                                        f"{error.strerror}") from None
            return self
        raise TraeumerError(f"cannot lock the output folder {os.path.dirname(self.path)}: it keeps changing")

    def __exit__(self, *exc_info):
        if self.fd is None:
            return
        if self.exclusive:
            try:   # the next job creates a fresh file; nobody else can hold it now
                os.unlink(self.path)
            except OSError:
                pass
        _unlock(self.fd)
        os.close(self.fd)
        self.fd = None
