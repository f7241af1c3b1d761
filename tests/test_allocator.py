# SPDX-License-Identifier: GPL-3.0-or-later
"""allocator.py: freed memory is kept for reuse during a job and handed back after it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh process (the settings are process-wide): allocate and touch 3 blocks of 128 MB
# in a thread and 5 blocks of 64 MB in the main thread (above glibc's default mmap threshold of
# at most 32 MB, so they would be unmapped on free), free them, and read the resident memory
# after each step.
CHILD = r"""
import json, sys
import numpy as np
from traeumer_blender.allocator import keep_freed_memory, release_freed_memory

def resident_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

kept = keep_freed_memory()
again = keep_freed_memory()
# blocks freed in another thread (its own arena would mmap blocks above 64 MB whatever the
# threshold), then handed back before the main thread's turn
import threading
thread_mb = {}
def in_thread():
    start = resident_mb()
    blocks = [np.ones(32 * 1024 * 1024, dtype=np.float32) for _ in range(3)]
    del blocks
    thread_mb["kept"] = resident_mb() - start
worker = threading.Thread(target=in_thread)
worker.start()
worker.join()
release_freed_memory()
before = resident_mb()
blocks = [np.ones(16 * 1024 * 1024, dtype=np.float32) for _ in range(5)]
touched = resident_mb()
del blocks
after_free = resident_mb()
released = release_freed_memory()
after_release = resident_mb()
print(json.dumps(dict(kept=kept, again=again, before=before, touched=touched,
                      after_free=after_free, released=released, after_release=after_release,
                      thread_kept=thread_mb["kept"])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_freed_memory_is_kept_during_a_job_and_released_after():
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["kept"] is True and m["again"] is True
    assert m["touched"] - m["before"] > 300                        # 320 MB were touched
    assert m["after_free"] - m["before"] > 250                     # freed but kept for reuse
    assert m["thread_kept"] > 300                                  # a thread's 3 x 128 MB too
    assert m["released"] is True
    assert m["after_free"] - m["after_release"] > 250              # handed back
