# SPDX-License-Identifier: GPL-3.0-or-later
"""How an operator drives a worker job (Generate, Update frames, labelling requests).

In the UI the job runs under a modal operator: a window-manager timer polls the worker's
events, every other event passes through (the editor keeps working), Esc cancels. Background
Blender has no timers or modal operators, so there ``execute`` drives the job with a blocking
loop.
"""

import bpy

from ..addon import jobs

TIMER_SECONDS = 0.2
_REDRAWN_AREAS = {"SEQUENCE_EDITOR", "GRAPH_EDITOR", "NODE_EDITOR", "VIEW_3D", "IMAGE_EDITOR"}


class JobOperator:
    """Mixin for operators whose ``start_job(context)`` returns a started ``jobs.Job``."""

    _timer = None
    _job = None
    # errors of start_job that are the user's to fix: reported, not raised
    start_errors = (jobs.JobError,)

    def start_job(self, context):
        raise NotImplementedError

    def on_blocking_event(self, job, event):
        """Called for each worker event while ``execute`` blocks (background mode)."""

    def _start(self, context):
        try:
            return self.start_job(context)
        except self.start_errors as error:
            self.report({"ERROR"}, str(error))
            return None

    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        jobs.run_blocking(job, on_event=self.on_blocking_event)
        return self._conclude(job)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        if job.finished:
            return self._conclude(job)
        self._job = job
        self._report_warnings(job)
        self._timer = context.window_manager.event_timer_add(TIMER_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        redraw(context)
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
                redraw(context)
            if job.finished:
                self._remove_timer(context)
                redraw(context)
                return self._conclude(job)
        return {"PASS_THROUGH"}

    def cancel(self, context):
        # Blender ends the modal operator (e.g. the file is closed): stop the job too
        if self._job is not None:
            self._job.cancel()
        self._remove_timer(context)

    def _remove_timer(self, context):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None

    def _report_warnings(self, job):
        for warning in getattr(job, "warnings", ()):
            self.report({"WARNING"}, warning)
        if getattr(job, "warnings", None):
            job.warnings = []
        for note in getattr(job, "notes", ()):
            self.report({"INFO"}, note)
        if getattr(job, "notes", None):
            job.notes = []

    def _conclude(self, job):
        self._report_warnings(job)
        if job.state == "DONE":
            self.report({"INFO"}, job.message)
            return {"FINISHED"}
        if job.state == "CANCELLED":
            self.report({"WARNING"}, job.message)
            return {"CANCELLED"}
        self.report({"ERROR"}, job.message or "The job did not finish")
        return {"CANCELLED"}


def redraw(context):
    screen = context.screen
    if screen is None:
        return
    for area in screen.areas:
        if area.type in _REDRAWN_AREAS:
            area.tag_redraw()
