# SPDX-License-Identifier: GPL-3.0-or-later
"""Musical motion: the analysis (``analysis.py``) turned into styles that move with the music.

Two things, both in seconds at exact frame times (so they do not depend on the frame rate), and
both plain numpy:

* **Pulse.** Each band's onset envelope is *shaped* on its own 100 Hz grid: divided by a high
  percentile of its peaks (not by its maximum, so one loud hit does not flatten the rest), clipped
  to [0, 1], raised to a power (quiet onsets recede), then a near-instant attack and an
  exponential release (peak hold, ``p = max(x, p·e^(−Δt/release))``). A frame's pulse is the shaped
  envelope at its time. A layer group with a pulse amount ``a`` moves its style toward a target
  style by ``a · pulse``: ``w ← w + a·p·(target − w)``. The target is a seeded "hit" style (a w of
  the generator) or the group's own leading style direction. With ``on_beats`` (the default,
  when the music has a beat) each beat hits as hard as the band's onset at it and onsets between
  beats move the picture at half strength: the picture hits on the beat. Defaults: the full band
  drives the middle and fine layers, the coarse layers stay calm; any group can follow the low
  (kicks), mid or high (snares, hats) band instead.
* **Cuts.** The per-group moving averages do not blend across a section boundary: each section
  is smoothed on its own (the window renormalised at its edges, as at the ends of a song), and
  the two sides are crossfaded over a short time (``crossfade`` seconds, centred on the
  boundary) instead of the 3 s the coarse window would take. The encoder hears a window of
  music around each frame, so frames within half a window of a cut hear both sections: they take
  the style of the nearest frame of their own section that hears only it.

With every amount 0, cuts off and no hold, the styles are exactly today's (``MotionSettings.off``).
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import smoothing
from .errors import TraeumerError
from .layer_groups import GROUP_NAMES

PULSE_BANDS = ("full", "low", "mid", "high")
DEFAULT_PULSE_AMOUNTS = (0.0, 0.6, 0.8)          # coarse, middle, fine
# measured on the steady-beat pieces (BENCHMARKS.md "Motion"): the full band drives the middle and
# fine layers best (the high band alone hits few beats of most music); coarse stays calm
DEFAULT_PULSE_GROUP_BANDS = ("low", "full", "full")
DEFAULT_ATTACK_SECONDS = 0.01
DEFAULT_RELEASE_SECONDS = 0.2
DEFAULT_POWER = 2.0
DEFAULT_PEAK_PERCENTILE = 98.0
DEFAULT_CROSSFADE_SECONDS = 0.25
PULSE_DIRECTIONS = ("hit", "leading")
HOLD_KINDS = ("none", "beat", "bar")
# the hit style is the generator's w for seed + this (a style of its own, not the mapping's)
HIT_SEED_OFFSET = 7919


@dataclass(frozen=True)
class MotionSettings:
    """How the music's rhythm and structure move the picture (see the module docstring)."""

    pulse_amounts: tuple = DEFAULT_PULSE_AMOUNTS          # per group, 0..1
    pulse_bands: tuple = DEFAULT_PULSE_GROUP_BANDS        # per group, one of PULSE_BANDS
    attack: float = DEFAULT_ATTACK_SECONDS
    release: float = DEFAULT_RELEASE_SECONDS
    power: float = DEFAULT_POWER
    percentile: float = DEFAULT_PEAK_PERCENTILE
    direction: str = "hit"
    on_beats: bool = True                                 # hits on the beats (their onset's strength)
    cuts: bool = True
    crossfade: float = DEFAULT_CROSSFADE_SECONDS
    hold: str = "none"

    @property
    def pulsing(self) -> bool:
        return any(float(a) != 0.0 for a in self.pulse_amounts)

    @property
    def off(self) -> bool:
        """Nothing moves with the music: the styles are exactly those without motion."""
        return not self.pulsing and not self.cuts and self.hold == "none"

    def checked(self) -> "MotionSettings":
        """These settings, or TraeumerError naming the bad one."""
        amounts = _numbers(self.pulse_amounts, "pulse amounts", len(GROUP_NAMES))
        if not all(0.0 <= a <= 1.0 for a in amounts):
            raise TraeumerError("pulse amounts must be between 0 and 1")
        bands = tuple(str(b) for b in self.pulse_bands)
        if len(bands) != len(GROUP_NAMES) or not all(b in PULSE_BANDS for b in bands):
            raise TraeumerError(f"pulse bands must be three of {', '.join(PULSE_BANDS)} (coarse, middle, fine)")
        for name, low, high in (("attack", 0.0, 2.0), ("release", 0.0, 10.0), ("power", 0.1, 8.0),
                                ("percentile", 50.0, 100.0), ("crossfade", 0.0, 10.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high:
                raise TraeumerError(f"{name} must be a number between {low:g} and {high:g}")
        if self.direction not in PULSE_DIRECTIONS:
            raise TraeumerError(f"pulse direction must be one of {', '.join(PULSE_DIRECTIONS)}")
        if self.hold not in HOLD_KINDS:
            raise TraeumerError(f"hold must be one of {', '.join(HOLD_KINDS)}")
        return MotionSettings(amounts, bands, float(self.attack), float(self.release), float(self.power),
                              float(self.percentile), self.direction, bool(self.on_beats), bool(self.cuts),
                              float(self.crossfade), self.hold)

    def record(self) -> dict:
        """JSON-ready settings (styles.npz, fingerprints)."""
        record = asdict(self)
        record["pulse_amounts"] = [float(a) for a in self.pulse_amounts]
        record["pulse_bands"] = list(self.pulse_bands)
        return record

    @classmethod
    def from_record(cls, record: dict) -> "MotionSettings":
        fields = {k: v for k, v in dict(record).items() if k in cls.__dataclass_fields__}
        for key in ("pulse_amounts", "pulse_bands"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields).checked()


MOTION_OFF = MotionSettings(pulse_amounts=(0.0, 0.0, 0.0), cuts=False, hold="none")


def _numbers(values, what, count):
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TraeumerError(f"{what} must be {count} numbers") from None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise TraeumerError(f"{what} must be {count} finite numbers")
    return numbers


def parse_amounts(text) -> tuple:
    """"0,0.6,0.8" (coarse, middle, fine) -> (0.0, 0.6, 0.8)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return _numbers(parts, "pulse amounts (coarse,middle,fine)", len(GROUP_NAMES))


def parse_bands(text) -> tuple:
    """"low,full,high" (coarse, middle, fine) -> ("low", "full", "high")."""
    parts = tuple(p.strip() for p in text.split(",")) if isinstance(text, str) else tuple(text)
    if len(parts) != len(GROUP_NAMES) or not all(p in PULSE_BANDS for p in parts):
        raise TraeumerError(f"pulse bands must be three of {', '.join(PULSE_BANDS)}, e.g. low,low,high")
    return parts


# ----------------------------------------------------------------------------- pulse

def shape_envelope(envelope, rate: float, settings: MotionSettings) -> np.ndarray:
    """The shaped pulse [n] in [0, 1] of one onset envelope sampled at ``rate`` Hz."""
    x = np.asarray(envelope, dtype=np.float64)
    if x.size == 0:
        return x
    x = np.where(np.isfinite(x), np.maximum(x, 0.0), 0.0)
    # peaks: samples not below their neighbours and above zero
    inner = (x[1:-1] >= x[:-2]) & (x[1:-1] >= x[2:]) & (x[1:-1] > 0)
    peaks = x[1:-1][inner] if x.size > 2 else x[x > 0]
    scale = float(np.percentile(peaks, settings.percentile)) if peaks.size else 0.0
    if scale <= 1e-12:
        return np.zeros_like(x)
    shaped = np.clip(x / scale, 0.0, 1.0) ** float(settings.power)
    # attack: a one-pole rise toward a higher input; release: peak hold with exponential decay
    step = 1.0 / float(rate)
    rise = 1.0 if settings.attack <= step else 1.0 - math.exp(-step / settings.attack)
    decay = 0.0 if settings.release <= 0 else math.exp(-step / settings.release)
    out = np.empty_like(shaped)
    level = 0.0
    for k, value in enumerate(shaped.tolist()):   # 100 Hz: 30,000 steps for 5 minutes
        held = level * decay
        level = held + rise * (value - held) if value > held else held
        out[k] = level
    return out


# a beat's hit is as strong as the band's strongest onset this close to it
BEAT_ONSET_REACH_SECONDS = 0.05
# onsets between the beats move the picture too, at this fraction of their strength
OFF_BEAT_WEIGHT = 0.5


def beat_hits(envelope, rate: float, start: float, beats) -> np.ndarray:
    """The envelope reduced to one impulse per beat (on the same grid), each as strong as the
    band's strongest onset within ``BEAT_ONSET_REACH_SECONDS`` of the beat."""
    envelope = np.asarray(envelope, dtype=np.float64)
    hits = np.zeros_like(envelope)
    reach = int(round(BEAT_ONSET_REACH_SECONDS * rate))
    for beat in np.asarray(beats, dtype=np.float64).tolist():
        k = int(round((beat - start) * rate))
        if 0 <= k < len(envelope):
            hits[k] = max(hits[k], envelope[max(0, k - reach):k + reach + 1].max())
    return hits


def frame_pulses(analysis, frame_times, settings: MotionSettings) -> dict:
    """{band: pulse at each frame time [N]} for the bands the settings use. With ``on_beats``
    (and beats found) a band hits on the beats only, as hard as its onsets there."""
    times = np.asarray(frame_times, dtype=np.float64)
    pulses = {}
    for band in sorted(set(settings.pulse_bands), key=PULSE_BANDS.index):
        envelope = analysis.envelopes.get(band)
        if envelope is None or len(envelope) == 0:
            pulses[band] = np.zeros(len(times))
            continue
        if settings.on_beats and len(analysis.beats) >= 2:
            # the beats hit in full; onsets between them still move, less
            envelope = np.maximum(beat_hits(envelope, analysis.rate, analysis.start, analysis.beats),
                                  OFF_BEAT_WEIGHT * np.asarray(envelope, dtype=np.float64))
        shaped = shape_envelope(envelope, analysis.rate, settings)
        grid = analysis.start + np.arange(len(shaped)) / float(analysis.rate)
        pulses[band] = np.interp(times, grid, shaped, left=0.0, right=0.0)
    return pulses


def group_pulse(pulses: dict, settings: MotionSettings) -> np.ndarray:
    """[N, 3]: the pulse that drives each group, times its amount."""
    columns = [float(amount) * pulses[band] for amount, band in zip(settings.pulse_amounts, settings.pulse_bands)]
    return np.stack(columns, axis=1)


def leading_targets(group_ws) -> np.ndarray:
    """[3, D]: per group, its mean plus two standard deviations along its leading direction."""
    ws = np.asarray(group_ws, dtype=np.float64)
    targets = ws.mean(axis=0).copy()
    for g in range(ws.shape[1]):
        centred = ws[:, g] - targets[g]
        if ws.shape[0] < 2 or not np.any(centred):
            continue
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        vector = vt[0] if vt[0][np.argmax(np.abs(vt[0]))] >= 0 else -vt[0]
        targets[g] = targets[g] + 2.0 * singular[0] / math.sqrt(ws.shape[0]) * vector
    return targets


def apply_pulse(group_ws, weights, targets) -> np.ndarray:
    """``w + weight·(target − w)`` per frame and group: group_ws [N, 3, D], weights [N, 3]
    (amount × pulse), targets [3, D]."""
    ws = np.asarray(group_ws, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)[:, :, None]
    return ws + weights * (np.asarray(targets, dtype=np.float64)[None] - ws)


# ----------------------------------------------------------------------------- cuts

def cut_frames(section_starts, frame_times) -> np.ndarray:
    """Indices of the frames that begin a new section (the first frame at or after each
    section start, the song's own start left out)."""
    times = np.asarray(frame_times, dtype=np.float64)
    if times.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.asarray(section_starts, dtype=np.float64)
    indices = np.searchsorted(times, starts - 1e-9, side="left")
    return np.unique(indices[(indices > 0) & (indices < len(times))])


def keep_sections_apart(raw_ws, frame_times, cuts, reach_seconds) -> np.ndarray:
    """Frames within ``reach_seconds`` (half the encoder's window) of a cut heard the other
    section too: each takes the ws of the nearest frame of its own section that did not."""
    ws = np.array(raw_ws, dtype=np.float64)
    times = np.asarray(frame_times, dtype=np.float64)
    edges = [0] + [int(c) for c in cuts] + [len(ws)]
    for a, b in zip(edges, edges[1:]):
        section = times[a:b]
        clean = np.flatnonzero((section >= (times[a] + reach_seconds if a > 0 else -np.inf))
                               & (section <= (times[b - 1] - reach_seconds if b < len(ws) else np.inf)))
        if clean.size == 0:
            continue                       # a section shorter than the encoder's window: as heard
        first, last = a + clean[0], a + clean[-1]
        ws[a:first] = ws[first]
        ws[last + 1:b] = ws[last]
    return ws


def smooth_groups_with_cuts(raw_ws, fps, windows_seconds, kind, cuts, frame_times,
                            crossfade=DEFAULT_CROSSFADE_SECONDS) -> np.ndarray:
    """Like ``smoothing.smooth_groups`` [N, 3, D], but no window reaches across a cut: each
    section is smoothed on its own, and the sides are crossfaded over ``crossfade`` seconds."""
    ws = np.asarray(raw_ws, dtype=np.float64)
    cuts = [int(c) for c in np.asarray(cuts, dtype=np.int64).tolist() if 0 < int(c) < len(ws)]
    if not cuts:
        return smoothing.smooth_groups(ws, fps, windows_seconds, kind)
    edges = [0] + cuts + [len(ws)]
    pieces = [smoothing.smooth_groups(ws[a:b], fps, windows_seconds, kind) for a, b in zip(edges, edges[1:])]
    out = np.concatenate(pieces, axis=0)
    if crossfade <= 0:
        return out
    times = np.asarray(frame_times, dtype=np.float64)
    half = float(crossfade) / 2.0
    for number, cut in enumerate(cuts):
        left, right = pieces[number], pieces[number + 1]
        boundary = 0.5 * (times[cut - 1] + times[cut])      # between the two sections' frames
        near = np.flatnonzero(np.abs(times - boundary) < half)
        near = near[(near >= edges[number]) & (near < edges[number + 2])]
        if near.size == 0:
            continue
        blend = ((times[near] - (boundary - half)) / (2.0 * half))[:, None, None]
        # each side carried on flat past the boundary (its last / first smoothed value)
        left_side = left[np.clip(near - edges[number], 0, len(left) - 1)]
        right_side = right[np.clip(near - cut, 0, len(right) - 1)]
        out[near] = (1.0 - blend) * left_side + blend * right_side
    return out


# ----------------------------------------------------------------------------- hold

def hold_frames(group_ws, frame_times, marks) -> np.ndarray:
    """Each frame shows the style of the first frame of its interval between ``marks`` (beat or
    bar times): the look changes on the beat. Frames before the first mark are left alone."""
    ws = np.array(group_ws, dtype=np.float64)
    times = np.asarray(frame_times, dtype=np.float64)
    marks = np.asarray(marks, dtype=np.float64)
    if marks.size == 0 or times.size == 0:
        return ws
    interval = np.searchsorted(marks, times + 1e-9, side="right") - 1     # -1: before the first mark
    first_of = {}
    for index, k in enumerate(interval.tolist()):
        if k >= 0:
            first_of.setdefault(k, index)
            ws[index] = ws[first_of[k]]
    return ws


@dataclass
class Motion:
    """What motion did to a track's styles (stored in styles.npz; Blender keys curves from it)."""

    settings: MotionSettings
    pulses: dict = field(default_factory=dict)        # band -> [N] shaped pulse at each frame
    targets: np.ndarray = None                        # [3, D] the pulse targets
    base_group_ws: np.ndarray = None                  # [N, 3, D] the styles before the pulse
    cuts: np.ndarray = None                           # frame indices that begin a section
    section_starts: np.ndarray = None                 # seconds in the audio file


def move_styles(raw_ws, fps, windows, kind, frame_times, analysis, settings: MotionSettings, truncate,
                hit_w=None, reach_seconds=0.0):
    """Smoothing (with cuts), truncation (``truncate``: group ws -> group ws), hold and pulse.

    Returns (group_ws [N, 3, D], Motion). ``hit_w`` [D] is the hit style (direction "hit");
    ``reach_seconds``: how far from its frame the encoder hears (half its window)."""
    settings = settings.checked()
    times = np.asarray(frame_times, dtype=np.float64)
    section_starts = np.asarray([s.start for s in analysis.sections], dtype=np.float64)
    cuts = cut_frames(section_starts, times) if settings.cuts else np.zeros(0, dtype=np.int64)
    if settings.cuts and cuts.size:
        separated = keep_sections_apart(raw_ws, times, cuts, reach_seconds)
        smoothed = smooth_groups_with_cuts(separated, fps, windows, kind, cuts, times, settings.crossfade)
    else:
        smoothed = smoothing.smooth_groups(raw_ws, fps, windows, kind)
    group_ws = truncate(smoothed)
    if settings.hold != "none":
        marks = analysis.beats if settings.hold == "beat" else analysis.downbeats
        group_ws = hold_frames(group_ws, times, marks)
    motion = Motion(settings=settings, cuts=cuts, section_starts=section_starts)
    if not settings.pulsing:
        return group_ws, motion
    pulses = frame_pulses(analysis, times, settings)
    if settings.direction == "hit":
        if hit_w is None:
            raise ValueError("the hit direction needs the hit style")
        targets = np.broadcast_to(np.asarray(hit_w, dtype=np.float64), (group_ws.shape[1], group_ws.shape[2])).copy()
    else:
        targets = leading_targets(group_ws)
    motion.pulses, motion.targets, motion.base_group_ws = pulses, targets, np.asarray(group_ws)
    return apply_pulse(group_ws, group_pulse(pulses, settings), targets), motion
