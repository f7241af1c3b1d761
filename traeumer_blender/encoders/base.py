# SPDX-License-Identifier: GPL-3.0-or-later
"""What every music encoder does with a song: per-frame embeddings and per-window tags.

An encoder is a frozen tagging CNN split in two: ``conv_features`` (spectrogram → last conv
layer, one feature vector per time position) and ``tag_logits`` (the whole network on one
native-length window).  The embedding of a window is the last conv layer max-pooled over time.

``embed_frames`` runs the conv stack over the whole song once, in chunks whose overlap covers
the receptive field, and max-pools each frame's window out of that one feature map.  Two things
make a window cut out of the song differ from the song-wide map, and both are modelled:

- Its own zero padding.  The last layers' padding matters most (the network answers the step
  from padding to music like an onset, and that position often wins the max-pool), so a
  network may return, besides each position with its real neighbours, the positions as a
  window's first and last ones see them (``WindowFeatures``).  MTT_vgg does so for its last
  two conv layers at the cost of one conv each: mean cosine ≥ 0.997 to exact windows.
- Its pooling grid.  Networks whose feature grid is coarse run the song pass at several
  sub-stride offsets ("phases"); a window on a computed phase is exact (but for the padding
  of the earlier layers), and one between two phases gets the mean of their embeddings.
  MTT_vgg (stride 16 frames) runs 8 phases: even frames exact, odd frames interpolated (mean
  cosine ~0.984 for those).  All 16 would cost twice as much, the price of its first pooling.

Exact windows of the musicnn networks are patches of the song's own spectrogram (frames on the
song's 256-sample hop grid, the nearest patch to the window's centre), as musicnn's extractor
cuts them: moving a window by half a hop (8 ms) alone changes MTT_vgg's embedding to a mean
cosine of ~0.97 on techno, so a sample-accurate STFT per window would only add that jitter.
Agreement on the real music in ../shared/audio: BENCHMARKS.md "Audio".
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
import scipy.ndimage
import torch

from ..devices import check_device
from ..errors import TraeumerError
from .frontend import MelFrontEnd, zero_padded_segment

MTAT_TAGS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
]

ProgressCallback = Callable[[int, int], None]

# Bump when embed_frames gives other numbers for the same audio, so that styles.npz files
# analysed by an older version are not taken for current ones (pipeline fingerprints).
# 1: song pass snapped to 4 phases; 2: window padding of convs 4-5 modelled, 8 phases.
EMBEDDING_METHOD = 2


class TaggingNetwork(torch.nn.Module):
    """Interface of the torch part of an encoder; spectrograms are [batch, frames, mels]."""

    def conv_features(self, spectrogram: torch.Tensor) -> torch.Tensor:  # -> [batch, dim, positions]
        raise NotImplementedError

    def tag_logits(self, spectrogram: torch.Tensor) -> torch.Tensor:  # -> [batch, n_tags]
        raise NotImplementedError

    def conv_features_shifted(self, spectrogram: torch.Tensor, shifts: list[int]) -> list[torch.Tensor]:
        """conv_features of the input started ``shift`` frames later, for each shift.

        Networks with pooling override this to share the layers a shift does not change.
        """
        return [self.conv_features(spectrogram[:, shift:]) for shift in shifts]

    def window_features_shifted(self, spectrogram: torch.Tensor, shifts: list[int]) -> list["WindowFeatures"]:
        """Like conv_features_shifted, with each position also as a window's first and last.

        Networks that know how their last layer sees a window's edges override this; the
        default treats edge positions like any other.
        """
        return [WindowFeatures(f, (f,), f) for f in self.conv_features_shifted(spectrogram, shifts)]


class WindowFeatures(NamedTuple):
    """One feature map [batch, dim, positions], also as seen from a window cut out on its own.

    ``inner[p]``: position p with its real neighbours.  ``head[i][p]``: position p + i of a
    window whose first position is p, for the first ``len(head)`` positions, where the window's
    own zero padding changes them.  ``last[p]``: position p as a window's last.
    """

    inner: torch.Tensor
    head: tuple
    last: torch.Tensor


class Encoder:
    """A frozen music tagger turned into a per-frame embedder.

    Geometry of the feature map (in spectrogram frames): position ``p`` of ``conv_features``
    applied to frames ``[a, a + n)`` is centred on frame ``a + feature_offset + feature_stride·p``
    for any ``a`` (shift-equivariance holds for shifts that are multiples of the stride).  A
    native window yields ``positions_per_window`` positions.
    """

    sample_rate = 16000
    tag_names: list[str] = MTAT_TAGS

    def __init__(self, *, name: str, source_id: str, network: TaggingNetwork, frontend: MelFrontEnd,
                 window_frames: int, window_samples: int, first_frame_offset: int,
                 feature_stride: int, feature_offset: float, positions_per_window: int,
                 context_frames: int, phases: int, embedding_dim: int, device: str = "cpu",
                 reflect_window_edges: bool = False):
        self.name = name
        self.source_id = source_id
        self.tag_names = list(MTAT_TAGS)                       # a copy callers may keep
        if not isinstance(device, torch.device):
            device = check_device(device)
            device = "cpu" if device == "auto" else device
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.frontend = frontend
        self.window_frames = window_frames
        self.window_samples = window_samples
        self.window_seconds = window_samples / self.sample_rate
        # sample offset of a window's first frame centre from the window's centre sample
        self.first_frame_offset = first_frame_offset
        self.feature_stride = feature_stride
        self.feature_offset = feature_offset
        self.positions_per_window = positions_per_window
        if context_frames % feature_stride or feature_stride % phases:
            raise ValueError("context must be a multiple of the stride, the stride of the phases")
        self.context_frames = context_frames
        self.phases = phases
        self.embedding_dim = embedding_dim
        self.reflect_window_edges = reflect_window_edges
        self.snap_to_frames = not reflect_window_edges

    def __repr__(self):
        return f"<Encoder {self.source_id} window={self.window_seconds:.3f}s dim={self.embedding_dim}>"

    # ----- exact windows ---------------------------------------------------------------------

    def window_spectrogram(self, audio: np.ndarray, centre_sample: int) -> torch.Tensor:
        """[window_frames, mels]: the network's native input for the window centred there."""
        first_centre = centre_sample + self.first_frame_offset
        if self.snap_to_frames:
            # the patch of the song's own spectrogram nearest to the window (as musicnn's
            # extractor cuts patches); a sub-hop STFT offset alone changes these networks'
            # embeddings as much as the song-wide approximation does
            hop = self.frontend.hop
            first_centre = hop * int(math.floor(first_centre / hop + 0.5))
        if self.reflect_window_edges:
            # the window's audio alone, reflect-padded at its ends, as the network was trained
            start = centre_sample + self.first_frame_offset
            segment = zero_padded_segment(audio, start, start + self.window_samples)
            return self.frontend.frames_reflect(segment)[: self.window_frames]
        return self.frontend.frames(audio, first_centre, self.window_frames)

    def _run_windows(self, audio: np.ndarray, centres: Sequence[int], what: str,
                     batch: int = 16) -> np.ndarray:
        outputs = []
        with torch.inference_mode():
            for i in range(0, len(centres), batch):
                spectrograms = torch.stack([self.window_spectrogram(audio, int(c))
                                            for c in centres[i:i + batch]]).to(self.device)
                if what == "embedding":
                    features = self.network.conv_features(spectrograms)      # [b, dim, positions]
                    outputs.append(features.amax(dim=2).float().cpu().numpy())
                else:
                    outputs.append(torch.sigmoid(self.network.tag_logits(spectrograms)).float().cpu().numpy())
        return np.concatenate(outputs, axis=0).astype(np.float32)

    def embed_windows_exact(self, audio: np.ndarray, frame_times) -> np.ndarray:
        """[N, D] reference embeddings: one network pass per window (slow)."""
        audio = _check_audio(audio)
        times = _check_times(frame_times)
        if len(times) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        centres = np.round(times * self.sample_rate).astype(np.int64)
        return self._run_windows(audio, centres, "embedding")

    def tag_windows(self, audio: np.ndarray) -> np.ndarray:
        """[n_windows, 50] tag probabilities of non-overlapping native windows from time 0.

        The last window is zero-padded; a song shorter than a window gives one window.
        """
        audio = _check_audio(audio)
        n_windows = max(1, math.ceil(len(audio) / self.window_samples))
        # window i starts at sample i·window_samples (its first frame is centred there)
        centres = [i * self.window_samples - self.first_frame_offset for i in range(n_windows)]
        return self._run_windows(audio, centres, "tags")

    # ----- whole-song pass -------------------------------------------------------------------

    def _feature_chunk(self, audio: np.ndarray, origin_frame: int, first_position: int,
                       n_positions: int) -> list[np.ndarray]:
        """[inner, *head, last] (see WindowFeatures), each [n_positions · phases, dim]: merged
        features for per-phase positions [first_position, first_position + n_positions).

        Merged row ``phases·p + q`` is position ``p`` of phase ``q`` (input shifted by q·step frames).
        """
        hop = self.frontend.hop
        step = self.feature_stride // self.phases
        first_frame = origin_frame + self.feature_stride * first_position - self.context_frames
        n_frames = self.feature_stride * n_positions + 2 * self.context_frames + self.feature_stride
        spectrogram = self.frontend.frames(audio, first_frame * hop, n_frames)
        skip = self.context_frames // self.feature_stride
        with torch.inference_mode():
            per_phase = self.network.window_features_shifted(
                spectrogram[None].to(self.device), [q * step for q in range(self.phases)])

            def merge(*phase_maps: torch.Tensor) -> np.ndarray:       # one map per phase, [1, dim, positions]
                trimmed = []
                for features in phase_maps:
                    features = features[0, :, skip:skip + n_positions]
                    if features.shape[1] != n_positions:
                        raise RuntimeError("conv stack returned fewer positions than its geometry promises")
                    trimmed.append(features.T.float().cpu())
                return torch.stack(trimmed, dim=1).reshape(-1, self.embedding_dim).numpy()

            return _each_distinct(merge, *[[window.inner, *window.head, window.last] for window in per_phase])

    def embed_frames(self, audio: np.ndarray, frame_times, progress: ProgressCallback | None = None,
                     chunk_seconds: float = 30.0) -> np.ndarray:
        """[N, D] float32: embedding of the window centred on each frame time (seconds).

        A window whose first frame falls between two computed phases (an odd frame for MTT_vgg)
        gets the mean of its two neighbours' embeddings.
        """
        audio = _check_audio(audio)
        times = _check_times(frame_times)
        n_total = len(times)
        result = np.zeros((n_total, self.embedding_dim), dtype=np.float32)
        if n_total == 0:
            return result
        hop = self.frontend.hop
        step = self.feature_stride // self.phases              # frames between merged positions
        reach = self.phases * (self.positions_per_window - 1)  # merged index span of a window

        order = np.argsort(times, kind="stable")
        # global frame coordinate of each window's first frame
        first_frames = (np.round(times[order] * self.sample_rate) + self.first_frame_offset) / hop
        if self.snap_to_frames:
            first_frames = np.floor(first_frames + 0.5)       # the exact windows' own frames
        # the grid is anchored at frame 0, so a frame's embedding does not depend on which
        # other frames are asked for in the same call
        origin = self.feature_stride * int(math.floor(first_frames.min() / self.feature_stride))
        merged_index = (first_frames - origin) / step
        first_index = np.floor(merged_index).astype(np.int64)
        upper_weight = (merged_index - first_index).astype(np.float32)   # 0 on a computed phase
        last_index = first_index + (upper_weight > 0) + reach             # non-decreasing

        chunk_positions = max(1, int(chunk_seconds * self.sample_rate / hop / self.feature_stride))
        positions_needed = -(-(int(last_index[-1]) + 1) // self.phases)   # per phase
        buffers = None                                         # [inner, *head, last] from buffer_start
        buffer_start = 0                                       # merged index of buffers' row 0
        next_position = 0                                      # next per-phase position to compute
        done = 0
        if progress is not None:
            progress(0, n_total)
        while done < n_total:
            # compute one chunk of every phase and interleave: merged index = phases·p + phase
            count = max(1, min(chunk_positions, positions_needed - next_position))
            chunk = self._feature_chunk(audio, origin, next_position, count)
            buffers = chunk if buffers is None else _each_distinct(lambda old, new: np.concatenate([old, new]), buffers, chunk)
            next_position += count
            available_end = self.phases * next_position
            ready_end = int(np.searchsorted(last_index, available_end, side="left"))
            if ready_end > done:
                pooled = _window_max(buffers, self.phases, self.positions_per_window)
                rows = first_index[done:ready_end] - buffer_start
                weight = upper_weight[done:ready_end, None]
                embeddings = pooled[rows]
                between = weight[:, 0] > 0
                if between.any():
                    embeddings[between] = ((1 - weight[between]) * embeddings[between]
                                           + weight[between] * pooled[rows[between] + 1])
                result[order[done:ready_end]] = embeddings
                done = ready_end
                if progress is not None:
                    progress(done, n_total)
            if done < n_total:
                keep_from = int(first_index[done]) - buffer_start
                keep_from -= keep_from % self.phases           # keep the phase interleaving aligned
                if keep_from >= len(buffers[0]):
                    # nothing buffered is needed any more: skip to the next window's chunk
                    next_position = max(next_position, int(first_index[done]) // self.phases)
                    buffers = None
                    buffer_start = self.phases * next_position
                elif keep_from > 0:
                    buffers = _each_distinct(lambda b: b[keep_from:].copy(), buffers)
                    buffer_start += keep_from
        return result


def _each_distinct(function, *lists: list[np.ndarray]) -> list[np.ndarray]:
    """``[function(*items) for items in zip(*lists)]``, once per distinct tuple of arrays (the
    maps of a network without an edge model are one array listed three times)."""
    results: dict = {}
    out = []
    for items in zip(*lists):
        key = tuple(id(item) for item in items)
        if key not in results:
            results[key] = function(*items)
        out.append(results[key])
    return out


def _window_max(maps: list[np.ndarray], stride: int, count: int) -> np.ndarray:
    """out[i]: max over the window whose positions are rows i, i + stride, … i + stride·(count-1).

    ``maps`` is [inner, *head, last] (see WindowFeatures): the window's first positions come
    from the head maps at row i, its last from ``last``, the others from ``inner``.  Rows
    without a full window are left out (out has ``rows - stride·(count-1)`` rows).
    """
    inner, head, last = maps[0], maps[1:-1], maps[-1]
    n_out = max(0, len(inner) - stride * (count - 1))
    if count == 1:
        return inner[:n_out].copy()
    if all(m is inner for m in maps):                          # a network without an edge model
        return _strided_window_max(inner, stride, count)[:n_out]
    if len(head) > count - 1:
        raise ValueError("more head positions than the window has")
    out = last[stride * (count - 1):stride * (count - 1) + n_out].copy()
    for first in head:
        np.maximum(out, first[:n_out], out=out)
    middle = count - 1 - len(head)                             # positions taken from inner
    if middle > 0 and n_out:
        np.maximum(out, _strided_window_max(inner[stride * len(head):], stride, middle)[:n_out], out=out)
    return out


def _strided_window_max(features: np.ndarray, stride: int, count: int) -> np.ndarray:
    """out[i] = max(features[i], features[i + stride], …, features[i + stride·(count-1)]).

    Rows without a full window hold garbage and must not be used. O(rows·dim) per residue.
    """
    out = np.empty_like(features)
    for residue in range(stride):
        sequence = features[residue::stride]
        if len(sequence) == 0:
            continue
        # centred filter on the sequence padded at its end: filtered[k] = max(padded[k - lead : k - lead + count])
        padded = np.concatenate([sequence, np.full((count,) + sequence.shape[1:], -np.inf, sequence.dtype)])
        filtered = scipy.ndimage.maximum_filter1d(padded, size=count, axis=0, mode="nearest")
        lead = count // 2
        shifted = filtered[lead:lead + len(sequence)]
        out[residue::stride] = shifted
    return out


def _check_audio(audio) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise TraeumerError(f"audio must be mono (1-D), got shape {audio.shape}")
    if audio.dtype != np.float32:
        audio = audio.astype(np.float32)
    return audio


def _check_times(frame_times) -> np.ndarray:
    times = np.asarray(frame_times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise TraeumerError("frame times must be finite numbers of seconds")
    return times
