# SPDX-License-Identifier: GPL-3.0-or-later
"""The camera of StyleGAN3 models (issue #14): translation and rotation through the input
transform, per sample; the still camera changes no frame byte and no tag; the music camera
(drift with the tempo, a nudge on each downbeat) on a click track; the CLI's camera options;
StyleGAN2 refusals; Update frames after an edited camera curve. Real tiny checkpoints, real
music from ``music_fixtures``, no mocks."""

import math

import numpy as np
import pytest
import stylegan3_fixtures as fx3
import torch
from frame_hashes import frame_digests
from test_cli import assert_user_error, run_cli

from music_fixtures import click_track_wav
from traeumer_blender import png, style_edit
from traeumer_blender.camera import CAMERA_CURVES, STILL, CameraSettings, camera_path
from traeumer_blender.errors import TraeumerError
from traeumer_blender.frames import frames_tag, render_frames
from traeumer_blender.layer_groups import used_groups
from traeumer_blender.motion import MOTION_OFF
from traeumer_blender.pipeline import GenerateSettings, run_generate
from traeumer_blender.stylegan2 import load_generator
from traeumer_blender.stylegan2.generator import psnr
from traeumer_blender.stylegan2.stylegan3 import camera_matrices
from traeumer_blender.styles_file import load_styles

MARGIN = 6          # pixels left out at the borders (what slides in there is new picture)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("sg3_camera")
    out = {}
    for v in "tr":
        out[v] = d / f"tiny_{v}.pkl"
        fx3.write_nvidia_sg3(out[v], v)
    return out


@pytest.fixture(scope="module")
def click(tmp_path_factory):
    """12 s of clicks at 120 BPM, accented bars of 4: downbeats at 0, 2, 4, ... s."""
    return click_track_wav(tmp_path_factory.mktemp("music") / "click.wav", 12.0)


def _ws(G, n=4, seed=3):
    return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)))


def _cameras(n, x=0.0, y=0.0, rotation=0.0):
    return np.tile([x, y, rotation], (n, 1))


# ---------------------------------------------------------------------------------------------
# the generator

@pytest.mark.parametrize("variant", ["t", "r"])
@pytest.mark.parametrize("pixels", [1, 3])
def test_a_whole_pixel_translation_is_the_shifted_frame(models, variant, pixels):
    """x = k/R frame heights slides the picture k pixels left, y = k/R slides it k pixels down.
    Away from the borders the frame equals the still frame shifted: PSNR measured here 102-108 dB
    (-T) and 114-126 dB (-R), i.e. float rounding; the bound is 60 dB. Unshifted they differ
    (30-43 dB), so the comparison sees the move."""
    G = load_generator(models[variant], device="cpu")
    R, m, k = G.resolution, MARGIN, pixels
    ws = _ws(G)
    still = G.synthesis(ws)
    right = G.synthesis(ws, camera=_cameras(4, x=k / R))
    up = G.synthesis(ws, camera=_cameras(4, y=k / R))
    shifted_x = psnr(right[:, :, m:-m, m:-m - k], still[:, :, m:-m, m + k:-m])
    shifted_y = psnr(up[:, :, m + k:-m, m:-m], still[:, :, m:-m - k, m:-m])
    assert shifted_x >= 60.0 and shifted_y >= 60.0, (shifted_x, shifted_y)
    unshifted = psnr(right[:, :, m:-m, m:-m], still[:, :, m:-m, m:-m])
    assert unshifted < 45.0, unshifted


def test_wide_frames_move_in_frame_heights_too(models):
    """A 56 x 32 frame (``width=``): x = 2/32 still slides it 2 pixels (measured 104 dB)."""
    G = load_generator(models["t"], device="cpu")
    ws = _ws(G)
    still = G.synthesis(ws, width=56)
    moved = G.synthesis(ws, width=56, camera=_cameras(4, x=2 / 32))
    assert moved.shape == (4, 3, 32, 56)
    assert psnr(moved[..., MARGIN:-MARGIN, MARGIN:-MARGIN - 2], still[..., MARGIN:-MARGIN, MARGIN + 2:-MARGIN]) >= 60.0
    assert torch.equal(G.synthesis(ws, width=56, camera=np.zeros((4, 3))), still)


@pytest.mark.parametrize("variant", ["t", "r"])
def test_rotation_by_0_and_360_degrees_is_the_still_camera(models, variant):
    G = load_generator(models[variant], device="cpu")
    ws = _ws(G)
    still = G.synthesis(ws)
    for degrees in (0.0, 360.0, -360.0, 720.0):
        assert torch.equal(G.synthesis(ws, camera=_cameras(4, rotation=degrees)), still), degrees
    assert torch.equal(G.synthesis(ws, camera=np.zeros((4, 3))), still)
    turned = G.synthesis(ws, camera=_cameras(4, rotation=90.0))
    assert psnr(turned, still) < 40.0
    if variant == "r":
        # -R is rotation equivariant: a camera rolled 90° counter-clockwise shows the picture
        # turned 90° clockwise (measured 156 dB)
        assert psnr(turned, torch.rot90(still, -1, (2, 3))) >= 60.0


def test_a_camera_is_per_sample_and_independent_of_its_batch_neighbours(models):
    G = load_generator(models["t"], device="cpu")
    ws = _ws(G)
    cameras = np.array([[0.1, -0.05, 10.0], [0.0, 0.0, 0.0], [-0.2, 0.3, -45.0], [0.05, 0.0, 180.0]])
    batch = G.synthesis(ws, camera=cameras)
    for i in range(4):
        # the same row among other neighbours (same batch size: the pixels are the same bit for bit)
        others = np.zeros((4, 3))
        others[i] = cameras[i]
        alone = G.synthesis(ws, camera=others)
        assert torch.equal(batch[i], alone[i]), i
    assert torch.equal(batch[1], G.synthesis(ws)[1])          # the zero row is the still camera
    assert not torch.equal(batch[0], batch[1])


def test_camera_matrices_units_and_signs():
    m = camera_matrices([[0.25, 0.5, 90.0], [0.0, 0.0, 360.0]])
    # pixel p shows what the still camera shows at m @ p (grid y grows downward)
    np.testing.assert_allclose(m[0].numpy(), [[0, 1, 0.25], [-1, 0, -0.5], [0, 0, 1]], atol=1e-15)
    assert torch.equal(m[1], torch.eye(3, dtype=torch.float64))


def test_stylegan2_has_no_camera(models):
    G = load_generator("default", device="cpu")
    assert G.has_camera is False and load_generator(models["t"], device="cpu").has_camera is True
    ws = _ws(G, 2)
    assert torch.equal(G.synthesis(ws, camera=np.zeros((2, 3))), G.synthesis(ws))
    with pytest.raises(TraeumerError, match="StyleGAN2 generator: it has no camera"):
        G.synthesis(ws, camera=_cameras(2, x=0.1))
    G3 = load_generator(models["t"], device="cpu")
    with pytest.raises(TraeumerError, match=r"camera must be \[2, 3\]"):
        G3.synthesis(_ws(G3, 2), camera=np.zeros((3, 3)))
    with pytest.raises(TraeumerError, match="not a finite number"):
        G3.synthesis(_ws(G3, 2), camera=_cameras(2, x=math.nan))


# ---------------------------------------------------------------------------------------------
# the camera settings and the music camera

def test_camera_settings_are_checked():
    assert STILL.still and CameraSettings(mode="music", drift=0.0, nudge=0.0).still
    assert not CameraSettings(x=0.1).still and not CameraSettings(mode="music").still
    for bad, words in ((CameraSettings(mode="orbit"), "camera must be one of still, music"),
                       (CameraSettings(drift=-1.0), "camera drift must be a number between 0 and 10"),
                       (CameraSettings(x=math.inf), "camera x must be a number"),
                       (CameraSettings(rotation="90"), "camera rotation must be a number")):
        with pytest.raises(TraeumerError, match=words):
            bad.checked()
    assert CameraSettings.from_record(CameraSettings(mode="music", x=0.2).record()) == CameraSettings(mode="music", x=0.2)
    with pytest.raises(TraeumerError, match="unknown camera setting"):
        CameraSettings.from_record({"zoom": 2})
    times = np.arange(10) / 4.0
    np.testing.assert_array_equal(camera_path(CameraSettings(x=0.1, y=-0.2, rotation=5.0), times),
                                  _cameras(10, 0.1, -0.2, 5.0))


def test_the_music_camera_is_deterministic_and_moves_on_downbeats(click):
    from traeumer_blender import analysis
    from traeumer_blender.audio import load_audio

    heard = analysis.analyze(load_audio(str(click), sample_rate=16000), 16000, 0.0, 0.0, 12.0)
    downbeats = heard.downbeats
    assert len(downbeats) >= 5 and np.allclose(np.diff(downbeats), 2.0, atol=0.05)
    fps = 30
    times = np.arange(12 * fps) / fps
    nudge_only = CameraSettings(mode="music", drift=0.0, nudge=0.05)
    path = camera_path(nudge_only, times, heard.tempo, downbeats, heard.beats_per_bar)
    assert np.array_equal(path, camera_path(nudge_only, times, heard.tempo, downbeats, heard.beats_per_bar))
    offset = np.hypot(path[:, 0], path[:, 1])
    beat = 60.0 / heard.tempo
    for at in downbeats[1:]:
        before = offset[(times > at - 0.1) & (times < at)]
        peak = offset[(times >= at) & (times <= at + beat)]
        assert before.max() < 0.005 and peak.max() > 0.9 * 0.05, (at, before.max(), peak.max())
    assert np.all(path[:, 2] == 0.0)
    # with the drift: the camera moves fastest just after the downbeats
    moving = camera_path(CameraSettings(mode="music"), times, heard.tempo, downbeats, heard.beats_per_bar)
    speed = np.hypot(*np.diff(moving[:, :2], axis=0).T)
    after = np.zeros(len(speed), dtype=bool)
    for at in downbeats:
        after |= (times[:-1] >= at) & (times[:-1] < at + beat / 2)
    assert speed[after].mean() > 5 * speed[~after].mean()
    assert np.abs(moving[:, :2]).max() <= 0.05 + 0.02 + 1e-9


# ---------------------------------------------------------------------------------------------
# through the pipeline

def _job(audio, out, model, **kw):
    kw.setdefault("fps", "4")
    kw.setdefault("device", "cpu")
    return GenerateSettings(audio=str(audio), out_dir=str(out), model=str(model), seed=1, **kw)


def test_the_still_camera_keeps_frame_bytes_and_tags(tmp_path, models, click):
    out = tmp_path / "still"
    result = run_generate(_job(click, out, models["t"], duration=3.0))
    styles = load_styles(out / "styles.npz")
    assert styles.camera is not None and np.all(styles.camera == 0) and styles.camera.shape == (12, 3)
    tag = styles.settings["frames_fingerprint"]
    # the frames are exactly what the generator makes without a camera (4 rows per call, as ever)
    G = load_generator(models["t"], device="cpu")   # auto precision, as the job (bf16 on bf16 CPUs)
    assert tag == frames_tag(styles.fingerprint, 32, G.precision, 6)
    for first in range(0, 12, 4):
        images = G.synthesis(styles.layer_ws(list(range(first, first + 4))))
        pixels = ((images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for k in range(4):
            path = out / f"frame_{first + k + 1:06d}.png"
            assert np.array_equal(png.read_png(path), pixels[k])
            assert png.complete_png_tag(path, 32, 32) == (True, tag)
    before = frame_digests(out)
    # the still camera spelt otherwise: the same fingerprint, every frame kept
    again = run_generate(_job(click, out, models["t"], duration=3.0,
                              camera={"mode": "music", "drift": 0.0, "nudge": 0.0}))
    assert again.styles_reused and again.frames_reused == 12 and frame_digests(out) == before
    assert load_styles(out / "styles.npz").fingerprint == styles.fingerprint
    # a StyleGAN2 job stores no camera at all
    plain = tmp_path / "plain"
    run_generate(_job(click, plain, "default", duration=2.0, resolution=32, styles_only=True))
    with np.load(plain / "styles.npz", allow_pickle=False) as data:
        assert "camera" not in data.files and "camera_json" not in data.files
    assert result.frames_rendered == 12


def test_the_music_camera_through_the_pipeline_and_render(tmp_path, models, click):
    still, moving, off = tmp_path / "still", tmp_path / "moving", tmp_path / "off"
    run_generate(_job(click, still, models["r"], duration=6.0))
    run_generate(_job(click, moving, models["r"], duration=6.0, camera=CameraSettings(mode="music", nudge=0.1)))
    # motion off: the camera analyses the music itself, and finds the same downbeats
    run_generate(_job(click, off, models["r"], duration=6.0, motion=MOTION_OFF,
                      camera=CameraSettings(mode="music", nudge=0.1), styles_only=True))
    a, b, c = (load_styles(folder / "styles.npz") for folder in (still, moving, off))
    assert a.fingerprint != b.fingerprint
    assert b.camera_settings == CameraSettings(mode="music", nudge=0.1).record()
    assert b.motion is not None and c.motion is None
    np.testing.assert_allclose(b.camera, c.camera, atol=1e-9)
    assert np.abs(b.camera[:, :2]).max() > 0.05 and np.all(b.camera[:, 2] == 0)
    first, second = frame_digests(still), frame_digests(moving)
    assert len(first) == len(second) == 24 and sum(first[k] != second[k] for k in first) >= 20
    # rendered again from styles.npz: the stored camera, byte for byte
    for name in list(second)[:8]:
        (moving / name).unlink()
    render_frames(moving / "styles.npz", device="cpu", only_missing=True)
    assert frame_digests(moving) == second


def test_an_edited_camera_curve_renders_only_its_frames(tmp_path, models, click):
    out = tmp_path / "out"
    run_generate(_job(click, out, models["t"], duration=4.0, camera=CameraSettings(mode="music")))
    styles = load_styles(out / "styles.npz")
    groups = used_groups(styles.layer_group)
    names = style_edit.curve_names(groups, pulse_bands=style_edit.pulse_curve_bands(styles.motion, groups),
                                   camera=True)
    assert names[-3:] == list(CAMERA_CURVES)
    values, mean, basis = style_edit.curve_values(styles.group_ws, styles.truncation, groups, motion=styles.motion,
                                                  camera=styles.camera)
    style_edit.save_curves(style_edit.curves_path(out), names, groups, 1, values, values, mean, basis,
                           styles.truncation, frame_times=styles.frame_times, cuts=styles.motion.cut_frames)
    original = frame_digests(out)

    def update(values):
        np.savez(tmp_path / "edits.npz", values=values)
        return style_edit.update_frames(out / "styles.npz", tmp_path / "edits.npz", device="cpu")

    edited = values.copy()
    edited[5:8, names.index("camera_rotation")] += 30.0
    edited[9, names.index("camera_x")] += 0.1
    assert update(edited)["changed"] == [[5, 7], [9, 9]]
    now = frame_digests(out)
    assert sorted(k for k in now if now[k] != original[k]) == [f"frame_{i:06d}.png" for i in (6, 7, 8, 10)]
    assert update(edited)["frames_rendered"] == 0
    assert update(values)["changed"] == [[5, 7], [9, 9]]          # undone: the frames as generated
    assert frame_digests(out) == original


# ---------------------------------------------------------------------------------------------
# the command line

@pytest.mark.parametrize("options,words", [
    (["--camera", "orbit"], "argument --camera: invalid choice"),
    (["--camera", "music", "--camera-drift", "-1"], "camera drift must be a number between 0 and 10"),
    (["--camera-nudge", "0.1"], "--camera-nudge moves the camera with the music: add --camera music"),
    (["--camera-x", "nan"], "camera x must be a number"),
    (["--camera-rotation", "ninety"], "argument --camera-rotation: invalid float value"),
])
def test_bad_camera_options_are_one_line(tmp_path, click, options, words):
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", click, "--out", out, "--quiet", *options),
                      out_dir=out, mentions=words)


def test_a_moving_camera_is_refused_for_stylegan2(tmp_path, click):
    out = tmp_path / "out"
    for options in (["--camera", "music"], ["--camera-x", "0.1"]):
        assert_user_error(run_cli("generate", "--audio", click, "--out", out, "--fps", "4", "--resolution", "32",
                                  "--quiet", *options),
                          out_dir=out, mentions="is a StyleGAN2 generator, which has no camera")


def test_camera_options_through_the_cli(tmp_path, models, click):
    out = tmp_path / "out"
    process = run_cli("generate", "--audio", click, "--out", out, "--model", models["t"], "--fps", "4",
                      "--duration", "2", "--quiet", "--no-motion", "--camera", "music", "--camera-drift", "0.1",
                      "--camera-nudge", "0", "--camera-x", "0.2", "--camera-y", "-0.1", "--camera-rotation", "15")
    assert process.returncode == 0, process.stderr
    styles = load_styles(out / "styles.npz")
    assert styles.camera_settings == {"mode": "music", "drift": 0.1, "nudge": 0.0, "x": 0.2, "y": -0.1,
                                      "rotation": 15.0}
    assert styles.camera[0].tolist() == [0.2, -0.1, 15.0] and np.all(styles.camera[:, 2] == 15.0)
    assert len(frame_digests(out)) == 8


def test_the_generate_request_carries_the_camera():
    from traeumer_blender import protocol
    from traeumer_blender.worker import generate_settings

    fields = dict(audio="a.wav", out_dir="out", fps="30", start=0.0, model="default", smoothing=[3, 2, 0.3],
                  truncation=1.0, seed=0, device="cpu")
    assert protocol.PROTOCOL_VERSION >= 5
    request = protocol.build_request(protocol.GENERATE, camera=CameraSettings(mode="music", x=0.1).record(), **fields)
    settings = generate_settings(request["params"])
    assert settings.camera == CameraSettings(mode="music", x=0.1).record()
    assert protocol.build_request(protocol.GENERATE, **fields)["params"]["camera"] is None     # still
    with pytest.raises(protocol.ProtocolError, match="generate.camera must be an object"):
        protocol.build_request(protocol.GENERATE, camera="music", **fields)
