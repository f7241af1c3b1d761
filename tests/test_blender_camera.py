# SPDX-License-Identifier: GPL-3.0-or-later
"""The StyleGAN3 camera in real Blender (issue #14): Generate with a tiny StyleGAN3 model keys
"Camera X", "Camera Y" and "Camera Rotation"; an edited camera key + Update Frames renders only
the frames between its neighbours; StyleGAN2 tracks have no camera curves and the Camera panel
says why in one line. Real bpy, the real worker, tiny checkpoints written here (torch never loads
in Blender's process), a click track from ``music_fixtures``."""

import os
import subprocess
import sys

import pytest

from blender_harness import REPO_ROOT, TEST_WORKER_PYTHON, TESTS_DIR, run_in_blender, worker_python_env
from music_fixtures import click_track_wav

pytestmark = pytest.mark.blender

FPS = 4

# the checkpoints are written by a Python with torch (the worker's, where this one has none: 5.2)
WRITE_MODELS = """
import sys
import stylegan3_fixtures as fx3
from stylegan2_fixtures import random_state, tiny_config, write_nvidia_pytorch
fx3.write_nvidia_sg3(sys.argv[1], "t")
cfg = tiny_config(c_dim=0)
write_nvidia_pytorch(sys.argv[2], cfg, random_state(cfg))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("camera_files")
    sg3, sg2 = d / "tiny_sg3_t.pkl", d / "tiny_sg2.pkl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), str(REPO_ROOT)]))
    subprocess.run([TEST_WORKER_PYTHON or sys.executable, "-c", WRITE_MODELS, str(sg3), str(sg2)],
                   check=True, env=env, cwd=str(d), timeout=300)
    return {"sg3": sg3, "sg2": sg2, "click": click_track_wav(d / "click.wav", 8.0),
            "cache": {"TRAEUMER_CACHE_DIR": str(d / "cache")}}


SETUP = """
import glob, hashlib, os
import numpy as np
from blender_support import enable_from_source, extension_module, torch_imported
from frame_hashes import changed_frames, frame_digests
module = enable_from_source({repo!r})
jobs = extension_module(module, "addon.jobs")
compat = extension_module(module, "addon.compat")
style_curves = extension_module(module, "addon.style_curves")
styles_file = extension_module(module, "traeumer_blender.styles_file")
scene = bpy.context.scene

def fcurve_of(track, name):
    return compat.find_fcurve(scene, style_curves.track_data_path(track.name) + "." + name)

def curve_names(track):
    return sorted(f.data_path.rsplit(".", 1)[1] for f in style_curves.track_fcurves(scene, track))

def panel_text():
    '''What the Camera panel draws: its labels and the properties it shows (a recording layout).'''
    drawn = {{"labels": [], "props": []}}
    class Layout:
        def __getattr__(self, name):
            def call(*args, **kwargs):
                if name == "label":
                    drawn["labels"].append(kwargs.get("text", ""))
                if name == "prop":
                    drawn["props"].append(args[1])
                    assert hasattr(args[0], args[1]), args[1]
                return self
            return call
        def __setattr__(self, name, value):
            pass
    panel = type("Panel", (), {{"layout": Layout()}})()
    bpy.types.TRAEUMER_PT_camera.draw(panel, bpy.context)
    return drawn
"""


def test_camera_curves_an_edited_camera_key_and_the_stylegan2_line(tmp_path, files):
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
scene.render.fps, scene.render.fps_base = {FPS}, 1.0
settings = scene.traeumer
emit(parent=bpy.types.TRAEUMER_PT_camera.bl_parent_id, builtin_panel=panel_text(),
     defaults=[settings.camera_mode, settings.camera_drift, settings.camera_nudge, settings.camera_x])
strip = compat.new_sound_strip(scene, "Click", {str(files["click"])!r}, channel=1, frame_start=1)
scene.sequence_editor.active_strip = strip
settings.model_path = {str(files["sg3"])!r}
settings.output_dir = {str(tmp_path / "sg3")!r}
settings.camera_mode = "music"
settings.camera_nudge = 0.1
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
track = settings.tracks["Click"]
folder = bpy.path.abspath(track.output_dir)
styles = styles_file.load_styles(os.path.join(folder, "styles.npz"))
frames = track.frame_start + np.arange(track.frame_count)
keyed = np.stack([[fcurve_of(track, n).evaluate(float(f)) for f in frames]
                  for n in ("camera_x", "camera_y", "camera_rotation")], axis=1)
emit(state=[track.state, track.message], count=track.frame_count, has_camera=track.has_camera,
     names=curve_names(track), labels=[track.bl_rna.properties[n].name for n in ("camera_x", "camera_y", "camera_rotation")],
     camera_error=float(np.abs(keyed - styles.camera).max()), moved=float(np.abs(styles.camera[:, :2]).max()),
     sg3_panel=panel_text())

# move the camera_x key with the widest span: only the frames between its neighbours change
curve = fcurve_of(track, "camera_x")
points = curve.keyframe_points
k = max(range(1, len(points) - 1), key=lambda i: points[i + 1].co[0] - points[i - 1].co[0])
left, right = points[k - 1].co[0], points[k + 1].co[0]
original = points[k].co[1]
points[k].co[1] = original + 0.2
curve.update()
before = frame_digests(folder)
job = jobs.UpdateJob.start(bpy.context)
jobs.run_blocking(job)
after = frame_digests(folder)
emit(edit=[job.state, job.message], changed=changed_frames(before, after),
     expected=[int(f - track.frame_start) for f in range(int(left) + 1, int(right))])
job = jobs.UpdateJob.start(bpy.context)
jobs.run_blocking(job)
emit(again=[job.state, job.message])
points[k].co[1] = original
curve.update()
job = jobs.UpdateJob.start(bpy.context)
jobs.run_blocking(job)
emit(undone=[job.state, changed_frames(before, frame_digests(folder))])

# a StyleGAN2 model file: no camera curves, and the panel says why
settings.camera_mode = "still"
settings.model_path = {str(files["sg2"])!r}
settings.output_dir = {str(tmp_path / "sg2")!r}
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
emit(sg2=[track.state, track.message, track.has_camera, [n for n in curve_names(track) if n.startswith("camera")]],
     sg2_panel=panel_text())
# ... and a moving camera with it is one report
settings.camera_mode = "music"
try:
    bpy.ops.traeumer.generate()
    refused = "no error"
except RuntimeError as error:
    refused = str(error)
emit(refused=[refused, track.state, track.message], torch=torch_imported())
""", tmp_path / "run", timeout=900, env=files["cache"])

    assert result["parent"] == "TRAEUMER_PT_generate"
    assert result["defaults"] == ["still", pytest.approx(0.05), pytest.approx(0.02), 0.0]
    builtin = result["builtin_panel"]
    assert builtin["labels"] == ["No camera: the built-in generator is StyleGAN2 (only StyleGAN3 models move the picture)"]
    for name in ("camera_mode", "camera_drift", "camera_nudge", "camera_x", "camera_y", "camera_rotation"):
        assert name in builtin["props"], name

    assert result["state"][0] == "DONE", result["state"]
    assert result["count"] == 8 * FPS and result["has_camera"] is True
    assert {"camera_x", "camera_y", "camera_rotation", "coarse_pc1"} <= set(result["names"])
    assert result["labels"] == ["Camera X", "Camera Y", "Camera Rotation"]
    assert result["camera_error"] <= 1e-3 + 1e-6 and result["moved"] > 0.05
    assert result["sg3_panel"]["labels"] == []

    assert result["edit"][0] == "DONE", result["edit"]
    assert result["changed"] == result["expected"] and len(result["changed"]) >= 1
    assert "nothing to render" in result["again"][1]
    assert result["undone"] == ["DONE", []]

    state, message, has_camera, camera_curves = result["sg2"]
    assert state == "DONE", message
    assert has_camera is False and camera_curves == []
    assert result["sg2_panel"]["labels"] == [
        "No camera curves on 'Click': its model is StyleGAN2 (only StyleGAN3 models move the picture)"]
    # known before anything runs: one report, the track as it was
    refused, state, message = result["refused"]
    assert refused.strip().endswith("No camera curves on 'Click': its model is StyleGAN2 (only StyleGAN3 models "
                                    "move the picture): set Camera to Still (X, Y and Rotation 0)"), refused
    assert "Traceback" not in refused and state == "DONE"
    assert result["torch"] is False


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-m", "blender"]))


def test_traeumer_run_camera_options(tmp_path, files):
    """Scripted runs take the camera options: a music camera on a StyleGAN3 model moves; a value
    out of range is one line and exit status 2, before any job starts."""
    import numpy as np

    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"), **files["cache"], **worker_python_env())
    base = [sys.executable, str(REPO_ROOT / "traeumer_run.py"), "--", "--audio", str(files["click"]),
            "--model", str(files["sg3"]), "--fps", "8", "--duration", "4"]
    done = subprocess.run(base + ["--out", str(tmp_path / "run"), "--camera", "music", "--camera-nudge", "0.1"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    with np.load(tmp_path / "run" / "styles.npz", allow_pickle=False) as styles:
        camera = styles["camera"]
    assert camera.shape == (32, 3) and np.abs(camera[:, :2]).max() > 0.01
    bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), "--camera", "music", "--camera-nudge", "50"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert bad.returncode == 2 and "camera" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert not (tmp_path / "bad" / "styles.npz").exists()
