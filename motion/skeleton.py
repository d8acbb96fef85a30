# SPDX-License-Identifier: GPL-3.0-or-later
"""Skeleton description and batched forward kinematics (numpy only).

Semantics follow BVH as Blender's importer (``io_anim_bvh``) interprets it:

* ``world_j = world_parent + R_parent_global @ t_j`` and ``R_j_global = R_parent_global @ R_j``
  where ``R_j`` is the joint's local rotation and ``t_j`` its local translation.
* ``t_j`` is the joint's OFFSET, unless the joint has position channels: then the channel
  values *replace* the OFFSET (axes without a channel count as 0). Blender does this for
  every joint with position channels, root or not: it keys
  ``location = rest_inv @ (bvh_loc - rest_head_local)`` for each such bone, so the bone's
  head ends up at ``parent + R_parent @ bvh_loc`` (see ``import_bvh.py``,
  ``bvh_node_dict2armature``). For the root that makes its world position the channel
  values. Use :meth:`Bvh.local_translations` to get these per-frame translations.
* Units and axes are the file's (no Y-up -> Z-up conversion, no scaling here).
"""
from __future__ import annotations

import numpy as np

from . import rotations as _rot

__all__ = ["Skeleton", "forward_kinematics", "end_site_positions", "bvh_forward_kinematics"]


class Skeleton:
    """Joint names, parents (``parents[j] < j``, -1 for roots), rest offsets and End Sites.

    ``end_sites`` may be None, a ``(J, 3)`` array with NaN rows for joints without an End
    Site, or a dict mapping joint name or index to a 3-vector.
    """

    def __init__(self, names, parents, offsets, end_sites=None):
        self.names = [str(n) for n in names]
        self.parents = np.asarray(parents, dtype=np.int64).reshape(-1)
        self.offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
        J = len(self.names)
        if self.parents.shape != (J,) or self.offsets.shape != (J, 3):
            raise ValueError(
                f"names ({J}), parents {self.parents.shape} and offsets {self.offsets.shape} "
                "disagree")
        if J == 0:
            raise ValueError("a skeleton needs at least one joint")
        idx = np.arange(J)
        if np.any(self.parents >= idx) or np.any(self.parents < -1):
            bad = int(np.flatnonzero((self.parents >= idx) | (self.parents < -1))[0])
            raise ValueError(
                f"joints must be topologically ordered (parents[j] < j): joint {bad} "
                f"({self.names[bad]!r}) has parent {int(self.parents[bad])}")
        if self.parents[0] != -1:
            raise ValueError("joint 0 must be a root (parent -1)")
        if len(set(self.names)) != J:
            raise ValueError("joint names must be unique")
        es = np.full((J, 3), np.nan)
        if isinstance(end_sites, dict):
            for key, val in end_sites.items():
                j = self.index(key) if isinstance(key, str) else int(key)
                es[j] = np.asarray(val, dtype=np.float64).reshape(3)
        elif end_sites is not None:
            es[:] = np.asarray(end_sites, dtype=np.float64).reshape(J, 3)
        self.end_sites = es

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_bvh(cls, bvh) -> "Skeleton":
        return cls(bvh.names, bvh.parents, bvh.offsets, bvh.end_sites)

    # ----------------------------------------------------------------- queries
    @property
    def num_joints(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Skeleton({self.num_joints} joints, roots={self.roots.tolist()})"

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(name) from None

    @property
    def roots(self) -> np.ndarray:
        return np.flatnonzero(self.parents < 0)

    def children(self, j: int) -> np.ndarray:
        return np.flatnonzero(self.parents == j)

    @property
    def end_site_joints(self) -> np.ndarray:
        """Indices of the joints that have an End Site."""
        return np.flatnonzero(~np.isnan(self.end_sites[:, 0]))

    def rest_positions(self) -> np.ndarray:
        """``(J, 3)`` positions with every rotation identity and translations = offsets."""
        pos = np.zeros((self.num_joints, 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def copy(self) -> "Skeleton":
        return Skeleton(list(self.names), self.parents.copy(), self.offsets.copy(),
                        self.end_sites.copy())


def _as_quats(local_rotations) -> np.ndarray:
    r = np.asarray(local_rotations, dtype=np.float64)
    if r.shape[-1] == 4:
        return _rot.quat_normalize(r)
    if r.shape[-2:] == (3, 3):
        return _rot.matrix_to_quat(r)
    raise ValueError(f"local rotations must be (..., J, 4) quaternions or (..., J, 3, 3) "
                     f"matrices, got shape {r.shape}")


def forward_kinematics(skeleton: Skeleton, local_rotations, root_translation=None,
                       joint_translations=None, return_rotations: bool = False):
    """World joint positions ``(..., J, 3)`` from local rotations.

    local_rotations: ``(..., J, 4)`` (w, x, y, z) quaternions or ``(..., J, 3, 3)``
        matrices, parent-relative; ``...`` is any batch shape, typically ``(F,)`` or
        ``(B, F)``.
    root_translation: ``(..., 3)`` local translation of joint 0 (its world position), or
        None to use its offset. Overrides ``joint_translations[..., 0, :]``.
    joint_translations: ``(..., J, 3)`` per-joint local translations replacing the offsets
        (as BVH position channels do); NaN entries fall back to the offset.
    return_rotations: also return the global rotations as ``(..., J, 4)`` quaternions.
    """
    q = _as_quats(local_rotations)
    J = skeleton.num_joints
    if q.shape[-2] != J:
        raise ValueError(f"expected {J} joints in local_rotations, got shape {q.shape}")
    batch = q.shape[:-2]
    trans = np.broadcast_to(skeleton.offsets, batch + (J, 3))
    if joint_translations is not None:
        jt = np.asarray(joint_translations, dtype=np.float64)
        jt = np.broadcast_to(jt, batch + (J, 3))
        trans = np.where(np.isnan(jt), trans, jt)
    if root_translation is not None:
        rt = np.broadcast_to(np.asarray(root_translation, dtype=np.float64), batch + (3,))
        trans = trans.copy()
        trans[..., 0, :] = rt
    pos = np.empty(batch + (J, 3))
    glob = np.empty(batch + (J, 4))
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            pos[..., j, :] = trans[..., j, :]
            glob[..., j, :] = q[..., j, :]
        else:
            gp = glob[..., p, :]
            pos[..., j, :] = pos[..., p, :] + _rot.quat_rotate(gp, trans[..., j, :])
            glob[..., j, :] = _rot.quat_mul(gp, q[..., j, :])
    if return_rotations:
        return pos, glob
    return pos


def end_site_positions(skeleton: Skeleton, positions, global_rotations) -> np.ndarray:
    """World End Site positions ``(..., E, 3)`` for ``skeleton.end_site_joints`` (E joints).

    ``positions`` / ``global_rotations`` are the outputs of :func:`forward_kinematics`
    (with ``return_rotations=True``).
    """
    js = skeleton.end_site_joints
    positions = np.asarray(positions, dtype=np.float64)
    g = np.asarray(global_rotations, dtype=np.float64)
    return positions[..., js, :] + _rot.quat_rotate(g[..., js, :], skeleton.end_sites[js])


def bvh_forward_kinematics(bvh, return_rotations: bool = False):
    """Forward kinematics of a :class:`~.bvh.Bvh` exactly as Blender imports it.

    Returns world positions ``(F, J, 3)`` (and global quaternions) in the file's units/axes.
    """
    sk = Skeleton.from_bvh(bvh)
    return forward_kinematics(sk, bvh.local_quaternions(), None, bvh.local_translations(),
                              return_rotations=return_rotations)
