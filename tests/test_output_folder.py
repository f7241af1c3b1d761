# SPDX-License-Identifier: GPL-3.0-or-later
"""The output folder under hostile conditions (issue #12): two jobs at once, frames of other
settings, someone else's files, a full or read-only disk, a damaged curves file.

Run through the CLI as a user meets it: bad situations give exit status 2 and one line, never a
traceback, and no frame is lost or wrong.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from test_cli import EXAMPLE, FAST, ROOT, assert_user_error, run_cli

from traeumer_blender import png
from traeumer_blender.output_folder import LOCK_NAME, FolderLock, remove_partial_files
from traeumer_blender.styles_file import load_styles

JOB = ["--audio", EXAMPLE, "--duration", "3", *FAST]      # 12 frames of 32 px


def frame_tags(folder):
    return {p.name: png.complete_png_tag(p)[1] for p in sorted(Path(folder).glob("frame_*.png"))}


def cli_background(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "traeumer_blender", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_job_is_refused_while_the_first_holds_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out, "generate"):            # the first job (this test process)
        second = run_cli("generate", "--out", out, "--seed", "2", *JOB)
    assert_user_error(second, mentions=f"is in use by generate (pid {os.getpid()}")
    assert "wait for it or cancel it" in second.stderr
    assert not list(out.glob("frame_*")) and not (out / "styles.npz").exists()
    assert not (out / LOCK_NAME).exists(), "the lock file goes with its job"

    # nobody holds it: the job runs, and leaves no lock behind
    first = run_cli("generate", "--out", out, "--seed", "1", *JOB)
    assert first.returncode == 0, first.stderr
    assert not (out / LOCK_NAME).exists()
    with FolderLock(out, "update frames"):       # frames are being rewritten: no render beside it
        render_beside = run_cli("render", "--styles", out / "styles.npz", "--frames", "1-2")
    assert_user_error(render_beside, mentions="is being rewritten by update frames")

    # render jobs only share the folder: several run side by side on disjoint frames, while a
    # generate (it rewrites the styles) waits for them
    before = {name: (out / name).read_bytes() for name in frame_tags(out)}
    for name in ("frame_000002.png", "frame_000003.png", "frame_000009.png"):
        (out / name).unlink()
    with FolderLock(out, "render", exclusive=False):
        part_a = run_cli("render", "--styles", out / "styles.npz", "--frames", "1-6", "--missing")
        part_b = run_cli("render", "--styles", out / "styles.npz", "--frames", "7-12", "--missing")
        generate = run_cli("generate", "--out", out, "--seed", "1", *JOB)
    assert part_a.returncode == 0 and "rendered 2 frames" in part_a.stdout, part_a.stderr
    assert part_b.returncode == 0 and "rendered 1 frames" in part_b.stdout, part_b.stderr
    assert_user_error(generate, mentions="frames being rendered by other jobs")
    assert {name: (out / name).read_bytes() for name in frame_tags(out)} == before


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap_lock(out)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert holder.stdout.readline().strip() == "locked"
    refused = run_cli("generate", "--out", out, *JOB)
    assert_user_error(refused, mentions=f"pid {holder.pid}")
    holder.kill()                                   # dies holding it: kill -9, no clean-up
    holder.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid   # the stale file stays
    taken_over = run_cli("generate", "--out", out, *JOB)
    assert taken_over.returncode == 0, taken_over.stderr
    assert len(frame_tags(out)) == 12


def textwrap_lock(out):
    return (f"import sys, time; from traeumer_blender.output_folder import FolderLock\n"
            f"lock = FolderLock({str(out)!r}, 'generate').__enter__()\n"
            f"print('locked', flush=True); time.sleep(600)\n")


def test_two_generates_at_once_leave_one_consistent_folder(tmp_path):
    """The reported defect: seed 1 and seed 2 into one folder at once. The second is refused
    while the first is stopped in the middle of its job; the folder ends as seed 1 made it."""
    out = tmp_path / "out"
    first = cli_background("generate", "--out", out, "--seed", "1", *JOB)
    deadline = time.monotonic() + 120
    while not (out / LOCK_NAME).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(first.pid, signal.SIGSTOP)               # it holds the folder: keep it there
    try:
        assert first.poll() is None, "the first job ended before it could be stopped"
        second = run_cli("generate", "--out", out, "--seed", "2", *JOB)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert_user_error(second, mentions=f"in use by generate (pid {first.pid}")
    styles = load_styles(out / "styles.npz")
    assert styles.seed == 1
    assert set(frame_tags(out).values()) == {styles.settings["frames_fingerprint"]}
    again = run_cli("generate", "--out", out, "--seed", "1", *JOB)
    assert again.returncode == 0 and "0 rendered, 12 kept" in again.stdout, again.stderr


def test_a_resume_never_keeps_frames_of_other_settings(tmp_path):
    """styles.npz says seed 2 while the frames are seed 1's (the state two writers left before
    folders were locked): generate seed 2 renders every frame again instead of keeping them."""
    out, other = tmp_path / "out", tmp_path / "other"
    assert run_cli("generate", "--out", out, "--seed", "1", *JOB).returncode == 0
    seed_one = {name: (out / name).read_bytes() for name in frame_tags(out)}
    assert run_cli("generate", "--out", other, "--seed", "2", "--styles-only", *JOB).returncode == 0
    (out / "styles.npz").write_bytes((other / "styles.npz").read_bytes())
    resumed = run_cli("generate", "--out", out, "--seed", "2", *JOB)
    assert resumed.returncode == 0, resumed.stderr
    assert "12 rendered, 0 kept" in resumed.stdout
    reference = run_cli("generate", "--out", other, "--seed", "2", *JOB)
    assert reference.returncode == 0
    assert {n: (out / n).read_bytes() for n in seed_one} == {n: (other / n).read_bytes() for n in seed_one}
    assert all(seed_one[n] != (out / n).read_bytes() for n in seed_one)


def test_generating_into_someone_elses_folder_deletes_nothing(tmp_path):
    out = tmp_path / "renders"
    out.mkdir()
    image = np.full((8, 8, 3), 200, np.uint8)
    png.write_png(out / "frame_000150.png", image)          # somebody's own frame, not ours
    (out / "frame_000003.png").write_bytes(b"not even a PNG")
    (out / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    refused = run_cli("generate", "--out", out, *JOB)
    assert_user_error(refused, mentions="which TräumerAI did not make")
    assert "nothing was deleted" in refused.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # our own folder with an extra frame of ours beyond the new length: that one may go
    ours = tmp_path / "ours"
    assert run_cli("generate", "--out", ours, *JOB).returncode == 0
    shorter = run_cli("generate", "--out", ours, "--audio", EXAMPLE, "--duration", "2", *FAST)
    assert shorter.returncode == 0, shorter.stderr
    assert len(frame_tags(ours)) == 8


@contextlib.contextmanager
def small_disk(tmp_path, kilobytes):
    """A tmpfs of the given size (root only; skipped where mounting is not allowed)."""
    mount_point = tmp_path / f"disk_{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}): disk-full cases not run")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_a_full_disk_is_one_clear_line_and_leaves_no_partial_file(tmp_path):
    styles_size = None
    probe = tmp_path / "probe"
    assert run_cli("generate", "--out", probe, "--styles-only", *JOB).returncode == 0
    styles_size = (probe / "styles.npz").stat().st_size
    with small_disk(tmp_path, 16) as disk:           # not even styles.npz fits
        full = run_cli("generate", "--out", disk / "out", *JOB)
        assert_user_error(full, mentions="No space left on device")
        assert "styles.npz" in full.stderr
        assert not [p.name for p in (disk / "out").iterdir() if p.name.endswith(".tmp")]
    with small_disk(tmp_path, styles_size // 1024 + 16) as disk:   # styles fit, the frames do not
        full = run_cli("generate", "--out", disk / "out", *JOB)
        assert_user_error(full, mentions="No space left on device")
        names = [p.name for p in (disk / "out").iterdir()]
        assert "frame_" in full.stderr and not [n for n in names if n.endswith(".tmp")]
        assert all(png.is_complete_png(disk / "out" / n, 32, 32) for n in names if n.startswith("frame_"))


def test_a_folder_made_read_only_mid_run_is_one_clear_line(tmp_path):
    with small_disk(tmp_path, 4096) as disk:
        out = disk / "out"
        job = cli_background("generate", "--out", out, "--audio", EXAMPLE, "--duration", "40", *FAST)
        deadline = time.monotonic() + 120
        while not list(out.glob("frame_*.png")) and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(job.pid, signal.SIGSTOP)
        try:
            assert job.poll() is None, "the job ended before the folder could be made read-only"
            for _attempt in range(50):   # busy while the job is stopped inside a write: let it finish that
                remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
                if remount.returncode == 0:
                    break
                os.kill(job.pid, signal.SIGCONT)
                time.sleep(0.002)
                os.kill(job.pid, signal.SIGSTOP)
        finally:
            os.kill(job.pid, signal.SIGCONT)
        _, err = job.communicate(timeout=300)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr.strip()}")
        lines = [line for line in err.splitlines() if line.strip()]
        assert job.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "Read-only file system" in lines[0]
        assert all(png.is_complete_png(p, 32, 32) for p in out.glob("frame_*.png"))


def test_a_damaged_curves_file_does_not_block_later_jobs(tmp_path):
    out = tmp_path / "out"
    assert run_cli("generate", "--out", out, *JOB).returncode == 0
    (out / "curves.npz").write_bytes(b"PK\x03\x04 damaged")
    again = run_cli("generate", "--out", out, *JOB)
    assert again.returncode == 0, again.stderr
    assert "0 rendered, 12 kept" in again.stdout
    assert not (out / "curves.npz").exists()


def test_partial_files_of_live_writers_are_left_alone(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / f".frame_000001.png.{sleeper.pid}.abcd1234.tmp"
        dead = tmp_path / ".frame_000002.png.999999999.abcd1234.tmp"
        for path in (mine, dead):
            path.write_bytes(b"partial")
        remove_partial_files(tmp_path)
        assert mine.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    remove_partial_files(tmp_path)
    assert not mine.exists()
