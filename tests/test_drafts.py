# SPDX-License-Identifier: GPL-3.0-or-later
"""Draft frames first (issue #15): every frame as a small skip-branch draft in DIR/draft/, then
the full-size frames, the asked ranges first; final frames the same bytes with and without."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import stylegan3_fixtures as fx3
from test_cli import ROOT, assert_user_error, run_cli
from test_pipeline import EXAMPLE, Recorder, frame_files, read_bytes, settings

from traeumer_blender import png
from traeumer_blender.errors import TraeumerError
from traeumer_blender.frames import EDITED_SUFFIX, frame_order, render_frames
from traeumer_blender.model_cache import get_generator
from traeumer_blender.output_folder import draft_dir, frame_path
from traeumer_blender.pipeline import run_generate
from traeumer_blender.styles_file import load_styles

DRAFT = dict(draft=True, draft_size=16)


@pytest.fixture(scope="module")
def drafted(tmp_path_factory):
    out = tmp_path_factory.mktemp("drafted") / "frames"
    recorder = Recorder()
    result = run_generate(settings(out, first_frames=[(6, 9)], **DRAFT), progress=recorder)
    return out, result, recorder


def test_drafts_counted_aligned_and_first(drafted):
    out, result, recorder = drafted
    n = result.frame_count
    assert result.draft_size == 16 and result.draft_width == 16
    assert frame_files(out) == frame_files(draft_dir(out)) == [f"frame_{i:06d}.png" for i in range(1, n + 1)]
    assert sorted(os.listdir(draft_dir(out))) == frame_files(draft_dir(out))   # no temp files
    drafts = np.stack([png.read_png(frame_path(draft_dir(out), i)) for i in range(n)]).astype(np.int64)
    assert drafts.shape == (n, 16, 16, 3)
    # draft i is frame i's own styles drawn from the skip branch at 16 px
    generator = get_generator("default")
    styles = load_styles(out / "styles.npz")
    with generator.drafting():
        images = generator.synthesis(styles.layer_ws(list(range(n))), resolution=16)
    expected = ((images.permute(0, 2, 3, 1).numpy() + 1.0) * 127.5).round().clip(0, 255)
    assert np.abs(drafts - expected).max() <= 2
    assert np.abs(drafts[1:] - drafts[:-1]).mean() > 0.1      # the drafts move with the music
    # every draft is written before the first final frame; the asked range comes first in both
    stages = [e.stage for e in recorder.events if e.stage in ("draft", "render")]
    assert stages.index("render") > max(i for i, s in enumerate(stages) if s == "draft")
    for stage in ("draft", "render"):
        written = [i for e in recorder.events if e.stage == stage for i in e.frames]
        assert sorted(written) == list(range(n))
        assert written[:3] == [6, 7, 8]


def test_finals_are_the_same_with_and_without_drafts(drafted, tmp_path):
    out, result, _ = drafted
    plain = run_generate(settings(tmp_path / "plain"))
    assert not os.path.exists(draft_dir(plain.out_dir))
    for i in range(result.frame_count):
        assert read_bytes(frame_path(out, i)) == read_bytes(frame_path(plain.out_dir, i))


def test_rerun_keeps_drafts_and_frames(drafted):
    out, result, _ = drafted
    before = {i: read_bytes(frame_path(draft_dir(out), i)) for i in range(result.frame_count)}
    recorder = Recorder()
    again = run_generate(settings(out, **DRAFT), progress=recorder)
    assert again.frames_rendered == 0
    assert [e.total for e in recorder.events if e.stage == "draft"][:1] == [0]
    assert all(read_bytes(frame_path(draft_dir(out), i)) == data for i, data in before.items())


def test_wide_drafts(tmp_path):
    result = run_generate(settings(tmp_path / "wide", aspect="16:9", **DRAFT))
    assert (result.width, result.draft_width) == (56, 28)
    assert png.read_png(frame_path(draft_dir(result.out_dir), 0)).shape == (16, 28, 3)
    assert png.read_png(frame_path(result.out_dir, 0)).shape == (32, 56, 3)


def test_no_drafts_when_they_cannot_help(tmp_path):
    small = run_generate(settings(tmp_path / "small", draft=True, draft_size=64))
    assert small.draft_size is None and "only 32 px" in small.notes[0]
    assert not os.path.exists(draft_dir(small.out_dir))
    model = tmp_path / "sg3.pkl"
    fx3.write_nvidia_sg3(model, variant="t")
    sg3 = run_generate(settings(tmp_path / "sg3", model=str(model), resolution=None, draft=True))
    assert sg3.draft_size is None and "skip branch" in sg3.notes[0]
    assert len(frame_files(sg3.out_dir)) == sg3.frame_count
    with pytest.raises(TraeumerError, match="draft size"):
        run_generate(settings(tmp_path / "odd", draft=True, draft_size=24))
    with pytest.raises(TraeumerError, match="at least 16"):
        run_generate(settings(tmp_path / "tiny", draft=True, draft_size=8))


def test_update_gives_edited_frames_a_fresh_draft(drafted, tmp_path):
    import shutil

    out, result, _ = drafted
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    styles = load_styles(copy / "styles.npz")
    edited = styles.layer_ws([2, 5]) * 1.5
    untouched = read_bytes(frame_path(draft_dir(copy), 3))
    old = read_bytes(frame_path(draft_dir(copy), 2))
    render_frames(copy / "styles.npz", [2, 5], ws_override=edited, draft=True)
    assert read_bytes(frame_path(draft_dir(copy), 3)) == untouched
    assert read_bytes(frame_path(draft_dir(copy), 2)) != old
    tag = png.complete_png_tag(frame_path(draft_dir(copy), 2))[1]
    assert tag.endswith(EDITED_SUFFIX)


def test_frame_order():
    assert frame_order(6) == list(range(6))
    assert frame_order(6, [(4, 9), (1, 2), (4, 5)]) == [4, 5, 1, 0, 2, 3]


def _job(out):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["generate", "--audio", EXAMPLE, "--out", out, "--fps", "12", "--start", "10", "--duration", "6",
            "--resolution", "64", "--draft", "--draft-size", "16", "--quiet"]
    return subprocess.Popen([sys.executable, "-m", "traeumer_blender", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when(job, ready, timeout=240):
    deadline = time.monotonic() + timeout
    while not ready():
        assert job.poll() is None, job.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    job.communicate()


@pytest.mark.parametrize("stage", ["draft", "render"])
def test_resume_after_a_kill_keeps_drafts_and_frames_consistent(tmp_path, stage):
    clean = tmp_path / "clean"
    done = run_cli("generate", "--audio", EXAMPLE, "--out", clean, "--fps", "12", "--start", "10",
                   "--duration", "6", "--resolution", "64", "--draft", "--draft-size", "16", "--quiet")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed"
    job = _job(out)
    if stage == "draft":
        _kill_when(job, lambda: len(list(Path(draft_dir(out)).glob("frame_*.png"))) >= 8)
        assert not list(out.glob("frame_*.png"))
    else:
        _kill_when(job, lambda: len(list(out.glob("frame_*.png"))) >= 4)
    for folder in (out, Path(draft_dir(out))):   # whole files only, each of its kind
        for path in folder.glob("frame_*.png"):
            size = (16, 16) if folder != out else (64, 64)
            assert png.is_complete_png(path, *size)
    resumed = run_cli("generate", "--audio", EXAMPLE, "--out", out, "--fps", "12", "--start", "10",
                      "--duration", "6", "--resolution", "64", "--draft", "--draft-size", "16")
    assert resumed.returncode == 0, resumed.stderr
    assert " kept)" in resumed.stdout
    for folder, reference in ((out, clean), (Path(draft_dir(out)), Path(draft_dir(clean)))):
        assert frame_files(folder) == frame_files(reference) and len(frame_files(folder)) == 72
        for name in frame_files(reference):
            assert read_bytes(folder / name) == read_bytes(reference / name), name
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_cli_bad_shapes_and_drafts(tmp_path):
    base = ["generate", "--audio", EXAMPLE, "--duration", "1", "--fps", "4", "--resolution", "32", "--quiet"]
    assert_user_error(run_cli(*base, "--out", tmp_path / "a", "--aspect", "wide"), out_dir=tmp_path / "a",
                      mentions="aspect")
    assert_user_error(run_cli(*base, "--out", tmp_path / "b", "--draft-size", "100"), out_dir=tmp_path / "b",
                      mentions="draft size")
    assert_user_error(run_cli(*base, "--out", tmp_path / "c", "--first", "9-3"), out_dir=tmp_path / "c",
                      mentions="--first")
    good = run_cli(*base, "--out", tmp_path / "d", "--aspect", "9:16", "--draft", "--draft-size", "16",
                   "--first", "2-3")
    assert good.returncode == 0, good.stderr
    assert png.read_png(frame_path(tmp_path / "d", 0)).shape == (32, 18, 3)
    assert png.read_png(frame_path(draft_dir(tmp_path / "d"), 0)).shape == (16, 10, 3)
