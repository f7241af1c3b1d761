# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress events and cancellation: how a long engine job reports and is stopped.

A job gets ``progress`` (a callable receiving ``Progress`` events; it may raise to stop the job)
and ``cancel`` (a callable returning True, or a ``threading.Event``), checked between steps.
Either way the job stops with ``Cancelled`` and leaves no partial file behind. Standard
library only: the worker imports it before any heavy package.
"""

import time
from dataclasses import dataclass


class Cancelled(Exception):
    """The caller asked to stop; everything written so far is complete and reusable."""


@dataclass(frozen=True)
class Progress:
    stage: str          # "load", "decode", "embed", "style", "draft", "render", "train"
    done: int
    total: int
    eta_seconds: float  # None when unknown
    frames: tuple = ()  # draft/render: the 0-based indices of the frames written in this step


def is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


class Reporter:
    """Sends Progress events with an ETA from this stage's own rate; checks cancellation."""

    def __init__(self, progress, cancel):
        self.progress = progress
        self.cancel = cancel
        self.stage = None
        self.stage_started = 0.0
        self.first_done = 0

    def check(self):
        if is_cancelled(self.cancel):
            raise Cancelled("cancelled")

    def __call__(self, stage, done, total, frames=()):
        now = time.monotonic()
        if stage != self.stage:
            self.stage, self.stage_started, self.first_done = stage, now, done
        eta = None
        if total and done >= total:
            eta = 0.0
        elif done > self.first_done:
            eta = (now - self.stage_started) / (done - self.first_done) * (total - done)
        if self.progress is not None:
            self.progress(Progress(stage, int(done), int(total), eta, tuple(int(i) for i in frames)))
