# SPDX-License-Identifier: GPL-3.0-or-later
"""Decode any file libsndfile reads to mono float32 at the encoders' sample rate.

The file is read in blocks; each block is downmixed and fed to a streaming polyphase resampler
that keeps the filter's history between blocks, so the result equals resampling the whole
signal at once while memory holds only the output (16 kHz mono float32: 3.84 MB a minute).
"""

from __future__ import annotations

import logging
import math
import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

from .errors import TraeumerError

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16000
# input frames decoded per block (a block of 8 channels at 192 kHz is 8 MiB as float32)
_BLOCK_FRAMES = 1 << 18
# filter: half-length in taps of the lower of the two rates; Kaiser beta for ~80 dB stop band
_HALF_LENGTH_ZEROS = 16
_KAISER_BETA = 8.0
# cut-off as a fraction of the lower Nyquist frequency (leaves room for the transition band)
_CUTOFF_FRACTION = 0.94
# input frames decoded before a trimmed start (MP3 frames are 1152 samples)
_DECODER_PRE_ROLL_FRAMES = 8192
# sample rates a file may have (anything else is a damaged or hostile header)
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000
# largest sample magnitude accepted (full scale is 1; float files may exceed it a little, a
# file with samples far above is mis-scaled, and 1e30 would overflow the encoder's spectrogram)
MAX_PEAK = 100.0


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says. For MP3 (and some Ogg) files the duration is libsndfile's
    estimate and may exceed the decoded length by up to ~0.1 %; ``len(load_audio(...))`` is exact."""

    duration: float      # seconds
    sample_rate: int     # Hz of the file
    channels: int
    format: str          # libsndfile's major format name, e.g. "MP3", "OGG", "WAV", "FLAC"


def check_audio_path(path) -> Path:
    """The path of a non-empty regular file; judged by ``stat`` alone, so a FIFO or a device is
    refused without being opened (opening a FIFO would wait for a writer)."""
    path = Path(os.fspath(path))
    try:
        info = path.stat()
    except FileNotFoundError:
        raise TraeumerError(f"audio file not found: {path}") from None
    except OSError as error:
        raise TraeumerError(f"cannot read audio file {path}: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise TraeumerError(f"audio path is a folder, not a file: {path}")
    if not stat.S_ISREG(info.st_mode):
        raise TraeumerError(f"audio path is not a regular file (a pipe, socket or device): {path}")
    if info.st_size == 0:
        raise TraeumerError(f"audio file is empty (0 bytes): {path}")
    return path


def _check_header(sound: soundfile.SoundFile, path: Path) -> None:
    """Refuse a header whose rate or channels no real recording has: decoding or resampling it
    would allocate gigabytes (a 1 Hz file is resampled 16000-fold)."""
    if sound.channels <= 0 or sound.samplerate <= 0:
        raise TraeumerError(f"audio file {path} reports no channels or no sample rate")
    if not MIN_SAMPLE_RATE <= sound.samplerate <= MAX_SAMPLE_RATE:
        raise TraeumerError(
            f"audio file {path} says its sample rate is {sound.samplerate} Hz; only "
            f"{MIN_SAMPLE_RATE // 1000} kHz to {MAX_SAMPLE_RATE // 1000} kHz are supported (a damaged header?)")


def _open(path: Path) -> soundfile.SoundFile:
    try:
        return soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        detail = str(error).split(":")[-1].strip() or type(error).__name__
        raise TraeumerError(
            f"cannot read audio file {path}: its format is not readable here ({detail}); "
            f"convert it to WAV, FLAC, Ogg or MP3"
        ) from None


def probe_audio(path) -> AudioInfo:
    """Duration, rate, channels and format of an audio file, without decoding it."""
    path = check_audio_path(path)
    with _open(path) as sound:
        _check_header(sound, path)
        frames = sound.frames
        sample_rate = sound.samplerate
        return AudioInfo(
            duration=float(frames) / float(sample_rate),
            sample_rate=int(sample_rate),
            channels=int(sound.channels),
            format=str(sound.format),
        )


class StreamingResampler:
    """Rational polyphase FIR resampler fed block by block.

    Output sample ``n`` is ``sum_k h[k] * x_up[n*down + delay - k]`` where ``x_up`` is the input
    with ``up - 1`` zeros between samples, as in ``scipy.signal.resample_poly``. Blocks join
    without seams because the buffer keeps every input sample a pending output still needs and
    always starts at a multiple of ``down`` input samples (so the output grid stays aligned).
    """

    def __init__(self, rate_in: int, rate_out: int):
        ratio = Fraction(int(rate_out), int(rate_in))
        self.up, self.down = ratio.numerator, ratio.denominator
        self.identity = self.up == 1 and self.down == 1
        if self.identity:
            return
        max_rate = max(self.up, self.down)
        n_taps = 2 * _HALF_LENGTH_ZEROS * max_rate + 1
        taps = scipy.signal.firwin(n_taps, _CUTOFF_FRACTION / max_rate, window=("kaiser", _KAISER_BETA))
        self.lowpass = taps.copy()      # the designed filter (unit DC gain), for reference checks
        taps *= self.up
        delay = (n_taps - 1) // 2
        # put zeros in front so the delay is a multiple of `down`: output n then reads the
        # upsampled stream around n*down + delay with an integer output index shift
        front = (-delay) % self.down
        self.taps = np.concatenate([np.zeros(front), taps]).astype(np.float64)
        self.delay = delay + front
        self.buffer = np.zeros(0, dtype=np.float64)
        self.buffer_start = 0      # input index of buffer[0]; always a multiple of `down`
        self.consumed = 0          # input samples pushed so far
        self.produced = 0          # output samples returned so far

    def _outputs_from_buffer(self, n_end: int) -> np.ndarray:
        """Outputs [produced, n_end) computed from the current buffer."""
        if n_end <= self.produced:
            return np.zeros(0, dtype=np.float32)
        full = scipy.signal.upfirdn(self.taps, self.buffer, self.up, self.down)
        # full[m] is output n with buffer_start*up + m*down = n*down + delay
        shift = self.delay // self.down - (self.buffer_start * self.up) // self.down
        first = self.produced + shift
        last = n_end + shift
        out = full[first:last]
        if len(out) < n_end - self.produced:  # past the end of the buffer: the signal is zero there
            out = np.concatenate([out, np.zeros(n_end - self.produced - len(out))])
        self.produced = n_end
        return out.astype(np.float32)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed mono samples; return the outputs that no longer depend on future input."""
        if self.identity:
            return np.asarray(block, dtype=np.float32)
        self.buffer = np.concatenate([self.buffer, np.asarray(block, dtype=np.float64)])
        self.consumed += len(block)
        # output n needs input up to index floor((n*down + delay) / up)
        n_ready = (self.consumed * self.up - 1 - self.delay) // self.down + 1
        n_ready = max(n_ready, self.produced)
        out = self._outputs_from_buffer(n_ready)
        # drop input no pending output needs: output n reads from (n*down + delay - len(taps) + 1)/up
        oldest_needed = max(0, (self.produced * self.down + self.delay - len(self.taps) + 1) // self.up)
        drop_to = (oldest_needed // self.down) * self.down
        if drop_to > self.buffer_start:
            self.buffer = self.buffer[drop_to - self.buffer_start:]
            self.buffer_start = drop_to
        return out

    def flush(self) -> np.ndarray:
        """Return the remaining outputs: ceil(len(input) * up / down) in all."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        total = -(-self.consumed * self.up // self.down)
        return self._outputs_from_buffer(total)


def load_audio(path, sample_rate: int = DEFAULT_SAMPLE_RATE, start: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    """Decode ``path`` from ``start`` seconds for ``duration`` seconds (None: to the end).

    Returns float32 mono at ``sample_rate``; channels are averaged. A file that breaks off
    mid-stream (e.g. a truncated download) yields what could be decoded, with a warning in the
    log; a file that yields nothing raises ``TraeumerError``.
    """
    path = check_audio_path(path)
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise TraeumerError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if not math.isfinite(start) or start < 0:
        raise TraeumerError(f"audio start must be >= 0 seconds, got {start}")
    if duration is not None and (not math.isfinite(duration) or duration < 0):
        raise TraeumerError(f"audio duration must be >= 0 seconds, got {duration}")

    with _open(path) as sound:
        _check_header(sound, path)
        rate_in = int(sound.samplerate)
        # about 8 MiB of float32 per decoded block, whatever the number of channels
        block_frames = max(4096, min(_BLOCK_FRAMES, (8 << 20) // (4 * sound.channels)))
        resampler = StreamingResampler(rate_in, sample_rate)
        up, down = (1, 1) if resampler.identity else (resampler.up, resampler.down)
        # output sample n is the song's 16 kHz sample round(start·rate) + n, whatever the input
        # rate, so a trimmed load equals the same slice of a whole-file load
        first_output = int(round(start * sample_rate))
        first_frame = first_output * down // up            # input frame at (or just before) it
        total_frames = sound.frames if sound.frames > 0 else None
        if total_frames is not None and first_frame >= total_frames:
            raise TraeumerError(
                f"audio start {start:.3f} s is past the end of {path} ({total_frames / rate_in:.3f} s)")
        wanted = None if duration is None else int(round(duration * sample_rate))

        # decode some input before `start` so that the filter is settled and a compressed
        # stream's decoder has the frames it refers back to (an MP3 frame may borrow bits from
        # earlier ones: right after a seek it decodes wrongly).  Reading starts at a multiple of
        # `down` input frames, where the resampler's output grid meets the input grid.
        span = 0 if resampler.identity else len(resampler.taps) // resampler.up + 1
        context = max(span, _DECODER_PRE_ROLL_FRAMES) if first_frame > 0 else 0
        read_from = max(0, (first_frame - context) // down * down)
        skip_outputs = first_output - read_from * up // down

        if read_from > 0:
            try:
                sound.seek(read_from)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise TraeumerError(f"cannot seek to {start:.3f} s in {path}: {error}") from None

        if total_frames is not None:
            expected = -(-(total_frames - first_frame) * up // down) + 1
            capacity = expected if wanted is None else min(expected, wanted)
        else:
            capacity = wanted if wanted is not None else sample_rate * 60
        output = np.zeros(max(capacity, 1) + 8, dtype=np.float32)
        filled = 0

        def append(samples: np.ndarray) -> bool:
            """Store outputs after the skipped context; return True once `wanted` are stored."""
            nonlocal output, filled, skip_outputs
            if skip_outputs:
                cut = min(skip_outputs, len(samples))
                samples = samples[cut:]
                skip_outputs -= cut
            if wanted is not None:
                samples = samples[: max(0, wanted - filled)]
            if not np.all(np.isfinite(samples)):
                raise TraeumerError(f"audio file {path} decodes to non-finite samples (NaN or infinity)")
            if filled + len(samples) > len(output):  # the header under-reported the length
                grown = np.zeros(max(2 * len(output), filled + len(samples)), dtype=np.float32)
                grown[:filled] = output[:filled]
                output = grown
            output[filled:filled + len(samples)] = samples
            filled += len(samples)
            return wanted is not None and filled >= wanted

        done = wanted == 0
        decoded_frames = 0
        while not done:
            try:
                block = sound.read(block_frames, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                log.warning("audio file %s breaks off after %.2f s (%s); using what was decoded",
                            path, (read_from + decoded_frames) / rate_in, error)
                break
            if len(block) == 0:
                break
            peak = float(np.max(np.abs(block))) if block.size else 0.0
            if not peak <= MAX_PEAK:   # also NaN
                where = (read_from + decoded_frames) / rate_in
                if not math.isfinite(peak):
                    raise TraeumerError(f"audio file {path} has samples that are not finite numbers "
                                        f"(NaN or infinity) after {where:.2f} s")
                raise TraeumerError(
                    f"audio file {path} has samples as large as {peak:.3g} after {where:.2f} s; full scale "
                    f"is 1 and more than {MAX_PEAK:g} is refused (normalise the file first)")
            decoded_frames += len(block)
            mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
            done = append(resampler.push(mono))
        if not done:
            append(resampler.flush())

    if filled == 0 and wanted != 0:
        if decoded_frames == 0:
            raise TraeumerError(f"no audio could be decoded from {path}")
        raise TraeumerError(f"no audio in the requested range of {path} (start {start:.3f} s)")
    return output[:filled]
