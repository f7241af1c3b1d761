# SPDX-License-Identifier: GPL-3.0-or-later
"""The background worker the Blender extension talks to: ``python -m traeumer_blender worker``.

The requests and events are in ``protocol.py``. The worker's real stdout carries the protocol
only; anything the engine or torch prints goes to stderr. One job runs at a time (a second job
request while one runs is answered with an error); ping, cancel and shutdown are answered at
once. Every job request goes through one handler table (``JOB_HANDLERS``): a handler gets the
request's checked params and the job (progress, styles announcement, cancel flag) and returns
the "done" event's result. The generator stays loaded between jobs; after ``--idle-timeout``
seconds without a request and without a job the worker exits, which frees its (GPU) memory. It
also exits when stdin closes, so it never outlives Blender.

Only the standard library is imported before "ready" (the worker must answer fast); handlers
import the engine lazily.
"""

import argparse
import os
import queue
import sys
import threading
import time
import traceback

from . import __version__, label_worker, protocol
from .allocator import keep_freed_memory, release_freed_memory
from .errors import TraeumerError
from .progress import Cancelled, Progress


class Channel:
    """Thread-safe writer of protocol events."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, name: str, **fields) -> None:
        line = protocol.encode_event(protocol.event(name, **fields), default=_json_default)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # Blender went away: nothing left to tell anybody
                os._exit(0)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


class Job:
    """One job request being run: what its handler gets besides the params."""

    def __init__(self, channel: Channel, request_id, cmd: str, params: dict):
        self.channel = channel
        self.id = request_id
        self.cmd = cmd
        self.params = params
        self.cancel = threading.Event()

    def progress(self, event: Progress) -> None:
        """The engine's progress callback: each Progress becomes a progress event."""
        extra = {"frames": list(event.frames)} if event.frames else {}
        self.channel.send(protocol.PROGRESS, id=self.id, stage=str(event.stage), done=int(event.done),
                          total=int(event.total),
                          eta=None if event.eta_seconds is None else float(event.eta_seconds), **extra)

    def styles_ready(self, path) -> None:
        self.channel.send(protocol.STYLES, id=self.id, path=os.fspath(path))


class Worker:
    def __init__(self, channel: Channel, idle_timeout: float):
        self.channel = channel
        self.idle_timeout = idle_timeout
        self.jobs = queue.Queue()
        self.current = None
        self.last_activity = time.monotonic()
        self.lock = threading.Lock()

    # --- the request loop (main thread) -------------------------------------------------------

    def serve(self, stream) -> None:
        self.channel.send(protocol.READY, pid=os.getpid(), protocol=protocol.PROTOCOL_VERSION,
                          version=__version__, python=sys.executable)
        threading.Thread(target=self._job_loop, name="traeumer-job", daemon=True).start()
        threading.Thread(target=self._idle_watch, name="traeumer-idle", daemon=True).start()
        for line in stream:
            line = line.strip()
            if not line:
                continue
            self.last_activity = time.monotonic()
            try:
                request_id, cmd, params = protocol.parse_request(line)
            except protocol.ProtocolError as error:
                self.channel.send(protocol.ERROR, id=error.request_id, kind=protocol.ERROR_USER,
                                  message=f"bad request: {error}")
                continue
            if self._handle(request_id, cmd, params) == "exit":
                return
        self._exit("stdin closed")

    def _handle(self, request_id, cmd, params):
        if cmd == protocol.PING:
            self.channel.send(protocol.PONG, id=request_id, busy=self.current is not None)
        elif cmd == protocol.CANCEL:
            with self.lock:
                job = self.current
            if job is not None:
                job.cancel.set()
        elif cmd == protocol.SHUTDOWN:
            with self.lock:
                job = self.current
            if job is not None:
                job.cancel.set()
                deadline = time.monotonic() + 10
                while self.current is not None and time.monotonic() < deadline:
                    time.sleep(0.05)
            self._exit("shutdown")
            return "exit"
        else:  # a job request (parse_request knows only the protocol's requests)
            with self.lock:
                busy = self.current is not None
                if not busy:
                    self.current = Job(self.channel, request_id, cmd, params)
                    self.jobs.put(self.current)
            if busy:
                self.channel.send(protocol.ERROR, id=request_id, kind=protocol.ERROR_USER,
                                  message="the worker is busy with another job; cancel it first")
        return None

    def _exit(self, reason: str) -> None:
        self.channel.send(protocol.BYE, reason=reason)
        sys.stderr.flush()
        os._exit(0)

    def _idle_watch(self) -> None:
        if not self.idle_timeout or self.idle_timeout <= 0:
            return
        while True:
            time.sleep(min(1.0, self.idle_timeout / 4))
            if self.current is None and time.monotonic() - self.last_activity > self.idle_timeout:
                self._exit("idle")

    # --- jobs (job thread) ------------------------------------------------------------------

    def _job_loop(self) -> None:
        while True:
            job = self.jobs.get()
            name, fields = run_job(job)
            # the worker is free before Blender hears the outcome, so a follow-up job is accepted
            with self.lock:
                self.current = None
            self.last_activity = time.monotonic()
            self.channel.send(name, id=job.id, **fields)
            release_freed_memory()                             # an idle worker keeps its models only


def run_job(job: Job):
    """(event name, fields) of a job's outcome."""
    try:
        if job.cancel.is_set():
            raise Cancelled()
        return protocol.DONE, {"result": JOB_HANDLERS[job.cmd](job.params, job)}
    except Cancelled:
        return protocol.CANCELLED, {}
    except AudioUnreadable as error:
        return protocol.ERROR, {"kind": protocol.ERROR_AUDIO_UNREADABLE, "message": str(error)}
    except TraeumerError as error:
        return protocol.ERROR, {"kind": protocol.ERROR_USER, "message": str(error)}
    except MemoryError:
        return protocol.ERROR, {"kind": protocol.ERROR_USER,
                                "message": "out of memory: try a smaller resolution or the CPU"}
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        return protocol.ERROR, {"kind": protocol.ERROR_USER, "message": (
            f"the worker's Python ({sys.executable}) cannot import {missing}: install the extension "
            f"zip made for your platform (it bundles torch), or set Preferences > Worker Python to a "
            f"Python that has it")}
    except Exception as error:  # a bug: report it, keep serving
        traceback.print_exc()
        return protocol.ERROR, {"kind": protocol.ERROR_INTERNAL,
                                "message": f"internal error: {type(error).__name__}: {error}"}


class AudioUnreadable(TraeumerError):
    """The audio file exists but this Python cannot decode it (Blender then decodes it)."""


def check_audio(path: str) -> None:
    """Fail early and precisely: a missing file is the user's, an undecodable one goes back to
    Blender, whose own decoder (FFmpeg) reads more formats than libsndfile (AAC in MP4 ...)."""
    if not path:
        raise TraeumerError("audio file not found: (none)")
    from .audio import check_audio_path

    check_audio_path(path)
    import soundfile

    try:
        info = soundfile.info(path)
        if info.frames == 0 or info.samplerate <= 0:
            raise RuntimeError("no samples")
    except Exception as error:  # libsndfile's errors have several types across versions
        detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise AudioUnreadable(f"cannot decode audio file {path} with libsndfile ({detail})") from None


def generate_settings(params: dict):
    """The pipeline's GenerateSettings from a generate request's checked params (same names)."""
    from .pipeline import GenerateSettings

    settings = dict(params)
    settings["mapper"] = params["mapper"] or None        # "": the zero-label mapping
    settings["resolution"] = params["resolution"] or None  # 0 / None: the model's own
    settings["smoothing"] = tuple(params["smoothing"])
    settings["first_frames"] = frame_ranges_param(params["first_frames"])
    return GenerateSettings(**settings)


def frame_ranges_param(flat):
    """[first, end, first, end, ...] (the protocol's flattened pairs) -> [(first, end), ...]."""
    if flat is None:
        return None
    if len(flat) % 2 or not all(float(v).is_integer() for v in flat):
        raise TraeumerError("first_frames must be pairs of whole frame numbers [first, end, ...]")
    return [(int(flat[k]), int(flat[k + 1])) for k in range(0, len(flat), 2)]


def handle_generate(params: dict, job: Job) -> dict:
    """Music -> frames (pipeline.run_generate); styles are announced as soon as they exist."""
    from . import pipeline
    from .output_folder import STYLES_NAME

    check_audio(params["audio"])
    settings = generate_settings(params)
    styles_path = os.path.join(os.fspath(settings.out_dir), STYLES_NAME)
    announced = []

    def on_progress(event):
        # styles.npz is saved just before the draft or render stage starts
        if event.stage in ("draft", "render") and not announced:
            announced.append(True)
            job.styles_ready(styles_path)
        job.progress(event)

    result = pipeline.run_generate(settings, progress=on_progress, cancel=job.cancel)
    if not announced:
        job.styles_ready(result.styles_path)
    return {
        "out_dir": result.out_dir, "styles_path": result.styles_path, "frame_count": result.frame_count,
        "frames_rendered": result.frames_rendered, "frames_reused": result.frames_reused,
        "fps": [result.fps.numerator, result.fps.denominator], "start": result.start,
        "duration": result.duration, "resolution": result.resolution, "width": result.width,
        "draft_size": result.draft_size, "draft_width": result.draft_width, "notes": list(result.notes),
        "styles_reused": result.styles_reused, "seconds": result.seconds,
    }


def handle_update(params: dict, job: Job) -> dict:
    """Re-render the frames whose style curves were edited (style_edit.update_frames)."""
    from . import style_edit

    return style_edit.update_frames(params["styles_path"], params["edits_path"], progress=job.progress,
                                    cancel=job.cancel, device=params["device"],
                                    section_starts=params["section_starts"], draft=params["draft"])


JOB_HANDLERS = {
    protocol.GENERATE: handle_generate,
    protocol.UPDATE: handle_update,
    protocol.LABEL_CANDIDATES: label_worker.handle_candidates,
    protocol.LABEL_ADD: label_worker.handle_add,
    protocol.LABEL_SUGGEST: label_worker.handle_suggest,
    protocol.LABEL_TRAIN: label_worker.handle_train,
}
assert set(JOB_HANDLERS) == set(protocol.JOB_REQUESTS)


def use_extension_wheels(environ=os.environ) -> str:
    """Append the extension's bundled wheels (``TRAEUMER_EXTENSION_WHEELS``, a
    ``.../lib/pythonX.Y/site-packages`` folder) to ``sys.path`` when they were made for this
    Python: after its own packages, so an interpreter's own torch (a CUDA build) wins. Returns
    the folder used, or ""."""
    folder = environ.get("TRAEUMER_EXTENSION_WHEELS", "")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not folder or not os.path.isdir(folder) or os.path.basename(os.path.dirname(folder.rstrip(os.sep))) != version:
        return ""
    if folder not in sys.path:
        sys.path.append(folder)
    return folder


def main(argv=None) -> int:
    use_extension_wheels()
    parser = argparse.ArgumentParser(prog="python -m traeumer_blender worker",
                                     description="Background worker of the Blender extension (JSON lines).")
    parser.add_argument("--idle-timeout", type=float, default=protocol.DEFAULT_IDLE_TIMEOUT_SECONDS,
                        help="exit after this many idle seconds (0: never)")
    args = parser.parse_args(argv)
    keep_freed_memory()
    # keep the real stdout for the protocol; everything else printed lands on stderr
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stream = os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)
    worker = Worker(Channel(stream), args.idle_timeout)
    worker.serve(sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
