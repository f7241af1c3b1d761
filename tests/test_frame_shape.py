# SPDX-License-Identifier: GPL-3.0-or-later
"""Frames of any aspect (issue #15): a widened canvas, never a stretched or letterboxed square.

StyleGAN2: the 4x4 constant repeated sideways and fresh noise beside the trained one, each block
computing only the columns over the frame (``network.Canvas``); StyleGAN3: a wider Fourier grid.
"""

import os

import numpy as np
import pytest
import stylegan3_fixtures as fx3
import torch
import torch.nn.functional as F
from test_pipeline import EXAMPLE, read_bytes, settings

from stylegan2_fixtures import make_generator, random_state, tiny_config
from traeumer_blender import png
from traeumer_blender.aspect import frame_width, parse_aspect
from traeumer_blender.errors import TraeumerError
from traeumer_blender.frames import frames_tag
from traeumer_blender.output_folder import frame_path
from traeumer_blender.pipeline import run_generate
from traeumer_blender.stylegan2 import load_generator, network

R = 64


@pytest.fixture(scope="module")
def sg2():
    cfg = tiny_config(resolution=R)
    G = make_generator(cfg, random_state(cfg, seed=4))
    G.eval().requires_grad_(False)
    return G


@pytest.fixture(scope="module")
def ws(sg2):
    return sg2.mapping(torch.randn(3, sg2.z_dim, generator=torch.Generator().manual_seed(5)))


def test_aspect_to_width():
    assert frame_width(1024, "16:9") == 1820 and frame_width(1024, "9:16") == 576
    assert frame_width(1024, "1:1") == 1024 and frame_width(720, "16/9") == 1280
    assert frame_width(1080, "2.39:1") % 2 == 0 and frame_width(255, "1:1") == 255
    assert parse_aspect("1920:1080") == parse_aspect("16:9")
    for bad in ("wide", "16:0", "0:9", "-16:9", "100:1", "1:100"):
        with pytest.raises(TraeumerError):
            parse_aspect(bad)


@pytest.mark.parametrize("mode", ["split", "grouped", "nongrouped"])
def test_sg2_square_width_is_the_square_path(sg2, ws, mode):
    sg2.modconv = mode
    try:
        assert torch.equal(sg2.synthesis(ws, width=R), sg2.synthesis(ws))
    finally:
        sg2.modconv = "auto"


def test_sg2_wide_and_tall_sizes_and_content_to_the_edges(sg2, ws):
    square = sg2.synthesis(ws)
    wide = sg2.synthesis(ws, width=frame_width(R, "16:9"))
    tall = sg2.synthesis(ws, width=frame_width(R, "9:16"))
    assert tuple(wide.shape) == (3, 3, R, 114) and tuple(tall.shape) == (3, 3, R, 36)
    # content to the edges: the outer columns vary as much as the middle ones
    assert wide[..., :4].std() > 0.5 * wide[..., 55:59].std()
    assert wide[..., -4:].std() > 0.5 * wide[..., 55:59].std()
    # not a resized square: stretching the square frame gives another picture
    stretched = F.interpolate(square, size=(R, 114), mode="bilinear", align_corners=False)
    assert (wide - stretched).abs().mean() > 0.05
    # a tall frame is the middle of the square one (the height is the model's)
    assert torch.allclose(tall, square[..., 14:50], atol=1e-4)


def test_sg2_cropped_blocks_equal_the_whole_canvas(sg2, ws, monkeypatch):
    """Each block computes only the frame's columns plus a margin; the frame is the same as with
    the whole widened canvas computed at every block."""
    width = frame_width(R, "21:9")
    cropped = sg2.synthesis(ws, width=width)
    monkeypatch.setattr(network, "CANVAS_REACH", 10_000)
    whole = sg2.synthesis(ws, width=width)
    assert torch.allclose(cropped, whole, atol=1e-5)


def test_sg2_wide_previews_and_batches(sg2, ws):
    """Skip-branch previews (draft frames) take a width too; a row does not depend on its batch."""
    preview = sg2.synthesis(ws, resolution=16, width=28)
    assert tuple(preview.shape) == (3, 3, 16, 28)
    one = sg2.synthesis(ws[1:2], width=114)
    assert torch.allclose(one[0], sg2.synthesis(ws, width=114)[1], atol=1e-5)


def test_bad_widths_are_refused(sg2, ws):
    for width in (113, 0, 9 * R):
        with pytest.raises(TraeumerError, match="frame width"):
            sg2.synthesis(ws, width=width)


@pytest.mark.parametrize("variant", ["t", "r"])
def test_sg3_wide_and_tall(tmp_path, variant):
    path = tmp_path / f"sg3-{variant}.pkl"
    fx3.write_nvidia_sg3(path, variant=variant)
    G = load_generator(str(path), device="cpu")
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    r = G.resolution
    square = G.synthesis(ws)
    wide_w, tall_w = frame_width(r, "16:9"), frame_width(r, "9:16")
    wide, tall = G.synthesis(ws, width=wide_w), G.synthesis(ws, width=tall_w)
    assert tuple(wide.shape) == (2, 3, r, wide_w) and tuple(tall.shape) == (2, 3, r, tall_w)
    # the widened grid continues the same picture: the middle matches the square frame away
    # from its borders (the square's own border effects differ), the sides hold new content
    first = (wide_w - r) // 2
    inner = slice(6, r - 6)
    middle = wide[..., first:first + r]
    assert (middle[..., inner] - square[..., inner]).abs().max() < 0.1 * square.abs().max()
    assert wide[..., :3].std() > 0.2 * wide.std()
    stretched = F.interpolate(square, size=(r, wide_w), mode="bilinear", align_corners=False)
    assert (wide - stretched).abs().mean() > 0.2 * (wide - wide.mean()).abs().mean()
    off = (r - tall_w) // 2
    assert (tall[..., 3:-3] - square[..., off + 3:off + tall_w - 3]).abs().max() < 0.1 * square.abs().max()


def test_square_tag_is_unchanged():
    assert frames_tag("fp", 256, "bf16", 6) == frames_tag("fp", 256, "bf16", 6, 256)
    assert frames_tag("fp", 256, "bf16", 6) != frames_tag("fp", 256, "bf16", 6, 456)


def test_generate_16_9_and_1_1(tmp_path):
    """Frames of the asked size; 1:1 is today's square frame byte for byte (and its tag)."""
    plain = run_generate(settings(tmp_path / "plain"))
    square = run_generate(settings(tmp_path / "square", aspect="1:1"))
    wide = run_generate(settings(tmp_path / "wide", aspect="16:9"))
    tall = run_generate(settings(tmp_path / "tall", aspect="9:16"))
    n = plain.frame_count
    assert all(read_bytes(frame_path(plain.out_dir, i)) == read_bytes(frame_path(square.out_dir, i))
               for i in range(n))
    assert (wide.width, tall.width, square.width) == (56, 18, 32)
    for result, width in ((wide, 56), (tall, 18)):
        for i in range(n):
            assert png.is_complete_png(frame_path(result.out_dir, i), width, 32)
    # another shape in the same folder re-renders every frame; the same shape keeps them all
    again = run_generate(settings(tmp_path / "wide", aspect="16:9"))
    assert again.frames_rendered == 0 and again.frames_reused == n
    changed = run_generate(settings(tmp_path / "wide", aspect="1:1"))
    assert changed.frames_rendered == n and changed.styles_reused
    assert all(read_bytes(frame_path(plain.out_dir, i)) == read_bytes(frame_path(changed.out_dir, i))
               for i in range(n))
    assert os.path.isfile(str(EXAMPLE))


def test_render_again_keeps_the_shape(tmp_path):
    """render (a farm's unit, Update Frames) re-renders a frame in the job's own shape."""
    from traeumer_blender.frames import render_frames

    result = run_generate(settings(tmp_path / "wide", aspect="16:9"))
    path = frame_path(result.out_dir, 3)
    before = read_bytes(path)
    os.unlink(path)
    render_frames(result.styles_path, [3])
    assert read_bytes(path) == before
    assert png.read_png(path).shape == (32, 56, 3)


def test_wide_frames_are_not_uniform(tmp_path):
    result = run_generate(settings(tmp_path / "wide", aspect="2:1"))
    image = png.read_png(frame_path(result.out_dir, 0)).astype(np.float64)
    assert image.shape == (32, 64, 3)
    assert image[:, :4].std() > 1.0 and image[:, -4:].std() > 1.0
