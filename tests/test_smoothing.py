# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer groups, frame timing and the per-group moving average."""

from fractions import Fraction

import numpy as np
import pytest

from traeumer_blender import layer_groups, smoothing, timing
from traeumer_blender.errors import TraeumerError

# ----------------------------------------------------------------------------- frame timing

@pytest.mark.parametrize("text, expected", [
    ("30", Fraction(30)), (30, Fraction(30)), ("25", Fraction(25)), ("12.5", Fraction(25, 2)),
    ("29.97", Fraction(30000, 1001)), ("30000/1001", Fraction(30000, 1001)),
    ("23.976", Fraction(24000, 1001)), (23.976, Fraction(24000, 1001)),
    ("59.94", Fraction(60000, 1001)), ("24000/1001", Fraction(24000, 1001)),
    (Fraction(48, 2), Fraction(24)), ("29.5", Fraction(59, 2)),
])
def test_parse_fps(text, expected):
    assert timing.parse_fps(text) == expected


@pytest.mark.parametrize("bad", ["", "abc", "0", "-30", "30/0", "nan", "inf", "1e9", "1/2/3"])
def test_parse_fps_rejects(bad):
    with pytest.raises(TraeumerError):
        timing.parse_fps(bad)


def test_format_fps_round_trips():
    for rate in ("30", "30000/1001", "12.5"):
        fps = timing.parse_fps(rate)
        assert timing.parse_fps(timing.format_fps(fps)) == fps


@pytest.mark.parametrize("duration, fps, expected", [
    (10.0, "30", 300), (10.0, "30000/1001", 300),  # 299.7 -> 300
    (2.0, "30000/1001", 60),                       # 59.94 -> 60
    (0.5, "30", 15), (3600.0, "30000/1001", 107892),  # 107892.1
    (3600.0, "24000/1001", 86314),                 # 86313.69
    (7200.5, "60", 432030), (1.0 / 3.0, "24", 8),
])
def test_frame_count(duration, fps, expected):
    assert timing.frame_count(duration, timing.parse_fps(fps)) == expected


def test_frame_times_do_not_drift_over_hours():
    fps = timing.parse_fps("30000/1001")
    count = timing.frame_count(3 * 3600.0, fps)
    times = timing.frame_times(count, fps)
    exact_last = Fraction(count - 1) / fps
    assert abs(times[-1] - float(exact_last)) < 1e-9
    # spot checks against exact rational times, and strictly increasing
    for index in (0, 1, 1000, 123457, count - 1):
        assert abs(times[index] - float(timing.frame_time(index, fps))) < 1e-9
    assert np.all(np.diff(times) > 0)
    # an accumulated float step would be off by far more than this after 3 hours
    accumulated = np.cumsum(np.full(count - 1, float(1 / fps), dtype=np.float32))[-1]
    assert abs(accumulated - float(exact_last)) > 1e-3


def test_frame_times_offset():
    times = timing.frame_times(4, Fraction(4), offset_seconds=10.0)
    assert times.tolist() == [10.0, 10.25, 10.5, 10.75]


# ----------------------------------------------------------------------------- layer groups

def test_groups_match_the_paper_at_1024():
    # both ways of naming the resolution of a shared ToRGB/conv0 layer give the same split
    pairs = [4 * 2 ** (i // 2) for i in range(18)]
    shifted = [4] + [4 * 2 ** ((i + 1) // 2) for i in range(1, 18)]
    for resolutions in (pairs, shifted):
        groups = layer_groups.layer_groups(resolutions)
        assert groups.tolist() == [0] * 6 + [1] * 6 + [2] * 6


def test_groups_at_256_and_64():
    assert layer_groups.layer_groups([0] * 14).tolist() == [0] * 6 + [1] * 6 + [2] * 2
    assert layer_groups.layer_groups([0] * 10).tolist() == [0] * 6 + [1] * 4
    assert layer_groups.used_groups(layer_groups.layer_groups([0] * 10)) == [0, 1]


def test_parse_windows():
    assert smoothing.parse_windows("3,2,0.3") == (3.0, 2.0, 0.3)
    assert smoothing.parse_windows([5, 2, 0.333]) == (5.0, 2.0, 0.333)
    for bad in ("3,2", "a,b,c", "3,2,-1", "1,2,3,4"):
        with pytest.raises(TraeumerError):
            smoothing.parse_windows(bad)


# ----------------------------------------------------------------------------- smoothing

@pytest.mark.parametrize("kind", smoothing.WINDOW_KINDS)
def test_kernel_is_normalised_and_symmetric(kind):
    for window, fps in ((3.0, 30), (0.3, 30), (2.0, Fraction(30000, 1001)), (0.3, 4), (5.0, 60)):
        weights = smoothing.kernel_weights(window, fps, kind)
        assert len(weights) % 2 == 1
        assert np.isclose(weights.sum(), 1.0)
        assert np.allclose(weights, weights[::-1])
        assert np.all(weights > 0)


def test_box_kernel_spans_the_window_in_seconds():
    # 1 s at 30 fps: 30 frames' worth of time, centre +-14 full frames plus two half frames
    weights = smoothing.kernel_weights(1.0, 30, "box")
    assert len(weights) == 31
    assert np.allclose(weights[1:-1], 1 / 30) and np.isclose(weights[0], 0.5 / 30)


def test_window_shorter_than_a_frame_is_identity():
    values = np.random.default_rng(0).standard_normal((20, 5))
    assert np.array_equal(smoothing.smooth_sequence(values, 0.0, 30), values)
    assert np.allclose(smoothing.smooth_sequence(values, 0.02, 30), values)


def _smoothed_signal(fps, window, kind):
    """A step at 4 s plus a 0.2 Hz sine, sampled at fps and smoothed."""
    times = timing.frame_times(timing.frame_count(10.0, fps), fps)
    signal = (times >= 4.0).astype(float) + 0.5 * np.sin(2 * np.pi * 0.2 * times)
    return times, smoothing.smooth_sequence(signal[:, None], window, fps, kind)[:, 0]


@pytest.mark.parametrize("kind", smoothing.WINDOW_KINDS)
def test_smoothing_is_frame_rate_independent(kind):
    reference_times, reference = _smoothed_signal(Fraction(120), 3.0, kind)
    for fps in (Fraction(24), Fraction(30000, 1001), Fraction(60)):
        times, smoothed = _smoothed_signal(fps, 3.0, kind)
        on_reference = np.interp(times, reference_times, reference)
        # sampling the step at a coarser rate moves it by under a frame: a small error only
        assert np.max(np.abs(smoothed - on_reference)) < 0.6 / float(fps) / 3.0 * 2 + 0.01
    # and the smoothing really did something: the step is spread over the window
    _, smoothed = _smoothed_signal(Fraction(30), 3.0, kind)
    assert np.max(np.abs(np.diff(smoothed))) < 0.05


@pytest.mark.parametrize("kind", smoothing.WINDOW_KINDS)
@pytest.mark.parametrize("frames", [1, 2, 3, 7])
def test_clips_shorter_than_the_window(kind, frames):
    rng = np.random.default_rng(frames)
    values = rng.standard_normal((frames, 4))
    smoothed = smoothing.smooth_sequence(values, 3.0, 30, kind)
    assert smoothed.shape == values.shape and np.all(np.isfinite(smoothed))
    # the window covers the whole clip: every frame moves towards the clip mean
    mean = values.mean(axis=0)
    assert np.all(np.abs(smoothed - mean) <= np.abs(values - mean) + 1e-12)
    if kind == "box" and frames > 1:
        assert np.allclose(smoothed, mean)
    # a constant stays exactly constant, ends included (the cut kernel is renormalised)
    constant = np.full((frames, 3), 2.5)
    assert np.allclose(smoothing.smooth_sequence(constant, 3.0, 30, kind), 2.5)


def test_linear_trend_kept_in_the_middle_and_constant_at_the_ends():
    ramp = np.arange(200, dtype=float)[:, None]
    for kind in smoothing.WINDOW_KINDS:
        smoothed = smoothing.smooth_sequence(ramp, 1.0, 30, kind)
        assert np.allclose(smoothed[20:-20], ramp[20:-20])


def test_box_versus_triangular():
    impulse = np.zeros((121, 1))
    impulse[60] = 1.0
    box = smoothing.smooth_sequence(impulse, 2.0, 30, "box")[:, 0]
    triangle = smoothing.smooth_sequence(impulse, 2.0, 30, "triangular")[:, 0]
    assert np.isclose(box.sum(), 1.0) and np.isclose(triangle.sum(), 1.0)
    # box: flat inside the window; triangle: peaked, falling linearly, twice the box height
    assert np.allclose(box[60 - 29:60 + 30], box[60])
    assert np.isclose(triangle[60], 2 * box[60], rtol=0.01)
    assert np.allclose(np.diff(triangle[45:60]), np.diff(triangle[45:60])[0])
    assert triangle[60 - 29] < 0.1 * triangle[60]
    # the same window length smooths noise more with a box (wider mass)
    noise = np.random.default_rng(1).standard_normal((3000, 1))
    assert smoothing.smooth_sequence(noise, 2.0, 30, "box").std() < \
        smoothing.smooth_sequence(noise, 2.0, 30, "triangular").std()


def test_smooth_groups_shapes_and_windows():
    rng = np.random.default_rng(3)
    ws = rng.standard_normal((90, 8))
    out = smoothing.smooth_groups(ws, 30, (3.0, 2.0, 0.0))
    assert out.shape == (90, 3, 8)
    assert np.allclose(out[:, 2], ws)  # a 0 s window leaves the fine group alone
    roughness = [np.abs(np.diff(out[:, g], axis=0)).mean() for g in range(3)]
    assert roughness[0] < roughness[1] < roughness[2]
