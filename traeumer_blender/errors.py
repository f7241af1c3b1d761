# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception type that carries a message meant for the user."""


class TraeumerError(Exception):
    """Bad input or an impossible request, described in one clear line.

    The CLI prints it to stderr and exits with status 2; the Blender side shows it as a report.
    Anything else escaping the engine is a bug.
    """
