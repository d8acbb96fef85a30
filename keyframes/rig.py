# SPDX-License-Identifier: GPL-3.0-or-later
"""Forward kinematics in Blender's own channel semantics, without bpy.

The keyframe engine measures error where the eye sees it: world positions of joints, in
centimetres. This module turns the values of an action's animated channels
(``location``, ``rotation_quaternion``, ``rotation_euler``, ``rotation_axis_angle``,
``scale`` of the object and of its pose bones) into world positions of tracked points,
vectorised over frames. The Blender layer fills a :class:`Rig` from the armature; tests check
the positions against Blender's own evaluation.

Supported: the usual bone settings (inherit rotation and scale, local location, connected
bones ignore location). Constraints, drivers and non-default inheritance are not modelled;
:attr:`Rig.warnings` names bones where that makes the error estimate approximate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..motion import rotations

TRANSFORM_PROPS = ("location", "rotation_quaternion", "rotation_euler", "rotation_axis_angle", "scale")
_SIZES = {"location": 3, "rotation_quaternion": 4, "rotation_euler": 3, "rotation_axis_angle": 4, "scale": 3}
_BONE_PATH = re.compile(r'^pose\.bones\["((?:[^"\\]|\\.)*)"\]\.(\w+)$')


def parse_data_path(data_path: str):
    """``'pose.bones["Hips"].location'`` → ``("Hips", "location")``; ``'location'`` →
    ``(None, "location")``; anything else → ``(bone_or_None, None)``."""
    m = _BONE_PATH.match(data_path)
    if m:
        bone = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
        prop = m.group(2)
        return bone, prop if prop in _SIZES else None
    return None, data_path if data_path in _SIZES else None


def bone_data_path(bone: str, prop: str) -> str:
    escaped = bone.replace("\\", "\\\\").replace('"', '\\"')
    return f'pose.bones["{escaped}"].{prop}'


@dataclass
class Node:
    """One transform in the chain: the object itself or one pose bone."""

    name: str | None  # bone name; None for the object
    parent: int  # index into Rig.nodes; -1 for the object node
    rest: np.ndarray  # 4x4: object node → parent frame (parent world @ parent inverse);
    #                  bone → bone.matrix_local (armature space)
    rotation_mode: str = "QUATERNION"
    defaults: dict = field(default_factory=dict)  # prop → static value when not animated
    connected: bool = False
    points: np.ndarray = field(default_factory=lambda: np.zeros((1, 3)))  # local tracked points


@dataclass
class Rig:
    """Everything FK needs, read once from Blender (or built by hand in tests)."""

    nodes: list  # [object node, bones in topological order]
    cm_per_unit: float = 100.0
    warnings: list = field(default_factory=list)

    @property
    def n_points(self) -> int:
        return int(sum(len(n.points) for n in self.nodes))

    def index(self, bone: str | None) -> int:
        for i, node in enumerate(self.nodes):
            if node.name == bone:
                return i
        raise KeyError(bone)


class ChannelMap:
    """Where each (data_path, index) channel goes in the rig.

    Channels that are not transforms (custom properties, shape keys…) are listed in
    :attr:`other`; they are keyed along with the rest but do not move tracked points.
    """

    def __init__(self, rig: Rig, channels):
        self.rig = rig
        # parent rest⁻¹ · rest, fixed per bone: computed once, not per FK call
        rests = np.array([node.rest for node in rig.nodes], dtype=np.float64).reshape(-1, 4, 4)
        inverses = affine_inverse(rests)
        self._local = [
            node.rest if node.parent <= 0 else inverses[node.parent] @ node.rest
            for node in rig.nodes
        ]
        names = {node.name: i for i, node in enumerate(rig.nodes)}
        self.slots = {}  # (node index, prop) → {component: column}
        self.other = []
        for col, (data_path, index) in enumerate(channels):
            bone, prop = parse_data_path(data_path)
            node = names.get(bone) if (bone is not None or prop is not None) else None
            if prop is None or node is None or index >= _SIZES[prop]:
                self.other.append(col)
                continue
            self.slots.setdefault((node, prop), {})[index] = col
        self._setup()

    def groups(self):
        """``(kind, columns)`` groups for continuity (quaternion signs, Euler unwrapping)."""
        out = []
        for (node, prop), comps in self.slots.items():
            cols = [comps[i] for i in sorted(comps)]
            if prop == "rotation_quaternion" and len(comps) == 4:
                out.append(("quaternion", cols))
            elif prop == "rotation_euler":
                mode = self.rig.nodes[node].rotation_mode
                out.append(("euler", cols, mode) if len(mode) == 3 and len(comps) == 3 else ("euler", cols))
            else:
                out.append(("other", cols))
        if self.other:
            out.append(("other", list(self.other)))
        return out

    def _setup(self):
        """Precompute gathers so one FK call is a handful of array operations for all nodes."""
        nodes = self.rig.nodes
        count = len(nodes)
        # per property: defaults (count, size) and (flat target, column) pairs to scatter
        self._props = {}
        for prop, size in _SIZES.items():
            base = np.array([node.defaults.get(prop, _identity(prop)) for node in nodes], float)
            targets, cols = [], []
            for (node_i, p), comps in self.slots.items():
                if p == prop:
                    for comp, col in comps.items():
                        targets.append(node_i * size + comp)
                        cols.append(col)
            self._props[prop] = (base.reshape(count, size), np.array(targets, np.intp), np.array(cols, np.intp))
        modes = {}
        for i, node in enumerate(nodes):
            modes.setdefault(node.rotation_mode, []).append(i)
        self._modes = {m: np.array(ix, np.intp) for m, ix in modes.items()}
        self._scaled = any(
            (i, "scale") in self.slots or np.any(np.asarray(node.defaults.get("scale", (1, 1, 1))) != 1)
            for i, node in enumerate(nodes)
        )
        self._loc_mask = np.array([0.0 if node.connected else 1.0 for node in nodes])[:, None]
        local = np.array(self._local)
        self._lr, self._lt = local[:, :3, :3], local[:, :3, 3]
        depth = [0] * count
        for i, node in enumerate(nodes):
            depth[i] = 0 if node.parent < 0 else depth[max(node.parent, 0)] + 1
        self._levels = []
        for d in range(1, max(depth) + 1 if count else 1):
            ix = np.array([i for i in range(count) if depth[i] == d], np.intp)
            self._levels.append((ix, np.array([max(nodes[i].parent, 0) for i in ix], np.intp)))
        # tracked points: bone heads / tails are translation (+ length · Y axis)
        self._pt_node, self._pt_local = [], []
        for i, node in enumerate(nodes):
            for p in node.points:
                self._pt_node.append(i)
                self._pt_local.append(p)
        self._pt_node = np.array(self._pt_node, np.intp)
        self._pt_local = np.array(self._pt_local, float).reshape(-1, 3)
        self._pt_on_y = (self._pt_local[:, 0] == 0) & (self._pt_local[:, 2] == 0)

    def _gather(self, values, prop):
        """(nodes, n, size) values of one property: defaults, overwritten by animated columns."""
        base, targets, cols = self._props[prop]
        n = values.shape[0]
        out = np.empty((base.size, n))
        out[:] = base.reshape(-1, 1)
        if len(cols):
            out[targets] = values[:, cols].T
        return out.reshape(base.shape[0], base.shape[1], n).transpose(0, 2, 1)

    def world_transforms(self, values):
        """World rotation·scale (nodes, n, 3, 3) and translation (nodes, n, 3), object node
        first (node-major, so per-level gathers copy contiguous blocks). Bone i:
        world_i = world_parent · (rest_parent⁻¹ · rest_i) · basis_i, where
        basis_i = T(location) · R(rotation mode) · S(scale); connected bones ignore location."""
        values = np.asarray(values, dtype=np.float64)
        n = values.shape[0]
        count = len(self.rig.nodes)
        rot = np.empty((count, n, 3, 3))
        for mode, ix in self._modes.items():
            if mode == "QUATERNION":
                q = self._gather(values, "rotation_quaternion")[ix]
                rot[ix] = rotations.quat_to_matrix(q)
            elif mode == "AXIS_ANGLE":
                rot[ix] = rotations.axis_angle_to_matrix(self._gather(values, "rotation_axis_angle")[ix])
            else:
                rot[ix] = rotations.euler_to_matrix(self._gather(values, "rotation_euler")[ix], mode)
        if self._scaled:
            rot *= self._gather(values, "scale")[:, :, None, :]
        loc = self._gather(values, "location") * self._loc_mask[:, None]
        # local transforms: (parent rest⁻¹ · rest) · basis
        rot = np.matmul(self._lr[:, None], rot)
        loc = np.matmul(self._lr[:, None], loc[..., None])[..., 0] + self._lt[:, None]
        for ix, parents in self._levels:
            p_rot = rot[parents]
            loc[ix] = np.matmul(p_rot, loc[ix, :, :, None])[..., 0] + loc[parents]
            rot[ix] = np.matmul(p_rot, rot[ix])
        return rot, loc

    def points(self, values) -> np.ndarray:
        """(n, P, 3) world positions of the tracked points, in centimetres."""
        rot, loc = self.world_transforms(values)
        pts = loc[self._pt_node]
        if self._pt_on_y.all():  # bone heads and tails: translation + length · Y axis
            pts = pts + rot[self._pt_node][..., 1] * self._pt_local[:, None, 1, None]
        else:
            pts = pts + np.matmul(rot[self._pt_node], self._pt_local[:, None, :, None])[..., 0]
        return pts.transpose(1, 0, 2) * self.rig.cm_per_unit

    __call__ = points


def affine_inverse(m):
    """Inverse of affine 4×4 matrices (..., 4, 4) in closed form (adjugate by cross products).

    Avoids LAPACK for tiny matrices: under load its thread pool can cost milliseconds a call."""
    m = np.asarray(m, dtype=np.float64)
    a, b, c = m[..., :3, 0], m[..., :3, 1], m[..., :3, 2]
    bc, ca, ab = np.cross(b, c), np.cross(c, a), np.cross(a, b)
    det = np.einsum("...i,...i->...", a, bc)
    inv_r = np.stack([bc, ca, ab], axis=-2) / det[..., None, None]
    out = np.zeros(m.shape)
    out[..., :3, :3] = inv_r
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", inv_r, m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def _identity(prop):
    return {
        "location": (0.0, 0.0, 0.0),
        "rotation_quaternion": (1.0, 0.0, 0.0, 0.0),
        "rotation_euler": (0.0, 0.0, 0.0),
        "rotation_axis_angle": (0.0, 0.0, 1.0, 0.0),
        "scale": (1.0, 1.0, 1.0),
    }[prop]
