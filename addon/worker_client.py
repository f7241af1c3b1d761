# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender's end of the background worker (``traeumer_blender/worker.py``).

The worker is a separate Python process: torch never enters Blender's own process. It is
started on demand, kept alive between jobs (the model stays loaded), stopped when the extension
is disabled or Blender quits, and stops itself after an idle timeout. Two reader threads turn
its stdout into a queue of events and keep the tail of its stderr for error reports, so nothing
here ever blocks Blender's UI: callers poll the queue (a timer, a modal operator) or, in
background mode where nothing else runs, wait on it.
"""

import atexit
import collections
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time

import bpy

from ..traeumer_blender import protocol
from .extension import EXTENSION_ROOT, user_folder

WORKER_MODULE = "traeumer_blender.worker"

# The worker's Python when the Worker Python preference is empty or absent: scripted runs
# (traeumer_run.py, a render farm) often have no saved preferences for the extension.
WORKER_PYTHON_VARIABLE = "TRAEUMER_WORKER_PYTHON"


def default_python() -> str:
    """``TRAEUMER_WORKER_PYTHON`` when set, else ``sys.executable``."""
    return os.environ.get(WORKER_PYTHON_VARIABLE) or sys.executable


def extension_site_packages() -> str:
    """The shared site-packages where Blender unpacks the wheels of enabled extensions."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    try:
        return bpy.utils.user_resource("EXTENSIONS", path=os.path.join(".local", "lib", version, "site-packages"))
    except (ValueError, RuntimeError, TypeError):
        return ""


def user_cache_dir() -> str:
    """The engine's cache folder inside the extension's user directory ("" outside extensions)."""
    return user_folder("cache")


def worker_launch_command(python: str = "", idle_timeout: float = protocol.DEFAULT_IDLE_TIMEOUT_SECONDS):
    """How the worker is started: ``(argv, env)``.

    - Python: the preference, else ``TRAEUMER_WORKER_PYTHON``, else ``sys.executable`` (Blender's
      own Python in Blender; the venv's Python under the bpy module).
    - ``PYTHONPATH``: the extension's own folder (so ``traeumer_blender`` imports), then whatever
      the user had.
    - ``TRAEUMER_EXTENSION_WHEELS``: the extensions' site-packages (the bundled wheels: torch,
      soundfile, scipy ...). The worker appends it to ``sys.path`` (``worker.use_extension_wheels``)
      when its Python version is the wheels' own: after the interpreter's own packages, so a Worker
      Python with its own (CUDA) torch keeps it, and Blender's Python, which has none, uses the
      bundled one.
    - ``TRAEUMER_CACHE_DIR``: the extension's user folder, unless already set.
    """
    executable = python or default_python()
    # "-c" rather than "-m": the worker module is imported once, under its own name
    argv = [executable, "-u", "-c", f"import sys; from {WORKER_MODULE} import main; sys.exit(main(sys.argv[1:]))",
            "--idle-timeout", f"{float(idle_timeout):g}"]
    env = dict(os.environ)
    paths = [EXTENSION_ROOT]
    site_packages = extension_site_packages()
    if site_packages and os.path.isdir(site_packages):
        env["TRAEUMER_EXTENSION_WHEELS"] = site_packages
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    if executable != sys.executable:
        env.pop("PYTHONHOME", None)  # Blender's own home would confuse another Python
    if not env.get("TRAEUMER_CACHE_DIR"):
        cache = user_cache_dir()
        if cache:
            env["TRAEUMER_CACHE_DIR"] = cache
    return argv, env


class WorkerDied(RuntimeError):
    pass


class WorkerClient:
    """One running worker process and the queue of its events."""

    def __init__(self, python: str = "", idle_timeout: float = protocol.DEFAULT_IDLE_TIMEOUT_SECONDS):
        argv, env = worker_launch_command(python, idle_timeout)
        self.argv = argv
        self.events = queue.Queue()
        self.stderr_tail = collections.deque(maxlen=60)
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self.ready = {}   # the worker's "ready" event: pid, protocol, version, python
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, cwd=EXTENSION_ROOT, text=True, encoding="utf-8", errors="replace", bufsize=1,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except OSError as error:
            raise WorkerDied(f"cannot start the worker with {argv[0]}: {error}") from None
        self.pid = self.process.pid
        threading.Thread(target=self._read_stdout, name="traeumer-worker-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="traeumer-worker-err", daemon=True).start()

    # --- reader threads -----------------------------------------------------------------------

    def _read_stdout(self):
        stream = self.process.stdout
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.stderr_tail.append(line)
                continue
            if isinstance(event, dict) and "event" in event:
                self.events.put(event)
        code = self.process.wait()
        time.sleep(0.05)  # let the stderr reader catch the last words
        self.events.put(protocol.event(protocol.EXIT, returncode=code, stderr=self.stderr_text()))

    def _read_stderr(self):
        for line in self.process.stderr:
            self.stderr_tail.append(line.rstrip("\n"))

    def stderr_text(self, lines: int = 12) -> str:
        return "\n".join(list(self.stderr_tail)[-lines:])

    # --- requests -----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, cmd: str, **params) -> int:
        """Send request ``cmd`` (built and checked by ``protocol.build_request``); its id."""
        request = protocol.build_request(cmd, **params)
        request_id = request["id"] = next(self._ids)
        line = json.dumps(request) + "\n"
        with self._write_lock:
            try:
                self.process.stdin.write(line)
                self.process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                raise WorkerDied(self.death_message()) from None
        return request_id

    def poll(self):
        """Every event received so far, without waiting."""
        events = []
        while True:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                return events

    def wait(self, timeout: float):
        """The next event, or ``None`` after ``timeout`` seconds."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def death_message(self) -> str:
        code = self.process.poll()
        tail = self.stderr_text(6)
        text = "the background worker stopped unexpectedly"
        if code is not None:
            text += f" (exit code {code})"
        return text + (f": {tail}" if tail else "")

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to quit; kill it when it does not within ``timeout`` seconds."""
        if self.alive:
            try:
                self.send(protocol.SHUTDOWN)
            except WorkerDied:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipes()

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _close_pipes(self):
        try:
            self.process.stdin.close()
        except (OSError, ValueError):
            pass


_client = None


def current_client():
    """The running worker, or ``None``."""
    return _client if _client is not None and _client.alive else None


def ensure_client(python: str = "", idle_timeout: float = protocol.DEFAULT_IDLE_TIMEOUT_SECONDS, timeout: float = 120.0) -> WorkerClient:
    """The running worker, or a new one once it said "ready".

    A worker started with another Python is replaced. The handshake wait blocks, but a worker
    reaches "ready" after importing only the standard library (well under a second).
    """
    global _client
    executable = python or default_python()
    if _client is not None and _client.alive and _client.argv[0] == executable:
        return _client
    stop_worker()
    client = WorkerClient(python, idle_timeout)
    deadline = time.monotonic() + timeout
    while True:
        event = client.wait(max(0.0, min(1.0, deadline - time.monotonic())))
        if event is not None and event.get("event") == protocol.READY:
            client.ready = event
            if event.get("protocol") != protocol.PROTOCOL_VERSION:
                client.kill()
                raise WorkerDied(f"the worker ({executable}) speaks protocol {event.get('protocol')}, "
                                 f"this extension {protocol.PROTOCOL_VERSION}: it runs another version "
                                 f"of the extension's code")
            break
        if event is not None and event.get("event") == protocol.EXIT:
            raise WorkerDied(f"the worker could not start ({executable}): "
                             f"{event.get('stderr') or 'exit code %s' % event.get('returncode')}")
        if time.monotonic() > deadline:
            client.kill()
            raise WorkerDied(f"the worker did not answer within {timeout:.0f} s ({executable})")
    _client = client
    return client


def stop_worker() -> None:
    """Stop the worker if one runs (extension disabled, Blender quitting, Stop Worker)."""
    global _client
    client, _client = _client, None
    if client is not None:
        client.stop(timeout=1.0)


def kill_worker() -> None:
    global _client
    client, _client = _client, None
    if client is not None:
        client.kill()


def register():
    atexit.register(stop_worker)


def unregister():
    stop_worker()
    atexit.unregister(stop_worker)
