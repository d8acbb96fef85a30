# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors the user can act on. Operators turn these into a report and change nothing."""


class SparseMotionError(Exception):
    """Base class: the message is written for an animator and shown as is."""


class InputError(SparseMotionError):
    """The input (object, action, file, setting) cannot be used; nothing was changed."""
