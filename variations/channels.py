# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-frame feature arrays for variation models, from the channels of any rig (numpy only).

A variation model (GenMM, MotionDreamer, ...) works on one (T, D) float32 array per motion and
knows nothing about skeletons. An animator's action is a (T, C) matrix of channel values
(quaternions, Euler triples of any order, axis-angles, locations, scales, custom properties).
:class:`ChannelLayout` says how the C columns group into rotations, a root trajectory and plain
scalars, and turns the values into features and back:

* every rotation (``quat`` w x y z, ``euler`` x y z in a Blender order, ``axis_angle`` angle x
  y z) becomes the 6-D rotation of its matrix (Zhou et al.): continuous, free of quaternion
  signs, Euler wraps and gimbal branches, so a model can blend it;
* the root-motion bone's location (``root``) becomes what does not depend on where the
  character stands or faces: horizontal velocity in the character's heading frame, absolute
  height, and yaw rate; the root's own rotation is encoded with its heading (yaw) removed;
* anything else (``scalar``) is the value itself.

Decoding inverts all of it: 6-D to the nearest rotation (Gram-Schmidt), back to the group's own
kind with sign / Euler continuity, and the root trajectory integrated from the reference's start
position and yaw (kept in :attr:`Encoded.start`). For the reference itself
``decode(encode(x))`` returns ``x`` to float32 precision (rotations in the same sign / Euler
branch as the reference's first frame when the reference is continuous).

Root heading: the root bone's armature-space rotation is ``A = R_rest @ R_pose``. The heading
axis is the bone-local axis (a column of ``R_rest``) most horizontal at rest (ties: lowest
index), derived from ``rest`` and ``up``; the yaw is the angle of ``A @ axis`` in the horizontal
plane. Horizontal axes ``(a, b)`` are chosen so that ``(a, b, up)`` is right-handed (up = Z:
X, Y; up = Y: Z, X), so positive yaw is counter-clockwise seen from above. The yaw is undefined
when the heading axis points straight up; the encoding stays exactly invertible there, the
features just jump.

Columns that no group names are not modelled: decoding holds them at the reference's first
value (kept in ``start``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from ..keyframes.continuity import euler_filter, quat_continuous
from ..motion import rotations as rot

__all__ = ["Group", "Encoded", "ChannelLayout", "rotation_matrices", "rotation_values", "KINDS",
           "ROTATION_KINDS", "FEATURE_SIZES", "ROOT_FEATURES"]

ROTATION_KINDS = ("quat", "euler", "axis_angle")
KINDS = ROTATION_KINDS + ("root", "scalar")
_COLUMNS = {"quat": 4, "euler": 3, "axis_angle": 4, "root": 3, "scalar": 1}
FEATURE_SIZES = {"quat": 6, "euler": 6, "axis_angle": 6, "root": 4, "scalar": 1}
# names of a root group's four features, in order
ROOT_FEATURES = ("velocity_along_heading", "velocity_across_heading", "height", "yaw_rate")
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class Group:
    """Columns of the value matrix that form one modelled quantity.

    ``kind``: ``"quat"`` (4 columns w, x, y, z), ``"euler"`` (3 columns x, y, z; ``order`` is
    Blender's rotation mode), ``"axis_angle"`` (4 columns angle, x, y, z: Blender's layout),
    ``"root"`` (3 location columns of the root-motion bone, in its rest frame ``rest``: the
    row-major 3x3 of ``bone.matrix_local``; ``rotation`` is the index in the layout's groups of
    that bone's rotation group or -1; ``up`` the up axis of armature space: 2 for Blender's Z,
    1 for a Y-up source) or ``"scalar"`` (1 column, any other animated value).
    """

    kind: str
    columns: tuple
    order: str = "XYZ"
    rest: tuple = _IDENTITY
    rotation: int = -1
    up: int = 2
    name: str = ""

    def __post_init__(self):
        # normalise types so equality, hashing and JSON do not depend on how it was built
        object.__setattr__(self, "columns", tuple(int(c) for c in np.ravel(self.columns)))
        object.__setattr__(self, "order", str(self.order).upper())
        object.__setattr__(self, "rest", tuple(float(v) for v in np.ravel(self.rest)))
        object.__setattr__(self, "rotation", int(self.rotation))
        object.__setattr__(self, "up", int(self.up))
        object.__setattr__(self, "name", str(self.name))

    @property
    def feature_size(self) -> int:
        return FEATURE_SIZES[self.kind]

    def rest_matrix(self) -> np.ndarray:
        return np.array(self.rest, dtype=np.float64).reshape(3, 3)

    def to_json(self) -> dict:
        return {"kind": self.kind, "columns": list(self.columns), "order": self.order,
                "rest": list(self.rest), "rotation": self.rotation, "up": self.up,
                "name": self.name}


@dataclass
class Encoded:
    """Features of one motion and what decoding needs to put a motion back where this one
    starts: ``start = {"first": [C values of frame 0], "root_position": [x, y, z] (armature
    space, rest frame applied) or None, "root_yaw": float}`` (plain lists and floats)."""

    features: np.ndarray  # (T, D) float32
    start: dict = field(default_factory=dict)


def _horizontal(up: int):
    """The two horizontal axes (a, b) with (a, b, up) right-handed."""
    return (up + 1) % 3, (up + 2) % 3


def _heading_axis(rest: np.ndarray, up: int) -> int:
    """Bone-local axis whose rest image in armature space is most horizontal (lowest index on
    ties, decided on rounded values so it is stable)."""
    verticality = np.round(np.abs(rest[up, :]), 6)
    return int(np.argmin(verticality))


def _wrap(x):
    return (x + np.pi) % _TWO_PI - np.pi


def _euler_flip(e, order: str):
    """The other Euler triple of the same rotation: first and last angle + pi, middle pi - b."""
    first, middle, last = ("XYZ".index(ax) for ax in order)
    f = np.array(e, dtype=np.float64, copy=True)
    f[..., first] += np.pi
    f[..., middle] = np.pi - f[..., middle]
    f[..., last] += np.pi
    return f


def _nearest_turn(x, target):
    """``x`` shifted by whole turns to lie nearest ``target`` (elementwise)."""
    return x + _TWO_PI * np.round((target - x) / _TWO_PI)


def rotation_matrices(kind: str, values, order: str = "XYZ") -> np.ndarray:
    """Channel values (T, k) of a rotation of ``kind`` (``quat`` w x y z, ``euler`` x y z in
    Blender ``order``, ``axis_angle`` angle x y z) → matrices (T, 3, 3), as Blender evaluates
    them (quaternions and axes normalised)."""
    if kind == "quat":
        return rot.quat_to_matrix(values)
    if kind == "euler":
        return rot.euler_to_matrix(values, order)
    if kind == "axis_angle":
        return rot.axis_angle_to_matrix(values)
    raise ValueError(f"not a rotation kind: {kind!r}; expected one of {ROTATION_KINDS}")


def rotation_values(kind: str, matrices, order: str = "XYZ", first=None) -> np.ndarray:
    """Rotation matrices (T, 3, 3) → channel values (T, k) of ``kind``, continuous over time
    (quaternion signs, Euler branch and turns, axis-angle axis sign and angle turns) and, when
    ``first`` (k values) is given, on the sign / branch / turn nearest it on the first frame."""
    m = np.asarray(matrices, dtype=np.float64)
    ref = None if first is None else np.asarray(first, dtype=np.float64)
    if kind == "quat":
        q = quat_continuous(rot.matrix_to_quat(m))
        if ref is not None and len(q) and np.dot(q[0], ref) < 0.0:
            q = -q
        return q
    if kind == "euler":
        e = euler_filter(rot.matrix_to_euler(m, order), order)
        if ref is None or not len(e):
            return e
        flipped = _euler_flip(e, order)
        if np.linalg.norm(_wrap(flipped[0] - ref)) < np.linalg.norm(_wrap(e[0] - ref)):
            e = flipped
        return e + (_nearest_turn(e[0], ref) - e[0])
    if kind != "axis_angle":
        raise ValueError(f"not a rotation kind: {kind!r}; expected one of {ROTATION_KINDS}")
    # axis-angle: continuous quaternion, then a continuous axis sign and an unwrapped angle
    q = quat_continuous(rot.matrix_to_quat(m))
    prev = None
    if ref is not None:
        if len(q) and np.dot(q[0], rot.axis_angle_to_quat(ref)) < 0.0:
            q = -q
        n = np.linalg.norm(ref[1:])
        prev = ref[1:] / n if n > 1e-12 else None
    s = np.linalg.norm(q[:, 1:], axis=1)
    angle = 2.0 * np.arctan2(s, q[:, 0])
    axis = np.empty((len(q), 3))
    for t in range(len(q)):  # near the identity the axis is undefined: keep the last one
        if s[t] > 1e-9:
            a = q[t, 1:] / s[t]
            if prev is not None and np.dot(a, prev) < 0.0:
                a, angle[t] = -a, -angle[t]
            prev = a
        axis[t] = prev if prev is not None else (0.0, 1.0, 0.0)  # Blender's default axis
    angle = np.unwrap(angle) if len(angle) > 1 else angle
    if ref is not None and len(angle):
        angle = angle + (_nearest_turn(angle[0], ref[0]) - angle[0])
    return np.concatenate([angle[:, None], axis], axis=1)


class ChannelLayout:
    """How the C columns of a (T, C) value matrix map to a (T, D) feature array.

    Features are laid out group after group, in the order of ``groups``: 6 per rotation group,
    4 per root group (:data:`ROOT_FEATURES`), 1 per scalar.
    """

    def __init__(self, groups, n_columns: int):
        self.groups = tuple(g if isinstance(g, Group) else Group(**g) for g in groups)
        self.n_columns = int(n_columns)
        self._validate()
        offsets = np.cumsum([0] + [g.feature_size for g in self.groups])
        self._offsets = [int(o) for o in offsets]
        used = {c for g in self.groups for c in g.columns}
        self.unmodelled = tuple(c for c in range(self.n_columns) if c not in used)
        # the root group's rotation group is encoded de-yawed: which groups, which root
        self._root_of = {g.rotation: i for i, g in enumerate(self.groups)
                         if g.kind == "root" and g.rotation >= 0}

    # ------------------------------------------------------------------ structure

    def _validate(self):
        if self.n_columns < 0:
            raise ValueError(f"n_columns must be >= 0, got {self.n_columns}")
        seen = {}
        roots = 0
        for i, g in enumerate(self.groups):
            label = f"group {i} ({g.name or g.kind})"
            if g.kind not in KINDS:
                raise ValueError(f"{label}: unknown kind {g.kind!r}; expected one of {KINDS}")
            if len(g.columns) != _COLUMNS[g.kind]:
                raise ValueError(f"{label}: a {g.kind} group needs {_COLUMNS[g.kind]} columns, "
                                 f"got {len(g.columns)}")
            for c in g.columns:
                if not 0 <= c < self.n_columns:
                    raise ValueError(f"{label}: column {c} outside 0..{self.n_columns - 1}")
                if c in seen:
                    raise ValueError(f"{label}: column {c} already used by group {seen[c]}")
                seen[c] = i
            if g.kind == "euler" and g.order not in rot.EULER_ORDERS:
                raise ValueError(f"{label}: unknown Euler order {g.order!r}; expected one of "
                                 f"{rot.EULER_ORDERS}")
            if len(g.rest) != 9 or not np.all(np.isfinite(g.rest)):
                raise ValueError(f"{label}: rest must be 9 finite numbers (a row-major 3x3)")
            if g.kind == "root":
                roots += 1
                r = g.rest_matrix()
                if not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
                    raise ValueError(f"{label}: rest must be a rotation matrix (normalise "
                                     "bone.matrix_local's 3x3)")
                if g.up not in (0, 1, 2):
                    raise ValueError(f"{label}: up must be 0, 1 or 2, got {g.up}")
                if g.rotation >= 0:
                    if g.rotation >= len(self.groups) or \
                            self.groups[g.rotation].kind not in ROTATION_KINDS:
                        raise ValueError(f"{label}: rotation {g.rotation} is not the index of a "
                                         "rotation group")
                elif g.rotation != -1:
                    raise ValueError(f"{label}: rotation must be a group index or -1")
        if roots > 1:
            raise ValueError(f"a layout has at most one root group, got {roots}")

    @property
    def feature_dim(self) -> int:
        return self._offsets[-1]

    def feature_columns(self, index: int) -> np.ndarray:
        """Feature columns of group ``index``."""
        return np.arange(self._offsets[index], self._offsets[index + 1])

    def feature_slices(self) -> dict:
        """Feature column indices by role, for metrics: ``"rotation"`` (6-D rotations of the
        non-root bones), ``"root"`` (the root's four trajectory features and the 6-D of its
        de-yawed rotation), ``"root_trajectory"`` (the four only), ``"scalar"``."""
        out = {"rotation": [], "root": [], "root_trajectory": [], "scalar": []}
        for i, g in enumerate(self.groups):
            cols = self.feature_columns(i).tolist()
            if g.kind == "root":
                out["root"] += cols
                out["root_trajectory"] += cols
            elif g.kind == "scalar":
                out["scalar"] += cols
            elif i in self._root_of:
                out["root"] += cols
            else:
                out["rotation"] += cols
        return {k: np.array(sorted(v), dtype=np.intp) for k, v in out.items()}

    def to_json(self) -> dict:
        return {"version": 1, "n_columns": self.n_columns,
                "groups": [g.to_json() for g in self.groups]}

    @classmethod
    def from_json(cls, d: dict) -> ChannelLayout:
        if int(d.get("version", 1)) != 1:
            raise ValueError(f"unsupported channel layout version {d.get('version')!r}")
        return cls([Group(**g) for g in d["groups"]], d["n_columns"])

    def fingerprint(self) -> str:
        """sha256 (hex) of what the features depend on: column count, kinds, columns, orders,
        rest (rounded to 1e-6), root links and up axes. Names are left out (renaming a bone
        does not change the features)."""
        desc = {"n_columns": self.n_columns, "groups": [
            [g.kind, list(g.columns), g.order if g.kind == "euler" else "",
             [round(v, 6) + 0.0 for v in g.rest] if g.kind == "root" else [],
             g.rotation if g.kind == "root" else -1, g.up if g.kind == "root" else -1]
            for g in self.groups]}
        text = json.dumps(desc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other):
        return isinstance(other, ChannelLayout) and self.to_json() == other.to_json()

    def __repr__(self):
        kinds = ", ".join(f"{g.kind}:{g.name}" if g.name else g.kind for g in self.groups)
        return f"ChannelLayout({self.n_columns} columns → {self.feature_dim} features: {kinds})"

    # ------------------------------------------------------------------ encode / decode

    def _check_values(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_columns:
            raise ValueError(f"values must have shape (T, {self.n_columns}), got {values.shape}")
        if len(values) < 1:
            raise ValueError("values need at least one frame")
        if not np.all(np.isfinite(values)):
            raise ValueError("values contain NaN or infinite numbers")
        return values

    def _yaw(self, root: Group, rot_matrix) -> np.ndarray:
        """Heading yaw per frame from the root bone's pose rotation matrices (T, 3, 3)."""
        rest = root.rest_matrix()
        a, b = _horizontal(root.up)
        d = (rest @ rot_matrix)[..., _heading_axis(rest, root.up)]
        return np.arctan2(d[:, b], d[:, a])

    def encode(self, values) -> Encoded:
        """(T, C) channel values → :class:`Encoded` (features (T, D) float32 and start)."""
        values = self._check_values(values)
        T = len(values)
        feats = np.empty((T, self.feature_dim))
        mats = {i: rotation_matrices(g.kind, values[:, list(g.columns)], g.order)
                for i, g in enumerate(self.groups) if g.kind in ROTATION_KINDS}
        start = {"first": values[0].tolist(), "root_position": None, "root_yaw": 0.0}
        for i, g in enumerate(self.groups):
            cols = self.feature_columns(i)
            if g.kind == "scalar":
                feats[:, cols] = values[:, list(g.columns)]
            elif g.kind == "root":
                rest = g.rest_matrix()
                p = values[:, list(g.columns)] @ rest.T  # armature-space positions
                yaw = self._yaw(g, mats[g.rotation]) if g.rotation >= 0 else np.zeros(T)
                v = np.diff(p, axis=0, prepend=p[:1]) if T > 1 else np.zeros_like(p)
                if T > 1:
                    v[0] = v[1]
                a, b = _horizontal(g.up)
                c, s = np.cos(yaw), np.sin(yaw)  # velocity in the heading frame: rotate by -yaw
                feats[:, cols[0]] = c * v[:, a] + s * v[:, b]
                feats[:, cols[1]] = -s * v[:, a] + c * v[:, b]
                feats[:, cols[2]] = p[:, g.up]
                feats[:, cols[3]] = np.concatenate([[0.0], _wrap(np.diff(yaw))])
                start["root_position"] = p[0].tolist()
                start["root_yaw"] = float(yaw[0])
                if g.rotation >= 0:  # the root rotation is modelled without its heading
                    mats[g.rotation] = (rest.T @ rot.axis_matrix(g.up, -yaw) @ rest) @ mats[g.rotation]
        for i, m in mats.items():
            feats[:, self.feature_columns(i)] = rot.rot6d_from_matrix(m)
        return Encoded(features=feats.astype(np.float32), start=start)

    def decode(self, features, start=None) -> np.ndarray:
        """(T', D) features → (T', C) channel values (float64).

        ``start`` is :attr:`Encoded.start` of the reference: the root starts at its position
        and yaw, rotations take its first frame's sign / Euler branch, unmodelled columns its
        first values. Without it: the origin, yaw 0, the default branch, zeros.
        """
        feats = np.asarray(features, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise ValueError(f"features must have shape (T, {self.feature_dim}), "
                             f"got {feats.shape}")
        if len(feats) < 1:
            raise ValueError("features need at least one frame")
        start = start or {}
        T = len(feats)
        first = start.get("first")
        if first is not None:
            first = np.asarray(first, dtype=np.float64)
            if first.shape != (self.n_columns,):
                raise ValueError(f"start['first'] must hold {self.n_columns} values")
        out = np.empty((T, self.n_columns))
        out[:, list(self.unmodelled)] = 0.0 if first is None else first[list(self.unmodelled)]
        mats = {i: rot.matrix_from_rot6d(feats[:, self.feature_columns(i)])
                for i, g in enumerate(self.groups) if g.kind in ROTATION_KINDS}
        for i, g in enumerate(self.groups):
            cols = self.feature_columns(i)
            if g.kind == "scalar":
                out[:, g.columns[0]] = feats[:, cols[0]]
            elif g.kind == "root":
                rest = g.rest_matrix()
                if g.rotation >= 0:  # heading integrated from the reference's start yaw
                    yaw = float(start.get("root_yaw", 0.0)) + np.cumsum(
                        np.concatenate([[0.0], feats[1:, cols[3]]]))
                else:
                    yaw = np.zeros(T)
                a, b = _horizontal(g.up)
                c, s = np.cos(yaw), np.sin(yaw)
                va = c * feats[:, cols[0]] - s * feats[:, cols[1]]
                vb = s * feats[:, cols[0]] + c * feats[:, cols[1]]
                p0 = start.get("root_position")
                p0 = [0.0, 0.0, 0.0] if p0 is None else [float(x) for x in p0]
                p = np.empty((T, 3))
                p[:, a] = p0[a] + np.concatenate([[0.0], np.cumsum(va[1:])])
                p[:, b] = p0[b] + np.concatenate([[0.0], np.cumsum(vb[1:])])
                p[:, g.up] = feats[:, cols[2]]
                out[:, list(g.columns)] = p @ rest  # back to the bone's rest frame
                if g.rotation >= 0:
                    mats[g.rotation] = (rest.T @ rot.axis_matrix(g.up, yaw) @ rest) @ mats[g.rotation]
        for i, m in mats.items():
            g = self.groups[i]
            out[:, list(g.columns)] = rotation_values(
                g.kind, m, g.order, None if first is None else first[list(g.columns)])
        return out
