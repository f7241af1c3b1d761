# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine side of the Blender integration without Blender: style-curve maths and the
worker's line protocol (fast; the Blender end-to-end tests are in test_blender_generate.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from blender_harness import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))
from traeumer_blender import protocol, style_edit  # noqa: E402


def test_reduced_keys_stay_within_the_tolerance_and_are_few():
    rng = np.random.default_rng(1)
    frames = np.arange(900)
    values = np.sin(frames / 40.0) * 2 + np.cumsum(rng.standard_normal(900)) * 0.01
    keys = style_edit.reduce_keys(values, tolerance=0.05)
    interpolated = np.interp(frames, keys, values[keys])
    assert np.max(np.abs(interpolated - values)) <= 0.05
    assert keys[0] == 0 and keys[-1] == 899
    assert len(keys) < 900 / 4
    assert list(style_edit.reduce_keys(np.ones(50))) == [0, 49]


def test_principal_components_have_unit_variance_and_rebuild_the_styles():
    rng = np.random.default_rng(2)
    n, dim = 200, 16
    latent = rng.standard_normal((n, 3, 3)) * np.array([3.0, 2.0, 1.0])
    mixing = rng.standard_normal((3, 3, dim))
    ws = np.einsum("ngk,gkd->ngd", latent, mixing) + 0.5
    mean, basis, coefficients = style_edit.principal_components(ws, groups=(0, 1, 2), components=4)
    assert np.allclose(coefficients[:, :, :3].std(axis=0), 1.0)
    rebuilt = mean[None] + np.einsum("ngk,gkd->ngd", coefficients, basis)
    assert np.allclose(rebuilt, ws, atol=1e-8)   # rank 3 per group: 4 components rebuild it


def _edit_inputs():
    rng = np.random.default_rng(3)
    n, dim = 10, 8
    stored = rng.standard_normal((n, 3, dim)).astype(np.float32)
    names = style_edit.curve_names((0, 1, 2))
    baseline = rng.standard_normal((n, len(names)))
    baseline[:, names.index("truncation")] = 0.8
    for group in style_edit.GROUP_NAMES:
        baseline[:, names.index(f"{group}_intensity")] = 1.0
    basis = rng.standard_normal((3, style_edit.COMPONENTS, dim))
    w_avg = rng.standard_normal(dim)
    return stored, names, baseline, basis, w_avg


def test_unedited_frames_keep_their_styles_bit_for_bit_and_edits_act_as_described():
    stored, names, baseline, basis, w_avg = _edit_inputs()
    same = style_edit.apply_edits(stored, baseline, baseline, names, (0, 1, 2), basis, w_avg)
    assert np.array_equal(same, stored.astype(np.float64))

    values = baseline.copy()
    values[3, names.index("coarse_pc2")] += 1.5
    edited = style_edit.apply_edits(stored, values, baseline, names, (0, 1, 2), basis, w_avg)
    assert np.array_equal(np.delete(edited, 3, axis=0), np.delete(stored, 3, axis=0).astype(np.float64))
    assert np.allclose(edited[3, 0], stored[3, 0] + 1.5 * basis[0, 1])
    assert np.array_equal(edited[3, 1:], stored[3, 1:].astype(np.float64))

    values = baseline.copy()
    values[:, names.index("fine_intensity")] = 0.0            # fine layers collapse to the average
    values[:, names.index("truncation")] = 0.4                 # half of the generated ψ = 0.8
    edited = style_edit.apply_edits(stored, values, baseline, names, (0, 1, 2), basis, w_avg)
    assert np.allclose(edited[:, 2], np.broadcast_to(w_avg, edited[:, 2].shape))
    assert np.allclose(edited[:, 0], w_avg + 0.5 * (stored[:, 0] - w_avg))

    assert list(style_edit.changed_frames(values, baseline)) == list(range(10))
    assert style_edit.frame_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]


def test_forget_edits_removes_only_frames_that_show_edited_styles(tmp_path):
    stored, names, baseline, basis, w_avg = _edit_inputs()
    applied = baseline.copy()
    applied[[2, 5], 0] += 1.0
    for index in range(10):
        (tmp_path / f"frame_{index + 1:06d}.png").write_bytes(b"png")
    style_edit.save_curves(style_edit.curves_path(tmp_path), names, (0, 1, 2), 1, baseline, applied,
                           np.zeros((3, 8)), basis, 0.8)
    assert style_edit.forget_edits(tmp_path) == [2, 5]
    left = sorted(p.name for p in tmp_path.glob("frame_*.png"))
    assert len(left) == 8 and "frame_000003.png" not in left and "frame_000006.png" not in left
    assert not os.path.exists(style_edit.curves_path(tmp_path))


def test_worker_speaks_json_lines_and_keeps_stdout_for_the_protocol():
    code = "import sys; from traeumer_blender.worker import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-u", "-c", code, "--idle-timeout", "0"], cwd=str(REPO_ROOT),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    update = protocol.build_request(protocol.UPDATE, styles_path="/nonexistent/styles.npz",
                                    edits_path="/nonexistent/e.npz", device="cpu")
    requests = [{"id": 1, "cmd": "ping"}, {"id": 2, "cmd": "frobnicate"}, dict(update, id=3),
                {"id": 4, "cmd": "shutdown"}]
    out, err = process.communicate("".join(json.dumps(r) + "\n" for r in requests) + "not json\n", timeout=120)
    events = [json.loads(line) for line in out.splitlines()]   # every stdout line is an event
    kinds = [(e["event"], e.get("id")) for e in events]
    assert kinds[0][0] == "ready" and events[0]["protocol"] == protocol.PROTOCOL_VERSION
    assert ("pong", 1) in kinds
    assert ("error", 2) in kinds
    assert kinds[-1] == ("bye", None) and events[-1]["reason"] == "shutdown"
    update_outcome = [e for e in events if e.get("id") == 3]
    # the update either failed cleanly (missing files) or was cut short by the shutdown
    assert all(e["event"] in ("error", "cancelled", "progress") for e in update_outcome)
    assert process.returncode == 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
