# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting maths: canonical (or any mapped) motion → pose channels of a target rig. No bpy.

Spaces
------
* **source space**: the source's world (canonical motion: Y up, facing +Z, cm).
* **armature space** of the target: Blender's ``bone.matrix_local`` / ``pose_bone.matrix``
  space (the object transform, e.g. Mixamo's 0.01 scale and 90° X rotation, is outside).

Both skeletons get a **body frame** ``B = [left, up, forward]`` (columns) from their reference
pose (:func:`body_frame`: up from the feet to the head, left from the right to the left limbs),
and ``C = B_target · B_sourceᵀ`` carries source directions into armature space.

Rest poses
----------
Each source joint has a reference world rotation ``S_j`` (canonical motion: the T-pose of
:mod:`.conventions`). Each mapped target bone's rest rotation ``Rrest_j`` is *aligned* to the
same pose: ``T'_j = A_j · Rrest_j`` where ``A_j`` is the smallest rotation taking the target
bone's rest direction (from its head to the head of the bone of the joint's
:data:`~.conventions.PRIMARY_CHILD`) onto the source's reference direction carried by ``C``.
A-pose arms, bent spines or rolled bones therefore all line up with the T-pose; a joint
without a mapped child (hand, head, toes) keeps its rest relation to its parent
(``A_j = A_parent``), the hips keep theirs (``A = I``, the body frame already holds them).

Per frame, with the source joint's world rotation ``W_j(t)``::

    P_j(t) = C · W_j(t) · S_jᵀ · Cᵀ · T'_j        (armature-space pose rotation)

so every mapped bone points where its source bone points (bone directions are matched, not
local rotations copied). Bones that are not mapped keep their current pose (``static``) and
are carried by their parents: twist bones, fingers, IK controls are left alone.

Root motion
-----------
The hip centre (mid-point of the upper legs) follows the source's, scaled by the ratio of
leg lengths ``k`` and carried by ``C``: ``h_t(t) = h_t,rest + k · C · (h_s(t) − h_s,ref)``.
The hips bone's location is solved so that its subtree puts the hip centre there, wherever
its head is (Rigify's ``torso`` sits at the spine pivot). With ``root_motion="ROOT"`` the root
bone above the hips carries the ground-plane part of that motion and the hips the rest.

Pose channels
-------------
``Basis_b = (Rest_p⁻¹ · Rest_b)⁻¹ · P_p⁻¹ · P_b`` (Blender's bone evaluation inverted), for
the rotation of every mapped bone and the location of the hips (and root) bone.

Foot pinning
------------
Contacts follow the rule of :mod:`..motion.features` (ankle less than 5.3 cm above its
standing height, toe joint less than 4.7 cm, slower than 50 cm/s; scaled to the source's
size). While the heel is down (ankle contact, and the ankle less than 1.5 cm above standing)
the target ankle is held where it was at the first frame of that contact; when only the toes
are down (heel lifting) the toe joint is held instead. Holds blend in and out over a few
frames. An analytic two-bone IK (:func:`two_bone_ik`) on the thigh and shin does it, keeping
the knee in its bending plane; the foot keeps its world rotation. Where a held heel is out of
the leg's reach, the hips are lowered just enough (smoothly, at most 8 % of the leg).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..keyframes.continuity import quat_continuous
from ..keyframes.rig import affine_inverse
from ..motion import canonical as _canon
from ..motion import rotations as _rot
from . import conventions as cv

#: Ankle contact rule (canonical data): 17 cm high with the ankle 11.64 cm high standing.
CONTACT_RISE_CM = float(_canon.CONTACT_HEIGHTS[0]) - 11.64
CONTACT_SPEED_CM_S = float(_canon.CONTACT_SPEED)
#: Within a contact, the ankle is held while less than this above its standing height (the
#: heel is down); higher, the heel is lifting and the toes are held instead.
ANKLE_HOLD_RISE_CM = 1.5
#: Toe joint contact: 9 cm high with the toe joint 4.34 cm high standing.
TOE_RISE_CM = float(_canon.CONTACT_HEIGHTS[1]) - 4.34
ROOT_MOTIONS = ("HIPS", "ROOT")

_J = len(cv.JOINTS)


# =========================================================================== small maths


def _unit(v, eps=1e-12):
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, eps)


def min_rotation(a, b) -> np.ndarray:
    """Smallest rotation matrix taking direction ``a`` onto direction ``b`` (3-vectors)."""
    a = _unit(a)
    b = _unit(b)
    v = np.cross(a, b)
    c = float(a @ b)
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # opposite: half turn about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis = _unit(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + k + k @ k * ((1.0 - c) / (s * s))


_LATERAL = ("UpperLeg", "UpperArm", "Shoulder", "Foot", "LowerLeg")


def body_frame(points: dict, up=None, lateral=_LATERAL) -> np.ndarray:
    """``[left, up, forward]`` (columns) of a body from joint positions (joint name → 3-vector;
    any subset of the canonical joints with the hips, feet and a head or neck). ``up``: a
    known up direction (else feet → head); ``lateral``: the joint pairs whose right → left
    offsets give the left (a pose that is not symmetric, e.g. a step, needs the hips and
    shoulders only)."""
    def mean(names):
        pts = [points[n] for n in names if n in points]
        return np.mean(pts, axis=0) if pts else None

    top = mean(["Head", "Neck"]) if mean(["Head", "Neck"]) is not None else mean(["Chest", "Spine"])
    bottom = mean(["Foot_L", "Foot_R"])
    if bottom is None:
        bottom = mean(["LowerLeg_L", "LowerLeg_R"])
    if top is None or bottom is None:
        raise InputError("Cannot tell which way is up: map the head or neck and the feet")
    up = _unit(top - bottom if up is None else up)
    lat = np.zeros(3)
    for base in lateral:
        l, r = points.get(base + "_L"), points.get(base + "_R")
        if l is not None and r is not None:
            lat += np.asarray(l) - np.asarray(r)
    lat -= (lat @ up) * up
    if np.linalg.norm(lat) < 1e-9 * max(1.0, np.linalg.norm(top - bottom)):
        raise InputError("Cannot tell left from right: the left and right limbs are at the "
                         "same place")
    left = _unit(lat)
    fwd = np.cross(left, up)
    return np.stack([left, up, fwd], axis=1)


# =========================================================================== inputs


@dataclass
class TargetRig:
    """A target armature's bones, topologically ordered (``parents[i] < i``).

    rest: ``(B, 4, 4)`` ``bone.matrix_local`` (armature space, orthonormal rotation + head).
    static: ``(B, 4, 4)`` ``matrix_basis`` of the current pose (bones that are not keyed keep
        it); identity when None.
    connected: ``(B,)`` ``use_connect`` (a connected bone cannot move off its parent's tail).
    follow: ``(B,)`` index of the bone whose pose a bone copies (a full world-space Copy
        Transforms constraint, as in Rigify's ORG chains), -1 for none.
    ref: ``(B, 4, 4)`` armature-space pose matrices of the *reference pose*, a pose where the
        rig stands (what is aligned with the source's T-pose; see :mod:`.posecheck`): the rest
        pose when None. A frame of the rig's action when its rest pose does not stand.
    up: the world's up in armature space, when the reference is such a frame (its feet and
        arms may not be symmetric): the body frame then takes up from it and left from the
        hips and shoulders only.
    ref_placed: the reference pose also stands where the rig's motion is placed on the ground
        (the canonical skeleton's T-pose, Hips above the origin), so the hip centre's ground
        position comes from it; otherwise from the rest pose.
    """

    names: list
    parents: np.ndarray
    rest: np.ndarray
    connected: np.ndarray = None
    static: np.ndarray = None
    follow: np.ndarray = None
    ref: np.ndarray = None
    up: np.ndarray = None
    ref_placed: bool = False

    def __post_init__(self):
        self.names = [str(n) for n in self.names]
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.rest = np.asarray(self.rest, dtype=np.float64).reshape(-1, 4, 4)
        B = len(self.names)
        if self.parents.shape != (B,) or self.rest.shape[0] != B:
            raise ValueError("names, parents and rest disagree")
        if np.any(self.parents >= np.arange(B)):
            raise ValueError("bones must be ordered parents first (use TargetRig.build)")
        self.connected = (np.zeros(B, bool) if self.connected is None
                          else np.asarray(self.connected, dtype=bool))
        self.static = (np.broadcast_to(np.eye(4), (B, 4, 4)).copy() if self.static is None
                       else np.asarray(self.static, dtype=np.float64).reshape(B, 4, 4))
        self.follow = (np.full(B, -1, np.int64) if self.follow is None
                       else np.asarray(self.follow, dtype=np.int64).copy())
        self.ref = (self.rest.copy() if self.ref is None
                    else np.asarray(self.ref, dtype=np.float64).reshape(B, 4, 4).copy())
        self.ref[:, :3, :3] /= np.maximum(np.linalg.norm(self.ref[:, :3, :3], axis=-2,
                                                         keepdims=True), 1e-12)  # no scale
        self.index = {n: i for i, n in enumerate(self.names)}
        self.order = self._evaluation_order()

    def _evaluation_order(self):
        """Bones with their parent and the bone they follow first (a follow that would make
        a cycle is dropped)."""
        B = len(self.names)
        state = np.zeros(B, np.int8)  # 0 new, 1 visiting, 2 done
        order = []
        for start in range(B):
            if state[start]:
                continue
            stack = [(start, False)]
            while stack:
                b, expanded = stack.pop()
                if expanded:
                    state[b] = 2
                    order.append(b)
                    continue
                if state[b]:
                    continue
                state[b] = 1
                stack.append((b, True))
                for d in (self.parents[b], self.follow[b]):
                    if d < 0 or state[d] == 2:
                        continue
                    if state[d] == 1:  # cycle through a follow: ignore that constraint
                        self.follow[b] = -1
                        continue
                    stack.append((d, False))
        return order

    @classmethod
    def build(cls, names, parents, rest, connected=None, static=None, follow=None,
              ref=None) -> "TargetRig":
        """Any order: parents (and follow) as names or indices (None/-1 for none); sorted
        parents first."""
        names = [str(n) for n in names]
        idx = {n: i for i, n in enumerate(names)}

        def index(p):
            if p is None or (not isinstance(p, str) and p < 0):
                return -1
            return idx[p] if isinstance(p, str) else int(p)

        par = [index(p) for p in parents]
        order, done = [], set()
        pending = list(range(len(names)))
        while pending:
            nxt = []
            for i in pending:
                if par[i] < 0 or par[i] in done:
                    order.append(i)
                    done.add(i)
                else:
                    nxt.append(i)
            if len(nxt) == len(pending):
                raise ValueError("bone hierarchy has a cycle")
            pending = nxt
        pos = {old: new for new, old in enumerate(order)}
        rest = np.asarray(rest, dtype=np.float64)[order]
        con = None if connected is None else np.asarray(connected, bool)[order]
        st = None if static is None else np.asarray(static, dtype=np.float64)[order]
        fol = None
        ref = None if ref is None else np.asarray(ref, dtype=np.float64)[order]
        if follow is not None:
            f = [index(x) for x in follow]
            fol = [pos[f[i]] if f[i] >= 0 else -1 for i in order]
        return cls([names[i] for i in order], [pos[par[i]] if par[i] >= 0 else -1 for i in order],
                   rest, con, st, fol, ref)

    @property
    def heads(self) -> np.ndarray:
        return self.rest[:, :3, 3]

    @property
    def ref_heads(self) -> np.ndarray:
        return self.ref[:, :3, 3]

    def descendants(self, i) -> np.ndarray:
        """Bone ``i`` and every bone below it (boolean mask)."""
        mask = np.zeros(len(self.names), bool)
        mask[i] = True
        for b in range(i + 1, len(self.names)):
            if self.parents[b] >= 0 and mask[self.parents[b]]:
                mask[b] = True
        return mask


@dataclass
class SourceMotion:
    """Motion of the 21 canonical joints in some source space.

    world_rots ``(F, 21, 3, 3)`` and positions ``(F, 21, 3)`` per frame; ref_rots ``(21, 3,
    3)`` the world rotations in the reference pose and ref_dirs ``(21, 3)`` the unit direction
    of each joint's bone there (NaN rows where none); ref_positions ``(21, 3)`` joint positions
    of the rest / reference skeleton (lengths, hip centre, ankle height); body ``(3, 3)``
    ``[left, up, forward]``; present ``(21,)`` joints the source has; cm_per_unit converts
    source units to centimetres.
    """

    world_rots: np.ndarray
    positions: np.ndarray
    ref_rots: np.ndarray
    ref_dirs: np.ndarray
    ref_positions: np.ndarray
    body: np.ndarray
    fps: float
    present: np.ndarray = None
    cm_per_unit: float = 1.0

    def __post_init__(self):
        if self.present is None:
            self.present = np.ones(_J, bool)
        self.present = np.asarray(self.present, bool)

    @property
    def frames(self) -> int:
        return self.world_rots.shape[0]

    @classmethod
    def from_canonical(cls, local_quats, root_translation, fps) -> "SourceMotion":
        """Canonical motion ``(F, 21, 4)`` + ``(F, 3)`` (cm, Y up) at ``fps``."""
        q = np.asarray(local_quats, dtype=np.float64)
        x = np.asarray(root_translation, dtype=np.float64)
        if q.ndim != 3 or q.shape[1:] != (_J, 4):
            raise InputError(f"Motion rotations must be (frames, {_J}, 4), got {q.shape}")
        if x.shape != (q.shape[0], 3):
            raise InputError(f"Root translation must be ({q.shape[0]}, 3), got {x.shape}")
        if q.shape[0] == 0:
            raise InputError("The motion has no frames")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(x))):
            raise InputError("The motion contains NaN or infinite values")
        fps = float(fps)
        if not (np.isfinite(fps) and fps > 0):
            raise InputError(f"Frame rate must be positive, got {fps!r}")
        pos, glob = _canon.canonical_forward_kinematics(q, x, return_rotations=True)
        _tq, t_rots, t_pos = cv.tpose()
        dirs = _ref_dirs(t_pos)
        body = body_frame({n: t_pos[j] for j, n in enumerate(cv.JOINTS)})
        return cls(_rot.quat_to_matrix(glob), pos, t_rots, dirs, t_pos, body, fps)

    @classmethod
    def from_rig(cls, rest_rots, rest_heads, world_rots, positions, present, fps,
                 cm_per_unit=1.0) -> "SourceMotion":
        """Motion of a mapped source rig (armature space): rest rotations / heads ``(21, 3,
        3)`` / ``(21, 3)`` and per-frame pose rotations / heads ``(F, 21, ...)`` of the bones
        mapped to each joint (rows of joints not ``present`` are ignored).

        The rig's rest pose may be a T-pose or an A-pose: each bone is aligned to the
        canonical T-pose direction (as a target's would be), which becomes its reference.
        """
        present = np.asarray(present, bool)
        rest_heads = np.asarray(rest_heads, dtype=np.float64)
        rest_rots = np.asarray(rest_rots, dtype=np.float64)
        pts = {n: rest_heads[j] for j, n in enumerate(cv.JOINTS) if present[j]}
        body = body_frame(pts)
        _tq, _tr, t_pos = cv.tpose()
        canon_body = body_frame({n: t_pos[j] for j, n in enumerate(cv.JOINTS)})
        carry = body @ canon_body.T
        dirs = _ref_dirs(t_pos) @ carry.T
        align = _alignments(rest_heads, present, dirs)
        ref = np.array([align[j] @ rest_rots[j] if present[j] else np.eye(3) for j in range(_J)])
        return cls(np.asarray(world_rots, dtype=np.float64), np.asarray(positions, np.float64),
                   ref, dirs, rest_heads, body, float(fps), present, float(cm_per_unit))


def source_to_canonical(source: SourceMotion):
    """The motion of ``source`` as canonical motion: ``(local_quats (F, 21, 4), root
    translation (F, 3) cm)``, what :meth:`SourceMotion.from_canonical` reads back. Each
    joint's rotation from its reference (the T-pose-aligned rest) carried into canonical axes
    (the body frames), joints the source lacks follow their parent as in the T-pose; the hips
    scaled by the ratio of the hip heights above the ankles in the reference poses and put
    at the canonical ankle height above the floor. Exact for a canonical source."""
    _tq, t_rots, t_pos = cv.tpose()
    canon_body = body_frame({n: t_pos[j] for j, n in enumerate(cv.JOINTS)})
    M = canon_body @ source.body.T  # source axes -> canonical axes
    W = source.world_rots
    F = W.shape[0]
    G = np.empty((F, _J, 3, 3))
    for j in range(_J):
        p = cv.PARENTS[j]
        if source.present[j]:
            G[:, j] = M @ W[:, j] @ source.ref_rots[j].T @ M.T @ t_rots[j]
        else:
            G[:, j] = (G[:, p] if p >= 0 else np.eye(3)) @ (
                (t_rots[p].T if p >= 0 else np.eye(3)) @ t_rots[j])
    par = np.array(cv.PARENTS)
    local = G.copy()
    local[:, 1:] = np.swapaxes(G[:, par[1:]], -1, -2) @ G[:, 1:]
    up = source.body[:, 1]
    I = cv.INDEX
    feet = [I[n] for n in ("Foot_L", "Foot_R") if source.present[I[n]]]
    ankle = np.mean(source.ref_positions[feet], axis=0) if feet else source.ref_positions[0]
    hips = source.ref_positions[I["Hips"]]
    t_ankle = 0.5 * (t_pos[I["Foot_L"]] + t_pos[I["Foot_R"]])
    h_src = float((hips - ankle) @ up)
    s = float((t_pos[I["Hips"]] - t_ankle)[1] / h_src) if abs(h_src) > 1e-9 else 1.0
    ph = source.positions[:, I["Hips"]]
    x = ph @ M.T * s
    x[:, 1] = s * ((ph - ankle) @ up) + t_ankle[1]
    return _rot.matrix_to_quat(local), x


def _ref_dirs(pos):
    dirs = np.full((_J, 3), np.nan)
    for name, child in cv.PRIMARY_CHILD.items():
        j, c = cv.INDEX[name], cv.INDEX[child]
        d = pos[c] - pos[j]
        if np.linalg.norm(d) > 1e-9:
            dirs[j] = d / np.linalg.norm(d)
    return dirs


def _alignments(heads, present, goal_dirs):
    """Per joint, the smallest rotation taking the rest direction (joint head → primary
    child head) onto ``goal_dirs[j]``; inherited from the parent joint where there is no
    usable direction; identity for the hips."""
    size = np.ptp(heads[present], axis=0).max() if present.any() else 1.0
    out = [np.eye(3) for _ in range(_J)]
    for j, name in enumerate(cv.JOINTS):
        p = cv.PARENTS[j]
        inherited = out[p] if p >= 0 else np.eye(3)
        out[j] = inherited
        if p < 0 or not present[j]:
            continue
        child = cv.PRIMARY_CHILD.get(name)
        if child is None:
            continue
        c = cv.INDEX[child]
        if not present[c] or not np.all(np.isfinite(goal_dirs[j])):
            continue
        d = heads[c] - heads[j]
        if np.linalg.norm(d) <= 1e-4 * size:
            continue
        out[j] = min_rotation(d, goal_dirs[j])
    return out


# =========================================================================== IK


def two_bone_ik(a, b, c, target, pole=None):
    """Analytic two-bone IK, batched over frames.

    a, b, c: ``(F, 3)`` root (hip), middle (knee) and end (ankle) joint positions; target
    ``(F, 3)`` where the end should go; pole ``(3,)`` or ``(F, 3)``: the side the middle joint
    bends to when the chain is straight (the current bend plane is kept otherwise).

    Returns ``(R1, R2, reached)``: world rotations ``(F, 3, 3)`` to apply to the first and
    second bone (``new = R @ old``) so that ``b' = a + R1 (b − a)`` and
    ``c' = b' + R2 (c − b)`` lands on the target, and ``(F,)`` True where it could
    (otherwise the end stops at the nearest reachable point on the line to the target).
    """
    a, b, c, target = (np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in (a, b, c, target))
    F = max(len(a), len(b), len(c), len(target))
    a, b, c, target = (np.broadcast_to(v, (F, 3)) for v in (a, b, c, target))
    l1 = np.linalg.norm(b - a, axis=1)
    l2 = np.linalg.norm(c - b, axis=1)
    dv = target - a
    dist = np.linalg.norm(dv, axis=1)
    lo = np.abs(l1 - l2) * 1.0001 + 1e-9
    hi = (l1 + l2) * 0.99999
    reached = (dist >= lo) & (dist <= hi)
    d = np.clip(dist, lo, hi)
    u = np.where(dist[:, None] > 1e-12, dv / np.maximum(dist, 1e-12)[:, None], _unit(c - a))

    def perp(v, axis):
        return v - np.sum(v * axis, axis=1, keepdims=True) * axis

    if pole is None:
        pole = np.array([0.0, 0.0, 1.0])
    pole = np.broadcast_to(np.asarray(pole, dtype=np.float64), (F, 3))
    # bend direction: where the middle joint is now, off the line root → end
    u_old = _unit(c - a)
    bend_old = perp(b - a, u_old)
    weak = np.linalg.norm(bend_old, axis=1) < 1e-6 * np.maximum(l1, 1e-12)
    bend_old = np.where(weak[:, None], perp(pole, u_old), bend_old)
    v = perp(bend_old, u)
    v_weak = np.linalg.norm(v, axis=1) < 1e-9
    v = np.where(v_weak[:, None], perp(pole, u), v)
    v = _unit(v)
    cos_a = np.clip((l1 ** 2 + d ** 2 - l2 ** 2) / (2.0 * l1 * d), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a ** 2)
    b_new = a + l1[:, None] * (cos_a[:, None] * u + sin_a[:, None] * v)
    c_new = a + d[:, None] * u
    n_old = _unit(np.cross(u_old, _unit(bend_old)))
    n_new = _unit(np.cross(u, v))

    def frame(x, n):
        x = _unit(x)
        return np.stack([x, n, np.cross(x, n)], axis=-1)

    R1 = frame(b_new - a, n_new) @ np.swapaxes(frame(b - a, n_old), -1, -2)
    R2 = frame(c_new - b_new, n_new) @ np.swapaxes(frame(c - b, n_old), -1, -2)
    return R1, R2, reached


def contact_intervals(mask, min_frames=2):
    """Runs of True in ``mask`` as ``[(first, last), ...]`` (inclusive), at least
    ``min_frames`` long."""
    m = np.asarray(mask, bool)
    out = []
    F = len(m)
    i = 0
    while i < F:
        if m[i]:
            j = i
            while j + 1 < F and m[j + 1]:
                j += 1
            if j - i + 1 >= min_frames:
                out.append((i, j))
            i = j + 1
        else:
            i += 1
    return out


def pin_schedule(F, intervals, blend):
    """Per frame: index of the interval pinning it (-1 for none) and its weight in [0, 1]
    (1 inside an interval, smoothstep over ``blend`` frames before and after)."""
    owner = np.full(F, -1)
    weight = np.zeros(F)
    for k, (s, e) in enumerate(intervals):
        for t in range(max(0, s - blend), min(F, e + blend + 1)):
            if s <= t <= e:
                w = 1.0
            elif t < s:
                x = (t - (s - blend - 1)) / float(blend + 1)
                w = x * x * (3 - 2 * x)
            else:
                x = 1.0 - (t - e) / float(blend + 1)
                w = x * x * (3 - 2 * x)
            if w > weight[t]:
                owner[t], weight[t] = k, w
    return owner, weight


def foot_contacts(source: SourceMotion, side: str, joint: str = "Foot",
                  return_speed: bool = False):
    """``(F,)`` True where the source's ankle (``joint="Foot"``) or toe joint (``"Toes"``) of
    ``side`` (``"L"``/``"R"``) is planted: close to its standing height and slow (and the
    joint's speed in source units per second with ``return_speed``)."""
    j = cv.INDEX[f"{joint}_{side}"]
    if not source.present[j]:
        none = np.zeros(source.frames, bool)
        return (none, np.zeros(source.frames)) if return_speed else none
    size = _size(source)
    pos = source.positions[:, j]
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    speed = np.concatenate([step[:1], step]) * source.fps if len(pos) > 1 else np.zeros(1)
    rise = CONTACT_RISE_CM if joint == "Foot" else TOE_RISE_CM
    contact = (_rise(source, f"{joint}_{side}") < rise * size) & (
        speed < CONTACT_SPEED_CM_S * size)
    return (contact, speed) if return_speed else contact


def _size(source):
    """Source units per canonical centimetre (by leg length)."""
    return _leg_length(source.ref_positions, source.present) / _CANON_LEG


def _rise(source, joint):
    """Height of a source joint above its standing height, per frame (source units)."""
    j = cv.INDEX[joint]
    up = source.body[:, 1]
    return source.positions[:, j] @ up - source.ref_positions[j] @ up


def _pins(contact, speed, points, blend, at="START"):
    """``(owner, weight, positions)`` of the pins of a contact mask, or None without
    contacts. Each contact holds the point where it is at the contact's first frame
    (``at="START"``) or at its slowest frame in the source (``"SLOWEST"``: the foot is still
    landing when the contact rule first holds)."""
    intervals = contact_intervals(contact)
    if not intervals:
        return None
    owner, weight = pin_schedule(len(contact), intervals, blend)
    if at == "START":
        frames = [s for s, _e in intervals]
    else:
        frames = [s + int(np.argmin(speed[s:e + 1])) for s, e in intervals]
    return owner, weight, np.array([points[f] for f in frames])


def _pin_goal(heads, foot, toe, ankle_pin, toe_pin):
    """Where the ankle should be: at its pin while the ankle is planted, else where it puts
    the toe joint on its pin (heel up, toes planted: the foot keeps its rotation), blended.
    Returns ``(goal (F, 3), active (F,), planted (F,))``."""
    ankle = heads[:, foot]
    F = len(ankle)
    goal = ankle.copy()
    act = np.zeros(F, bool)
    full = np.zeros(F, bool)
    wa = np.zeros(F)
    if ankle_pin is not None:
        owner, wa, pins = ankle_pin
        on = owner >= 0
        goal[on] += wa[on, None] * (pins[owner[on]] - ankle[on])
        act |= on
        full |= wa >= 1.0
    if toe_pin is not None:
        owner, wt, pins = toe_pin
        on = owner >= 0
        g = pins[owner[on]] - (heads[on, toe] - ankle[on])
        goal[on] += ((1.0 - wa[on]) * wt[on])[:, None] * (g - ankle[on])
        act |= on
        full |= (wt >= 1.0) & (wa < 1.0)
    return goal, act, full


def _leg_length(pos, present):
    out = []
    for s in ("L", "R"):
        ids = [cv.INDEX[n + "_" + s] for n in ("UpperLeg", "LowerLeg", "Foot")]
        if all(present[i] for i in ids):
            out.append(np.linalg.norm(pos[ids[1]] - pos[ids[0]])
                       + np.linalg.norm(pos[ids[2]] - pos[ids[1]]))
    if not out:
        raise InputError("Both legs' upper leg, lower leg and foot must be mapped")
    return float(np.mean(out))


_CANON_LEG = None  # canonical leg length (cm), set below


def _hip_centre(pos, present, axis=-2):
    """Mid-point of the upper legs (the hips joint where a leg is missing)."""
    l, r = cv.INDEX["UpperLeg_L"], cv.INDEX["UpperLeg_R"]
    if present[l] and present[r]:
        return 0.5 * (np.take(pos, l, axis=axis) + np.take(pos, r, axis=axis))
    return np.take(pos, 0, axis=axis)


_CANON_LEG = _leg_length(cv.tpose()[2], np.ones(_J, bool))


# =========================================================================== solve


@dataclass
class Solution:
    """Result of :func:`solve`.

    keyed: bone name → ``(quaternions (F, 4), locations (F, 3) or None)`` of matrix_basis.
    rots / heads: armature-space pose rotations ``(F, B, 3, 3)`` and heads ``(F, B, 3)`` of
    every bone, as Blender will evaluate them (without constraints).
    """

    keyed: dict
    rots: np.ndarray
    heads: np.ndarray
    scale: float
    carry: np.ndarray
    contacts: dict = field(default_factory=dict)  # side → (F,) bool
    pins: dict = field(default_factory=dict)  # side → (owner (F,), weight (F,), positions (K, 3))
    #                                            of the ankle pins
    unreached: dict = field(default_factory=dict)  # side → heel-planted frames not reached
    foot_bones: dict = field(default_factory=dict)  # side → index of the pinned foot bone
    toe_pins: dict = field(default_factory=dict)  # side → (owner, weight, positions) of toes
    toe_bones: dict = field(default_factory=dict)  # side → index of the toe bone or None
    hip_drop: np.ndarray = None  # (F,) how far the hips were lowered to reach the pins
    hip_goal: np.ndarray = None  # (F, 3) where the hip centre goes (armature space)
    hip_bones: tuple = ()  # bones whose heads make the hip centre (upper legs, or the hips)
    centre_bone: str = None  # the bone whose location places the hip centre
    bone_index: dict = field(default_factory=dict)  # bone name → index in rots / heads
    warnings: list = field(default_factory=list)

    def planted(self, side):
        """Where the foot of ``side`` is fully held: ``[(bone index, frames (n,), pin
        positions (n, 3))]`` for the ankle (foot bone), then for the toe joint on frames where
        only the toes are planted (heel up)."""
        if side not in self.pins:
            return []
        owner, wa, pins = self.pins[side]
        full = np.flatnonzero(wa >= 1.0)
        out = [(self.foot_bones[side], full, pins[owner[full]])]
        toe = self.toe_bones.get(side)
        if toe is not None:
            owner_t, wt, pins_t = self.toe_pins[side]
            only = np.flatnonzero((wt >= 1.0) & (wa <= 0.0))
            out.append((toe, only, pins_t[owner_t[only]]))
        return out


def solve(source: SourceMotion, rig: TargetRig, bones: dict, *, root=None, root_motion="HIPS",
          foot_pinning=False, pin_blend=3, max_hip_drop=0.08, pin_at="START",
          drop_for_toes=False, hold=()) -> Solution:
    """Retarget ``source`` onto ``rig``.

    bones: canonical joint name → bone name (missing / None: not driven). ``root``: a bone
    above the hips for ``root_motion="ROOT"``. foot_pinning: hold planted ankles (blending over
    ``pin_blend`` frames) where the contact starts (``pin_at="START"``) or where the source
    foot is slowest in it (``"SLOWEST"``), lowering the hips by up to ``max_hip_drop`` of the
    leg length where a planted heel (and, with ``drop_for_toes``, a planted toe joint) is out
    of the leg's reach; otherwise the leg stretches as far as it can. ``hold``: bones (names)
    that are not driven but are keyed with their ``static`` pose (unmapped bones between mapped
    ones that the reference pose turns, e.g. a pelvis turned over).

    The target is aligned in its reference pose (``rig.ref``: the rest pose unless a standing
    frame was given); its hip centre's height comes from there, its place on the ground from
    the rest pose.
    """
    if root_motion not in ROOT_MOTIONS:
        raise InputError(f"Root motion must be one of {', '.join(ROOT_MOTIONS)}, "
                         f"got {root_motion!r}")
    bone_of = {}
    for name, bone in bones.items():
        if not bone:
            continue
        if name not in cv.INDEX:
            raise InputError(f"Unknown canonical joint '{name}'")
        if bone not in rig.index:
            raise InputError(f"The bone mapping names a bone the armature does not have: '{bone}'")
        if source.present[cv.INDEX[name]]:
            bone_of[cv.INDEX[name]] = rig.index[bone]
    if 0 not in bone_of:
        raise InputError("The hips must be mapped to a bone")
    F = source.frames
    present = np.zeros(_J, bool)
    present[list(bone_of)] = True
    heads_rest = rig.ref_heads
    tpos = np.zeros((_J, 3))
    for j, b in bone_of.items():
        tpos[j] = heads_rest[b]
    body_t = body_frame({cv.JOINTS[j]: tpos[j] for j in bone_of}, rig.up,
                        _LATERAL if rig.up is None else ("UpperLeg", "Shoulder", "UpperArm"))
    carry = body_t @ source.body.T
    k = _leg_length(tpos, present) / _leg_length(source.ref_positions, source.present)

    # aligned rest rotations T'_j and the constant factor M_j = S_jᵀ Cᵀ T'_j
    goal = source.ref_dirs @ carry.T
    align = _alignments(tpos, present, goal)
    rest_rot = rig.ref[:, :3, :3]
    target_rot = {}
    for j, b in bone_of.items():
        M = source.ref_rots[j].T @ carry.T @ (align[j] @ rest_rot[b])
        target_rot[b] = carry @ source.world_rots[:, j] @ M  # (F, 3, 3)

    hips_bone = bone_of[0]
    root_bone = None
    if root_motion == "ROOT":
        if not root:
            raise InputError("Root motion on the root bone needs a root bone in the mapping")
        if root not in rig.index:
            raise InputError(f"Root bone '{root}' is not in the armature")
        root_bone = rig.index[root]
        if root_bone == hips_bone or not rig.descendants(root_bone)[hips_bone]:
            raise InputError(f"Root bone '{root}' must be above the hips bone "
                             f"'{rig.names[hips_bone]}'")
    warnings = []
    loc_bones = [hips_bone]
    if rig.connected[hips_bone]:
        # cannot move: translate the first unconnected ancestor instead
        a = rig.parents[hips_bone]
        while a >= 0 and rig.connected[a]:
            a = rig.parents[a]
        if a < 0:
            raise InputError(f"The hips bone '{rig.names[hips_bone]}' is connected to its parent "
                             "and has no movable ancestor for the root motion")
        warnings.append(f"'{rig.names[hips_bone]}' is connected to its parent: the root motion "
                        f"goes on '{rig.names[a]}'")
        if root_bone is None or rig.descendants(root_bone)[a]:
            root_bone = a
        root_motion = "ROOT_ALL"
        loc_bones = []
    if root_bone is not None:
        loc_bones.insert(0, root_bone)

    # hip centre path
    hc_src = _hip_centre(source.positions, source.present, axis=1)
    hc_src_ref = _hip_centre(source.ref_positions, source.present, axis=0)
    up_t = body_t[:, 1]
    hc_rest = _hip_centre(tpos, present, axis=0)
    rest_pos = np.zeros((_J, 3))
    for j, b in bone_of.items():
        rest_pos[j] = rig.heads[b]
    shift = np.zeros(3) if rig.ref_placed else _hip_centre(rest_pos, present, axis=0) - hc_rest
    hc_rest = hc_rest + shift - (shift @ up_t) * up_t  # on the ground where the rest pose is
    hc_goal = hc_rest + k * (hc_src - hc_src_ref) @ carry.T  # (F, 3)

    def fk(target_rot):
        return _forward(rig, target_rot, hips_bone, root_bone, root_motion, hc_goal, hc_rest,
                        up_t, bone_of, F)

    rots, heads = fk(target_rot)
    sol = Solution({}, rots, heads, k, carry, warnings=warnings, bone_index=dict(rig.index))

    if foot_pinning:
        legs = []
        for side in ("L", "R"):
            ids = [cv.INDEX[n + "_" + side] for n in ("UpperLeg", "LowerLeg", "Foot")]
            if not all(i in bone_of for i in ids):
                continue
            thigh, shin, foot = (bone_of[i] for i in ids)
            toe = bone_of.get(cv.INDEX["Toes_" + side])
            size = _size(source)
            contact, speed = foot_contacts(source, side, return_speed=True)
            sol.contacts[side] = contact
            # within a contact the ankle is held while the heel is down; as the heel lifts,
            # the toes take over
            held = contact & (_rise(source, "Foot_" + side) < ANKLE_HOLD_RISE_CM * size)
            ankle_pin = _pins(held, speed, heads[:, foot], pin_blend, pin_at)
            toe_pin = None
            if toe is not None:
                contact, speed = foot_contacts(source, side, "Toes", return_speed=True)
                toe_pin = _pins(contact, speed, heads[:, toe], pin_blend, pin_at)
            if ankle_pin is None and toe_pin is None:
                continue
            reach = (np.linalg.norm(heads_rest[shin] - heads_rest[thigh])
                     + np.linalg.norm(heads_rest[foot] - heads_rest[shin])) * 0.9995
            legs.append((side, thigh, shin, foot, toe, ankle_pin, toe_pin, reach))
        if legs:
            # hips drop: lower the body where a planted foot is out of the leg's reach
            drop = np.zeros(F)
            for side, thigh, shin, foot, toe, ankle_pin, toe_pin, reach in legs:
                goal, _act, full = _pin_goal(heads, foot, toe, ankle_pin, toe_pin)
                if not drop_for_toes:  # only planted heels lower the hips
                    full = full & (ankle_pin[1] >= 1.0 if ankle_pin else False)
                v = goal - heads[:, thigh]
                vu = v @ up_t
                disc = vu ** 2 - np.sum(v * v, axis=1) + reach ** 2
                need = full & (np.linalg.norm(v, axis=1) > reach)
                d = np.where(disc >= 0, -vu - np.sqrt(np.maximum(disc, 0.0)), -vu)
                drop = np.maximum(drop, np.where(need, np.clip(d, 0.0, None), 0.0))
            drop = np.minimum(drop, max_hip_drop * np.mean([leg[-1] for leg in legs]))
            if drop.any():
                drop = _smooth_cover(drop, pin_blend)
                hc_goal = hc_goal - drop[:, None] * up_t
                rots, heads = fk(target_rot)
                sol.hip_drop = drop
            for side, thigh, shin, foot, toe, ankle_pin, toe_pin, reach in legs:
                goal, act, full = _pin_goal(heads, foot, toe, ankle_pin, toe_pin)
                R1, R2, reached = two_bone_ik(heads[act, thigh], heads[act, shin],
                                              heads[act, foot], goal[act], pole=body_t[:, 2])
                target_rot[thigh] = target_rot[thigh].copy()
                target_rot[shin] = target_rot[shin].copy()
                target_rot[thigh][act] = R1 @ rots[act, thigh]
                target_rot[shin][act] = R2 @ rots[act, shin]
                empty = (np.full(F, -1), np.zeros(F), np.zeros((0, 3)))
                sol.pins[side] = ankle_pin or empty
                sol.toe_pins[side] = toe_pin or empty
                sol.foot_bones[side] = foot
                sol.toe_bones[side] = toe
                # frames with the heel planted where the leg could not reach its pin (toes
                # planted with the heel up are held as far as the leg reaches)
                heel = ankle_pin[1] >= 1.0 if ankle_pin else np.zeros(F, bool)
                sol.unreached[side] = np.flatnonzero(act)[~reached & heel[act]]
            rots, heads = fk(target_rot)
            sol.rots, sol.heads = rots, heads

    # pose channels
    keyed = {}
    for name in hold:
        b = rig.index[name]
        if b in target_rot or b in loc_bones:
            continue
        st = rig.static[b]
        R = st[:3, :3] / np.maximum(np.linalg.norm(st[:3, :3], axis=0, keepdims=True), 1e-12)
        quat = np.broadcast_to(_rot.matrix_to_quat(R), (F, 4)).copy()
        loc = None if np.linalg.norm(st[:3, 3]) < 1e-9 else np.broadcast_to(st[:3, 3], (F, 3)).copy()
        keyed[name] = (quat, loc)
    for b in sorted(set(target_rot) | set(loc_bones)):
        p = rig.parents[b]
        rel = rig.rest[b] if p < 0 else affine_inverse(rig.rest[p]) @ rig.rest[b]
        Rr, Tr = rel[:3, :3], rel[:3, 3]
        if p < 0:
            Pr, Ph = np.eye(3), np.zeros(3)
        else:
            Pr, Ph = rots[:, p], heads[:, p]
        rot = Rr.T @ np.swapaxes(Pr, -1, -2) @ rots[:, b]
        quat = quat_continuous(_rot.matrix_to_quat(rot))
        loc = None
        if b in loc_bones:
            local = (np.swapaxes(Pr, -1, -2) @ (heads[:, b] - Ph)[..., None])[..., 0] if p >= 0 \
                else heads[:, b]
            loc = (local - Tr) @ Rr  # Rrᵀ · v per row
        keyed[rig.names[b]] = (quat, loc)
    sol.keyed = keyed
    sol.hip_goal = hc_goal
    legs = [bone_of.get(cv.INDEX["UpperLeg_L"]), bone_of.get(cv.INDEX["UpperLeg_R"])]
    sol.hip_bones = (tuple(rig.names[b] for b in legs) if None not in legs
                     else (rig.names[hips_bone],))
    sol.centre_bone = rig.names[root_bone if root_motion == "ROOT_ALL" else hips_bone]
    return sol


def _smooth_cover(x, w):
    """A smooth curve at or above ``x`` (moving maximum, then moving average, over
    ``2w + 1`` frames)."""
    if w <= 0 or len(x) < 2:
        return x
    n = len(x)
    pad = np.concatenate([np.full(w, x[0]), x, np.full(w, x[-1])])
    mx = np.max(np.lib.stride_tricks.sliding_window_view(pad, 2 * w + 1), axis=1)
    pad = np.concatenate([np.full(w, mx[0]), mx, np.full(w, mx[-1])])
    out = np.convolve(pad, np.ones(2 * w + 1) / (2 * w + 1), mode="valid")
    return out[:n]


def _forward(rig, target_rot, hips_bone, root_bone, root_motion, hc_goal, hc_rest, up, bone_of, F):
    """Armature-space pose (rotations, heads) of every bone for the given rotations of the
    driven bones, with the hips (and root) placed so that the hip centre follows
    ``hc_goal``: a first pass finds where the hip centre is, a second moves the hips bone
    (or, when it is connected, its movable ancestor) by the difference."""
    place = {}
    if root_bone is not None and root_motion == "ROOT":
        shift = hc_goal - hc_rest
        place[root_bone] = rig.heads[root_bone] + shift - np.outer(shift @ up, up)  # ground
    rots, heads = _fk(rig, target_rot, place, F)
    legs = [bone_of.get(cv.INDEX["UpperLeg_L"]), bone_of.get(cv.INDEX["UpperLeg_R"])]
    if legs[0] is not None and legs[1] is not None:
        hc = 0.5 * (heads[:, legs[0]] + heads[:, legs[1]])
    else:
        hc = heads[:, hips_bone]
    top = root_bone if root_motion == "ROOT_ALL" else hips_bone
    place[top] = heads[:, top] + (hc_goal - hc)
    return _fk(rig, target_rot, place, F)


def _fk(rig, target_rot, place, F):
    B = len(rig.names)
    rots = np.empty((F, B, 3, 3))
    heads = np.empty((F, B, 3))
    static = rig.static
    for b in rig.order:
        p = rig.parents[b]
        f = rig.follow[b]
        if f >= 0 and b not in target_rot:  # Copy Transforms: the followed bone's pose
            rots[:, b] = rots[:, f]
            heads[:, b] = heads[:, f]
            continue
        rel = rig.rest[b] if p < 0 else affine_inverse(rig.rest[p]) @ rig.rest[b]
        Rr, Tr = rel[:3, :3], rel[:3, 3]
        loc = np.zeros(3) if rig.connected[b] else static[b, :3, 3]
        if b in target_rot:
            rots[:, b] = target_rot[b]
        else:
            R = Rr @ static[b, :3, :3]
            rots[:, b] = R if p < 0 else rots[:, p] @ R
        if b in place:
            heads[:, b] = place[b]
        else:
            off = Tr + Rr @ loc
            heads[:, b] = off if p < 0 else heads[:, p] + (rots[:, p] @ off)
    return rots, heads
