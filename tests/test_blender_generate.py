# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate from audio in real Blender, end to end, with the real worker and real music.

Every test runs in fresh Blender processes (bpy 5.0.1, and 4.5 LTS with ``-m blender``). Clips
are short, at low frame rates and 64 px, so the built-in generator keeps them CI-sized; the
expensive part is the worker loading the generator, so each process runs several steps.
"""

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from frame_hashes import changed_frames, frame_digests

from blender_harness import REPO_ROOT, SHARED_AUDIO, run_in_blender, worker_python_env

pytestmark = pytest.mark.blender

MP3 = SHARED_AUDIO / "frontiers.mp3"
OGG = SHARED_AUDIO / "hr-savino-ocean.ogg"


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """One engine cache for the module: w statistics are computed once, not per process."""
    return {"TRAEUMER_CACHE_DIR": str(tmp_path_factory.mktemp("traeumer_cache"))}


SETUP = """
import glob, hashlib, os, time
import numpy as np
from blender_support import enable_from_source, extension_module
from frame_hashes import changed_frames, frame_digests
module = enable_from_source({repo!r})
jobs = extension_module(module, "addon.jobs")
compat = extension_module(module, "addon.compat")
output = extension_module(module, "addon.output")
style_curves = extension_module(module, "addon.style_curves")
worker_client = extension_module(module, "addon.worker_client")
scene = bpy.context.scene
scene.traeumer.aspect = "1:1"   # square frames here; test_blender_drafts covers the scene's shape

def pixels(path):
    image = bpy.data.images.load(path, check_existing=False)
    values = np.array(image.pixels[:], dtype=np.float32).reshape(image.size[1], image.size[0], -1)[..., :3]
    bpy.data.images.remove(image)
    return values

def fcurve_of(track, name):
    return compat.find_fcurve(scene, style_curves.track_data_path(track.name) + "." + name)
"""


def test_generate_then_edit_a_curve_and_update_only_that_range(tmp_path, cache_env):
    blend = tmp_path / "project" / "edit.blend"
    blend.parent.mkdir()
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
scene.render.fps, scene.render.fps_base = 8, 1.0
bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})
strip = compat.new_sound_strip(scene, "Frontiers", {str(MP3)!r}, channel=2, frame_start=5)
strip.frame_offset_start = 8          # the first second is trimmed away
strip.frame_final_duration = 24       # 3 s at 8 fps
strip.sound.filepath = bpy.path.relpath(strip.sound.filepath)   # a //relative path
scene.sequence_editor.active_strip = strip
scene.traeumer.resolution = 64
scene.render.resolution_x = scene.render.resolution_y = 64   # the strip is scaled to fit this frame
emit(sound_path=strip.sound.filepath)
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}   # background: execute() drives the worker
track = scene.traeumer.tracks["Frontiers"]
folder = bpy.path.abspath(track.output_dir)
image_strip = output.find_strip(scene, track.image_strip)
emit(state=track.state, message=track.message, folder=folder, output_dir=track.output_dir,
     styles_path=track.styles_path, frames=sorted(os.path.basename(p) for p in glob.glob(folder + "/frame_*.png")),
     temp_files=[n for n in os.listdir(folder) if n.endswith(".tmp")],
     sound=[strip.channel, strip.frame_final_start, strip.frame_final_end],
     image_strip=[image_strip.channel, image_strip.frame_final_start, image_strip.frame_final_end,
                  len(image_strip.elements), image_strip.strip_elem_from_frame(18).filename],
     track_span=[track.frame_start, track.frame_count])

# the strip shows the right frame: render the Sequencer at scene frame 18 (frame file 6)
render = scene.render
render.resolution_x = render.resolution_y = 64
render.resolution_percentage = 100
scene.view_settings.view_transform = "Standard"
render.image_settings.file_format = "PNG"
render.filepath = os.path.join({str(tmp_path)!r}, "strip.png")
scene.frame_set(18)
bpy.ops.render.render(write_still=True)
shown = pixels(render.filepath)
emit(strip_error=float(np.abs(shown - pixels(folder + "/frame_000006.png")).max()),
     strip_error_neighbour=float(np.abs(shown - pixels(folder + "/frame_000007.png")).max()))

# the texture: an image sequence in a material, mapped so scene frame 13 + i shows file i + 1
image = bpy.data.images[track.image_name]
material = bpy.data.materials[track.material_name]
node = output.material_texture_node(material)
emit(image=[image.source, image.filepath], image_user=[node.image_user.frame_start, node.image_user.frame_duration,
     node.image_user.frame_offset, node.image_user.use_auto_refresh])
# render a plane with the material through Cycles and compare with the frame file
bpy.ops.mesh.primitive_plane_add(size=2.0)
plane = bpy.context.active_object
plane.data.materials.append(material)
node.interpolation = "Closest"
camera_data = bpy.data.cameras.new("Cam")
camera_data.type = "ORTHO"
camera_data.ortho_scale = 2.0
camera = bpy.data.objects.new("Cam", camera_data)
camera.location = (0, 0, 5)
scene.collection.objects.link(camera)
scene.camera = camera
for other in scene.objects:   # the startup file's cube would hide the plane
    other.hide_render = other not in (plane, camera)
render.use_sequencer = False
render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.device = "CPU"
scene.cycles.use_denoising = False
scene.cycles.filter_width = 0.01
render.filepath = os.path.join({str(tmp_path)!r}, "texture.png")
scene.frame_set(20)
bpy.ops.render.render(write_still=True)
shown = pixels(render.filepath)
emit(texture_error=float(np.abs(shown - pixels(folder + "/frame_000008.png")).max()),
     texture_error_neighbour=float(np.abs(shown - pixels(folder + "/frame_000009.png")).max()))
render.use_sequencer = True

# style curves
fcurves = style_curves.track_fcurves(scene, track)
emit(curve_paths=[f.data_path for f in fcurves],
     keys=sum(len(f.keyframe_points) for f in fcurves if "pulse" not in f.data_path),
     groups=sorted({{f.group.name for f in fcurves if f.group}}),
     labels=[track.bl_rna.properties[n].name for n in ("coarse_pc1", "fine_pc4", "truncation", "middle_intensity")],
     action=track.action_name, scene_action=scene.animation_data.action.name)

before = frame_digests(folder)
assert bpy.ops.traeumer.update_frames() == {{"FINISHED"}}   # no edit: nothing to render
emit(unchanged_after_noop=frame_digests(folder) == before)

# edit: raise one key of the coarse PC 1 curve; only frames between its neighbours change
fcurve = fcurve_of(track, "coarse_pc1")
points = fcurve.keyframe_points
middle = len(points) // 2
left, right = points[middle - 1].co[0], points[middle + 1].co[0]
original = points[middle].co[1]
points[middle].co[1] = original + 2.5
fcurve.update()
job = jobs.UpdateJob.start(bpy.context)
jobs.run_blocking(job)
after = frame_digests(folder)
emit(edit_state=job.state, edit_message=job.message, edit_result=job.result,
     expected=[int(f - track.frame_start) for f in range(int(left) + 1, int(right))],
     changed=changed_frames(before, after))

# undo the edit: the frames come back byte for byte
points[middle].co[1] = original
fcurve.update()
job = jobs.UpdateJob.start(bpy.context)
jobs.run_blocking(job)
emit(revert_state=job.state, restored=frame_digests(folder) == before)
bpy.ops.wm.save_mainfile()
""", tmp_path / "run", timeout=600, env=cache_env)

    assert result["sound_path"].startswith("//") and result["sound_path"].endswith("frontiers.mp3")
    assert result["state"] == "DONE", result["message"]
    # "//" paths are stored without Blender's warning that a property does not support them
    assert "does not support blend relative" not in result["_output"], result["_output"][-3000:]
    assert result["output_dir"].startswith("//traeumer/Frontiers"), "default folder, relative to the .blend"
    assert result["styles_path"] == "//traeumer/Frontiers/styles.npz"
    assert Path(result["folder"]).resolve() == (blend.parent / "traeumer" / "Frontiers").resolve()
    assert result["frames"] == [f"frame_{i:06d}.png" for i in range(1, 25)]
    assert result["temp_files"] == []
    sound_channel, sound_start, sound_end = result["sound"]
    assert (sound_start, sound_end) == (13, 37)
    channel, start, end, elements, shown = result["image_strip"]
    assert channel > sound_channel and (start, end) == (sound_start, sound_end) and elements == 24
    assert shown == "frame_000006.png"
    assert result["track_span"] == [13, 24]
    assert result["strip_error"] < 1e-6 < result["strip_error_neighbour"]
    assert result["image"] == ["SEQUENCE", "//traeumer/Frontiers/frame_000001.png"]
    assert result["image_user"] == [13, 24, 0, True]
    assert result["texture_error"] <= 2 / 255 < result["texture_error_neighbour"]

    # 16 style curves, and (motion is on by default) the pulse of the low and high bands and the
    # three groups' pulse amounts (tests/test_blender_motion.py)
    assert len(result["curve_paths"]) == 16 + 2 + 3
    assert 'traeumer.tracks["Frontiers"].coarse_pc1' in result["curve_paths"]
    assert 'traeumer.tracks["Frontiers"].pulse_low' in result["curve_paths"]
    assert result["groups"] == ["TräumerAI Frontiers"]
    assert result["labels"] == ["Coarse PC 1", "Fine PC 4", "Truncation", "Middle Intensity"]
    assert result["keys"] < 0.75 * 16 * 24, "keys are reduced, not one per frame"
    assert result["action"] == result["scene_action"]

    assert result["unchanged_after_noop"] is True
    assert result["edit_state"] == "DONE", result["edit_message"]
    assert result["changed"] == result["expected"] and result["changed"]
    assert result["edit_result"]["frames_rendered"] == len(result["expected"])
    assert result["revert_state"] == "DONE" and result["restored"] is True

    # styles.npz records the excerpt and the exact rate
    with np.load(Path(result["folder"]) / "styles.npz", allow_pickle=False) as styles:
        assert styles["group_ws"].shape[0] == 24
        assert (int(styles["fps_num"]), int(styles["fps_den"])) == (8, 1)
        assert float(styles["start"]) == pytest.approx(1.0)


def test_traeumer_run_script_at_fractional_rate_then_reopen_and_update(tmp_path, cache_env):
    out = tmp_path / "frames"
    blend = tmp_path / "scripted.blend"
    video = tmp_path / "scripted.mp4"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"), **cache_env, **worker_python_env())
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "traeumer_run.py"), "--", "--audio", str(OGG), "--out", str(out),
         "--blend", str(blend), "--fps", "29.97", "--start", "2", "--duration", "1.5", "--resolution", "64",
         "--render", str(video)],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-6000:]
    assert " s] Render 45/45" in log and "traeumer_run: Generated 45 frames" in log
    assert "traeumer_run: stage times: load" in log
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in range(1, 46)]
    with np.load(out / "styles.npz", allow_pickle=False) as styles:
        assert Fraction(int(styles["fps_num"]), int(styles["fps_den"])) == Fraction(30000, 1001)
        assert styles["group_ws"].shape[0] == 45
    assert video.stat().st_size > 1000

    before = frame_digests(out)
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
scene = bpy.context.scene
track = scene.traeumer.tracks[0]
strip = output.find_strip(scene, track.image_strip)
emit(track=track.name, state=track.state, styles_path=track.styles_path, output_dir=track.output_dir,
     fps=[scene.render.fps, round(scene.render.fps_base, 6)], strip=[strip.frame_final_start, len(strip.elements)],
     image=bpy.data.images[track.image_name].filepath, material=track.material_name in bpy.data.materials,
     curves=len(style_curves.track_fcurves(scene, track)), size=scene.traeumer.resolution,
     output_setting=scene.traeumer.output_dir)
fcurve = fcurve_of(track, "middle_pc2")
points = fcurve.keyframe_points
k = max(1, len(points) // 3)
left, right = points[k - 1].co[0], points[k + 1].co[0]
points[k].co[1] += 3.0
fcurve.update()
job = jobs.UpdateJob.start(bpy.context)
jobs.run_blocking(job)
emit(update=job.state, message=job.message,
     expected=[int(f - track.frame_start) for f in range(int(left) + 1, int(right))])
""", tmp_path / "reopen", timeout=600, env=cache_env)
    assert result["state"] == "DONE" and result["curves"] == 16 + 5 and result["material"] is True
    assert result["size"] == 64 and result["output_setting"] == str(out)
    assert result["styles_path"].startswith("//") and result["output_dir"].startswith("//")
    assert result["fps"] == [30, 1.001]
    assert result["strip"] == [1, 45]
    assert result["image"].startswith("//frames/")
    assert result["update"] == "DONE", result["message"]
    after = frame_digests(out)
    changed = changed_frames(before, after)
    assert changed == result["expected"] and changed


def test_traeumer_run_script_reports_bad_input(tmp_path):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "traeumer_run.py"), "--", "--audio", str(tmp_path / "missing.mp3"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert completed.returncode == 2
    assert "traeumer_run: error: audio file not found" in completed.stderr
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "traeumer_run.py"), "--", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert completed.returncode == 2
    assert "no sound strip" in completed.stderr


def test_traeumer_run_from_an_installed_extension_reports_a_failing_model(tmp_path):
    """The script inside an installed (not yet enabled) extension enables that copy and runs the
    job with it; a model file that fails to load ends the run with status 1 and the loader's
    message, and no frames."""
    user = tmp_path / "user"
    installed = user / "extensions" / "user_default" / "traeumer"
    installed.parent.mkdir(parents=True)
    installed.symlink_to(REPO_ROOT, target_is_directory=True)
    bad_model = tmp_path / "broken.pkl"
    bad_model.write_bytes(b"\x80\x04not really a pickle" * 50)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(user), **worker_python_env())
    completed = subprocess.run(
        [sys.executable, str(installed / "traeumer_run.py"), "--", "--audio", str(OGG),
         "--out", str(tmp_path / "out"), "--duration", "1", "--fps", "4", "--resolution", "64",
         "--model", str(bad_model)],
        capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    log = completed.stdout + completed.stderr
    assert f"traeumer_run: extension bl_ext.user_default.traeumer from {installed}" in log, log[-3000:]
    assert completed.returncode == 1, log[-3000:]
    assert "traeumer_run: error:" in completed.stderr and "broken.pkl" in completed.stderr
    assert not list((tmp_path / "out").glob("frame_*.png"))


def test_bad_input_is_reported_and_blender_keeps_running(tmp_path, cache_env):
    song = tmp_path / "song.ogg"
    song.write_bytes(OGG.read_bytes())
    bad_model = tmp_path / "broken.pt"
    bad_model.write_bytes(b"this is not a checkpoint" * 100)
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    # root ignores permissions: use a read-only file system there
    readonly_dir = str(readonly) if os.geteuid() != 0 else "/sys/kernel"
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
reports = {{}}
def attempt(label):
    try:
        outcome = bpy.ops.traeumer.generate()
        reports[label] = ["OK", str(outcome)]
    except RuntimeError as error:   # background mode turns an ERROR report into RuntimeError
        reports[label] = ["ERROR", str(error)]

scene.render.fps = 4
attempt("no_strip")
strip = compat.new_sound_strip(scene, "Song", {str(song)!r}, channel=1, frame_start=1)
strip.frame_final_duration = 8
scene.sequence_editor.active_strip = strip
scene.traeumer.resolution = 64
scene.traeumer.output_dir = {readonly_dir!r}
attempt("read_only")

# an unsaved file with the default //traeumer/ folder: a temporary folder, with a warning
scene.traeumer.output_dir = ""
job = jobs.GenerateJob.start(bpy.context)
emit(unsaved_warning=job.warnings, unsaved_folder=job.folder)
job.cancel()
jobs.run_blocking(job)
emit(unsaved_state=job.state)
scene.traeumer.output_dir = {str(tmp_path / "out")!r}

scene.traeumer.model_path = {str(bad_model)!r}
attempt("bad_model")
scene.traeumer.model_path = {str(tmp_path / "no_such_model.pt")!r}
attempt("missing_model")
scene.traeumer.model_path = ""

os.rename({str(song)!r}, {str(song)!r} + ".moved")
attempt("missing_audio")
with open({str(song)!r}, "wb") as stream:
    stream.write(os.urandom(50000))
attempt("unreadable_audio")
emit(reports=reports, still_running=True, frames=glob.glob({str(tmp_path / "out")!r} + "/*.png"),
     tracks=[(t.name, t.state) for t in scene.traeumer.tracks])
""", tmp_path / "run", timeout=600, env=dict(cache_env, TMPDIR=str(temp_dir)))
    reports = result["reports"]
    assert reports["no_strip"][0] == "ERROR" and "No sound strip" in reports["no_strip"][1]
    assert reports["read_only"][0] == "ERROR"
    assert "not writable" in reports["read_only"][1] or "Cannot create" in reports["read_only"][1]
    assert any("not saved" in w for w in result["unsaved_warning"])
    assert result["unsaved_folder"] == str(temp_dir / "traeumer" / "Song")
    assert result["unsaved_state"] in ("CANCELLED", "DONE")
    assert reports["bad_model"][0] == "ERROR" and "broken.pt" in reports["bad_model"][1]
    assert reports["missing_model"][0] == "ERROR" and "Model file not found" in reports["missing_model"][1]
    assert reports["missing_audio"][0] == "ERROR" and "missing" in reports["missing_audio"][1]
    assert reports["unreadable_audio"][0] == "ERROR" and "decode" in reports["unreadable_audio"][1]
    assert result["still_running"] is True
    assert result["frames"] == []


def test_generate_takes_the_only_sound_strip_and_names_the_strips_to_choose_from(tmp_path, cache_env):
    """No strip chosen and no sound strip active: the scene's only sound strip is used; with
    several, the error names them."""
    out = tmp_path / "out"
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
timeline = extension_module(module, "addon.timeline")
scene.render.fps = 4
song = compat.new_sound_strip(scene, "Only Song", {str(OGG)!r}, channel=1, frame_start=1)
song.frame_final_duration = 4
colour = compat.new_color_strip(scene, "Colour", channel=3, frame_start=1, length=4)
scene.sequence_editor.active_strip = colour      # active, but not a sound strip
scene.traeumer.resolution = 32
scene.traeumer.output_dir = {str(out)!r}
emit(active=scene.sequence_editor.active_strip.name, chosen=scene.traeumer.strip_name,
     target=getattr(timeline.target_sound_strip(scene), "name", None))
outcome = bpy.ops.traeumer.generate()
track = scene.traeumer.tracks.get("Only Song")
emit(outcome=sorted(outcome), state=track.state if track else None, message=track.message if track else "",
     frames=len(glob.glob({str(out)!r} + "/frame_*.png")))

for name, channel in (("Second Song", 2), ("Third Song", 4)):
    compat.new_sound_strip(scene, name, {str(OGG)!r}, channel=channel, frame_start=1)
scene.sequence_editor.active_strip = None
try:
    bpy.ops.traeumer.generate()
    several = "no error"
except RuntimeError as error:   # background mode turns an ERROR report into RuntimeError
    several = str(error)
emit(several=several, several_target=timeline.target_sound_strip(scene) is None,
     several_message=timeline.missing_sound_strip_message(scene))
scene.sequence_editor.active_strip = compat.all_strips(scene)["Third Song"]
emit(active_target=timeline.target_sound_strip(scene).name, active_message=timeline.missing_sound_strip_message(scene))
""", tmp_path / "run", timeout=600, env=cache_env)
    assert result["active"] == "Colour" and result["chosen"] == "" and result["target"] == "Only Song"
    assert result["outcome"] == ["FINISHED"]
    assert result["state"] == "DONE", result["message"]
    assert result["frames"] == 4
    assert result["several_target"] is True
    assert "No sound strip chosen" in result["several"], result["several"]
    for name in ("'Only Song'", "'Second Song'", "'Third Song'"):
        assert name in result["several"], result["several"]
    assert result["several_message"] in result["several"]
    assert result["active_target"] == "Third Song" and result["active_message"] == ""


def test_cancel_and_killed_worker_leave_no_partial_frames_and_rerun_resumes(tmp_path, cache_env):
    """AAC in MP4 (libsndfile cannot read it) goes through Blender's decoder on the way."""
    out = tmp_path / "out"
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
import signal
scene.render.fps = 6
source = compat.new_sound_strip(scene, "Source", {str(OGG)!r}, channel=1, frame_start=1)
source.frame_final_duration = 30
scene.frame_start, scene.frame_end = 1, 30
mp4 = {str(tmp_path / "song.mp4")!r}
# an MP4 with AAC sound, written by Blender's own FFmpeg output (a black 32 px video; the colour
# strip makes it a Sequencer render, not a 3D one)
compat.new_color_strip(scene, "Black", channel=2, frame_start=1, length=30)
scene.render.resolution_x = scene.render.resolution_y = 32
compat.set_video_output(scene, mp4)
scene.render.ffmpeg.use_autosplit = False
bpy.ops.render.render(animation=True)
mp4 = scene.render.frame_path(frame=1)
for old in list(compat.top_level_strips(scene.sequence_editor)):
    compat.top_level_strips(scene.sequence_editor).remove(old)
strip = compat.new_sound_strip(scene, "Song", mp4, channel=1, frame_start=1)
strip.frame_final_duration = 24
scene.sequence_editor.active_strip = strip
scene.traeumer.resolution = 64
scene.traeumer.output_dir = {str(out)!r}

from blender_support import pause_process, resume_process

def frame_files():
    return sorted(n for n in os.listdir({str(out)!r}) if n.startswith("frame_"))

def temp_files():
    return sorted(n for n in os.listdir({str(out)!r}) if n.endswith(".tmp"))

# Drive the job until enough(frame files on disk) holds; return that count with the worker
# stopped (SIGSTOP), or None when the job ended first. Events queue up while Blender handles
# earlier ones (the styles event writes the style curves), so a render event says little about
# how far a fast worker already is: the worker is stopped as soon as its styles are ready (before
# it renders) and from then on runs only in short slices, its frames counted while it is stopped.
def run_until_frames(job, enough):
    pid, stopped = job.client.pid, False
    while not job.finished:
        event = job.client.wait(0 if stopped else 0.2)
        if event is not None:
            if not stopped and (event.get("event") == "styles" or event.get("stage") in ("style", "render")):
                pause_process(pid)
                stopped = True
            job.handle(event)
            continue
        if stopped:
            count = len(frame_files())
            if enough(count):
                return count
            resume_process(pid)
            time.sleep(0.002)
            pause_process(pid)
    return None

# cancel once 4 frames are written: the worker is stopped, the cancel request waits in its pipe
job = jobs.GenerateJob.start(bpy.context)
cancel_at = run_until_frames(job, lambda count: count >= 4)
job.cancel()
resume_process(job.client.pid)
jobs.run_blocking(job)
emit(cancel_at=cancel_at, cancel_state=job.state, cancel_message=job.message, after_cancel=len(frame_files()),
     temp_after_cancel=temp_files(), decoded=os.path.exists({str(out / "source_audio.wav")!r}))

# kill the worker (stopped) once this run has written 2 more frames
job = jobs.GenerateJob.start(bpy.context)
pid = job.client.pid
before_kill = len(frame_files())
kill_at = run_until_frames(job, lambda count: count >= before_kill + 2)
os.kill(pid, signal.SIGKILL)
jobs.run_blocking(job)
emit(before_kill=before_kill, kill_at=kill_at, kill_state=job.state, kill_message=job.message,
     after_kill=len(frame_files()), temp_after_kill=temp_files(),
     track_state=scene.traeumer.tracks["Song"].state)

job = jobs.GenerateJob.start(bpy.context)
emit(new_worker=job.client.pid != pid)
jobs.run_blocking(job)
emit(final_state=job.state, final_message=job.message, result=job.result, final_frames=len(frame_files()))
""", tmp_path / "run", timeout=600, env=cache_env)
    # the cancel request reached the worker while frames were left to render
    assert result["cancel_at"] is not None and 4 <= result["cancel_at"] < 24, result["cancel_at"]
    assert result["cancel_state"] == "CANCELLED", result["cancel_message"]
    assert "resumes" in result["cancel_message"]
    assert result["decoded"] is True
    assert result["cancel_at"] <= result["after_cancel"] < 24 and result["temp_after_cancel"] == []
    # the worker died with frames left to render, and wrote nothing after it was stopped
    assert result["before_kill"] == result["after_cancel"]
    assert result["kill_at"] is not None and result["after_cancel"] + 2 <= result["kill_at"] < 24, result["kill_at"]
    assert result["kill_state"] == "FAILED"
    assert "worker stopped unexpectedly" in result["kill_message"]
    assert result["track_state"] == "FAILED"
    assert result["after_kill"] == result["kill_at"] and result["temp_after_kill"] == []
    assert result["new_worker"] is True
    assert result["final_state"] == "DONE", result["final_message"]
    assert result["final_frames"] == 24
    assert result["result"]["frames_reused"] >= result["after_kill"] > 0
    assert result["result"]["frames_rendered"] == 24 - result["result"]["frames_reused"]
    for name in sorted(out.glob("frame_*.png")):
        assert name.read_bytes().startswith(b"\x89PNG")


def test_worker_lifecycle_ping_idle_timeout_disable_and_other_python(tmp_path):
    other_python = tmp_path / "venv" / "bin" / "python"   # a link to this Python, by another name
    other_python.parent.mkdir(parents=True)
    other_python.symlink_to(sys.executable)
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
import addon_utils
from blender_support import torch_imported
prefs = bpy.context.preferences.addons[module].preferences
prefs.idle_timeout = 2.0
client = worker_client.ensure_client("", 2.0)
request = client.send("ping")
pong = client.wait(30)
emit(pong=pong, same=worker_client.ensure_client("", 2.0) is client, torch=torch_imported(),
     worker_python=client.ready.get("python"), blender_python=sys.executable)
events = []
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    event = client.wait(0.5)
    if event is not None:
        events.append(event["event"])
        if event["event"] == "exit":
            break
emit(idle_events=events, alive_after_idle=client.alive)
client = worker_client.ensure_client("", 600)
pid = client.pid
addon_utils.disable(module, default_set=True)
time.sleep(0.5)
try:
    os.kill(pid, 0)
    gone = client.process.poll() is not None
except ProcessLookupError:
    gone = True
emit(stopped_on_disable=gone, client_after_disable=worker_client.current_client() is None)

# the Worker Python preference: another Python runs the worker
addon_utils.enable(module, default_set=True)
preferences = extension_module(module, "addon.preferences")
worker_client = extension_module(module, "addon.worker_client")
bpy.context.preferences.addons[module].preferences.worker_python = {str(other_python)!r}
client = worker_client.ensure_client(*preferences.worker_settings())
emit(other_python=client.ready.get("python"))
# that Python lacks the engine's packages (a bare interpreter): the job says so
request = client.send("generate", audio={str(OGG)!r}, out_dir={str(tmp_path / "out")!r}, fps="30",
                      start=0.0, model="default", smoothing=[3.0, 2.0, 0.3], truncation=1.0, seed=0,
                      device="cpu")
event = client.wait(60)
while event is not None and event["event"] == "progress":
    event = client.wait(60)
emit(missing_packages=event)
worker_client.stop_worker()
""", tmp_path, timeout=300)
    assert result["pong"]["event"] == "pong"
    assert result["same"] is True, "the worker is kept alive between requests"
    assert result["worker_python"] == result["blender_python"], "an empty Worker Python means Blender's own Python"
    assert result["torch"] is False, "Blender's own process never imports torch (nor tries to)"
    assert "bye" in result["idle_events"] and result["idle_events"][-1] == "exit"
    assert result["alive_after_idle"] is False
    assert result["stopped_on_disable"] is True
    assert result["other_python"] == str(other_python)
    if result["missing_packages"]["event"] == "error":   # the link runs the base Python without the venv
        assert "cannot import" in result["missing_packages"]["message"]
        assert "Worker Python" in result["missing_packages"]["message"]
