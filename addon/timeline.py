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
    """The strip named in the settings, else the active strip if it is a sound strip, else the
    scene's sound strip when it has exactly one."""
    return _target_and_reason(scene)[0]


def missing_sound_strip_message(scene) -> str:
    """Why there is no target sound strip, in one sentence for the user ("" when there is one)."""
    return _target_and_reason(scene)[1]


def _target_and_reason(scene):
    settings = scene.traeumer
    if settings.strip_name:
        for strip in compat.all_strips(scene):
            if strip.name == settings.strip_name:
                if compat.is_sound_strip(strip):
                    return strip, ""
                return None, f"Strip '{settings.strip_name}' is not a sound strip: choose a sound strip in the panel"
        return None, f"No sound strip named '{settings.strip_name}' in this scene"
    strip = compat.active_strip(scene)
    if compat.is_sound_strip(strip):
        return strip, ""
    sounds = [strip for strip in compat.all_strips(scene) if compat.is_sound_strip(strip)]
    if len(sounds) == 1:
        return sounds[0], ""
    if not sounds:
        return None, "No sound strip: add one to the Sequencer, make it active or choose it in the panel"
    names = ", ".join(f"'{strip.name}'" for strip in sounds[:6])
    if len(sounds) > 6:
        names += f" and {len(sounds) - 6} more"
    return None, (f"No sound strip chosen: this scene has {len(sounds)} ({names}); make one of them "
                  f"active or choose it in the panel")


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
