# SPDX-License-Identifier: GPL-3.0-or-later
"""Labelling in real Blender with the real worker and real music: choose clips (playhead, file,
suggestion), pick candidate images through the operators, delete, export/import, train the
mapping, and Generate with it. One Blender process runs the whole loop (the worker loads the
generator and encoder once); the built-in generator, 32 px previews and few training steps keep
it CI-sized."""

import numpy as np
import pytest

from blender_harness import REPO_ROOT, SHARED_AUDIO, run_in_blender

pytestmark = pytest.mark.blender

OCEAN = SHARED_AUDIO / "hr-savino-ocean.ogg"
HUNTING = SHARED_AUDIO / "hr-domina-hunting.ogg"


def test_label_train_and_generate_with_the_trained_mapping(tmp_path):
    blend = tmp_path / "project" / "taste.blend"
    blend.parent.mkdir()
    exported = tmp_path / "shared" / "exported.labels.npz"
    exported.parent.mkdir()
    result = run_in_blender(f"""
import json, os, time
import numpy as np
from blender_support import enable_from_source, extension_module
module = enable_from_source({str(REPO_ROOT)!r})
label_properties = extension_module(module, "addon.label_properties")
labels = extension_module(module, "traeumer_blender.labels")
pipeline_styles = None
scene = bpy.context.scene
emit(registered=[hasattr(bpy.types, n) for n in ("TRAEUMER_PT_label", "TRAEUMER_UL_label_pairs")],
     has_settings=hasattr(scene, "traeumer_label"))
scene.render.fps, scene.render.fps_base = 8, 1.0
bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})
settings = scene.traeumer_label
settings.location = "USER"
emit(user_set_file=label_properties.set_path(scene))
settings.location = "BLEND"
settings.preview_resolution = "32"
settings.candidate_count = 4

# a sound strip showing 20-30 s of the music; the playhead in its middle
strip = extension_module(module, "addon.compat").new_sound_strip(scene, "Ocean", {str(OCEAN)!r}, channel=1, frame_start=1)
strip.frame_offset_start = 160
strip.frame_final_duration = 80
scene.sequence_editor.active_strip = strip
scene.frame_current = strip.frame_final_start + 40
assert bpy.ops.traeumer.label_clip_playhead() == {{"FINISHED"}}
emit(playhead_clip=[settings.clip_audio, settings.clip_start, settings.clip_duration, settings.clip_strip],
     preview_range=[scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end,
                    strip.frame_final_start, strip.frame_final_end])
assert bpy.ops.traeumer.label_play() == {{"FINISHED"}}
emit(play_frame=scene.frame_current)

# candidates, then a pick: the first pair
assert bpy.ops.traeumer.label_candidates(mode="RANDOM") == {{"FINISHED"}}
emit(first_batch=[[c.seed, os.path.isfile(c.image)] for c in settings.candidates])
first_ws = np.load(settings.candidates_ws)["ws"]
assert bpy.ops.traeumer.label_pick(index=0) == {{"FINISHED"}}
picked = [first_ws[0]]
set_file = label_properties.set_path(scene)
emit(set_file=set_file, pairs_after_first=len(settings.pairs))

# "more like this" around candidate 1, then a file clip labelled with a variation
assert bpy.ops.traeumer.label_candidates(mode="SIMILAR", index=1) == {{"FINISHED"}}
similar_ws = np.load(settings.candidates_ws)["ws"]
emit(variation_distance=float(np.abs(similar_ws - first_ws[1]).mean()),
     batch_spread=float(np.abs(first_ws - first_ws[1]).mean() * 4 / 3),
     similar_origin=json.loads(settings.candidates[0].origin_json))
assert bpy.ops.traeumer.label_add_audio(filepath={str(HUNTING)!r}) == {{"FINISHED"}}
hunting_index = [a.filepath for a in settings.audio_files].index({str(HUNTING)!r})
assert bpy.ops.traeumer.label_clip_file(index=hunting_index, start=40.0) == {{"FINISHED"}}
emit(file_clip=[settings.clip_audio, settings.clip_start, settings.clip_strip])
assert bpy.ops.traeumer.label_pick(index=2) == {{"FINISHED"}}
picked.append(similar_ws[2])

# the suggestion: the least covered clip of the music (strip's file + added file)
assert bpy.ops.traeumer.label_suggest() == {{"FINISHED"}}
suggested = [settings.clip_audio, settings.clip_start, settings.clip_duration]
emit(suggested=suggested)
assert bpy.ops.traeumer.label_candidates(mode="RANDOM") == {{"FINISHED"}}
third_ws = np.load(settings.candidates_ws)["ws"]
emit(second_batch_seeds=[c.seed for c in settings.candidates])
assert bpy.ops.traeumer.label_pick(index=3) == {{"FINISHED"}}
picked.append(third_ws[3])

# one pair too many: delete it again
bpy.ops.traeumer.label_clip_file(index=0, start=0.0)
assert bpy.ops.traeumer.label_pick(index=1) == {{"FINISHED"}}
extra = settings.pairs[-1].name
assert bpy.ops.traeumer.label_delete(pair=extra) == {{"FINISHED"}}
stored = labels.LabelSet.load(set_file)
emit(pairs=[[p.audio_name, p.start, os.path.isfile(p.thumbnail)] for p in settings.pairs],
     file_pairs=[p["id"] for p in stored.pairs], extra=extra,
     stored_ws_match=all(np.allclose(a, b) for a, b in zip(stored.ws, picked)),
     windows=[len(e) for e in stored.embeddings], audio_files=stored.audio_files)

# export, then import into a second set: the same pairs
assert bpy.ops.traeumer.label_export(filepath={str(exported)!r}) == {{"FINISHED"}}
settings.set_name = "Imported"
assert bpy.ops.traeumer.label_import(filepath={str(exported)!r}) == {{"FINISHED"}}
emit(imported=[p.name for p in settings.pairs])
assert bpy.ops.traeumer.label_import(filepath={str(exported)!r}) == {{"FINISHED"}}
emit(imported_twice=len(settings.pairs))
settings.set_name = "My taste"      # choosing a set shows its pairs
emit(back_to_first=len(settings.pairs))

# train: the mapping becomes Generate's mapping
settings.train_steps = 200
assert bpy.ops.traeumer.label_train() == {{"FINISHED"}}
jobs = extension_module(module, "addon.jobs")
job = jobs.active_job()
emit(train=job.result, mapper_path=scene.traeumer.mapper_path, mapper_file=settings.mapper_file,
     report=settings.report)

# a long training run reports progress and can be cancelled; the trained mapping stays
mapper_bytes = open(bpy.path.abspath(settings.mapper_file), "rb").read()
params = dict(job.params, steps=100000)
long_job = jobs.LabelJob.start(bpy.context, "label_train", lambda *a: "unexpected", **params)
seen = []
stopped_at = []
from blender_support import pause_process, resume_process
def stop_with_steps_left(job):
    # The worker is stopped (SIGSTOP) at the first progress event, what it wrote before is read,
    # and the job's state then says how far training got: the cancel that follows must find
    # steps left (99,800 of them), whatever the machine's speed.
    pause_process(job.client.pid)
    time.sleep(0.2)
    for queued in job.client.poll():
        job.handle(queued)
        if queued.get("event") == "progress":
            seen.append(queued["done"])
    stopped_at.append([job.state, seen[-1], job.total])
    resume_process(job.client.pid)
def on_event(job, event):
    if event.get("event") == "progress" and event.get("stage") == "train":
        seen.append(event["done"])
        if not stopped_at:
            stop_with_steps_left(job)
        job.cancel()
jobs.run_blocking(long_job, on_event=on_event)
emit(long_state=long_job.state, long_progress=seen[:1], long_total=long_job.total,
     mapper_kept=open(bpy.path.abspath(settings.mapper_file), "rb").read() == mapper_bytes)
emit(stopped_at=stopped_at)

# Generate the first labelled clip with it
scene.traeumer.resolution = 32
assert bpy.ops.traeumer.generate() == {{"FINISHED"}}
track = scene.traeumer.tracks["Ocean"]
styles = np.load(bpy.path.abspath(track.styles_path))
times = styles["frame_times"]
first = stored.pairs[0]
centres = first["start"] + 2.0 * np.arange(first["windows"]) + stored.window_seconds / 2
frames = [int(np.argmin(np.abs(times - c))) for c in centres]
emit(generate_state=track.state, generate_message=track.message, mapper_kind=str(styles["mapper_kind"]),
     mapper_source=str(styles["mapper_source"]), centres=centres.tolist(),
     frame_times=[float(times[f]) for f in frames],
     generate_l1=float(np.abs(styles["raw_ws"][frames] - stored.ws[0]).mean()))
bpy.ops.wm.save_mainfile()
thumbnails = [p.thumbnail for p in settings.pairs]
for path in thumbnails:
    os.remove(path)
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
scene = bpy.context.scene
emit(reopened=[len(scene.traeumer_label.pairs), scene.traeumer.mapper_path, scene.traeumer_label.set_name],
     thumbnails_back=all(os.path.isfile(p) for p in thumbnails))
""", tmp_path / "run", timeout=600)

    assert result["registered"] == [True, True] and result["has_settings"]
    audio, start, duration, clip_strip = result["playhead_clip"]
    assert audio == str(OCEAN) and clip_strip == "Ocean"
    assert start == pytest.approx(20.0, abs=0.01) and duration == pytest.approx(10.0)
    use_range, first, last, strip_start, strip_end = result["preview_range"]
    assert use_range and (first, last) == (strip_start, strip_end - 1)
    assert result["play_frame"] == first

    assert [seed for seed, _ in result["first_batch"]] == [1, 2, 3, 4]
    assert all(exists for _, exists in result["first_batch"])
    assert result["set_file"] == str(blend.parent / "traeumer" / "labels" / "My taste.labels.npz")
    assert result["pairs_after_first"] == 1
    user_file = result["user_set_file"].replace("\\", "/")
    assert user_file.startswith(str(tmp_path / "run" / "blender_user")) and "/extensions/.user/" in user_file
    assert user_file.endswith("/labels/My taste.labels.npz")
    assert result["similar_origin"]["kind"] == "variation"
    assert result["variation_distance"] < 0.6 * result["batch_spread"], "variations stay near the image"
    assert result["file_clip"] == [str(HUNTING), 40.0, ""]

    sugg_audio, sugg_start, sugg_duration = result["suggested"]
    assert sugg_audio in (str(OCEAN), str(HUNTING)) and sugg_duration == pytest.approx(10.0)
    labelled = [(str(OCEAN), 20.0), (str(HUNTING), 40.0)]
    assert all(not (sugg_audio == a and abs(sugg_start - s) < 10.0) for a, s in labelled)
    assert result["second_batch_seeds"] == [9, 10, 11, 12]

    assert len(result["pairs"]) == 3 and all(thumb for _, _, thumb in result["pairs"])
    assert result["extra"] not in result["file_pairs"] and len(result["file_pairs"]) == 3
    assert result["stored_ws_match"] and result["windows"] == [4, 4, 4]
    assert str(HUNTING) in result["audio_files"]
    assert result["imported"] == result["file_pairs"] and result["imported_twice"] == 3
    assert result["back_to_first"] == 3

    train = result["train"]
    assert train["pairs"] == 3 and train["steps"] == 200
    assert train["l1_after"] <= 0.5 * train["l1_zero_label"], train
    assert result["mapper_path"] == "//traeumer/labels/My taste.mapper.npz" == result["mapper_file"]
    print(f"\nL1 on labelled clips (Blender): trained {train['l1_after']:.4f}, "
          f"zero-label {train['l1_zero_label']:.4f}; generated frames at the first clip's windows: "
          f"{result['generate_l1']:.4f}")

    # the worker was stopped with training steps left, then cancelled
    assert len(result["stopped_at"]) == 1
    state_when_stopped, step_when_stopped, total_when_stopped = result["stopped_at"][0]
    assert state_when_stopped == "RUNNING" and step_when_stopped < total_when_stopped == 100000
    assert result["long_state"] == "CANCELLED" and result["long_progress"] == [200]
    assert result["long_total"] == 100000 and result["mapper_kept"]

    assert result["generate_state"] == "DONE", result["generate_message"]
    assert result["mapper_kind"] == "trained"
    assert result["mapper_source"] == str(blend.parent / "traeumer" / "labels" / "My taste.mapper.npz")
    assert np.allclose(result["frame_times"], result["centres"], atol=1 / 16)
    # Generate's frames at the labelled clip reproduce the labelled w as well (labelled windows are
    # embedded with the music around them, as Generate embeds its frames)
    assert result["generate_l1"] <= 0.5 * train["l1_zero_label"]
    assert result["reopened"] == [3, "//traeumer/labels/My taste.mapper.npz", "My taste"]
    assert result["thumbnails_back"], "an opened file gets its pairs' thumbnails again"


def test_label_panel_and_settings_register_and_unregister_cleanly(tmp_path):
    result = run_in_blender(f"""
import addon_utils
from blender_support import enable_from_source
def state():
    return {{"panel": hasattr(bpy.types, "TRAEUMER_PT_label"),
            "operator": hasattr(bpy.types, "TRAEUMER_OT_label_pick"),
            "settings": hasattr(bpy.types.Scene, "traeumer_label")}}
module = enable_from_source({str(REPO_ROOT)!r})
emit(enabled=state())
addon_utils.disable(module, default_set=True)
emit(disabled=state())
addon_utils.enable(module, default_set=True)
bpy.context.scene.traeumer_label.set_name = "again"
emit(reenabled=state(), name=bpy.context.scene.traeumer_label.set_name)
addon_utils.disable(module, default_set=True)
""", tmp_path / "run", timeout=120)
    everything = {"panel": True, "operator": True, "settings": True}
    assert result["enabled"] == everything == result["reenabled"]
    assert result["disabled"] == {"panel": False, "operator": False, "settings": False}
    assert result["name"] == "again"
