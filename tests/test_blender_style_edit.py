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


def test_curves_files_of_tracks_made_before_motion_still_load(tmp_path):
    """traeumer-curves-1 (no pulse curves, frame times or cuts): the cuts cannot move."""
    stored, names, baseline, basis, w_avg = _edit_inputs()
    path = tmp_path / "curves.npz"
    np.savez(path, format=np.array("traeumer-curves-1"), names=np.array(names), groups=np.arange(3),
             frame_start=np.array(1), baseline=baseline, applied=baseline, mean=np.zeros((3, 8)), basis=basis,
             truncation=np.array(0.8))
    curves = style_edit.load_curves(path)
    assert curves["applied_cuts"] is None and curves["frame_times"] is None and curves["names"] == names
    style_edit.save_curves(path, names, (0, 1, 2), 1, baseline, baseline, np.zeros((3, 8)), basis, 0.8,
                           frame_times=np.arange(10) / 4.0, cuts=[4])
    curves = style_edit.load_curves(path)
    assert curves["applied_cuts"].tolist() == [4] and curves["frame_times"][2] == 0.5
    style_edit.save_curves(path, names, (0, 1, 2), 1, baseline, baseline, np.zeros((3, 8)), basis, 0.8, cuts=[10])
    with pytest.raises(style_edit.TraeumerError, match="applied_cuts outside the frames"):
        style_edit.load_curves(path)


class _Record:
    """The parts of a styles_file.MotionRecord that the curve maths reads."""

    def __init__(self, n, dim, rng, bands=("low", "high"), amounts=(0.0, 0.6, 0.8),
                 group_bands=("low", "low", "high")):
        self.settings = {"pulse_amounts": list(amounts), "pulse_bands": list(group_bands), "cuts": True}
        self.pulse_bands = tuple(bands)
        self.pulse = rng.uniform(0, 1, (n, len(bands)))
        self.pulse_targets = rng.standard_normal((3, dim))
        self.base_group_ws = rng.standard_normal((n, 3, dim))

    def pulse_weights(self):
        return np.stack([self.settings["pulse_amounts"][g] * self.pulse[:, self.pulse_bands.index(b)]
                         for g, b in enumerate(self.settings["pulse_bands"])], axis=1)


def _pulse_inputs():
    rng = np.random.default_rng(4)
    n, dim = 12, 8
    record = _Record(n, dim, rng)
    weights = record.pulse_weights()
    stored = record.base_group_ws + weights[:, :, None] * (record.pulse_targets[None] - record.base_group_ws)
    bands = style_edit.pulse_curve_bands(record, (0, 1, 2))
    names = style_edit.curve_names((0, 1, 2), pulse_bands=bands)
    baseline, _, basis = style_edit.curve_values(stored, 1.0, (0, 1, 2), motion=record)
    return record, stored, names, baseline, basis, rng.standard_normal(dim)


def test_pulse_curves_follow_the_style_curves_with_their_own_tolerance():
    record, stored, names, baseline, _, _ = _pulse_inputs()
    assert names[-5:] == ["pulse_low", "pulse_high", "coarse_pulse", "middle_pulse", "fine_pulse"]
    assert np.array_equal(baseline[:, names.index("pulse_high")], record.pulse[:, 1])
    assert np.all(baseline[:, names.index("fine_pulse")] == 0.8)
    assert style_edit.key_tolerance("pulse_low") == style_edit.PULSE_KEY_TOLERANCE == 0.02
    assert style_edit.key_tolerance("coarse_pc1") == style_edit.KEY_TOLERANCE
    # only bands that drive a group the generator has get a curve; no pulse: no pulse curves
    assert style_edit.pulse_curve_bands(record, (0, 1)) == ("low",)
    assert style_edit.curve_names((0, 1, 2), pulse_bands=()) == style_edit.curve_names((0, 1, 2))


def test_an_edited_pulse_or_amount_moves_its_group_by_the_weight_change_only():
    record, stored, names, baseline, basis, w_avg = _pulse_inputs()
    rows = np.arange(len(stored))
    pulse = style_edit.PulseInputs(base=record.base_group_ws, targets=record.pulse_targets, pulse=record.pulse,
                                   bands=record.pulse_bands, amounts=(0.0, 0.6, 0.8),
                                   group_bands=("low", "low", "high"))
    same = style_edit.apply_edits(stored, baseline, baseline, names, (0, 1, 2), basis, w_avg, pulse=pulse)
    assert np.array_equal(same, stored)

    values = baseline.copy()
    values[5, names.index("pulse_low")] += 0.3                 # the low band drives coarse (amount 0) and middle
    edited = style_edit.apply_edits(stored, values, baseline, names, (0, 1, 2), basis, w_avg, pulse=pulse)
    assert np.array_equal(np.delete(edited, 5, axis=0), np.delete(stored, 5, axis=0))
    assert np.array_equal(edited[5, [0, 2]], stored[5, [0, 2]])
    w_new = 0.6 * (record.pulse[5, 0] + 0.3)
    expected = record.base_group_ws[5, 1] + w_new * (record.pulse_targets[1] - record.base_group_ws[5, 1])
    assert np.allclose(edited[5, 1], expected, atol=1e-12)

    values = baseline.copy()
    values[:, names.index("coarse_pulse")] = 0.5               # the calm coarse layers pulse now
    edited = style_edit.apply_edits(stored, values, baseline, names, (0, 1, 2), basis, w_avg, pulse=pulse)
    expected = record.base_group_ws[:, 0] + (0.5 * record.pulse[:, :1]) * (record.pulse_targets[0] - record.base_group_ws[:, 0])
    assert np.allclose(edited[:, 0], expected, atol=1e-12)
    assert np.array_equal(edited[:, 1:], stored[:, 1:])

    # the other curves act on the pulsed styles
    values[2, names.index("middle_intensity")] = 0.0
    edited = style_edit.apply_edits(stored, values, baseline, names, (0, 1, 2), basis, w_avg, pulse=pulse)
    assert np.allclose(edited[2, 1], w_avg)

    # the inputs of some rows, read from a MotionRecord
    inputs = style_edit.PulseInputs.from_record(record, rows[3:6])
    assert inputs.base.shape == (3, 3, 8) and inputs.pulse.shape == (3, 2) and inputs.group_bands[2] == "high"
    assert np.array_equal(inputs.weights(1), record.pulse_weights()[3:6, 1])


def test_update_frames_renders_an_edited_pulse_and_a_moved_cut_only_where_they_act(tmp_path):
    """The engine half of Update Frames on a track with motion (no Blender): the curve values
    and section starts Blender would send, frames byte-compared."""
    import hashlib

    from music_fixtures import two_sections_wav
    from traeumer_blender.layer_groups import used_groups
    from traeumer_blender.pipeline import GenerateSettings, run_generate
    from traeumer_blender.styles_file import load_styles

    audio = two_sections_wav(tmp_path / "two.wav")
    out = tmp_path / "frames"
    run_generate(GenerateSettings(audio=str(audio), out_dir=str(out), fps="2", resolution=32, seed=1,
                                  device="cpu"))
    styles = load_styles(out / "styles.npz")
    record = styles.motion
    assert len(record.section_starts) == 2 and len(record.cut_frames) == 1
    cut = int(record.cut_frames[0])
    groups = used_groups(styles.layer_group)
    names = style_edit.curve_names(groups, pulse_bands=style_edit.pulse_curve_bands(record, groups))
    values, mean, basis = style_edit.curve_values(styles.group_ws, styles.truncation, groups, motion=record)
    style_edit.save_curves(style_edit.curves_path(out), names, groups, 1, values, values, mean, basis,
                           styles.truncation, frame_times=styles.frame_times, cuts=record.cut_frames)

    def digests():
        return [hashlib.sha256((out / f"frame_{i + 1:06d}.png").read_bytes()).hexdigest()
                for i in range(styles.frame_count)]

    def update(values, starts):
        np.savez(tmp_path / "edits.npz", values=values)
        return style_edit.update_frames(out / "styles.npz", tmp_path / "edits.npz", device="cpu",
                                        section_starts=starts)

    original = digests()
    starts = [float(styles.frame_times[0]), float(styles.frame_times[cut])]
    assert update(values, starts)["frames_rendered"] == 0          # the markers where they were

    edited = values.copy()
    middle_band = record.settings["pulse_bands"][1]                 # the band that moves the middle layers
    edited[3:6, names.index(f"pulse_{middle_band}")] += 0.5
    result = update(edited, starts)
    assert result["changed"] == [[3, 5]]
    now = digests()
    assert [i for i in range(len(now)) if now[i] != original[i]] == [3, 4, 5]

    moved = starts[:1] + [float(styles.frame_times[cut + 4])]       # the section starts 2 s later
    result = update(edited, moved)
    assert result["cuts"] == [cut + 4]
    reach = int(np.ceil(max(styles.smoothing_seconds) * 2 / 2)) + 2   # half a window + the crossfade
    changed = [i for a, b in result["changed"] for i in range(a, b + 1)]
    assert set(range(cut, cut + 4)) <= set(changed)
    assert min(changed) >= cut - reach and max(changed) <= cut + 4 + reach
    after = digests()
    assert {i for i in range(len(after)) if after[i] != now[i]} <= set(changed)
    assert any(after[i] != now[i] for i in range(cut, cut + 4))
    assert update(edited, moved)["frames_rendered"] == 0             # nothing changed since

    # both undone: every frame is as generated, byte for byte
    update(values, starts)
    assert digests() == original


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
