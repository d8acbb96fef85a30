# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors the user can act on (operators turn these into a report and change nothing), and
the cancellation of model work."""


class SparseMotionError(Exception):
    """Base class: the message is written for an animator and shown as is."""


class InputError(SparseMotionError):
    """The input (object, action, file, setting) cannot be used; nothing was changed."""


class Cancelled(Exception):
    """Model work (a generation, a training) stopped because its ``cancel`` callback said so;
    nothing was written. Not a user error: the operators report it as a cancellation."""
