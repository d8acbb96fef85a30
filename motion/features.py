# SPDX-License-Identifier: GPL-3.0-or-later
"""Redundant per-frame motion features in the HumanML3D style (numpy only).

For canonical motion (see :mod:`.canonical`) of ``F`` frames and ``J`` joints,
:func:`motion_to_features` returns ``(F, D)`` with ``D = 12 J + 1 + n_feet`` (257 for the
21-joint canonical skeleton), one row per input frame, in this order (:func:`feature_layout`):

==================  ==========  ============================================================
name                size        meaning (frame t; "heading frame" = yaw ``theta_t`` removed)
==================  ==========  ============================================================
root_rot_vel        1           ``theta_t - theta_(t-1)`` wrapped to (-pi, pi] (rad/frame)
root_lin_vel        2           root displacement ``x_t - x_(t-1)`` in the heading frame of
                                frame t-1, ground components (x, z) (units/frame)
root_height         1           root height ``y_t`` (units)
joint_positions     3 (J-1)     joints 1..J-1: ``Ry(-theta_t) (p_j - (x_t, 0, z_t))``, heights
                                kept absolute
rotations           6 J         6D (first two matrix columns) of joint 0's heading-free world
                                rotation ``Ry(-theta_t) R_root`` then joints 1..J-1's local
                                rotations
joint_velocities    3 J         all joints: ``Ry(-theta_(t-1)) (p_t - p_(t-1))`` (units/frame)
foot_contacts       n_feet      1.0 where a foot joint is below its contact height and slower
                                than ``contact_speed``, else 0.0
==================  ==========  ============================================================

Differences are backward (frame t minus frame t-1); frame 0 has none and copies frame 1's
(zeros for a one-frame clip). So the features keep every frame: ``F`` in, ``F`` out.

The heading ``theta_t`` is the yaw (about +Y, 0 = facing +Z) of
``up x (R_root @ right) + horizontal(R_root @ forward)`` with the root's local ``right`` and
``forward`` axes from the skeleton: the pelvis' left-right axis stays level when the body
bends forward, and the two terms never vanish together.

:func:`features_to_motion` rebuilds local rotations and the root trajectory from the rotation
and root parts only (no IK, positions and velocities unused), integrating from the convention
``theta_0 = 0`` and root ``(0, y_0, 0)``: the result equals the input motion after the yaw
rotation and ground translation that bring its first frame to face +Z at the origin
(:func:`canonicalize_start`). Features -> motion -> features is the identity to float
precision for any features that came from motion.

Mirroring (:func:`mirror_features`) is a signed permutation of feature dimensions that equals
``motion_to_features(*canonical.mirror_motion(...))``.
"""
from __future__ import annotations

import numpy as np

from . import rotations as _rot
from .canonical import SKELETON, CanonicalSkeleton, WORLD_MIRROR
from .skeleton import forward_kinematics

__all__ = [
    "FeatureError",
    "feature_layout",
    "feature_dim",
    "heading_angles",
    "motion_to_features",
    "features_to_motion",
    "features_to_positions",
    "canonicalize_start",
    "feature_mirror_map",
    "mirror_features",
    "REDUCED_PARTS",
]

#: The parts :func:`features_to_motion` reads; the rest are redundant.
REDUCED_PARTS = ("root_rot_vel", "root_lin_vel", "root_height", "rotations")


class FeatureError(ValueError):
    """Malformed motion or feature arrays."""


def _check_skeleton(skeleton) -> CanonicalSkeleton:
    if not isinstance(skeleton, CanonicalSkeleton):
        raise FeatureError(
            "features need a canonical.CanonicalSkeleton (mirror pairs, foot joints, root axes), "
            f"got {type(skeleton).__name__}")
    return skeleton


def feature_layout(skeleton: CanonicalSkeleton = SKELETON) -> dict:
    """Named ``slice`` s of the feature vector, in order (see the module docstring)."""
    sk = _check_skeleton(skeleton)
    J, nf = sk.num_joints, len(sk.foot_joints)
    sizes = (("root_rot_vel", 1), ("root_lin_vel", 2), ("root_height", 1),
             ("joint_positions", 3 * (J - 1)), ("rotations", 6 * J),
             ("joint_velocities", 3 * J), ("foot_contacts", nf))
    out, start = {}, 0
    for name, n in sizes:
        out[name] = slice(start, start + n)
        start += n
    return out


def feature_dim(skeleton: CanonicalSkeleton = SKELETON) -> int:
    """Length of the feature vector (257 for the canonical skeleton)."""
    return feature_layout(skeleton)["foot_contacts"].stop


# =========================================================================== yaw helpers


def _yaw(theta, v, inverse=False):
    """Rotate vectors ``v[..., 3]`` about +Y by ``theta`` (``-theta`` if ``inverse``)."""
    c = np.cos(theta)
    s = np.sin(theta)
    if inverse:
        s = -s
    out = np.empty(np.broadcast_shapes(np.shape(v), np.shape(theta) + (3,)))
    out[..., 0] = c * v[..., 0] + s * v[..., 2]
    out[..., 1] = v[..., 1]
    out[..., 2] = -s * v[..., 0] + c * v[..., 2]
    return out


def _yaw_matrix(theta):
    c, s = np.cos(theta), np.sin(theta)
    m = np.zeros(np.shape(theta) + (3, 3))
    m[..., 0, 0] = c
    m[..., 0, 2] = s
    m[..., 1, 1] = 1.0
    m[..., 2, 0] = -s
    m[..., 2, 2] = c
    return m


def _wrap(a):
    """Angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - a, 2.0 * np.pi)


def heading_angles(root_rotations, skeleton: CanonicalSkeleton = SKELETON) -> np.ndarray:
    """Yaw ``theta`` (radians, about +Y, 0 = facing +Z) of root world rotations
    ``[..., 4]`` quaternions or ``[..., 3, 3]`` matrices."""
    sk = _check_skeleton(skeleton)
    r = np.asarray(root_rotations, dtype=np.float64)
    m = _rot.quat_to_matrix(r) if r.shape[-1] == 4 else r
    right = m @ sk.root_right
    fwd = m @ sk.root_forward
    fx = right[..., 2] + fwd[..., 0]   # up x right = (r_z, 0, -r_x)
    fz = -right[..., 0] + fwd[..., 2]
    return np.arctan2(fx, fz)


def _prepend_first(d):
    """Backward differences ``(F-1, ...)`` -> ``(F, ...)`` with frame 0 copying frame 1."""
    if d.shape[0] == 0:
        return np.zeros((1,) + d.shape[1:])
    return np.concatenate([d[:1], d], axis=0)


# =========================================================================== motion -> features


def motion_to_features(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON,
                       fps: float = 20.0, *, return_positions: bool = False):
    """Canonical motion ``(F, J, 4)`` quaternions + ``(F, 3)`` root translation -> features
    ``(F, D)`` float64 (one row per frame; see the module docstring).

    ``fps`` only sets the contact speed threshold (``skeleton.contact_speed`` is per second);
    all velocities are per frame. ``return_positions`` also returns the FK positions
    ``(F, J, 3)``.
    """
    sk = _check_skeleton(skeleton)
    q = np.asarray(local_quats, dtype=np.float64)
    x = np.asarray(root_translation, dtype=np.float64)
    J = sk.num_joints
    if q.ndim != 3 or q.shape[1:] != (J, 4):
        raise FeatureError(f"local_quats must be (frames, {J}, 4), got shape {q.shape}")
    F = q.shape[0]
    if F < 1:
        raise FeatureError("motion has no frames")
    if x.shape != (F, 3):
        raise FeatureError(f"root_translation must be ({F}, 3), got shape {x.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(x))):
        raise FeatureError("motion contains NaN or infinite values")
    if np.any(np.linalg.norm(q, axis=-1) < 1e-8):
        raise FeatureError("local_quats contains zero-length quaternions")
    fps = float(fps)
    if not (np.isfinite(fps) and fps > 0):
        raise FeatureError(f"fps must be finite and > 0, got {fps!r}")

    q = _rot.quat_normalize(q)
    mats = _rot.quat_to_matrix(q)                       # (F, J, 3, 3)
    pos = forward_kinematics(sk, q, x)                   # (F, J, 3)
    theta = heading_angles(mats[:, 0], sk)               # (F,)

    root_rot_vel = _prepend_first(_wrap(np.diff(theta)))[:, None]
    lin = _yaw(theta[:-1], x[1:] - x[:-1], inverse=True)[:, [0, 2]]
    root_lin_vel = _prepend_first(lin)
    root_height = x[:, 1:2]

    ground = x.copy()
    ground[:, 1] = 0.0
    ric = _yaw(theta[:, None], pos[:, 1:] - ground[:, None], inverse=True)

    rel = mats.copy()
    rel[:, 0] = _yaw_matrix(-theta) @ mats[:, 0]
    rot6 = _rot.rot6d_from_matrix(rel)                   # (F, J, 6)

    vel = _prepend_first(_yaw(theta[:-1, None], pos[1:] - pos[:-1], inverse=True))

    feet = pos[:, sk.foot_joints]                        # (F, n, 3)
    speed = _prepend_first(np.linalg.norm(np.diff(feet, axis=0), axis=-1)) * fps
    contacts = ((speed < sk.contact_speed) & (feet[..., 1] < sk.contact_heights)).astype(
        np.float64)

    out = np.concatenate([root_rot_vel, root_lin_vel, root_height, ric.reshape(F, -1),
                          rot6.reshape(F, -1), vel.reshape(F, -1), contacts], axis=1)
    return (out, pos) if return_positions else out


# =========================================================================== features -> motion


def _check_features(features, sk):
    f = np.asarray(features, dtype=np.float64)
    D = feature_dim(sk)
    if f.ndim < 2 or f.shape[-1] != D:
        raise FeatureError(f"features must be (..., frames, {D}), got shape {f.shape}")
    if f.shape[-2] < 1:
        raise FeatureError("features have no frames")
    if not np.all(np.isfinite(f)):
        raise FeatureError("features contain NaN or infinite values")
    return f


def _root_trajectory(f, lay):
    """Heading angles ``(..., F)`` and root positions ``(..., F, 3)`` from the root parts."""
    w = f[..., lay["root_rot_vel"]][..., 0]
    theta = np.zeros_like(w)
    theta[..., 1:] = np.cumsum(w[..., 1:], axis=-1)
    v = f[..., lay["root_lin_vel"]]
    step = np.zeros(v.shape[:-1] + (3,))
    step[..., 0] = v[..., 0]
    step[..., 2] = v[..., 1]
    world = _yaw(theta[..., :-1], step[..., 1:, :])      # displacement into frame t
    root = np.zeros(v.shape[:-1] + (3,))
    root[..., 1:, :] = np.cumsum(world, axis=-2)
    root[..., 1] = f[..., lay["root_height"]][..., 0]
    return theta, root


def features_to_motion(features, skeleton: CanonicalSkeleton = SKELETON):
    """Features ``(..., F, D)`` -> ``(local_quats (..., F, J, 4), root_translation (..., F, 3))``.

    Uses only :data:`REDUCED_PARTS`: the heading is integrated from ``root_rot_vel`` (frame
    0's entry ignored, ``theta_0 = 0``), the ground trajectory from ``root_lin_vel`` (frame
    0 at the origin), the height is ``root_height``; rotations come from the 6D part
    (Gram-Schmidt, so any 6 numbers give a rotation). Quaternions have ``w >= 0``.
    """
    sk = _check_skeleton(skeleton)
    f = _check_features(features, sk)
    lay = feature_layout(sk)
    J = sk.num_joints
    theta, root = _root_trajectory(f, lay)
    r6 = f[..., lay["rotations"]].reshape(f.shape[:-1] + (J, 6))
    mats = _rot.matrix_from_rot6d(r6)
    mats[..., 0, :, :] = _yaw_matrix(theta) @ mats[..., 0, :, :]
    return _rot.matrix_to_quat(mats), root


def features_to_positions(features, skeleton: CanonicalSkeleton = SKELETON) -> np.ndarray:
    """World joint positions ``(..., F, J, 3)`` from the ``joint_positions`` part and the
    integrated root trajectory (no FK; HumanML3D's ``recover_from_ric``), in the same frame
    as :func:`features_to_motion`."""
    sk = _check_skeleton(skeleton)
    f = _check_features(features, sk)
    lay = feature_layout(sk)
    J = sk.num_joints
    theta, root = _root_trajectory(f, lay)
    ric = f[..., lay["joint_positions"]].reshape(f.shape[:-1] + (J - 1, 3))
    pos = _yaw(theta[..., None], ric)
    pos[..., 0] += root[..., None, 0]
    pos[..., 2] += root[..., None, 2]
    return np.concatenate([root[..., None, :], pos], axis=-2)


def canonicalize_start(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON):
    """Rotate (about +Y) and translate (on the ground) motion so that frame 0 faces +Z with
    the root above the origin: what ``features_to_motion(motion_to_features(m))`` returns."""
    sk = _check_skeleton(skeleton)
    q = _rot.quat_normalize(np.asarray(local_quats, dtype=np.float64))
    x = np.asarray(root_translation, dtype=np.float64)
    theta0 = heading_angles(q[0, 0], sk)
    yq = np.array([np.cos(-theta0 / 2), 0.0, np.sin(-theta0 / 2), 0.0])
    q = q.copy()
    q[:, 0] = _rot.quat_mul(yq, q[:, 0])
    g = x - np.array([x[0, 0], 0.0, x[0, 2]])
    return q, _yaw(-theta0, g)


# =========================================================================== mirroring


def feature_mirror_map(skeleton: CanonicalSkeleton = SKELETON):
    """``(perm, sign)`` with ``mirror(f) = f[..., perm] * sign`` (see :func:`mirror_features`)."""
    sk = _check_skeleton(skeleton)
    lay = feature_layout(sk)
    D = feature_dim(sk)
    J = sk.num_joints
    m = sk.mirror_index
    M = WORLD_MIRROR
    perm = np.arange(D)
    sign = np.ones(D)

    def put(sl, src_idx, sgn):
        perm[sl] = src_idx
        sign[sl] = sgn

    s = lay["root_rot_vel"].start
    put(slice(s, s + 1), [s], [-1.0])
    s = lay["root_lin_vel"].start
    put(slice(s, s + 2), [s, s + 1], [M[0], M[2]])
    s0 = lay["joint_positions"].start
    for j in range(1, J):
        dst = s0 + 3 * (j - 1)
        src = s0 + 3 * (m[j] - 1)
        put(slice(dst, dst + 3), np.arange(src, src + 3), M)
    s0 = lay["rotations"].start
    for j in range(J):
        left = M if j == 0 else sk.mirror_signs[sk.parents[j]]
        right = sk.mirror_signs[j]
        dst = s0 + 6 * j
        src = s0 + 6 * m[j]
        # 6D index i = 3 * column + row; (A R B)[row, col] = a_row R[row, col] b_col
        sg = np.array([left[i % 3] * right[i // 3] for i in range(6)])
        put(slice(dst, dst + 6), np.arange(src, src + 6), sg)
    s0 = lay["joint_velocities"].start
    for j in range(J):
        dst = s0 + 3 * j
        src = s0 + 3 * m[j]
        put(slice(dst, dst + 3), np.arange(src, src + 3), M)
    s0 = lay["foot_contacts"].start
    for k, kk in enumerate(sk.foot_mirror):
        put(slice(s0 + k, s0 + k + 1), [s0 + kk], [1.0])
    return perm, sign


def mirror_features(features, skeleton: CanonicalSkeleton = SKELETON) -> np.ndarray:
    """Left/right mirror in feature space (``(..., D)``, any float dtype, kept).

    Equals ``motion_to_features(*mirror_motion(q, x))`` for ``motion_to_features(q, x)``;
    an involution.
    """
    sk = _check_skeleton(skeleton)
    f = np.asarray(features)
    D = feature_dim(sk)
    if f.ndim < 1 or f.shape[-1] != D:
        raise FeatureError(f"features must be (..., {D}), got shape {f.shape}")
    perm, sign = feature_mirror_map(sk)
    return f[..., perm] * sign.astype(f.dtype if np.issubdtype(f.dtype, np.floating)
                                      else np.float64)
