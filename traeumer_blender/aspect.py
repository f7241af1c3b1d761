# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame shapes: an aspect setting ("1:1", "16:9", "9:16", "2.39:1", "1.85") -> frame width.

The frame height is the model's resolution (or the job's ``resolution``); the width follows the
aspect, rounded to the nearest even number of pixels (video encoders want even sizes). 1:1 is the
square frame StyleGAN always made. Wider frames come from a widened canvas (StyleGAN2: the
constant input repeated sideways and fresh noise beside the trained one; StyleGAN3: a wider
Fourier-feature grid), never from stretching or bars: see README "Frame shape".
"""

import math
from fractions import Fraction

from .errors import TraeumerError

SQUARE = "1:1"
MAX_ASPECT = 8.0        # a frame at most 8 times as wide as high (or as high as wide)


def parse_aspect(text) -> Fraction:
    """"16:9" / "16/9" / "1.78" / 1.78 -> width / height as a Fraction; one clear line otherwise."""
    if text is None or text == "":
        return Fraction(1)
    raw = str(text).strip()
    try:
        for sep in (":", "/", "x"):
            if sep in raw:
                w, h = (part.strip() for part in raw.split(sep, 1))
                ratio = Fraction(w) / Fraction(h)
                break
        else:
            ratio = Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise TraeumerError(f"aspect {raw!r} is not a width:height ratio such as 16:9, 9:16 or 1:1") from None
    if not 1 / MAX_ASPECT <= ratio <= MAX_ASPECT:
        raise TraeumerError(f"aspect {raw} is out of range (between 1:{MAX_ASPECT:g} and {MAX_ASPECT:g}:1)")
    return ratio.limit_denominator(10_000)


def format_aspect(ratio: Fraction) -> str:
    ratio = Fraction(ratio)
    return f"{ratio.numerator}:{ratio.denominator}"


def frame_width(height: int, aspect) -> int:
    """Width of a frame ``height`` px high: height for 1:1, else the nearest even width (≥ 2)."""
    ratio = aspect if isinstance(aspect, Fraction) else parse_aspect(aspect)
    height = int(height)
    if ratio == 1:
        return height
    return max(2, 2 * math.floor(height * ratio / 2 + Fraction(1, 2)))   # halves round up
