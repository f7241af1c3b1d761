# SPDX-License-Identifier: GPL-3.0-or-later
"""The public generator object and ``load_generator``.

    G = load_generator("model.pkl")          # or "default": built in, no file needed
    ws = G.mapping(z)                         # [N, n_latent, w_dim]
    ws = G.truncate(ws, 0.7)                  # toward w_avg
    img = G.synthesis(ws)                     # [N, 3, R, R] float32 on the CPU, in [-1, 1]
    prev = G.synthesis(ws, resolution=256)    # preview from the skip branch, top layers skipped

Conditional models: the label is a vector of ``G.c_dim`` values (``label=`` at load time sets the
default; ``G.mapping(z, c)`` overrides it per call). An int is a one-hot class index. Without a
label the models get zeros. The WikiArt model's notebook sets an artist, genre and style entry
to a scale (2.0 by default), e.g. ``label={12: 2.0, 130: 2.0, 145: 2.0}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .. import paths
from ..errors import TraeumerError
from .network import GeneratorConfig, MappingNetwork, SynthesisNetwork

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
W_STATS_SAMPLES = 10_000
W_STATS_SEED = 20_201_128
NOISE_SEED = 1_234_567
LOW_PRECISION_RESOLUTIONS = 4   # like NVIDIA: the 4 highest resolutions run in fp16/bf16


NO_CAMERA_MESSAGE = ("this is a StyleGAN2 generator: it has no camera (moving the picture needs a "
                     "StyleGAN3 model); use the still camera")


def checked_camera(camera, count) -> Optional[torch.Tensor]:
    """A synthesis call's camera as a float64 [N, 3] tensor (None stays None); one clear line for
    a wrong shape or a value that is not a finite number."""
    if camera is None:
        return None
    cam = torch.as_tensor(np.asarray(camera, dtype=np.float64) if not isinstance(camera, torch.Tensor)
                          else camera.detach().cpu().double())
    if cam.ndim != 2 or cam.shape[1] != 3 or (count is not None and cam.shape[0] != count):
        raise TraeumerError(f"camera must be [{count if count is not None else 'N'}, 3] (x, y, rotation), "
                            f"got {list(cam.shape)}")
    if not bool(torch.isfinite(cam).all()):
        raise TraeumerError("a camera value is not a finite number")
    return cam


class _Net(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork(cfg)


def check_frame_width(width, height: int):
    """None for a square frame, else the width as an int (an even number of pixels, at most 8
    times the height either way: ``aspect.MAX_ASPECT``)."""
    from ..aspect import MAX_ASPECT
    if width is None or int(width) == int(height):
        return None
    width = int(width)
    if width % 2 or not height / MAX_ASPECT <= width <= height * MAX_ASPECT:
        raise TraeumerError(f"frame width {width} px does not fit a frame {height} px high "
                            f"(even, between 1/{MAX_ASPECT:g} and {MAX_ASPECT:g} times the height)")
    return width


def _as_tensor(x, device, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x, order="C", copy=True))
    elif not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    return x.to(device=device, dtype=dtype)


class Generator(nn.Module):
    """A StyleGAN2 generator with the engine's stable API (see the module docstring)."""

    def __init__(self, cfg: GeneratorConfig, source_id: str = "unsaved"):
        super().__init__()
        self.cfg = cfg
        self.net = _Net(cfg)
        self.source_id = source_id
        self.info: dict = {}
        self.precision = "fp32"
        self.modconv = "auto"
        self._label = None
        self._w_stats = None

    # --- shape facts -------------------------------------------------------------------------
    bf16_check_samples = 2      # images pick_precision compares (bf16 against fp32)
    resolution = property(lambda self: self.cfg.resolution)
    n_latent = property(lambda self: self.cfg.n_latent)
    w_dim = property(lambda self: self.cfg.w_dim)
    z_dim = property(lambda self: self.cfg.z_dim)
    c_dim = property(lambda self: self.cfg.c_dim)

    @property
    def device(self) -> torch.device:
        return self.net.synthesis.const.device

    @property
    def layer_resolutions(self):
        """For each w layer i, the resolution of the block it styles: 4, 4, 8, 8, ..., R, R.

        w0 drives b4.conv1; w(2k-1) drives the ToRGB of block 2^(k+1) and conv0 of block 2^(k+2);
        w(2k) drives conv1 of block 2^(k+2). Counting each odd w with the block whose ToRGB it
        drives gives 2^(2 + i//2), the grouping StyleGAN's coarse/middle/fine styles use.
        """
        return [2 ** (2 + i // 2) for i in range(self.n_latent)]

    @property
    def preview_resolutions(self):
        return list(self.cfg.resolutions)

    @property
    def draft_resolutions(self):
        """Sizes of draft frames: the skip branch's images below the full resolution."""
        return [r for r in self.cfg.resolutions if 16 <= r < self.resolution]

    @property
    def draft_precision(self) -> str:
        """What draft frames run in: the device's fast low precision where it has one (bf16 on
        CPUs with native bf16, fp16 on CUDA), else fp32. Drafts are small and short-lived, so
        every layer runs in it (full frames keep ``precision``)."""
        if self.device.type == "cuda":
            return "fp16"
        if self.device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"

    @contextlib.contextmanager
    def drafting(self):
        """``with G.drafting():`` every layer in ``draft_precision``; the precision is restored after."""
        old = self.precision
        low = self.draft_precision
        if low == "fp32" and old == "fp32":
            yield low
            return
        self.configure(self.device, low, low_resolutions=len(self.cfg.resolutions))
        try:
            yield low
        finally:
            self.configure(self.device, old)

    # --- labels ------------------------------------------------------------------------------
    def _label_vector(self, label) -> Optional[torch.Tensor]:
        if self.c_dim == 0:
            if label is not None and not (isinstance(label, (list, tuple, dict)) and len(label) == 0):
                raise TraeumerError(f"{self.source_id}: this generator takes no label")
            return None
        v = np.zeros(self.c_dim, dtype=np.float32)
        if label is None:
            pass
        elif isinstance(label, (int, np.integer)):
            if not 0 <= int(label) < self.c_dim:
                raise TraeumerError(f"label index {label} out of range 0..{self.c_dim - 1}")
            v[int(label)] = 1.0
        elif isinstance(label, dict):
            for k, val in label.items():
                if not 0 <= int(k) < self.c_dim:
                    raise TraeumerError(f"label index {k} out of range 0..{self.c_dim - 1}")
                v[int(k)] = float(val)
        else:
            arr = np.asarray(label, dtype=np.float32).reshape(-1)
            if arr.shape[0] != self.c_dim:
                raise TraeumerError(f"label has {arr.shape[0]} values, the generator wants {self.c_dim}")
            v = arr
        return torch.from_numpy(v.copy())

    def set_label(self, label) -> None:
        """Default label for ``mapping`` (None = zeros)."""
        self._label = self._label_vector(label)
        self._w_stats = None

    @property
    def label(self) -> Optional[np.ndarray]:
        return None if self._label is None else self._label.numpy().copy()

    # --- the two halves -------------------------------------------------------------------------
    @torch.no_grad()
    def mapping(self, z, c=None) -> torch.Tensor:
        """z [N, z_dim] (torch or numpy) -> ws [N, n_latent, w_dim] float32 on the CPU."""
        z = _as_tensor(z, self.device)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise TraeumerError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        cv = None
        if self.c_dim:
            if c is None:
                cv = self._label if self._label is not None else torch.zeros(self.c_dim)
                cv = cv[None].expand(z.shape[0], -1)
            else:
                ct = _as_tensor(c, "cpu") if not isinstance(c, (dict, int)) else self._label_vector(c)
                if ct.numel() == self.c_dim:
                    cv = ct.reshape(1, self.c_dim).expand(z.shape[0], -1)
                elif ct.ndim == 2 and tuple(ct.shape) == (z.shape[0], self.c_dim):
                    cv = ct
                else:
                    raise TraeumerError(
                        f"label must be [{self.c_dim}] or [N, {self.c_dim}] values, got {list(ct.shape)}")
            cv = cv.to(self.device, torch.float32)
        w = self.net.mapping(z.float(), cv)
        return w[:, None, :].expand(-1, self.n_latent, -1).float().cpu().contiguous()

    def _resolve_mode(self, n: int) -> str:
        if self.modconv != "auto":
            return self.modconv
        if self.device.type == "cpu":
            return "split"
        return "auto-gpu"

    # StyleGAN2 has no input transform: its picture cannot be moved (StyleGAN3Generator can)
    has_camera = False

    @torch.no_grad()
    def synthesis(self, ws, resolution: Optional[int] = None, width: Optional[int] = None,
                  camera=None) -> torch.Tensor:
        """ws [N, n_latent, w_dim] -> images [N, 3, r, r] float32 CPU tensor clamped to [-1, 1].

        resolution < G.resolution (a power of two >= 4) returns the skip-branch image of that
        block: a preview that never computes the layers above it. width: frames ``width`` px
        wide (and r high) from a widened canvas (``network.Canvas``); None or r: square.
        camera: None or all zeros (a StyleGAN2 generator has no camera; anything else is refused).
        """
        cam = checked_camera(camera, None)
        if cam is not None and bool(torch.any(cam != 0)):
            raise TraeumerError(NO_CAMERA_MESSAGE)
        ws = _as_tensor(ws, self.device)
        if ws.ndim == 2:
            ws = ws[:, None, :].expand(-1, self.n_latent, -1)
        if ws.ndim != 3 or ws.shape[1] != self.n_latent or ws.shape[2] != self.w_dim:
            raise TraeumerError(f"ws must be [N, {self.n_latent}, {self.w_dim}], got {list(ws.shape)}")
        if resolution is None:
            resolution = self.resolution
        resolution = int(resolution)
        if resolution not in self.cfg.resolutions:
            raise TraeumerError(
                f"preview resolution {resolution} is not one of {self.cfg.resolutions}")
        width = check_frame_width(width, resolution)
        img = self.net.synthesis(ws, resolution, self._resolve_mode(ws.shape[0]), width=width)
        return img.float().clamp_(-1.0, 1.0).cpu()

    def forward(self, z, c=None, psi: float = 1.0, resolution: Optional[int] = None):
        ws = self.mapping(z, c)
        if psi != 1.0:
            ws = self.truncate(ws, psi)
        return self.synthesis(ws, resolution)

    def truncate(self, ws, psi: float):
        """w_avg + psi * (ws - w_avg); keeps numpy/torch type of the input."""
        avg = self.net.mapping.w_avg.detach().float().cpu()
        if isinstance(ws, np.ndarray):
            a = avg.numpy().astype(ws.dtype)
            return a + psi * (ws - a)
        ws_t = torch.as_tensor(ws)
        a = avg.to(ws_t.device, ws_t.dtype)
        return a + psi * (ws_t - a)

    # --- statistics ----------------------------------------------------------------------------
    def _stats_key(self) -> str:
        h = hashlib.sha256(self.source_id.encode())
        if self._label is not None:
            h.update(self._label.numpy().astype(np.float32).tobytes())
        h.update(f"n={W_STATS_SAMPLES};seed={W_STATS_SEED};v1".encode())
        return h.hexdigest()[:32]

    @torch.no_grad()
    def _sample_ws(self, n: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        out = []
        for start in range(0, n, 2000):
            z = torch.randn(min(2000, n - start), self.z_dim, generator=gen)
            out.append(self.mapping(z)[:, 0].double())
        return torch.cat(out)

    def w_stats(self) -> Tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) per w dimension over 10,000 seeded samples; cached per file content+label."""
        if self._w_stats is not None:
            return self._w_stats[0].copy(), self._w_stats[1].copy()
        cache = None
        if self.source_id != "unsaved":
            cache = paths.cache_dir("wstats") / f"{self._stats_key()}.npz"
            if cache.is_file():
                try:
                    with np.load(cache) as data:
                        mu, sigma = data["mu"], data["sigma"]
                    if mu.shape == (self.w_dim,) and sigma.shape == (self.w_dim,):
                        self._w_stats = (mu.astype(np.float32), sigma.astype(np.float32))
                        return self.w_stats()
                except (OSError, KeyError, ValueError):
                    pass
        w = self._sample_ws(W_STATS_SAMPLES, W_STATS_SEED)
        mu = w.mean(0).float().numpy()
        sigma = w.std(0).float().numpy()
        self._w_stats = (mu, sigma)
        if cache is not None:
            tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, mu=mu, sigma=sigma)
            os.replace(tmp, cache)
        return self.w_stats()

    # --- precision, device, saving ---------------------------------------------------------------
    def configure(self, device: torch.device, precision: str, low_resolutions: int = LOW_PRECISION_RESOLUTIONS) -> None:
        """Device and precision; fp16/bf16 for the ``low_resolutions`` highest resolutions."""
        self.to(device)
        low = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        res = self.cfg.resolutions
        low_res = set(res[-low_resolutions:]) if low is not None else set()
        for block in self.net.synthesis.blocks():
            dt = low if block.resolution in low_res else torch.float32
            block.dtype = dt
            for layer in (block.conv0, block.conv1, block.torgb):
                if layer is None:
                    continue
                layer.dtype = dt
                layer.clamp = (self.cfg.conv_clamp if (dt == torch.float16 and self.cfg.conv_clamp) else None)
        self.net.synthesis.channels_last = device.type == "cpu"
        self.net.synthesis.cpu_workers = torch.get_num_threads() if device.type == "cpu" else 1
        self.precision = precision

    def save(self, path) -> None:
        """Write this generator (weights, constant noise, w_avg, config) in the package's own format."""
        from .formats import OWN_FORMAT
        state = {k: v.detach().float().cpu().clone() for k, v in self.net.state_dict().items()}
        torch.save({"format": OWN_FORMAT, "version": 1, "config": self.cfg.to_dict(),
                    "state_dict": state}, os.fspath(path))

    def load_canonical(self, tensors: Dict[str, torch.Tensor], where: str) -> None:
        """Fill every parameter and buffer from canonical tensors (strict)."""
        tensors = dict(tensors)
        own = self.net.state_dict()
        gen = torch.Generator().manual_seed(NOISE_SEED)
        for name in sorted(own):
            if name.endswith(".noise_const") and name not in tensors:
                tensors[name] = torch.randn(own[name].shape, generator=gen)   # file had none: seeded
            if name.endswith(".noise_strength") and name not in tensors and not self.cfg.use_noise:
                tensors[name] = torch.zeros([])
        need_w_avg = "mapping.w_avg" not in tensors
        if need_w_avg:
            tensors["mapping.w_avg"] = torch.zeros(self.w_dim)
        missing = sorted(set(own) - set(tensors))
        extra = sorted(set(tensors) - set(own))
        if missing or extra:
            raise TraeumerError(f"{where}: cannot fill the generator (missing {missing[:4]}, unexpected {extra[:4]})")
        for name, t in tensors.items():
            if tuple(t.shape) != tuple(own[name].shape):
                raise TraeumerError(f"{where}: shape mismatch for {name}: {list(t.shape)} vs {list(own[name].shape)}")
            if not torch.isfinite(t).all():
                raise TraeumerError(f"{where}: tensor {name} holds NaN or infinite values (corrupt file)")
        self.net.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
        if need_w_avg:  # e.g. rosinality training snapshots: the mean of w over seeded samples
            mu, _ = self.w_stats()
            self.net.mapping.w_avg.copy_(torch.from_numpy(mu))
            self.info["w_avg"] = "computed"


# ----------------------------------------------------------------------------------------------
# devices and precision

def pick_device(device="auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    from ..devices import check_device

    device = check_device(device)   # a device this machine lacks: one clear line (worker too)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TraeumerError(f"unknown device {device!r} (auto, cpu, cuda, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TraeumerError("device 'cuda' requested but no CUDA GPU is available")
    return dev


def cpu_has_native_bf16() -> bool:
    """True where the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX)."""
    try:
        if hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported") and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except Exception:  # noqa: BLE001 - probing only
        pass
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.double() - b.double()).square().mean().item()
    return float("inf") if mse == 0 else 10.0 * math.log10(4.0 / mse)


def bf16_psnr(G: Generator, n: int = 2, seed: int = 7, resolution: Optional[int] = None) -> float:
    """PSNR of bf16 against fp32 images for n seeded random ws (the lower of the n)."""
    gen = torch.Generator().manual_seed(seed)
    ws = G.mapping(torch.randn(n, G.z_dim, generator=gen))
    old = G.precision
    G.configure(G.device, "fp32")
    ref = G.synthesis(ws, resolution)
    G.configure(G.device, "bf16")
    low = G.synthesis(ws, resolution)
    G.configure(G.device, old)
    return min(psnr(ref[i], low[i]) for i in range(n))


# Raised when the bf16 maths change, so that remembered checks are made again (2: StyleGAN3's
# activation gain folded into its down filters before rounding, radial components by precision).
PRECISION_CHECK_VERSION = 2


def _remembered_bf16_psnr(G: Generator, resolution: int) -> float:
    """``bf16_psnr`` of a model file, remembered in the cache per file, label, torch version and
    CPU kind and version of the low-precision maths (``PRECISION_CHECK_VERSION``): the check
    renders whole images (about 5 s for a 1024 px StyleGAN3-T model), so only a model's first
    load pays for it."""
    if G.source_id == "unsaved":
        return bf16_psnr(G, n=G.bf16_check_samples, resolution=resolution)
    key = hashlib.sha256(G._stats_key().encode())
    key.update(f"bf16|{torch.__version__}|{torch.backends.cpu.get_cpu_capability()}|{resolution}|"
               f"{G.bf16_check_samples}|{type(G).__name__}|v{PRECISION_CHECK_VERSION}".encode())
    path = paths.cache_dir("precision") / f"{key.hexdigest()[:32]}.json"
    try:
        with open(path, encoding="utf-8") as stream:
            value = json.load(stream).get("bf16_psnr_db")
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            G.info["bf16_psnr_remembered"] = True
            return float(value)
    except (OSError, ValueError, AttributeError):
        pass
    value = bf16_psnr(G, n=G.bf16_check_samples, resolution=resolution)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as stream:
            json.dump({"bf16_psnr_db": value if math.isfinite(value) else 1e9}, stream)
        os.replace(tmp, path)
    except OSError:
        pass
    return value


def pick_precision(G: Generator, device: torch.device, precision: str) -> str:
    precision = str(precision or "auto").lower()
    if precision not in PRECISIONS:
        raise TraeumerError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    if device.type == "cpu":
        if precision == "fp16":
            raise TraeumerError("precision fp16 needs a CUDA GPU; use fp32 or bf16 on the CPU")
        if precision == "auto":
            if cpu_has_native_bf16():
                G.configure(device, "fp32")
                p = _remembered_bf16_psnr(G, min(G.resolution, 256))
                G.info["bf16_psnr_db"] = p
                return "bf16" if p >= 40.0 else "fp32"
            return "fp32"
        return precision
    if device.type == "cuda":
        return "fp16" if precision == "auto" else precision
    return "fp32" if precision == "auto" else precision


# ----------------------------------------------------------------------------------------------
# entry points

def _read_checkpoint_file(path):
    """read_checkpoint with its failures as one user-facing line naming the file."""
    from .formats import CheckpointError, read_checkpoint
    from .untrusted import path_problem
    problem = path_problem(path)
    if problem:           # a folder, a FIFO (opening it would wait forever), a device file
        raise TraeumerError(f"{path}: {problem}")
    try:
        return read_checkpoint(path)
    except CheckpointError as exc:
        raise TraeumerError(f"{path}: {exc}") from None


def _build(source) -> Generator:
    if isinstance(source, str) and source == "default":
        from .default import build_default_generator
        return build_default_generator()
    path = os.fspath(source)
    cfg, tensors, info = _read_checkpoint_file(path)
    if info.get("architecture", "").startswith("stylegan3"):
        from .stylegan3 import StyleGAN3Generator
        G = StyleGAN3Generator(cfg, source_id=paths.file_digest(path))
    else:
        G = Generator(cfg, source_id=paths.file_digest(path))
    G.info.update(info)
    G.load_canonical(tensors, path)
    return G


def load_generator(source, device="auto", precision="auto", label=None) -> Generator:
    """Load a StyleGAN2 or StyleGAN3 generator from a file (any supported kind) or "default".

    device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "mps" or a torch.device.
    precision: "auto" (fp16 top layers on CUDA; on CPU bf16 only where the CPU does bf16 natively
    and it keeps PSNR >= 40 dB against fp32, else fp32), "fp32", "bf16", "fp16" (CUDA only).
    label: default class label for conditional models (vector, one-hot index, or {index: value}).
    """
    dev = pick_device(device)
    G = _build(source)
    G.eval().requires_grad_(False)
    G.set_label(label)
    G.configure(dev, "fp32")
    G.configure(dev, pick_precision(G, dev, precision))
    return G


def shape_facts(cfg) -> dict:
    """What ``inspect-model`` says of any generator's config (StyleGAN2 and StyleGAN3 alike)."""
    return {"resolution": cfg.resolution, "n_latent": cfg.n_latent, "w_dim": cfg.w_dim, "z_dim": cfg.z_dim,
            "c_dim": cfg.c_dim, "label_mode": cfg.label_mode, "mapping_layers": len(cfg.mapping_dims) - 1}


def inspect_checkpoint(source) -> dict:
    """Describe a checkpoint without building the generator's runtime state."""
    if isinstance(source, str) and source == "default":
        from .default import default_config
        cfg, info = default_config(), {"format": "default"}
        note = "the built-in default generator: no file, untrained (seeded random weights shaped for abstract pictures)"
    else:
        cfg, _, info = _read_checkpoint_file(os.fspath(source))
        note = None
        if info.get("architecture", "").startswith("stylegan3"):
            from .stylegan3 import describe
            return {"format": info.get("format"), **describe(cfg)}
    ch = cfg.channels
    runs, start = [], None
    res = cfg.resolutions
    for i, r in enumerate(res):
        if start is None:
            start = r
        if i == len(res) - 1 or ch[res[i + 1]] != ch[r]:
            runs.append(f"{start}-{r}:{ch[r]}" if start != r else f"{r}:{ch[r]}")
            start = None
    described = {
        "format": info.get("format"),
        **shape_facts(cfg),
        "channels": dict(ch),
        "channels_summary": ", ".join(runs),
    }
    if note:
        described["note"] = note
    return described
