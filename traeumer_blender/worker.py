# SPDX-License-Identifier: GPL-3.0-or-later
"""The background worker the Blender extension talks to: ``python -m traeumer_blender worker``.

Protocol: one JSON object per line. Blender writes requests to the worker's stdin, the worker
answers with events on its stdout (its real stdout is kept for the protocol only; anything the
engine or torch prints goes to stderr). Every request carries an ``id``; events about a request
repeat it.

Requests::

    {"id": 1, "cmd": "ping"}
    {"id": 2, "cmd": "generate", "params": {...}}        # see pipeline_params()
    {"id": 3, "cmd": "update", "styles": PATH, "edits": PATH}
    {"id": 4, "cmd": "cancel"}                            # cancels the running job
    {"id": 5, "cmd": "shutdown"}
    {"id": 6, "cmd": "label_candidates" | "label_add" | "label_suggest" | "label_train", "params": {...}}
                                                          # labelling: see label_worker.py

Events::

    {"event": "ready", "pid": N, "protocol": 1, "version": "..."}       once, at start
    {"event": "pong", "id": 1}
    {"event": "progress", "id": 2, "stage": "...", "done": i, "total": n, "eta": seconds|null}
                      stages: load, decode, embed, style, render (done = frames written so far)
    {"event": "styles", "id": 2, "path": ".../styles.npz"}              styles are computed
    {"event": "done", "id": 2, "result": {...}}
    {"event": "cancelled", "id": 2}
    {"event": "error", "id": 2, "kind": "user"|"audio_unreadable"|"internal", "message": "..."}
    {"event": "bye", "reason": "shutdown"|"idle"|"stdin closed"}

One job runs at a time (a second job request while one runs is answered with an error). The
generator stays loaded between jobs; after ``--idle-timeout`` seconds without a request and
without a job the worker exits, which frees its (GPU) memory. It also exits when stdin closes,
so it never outlives Blender.
"""

import argparse
import json
import os
import queue
import sys
import threading
import time
import traceback

from . import __version__, label_worker
from .allocator import keep_freed_memory, release_freed_memory
from .errors import TraeumerError

PROTOCOL = 1


class Cancelled(Exception):
    """Raised inside a job when Blender asked to cancel it."""


class Channel:
    """Thread-safe writer of protocol events."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: str, **fields) -> None:
        fields["event"] = event
        line = json.dumps(fields, default=_json_default)
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
    def __init__(self, request_id, cmd, request):
        self.id = request_id
        self.cmd = cmd
        self.request = request
        self.cancel = threading.Event()


class Worker:
    def __init__(self, channel: Channel, idle_timeout: float):
        self.channel = channel
        self.idle_timeout = idle_timeout
        self.jobs = queue.Queue()
        self.current = None
        self.last_activity = time.monotonic()
        self.lock = threading.Lock()
        self.generators = {}   # (model, device, precision) -> generator, kept between jobs

    # --- the request loop (main thread) -------------------------------------------------------

    def serve(self, stream) -> None:
        self.channel.send("ready", pid=os.getpid(), protocol=PROTOCOL, version=__version__,
                          python=sys.executable)
        threading.Thread(target=self._job_loop, name="traeumer-job", daemon=True).start()
        threading.Thread(target=self._idle_watch, name="traeumer-idle", daemon=True).start()
        for line in stream:
            line = line.strip()
            if not line:
                continue
            self.last_activity = time.monotonic()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request must be a JSON object")
            except ValueError as error:
                self.channel.send("error", id=None, kind="internal", message=f"bad request: {error}")
                continue
            if self._handle(request) == "exit":
                return
        self._exit("stdin closed")

    def _handle(self, request):
        request_id = request.get("id")
        cmd = request.get("cmd")
        if cmd == "ping":
            self.channel.send("pong", id=request_id, busy=self.current is not None)
        elif cmd == "cancel":
            with self.lock:
                job = self.current
            if job is not None:
                job.cancel.set()
        elif cmd == "shutdown":
            with self.lock:
                job = self.current
            if job is not None:
                job.cancel.set()
                deadline = time.monotonic() + 10
                while self.current is not None and time.monotonic() < deadline:
                    time.sleep(0.05)
            self._exit("shutdown")
            return "exit"
        elif cmd in ("generate", "update") or cmd in label_worker.COMMANDS:
            with self.lock:
                busy = self.current is not None or not self.jobs.empty()
            if busy:
                self.channel.send("error", id=request_id, kind="user",
                                  message="the worker is busy with another job; cancel it first")
            else:
                with self.lock:
                    job = Job(request_id, cmd, request)
                    self.current = job
                self.jobs.put(job)
        else:
            self.channel.send("error", id=request_id, kind="internal", message=f"unknown command {cmd!r}")
        return None

    def _exit(self, reason: str) -> None:
        self.channel.send("bye", reason=reason)
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
            with self.lock:
                self.current = job
            event, fields = self._run_job(job)
            # the worker is free before Blender hears the outcome, so a follow-up job is accepted
            with self.lock:
                self.current = None
            self.last_activity = time.monotonic()
            self.channel.send(event, id=job.id, **fields)
            release_freed_memory()                             # an idle worker keeps its models only

    def _run_job(self, job):
        """(event, fields) of a job's outcome."""
        try:
            if job.cancel.is_set():
                raise Cancelled()
            if job.cmd in label_worker.COMMANDS:  # labelling requests: label_worker.py
                progress, _styles_ready, cancel = self._reporters(job)
                return "done", {"result": label_worker.run(job.cmd, job.request, progress, cancel)}
            if job.cmd == "generate":
                return "done", {"result": self._generate(job)}
            return "done", {"result": self._update(job)}
        except Cancelled:
            return "cancelled", {}
        except AudioUnreadable as error:
            return "error", {"kind": "audio_unreadable", "message": str(error)}
        except TraeumerError as error:
            return "error", {"kind": "user", "message": str(error)}
        except MemoryError:
            return "error", {"kind": "user", "message": "out of memory: try a smaller size or the CPU"}
        except ImportError as error:
            missing = getattr(error, "name", None) or str(error)
            return "error", {"kind": "user", "message": (
                f"the worker's Python ({sys.executable}) cannot import {missing}: install the extension "
                f"zip made for your platform (it bundles torch), or set Preferences > Worker Python to a "
                f"Python that has it")}
        except Exception as error:  # a bug (report it, keep serving), or the pipeline's Cancelled
            if _is_pipeline_cancel(error):
                return "cancelled", {}
            traceback.print_exc()
            return "error", {"kind": "internal", "message": f"internal error: {type(error).__name__}: {error}"}

    def _reporters(self, job):
        """Callbacks handed to the engine: progress events and the cancel flag."""

        def progress(stage, done=0, total=0, eta=None):
            self.channel.send("progress", id=job.id, stage=str(stage), done=int(done), total=int(total),
                              eta=None if eta is None else float(eta))

        def styles_ready(path):
            self.channel.send("styles", id=job.id, path=os.fspath(path))

        return progress, styles_ready, job.cancel

    def _generate(self, job):
        params = job.request.get("params") or {}
        progress, styles_ready, cancel = self._reporters(job)
        check_audio(params.get("audio") or "")
        return run_generate(params, progress=progress, styles_ready=styles_ready, cancel=cancel)

    def _update(self, job):
        from . import style_edit
        progress, _styles_ready, cancel = self._reporters(job)
        return style_edit.update_frames(job.request["styles"], job.request["edits"], progress=progress,
                                        cancel=cancel, device=job.request.get("device") or "auto")


def _is_pipeline_cancel(error) -> bool:
    """The pipeline's own Cancelled (imported lazily: "ready" must not wait for numpy/scipy)."""
    from .pipeline import Cancelled as PipelineCancelled

    return isinstance(error, PipelineCancelled)


class AudioUnreadable(TraeumerError):
    """The audio file exists but this Python cannot decode it (Blender then decodes it)."""


def check_audio(path: str) -> None:
    """Fail early and precisely: a missing file is the user's, an undecodable one goes back to
    Blender, whose own decoder (FFmpeg) reads more formats than libsndfile (AAC in MP4 ...)."""
    if not path or not os.path.isfile(path):
        raise TraeumerError(f"audio file not found: {path or '(none)'}")
    if os.path.getsize(path) == 0:
        raise TraeumerError(f"audio file is empty (0 bytes): {path}")
    import soundfile

    try:
        info = soundfile.info(path)
        if info.frames == 0 or info.samplerate <= 0:
            raise RuntimeError("no samples")
    except Exception as error:  # libsndfile's errors have several types across versions
        detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise AudioUnreadable(f"cannot decode audio file {path} with libsndfile ({detail})") from None


def generate_settings(params: dict):
    """The pipeline's GenerateSettings from a generate request's ``params``.

    params: audio, out_dir, fps ("num/den"), start, duration (s), model ("default" or a file),
    mapper (file or ""), size (0: the model's own), smoothing [3], truncation, seed, device.
    """
    from . import pipeline

    size = int(params.get("size") or 0)
    return pipeline.GenerateSettings(
        audio=params["audio"], out_dir=params["out_dir"],
        model=params.get("model") or "default", mapper=params.get("mapper") or None,
        fps=params.get("fps", "30"), start=float(params.get("start", 0.0)),
        duration=None if params.get("duration") is None else float(params["duration"]),
        seed=int(params.get("seed", 0)), truncation=float(params.get("truncation", 1.0)),
        smoothing=tuple(float(v) for v in params.get("smoothing", (3.0, 2.0, 0.3))),
        resolution=size or None, device=params.get("device") or "auto",
    )


def run_generate(params: dict, progress, styles_ready, cancel) -> dict:
    """Run the pipeline for one generate request; returns the "done" event's result."""
    from . import pipeline, style_edit

    settings = generate_settings(params)
    # frames re-rendered from edited curves no longer match styles.npz: render them again
    style_edit.forget_edits(settings.out_dir)
    styles_path = os.path.join(os.fspath(settings.out_dir), pipeline.STYLES_NAME)
    announced = []

    def on_progress(event):
        # styles.npz is saved just before the render stage starts
        if event.stage == "render" and not announced:
            announced.append(True)
            styles_ready(styles_path)
        progress(event.stage, event.done, event.total, event.eta_seconds)

    try:
        result = pipeline.run_generate(settings, progress=on_progress, cancel=cancel)
    except pipeline.Cancelled:
        raise Cancelled() from None
    if not announced:
        styles_ready(result.styles_path)
    return {
        "out_dir": result.out_dir, "styles_path": result.styles_path, "frame_count": result.frame_count,
        "frames_rendered": result.frames_rendered, "frames_reused": result.frames_reused,
        "fps": [result.fps.numerator, result.fps.denominator], "start": result.start,
        "duration": result.duration, "resolution": result.resolution,
        "styles_reused": result.styles_reused, "seconds": result.seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traeumer_blender worker",
                                     description="Background worker of the Blender extension (JSON lines).")
    parser.add_argument("--idle-timeout", type=float, default=600.0,
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
