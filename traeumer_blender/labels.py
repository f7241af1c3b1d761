# SPDX-License-Identifier: GPL-3.0-or-later
"""Label sets: music clips paired by a person with generated images, to train the mapping.

The paper trained its mapping (Eq. 1) from ~100 clips of 10 s, each paired by hand with one
generated image (its w). A *label set* holds such pairs for one generator and one encoder:

* the clip: audio file (absolute path when labelled, its name and content digest), start and
  duration in seconds;
* the clip's encoder windows (one every ``hop_seconds``, as in the paper's code) as embeddings,
  so a set trains without its audio files (sets can be shared);
* the chosen w and how it was made (a seed, or a variation of another w), and a thumbnail.

File format ``traeumer-labels-1``: ONE ``.npz`` file (a zip of ``.npy`` arrays; load with
``allow_pickle=False``, nothing in it is executed)::

    format        str                       "traeumer-labels-1"
    meta_json     str                       JSON: see LabelSet.meta() (ids of generator and
                                            encoder, sizes, audio files, one record per pair)
    embeddings    float32 [windows, D]      every pair's window embeddings, pair after pair
    window_pair   int64   [windows]         index of the pair each window belongs to
    ws            float32 [pairs, w_dim]    the chosen w of each pair
    thumbnails    uint8   [pairs, t, t, 3]  preview image of each chosen w

Import and export are this same file. This module is numpy only at import time: Blender's
side reads and edits sets directly; candidates, thumbnails, embeddings and training import
torch lazily and run in the worker (or the CLI).
"""

import io
import json
import math
import os
import secrets
import time

import numpy as np

from .errors import TraeumerError
from .mapping import (
    CLIP_HOP_SECONDS,
    Mapper,
    check_output_file,
    clip_embeddings,
    clip_window_centres,
    standardisation,
    zero_label_mapper,
)
from .npz_files import GIB, INTEGERS, MIB, NUMBERS, TEXT, Member, open_npz
from .png import encode_png, write_atomic

FORMAT = "traeumer-labels-1"
SUFFIX = ".labels.npz"
CLIP_SECONDS = 10.0
HOP_SECONDS = CLIP_HOP_SECONDS
THUMBNAIL_SIZE = 64
# "Suggest next clip" looks at clips starting every SUGGEST_STEP seconds of each file
SUGGEST_STEP = 5.0
# what a label set file may hold (npz_files reads nothing else, and checks sizes before reading)
LABEL_SET_MEMBERS = {
    "meta_json": Member(TEXT, 0, 256 * MIB), "embeddings": Member(NUMBERS, 2, 2 * GIB),
    "window_pair": Member(INTEGERS, 1, 256 * MIB), "ws": Member(NUMBERS, 2, 512 * MIB),
    "thumbnails": Member(INTEGERS, 4, 2 * GIB),
}


def _new_id() -> str:
    return secrets.token_hex(4)


class LabelSet:
    """Pairs (clip, chosen w) for one generator and encoder; see the module docstring."""

    def __init__(self, generator_source_id, encoder_source_id, w_dim, embedding_dim,
                 window_seconds, generator_source="", encoder_source="", hop_seconds=HOP_SECONDS,
                 thumbnail_size=THUMBNAIL_SIZE, name=""):
        self.name = str(name)
        self.generator_source = str(generator_source)
        self.generator_source_id = str(generator_source_id)
        self.encoder_source = str(encoder_source)
        self.encoder_source_id = str(encoder_source_id)
        self.w_dim = int(w_dim)
        self.embedding_dim = int(embedding_dim)
        self.window_seconds = float(window_seconds)
        self.hop_seconds = float(hop_seconds)
        self.thumbnail_size = int(thumbnail_size)
        self.audio_files = []      # music the user added for labelling and suggestions
        self.pairs = []            # dicts: id, audio, audio_name, audio_digest, start, duration, origin, created
        self.embeddings = []       # per pair: float32 [windows, D]
        self.ws = []               # per pair: float32 [w_dim]
        self.thumbnails = []       # per pair: uint8 [t, t, 3]

    # --- pairs -----------------------------------------------------------------------------
    def __len__(self):
        return len(self.pairs)

    def index_of(self, pair_id) -> int:
        for index, pair in enumerate(self.pairs):
            if pair["id"] == pair_id:
                return index
        raise TraeumerError(f"no pair {pair_id!r} in this label set")

    def add_pair(self, audio, start, duration, embeddings, w, thumbnail=None, origin=None,
                 audio_digest="", pair_id=None) -> str:
        """Store one labelled clip; returns its id."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim == 1:
            embeddings = embeddings[None]
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_dim or len(embeddings) == 0:
            raise TraeumerError(f"a pair needs [windows, {self.embedding_dim}] embeddings, "
                                f"got {embeddings.shape}")
        w = np.asarray(w, dtype=np.float32).reshape(-1)
        if w.shape != (self.w_dim,):
            raise TraeumerError(f"a pair needs a {self.w_dim}-d w, got {w.shape}")
        if not (np.all(np.isfinite(embeddings)) and np.all(np.isfinite(w))):
            raise TraeumerError("a pair's embeddings and w must be finite")
        size = self.thumbnail_size
        if thumbnail is None:
            thumbnail = np.zeros((size, size, 3), dtype=np.uint8)
        thumbnail = _resize_nearest(np.asarray(thumbnail, dtype=np.uint8), size)
        pair_id = pair_id or _new_id()
        if any(pair["id"] == pair_id for pair in self.pairs):
            raise TraeumerError(f"pair {pair_id!r} is already in this label set")
        audio = os.fspath(audio)
        self.pairs.append({
            "id": pair_id, "audio": os.path.abspath(audio) if audio else "",
            "audio_name": os.path.basename(audio), "audio_digest": str(audio_digest),
            "start": float(start), "duration": float(duration),
            "windows": int(len(embeddings)), "origin": dict(origin or {}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        self.embeddings.append(embeddings)
        self.ws.append(w)
        self.thumbnails.append(thumbnail)
        return pair_id

    def delete_pair(self, pair_id) -> None:
        index = self.index_of(pair_id)
        for items in (self.pairs, self.embeddings, self.ws, self.thumbnails):
            del items[index]

    def add_audio_file(self, path) -> bool:
        """Remember a music file for labelling and suggestions; False when already there."""
        path = os.path.abspath(os.fspath(path))
        if path in self.audio_files:
            return False
        self.audio_files.append(path)
        return True

    def remove_audio_file(self, path) -> None:
        path = os.path.abspath(os.fspath(path))
        self.audio_files = [p for p in self.audio_files if p != path]

    def training_arrays(self):
        """(embeddings [windows, D], target ws [windows, w_dim], pair index [windows])."""
        if not self.pairs:
            return (np.zeros((0, self.embedding_dim)), np.zeros((0, self.w_dim)),
                    np.zeros(0, dtype=np.int64))
        x = np.concatenate(self.embeddings).astype(np.float64)
        index = np.concatenate([np.full(len(e), k, dtype=np.int64) for k, e in enumerate(self.embeddings)])
        y = np.stack(self.ws).astype(np.float64)[index]
        return x, y, index

    def labelled_spans(self):
        """(audio path, digest, start, end) of every labelled clip."""
        return [(p["audio"], p["audio_digest"], p["start"], p["start"] + p["duration"]) for p in self.pairs]

    # --- compatibility, merging ---------------------------------------------------------------
    def check_compatible(self, generator_source_id=None, encoder_source_id=None, what="label set"):
        problems = []
        if generator_source_id is not None and generator_source_id != self.generator_source_id:
            problems.append(f"generator {self.generator_source_id} (now: {generator_source_id})")
        if encoder_source_id is not None and encoder_source_id != self.encoder_source_id:
            problems.append(f"encoder {self.encoder_source_id} (now: {encoder_source_id})")
        if problems:
            raise TraeumerError(f"{what} was labelled for {' and '.join(problems)}; "
                                "start a new label set for this model")

    def merge(self, other: "LabelSet") -> int:
        """Add the pairs of another set of the same generator and encoder; returns how many
        were new (pairs already here, by id, are skipped)."""
        self.check_compatible(other.generator_source_id, other.encoder_source_id, what="this label set")
        if other.w_dim != self.w_dim or other.embedding_dim != self.embedding_dim:
            raise TraeumerError("the label sets have different sizes")
        known = {pair["id"] for pair in self.pairs}
        added = 0
        for k, pair in enumerate(other.pairs):
            if pair["id"] in known:
                continue
            self.pairs.append(dict(pair))
            self.embeddings.append(other.embeddings[k])
            self.ws.append(other.ws[k])
            self.thumbnails.append(_resize_nearest(other.thumbnails[k], self.thumbnail_size))
            added += 1
        for path in other.audio_files:
            self.add_audio_file(path)
        return added

    # --- file ---------------------------------------------------------------------------------
    def meta(self) -> dict:
        return {
            "name": self.name, "generator_source": self.generator_source,
            "generator_source_id": self.generator_source_id, "encoder_source": self.encoder_source,
            "encoder_source_id": self.encoder_source_id, "w_dim": self.w_dim,
            "embedding_dim": self.embedding_dim, "window_seconds": self.window_seconds,
            "hop_seconds": self.hop_seconds, "thumbnail_size": self.thumbnail_size,
            "audio_files": list(self.audio_files), "pairs": [dict(p) for p in self.pairs],
        }

    def to_bytes(self) -> bytes:
        size = self.thumbnail_size
        n = len(self.pairs)
        arrays = {
            "format": np.array(FORMAT),
            "meta_json": np.array(json.dumps(self.meta(), sort_keys=True)),
            "embeddings": (np.concatenate(self.embeddings).astype(np.float32) if n
                           else np.zeros((0, self.embedding_dim), dtype=np.float32)),
            "window_pair": (np.concatenate([np.full(len(e), k, dtype=np.int64)
                                            for k, e in enumerate(self.embeddings)]) if n
                            else np.zeros(0, dtype=np.int64)),
            "ws": np.stack(self.ws).astype(np.float32) if n else np.zeros((0, self.w_dim), np.float32),
            "thumbnails": (np.stack(self.thumbnails).astype(np.uint8) if n
                           else np.zeros((0, size, size, 3), dtype=np.uint8)),
        }
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    def save(self, path) -> None:
        """Write the set (atomically: a reader never sees half a file)."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise TraeumerError(f"cannot create folder {folder}: {error.strerror}") from None
        try:
            write_atomic(path, self.to_bytes())
        except OSError as error:
            raise TraeumerError(f"cannot write label set {path}: {error.strerror}") from None

    @classmethod
    def load(cls, path) -> "LabelSet":
        path = os.fspath(path)
        with open_npz(path, FORMAT, "label set", LABEL_SET_MEMBERS) as data:
            meta = json.loads(data.text("meta_json"))
            embeddings = data.finite("embeddings", np.float32)
            window_pair = np.asarray(data["window_pair"], dtype=np.int64)
            ws = data.finite("ws", np.float32)
            thumbnails = data["thumbnails"]
            if thumbnails.dtype != np.uint8:
                raise TraeumerError(f"{path} is a damaged label set: thumbnails are {thumbnails.dtype}, not uint8")
            labels = cls(meta["generator_source_id"], meta["encoder_source_id"], meta["w_dim"],
                         meta["embedding_dim"], meta["window_seconds"],
                         generator_source=meta.get("generator_source", ""),
                         encoder_source=meta.get("encoder_source", ""),
                         hop_seconds=meta.get("hop_seconds", HOP_SECONDS),
                         thumbnail_size=meta.get("thumbnail_size", THUMBNAIL_SIZE),
                         name=meta.get("name", ""))
            if not all(math.isfinite(v) and v > 0 for v in (labels.window_seconds, labels.hop_seconds)):
                raise TraeumerError(f"{path} is a damaged label set: window and hop must be positive seconds")
            labels.audio_files = [str(p) for p in meta.get("audio_files", [])]
            pairs = meta["pairs"]
            if not isinstance(pairs, list) or not all(isinstance(p, dict) and "id" in p for p in pairs):
                raise ValueError("pairs")
        n = len(pairs)
        size = labels.thumbnail_size
        consistent = (ws.shape == (n, labels.w_dim) and thumbnails.shape == (n, size, size, 3)
                      and embeddings.ndim == 2 and embeddings.shape[1] == labels.embedding_dim
                      and window_pair.shape == (len(embeddings),)
                      and (n == 0 or (window_pair.min(initial=0) >= 0 and window_pair.max(initial=0) < n)))
        if consistent:
            for k, pair in enumerate(pairs):
                rows = embeddings[window_pair == k]
                if len(rows) == 0:
                    consistent = False
                    break
                labels.pairs.append(dict(pair))
                labels.embeddings.append(rows)
                labels.ws.append(ws[k])
                labels.thumbnails.append(thumbnails[k])
        if not consistent:
            raise TraeumerError(f"{path} is a damaged label set (inconsistent shapes)")
        return labels


def _resize_nearest(image, size):
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise TraeumerError(f"a thumbnail must be [H, W, 3] uint8, got {image.shape}")
    if image.shape[:2] == (size, size):
        return image
    rows = (np.arange(size) * image.shape[0] // size).clip(0, image.shape[0] - 1)
    cols = (np.arange(size) * image.shape[1] // size).clip(0, image.shape[1] - 1)
    return image[rows][:, cols]


def default_set_path(folder, name) -> str:
    """``<folder>/<name>.labels.npz`` with a file-system safe name."""
    safe = "".join(c if c.isalnum() or c in "-_ ." else "_" for c in str(name)).strip() or "labels"
    return os.path.join(os.fspath(folder), safe + SUFFIX)


def write_thumbnails(labels: LabelSet, folder) -> list:
    """PNG files of the pairs' thumbnails (for Blender's previews); returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for pair, thumbnail in zip(labels.pairs, labels.thumbnails):
        path = os.path.join(os.fspath(folder), f"pair_{pair['id']}.png")
        if not os.path.isfile(path):
            write_atomic(path, encode_png(np.ascontiguousarray(thumbnail)))
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- candidates (torch)

def _seeded_z(generator, seed):
    import torch

    return torch.randn(1, int(generator.z_dim), generator=torch.Generator().manual_seed(int(seed)))


def candidate_ws(generator, count, seed, base_w=None, strength=0.35):
    """``count`` candidate ws [count, w_dim] and a record of how each was made.

    Random: w = mapping(z) with z drawn from seed, seed+1, ... (so a pair stores just its seed;
    ``mapping.target_w_for_seed`` gives the same w). "More like this": w moves from ``base_w``
    toward such random ws by ``strength`` (0: the same image, 1: unrelated), which stays on
    the line between two ws the generator makes, so the picture stays natural.
    """
    import torch

    count = int(count)
    if not 1 <= count <= 64:
        raise TraeumerError("ask for 1 to 64 candidates")
    z = torch.cat([_seeded_z(generator, int(seed) + k) for k in range(count)])
    with torch.no_grad():
        random_ws = np.asarray(generator.mapping(z)[:, 0].numpy(), dtype=np.float64)
    if base_w is None:
        origins = [{"kind": "seed", "seed": int(seed) + k} for k in range(count)]
        return random_ws.astype(np.float32), origins
    base = np.asarray(base_w, dtype=np.float64).reshape(-1)
    if base.shape != (random_ws.shape[1],):
        raise TraeumerError(f"the base w must have {random_ws.shape[1]} values, got {base.shape}")
    strength = float(strength)
    if not 0.0 <= strength <= 1.0 or not math.isfinite(strength):
        raise TraeumerError("variation strength must be between 0 and 1")
    ws = base[None] + strength * (random_ws - base[None])
    origins = [{"kind": "variation", "seed": int(seed) + k, "strength": strength} for k in range(count)]
    return ws.astype(np.float32), origins


def preview_resolution(generator, resolution) -> int:
    """The largest preview resolution of the generator that is at most ``resolution``."""
    available = sorted(int(r) for r in generator.preview_resolutions)
    fitting = [r for r in available if r <= int(resolution)]
    return fitting[-1] if fitting else available[0]


def render_thumbnails(generator, ws, resolution=THUMBNAIL_SIZE) -> np.ndarray:
    """uint8 [N, r, r, 3] previews of ws [N, w_dim] (r: a preview resolution of the generator
    at most ``resolution``)."""
    import torch

    ws = np.asarray(ws, dtype=np.float32)
    resolution = preview_resolution(generator, resolution)
    images = []
    for first in range(0, len(ws), 4):
        with torch.no_grad():
            batch = generator.synthesis(torch.from_numpy(ws[first:first + 4]), resolution=resolution)
        images.append(((batch.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
                      .permute(0, 2, 3, 1).numpy())
    return np.concatenate(images) if images else np.zeros((0, resolution, resolution, 3), np.uint8)


# ----------------------------------------------------------------------------- embedding clips

def new_label_set(generator, encoder, generator_source="", encoder_source="", name="",
                  thumbnail_size=THUMBNAIL_SIZE) -> LabelSet:
    return LabelSet(generator.source_id, encoder.source_id, generator.w_dim, encoder.embedding_dim,
                    encoder.window_seconds, generator_source=generator_source,
                    encoder_source=encoder_source, name=name, thumbnail_size=thumbnail_size)


def label_clip(labels: LabelSet, encoder, generator, audio_path, start, duration, w, origin=None,
               thumbnail=None) -> str:
    """Embed a clip, render the chosen w's thumbnail when none is given, and add the pair."""
    from .paths import file_digest

    labels.check_compatible(generator.source_id, encoder.source_id)
    embeddings, start, duration = clip_embeddings(encoder, audio_path, start, duration, labels.hop_seconds)
    if thumbnail is None:
        thumbnail = render_thumbnails(generator, np.asarray(w, dtype=np.float32)[None],
                                      labels.thumbnail_size)[0]
    return labels.add_pair(audio_path, start, duration, embeddings, w, thumbnail, origin,
                           audio_digest=file_digest(audio_path))


# ----------------------------------------------------------------------------- suggest next clip

def file_window_embeddings(encoder, audio_path, hop_seconds=HOP_SECONDS, progress=None):
    """(window centres [K], embeddings [K, D]) every ``hop_seconds`` over a whole file; cached
    in the engine's cache by file content and encoder."""
    from .audio import load_audio
    from .paths import cache_dir, file_digest

    digest = file_digest(audio_path)
    key = f"{digest[:32]}_{encoder.source_id.replace(':', '_')}_{hop_seconds:g}.npz"
    cache = cache_dir("label_embeddings") / key
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as data:
                return np.asarray(data["centres"]), np.asarray(data["embeddings"])
        except (OSError, KeyError, ValueError):
            pass
    audio = load_audio(audio_path, sample_rate=encoder.sample_rate)
    seconds = len(audio) / float(encoder.sample_rate)
    centres = clip_window_centres(seconds, float(encoder.window_seconds), hop_seconds)
    embeddings = np.asarray(encoder.embed_frames(audio, centres, progress=progress), dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, centres=centres, embeddings=embeddings)
    write_atomic(cache, buffer.getvalue())
    return centres, embeddings


def farthest_clip(candidate_features, labelled_features):
    """Index of the candidate farthest (Euclidean) from its nearest labelled feature, and every
    candidate's distance. Without labels: the candidate nearest the candidates' mean (the most
    typical music comes first; farther ones follow)."""
    candidates = np.asarray(candidate_features, dtype=np.float64)
    labelled = np.asarray(labelled_features, dtype=np.float64).reshape(-1, candidates.shape[1])
    if len(candidates) == 0:
        raise TraeumerError("no unlabelled clip is left to suggest")
    if len(labelled) == 0:
        distances = np.linalg.norm(candidates - candidates.mean(axis=0), axis=1)
        return int(np.argmin(distances)), distances
    differences = candidates[:, None, :] - labelled[None, :, :]
    distances = np.sqrt((differences ** 2).sum(axis=2)).min(axis=1)
    return int(np.argmax(distances)), distances


def suggest_next_clip(labels: LabelSet, encoder, audio_files, clip_seconds=CLIP_SECONDS,
                      step_seconds=SUGGEST_STEP, progress=None, cancel=None) -> dict:
    """Among clips of ``audio_files`` not overlapping a labelled clip, the one whose embedding
    (mean of its windows, standardised) is farthest from every labelled clip's, so a few labels
    cover the user's music quickly. Files that cannot be decoded are skipped (listed in
    "skipped"). Returns {audio, start, duration, distance, candidates, skipped, ...}."""
    from .audio import probe_audio
    from .paths import file_digest

    labels.check_compatible(None, encoder.source_id)
    files = []
    for path in audio_files:
        path = os.path.abspath(os.fspath(path))
        if path not in files and os.path.isfile(path):
            files.append(path)
    if not files:
        raise TraeumerError("no music to suggest from: add audio files or sound strips")
    hop = labels.hop_seconds
    spans = labels.labelled_spans()
    clips, features, all_windows, skipped = [], [], [], []
    for number, path in enumerate(files):
        if cancel is not None and (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
            from .progress import Cancelled
            raise Cancelled("cancelled")
        if progress is not None:
            progress("embed", number, len(files))
        try:
            length = probe_audio(path).duration
            centres, embeddings = file_window_embeddings(encoder, path, hop)
        except TraeumerError:
            skipped.append(path)   # a file this Python cannot decode: suggest from the others
            continue
        all_windows.append(embeddings)
        digest = file_digest(path)
        taken = [(s, e) for audio, d, s, e in spans if d == digest or audio == path]
        duration = min(float(clip_seconds), length)
        half = float(encoder.window_seconds) / 2.0
        start = 0.0
        while start + duration <= length + 1e-6:
            inside = (centres - half >= start - 1e-6) & (centres + half <= start + duration + 1e-6)
            free = all(start + duration <= s + 1e-6 or start >= e - 1e-6 for s, e in taken)
            if inside.any() and free:
                clips.append((path, start, duration))
                features.append(embeddings[inside])
            start += float(step_seconds)
    if progress is not None:
        progress("embed", len(files), len(files))
    if not all_windows:
        raise TraeumerError(f"none of the music files could be decoded ({len(skipped)} tried)")
    labelled_windows = [e for e in labels.embeddings]
    # the music's own statistics: the space stays the same as labels are added
    mean, scale = standardisation(np.concatenate(all_windows))
    candidate_features = np.stack([((f - mean) / scale).mean(axis=0) for f in features]) if features else np.zeros((0, len(mean)))
    labelled_features = np.stack([((e - mean) / scale).mean(axis=0) for e in labelled_windows]) \
        if labelled_windows else np.zeros((0, len(mean)))
    best, distances = farthest_clip(candidate_features, labelled_features)
    path, start, duration = clips[best]
    return {"audio": path, "start": float(start), "duration": float(duration),
            "distance": float(distances[best]), "candidates": len(clips), "skipped": skipped,
            "distances": [float(d) for d in distances],
            "clips": [[p, float(s), float(d)] for p, s, d in clips]}


# ----------------------------------------------------------------------------- training

def zero_label_l1(labels: LabelSet, w_mean, w_std, seed=0) -> float:
    """L1 of the zero-label mapping (what Generate uses without a mapper, seeded like Generate)
    against the labelled ws, on the labelled windows (standardised by their own statistics)."""
    x, y, _ = labels.training_arrays()
    mapper = zero_label_mapper(x.shape[1], w_mean, w_std, seed=seed)
    return float(np.abs(mapper.map(x).astype(np.float64) - y).mean())


def mapper_l1(labels: LabelSet, mapper: Mapper) -> float:
    """L1 of a mapper against the labelled ws on the labelled windows."""
    x, y, _ = labels.training_arrays()
    return float(np.abs(mapper.map(x).astype(np.float64) - y).mean())


def train_label_set(labels: LabelSet, w_mean, w_std, steps=30000, lr=1e-4, weight_decay=1e-6,
                    seed=0, progress=None, cancel=None):
    """Fit Eq. 1 (L1 loss, full-batch Adam: the paper's setting by default) to every labelled
    window; returns (mapper, report) with the L1 before, after and of the zero-label mapping."""
    from .mapping import train_mapper

    if not labels.pairs:
        raise TraeumerError("the label set has no pairs yet: pick images for a few clips first")
    import torch

    x, y, _ = labels.training_arrays()
    # a few hundred windows make tiny matrix products: one thread is faster than several, and
    # far faster when other processes compete for the cores (threads then wait on each other)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mapper, losses = train_mapper(x, y, w_mean, w_std, steps=steps, lr=lr,
                                      weight_decay=weight_decay, seed=seed,
                                      encoder_source_id=labels.encoder_source_id,
                                      generator_source_id=labels.generator_source_id,
                                      progress=progress, cancel=cancel)
    finally:
        torch.set_num_threads(threads)
    mapper.info.update({"label_set": labels.name, "clips": len(labels.pairs)})
    report = {"pairs": len(labels.pairs), "windows": int(len(x)), "steps": int(steps),
              "l1_before": float(losses[0]), "l1_after": mapper_l1(labels, mapper),
              "l1_zero_label": zero_label_l1(labels, w_mean, w_std, seed)}
    return mapper, report


def train_from_label_file(labels_path, out_path, model="default", steps=30000, lr=1e-4, seed=0,
                          device="auto", progress=None, cancel=None) -> dict:
    """Load a label set, check it belongs to ``model``, train, write the mapper file."""
    from .model_cache import get_generator

    check_output_file(out_path)
    labels = LabelSet.load(labels_path)
    generator = get_generator(model, device=device)
    labels.check_compatible(generator.source_id, None)
    w_mean, w_std = generator.w_stats()
    mapper, report = train_label_set(labels, w_mean, w_std, steps=steps, lr=lr, seed=seed,
                                     progress=progress, cancel=cancel)
    check_output_file(out_path)
    mapper.save(out_path)
    report["out"] = os.path.abspath(os.fspath(out_path))
    return report
