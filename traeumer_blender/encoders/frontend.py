# SPDX-License-Identifier: GPL-3.0-or-later
"""Mel spectrogram front ends, in float32 with numpy/torch only.

Frames are addressed by the sample their analysis window is centred on; samples outside the
song are zeros, so the frames of a whole song and of any window cut from it agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney's Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear_step = 200.0 / 3.0
    break_hz, break_mel = 1000.0, 1000.0 / linear_step
    log_step = math.log(6.4) / 27.0
    mel = hz / linear_step
    above = hz >= break_hz
    mel[above] = break_mel + np.log(hz[above] / break_hz) / log_step
    return mel


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear_step = 200.0 / 3.0
    break_hz, break_mel = 1000.0, 1000.0 / linear_step
    log_step = math.log(6.4) / 27.0
    hz = mel * linear_step
    above = mel >= break_mel
    hz[above] = break_hz * np.exp(log_step * (mel[above] - break_mel))
    return hz


def _hz_to_mel_htk(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz_htk(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def _triangles(fft_hz: np.ndarray, edges_hz: np.ndarray) -> np.ndarray:
    """[n_mels, n_bins] triangular filters with feet at edges[i], edges[i+2], peak edges[i+1]."""
    widths = np.diff(edges_hz)
    distance = edges_hz[:, None] - fft_hz[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(rising, falling))


def mel_filterbank_slaney(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                          f_max: float | None = None) -> np.ndarray:
    """[n_fft//2+1, n_mels] Slaney-scale filters, each scaled to unit area (librosa's defaults)."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(np.array([f_min]))[0],
                                             _hz_to_mel_slaney(np.array([f_max]))[0], n_mels + 2))
    weights = _triangles(fft_hz, edges_hz)
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.T.astype(np.float32)


def mel_filterbank_htk(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                       f_max: float | None = None) -> np.ndarray:
    """[n_fft//2+1, n_mels] HTK-scale filters without normalisation (torchaudio's defaults)."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    fft_hz = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)
    edges_hz = _mel_to_hz_htk(np.linspace(_hz_to_mel_htk(f_min), _hz_to_mel_htk(f_max), n_mels + 2))
    return _triangles(fft_hz, edges_hz).T.astype(np.float32)


def zero_padded_segment(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """audio[start:stop] as float32, with zeros where the range leaves the song."""
    length = stop - start
    segment = np.zeros(length, dtype=np.float32)
    lo, hi = max(start, 0), min(stop, len(audio))
    if hi > lo:
        segment[lo - start:hi - start] = audio[lo:hi]
    return segment


class MelFrontEnd:
    """Power mel spectrogram with periodic Hann window, then a compression.

    compression "log10_10000": ``log10(10000·x + 1)`` (musicnn);
    compression "db": ``10·log10(max(x, 1e-10))`` (torchaudio's AmplitudeToDB).
    """

    def __init__(self, sample_rate: int, n_fft: int, hop: int, filterbank: np.ndarray, compression: str):
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop = hop
        self.filterbank = torch.from_numpy(np.ascontiguousarray(filterbank, dtype=np.float32))  # [bins, mels]
        self.n_mels = self.filterbank.shape[1]
        self.window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32)
        if compression not in ("log10_10000", "db"):
            raise ValueError(f"unknown compression {compression!r}")
        self.compression = compression

    def _frames_from_padded(self, padded: np.ndarray, n_frames: int) -> torch.Tensor:
        """padded[k*hop : k*hop + n_fft] is frame k; returns [n_frames, n_mels] float32."""
        signal = torch.from_numpy(padded)
        frames = signal.unfold(0, self.n_fft, self.hop)[:n_frames]            # [n, n_fft]
        spectrum = torch.fft.rfft(frames * self.window, dim=1)               # [n, bins]
        power = spectrum.real.square() + spectrum.imag.square()
        mel = power @ self.filterbank                                         # [n, mels]
        if self.compression == "log10_10000":
            return torch.log10(mel * 10000.0 + 1.0)
        return 10.0 * torch.log10(torch.clamp(mel, min=1e-10))

    def frames(self, audio: np.ndarray, first_centre: int, n_frames: int) -> torch.Tensor:
        """[n_frames, n_mels]: frames centred on samples first_centre + hop·k (zeros off the song)."""
        half = self.n_fft // 2
        start = first_centre - half
        stop = first_centre + self.hop * (n_frames - 1) + half
        return self._frames_from_padded(zero_padded_segment(audio, start, stop), n_frames)

    def frames_reflect(self, segment: np.ndarray) -> torch.Tensor:
        """Frames of one segment alone, reflect-padded at its ends (torchaudio's center=True)."""
        half = self.n_fft // 2
        n_frames = 1 + len(segment) // self.hop
        padded = np.pad(np.asarray(segment, dtype=np.float32), (half, half), mode="reflect")
        return self._frames_from_padded(padded, n_frames)
