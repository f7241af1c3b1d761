# SPDX-License-Identifier: GPL-3.0-or-later
"""The Eq. 1 mapper: zero-label mapping, training, files, and refusing foreign mappers.

Embeddings come from the real default encoder on real music, target ws from the real default
generator.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from traeumer_blender import mapping
from traeumer_blender.errors import TraeumerError
from traeumer_blender.model_cache import get_encoder, get_generator
from traeumer_blender.pipeline import GenerateSettings, run_generate

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
# decoding an MP3 from far into the file costs time: these start early
CLIPS = [("hr-savino-ocean.ogg", 20.0), ("machine_wars.mp3", 20.0), ("hr-domina-mountain.ogg", 30.0),
         ("frontiers.mp3", 10.0)]


@pytest.fixture(scope="module")
def models():
    return get_generator("default"), get_encoder("default")


@pytest.fixture(scope="module")
def clip_windows(models):
    """Embeddings of 10 s clips, windows every 2 s (as in the paper's training data)."""
    _, encoder = models
    return [mapping.clip_embeddings(encoder, SHARED_AUDIO / name, start, 10.0)[0] for name, start in CLIPS]


def test_clip_windows_follow_the_paper():
    assert mapping.clip_window_centres(10.0, 3.69).tolist() == pytest.approx([1.845, 3.845, 5.845, 7.845])
    assert len(mapping.clip_window_centres(10.0, 2.992)) == 4
    assert mapping.clip_window_centres(2.0, 3.0).tolist() == [1.0]


def test_zero_label_mapping(models, clip_windows):
    generator, encoder = models
    mu, sigma = generator.w_stats()
    embeddings = np.concatenate(clip_windows)
    mapper = mapping.zero_label_mapper(encoder.embedding_dim, mu, sigma, seed=5)
    ws = mapper.map(embeddings)
    assert ws.shape == (len(embeddings), generator.w_dim) and ws.dtype == np.float32
    # Eq. 1 keeps every w inside mu +- 2 sigma, and uses that range
    deviation = (ws - mu) / sigma
    assert np.abs(deviation).max() < 2.0 and np.abs(deviation).max() > 1.0
    # deterministic per seed, different for another seed
    assert np.array_equal(mapper.map(embeddings), ws)
    again = mapping.zero_label_mapper(encoder.embedding_dim, mu, sigma, seed=5)
    assert np.array_equal(again.map(embeddings), ws)
    other = mapping.zero_label_mapper(encoder.embedding_dim, mu, sigma, seed=6).map(embeddings)
    assert np.abs(other - ws).mean() > 0.1 * sigma.mean()
    # different music, different styles: clips are further apart than windows of one clip
    per_clip = np.split(ws, np.cumsum([len(c) for c in clip_windows])[:-1])
    centres = np.array([c.mean(axis=0) for c in per_clip])
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]])
    within = np.mean([np.linalg.norm(c - c.mean(axis=0), axis=1).mean() for c in per_clip])
    assert between > 2 * within


def test_silence_maps_to_the_average_style(models):
    generator, encoder = models
    mu, sigma = generator.w_stats()
    silence = np.zeros(16000 * 4, dtype=np.float32)
    embeddings = encoder.embed_frames(silence, np.arange(20) / 5.0)
    ws = mapping.zero_label_mapper(encoder.embedding_dim, mu, sigma).map(embeddings)
    assert np.all(np.isfinite(ws))
    assert np.allclose(ws, mu, atol=1e-3 * sigma.max())


def test_training_reduces_l1_and_learns_the_labels(models, clip_windows):
    generator, encoder = models
    mu, sigma = generator.w_stats()
    targets = [mapping.target_w_for_seed(generator, seed) for seed in (11, 22, 33, 44)]
    embeddings = np.concatenate(clip_windows)
    labels = np.concatenate([np.repeat(t[None], len(c), axis=0) for t, c in zip(targets, clip_windows)])
    mapper, losses = mapping.train_mapper(embeddings, labels, mu, sigma, steps=600, seed=0,
                                          encoder_source_id=encoder.source_id,
                                          generator_source_id=generator.source_id)
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a * 1.05 for a, b in zip(losses[::150], losses[150::150]))  # goes down steadily
    predicted = mapper.map(embeddings)
    assert np.abs(predicted - labels).mean() == pytest.approx(losses[-1], rel=1e-3)
    # each clip's windows land nearest to their own clip's target w
    start = 0
    for k, clip in enumerate(clip_windows):
        centre = predicted[start:start + len(clip)].mean(axis=0)
        distances = [np.abs(centre - t).mean() for t in targets]
        assert int(np.argmin(distances)) == k
        start += len(clip)


def test_mapper_file_round_trip_and_mismatch(models, clip_windows, tmp_path):
    generator, encoder = models
    mu, sigma = generator.w_stats()
    embeddings = np.concatenate(clip_windows)
    targets = np.repeat(mapping.target_w_for_seed(generator, 1)[None], len(embeddings), axis=0)
    trained, _ = mapping.train_mapper(embeddings, targets, mu, sigma, steps=20,
                                      encoder_source_id=encoder.source_id,
                                      generator_source_id=generator.source_id)
    zero = mapping.zero_label_mapper(encoder.embedding_dim, mu, sigma, seed=9,
                                     encoder_source_id=encoder.source_id,
                                     generator_source_id=generator.source_id)
    for mapper in (trained, zero):
        path = tmp_path / f"{mapper.kind}.npz"
        mapper.save(path)
        loaded = mapping.Mapper.load(path)
        assert loaded.kind == mapper.kind and loaded.seed == mapper.seed
        assert np.array_equal(loaded.map(embeddings), mapper.map(embeddings))
        loaded.check_compatible(encoder.source_id, generator.source_id)
        with pytest.raises(TraeumerError, match="generator"):
            loaded.check_compatible(encoder.source_id, "some-other-generator")
        with pytest.raises(TraeumerError, match="encoder"):
            loaded.check_compatible("mtt_musicnn:0000", generator.source_id)
    # through the pipeline: a mapper made for another generator is refused before any work
    foreign = mapping.Mapper.load(tmp_path / "trained.npz")
    foreign.generator_source_id = "0123456789abcdef"
    foreign.save(tmp_path / "foreign.npz")
    out = tmp_path / "out"
    with pytest.raises(TraeumerError, match="made for generator"):
        run_generate(GenerateSettings(audio=str(SHARED_AUDIO / "hr-savino-ocean.ogg"), out_dir=str(out),
                                      mapper=str(tmp_path / "foreign.npz"), duration=1.0, fps="4",
                                      resolution=32))
    assert not any(p.name.startswith("frame_") for p in out.iterdir())
    # a trained mapper drives the pipeline
    result = run_generate(GenerateSettings(audio=str(SHARED_AUDIO / "hr-savino-ocean.ogg"),
                                           out_dir=str(tmp_path / "trained_out"), fps="4", duration=1.0,
                                           mapper=str(tmp_path / "trained.npz"), styles_only=True))
    assert result.frame_count == 4


def test_damaged_mapper_files(tmp_path):
    (tmp_path / "text.npz").write_text("not a mapper")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    for name in ("text.npz", "other.npz", "missing.npz"):
        with pytest.raises(TraeumerError):
            mapping.Mapper.load(tmp_path / name)


def test_train_from_pairs_file(models, tmp_path):
    generator, _ = models
    pairs = {"pairs": [
        {"audio": str(SHARED_AUDIO / "hr-savino-ocean.ogg"), "start": 20, "duration": 10, "seed": 3},
        {"audio": str(SHARED_AUDIO / "hr-domina-hunting.ogg"), "start": 10, "duration": 10,
         "w": mapping.target_w_for_seed(generator, 4).tolist()},
    ]}
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    summary = mapping.train_from_pairs_file(tmp_path / "pairs.json", tmp_path / "mapper.npz", steps=300)
    assert summary["clips"] == 2 and summary["pairs"] == 8
    assert summary["l1_after"] < summary["l1_before"]
    loaded = mapping.Mapper.load(tmp_path / "mapper.npz")
    assert loaded.kind == "trained" and loaded.generator_source_id == generator.source_id
    (tmp_path / "bad.json").write_text(json.dumps({"pairs": [{"audio": "x.wav"}]}))
    with pytest.raises(TraeumerError, match="seed, w, w_file"):
        mapping.train_from_pairs_file(tmp_path / "bad.json", tmp_path / "m2.npz")
