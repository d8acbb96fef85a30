# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading dense samples from F-curves and writing keys fast (``foreach_set``).

Never ``keyframe_insert`` per key: ``keyframe_points.add`` + ``foreach_set`` writes tens of
thousands of keys in milliseconds.
"""
from __future__ import annotations

import numpy as np

from ..keyframes.rig import Node, Rig, TRANSFORM_PROPS

HANDLE_TYPES = {"FREE": 0, "AUTO": 1, "VECTOR": 2, "ALIGNED": 3, "AUTO_CLAMPED": 4}
INTERPOLATION_LINEAR = 1
INTERPOLATION_BEZIER = 2
# Keyframe properties copied verbatim when a curve is carried over unchanged.
_KEY_FLOAT2 = ("co", "handle_left", "handle_right")
_KEY_ENUMS = ("interpolation", "handle_left_type", "handle_right_type", "easing", "type")
_KEY_FLOAT1 = ("back", "amplitude", "period")
_KEY_PROPS1 = tuple((p, np.int32) for p in _KEY_ENUMS) + tuple((p, np.float32)
                                                              for p in _KEY_FLOAT1)


def key_frames(fcurve) -> np.ndarray:
    n = len(fcurve.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co[0::2].astype(np.float64)


def key_values(fcurve) -> np.ndarray:
    n = len(fcurve.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co[1::2].astype(np.float64)


def frame_range(fcurves):
    """Integer frame range covering every key of the curves: (first, last)."""
    first, last = np.inf, -np.inf
    for fc in fcurves:
        if len(fc.keyframe_points):
            x = key_frames(fc)
            first, last = min(first, x.min()), max(last, x.max())
    return int(np.floor(first)), int(np.ceil(last))


def sample(fcurves, first: int, last: int) -> np.ndarray:
    """Values of each curve at every integer frame first..last → (T, C) float64.

    Curves keyed on exactly those frames are read in bulk; others are evaluated per frame.
    """
    frames = np.arange(first, last + 1, dtype=np.float64)
    out = np.empty((len(frames), len(fcurves)))
    for c, fc in enumerate(fcurves):
        n = len(fc.keyframe_points)
        if n == len(frames) and not len(fc.modifiers):
            co = np.empty(2 * n, dtype=np.float32)
            fc.keyframe_points.foreach_get("co", co)
            if np.array_equal(co[0::2], frames.astype(np.float32)):
                out[:, c] = co[1::2]
                continue
        evaluate = fc.evaluate
        out[:, c] = [evaluate(f) for f in frames]
    return out


def write_dense(fcurve, frames, values, interpolation: int = INTERPOLATION_LINEAR):
    """Append one key per sample (LINEAR by default, like motion capture)."""
    n = len(frames)
    points = fcurve.keyframe_points
    points.add(n)
    points.foreach_set("co", _pairs(frames, values))
    points.foreach_set("interpolation", np.full(n, interpolation, dtype=np.uint8))
    fcurve.update()


def write_keys(fcurve, frames, values, left, right, handle_type: str = "FREE"):
    """Replace the keys of ``fcurve`` by Bezier keys with the given handle values.

    Handles sit at one third of each neighbouring interval in time (so the fitted
    Bernstein form is exactly what Blender evaluates); the outer handles of the end keys
    mirror the inner ones.
    """
    frames = np.asarray(frames, dtype=np.float64)
    k = len(frames)
    dt = np.diff(frames)
    dl = np.concatenate([dt[:1], dt]) / 3.0 if k > 1 else np.ones(1)
    dr = np.concatenate([dt, dt[-1:]]) / 3.0 if k > 1 else np.ones(1)
    values = np.asarray(values, dtype=np.float64)
    left = np.asarray(left, dtype=np.float64).copy()
    right = np.asarray(right, dtype=np.float64).copy()
    if k > 1:  # end keys: mirror the only meaningful handle
        left[0] = values[0] - (right[0] - values[0])
        right[-1] = values[-1] - (left[-1] - values[-1])
    points = fcurve.keyframe_points
    points.clear()
    points.add(k)
    points.foreach_set("co", _pairs(frames, values))
    points.foreach_set("handle_left", _pairs(frames - dl, left))
    points.foreach_set("handle_right", _pairs(frames + dr, right))
    code = HANDLE_TYPES[handle_type]
    points.foreach_set("handle_left_type", np.full(k, code, dtype=np.uint8))
    points.foreach_set("handle_right_type", np.full(k, code, dtype=np.uint8))
    points.foreach_set("interpolation", np.full(k, INTERPOLATION_BEZIER, dtype=np.uint8))
    fcurve.update()


def read_keys(fcurve) -> dict:
    """Every property of every key of ``fcurve``: ``{"co": (n, 2), "handle_left": (n, 2),
    "handle_right": (n, 2), "interpolation": (n,), …}`` (what :func:`write_key_props`
    writes back bit for bit)."""
    n = len(fcurve.keyframe_points)
    out = {}
    for p in _KEY_FLOAT2:
        b = np.empty(2 * n, np.float32)
        fcurve.keyframe_points.foreach_get(p, b)
        out[p] = b.reshape(n, 2)
    for p, dt in _KEY_PROPS1:
        b = np.empty(n, dt)
        fcurve.keyframe_points.foreach_get(p, b)
        out[p] = b
    return out


def write_key_props(fcurve, keys: dict):
    """Replace the keys of ``fcurve`` by ``keys`` (:func:`read_keys`' form, sorted by frame):
    every property as given, the handles too (``update()`` recomputes automatic handles from
    the new neighbours; the given ones are put back as they were)."""
    points = fcurve.keyframe_points
    points.clear()
    points.add(len(keys["co"]))
    for p in _KEY_FLOAT2:
        points.foreach_set(p, np.ascontiguousarray(keys[p], np.float32).reshape(-1))
    for p, dt in _KEY_PROPS1:
        points.foreach_set(p, np.ascontiguousarray(keys[p], dt))
    fcurve.update()
    for p in ("handle_left", "handle_right"):
        points.foreach_set(p, np.ascontiguousarray(keys[p], np.float32).reshape(-1))


def copy_keys(src, dst):
    """Copy every keyframe of ``src`` onto ``dst`` (which is cleared first)."""
    n = len(src.keyframe_points)
    dst.keyframe_points.clear()
    dst.keyframe_points.add(n)
    for prop in _KEY_FLOAT2:
        buf = np.empty(2 * n, dtype=np.float32)
        src.keyframe_points.foreach_get(prop, buf)
        dst.keyframe_points.foreach_set(prop, buf)
    for prop, dtype in _KEY_PROPS1:
        buf = np.empty(n, dtype=dtype)
        src.keyframe_points.foreach_get(prop, buf)
        dst.keyframe_points.foreach_set(prop, buf)
    for attr in ("extrapolation", "color_mode", "mute", "hide", "lock"):
        setattr(dst, attr, getattr(src, attr))
    dst.update()


def _pairs(x, y):
    out = np.empty(2 * len(x), dtype=np.float32)
    out[0::2] = x
    out[1::2] = y
    return out


def rig_from_object(obj, bone_names=None, object_points: bool | None = None) -> Rig:
    """Build the FK model of ``obj`` (an armature or any object) as it is now.

    Static values (channels the action does not animate) come from the current pose. The
    object node's ``rest`` is the parent's world matrix times the parent inverse. Tracked
    points: head and tail of every bone (of ``bone_names`` only, when given); for an object
    that is not an armature, its origin and the tips of its three local axes.
    """
    parent_frame = np.eye(4)
    if obj.parent is not None:
        parent_frame = np.array(obj.parent.matrix_world) @ np.array(obj.matrix_parent_inverse)
    is_armature = obj.type == "ARMATURE"
    if object_points is None:
        object_points = not is_armature
    radius = max(max(obj.dimensions) * 0.5, 1e-3) if not is_armature else 1.0
    obj_pts = np.array([[0, 0, 0], [radius, 0, 0], [0, radius, 0], [0, 0, radius]], float)
    nodes = [
        Node(
            name=None,
            parent=-1,
            rest=parent_frame,
            rotation_mode=obj.rotation_mode,
            defaults=_defaults(obj),
            points=obj_pts if object_points else np.zeros((0, 3)),
        )
    ]
    warnings = []
    if is_armature and obj.pose is not None:
        order = topological_bones(obj.data.bones)
        index = {}
        for bone in order:
            pbone = obj.pose.bones[bone.name]
            tracked = bone_names is None or bone.name in bone_names
            pts = np.array([[0.0, 0.0, 0.0], [0.0, bone.length, 0.0]]) if tracked else np.zeros((0, 3))
            index[bone.name] = len(nodes)
            nodes.append(
                Node(
                    name=bone.name,
                    parent=index[bone.parent.name] if bone.parent else 0,
                    rest=np.array(bone.matrix_local),
                    rotation_mode=pbone.rotation_mode,
                    defaults=_defaults(pbone),
                    connected=bool(bone.use_connect),
                    points=pts,
                )
            )
            if (
                not bone.use_inherit_rotation
                or bone.inherit_scale != "FULL"
                or not bone.use_local_location
                or len(pbone.constraints)
            ):
                warnings.append(bone.name)
    unit = obj.users_scene[0].unit_settings.scale_length if obj.users_scene else 1.0
    return Rig(nodes=nodes, cm_per_unit=100.0 * (unit or 1.0), warnings=warnings)


def _defaults(owner):
    out = {}
    for prop in TRANSFORM_PROPS:
        out[prop] = tuple(getattr(owner, prop))
    return out


def topological_bones(bones):
    """Bones with every parent before its children."""
    done, order = set(), []
    pending = list(bones)
    while pending:
        rest = []
        for bone in pending:
            if bone.parent is None or bone.parent.name in done:
                order.append(bone)
                done.add(bone.name)
            else:
                rest.append(bone)
        pending = rest
    return order
