# SPDX-License-Identifier: GPL-3.0-or-later
"""Run test scripts inside real Blender (the bpy module) in a fresh process each.

Every script runs with ``BLENDER_USER_RESOURCES`` in a throw-away folder, so nothing touches
the user's own Blender configuration, and ends with ``os._exit`` after flushing: bpy 4.5 can
hang at interpreter exit while Python-registered classes are still registered.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"
RESULT_MARK = "TRAEUMER_RESULT "

# The Python that runs the worker where Blender's own Python has no torch (the bpy 5.2 run of
# ./run.sh test sets it to .venv's Python). Scripts in Blender set the Worker Python preference
# to it (blender_support); runs of traeumer_run.py, which have no saved preferences, get it
# through the TRAEUMER_WORKER_PYTHON environment variable (worker_python_env).
TEST_WORKER_PYTHON = os.environ.get("TRAEUMER_TEST_WORKER_PYTHON", "")


def worker_python_env() -> dict:
    """Environment for a traeumer_run.py process: the test run's worker Python, if any."""
    return {"TRAEUMER_WORKER_PYTHON": TEST_WORKER_PYTHON} if TEST_WORKER_PYTHON else {}

_PREAMBLE = """\
import json, os, sys, traceback
sys.path.insert(0, {tests_dir!r})
def emit(**values):
    print({mark!r} + json.dumps(values), flush=True)
try:
    import bpy
    exec(compile({body!r}, "blender_test_script", "exec"), globals())
except BaseException:
    traceback.print_exc()
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(1)
sys.stdout.flush(); sys.stderr.flush()
os._exit(0)
"""


def run_in_blender(body: str, user_dir: Path, timeout: float = 300, env=None, python=None) -> dict:
    """Run ``body`` (Python source using ``bpy``) in a new Blender process; return what it emitted.

    The script calls ``emit(key=value, ...)`` to hand results back; emitted dicts are merged.
    A failing script (exception, crash, hang) fails the calling test with the process output.
    """
    user_dir.mkdir(parents=True, exist_ok=True)
    script = user_dir / "blender_test_script.py"
    script.write_text(_PREAMBLE.format(tests_dir=str(TESTS_DIR), mark=RESULT_MARK,
                                       body=textwrap.dedent(body)))
    process_env = dict(os.environ)
    process_env["BLENDER_USER_RESOURCES"] = str(user_dir / "blender_user")
    process_env.setdefault("TRAEUMER_CACHE_DIR", str(user_dir / "cache"))
    process_env.update(env or {})
    try:
        completed = subprocess.run([python or sys.executable, str(script)], capture_output=True,
                                   text=True, timeout=timeout, env=process_env, cwd=str(user_dir))
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"Blender script timed out after {timeout} s\n{error.stdout}\n{error.stderr}")
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        pytest.fail(f"Blender script failed (exit {completed.returncode}):\n{output[-8000:]}")
    results = {}
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            results.update(json.loads(line[len(RESULT_MARK):]))
    results["_output"] = output
    return results


def build_extension_zip(out_dir: Path) -> Path:
    """Build the extension zip from the source tree with Blender's own builder (via build.py)."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import build
    finally:
        sys.path.pop(0)
    return build.build_zip(out_dir)
