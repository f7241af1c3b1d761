# SPDX-License-Identifier: GPL-3.0-or-later
"""Draft frames first and frames in the scene's shape, in real Blender (issue #15).

Generate with the panel's defaults (drafts on, the aspect of the scene's render size): the
image strip shows each frame's draft as soon as it exists and its full frame as soon as that
exists, the playhead's region and the preview range come first, the strip fills the render
frame, and Update Frames gives edited frames a fresh draft before their new full frame.
"""

import pytest

from blender_harness import REPO_ROOT, SHARED_AUDIO, run_in_blender

pytestmark = pytest.mark.blender

OGG = SHARED_AUDIO / "hr-savino-ocean.ogg"


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"TRAEUMER_CACHE_DIR": str(tmp_path_factory.mktemp("traeumer_cache"))}


SCRIPT = """
import os
import numpy as np
from blender_support import enable_from_source, extension_module
module = enable_from_source({repo!r})
jobs = extension_module(module, "addon.jobs")
compat = extension_module(module, "addon.compat")
output = extension_module(module, "addon.output")
style_curves = extension_module(module, "addon.style_curves")
scene = bpy.context.scene

def pixels(path):
    image = bpy.data.images.load(path, check_existing=False)
    values = np.array(image.pixels[:], dtype=np.float32).reshape(image.size[1], image.size[0], -1)[..., :3]
    bpy.data.images.remove(image)
    return values

def same_file(a, b):
    # whether two files of the job folder hold the same bytes
    with open(os.path.join(job.folder, a), "rb") as x, open(os.path.join(job.folder, b), "rb") as y:
        return x.read() == y.read()

def render_strip_at(frame, name):
    scene.frame_set(frame)
    scene.render.filepath = os.path.join({tmp!r}, name)
    bpy.ops.render.render(write_still=True)
    return pixels(scene.render.filepath)

render = scene.render
render.resolution_x, render.resolution_y, render.resolution_percentage = 192, 108, 100
render.fps, render.fps_base = 8, 1.0
scene.view_settings.view_transform = "Standard"
render.image_settings.file_format = "PNG"
bpy.ops.wm.save_as_mainfile(filepath={blend!r})
strip = compat.new_sound_strip(scene, "Ocean", {ogg!r}, channel=1, frame_start=1)
strip.frame_final_duration = 32          # 4 s at 8 fps
scene.sequence_editor.active_strip = strip
settings = scene.traeumer
settings.resolution = 128                # drafts (64 px) are worth it below 128 px frames
emit(defaults=[settings.aspect, settings.use_draft, settings.draft_size])
scene.frame_current = 20                 # the playhead: frame index 19
scene.use_preview_range = True
scene.frame_preview_start, scene.frame_preview_end = 3, 6    # indices 2..5

job = jobs.GenerateJob.start(bpy.context)
emit(request=dict((k, job.params[k]) for k in ("aspect", "draft", "draft_size", "first_frames")))
steps = []
checked = {{}}

def on_event(job, event):
    if event.get("event") != "progress" or not event.get("frames"):
        return
    track = job.track
    steps.append([event["stage"], event["frames"]])
    if event["stage"] == "render" and "draft" not in checked:
        # every draft exists, the first full frames too (from frame index 11): frame 10 shows
        # its draft, from the draft strip under the image strip, filling the render frame
        checked["draft"] = True
        strips = [output.find_strip(scene, track.image_strip), output.find_strip(scene, track.draft_strip)]
        shown = render_strip_at(10, "draft_shown.png")
        draft = pixels(os.path.join(job.folder, "draft", "frame_000010.png"))
        emit(strips=[[s.channel, s.frame_final_start, len(s.elements), s.directory, round(s.transform.scale_x, 4)]
                     for s in strips],
             draft_shown=[list(shown.shape), list(draft.shape), float(shown[:4].std()), float(shown[:, :4].std()),
                          float(shown[:, -4:].std()), float(abs(shown.mean() - draft.mean()))],
             final_10_exists=os.path.exists(os.path.join(job.folder, "frame_000010.png")),
             texture_while_drafting=bpy.data.images[track.image_name].filepath,
             view=[same_file("draft/frame_000010.png", ".view/frame_000010.png"),
                   same_file("frame_000012.png", ".view/frame_000012.png")])

jobs.run_blocking(job, on_event)
track = scene.traeumer.tracks["Ocean"]
folder = job.folder
finals = sorted(n for n in os.listdir(folder) if n.startswith("frame_"))
drafts = sorted(n for n in os.listdir(os.path.join(folder, "draft")) if n.startswith("frame_"))
final = pixels(os.path.join(folder, "frame_000010.png"))
shown = render_strip_at(10, "final_shown.png")
emit(state=job.state, message=job.message, finals=len(finals), drafts=len(drafts),
     sizes=[list(final.shape), list(pixels(os.path.join(folder, "draft", "frame_000010.png")).shape)],
     track=[track.resolution, track.frame_width, track.draft_size, track.draft_width],
     draft_strip_after=[track.draft_strip, sum(1 for s in compat.all_strips(scene) if "(draft)" in s.name)],
     texture=bpy.data.images[track.image_name].filepath, steps=steps,
     view_after=os.path.exists(os.path.join(folder, ".view")),
     final_shown=[float(shown[:, :4].std()), float(shown[:, -4:].std()), float(abs(shown.mean() - final.mean()))])

# Update Frames: edited frames get a fresh draft, shown until their new full frame exists
fcurve = style_curves.track_fcurves(scene, track)[0]
points = fcurve.keyframe_points
middle = len(points) // 2
points[middle].co[1] += 3.0
fcurve.update()
updates = []
job = jobs.UpdateJob.start(bpy.context)
emit(update_draft_strip=[track.draft_strip, output.find_strip(scene, track.draft_strip) is not None])
def on_update(job, event):
    if event.get("event") == "progress" and event.get("frames"):
        i = event["frames"][0]
        kind = "draft/" if event["stage"] == "draft" else ""
        updates.append([event["stage"], event["frames"],
                        same_file(f"{{kind}}frame_{{i + 1:06d}}.png", f".view/frame_{{i + 1:06d}}.png")])
jobs.run_blocking(job, on_update)
emit(update_state=job.state, update_message=job.message, updates=updates,
     after_update=[track.draft_strip, sum(1 for s in compat.all_strips(scene) if "(draft)" in s.name),
                   os.path.exists(os.path.join(folder, ".view")), bpy.data.images[track.image_name].filepath])

# no room under the image strip for drafts: the update renders no drafts and deletes nothing
# early, so the old frames stay shown until their new ones replace them
image_strip = output.find_strip(scene, track.image_strip)
blocker = compat.new_image_strip(scene, "Other", os.path.join(folder, "frame_000001.png"),
                                 image_strip.channel - 1, 1)
points[middle].co[1] -= 3.0
fcurve.update()
seen = []
job = jobs.UpdateJob.start(bpy.context)
def on_blocked(job, event):
    if event.get("event") == "progress" and event.get("stage") == "render" and event.get("frames") and not seen:
        later = [i for s in updates if s[0] == "render" for i in s[1]][-1]
        seen.append([event["stage"], os.path.exists(os.path.join(folder, f"frame_{{later + 1:06d}}.png"))])
    elif event.get("event") == "progress" and event.get("stage") == "draft":
        seen.append(["draft", False])
jobs.run_blocking(job, on_blocked)
emit(blocked=[job.state, track.draft_strip, seen[:1], os.path.exists(os.path.join(folder, ".view"))])
"""


def test_drafts_first_then_full_frames_in_the_scene_shape(tmp_path, cache_env):
    blend = tmp_path / "project" / "drafts.blend"
    blend.parent.mkdir()
    result = run_in_blender(SCRIPT.format(repo=str(REPO_ROOT), tmp=str(tmp_path), blend=str(blend), ogg=str(OGG)),
                            tmp_path / "run", env=cache_env)
    assert result["defaults"] == ["SCENE", True, "64"]
    assert result["request"] == {"aspect": "16:9", "draft": True, "draft_size": 64,
                                 "first_frames": [11, 32, 2, 6]}
    assert result["state"] == "DONE", result["_output"][-3000:]
    assert result["finals"] == result["drafts"] == 32
    # frames in the scene's shape: 228 x 128, drafts 114 x 64
    assert result["sizes"] == [[128, 228, 3], [64, 114, 3]]
    assert result["track"] == [128, 228, 64, 114]
    steps = result["steps"]
    draft_steps = [s for s in steps if s[0] == "draft"]
    render_steps = [s for s in steps if s[0] == "render"]
    assert steps.index(render_steps[0]) > steps.index(draft_steps[-1])   # every draft first
    # the playhead's region, then the preview range, first; then the rest in order
    order = [i for s in render_steps for i in s[1]]
    assert order[:25] == list(range(11, 32)) + [2, 3, 4, 5]
    assert sorted(order) == list(range(32)) == sorted(i for s in draft_steps for i in s[1])
    # while the full frames are made: the image strip over the draft strip, both from the sound
    # strip's first frame, each scaled to fill the 192 x 108 frame (228 x 128 and 114 x 64 frames)
    final_strip, draft_strip = result["strips"]
    assert draft_strip[0] == final_strip[0] - 1 and final_strip[1:3] == draft_strip[1:3] == [1, 32]
    assert draft_strip[3].endswith(("draft/", "draft\\")) and not final_strip[3].endswith(("draft/", "draft\\"))
    assert final_strip[4] == round(192 / 228, 4) and draft_strip[4] == round(192 / 114, 4)
    assert not result["final_10_exists"]
    shown = result["draft_shown"]
    assert shown[0] == [108, 192, 3] and shown[1] == [64, 114, 3]
    assert min(shown[2:5]) > 0.01 and shown[5] < 0.03, shown      # content to the edges, the draft's
    # the texture reads the view: per frame a link to the best file (frame 10's draft, frame
    # 12's full frame)
    assert ".view" in result["texture_while_drafting"] and result["view"] == [True, True]
    # at the end: full frames everywhere, the draft strip gone, the texture on the full frames
    assert result["draft_strip_after"] == ["", 0]
    assert ".view" not in result["texture"] and result["texture"].endswith("frame_000001.png")
    assert not result["view_after"]
    assert min(result["final_shown"][:2]) > 0.01 and result["final_shown"][2] < 0.03
    # Update Frames: drafts of the edited frames first, then their full frames; the draft strip
    # is there while it runs and gone after
    assert result["update_state"] == "DONE", result["update_message"]
    assert result["update_draft_strip"][1] is True
    updates = result["updates"]
    assert updates and updates[0][0] == "draft" and updates[-1][0] == "render"
    assert sorted(i for s in updates if s[0] == "draft" for i in s[1]) == \
        sorted(i for s in updates if s[0] == "render" for i in s[1])
    assert all(s[2] for s in updates)      # the texture's view shows each fresh draft, then each new frame
    assert result["after_update"][:3] == ["", 0, False] and ".view" not in result["after_update"][3]
    # with the channel under it taken: no drafts, and the last edited frame's old file is still
    # there while the first new frames are written
    assert result["blocked"] == ["DONE", "", [["render", True]], False]


MISSING = """
import os
from blender_support import enable_from_source, extension_module
module = enable_from_source({repo!r})
compat = extension_module(module, "addon.compat")
output = extension_module(module, "addon.output")
scene = bpy.context.scene
render = scene.render
render.resolution_x, render.resolution_y, render.resolution_percentage = 64, 36, 100
render.image_settings.file_format = "PNG"
sound = compat.new_sound_strip(scene, "Ocean", {ogg!r}, channel=1, frame_start=1)
sound.frame_final_duration = 32
track = scene.traeumer.tracks.add()
track.name = "Ocean"
sizes = []
for attempt in range(24):
    # a track's strips are made before any frame exists; the playhead may sit on a frame
    # that is not written yet (Blender used to allocate by uninitialised element sizes)
    output.make_image_strip(scene, track, sound, os.path.join({tmp!r}, "none"), 32, drafts=True)
    strip = output.find_strip(scene, track.image_strip)
    sizes.append(sorted({{(e.orig_width, e.orig_height) for e in strip.elements}}))
    scene.frame_set(1 + attempt)
    render.filepath = os.path.join({tmp!r}, "missing.png")
    bpy.ops.render.render(write_still=True)
emit(rendered=24, sizes=sizes[-1])
"""


def test_frames_not_written_yet_render_without_crashing(tmp_path):
    result = run_in_blender(MISSING.format(repo=str(REPO_ROOT), tmp=str(tmp_path), ogg=str(OGG)), tmp_path / "run")
    assert result["rendered"] == 24 and result["sizes"] == [[0, 0]]
