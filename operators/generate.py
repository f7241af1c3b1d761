# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate from audio, Update frames, Cancel, Stop Worker (job driving: job_operator.py)."""

import bpy
from bpy.props import StringProperty

from ..addon import jobs, worker_client
from .job_operator import JobOperator


class _WorkerJobOperator(JobOperator):
    def on_blocking_event(self, job, event):
        # background runs (blender -b) print progress lines instead of drawing a progress bar
        if bpy.app.background and event.get("event") == "progress":
            print(f"TräumerAI: {job.status_text()}", flush=True)


class TRAEUMER_OT_generate(_WorkerJobOperator, bpy.types.Operator):
    """Dream the sound strip into frames in the background; frames appear as they are written"""

    bl_idname = "traeumer.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    def start_job(self, context):
        return jobs.GenerateJob.start(context)


class TRAEUMER_OT_update_frames(_WorkerJobOperator, bpy.types.Operator):
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
