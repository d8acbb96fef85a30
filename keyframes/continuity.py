# SPDX-License-Identifier: GPL-3.0-or-later
"""Make rotation channels continuous before they are reduced.

A quaternion and its negation are the same rotation, and Euler angles are only defined modulo
2π, but an interpolating curve between keys treats each channel as a plain number: a sign flip
or a 2π wrap between two samples becomes a spurious spin. Every reducer is wrecked by them, so
they are removed first: quaternion signs are chosen so that consecutive quaternions lie in the
same hemisphere, and Euler channels are unwrapped.

When the rotation order of an Euler triple is known, :func:`euler_filter` also removes the
other ambiguity (what Blender's "Discontinuity (Euler) Filter" does): for any order
``ABC`` the triples ``(a, b, c)`` and ``(a + π, π − b, c + π)`` (angles listed in the order of
application, ``b`` about the middle axis) are the same rotation, and motion capture converted to
Euler angles often jumps between the two near gimbal lock.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "quat_continuous",
    "count_quat_flips",
    "euler_unwrap",
    "euler_filter",
    "count_euler_jumps",
    "make_continuous",
]

KINDS = ("quaternion", "euler", "other")


def _as_2d(a, width=None, name="array"):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or (width is not None and a.shape[1] != width):
        shape = f"(T, {width})" if width is not None else "(T, k)"
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def count_quat_flips(q) -> int:
    """Number of consecutive pairs whose dot product is negative (sign discontinuities)."""
    q = _as_2d(q, 4, "q")
    if len(q) < 2:
        return 0
    return int(np.count_nonzero(np.einsum("ij,ij->i", q[1:], q[:-1]) < 0.0))


def quat_continuous(q) -> np.ndarray:
    """Return a copy of ``q`` (T, 4), or (T, ..., 4) for several tracks at once, with signs
    flipped so that consecutive quaternions have a non-negative dot product. The first
    quaternion keeps its sign.

    Flipping row ``t`` negates its dot products with both neighbours, so the sign of row ``t`` is
    the running product of the signs of the original consecutive dot products.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim < 2 or q.shape[-1] != 4:
        raise ValueError(f"q must have shape (T, 4) or (T, ..., 4), got {q.shape}")
    out = q.copy()
    if len(q) < 2:
        return out
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    step = np.where(dots < 0.0, -1.0, 1.0)
    sign = np.concatenate((np.ones((1,) + step.shape[1:]), np.cumprod(step, axis=0)))
    out *= sign[..., None]
    return out


def euler_unwrap(e) -> np.ndarray:
    """Return a copy of ``e`` (T, k) in radians with 2π jumps removed per column."""
    e = _as_2d(e, None, "e")
    if len(e) < 2:
        return e.copy()
    return np.unwrap(e, axis=0)


def _wrap(d):
    return (d + np.pi) % (2.0 * np.pi) - np.pi


def _flip_columns(order: str):
    order = str(order).upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"Euler order must be a permutation of 'XYZ', got {order!r}")
    return ["XYZ".index(ax) for ax in order]  # first, middle, last axis → column


def _flip(e, cols):
    first, middle, last = cols
    f = e.copy()
    f[..., first] += np.pi
    f[..., middle] = np.pi - f[..., middle]
    f[..., last] += np.pi
    return f


def euler_filter(e, order: str = "XYZ") -> np.ndarray:
    """Return a copy of ``e`` (T, 3) — X, Y, Z angles in radians of one Euler rotation with
    rotation mode ``order`` (Blender's string, axes in order of application) — with every frame
    switched to whichever of its two equivalent triples is closer to the previous frame, then
    unwrapped. Every frame still describes exactly the same rotation.

    The choice is relative: a frame is on the other branch than its predecessor where the flipped
    triple is closer (wrapped distance), so the branch is a running parity, vectorised.
    """
    e = _as_2d(e, 3, "e")
    if len(e) < 2:
        return e.copy()
    cols = _flip_columns(order)
    prev = e[:-1]
    d_same = np.linalg.norm(_wrap(e[1:] - prev), axis=1)
    d_flip = np.linalg.norm(_wrap(_flip(e[1:], cols) - prev), axis=1)
    toggle = d_flip < d_same
    branch = np.concatenate(([False], (np.cumsum(toggle) % 2).astype(bool)))
    out = e.copy()
    out[branch] = _flip(e[branch], cols)
    return np.unwrap(out, axis=0)


def count_euler_jumps(e, threshold: float = np.pi / 2) -> int:
    """Number of consecutive pairs where some angle changes by more than ``threshold``."""
    e = _as_2d(e, None, "e")
    if len(e) < 2:
        return 0
    return int(np.count_nonzero(np.abs(np.diff(e, axis=0)).max(axis=1) > threshold))


def make_continuous(values, groups) -> np.ndarray:
    """Apply :func:`quat_continuous` / :func:`euler_unwrap` per channel group.

    ``values`` is (T, C); ``groups`` is a list of ``(kind, column_indices)`` with kind one of
    ``'quaternion'`` (exactly 4 columns, w x y z in any fixed order), ``'euler'`` (radians) or
    ``'other'`` (left alone). Columns not named in any group are left alone. An Euler group may
    carry its rotation mode as a third element, ``('euler', [x, y, z], 'ZXY')``; then
    :func:`euler_filter` is used (X, Y, Z columns in that order), else :func:`euler_unwrap`.
    Returns a new array.
    """
    out = _as_2d(values, None, "values").copy()
    for group in groups or ():
        kind, cols = group[0], group[1]
        order = group[2] if len(group) > 2 else None
        cols = np.asarray(cols, dtype=np.intp).reshape(-1)
        if kind == "quaternion":
            if len(cols) != 4:
                raise ValueError(f"a quaternion group needs 4 columns, got {len(cols)}")
            out[:, cols] = quat_continuous(out[:, cols])
        elif kind == "euler":
            if order is not None and len(cols) == 3:
                out[:, cols] = euler_filter(out[:, cols], order)
            elif len(cols):
                out[:, cols] = euler_unwrap(out[:, cols])
        elif kind == "other":
            continue
        else:
            raise ValueError(f"unknown channel group kind {kind!r}; expected one of {KINDS}")
    return out
