# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame rates as exact fractions and drift-free frame times.

A frame rate is a ``fractions.Fraction`` (frames per second). Frame ``i`` starts at
``i * den / num`` seconds, computed per frame from the integer index (never by adding a
step), so an hour of frames at 30000/1001 fps ends exactly where it should.
"""

import math
from fractions import Fraction

import numpy as np

from .errors import TraeumerError

# The video rates derived from NTSC (n * 1000/1001); people write them as rounded decimals.
_NTSC_BASES = (24, 30, 48, 60, 120, 240)
MAX_FPS = 1000


def _ntsc_fraction(value: Fraction):
    """Return n*1000/1001 when ``value`` is the usual decimal spelling of that rate."""
    for base in _NTSC_BASES:
        exact = Fraction(base * 1000, 1001)
        # 23.976, 23.98, 29.97, 59.94, 47.952, 119.88, 239.76 (±half a unit of the last digit)
        if value != base and abs(value - exact) <= Fraction(1, 200):
            return exact
    return None


def parse_fps(value) -> Fraction:
    """Turn "30", "29.97", "30000/1001", 23.976, Fraction(...) into an exact frame rate.

    Decimal spellings of the NTSC rates (23.976, 29.97, 59.94, ...) become n*1000/1001.
    """
    if isinstance(value, Fraction):
        fps = value
    elif isinstance(value, bool):
        raise TraeumerError(f"frame rate must be a number, not {value!r}")
    elif isinstance(value, int):
        fps = Fraction(value)
    else:
        text = str(value).strip()
        try:
            if "/" in text:
                num_text, den_text = text.split("/", 1)
                fps = Fraction(int(num_text.strip()), int(den_text.strip()))
            else:
                number = float(text)
                if not math.isfinite(number):
                    raise ValueError(text)
                # Fraction(str) keeps what was written ("29.97" -> 2997/100), not float noise
                fps = Fraction(text if isinstance(value, str) else repr(number))
        except (ValueError, ZeroDivisionError):
            raise TraeumerError(
                f"frame rate {value!r} is not a number or a fraction such as 30000/1001"
            ) from None
        if fps.denominator != 1:
            fps = _ntsc_fraction(fps) or fps
    if fps <= 0 or fps > MAX_FPS:
        raise TraeumerError(f"frame rate {value} is out of range (0 < fps <= {MAX_FPS})")
    return fps


def format_fps(fps: Fraction) -> str:
    """"30" or "30000/1001": a string that parse_fps turns back into the same rate."""
    fps = Fraction(fps)
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"


def describe_fps(fps: Fraction) -> str:
    """A frame rate for people: "30 fps", "29.970 fps (30000/1001)" (panels, reports)."""
    fps = Fraction(fps)
    if fps.denominator == 1:
        return f"{fps.numerator} fps"
    return f"{float(fps):.3f} fps ({fps.numerator}/{fps.denominator})"


def frame_count(duration_seconds, fps) -> int:
    """round(duration × fps), computed exactly (no float product error)."""
    exact = Fraction(duration_seconds) * Fraction(fps)
    return int(round(exact))


def frame_times(count: int, fps, offset_seconds: float = 0.0) -> np.ndarray:
    """float64 start times of frames 0..count-1: offset + i*den/num, each computed directly."""
    fps = Fraction(fps)
    index = np.arange(int(count), dtype=np.float64)
    # i*den is an exact integer in float64 (i*den < 2**53); one division, one addition: no drift
    return (index * fps.denominator) / fps.numerator + float(offset_seconds)


def frame_time(index: int, fps) -> Fraction:
    """Exact start time of one frame."""
    return Fraction(int(index)) / Fraction(fps)


def format_duration(seconds) -> str:
    """A duration for people: "42 s", "3 min 05 s", "1 h 02 min" (progress lines and reports)."""
    seconds = max(0, int(round(float(seconds))))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
