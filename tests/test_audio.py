# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio decoding: formats, rates, channels, resampling quality, trimming, memory, bad input."""

import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile

from traeumer_blender.audio import StreamingResampler, load_audio, probe_audio
from traeumer_blender.errors import TraeumerError

MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
OGG_PIECE = MUSIC / "hr-savino-ocean.ogg"      # 44.1 kHz stereo Vorbis, ~60 s
MP3_PIECE = MUSIC / "machine_wars.mp3"         # 22.05 kHz stereo MP3, ~291 s


def tone(frequency, seconds, rate, channels=1, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    mono = amplitude * np.sin(2 * np.pi * frequency * t)
    return np.repeat(mono[:, None], channels, axis=1)


def test_real_ogg_and_mp3_decode_to_16k_mono_float32():
    for path in (OGG_PIECE, MP3_PIECE):
        info = probe_audio(path)
        audio = load_audio(path)
        assert audio.dtype == np.float32 and audio.ndim == 1
        # Vorbis/MP3 headers may announce more frames than libsndfile decodes (MP3: an estimate)
        assert abs(len(audio) - info.duration * 16000) <= 0.002 * info.duration * 16000
        assert info.channels == 2 and info.format in ("OGG", "MP3")
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        assert 0.01 < rms < 1.0 and np.abs(audio).max() <= 1.5


@pytest.mark.parametrize("rate,subtype,channels,fmt", [
    (8000, "PCM_16", 1, "WAV"), (22050, "PCM_24", 2, "WAV"), (44100, "PCM_16", 2, "FLAC"),
    (48000, "FLOAT", 6, "WAV"), (96000, "PCM_32", 2, "WAV"), (16000, "PCM_16", 1, "FLAC"),
    (44100, "VORBIS", 2, "OGG"),
])
def test_made_files_any_rate_depth_channels(tmp_path, rate, subtype, channels, fmt):
    signal = tone(1000.0, 1.5, rate, channels, amplitude=0.5)
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, signal, rate, subtype=subtype, format=fmt)
    audio = load_audio(path)
    assert abs(len(audio) - 1.5 * 16000) <= 1
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(len(audio)) / 16000)
    middle = slice(1000, len(audio) - 1000)
    tolerance = 0.02 if fmt == "OGG" else 1e-3
    assert np.abs(audio[middle] - expected[middle]).max() < tolerance


def test_eight_channels_at_192k(tmp_path):
    rate = 192000
    signal = np.zeros((rate, 8), dtype=np.float32)
    signal[:, 3] = tone(440.0, 1.0, rate)[:, 0]           # one channel carries a tone
    path = tmp_path / "surround.wav"
    soundfile.write(path, signal, rate, subtype="PCM_24")
    info = probe_audio(path)
    assert (info.sample_rate, info.channels) == (rate, 8)
    audio = load_audio(path)
    assert len(audio) == 16000
    expected = 0.5 / 8 * np.sin(2 * np.pi * 440.0 * np.arange(16000) / 16000)   # downmix = mean
    assert np.abs(audio[500:-500] - expected[500:-500]).max() < 1e-3


def test_anti_aliasing_removes_content_above_8k():
    for rate in (44100, 48000, 192000):
        aliasing = tone(12000.0, 1.0, rate)[:, 0]
        passing = tone(3000.0, 1.0, rate)[:, 0]
        resampler = StreamingResampler(rate, 16000)
        out = np.concatenate([resampler.push(aliasing), resampler.flush()])
        resampler = StreamingResampler(rate, 16000)
        kept = np.concatenate([resampler.push(passing), resampler.flush()])
        middle = slice(500, -500)
        assert np.sqrt(np.mean(out[middle] ** 2)) < 1e-3 * np.sqrt(np.mean(kept[middle] ** 2))


@pytest.mark.parametrize("rate_in", [44100, 22050, 48000, 11025, 192000])
def test_blocks_join_seamlessly_and_match_one_shot_polyphase(rate_in):
    rng = np.random.default_rng(rate_in)
    signal = rng.standard_normal(200_003)
    resampler = StreamingResampler(rate_in, 16000)
    pieces, position = [], 0
    while position < len(signal):
        size = int(rng.integers(1, 30_000))
        pieces.append(resampler.push(signal[position:position + size]))
        position += size
    pieces.append(resampler.flush())
    streamed = np.concatenate(pieces)
    reference = scipy.signal.resample_poly(signal, resampler.up, resampler.down, window=resampler.lowpass)
    assert streamed.shape == reference.shape
    assert np.abs(streamed - reference).max() < 1e-5


def test_start_and_duration_trim_like_slicing_the_whole_decode():
    whole = load_audio(OGG_PIECE)
    for start, duration in [(0.0, 2.0), (0.0123, 1.0), (10.37, 5.5), (33.0, None)]:
        part = load_audio(OGG_PIECE, start=start, duration=duration)
        first = int(round(start * 16000))
        expected = whole[first:] if duration is None else whole[first:first + int(round(duration * 16000))]
        assert part.shape == expected.shape
        assert np.abs(part - expected).max() < 1e-4
    # MP3 frames borrow bits from earlier frames: a trimmed start must decode from before it
    mp3_whole = load_audio(MP3_PIECE, duration=110.0)
    for start in (0.01, 0.77771, 100.37):
        part = load_audio(MP3_PIECE, start=start, duration=3.0)
        first = int(round(start * 16000))
        assert len(part) == 48000
        assert np.abs(part - mp3_whole[first:first + 48000]).max() < 1e-4
    tail = load_audio(OGG_PIECE, start=probe_audio(OGG_PIECE).duration - 1.0, duration=10.0)
    assert abs(len(tail) - 16000) <= 0.02 * 16000                    # a duration past the end stops there


def test_memory_holds_the_output_not_the_whole_decoded_file(tmp_path):
    rate, seconds = 44100, 150
    path = tmp_path / "long.wav"
    with soundfile.SoundFile(path, "w", rate, 2, subtype="PCM_16") as sound:
        block = (tone(220.0, 10.0, rate, 2, 0.3) * 32767).astype(np.int16)
        for _ in range(seconds // 10):
            sound.write(block)
    whole_file_float32 = seconds * rate * 2 * 4            # what decoding everything at once needs
    output_bytes = seconds * 16000 * 4
    tracemalloc.start()
    audio = load_audio(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(audio) == seconds * 16000
    assert peak < output_bytes + 24 * 2**20 < whole_file_float32


def test_silence_and_half_a_second(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros((44100 * 2, 2)), 44100)
    silence = load_audio(path)
    assert len(silence) == 32000 and not silence.any()
    short = tmp_path / "short.flac"
    soundfile.write(short, tone(440.0, 0.5, 48000), 48000)
    assert len(load_audio(short)) == 8000


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "Träumer Müsik – 夢"
    folder.mkdir()
    path = folder / "Ständchen ♪.flac"
    soundfile.write(path, tone(440.0, 1.0, 22050), 22050)
    assert probe_audio(path).channels == 1
    assert len(load_audio(path)) == 16000


def test_missing_empty_and_not_audio_files(tmp_path):
    with pytest.raises(TraeumerError, match="not found"):
        load_audio(tmp_path / "nowhere.mp3")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(TraeumerError, match="empty"):
        load_audio(empty)
    text = tmp_path / "notes.mp3"
    text.write_text("These are my notes, not a song.\n" * 50)
    for call in (load_audio, probe_audio):
        with pytest.raises(TraeumerError, match="notes.mp3.*not readable"):
            call(text)
    with pytest.raises(TraeumerError, match="folder"):
        load_audio(tmp_path)


def test_truncated_ogg_decodes_what_is_readable_or_fails_clearly(tmp_path, caplog):
    data = OGG_PIECE.read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[: len(data) // 3])
    full_seconds = probe_audio(OGG_PIECE).duration
    with caplog.at_level(logging.WARNING):
        try:
            audio = load_audio(cut)
        except TraeumerError as error:
            assert "cut.ogg" in str(error)
        else:
            seconds = len(audio) / 16000
            assert 0.1 * full_seconds < seconds < 0.6 * full_seconds
            reference = load_audio(OGG_PIECE, duration=seconds)
            assert np.abs(audio[:16000 * 5] - reference[:16000 * 5]).max() < 1e-4
    header_only = tmp_path / "header.ogg"
    header_only.write_bytes(data[:200])
    with pytest.raises(TraeumerError, match="header.ogg"):
        load_audio(header_only)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TraeumerError, match="start"):
        load_audio(OGG_PIECE, start=-1.0)
    with pytest.raises(TraeumerError, match="past the end"):
        load_audio(OGG_PIECE, start=10_000.0)
    assert len(load_audio(OGG_PIECE, duration=0.0)) == 0
