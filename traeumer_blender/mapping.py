# SPDX-License-Identifier: GPL-3.0-or-later
"""Music embedding -> StyleGAN w, the paper's Eq. 1:  w = 2·σ·tanh(W·x + b) + μ.

μ, σ are the per-dimension mean and standard deviation of the generator's w (``G.w_stats()``),
so every output stays inside the range the generator was trained on.
``x`` is the standardised embedding. A *trained* mapper standardises with the mean and spread of
its training embeddings, ``(e - m) / s`` (an affine change of variables: Eq. 1 keeps its form).

The *zero-label* mapper (no training pairs) uses a seeded random orthogonal W, b = 0, and the
statistics of the song being rendered itself (all frames of the excerpt), in two steps:

1. centre on the song's mean embedding and divide by the song's RMS deviation (one number for all
   dimensions, so the embedding's geometry is kept; a floor of 15 % of the mean embedding's RMS
   keeps a song that hardly changes, e.g. silence, from being blown up to full range);
2. "contrast": multiply by ``C^((p-1)/2)`` where C is the covariance of step 1's output after a
   moving average over ``SLOW_SECONDS`` (normalised to its mean eigenvalue) and p =
   ``ZERO_LABEL_CONTRAST``, then restore the RMS of step 1. The mapping stays per frame (the
   moving average only shapes the statistics): the directions in which the music changes slowly
   (a new section, another piece) are amplified, the many small frame-to-frame fluctuations
   recede, so different music gets clearly different styles (bench/quality.py).

So every song uses the whole style range around μ, a song's mean always maps to μ (absolute
looks carry no meaning without labels), and the same excerpt with the same seed always gives
the same styles. A different excerpt of the same song has different statistics.

Mapper files are ``.npz`` (loaded with ``allow_pickle=False``) and record the ``source_id`` of the
encoder and of the generator they were made for; using one with another pair is refused.
"""

import io
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import TraeumerError
from .npz_files import (
    INTEGERS,
    MIB,
    NUMBERS,
    Member,
    check_regular_file,
    open_npz,
    read_npy,
    scalar_member,
    text_member,
)

FORMAT = "traeumer-mapper-1"
KIND_TRAINED = "trained"
KIND_ZERO_LABEL = "zero-label"
# windows of a labelled clip start every this many seconds (the paper's code: 2 s)
CLIP_HOP_SECONDS = 2.0
# Standardising a dimension that barely moves would blow noise up to full scale: dimensions whose
# spread is below this fraction of the typical (median) spread are scaled as if they had it.
_MIN_RELATIVE_SCALE = 0.05
# what a mapper file may hold (npz_files reads nothing else, and checks sizes before reading)
MAX_W_DIM = 4096
MAX_EMBEDDING_DIM = 8192
_VECTOR_BYTES = 8 * max(MAX_W_DIM, MAX_EMBEDDING_DIM)
MAPPER_MEMBERS = {
    "weight": Member(NUMBERS, 2, 8 * MAX_W_DIM * MAX_EMBEDDING_DIM),
    "bias": Member(NUMBERS, 1, _VECTOR_BYTES), "w_mean": Member(NUMBERS, 1, _VECTOR_BYTES),
    "w_std": Member(NUMBERS, 1, _VECTOR_BYTES), "input_mean": Member(NUMBERS, 1, _VECTOR_BYTES),
    "input_scale": Member(NUMBERS, 1, _VECTOR_BYTES),
    "kind": text_member(64), "encoder_source_id": text_member(1024),
    "generator_source_id": text_member(1024), "seed": scalar_member(INTEGERS),
    "contrast": scalar_member(), "info_json": text_member(MIB // 4),
}


def standardisation(embeddings: np.ndarray):
    """(mean, scale) per dimension for ``(e - mean) / scale``; never divides by ~0."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    mean = embeddings.mean(axis=0)
    spread = embeddings.std(axis=0)
    typical = float(np.median(spread)) if spread.size else 0.0
    floor = max(typical * _MIN_RELATIVE_SCALE, 1e-6)
    return mean, np.maximum(spread, floor)


ZERO_LABEL_CONTRAST = 3.0
SLOW_SECONDS = 10.0
# step 1's floor, as a fraction of the RMS of the song's mean embedding
_SONG_RMS_FLOOR = 0.15


def song_standardise(embeddings: np.ndarray, contrast: float = ZERO_LABEL_CONTRAST,
                     fps=None) -> np.ndarray:
    """Zero-label input standardisation with the song's own statistics (see the module docstring).

    ``fps``: frame rate of the rows, for the slow covariance; None uses the rows as they are.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    mean = embeddings.mean(axis=0)
    centred = embeddings - mean
    rms = float(np.sqrt(np.mean(centred ** 2))) if centred.size else 0.0
    floor = _SONG_RMS_FLOOR * float(np.sqrt(np.mean(mean ** 2))) + 1e-12
    x = centred / max(rms, floor)
    if contrast == 1.0 or len(x) < 2 or rms <= 1e-9 * (1.0 + floor):
        return x
    if fps is not None:
        from .smoothing import smooth_sequence

        slow = smooth_sequence(x, SLOW_SECONDS, fps, "box")
        covariance = slow.T @ slow / len(slow)
    else:
        covariance = x.T @ x / len(x)
    eigenvalues, vectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    scale = eigenvalues.mean()
    if scale <= 0:
        return x
    power = (eigenvalues / scale) ** ((contrast - 1.0) / 2.0)
    y = (x @ vectors) * power @ vectors.T
    y_rms = float(np.sqrt(np.mean(y ** 2)))
    return y * (float(np.sqrt(np.mean(x ** 2))) / y_rms) if y_rms > 0 else y


def random_orthogonal(rows: int, cols: int, seed: int) -> np.ndarray:
    """A seeded [rows, cols] matrix with orthonormal rows (rows <= cols) or columns."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x7261554D]))
    gaussian = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diag(r))  # unique Q: makes the result a function of the seed only
    return q if rows >= cols else q.T


@dataclass
class Mapper:
    """Eq. 1 with its input standardisation. Arrays are float64 numpy."""

    weight: np.ndarray            # [w_dim, embedding_dim]
    bias: np.ndarray              # [w_dim]
    w_mean: np.ndarray            # μ [w_dim]
    w_std: np.ndarray             # σ [w_dim]
    input_mean: np.ndarray = None   # [embedding_dim]; None: statistics of the song itself
    input_scale: np.ndarray = None
    kind: str = KIND_TRAINED
    encoder_source_id: str = ""
    generator_source_id: str = ""
    seed: int = 0
    contrast: float = ZERO_LABEL_CONTRAST  # zero-label input only (see song_standardise)
    info: dict = field(default_factory=dict)

    @property
    def embedding_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def w_dim(self) -> int:
        return int(self.weight.shape[0])

    def standardise(self, embeddings: np.ndarray, fps=None) -> np.ndarray:
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim:
            raise TraeumerError(
                f"mapper expects {self.embedding_dim}-d embeddings, got shape {embeddings.shape}"
            )
        if self.input_mean is None:
            return song_standardise(embeddings, self.contrast, fps)
        return (embeddings - self.input_mean) / self.input_scale

    def map(self, embeddings: np.ndarray, fps=None) -> np.ndarray:
        """[N, embedding_dim] -> one w per row [N, w_dim] (float32).

        ``fps``: the rows are frames at this rate (zero-label statistics use it; see above).
        """
        x = self.standardise(embeddings, fps)
        w = 2.0 * self.w_std * np.tanh(x @ self.weight.T + self.bias) + self.w_mean
        return w.astype(np.float32)

    def check_compatible(self, encoder_source_id: str, generator_source_id: str, name="mapper"):
        """Refuse a mapper made for another encoder or generator (one clear line); None skips."""
        problems = []
        if (encoder_source_id is not None and self.encoder_source_id
                and self.encoder_source_id != encoder_source_id):
            problems.append(f"encoder {self.encoder_source_id} (this job: {encoder_source_id})")
        if (generator_source_id is not None and self.generator_source_id
                and self.generator_source_id != generator_source_id):
            problems.append(f"generator {self.generator_source_id} (this job: {generator_source_id})")
        if problems:
            raise TraeumerError(
                f"{name} was made for {' and '.join(problems)}; train a mapper for this pair or "
                "leave the mapper out"
            )

    def save(self, path) -> None:
        """Write the mapper as .npz (atomically)."""
        from .png import write_atomic  # the shared atomic writer

        arrays = {
            "format": np.array(FORMAT),
            "kind": np.array(self.kind),
            "weight": self.weight.astype(np.float64),
            "bias": self.bias.astype(np.float64),
            "w_mean": self.w_mean.astype(np.float64),
            "w_std": self.w_std.astype(np.float64),
            "input_mean": np.zeros(0) if self.input_mean is None else self.input_mean,
            "input_scale": np.zeros(0) if self.input_scale is None else self.input_scale,
            "encoder_source_id": np.array(self.encoder_source_id),
            "generator_source_id": np.array(self.generator_source_id),
            "seed": np.array(int(self.seed)),
            "contrast": np.array(float(self.contrast)),
            "info_json": np.array(json.dumps(self.info, sort_keys=True)),
        }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        try:
            write_atomic(path, buffer.getvalue())
        except OSError as error:
            raise TraeumerError(f"cannot write mapper file {os.fspath(path)}: {error.strerror}") from None

    def check_sizes(self, w_dim=None, embedding_dim=None, name="mapper"):
        """Refuse a mapper whose w or embedding size is not the generator's / encoder's (one
        clear line naming it); None skips. Call it when the mapper is loaded, before any work."""
        problems = []
        if w_dim is not None and self.w_dim != int(w_dim):
            problems.append(f"makes {self.w_dim}-d ws but the generator's are {int(w_dim)}-d")
        if embedding_dim is not None and self.embedding_dim != int(embedding_dim):
            problems.append(f"reads {self.embedding_dim}-d embeddings but the encoder's are "
                            f"{int(embedding_dim)}-d")
        if problems:
            raise TraeumerError(f"{name} {' and '.join(problems)}; train a mapper for this model "
                                "or leave the mapper out")

    @classmethod
    def load(cls, path) -> "Mapper":
        path = os.fspath(path)
        with open_npz(path, FORMAT, "mapper file", MAPPER_MEMBERS) as data:
            weight = data.shape("weight")
            if not (1 <= weight[0] <= MAX_W_DIM and 1 <= weight[1] <= MAX_EMBEDDING_DIM):
                raise TraeumerError(f"{path} is a damaged mapper file: weight has shape {weight}")
            input_mean = data.finite("input_mean")
            mapper = cls(
                weight=data.finite("weight"),
                bias=data.finite("bias"),
                w_mean=data.finite("w_mean"),
                w_std=data.finite("w_std"),
                input_mean=input_mean if input_mean.size else None,
                input_scale=data.finite("input_scale") if input_mean.size else None,
                kind=data.text("kind"),
                encoder_source_id=data.text("encoder_source_id"),
                generator_source_id=data.text("generator_source_id"),
                seed=data.integer("seed"),
                contrast=data.number("contrast"),
                info=json.loads(data.text("info_json")),
            )
        w_dim, embedding_dim = mapper.weight.shape
        shapes_ok = (mapper.bias.shape == (w_dim,) and mapper.w_mean.shape == (w_dim,)
                     and mapper.w_std.shape == (w_dim,)
                     and (mapper.input_mean is None or
                          (mapper.input_mean.shape == (embedding_dim,)
                           and mapper.input_scale.shape == (embedding_dim,))))
        if not shapes_ok:
            raise TraeumerError(f"{path} is a damaged mapper file (inconsistent shapes)")
        if np.any(mapper.w_std < 0) or (mapper.input_scale is not None and np.any(mapper.input_scale <= 0)):
            raise TraeumerError(f"{path} is a damaged mapper file (a negative or zero scale)")
        if mapper.kind not in (KIND_TRAINED, KIND_ZERO_LABEL):
            raise TraeumerError(f"{path} is a damaged mapper file (kind {mapper.kind!r})")
        return mapper


def zero_label_mapper(embedding_dim: int, w_mean, w_std, seed: int = 0,
                      encoder_source_id: str = "", generator_source_id: str = "") -> Mapper:
    """Eq. 1 without training: seeded orthogonal W, b = 0, song statistics for the input.

    The input has unit RMS per dimension, so with orthonormal rows each pre-activation has about
    unit variance: tanh stays in its responsive range and w spans roughly μ ± 2σ.
    """
    w_mean = np.asarray(w_mean, dtype=np.float64)
    w_std = np.asarray(w_std, dtype=np.float64)
    weight = random_orthogonal(w_mean.shape[0], int(embedding_dim), seed)
    if weight.shape[0] > weight.shape[1]:
        # more outputs than inputs: orthonormal columns have unit norm only in total; rescale rows
        weight = weight * np.sqrt(weight.shape[0] / weight.shape[1])
    return Mapper(weight=weight, bias=np.zeros(w_mean.shape[0]), w_mean=w_mean, w_std=w_std,
                  kind=KIND_ZERO_LABEL, encoder_source_id=encoder_source_id,
                  generator_source_id=generator_source_id, seed=int(seed))


def clip_window_centres(clip_seconds: float, window_seconds: float, hop_seconds: float = CLIP_HOP_SECONDS):
    """Centres of the training windows of one clip: starts 0, hop, 2·hop, ... that fit inside.

    A 10 s clip with 3.69 s windows gives 4 windows (starts 0, 2, 4, 6), as in the paper's code.
    A clip shorter than one window gives one window centred on the clip.
    """
    starts = []
    start = 0.0
    while start + window_seconds <= clip_seconds + 1e-9:
        starts.append(start)
        start += hop_seconds
    if not starts:
        return np.array([clip_seconds / 2.0])
    return np.asarray(starts, dtype=np.float64) + window_seconds / 2.0


def train_mapper(embeddings, targets, w_mean, w_std, steps: int = 30000, lr: float = 1e-4,
                 weight_decay: float = 1e-6, seed: int = 0, encoder_source_id: str = "",
                 generator_source_id: str = "", progress=None, cancel=None):
    """Fit Eq. 1 to (embedding, w) pairs with full-batch Adam on the L1 loss.

    Returns (mapper, losses) where losses[k] is the mean absolute error before step k and the
    last entry the error after training.
    """
    import torch

    embeddings = np.asarray(embeddings, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if embeddings.ndim != 2 or targets.ndim != 2 or len(embeddings) != len(targets):
        raise TraeumerError("training needs as many target ws as embeddings")
    if len(embeddings) == 0:
        raise TraeumerError("training needs at least one labelled clip")
    if int(steps) < 1:
        raise TraeumerError("training needs at least one step")
    input_mean, input_scale = standardisation(embeddings)
    w_mean = np.asarray(w_mean, dtype=np.float64)
    w_std = np.asarray(w_std, dtype=np.float64)
    if targets.shape[1] != w_mean.shape[0]:
        raise TraeumerError(f"target ws have {targets.shape[1]} dimensions, the generator {w_mean.shape[0]}")

    generator = torch.Generator().manual_seed(int(seed))
    x = torch.from_numpy((embeddings - input_mean) / input_scale).float()
    y = torch.from_numpy(targets).float()
    mu = torch.from_numpy(w_mean).float()
    sigma = torch.from_numpy(w_std).float()
    bound = 1.0 / np.sqrt(x.shape[1])  # torch.nn.Linear's default initialisation range
    weight = ((torch.rand(y.shape[1], x.shape[1], generator=generator) * 2 - 1) * bound).requires_grad_()
    bias = ((torch.rand(y.shape[1], generator=generator) * 2 - 1) * bound).requires_grad_()
    optimiser = torch.optim.Adam([weight, bias], lr=lr, weight_decay=weight_decay)
    losses = []
    started = time.monotonic()
    for step in range(int(steps)):
        optimiser.zero_grad()
        prediction = 2 * sigma * torch.tanh(x @ weight.T + bias) + mu
        loss = (prediction - y).abs().mean()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 200 == 0 or step + 1 == steps:
            if cancel is not None and _is_cancelled(cancel):
                from .progress import Cancelled
                raise Cancelled("training cancelled")
            if progress is not None:
                elapsed = time.monotonic() - started
                eta = elapsed / (step + 1) * (steps - step - 1)
                progress(_event("train", step + 1, int(steps), eta))
    with torch.no_grad():
        prediction = 2 * sigma * torch.tanh(x @ weight.T + bias) + mu
        losses.append(float((prediction - y).abs().mean()))
    mapper = Mapper(weight=weight.detach().double().numpy(), bias=bias.detach().double().numpy(),
                    w_mean=w_mean, w_std=w_std, input_mean=input_mean, input_scale=input_scale,
                    kind=KIND_TRAINED, encoder_source_id=encoder_source_id,
                    generator_source_id=generator_source_id, seed=int(seed),
                    info={"steps": int(steps), "lr": lr, "weight_decay": weight_decay,
                          "pairs": int(len(embeddings)), "final_l1": losses[-1]})
    return mapper, losses


def _is_cancelled(cancel) -> bool:
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def _event(stage, done, total, eta):
    from .progress import Progress
    return Progress(stage, done, total, eta)


# ----------------------------------------------------------------------------- labelled clips

def target_w_for_seed(generator, seed: int, truncation: float = 1.0) -> np.ndarray:
    """The w of the image the generator makes from z = seeded standard normal (layer 0)."""
    import torch

    z_dim = int(getattr(generator, "z_dim", 0) or generator.w_dim)
    z = torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(seed)))
    with torch.no_grad():
        ws = generator.mapping(z.to(generator.device))
        if float(truncation) != 1.0:
            ws = generator.truncate(ws, float(truncation))
    ws = ws.detach().cpu().numpy() if hasattr(ws, "detach") else np.asarray(ws)
    return np.asarray(ws, dtype=np.float64)[0, 0]


_MAX_SEED = 2 ** 63 - 1
# a w file holds one w, or one per layer ([n_latent, w_dim]) of which the first is used
_W_FILE = Member(NUMBERS, None, 64 * MIB)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_pair(pair, where):
    """Refuse a field of the wrong type or range, naming it (``where``: "pair 3 in FILE")."""
    if not isinstance(pair, dict) or "audio" not in pair:
        raise TraeumerError(f"{where} has no \"audio\"")
    if not isinstance(pair["audio"], str) or not pair["audio"]:
        raise TraeumerError(f"{where}: \"audio\" must be the path of a music file, not {pair['audio']!r}")
    label_keys = [key for key in ("seed", "w", "w_file") if key in pair]
    if len(label_keys) != 1:
        raise TraeumerError(f"{where} needs exactly one of seed, w, w_file")
    start = pair.get("start", 0.0)
    if not _is_number(start) or start < 0:
        raise TraeumerError(f"{where}: \"start\" must be a number of seconds >= 0, not {start!r}")
    duration = pair.get("duration")
    if duration is not None and (not _is_number(duration) or duration <= 0):
        raise TraeumerError(f"{where}: \"duration\" must be a positive number of seconds, not {duration!r}")
    truncation = pair.get("truncation", 1.0)
    if not _is_number(truncation) or not 0.0 <= truncation <= 2.0:
        raise TraeumerError(f"{where}: \"truncation\" must be a number from 0 to 2, not {truncation!r}")
    if "seed" in pair:
        seed = pair["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
            raise TraeumerError(f"{where}: \"seed\" must be a whole number from 0 to 2^63-1, not {seed!r}")
    elif "w" in pair:
        w = pair["w"]
        if not isinstance(w, list) or not w or not all(_is_number(v) for v in w):
            raise TraeumerError(f"{where}: \"w\" must be a list of finite numbers")
    elif not isinstance(pair["w_file"], str) or not pair["w_file"]:
        raise TraeumerError(f"{where}: \"w_file\" must be the path of a .npy file, not {pair['w_file']!r}")


def read_pairs_file(path):
    """Labelled clips from JSON: {"pairs": [{"audio", "start", "duration", one of "seed" / "w" /
    "w_file", optional "truncation"}]}; relative paths are relative to the JSON file. Every
    field is checked here, so a bad one is reported before any model is loaded."""
    path = check_regular_file(path, "pairs file")
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise TraeumerError(f"pairs file {path} is not readable JSON ({type(error).__name__})") from None
    pairs = document.get("pairs") if isinstance(document, dict) else document
    if not isinstance(pairs, list) or not pairs:
        raise TraeumerError(f"pairs file {path} has no list of pairs")
    folder = os.path.dirname(os.path.abspath(path))
    clips = []
    for number, pair in enumerate(pairs, 1):
        _check_pair(pair, f"pair {number} in {path}")
        clip = dict(pair)
        clip["audio"] = os.path.join(folder, pair["audio"])
        if "w_file" in pair:
            clip["w_file"] = os.path.join(folder, pair["w_file"])
        clips.append(clip)
    return clips


def check_output_file(path, what="mapper file") -> str:
    """Refuse, before any work, a file path that cannot be written: a folder, a missing folder,
    a parent that is a file, a folder without write permission. Returns the path."""
    path = os.fspath(path)
    if not path:
        raise TraeumerError(f"no {what} given")
    if os.path.isdir(path):
        raise TraeumerError(f"{what} {path} is a folder; give a file name (e.g. {os.path.join(path, 'mapper.npz')})")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise TraeumerError(f"{what} {path} exists and is not a regular file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        ancestor = folder
        while not os.path.lexists(ancestor) and os.path.dirname(ancestor) != ancestor:
            ancestor = os.path.dirname(ancestor)
        if os.path.lexists(ancestor) and not os.path.isdir(ancestor):
            raise TraeumerError(f"cannot write {what} {path}: {ancestor} is a file, not a folder")
        raise TraeumerError(f"cannot write {what} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TraeumerError(f"cannot write {what} {path}: folder {folder} is not writable")
    return path


def _target_w(clip, generator):
    """The labelled w of a clip [w_dim]: from its seed, its "w" list or its .npy "w_file"."""
    if "seed" in clip:
        return target_w_for_seed(generator, clip["seed"], clip.get("truncation", 1.0))
    if "w" in clip:
        target = np.asarray(clip["w"], dtype=np.float64)
    else:
        target = np.asarray(read_npy(clip["w_file"], "w file", _W_FILE), dtype=np.float64)
        if target.size == 0 or target.size % generator.w_dim:
            raise TraeumerError(f"w file {clip['w_file']} holds an array of shape {target.shape}; it needs "
                                f"{generator.w_dim} finite numbers (or [layers, {generator.w_dim}])")
        target = target.reshape(-1, generator.w_dim)[0]
        if not np.all(np.isfinite(target)):
            raise TraeumerError(f"w file {clip['w_file']} holds values that are not finite numbers "
                                "(NaN or infinity)")
    if target.shape != (generator.w_dim,):
        raise TraeumerError(f"target w of {clip['audio']} has shape {target.shape}, "
                            f"the generator needs ({generator.w_dim},)")
    return target


def clip_embeddings(encoder, audio_path, start=0.0, duration=None, hop_seconds=CLIP_HOP_SECONDS):
    """(embeddings [windows, D], actual start, actual duration) of one labelled clip: windows
    every ``hop_seconds`` (paper: 2 s). Labels in Blender and ``train-mapper --pairs`` both use it.

    ``duration`` None: to the end of the file. The clip is clamped to the file: a clip asked to start before 0 or run past the end is
    moved so that it fits (a file shorter than the clip gives the whole file). The windows are
    embedded with the music around the clip as context, as Generate embeds its frames: a clip
    cut out alone would show the encoder a silence-to-music step at its edges, and a mapping
    trained on that would not recognise the clip when Generate plays it within the song.
    """
    from .audio import load_audio, probe_audio

    info = probe_audio(audio_path)
    duration = info.duration - float(start) if duration is None else float(duration)
    duration = min(duration, info.duration)
    start = min(max(0.0, float(start)), max(0.0, info.duration - duration))
    context = float(encoder.window_seconds) / 2.0 + 0.05
    audio_start = max(0.0, start - context)
    audio_end = min(info.duration, start + duration + context)
    audio = load_audio(audio_path, sample_rate=encoder.sample_rate, start=audio_start,
                       duration=audio_end - audio_start)
    loaded = len(audio) / float(encoder.sample_rate)
    seconds = min(duration, loaded - (start - audio_start))
    if seconds <= 0:
        raise TraeumerError(f"clip of {audio_path} from {start:g} s is empty")
    centres = clip_window_centres(seconds, float(encoder.window_seconds), hop_seconds)
    embeddings = np.asarray(encoder.embed_frames(audio, centres + (start - audio_start)), dtype=np.float32)
    return embeddings, start, seconds


def train_from_pairs_file(pairs_path, out_path, model="default", encoder="default", steps=30000,
                          seed=0, device="auto", progress=None, cancel=None):
    """Embed every labelled clip, fit Eq. 1, write the mapper. Returns a summary dict.

    The pairs, their target ws and the output path are checked before any clip is embedded."""
    from .model_cache import get_encoder, get_generator

    check_output_file(out_path)
    clips = read_pairs_file(pairs_path)
    generator = get_generator(model, device=device)
    targets = [_target_w(clip, generator) for clip in clips]
    music_encoder = get_encoder(encoder, device="cpu" if device == "auto" else device)
    embeddings, repeated = [], []
    for clip, target in zip(clips, targets):
        windows, _, _ = clip_embeddings(music_encoder, clip["audio"], clip.get("start", 0.0), clip.get("duration"))
        embeddings.append(windows)
        repeated.append(np.repeat(target[None], len(windows), axis=0))
    mu, sigma = generator.w_stats()
    mapper, losses = train_mapper(np.concatenate(embeddings), np.concatenate(repeated), mu, sigma,
                                  steps=steps, seed=seed, encoder_source_id=music_encoder.source_id,
                                  generator_source_id=generator.source_id, progress=progress,
                                  cancel=cancel)
    check_output_file(out_path)
    mapper.save(out_path)
    return {"pairs": int(sum(len(e) for e in embeddings)), "clips": len(clips),
            "l1_before": losses[0], "l1_after": losses[-1]}
