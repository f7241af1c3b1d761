# SPDX-License-Identifier: GPL-3.0-or-later
"""Musical motion, the analysis part: onset envelopes, tempo, beats, downbeats and sections.

Everything is in seconds of the audio file and independent of any video frame rate:

- ``onset_envelopes``: onset strength at ``ENVELOPE_RATE`` samples per second, for the whole
  spectrum and for a low (kick), mid and high (snare, hats) band.  Mel power spectrogram
  (64 ms Hann window, bands up to 8 kHz), optionally only its percussive part (a
  harmonic/percussive split: medians over 0.8 s and over 27 mel bands, as iterated medians of
  three, Tukey's ninther, for speed), power in dB, the rise over 20 ms, negative changes set
  to 0, the mean over the band's mel bands.
- ``estimate_tempo``: the envelope's autocorrelation (slow drifts removed), a comb scoring each
  beat period by the mean autocorrelation at its first four multiples, a log-normal prior around
  120 BPM (σ one octave), then the octave: a plain pulse whose half-beats are as strong as its
  beats is taken at the double tempo (up to 210 BPM), a tempo with every other beat empty at the
  half.  The comb's value is a correlation, the tempo's confidence: music without a steady beat
  (silence, noise, random hits) stays below a threshold (0.15, more on excerpts under 44 s), and
  smooth modulations (a pad's swell and vibrato) are too weak in dB (``TEMPO_STRENGTH_MIN_DB``):
  they get no tempo (measured: ``bench/motion.py --confidence``).
- ``track_beats``: dynamic programming after Ellis (2007): each frame's score is its onset
  strength plus the best earlier beat's score less ``tightness·log(gap/period)²`` (or a fresh
  start where that is below zero); backtrack from the last strong peak; weak beats at the ends
  are trimmed; each beat is refined to a fraction of a frame.
- ``find_downbeats``: the bar length (4 or 3 beats) and phase whose first beats carry the
  most accent (low band and full envelope).
- ``section_boundaries``: Foote novelty (a Gaussian-tapered checkerboard kernel along the
  diagonal of the cosine self-similarity of the encoder's embeddings), peaks at least
  ``min_seconds`` apart and above an absolute novelty, so steady music gets no boundary (a
  looped excerpt of real music stays below 0.013, NOVELTY_MIN is 0.05).
- ``analyze``: all of it for an excerpt; each boundary is then moved to the largest change of
  the mel spectrum within ±1.5 s (the encoder's 3 s windows blur it), and with an encoder each
  section gets its top tags.

numpy and scipy only; torch is touched only through an encoder the caller passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.signal

from .errors import TraeumerError

ENVELOPE_RATE = 100.0                        # envelope samples per second
BANDS = ("full", "low", "mid", "high")       # low ≲ 150 Hz (kicks), mid, high ≳ 2 kHz (snares, hats)

# ----- the spectrogram behind the envelopes (all in seconds or Hz: any sample rate works)
WINDOW_SECONDS = 0.064          # Hann window of each spectrogram frame
MAX_FREQUENCY = 8000.0          # mel bands up to here (the encoders' 16 kHz audio has no more)
N_MELS = 128
LOW_MAX_HZ = 150.0              # "low": mel bands centred at or below this
HIGH_MIN_HZ = 2000.0            # "high": centred at or above this; "mid" between
RISE_SECONDS = 0.02             # onset = rise in dB over this span, centred on the sample
FLOOR_DB = -100.0               # power floor (full-scale sine = 0 dB) ...
TOP_DB = 80.0                   # ... and at most this far below the excerpt's loudest band
ONSET_LEAD = 0.018              # a frame's window is centred this long before its sample's time
HPSS_TIME_SECONDS = 0.8         # harmonic part: median over about this much time ...
HPSS_BANDS = 27                 # ... percussive part: median over this many mel bands
_BLOCK_FRAMES = 6000            # spectrogram frames processed at once
SPECTRUM_BLOCK_SECONDS = 0.1    # the plain spectrum kept for placing section boundaries


# ============================================================================ onset envelopes

def _hz_to_mel(hz):
    """Slaney's mel scale: linear below 1 kHz (15 mel there), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp((mel - 15.0) * log_step))


def _mel_bank(sample_rate: int, n_fft: int, n_mels: int, f_max: float):
    """Triangular filters [bins, n_mels] (each averages the power under it) and their centres (Hz)."""
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(f_max)), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))          # [n_mels, bins]
    # a filter narrower than the bin spacing still gets its nearest bin
    empty = weights.sum(axis=1) == 0
    if empty.any():
        nearest = np.clip(np.round(edges[1:-1] / (sample_rate / n_fft)).astype(int), 0, len(bins) - 1)
        weights[empty, nearest[empty]] = 1.0
    weights /= weights.sum(axis=1, keepdims=True)
    return np.ascontiguousarray(weights.T, dtype=np.float32), edges[1:-1]


def _band_masks(centres_hz):
    """band name -> boolean mask over the mel bands."""
    centres_hz = np.asarray(centres_hz)
    masks = {
        "full": np.ones(len(centres_hz), dtype=bool),
        "low": centres_hz <= LOW_MAX_HZ,
        "mid": (centres_hz > LOW_MAX_HZ) & (centres_hz < HIGH_MIN_HZ),
        "high": centres_hz >= HIGH_MIN_HZ,
    }
    return masks


def _median3(a, b, c):
    """Element-wise median of three arrays."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _pseudo_median(x: np.ndarray, axis: int, levels: int) -> np.ndarray:
    """Tukey's iterated median of three (the "ninther" for two levels) along ``axis``.

    Level k takes the median of the values 3^k apart, so ``levels`` levels span 3^levels
    samples, like a median filter of that size, at the cost of a few array operations per
    level (an exact running median over 81 frames costs ~30× more here).  Edges repeat the
    first and last value.
    """
    n = x.shape[axis]
    index = np.arange(n)
    for level in range(levels):
        step = 3 ** level
        if step >= n:
            break
        before = np.take(x, np.maximum(index - step, 0), axis=axis)
        after = np.take(x, np.minimum(index + step, n - 1), axis=axis)
        x = _median3(before, x, after)
    return x


def _levels_for(size: float) -> int:
    """Levels of _pseudo_median whose span 3^levels is nearest to ``size`` samples (in log)."""
    return max(0, int(round(math.log(max(size, 1.0), 3.0))))


def _frame_geometry(sample_rate: int):
    window = max(16, int(round(WINDOW_SECONDS * sample_rate)))
    n_fft = 1 << (window - 1).bit_length()
    return window, n_fft


def mel_power(audio, sample_rate, times) -> tuple[np.ndarray, np.ndarray]:
    """Mel power [len(times), N_MELS] float32 of Hann frames centred on ``times`` (seconds from
    audio sample 0; zeros outside the audio), full-scale sine = 1; and the bands' centres (Hz)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    times = np.asarray(times, dtype=np.float64)
    window, n_fft = _frame_geometry(sample_rate)
    f_max = min(MAX_FREQUENCY, sample_rate / 2.0)
    bank, centres = _mel_bank(sample_rate, n_fft, N_MELS, f_max)
    hann = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)).astype(np.float32)
    # |X|² of a full-scale sine on a bin is (sum(hann)/2)²: scale it to 1 (0 dB)
    hann *= np.float32(2.0 / hann.sum())
    half = window // 2
    centres_samples = np.round(times * sample_rate).astype(np.int64)
    out = np.zeros((len(times), N_MELS), dtype=np.float32)
    if len(times) == 0:
        return out, centres
    first = int(centres_samples.min()) - half
    last = int(centres_samples.max()) - half + window
    # the stretch of audio the frames read, zero-padded where it leaves the audio
    segment = np.zeros(last - first, dtype=np.float32)
    lo, hi = max(first, 0), min(last, len(audio))
    if hi > lo:
        segment[lo - first:hi - first] = audio[lo:hi]
    offsets = np.arange(window)
    chunk = 2048
    for i in range(0, len(times), chunk):
        starts = centres_samples[i:i + chunk] - half - first
        frames = segment[starts[:, None] + offsets[None, :]]
        frames *= hann
        spectrum = scipy.fft.rfft(frames, n=n_fft, axis=1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        np.matmul(power, bank, out=out[i:i + chunk])
    return out, centres


def onset_envelopes(audio, sample_rate, rate=ENVELOPE_RATE, percussive=True, start=0.0, count=None) -> dict:
    """band -> float32 onset strength (>= 0), sample n at ``start + n/rate`` seconds of ``audio``.

    ``count`` samples (default: to the end of the audio).  ``percussive`` uses only the
    percussive part of a harmonic/percussive split, so held notes and chords add less.
    """
    return _envelopes_and_spectrum(audio, sample_rate, rate, percussive, start, count, False)[0]


def _envelopes_and_spectrum(audio, sample_rate, rate, percussive, start, count, keep_spectrum):
    """(envelopes, the plain mel spectrum in dB per SPECTRUM_BLOCK_SECONDS [blocks, N_MELS] or None).

    Frames are processed in blocks (with the harmonic median's reach on either side, so the
    result is the same as in one piece, to float rounding): memory holds the masked mel power of
    the excerpt (51 kB a second), not every intermediate array of an hour of music at once.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    sample_rate = int(sample_rate)
    rate = float(rate)
    if sample_rate <= 0 or not math.isfinite(rate) or rate <= 0:
        raise TraeumerError("sample rate and envelope rate must be positive")
    if count is None:
        count = max(0, int(math.floor((len(audio) / sample_rate - start) * rate + 1e-9)))
    count = int(count)
    # the rise is centred on the sample: dB at n + half minus dB at n - half
    half = max(1, int(round(RISE_SECONDS * rate / 2.0)))
    time_levels = _levels_for(HPSS_TIME_SECONDS * rate) if percussive else 0
    # the harmonic median's reach: iterated medians of three 1, 3, 9 ... frames apart
    reach = (3 ** time_levels - 1) // 2 if percussive else 0
    n_frames = count + 2 * half                # frame i is the time of envelope sample i - half
    # an attack raises the dB most as it enters the window's leading half, 9-26 ms before the
    # window's centre (measured on bursts 10-60 dB above their background): with the window
    # centred ONSET_LEAD earlier, envelope peaks fall within ±10 ms of the attacks
    times = start - ONSET_LEAD + (np.arange(-reach, n_frames + reach) - half) / rate
    masked = np.empty((n_frames, N_MELS), dtype=np.float32)
    # the plain spectrum, as mean power per block of `per_block` envelope samples
    per_block = max(1, int(round(SPECTRUM_BLOCK_SECONDS * rate)))
    plain = np.zeros((-(-count // per_block), N_MELS), dtype=np.float64) if keep_spectrum else None
    centres = _mel_bank(sample_rate, _frame_geometry(sample_rate)[1], N_MELS,
                        min(MAX_FREQUENCY, sample_rate / 2.0))[1]
    for first in range(0, n_frames, _BLOCK_FRAMES):
        last = min(first + _BLOCK_FRAMES, n_frames)
        # frames first - reach .. last + reach (times[] starts `reach` frames early)
        power, _ = mel_power(audio, sample_rate, times[first:last + 2 * reach])
        inner = power[reach:reach + last - first]
        if plain is not None:
            lo, hi = max(first, half), min(last, half + count)          # frames of samples lo-half ..
            if hi > lo:
                samples = np.arange(lo - half, hi - half)
                ids, runs = np.unique(samples // per_block, return_index=True)
                plain[ids] += np.add.reduceat(power[reach + lo - first:reach + hi - first], runs, axis=0)
        if percussive:
            harmonic = _pseudo_median(power, 0, time_levels)[reach:reach + last - first]
            percussive_part = _pseudo_median(inner, 1, _levels_for(HPSS_BANDS))
            # soft mask on magnitudes squared (= power): P²/(P² + H²) of the magnitudes
            h2 = np.square(harmonic)
            p2 = np.square(percussive_part)
            inner = inner * (p2 / np.maximum(p2 + h2, 1e-30))
        masked[first:last] = inner
    spectrum = None
    if plain is not None:
        sizes = np.minimum(per_block, count - per_block * np.arange(len(plain)))
        plain /= sizes[:, None]
        spectrum = _to_db(plain.astype(np.float32), np.empty(plain.shape, dtype=np.float32))
    db = _to_db(masked, masked)
    # rise[n] = db[n + half] - db[n - half] for the excerpt's samples n = 0 .. count-1, and each
    # band's mean over its mel bands (one product with an averaging matrix), block by block
    masks = _band_masks(centres)
    averaging = np.zeros((N_MELS, len(masks)), dtype=np.float32)
    for column, mask in enumerate(masks.values()):
        if mask.any():
            averaging[mask, column] = 1.0 / mask.sum()
    means = np.empty((count, len(masks)), dtype=np.float32)
    for first in range(0, count, _BLOCK_FRAMES):
        last = min(first + _BLOCK_FRAMES, count)
        rise = db[first + 2 * half:last + 2 * half] - db[first:last]
        np.maximum(rise, 0.0, out=rise)
        np.matmul(rise, averaging, out=means[first:last])
    envelopes = {band: np.ascontiguousarray(means[:, column]) for column, band in enumerate(masks)}
    return envelopes, spectrum


def _to_db(power, out):
    """Power in dB, floored at FLOOR_DB and TOP_DB below the loudest value, written into ``out``."""
    loudest = float(power.max()) if power.size else 0.0
    floor = max(10.0 ** (FLOOR_DB / 10.0), loudest * 10.0 ** (-TOP_DB / 10.0))
    np.maximum(power, np.float32(floor), out=out)
    np.log10(out, out=out)
    out *= np.float32(10.0)
    return out


# ============================================================================ tempo

TEMPO_MIN_BPM = 40.0
TEMPO_MAX_BPM = 240.0
PRIOR_BPM = 120.0               # log-normal prior: centre ...
PRIOR_OCTAVES = 1.0             # ... and σ in octaves
DOUBLE_MAX_BPM = 210.0          # a tempo whose half-beats are as strong as its beats doubles up to here
TEMPO_MIN_SECONDS = 5.0         # shorter excerpts get no tempo
TEMPO_CONFIDENCE_MIN = 0.15     # periodicity (a correlation) needed for a tempo ...
TEMPO_CONFIDENCE_SHORT = 1.0    # ... and at least this / sqrt(seconds) on short excerpts
TEMPO_STRENGTH_MIN_DB = 0.3     # the periodic part of the envelope must be this strong (dB)
_MULTIPLES = 4                  # beat-period multiples compared by the comb
_MAX_LAG_SECONDS = 4.0


@dataclass
class TempoEstimate:
    """What ``tempo_details`` found; ``bpm`` is None when there is no steady beat."""

    bpm: float | None
    candidate_bpm: float | None     # the best periodicity, even when it is not trusted
    confidence: float               # mean autocorrelation at the beat period's multiples
    threshold: float                # the confidence this excerpt needed
    strength_db: float              # confidence × std of the envelope (dB)


def _prepared_envelope(envelope, rate):
    """The envelope as the tempo sees it: slow drifts removed (a running median over ~2.4 s),
    the loudest 0.5 % clipped (an excerpt's very first onset from silence must not dominate),
    smoothed over 20 ms, mean removed."""
    x = np.asarray(envelope, dtype=np.float64)
    if len(x) == 0:
        return x
    x = x - _pseudo_median(x, 0, _levels_for(2.4 * rate))
    x = np.minimum(x, np.percentile(x, 99.5))
    x = scipy.ndimage.gaussian_filter1d(x, 0.02 * rate, mode="nearest")
    return x - x.mean()


def _autocorrelation(x, max_lag):
    """Unbiased autocorrelation at lags 0..max_lag, normalised to 1 at lag 0."""
    n = len(x)
    size = scipy.fft.next_fast_len(2 * n)
    spectrum = scipy.fft.rfft(x, size)
    ac = scipy.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, size)[:max_lag + 1]
    ac /= n - np.arange(len(ac))
    return ac / ac[0] if ac[0] > 0 else np.zeros_like(ac)


def _tempo_grid():
    steps = int(math.ceil(math.log(TEMPO_MAX_BPM / TEMPO_MIN_BPM) / math.log(1.0025)))
    return TEMPO_MIN_BPM * 1.0025 ** np.arange(steps + 1)


def _comb(ac, periods):
    """(mean ac at the periods' multiples, mean ac half-way between them, multiples used)."""
    lags = np.arange(len(ac))
    on = np.zeros(len(periods))
    half = np.zeros(len(periods))
    used = np.zeros(len(periods))
    for k in range(1, _MULTIPLES + 1):
        inside = k * periods <= len(ac) - 1
        on += np.where(inside, np.interp(k * periods, lags, ac), 0.0)
        half += np.where(inside, np.interp((k - 0.5) * periods, lags, ac), 0.0)
        used += inside
    return on / np.maximum(used, 1), half / np.maximum(used, 1), used


def tempo_details(envelope, rate) -> TempoEstimate:
    """Tempo from the onset envelope's autocorrelation, with its confidence (see the module doc).

    Each candidate period P scores the mean autocorrelation at P, 2P, 3P, 4P (so a period
    whose every beat repeats scores high), weighted by the prior.  Then the octave: when the
    points half-way between the chosen beats are as strong as the beats (a plain pulse, as in a
    click track), the double tempo is taken while it stays ≤ DOUBLE_MAX_BPM; when every other
    chosen beat is empty, the half tempo.  The confidence is the unweighted score.
    """
    rate = float(rate)
    x = _prepared_envelope(envelope, rate)
    seconds = len(x) / rate
    threshold = max(TEMPO_CONFIDENCE_MIN, TEMPO_CONFIDENCE_SHORT / math.sqrt(max(seconds, 1e-9)))
    if seconds < TEMPO_MIN_SECONDS or not np.any(x):
        return TempoEstimate(None, None, 0.0, threshold, 0.0)
    max_lag = int(min(len(x) - 1, _MAX_LAG_SECONDS * rate))
    ac = _autocorrelation(x, max_lag)
    bpms = _tempo_grid()
    periods = 60.0 * rate / bpms
    on, half, used = _comb(ac, periods)
    prior = np.exp(-0.5 * (np.log2(bpms / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    score = np.where(used >= 2, on * prior, -np.inf)
    best = int(np.argmax(score))

    def strongest_near(bpm):
        """Index of the best unweighted score within ±2 % of ``bpm``."""
        near = np.flatnonzero(np.abs(np.log(bpms / bpm)) <= math.log(1.02))
        near = near[used[near] >= 2]
        return int(near[np.argmax(on[near])]) if len(near) else None

    if half[best] >= 0.9 * on[best] and 2 * bpms[best] <= DOUBLE_MAX_BPM:
        doubled = strongest_near(2 * bpms[best])
        best = best if doubled is None else doubled
    elif bpms[best] / 2 >= TEMPO_MIN_BPM:
        halved = strongest_near(bpms[best] / 2)
        if halved is not None and on[best] <= 0.6 * on[halved]:
            best = halved
    bpm = float(bpms[best])
    # sub-step refinement: a parabola through the unweighted scores around the peak
    if 0 < best < len(bpms) - 1:
        a, b, c = on[best - 1], on[best], on[best + 1]
        curvature = a - 2 * b + c
        if curvature < 0:
            shift = float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5))
            bpm = float(bpm * 1.0025 ** shift)
    confidence = float(on[best])
    strength = confidence * float(x.std())
    trusted = confidence >= threshold and strength >= TEMPO_STRENGTH_MIN_DB
    return TempoEstimate(bpm if trusted else None, bpm, confidence, threshold, strength)


def estimate_tempo(envelope, rate) -> float | None:
    """BPM of the envelope's steady beat, or None when it has none (``tempo_details``)."""
    return tempo_details(envelope, rate).bpm


# ============================================================================ beats

TIGHTNESS = 250.0               # how strictly beats keep the period (Ellis 2007 used 100; see BENCHMARKS.md)


def _local_score(envelope, period):
    """The envelope in units of its standard deviation, smoothed by a Gaussian of period/32."""
    x = np.asarray(envelope, dtype=np.float64)
    std = x.std()
    if std <= 0:
        return np.zeros_like(x)
    return scipy.ndimage.gaussian_filter1d(x / std, max(period / 32.0, 0.5), mode="constant")


def _dynamic_programme(score, period, tightness):
    """cumulative[t] = score[t] + max(0, max over gaps d in [period/2, 2·period] of
    (cumulative[t - d] - tightness·log(d/period)²)); returns (cumulative, backlink), where
    backlink is -1 for a frame that starts a chain.

    Frames t in a block of floor(period/2) only look back before the block, so each block is
    one vectorised step.
    """
    n = len(score)
    cumulative = score.copy()
    backlink = np.full(n, -1, dtype=np.int64)
    shortest = max(1, int(math.ceil(period / 2.0)))
    longest = max(shortest, int(math.floor(2.0 * period)))
    gaps = np.arange(shortest, longest + 1)
    penalty = -tightness * np.log(gaps / period) ** 2
    block = shortest
    for begin in range(shortest, n, block):
        t = np.arange(begin, min(begin + block, n))
        previous = t[:, None] - gaps[None, :]
        valid = previous >= 0
        candidates = np.where(valid, cumulative[np.maximum(previous, 0)] + penalty[None, :], -np.inf)
        choice = np.argmax(candidates, axis=1)
        best = candidates[np.arange(len(t)), choice]
        # a chain whose best predecessor scores below zero starts afresh here (music after silence)
        has = np.isfinite(best) & (best > 0)
        cumulative[t[has]] += best[has]
        backlink[t[has]] = previous[np.arange(len(t)), choice][has]
    return cumulative, backlink


def _refine(score, frames):
    """Each beat frame moved to the vertex of a parabola through its score and its neighbours'."""
    out = frames.astype(np.float64)
    inner = (frames > 0) & (frames < len(score) - 1)
    f = frames[inner]
    a, b, c = score[f - 1], score[f], score[f + 1]
    curvature = a - 2 * b + c
    peak = (curvature < 0) & (b >= a) & (b >= c)
    shift = np.zeros(len(f))
    shift[peak] = np.clip(0.5 * (a[peak] - c[peak]) / curvature[peak], -0.5, 0.5)
    out[inner] += shift
    return out


def track_beats(envelope, rate, tempo, tightness=TIGHTNESS) -> np.ndarray:
    """Beat times (float64 seconds from envelope sample 0) at about ``tempo`` BPM; empty when
    ``tempo`` is None or the envelope is flat.  See the module docstring."""
    envelope = np.asarray(envelope, dtype=np.float64).reshape(-1)
    rate = float(rate)
    if tempo is None or not math.isfinite(float(tempo)) or float(tempo) <= 0 or len(envelope) < 3:
        return np.zeros(0, dtype=np.float64)
    period = 60.0 * rate / float(tempo)
    score = _local_score(envelope, period)
    if not np.any(score > 0) or len(score) < period:
        return np.zeros(0, dtype=np.float64)
    cumulative, backlink = _dynamic_programme(score, period, float(tightness))
    # the last beat: the last local maximum of the cumulative score that is not weak
    peaks = np.flatnonzero((cumulative[1:-1] >= cumulative[:-2]) & (cumulative[1:-1] > cumulative[2:])) + 1
    if len(peaks) == 0:
        peaks = np.array([int(np.argmax(cumulative))])
    strong = peaks[cumulative[peaks] >= 0.5 * np.median(cumulative[peaks])]
    beat = int(strong[-1]) if len(strong) else int(peaks[-1])
    frames = []
    while beat >= 0:
        frames.append(beat)
        beat = int(backlink[beat])
    frames = np.array(frames[::-1], dtype=np.int64)
    # trim weak beats at both ends (a chain runs on through silence before and after the music)
    strength = score[frames]
    threshold = 0.5 * math.sqrt(float(np.mean(strength ** 2)))
    kept = np.flatnonzero(strength > threshold)
    if len(kept) == 0:
        return np.zeros(0, dtype=np.float64)
    frames = frames[kept[0]:kept[-1] + 1]
    return _refine(score, frames) / rate


# ============================================================================ downbeats

BAR_LENGTHS = (4, 3)            # beats per bar tried, the first preferred
_ACCENT_SECONDS = 0.03          # a beat's accent: the envelope's peak within this of it


def _beat_accents(beats, envelopes, rate):
    """Per beat: the low band's and the full envelope's peaks near it, each in units of its
    own median over the beats, summed."""
    accent = np.zeros(len(beats))
    reach = max(1, int(round(_ACCENT_SECONDS * rate)))
    for band in ("low", "full"):
        envelope = np.asarray(envelopes.get(band, ()), dtype=np.float64)
        if len(envelope) == 0:
            continue
        peaks = scipy.ndimage.maximum_filter1d(envelope, 2 * reach + 1, mode="constant")
        index = np.clip(np.round(np.asarray(beats) * rate).astype(np.int64), 0, len(envelope) - 1)
        values = peaks[index]
        scale = float(np.median(values)) or float(values.mean()) or 1.0
        accent += values / scale
    return accent


def bar_grid(beats, envelopes, rate) -> tuple[int, int]:
    """(beats per bar, index of the first downbeat among the beats), or (0, 0) with too few
    beats.  Each bar length and phase is scored by how much more accent its first beats carry
    than the others; 3 beats per bar wins only when clearly better than 4."""
    beats = np.asarray(beats, dtype=np.float64).reshape(-1)
    if len(beats) < 2 * max(BAR_LENGTHS):
        return 0, 0
    accent = _beat_accents(beats, envelopes, rate)
    best = {}
    for length in BAR_LENGTHS:
        contrasts = []
        for phase in range(length):
            on = np.zeros(len(beats), dtype=bool)
            on[phase::length] = True
            contrasts.append(accent[on].mean() - accent[~on].mean())
        phase = int(np.argmax(contrasts))
        best[length] = (float(contrasts[phase]), phase)
    preferred = BAR_LENGTHS[0]
    length = preferred
    for other in BAR_LENGTHS[1:]:
        if best[other][0] > 0 and best[other][0] > 1.5 * max(best[preferred][0], 0.0):
            length = other
    return length, best[length][1]


def find_downbeats(beats, envelopes, rate) -> np.ndarray:
    """The first beat of each bar (a subset of ``beats``); empty with fewer than two bars."""
    beats = np.asarray(beats, dtype=np.float64).reshape(-1)
    length, phase = bar_grid(beats, envelopes, rate)
    if length == 0:
        return np.zeros(0, dtype=np.float64)
    return beats[phase::length].copy()


# ============================================================================ sections

SECTION_STEP_SECONDS = 0.5      # embeddings are averaged onto a grid this fine
# a boundary from the embeddings moves to the largest spectral change at most this far: the
# novelty peak is already within about half a second of a hard cut, and a wider reach lets a
# drop after the cut win (bench/motion.py's medley: 0.5 s places cuts at 20/40/60 s at
# 20.0/40.0/60.1; 1.5 s placed them at 20.7/40.0 and missed the third)
BOUNDARY_REFINE_SECONDS = 0.5
NOVELTY_MIN = 0.05              # cosine-distance contrast a boundary needs (see section_boundaries)
SECTION_KERNEL_MAX_SECONDS = 8.0


def _embedding_grid(embeddings, times):
    """Mean unit embedding per grid step: (grid [n, D] float64, first centre, step)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(times):
        raise TraeumerError(f"embeddings {embeddings.shape} do not match {len(times)} times")
    if not (np.all(np.isfinite(embeddings)) and np.all(np.isfinite(times))):
        raise TraeumerError("embeddings and their times must be finite")
    order = np.argsort(times, kind="stable")
    times, embeddings = times[order], embeddings[order]
    spacing = float(np.median(np.diff(times))) if len(times) > 1 else SECTION_STEP_SECONDS
    step = max(SECTION_STEP_SECONDS, spacing)
    first = float(times[0])
    index = np.floor((times - first) / step + 0.5).astype(np.int64)
    n = int(index[-1]) + 1
    # index is sorted: each step's rows are one run, summed at once
    steps, run_starts = np.unique(index, return_index=True)
    sums = np.zeros((n, embeddings.shape[1]))
    sums[steps] = np.add.reduceat(embeddings, run_starts, axis=0)
    counts = np.bincount(index, minlength=n)
    filled = np.flatnonzero(counts)
    # steps without an embedding take the nearest filled one
    nearest = filled[np.clip(np.searchsorted(filled, np.arange(n)), 0, len(filled) - 1)]
    before = filled[np.clip(np.searchsorted(filled, np.arange(n)) - 1, 0, len(filled) - 1)]
    use = np.where(np.abs(before - np.arange(n)) <= np.abs(nearest - np.arange(n)), before, nearest)
    grid = sums[use] / counts[use][:, None]
    norms = np.linalg.norm(grid, axis=1, keepdims=True)
    grid = np.divide(grid, norms, out=np.zeros_like(grid), where=norms > 0)
    return grid, first, step


def novelty_curve(embeddings, times, kernel_seconds):
    """Foote novelty on the cosine distances of the embeddings: (novelty [n], boundary times [n]).

    novelty[k] = Gaussian-weighted mean distance between the ``kernel_seconds`` before and after
    the boundary at ``times[k]`` minus the mean distance within each side.  Near the ends, where
    less than half the kernel fits on a side, it is 0.
    """
    grid, first, step = _embedding_grid(embeddings, times)
    n = len(grid)
    half = max(1, int(round(kernel_seconds / step)))
    boundary_times = first + (np.arange(n) - 0.5) * step
    novelty = np.zeros(n)
    if n < 2:
        return novelty, boundary_times
    # similarity diagonals: gram[δ][k] = <grid[k], grid[k + δ]> for δ in 0 .. 2·half - 1
    gram = [np.einsum("ij,ij->i", grid[:n - d], grid[d:]) if d < n else np.zeros(0) for d in range(2 * half)]
    offsets = np.arange(-half, half)                       # rows of the kernel: k + a
    taper = np.exp(-0.5 * ((offsets + 0.5) / (0.5 * half)) ** 2)
    cross = np.zeros(n)
    cross_weight = np.zeros(n)
    within = np.zeros(n)
    within_weight = np.zeros(n)
    k = np.arange(n)
    for ia, a in enumerate(offsets):
        for ib in range(ia + 1, len(offsets)):
            b = offsets[ib]
            rows, cols = k + a, k + b                      # rows < cols
            valid = (rows >= 0) & (cols < n)
            if not valid.any():
                continue
            distance = np.zeros(n)
            distance[valid] = 1.0 - gram[b - a][rows[valid]]
            weight = taper[ia] * taper[ib] * valid
            if a < 0 <= b:
                cross += weight * distance
                cross_weight += weight
            else:
                within += weight * distance
                within_weight += weight
    reach_before = np.minimum(k, half)
    reach_after = np.minimum(n - k, half)
    inside = (reach_before * 2 >= half) & (reach_after * 2 >= half) & (cross_weight > 0) & (within_weight > 0)
    novelty[inside] = cross[inside] / cross_weight[inside] - within[inside] / within_weight[inside]
    return novelty, boundary_times


def section_boundaries(embeddings, times, min_seconds=8.0) -> np.ndarray:
    """Boundary times (s) where the music changes, at least ``min_seconds`` apart and from the
    first and last embedding's time; none in music that stays the same.

    Peaks of ``novelty_curve`` (kernel: ``min_seconds`` a side, at most 8 s) are taken
    strongest first while they reach NOVELTY_MIN, a contrast in cosine distance.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    min_seconds = float(min_seconds)
    if not math.isfinite(min_seconds) or min_seconds <= 0:
        raise TraeumerError("minimum section length must be a positive number of seconds")
    shape = np.shape(embeddings)
    if len(shape) != 2 or shape[0] != len(times):
        raise TraeumerError(f"embeddings {shape} do not match {len(times)} times")
    if len(times) < 3:
        return np.zeros(0, dtype=np.float64)
    kernel = min(min_seconds, SECTION_KERNEL_MAX_SECONDS)
    novelty, boundary_times = novelty_curve(embeddings, times, kernel)
    first, last = float(times.min()), float(times.max())
    peaks = [k for k in range(1, len(novelty) - 1)
             if novelty[k] >= NOVELTY_MIN and novelty[k] >= novelty[k - 1] and novelty[k] > novelty[k + 1]]
    chosen = []
    for k in sorted(peaks, key=lambda k: -novelty[k]):
        at = float(boundary_times[k])
        # the vertex of a parabola through the peak and its neighbours
        a, b, c = novelty[k - 1], novelty[k], novelty[k + 1]
        if a - 2 * b + c < 0:
            at += float(np.clip(0.5 * (a - c) / (a - 2 * b + c), -0.5, 0.5)) * (boundary_times[1] - boundary_times[0])
        if at - first < min_seconds or last - at < min_seconds:
            continue
        if all(abs(at - other) >= min_seconds for other in chosen):
            chosen.append(at)
    return np.array(sorted(chosen), dtype=np.float64)


def refine_boundary(spectrum, rate, at, reach=1.5, side=1.0):
    """``at`` (seconds from spectrum frame 0) moved to the largest change of the dB spectrum
    within ±``reach`` s: the mean absolute difference between the ``side`` s before and after.

    The encoder's windows are ~3 s long, so its embeddings place a change only to about a
    second; the spectrum places it to a tenth.
    """
    spectrum = np.asarray(spectrum, dtype=np.float32)
    block = max(1, int(round(0.1 * rate)))                 # 0.1 s blocks
    n_blocks = len(spectrum) // block
    if n_blocks < 4:
        return float(at)
    blocks = spectrum[:n_blocks * block].reshape(n_blocks, block, -1).mean(axis=1)
    width = max(1, int(round(side * rate / block)))
    centre = int(round(at * rate / block))
    best, best_change = None, -1.0
    for j in range(max(1, centre - int(round(reach * rate / block))),
                   min(n_blocks - 1, centre + int(round(reach * rate / block))) + 1):
        before = blocks[max(0, j - width):j]
        after = blocks[j:j + width]
        if len(before) == 0 or len(after) == 0:
            continue
        change = float(np.abs(before.mean(axis=0) - after.mean(axis=0)).mean())
        if change > best_change:
            best, best_change = j, change
    return float(at) if best is None else best * block / rate


# ============================================================================ the result

ANALYSIS_FORMAT = "traeumer-analysis-1"
TOP_TAGS = 3                    # tags kept per section


@dataclass
class Section:
    start: float            # seconds in the audio file
    end: float
    tags: list               # top tag names, best first (e.g. ["rock", "drums"])
    scores: list = field(default_factory=list)   # their mean probabilities, same order


@dataclass
class MusicAnalysis:
    start: float             # seconds in the audio file of envelope sample 0
    rate: float              # envelope samples per second (ENVELOPE_RATE)
    envelopes: dict          # band -> float32 [n] onset strength (>= 0, not normalised)
    tempo: float | None      # BPM; None when the music has no steady beat
    beats: np.ndarray        # float64 beat times, seconds in the audio file (empty: no beat)
    downbeats: np.ndarray    # float64, a subset of beats (first beat of each bar); may be empty
    sections: list           # [Section], contiguous, covering the analysed excerpt
    duration: float = 0.0    # seconds analysed: [start, start + duration)
    beats_per_bar: int = 0   # 4 or 3 (0: no bars)
    tempo_confidence: float = 0.0   # the periodicity behind the tempo (tempo_details)

    def envelope_at(self, band: str, times) -> np.ndarray:
        """The band's envelope at ``times`` (s in the file), linearly interpolated; 0 outside."""
        if band not in self.envelopes:
            raise TraeumerError(f"unknown band {band!r}: use one of {', '.join(self.envelopes)}")
        values = np.asarray(self.envelopes[band], dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        position = (times - self.start) * self.rate
        return np.interp(position, np.arange(len(values)), values, left=0.0, right=0.0) if len(values) \
            else np.zeros(times.shape)

    def to_json(self, envelopes: bool = False) -> dict:
        """Plain JSON types; ``envelopes`` adds every band's samples (rounded to 4 decimals)."""
        result = {
            "start": float(self.start), "duration": float(self.duration), "rate": float(self.rate),
            "tempo": None if self.tempo is None else float(self.tempo),
            "tempo_confidence": float(self.tempo_confidence), "beats_per_bar": int(self.beats_per_bar),
            "beats": [round(float(t), 6) for t in self.beats],
            "downbeats": [round(float(t), 6) for t in self.downbeats],
            "sections": [{"start": float(s.start), "end": float(s.end), "tags": [str(t) for t in s.tags],
                          "scores": [round(float(v), 4) for v in s.scores]} for s in self.sections],
            "bands": list(self.envelopes),
        }
        if envelopes:
            result["envelopes"] = {band: [round(float(v), 4) for v in values]
                                   for band, values in self.envelopes.items()}
        return result

    def to_npz(self, prefix: str = "analysis_") -> dict:
        """numpy arrays for ``np.savez`` (no objects, strings as unicode arrays), keys ``prefix*``."""
        bands = list(self.envelopes)
        lengths = {len(self.envelopes[b]) for b in bands}
        if len(lengths) > 1:
            raise ValueError("envelopes of different lengths")
        n = lengths.pop() if lengths else 0
        width = max([len(s.tags) for s in self.sections] + [0])
        tags = np.full((len(self.sections), width), "", dtype="U64")
        scores = np.zeros((len(self.sections), width), dtype=np.float64)
        for i, section in enumerate(self.sections):
            tags[i, :len(section.tags)] = [str(t) for t in section.tags]
            scores[i, :len(section.scores)] = [float(v) for v in section.scores]
        return {
            f"{prefix}format": np.array(ANALYSIS_FORMAT),
            f"{prefix}start": np.array(float(self.start)),
            f"{prefix}duration": np.array(float(self.duration)),
            f"{prefix}rate": np.array(float(self.rate)),
            f"{prefix}tempo": np.array([] if self.tempo is None else [float(self.tempo)], dtype=np.float64),
            f"{prefix}tempo_confidence": np.array(float(self.tempo_confidence)),
            f"{prefix}beats_per_bar": np.array(int(self.beats_per_bar), dtype=np.int64),
            f"{prefix}bands": np.array(bands, dtype="U16"),
            f"{prefix}envelopes": (np.stack([np.asarray(self.envelopes[b], dtype=np.float32) for b in bands])
                                   if bands else np.zeros((0, n), dtype=np.float32)),
            f"{prefix}beats": np.asarray(self.beats, dtype=np.float64).reshape(-1),
            f"{prefix}downbeats": np.asarray(self.downbeats, dtype=np.float64).reshape(-1),
            f"{prefix}section_bounds": np.array([[s.start, s.end] for s in self.sections],
                                                dtype=np.float64).reshape(-1, 2),
            f"{prefix}section_tags": tags,
            f"{prefix}section_scores": scores,
        }

    @staticmethod
    def in_npz(arrays, prefix: str = "analysis_") -> bool:
        """Whether ``arrays`` (a dict or an opened .npz) hold an analysis under ``prefix``."""
        keys = arrays.files if hasattr(arrays, "files") else arrays.keys()
        return f"{prefix}format" in keys

    @classmethod
    def from_npz(cls, arrays, prefix: str = "analysis_", what: str = "analysis") -> MusicAnalysis:
        """The analysis stored by ``to_npz``; a missing, damaged or non-finite one is a
        TraeumerError naming ``what``."""
        from .npz_files import parse_errors_as

        with parse_errors_as(f"{what} is damaged"):
            def get(name):
                return np.asarray(arrays[f"{prefix}{name}"])

            if not cls.in_npz(arrays, prefix):
                raise TraeumerError(f"{what}: no music analysis stored")
            if str(get("format")) != ANALYSIS_FORMAT:
                raise TraeumerError(f"{what}: format {str(get('format'))!r} is not {ANALYSIS_FORMAT}")
            numbers = {name: get(name).astype(np.float64) for name in (
                "start", "duration", "rate", "tempo", "tempo_confidence", "beats", "downbeats",
                "section_bounds", "section_scores")}
            envelopes_array = get("envelopes").astype(np.float32)
            bands = [str(b) for b in get("bands").reshape(-1)]
            tags = get("section_tags")
            if tags.dtype.kind != "U" or get("bands").dtype.kind != "U":
                raise ValueError("strings are not unicode arrays")
            bad = [name for name, value in numbers.items() if not np.all(np.isfinite(value))]
            if not np.all(np.isfinite(envelopes_array)):
                bad.append("envelopes")
            if bad:
                raise TraeumerError(f"{what} holds values that are not finite (NaN or infinity): {', '.join(bad)}")
            start, duration, rate = (float(numbers[k]) for k in ("start", "duration", "rate"))
            bounds = numbers["section_bounds"].reshape(-1, 2)
            if (rate <= 0 or duration < 0 or envelopes_array.ndim != 2 or len(bands) != len(envelopes_array)
                    or np.any(envelopes_array < 0) or numbers["tempo"].size > 1
                    or tags.shape[0] != len(bounds) or numbers["section_scores"].shape != tags.shape
                    or np.any(np.diff(numbers["beats"]) < 0)
                    or not np.all(np.isin(numbers["downbeats"], numbers["beats"]))
                    or np.any(bounds[:, 1] < bounds[:, 0])):
                raise TraeumerError(f"{what} is inconsistent (shapes, order or ranges)")
            sections = []
            for (s_start, s_end), row, score_row in zip(bounds, tags, numbers["section_scores"]):
                names = [str(t) for t in row if str(t)]
                sections.append(Section(float(s_start), float(s_end), names,
                                        [float(v) for v in score_row[:len(names)]]))
            tempo = float(numbers["tempo"][0]) if numbers["tempo"].size else None
            return cls(start=start, rate=rate, envelopes={b: envelopes_array[i].copy() for i, b in enumerate(bands)},
                       tempo=tempo, beats=numbers["beats"].copy(), downbeats=numbers["downbeats"].copy(),
                       sections=sections, duration=duration, beats_per_bar=int(get("beats_per_bar")),
                       tempo_confidence=float(numbers["tempo_confidence"]))


# ============================================================================ all of it

SECTION_MIN_SECONDS = 8.0
EMBEDDING_STEP_SECONDS = 0.5    # embeddings analyze() computes itself (when given an encoder only)


def _report(progress, done, total):
    if progress is not None:
        from .progress import Progress

        progress(Progress("analyze", int(done), int(total), None))


def _encoder_audio(audio, sample_rate, encoder):
    rate = int(getattr(encoder, "sample_rate", sample_rate))
    if rate == int(sample_rate):
        return audio
    from fractions import Fraction

    ratio = Fraction(rate, int(sample_rate))
    return scipy.signal.resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def _section_tags(encoder, audio, audio_rate, audio_start, start, end):
    """Mean tag probabilities over the section's audio: whole encoder windows from its start,
    plus one ending at its end when the rest is at least half a window."""
    samples = int(round(float(encoder.window_seconds) * audio_rate))
    first = max(0, int(round((start - audio_start) * audio_rate)))
    last = min(len(audio), int(round((end - audio_start) * audio_rate)))
    piece = audio[first:last]
    if len(piece) == 0:
        return [], []
    whole = len(piece) // samples
    rows = []
    if whole:
        rows.append(np.asarray(encoder.tag_windows(piece[:whole * samples]), dtype=np.float64)[:whole])
    if whole == 0 or len(piece) - whole * samples >= samples // 2:
        rows.append(np.asarray(encoder.tag_windows(piece[-samples:]), dtype=np.float64)[:1])
    mean = np.concatenate(rows).mean(axis=0)
    best = np.argsort(-mean, kind="stable")[:TOP_TAGS]
    names = list(encoder.tag_names)
    return [str(names[k]) for k in best], [float(mean[k]) for k in best]


def analyze(audio, sample_rate, audio_start, start, duration, embeddings=None, embedding_times=None,
            encoder=None, progress=None, min_section_seconds=SECTION_MIN_SECONDS,
            percussive=True) -> MusicAnalysis:
    """Envelopes, tempo, beats, downbeats and sections of [start, start + duration) seconds of
    the file; ``audio`` (mono, ``sample_rate``) begins at ``audio_start`` s of the file, and
    audio around the excerpt is used as context where it is there.

    Sections come from ``embeddings`` [N, D] at ``embedding_times`` (s in the file), the
    encoder's own; given only an ``encoder``, embeddings every 0.5 s are made here (the audio
    must be at, or is resampled to, the encoder's rate).  With an ``encoder`` each section gets
    its top tags.  ``progress`` receives ``progress.Progress`` events of stage "analyze".
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    values = {"sample rate": sample_rate, "audio start": audio_start, "start": start, "duration": duration}
    for name, value in values.items():
        if value is None or not math.isfinite(float(value)):
            raise TraeumerError(f"{name} must be a finite number, not {value!r}")
    sample_rate, audio_start, start, duration = int(sample_rate), float(audio_start), float(start), float(duration)
    if sample_rate <= 0:
        raise TraeumerError("sample rate must be positive")
    if duration <= 0:
        raise TraeumerError("duration must be a positive number of seconds")
    if not np.all(np.isfinite(audio)):
        raise TraeumerError("audio holds samples that are not finite (NaN or infinity)")
    steps = 4 + (encoder is not None)
    _report(progress, 0, steps)
    rate = ENVELOPE_RATE
    count = max(1, int(round(duration * rate)))
    envelopes, spectrum = _envelopes_and_spectrum(audio, sample_rate, rate, percussive, start - audio_start,
                                                  count, True)
    _report(progress, 1, steps)
    estimate = tempo_details(envelopes["full"], rate)
    beats = track_beats(envelopes["full"], rate, estimate.bpm)
    beats = beats[(beats >= 0) & (beats < duration)]
    length, phase = bar_grid(beats, envelopes, rate)
    downbeats = beats[phase::length] if length else np.zeros(0)
    _report(progress, 2, steps)

    encoder_audio = None if encoder is None else _encoder_audio(audio, sample_rate, encoder)
    if embeddings is None and encoder is not None:
        embedding_times = start + EMBEDDING_STEP_SECONDS * (np.arange(int(math.ceil(duration / EMBEDDING_STEP_SECONDS))) + 0.5)
        embedding_times = embedding_times[embedding_times < start + duration]
        embeddings = encoder.embed_frames(encoder_audio, embedding_times - audio_start)
    boundaries = np.zeros(0)
    if embeddings is not None:
        if embedding_times is None:
            raise TraeumerError("embeddings need their times (embedding_times)")
        embedding_times = np.asarray(embedding_times, dtype=np.float64).reshape(-1)
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or len(embeddings) != len(embedding_times):
            raise TraeumerError(f"embeddings {embeddings.shape} do not match {len(embedding_times)} times")
        inside = (embedding_times >= start) & (embedding_times < start + duration)
        if inside.sum() >= 3:
            coarse = section_boundaries(embeddings[inside], embedding_times[inside], min_section_seconds)
            refined = sorted(start + refine_boundary(spectrum, 1.0 / SPECTRUM_BLOCK_SECONDS, b - start,
                                                              reach=BOUNDARY_REFINE_SECONDS)
                             for b in coarse)
            kept = []
            for b in refined:
                if (b - start >= min_section_seconds and start + duration - b >= min_section_seconds
                        and all(b - k >= min_section_seconds for k in kept)):
                    kept.append(b)
            boundaries = np.array(kept)
    _report(progress, 3, steps)
    edges = [start, *boundaries.tolist(), start + duration]
    sections = []
    for s_start, s_end in zip(edges[:-1], edges[1:]):
        tags, scores = [], []
        if encoder is not None:
            tags, scores = _section_tags(encoder, encoder_audio, int(getattr(encoder, "sample_rate", sample_rate)),
                                         audio_start, s_start, s_end)
        sections.append(Section(float(s_start), float(s_end), tags, scores))
    _report(progress, steps, steps)
    return MusicAnalysis(start=start, rate=rate, envelopes=envelopes, tempo=estimate.bpm,
                         beats=beats + start, downbeats=np.asarray(downbeats, dtype=np.float64) + start,
                         sections=sections, duration=duration, beats_per_bar=int(length),
                         tempo_confidence=float(estimate.confidence))
