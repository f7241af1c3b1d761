# SPDX-License-Identifier: GPL-3.0-or-later
"""Musical motion in real Blender: the Motion settings, section and beat markers, pulse curves,
Update Frames after an edited pulse curve or a moved section marker (issue #13).

Every test runs in fresh Blender processes (bpy 5.0.1, and 4.5 LTS and 5.2 LTS with
``-m blender``), with the real worker. The music is made up (``music_fixtures``): 10 s of drums
at 120 BPM, then 10 s of a held chord, so the analysis finds two sections and beats in the first;
4 fps and 32 px keep the 80 frames CI-sized.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from blender_harness import REPO_ROOT, SHARED_AUDIO, run_in_blender, worker_python_env
from music_fixtures import silence_wav, two_sections_wav

pytestmark = pytest.mark.blender

OGG = SHARED_AUDIO / "hr-savino-ocean.ogg"
FPS = 4


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """One engine cache for the module: w statistics are computed once, not per process."""
    return {"TRAEUMER_CACHE_DIR": str(tmp_path_factory.mktemp("traeumer_cache"))}


@pytest.fixture(scope="module")
def two_sections(tmp_path_factory):
    return two_sections_wav(tmp_path_factory.mktemp("music") / "two_sections.wav")


SETUP = """
import glob, hashlib, os
import numpy as np
from blender_support import enable_from_source, extension_module
from frame_hashes import changed_frames, frame_digests
module = enable_from_source({repo!r})
jobs = extension_module(module, "addon.jobs")
compat = extension_module(module, "addon.compat")
markers = extension_module(module, "addon.markers")
style_curves = extension_module(module, "addon.style_curves")
styles_file = extension_module(module, "traeumer_blender.styles_file")
scene = bpy.context.scene

def fcurve_of(track, name):
    return compat.find_fcurve(scene, style_curves.track_data_path(track.name) + "." + name)

def marker_list():
    return sorted([m.name, m.frame] for m in scene.timeline_markers)

def update():
    job = jobs.UpdateJob.start(bpy.context)
    jobs.run_blocking(job)
    return job
"""


def test_markers_pulse_curves_an_edited_pulse_and_a_moved_cut(tmp_path, cache_env, two_sections):
    blend = tmp_path / "project" / "motion.blend"
    blend.parent.mkdir()
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
scene.render.fps, scene.render.fps_base = {FPS}, 1.0
bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})
strip = compat.new_sound_strip(scene, "Two", {str(two_sections)!r}, channel=1, frame_start=11)
scene.sequence_editor.active_strip = strip
settings = scene.traeumer
settings.resolution = 32
settings.beat_markers = True
scene.timeline_markers.new("My cue", frame=15)
scene.timeline_markers.new("Drop", frame=60)
emit(defaults=[settings.use_motion, settings.pulse_coarse, settings.pulse_middle, settings.pulse_fine,
               settings.pulse_band_coarse, settings.pulse_band_middle, settings.pulse_band_fine,
               settings.motion_cuts, settings.motion_hold, settings.beat_markers])
# the kick band moves the middle layers and the hats the fine ones (the defaults use the full band)
settings.pulse_band_middle, settings.pulse_band_fine = "low", "high"
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
track = settings.tracks["Two"]
folder = bpy.path.abspath(track.output_dir)
styles = styles_file.load_styles(os.path.join(folder, "styles.npz"))
record = styles.motion
sections = [[r.name, r.frame] for r in track.markers if r.kind == "SECTION"]
beats = [[r.name, r.frame] for r in track.markers if r.kind == "BEAT"]
names = [f.data_path.rsplit(".", 1)[1] for f in style_curves.track_fcurves(scene, track)]
pulse = fcurve_of(track, "pulse_low")
frames = track.frame_start + np.arange(track.frame_count)
exact = record.pulse[:, list(record.pulse_bands).index("low")]
keyed = np.array([pulse.evaluate(float(f)) for f in frames])
amounts = {{n: [[round(k.co[0]), round(k.co[1], 6)] for k in fcurve_of(track, n).keyframe_points]
           for n in ("coarse_pulse", "middle_pulse", "fine_pulse")}}
emit(state=track.state, message=track.message, frame_start=track.frame_start, count=track.frame_count,
     sections=sections, beats=beats, cut_frames=record.cut_frames.tolist(),
     analysis_sections=record.analysis["sections"], curve_names=names, amounts=amounts,
     pulse_error=float(np.abs(keyed - exact).max()), pulse_keys=len(pulse.keyframe_points),
     markers_after_generate=marker_list(), labels=[track.bl_rna.properties[n].name for n in ("pulse_low", "middle_pulse")])

# generate again without beat markers; the user renamed one of the track's beat markers first
renamed = next(m for m in scene.timeline_markers if m.name == beats[1][0])
renamed.name = "my beat"
settings.beat_markers = False
before = frame_digests(folder)
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
emit(markers_after_regenerate=marker_list(), regenerate_kept=frame_digests(folder) == before,
     records_after_regenerate=[[r.name, r.frame, r.kind] for r in track.markers])

# edit the low band's pulse (keyed anew by the second Generate): raise one key; only frames
# between its neighbours change
pulse = fcurve_of(track, "pulse_low")
points = pulse.keyframe_points
k = max(range(1, len(points) - 1), key=lambda i: points[i + 1].co[0] - points[i - 1].co[0])   # the widest span
left, right = points[k - 1].co[0], points[k + 1].co[0]
original_value = points[k].co[1]
points[k].co[1] = original_value + 0.6
pulse.update()
before = frame_digests(folder)
job = update()
after = frame_digests(folder)
emit(pulse_edit=[job.state, job.message], pulse_changed=changed_frames(before, after),
     pulse_expected=[int(f - track.frame_start) for f in range(int(left) + 1, int(right))])
points[k].co[1] = original_value
pulse.update()
job = update()
emit(pulse_undone=[job.state, job.message, changed_frames(before, frame_digests(folder))])

# move the second section's marker 2 s (8 frames) later
generated = frame_digests(folder)
second = next(m for m in scene.timeline_markers if m.name == sections[1][0])
second.frame += 8
job = update()
moved = frame_digests(folder)
emit(cut_move=[job.state, job.message, job.result.get("cuts")], cut_changed=changed_frames(generated, moved))
job = update()
emit(second_update=[job.state, job.message, changed_frames(moved, frame_digests(folder))])

# saved and opened again: the markers are still the track's, nothing to render
bpy.ops.wm.save_mainfile()
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
scene = bpy.context.scene
job = update()
emit(after_reopen=[job.state, job.message])
next(m for m in scene.timeline_markers if m.name == sections[1][0]).frame -= 8
job = update()
emit(moved_back=[job.state, changed_frames(generated, frame_digests(folder))])
""", tmp_path / "run", timeout=900, env=cache_env)

    assert result["defaults"] == [True, 0.0, pytest.approx(0.6), pytest.approx(0.8), "low", "full", "full",
                                  True, "none", True]
    assert result["state"] == "DONE", result["message"]
    start, count = result["frame_start"], result["count"]
    assert (start, count) == (11, 20 * FPS)
    # sections: at the track's first frame and at the cut, named with time and tags
    (cut,) = result["cut_frames"]
    assert abs(cut / FPS - 10.0) <= 1.0
    (first, first_frame), (second, second_frame) = result["sections"]
    tags = [section["tags"] for section in result["analysis_sections"]]
    assert first == "0:00 " + " · ".join(tags[0]) and first_frame == start
    assert second.startswith(f"0:{int(result['analysis_sections'][1]['start']):02d} ") and second_frame == start + cut
    assert all(tags) and " · ".join(tags[1]) in second
    # beats: every 0.5 s of the drums, bar.beat names, on frames
    assert 15 <= len(result["beats"]) <= 21
    assert result["beats"][0][0] in ("0.1", "1.1") and all("." in name for name, _ in result["beats"])
    assert all(start <= frame < start + cut for _, frame in result["beats"])
    markers = result["markers_after_generate"]
    assert ["My cue", 15] in markers and ["Drop", 60] in markers
    assert len(markers) == 2 + 2 + len(result["beats"])
    # pulse curves and amounts beside the style curves
    for name in ("pulse_low", "pulse_high", "coarse_pulse", "middle_pulse", "fine_pulse", "coarse_pc1"):
        assert name in result["curve_names"], name
    assert "pulse_mid" not in result["curve_names"] and "pulse_full" not in result["curve_names"]
    assert result["amounts"] == {"coarse_pulse": [[start, 0.0], [start + count - 1, 0.0]],
                                 "middle_pulse": [[start, 0.6], [start + count - 1, 0.6]],
                                 "fine_pulse": [[start, 0.8], [start + count - 1, 0.8]]}
    assert result["pulse_error"] <= 0.02 + 1e-6
    assert result["pulse_keys"] < count
    assert result["labels"] == ["Pulse Low", "Middle Pulse"]

    # generating again replaced the track's markers, and left the user's (and the renamed one)
    after = result["markers_after_regenerate"]
    assert ["My cue", 15] in after and ["Drop", 60] in after
    assert any(name == "my beat" for name, _ in after)
    assert sorted(after) == sorted([["My cue", 15], ["Drop", 60], ["my beat", result["beats"][1][1]],
                                    [first, first_frame], [second, second_frame]])
    assert result["records_after_regenerate"] == [[first, first_frame, "SECTION"], [second, second_frame, "SECTION"]]
    assert result["regenerate_kept"] is True

    # the edited pulse curve re-rendered exactly the frames between the key's neighbours
    assert result["pulse_edit"][0] == "DONE", result["pulse_edit"]
    assert result["pulse_changed"] == result["pulse_expected"] and len(result["pulse_changed"]) > 1
    assert result["pulse_undone"][0] == "DONE" and result["pulse_undone"][2] == []

    # the moved cut re-rendered frames around the old and the new cut only
    state, message, cuts = result["cut_move"]
    assert state == "DONE", message
    assert cuts == [cut + 8]
    changed = result["cut_changed"]
    reach = int(np.ceil(3.0 / 2 * FPS)) + 2          # half the coarse window, the box's edge, the crossfade
    assert set(range(cut, cut + 8)) <= set(changed)
    assert min(changed) >= cut - reach and max(changed) <= cut + 8 + reach
    assert result["second_update"][0] == "DONE" and "nothing to render" in result["second_update"][1]
    assert result["second_update"][2] == []
    assert result["after_reopen"][0] == "DONE" and "nothing to render" in result["after_reopen"][1]
    assert result["moved_back"] == ["DONE", []]


def test_motion_off_silence_a_short_strip_and_bad_settings(tmp_path, cache_env):
    silence = silence_wav(tmp_path / "silence.wav", seconds=3.0)
    out = tmp_path / "out"
    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
scene.render.fps = {FPS}
settings = scene.traeumer
settings.resolution = 32
scene.timeline_markers.new("Mine", frame=3)

# the Motion sub-panel: registered under Generate, and it draws (a recording stand-in layout)
panel_class = bpy.types.TRAEUMER_PT_motion
drawn = []
class Layout:
    def __getattr__(self, name):
        def call(*args, **kwargs):
            if name == "prop":
                drawn.append(args[1])
                assert hasattr(args[0], args[1]), args[1]
            return self
        return call
panel = type("Panel", (), {{"layout": Layout()}})()
panel_class.draw(panel, bpy.context)
panel_class.draw_header(panel, bpy.context)
emit(panel=[panel_class.bl_parent_id, drawn])

song = compat.new_sound_strip(scene, "Song", {str(OGG)!r}, channel=1, frame_start=1)
song.frame_final_duration = 3 * {FPS}
scene.sequence_editor.active_strip = song
settings.output_dir = {str(out / "song")!r}
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
track = settings.tracks["Song"]
emit(with_motion=[track.state, len(track.markers), len(style_curves.track_fcurves(scene, track))])

# motion off: the track's markers and pulse curves go, the user's marker stays
settings.use_motion = False
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
styles = styles_file.load_styles(os.path.join(settings.output_dir, "styles.npz"))
emit(without_motion=[track.state, len(track.markers), len(style_curves.track_fcurves(scene, track)),
                     styles.motion is None, marker_list()])
fcurve = fcurve_of(track, "coarse_pc1")
fcurve.keyframe_points[1].co[1] += 1.0
fcurve.update()
job = update()
emit(update_without_motion=[job.state, job.message])
settings.use_motion = True

# bad motion settings are one report, before anything runs
settings.pulse_attack = 5.0
try:
    bpy.ops.traeumer.generate()
    bad = "no error"
except RuntimeError as error:
    bad = str(error)
emit(bad_setting=bad)
settings.pulse_attack = 0.01

# silence: no beat, one section, a flat pulse
quiet = compat.new_sound_strip(scene, "Silence", {str(silence)!r}, channel=5, frame_start=1)
scene.sequence_editor.active_strip = quiet
settings.strip_name = ""
settings.output_dir = {str(out / "silence")!r}
settings.beat_markers = True
bpy.ops.traeumer.generate()
track = settings.tracks["Silence"]
pulse = fcurve_of(track, "pulse_low")
emit(silence=[track.state, track.message, [[r.name, r.frame, r.kind] for r in track.markers],
              None if pulse is None else max(abs(k.co[1]) for k in pulse.keyframe_points),
              len(glob.glob(settings.output_dir + "/frame_*.png"))])

# a strip of half a second: two frames
short = compat.new_sound_strip(scene, "Short", {str(OGG)!r}, channel=7, frame_start=40)
short.frame_final_duration = 2
scene.sequence_editor.active_strip = short
settings.output_dir = {str(out / "short")!r}
bpy.ops.traeumer.generate()
track = settings.tracks["Short"]
emit(short=[track.state, track.message, track.frame_count, [[r.name, r.frame] for r in track.markers],
            len(style_curves.track_fcurves(scene, track))])
job = update()
emit(short_update=[job.state, job.message], mine=[m.frame for m in scene.timeline_markers if m.name == "Mine"])
""", tmp_path / "run", timeout=900, env=cache_env)

    parent, drawn = result["panel"]
    assert parent == "TRAEUMER_PT_generate"
    for name in ("use_motion", "pulse_coarse", "pulse_band_fine", "pulse_attack", "pulse_release", "motion_cuts",
                 "motion_crossfade", "motion_hold", "beat_markers"):
        assert name in drawn, name
    state, marker_count, curve_count = result["with_motion"]
    assert state == "DONE" and marker_count >= 1 and curve_count > 16
    state, marker_count, curve_count, no_record, markers = result["without_motion"]
    assert state == "DONE" and marker_count == 0 and curve_count == 16 and no_record is True
    assert markers == [["Mine", 3]]
    assert result["update_without_motion"][0] == "DONE", result["update_without_motion"]
    assert "Motion: Attack must be a number between 0 and 2" in result["bad_setting"]
    state, message, records, pulse_peak, frames = result["silence"]
    assert state == "DONE", message
    assert [kind for _, _, kind in records] == ["SECTION"] and records[0][0].startswith("0:00") and records[0][1] == 1
    assert pulse_peak is None or pulse_peak == 0.0
    assert frames == 3 * FPS
    state, message, count, records, curve_count = result["short"]
    assert state == "DONE", message
    assert count == 2 and records == [[records[0][0], 40]] and records[0][0].startswith("0:00")
    assert result["short_update"][0] == "DONE" and "nothing to render" in result["short_update"][1]
    assert result["mine"] == [3]


def test_traeumer_run_takes_the_motion_options(tmp_path, cache_env, two_sections):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"), **cache_env, **worker_python_env())

    def run(*options, out="out"):
        return subprocess.run([sys.executable, str(REPO_ROOT / "traeumer_run.py"), "--", "--audio", str(two_sections),
                               "--out", str(tmp_path / out), "--fps", str(FPS), "--duration", "6",
                               "--resolution", "32", *options],
                              capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))

    completed = run("--pulse", "0,2,0")
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "traeumer_run: error: motion: pulse amounts must be between 0 and 1" in completed.stderr

    blend = tmp_path / "options.blend"
    completed = run("--pulse", "0.1,0.3,0.5", "--pulse-bands", "full,mid,high", "--attack", "0.02",
                    "--release", "0.4", "--no-cuts", "--crossfade", "0.5", "--hold", "beat", "--beat-markers",
                    "--blend", str(blend))
    log = completed.stdout + completed.stderr
    assert completed.returncode == 0, log[-4000:]
    with np.load(tmp_path / "out" / "styles.npz", allow_pickle=False) as styles:
        recorded = json.loads(str(styles["motion_json"]))
    assert recorded["pulse_amounts"] == [0.1, 0.3, 0.5] and recorded["pulse_bands"] == ["full", "mid", "high"]
    assert (recorded["attack"], recorded["release"], recorded["crossfade"]) == (0.02, 0.4, 0.5)
    assert recorded["cuts"] is False and recorded["hold"] == "beat"

    completed = run("--no-motion", out="plain")
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-4000:]
    with np.load(tmp_path / "plain" / "styles.npz", allow_pickle=False) as styles:
        assert "motion_json" not in styles.files

    result = run_in_blender(SETUP.format(repo=str(REPO_ROOT)) + f"""
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
scene = bpy.context.scene
settings = scene.traeumer
track = settings.tracks[0]
emit(settings=[settings.pulse_middle, settings.pulse_band_coarse, settings.motion_cuts, settings.motion_hold,
               settings.beat_markers],
     kinds=sorted({{r.kind for r in track.markers}}), markers=len(scene.timeline_markers),
     curves=sorted(f.data_path.rsplit(".", 1)[1] for f in style_curves.track_fcurves(scene, track)
                   if "pulse" in f.data_path))
""", tmp_path / "check", timeout=300, env=cache_env)
    assert result["settings"] == [pytest.approx(0.3), "full", False, "beat", True]
    assert result["kinds"] == ["BEAT", "SECTION"] and result["markers"] >= 2
    assert result["curves"] == ["coarse_pulse", "fine_pulse", "middle_pulse", "pulse_full", "pulse_high", "pulse_mid"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
