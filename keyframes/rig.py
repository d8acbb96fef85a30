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
        self._local = [
            node.rest if node.parent <= 0 else np.linalg.inv(rig.nodes[node.parent].rest) @ node.rest
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

    def _prop(self, values, node_i, prop, n):
        node = self.rig.nodes[node_i]
        base = np.asarray(node.defaults.get(prop, _identity(prop)), dtype=np.float64)
        out = np.broadcast_to(base, (n, _SIZES[prop])).copy()
        for comp, col in self.slots.get((node_i, prop), {}).items():
            out[:, comp] = values[:, col]
        return out

    def basis(self, values, node_i):
        """matrix_basis of one node for every row of ``values`` → rotation·scale (n, 3, 3)
        and translation (n, 3)."""
        n = values.shape[0]
        node = self.rig.nodes[node_i]
        mode = node.rotation_mode
        if mode == "QUATERNION":
            rot = rotations.quat_to_matrix(self._prop(values, node_i, "rotation_quaternion", n))
        elif mode == "AXIS_ANGLE":
            rot = rotations.axis_angle_to_matrix(self._prop(values, node_i, "rotation_axis_angle", n))
        else:
            rot = rotations.euler_to_matrix(self._prop(values, node_i, "rotation_euler", n), mode)
        if (node_i, "scale") in self.slots or np.any(np.asarray(node.defaults.get("scale", (1, 1, 1))) != 1):
            rot = rot * self._prop(values, node_i, "scale", n)[:, None, :]
        if node.connected:
            loc = np.zeros((n, 3))
        else:
            loc = self._prop(values, node_i, "location", n)
        return rot, loc

    def world_transforms(self, values):
        """Per node (object first): world rotation·scale (n, 3, 3) and translation (n, 3). Bone i: world_i = world_parent · (rest_parent⁻¹ · rest_i) · basis_i."""
        values = np.asarray(values, dtype=np.float64)
        n = values.shape[0]
        rots, locs = [], []
        for i, node in enumerate(self.rig.nodes):
            b_rot, b_loc = self.basis(values, i)
            local = self._local[i]
            lr, lt = local[:3, :3], local[:3, 3]
            # constant · batch as one gemm: (lr · B)ᵀ = Bᵀ · lrᵀ
            r = (b_rot.transpose(0, 2, 1).reshape(-1, 3) @ lr.T).reshape(n, 3, 3).transpose(0, 2, 1)
            t = b_loc @ lr.T + lt
            if i > 0:
                p_rot, p_loc = rots[node.parent], locs[node.parent]
                t = np.einsum("nij,nj->ni", p_rot, t) + p_loc
                r = np.matmul(p_rot, r)
            rots.append(np.ascontiguousarray(r))
            locs.append(t)
        return rots, locs

    def points(self, values) -> np.ndarray:
        """(n, P, 3) world positions of the tracked points, in centimetres."""
        rot, loc = self.world_transforms(values)
        pts = []
        for i, node in enumerate(self.rig.nodes):
            for p in node.points:
                if p[0] == 0.0 and p[2] == 0.0:  # head / tail of a bone: on its Y axis
                    pts.append(loc[i] if p[1] == 0.0 else loc[i] + rot[i][:, :, 1] * p[1])
                else:
                    pts.append(loc[i] + rot[i] @ p)
        return np.stack(pts, axis=1) * self.rig.cm_per_unit

    __call__ = points


def _identity(prop):
    return {
        "location": (0.0, 0.0, 0.0),
        "rotation_quaternion": (1.0, 0.0, 0.0, 0.0),
        "rotation_euler": (0.0, 0.0, 0.0),
        "rotation_axis_angle": (0.0, 0.0, 1.0, 0.0),
        "scale": (1.0, 1.0, 1.0),
    }[prop]
