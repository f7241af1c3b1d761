# SPDX-License-Identifier: GPL-3.0-or-later
"""Made-up music with known beats and sections, written as 16-bit WAV with the standard library
(so the Blender tests can make it under bpy 5.2's Python, which has no soundfile)."""

import wave

import numpy as np

RATE = 22050


def _write_wav(path, samples, rate=RATE):
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as stream:
        stream.setnchannels(1)
        stream.setsampwidth(2)
        stream.setframerate(rate)
        stream.writeframes(pcm.tobytes())
    return path


def drums(seconds, bpm=120.0, rate=RATE, seed=0):
    """Kick on the beat, hi-hat between: a steady 120 BPM groove."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate))
    t = np.arange(int(0.08 * rate)) / rate
    kick = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.03)
    hat = rng.standard_normal(len(t)) * np.exp(-t / 0.01) * 0.3
    for k, when in enumerate(np.arange(0.0, seconds - 0.1, 30.0 / bpm)):
        first = int(when * rate)
        out[first:first + len(t)] += kick if k % 2 == 0 else hat
    return out


def chord(seconds, rate=RATE):
    """A held A minor triad: no onsets, another sound."""
    t = np.arange(int(seconds * rate)) / rate
    return 0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.0, 330.0))


def two_sections_wav(path, seconds_each=10.0):
    """Drums, then a chord: the analysis finds two sections (a boundary near ``seconds_each``)
    and beats in the first."""
    return _write_wav(path, np.concatenate([drums(seconds_each), chord(seconds_each)]))


def silence_wav(path, seconds=3.0):
    return _write_wav(path, np.zeros(int(seconds * RATE)))


def click_track_wav(path, seconds=12.0, bpm=120.0, beats_per_bar=4, rate=RATE):
    """A click on every beat, the first of each bar louder and lower: known beats and downbeats
    (the downbeats at 0, bar, 2 bars, ... seconds)."""
    out = np.zeros(int(seconds * rate))
    t = np.arange(int(0.05 * rate)) / rate
    for k, when in enumerate(np.arange(0.0, seconds - 0.1, 60.0 / bpm)):
        accent = k % beats_per_bar == 0
        click = (0.9 if accent else 0.35) * np.sin(2 * np.pi * (800.0 if accent else 1600.0) * t) * np.exp(-t / 0.01)
        first = int(when * rate)
        out[first:first + len(t)] += click
    return _write_wav(path, out, rate)
