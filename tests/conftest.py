# SPDX-License-Identifier: GPL-3.0-or-later
"""Collection rules shared by every test module.

The Blender 5.2 environment (``.venv52``, Python 3.13) has no torch, scipy or soundfile: there
only the Blender tests run (``-m blender``), with the worker on another Python (see
``blender_harness.TEST_WORKER_PYTHON``). Modules without Blender tests import the engine's
packages at import time, so they are not collected in such an environment.
"""

import importlib.util

ENGINE_PACKAGES = ("torch", "scipy", "soundfile")
HAS_ENGINE_PACKAGES = all(importlib.util.find_spec(name) is not None for name in ENGINE_PACKAGES)


def pytest_ignore_collect(collection_path, config):
    if HAS_ENGINE_PACKAGES or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if "pytest.mark.blender" in collection_path.read_text(encoding="utf-8"):
        return None
    return True
