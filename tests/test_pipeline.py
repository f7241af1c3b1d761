# SPDX-License-Identifier: GPL-3.0-or-later
"""The generate pipeline end to end with the real default generator and encoder.

Frames are small (32 px previews of the built-in 256 px generator) and few (6 fps, 2 s): these
tests are about files, timing, resuming and determinism, not about the pictures.
"""

import os
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from traeumer_blender import png
from traeumer_blender.encoders import base as encoder_base
from traeumer_blender.errors import TraeumerError
from traeumer_blender.frames import render_frames
from traeumer_blender.layer_groups import layer_groups
from traeumer_blender.output_folder import frame_path
from traeumer_blender.pipeline import GenerateSettings, run_generate
from traeumer_blender.progress import Cancelled
from traeumer_blender.styles_file import load_styles, update_styles

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hr-savino-ocean.ogg"
SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"


def settings(out_dir, **overrides):
    values = dict(audio=str(EXAMPLE), out_dir=str(out_dir), fps="6", start=12.0, duration=2.0,
                  resolution=32, batch=4, seed=3)
    values.update(overrides)
    return GenerateSettings(**values)


def frame_files(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("frame_"))


def read_bytes(path):
    with open(path, "rb") as stream:
        return stream.read()


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def rendered(self):
        """Frames rendered: the last render event's `done`."""
        renders = [e for e in self.events if e.stage == "render"]
        return renders[-1].done if renders else 0


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("first") / "frames"
    recorder = Recorder()
    result = run_generate(settings(out), progress=recorder)
    return out, result, recorder


def test_frames_styles_and_progress(first_run):
    out, result, recorder = first_run
    assert result.frame_count == 12 and result.frames_rendered == 12
    assert frame_files(out) == [f"frame_{i:06d}.png" for i in range(1, 13)]
    assert sorted(os.listdir(out)) == frame_files(out) + ["styles.npz"]  # no temp files
    images = [png.read_png(frame_path(out, i)) for i in range(12)]
    assert all(image.shape == (32, 32, 3) for image in images)
    assert len({image.tobytes() for image in images}) > 1  # the music moves the picture
    assert all(png.is_complete_png(frame_path(out, i), 32, 32) for i in range(12))
    # progress: every stage reported, render counts up to the total, ETA known at the end
    stages = [e.stage for e in recorder.events]
    for stage in ("load", "decode", "embed", "style", "render"):
        assert stage in stages
    renders = [e for e in recorder.events if e.stage == "render"]
    assert [e.done for e in renders] == [0, 4, 8, 12] and renders[-1].total == 12
    assert renders[-1].eta_seconds == 0.0 and renders[1].eta_seconds is not None


def test_styles_file_holds_everything_to_rerender(first_run):
    out, result, _ = first_run
    styles = load_styles(result.styles_path)
    n_latent = len(styles.layer_group)
    assert styles.group_ws.shape == (12, 3, 512) and styles.group_ws.dtype == np.float32
    assert styles.layer_ws().shape == (12, n_latent, 512)
    assert styles.layer_group.tolist() == layer_groups([0] * n_latent).tolist()
    assert styles.fps == Fraction(6) and styles.start == 12.0 and styles.duration == 2.0
    assert np.allclose(styles.frame_times, 12.0 + np.arange(12) / 6.0, atol=1e-12)
    assert styles.raw_ws.shape == (12, 512) and styles.embeddings.shape[0] == 12
    assert styles.smoothing_seconds == (3.0, 2.0, 0.3) and styles.smoothing_kind == "box"
    assert styles.mapper_kind == "zero-label" and styles.seed == 3
    assert styles.generator_source == "default" and styles.resolution == 32
    # the coarse group is smoothed most
    roughness = [np.abs(np.diff(styles.group_ws[:, g], axis=0)).mean() for g in range(3)]
    assert roughness[0] < roughness[2]


def test_same_inputs_give_identical_files(first_run, tmp_path):
    out, _, _ = first_run
    again = tmp_path / "again"
    run_generate(settings(again))
    for name in frame_files(out):
        assert read_bytes(out / name) == read_bytes(again / name), name
    first, second = load_styles(out / "styles.npz"), load_styles(again / "styles.npz")
    assert np.array_equal(first.group_ws, second.group_ws)
    # another seed gives other styles (the zero-label mapping is seeded)
    other = tmp_path / "other"
    run_generate(settings(other, seed=4, styles_only=True))
    assert not np.allclose(load_styles(other / "styles.npz").group_ws, first.group_ws)


def copy_of(source: Path, out: Path) -> Path:
    """A copy of an earlier run's output folder (frames and styles.npz)."""
    out.mkdir()
    for name in os.listdir(source):
        (out / name).write_bytes((source / name).read_bytes())
    return out


def test_rerun_renders_only_missing_or_damaged_frames(first_run, tmp_path):
    source, _, _ = first_run
    out = copy_of(source, tmp_path / "resume")
    original = {name: read_bytes(out / name) for name in frame_files(out)}
    os.unlink(frame_path(out, 2))                       # missing
    with open(frame_path(out, 5), "r+b") as stream:     # damaged in the middle
        stream.seek(60)
        stream.write(b"\x00\x01\x02")
    data = read_bytes(frame_path(out, 9))               # cut short
    with open(frame_path(out, 9), "wb") as stream:
        stream.write(data[:len(data) // 2])
    untouched = {i: os.stat(frame_path(out, i)).st_mtime_ns for i in range(12) if i not in (2, 5, 9)}
    recorder = Recorder()
    result = run_generate(settings(out), progress=recorder)
    assert result.styles_reused and result.frames_rendered == 3 and result.frames_reused == 9
    assert recorder.rendered() == 3
    assert "embed" not in [e.stage for e in recorder.events]  # styles came from styles.npz
    assert {i: os.stat(frame_path(out, i)).st_mtime_ns for i in untouched} == untouched
    assert {name: read_bytes(out / name) for name in frame_files(out)} == original
    # nothing to do on a third run
    recorder = Recorder()
    assert run_generate(settings(out), progress=recorder).frames_rendered == 0
    assert recorder.rendered() == 0


def test_changed_settings_render_everything_again(first_run, tmp_path):
    source, _, _ = first_run
    out = copy_of(source, tmp_path / "changed")
    result = run_generate(settings(out, duration=1.0, truncation=0.7))
    assert result.frames_rendered == 6 and not result.styles_reused
    assert frame_files(out) == [f"frame_{i:06d}.png" for i in range(1, 7)]  # stale frames gone
    assert load_styles(out / "styles.npz").truncation == 0.7


def test_a_new_embedding_method_analyses_and_renders_again(first_run, tmp_path, monkeypatch):
    """Styles analysed by an older version of embed_frames are not taken for current ones."""
    source, _, _ = first_run
    out = copy_of(source, tmp_path / "upgraded")
    monkeypatch.setattr(encoder_base, "EMBEDDING_METHOD", encoder_base.EMBEDDING_METHOD + 1)
    recorder = Recorder()
    result = run_generate(settings(out), progress=recorder)
    assert not result.styles_reused and result.frames_rendered == 12
    assert "embed" in [e.stage for e in recorder.events]


@pytest.mark.parametrize("how", ["cancel", "progress raises"])
def test_cancel_leaves_only_complete_frames(tmp_path, how):
    out = tmp_path / "cancelled"
    flag = threading.Event()

    def progress(event):
        if event.stage == "render" and event.done >= 4:
            if how == "cancel":
                flag.set()
            else:
                raise KeyboardInterrupt

    expected = Cancelled if how == "cancel" else KeyboardInterrupt
    with pytest.raises(expected):
        run_generate(settings(out), progress=progress, cancel=flag)
    names = sorted(os.listdir(out))
    assert names == ["frame_000001.png", "frame_000002.png", "frame_000003.png",
                     "frame_000004.png", "styles.npz"]
    assert all(png.is_complete_png(out / name, 32, 32) for name in names[:-1])
    recorder = Recorder()
    result = run_generate(settings(out), progress=recorder)
    assert result.frames_rendered == 8 and recorder.rendered() == 8


def test_render_frames_reproduces_and_applies_edits(first_run, tmp_path):
    source, result, _ = first_run
    out = copy_of(source, tmp_path / "edit")
    styles_path = out / "styles.npz"
    before = {i: read_bytes(frame_path(out, i)) for i in range(12)}
    os.unlink(frame_path(out, 7))
    assert render_frames(styles_path, [7]) == [frame_path(out, 7)]
    assert read_bytes(frame_path(out, 7)) == before[7]
    # edit the coarse style of two frames: only they change
    styles = load_styles(styles_path)
    edited = styles.group_ws[[3, 10]].copy()
    edited[:, 0] = styles.group_ws[0, 0]
    edited[1, 0] += 0.5
    changed = update_styles(styles_path, [3, 10, 4], np.concatenate([edited, styles.group_ws[[4]]]))
    assert changed == [3, 10]
    render_frames(styles_path, changed)
    after = {i: read_bytes(frame_path(out, i)) for i in range(12)}
    assert [i for i in range(12) if after[i] != before[i]] == [3, 10]
    # a per-layer override renders without touching styles.npz
    layer_ws = load_styles(styles_path).layer_ws([1])
    layer_ws[0, :2] = layer_ws[0, 0] + 1.0
    render_frames(styles_path, [1], ws_override=layer_ws, out_dir=tmp_path / "preview")
    assert read_bytes(tmp_path / "preview" / "frame_000002.png") != before[1]
    with pytest.raises(TraeumerError):
        render_frames(styles_path, [12])


def test_frame_count_follows_fps_fraction(tmp_path):
    for fps, duration, expected in (("30000/1001", 2.0, 60), ("29.97", 1.5, 45), ("23.976", 0.7, 17)):
        result = run_generate(settings(tmp_path / fps.replace("/", "_"), fps=fps, duration=duration,
                                       styles_only=True))
        styles = load_styles(result.styles_path)
        assert result.frame_count == styles.frame_count == expected
        rate = Fraction(30000, 1001) if fps != "23.976" else Fraction(24000, 1001)
        assert styles.fps == rate
        assert np.allclose(styles.frame_times, [12.0 + float(Fraction(i) / rate) for i in range(expected)])
        assert frame_files(tmp_path / fps.replace("/", "_")) == []


def test_excerpt_sees_the_music_around_it(tmp_path):
    """A frame at the excerpt's first instant embeds the real audio before it, not zeros."""
    from traeumer_blender.audio import load_audio
    from traeumer_blender.model_cache import get_encoder

    short = run_generate(settings(tmp_path / "a", start=12.0, duration=1.0, styles_only=True))
    longer = run_generate(settings(tmp_path / "b", start=11.0, duration=2.0, styles_only=True))
    first = load_styles(short.styles_path).embeddings[0]
    same_time = load_styles(longer.styles_path).embeddings[6]   # 11 s + 6/6 s
    encoder = get_encoder("default")
    alone = load_audio(str(EXAMPLE), sample_rate=encoder.sample_rate, start=12.0, duration=1.0)
    zero_padded = encoder.embed_frames(alone, np.zeros(1))[0]
    assert np.linalg.norm(first - same_time) < 0.5 * np.linalg.norm(first - zero_padded)


def test_bad_settings_are_user_errors(tmp_path):
    for bad in (dict(fps="0"), dict(fps="fast"), dict(start=-1.0), dict(duration=0.0),
                dict(start=3600.0), dict(truncation=float("nan")), dict(smoothing="1,2"),
                dict(resolution=48), dict(resolution=512), dict(batch=0)):
        with pytest.raises(TraeumerError):
            run_generate(settings(tmp_path / "bad", styles_only=True, **bad))
