# SPDX-License-Identifier: GPL-3.0-or-later
"""Worker jobs (Generate, Update Frames, labelling): the Blender side of one request.

One job runs at a time (``active_job``), whatever its kind, and one Cancel operator stops it.
A job is started (checks, output set-up, request sent), then fed the worker's events by
whoever drives it: the modal operator's timer in the UI, or a blocking loop in background mode
(``run_blocking``; background Blender has no timers or modal operators). Blender data is looked
up by name on every event, never kept as Python references across events.
"""

import os
import time
import wave
from fractions import Fraction

import bpy
import numpy as np

from ..traeumer_blender import protocol, style_edit
from ..traeumer_blender.errors import TraeumerError
from ..traeumer_blender.output_folder import STYLES_NAME, ensure_writable_folder, remove_partial_files
from ..traeumer_blender.styles_file import load_styles
from ..traeumer_blender.timing import format_duration
from . import compat, markers, output, style_curves, worker_client
from .preferences import worker_settings
from .properties import camera_settings, frame_aspect, motion_settings
from .timeline import first_frames, missing_sound_strip_message, sound_strip_span, target_sound_strip


class JobError(Exception):
    """A problem to report to the user (the message is the report)."""


_active = None


def active_job():
    return _active


def _claim_active(job):
    """Make ``job`` the running job; JobError while another one runs."""
    global _active
    if _active is not None and not _active.finished:
        raise JobError("A TräumerAI job is already running: wait for it or cancel it")
    _active = job


def check_no_job_running():
    if _active is not None and not _active.finished:
        raise JobError("A TräumerAI job is already running: wait for it or cancel it")


def user_message(text: str) -> str:
    """An engine message as a report: first letter upper case."""
    return text[:1].upper() + text[1:]


class Job:
    kind = "job"

    def __init__(self, scene, track_name: str):
        self.scene_name = scene.name
        self.track_name = track_name
        self.state = "RUNNING"      # RUNNING, CANCELLING, DONE, CANCELLED, FAILED
        self.stage = "start"
        self.done = 0
        self.total = 0
        self.eta = None
        self.message = ""
        self.warnings = []
        self.notes = []      # worth knowing, nothing wrong (reported as info)
        self.result = {}
        self.client = None
        self.request_id = None
        self.started = time.monotonic()
        self.changed = False   # something to redraw since the last poll
        self.curves_info = None

    # --- Blender data, by name --------------------------------------------------------------

    @property
    def scene(self):
        return bpy.data.scenes.get(self.scene_name)

    @property
    def track(self):
        scene = self.scene
        return scene.traeumer.tracks.get(self.track_name) if scene is not None else None

    @property
    def finished(self) -> bool:
        return self.state in ("DONE", "CANCELLED", "FAILED")

    @property
    def progress_factor(self) -> float:
        return self.done / self.total if self.total else 0.0

    def status_text(self) -> str:
        text = f"{self.stage.title()} {self.done}/{self.total}" if self.total else self.stage.title()
        if self.eta is not None and self.state == "RUNNING":
            text += f", {format_duration(self.eta)} left"
        if self.state == "CANCELLING":
            text = "Cancelling…"
        return text

    # --- talking to the worker -----------------------------------------------------------------

    def _send(self, cmd: str, **params) -> None:
        python, idle_timeout = worker_settings()
        try:
            self.client = worker_client.ensure_client(python, idle_timeout)
            self.request_id = self.client.send(cmd, **params)
        except worker_client.WorkerDied as error:
            raise JobError(user_message(str(error))) from None

    def cancel(self) -> None:
        if self.finished:
            return
        self.state = "CANCELLING"
        try:
            if self.client is not None:
                self.client.send(protocol.CANCEL)
        except worker_client.WorkerDied:
            pass
        self.changed = True

    def poll(self) -> bool:
        """Handle every event that arrived; True once the job is finished."""
        if self.client is not None and not self.finished:
            for event in self.client.poll():
                self.handle(event)
                if self.finished:
                    break
        return self.finished

    def handle(self, event: dict) -> None:
        kind = event.get("event")
        if kind == protocol.EXIT:
            self._fail(self.client.death_message() if self.client else "the worker stopped")
            return
        if event.get("id") not in (None, self.request_id):
            return  # a late event of an earlier request
        if kind == protocol.PROGRESS:
            self.stage = event.get("stage", self.stage)
            self.done, self.total, self.eta = event.get("done", 0), event.get("total", 0), event.get("eta")
            self.changed = True
            self.on_progress(event)
        elif kind == protocol.STYLES:
            self.on_styles(event["path"])
        elif kind == protocol.DONE:
            self.result = event.get("result") or {}
            self.on_done(self.result)
        elif kind == protocol.CANCELLED:
            self._finish("CANCELLED", self.cancelled_message())
        elif kind == protocol.ERROR:
            if event.get("kind") == protocol.ERROR_AUDIO_UNREADABLE and self.on_unreadable_audio(event):
                return
            self._fail(event.get("message") or "the worker reported an error")

    def _fail(self, message: str) -> None:
        self._finish("FAILED", user_message(message))

    def _finish(self, state: str, message: str) -> None:
        self.state = state
        self.message = message
        self.changed = True
        track = self.track
        if track is not None:
            track.state = state
            track.message = message[:1000]
            folder = bpy.path.abspath(track.output_dir)
            remove_partial_files(folder)
            output.refresh_track(self.scene, track)
        self.on_finished()

    # hooks
    def cancelled_message(self) -> str:
        return (f"{self.kind.title()} cancelled: frames written so far are kept; "
                f"running it again resumes")

    def on_progress(self, event):
        pass

    def on_styles(self, path):
        pass

    def on_done(self, result):
        self._finish("DONE", "Done")

    def on_unreadable_audio(self, event) -> bool:
        return False

    def on_finished(self):
        pass


class GenerateJob(Job):
    """Generate from audio: the target sound strip → frames, image strip, texture, curves."""

    kind = "generate"

    @classmethod
    def start(cls, context):
        scene = context.scene
        settings = scene.traeumer
        check_no_job_running()
        strip = target_sound_strip(scene)
        if strip is None:
            raise JobError(missing_sound_strip_message(scene))
        span = sound_strip_span(scene, strip)
        if span.frame_count < 1:
            raise JobError(f"Sound strip '{strip.name}' has no visible frames")
        audio = _audio_file(strip, span)
        folder, stored, warning = output.resolve_output_dir(settings, strip.name)
        try:
            ensure_writable_folder(folder)
        except TraeumerError as error:
            raise JobError(user_message(str(error))) from None
        model = _file_setting(settings.model_path, "Model")
        mapper = _file_setting(settings.mapper_path, "Mapping")
        try:
            motion = motion_settings(settings).record()
        except TraeumerError as error:
            raise JobError(f"Motion: {user_message(str(error))}") from None
        try:
            chosen_camera = camera_settings(settings)
        except TraeumerError as error:
            raise JobError(user_message(str(error))) from None
        note = camera_note(scene, settings.tracks.get(strip.name))
        if note and not chosen_camera.still:
            raise JobError(f"{note}: set Camera to Still (X, Y and Rotation 0)")
        camera = chosen_camera.record()

        track = settings.tracks.get(strip.name)
        if track is None:
            track = settings.tracks.add()
            track.name = strip.name
        settings.active_track_index = settings.tracks.find(track.name)
        track.sound_strip = strip.name
        track.output_dir = stored if stored.endswith(("/", "\\")) else stored + os.sep
        track.styles_path = output.stored_path(os.path.join(folder, STYLES_NAME))
        track.frame_start = span.frame_start
        track.frame_count = span.frame_count
        track.resolution = settings.resolution
        drafts = bool(settings.use_draft)
        track.model_path = settings.model_path
        track.state = "RUNNING"
        track.message = ""

        job = cls(scene, track.name)
        if warning:
            job.warnings.append(warning)
        try:
            output.make_image_strip(scene, track, strip, folder, span.frame_count, drafts=drafts)
        except output.OutputError as error:
            track.state, track.message = "FAILED", str(error)
            raise JobError(str(error)) from None
        image = output.make_image(track, folder, span.frame_count, settings.resolution or 256, drafts=drafts)
        output.make_material(track, image, span.frame_start, span.frame_count)

        start_seconds = (Fraction(span.frame_start) - Fraction(strip.frame_start)) / span.fps
        start_seconds += Fraction(compat.sound_offset_seconds(strip)).limit_denominator(1 << 20)
        job.folder = folder
        job.params = {
            "audio": audio, "out_dir": folder,
            "fps": f"{span.fps.numerator}/{span.fps.denominator}",
            "start": float(max(start_seconds, Fraction(0))),
            "duration": float(span.duration_seconds),
            "model": model or "default", "mapper": mapper,
            "resolution": int(settings.resolution) or None,
            "smoothing": [float(settings.smoothing_coarse), float(settings.smoothing_middle),
                          float(settings.smoothing_fine)],
            "truncation": float(settings.truncation), "seed": int(settings.seed),
            "device": settings.device, "motion": motion, "camera": camera,
            "aspect": frame_aspect(scene, settings), "draft": drafts, "draft_size": int(settings.draft_size),
            "first_frames": first_frames(scene, span),
        }
        job.beat_markers = bool(settings.beat_markers)
        job.decoded_audio = False
        try:
            job._send(protocol.GENERATE, **job.params)
        except JobError as error:
            track.state, track.message = "FAILED", str(error)
            raise
        _claim_active(job)
        return job

    def on_progress(self, event):
        stage = event.get("stage")
        if stage in ("draft", "render") and event.get("done"):
            track = self.track
            if track is not None:
                output.show_in_view(self.folder, event.get("frames", ()), draft=stage == "draft")
                output.refresh_track(self.scene, track)

    def on_styles(self, path):
        """The styles exist: key the track's curves and replace its markers."""
        scene, track = self.scene, self.track
        if scene is None or track is None:
            return
        try:
            styles = load_styles(path)
            set_track_shape(track, styles.resolution, styles.settings)
            output.fit_strips(scene, track)
            self.curves_info = style_curves.write_track_curves(scene, track, path, styles)
            self.curves_info["markers"] = markers.write_track_markers(scene, track, styles, self.beat_markers)
        except (TraeumerError, OSError, ValueError, KeyError) as error:
            self.warnings.append(f"Style curves or markers could not be written: {error}")

    def on_done(self, result):
        scene, track = self.scene, self.track
        if scene is None or track is None:
            self._fail("The scene or the track was removed while generating")
            return
        count = int(result.get("frame_count", track.frame_count))
        resolution = int(result.get("resolution", track.resolution))
        set_track_shape(track, resolution, {"frame_width": result.get("width"), "draft_size": result.get("draft_size"),
                                            "draft_width": result.get("draft_width")})
        self.notes.extend(user_message(note) for note in result.get("notes", ()))
        output.remove_draft_strip(scene, track)     # every full frame exists now
        output.use_full_frames(track, self.folder)
        if count != track.frame_count:
            # the engine rounds the excerpt to whole frames; follow it
            track.frame_count = count
            sound = output.find_strip(scene, track.sound_strip)
            if sound is not None:
                output.make_image_strip(scene, track, sound, self.folder, count)
            material = bpy.data.materials.get(track.material_name)
            node = output.material_texture_node(material)
            if node is not None:
                output.set_image_user(node.image_user, track.frame_start, count)
        if self.curves_info is None and result.get("styles_path"):
            self.on_styles(result["styles_path"])
        output.fit_strips(scene, track)
        if self.curves_info is not None:
            result["curves"] = self.curves_info
        rendered, reused = result.get("frames_rendered", 0), result.get("frames_reused", 0)
        seconds = time.monotonic() - self.started
        text = f"Generated {count} frames of '{track.name}' in {format_duration(seconds)}"
        if reused:
            text += f" ({rendered} rendered, {reused} resumed from an earlier run)"
        self._finish("DONE", text)

    def on_unreadable_audio(self, event) -> bool:
        """libsndfile cannot read the file (e.g. AAC in MP4): decode it with Blender's own
        decoder into a WAV beside the frames and send the job again (once)."""
        if self.decoded_audio:
            return False
        self.decoded_audio = True
        try:
            wav = decode_with_blender(self.params["audio"], os.path.join(self.folder, "source_audio.wav"))
        except JobError as error:
            self._fail(f"{event.get('message')}; Blender's decoder failed too: {error}")
            return True
        self.params["audio"] = wav
        self.stage = "decode"
        try:
            self._send(protocol.GENERATE, **self.params)
        except JobError as error:
            self._fail(str(error))
        return True


class UpdateJob(Job):
    """Update frames: re-render the frames whose style curves changed since they were rendered."""

    kind = "update"

    @classmethod
    def start(cls, context, track_name: str = ""):
        scene = context.scene
        settings = scene.traeumer
        check_no_job_running()
        track = settings.tracks.get(track_name) if track_name else active_track(scene)
        if track is None:
            raise JobError("No generated track: generate from audio first")
        styles = bpy.path.abspath(track.styles_path)
        if not os.path.isfile(styles):
            raise JobError(f"The styles of '{track.name}' are missing: {styles}; generate it again")
        folder = os.path.dirname(styles)
        try:
            curves = style_edit.load_curves(style_edit.curves_path(folder))
        except TraeumerError as error:
            raise JobError(user_message(str(error))) from None
        values = style_curves.current_values(scene, track, curves)
        changed = style_edit.changed_frames(values, curves["applied"])
        # the cuts between sections follow the track's section markers (a track whose markers
        # were never made keeps its cuts)
        starts, cuts_moved = None, False
        if curves["applied_cuts"] is not None and curves["frame_times"] is not None and markers.section_count(track):
            starts = markers.section_starts(scene, track, curves["frame_times"], int(curves["frame_start"]))
            cuts = style_edit.section_cuts(starts, curves["frame_times"])
            cuts_moved = not np.array_equal(cuts, curves["applied_cuts"])
        job = cls(scene, track.name)
        job.folder = folder
        if len(changed) == 0 and not cuts_moved:
            job.state = "DONE"
            job.message = f"'{track.name}': no style curve or section marker changed, nothing to render"
            return job
        edits = os.path.join(folder, "edits.npz")
        try:
            np.savez(edits, values=values)
        except OSError as error:
            raise JobError(f"Cannot write {edits}: {error.strerror}") from None
        track.state = "RUNNING"
        # edited frames show their fresh draft (from a strip under the track's) until their new
        # full frame is written
        drafts = output.make_draft_strip(scene, track, folder)
        if drafts:
            output.start_view(track, folder, track.frame_count)
        job._send(protocol.UPDATE, styles_path=styles, edits_path=edits, device=settings.device,
                  section_starts=starts, draft=drafts)
        _claim_active(job)
        return job

    def on_progress(self, event):
        stage = event.get("stage")
        if stage in ("draft", "render") and event.get("done") and self.track is not None:
            output.show_in_view(self.folder, event.get("frames", ()), draft=stage == "draft", over_full=True)
            output.refresh_track(self.scene, self.track)

    def on_done(self, result):
        ranges = result.get("changed", [])
        if self.scene is not None and self.track is not None:
            markers.remember_frames(self.scene, self.track)
            output.remove_draft_strip(self.scene, self.track)
            output.use_full_frames(self.track, self.folder)
        frame_start = self.track.frame_start if self.track is not None else 0
        shown = ", ".join(f"{frame_start + a}–{frame_start + b}" if a != b else f"{frame_start + a}"
                          for a, b in ranges[:6])
        more = "…" if len(ranges) > 6 else ""
        if not ranges:
            self._finish("DONE", "Nothing to render: the changes leave every frame as it is")
            return
        self._finish("DONE", f"Re-rendered {result.get('frames_rendered', 0)} frames ({shown}{more})")


class LabelJob(Job):
    """One labelling request to the worker; ``finish(scene, result)`` turns the result into
    Blender state (``labelling.py``) and returns the report."""

    kind = "labelling"

    def __init__(self, scene, cmd, finish):
        super().__init__(scene, "")
        self.cmd = cmd
        self.finish = finish

    @property
    def title(self) -> str:
        """What the panel calls the job: "Candidates", "Add", "Suggest", "Train"."""
        return self.cmd.replace("label_", "").title()

    @classmethod
    def start(cls, context, cmd, finish, **params):
        check_no_job_running()
        job = cls(context.scene, cmd, finish)
        job.params = params
        job._send(cmd, **params)
        _claim_active(job)
        return job

    def cancelled_message(self) -> str:
        return f"{self.title} cancelled"

    def on_done(self, result):
        scene = self.scene
        if scene is None:
            self._fail("The scene was removed")
            return
        try:
            message = self.finish(scene, result)
        except (TraeumerError, JobError, OSError, ValueError, KeyError) as error:
            self._fail(str(error))
            return
        self._finish("DONE", message)


def set_track_shape(track, resolution, settings) -> None:
    """The track's frame and draft sizes, from its styles' settings or a job's result."""
    track.resolution = int(resolution)
    width = int(settings.get("frame_width") or 0)
    track.frame_width = width if width != track.resolution else 0
    track.draft_size = int(settings.get("draft_size") or 0)
    track.draft_width = int(settings.get("draft_width") or 0)


def camera_note(scene, track=None) -> str:
    """Why Generate's model has no camera, in one line, or "" when it may have one (StyleGAN3):
    the built-in generator is StyleGAN2; so is a model file whose track (``track``, by default the
    active one) was generated with it and got no camera."""
    settings = scene.traeumer
    if not settings.model_path:
        return "No camera: the built-in generator is StyleGAN2 (only StyleGAN3 models move the picture)"
    track = active_track(scene) if track is None else track
    if track is not None and track.state == "DONE" and track.action_name and not track.has_camera \
            and track.model_path == settings.model_path:
        return (f"No camera curves on '{track.name}': its model is StyleGAN2 "
                f"(only StyleGAN3 models move the picture)")
    return ""


def active_track(scene):
    settings = scene.traeumer
    if not len(settings.tracks):
        return None
    index = min(settings.active_track_index, len(settings.tracks) - 1)
    return settings.tracks[index]


def run_blocking(job, on_event=None, timeout: float = None) -> None:
    """Drive a job to its end without an event loop (background mode, scripts)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not job.finished:
        if job.client is None:
            break
        event = job.client.wait(0.25)
        if event is not None:
            job.handle(event)
            if on_event is not None:
                on_event(job, event)
        if deadline is not None and time.monotonic() > deadline and job.state == "RUNNING":
            job.cancel()
            deadline = None


# --- helpers ----------------------------------------------------------------------------------------

def _audio_file(strip, span) -> str:
    sound = strip.sound
    if sound is None:
        raise JobError(f"Sound strip '{strip.name}' has no sound")
    path = span.filepath
    if path and os.path.isfile(path):
        return path
    if sound.packed_file is not None:
        # a packed sound: hand the worker a copy of the packed bytes
        folder = os.path.join(bpy.app.tempdir or os.path.dirname(path) or ".", "traeumer_packed")
        os.makedirs(folder, exist_ok=True)
        copy = os.path.join(folder, output.safe_name(os.path.basename(sound.filepath) or sound.name))
        with open(copy, "wb") as stream:
            stream.write(sound.packed_file.data)
        return copy
    raise JobError(f"The audio file of '{strip.name}' is missing: {path or '(no file)'}")


def _file_setting(value: str, label: str) -> str:
    if not value:
        return ""
    path = bpy.path.abspath(value)
    if not os.path.isfile(path):
        raise JobError(f"{label} file not found: {path}")
    return path


def decode_with_blender(source: str, target: str) -> str:
    """Decode any file Blender plays (FFmpeg) into a 16-bit PCM WAV; returns ``target``."""
    try:
        import aud
    except ImportError:
        raise JobError("this Blender has no audio decoder (aud)") from None
    try:
        sound = aud.Sound(source)
        rate, channels = sound.specs
        samples = np.asarray(sound.data(), dtype=np.float32)
    except Exception as error:  # aud raises plain Exception types
        raise JobError(f"cannot decode {source} ({error})") from None
    if samples.ndim != 2 or samples.shape[0] == 0:
        raise JobError(f"no audio could be decoded from {source}")
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    temp = target + ".part"
    with wave.open(temp, "wb") as stream:
        stream.setnchannels(int(samples.shape[1]))
        stream.setsampwidth(2)
        stream.setframerate(int(rate))
        stream.writeframes(pcm.tobytes())
    os.replace(temp, target)
    return target


