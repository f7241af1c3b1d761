# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate from audio, Update frames, Cancel, Stop Worker.

In the UI the job runs under a modal operator: a window-manager timer polls the worker's
events, every other event passes through (the editor keeps working), Esc cancels. Background
Blender has no timers or modal operators, so there ``execute`` drives the job with a blocking
loop.
"""

import bpy
from bpy.props import StringProperty

from .. import jobs, worker_client

TIMER_SECONDS = 0.2


class _JobOperator:
    """Shared modal / blocking driving of a job (see the module docstring)."""

    _timer = None
    _job = None

    def start_job(self, context):
        raise NotImplementedError

    def execute(self, context):
        try:
            job = self.start_job(context)
        except jobs.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        jobs.run_blocking(job, on_event=_print_progress if bpy.app.background else None)
        return self._conclude(job)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        try:
            job = self.start_job(context)
        except jobs.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if job.finished:
            return self._conclude(job)
        self._job = job
        for warning in job.warnings:
            self.report({"WARNING"}, warning)
        job.warnings = []
        self._timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
            return {"RUNNING_MODAL"}
        if event.type == "TIMER":
            job.poll()
            if job.changed:
                job.changed = False
                _redraw(context)
            if job.finished:
                context.window_manager.event_timer_remove(self._timer)
                self._timer = None
                _redraw(context)
                return self._conclude(job)
        return {"PASS_THROUGH"}

    def cancel(self, context):
        # Blender ends the modal operator (e.g. the file is closed): stop the job too
        if self._job is not None:
            self._job.cancel()
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def _conclude(self, job):
        for warning in job.warnings:
            self.report({"WARNING"}, warning)
        if job.state == "DONE":
            self.report({"INFO"}, job.message)
            return {"FINISHED"}
        if job.state == "CANCELLED":
            self.report({"WARNING"}, job.message)
            return {"CANCELLED"}
        self.report({"ERROR"}, job.message or "The job did not finish")
        return {"CANCELLED"}


def _redraw(context):
    screen = context.screen
    if screen is None:
        return
    for area in screen.areas:
        if area.type in {"SEQUENCE_EDITOR", "GRAPH_EDITOR", "NODE_EDITOR", "VIEW_3D", "IMAGE_EDITOR"}:
            area.tag_redraw()


def _print_progress(job, event):
    kind = event.get("event")
    if kind == "progress":
        print(f"TräumerAI: {job.status_text()}", flush=True)


class TRAEUMER_OT_generate(_JobOperator, bpy.types.Operator):
    """Dream the sound strip into frames in the background; frames appear as they are written"""

    bl_idname = "traeumer.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def start_job(self, context):
        return jobs.GenerateJob.start(context)


class TRAEUMER_OT_update_frames(_JobOperator, bpy.types.Operator):
    """Render again only the frames whose style curves were edited"""

    bl_idname = "traeumer.update_frames"
    bl_label = "Update Frames"
    bl_options = {"REGISTER"}

    track: StringProperty(name="Track", description="Track to update; empty uses the active track", default="")

    def start_job(self, context):
        return jobs.UpdateJob.start(context, self.track)


class TRAEUMER_OT_cancel(bpy.types.Operator):
    """Cancel the running TräumerAI job; frames written so far are kept"""

    bl_idname = "traeumer.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        job = jobs.active_job()
        if job is None or job.finished:
            self.report({"INFO"}, "No TräumerAI job is running")
            return {"CANCELLED"}
        job.cancel()
        self.report({"INFO"}, "Cancelling…")
        return {"FINISHED"}


class TRAEUMER_OT_stop_worker(bpy.types.Operator):
    """Stop the background worker now (frees its memory); the next job starts a new one"""

    bl_idname = "traeumer.stop_worker"
    bl_label = "Stop Worker"

    def execute(self, context):
        job = jobs.active_job()
        if job is not None and not job.finished:
            job.cancel()
        worker_client.stop_worker()
        return {"FINISHED"}


classes = (TRAEUMER_OT_generate, TRAEUMER_OT_update_frames, TRAEUMER_OT_cancel, TRAEUMER_OT_stop_worker)
