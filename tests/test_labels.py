# SPDX-License-Identifier: GPL-3.0-or-later
"""Label sets (traeumer_blender/labels.py): file format, import/export, candidates, "suggest next
clip" and training the mapping from labelled clips, with the real encoder, the built-in
generator and real music."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from traeumer_blender import labels as L
from traeumer_blender.errors import TraeumerError
from traeumer_blender.mapping import Mapper, target_w_for_seed

REPO_ROOT = Path(__file__).resolve().parents[1]
AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
# four different pieces, one 10 s clip each (start seconds)
CLIPS = [("frontiers.mp3", 60.0), ("machine_wars.mp3", 30.0), ("hr-savino-ocean.ogg", 20.0),
         ("hr-domina-hunting.ogg", 5.0)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("label_cache")
    before = os.environ.get("TRAEUMER_CACHE_DIR")
    os.environ["TRAEUMER_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("TRAEUMER_CACHE_DIR", None)
    else:
        os.environ["TRAEUMER_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def models(cache):
    from traeumer_blender.model_cache import get_encoder, get_generator

    return get_generator("default", device="cpu"), get_encoder("default")


@pytest.fixture(scope="module")
def labelled(models):
    """A label set of four real clips, each paired with a candidate of its own seed."""
    generator, encoder = models
    labels = L.new_label_set(generator, encoder, generator_source="default", encoder_source="default",
                             name="test taste")
    ws, origins = L.candidate_ws(generator, len(CLIPS), seed=40)
    thumbnails = L.render_thumbnails(generator, ws, 32)
    for (name, start), w, origin, thumbnail in zip(CLIPS, ws, origins, thumbnails):
        L.label_clip(labels, encoder, generator, AUDIO / name, start, L.CLIP_SECONDS, w, origin, thumbnail)
    return labels


def synthetic_set(pairs=3, dim=8, w_dim=6):
    rng = np.random.default_rng(5)
    labels = L.LabelSet("gen:1", "enc:1", w_dim, dim, 3.0, name="synthetic", thumbnail_size=4)
    for k in range(pairs):
        labels.add_pair(f"/music/song{k}.ogg", 10.0 * k, 10.0, rng.standard_normal((4, dim)),
                        rng.standard_normal(w_dim), rng.integers(0, 255, (4, 4, 3), dtype=np.uint8),
                        origin={"kind": "seed", "seed": k}, audio_digest=f"d{k}")
    return labels


# ----------------------------------------------------------------------------- format

def test_label_set_round_trip_and_delete(tmp_path):
    labels = synthetic_set()
    labels.add_audio_file("/music/extra.flac")
    path = tmp_path / "taste.labels.npz"
    labels.save(path)
    loaded = L.LabelSet.load(path)
    assert loaded.meta() == labels.meta()
    for a, b in zip(loaded.embeddings + loaded.ws + loaded.thumbnails,
                    labels.embeddings + labels.ws + labels.thumbnails):
        np.testing.assert_array_equal(a, b)
    # the file is a plain zip of .npy arrays and JSON: nothing in it is a pickle
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(
            f"{k}.npy" for k in ("format", "meta_json", "embeddings", "window_pair", "ws", "thumbnails"))
    second = loaded.pairs[1]["id"]
    loaded.delete_pair(second)
    loaded.save(path)
    again = L.LabelSet.load(path)
    assert [p["id"] for p in again.pairs] == [labels.pairs[0]["id"], labels.pairs[2]["id"]]
    np.testing.assert_array_equal(again.embeddings[1], labels.embeddings[2])
    np.testing.assert_array_equal(again.ws[1], labels.ws[2])
    with pytest.raises(TraeumerError, match="no pair"):
        again.delete_pair(second)
    x, y, index = again.training_arrays()
    assert x.shape == (8, 8) and y.shape == (8, 6) and list(index) == [0] * 4 + [1] * 4


def test_import_export_merges_one_file(tmp_path):
    mine, theirs = synthetic_set(2), synthetic_set(3)
    theirs.pairs[2]["id"] = mine.pairs[0]["id"]          # already here: skipped on import
    exported = tmp_path / "shared.labels.npz"
    theirs.save(exported)
    assert mine.merge(L.LabelSet.load(exported)) == 2
    assert len(mine) == 4
    other_model = L.LabelSet("gen:2", "enc:1", 6, 8, 3.0)
    with pytest.raises(TraeumerError, match=r"generator gen:2 \(now: gen:1\)"):
        other_model.merge(mine)


def test_bad_label_set_files_are_refused(tmp_path):
    text = tmp_path / "notes.labels.npz"
    text.write_text("hello")
    with pytest.raises(TraeumerError, match="not a TräumerAI label set"):
        L.LabelSet.load(text)
    pickled = tmp_path / "pickle.labels.npz"
    np.savez(pickled, format=np.array(L.FORMAT), meta_json=np.array([{"x": 1}], dtype=object))
    with pytest.raises(TraeumerError, match="not a TräumerAI label set"):
        L.LabelSet.load(pickled)
    labels = synthetic_set()
    broken = tmp_path / "broken.labels.npz"
    arrays = dict(np.load(_saved(labels, tmp_path / "ok.labels.npz")))
    arrays["ws"] = arrays["ws"][:2]
    np.savez(broken, **arrays)
    with pytest.raises(TraeumerError, match="damaged"):
        L.LabelSet.load(broken)
    with pytest.raises(TraeumerError, match="not found"):
        L.LabelSet.load(tmp_path / "missing.labels.npz")
    with pytest.raises(TraeumerError, match="768"):
        L.LabelSet("g", "e", 512, 768, 3.0).add_pair("a.ogg", 0, 10, np.zeros((4, 12)), np.zeros(512))


def _saved(labels, path):
    labels.save(path)
    return path


def test_farthest_clip_picks_the_clip_farthest_from_its_nearest_label():
    labelled = np.array([[0.0, 0.0], [10.0, 0.0]])
    candidates = np.array([[1.0, 0.0], [5.0, 4.0], [9.0, 1.0], [5.0, -1.0]])
    best, distances = L.farthest_clip(candidates, labelled)
    assert best == 1
    np.testing.assert_allclose(distances, [1.0, np.hypot(5, 4), np.hypot(1, 1), np.hypot(5, 1)])
    # without labels the most typical clip comes first
    best, _ = L.farthest_clip(candidates, np.zeros((0, 2)))
    assert best == 3


# ----------------------------------------------------------------------------- real models

def test_candidates_are_seeded_and_variations_stay_near(models):
    generator, _ = models
    ws, origins = L.candidate_ws(generator, 3, seed=7)
    again, _ = L.candidate_ws(generator, 3, seed=7)
    np.testing.assert_array_equal(ws, again)
    # a picked candidate is recorded by its seed: the mapping module's seed -> w agrees
    np.testing.assert_allclose(ws[1], target_w_for_seed(generator, origins[1]["seed"]), atol=1e-5)
    near, near_origins = L.candidate_ws(generator, 3, seed=100, base_w=ws[0], strength=0.2)
    far, _ = L.candidate_ws(generator, 3, seed=100)
    assert near_origins[0] == {"kind": "variation", "seed": 100, "strength": 0.2}
    assert np.abs(near - ws[0]).mean() < 0.3 * np.abs(far - ws[0]).mean()
    thumbnails = L.render_thumbnails(generator, ws, 40)     # largest preview size <= 40
    assert thumbnails.shape == (3, 32, 32, 3) and thumbnails.dtype == np.uint8
    assert thumbnails.std() > 5


def test_labelled_clips_store_their_windows(labelled, models, tmp_path):
    _, encoder = models
    assert len(labelled) == 4
    for pair, embeddings in zip(labelled.pairs, labelled.embeddings):
        # a 10 s clip has windows every 2 s that fit inside it, as in the paper's code
        assert pair["windows"] == len(embeddings) == 4
        assert pair["duration"] == pytest.approx(10.0, abs=0.01)
        assert len(pair["audio_digest"]) == 64
    path = tmp_path / "real.labels.npz"
    labelled.save(path)
    loaded = L.LabelSet.load(path)
    assert loaded.encoder_source_id == encoder.source_id
    assert loaded.generator_source_id == labelled.generator_source_id != ""
    thumbs = L.write_thumbnails(loaded, tmp_path / "thumbs")
    assert all(Path(p).stat().st_size > 100 for p in thumbs)


def test_suggest_next_clip_picks_the_farthest_unlabelled_clip(models, tmp_path):
    generator, encoder = models
    labels = L.new_label_set(generator, encoder)
    files = [AUDIO / "hr-savino-ocean.ogg", AUDIO / "hr-domina-hunting.ogg"]
    first = L.suggest_next_clip(labels, encoder, files)
    # no labels yet: the most typical clip
    assert first["distance"] == pytest.approx(min(first["distances"]))
    w = L.candidate_ws(generator, 1, seed=3)[0][0]
    L.label_clip(labels, encoder, generator, first["audio"], first["start"], first["duration"], w)
    second = L.suggest_next_clip(labels, encoder, files)
    assert second["distance"] == pytest.approx(max(second["distances"]))
    assert second["candidates"] == first["candidates"] - _overlapping(first, first["clips"])
    assert (second["audio"], second["start"]) != (first["audio"], first["start"])
    L.label_clip(labels, encoder, generator, second["audio"], second["start"], second["duration"], w)
    not_music = tmp_path / "notes.mp3"
    not_music.write_text("not audio")
    third = L.suggest_next_clip(labels, encoder, files + [not_music])
    assert third["skipped"] == [str(not_music)]
    with pytest.raises(TraeumerError, match="none of the music files"):
        L.suggest_next_clip(labels, encoder, [not_music])
    assert third["distance"] <= second["distance"] + 1e-9, "coverage grows: distances shrink"
    for clip in (third,):
        for pair in labels.pairs:
            same = os.path.abspath(clip["audio"]) == pair["audio"]
            assert not (same and abs(clip["start"] - pair["start"]) < 10.0), "never a labelled clip"


def _overlapping(clip, clips):
    return sum(1 for path, start, _ in clips
               if path == clip["audio"] and abs(start - clip["start"]) < clip["duration"])


def test_training_halves_l1_against_the_zero_label_mapping(labelled, models, tmp_path):
    generator, _ = models
    w_mean, w_std = generator.w_stats()
    mapper, report = L.train_label_set(labelled, w_mean, w_std, steps=200, seed=0)
    assert report["pairs"] == 4 and report["windows"] == 16
    assert report["l1_after"] < report["l1_before"]
    assert report["l1_after"] <= 0.5 * report["l1_zero_label"], report
    path = tmp_path / "taste.mapper.npz"
    mapper.save(path)
    loaded = Mapper.load(path)
    assert loaded.kind == "trained" and loaded.generator_source_id == generator.source_id
    # per clip too: every labelled clip maps close to its own chosen w
    for embeddings, w in zip(labelled.embeddings, labelled.ws):
        assert np.abs(loaded.map(embeddings) - w).mean() < 0.5 * report["l1_zero_label"]
    print(f"\nL1 on labelled clips: trained {report['l1_after']:.4f}, "
          f"zero-label {report['l1_zero_label']:.4f}, untrained start {report['l1_before']:.4f}")


def test_cli_train_mapper_from_a_label_set(labelled, cache, tmp_path):
    path = tmp_path / "taste.labels.npz"
    labelled.save(path)
    out = tmp_path / "taste.mapper.npz"
    env = dict(os.environ, TRAEUMER_CACHE_DIR=str(cache), PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "traeumer_blender", "train-mapper", "--labels", str(path),
         "--model", "default", "--out", str(out), "--steps", "150"],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "4 clips, 16 windows" in completed.stdout
    mapper = Mapper.load(out)
    assert mapper.kind == "trained" and mapper.info["clips"] == 4
    # a label set of another generator is refused with one line
    other = L.LabelSet.load(path)
    other.generator_source_id = "stylegan2:elsewhere"
    other.save(path)
    completed = subprocess.run(
        [sys.executable, "-m", "traeumer_blender", "train-mapper", "--labels", str(path),
         "--out", str(out), "--steps", "10"],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert completed.returncode == 2 and "labelled for generator stylegan2:elsewhere" in completed.stderr


def test_worker_requests_build_a_set_and_refuse_another_model(models, tmp_path):
    """The labelling requests through the worker's handler table, as Blender sends them."""
    import io
    import json

    from traeumer_blender import protocol, worker
    from traeumer_blender.png import read_png

    lines = io.StringIO()
    channel = worker.Channel(lines)

    def run(cmd, **params):
        request = protocol.build_request(cmd, **params)
        return worker.run_job(worker.Job(channel, 1, cmd, request["params"]))

    def stages():
        return [json.loads(line).get("stage") for line in lines.getvalue().splitlines()]

    outcome, fields = run(protocol.LABEL_CANDIDATES, model="default", device="cpu", seed=3, count=2,
                          resolution=32, out_dir=str(tmp_path / "candidates"), base_w=None, strength=0.35)
    assert outcome == protocol.DONE, fields
    made = fields["result"]
    ws = np.load(made["ws_path"])["ws"]
    assert made["resolution"] == 32 and len(made["images"]) == 2 and ws.shape == (2, 512)
    path = tmp_path / "set.labels.npz"
    request = dict(set_path=str(path), name="worker", model="default", encoder="default", device="cpu",
                   audio=str(AUDIO / "hr-savino-ocean.ogg"), start=55.0, duration=10.0,
                   w=ws[1].tolist(), origin=made["origins"][1], thumbnail=made["images"][1],
                   audio_files=[str(AUDIO / "hr-domina-hunting.ogg")])
    outcome, fields = run(protocol.LABEL_ADD, **request)
    assert outcome == protocol.DONE, fields
    added = fields["result"]
    # a clip that would run past the end of the file is moved to end with it
    ocean_seconds = 60.486
    assert added["pairs"] == 1 and added["start"] == pytest.approx(ocean_seconds - 10.0, abs=0.01)
    stored = L.LabelSet.load(path)
    assert stored.name == "worker" and stored.pairs[0]["origin"] == {"kind": "seed", "seed": 4}
    np.testing.assert_array_equal(stored.ws[0], ws[1])
    thumbnail = read_png(made["images"][1])
    np.testing.assert_array_equal(stored.thumbnails[0][::2, ::2], thumbnail)   # 32 px stored at 64
    assert stored.audio_files == [str(AUDIO / "hr-savino-ocean.ogg"), str(AUDIO / "hr-domina-hunting.ogg")]
    assert {"load", "render", "embed"} <= set(stages())
    stored.generator_source_id = "stylegan2:another"
    stored.save(path)
    outcome, fields = run(protocol.LABEL_ADD, **request)
    assert outcome == protocol.ERROR and fields["kind"] == protocol.ERROR_USER
    assert "labelled for generator stylegan2:another" in fields["message"]
