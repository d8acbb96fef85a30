# SPDX-License-Identifier: GPL-3.0-or-later
"""Batched rotation conversions (numpy only, float64, any leading shape).

Conventions
-----------
* Quaternions are ``(w, x, y, z)``. Functions that take quaternions normalise them
  first; a zero quaternion is treated as the identity.
* Matrices act on column vectors: ``v' = M @ v``.
* Euler angles are always indexed by axis, ``(x, y, z)``, like Blender's
  ``rotation_euler``. ``order`` is Blender's ``rotation_mode`` string and names the
  order in which the rotations are *applied* to a column vector, so
  ``'XYZ'`` means ``R = Rz(z) @ Ry(y) @ Rx(x)`` (same as ``mathutils.Euler``).
* A BVH channel list ``Zrotation Xrotation Yrotation`` means ``M = Rz @ Rx @ Ry``,
  which is Blender order ``'YXZ'``; see :func:`bvh_order_to_blender`.
* Axis-angle uses Blender's layout ``(angle, x, y, z)``.
* 6D rotations (Zhou et al. 2019) are the first two *columns* of the matrix,
  concatenated: ``(m00, m10, m20, m01, m11, m21)``.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "EULER_ORDERS",
    "quat_normalize",
    "quat_to_matrix",
    "matrix_to_quat",
    "quat_mul",
    "quat_conj",
    "quat_inv",
    "quat_rotate",
    "quat_identity",
    "axis_matrix",
    "axis_angle_to_matrix",
    "axis_angle_to_quat",
    "quat_to_axis_angle",
    "euler_to_matrix",
    "matrix_to_euler",
    "euler_to_quat",
    "quat_to_euler",
    "bvh_order_to_blender",
    "blender_order_to_bvh",
    "rot6d_from_matrix",
    "matrix_from_rot6d",
]

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_AXIS = {"X": 0, "Y": 1, "Z": 2}
_EPS = 1e-12


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _check_order(order: str) -> str:
    o = str(order).upper()
    if o not in EULER_ORDERS:
        raise ValueError(f"unknown Euler order {order!r}; expected one of {EULER_ORDERS}")
    return o


# --------------------------------------------------------------------------- quaternions


def quat_identity(shape=()) -> np.ndarray:
    """Identity quaternions of the given leading shape (``shape + (4,)``)."""
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    q = np.zeros(shape + (4,), dtype=np.float64)
    q[..., 0] = 1.0
    return q


def quat_normalize(q) -> np.ndarray:
    """Unit quaternions; zero (or non-finite-norm-zero) quaternions become the identity."""
    q = _f64(q)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    bad = n < _EPS
    out = q / np.where(bad, 1.0, n)
    if np.any(bad):
        out = np.where(bad, np.array([1.0, 0.0, 0.0, 0.0]), out)
    return out


def quat_conj(q) -> np.ndarray:
    """Conjugate ``(w, -x, -y, -z)`` (the inverse of a unit quaternion)."""
    q = _f64(q)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_inv(q) -> np.ndarray:
    """Inverse of (not necessarily unit) quaternions."""
    q = _f64(q)
    return quat_conj(q) / np.sum(q * q, axis=-1, keepdims=True)


def quat_mul(a, b) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``); broadcasts."""
    a = _f64(a)
    b = _f64(b)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        axis=-1,
    )


def quat_rotate(q, v) -> np.ndarray:
    """Rotate vectors ``v[..., 3]`` by quaternions ``q[..., 4]`` (normalised); broadcasts."""
    q = quat_normalize(q)
    v = _f64(v)
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_to_matrix(q) -> np.ndarray:
    """``q[..., 4]`` (w, x, y, z) -> rotation matrices ``[..., 3, 3]``."""
    q = quat_normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    m = np.empty(q.shape[:-1] + (3, 3), dtype=np.float64)
    m[..., 0, 0] = 1.0 - 2.0 * (yy + zz)
    m[..., 0, 1] = 2.0 * (xy - wz)
    m[..., 0, 2] = 2.0 * (xz + wy)
    m[..., 1, 0] = 2.0 * (xy + wz)
    m[..., 1, 1] = 1.0 - 2.0 * (xx + zz)
    m[..., 1, 2] = 2.0 * (yz - wx)
    m[..., 2, 0] = 2.0 * (xz - wy)
    m[..., 2, 1] = 2.0 * (yz + wx)
    m[..., 2, 2] = 1.0 - 2.0 * (xx + yy)
    return m


def matrix_to_quat(m) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``[..., 4]`` with ``w >= 0``.

    Uses Shepperd's method (picks the largest of the four diagonal-derived terms), so it
    is numerically stable for all rotations, including 180 degrees.
    """
    m = _f64(m)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    # Candidate 4*q_i^2 terms.
    cand = np.stack((tr, m00, m11, m22), axis=-1)
    choice = np.argmax(cand, axis=-1)
    q = np.empty(m.shape[:-2] + (4,), dtype=np.float64)

    def sel(c):
        return choice == c

    # w largest
    s = np.sqrt(np.maximum(1.0 + tr, 0.0)) * 2.0  # 4w
    s = np.where(s < _EPS, 1.0, s)
    qw = np.stack(
        (0.25 * s, (m[..., 2, 1] - m[..., 1, 2]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s,
         (m[..., 1, 0] - m[..., 0, 1]) / s), axis=-1)
    s = np.sqrt(np.maximum(1.0 + m00 - m11 - m22, 0.0)) * 2.0  # 4x
    s = np.where(s < _EPS, 1.0, s)
    qx = np.stack(
        ((m[..., 2, 1] - m[..., 1, 2]) / s, 0.25 * s, (m[..., 0, 1] + m[..., 1, 0]) / s,
         (m[..., 0, 2] + m[..., 2, 0]) / s), axis=-1)
    s = np.sqrt(np.maximum(1.0 - m00 + m11 - m22, 0.0)) * 2.0  # 4y
    s = np.where(s < _EPS, 1.0, s)
    qy = np.stack(
        ((m[..., 0, 2] - m[..., 2, 0]) / s, (m[..., 0, 1] + m[..., 1, 0]) / s, 0.25 * s,
         (m[..., 1, 2] + m[..., 2, 1]) / s), axis=-1)
    s = np.sqrt(np.maximum(1.0 - m00 - m11 + m22, 0.0)) * 2.0  # 4z
    s = np.where(s < _EPS, 1.0, s)
    qz = np.stack(
        ((m[..., 1, 0] - m[..., 0, 1]) / s, (m[..., 0, 2] + m[..., 2, 0]) / s,
         (m[..., 1, 2] + m[..., 2, 1]) / s, 0.25 * s), axis=-1)
    q = np.where(sel(0)[..., None], qw,
                 np.where(sel(1)[..., None], qx, np.where(sel(2)[..., None], qy, qz)))
    q = np.where(q[..., :1] < 0.0, -q, q)
    return quat_normalize(q)


# --------------------------------------------------------------------------- axis-angle


def axis_angle_to_matrix(aa) -> np.ndarray:
    """Blender axis-angle ``[..., 4]`` = (angle, x, y, z) -> matrices ``[..., 3, 3]``.

    The axis is normalised; a zero axis gives the identity.
    """
    return quat_to_matrix(axis_angle_to_quat(aa))


def axis_angle_to_quat(aa) -> np.ndarray:
    """Blender axis-angle ``[..., 4]`` = (angle, x, y, z) -> quaternions ``[..., 4]``."""
    aa = _f64(aa)
    angle = aa[..., 0]
    axis = aa[..., 1:]
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    bad = n[..., 0] < _EPS
    axis = axis / np.where(n < _EPS, 1.0, n)
    half = 0.5 * angle
    q = np.concatenate((np.cos(half)[..., None], np.sin(half)[..., None] * axis), axis=-1)
    return np.where(bad[..., None], np.array([1.0, 0.0, 0.0, 0.0]), q)


def quat_to_axis_angle(q) -> np.ndarray:
    """Quaternions -> Blender axis-angle ``[..., 4]`` = (angle, x, y, z), angle in [0, pi].

    The identity maps to ``(0, 0, 1, 0)`` (Blender's default axis is +Y).
    """
    q = quat_normalize(q)
    q = np.where(q[..., :1] < 0.0, -q, q)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1)
    angle = 2.0 * np.arctan2(s, q[..., 0])
    small = s < _EPS
    axis = v / np.where(small, 1.0, s)[..., None]
    axis = np.where(small[..., None], np.array([0.0, 1.0, 0.0]), axis)
    return np.concatenate((angle[..., None], axis), axis=-1)


# --------------------------------------------------------------------------- Euler


def axis_matrix(axis: int, angle) -> np.ndarray:
    """Rotations ``[..., 3, 3]`` by ``angle`` (radians) about coordinate axis ``axis`` (0 x, 1 y,
    2 z), counter-clockwise looking down the axis."""
    c = np.cos(angle)
    s = np.sin(angle)
    m = np.zeros(np.shape(angle) + (3, 3), dtype=np.float64)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., i, j] = -s
    m[..., j, i] = s
    return m


def euler_to_matrix(angles, order: str = "XYZ") -> np.ndarray:
    """Euler angles ``[..., 3]`` (x, y, z; radians) -> matrices ``[..., 3, 3]``.

    ``order`` as Blender's rotation_mode: ``'XYZ'`` gives ``Rz @ Ry @ Rx``.
    """
    order = _check_order(order)
    angles = _f64(angles)
    i, j, k = (_AXIS[c] for c in order)
    return axis_matrix(k, angles[..., k]) @ axis_matrix(j, angles[..., j]) @ axis_matrix(
        i, angles[..., i])


def matrix_to_euler(m, order: str = "XYZ") -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` -> Euler angles ``[..., 3]`` (x, y, z).

    Inverse of :func:`euler_to_matrix`. The middle angle lies in [-pi/2, pi/2], the others
    in (-pi, pi]. At gimbal lock (middle angle = +-90 degrees) the last-applied angle is
    set to 0 and the first-applied one absorbs the whole rotation about the shared axis.
    """
    order = _check_order(order)
    m = _f64(m)
    i, j, k = (_AXIS[c] for c in order)
    # Parity of the permutation (i, j, k): +1 for XYZ, YZX, ZXY.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    # R = R_k(c) R_j(b) R_i(a)
    cy = np.hypot(m[..., i, i], m[..., j, i])
    b = np.arctan2(-sign * m[..., k, i], cy)
    a = np.arctan2(sign * m[..., k, j], m[..., k, k])
    c = np.arctan2(sign * m[..., j, i], m[..., i, i])
    locked = cy < 1e-9
    if np.any(locked):
        a_l = np.arctan2(-sign * m[..., j, k], m[..., j, j])
        a = np.where(locked, a_l, a)
        c = np.where(locked, 0.0, c)
    out = np.empty(m.shape[:-2] + (3,), dtype=np.float64)
    out[..., i] = a
    out[..., j] = b
    out[..., k] = c
    return out


def euler_to_quat(angles, order: str = "XYZ") -> np.ndarray:
    """Euler angles ``[..., 3]`` (x, y, z) -> quaternions ``[..., 4]`` (not sign-canonical)."""
    order = _check_order(order)
    angles = _f64(angles)
    q = None
    for ch in order:  # applied first -> multiplied on the right
        ax = _AXIS[ch]
        half = 0.5 * angles[..., ax]
        qa = np.zeros(half.shape + (4,), dtype=np.float64)
        qa[..., 0] = np.cos(half)
        qa[..., 1 + ax] = np.sin(half)
        q = qa if q is None else quat_mul(qa, q)
    return q


def quat_to_euler(q, order: str = "XYZ") -> np.ndarray:
    """Quaternions ``[..., 4]`` -> Euler angles ``[..., 3]`` (x, y, z)."""
    return matrix_to_euler(quat_to_matrix(q), order)


def bvh_order_to_blender(order: str) -> str:
    """BVH channel order (as listed, e.g. ``'ZXY'``) -> Blender rotation_mode (``'YXZ'``).

    BVH channels ``Zrotation Xrotation Yrotation`` compose as ``M = Rz @ Rx @ Ry``: the
    *last* listed rotation is applied first, so the Blender order is the reverse string.
    """
    o = str(order).upper()
    if len(o) != 3 or sorted(o) != ["X", "Y", "Z"]:
        raise ValueError(f"invalid BVH rotation order {order!r}")
    return o[::-1]


def blender_order_to_bvh(order: str) -> str:
    """Inverse of :func:`bvh_order_to_blender` (``'YXZ'`` -> ``'ZXY'``)."""
    return _check_order(order)[::-1]


# --------------------------------------------------------------------------- 6D


def rot6d_from_matrix(m) -> np.ndarray:
    """Matrices ``[..., 3, 3]`` -> 6D ``[..., 6]``: first column then second column."""
    m = _f64(m)
    return np.concatenate((m[..., :, 0], m[..., :, 1]), axis=-1)


def matrix_from_rot6d(r) -> np.ndarray:
    """6D ``[..., 6]`` -> rotation matrices ``[..., 3, 3]`` via Gram-Schmidt.

    Degenerate inputs (zero or parallel columns) fall back to a valid rotation.
    """
    r = _f64(r)
    a1 = r[..., 0:3]
    a2 = r[..., 3:6]
    n1 = np.linalg.norm(a1, axis=-1, keepdims=True)
    b1 = np.where(n1 < _EPS, np.array([1.0, 0.0, 0.0]), a1 / np.where(n1 < _EPS, 1.0, n1))
    a2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    n2 = np.linalg.norm(a2, axis=-1, keepdims=True)
    if np.any(n2 < _EPS):
        # Any vector perpendicular to b1.
        alt = np.where(np.abs(b1[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]),
                       np.array([0.0, 1.0, 0.0]))
        alt = alt - np.sum(b1 * alt, axis=-1, keepdims=True) * b1
        alt = alt / np.linalg.norm(alt, axis=-1, keepdims=True)
        b2 = np.where(n2 < _EPS, alt, a2 / np.where(n2 < _EPS, 1.0, n2))
    else:
        b2 = a2 / n2
    b3 = np.cross(b1, b2)
    return np.stack((b1, b2, b3), axis=-1)
