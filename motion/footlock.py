# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot locking: keep planted feet still (canonical motion, numpy only).

Generated motion decoded from features slides its feet where the root velocity and the joint
rotations disagree. :func:`lock_feet` first moves the root so the body is carried by its
planted toes (:func:`correct_root`, smoothed), then finds each foot's ground contacts (toe
below ``height_cm`` and slower than ``speed_cm`` per frame, runs of at least two frames),
holds the toe at the run's median ground position and moves the leg there with two-bone IK
(hip fixed, knee kept in its plane, the foot keeps its world orientation). Toes that swing
through lower than ``clear_cm`` are lifted clear the same way (they would scrape the floor).
Outside the runs the correction fades out (smoothstep over ``blend`` frames), so nothing
pops. Returns new local rotations and root translation.
"""
from __future__ import annotations

import numpy as np

from . import rotations as _rot
from .canonical import SKELETON, CanonicalSkeleton
from .skeleton import forward_kinematics

__all__ = ["lock_feet", "correct_root", "LEGS"]

#: (upper leg, lower leg, foot, toes) joint names per side.
LEGS = (("UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L"),
        ("UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R"))


def _runs(mask):
    """(start, stop) of the runs of True in a 1-D bool array."""
    m = np.concatenate([[False], mask, [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _normalize(v, fallback):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-9, v / np.maximum(n, 1e-12), fallback)


def _quat_between(a, b):
    """Shortest-arc rotation taking directions a to b (…, 3) → (…, 4)."""
    a = _normalize(a, np.array([0.0, 1.0, 0.0]))
    b = _normalize(b, np.array([0.0, 1.0, 0.0]))
    w = 1.0 + np.sum(a * b, axis=-1, keepdims=True)
    q = np.concatenate([w, np.cross(a, b)], axis=-1)
    return _rot.quat_normalize(q)


def _offsets(F, runs, d_runs, blend):
    """Per-frame horizontal correction: d inside runs, fading out (smoothstep) outside."""
    out = np.zeros((F, 2))
    weight = np.zeros(F)
    for (s, e), d in zip(runs, d_runs):
        out[s:e] = d
        weight[s:e] = 2.0  # inside a run always wins
        for k in range(1, blend + 1):
            u = k / (blend + 1)
            w = 1.0 - u * u * (3.0 - 2.0 * u)
            for t, dd in ((s - k, d[0]), (e - 1 + k, d[-1])):
                if 0 <= t < F and w > weight[t]:
                    weight[t] = w
                    out[t] = w * dd
    return out


def correct_root(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON, *,
                 height_cm: float = 6.0, speed_cm: float = 12.0):
    """Root translation whose ground-plane steps cancel the mean slide of the toes that are
    on the ground (below ``height_cm`` in both frames, slower than ``speed_cm`` per frame):
    the body is carried by its planted feet instead of sliding over them. The correction
    is smoothed over 7 frames."""
    x = np.array(root_translation, dtype=np.float64)
    pos = forward_kinematics(skeleton, local_quats, x)
    names = list(skeleton.names)
    toes = pos[:, [names.index(leg[3]) for leg in LEGS]]           # (F, 2, 3)
    step = np.diff(toes[..., [0, 2]], axis=0)                       # (F-1, 2, 2)
    low = (toes[1:, :, 1] < height_cm) & (toes[:-1, :, 1] < height_cm)
    planted = low & (np.linalg.norm(step, axis=-1) < speed_cm)      # (F-1, 2)
    n = planted.sum(axis=1)
    slide = np.where(n[:, None] > 0, (step * planted[..., None]).sum(axis=1)
                     / np.maximum(n, 1)[:, None], 0.0)
    shift = np.zeros((len(x), 2))
    shift[1:] = -np.cumsum(slide, axis=0)
    # smoothed (triangle, 7 frames) so the root's velocity does not jump at contact changes;
    # the IK in lock_feet removes what smoothing leaves
    k = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]) / 16.0
    for c in range(2):
        shift[:, c] = np.convolve(np.pad(shift[:, c], 3, mode="edge"), k, mode="valid")
    x[:, [0, 2]] += shift
    return x


def _lift(toe_y, swing, clear_cm):
    """Upward correction that brings swinging toes to ``clear_cm``, widened and smoothed."""
    need = np.where(swing, np.clip(clear_cm - toe_y, 0.0, None), 0.0)
    if not need.any():
        return need
    F = len(need)
    pad = np.pad(need, 2, mode="edge")
    wide = np.max(np.stack([pad[i:i + F] for i in range(5)]), axis=0)
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    smooth = np.convolve(np.pad(wide, 2, mode="edge"), kernel, mode="valid")
    return np.maximum(smooth, need)


def lock_feet(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON, *,
              height_cm: float = 6.0, speed_cm: float = 6.0, blend: int = 4,
              clear_cm: float = 6.0, root: bool = True, return_info: bool = False):
    """Planted feet held still: :func:`correct_root` (``root=True``), then two-bone IK on
    the remaining slides (see the module docstring). Returns ``(local_quats,
    root_translation)``."""
    q = _rot.quat_normalize(np.asarray(local_quats, dtype=np.float64))
    x = np.asarray(root_translation, dtype=np.float64)
    F = q.shape[0]
    names = list(skeleton.names)
    parents = skeleton.parents
    info = {"contact_frames": 0, "max_shift_cm": 0.0}
    if F < 2:
        return (q, x, info) if return_info else (q, x)
    if root:
        x = correct_root(q, x, skeleton, height_cm=height_cm)
    pos, glob = forward_kinematics(skeleton, q, x, return_rotations=True)
    q = q.copy()
    for leg in LEGS:
        u, k, a, t = (names.index(n) for n in leg)
        toe = pos[:, t]
        step = np.linalg.norm(np.diff(toe[:, [0, 2]], axis=0), axis=1)
        speed = np.empty(F)  # the slower of the two steps next to each frame
        speed[0], speed[-1] = step[0], step[-1]
        speed[1:-1] = np.minimum(step[:-1], step[1:])
        contact = (toe[:, 1] < height_cm) & (speed < speed_cm)
        runs = [(s, e) for s, e in _runs(contact) if e - s >= 2]
        in_run = np.zeros(F, dtype=bool)
        for s, e in runs:
            in_run[s:e] = True
        # a toe moving fast this close to the ground scrapes it: lift it clear
        lift = _lift(toe[:, 1], ~in_run & (toe[:, 1] < clear_cm), clear_cm)
        lift[in_run] = 0.0
        d_runs = []
        for s, e in runs:
            target = np.median(toe[s:e][:, [0, 2]], axis=0)
            d_runs.append(target[None, :] - toe[s:e][:, [0, 2]])
        d2 = _offsets(F, runs, d_runs, blend) if runs else np.zeros((F, 2))
        info["contact_frames"] += int(sum(e - s for s, e in runs))
        info["max_shift_cm"] = max(info["max_shift_cm"], float(np.abs(d2).max()),
                                   float(lift.max()))
        d = np.zeros((F, 3))
        d[:, [0, 2]] = d2
        d[:, 1] = lift
        moved = np.linalg.norm(d, axis=1) > 1e-9
        if not moved.any():
            continue
        H, K, A = pos[:, u], pos[:, k], pos[:, a]
        T = A + d
        l1 = np.linalg.norm(K - H, axis=1)
        l2 = np.linalg.norm(A - K, axis=1)
        HT = T - H
        D = np.linalg.norm(HT, axis=1)
        D = np.clip(D, np.abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
        uvec = _normalize(HT, np.array([0.0, -1.0, 0.0]))
        # the knee stays on its side of the hip-target line
        fwd = _rot.quat_rotate(glob[:, parents[u]], np.array([0.0, 0.0, 1.0]))
        p = (K - H) - np.sum((K - H) * uvec, axis=1, keepdims=True) * uvec
        pf = fwd - np.sum(fwd * uvec, axis=1, keepdims=True) * uvec
        p = _normalize(p, _normalize(pf, np.array([0.0, 0.0, 1.0])))
        cos_a = np.clip((l1 ** 2 + D ** 2 - l2 ** 2) / (2 * l1 * D), -1.0, 1.0)
        sin_a = np.sqrt(1.0 - cos_a ** 2)
        K2 = H + l1[:, None] * (cos_a[:, None] * uvec + sin_a[:, None] * p)
        T2 = H + D[:, None] * uvec
        du = _quat_between(K - H, K2 - H)
        Ru = _rot.quat_mul(du, glob[:, u])
        lower_dir = _rot.quat_rotate(du, A - K)
        dk = _quat_between(lower_dir, T2 - K2)
        Rk = _rot.quat_mul(dk, _rot.quat_mul(du, glob[:, k]))
        Ra = glob[:, a]
        sel = moved
        q[sel, u] = _rot.quat_mul(_rot.quat_inv(glob[sel, parents[u]]), Ru[sel])
        q[sel, k] = _rot.quat_mul(_rot.quat_inv(Ru[sel]), Rk[sel])
        q[sel, a] = _rot.quat_mul(_rot.quat_inv(Rk[sel]), Ra[sel])
    q = _rot.quat_normalize(q)
    return (q, x, info) if return_info else (q, x)
