# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker's labelling requests (see ``labels.py``); ``worker.py`` runs them as jobs.

Requests (each answered like a generate job: progress events, then "done" with a result)::

    {"cmd": "label_candidates", "params": {model, device, seed, count, size, out_dir,
                                           base_w: [w_dim] | null, strength}}
        -> {"ws_path": ".../candidates_<seed>.npz", "images": [png, ...], "origins": [...], "size"}
    {"cmd": "label_add", "params": {set_path, name, model, encoder, device, audio, start,
                                    duration, w: [w_dim], origin, thumbnail: png | "",
                                    audio_files: [...]}}
        -> {"pair_id", "pairs", "start", "duration", "path"}     (creates the set when missing)
    {"cmd": "label_suggest", "params": {set_path, encoder, audio_files: [...], clip_seconds}}
        -> {"audio", "start", "duration", "distance", "candidates"}
    {"cmd": "label_train", "params": {set_path, model, device, out, steps, seed}}
        -> {"out", "pairs", "windows", "steps", "l1_before", "l1_after", "l1_zero_label"}

Only the standard library is imported here at module level (the worker must start fast).
"""

import os

COMMANDS = ("label_candidates", "label_add", "label_suggest", "label_train")


def run(cmd, request, progress, cancel):
    """Run one labelling request; ``progress(stage, done, total, eta)``; returns the result."""
    params = request.get("params") or {}
    handler = {"label_candidates": _candidates, "label_add": _add, "label_suggest": _suggest,
               "label_train": _train}[cmd]
    return handler(params, progress, cancel)


def _engine_progress(progress):
    def forward(event):
        progress(event.stage, event.done, event.total, event.eta_seconds)
    return forward


def _models(params, progress, need_encoder=True, need_generator=True):
    from .pipeline import get_encoder, get_generator

    device = params.get("device") or "auto"
    progress("load", 0, 1, None)
    generator = get_generator(params.get("model") or "default", device=device) if need_generator else None
    encoder = (get_encoder(params.get("encoder") or "default", device="cpu" if device == "auto" else device)
               if need_encoder else None)
    progress("load", 1, 1, None)
    return generator, encoder


def _candidates(params, progress, cancel):
    import numpy as np

    from . import labels
    from .png import write_png

    generator, _ = _models(params, progress, need_encoder=False)
    seed = int(params.get("seed", 0))
    base_w = params.get("base_w")
    ws, origins = labels.candidate_ws(generator, int(params.get("count", 6)), seed,
                                      base_w=None if base_w is None else np.asarray(base_w, np.float32),
                                      strength=float(params.get("strength", 0.35)))
    out_dir = os.fspath(params["out_dir"])
    os.makedirs(out_dir, exist_ok=True)
    progress("render", 0, len(ws), None)
    images = labels.render_thumbnails(generator, ws, int(params.get("size", labels.THUMBNAIL_SIZE)))
    kind = "v" if base_w is not None else "r"
    paths = []
    for k, image in enumerate(images):
        path = os.path.join(out_dir, f"candidate_{kind}{seed}_{k}.png")
        write_png(path, image)
        paths.append(path)
    progress("render", len(ws), len(ws), 0.0)
    ws_path = os.path.join(out_dir, f"candidates_{kind}{seed}.npz")
    np.savez(ws_path, ws=ws)
    return {"ws_path": ws_path, "images": paths, "origins": origins, "size": int(images.shape[1])}


def _add(params, progress, cancel):
    import numpy as np

    from . import labels
    from .png import read_png

    generator, encoder = _models(params, progress)
    path = os.fspath(params["set_path"])
    if os.path.isfile(path):
        label_set = labels.LabelSet.load(path)
    else:
        label_set = labels.new_label_set(generator, encoder, generator_source=params.get("model") or "default",
                                         encoder_source=params.get("encoder") or "default",
                                         name=params.get("name") or "")
    thumbnail = None
    if params.get("thumbnail") and os.path.isfile(params["thumbnail"]):
        thumbnail = read_png(params["thumbnail"])
    progress("embed", 0, 1, None)
    pair_id = labels.label_clip(label_set, encoder, generator, params["audio"],
                                float(params.get("start", 0.0)),
                                float(params.get("duration", labels.CLIP_SECONDS)),
                                np.asarray(params["w"], dtype=np.float32), params.get("origin") or {},
                                thumbnail)
    progress("embed", 1, 1, 0.0)
    for music in [params["audio"]] + list(params.get("audio_files") or []):
        label_set.add_audio_file(music)
    label_set.save(path)
    pair = label_set.pairs[label_set.index_of(pair_id)]
    return {"pair_id": pair_id, "pairs": len(label_set), "start": pair["start"],
            "duration": pair["duration"], "path": path}


def _suggest(params, progress, cancel):
    from . import labels

    _, encoder = _models(params, progress, need_generator=False)
    path = os.fspath(params["set_path"])
    if os.path.isfile(path):
        label_set = labels.LabelSet.load(path)
    else:  # nothing labelled yet: an empty set of this encoder
        label_set = labels.LabelSet("", encoder.source_id, 0, encoder.embedding_dim, encoder.window_seconds)

    def step(stage, done, total):
        progress(stage, done, total, None)

    result = labels.suggest_next_clip(label_set, encoder, params.get("audio_files") or [],
                                      clip_seconds=float(params.get("clip_seconds", labels.CLIP_SECONDS)),
                                      progress=step, cancel=cancel)
    for bulky in ("distances", "clips"):
        result.pop(bulky, None)
    return result


def _train(params, progress, cancel):
    from . import labels

    return labels.train_from_label_file(params["set_path"], params["out"],
                                        model=params.get("model") or "default",
                                        steps=int(params.get("steps", 30000)),
                                        seed=int(params.get("seed", 0)),
                                        device=params.get("device") or "auto",
                                        progress=_engine_progress(progress), cancel=cancel)
