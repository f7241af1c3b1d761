# SPDX-License-Identifier: GPL-3.0-or-later
"""What the extension works on: the target sound strip and its place on the timeline."""

import os
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


# --- clips of sound strips (labelling) ------------------------------------------------------------

def audio_time_of_frame(scene, strip, frame) -> float:
    """Seconds into the strip's audio file at a scene frame."""
    fps = compat.scene_fps(scene)
    seconds = (Fraction(int(frame)) - Fraction(strip.frame_start)) / fps
    return float(seconds) + compat.sound_offset_seconds(strip)


def strip_audio_range(scene, strip):
    """(first, last) second of the strip's audio that is visible on the timeline."""
    visible_start, visible_end = compat.strip_visible_range(strip)
    first = audio_time_of_frame(scene, strip, visible_start)
    last = audio_time_of_frame(scene, strip, visible_end)
    return max(0.0, first), max(0.0, last)


def set_preview_range(scene, strip, start, duration):
    """Show the clip as the scene's preview range (the timeline plays just the clip)."""
    fps = float(compat.scene_fps(scene))
    offset = compat.sound_offset_seconds(strip)
    first = int(round(strip.frame_start + (start - offset) * fps))
    last = int(round(strip.frame_start + (start + duration - offset) * fps)) - 1
    scene.use_preview_range = True
    visible_start, visible_end = compat.strip_visible_range(strip)
    scene.frame_preview_start = max(first, visible_start)
    scene.frame_preview_end = max(scene.frame_preview_start, min(last, visible_end - 1))


def sound_strips(scene):
    return [s for s in compat.all_strips(scene) if compat.is_sound_strip(s) and s.sound is not None]


def strip_for_clip(scene, audio, start, duration):
    """A sound strip that shows this clip of this file on the timeline, or None."""
    for strip in sound_strips(scene):
        path = bpy.path.abspath(strip.sound.filepath)
        if path and os.path.abspath(path) == os.path.abspath(audio):
            first, last = strip_audio_range(scene, strip)
            if first - 1e-3 <= start and start + duration <= last + 1e-3:
                return strip
    return None


# seconds of frames around the playhead rendered first (a little before it, more after it: playback
# runs forward)
PLAYHEAD_BEFORE_SECONDS = 1.0
PLAYHEAD_AFTER_SECONDS = 10.0


def first_frames(scene, span: SoundStripSpan) -> list:
    """Frames of a track to render first, as the protocol's flattened [first, end) pairs of
    0-based frame indices: the region around the playhead, then the preview range (when it is
    on and overlaps the track). Empty when neither touches the track."""
    pairs = []
    current = scene.frame_current - span.frame_start
    before = int(round(PLAYHEAD_BEFORE_SECONDS * span.fps))
    after = int(round(PLAYHEAD_AFTER_SECONDS * span.fps))
    if -after < current < span.frame_count:
        pairs.append((max(0, current - before), min(span.frame_count, current + after)))
    if scene.use_preview_range:
        first = scene.frame_preview_start - span.frame_start
        end = scene.frame_preview_end + 1 - span.frame_start
        first, end = max(0, first), min(span.frame_count, end)
        if first < end:
            pairs.append((first, end))
    return [value for pair in pairs for value in pair]
