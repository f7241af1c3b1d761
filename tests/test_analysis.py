# SPDX-License-Identifier: GPL-3.0-or-later
"""Music analysis (traeumer_blender.analysis): signals whose answers are known by construction —
click tracks, accented clicks, kicks and hi-hats, tones and noise joined at known times, music
without a beat — then real music through the CLI."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from traeumer_blender import analysis as A
from traeumer_blender.errors import TraeumerError

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
SR = 16000


# ----------------------------------------------------------------------------- signals

def _burst(seconds, decay, rng, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return rng.standard_normal(len(t)) * np.exp(-t / decay)


def click_track(bpm, seconds=30.0, first=0.5, accent_every=0, accent_phase=0, seed=0, sr=SR):
    """Noise clicks (5 ms decay) every beat; every ``accent_every``-th (from ``accent_phase``)
    is 12 dB louder and has a low thump. Returns (audio, click times)."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * sr), dtype=np.float64)
    times = np.arange(first, seconds - 0.1, 60.0 / bpm)
    click = _burst(0.03, 0.005, rng)
    t = np.arange(int(0.1 * sr)) / sr
    thump = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.04)
    for index, at in enumerate(times):
        i = int(round(at * sr))
        accented = accent_every and index % accent_every == accent_phase
        piece = click * (0.5 if accented else 0.125)
        audio[i:i + len(piece)] += piece[:len(audio) - i]
        if accented:
            audio[i:i + len(thump)] += 0.5 * thump[:len(audio) - i]
    return audio.astype(np.float32), times


def tone(seconds, hz=220.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)


def white_noise(seconds, seed=1, level=0.1, sr=SR):
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def ambient_pad(seconds, sr=SR):
    """A chord that swells slowly (0.1 Hz) with a gentle vibrato: no beat."""
    t = np.arange(int(seconds * sr)) / sr
    chord = sum(np.sin(2 * np.pi * f * t * (1 + 0.002 * np.sin(2 * np.pi * 0.3 * t)))
                for f in (220.0, 277.2, 329.6, 440.0))
    return (0.08 * chord * (0.6 + 0.4 * np.sin(2 * np.pi * 0.1 * t))).astype(np.float32)


def random_clicks(seconds, per_second=2.0, seed=3, sr=SR):
    """Clicks at random (Poisson) times: onsets, but no steady beat."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * sr))
    click = _burst(0.03, 0.005, rng)
    for at in np.sort(rng.uniform(0, seconds - 0.1, int(per_second * seconds))):
        i = int(at * sr)
        audio[i:i + len(click)] += click * rng.uniform(0.1, 0.5)
    return audio.astype(np.float32)


def analyse(audio, start=0.0, duration=None, **kwargs):
    duration = len(audio) / SR - start if duration is None else duration
    return A.analyze(audio, SR, 0.0, start, duration, **kwargs)


@pytest.fixture(scope="module")
def encoder():
    from traeumer_blender.model_cache import get_encoder

    return get_encoder("default")


def embed(encoder, audio, step=0.5):
    times = np.arange(0.25, len(audio) / SR, step)
    return encoder.embed_frames(audio, times), times


# ----------------------------------------------------------------------------- tempo and beats

@pytest.mark.parametrize("bpm", [60, 90, 120, 140, 175, 200])
def test_click_tracks_tempo_and_every_beat(bpm):
    audio, clicks = click_track(bpm)
    result = analyse(audio)
    assert result.tempo == pytest.approx(bpm, rel=0.02)          # no octave error
    assert len(result.beats) == len(clicks)
    assert np.max(np.abs(result.beats - clicks)) <= 0.030
    assert result.beats.dtype == np.float64


def test_beats_are_seconds_in_the_file_for_an_excerpt():
    audio, clicks = click_track(120, seconds=40)
    result = A.analyze(audio[int(5 * SR):], SR, 5.0, 10.0, 20.0)    # audio from 5 s, excerpt 10-30 s
    expected = clicks[(clicks >= 10.0) & (clicks < 30.0)]
    assert result.start == 10.0 and result.duration == 20.0
    assert len(result.beats) == len(expected)
    assert np.max(np.abs(result.beats - expected)) <= 0.030
    assert len(result.envelopes["full"]) == 2000


def test_track_beats_alone_from_sample_zero():
    audio, clicks = click_track(100, seconds=20)
    envelope = A.onset_envelopes(audio, SR)["full"]
    assert A.estimate_tempo(envelope, A.ENVELOPE_RATE) == pytest.approx(100, rel=0.02)
    beats = A.track_beats(envelope, A.ENVELOPE_RATE, 100.0)
    assert np.max(np.abs(beats - clicks)) <= 0.030
    assert len(A.track_beats(envelope, A.ENVELOPE_RATE, None)) == 0


@pytest.mark.parametrize("per_bar, phase", [(4, 1), (4, 3), (3, 2)])
def test_accented_clicks_give_downbeats(per_bar, phase):
    audio, clicks = click_track(120, accent_every=per_bar, accent_phase=phase)
    result = analyse(audio)
    assert result.beats_per_bar == per_bar
    expected = clicks[phase::per_bar]
    assert len(result.downbeats) == len(expected)
    assert np.max(np.abs(result.downbeats - expected)) <= 0.030
    assert np.all(np.isin(result.downbeats, result.beats))


def test_plain_clicks_still_give_a_bar_grid_of_four():
    result = analyse(click_track(120)[0])
    assert result.beats_per_bar == 4 and len(result.downbeats) >= len(result.beats) // 4


@pytest.mark.parametrize("name, audio", [
    ("silence", np.zeros(30 * SR, dtype=np.float32)),
    ("half a second", click_track(120, seconds=0.5, first=0.1)[0]),
    ("white noise", white_noise(30)),
    ("ambient pad", ambient_pad(30)),
    ("random clicks", random_clicks(30)),
    ("short clip of clicks", click_track(120, seconds=3, first=0.2)[0]),
])
def test_no_steady_beat_gives_no_tempo_and_no_beats(name, audio):
    result = analyse(audio)
    assert result.tempo is None, name
    assert len(result.beats) == 0 and len(result.downbeats) == 0 and result.beats_per_bar == 0
    assert len(result.sections) == 1
    assert result.sections[0].start == 0.0 and result.sections[0].end == pytest.approx(len(audio) / SR)


def slow_pad(seconds, seed, sr=SR):
    """A chord with a random slow swell (0.03-0.25 Hz) and vibrato (0.1-1 Hz, 0.2 %)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    base = rng.uniform(100, 300)
    chord = sum(np.sin(2 * np.pi * base * m * t * (1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)))
                for m in (1.0, 1.25, 1.5, 2.0))
    return (0.08 * chord * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.03, 0.25) * t))).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_slow_pads_have_no_beat(seed):
    result = analyse(slow_pad(60, seed))
    assert result.tempo is None and len(result.beats) == 0


def test_tempo_confidence_separates_beat_from_noise():
    """The measured periodicity behind the decision: clicks far above the threshold, noise,
    random clicks and a pad far below it."""
    rate = A.ENVELOPE_RATE
    beat = A.tempo_details(A.onset_envelopes(click_track(120)[0], SR)["full"], rate)
    assert beat.confidence > 0.9 and beat.bpm is not None
    for audio in (white_noise(30), random_clicks(30), ambient_pad(30)):
        estimate = A.tempo_details(A.onset_envelopes(audio, SR)["full"], rate)
        assert estimate.bpm is None
        assert estimate.confidence < 0.7 * estimate.threshold or estimate.strength_db < A.TEMPO_STRENGTH_MIN_DB


# ----------------------------------------------------------------------------- bands

def test_kick_lights_the_low_band_and_hihat_the_high_band():
    rng = np.random.default_rng(4)
    audio = np.zeros(10 * SR)
    t = np.arange(int(0.15 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 60 * np.exp(-t / 0.02)) * t) * np.exp(-t / 0.05)
    hat = np.diff(_burst(0.05, 0.01, rng), prepend=0.0)          # differentiated noise: bright
    kicks, hats = np.arange(1.0, 9.5, 1.0), np.arange(1.5, 9.5, 1.0)
    for at in kicks:
        audio[int(at * SR):int(at * SR) + len(kick)] += 0.6 * kick
    for at in hats:
        audio[int(at * SR):int(at * SR) + len(hat)] += 0.3 * hat
    result = analyse(audio.astype(np.float32))

    def peak(band, times):
        return np.array([result.envelope_at(band, at + np.arange(-0.03, 0.031, 0.01)).max() for at in times])

    assert peak("low", kicks).min() > 4 * peak("low", hats).max()
    assert peak("high", hats).min() > 4 * peak("high", kicks).max()
    assert set(result.envelopes) == set(A.BANDS)
    assert all(v.dtype == np.float32 and v.min() >= 0 for v in result.envelopes.values())


# ----------------------------------------------------------------------------- sections

def test_section_boundaries_on_made_up_embeddings():
    rng = np.random.default_rng(5)
    times = np.arange(0, 60, 0.5)
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    steady = np.tile(a, (len(times), 1)) + 0.3 * rng.standard_normal((len(times), 64))
    changed = steady.copy()
    changed[times >= 30] = b + 0.3 * rng.standard_normal((int((times >= 30).sum()), 64))
    found = A.section_boundaries(changed, times)
    assert len(found) == 1 and abs(found[0] - 30.0) <= 1.0
    assert len(A.section_boundaries(steady, times)) == 0
    # a section may not be shorter than min_seconds
    assert len(A.section_boundaries(changed, times, min_seconds=31)) == 0


def test_tones_and_noise_joined_at_known_times(encoder):
    audio = np.concatenate([tone(20), white_noise(20), tone(20, 330.0)])
    embeddings, times = embed(encoder, audio)
    assert np.max(np.abs(A.section_boundaries(embeddings, times) - [20.0, 40.0])) <= 1.0
    result = analyse(audio, embeddings=embeddings, embedding_times=times, encoder=encoder)
    bounds = [(s.start, s.end) for s in result.sections]
    assert len(bounds) == 3
    assert bounds[0][0] == 0.0 and bounds[-1][1] == pytest.approx(60.0)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))           # contiguous
    assert abs(bounds[1][0] - 20.0) <= 1.0 and abs(bounds[2][0] - 40.0) <= 1.0
    for section in result.sections:
        assert len(section.tags) == A.TOP_TAGS and set(section.tags) <= set(encoder.tag_names)
        assert section.scores == sorted(section.scores, reverse=True)
    assert result.sections[0].tags != result.sections[1].tags


@pytest.mark.parametrize("name", ["tone", "noise", "clicks"])
def test_steady_signals_have_one_section(encoder, name):
    audio = {"tone": tone(60), "noise": white_noise(60), "clicks": click_track(120, seconds=60)[0]}[name]
    embeddings, times = embed(encoder, audio)
    assert len(A.section_boundaries(embeddings, times)) == 0
    result = analyse(audio, encoder=encoder)                # embeddings made by analyze itself
    assert len(result.sections) == 1 and result.sections[0].tags


def test_without_encoder_sections_have_no_tags():
    result = analyse(tone(12))
    assert [(s.start, s.end, s.tags) for s in result.sections] == [(0.0, pytest.approx(12.0), [])]


# ----------------------------------------------------------------------------- time, determinism

def test_same_input_same_analysis():
    audio = np.concatenate([click_track(128, seconds=20)[0], white_noise(5)])
    first, second = analyse(audio), analyse(audio)
    assert first.tempo == second.tempo
    assert np.array_equal(first.beats, second.beats) and np.array_equal(first.downbeats, second.downbeats)
    assert all(np.array_equal(first.envelopes[b], second.envelopes[b]) for b in A.BANDS)
    assert first.to_json(envelopes=True) == second.to_json(envelopes=True)


def test_envelope_at_is_the_same_at_any_frame_rate():
    audio, _ = click_track(120, seconds=10)
    result = analyse(audio)
    at_30 = result.envelope_at("full", np.arange(300) / 30.0)
    at_24 = result.envelope_at("full", np.arange(240) / 24.0)
    assert np.allclose(at_30[::5], at_24[::4])               # the instants both rates share
    # between samples: linear interpolation; outside the excerpt: 0
    assert result.envelope_at("low", [0.015])[0] == pytest.approx(
        0.5 * (result.envelopes["low"][1] + result.envelopes["low"][2]), rel=1e-6)
    assert np.all(result.envelope_at("full", [-1.0, 10.5, 100.0]) == 0.0)


def test_envelopes_sampled_at_other_instants_agree():
    """Envelope samples are instants in seconds: an analysis starting 5 ms later samples the
    same curve between the first one's samples, and its beats are the same."""
    audio = np.concatenate([click_track(110, seconds=20)[0], tone(5)])
    first = analyse(audio, 0.0, 24.0)
    later = analyse(audio, 0.005, 24.0)
    times = later.start + np.arange(len(later.envelopes["full"])) / later.rate
    inside = times < first.start + 23.9
    assert np.corrcoef(first.envelope_at("full", times[inside]), later.envelopes["full"][inside])[0, 1] > 0.95
    assert len(first.beats) == len(later.beats) and np.max(np.abs(first.beats - later.beats)) <= 0.012


@pytest.mark.parametrize("percussive", [True, False])
def test_blocks_join_without_seams(monkeypatch, percussive):
    audio = np.concatenate([click_track(97, seconds=15)[0], ambient_pad(5), white_noise(5)])
    whole = A.onset_envelopes(audio, SR, percussive=percussive, start=0.3, count=2400)
    monkeypatch.setattr(A, "_BLOCK_FRAMES", 333)
    blocks = A.onset_envelopes(audio, SR, percussive=percussive, start=0.3, count=2400)
    # the same frames and medians; only the FFT's batching may change the last bit
    assert all(np.allclose(whole[band], blocks[band], rtol=0, atol=1e-4) for band in A.BANDS)


def test_other_sample_rates_give_the_same_beats():
    audio16, clicks = click_track(140, seconds=20, sr=16000)
    audio44, _ = click_track(140, seconds=20, sr=44100)
    a = A.analyze(audio16, 16000, 0.0, 0.0, 20.0)
    b = A.analyze(audio44, 44100, 0.0, 0.0, 20.0)
    assert a.tempo == pytest.approx(b.tempo, rel=0.005)
    assert np.max(np.abs(a.beats - b.beats)) <= 0.012


def test_bad_arguments_are_user_errors():
    audio = tone(5)
    for start, duration in ((0.0, 0.0), (0.0, -1.0), (float("nan"), 1.0), (0.0, float("inf"))):
        with pytest.raises(TraeumerError):
            A.analyze(audio, SR, 0.0, start, duration)
    broken = audio.copy()
    broken[10] = np.nan
    with pytest.raises(TraeumerError, match="finite"):
        A.analyze(broken, SR, 0.0, 0.0, 5.0)
    with pytest.raises(TraeumerError):
        A.section_boundaries(np.zeros((3, 4)), np.zeros(2))


# ----------------------------------------------------------------------------- storing it

def _analysis_with_sections():
    result = analyse(click_track(120, seconds=12, accent_every=4)[0])
    result.sections = [A.Section(0.0, 6.0, ["drums", "beat"], [0.6, 0.3]), A.Section(6.0, 12.0, ["techno"], [0.5])]
    return result


def test_npz_round_trip_beside_other_arrays(tmp_path):
    result = _analysis_with_sections()
    path = tmp_path / "styles.npz"
    np.savez(path, group_ws=np.zeros((3, 3, 4), np.float32), **result.to_npz())
    with np.load(path, allow_pickle=False) as data:
        assert A.MusicAnalysis.in_npz(data) and not A.MusicAnalysis.in_npz(data, "other_")
        back = A.MusicAnalysis.from_npz(data)
    assert back.tempo == result.tempo and back.beats_per_bar == result.beats_per_bar
    assert np.array_equal(back.beats, result.beats) and np.array_equal(back.downbeats, result.downbeats)
    assert all(np.array_equal(back.envelopes[b], result.envelopes[b]) for b in A.BANDS)
    assert back.sections == result.sections
    assert back.to_json(envelopes=True) == result.to_json(envelopes=True)
    # no tempo, no beats, a custom prefix
    quiet = analyse(np.zeros(6 * SR, np.float32))
    again = A.MusicAnalysis.from_npz(quiet.to_npz("motion_"), "motion_")
    assert again.tempo is None and len(again.beats) == 0 and again.sections == quiet.sections


def test_npz_refuses_nan_and_damage():
    arrays = _analysis_with_sections().to_npz()
    for key, value in (("analysis_beats", np.array([1.0, np.nan])),
                       ("analysis_envelopes", np.full((4, 3), np.inf, np.float32)),
                       ("analysis_start", np.array(np.nan))):
        broken = dict(arrays, **{key: value})
        with pytest.raises(TraeumerError, match="not finite"):
            A.MusicAnalysis.from_npz(broken)
    for key, value in (("analysis_format", np.array("something-else")),
                       ("analysis_downbeats", np.array([123.456])),
                       ("analysis_section_tags", np.zeros((2, 2)))):
        with pytest.raises(TraeumerError):
            A.MusicAnalysis.from_npz(dict(arrays, **{key: value}))
    without = {k: v for k, v in arrays.items() if k != "analysis_beats"}
    with pytest.raises(TraeumerError):
        A.MusicAnalysis.from_npz(without)
    with pytest.raises(TraeumerError, match="no music analysis"):
        A.MusicAnalysis.from_npz({})
    # everything to_npz writes loads with allow_pickle=False
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)


def test_to_json_is_plain_json():
    result = _analysis_with_sections()
    text = json.dumps(result.to_json(envelopes=True))
    data = json.loads(text)
    assert data["tempo"] == pytest.approx(120, rel=0.02) and data["beats_per_bar"] == 4
    assert len(data["envelopes"]["low"]) == len(result.envelopes["low"])
    assert "envelopes" not in result.to_json()
    assert data["sections"][0] == {"start": 0.0, "end": 6.0, "tags": ["drums", "beat"], "scores": [0.6, 0.3]}


# ----------------------------------------------------------------------------- the command line

def run_cli(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TRAEUMER_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "traeumer_blender", "analyze", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_user_error(process, mentions):
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and mentions in lines[0], process.stderr


def test_cli_bad_input(tmp_path):
    assert_user_error(run_cli("--audio", tmp_path / "missing.ogg"), "not found")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert_user_error(run_cli("--audio", tmp_path / "empty.wav"), "empty")
    soundfile.write(str(tmp_path / "short.wav"), tone(2), SR)
    assert_user_error(run_cli("--audio", tmp_path / "short.wav", "--start", 5), "beyond the end")
    assert_user_error(run_cli("--audio", tmp_path / "short.wav", "--duration", 0), "duration")
    assert_user_error(run_cli("--audio", tmp_path / "short.wav", "--start", -1), "start")


def test_cli_silence_and_half_a_second(tmp_path):
    soundfile.write(str(tmp_path / "silence.wav"), np.zeros(20 * 44100, np.float32), 44100)
    soundfile.write(str(tmp_path / "half.wav"), click_track(120, seconds=0.5, first=0.1, sr=44100)[0], 44100)
    for name in ("silence.wav", "half.wav"):
        process = run_cli("--audio", tmp_path / name)
        assert process.returncode == 0, process.stderr
        assert "tempo: none" in process.stdout and "beats: 0" in process.stdout
        assert "sections: 1" in process.stdout
    data = json.loads(run_cli("--audio", tmp_path / "half.wav", "--json").stdout)
    assert data["tempo"] is None and data["beats"] == [] and len(data["envelopes"]["full"]) == 50


@pytest.mark.slow
def test_cli_real_music_end_to_end():
    piece = SHARED_AUDIO / "hr-savino-ocean.ogg"
    if not piece.is_file():
        pytest.skip("../shared/audio is not here")
    process = run_cli("--audio", piece)
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    tempo = float(lines[0].split()[1])
    assert 100 <= tempo <= 150                               # a steady beat, a sane tempo
    assert int(lines[1].split()[1]) >= 100                   # beats over the minute
    sections = [line for line in lines if line.startswith("  ")]
    assert len(sections) == int(lines[3].split()[1]) >= 2
    assert all("," in line for line in sections)             # each with its tags
    data = json.loads(run_cli("--audio", piece, "--start", 10, "--duration", 30, "--json").stdout)
    assert data["start"] == 10.0 and data["duration"] == pytest.approx(30.0)
    assert all(10.0 <= b < 40.0 for b in data["beats"]) and len(data["beats"]) >= 50
    assert data["sections"][0]["start"] == 10.0 and data["sections"][-1]["end"] == pytest.approx(40.0)
    assert set(data["envelopes"]) == set(A.BANDS) and len(data["envelopes"]["full"]) == 3000


def test_analysis_needs_no_torch():
    """numpy and scipy only at import time (Blender's side may import it): with torch
    unimportable, the analysis without an encoder still runs."""
    code = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
import numpy as np
from traeumer_blender import analysis
rng = np.random.default_rng(0)
audio = np.zeros(10 * 16000, np.float32)
for i in range(8000, len(audio) - 480, 8000):
    audio[i:i + 480] += rng.standard_normal(480).astype(np.float32) * 0.3
result = analysis.analyze(audio, 16000, 0.0, 0.0, 10.0)
assert abs(result.tempo - 120) < 2.4, result.tempo
assert "torch" not in sys.modules
print("ok")
"""
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0 and process.stdout.strip() == "ok", process.stderr


def test_progress_events():
    events = []
    analyse(click_track(120, seconds=10)[0], progress=events.append)
    assert events and all(e.stage == "analyze" for e in events)
    assert events[0].done == 0 and events[-1].done == events[-1].total
    assert [e.done for e in events] == sorted(e.done for e in events)
