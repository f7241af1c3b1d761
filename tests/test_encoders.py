# SPDX-License-Identifier: GPL-3.0-or-later
"""Music encoders on real music: checkpoint reading, front end, tags, embeddings, bad input."""

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from traeumer_blender.audio import load_audio
from traeumer_blender.encoders import ENCODER_NAMES, load_encoder
from traeumer_blender.encoders.base import MTAT_TAGS, _strided_window_max, _window_max
from traeumer_blender.encoders.frontend import MelFrontEnd, mel_filterbank_htk, mel_filterbank_slaney
from traeumer_blender.encoders.musicnn_models import musicnn_checkpoint_folder
from traeumer_blender.encoders.short_chunk_res import ShortChunkCnnRes
from traeumer_blender.encoders.tf_checkpoint import read_tf_checkpoint
from traeumer_blender.errors import TraeumerError

MUSIC = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
# Tag probabilities of musicnn's own TensorFlow graphs (musicnn.models + tf.compat.v1, checkpoint
# restored with tf.train.Saver) for the first 10 non-overlapping 187-frame patches of the first
# 30 s of two pieces, fed the log-mel patches of our front end.  Computed once in a scratch
# environment with tensorflow-cpu 2.21; TensorFlow is no dependency of this project.
TF_REFERENCE = Path(__file__).with_name("test_encoders_musicnn_reference.npz")


@pytest.fixture(scope="module")
def vgg():
    return load_encoder("default")


@pytest.fixture(scope="module")
def ocean():
    return load_audio(MUSIC / "hr-savino-ocean.ogg")


def cosine_rows(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_tf_checkpoint_reader_gets_the_vgg_weights_and_skips_adam_slots():
    tensors = read_tf_checkpoint(str(musicnn_checkpoint_folder("MTT_vgg")) + "/")
    assert tensors["1CNN/kernel"].shape == (3, 3, 1, 128)
    assert tensors["5CNN/kernel"].shape == (3, 3, 128, 128)
    assert tensors["batch_normalization/gamma"].shape == (1,)
    assert tensors["dense/kernel"].shape == (256, 50)
    assert not any(name.endswith(("/Adam", "/Adam_1")) for name in tensors)
    assert all(np.isfinite(t).all() for t in tensors.values())
    assert all((tensors[f"batch_normalization_{i}/moving_variance"] > 0).all() for i in range(1, 6))


def test_tf_checkpoint_reader_rejects_a_damaged_index(tmp_path):
    folder = musicnn_checkpoint_folder("MTT_vgg")
    index = (folder / ".index").read_bytes()
    (tmp_path / "bad.index").write_bytes(index[:-8] + struct.pack("<Q", 12345))
    with pytest.raises(TraeumerError, match="magic"):
        read_tf_checkpoint(tmp_path / "bad")
    (tmp_path / "cut.index").write_bytes(index[:40])
    with pytest.raises(TraeumerError):
        read_tf_checkpoint(tmp_path / "cut")


def test_slaney_filterbank_follows_its_definition():
    bank = mel_filterbank_slaney(16000, 512, 96)          # [257 bins, 96 mels]
    assert bank.shape == (257, 96) and bank.dtype == np.float32
    bin_hz = 16000 / 512
    # area normalisation: each triangle integrates to 1 over Hz (checked on wide, high bands)
    areas = bank.sum(axis=0) * bin_hz
    assert np.allclose(areas[40:], 1.0, atol=0.1) and abs(areas[40:].mean() - 1.0) < 0.01
    # Slaney scale is linear below 1 kHz (200/3 Hz per mel): band 14's peak is at 1000 Hz
    edges_mel = np.linspace(0, 15 + np.log(8.0) / (np.log(6.4) / 27), 98)
    peak_hz = np.argmax(bank, axis=0) * bin_hz
    low = edges_mel[1:97] < 14
    assert np.all(np.abs(peak_hz[low] - edges_mel[1:97][low] * 200 / 3) <= bin_hz / 2 + 1e-6)
    htk = mel_filterbank_htk(16000, 512, 128, 0.0, 8000.0)
    assert htk.shape == (257, 128) and np.isclose(htk.max(), 1.0, atol=0.05)


def test_front_end_puts_a_tone_in_its_band_and_logs_like_musicnn():
    front = MelFrontEnd(16000, 512, 256, mel_filterbank_slaney(16000, 512, 96), "log10_10000")
    t = np.arange(16000) / 16000
    audio = (0.5 * np.sin(2 * np.pi * 2000.0 * t)).astype(np.float32)
    frames = front.frames(audio, 0, 40).numpy()                  # [40, 96]
    band = int(np.argmax(frames[20]))
    centre_hz = np.argmax(mel_filterbank_slaney(16000, 512, 96)[:, band]) * 16000 / 512
    assert abs(centre_hz - 2000.0) < 120
    silent = front.frames(np.zeros(16000, np.float32), 0, 10).numpy()
    assert np.all(silent == 0.0)                                 # log10(10000·0 + 1)
    # frames addressed by centre sample agree, whatever the range asked for
    assert np.allclose(front.frames(audio, 256 * 7, 5).numpy(), frames[7:12])


@pytest.mark.parametrize("name", ["mtt_vgg", "mtt_musicnn"])
def test_port_matches_musicnn_tensorflow_outputs(name):
    reference = np.load(TF_REFERENCE)
    encoder = load_encoder(name)
    for piece in ("hr-savino-ocean.ogg", "machine_wars.mp3"):
        audio = load_audio(MUSIC / piece, duration=10.0)
        tags = encoder.tag_windows(audio)[:3]
        assert np.abs(tags - reference[f"{name}/{piece}"][:3]).max() < 1e-4


def test_tags_hear_techno_in_techno_and_choir_in_orchestral_music(vgg):
    """machine_wars (ASC, electronic game music) vs hr-domina-mountain (HyperRogue, orchestral)."""
    def mean_tags(piece, start, duration):
        return vgg.tag_windows(load_audio(MUSIC / piece, start=start, duration=duration)).mean(axis=0)

    def top5(tags):
        return {vgg.tag_names[i] for i in np.argsort(-tags)[:5]}

    def score(tags, names):
        return float(sum(tags[vgg.tag_names.index(n)] for n in names))

    techno = mean_tags("machine_wars.mp3", 0.0, 30.0)
    orchestral = mean_tags("hr-domina-mountain.ogg", 20.0, 30.0)
    assert {"techno", "electronic"} <= top5(techno)
    assert {"classical", "choir"} <= top5(orchestral)
    assert not {"techno", "electronic"} & top5(orchestral)
    electronic_tags = ["techno", "electronic", "synth"]
    classical_tags = ["classical", "strings", "choir", "choral", "violin", "cello"]
    assert score(techno, electronic_tags) > 3 * score(orchestral, electronic_tags)
    assert score(orchestral, classical_tags) > 3 * score(techno, classical_tags)


def test_encoder_attributes(vgg):
    assert vgg.name == "mtt_vgg" and vgg.sample_rate == 16000
    assert vgg.tag_names == MTAT_TAGS and len(vgg.tag_names) == 50
    assert vgg.tag_names[:4] == ["guitar", "classical", "slow", "techno"]
    assert abs(vgg.window_seconds - 187 * 256 / 16000) < 1e-9
    assert vgg.embedding_dim == 768 and vgg.source_id.startswith("mtt_vgg:")
    assert "default" in ENCODER_NAMES and "mtt_musicnn" in ENCODER_NAMES
    assert load_encoder("mtt_vgg").source_id == vgg.source_id


def vgg_window_by_hand(network, spectrogram, context, zero_padded_from):
    """MTT_vgg's embedding of the 187 frames after ``context`` frames of ``spectrogram``,
    written out layer by layer: conv layers from ``zero_padded_from`` on see zeros outside the
    window (as in a window cut out on its own), earlier ones see the real neighbours."""
    x = network.input_norm(spectrogram[None, None])
    offset, length = context, 187
    for i in range(5):
        if i >= zero_padded_from:
            inside = torch.zeros_like(x)
            inside[:, :, offset:offset + length] = 1
            x = x * inside
        x = network.norms[i](torch.relu(network.convs[i](x)))
        if i < 4:
            kernel = (4, 1) if i == 0 else (2, 2)
            x = torch.nn.functional.max_pool2d(x, kernel, 2)
            offset, length = offset // 2, (length - kernel[0]) // 2 + 1
    window = x[0, :, offset:offset + length]                     # [128, 11 positions, 6 bands]
    return window.permute(0, 2, 1).reshape(-1, length).amax(dim=1).numpy()


def test_embed_frames_models_the_exact_windows_last_two_paddings(vgg, ocean):
    """On a computed phase (a window starting on an even frame) the song-wide pass equals the
    window run with real context for convs 1-3 and its own zero padding at convs 4 and 5."""
    audio = ocean[: 16000 * 12]
    first_frames = np.array([250, 312, 376, 402, 470])             # even: on MTT_vgg's 8 phases
    times = (first_frames + 93) * 256 / 16000                      # window centres
    fast = vgg.embed_frames(audio, times)
    exact = vgg.embed_windows_exact(audio, times)
    with torch.inference_mode():
        for i, first in enumerate(first_frames):
            spectrogram = vgg.frontend.frames(audio, (first - 64) * 256, 187 + 128)
            assert np.allclose(vgg_window_by_hand(vgg.network, spectrogram, 64, 0), exact[i], atol=1e-4)
            modelled = vgg_window_by_hand(vgg.network, spectrogram, 64, 3)
            assert np.allclose(fast[i], modelled, atol=1e-4, rtol=1e-4)
            real_context = vgg_window_by_hand(vgg.network, spectrogram, 64, 5)
            assert not np.allclose(fast[i], real_context, atol=1e-3)   # the padding is there
    assert cosine_rows(fast, exact).mean() > 0.995


def test_embed_frames_matches_exact_windows_on_real_music(vgg, ocean):
    audio = ocean[: 16000 * 14]
    times = np.arange(5.0, 9.0, 1 / 30)                           # every video frame: odd and even
    fast = vgg.embed_frames(audio, times)
    exact = vgg.embed_windows_exact(audio, times)
    assert fast.shape == exact.shape == (len(times), 768) and fast.dtype == np.float32
    assert cosine_rows(fast, exact).mean() > 0.99
    # a window starting on an odd frame is the mean of its two neighbours on the 8 phases
    odd_first = 2 * 140 + 1
    between = vgg.embed_frames(audio, [(odd_first + 93) * 256 / 16000])[0]
    neighbours = vgg.embed_frames(audio, [(odd_first + 92) * 256 / 16000, (odd_first + 94) * 256 / 16000])
    assert np.allclose(between, neighbours.mean(axis=0), atol=1e-5)


def test_embed_frames_edges_order_progress_and_cancel(vgg):
    audio = load_audio(MUSIC / "hr-savino-palace.ogg", duration=6.0)
    times = np.array([5.9, 0.0, 3.0, 1.5, -0.5, 6.5])               # unsorted, past both ends
    calls = []
    embeddings = vgg.embed_frames(audio, times, progress=lambda done, total: calls.append((done, total)))
    assert np.all(np.isfinite(embeddings)) and calls[-1] == (6, 6)
    one_by_one = np.concatenate([vgg.embed_frames(audio, [t]) for t in times])
    assert np.allclose(embeddings, one_by_one, atol=1e-4)     # independent of the other frames

    sparse = np.array([0.2, 5.8])                                  # far apart: chunks skipped
    assert np.allclose(vgg.embed_frames(audio, sparse, chunk_seconds=1.0),
                       np.concatenate([vgg.embed_frames(audio, [t]) for t in sparse]), atol=1e-4)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled()

    with pytest.raises(Cancelled):
        vgg.embed_frames(audio, times, progress=cancel)
    assert vgg.embed_frames(audio, []).shape == (0, 768)


def test_silence_and_half_a_second_are_zero_padded(vgg, tmp_path):
    import soundfile
    short = tmp_path / "short.wav"
    soundfile.write(short, 0.3 * np.sin(2 * np.pi * 330 * np.arange(22050) / 44100), 44100)
    audio = load_audio(short)
    assert len(audio) == 8000
    times = np.arange(0, 0.5, 0.1)
    embeddings = vgg.embed_frames(audio, times)
    assert embeddings.shape == (5, 768) and np.all(np.isfinite(embeddings))
    exact = vgg.embed_windows_exact(audio, times)
    assert cosine_rows(embeddings, exact).mean() > 0.97
    tags = vgg.tag_windows(audio)
    assert tags.shape == (1, 50) and np.all((tags >= 0) & (tags <= 1))
    silence_tags = vgg.tag_windows(np.zeros(16000 * 4, np.float32))
    assert silence_tags.shape == (2, 50)
    assert np.all(np.isfinite(vgg.embed_frames(np.zeros(16000, np.float32), [0.0, 0.5])))


def test_tag_windows_are_non_overlapping_native_windows(vgg, ocean):
    audio = ocean[: 16000 * 10]
    tags = vgg.tag_windows(audio)
    window = int(vgg.window_seconds * 16000)
    assert tags.shape == (int(np.ceil(len(audio) / window)), 50) and tags.dtype == np.float32
    alone = vgg.tag_windows(audio[window:2 * window])            # window 1 cut out on its own
    # equal but for its edge frames, which then lose the half-frame of music beyond the cut
    assert np.abs(tags[1] - alone[0]).max() < 0.02
    assert np.argmax(tags[1]) == np.argmax(alone[0])


def test_musicnn_embeddings_follow_exact_windows(ocean):
    encoder = load_encoder("mtt_musicnn")
    assert encoder.embedding_dim == 753
    audio = ocean[: 16000 * 8]
    times = np.arange(3.0, 5.0, 0.25)
    fast = encoder.embed_frames(audio, times)
    exact = encoder.embed_windows_exact(audio, times)
    assert cosine_rows(fast, exact).mean() > 0.97


def test_converted_weights_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAEUMER_CACHE_DIR", str(tmp_path))
    first = load_encoder("mtt_vgg")
    cached = list((tmp_path / "encoders").glob("mtt_vgg-*.pt"))
    assert len(cached) == 1 and first.source_id.split(":")[1] in cached[0].name
    cached[0].write_bytes(b"damaged")                          # a broken cache is rebuilt
    again = load_encoder("mtt_vgg")
    assert again.source_id == first.source_id
    state = torch.load(cached[0], weights_only=True)
    assert torch.equal(state["convs.0.weight"], first.network.convs[0].weight)


# ----- the paper's ShortChunkCNN_Res -------------------------------------------------------------

def random_short_chunk_state(seed):
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in ShortChunkCnnRes().state_dict().items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif value.is_floating_point():
            state[key] = 0.1 * torch.randn(value.shape, generator=generator)
        else:
            state[key] = value
    # torchaudio's MelSpectrogram buffers, as sota-music-tagging-models saves them
    state["spec.spectrogram.window"] = torch.hann_window(512)
    state["spec.mel_scale.fb"] = torch.from_numpy(mel_filterbank_htk(16000, 512, 128, 0.0, 8000.0))
    return state


def test_short_chunk_res_loads_both_checkpoint_layouts(tmp_path, ocean):
    import argparse
    state = random_short_chunk_state(1)
    for key in ("layer1.conv_1.weight", "layer7.bn_3.running_mean", "spec_bn.weight", "dense1.weight",
                "bn.running_var", "dense2.bias"):
        assert key in state
    plain = tmp_path / "best_model.pth"
    torch.save(state, plain)
    lightning = tmp_path / "traeumer.ckpt"
    torch.save({"epoch": 12, "global_step": 3400, "pytorch-lightning_version": "0.9.0",
                "state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": argparse.Namespace(lr=1e-4, batch_size=16)}, lightning)
    a, b = load_encoder(str(plain)), load_encoder(lightning)
    assert a.name == b.name == "short_chunk_res" and a.embedding_dim == 512
    assert abs(a.window_seconds - 59049 / 16000) < 1e-9
    assert a.source_id != b.source_id and load_encoder(plain).source_id == a.source_id
    for key, value in a.network.state_dict().items():
        assert torch.equal(value, b.network.state_dict()[key]) and torch.equal(value, state[key])
    audio = ocean[: 16000 * 4]
    fast = a.embed_frames(audio, [2.0])
    exact = a.embed_windows_exact(audio, [2.0])
    assert fast.shape == exact.shape == (1, 512) and np.all(np.isfinite(fast))
    tags = b.tag_windows(audio[:59049])
    assert tags.shape == (1, 50) and np.all((tags > 0) & (tags < 1))
    # exact embedding = the network's own global max-pool input for that window
    with torch.inference_mode():
        spectrogram = a.window_spectrogram(audio, 16000 * 2)[None]
        pooled = a.network.conv_features(spectrogram).amax(dim=2)
    assert np.allclose(pooled[0].numpy(), exact[0], atol=1e-5)


def test_shifted_passes_share_layers_without_changing_results(vgg):
    """The song-wide pass computes all phases at once; inside the song it equals separate passes."""
    torch.manual_seed(0)
    resnet = ShortChunkCnnRes().eval()
    spectrogram = torch.randn(1, 1280, 128)
    cases = [(vgg.network, torch.randn(1, 700, 96), [0, 8, 4, 6], 3),
             (resnet, spectrogram, [0, 48], 4)]
    with torch.inference_mode():
        for network, x, shifts, margin in cases:
            for shift, shared in zip(shifts, network.conv_features_shifted(x, shifts)):
                alone = network.conv_features(x[:, shift:])
                n = min(shared.shape[2], alone.shape[2]) - margin
                assert torch.allclose(shared[:, :, margin:n], alone[:, :, margin:n], atol=1e-5)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_short_chunk_res_refuses_code_and_junk(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        pickle.dump({"state_dict": _RunsCode()}, handle)
    torch.save({"weights": _RunsCode()}, tmp_path / "evil2.pth")
    for path in (evil, tmp_path / "evil2.pth"):
        with pytest.raises(TraeumerError, match="refused|cannot read"):
            load_encoder(path)
    assert not Path("pwned-by-checkpoint").exists() and not (tmp_path / "pwned-by-checkpoint").exists()
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(TraeumerError, match="junk.ckpt"):
        load_encoder(junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"layer1.conv_1.weight": torch.zeros(3)}, wrong)
    with pytest.raises(TraeumerError, match="ShortChunkCNN_Res"):
        load_encoder(wrong)
    with pytest.raises(TraeumerError, match="not found"):
        load_encoder(tmp_path / "missing.pth")
    with pytest.raises(TraeumerError, match="unknown encoder"):
        load_encoder("mtt_resnet_9000")


def test_window_max_takes_edge_positions_from_their_own_maps():
    rng = np.random.default_rng(4)
    inner, first, second, last = (rng.standard_normal((40, 3)).astype(np.float32) for _ in range(4))
    stride, count = 4, 5
    pooled = _window_max([inner, first, second, last], stride, count)
    assert len(pooled) == 40 - stride * (count - 1)
    for i in range(len(pooled)):
        rows = [first[i], second[i]] + [inner[i + stride * k] for k in (2, 3)] + [last[i + stride * 4]]
        assert np.array_equal(pooled[i], np.max(rows, axis=0))
    assert np.array_equal(_window_max([inner, inner, inner], 2, 3), _strided_window_max(inner, 2, 3)[:36])


def test_strided_window_max_is_a_strided_sliding_max():
    values = np.random.default_rng(3).standard_normal((60, 4)).astype(np.float32)
    for stride, count in [(1, 5), (2, 11), (1, 59), (4, 2), (3, 1)]:
        pooled = _strided_window_max(values, stride, count)
        for i in range(60 - stride * (count - 1)):
            assert np.array_equal(pooled[i], values[i:i + stride * count:stride].max(axis=0))
