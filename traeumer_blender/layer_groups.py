# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer groups (coarse / middle / fine): which w layers each group styles, and their defaults.

Groups follow the paper: for a 1024 px generator (18 w layers) coarse = layers 0-5, middle =
6-11, fine = 12-17. The rule behind it: a w layer styles the blocks up to a resolution; counting
the synthesis layers in pairs (one pair per block, 4x4 first), layers of blocks up to 16x16 are
coarse, up to 128x128 middle, above that fine. It gives 0-5 / 6-11 / 12-13 at 256 px and
0-5 / 6-9 / none at 64 px. An empty group is simply left out.

Plain numpy: Blender's side reads the names and defaults from here too.
"""

import math

import numpy as np

GROUP_NAMES = ("coarse", "middle", "fine")
# the largest block resolution of each group (fine: everything above)
GROUP_MAX_RESOLUTION = (16, 128, math.inf)
# the moving-average window of each group in seconds (the paper's calm-to-lively split)
DEFAULT_SMOOTHING_SECONDS = (3.0, 2.0, 0.3)


def layer_block_resolutions(n_latent: int):
    """Block resolution of each w layer, counting layers in pairs from 4x4 (4,4,8,8,16,16,...)."""
    return [4 * 2 ** (index // 2) for index in range(int(n_latent))]


def layer_groups(layer_resolutions):
    """Group index (0 coarse, 1 middle, 2 fine) of each w layer.

    ``layer_resolutions`` is the generator's ``G.layer_resolutions``; only its length decides the
    layout (see the module docstring), so both common ways of naming the resolution of a w layer
    that is shared by a ToRGB and the next block's first conv give the paper's split.
    """
    groups = []
    for resolution in layer_block_resolutions(len(layer_resolutions)):
        groups.append(next(g for g, top in enumerate(GROUP_MAX_RESOLUTION) if resolution <= top))
    return np.asarray(groups, dtype=np.int64)


def used_groups(layer_group) -> list:
    """Sorted group indices that own at least one layer."""
    return sorted(set(int(g) for g in np.asarray(layer_group).reshape(-1).tolist()))
