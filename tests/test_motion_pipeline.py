# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion through the pipeline: off means today's frames byte for byte, styles of format 1 still
load and render, and the motion settings are recorded."""

import zipfile

import numpy as np
from frame_hashes import frame_digests
from test_cli import EXAMPLE, FAST, run_cli

from traeumer_blender.frames import render_frames
from traeumer_blender.styles_file import load_styles

JOB = ["--audio", EXAMPLE, "--start", "20", "--duration", "12", *FAST]


def test_amount_zero_and_cuts_off_are_motion_off_byte_for_byte(tmp_path):
    off, zero, moving = tmp_path / "off", tmp_path / "zero", tmp_path / "moving"
    assert run_cli("generate", "--out", off, "--no-motion", *JOB).returncode == 0
    assert run_cli("generate", "--out", zero, "--pulse", "0,0,0", "--no-cuts", *JOB).returncode == 0
    assert run_cli("generate", "--out", moving, *JOB).returncode == 0
    assert frame_digests(off) == frame_digests(zero) and len(frame_digests(off)) == 48
    assert load_styles(off / "styles.npz").fingerprint == load_styles(zero / "styles.npz").fingerprint
    assert load_styles(zero / "styles.npz").motion is None           # nothing moved: nothing recorded
    styles = load_styles(moving / "styles.npz")
    assert styles.motion is not None and styles.motion.settings["pulse_amounts"] == [0.0, 0.6, 0.8]
    assert frame_digests(moving) != frame_digests(off)
    # what the pulse adds is recorded: the styles before it, and the pulse at every frame
    np.testing.assert_array_less(np.abs(styles.motion.base_group_ws[:, 0] - styles.group_ws[:, 0]), 1e-6)
    assert styles.motion.pulse.shape == (48, len(styles.motion.pulse_bands)) and styles.motion.pulse.max() > 0.5


def test_styles_of_format_1_still_load_and_render(tmp_path):
    out = tmp_path / "out"
    assert run_cli("generate", "--out", out, "--no-motion", *JOB).returncode == 0
    before = frame_digests(out)
    old = tmp_path / "old"
    old.mkdir()
    with zipfile.ZipFile(out / "styles.npz") as source, zipfile.ZipFile(old / "styles.npz", "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "format.npy":
                buffer = __import__("io").BytesIO()
                np.save(buffer, np.array("traeumer-styles-1"))
                data = buffer.getvalue()
            target.writestr(info, data)
    styles = load_styles(old / "styles.npz")
    assert styles.motion is None and styles.frame_count == 48
    render_frames(old / "styles.npz", device="cpu")
    assert frame_digests(old) == before
