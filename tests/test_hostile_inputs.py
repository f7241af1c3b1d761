# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile and broken input files (issue #12, "Nothing lost, nothing crashes").

Each case is met as a user meets it: the command line in a subprocess must exit with status 2
and one line on stderr (no traceback, no frame or mapper written), or the engine function must
raise TraeumerError with a line that names the problem. Files that would make a small input
allocate gigabytes are run in a fresh process whose peak memory is measured.
"""

import io
import json
import math
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from traeumer_blender import mapping
from traeumer_blender.audio import load_audio, probe_audio
from traeumer_blender.errors import TraeumerError
from traeumer_blender.labels import LabelSet
from traeumer_blender.styles_file import load_styles

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
OCEAN = SHARED_AUDIO / "hr-savino-ocean.ogg"
FAST = ["--fps", "4", "--resolution", "32", "--quiet"]
# a process that refuses a hostile file stays below this (the CLI with torch and the built-in
# generator needs about 0.6 GB)
PEAK_LIMIT_BYTES = 1.5e9
PEAKS = {}   # case -> measured peak bytes (printed at the end of the module: pytest -s)

# runs one command and reports its exit status, output and peak memory (a fresh process per
# case, so RUSAGE_CHILDREN covers exactly that one command)
_MEASURE = """
import json, resource, subprocess, sys
process = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": process.returncode, "stdout": process.stdout, "stderr": process.stderr,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TRAEUMER_DEBUG", None)
    return env


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "traeumer_blender", *map(str, args)], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def run_cli_measured(case, *args, timeout=300):
    """run_cli in a fresh process; records and returns (process, peak bytes)."""
    wrapper = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "traeumer_blender",
                              *map(str, args)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                             timeout=timeout)
    assert wrapper.returncode == 0, wrapper.stderr
    result = json.loads(wrapper.stdout)
    peak = result["peak_kib"] * 1024
    PEAKS[case] = peak
    return subprocess.CompletedProcess(args, result["rc"], result["stdout"], result["stderr"]), peak


def assert_user_error(process, *mentions, out_dir=None):
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2, process.stderr
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in process.stderr
    for word in mentions:
        assert word.lower() in lines[0].lower(), lines[0]
    if out_dir is not None and Path(out_dir).is_dir():
        assert not [p for p in Path(out_dir).iterdir() if p.name.startswith(("frame_", ".frame_"))]
    return lines[0]


def rewrite_npz(source, target, **changes):
    """A copy of an .npz with members replaced (None: removed)."""
    with np.load(source, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name, None)
        else:
            arrays[name] = value
    np.savez(target, **arrays)
    return target


def add_inflating_member(source, target, member, nbytes=2 ** 31):
    """A copy of an .npz whose ``member`` becomes a float32 .npy of ``nbytes`` zeros, deflated
    (a few MB on disk)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED,
                                                              compresslevel=1) as out:
        for info in original.infolist():
            if info.filename != member + ".npy":
                out.writestr(info.filename, original.read(info.filename))
        with out.open(member + ".npy", "w", force_zip64=True) as stream:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (nbytes // 4,)})
            stream.write(header.getvalue())
            block = bytes(1 << 24)
            for _ in range(nbytes // len(block)):
                stream.write(block)
    assert os.path.getsize(target) < 16e6
    return target


def write_raw_wav(path, rate, frames=32000, channels=1):
    """A 16-bit PCM WAV whose header says ``rate`` Hz, whatever that is."""
    data = (np.sin(np.arange(frames * channels) * 0.05) * 8000).astype("<i2").tobytes()
    block = 2 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, min(rate * block, 0xFFFFFFFF), block, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def music(seconds=3.0, rate=22050):
    """Mono float32 music: the first seconds of the ocean example."""
    data, file_rate = soundfile.read(str(OCEAN), frames=int(seconds * 44100), dtype="float32", always_2d=True)
    assert file_rate == 44100
    return data.mean(axis=1)[::2].copy(), rate


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """styles.npz of one second of real music (4 frames), as `generate --styles-only` writes it."""
    out = tmp_path_factory.mktemp("job")
    # without motion: these cases change the core fields (motion's own are checked in test_motion)
    process = run_cli("generate", "--audio", OCEAN, "--out", out, "--duration", "1", "--styles-only",
                      "--no-motion", *FAST)
    assert process.returncode == 0, process.stderr
    return load_styles(out / "styles.npz"), out / "styles.npz"


@pytest.fixture(scope="module", autouse=True)
def report_peaks():
    yield
    for case, peak in sorted(PEAKS.items()):
        print(f"peak memory {case}: {peak / 1e6:.0f} MB")


def styles_variant(job, tmp_path, **changes):
    """A folder holding a changed copy of the job's styles.npz (and no frames)."""
    folder = tmp_path / "variant"
    folder.mkdir()
    return rewrite_npz(job[1], folder / "styles.npz", **changes)


def mapper_for(styles, **changes) -> mapping.Mapper:
    """A zero-label mapper file's content for the job's generator and encoder."""
    w_dim, dim = styles.group_ws.shape[2], styles.embeddings.shape[1]
    mapper = mapping.zero_label_mapper(dim, np.zeros(w_dim), np.ones(w_dim), seed=3,
                                       encoder_source_id=styles.encoder_source_id,
                                       generator_source_id=styles.generator_source_id)
    for name, value in changes.items():
        setattr(mapper, name, value)
    return mapper


def label_set_for(styles, pairs=2) -> LabelSet:
    rng = np.random.default_rng(2)
    w_dim, dim = styles.group_ws.shape[2], styles.embeddings.shape[1]
    labels = LabelSet(styles.generator_source_id, styles.encoder_source_id, w_dim, dim, 3.69, name="t",
                      thumbnail_size=8)
    for k in range(pairs):
        labels.add_pair(OCEAN, 10.0 * k, 10.0, rng.standard_normal((3, dim)), rng.standard_normal(w_dim))
    return labels


# ----------------------------------------------------------------------------- 1. NaN and infinity

@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_styles_with_non_finite_ws_are_refused(job, tmp_path, value):
    styles, _ = job
    group_ws = styles.group_ws.copy()
    group_ws[2, 1, 7] = value
    path = styles_variant(job, tmp_path, group_ws=group_ws)
    assert_user_error(run_cli("render", "--styles", path, "--quiet"), "group_ws", "not finite",
                      out_dir=path.parent)


def test_mapper_with_nan_weights_is_refused_before_any_frame(job, tmp_path):
    styles, _ = job
    weight = mapper_for(styles).weight.copy()
    weight[3, 5] = math.nan
    mapper_for(styles, weight=weight).save(tmp_path / "nan.mapper.npz")
    out = tmp_path / "out"
    line = assert_user_error(run_cli("generate", "--audio", OCEAN, "--out", out, "--duration", "1",
                                     "--mapper", tmp_path / "nan.mapper.npz", *FAST),
                             "weight", "not finite", out_dir=out)
    assert "nan.mapper.npz" in line


@pytest.mark.parametrize("field", ["w_std", "w_mean", "bias", "input_scale"])
def test_mapper_with_non_finite_stds_or_scales_is_refused(job, tmp_path, field):
    styles, _ = job
    mapper = mapper_for(styles)
    dim = mapper.embedding_dim
    mapper.input_mean, mapper.input_scale, mapper.kind = np.zeros(dim), np.ones(dim), mapping.KIND_TRAINED
    values = getattr(mapper, field).copy()
    values[1] = math.inf if field != "bias" else math.nan
    setattr(mapper, field, values)
    mapper.save(tmp_path / "bad.npz")
    with pytest.raises(TraeumerError, match=f"'{field}'.*not finite"):
        mapping.Mapper.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("member", ["ws", "embeddings"])
def test_label_set_with_nan_is_refused_and_no_mapper_is_written(job, tmp_path, member):
    styles, _ = job
    label_set_for(styles).save(tmp_path / "good.labels.npz")
    with np.load(tmp_path / "good.labels.npz") as data:
        values = data[member].copy()
    values[0, 0] = math.nan
    rewrite_npz(tmp_path / "good.labels.npz", tmp_path / "bad.labels.npz", **{member: values})
    with pytest.raises(TraeumerError, match=f"'{member}'.*not finite"):
        LabelSet.load(tmp_path / "bad.labels.npz")
    out = tmp_path / "taste.mapper.npz"
    assert_user_error(run_cli("train-mapper", "--labels", tmp_path / "bad.labels.npz", "--out", out,
                              "--steps", "10", "--quiet"), member, "not finite")
    assert not out.exists()


def test_pairs_file_with_non_finite_w_is_refused(job, tmp_path):
    styles, _ = job
    w_dim = styles.group_ws.shape[2]
    w = [0.1] * w_dim
    w[4] = math.nan
    (tmp_path / "pairs.json").write_text(json.dumps({"pairs": [{"audio": str(OCEAN), "duration": 4, "w": w}]}))
    np.save(tmp_path / "w.npy", np.full(w_dim, np.inf, dtype=np.float32))
    (tmp_path / "pairs_file.json").write_text(json.dumps(
        {"pairs": [{"audio": str(OCEAN), "duration": 4, "w_file": "w.npy"}]}))
    for name, words in (("pairs.json", ["pair 1", '"w"', "finite"]), ("pairs_file.json", ["w.npy", "finite"])):
        out = tmp_path / "mapper.npz"
        assert_user_error(run_cli("train-mapper", "--pairs", tmp_path / name, "--out", out, "--steps", "10",
                                  "--quiet"), *words)
        assert not out.exists()


def test_float_audio_far_above_full_scale_is_refused(tmp_path):
    samples, rate = music()
    loud = tmp_path / "loud.wav"
    soundfile.write(str(loud), samples * np.float32(1e30), rate, subtype="FLOAT")
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", loud, "--out", out, *FAST), "loud.wav", "as large as",
                      out_dir=out)


def test_float_audio_a_little_above_full_scale_still_works(tmp_path):
    """Float files may exceed full scale a little (a mix bus at +12 dB): frames as usual."""
    samples, rate = music(seconds=2.0)
    hot = tmp_path / "hot.wav"
    soundfile.write(str(hot), samples / np.abs(samples).max() * 4.0, rate, subtype="FLOAT")
    out = tmp_path / "out"
    process = run_cli("generate", "--audio", hot, "--out", out, *FAST)
    assert process.returncode == 0, process.stderr
    assert len(list(out.glob("frame_*.png"))) == 8


# ----------------------------------------------------------------------------- 2. gigabytes from small files

@pytest.mark.parametrize("rate", [1, 999, 768001, 2 ** 31 - 1])
def test_wav_header_with_an_absurd_sample_rate(tmp_path, rate):
    """A 64 KB WAV saying 1 Hz used to take 6.3 GB and 16 s (resampled 16000-fold); one saying
    2^31-1 Hz asked for a 68-billion-tap filter. `tags` decodes the whole file."""
    wav = write_raw_wav(tmp_path / f"rate{rate}.wav", rate)
    assert wav.stat().st_size < 70_000
    process, peak = run_cli_measured(f"wav at {rate} Hz (tags)", "tags", "--audio", wav)
    assert_user_error(process, "sample rate", f"{rate} Hz")
    assert peak < PEAK_LIMIT_BYTES, peak
    out = tmp_path / "out"
    process, peak = run_cli_measured(f"wav at {rate} Hz (generate)", "generate", "--audio", wav, "--out", out,
                                     *FAST)
    assert_user_error(process, "sample rate", f"{rate} Hz", out_dir=out)
    assert peak < PEAK_LIMIT_BYTES, peak
    with pytest.raises(TraeumerError, match="sample rate"):
        probe_audio(wav)
    with pytest.raises(TraeumerError, match="sample rate"):
        load_audio(wav)


def test_sample_rates_at_the_ends_of_the_range_still_decode(tmp_path):
    for rate in (1000, 768000):
        wav = write_raw_wav(tmp_path / f"edge{rate}.wav", rate, frames=rate // 10)
        assert abs(len(load_audio(wav)) - 1600) <= 1


def test_styles_member_that_inflates_to_2_gib_is_refused_in_little_memory(job, tmp_path):
    """embeddings (which rendering does not even use) inflating to 2 GiB: 4.7 GB peak before."""
    folder = tmp_path / "bomb"
    folder.mkdir()
    bomb = add_inflating_member(job[1], folder / "styles.npz", "embeddings")
    process, peak = run_cli_measured("styles.npz embeddings inflating to 2 GiB", "render", "--styles", bomb,
                                     "--quiet")
    assert_user_error(process, "embeddings", "2.0 GiB", out_dir=folder)
    assert peak < PEAK_LIMIT_BYTES, peak


def test_members_no_format_uses_are_never_read(job, tmp_path):
    folder = tmp_path / "padded"
    folder.mkdir()
    padded = add_inflating_member(job[1], folder / "styles.npz", "padding")
    process, peak = run_cli_measured("styles.npz with an unused 2 GiB member", "render", "--styles", padded,
                                     "--frames", "1", "--quiet")
    assert process.returncode == 0, process.stderr
    assert (folder / "frame_000001.png").is_file()
    assert peak < PEAK_LIMIT_BYTES, peak


def test_mapper_and_label_set_members_that_inflate_are_refused_in_little_memory(job, tmp_path):
    styles, _ = job
    mapper_for(styles).save(tmp_path / "good.mapper.npz")
    add_inflating_member(tmp_path / "good.mapper.npz", tmp_path / "bomb.mapper.npz", "info_json")
    out = tmp_path / "out"
    process, peak = run_cli_measured("mapper info_json inflating to 2 GiB", "generate", "--audio", OCEAN,
                                     "--out", out, "--duration", "1", "--mapper", tmp_path / "bomb.mapper.npz",
                                     *FAST)
    assert_user_error(process, "info_json", "bomb.mapper.npz", out_dir=out)
    assert peak < PEAK_LIMIT_BYTES, peak

    label_set_for(styles).save(tmp_path / "good.labels.npz")
    add_inflating_member(tmp_path / "good.labels.npz", tmp_path / "bomb.labels.npz", "thumbnails")
    process, peak = run_cli_measured("label set thumbnails inflating to 2 GiB", "train-mapper", "--labels",
                                     tmp_path / "bomb.labels.npz", "--out", tmp_path / "m.npz", "--steps", "10",
                                     "--quiet")
    assert_user_error(process, "thumbnails")
    assert peak < PEAK_LIMIT_BYTES, peak
    assert not (tmp_path / "m.npz").exists()


def test_npy_header_that_claims_more_than_its_member_holds(job, tmp_path):
    """A header saying [2^28, 3, 512] on a few bytes: refused from the header, nothing allocated."""
    folder = tmp_path / "liar"
    folder.mkdir()
    liar = folder / "styles.npz"
    with zipfile.ZipFile(job[1]) as original, zipfile.ZipFile(liar, "w") as out:
        for info in original.infolist():
            if info.filename != "group_ws.npy":
                out.writestr(info.filename, original.read(info.filename))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (2 ** 28, 3, 512)})
        out.writestr("group_ws.npy", header.getvalue() + bytes(64))
    with pytest.raises(TraeumerError, match="group_ws.*1536.0 GiB"):
        load_styles(liar)


# ----------------------------------------------------------------------------- 3. bad input, not internal errors

def test_train_mapper_out_that_cannot_be_written_is_refused_before_training(job, tmp_path):
    styles, _ = job
    label_set_for(styles).save(tmp_path / "taste.labels.npz")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    (tmp_path / "folder").mkdir()
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"pairs": [{"audio": str(OCEAN), "duration": 4, "seed": 1}]}))
    for out, words in ((tmp_path / "folder", ["is a folder"]), (tmp_path / "missing" / "m.npz", ["does not exist"]),
                       (blocker / "m.npz", ["a-file", "not a folder"]),
                       (blocker / "deeper" / "m.npz", ["a-file", "not a folder"])):
        for source in (["--labels", tmp_path / "taste.labels.npz"], ["--pairs", pairs]):
            # 30000 steps would take minutes: the check comes before training
            process = run_cli("train-mapper", *source, "--out", out, "--steps", "30000", timeout=60)
            assert_user_error(process, *words)
    assert blocker.read_text() == "not a folder"
    assert list((tmp_path / "folder").iterdir()) == []


@pytest.mark.parametrize("case", ["text group_ws", "complex group_ws", "settings list", "png_compression 99",
                                  "layer_group -1", "1-d layer_group", "fps 0"])
def test_styles_with_fields_of_the_wrong_type_or_range(job, tmp_path, case):
    styles, _ = job
    settings = dict(styles.settings)
    settings["png_compression"] = 99
    changes, words = {
        "text group_ws": ({"group_ws": np.full(styles.group_ws.shape, "1.5")}, ["group_ws", "text"]),
        "complex group_ws": ({"group_ws": styles.group_ws.astype(np.complex64)}, ["group_ws", "complex"]),
        "settings list": ({"settings_json": np.array("[1, 2]")}, ["settings_json", "list"]),
        "png_compression 99": ({"settings_json": np.array(json.dumps(settings))}, ["png_compression", "99"]),
        "layer_group -1": ({"layer_group": np.where(styles.layer_group == 2, -1, styles.layer_group)},
                           ["layer_group", "-1"]),
        "1-d layer_group": ({"layer_group": styles.layer_group[None]}, ["layer_group", "dimensions"]),
        "fps 0": ({"fps_den": np.array(0)}, ["frame rate"]),
    }[case]
    path = styles_variant(job, tmp_path, **changes)
    assert_user_error(run_cli("render", "--styles", path, "--quiet"), *words, out_dir=path.parent)


def test_mapper_with_a_one_dimensional_weight(job, tmp_path):
    styles, _ = job
    mapper_for(styles).save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        flat = data["weight"].reshape(-1)
    rewrite_npz(tmp_path / "good.npz", tmp_path / "flat.npz", weight=flat)
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", OCEAN, "--out", out, "--duration", "1",
                              "--mapper", tmp_path / "flat.npz", *FAST), "weight", "1 dimensions", out_dir=out)


def _pairs_cases(tmp_path, w_dim):
    good = {"audio": str(OCEAN), "start": 0, "duration": 4}
    np.save(tmp_path / "short.npy", np.zeros(w_dim - 1, dtype=np.float32))
    np.save(tmp_path / "text.npy", np.array(["a"] * w_dim))
    np.save(tmp_path / "complex.npy", np.zeros(w_dim, dtype=np.complex64))
    np.savez(tmp_path / "archive.npz", w=np.zeros(w_dim))
    (tmp_path / "notes.npy").write_text("not numpy at all")
    return [
        (dict(good, w="abc"), ['"w"', "list"]),
        (dict(good, w=[1, "x"] * (w_dim // 2)), ['"w"', "finite numbers"]),
        (dict(good, start="abc", seed=1), ['"start"', "abc"]),
        (dict(good, duration=[4], seed=1), ['"duration"']),
        (dict(good, seed="x"), ['"seed"', "'x'"]),
        (dict(good, seed=1e30), ['"seed"', "1e+30"]),
        (dict(good, seed=True), ['"seed"']),
        (dict(good, seed=1, truncation="high"), ['"truncation"']),
        (dict(good, audio=None, seed=1), ['"audio"', "None"]),
        (dict(good, w_file="short.npy"), ["short.npy", "finite numbers"]),
        (dict(good, w_file="text.npy"), ["text.npy", "holds text"]),
        (dict(good, w_file="complex.npy"), ["complex.npy", "complex"]),
        (dict(good, w_file="archive.npz"), ["archive.npz", "not a .npy file"]),
        (dict(good, w_file="notes.npy"), ["notes.npy", "not a .npy file"]),
        (dict(good, w_file=7), ['"w_file"']),
    ]


def test_pairs_file_fields_of_the_wrong_type(job, tmp_path):
    styles, _ = job
    for number, (pair, words) in enumerate(_pairs_cases(tmp_path, styles.group_ws.shape[2])):
        pairs = tmp_path / f"pairs{number}.json"
        pairs.write_text(json.dumps({"pairs": [pair]}))
        out = tmp_path / "m.npz"
        assert_user_error(run_cli("train-mapper", "--pairs", pairs, "--out", out, "--steps", "10", "--quiet"),
                          *words)
        assert not out.exists()


def test_devices_this_machine_does_not_have(tmp_path):
    import torch

    out = tmp_path / "out"
    wanted = [("meta", "unknown device"), ("tpu", "unknown device"), ("cuda:x", "index"), ("cpu:3", "one cpu")]
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        wanted.append(("mps", "metal"))
    if not torch.cuda.is_available():
        wanted.append(("cuda", "no cuda gpu"))
    else:
        wanted.append((f"cuda:{torch.cuda.device_count()}", "cuda gpu"))
    for device, words in wanted:
        assert_user_error(run_cli("generate", "--audio", OCEAN, "--out", out, "--duration", "1", "--device", device,
                                  *FAST), device, words, out_dir=out)
    for device, words in wanted[-2:]:
        assert_user_error(run_cli("tags", "--audio", OCEAN, "--device", device), device, words)
        assert_user_error(run_cli("train-mapper", "--pairs", tmp_path / "none.json", "--out", tmp_path / "m.npz",
                                  "--device", device), device, words)


def test_check_device_accepts_what_this_machine_has():
    import torch

    from traeumer_blender.devices import check_device

    assert check_device("auto") == "auto" and check_device(" CPU ") == "cpu" and check_device(None) == "auto"
    if torch.cuda.is_available():
        assert check_device("cuda") == "cuda" and check_device("cuda:0") == "cuda:0"
    with pytest.raises(TraeumerError, match="unknown device 'meta'"):
        check_device("meta")


# ----------------------------------------------------------------------------- 4. smaller

def test_mapper_of_another_w_dim_is_refused_naming_it(job, tmp_path):
    from traeumer_blender.model_cache import get_generator

    styles, _ = job
    mapper = mapping.zero_label_mapper(styles.embeddings.shape[1], np.zeros(8), np.ones(8), seed=1)
    mapper.save(tmp_path / "tiny.mapper.npz")
    loaded = mapping.Mapper.load(tmp_path / "tiny.mapper.npz")
    generator = get_generator("default", device="cpu")
    name = f"mapper {tmp_path / 'tiny.mapper.npz'}"
    with pytest.raises(TraeumerError, match=r"tiny\.mapper\.npz makes 8-d ws but the generator's are 512-d"):
        loaded.check_sizes(generator.w_dim, name=name)
    with pytest.raises(TraeumerError, match="reads .*-d embeddings but the encoder's are 7-d"):
        loaded.check_sizes(None, 7, name=name)
    loaded.check_sizes(8, styles.embeddings.shape[1], name=name)


def test_styles_that_do_not_fit_the_generator_are_named(job, tmp_path):
    """check_styles_fit: what render_frames should call once the generator is loaded."""
    from traeumer_blender.model_cache import get_generator
    from traeumer_blender.styles_file import check_styles_fit

    styles, path = job
    generator = get_generator("default", device="cpu")
    check_styles_fit(styles, generator, name=str(path))
    narrow = styles_variant(job, tmp_path, group_ws=styles.group_ws[:, :, :256], raw_ws=styles.raw_ws[:, :256],
                            layer_group=styles.layer_group[:10], layer_resolutions=styles.layer_resolutions[:10])
    with pytest.raises(TraeumerError, match=r"variant/styles.npz does not fit this generator: it has 256-d ws "
                                            r"\(the generator's are 512-d\) and 10 w layers"):
        check_styles_fit(load_styles(narrow), generator, name=str(narrow))


def test_generate_refuses_a_mapper_of_another_w_dim_before_writing_styles(job, tmp_path):
    styles, _ = job
    mapper = mapping.zero_label_mapper(styles.embeddings.shape[1], np.zeros(8), np.ones(8), seed=1)
    mapper.save(tmp_path / "tiny.mapper.npz")
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", OCEAN, "--out", out, "--duration", "1", "--styles-only",
                              "--mapper", tmp_path / "tiny.mapper.npz", *FAST), "tiny.mapper.npz", "8-d", out_dir=out)
    assert not (out / "styles.npz").exists()


def test_fifos_are_refused_without_being_opened(job, tmp_path):
    fifo = tmp_path / "song.wav"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    assert_user_error(run_cli("generate", "--audio", fifo, "--out", out, *FAST, timeout=60),
                      "not a regular file", out_dir=out)
    assert_user_error(run_cli("tags", "--audio", fifo, timeout=60), "not a regular file")
    for flag in ("--styles",):
        assert_user_error(run_cli("render", flag, fifo, timeout=60), "not a regular file")
    assert_user_error(run_cli("train-mapper", "--pairs", fifo, "--out", tmp_path / "m.npz", timeout=60),
                      "not a regular file")
    assert_user_error(run_cli("train-mapper", "--labels", fifo, "--out", tmp_path / "m.npz", timeout=60),
                      "not a regular file")
    with pytest.raises(TraeumerError, match="not a regular file"):
        mapping.Mapper.load(fifo)


# ----------------------------------------------------------------------------- the worker

def test_worker_reports_these_as_user_errors(job, tmp_path):
    """The same checks run in Blender's worker: an error event of kind user, and it keeps serving."""
    from traeumer_blender import protocol, worker

    styles, _ = job
    channel = worker.Channel(io.StringIO())

    def train(set_path, out):
        request = protocol.build_request(protocol.LABEL_TRAIN, set_path=str(set_path), model="default",
                                         device="cpu", out=str(out), steps=20, seed=0)
        return worker.run_job(worker.Job(channel, 1, protocol.LABEL_TRAIN, request["params"]))

    label_set_for(styles).save(tmp_path / "good.labels.npz")
    with np.load(tmp_path / "good.labels.npz") as data:
        ws = data["ws"].copy()
    ws[1, 3] = math.inf
    rewrite_npz(tmp_path / "good.labels.npz", tmp_path / "inf.labels.npz", ws=ws)
    (tmp_path / "folder").mkdir()
    for set_path, out, words in ((tmp_path / "inf.labels.npz", tmp_path / "m.npz", "not finite"),
                                 (tmp_path / "good.labels.npz", tmp_path / "folder", "is a folder")):
        outcome, fields = train(set_path, out)
        assert outcome == protocol.ERROR and fields["kind"] == protocol.ERROR_USER, fields
        assert words in fields["message"]
    outcome, fields = train(tmp_path / "good.labels.npz", tmp_path / "m.npz")
    assert outcome == protocol.DONE, fields
    assert mapping.Mapper.load(tmp_path / "m.npz").w_dim == styles.group_ws.shape[2]
