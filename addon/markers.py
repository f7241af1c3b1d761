# SPDX-License-Identifier: GPL-3.0-or-later
"""Timeline markers of a track: where its sections start (named with the time in the song and the
section's tags, e.g. "1:12 rock · drums") and, optionally, its beats ("12.3": bar 12, beat 3).

A track owns its markers: their names (and the frames they were last seen at) are recorded in
``track.markers``. Generating again removes the track's own markers and makes new ones; markers
the user made, or renamed, are never touched. Moving a section marker moves that section's cut
(Update Frames sends the track's section starts, ``section_starts``); deleting it removes the cut.
Beat markers are for orientation only.

A marker sits on the first frame at or after the time it marks (the rule of ``motion.cut_frames``
and of hold), so an unmoved section marker gives back exactly the cut the engine made.
"""

import math

import numpy as np

from ..traeumer_blender.motion import cut_frames
from . import compat

SECTION = "SECTION"
BEAT = "BEAT"
TAG_SEPARATOR = " · "


def clock(seconds: float) -> str:
    """0:07, 1:12, 1:02:03 (whole seconds, rounded down)."""
    total = int(math.floor(max(0.0, float(seconds)) + 1e-6))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def section_marker_name(section: dict) -> str:
    tags = [str(tag) for tag in section.get("tags", []) if str(tag)]
    return f"{clock(section['start'])} {TAG_SEPARATOR.join(tags)}".strip()


def beat_marker_names(beats, downbeats) -> list:
    """"bar.beat" per beat: a downbeat starts the next bar at beat 1 (beats before the first
    downbeat are in bar 0)."""
    downbeats = np.asarray(downbeats, dtype=np.float64)
    names, bar, beat = [], 0, 0
    for when in np.asarray(beats, dtype=np.float64).tolist():
        passed = int(np.searchsorted(downbeats, when + 1e-6, side="right"))
        if passed > bar:
            bar, beat = passed, 1
        else:
            beat += 1
        names.append(f"{bar}.{beat}")
    return names


def frame_index(seconds: float, frame_times) -> int:
    """The first frame at or after ``seconds`` (None when it is after the last frame)."""
    times = np.asarray(frame_times, dtype=np.float64)
    cut = cut_frames([float(seconds)], times)
    if len(cut):
        return int(cut[0])
    return 0 if float(seconds) <= times[-1] else None


def _unique(name: str, taken: set) -> str:
    name = compat.fit_marker_name(name)
    if name not in taken:
        return name
    for number in range(2, 100000):
        suffix = f" ({number})"
        candidate = compat.fit_marker_name(name[:max(1, len(name) - len(suffix))] + suffix)
        if candidate.endswith(suffix) and candidate not in taken:
            return candidate
    return name


def _markers_by_name(scene) -> dict:
    found = {}
    for marker in compat.timeline_markers(scene):
        found.setdefault(marker.name, []).append(marker)
    return found


def find_marker(scene, record, by_name=None, used=None):
    """The marker of a track's ``record`` (same name; of several, the one nearest the frame it was
    last seen at), or None when the user deleted or renamed it."""
    by_name = _markers_by_name(scene) if by_name is None else by_name
    used = set() if used is None else used
    candidates = [m for m in by_name.get(record.name, []) if m.as_pointer() not in used]
    if not candidates:
        return None
    marker = min(candidates, key=lambda m: abs(m.frame - record.frame))
    used.add(marker.as_pointer())
    return marker


def remove_track_markers(scene, track) -> int:
    """Remove the markers the track owns; returns how many were found."""
    by_name, used = _markers_by_name(scene), set()
    doomed = [find_marker(scene, record, by_name, used) for record in track.markers]
    doomed = [marker for marker in doomed if marker is not None]
    for marker in doomed:
        compat.remove_marker(scene, marker)
    track.markers.clear()
    return len(doomed)


def _add(scene, track, taken, name, frame, kind):
    name = _unique(name, taken)
    marker = compat.new_marker(scene, name, frame)
    taken.add(marker.name)
    record = track.markers.add()
    record.name, record.frame, record.kind = marker.name, int(marker.frame), kind
    return marker


def write_track_markers(scene, track, styles, beat_markers: bool = False) -> dict:
    """Replace the track's markers with those of its styles (none for styles without motion)."""
    remove_track_markers(scene, track)
    record = styles.motion
    if record is None:
        return {"sections": 0, "beats": 0}
    times = np.asarray(styles.frame_times, dtype=np.float64)
    taken = {marker.name for marker in compat.timeline_markers(scene)}
    sections = beats = 0
    for section in record.analysis.get("sections", []):
        index = frame_index(float(section["start"]), times)
        if index is not None:
            _add(scene, track, taken, section_marker_name(section), track.frame_start + index, SECTION)
            sections += 1
    if beat_markers:
        for name, when in zip(beat_marker_names(record.beats, record.downbeats), record.beats):
            index = frame_index(float(when), times)
            if index is not None:
                _add(scene, track, taken, name, track.frame_start + index, BEAT)
                beats += 1
    return {"sections": sections, "beats": beats}


def section_starts(scene, track, frame_times, frame_start: int) -> list:
    """The track's section starts in seconds of the audio file, from where its section markers
    are now: a marker on frame ``frame_start + i`` starts a section at frame i's time (outside
    the track: before its first or after its last frame, which cuts nothing)."""
    times = np.asarray(frame_times, dtype=np.float64)
    step = float(times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1.0
    by_name, used = _markers_by_name(scene), set()
    starts = []
    for record in track.markers:
        if record.kind != SECTION:
            continue
        marker = find_marker(scene, record, by_name, used)
        if marker is None:
            continue   # deleted (or renamed): its cut is gone
        index = int(marker.frame) - int(frame_start)
        if index < 0:
            starts.append(float(times[0]) + index * step)
        elif index >= len(times):
            starts.append(float(times[-1]) + (index - len(times) + 1) * step)
        else:
            starts.append(float(times[index]))
    return sorted(starts)


def remember_frames(scene, track) -> None:
    """Record where the track's markers are now (to tell them from namesakes later)."""
    by_name, used = _markers_by_name(scene), set()
    for record in track.markers:
        marker = find_marker(scene, record, by_name, used)
        if marker is not None:
            record.frame = int(marker.frame)


def section_count(track) -> int:
    return sum(1 for record in track.markers if record.kind == SECTION)
