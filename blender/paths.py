# SPDX-License-Identifier: GPL-3.0-or-later
"""Follow path, the Blender half: a curve object, empties keyed at frames, or points given as
JSON → world points in canonical coordinates (cm, Y up) → :mod:`..motion.paths`.

* A **curve** (Bezier, NURBS or poly; one spline): evaluated by Blender (its modifiers,
  hooks and animation at the current frame, world space), tessellated at its own
  resolution; the pelvis follows its ground projection evenly over the motion's length.
  Bevel and extrusion are switched off while it is read (and put back), so the points are
  the spline's own.
* **Empties keyed at frames** (a collection of empties, or one empty): every key frame of an
  empty's transform channels is a control frame; the empty's world position there (Blender
  evaluates the scene at that frame; the current frame is put back) is where the pelvis
  goes at that frame.
* **Points** (batch rows): ``[[x, y, z], ...]`` world metres, a path; or ``{"points":
  [...], "frames": [...]}``: points at scene frames (sparse, like empties).

The world is carried into the armature's space (its object transform undone) and from there
into canonical coordinates the way the motion will land there (the rig Generate Motion
creates: the BVH axes :data:`.bvh_io.C` at 0.01 m per cm; another rig: the retargeting's own
placement, :func:`.retarget.canonical_placement`), so the pelvis lands on the path whatever
the armature's placement, size and axes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np

from ..errors import InputError
from ..motion import paths as _paths
from .bvh_io import C

__all__ = ["PathSource", "path_source", "points_from_json", "world_to_canonical",
           "control_for"]

CURVE_TYPES = ("BEZIER", "NURBS", "POLY")


@dataclass
class PathSource:
    """What to follow, in world metres (Blender, Z up): ``points (N, 3)``, and for keyed
    points ``frames (N,)`` scene frames (None: a path followed on every frame)."""

    label: str
    points: np.ndarray
    frames: np.ndarray | None = None


def _alive(obj, what):
    try:
        return obj.name
    except ReferenceError:
        raise InputError(f"The {what} was deleted: pick another one") from None


def _spline_points(spline, handles=False) -> np.ndarray:
    """The spline's control points ``(N, 3)`` (object space); Bezier ``handles`` too."""
    if spline.type == "BEZIER":
        n = len(spline.bezier_points)
        out = []
        for prop in ("co", "handle_left", "handle_right")[:3 if handles else 1]:
            buf = np.zeros(3 * n, dtype=np.float64)
            spline.bezier_points.foreach_get(prop, buf)
            out.append(buf.reshape(n, 3))
        return np.concatenate(out)
    n = len(spline.points)
    buf = np.zeros(4 * n, dtype=np.float64)
    spline.points.foreach_get("co", buf)
    return buf.reshape(n, 4)[:, :3]


def _curve_world_points(obj) -> np.ndarray:
    """The evaluated curve's points (world metres, in order along the spline)."""
    name = obj.name
    data = obj.data
    splines = list(data.splines)
    if len(splines) != 1:
        raise InputError(f"Curve '{name}' has {len(splines)} splines: the path must be one "
                         "spline (separate the others)")
    spline = splines[0]
    if spline.type not in CURVE_TYPES:
        raise InputError(f"Curve '{name}' is a {spline.type} spline: use Bezier, NURBS or poly")
    n = len(spline.bezier_points if spline.type == "BEZIER" else spline.points)
    if n < 2:
        raise InputError(f"Curve '{name}' has {n} point{'s' if n != 1 else ''}: a path needs "
                         "at least two")
    mw = np.array(obj.matrix_world, dtype=np.float64)
    raw = _spline_points(spline, handles=True)
    _paths.check_points(100.0 * (raw @ mw[:3, :3].T + mw[:3, 3]), f"Curve '{name}'")
    # switch bevel / extrusion off while reading, so the mesh is the spline's own points
    saved = {k: getattr(data, k) for k in ("bevel_depth", "extrude", "bevel_object")}
    shaped = saved["bevel_depth"] > 0 or saved["extrude"] > 0 or saved["bevel_object"]
    try:
        if shaped:
            data.bevel_depth, data.extrude, data.bevel_object = 0.0, 0.0, None
        depsgraph = bpy.context.evaluated_depsgraph_get()
        ev = obj.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        try:
            n = len(mesh.vertices)
            co = np.zeros(3 * n, dtype=np.float64)
            mesh.vertices.foreach_get("co", co)
            co = co.reshape(n, 3)
            mw = np.array(ev.matrix_world, dtype=np.float64)
        finally:
            ev.to_mesh_clear()
    finally:
        if shaped:
            for k, v in saved.items():
                setattr(data, k, v)
    if len(co) < 2:
        raise InputError(f"Curve '{name}' gives {len(co)} point(s) when Blender evaluates it: "
                         "a path needs at least two")
    if spline.use_cyclic_u:
        co = np.concatenate([co, co[:1]])
    return co @ mw[:3, :3].T + mw[:3, 3]


def _key_frames(obj) -> np.ndarray:
    """The key frames of ``obj``'s transform channels (location, rotation, scale)."""
    from . import actions

    adt = obj.animation_data
    if adt is None or adt.action is None:
        return np.zeros(0)
    channels = actions.channels_for(obj)
    frames = set()
    for fc in (channels.fcurves if channels else ()):
        if fc.data_path.split(".")[-1].startswith(("location", "rotation", "scale",
                                                   "delta_")):
            frames.update(float(k.co[0]) for k in fc.keyframe_points)
    return np.array(sorted(frames))


def _empties(what) -> tuple[str, list]:
    if isinstance(what, bpy.types.Collection):
        objs = list(what.all_objects)
        label = f"Collection '{what.name}'"
        not_empty = [o.name for o in objs if o.type != "EMPTY"]
        if not_empty:
            raise InputError(f"{label} holds objects that are not empties "
                             f"({', '.join(not_empty[:4])}): only empties keyed at frames "
                             "can be followed")
        if not objs:
            raise InputError(f"{label} has no empties: add empties keyed at the frames the "
                             "pelvis should reach")
        return label, sorted(objs, key=lambda o: o.name)
    return f"Empty '{what.name}'", [what]


def _keyed_world_points(what) -> PathSource:
    """Every empty's world position at each of its key frames (scene frames)."""
    label, objs = _empties(what)
    scene = bpy.context.scene
    jobs = []
    for o in objs:
        frames = _key_frames(o)
        if not len(frames):
            raise InputError(f"Empty '{o.name}' has no keys: key its location at the frame "
                             "the pelvis should be there")
        jobs += [(float(f), o) for f in frames]
    if any(abs(f - round(f)) > 1e-6 for f, _ in jobs):
        raise InputError(f"{label} has keys between frames: key the empties on whole frames")
    old = (scene.frame_current, scene.frame_subframe)
    pts, frs = [], []
    try:
        for f in sorted({int(round(f)) for f, _ in jobs}):
            scene.frame_set(f)
            for g, o in jobs:
                if int(round(g)) == f:
                    pts.append(tuple(o.matrix_world.translation))
                    frs.append(f)
    finally:
        scene.frame_set(old[0], subframe=old[1])
    return PathSource(label, np.array(pts, dtype=np.float64), np.array(frs, dtype=np.float64))


def path_source(obj=None, collection=None) -> PathSource | None:
    """What the request names: a curve or empty object, or a collection of empties (None:
    no path)."""
    if collection is not None:
        _alive(collection, "path collection")
        return _keyed_world_points(collection)
    if obj is None:
        return None
    name = _alive(obj, "path object")
    if obj.type == "CURVE":
        return PathSource(f"Curve '{name}'", _curve_world_points(obj))
    if obj.type == "EMPTY":
        return _keyed_world_points(obj)
    raise InputError(f"'{name}' is a {obj.type.lower()}, not a curve: pick a curve object "
                     "(Bezier, NURBS or poly) or empties keyed at frames to follow")


def points_from_json(value) -> PathSource:
    """A batch row's ``path`` given as JSON (a string or the parsed value): ``[[x, y, z],
    ...]`` world metres (a path) or ``{"points": [...], "frames": [...]}`` (scene frames)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"path: not valid JSON ({exc.msg})") from None
    frames = None
    if isinstance(value, dict):
        frames = value.get("frames")
        value = value.get("points")
    try:
        pts = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("path: points must be a list of [x, y, z] in metres") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"path: points must be a list of [x, y, z] in metres, got shape "
                         f"{pts.shape}")
    if frames is not None:
        try:
            frames = np.array(frames, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("path: frames must be a list of frame numbers") from None
        if frames.shape != (len(pts),):
            raise InputError(f"path: give one frame per point ({len(pts)}), got "
                             f"{frames.shape}")
        if not np.isfinite(frames).all() or np.any(np.round(frames) != frames):
            raise InputError("path: frames must be whole numbers")
    return PathSource("The path", pts, frames)


def world_to_canonical(points, obj=None, placement=None) -> np.ndarray:
    """World metres (Blender, Z up) → canonical coordinates (cm, Y up) where the motion
    lands on ``obj``: its armature space (object transform undone; ``obj`` None: the world)
    is ``a + B · x`` for canonical ``x`` (``placement = (a, B)``; None: the rig Generate
    Motion creates, ``a = 0``, ``B`` = 0.01 × the BVH axes :data:`.bvh_io.C`)."""
    p = np.asarray(points, dtype=np.float64)
    if obj is not None:
        inv = np.linalg.inv(np.array(obj.matrix_world, dtype=np.float64))
        p = p @ inv[:3, :3].T + inv[:3, 3]
    a, B = placement if placement is not None else (np.zeros(3), 0.01 * C)
    return np.linalg.solve(B, (p - a).T).T


def control_for(source: PathSource, frames: int, fps: float, height: float, *,
                frame_start: int = 1, scene_fps: float = 24.0, obj=None, placement=None,
                pace=None) -> _paths.PathControl:
    """The control trajectory for ``source`` over ``frames`` model frames at ``fps`` (the
    pelvis at ``height`` cm); keyed scene frames are mapped to model frames through the
    motion's start frame and the two frame rates."""
    label = source.label
    if not np.isfinite(source.points).all():
        raise InputError(f"{label} has points that are not numbers (NaN or infinite)")
    pts = world_to_canonical(source.points, obj, placement)
    if source.frames is None:
        return _paths.path_control(pts, frames, fps, height, pace=pace, what=label)
    idx = np.round((source.frames - frame_start) * fps / scene_fps)
    return _paths.keyed_control(pts, idx, frames, fps, height, what=label)
