# SPDX-License-Identifier: GPL-3.0-or-later
"""Rendering frames: ws in, PNG files out, in batches, each file written atomically.

On the CPU every generator call has the same number of rows (padded), so a resumed or
re-rendered frame is byte-identical; on a GPU frames are batched for speed and a frame rendered
in another batch may differ in the last bit of a few pixels.
"""

import hashlib
import os

import numpy as np

from . import png
from .errors import TraeumerError
from .model_cache import get_generator
from .output_folder import FolderLock, draft_dir, ensure_writable_folder, frame_path, remove_frames
from .progress import Reporter
from .styles_file import check_styles_fit, load_styles


def default_batch(generator) -> int:
    """Frames per step (between progress events and cancel checks; one generator call on GPU)."""
    return 8 if str(getattr(generator, "device", "cpu")).startswith("cuda") else 4


def _to_uint8_images(images) -> np.ndarray:
    """[N,3,H,W] in [-1,1] (torch) -> [N,H,W,3] uint8."""
    import torch

    with torch.no_grad():
        scaled = ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        return scaled.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def frames_tag(styles_fingerprint: str, resolution: int, precision: str, compression: int,
               width: int = None) -> str:
    """What a frame's pixels depend on besides its index: written into every frame (``png``), so
    a resumed job keeps only frames made with its own settings. Square frames (width None or
    the resolution) keep the tag they had before frames had other shapes."""
    text = f"{styles_fingerprint}|{int(resolution)}|{precision}|{int(compression)}"
    if width is not None and int(width) != int(resolution):
        text += f"|w{int(width)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def draft_tag(styles_fingerprint: str, draft_size: int, draft_precision: str, compression: int,
              width: int = None) -> str:
    """The tag of a draft frame (another size and precision than the final frame's)."""
    return frames_tag(styles_fingerprint, draft_size, f"draft-{draft_precision}", compression, width)


def frame_order(frame_count: int, first_frames=None) -> list:
    """0-based frame indices, the ranges [first, end) of ``first_frames`` first (in their
    order; the playhead's region, the preview range), then the rest in order."""
    order, seen = [], set()
    for first, end in first_frames or ():
        for index in range(max(0, int(first)), min(frame_count, int(end))):
            if index not in seen:
                seen.add(index)
                order.append(index)
    order.extend(i for i in range(frame_count) if i not in seen)
    return order


# the tag of a frame rendered from edited style curves (Update Frames) ends with this
EDITED_SUFFIX = "+edited"


def render_batches(generator, layer_ws_for, indices, out_dir, resolution, batch, compression,
                   report, tag, stage="render", width=None, *, camera_for=None):
    """Render frames ``indices`` in batches, writing each PNG atomically with its tag (``tag``: a
    string, or a function of the frame index). Returns paths. Styles that are not finite numbers
    are refused before their frame is written. ``resolution``: the synthesis resolution (None:
    the generator's own); ``width``: the frame width (None: square). ``camera_for`` (a function
    of a list of frame indices giving their cameras [k, 3], ``camera.py``) moves the picture of a
    generator with a camera; a batch whose cameras are all zero is rendered as without one."""
    tag_of = tag if callable(tag) else (lambda _index: tag)
    import torch

    written = []
    total = len(indices)
    report(stage, 0, total)
    for first in range(0, total, batch):
        report.check()
        chunk = indices[first:first + batch]
        ws = np.ascontiguousarray(layer_ws_for(chunk), dtype=np.float32)
        if not np.all(np.isfinite(ws)):
            bad = next(i for i, row in zip(chunk, ws) if not np.all(np.isfinite(row)))
            raise TraeumerError(f"the style of frame {int(bad) + 1} is not a finite number (NaN or infinity): "
                                f"nothing was rendered for it")
        ws = torch.from_numpy(ws)
        camera = _batch_camera(camera_for, chunk)
        with torch.no_grad():
            if _fixed_rows(generator):
                images = torch.cat([_synthesize_rows(generator, ws[k:k + CPU_SYNTHESIS_ROWS], resolution, width,
                                                     None if camera is None else camera[k:k + CPU_SYNTHESIS_ROWS])
                                    for k in range(0, len(chunk), CPU_SYNTHESIS_ROWS)])
            else:
                images = generator.synthesis(ws.to(generator.device), resolution=resolution, width=width,
                                             camera=camera)
        pixels = _to_uint8_images(images)
        for index, image in zip(chunk, pixels):
            path = frame_path(out_dir, index)
            png.write_png(path, image, compression, tag_of(index))
            written.append(path)
        report(stage, min(first + batch, total), total, chunk)
    return written


# On the CPU every synthesis call gets exactly this many rows (the last group padded with
# copies): a row's pixels depend on the batch size but not on the other rows, so a frame comes
# out bit for bit the same whichever frames share its call (resumed runs, Update frames), while
# the generator still runs its rows in parallel (4 rows: ~4x faster per frame than 1 here).
CPU_SYNTHESIS_ROWS = 4


def _fixed_rows(generator) -> bool:
    """Fixed-size calls on the CPU; GPU batches trade bit-exact resumes for speed."""
    return not str(getattr(generator, "device", "cpu")).startswith("cuda")


def _batch_camera(camera_for, chunk):
    """The cameras [k, 3] of a batch, or None where there is none to apply (all zero)."""
    if camera_for is None:
        return None
    camera = np.asarray(camera_for(chunk), dtype=np.float64).reshape(len(chunk), 3)
    if not np.all(np.isfinite(camera)):
        bad = next(i for i, row in zip(chunk, camera) if not np.all(np.isfinite(row)))
        raise TraeumerError(f"the camera of frame {int(bad) + 1} is not a finite number (NaN or infinity): "
                            f"nothing was rendered for it")
    return camera if np.any(camera != 0) else None


def _synthesize_rows(generator, ws, resolution, width=None, camera=None):
    """Synthesize ``ws`` ([n ≤ CPU_SYNTHESIS_ROWS, L, D]) in one call of exactly that many rows."""
    import torch

    count = ws.shape[0]
    if count < CPU_SYNTHESIS_ROWS:
        ws = torch.cat([ws, ws[-1:].expand(CPU_SYNTHESIS_ROWS - count, *ws.shape[1:])])
        if camera is not None:
            camera = np.concatenate([camera, np.repeat(camera[-1:], CPU_SYNTHESIS_ROWS - count, axis=0)])
    if camera is not None and not np.any(camera != 0):
        camera = None
    return generator.synthesis(ws, resolution=resolution, width=width, camera=camera)[:count]


def frame_is_kept(out_dir, index, resolution, tag: str, width: int = None) -> bool:
    """A frame file that a resumed job keeps: complete, of its size, made with its settings."""
    complete, found = png.complete_png_tag(frame_path(out_dir, index), width or resolution, resolution)
    return complete and found == tag


def has_skip_branch(generator) -> bool:
    """Whether the generator can make draft frames (StyleGAN2's skip branch; StyleGAN3 has none)."""
    return bool(getattr(generator, "draft_resolutions", ()))


def render_drafts(generator, layer_ws_for, indices, out_dir, draft_size, width, batch, compression,
                  report, tag) -> list:
    """Draft frames ``indices`` into ``DIR/draft/`` from the skip branch at ``draft_size`` px
    (all layers in the device's fast low precision: ``Generator.drafting``)."""
    ddir = draft_dir(out_dir)
    os.makedirs(ddir, exist_ok=True)
    with generator.drafting():
        return render_batches(generator, layer_ws_for, indices, ddir, int(draft_size), batch, compression,
                              report, tag, stage="draft", width=width)


def render_frames(styles_path, frame_indices=None, ws_override=None, out_dir=None, model=None,
                  device="auto", precision="auto", batch=None, progress=None, cancel=None,
                  only_missing=False, png_compression=None, lock=True, draft=False, camera_override=None) -> list:
    """Render frames of a styles.npz again; returns the written paths.

    frame_indices: 0-based frame indices (None: all). ws_override: optional array aligned with
    frame_indices, either group ws [k, 3, w_dim] or per-layer ws [k, n_latent, w_dim]; it is used
    for these frames instead of the stored styles (styles.npz is not changed; use update_styles
    to store edits). model: the generator file when it was moved (its source_id must match).
    only_missing: skip frames whose file is already a complete PNG made with these settings.
    lock: share the folder with other render jobs (``output_folder.FolderLock``); False when the
    caller holds it already. draft: when the job made draft frames, give these frames a fresh
    draft first (Update Frames). Frames keep the job's shape (``frame_width`` in its settings).
    camera_override: optional cameras [k, 3] aligned with frame_indices
    (``camera.py``), used instead of the stored camera path (Update Frames).
    """
    out_dir = os.fspath(out_dir) if out_dir is not None else os.path.dirname(os.path.abspath(styles_path))
    ensure_writable_folder(out_dir)
    if not lock:
        return _render_frames(styles_path, frame_indices, ws_override, out_dir, model, device, precision,
                              batch, progress, cancel, only_missing, png_compression, draft, camera_override)
    with FolderLock(out_dir, "render", exclusive=False):
        return _render_frames(styles_path, frame_indices, ws_override, out_dir, model, device, precision,
                              batch, progress, cancel, only_missing, png_compression, draft, camera_override)


def _render_frames(styles_path, frame_indices, ws_override, out_dir, model, device, precision, batch,
                   progress, cancel, only_missing, png_compression, draft, camera_override=None) -> list:
    report = Reporter(progress, cancel)
    styles = load_styles(styles_path)
    n_frames = styles.frame_count
    indices = np.arange(n_frames) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= n_frames):
        raise TraeumerError(f"frame index out of range 0..{n_frames - 1}")
    override = None
    if ws_override is not None:
        override = np.asarray(ws_override, dtype=np.float32)
        if override.ndim != 3 or override.shape[0] != len(indices):
            raise TraeumerError("ws_override must have one row per frame index")
        if override.shape[1] not in (styles.group_ws.shape[1], len(styles.layer_group)):
            raise TraeumerError(f"ws_override must be [k, 3, w_dim] or [k, {len(styles.layer_group)}, w_dim]")
        if override.shape[1] == styles.group_ws.shape[1] != len(styles.layer_group):
            override = override[:, styles.layer_group]
    cameras = _checked_cameras(styles, indices, camera_override)
    settings = styles.settings
    source = model if model is not None else styles.generator_source
    report("load", 0, 1)
    generator = get_generator(source, device=device,
                              precision=precision if precision else settings.get("precision", "auto"),
                              label=settings.get("label"))
    report("load", 1, 1)
    if generator.source_id != styles.generator_source_id:
        raise TraeumerError(
            f"styles were made with generator {styles.generator_source_id}, but {source} is "
            f"{generator.source_id}")
    check_styles_fit(styles, generator, name=os.fspath(styles_path))
    if cameras is not None and np.any(cameras != 0) and not getattr(generator, "has_camera", False):
        raise TraeumerError(f"{os.fspath(styles_path)} moves the camera, but {source} is a StyleGAN2 generator "
                            f"without one")
    compression = png_compression if png_compression is not None else settings.get("png_compression", 6)
    width = settings.get("frame_width")
    plain_tag = frames_tag(styles.fingerprint, styles.resolution, str(generator.precision), compression, width)
    draft_size = settings.get("draft_size") if draft and has_skip_branch(generator) else None
    plain_draft_tag = None
    if draft_size:
        plain_draft_tag = draft_tag(styles.fingerprint, draft_size, generator.draft_precision, compression,
                                    settings.get("draft_width"))
    # a frame whose override equals its stored style and camera (an edit undone) is a plain frame again
    edited = set()
    for k, i in enumerate(indices):
        if override is not None and not np.array_equal(override[k], styles.layer_ws([int(i)])[0].astype(np.float32)):
            edited.add(int(i))
        if camera_override is not None and not np.array_equal(cameras[k], _stored_camera(styles, int(i))):
            edited.add(int(i))

    def tag(index, plain=plain_tag):
        return plain + EDITED_SUFFIX if int(index) in edited else plain
    if only_missing:
        keep = [not frame_is_kept(out_dir, i, styles.resolution, plain_tag, width) for i in indices]
        indices = indices[np.asarray(keep, dtype=bool)] if len(indices) else indices
        if override is not None:
            override = override[np.asarray(keep, dtype=bool)]
        if cameras is not None:
            cameras = cameras[np.asarray(keep, dtype=bool)]
    position = {int(i): k for k, i in enumerate(indices)}

    def layer_ws_for(chunk):
        if override is not None:
            return override[[position[int(i)] for i in chunk]]
        return styles.layer_ws(chunk)

    def camera_for(chunk):
        return cameras[[position[int(i)] for i in chunk]]

    todo = [int(i) for i in indices]
    if draft_size:
        render_drafts(generator, layer_ws_for, todo, out_dir, draft_size, settings.get("draft_width"),
                      draft_batch(generator), compression, report, lambda i: tag(i, plain_draft_tag))
        # the old full frames are stale: without them the fresh drafts show until they are replaced
        remove_frames(out_dir, todo)
    return render_batches(generator, layer_ws_for, todo, out_dir,
                          render_resolution(generator, styles.resolution), batch or default_batch(generator),
                          compression, report, tag, width=width,
                          camera_for=camera_for if cameras is not None else None)


def draft_batch(generator) -> int:
    """Draft frames per step: small images, so more of them between progress events."""
    return 4 * default_batch(generator)


def _stored_camera(styles, index) -> np.ndarray:
    return np.zeros(3) if styles.camera is None else np.asarray(styles.camera[index], dtype=np.float64)


def _checked_cameras(styles, indices, camera_override):
    """The cameras [k, 3] of frames ``indices`` (the override, else the stored path), or None."""
    if camera_override is None:
        return None if styles.camera is None else np.asarray(styles.camera, dtype=np.float64)[indices]
    cameras = np.asarray(camera_override, dtype=np.float64)
    if cameras.shape != (len(indices), 3):
        raise TraeumerError("camera_override must be [k, 3] (x, y, rotation), one row per frame index")
    if not np.all(np.isfinite(cameras)):
        raise TraeumerError("a camera value is not a finite number")
    return cameras


def render_resolution(generator, resolution):
    """The resolution argument for G.synthesis: None for the generator's own size."""
    return None if resolution in (None, generator.resolution) else int(resolution)
