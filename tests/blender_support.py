# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers imported by scripts that run inside Blender (see blender_harness.run_in_blender)."""

import importlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import addon_utils
import bpy

EXTENSION_ID = "traeumer"
ZIP_MODULE = f"bl_ext.user_default.{EXTENSION_ID}"
SOURCE_REPO_MODULE = "traeumer_source"
SOURCE_MODULE = f"bl_ext.{SOURCE_REPO_MODULE}.{EXTENSION_ID}"

# Where Blender's own Python has no torch (bpy 5.2, Python 3.13, in this project's test set-up),
# the worker runs on this Python: set through the Worker Python preference, as a user would.
TEST_WORKER_PYTHON = os.environ.get("TRAEUMER_TEST_WORKER_PYTHON", "")


class _TorchImportWatch:
    """Records every attempt to import torch in Blender's process (and lets the import go on).

    "Blender's process never imports torch" then means something also where torch is not
    installed at all (bpy 5.2 here): nothing even tries."""

    attempts = []

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            self.attempts.append(name)
        return None


if not any(isinstance(finder, _TorchImportWatch) for finder in sys.meta_path):
    sys.meta_path.insert(0, _TorchImportWatch())


def torch_imported() -> bool:
    """Whether anything in Blender's process imported torch or tried to."""
    return "torch" in sys.modules or bool(_TorchImportWatch.attempts)


def use_test_worker_python(module_name: str) -> None:
    """Point the Worker Python preference at ``TEST_WORKER_PYTHON`` when the test run sets one."""
    if TEST_WORKER_PYTHON:
        bpy.context.preferences.addons[module_name].preferences.worker_python = TEST_WORKER_PYTHON


def install_zip(zip_path) -> str:
    """Install and enable a built zip the way a user does; returns the add-on module name."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    assert ZIP_MODULE in bpy.context.preferences.addons, "installed extension is not enabled"
    use_test_worker_python(ZIP_MODULE)
    return ZIP_MODULE


def enable_from_source(source_root) -> str:
    """Add a local extension repository holding the source tree (through a link) and enable it.

    The repository folder must contain a folder named after the extension id, so it links
    ``<tmp>/traeumer`` to the checkout, whatever the checkout's own folder name is.
    """
    repo_dir = Path(tempfile.mkdtemp(prefix="traeumer_repo_"))
    os.symlink(str(source_root), repo_dir / EXTENSION_ID, target_is_directory=True)
    repos = bpy.context.preferences.extensions.repos
    repos.new(name="TräumerAI source", module=SOURCE_REPO_MODULE, custom_directory=str(repo_dir),
              source="USER")
    bpy.ops.extensions.repo_refresh_all()
    addon_utils.enable(SOURCE_MODULE, default_set=True, handle_error=_raise)
    assert SOURCE_MODULE in bpy.context.preferences.addons
    use_test_worker_python(SOURCE_MODULE)
    return SOURCE_MODULE


def _raise(error):
    raise error


def pause_process(pid: int, timeout: float = 10.0) -> None:
    """SIGSTOP a process and wait until the kernel reports it stopped (state T in /proc).

    From then on it writes nothing more: tests that cancel or kill a worker on a progress event
    look at its output while it is stopped, so a fast worker cannot finish in between.
    """
    os.kill(pid, signal.SIGSTOP)
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    while stat.exists() and time.monotonic() < deadline:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        if state in ("Z", "X"):
            raise AssertionError(f"process {pid} exited instead of stopping")
        time.sleep(0.0005)
    if not stat.exists():
        time.sleep(0.05)   # no /proc: give the signal time to land
        return
    raise AssertionError(f"process {pid} did not stop within {timeout} s")


def resume_process(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


def extension_module(module_name: str, submodule: str = ""):
    return importlib.import_module(f"{module_name}.{submodule}" if submodule else module_name)


REGISTERED_CLASS_NAMES = ("TRAEUMER_PT_generate", "TRAEUMER_OT_use_active_strip", "TRAEUMER_PG_settings")


def registered_names() -> dict:
    """What of the extension is registered in Blender right now."""
    return {
        "classes": [name for name in REGISTERED_CLASS_NAMES if _class_registered(name)],
        "operator": hasattr(bpy.ops.traeumer, "use_active_strip")
        and _operator_exists("traeumer.use_active_strip"),
        "scene_property": hasattr(bpy.types.Scene, "traeumer"),
    }


def _class_registered(name: str) -> bool:
    """Panels and operators appear in ``bpy.types``; property groups only as registered subclasses."""
    if hasattr(bpy.types, name):
        return True
    return any(cls.__name__ == name and getattr(cls, "is_registered", False)
               for cls in bpy.types.PropertyGroup.__subclasses__())


def _operator_exists(idname: str) -> bool:
    module, name = idname.split(".")
    try:
        getattr(getattr(bpy.ops, module), name).get_rna_type()
        return True
    except (KeyError, AttributeError):
        return False
