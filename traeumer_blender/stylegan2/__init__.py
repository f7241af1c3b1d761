# SPDX-License-Identifier: GPL-3.0-or-later
"""StyleGAN2 generator (the image half of the engine), plain PyTorch, no custom CUDA/C++.

    from traeumer_blender.stylegan2 import load_generator, inspect_checkpoint
    G = load_generator("stylegan2-ffhq.pkl", device="auto", precision="auto")

Files: rosinality ``.pt``, NVIDIA PyTorch pickles (stylegan2-ada-pytorch, stylegan3 repo's
StyleGAN2), NVIDIA TensorFlow pickles (stylegan2, stylegan2-ada TF, forks such as WikiArt),
read without running any code from the file. ``"default"`` is a built-in untrained generator.
"""

from .generator import Generator, inspect_checkpoint, load_generator, pick_device, psnr  # noqa: F401
from .network import GeneratorConfig  # noqa: F401

__all__ = ["load_generator", "inspect_checkpoint", "Generator", "GeneratorConfig"]
