# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker's labelling requests (see ``labels.py``); ``worker.py`` dispatches them.

Each handler gets the request's checked params (fields: ``protocol.REQUEST_FIELDS``) and the
job, and returns the "done" event's result::

    label_candidates -> {"ws_path": ".../candidates_<seed>.npz", "images": [png, ...], "origins", "resolution"}
    label_add        -> {"pair_id", "pairs", "start", "duration", "path"}   (creates the set when missing)
    label_suggest    -> {"audio", "start", "duration", "distance", "candidates", "skipped"}
    label_train      -> {"out", "pairs", "windows", "steps", "l1_before", "l1_after", "l1_zero_label"}

Only the standard library is imported here at module level (the worker must start fast).
"""

import os

from .progress import Reporter


def _models(params, report, need_encoder=True, need_generator=True):
    from .model_cache import get_encoder, get_generator

    device = params["device"]
    report("load", 0, 1)
    generator = get_generator(params["model"], device=device) if need_generator else None
    encoder = (get_encoder(params["encoder"], device="cpu" if device == "auto" else device)
               if need_encoder else None)
    report("load", 1, 1)
    return generator, encoder


def handle_candidates(params, job):
    """Candidate images to choose from: random seeds, or variations of ``base_w``."""
    import numpy as np

    from . import labels
    from .png import write_png

    report = Reporter(job.progress, job.cancel)
    generator, _ = _models(params, report, need_encoder=False)
    seed = params["seed"]
    base_w = params["base_w"]
    ws, origins = labels.candidate_ws(generator, params["count"], seed,
                                      base_w=None if base_w is None else np.asarray(base_w, np.float32),
                                      strength=params["strength"])
    out_dir = os.fspath(params["out_dir"])
    os.makedirs(out_dir, exist_ok=True)
    report("render", 0, len(ws))
    images = labels.render_thumbnails(generator, ws, params["resolution"])
    kind = "v" if base_w is not None else "r"
    paths = []
    for k, image in enumerate(images):
        path = os.path.join(out_dir, f"candidate_{kind}{seed}_{k}.png")
        write_png(path, image)
        paths.append(path)
    report("render", len(ws), len(ws))
    ws_path = os.path.join(out_dir, f"candidates_{kind}{seed}.npz")
    np.savez(ws_path, ws=ws)
    return {"ws_path": ws_path, "images": paths, "origins": origins, "resolution": int(images.shape[1])}


def handle_add(params, job):
    """Pair a clip with a chosen w and store the pair in the label set file."""
    import numpy as np

    from . import labels
    from .png import read_png

    report = Reporter(job.progress, job.cancel)
    generator, encoder = _models(params, report)
    path = os.fspath(params["set_path"])
    if os.path.isfile(path):
        label_set = labels.LabelSet.load(path)
    else:
        label_set = labels.new_label_set(generator, encoder, generator_source=params["model"],
                                         encoder_source=params["encoder"], name=params["name"])
    thumbnail = None
    if params["thumbnail"] and os.path.isfile(params["thumbnail"]):
        thumbnail = read_png(params["thumbnail"])
    report("embed", 0, 1)
    pair_id = labels.label_clip(label_set, encoder, generator, params["audio"], params["start"],
                                params["duration"], np.asarray(params["w"], dtype=np.float32),
                                params["origin"], thumbnail)
    report("embed", 1, 1)
    for music in [params["audio"]] + params["audio_files"]:
        label_set.add_audio_file(music)
    label_set.save(path)
    pair = label_set.pairs[label_set.index_of(pair_id)]
    return {"pair_id": pair_id, "pairs": len(label_set), "start": pair["start"],
            "duration": pair["duration"], "path": path}


def handle_suggest(params, job):
    """The clip of the user's music least like anything labelled so far."""
    from . import labels

    report = Reporter(job.progress, job.cancel)
    _, encoder = _models(params, report, need_generator=False)
    path = os.fspath(params["set_path"])
    if os.path.isfile(path):
        label_set = labels.LabelSet.load(path)
    else:  # nothing labelled yet: an empty set of this encoder
        label_set = labels.LabelSet("", encoder.source_id, 0, encoder.embedding_dim, encoder.window_seconds)
    result = labels.suggest_next_clip(label_set, encoder, params["audio_files"],
                                      clip_seconds=params["clip_seconds"], progress=report,
                                      cancel=job.cancel)
    for bulky in ("distances", "clips"):
        result.pop(bulky, None)
    return result


def handle_train(params, job):
    """Fit Eq. 1 to the label set and write the mapper file."""
    from . import labels

    return labels.train_from_label_file(params["set_path"], params["out"], model=params["model"],
                                        steps=params["steps"], seed=params["seed"],
                                        device=params["device"], progress=job.progress,
                                        cancel=job.cancel)
