# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors raised by the inference layer."""

from ..errors import SparseMotionError


class ModelPackageError(SparseMotionError, RuntimeError):
    """A shipped model package is missing, incomplete, corrupt or inconsistent.

    The message names the file and what is wrong with it; the usual fix is to reinstall
    the extension (the packages under ``models/`` are shipped with it, never downloaded).
    """
