# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading the engine's own .npz formats: styles, style curves, mappers, label sets.

They are numpy .npz archives loaded with ``allow_pickle=False``, so nothing in a file is
executed, even in a file someone else made. A missing, foreign or damaged file becomes one
TraeumerError line instead of a traceback.
"""

import contextlib
import os

import numpy as np

from .errors import TraeumerError


@contextlib.contextmanager
def parse_errors_as(message: str):
    """Inside the block, any error but TraeumerError becomes ``TraeumerError("<message> (<type>)")``.

    The block only turns a file's bytes into values, so whatever fails there (KeyError, a
    JSONDecodeError, a truncated zip, int() of a many-valued array...) means the file is not
    what it claims; the error's type stays in the line so that a real bug can still be told apart.
    """
    try:
        yield
    except TraeumerError:
        raise
    except Exception as error:
        raise TraeumerError(f"{message} ({type(error).__name__})") from None


@contextlib.contextmanager
def open_npz(path, file_format: str, what: str, missing_hint: str = ""):
    """Yield the arrays of one of our .npz files whose ``format`` field is ``file_format``.

    ``what`` names the kind of file in messages ("mapper file"). Convert the fields inside the
    ``with`` block: an error there is reported like a damaged file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        hint = f" ({missing_hint})" if missing_hint else ""
        raise TraeumerError(f"{what} not found: {path}{hint}")
    with parse_errors_as(f"{path} is not a TräumerAI {what}"):
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != file_format:
                raise ValueError(f"format is not {file_format}")
            yield data
