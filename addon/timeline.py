# SPDX-License-Identifier: GPL-3.0-or-later
"""What the extension works on: the target sound strip and its place on the timeline."""

from dataclasses import dataclass
from fractions import Fraction

import bpy

from . import compat


@dataclass(frozen=True)
class SoundStripSpan:
    """A sound strip's visible part, in scene frames and exact seconds."""

    name: str
    filepath: str          # absolute path of the sound file
    frame_start: int       # first visible frame (inclusive)
    frame_end: int         # last visible frame + 1 (exclusive), like frame_final_end
    fps: Fraction

    @property
    def frame_count(self) -> int:
        return self.frame_end - self.frame_start

    @property
    def duration_seconds(self) -> Fraction:
        return self.frame_count / self.fps


def target_sound_strip(scene):
    """The strip named in the settings, else the active strip if it is a sound strip."""
    settings = scene.traeumer
    if settings.strip_name:
        for strip in compat.all_strips(scene):
            if strip.name == settings.strip_name:
                return strip if compat.is_sound_strip(strip) else None
        return None
    strip = compat.active_strip(scene)
    return strip if compat.is_sound_strip(strip) else None


def sound_strip_span(scene, strip) -> SoundStripSpan:
    sound = strip.sound
    raw_path = sound.filepath if sound is not None else ""
    frame_start, frame_end = compat.strip_visible_range(strip)
    return SoundStripSpan(
        name=strip.name,
        filepath=bpy.path.abspath(raw_path) if raw_path else "",
        frame_start=frame_start,
        frame_end=frame_end,
        fps=compat.scene_fps(scene),
    )


def format_fps(fps: Fraction) -> str:
    if fps.denominator == 1:
        return f"{fps.numerator} fps"
    return f"{float(fps):.3f} fps ({fps.numerator}/{fps.denominator})"
