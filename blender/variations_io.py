# SPDX-License-Identifier: GPL-3.0-or-later
"""The Blender side of variations: an armature's action → a value matrix and a
:class:`~..variations.channels.ChannelLayout`, and value matrices → new sparse actions.

A variation model sees one (T, D) feature array. :func:`read_reference` reads any armature's
action (any bone names, rest pose, rotation modes; Blender 4.2 legacy or 4.4+ slotted actions)
into dense samples of its moving curves, grouped the way the layout needs them:

* per pose bone, the rotation curves of its current rotation mode form one rotation group
  (``quat`` / ``euler`` with the bone's order / ``axis_angle``); components without a curve
  are columns too, held at the pose bone's current value (``Reference.missing`` marks them:
  writing creates those curves). A bone keyed only in another mode than its current one (Euler
  curves on a quaternion bone) is modelled in the mode of its curves; rotation curves of a
  second mode next to the current one do not move the bone and are kept as constants;
* the root-motion bone is the topmost bone (fewest parents; first in hierarchy order on ties)
  whose location curves move: its three location channels form the ``root`` group (rest frame
  from ``bone.matrix_local``, linked to its rotation group, up axis Z);
* every other moving curve is a ``scalar`` group: locations and scales of other bones, the
  object's own location and scale, custom properties and any other animated value (so nothing
  the action animates is lost). The object's own rotation curves form a rotation group like a
  bone's. Muted and empty curves, and curves of bones the armature does not have, are skipped
  with a warning;
* curves that never move (``keyframes.reduce.constant_columns``; a rotation group only when all
  of it is still) are not modelled: every variation gets them as constants.

:func:`write_variations` writes decoded value matrices as new actions: dense keys, then the
keyframe engine (``blender/reduce.py``) turns them into sparse Bezier keys, all inside one
:class:`~.edits.Rollback` so a failure leaves no action behind and the object's previous
assignment in place.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

import bpy

from ..errors import InputError
from ..keyframes import reduce as kf_reduce
from ..keyframes.rig import bone_data_path, parse_data_path
from ..motion.rotations import EULER_ORDERS
from ..variations.channels import ChannelLayout, Group
from . import actions, fcurve_io
from .edits import Rollback, assign_keeping_previous
from .reduce import ReduceSettings, reduce_or_warn

__all__ = ["Reference", "read_reference", "write_variations", "DEFAULT_REDUCE", "MIN_FRAMES"]

MIN_FRAMES = 8
# the keyframe density of variations: every joint within 1 cm of the decoded motion
DEFAULT_REDUCE = ReduceSettings(mode="ERROR", max_error_cm=1.0)

_ROTATION_PROPS = {"rotation_quaternion": ("quat", 4), "rotation_euler": ("euler", 3),
                   "rotation_axis_angle": ("axis_angle", 4)}
_MODE_PROP = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}
_OBJECT_GROUP = "Object Transforms"  # the F-curve group Blender gives an object's transforms


@dataclass
class Reference:
    """One action of one armature, read for variations (see the module docstring)."""

    obj: object  # the armature object
    action: object
    slot: object  # the action slot its curves come from (None on 4.2 / 4.3)
    channels: actions.Channels
    keys: list  # [(data_path, array_index)] per value column, in column order
    curve_groups: list  # F-curve group name per column (the bone's name, like Blender)
    missing: list  # per column: True when the reference has no F-curve for it (pose value)
    layout: ChannelLayout
    values: np.ndarray  # (T, C) dense samples, every integer frame first..last
    frames: np.ndarray  # (T,) scene frames
    constant: list  # [(data_path, index, value, group_name)] curves that never move
    fps: float
    content_hash: str  # model cache key: layout fingerprint, values (float32), fps
    root: str | None = None  # the root-motion bone, if any
    warnings: list = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frames)


@dataclass
class _Column:
    key: tuple
    group: str | None
    fcurve: object | None  # None: no curve in the reference, held at ``value``
    value: float = 0.0


def _scene_fps(obj) -> float:
    scene = obj.users_scene[0] if obj.users_scene else bpy.context.scene
    return float(scene.render.fps) / float(scene.render.fps_base or 1.0)


def _curve_name(fc) -> str:
    return f"{fc.data_path}[{fc.array_index}]"


def _listing(names, n=3) -> str:
    return ", ".join(names[:n]) + ("…" if len(names) > n else "")


def _sort_curves(obj, curves, warnings):
    """Curves by owner: ``{bone: {prop: {index: fcurve}}}``, ``{prop: {index: fcurve}}`` for
    the object's own transforms, and a list of every other curve. Muted and empty curves and
    curves of bones the armature does not have are left out (with a warning)."""
    bones, object_curves, other = {}, {}, []
    skipped, unknown_bones = [], set()
    for fc in curves:
        if fc.mute or (not len(fc.keyframe_points) and not len(fc.modifiers)):
            skipped.append(_curve_name(fc))
            continue
        bone, prop = parse_data_path(fc.data_path)
        size = 4 if prop in ("rotation_quaternion", "rotation_axis_angle") else 3
        if prop is None or fc.array_index >= size:
            other.append(fc)
        elif bone is None:
            object_curves.setdefault(prop, {})[fc.array_index] = fc
        elif bone in obj.pose.bones:
            bones.setdefault(bone, {}).setdefault(prop, {})[fc.array_index] = fc
        else:
            unknown_bones.add(bone)
    if skipped:
        warnings.append(f"{len(skipped)} muted or empty F-curve(s) ignored ({_listing(skipped)})")
    if unknown_bones:
        warnings.append(f"Curves of bones '{obj.name}' does not have are ignored "
                        f"({_listing(sorted(unknown_bones))})")
    return bones, object_curves, other


def read_reference(obj, action=None) -> Reference:
    """Read ``action`` (default: the one ``obj`` plays) of the armature ``obj`` for variations.

    Raises :class:`~..errors.InputError` (changing nothing) when ``obj`` is not an armature,
    there is no action, the action has no bone rotation curves, nothing moves, or it is shorter
    than two keys / :data:`MIN_FRAMES` frames. Reading never modifies anything, so linked
    (read-only) actions are fine.
    """
    if obj is None:
        raise InputError("No object: pick an armature whose action to vary")
    if getattr(obj, "type", None) != "ARMATURE":
        raise InputError(f"'{obj.name}' is not an armature: pick an armature whose action to vary")
    adt = obj.animation_data
    if action is None:
        action = adt.action if adt is not None else None
    if action is None:
        raise InputError(f"'{obj.name}' has no action: assign the action to vary (e.g. a keyed or "
                         "imported walk) first")
    channels = actions.channels_for(obj, action)
    warnings = []
    all_curves = list(channels.fcurves) if channels is not None else []
    if not all_curves:
        raise InputError(f"Action '{action.name}' has no F-curves for '{obj.name}'")

    bones, object_curves, other = _sort_curves(obj, all_curves, warnings)
    if not any(set(props) & set(_ROTATION_PROPS) for props in bones.values()):
        raise InputError(
            f"Action '{action.name}' has no bone rotation curves: variations change how the "
            "bones turn, so the action must key pose bone rotations (e.g. a walk cycle or motion "
            "capture)")
    used = [fc for props in bones.values() for comps in props.values() for fc in comps.values()]
    used += [fc for comps in object_curves.values() for fc in comps.values()] + other
    if max(len(fc.keyframe_points) for fc in used) < 2:
        raise InputError(f"Action '{action.name}' has fewer than 2 keys: there is no motion to "
                         "vary")
    if getattr(action, "use_frame_range", False):
        first, last = round(action.frame_start), round(action.frame_end)
    else:
        first, last = fcurve_io.frame_range(used)
    n_frames = last - first + 1
    if n_frames < MIN_FRAMES:
        raise InputError(f"Action '{action.name}' is only {n_frames} frame(s) long: a reference "
                         f"needs at least {MIN_FRAMES} frames")
    sampled = fcurve_io.sample(used, first, last)
    bad = ~np.isfinite(sampled)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise InputError(f"F-curve {_curve_name(used[c])} of '{action.name}' has an invalid value "
                         f"(NaN or infinite) at frame {first + int(t)}: fix or delete that key")
    column_of = {id(fc): i for i, fc in enumerate(used)}
    moving = ~kf_reduce.constant_columns(sampled)

    def samples(col: _Column):
        if col.fcurve is None:
            return np.full(n_frames, col.value)
        return sampled[:, column_of[id(col.fcurve)]]

    def is_moving(fc) -> bool:
        return bool(moving[column_of[id(fc)]])

    # ---- groups, in hierarchy order
    plan = []  # (Group without columns, [_Column])
    constant = []

    def keep_constant(fc, group):
        constant.append((fc.data_path, fc.array_index, float(sampled[0, column_of[id(fc)]]),
                         _group_of(fc, group)))

    def rotation(owner, props, path_of, group, name, label):
        """The rotation group of one bone (or the object); other rotation curves → constant."""
        present = [p for p in _ROTATION_PROPS if p in props]
        if not present:
            return None
        mode = owner.rotation_mode
        prop = _MODE_PROP.get(mode, "rotation_euler")
        if prop not in present:
            prop = present[0]
            warnings.append(f"{label} is in {mode} mode but keyed with {prop}: the variations key "
                            f"{prop} too")
        for p in present:
            if p != prop:
                for fc in props[p].values():
                    keep_constant(fc, group)
                warnings.append(f"{label}: {p} curves do not move it in {mode} mode; kept as "
                                "constants")
        kind, size = _ROTATION_PROPS[prop]
        comps = props[prop]
        if not any(is_moving(fc) for fc in comps.values()):
            for fc in comps.values():
                keep_constant(fc, group)
            return None
        cols = [_Column(_key(comps.get(i), path_of(prop), i), _group_of(comps.get(i), group),
                        comps.get(i), float(getattr(owner, prop)[i])) for i in range(size)]
        order = mode if (kind == "euler" and mode in EULER_ORDERS) else "XYZ"
        plan.append((Group(kind, (), order=order, name=name), cols))  # name: bone or object
        return len(plan) - 1

    def scalars(curves, group):
        for fc in curves:
            if is_moving(fc):
                plan.append((Group("scalar", (), name=_curve_name(fc)),
                             [_Column((fc.data_path, fc.array_index), _group_of(fc, group), fc)]))
            else:
                keep_constant(fc, group)

    order = fcurve_io.topological_bones(obj.data.bones)
    depth = {}
    for bone in order:
        depth[bone.name] = depth[bone.parent.name] + 1 if bone.parent else 0
    root = None
    candidates = [b for b in order if b.name in bones and not b.use_connect
                  and any(is_moving(fc) for fc in bones[b.name].get("location", {}).values())]
    if candidates:
        root = min(candidates, key=lambda b: depth[b.name]).name  # stable: first on ties
    for bone in order:
        props = bones.get(bone.name)
        if not props:
            continue
        pb = obj.pose.bones[bone.name]
        rot_index = rotation(pb, props, lambda p, b=bone.name: bone_data_path(b, p), bone.name,
                             bone.name, f"Bone '{bone.name}'")
        for prop in ("location", "scale"):
            comps = props.get(prop, {})
            if prop == "location" and bone.name == root:
                cols = [_Column(_key(comps.get(i), bone_data_path(bone.name, prop), i),
                                _group_of(comps.get(i), bone.name), comps.get(i),
                                float(pb.location[i])) for i in range(3)]
                rest = np.array(bone.matrix_local, dtype=np.float64)[:3, :3]
                rest = rest / np.linalg.norm(rest, axis=0, keepdims=True)
                plan.append((Group("root", (), rest=tuple(rest.ravel()),
                                   rotation=-1 if rot_index is None else rot_index, up=2,
                                   name=bone.name), cols))
            else:
                scalars([comps[i] for i in sorted(comps)], bone.name)
    if object_curves:
        rotation(obj, object_curves, lambda p: p, _OBJECT_GROUP, obj.name, f"Object '{obj.name}'")
        for prop in ("location", "scale"):
            comps = object_curves.get(prop, {})
            scalars([comps[i] for i in sorted(comps)], _OBJECT_GROUP)
    scalars(other, None)
    if not plan:
        raise InputError(f"Action '{action.name}' does not move: every curve holds one value from "
                         f"frame {first} to {last}")

    # ---- columns and layout
    columns, groups = [], []
    for group, cols in plan:
        start = len(columns)
        columns += cols
        groups.append(replace(group, columns=tuple(range(start, len(columns)))))
    layout = ChannelLayout(groups, len(columns))
    values = np.stack([samples(c) for c in columns], axis=1)
    fps = _scene_fps(obj)
    digest = hashlib.sha256()
    digest.update(layout.fingerprint().encode())
    digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    digest.update(repr(round(fps, 6)).encode())
    missing = [c.fcurve is None for c in columns]
    if any(missing):
        warnings.append(f"{sum(missing)} rotation / location component(s) without a curve are "
                        "taken from the current pose")
    return Reference(
        obj=obj, action=action, slot=channels.slot, channels=channels,
        keys=[c.key for c in columns], curve_groups=[c.group for c in columns], missing=missing,
        layout=layout, values=values, frames=np.arange(first, last + 1, dtype=np.float64),
        constant=constant, fps=fps, content_hash=digest.hexdigest(), root=root,
        warnings=warnings)


def _key(fc, path, index):
    """(data_path, index) of a column: the reference curve's own path when it has one."""
    return (fc.data_path, fc.array_index) if fc is not None else (path, index)


def _group_of(fc, default):
    """The F-curve group to write a column in: the reference curve's own, else ``default``."""
    group = getattr(fc, "group", None) if fc is not None else None
    return group.name if group is not None else default


def _plain(value):
    """JSON-like plain Python values (numpy arrays and scalars converted) for an ID property."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_variations(ref: Reference, values_list, names, *, reduce=DEFAULT_REDUCE,
                     frame_start=None, meta=None, warnings=None, reduce_results=None) -> list:
    """Write each decoded (T', C) value matrix as a new action on ``ref.obj``; return them.

    Every column becomes an F-curve (in the bone's F-curve group), keyed densely from
    ``frame_start`` (default: the reference's first frame), plus the reference's constant
    curves; then the keys are reduced by the keyframe engine with ``reduce`` (a
    :class:`~.reduce.ReduceSettings`, applied in place on all bones; None keeps one key per
    frame). ``meta`` (a dict, or one dict per variation) is stored as
    ``action["sparse_motion"]``. The object ends up playing the last variation; the action it
    played before and the earlier variations get a fake user so they survive saving. All or
    nothing: on any failure every new action is removed and the previous assignment restored.
    Messages for the user are appended to ``warnings`` and each variation's
    :class:`~.reduce.ReduceResult` (None when not reduced) to ``reduce_results`` when given.
    """
    obj = ref.obj
    try:
        obj_name = obj.name
    except ReferenceError:
        raise InputError("The reference armature was deleted: read the reference again") from None
    if obj.library is not None:
        raise InputError(f"'{obj_name}' is linked from a library: its action cannot be changed")
    adt = obj.animation_data
    if adt is not None and getattr(adt, "use_tweak_mode", False):
        raise InputError(f"'{obj_name}' is in NLA tweak mode: leave it to write variations")
    values_list = list(values_list)
    names = list(names)
    if not values_list:
        raise InputError("No variations to write")
    if len(names) != len(values_list):
        raise InputError(f"{len(values_list)} variations but {len(names)} names")
    metas = list(meta) if isinstance(meta, (list, tuple)) else [meta] * len(values_list)
    if len(metas) != len(values_list):
        raise InputError(f"{len(values_list)} variations but {len(metas)} metadata entries")
    width = len(ref.keys)
    checked = []
    for i, values in enumerate(values_list):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != width or len(values) < 2:
            raise InputError(f"Variation {i + 1} has shape {values.shape}: expected (frames ≥ 2, "
                             f"{width}) values, one column per channel of the reference")
        if not np.all(np.isfinite(values)):
            raise InputError(f"Variation {i + 1} has invalid values (NaN or infinite)")
        checked.append(values)
    start = float(ref.frames[0] if frame_start is None else frame_start)
    notes = [] if warnings is None else warnings
    made = []
    with Rollback() as rb:  # nothing is left behind if any step fails
        for i, (values, name, info) in enumerate(zip(checked, names, metas)):
            action, channels = actions.new_action_for(obj, str(name))
            rb.created(action)
            frames = start + np.arange(len(values), dtype=np.float64)
            for c, (path, index) in enumerate(ref.keys):
                fc = channels.new_fcurve(path, index, ref.curve_groups[c])
                fcurve_io.write_dense(fc, frames, values[:, c], fcurve_io.INTERPOLATION_BEZIER)
            ends = frames[[0, -1]]
            for path, index, value, group in ref.constant:
                fc = channels.new_fcurve(path, index, group)
                fcurve_io.write_keys(fc, ends, [value] * 2, [value] * 2, [value] * 2, "FREE")
            if i == 0:
                assign_keeping_previous(obj, channels, rb, notes)
            else:
                actions.assign(obj, channels)
            result = None
            if reduce is not None:
                result = reduce_or_warn(obj, replace(reduce, output="REPLACE", bones="ALL"), notes)
            if reduce_results is not None:
                reduce_results.append(result)
            if info is not None:
                action["sparse_motion"] = _plain(info)
            made.append(action)
        for action in made[:-1]:
            action.use_fake_user = True  # every variation survives saving; the last one plays
    return made
