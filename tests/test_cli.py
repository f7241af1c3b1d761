# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line, run as a user would (subprocess): bad input gives exit status 2 and one
clear line on stderr, never a traceback and never a partial frame; odd but valid input works."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from traeumer_blender import png

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
EXAMPLE = ROOT / "examples" / "hr-savino-ocean.ogg"
FAST = ["--fps", "4", "--resolution", "32", "--quiet"]


def run_cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TRAEUMER_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "traeumer_blender", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_user_error(process, *, out_dir=None, mentions=None):
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in process.stderr
    if mentions:
        assert mentions.lower() in lines[0].lower(), lines[0]
    if out_dir is not None and Path(out_dir).is_dir():
        assert not [p for p in Path(out_dir).iterdir() if p.name.startswith(("frame_", ".frame_"))]


def assert_frames(process, out_dir, count, size=32):
    assert process.returncode == 0, process.stderr
    names = sorted(p.name for p in Path(out_dir).iterdir() if p.name.startswith("frame_"))
    assert names == [f"frame_{i:06d}.png" for i in range(1, count + 1)]
    assert all(png.is_complete_png(Path(out_dir) / name, size, size) for name in names)
    assert (Path(out_dir) / "styles.npz").is_file()


def write_wav(path, seconds, rate=44100, channels=2, amplitude=0.3, seed=0):
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * rate))
    t = np.arange(frames) / rate
    tone = amplitude * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    data = tone[:, None] + 0.05 * rng.standard_normal((frames, channels))
    soundfile.write(str(path), (data * (amplitude > 0)).astype(np.float32), rate, subtype="PCM_16")
    return path


# ----------------------------------------------------------------------------- bad input

def test_usage_errors_are_one_line():
    assert_user_error(run_cli())
    assert_user_error(run_cli("generate", "--audio", EXAMPLE), mentions="--out")
    assert_user_error(run_cli("generate", "--audio", EXAMPLE, "--out", "x", "--seed", "many"))
    assert_user_error(run_cli("frobnicate"))


def test_missing_file(tmp_path):
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", tmp_path / "nope.ogg", "--out", out, *FAST),
                      out_dir=out, mentions="not found")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", tmp_path / "empty.wav", "--out", out, *FAST),
                      out_dir=out, mentions="empty")


def test_text_file_renamed_mp3(tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_text("These are the lyrics, not the song.\n" * 200)
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", fake, "--out", out, *FAST), out_dir=out)


def test_output_folder_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file, not a folder")
    assert_user_error(run_cli("generate", "--audio", EXAMPLE, "--out", blocker / "frames", *FAST),
                      mentions="cannot create output folder")
    assert_user_error(run_cli("generate", "--audio", EXAMPLE, "--out", blocker, *FAST),
                      mentions="not a folder")
    assert blocker.read_text() == "I am a file, not a folder"


def test_bad_options_are_user_errors(tmp_path):
    for option in (["--fps", "0"], ["--fps", "thirty"], ["--smoothing", "3,2"], ["--start", "-2"],
                   ["--start", "3600"], ["--duration", "0"], ["--resolution", "48"]):
        out = tmp_path / "out"
        args = ["generate", "--audio", EXAMPLE, "--out", out, "--quiet", *option]
        if "--resolution" not in option:
            args += ["--resolution", "32"]
        assert_user_error(run_cli(*args), out_dir=out)


def test_truncated_ogg(tmp_path):
    """Cut mid-stream: either a clear error or frames for the part that decodes, never a crash."""
    data = EXAMPLE.read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[:len(data) // 3])
    out = tmp_path / "out"
    process = run_cli("generate", "--audio", cut, "--out", out, "--start", "2", "--duration", "2", *FAST)
    if process.returncode == 2:
        assert_user_error(process, out_dir=out)
    else:
        assert_frames(process, out, 8)


# ----------------------------------------------------------------------------- odd but valid

def test_silence_gives_a_still_picture(tmp_path):
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros((44100 * 2, 2), dtype=np.float32), 44100, subtype="PCM_16")
    out = tmp_path / "out"
    process = run_cli("generate", "--audio", silence, "--out", out, *FAST)
    assert_frames(process, out, 8)
    images = {png.read_png(out / f"frame_{i:06d}.png").tobytes() for i in range(1, 9)}
    assert len(images) == 1


def test_half_a_second_of_audio(tmp_path):
    short = write_wav(tmp_path / "short.wav", 0.5)
    out = tmp_path / "out"
    process = run_cli("generate", "--audio", short, "--out", out, "--fps", "30", "--resolution", "32",
                      "--quiet")
    assert_frames(process, out, 15)


def test_eight_channels_at_192khz_and_a_non_ascii_path(tmp_path):
    folder = tmp_path / "Müsik ♫ 音楽"
    folder.mkdir()
    wide = write_wav(folder / "acht Kanäle.wav", 1.5, rate=192000, channels=8)
    out = folder / "Bilder ✓"
    process = run_cli("generate", "--audio", wide, "--out", out, *FAST)
    assert_frames(process, out, 6)
    assert "6 frames" in process.stdout


def test_styles_only_then_render(tmp_path):
    out = tmp_path / "out"
    process = run_cli("generate", "--audio", EXAMPLE, "--out", out, "--start", "5", "--duration", "1.5",
                      "--fps", "30000/1001", "--resolution", "32", "--styles-only", "--quiet")
    assert process.returncode == 0, process.stderr
    assert not [p for p in out.iterdir() if p.name.startswith("frame_")]   # round(1.5 * 29.97) = 45
    assert "45 frames" not in process.stdout and "styles only" in process.stdout
    process = run_cli("render", "--styles", out / "styles.npz", "--frames", "1-3,45", "--quiet")
    assert process.returncode == 0, process.stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("frame_")) == [
        "frame_000001.png", "frame_000002.png", "frame_000003.png", "frame_000045.png"]
    assert_user_error(run_cli("render", "--styles", out / "styles.npz", "--frames", "46"), mentions="1..45")


# ----------------------------------------------------------------------------- tags, inspect-model

def test_tags_json(tmp_path):
    clip = tmp_path / "clip.wav"
    soundfile.write(str(clip), soundfile.read(str(SHARED_AUDIO / "machine_wars.mp3"), frames=44100 * 8,
                                              start=44100 * 60)[0], 22050 * 2)
    process = run_cli("tags", "--audio", clip, "--json")
    assert process.returncode == 0, process.stderr
    result = json.loads(process.stdout)
    assert len(result["tags"]) == 50 and result["tags"][0] == "guitar"
    assert 2.5 < result["window_seconds"] < 4.0
    probabilities = np.array(result["probabilities"])
    assert probabilities.shape[1] == 50 and probabilities.shape[0] >= 2
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    process = run_cli("tags", "--audio", clip, "--top", "3")
    assert process.returncode == 0 and len(process.stdout.splitlines()) == probabilities.shape[0]
    assert_user_error(run_cli("tags", "--audio", tmp_path / "missing.wav"), mentions="not found")


def test_inspect_model(tmp_path):
    from traeumer_blender.model_cache import get_generator

    checkpoint = tmp_path / "default-copy.pt"
    get_generator("default").save(checkpoint)
    process = run_cli("inspect-model", checkpoint)
    assert process.returncode == 0, process.stderr
    assert "resolution: 256" in process.stdout and "w layers (n_latent): 14" in process.stdout
    assert "conditional: no" in process.stdout and "mapping layers: 8" in process.stdout
    info = json.loads(run_cli("inspect-model", checkpoint, "--json").stdout)
    assert info["resolution"] == 256 and info["c_dim"] == 0
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    assert_user_error(run_cli("inspect-model", tmp_path / "notes.pt"))
    assert_user_error(run_cli("inspect-model", tmp_path / "absent.pt"), mentions="not found")


def test_demo_uses_the_bundled_example(tmp_path):
    out = tmp_path / "demo"
    process = run_cli("demo", "--out", out, "--duration", "1", *FAST)
    assert_frames(process, out, 4)
    assert "1.00 s of music" in process.stdout
