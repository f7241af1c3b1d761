# SPDX-License-Identifier: GPL-3.0-or-later
"""Labelling operators: pair music clips with generated images you choose, then train the mapping.

The loop (the paper's ~100 hand-labelled clips, made practical): choose a clip (10 s around
the playhead of a sound strip, a file you added, or "Suggest next clip"), look at candidate
images the worker renders at preview size, pick one (the pair goes into the label set file),
repeat; then "Train mapping" fits Eq. 1 in the worker and Generate uses the result.

Requests that need torch run in the background worker as jobs (``jobs.LabelJob``, worker side
``label_worker.py``); like Generate they run under a modal operator in the UI and a blocking loop
in background mode. Reading, deleting, importing and exporting pairs is plain numpy and happens
here. The labelling state these operators change is in ``addon/labelling.py``.
"""

import json
import os
import shutil

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..addon import label_properties, labelling, timeline
from ..addon.compat import path_options
from ..addon.jobs import JobError, LabelJob
from ..traeumer_blender import labels as label_sets
from ..traeumer_blender import protocol
from ..traeumer_blender.errors import TraeumerError
from .job_operator import JobOperator

_playing = None         # aud handle of a file clip being played


class _LabelJobOperator(JobOperator):
    """Runs a LabelJob: modal with a timer in the UI, blocking in background mode."""

    start_errors = (JobError, label_properties.LabelLocationError, TraeumerError)


# --- choosing a clip -------------------------------------------------------------------------------

class TRAEUMER_OT_label_clip_playhead(bpy.types.Operator):
    """Label the clip around the playhead of the sound strip (its length centred on the playhead)"""

    bl_idname = "traeumer.label_clip_playhead"
    bl_label = "Clip at Playhead"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        strip = timeline.target_sound_strip(scene)
        if strip is None:
            self.report({"ERROR"}, "No sound strip: make a sound strip active or choose one in Generate")
            return {"CANCELLED"}
        span = timeline.sound_strip_span(scene, strip)
        if not span.filepath or not os.path.isfile(span.filepath):
            self.report({"ERROR"}, f"The audio file of '{strip.name}' is missing: {span.filepath or '(none)'}")
            return {"CANCELLED"}
        settings = scene.traeumer_label
        first, last = timeline.strip_audio_range(scene, strip)
        duration = min(settings.clip_duration, last - first)
        if duration <= 0.5:
            self.report({"ERROR"}, f"Sound strip '{strip.name}' is too short to label")
            return {"CANCELLED"}
        centre = timeline.audio_time_of_frame(scene, strip, scene.frame_current)
        start = min(max(first, centre - duration / 2.0), last - duration)
        labelling.set_clip(scene, span.filepath, start, duration, strip)
        self.report({"INFO"}, f"Clip: {strip.name}, {start:.1f}–{start + duration:.1f} s of its audio")
        return {"FINISHED"}


class TRAEUMER_OT_label_add_audio(bpy.types.Operator):
    """Add music files to label (they also count for “Suggest next clip”)"""

    bl_idname = "traeumer.label_add_audio"
    bl_label = "Add Music Files"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options=path_options())
    directory: StringProperty(subtype="DIR_PATH", options=path_options("HIDDEN", "SKIP_SAVE"))
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    filter_sound: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        paths = [os.path.join(self.directory, f.name) for f in self.files if f.name] if self.files else []
        if not paths and self.filepath:
            paths = [self.filepath]
        paths = [bpy.path.abspath(p) for p in paths]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing or not paths:
            self.report({"ERROR"}, f"Not a file: {missing[0] if missing else '(nothing chosen)'}")
            return {"CANCELLED"}
        added = sum(labelling.add_audio_file(context.scene, p) for p in paths)
        self.report({"INFO"}, f"Added {added} music file(s)")
        return {"FINISHED"}


class TRAEUMER_OT_label_remove_audio(bpy.types.Operator):
    """Forget a music file of the label list (the file itself stays)"""

    bl_idname = "traeumer.label_remove_audio"
    bl_label = "Remove Music File"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(default=-1)

    def execute(self, context):
        settings = context.scene.traeumer_label
        index = self.index if self.index >= 0 else settings.active_audio
        if not 0 <= index < len(settings.audio_files):
            return {"CANCELLED"}
        settings.audio_files.remove(index)
        settings.active_audio = max(0, min(settings.active_audio, len(settings.audio_files) - 1))
        return {"FINISHED"}


class TRAEUMER_OT_label_clip_file(bpy.types.Operator):
    """Label a clip of a music file of the list"""

    bl_idname = "traeumer.label_clip_file"
    bl_label = "Clip from File"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="File", default=-1, description="Music file of the list; -1: the active one")
    start: FloatProperty(name="Start", default=0.0, min=0.0, unit="TIME_ABSOLUTE")

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        index = self.index if self.index >= 0 else settings.active_audio
        if not 0 <= index < len(settings.audio_files):
            self.report({"ERROR"}, "Add a music file first")
            return {"CANCELLED"}
        path = bpy.path.abspath(settings.audio_files[index].filepath)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"Music file not found: {path}")
            return {"CANCELLED"}
        labelling.set_clip(scene, path, self.start, settings.clip_duration)
        self.report({"INFO"}, f"Clip: {os.path.basename(path)} from {self.start:.1f} s")
        return {"FINISHED"}


class TRAEUMER_OT_label_play(bpy.types.Operator):
    """Play the clip being labelled (a strip's clip plays on the timeline, in its preview range)"""

    bl_idname = "traeumer.label_play"
    bl_label = "Play Clip"

    def execute(self, context):
        global _playing
        scene = context.scene
        settings = scene.traeumer_label
        if not settings.clip_audio:
            self.report({"ERROR"}, "Choose a clip first")
            return {"CANCELLED"}
        _stop_playing(context)
        strip = None
        for candidate in timeline.sound_strips(scene):
            if candidate.name == settings.clip_strip:
                strip = candidate
        if strip is not None:
            timeline.set_preview_range(scene, strip, settings.clip_start, settings.clip_duration)
            scene.frame_current = scene.frame_preview_start
            if not bpy.app.background and context.screen is not None:
                bpy.ops.screen.animation_play()
            return {"FINISHED"}
        if bpy.app.background:
            return {"FINISHED"}   # nothing to hear without a sound device
        try:
            import aud
            sound = aud.Sound(bpy.path.abspath(settings.clip_audio))
            sound = sound.limit(settings.clip_start, settings.clip_start + settings.clip_duration)
            _playing = aud.Device().play(sound)
        except Exception as error:  # aud raises plain Exception types
            self.report({"ERROR"}, f"Cannot play {settings.clip_audio}: {error}")
            return {"CANCELLED"}
        return {"FINISHED"}


def _stop_playing(context):
    global _playing
    if _playing is not None:
        try:
            _playing.stop()
        except Exception:  # already finished
            pass
        _playing = None
    screen = context.screen
    if screen is not None and screen.is_animation_playing and not bpy.app.background:
        bpy.ops.screen.animation_cancel(restore_frame=False)


class TRAEUMER_OT_label_stop(bpy.types.Operator):
    """Stop playing the clip"""

    bl_idname = "traeumer.label_stop"
    bl_label = "Stop"

    def execute(self, context):
        _stop_playing(context)
        return {"FINISHED"}


# --- candidates and picking ------------------------------------------------------------------------

class TRAEUMER_OT_label_candidates(_LabelJobOperator, bpy.types.Operator):
    """Render candidate images: a new random batch, or variations of a chosen image"""

    bl_idname = "traeumer.label_candidates"
    bl_label = "New Batch"

    mode: EnumProperty(items=[("RANDOM", "New Batch", "Random images"),
                              ("SIMILAR", "More Like This", "Variations of the chosen image")],
                       default="RANDOM")
    index: IntProperty(default=-1, description="Candidate to vary; -1: the chosen one")

    @classmethod
    def description(cls, context, properties):
        return ("Variations around this image" if properties.mode == "SIMILAR"
                else "A new batch of random images to choose from")

    def start_job(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        model, device = labelling.model_settings(scene)
        base_w = None
        if self.mode == "SIMILAR":
            index = self.index if self.index >= 0 else settings.active_candidate
            base_w = labelling.candidate_w(settings, index).tolist()
        seed = settings.next_seed
        settings.next_seed = seed + settings.candidate_count
        folder = os.path.join(bpy.app.tempdir or os.path.dirname(bpy.data.filepath) or ".", "traeumer_candidates")
        return LabelJob.start(context, protocol.LABEL_CANDIDATES, labelling.show_candidates,
                              model=model, device=device, seed=int(seed), count=settings.candidate_count,
                              resolution=int(settings.preview_resolution), out_dir=folder, base_w=base_w,
                              strength=float(settings.variation))


class TRAEUMER_OT_label_pick(_LabelJobOperator, bpy.types.Operator):
    """Pair the current clip with this image and store the pair in the label set"""

    bl_idname = "traeumer.label_pick"
    bl_label = "Pick"

    index: IntProperty(default=-1, description="Candidate; -1: the chosen one")

    def start_job(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        if not settings.clip_audio or not os.path.isfile(bpy.path.abspath(settings.clip_audio)):
            raise JobError("Choose a clip first (at the playhead, from a file, or suggested)")
        index = self.index if self.index >= 0 else settings.active_candidate
        w = labelling.candidate_w(settings, index)
        candidate = settings.candidates[index]
        settings.active_candidate = index
        model, device = labelling.model_settings(scene)
        return LabelJob.start(context, protocol.LABEL_ADD, labelling.after_pick,
                              set_path=label_properties.set_path(scene), name=settings.set_name,
                              model=model, encoder="default", device=device,
                              audio=bpy.path.abspath(settings.clip_audio), start=settings.clip_start,
                              duration=settings.clip_duration, w=w.tolist(),
                              origin=json.loads(candidate.origin_json or "{}"), thumbnail=candidate.image,
                              audio_files=[bpy.path.abspath(a.filepath) for a in settings.audio_files])


# --- the label set ----------------------------------------------------------------------------------

class TRAEUMER_OT_label_delete(bpy.types.Operator):
    """Delete a pair from the label set"""

    bl_idname = "traeumer.label_delete"
    bl_label = "Delete Pair"
    bl_options = {"REGISTER", "UNDO"}

    pair: StringProperty(name="Pair", description="Id of the pair; empty: the active one")

    def execute(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        pair_id = self.pair
        if not pair_id and 0 <= settings.active_pair < len(settings.pairs):
            pair_id = settings.pairs[settings.active_pair].name
        try:
            path = label_properties.set_path(scene)
            label_set = label_sets.LabelSet.load(path)
            label_set.delete_pair(pair_id)
            label_set.save(path)
        except (label_properties.LabelLocationError, TraeumerError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        count = labelling.refresh_pairs(scene)
        self.report({"INFO"}, f"Deleted; {count} pair(s) left")
        return {"FINISHED"}


class TRAEUMER_OT_label_reload(bpy.types.Operator):
    """Read the label set file again (e.g. after changing its name or place)"""

    bl_idname = "traeumer.label_reload"
    bl_label = "Reload Label Set"

    def execute(self, context):
        try:
            count = labelling.refresh_pairs(context.scene)
        except TraeumerError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"{count} pair(s)")
        return {"FINISHED"}


class TRAEUMER_OT_label_use_pair(bpy.types.Operator):
    """Make this pair's clip the current clip (to listen to it again)"""

    bl_idname = "traeumer.label_use_pair"
    bl_label = "Go to Clip"

    def execute(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        if not 0 <= settings.active_pair < len(settings.pairs):
            return {"CANCELLED"}
        pair = settings.pairs[settings.active_pair]
        if not os.path.isfile(pair.audio):
            self.report({"ERROR"}, f"The pair's audio is not on this computer: {pair.audio_name}")
            return {"CANCELLED"}
        labelling.set_clip(scene, pair.audio, pair.start, pair.duration)
        return {"FINISHED"}


class TRAEUMER_OT_label_export(bpy.types.Operator):
    """Save the label set as one file to share it"""

    bl_idname = "traeumer.label_export"
    bl_label = "Export Label Set"

    filepath: StringProperty(subtype="FILE_PATH", options=path_options())
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    def invoke(self, context, event):
        self.filepath = os.path.basename(label_sets.default_set_path("", context.scene.traeumer_label.set_name))
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            source = label_properties.set_path(context.scene)
            label_sets.LabelSet.load(source)        # only a valid set is shared
        except (label_properties.LabelLocationError, TraeumerError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        target = bpy.path.abspath(self.filepath)
        if not target.endswith(".npz"):
            target += label_sets.SUFFIX
        try:
            shutil.copyfile(source, target)
        except OSError as error:
            self.report({"ERROR"}, f"Cannot write {target}: {error.strerror}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported to {target}")
        return {"FINISHED"}


class TRAEUMER_OT_label_import(bpy.types.Operator):
    """Add the pairs of a shared label set file to the current label set (or start it from them)"""

    bl_idname = "traeumer.label_import"
    bl_label = "Import Label Set"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options=path_options())
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene = context.scene
        try:
            incoming = label_sets.LabelSet.load(bpy.path.abspath(self.filepath))
            path = label_properties.set_path(scene)
            if os.path.isfile(path):
                current = label_sets.LabelSet.load(path)
                added = current.merge(incoming)
            else:
                current, added = incoming, len(incoming)
                current.name = scene.traeumer_label.set_name
            current.save(path)
        except (label_properties.LabelLocationError, TraeumerError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        count = labelling.refresh_pairs(scene)
        self.report({"INFO"}, f"Imported {added} pair(s); {count} in '{scene.traeumer_label.set_name}'")
        return {"FINISHED"}


# --- suggest and train ----------------------------------------------------------------------------

class TRAEUMER_OT_label_suggest(_LabelJobOperator, bpy.types.Operator):
    """Choose the clip of your music least like anything labelled so far (labels then cover your
    music quickly)"""

    bl_idname = "traeumer.label_suggest"
    bl_label = "Suggest Next Clip"

    def start_job(self, context):
        scene = context.scene
        files = labelling.music_files(scene)
        if not files:
            raise JobError("No music: add sound strips or music files first")
        _, device = labelling.model_settings(scene)
        return LabelJob.start(context, protocol.LABEL_SUGGEST, labelling.show_suggestion,
                              set_path=label_properties.set_path(scene), encoder="default", device=device,
                              audio_files=files, clip_seconds=scene.traeumer_label.clip_duration)


class TRAEUMER_OT_label_train(_LabelJobOperator, bpy.types.Operator):
    """Train the mapping from the label set (Eq. 1, L1 loss) and use it for Generate"""

    bl_idname = "traeumer.label_train"
    bl_label = "Train Mapping"

    def start_job(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        path = label_properties.set_path(scene)
        if not os.path.isfile(path) or not len(label_sets.LabelSet.load(path)):
            raise JobError("The label set has no pairs yet: pick images for a few clips first")
        model, device = labelling.model_settings(scene)
        return LabelJob.start(context, protocol.LABEL_TRAIN, labelling.use_trained_mapping,
                              set_path=path, model=model, device=device,
                              out=label_properties.mapper_path(scene), steps=settings.train_steps,
                              seed=int(scene.traeumer.seed))


class TRAEUMER_OT_label_use_mapping(bpy.types.Operator):
    """Choose the mapping Generate uses: the trained one of this label set, or the zero-label one"""

    bl_idname = "traeumer.label_use_mapping"
    bl_label = "Use Mapping"
    bl_options = {"REGISTER", "UNDO"}

    trained: BoolProperty(default=True)

    def execute(self, context):
        scene = context.scene
        settings = scene.traeumer_label
        if self.trained:
            if not settings.mapper_file or not os.path.isfile(bpy.path.abspath(settings.mapper_file)):
                self.report({"ERROR"}, "No trained mapping yet: train one first")
                return {"CANCELLED"}
            scene.traeumer.mapper_path = settings.mapper_file
        else:
            scene.traeumer.mapper_path = ""
        return {"FINISHED"}


classes = (TRAEUMER_OT_label_clip_playhead, TRAEUMER_OT_label_add_audio, TRAEUMER_OT_label_remove_audio,
           TRAEUMER_OT_label_clip_file, TRAEUMER_OT_label_play, TRAEUMER_OT_label_stop,
           TRAEUMER_OT_label_candidates, TRAEUMER_OT_label_pick, TRAEUMER_OT_label_delete,
           TRAEUMER_OT_label_reload, TRAEUMER_OT_label_use_pair, TRAEUMER_OT_label_export,
           TRAEUMER_OT_label_import, TRAEUMER_OT_label_suggest, TRAEUMER_OT_label_train,
           TRAEUMER_OT_label_use_mapping)


