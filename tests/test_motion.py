# SPDX-License-Identifier: GPL-3.0-or-later
"""Musical motion (traeumer_blender/motion.py): pulse shaping, cuts between sections, hold."""

from fractions import Fraction

import numpy as np
import pytest

from traeumer_blender import motion, smoothing, timing
from traeumer_blender.analysis import MusicAnalysis, Section
from traeumer_blender.errors import TraeumerError


def click_analysis(seconds=10.0, bpm=120.0, rate=100.0, sections=((0.0, 10.0),)):
    """An analysis whose low band has one onset per beat (known answer)."""
    n = int(seconds * rate)
    low = np.zeros(n, dtype=np.float32)
    beats = np.arange(0.5, seconds, 60.0 / bpm)
    low[np.round(beats * rate).astype(int)] = 1.0
    return MusicAnalysis(start=0.0, rate=rate, envelopes={"full": low, "low": low, "mid": low * 0, "high": low * 0},
                         tempo=bpm, beats=beats, downbeats=beats[::4],
                         sections=[Section(a, b, []) for a, b in sections])


def test_a_shaped_pulse_jumps_on_the_onset_and_decays_with_the_release():
    analysis = click_analysis(seconds=60.0)                        # 119 beats: enough peaks to rank
    settings = motion.MotionSettings(release=0.2)
    shaped = motion.shape_envelope(analysis.envelopes["low"], analysis.rate, settings)
    onset = int(round(0.5 * analysis.rate))
    assert shaped[onset] == pytest.approx(1.0) and shaped[onset - 1] == 0.0
    assert shaped[onset + 20] == pytest.approx(np.exp(-1.0), rel=0.02)       # 0.2 s later: 1/e
    # one loud hit does not flatten the others: the scale is a high percentile of the peaks
    loud = analysis.envelopes["low"].copy()
    loud[onset] = 50.0
    assert motion.shape_envelope(loud, analysis.rate, settings)[int(round(1.0 * analysis.rate))] == pytest.approx(1.0)
    assert np.all(motion.shape_envelope(np.zeros(300), 100.0, settings) == 0)


def test_pulses_do_not_depend_on_the_frame_rate():
    analysis = click_analysis()
    settings = motion.MotionSettings()
    at_24 = motion.frame_pulses(analysis, timing.frame_times(240, Fraction(24)), settings)["low"]
    at_48 = motion.frame_pulses(analysis, timing.frame_times(480, Fraction(48)), settings)["low"]
    np.testing.assert_allclose(at_24, at_48[::2], atol=1e-12)


def test_a_cut_crosses_within_the_crossfade_instead_of_the_window():
    fps = Fraction(30)
    times = timing.frame_times(300, fps)
    raw = np.where(times[:, None] < 5.0, -1.0, 1.0) * np.ones((300, 4))
    cuts = motion.cut_frames([0.0, 5.0], times)
    assert cuts.tolist() == [150]
    plain = smoothing.smooth_groups(raw, fps, (3.0, 2.0, 0.3))
    cut = motion.smooth_groups_with_cuts(raw, fps, (3.0, 2.0, 0.3), "box", cuts, times, crossfade=0.25)

    def crossing_seconds(series):
        moving = np.flatnonzero(np.abs(np.diff(series)) > 1e-9)
        return (moving[-1] - moving[0] + 1) / 30.0

    assert crossing_seconds(plain[:, 0, 0]) > 2.5                 # the coarse window blends ~3 s
    assert crossing_seconds(cut[:, 0, 0]) <= 0.3                  # the crossfade: 0.25 s
    # inside the sections nothing changes; far from the cut both agree with the true values
    assert np.all(cut[:140, 0] == -1.0) and np.all(cut[160:, 0] == 1.0)
    # no cut: exactly today's smoothing
    np.testing.assert_array_equal(motion.smooth_groups_with_cuts(raw, fps, (3.0, 2.0, 0.3), "box", [], times),
                                  plain)


def test_hold_keeps_one_look_per_beat():
    times = timing.frame_times(100, Fraction(25))
    ws = np.arange(100, dtype=np.float64)[:, None, None] * np.ones((100, 3, 2))
    held = motion.hold_frames(ws, times, np.array([1.0, 2.0, 3.0]))
    assert np.all(held[:25] == ws[:25])                          # before the first beat: as is
    assert np.all(held[25:50] == ws[25]) and np.all(held[50:75] == ws[50]) and np.all(held[75:] == ws[75])


def test_move_styles_with_motion_off_is_exactly_todays_smoothing():
    fps = Fraction(30)
    times = timing.frame_times(300, fps)
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((300, 8))
    analysis = click_analysis(sections=((0.0, 5.0), (5.0, 10.0)))
    moved, record = motion.move_styles(raw, fps, (3.0, 2.0, 0.3), "box", times, analysis, motion.MOTION_OFF,
                                       truncate=lambda g: g)
    np.testing.assert_array_equal(moved, smoothing.smooth_groups(raw, fps, (3.0, 2.0, 0.3)))
    assert record.pulses == {} and record.cuts.size == 0


def test_the_pulse_moves_only_the_chosen_groups_toward_the_target_on_the_beat():
    fps = Fraction(30)
    times = timing.frame_times(300, fps)
    raw = np.zeros((300, 4))
    analysis = click_analysis()
    settings = motion.MotionSettings(pulse_amounts=(0.0, 0.5, 0.0), pulse_bands=("low", "low", "high"), cuts=False)
    hit = np.full(4, 2.0)
    moved, record = motion.move_styles(raw, fps, (3.0, 2.0, 0.3), "box", times, analysis, settings,
                                       truncate=lambda g: g, hit_w=hit)
    assert np.all(moved[:, 0] == 0.0) and np.all(moved[:, 2] == 0.0)          # coarse and fine: calm
    beat_frame = int(round(0.5 * 30))
    assert moved[beat_frame, 1] == pytest.approx(np.full(4, 1.0))              # halfway to the hit style
    assert np.abs(moved[beat_frame + 9, 1]).max() < 0.5 * np.abs(moved[beat_frame, 1]).max()
    assert np.all(moved[:beat_frame, 1] == 0.0)
    np.testing.assert_array_equal(record.base_group_ws, np.zeros((300, 3, 4)))


def test_bad_settings_are_one_clear_message():
    for bad, message in [(dict(pulse_amounts=(0, 2, 0)), "between 0 and 1"),
                         (dict(pulse_bands=("low", "bass", "high")), "pulse bands"),
                         (dict(release=float("nan")), "release"), (dict(hold="bar2"), "hold"),
                         (dict(direction="up"), "direction")]:
        with pytest.raises(TraeumerError, match=message):
            motion.MotionSettings(**bad).checked()
    assert motion.parse_amounts("0,0.6,0.8") == (0.0, 0.6, 0.8)
    with pytest.raises(TraeumerError):
        motion.parse_amounts("0,1")
    assert motion.MotionSettings.from_record(motion.MotionSettings().record()) == motion.MotionSettings()


def test_frames_that_hear_both_sections_take_their_own_sections_style():
    times = timing.frame_times(100, Fraction(10))
    raw = np.where(times[:, None] < 5.0, 0.0, 1.0) + 0.001 * np.arange(100)[:, None] * np.ones((100, 2))
    apart = motion.keep_sections_apart(raw, times, [50], reach_seconds=1.5)
    assert np.all(apart[35:50] == raw[34]) and np.all(apart[50:65] == raw[65])   # 1.5 s each side
    assert np.array_equal(apart[:35], raw[:35]) and np.array_equal(apart[65:], raw[65:])
    # a section shorter than the encoder's window is left as heard
    short = motion.keep_sections_apart(raw, times, [50, 60], reach_seconds=1.5)
    assert np.array_equal(short[50:60], raw[50:60])


def test_on_beats_the_picture_hits_on_the_beat_and_less_between():
    analysis = click_analysis(seconds=60.0)
    off_beat = int(round(0.75 * analysis.rate))                     # an onset between two beats
    analysis.envelopes["full"] = analysis.envelopes["full"].copy()
    analysis.envelopes["full"][off_beat] = 1.0
    times = np.arange(0, 60, 0.01)
    locked = motion.frame_pulses(analysis, times, motion.MotionSettings(pulse_bands=("full",) * 3))["full"]
    free = motion.frame_pulses(analysis, times, motion.MotionSettings(pulse_bands=("full",) * 3,
                                                                      on_beats=False))["full"]
    assert locked[50] == pytest.approx(1.0) and free[50] == pytest.approx(1.0)
    assert free[75] == pytest.approx(1.0)
    decayed = locked[74] * np.exp(-0.01 / motion.DEFAULT_RELEASE_SECONDS)
    assert locked[75] == pytest.approx(max(motion.OFF_BEAT_WEIGHT ** 2, decayed), rel=1e-6)
    assert locked[75] < 0.5
