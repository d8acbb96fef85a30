# SPDX-License-Identifier: GPL-3.0-or-later
"""The canonical training skeleton and conversion of Bandai Namco BVH clips to it.

The canonical skeleton is the Bandai Namco Research Motion Dataset humanoid without its static
``joint_Root``: 21 joints, ``Hips`` is the root and carries the world translation. Units are
the dataset's (centimetres), axes the file's (Y up; a character facing +Z has its left hand
towards +X). See ``docs/motion-representation.md``.

Canonical motion is a pair

* ``local_quats`` ``(F, 21, 4)`` (w, x, y, z) parent-relative rotations; joint 0 (Hips) holds
  its *world* rotation (it has no parent),
* ``root_translation`` ``(F, 3)`` world position of the Hips,

sampled at :data:`FPS` (20) frames per second. Bones are rigid (the :data:`SKELETON`
offsets); the Bandai files animate no other translation.

Rest offsets: every one of the 3,076 clips has the same bone offsets (8 clips of dataset 1 have
a second variant of ``LowerLeg_R`` differing by 0.04 cm; the Hips OFFSET is the clip's start
position and irrelevant, its position channels replace it). :data:`DATA_OFFSETS` are those
shared values; :data:`OFFSETS` are them made exactly left/right symmetric
(:func:`symmetrize_offsets`, largest change 0.02 cm) so that mirroring is exact.

Mirroring (:func:`mirror_motion`) reflects the motion across the world plane x = 0
(``WORLD_MIRROR``) and swaps left/right joints. Each joint's local frame is related to its
partner's by a reflection ``T_j = diag(MIRROR_SIGNS[j])`` (measured on the data: the Bandai rig
is "behaviour mirrored", so paired limbs have ``T = -I``; the Hips' lateral axis is local Y,
the spine's local Z). Then a mirrored local rotation is ``T_parent @ R_partner @ T_j`` (and
``M @ R_root @ T_root`` for the root), a proper rotation, computed exactly with quaternions.
"""
from __future__ import annotations

import math

import numpy as np

from ..keyframes.continuity import quat_continuous
from . import bvh as _bvh
from . import rotations as _rot
from .skeleton import Skeleton, bvh_forward_kinematics, forward_kinematics

__all__ = [
    "FPS",
    "SOURCE_FPS",
    "UP_AXIS",
    "JOINT_NAMES",
    "PARENTS",
    "DATA_OFFSETS",
    "OFFSETS",
    "MIRROR_PAIRS",
    "MIRROR_SIGNS",
    "WORLD_MIRROR",
    "FOOT_JOINTS",
    "CONTACT_HEIGHTS",
    "CONTACT_SPEED",
    "CanonicalError",
    "CanonicalSkeleton",
    "SKELETON",
    "symmetrize_offsets",
    "bandai_to_canonical",
    "resample",
    "slerp",
    "snap_fps",
    "canonical_to_bvh",
    "mirror_motion",
    "canonical_forward_kinematics",
]

#: Frame rate of the canonical data (Bandai is captured at 30; 20 like HumanML3D: every
#: second source frame is kept and the others are midpoints, sequences are 1/3 shorter).
FPS = 20
#: Frame rate of the Bandai files (their ``Frame Time`` is 0.0333333).
SOURCE_FPS = 30
#: World up axis (the yaw axis for headings).
UP_AXIS = "Y"

JOINT_NAMES = (
    "Hips", "Spine", "Chest", "Neck", "Head",
    "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L",
    "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R",
    "UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L",
    "UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R",
)
PARENTS = (-1, 0, 1, 2, 3, 2, 5, 6, 7, 2, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

#: Bone offsets shared by every Bandai clip (cm, parent frame). The Hips row is a nominal
#: standing height (the files' Hips OFFSET is each clip's start position).
DATA_OFFSETS = np.array([
    [0.0, 93.1646, 0.0],                   # Hips
    [15.7357, 0.0, 0.0],                   # Spine
    [8.98455, -0.406207, 0.0],             # Chest
    [16.3773, 0.0, 0.0],                   # Neck
    [6.45672, 0.0, 0.0],                   # Head
    [12.9942, -0.242716, 4.98039],         # Shoulder_L
    [5.34809, 0.0, 0.0],                   # UpperArm_L
    [24.3286, 1.87007e-05, 0.0],           # LowerArm_L
    [22.2916, 0.0, 0.0],                   # Hand_L
    [12.9945, -0.242716, -4.98039],        # Shoulder_R
    [-5.34813, 0.0, 0.0],                  # UpperArm_R
    [-24.3289, 0.000322201, 0.0],          # LowerArm_R
    [-22.2915, -0.000108084, 0.0],         # Hand_R
    [-2.19248, -6.46944, 0.0],             # UpperLeg_L
    [39.0811, 0.0, -1.23785e-05],          # LowerLeg_L
    [40.9854, 0.0, -1.26872e-05],          # Foot_L
    [11.7543, 0.0, 0.0],                   # Toes_L
    [-2.19251, 6.46944, 0.0],              # UpperLeg_R
    [-39.0811, -0.00228153, -0.0401928],   # LowerLeg_R
    [-40.9854, 0.0, 0.0],                  # Foot_R
    [-11.7543, 0.0, 0.0],                  # Toes_R
])

#: Joints with a (zero-length) End Site in the Bandai files.
END_SITE_JOINTS = ("Head", "Hand_L", "Hand_R", "Toes_L", "Toes_R")

MIRROR_PAIRS = (
    ("Shoulder_L", "Shoulder_R"), ("UpperArm_L", "UpperArm_R"), ("LowerArm_L", "LowerArm_R"),
    ("Hand_L", "Hand_R"), ("UpperLeg_L", "UpperLeg_R"), ("LowerLeg_L", "LowerLeg_R"),
    ("Foot_L", "Foot_R"), ("Toes_L", "Toes_R"),
)

#: Per joint, the diagonal of the reflection relating its local frame to its partner's
#: (determinant -1). Hips: lateral axis local Y; spine chain: local Z; limbs: -I.
MIRROR_SIGNS = np.array(
    [[1, -1, 1]] + [[1, 1, -1]] * 4 + [[-1, -1, -1]] * 16, dtype=np.float64)

#: The world reflection used for mirroring: x -> -x (the sagittal plane of a character that
#: faces +Z).
WORLD_MIRROR = np.array([-1.0, 1.0, 1.0])

#: Joints whose ground contact is a feature (order of the contact features).
FOOT_JOINTS = ("Foot_L", "Toes_L", "Foot_R", "Toes_R")
#: Contact when the joint is below this height (cm; standing flat the ankle is at 11.7 cm
#: and the toe joint at 4.2 cm) ...
CONTACT_HEIGHTS = (17.0, 9.0, 17.0, 9.0)
#: ... and slower than this (cm/s).
CONTACT_SPEED = 50.0

#: Local axes of the root (Hips) frame: forward and the character's right. The heading is
#: the yaw of ``up x (R_root @ right) + horizontal(R_root @ forward)``.
ROOT_FORWARD_AXIS = (0.0, 0.0, 1.0)
ROOT_RIGHT_AXIS = (0.0, 1.0, 0.0)


class CanonicalError(ValueError):
    """A BVH (or motion array) that cannot be converted to the canonical skeleton."""


# =========================================================================== skeleton


def _mirror_index(names, pairs):
    idx = list(range(len(names)))
    for a, b in pairs:
        try:
            ia, ib = names.index(a), names.index(b)
        except ValueError as e:
            raise ValueError(f"mirror pair ({a!r}, {b!r}) names an unknown joint") from e
        if idx[ia] != ia or idx[ib] != ib:
            raise ValueError(f"joint in mirror pair ({a!r}, {b!r}) is paired twice")
        idx[ia], idx[ib] = ib, ia
    return np.array(idx, dtype=np.int64)


def symmetrize_offsets(offsets, parents, mirror_index, mirror_signs) -> np.ndarray:
    """Make offsets exactly mirror-symmetric: ``o_j = T_parent(j) @ o_partner(j)``.

    Each pair gets the mean of its two (reflected) measurements; an unpaired joint loses the
    component along its parent's lateral axis. The root's offset is reflected by
    ``WORLD_MIRROR``.
    """
    off = np.asarray(offsets, dtype=np.float64).copy()
    out = off.copy()
    for j, p in enumerate(parents):
        t = WORLD_MIRROR if p < 0 else mirror_signs[p]
        k = mirror_index[j]
        out[j] = 0.5 * (off[j] + t * off[k])
    return out


class CanonicalSkeleton(Skeleton):
    """A :class:`~.skeleton.Skeleton` with what features and mirroring need.

    Attributes beyond ``Skeleton``: ``mirror_index`` (partner of each joint),
    ``mirror_signs`` ``(J, 3)`` (local reflection diagonals), ``foot_joints`` (indices),
    ``contact_heights`` (per foot joint, skeleton units), ``contact_speed`` (units/s),
    ``up_axis`` (only ``'Y'``), ``root_forward`` / ``root_right`` (root-local axes).
    """

    def __init__(self, names, parents, offsets, end_sites=None, *, mirror_pairs=MIRROR_PAIRS,
                 mirror_signs=MIRROR_SIGNS, foot_joints=FOOT_JOINTS,
                 contact_heights=CONTACT_HEIGHTS, contact_speed=CONTACT_SPEED, up_axis=UP_AXIS,
                 root_forward=ROOT_FORWARD_AXIS, root_right=ROOT_RIGHT_AXIS, mirror_tol=1e-9):
        super().__init__(names, parents, offsets, end_sites)
        J = self.num_joints
        if len(self.roots) != 1:
            raise ValueError("a canonical skeleton has exactly one root (joint 0)")
        if str(up_axis).upper() != "Y":
            raise ValueError(f"only a Y-up canonical skeleton is supported, got {up_axis!r}")
        self.up_axis = "Y"
        self.mirror_index = _mirror_index(self.names, mirror_pairs)
        self.mirror_pairs = tuple((str(a), str(b)) for a, b in mirror_pairs)
        s = np.asarray(mirror_signs, dtype=np.float64).reshape(J, 3)
        if not np.all(np.abs(s) == 1.0) or np.any(np.prod(s, axis=1) != -1.0):
            raise ValueError("mirror_signs rows must be +-1 with an odd number of -1 "
                             "(reflections, determinant -1)")
        self.mirror_signs = s
        m = self.mirror_index
        for j in range(J):
            p, q = self.parents[j], self.parents[m[j]]
            if (p < 0) != (q < 0) or (p >= 0 and m[p] != q):
                raise ValueError(f"mirror pairs must have mirrored parents: {self.names[j]!r}")
            if not np.array_equal(s[j], s[m[j]]):
                raise ValueError(f"paired joints need equal mirror_signs: {self.names[j]!r}")
        sym = symmetrize_offsets(self.offsets, self.parents, m, s)
        if np.max(np.abs(sym - self.offsets)) > mirror_tol:
            raise ValueError("offsets are not mirror-symmetric; use symmetrize_offsets()")
        self.foot_joints = np.array([self.index(n) for n in foot_joints], dtype=np.int64)
        self.contact_heights = np.asarray(contact_heights, dtype=np.float64).reshape(-1)
        if self.contact_heights.shape != self.foot_joints.shape:
            raise ValueError("one contact height per foot joint")
        fpos = {int(f): k for k, f in enumerate(self.foot_joints)}
        self.foot_mirror = np.empty(len(self.foot_joints), dtype=np.int64)
        for k, f in enumerate(self.foot_joints):
            partner = int(m[f])
            if partner not in fpos:
                raise ValueError(
                    f"the partner of foot joint {self.names[f]!r} must be a foot joint")
            self.foot_mirror[k] = fpos[partner]
        if not np.array_equal(self.contact_heights, self.contact_heights[self.foot_mirror]):
            raise ValueError("contact heights must be left/right symmetric")
        self.contact_speed = float(contact_speed)
        self.root_forward = np.asarray(root_forward, dtype=np.float64).reshape(3)
        self.root_right = np.asarray(root_right, dtype=np.float64).reshape(3)
        # Heading must flip under mirroring: T_root keeps forward and negates right.
        if not (np.allclose(s[0] * self.root_forward, self.root_forward)
                and np.allclose(s[0] * self.root_right, -self.root_right)):
            raise ValueError("the root's mirror reflection must keep root_forward and negate "
                             "root_right")

    def copy(self) -> "CanonicalSkeleton":
        return CanonicalSkeleton(
            list(self.names), self.parents.copy(), self.offsets.copy(), self.end_sites.copy(),
            mirror_pairs=self.mirror_pairs, mirror_signs=self.mirror_signs.copy(),
            foot_joints=[self.names[j] for j in self.foot_joints],
            contact_heights=self.contact_heights.copy(), contact_speed=self.contact_speed,
            up_axis=self.up_axis, root_forward=self.root_forward.copy(),
            root_right=self.root_right.copy())


_MIRROR_INDEX = _mirror_index(list(JOINT_NAMES), MIRROR_PAIRS)
#: Canonical rest offsets: :data:`DATA_OFFSETS` made exactly left/right symmetric.
OFFSETS = symmetrize_offsets(DATA_OFFSETS, PARENTS, _MIRROR_INDEX, MIRROR_SIGNS)
for _a in (OFFSETS, DATA_OFFSETS, MIRROR_SIGNS, WORLD_MIRROR):
    _a.setflags(write=False)
del _a

#: The canonical skeleton (treat as read-only; ``SKELETON.copy()`` for a private one).
SKELETON = CanonicalSkeleton(JOINT_NAMES, PARENTS, OFFSETS,
                             {n: (0.0, 0.0, 0.0) for n in END_SITE_JOINTS})


# =========================================================================== helpers


def _check_motion(local_quats, root_translation, num_joints=None):
    q = np.asarray(local_quats, dtype=np.float64)
    x = np.asarray(root_translation, dtype=np.float64)
    if q.ndim != 3 or q.shape[-1] != 4:
        raise CanonicalError(f"local_quats must be (frames, joints, 4), got shape {q.shape}")
    if num_joints is not None and q.shape[1] != num_joints:
        raise CanonicalError(f"expected {num_joints} joints, got {q.shape[1]}")
    if x.shape != (q.shape[0], 3):
        raise CanonicalError(
            f"root_translation must be ({q.shape[0]}, 3) to match local_quats, got {x.shape}")
    if q.shape[0] == 0:
        raise CanonicalError("motion has no frames")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(x))):
        raise CanonicalError("motion contains NaN or infinite values")
    if np.any(np.linalg.norm(q, axis=-1) < 1e-8):
        raise CanonicalError("local_quats contains zero-length quaternions")
    return q, x


def snap_fps(fps: float) -> float:
    """Frame rates like 1/0.0333333 = 30.00003 (BVH rounding) -> 30.0."""
    fps = float(fps)
    r = round(fps)
    return float(r) if r > 0 and abs(fps - r) < 1e-3 else fps


def slerp(a, b, t) -> np.ndarray:
    """Spherical interpolation of unit quaternions ``a``, ``b`` ``[..., 4]`` at ``t``
    ``[...]`` (shortest arc)."""
    a = _rot.quat_normalize(a)
    b = _rot.quat_normalize(b)
    t = np.asarray(t, dtype=np.float64)[..., None]
    d = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(d < 0.0, -b, b)
    d = np.abs(d)
    ang = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(ang)
    small = s < 1e-6
    ss = np.where(small, 1.0, s)
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * ang) / ss)
    wb = np.where(small, t, np.sin(t * ang) / ss)
    return _rot.quat_normalize(wa * a + wb * b)


def resample(local_quats, root_translation, src_fps: float, dst_fps: float):
    """Resample motion from ``src_fps`` to ``dst_fps`` (slerp rotations, lerp translation).

    Output frame ``k`` is at time ``k / dst_fps``; frames cover ``[0, (F-1) / src_fps]``, so
    ``F_out = floor((F - 1) * dst_fps / src_fps) + 1`` (30 -> 20 fps: frame 2k is source frame
    3k, frame 2k+1 the midpoint of source frames 3k+1 and 3k+2).
    """
    q, x = _check_motion(local_quats, root_translation)
    src, dst = float(src_fps), float(dst_fps)
    if not (math.isfinite(src) and math.isfinite(dst) and src > 0 and dst > 0):
        raise CanonicalError(f"frame rates must be finite and > 0, got {src_fps}, {dst_fps}")
    q = quat_continuous(_rot.quat_normalize(q))
    if src == dst:
        return q, x.copy()
    F = q.shape[0]
    n = int(math.floor((F - 1) * dst / src + 1e-9)) + 1
    s = np.arange(n) * (src / dst)
    i0 = np.minimum(np.floor(s + 1e-9).astype(np.int64), F - 1)
    w = np.clip(s - i0, 0.0, 1.0)
    i1 = np.minimum(i0 + 1, F - 1)
    w = np.where(i0 == i1, 0.0, w)
    w = np.where(w < 1e-9, 0.0, w)
    qo = slerp(q[i0], q[i1], np.broadcast_to(w[:, None], (n, q.shape[1])))
    exact = w == 0.0
    qo[exact] = q[i0[exact]]
    xo = x[i0] * (1.0 - w)[:, None] + x[i1] * w[:, None]
    return quat_continuous(qo), xo


# =========================================================================== conversion


def bandai_to_canonical(bvh, fps: float = FPS, *, skeleton: CanonicalSkeleton = SKELETON,
                        offset_tol: float = 1.0, translation_tol: float = 1e-3):
    """Convert a Bandai Namco :class:`~.bvh.Bvh` to canonical motion at ``fps``.

    Returns ``(local_quats (F', 21, 4), root_translation (F', 3))``: the Hips' world
    rotation and position (including any ``joint_Root`` motion above it) and the other
    joints' local rotations, resampled from the file's frame rate (snapped: 30.00003 -> 30)
    to ``fps``. Pass ``fps=None`` to keep the file's frames.

    Raises :class:`CanonicalError` if a canonical joint is missing, the hierarchy differs
    (only ancestors of Hips, such as ``joint_Root``, may be extra), a bone length differs
    from the canonical skeleton by more than ``offset_tol`` (cm), or a non-root joint's
    position channels move it away from its OFFSET by more than ``translation_tol``.
    """
    if not isinstance(bvh, _bvh.Bvh):
        raise CanonicalError(f"expected a motion.bvh.Bvh, got {type(bvh).__name__}")
    try:
        bvh.validate()
    except _bvh.BvhError as e:
        raise CanonicalError(f"invalid BVH: {e}") from e
    names = bvh.names
    missing = [n for n in skeleton.names if n not in names]
    if missing:
        raise CanonicalError(f"BVH lacks canonical joints {missing} (has {names})")
    idx = np.array([names.index(n) for n in skeleton.names], dtype=np.int64)
    bpar = bvh.parents
    for j in range(1, skeleton.num_joints):
        if bpar[idx[j]] != idx[skeleton.parents[j]]:
            got = names[bpar[idx[j]]] if bpar[idx[j]] >= 0 else None
            raise CanonicalError(
                f"joint {skeleton.names[j]!r} has parent {got!r}, expected "
                f"{skeleton.names[skeleton.parents[j]]!r}")
    ancestors = set()
    a = bpar[idx[0]]
    while a >= 0:
        ancestors.add(int(a))
        a = bpar[a]
    extra = [names[i] for i in range(len(names)) if i not in set(idx.tolist()) | ancestors]
    if extra:
        raise CanonicalError(f"BVH has joints the canonical skeleton lacks: {extra}")
    boff = bvh.offsets[idx]
    dev = np.abs(np.linalg.norm(boff[1:], axis=1) - np.linalg.norm(skeleton.offsets[1:], axis=1))
    if dev.size and dev.max() > offset_tol:
        j = int(np.argmax(dev)) + 1
        raise CanonicalError(
            f"bone {skeleton.names[j]!r} is {dev.max():.3g} longer/shorter than the canonical "
            f"skeleton's (tolerance {offset_tol}); not a Bandai-proportioned skeleton")
    if bvh.num_frames == 0:
        raise CanonicalError("BVH has no frames")
    for j in range(1, skeleton.num_joints):
        if bvh.has_position(int(idx[j])):
            cols = bvh.position_channels(int(idx[j]))
            for ax in range(3):
                vals = bvh.motion[:, cols[ax]] if cols[ax] >= 0 else np.zeros(1)
                if np.max(np.abs(vals - boff[j, ax])) > translation_tol:
                    raise CanonicalError(
                        f"joint {skeleton.names[j]!r} has animated translation (position "
                        "channels differ from its OFFSET); the canonical skeleton has rigid "
                        "bones")
    pos, glob = bvh_forward_kinematics(bvh, return_rotations=True)
    q = bvh.local_quaternions()[:, idx]
    q[:, 0] = glob[:, idx[0]]
    root = pos[:, idx[0]]
    src = snap_fps(bvh.fps)
    return resample(q, root, src, src if fps is None else fps)


def canonical_to_bvh(local_quats, root_translation, fps: float = FPS, *,
                     skeleton: CanonicalSkeleton = SKELETON, bandai_layout: bool = False):
    """Canonical motion -> :class:`~.bvh.Bvh` (ZXY rotation channels, degrees).

    ``bandai_layout=True`` writes the Bandai file layout: a static ``joint_Root`` above the
    Hips and 6 channels on every joint (position channels equal to the offsets); otherwise
    the Hips has 6 channels and the other joints 3 rotation channels.
    """
    q, x = _check_motion(local_quats, root_translation, skeleton.num_joints)
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise CanonicalError(f"fps must be finite and > 0, got {fps}")
    pos_ch = ["Xposition", "Yposition", "Zposition"]
    rot_ch = ["Zrotation", "Xrotation", "Yrotation"]
    F, J = q.shape[:2]
    eul = np.degrees(_rot.quat_to_euler(q, "YXZ"))  # (F, J, 3) x, y, z angles
    joints, cols = [], []
    shift = 0
    if bandai_layout:
        joints.append(_bvh.BvhJoint("joint_Root", -1, np.zeros(3), pos_ch + rot_ch))
        cols.append(np.zeros((F, 6)))
        shift = 1
    for j in range(J):
        p = int(skeleton.parents[j])
        es = skeleton.end_sites[j]
        es = None if np.isnan(es[0]) else es
        six = j == 0 or bandai_layout
        joints.append(_bvh.BvhJoint(skeleton.names[j], p + shift if p >= 0 else shift - 1,
                                    skeleton.offsets[j], (pos_ch if six else []) + rot_ch, es))
        rot = eul[:, j][:, [2, 0, 1]]
        if j == 0:
            cols.append(np.concatenate([x, rot], axis=1))
        elif six:
            cols.append(np.concatenate([np.broadcast_to(skeleton.offsets[j], (F, 3)), rot], 1))
        else:
            cols.append(rot)
    return _bvh.Bvh(joints, 1.0 / fps, np.concatenate(cols, axis=1))


def canonical_forward_kinematics(local_quats, root_translation,
                                 skeleton: CanonicalSkeleton = SKELETON, return_rotations=False):
    """World joint positions ``(..., J, 3)`` of canonical motion (see
    :func:`~.skeleton.forward_kinematics`)."""
    return forward_kinematics(skeleton, local_quats, root_translation,
                              return_rotations=return_rotations)


# =========================================================================== mirroring


def _reflection_quat(signs) -> np.ndarray:
    """Quaternions of the rotations ``-diag(signs)`` for reflections ``diag(signs)``.

    ``T A T'`` = ``(-T) A (-T')`` for reflections ``T``, ``T'``, and ``-T`` is the identity
    (``T = -I``) or a half turn about the one axis ``T`` negates: a quaternion whose
    components are 0 and 1, so multiplying by it only permutes and negates components.
    """
    s = np.asarray(signs, dtype=np.float64).reshape(-1, 3)
    out = np.zeros((len(s), 4))
    for i, row in enumerate(s):
        neg = -row  # a rotation: all +1, or exactly two -1
        if np.all(neg == 1.0):
            out[i, 0] = 1.0
        else:
            out[i, 1 + int(np.flatnonzero(neg == 1.0)[0])] = 1.0
    return out


def mirror_motion(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON):
    """Left/right mirror of canonical motion: reflected across the world plane x = 0, left
    and right joints swapped.

    World positions satisfy ``fk(mirror)[:, j] = WORLD_MIRROR * fk(original)[:, partner(j)]``
    and ``mirror_motion(*mirror_motion(q, x)) == (q, x)`` up to quaternion sign (exactly, in
    fact: the reflections are half turns, which only permute and negate components).
    Accepts ``(..., F, J, 4)`` / ``(..., F, 3)``.
    """
    q = np.asarray(local_quats, dtype=np.float64)
    x = np.asarray(root_translation, dtype=np.float64)
    J = skeleton.num_joints
    if q.ndim < 2 or q.shape[-2:] != (J, 4):
        raise CanonicalError(f"local_quats must be (..., {J}, 4), got shape {q.shape}")
    if x.shape != q.shape[:-2] + (3,):
        raise CanonicalError(f"root_translation must be {q.shape[:-2] + (3,)}, got {x.shape}")
    m = skeleton.mirror_index
    pq = _reflection_quat(skeleton.mirror_signs)           # -T_j as quaternions
    left = np.empty((J, 4))
    left[0] = _reflection_quat(WORLD_MIRROR)[0]             # -M
    left[1:] = pq[skeleton.parents[1:]]                      # -T_parent
    qs = q[..., m, :]
    out = _rot.quat_mul(left, _rot.quat_mul(qs, pq))
    return out, x * WORLD_MIRROR
