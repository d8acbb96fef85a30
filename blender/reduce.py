# SPDX-License-Identifier: GPL-3.0-or-later
"""Reduce the keys of an object's action: validate, compute everything, then write.

Nothing is written until every check has passed and every new key is computed, so a
failure leaves the scene exactly as it was. Used by the Reduce Keyframes operator and by
every feature that writes dense motion (BVH import, generated motion).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..keyframes import reduce as kf_reduce
from ..keyframes.continuity import make_continuous
from ..keyframes.rig import ChannelMap, parse_data_path
from . import actions, fcurve_io


@dataclass
class ReduceSettings:
    mode: str = "RATIO"  # 'RATIO' (keep a fraction of frames), 'ERROR' (max error in cm), or
    # 'KEYS' (keys on the frames in key_frames, e.g. a generator's own keyframes)
    ratio: float = 0.1
    max_error_cm: float = 1.0
    bones: str = "ALL"  # 'ALL' or 'SELECTED'
    handles: str = "FREE"  # 'FREE' (fitted per segment) or 'ALIGNED' (smooth tangents)
    output: str = "REPLACE"  # 'REPLACE' in place, or 'NEW_ACTION' (keeps the original)
    key_frames: tuple = ()  # scene frames, with mode 'KEYS'

    @classmethod
    def from_props(cls, props, **overrides):
        """From an operator or property group carrying ``properties.reduce_props()``."""
        fields = {"mode": "mode", "ratio": "ratio", "max_error_cm": "max_error", "bones": "bones",
                  "handles": "handles", "output": "output"}
        values = {f: getattr(props, p) for f, p in fields.items() if hasattr(props, p)}
        return cls(**{**values, **overrides})


@dataclass
class ReduceResult:
    action: object
    curves: int
    keys_before: int
    keys_after: int
    max_cm: float
    p95_cm: float
    mean_cm: float
    seconds: float
    constant_curves: int = 0
    key_frames: int = 0
    frames: int = 0
    warnings: list = field(default_factory=list)

    def message(self) -> str:
        text = (
            f"Reduced {self.curves} curves of '{self.action.name}': {self.keys_before:,} → "
            f"{self.keys_after:,} keys, on {self.key_frames} of {self.frames} frames "
            f"({100.0 * self.key_frames / max(self.frames, 1):.1f} %); joint error max "
            f"{self.max_cm:.2f} cm, mean {self.mean_cm:.3f} cm"
        )
        if self.constant_curves:
            text += f"; {self.constant_curves} constant curves kept as two keys"
        return text


@dataclass
class _Plan:
    obj: object
    channels: actions.Channels
    fcurves: list  # curves that get new keys
    frames: np.ndarray
    keys: object  # keyframes.reduce.Reduction (columns follow `moving`)
    moving: list  # indices into fcurves of moving curves
    constant: list  # indices into fcurves of constant curves
    constant_values: np.ndarray
    keys_before: int
    settings: ReduceSettings
    warnings: list
    seconds: float


def reduce_object(obj, settings: ReduceSettings) -> ReduceResult:
    plan = plan_reduction(obj, settings)
    return apply_plan(plan)


def reduce_or_warn(obj, settings: ReduceSettings, warnings: list):
    """Reduce freshly written dense keys in place; when there is nothing to reduce (a still
    pose…) keep the dense keys and add a warning instead. Returns the result or None."""
    try:
        result = reduce_object(obj, settings)
    except InputError as exc:
        warnings.append(f"Keys not reduced: {exc}")
        return None
    warnings.extend(result.warnings)
    return result


def plan_reduction(obj, settings: ReduceSettings) -> _Plan:
    """Check everything and compute the new keys; raises InputError; changes nothing."""
    t0 = time.perf_counter()
    if obj is None:
        raise InputError("No active object: select the object or armature whose action to reduce")
    if obj.library is not None:
        raise InputError(f"'{obj.name}' is linked from a library and cannot be edited")
    channels = actions.channels_for(obj)
    if channels is None:
        raise InputError(f"'{obj.name}' has no action to reduce")
    action = channels.action
    if actions.is_linked(action) and settings.output == "REPLACE":
        raise InputError(
            f"Action '{action.name}' is linked from a library and cannot be changed in place: "
            "choose 'New Action' to write a reduced local copy"
        )
    all_curves = list(channels.fcurves)
    if not all_curves:
        raise InputError(f"Action '{action.name}' has no F-curves for '{obj.name}'")

    selected = None
    if settings.bones == "SELECTED" and obj.type == "ARMATURE":
        selected = _selected_bones(obj)
        if not selected:
            raise InputError("No bones selected: select bones in Pose Mode, or reduce all bones")
    curves = []
    for fc in all_curves:
        bone, _prop = parse_data_path(fc.data_path)
        if selected is not None and bone not in selected:
            continue
        if len(fc.keyframe_points) >= 3:
            curves.append(fc)
    if not curves:
        raise InputError(
            f"Nothing to reduce in '{action.name}': every F-curve has fewer than three keys"
        )
    locked = [_curve_name(fc) for fc in curves if fc.lock]
    if locked:
        raise InputError(
            f"{len(locked)} F-curve(s) are locked ({', '.join(locked[:3])}"
            f"{'…' if len(locked) > 3 else ''}): unlock them or leave those bones out"
        )

    first, last = fcurve_io.frame_range(curves)
    frames = np.arange(first, last + 1, dtype=np.float64)
    values = fcurve_io.sample(curves, first, last)
    bad = ~np.isfinite(values)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise InputError(
            f"F-curve {_curve_name(curves[c])} has an invalid value (NaN or infinite) at frame "
            f"{int(frames[t])}: fix or delete that key first"
        )
    is_constant = kf_reduce.constant_columns(values)
    moving = [i for i in range(len(curves)) if not is_constant[i]]
    constant = [i for i in range(len(curves)) if is_constant[i]]
    if not moving:
        raise InputError(
            f"Nothing to reduce in '{action.name}': all {len(curves)} curves are constant"
        )

    # Forward kinematics over every transform curve of the object, so curves we do not
    # reduce still move the tracked points as they really do.
    rig = fcurve_io.rig_from_object(obj, bone_names=_tracked(obj, selected))
    fk_curves = curves + [fc for fc in all_curves if fc not in curves]
    keys = [(fc.data_path, fc.array_index) for fc in fk_curves]
    cmap = ChannelMap(rig, keys)
    full = values
    if len(fk_curves) > len(curves):
        full = np.concatenate([values, fcurve_io.sample(fk_curves[len(curves):], first, last)], axis=1)
        full = np.nan_to_num(full)
    full = make_continuous(full, cmap.groups())  # quaternion signs, Euler wraps
    reduced_cols = np.array(moving)

    def points_fn(vals, rows=None):
        block = full if rows is None else full[rows]
        block = block.copy()
        block[:, reduced_cols] = vals
        return cmap.points(block)

    given_keys = None
    if settings.mode == "KEYS":
        kf = np.asarray(settings.key_frames, dtype=np.float64).reshape(-1)
        if len(kf) == 0:
            raise InputError("No key frames given")
        given_keys = np.unique(np.clip(np.round(kf - first), 0, len(frames) - 1)).astype(np.int64)
    result = kf_reduce.reduce_keys(
        frames,
        full[:, reduced_cols],
        points_fn,
        ratio=settings.ratio if settings.mode == "RATIO" else None,
        max_error=settings.max_error_cm if settings.mode == "ERROR" else None,
        keys=given_keys,
        handles=settings.handles.lower(),
        groups=None,
    )
    warnings = []
    if rig.warnings:
        warnings.append(
            "Bones with constraints or non-default inheritance: the error is estimated "
            f"without them ({', '.join(rig.warnings[:3])}{'…' if len(rig.warnings) > 3 else ''})"
        )
    return _Plan(
        obj=obj,
        channels=channels,
        fcurves=curves,
        frames=frames,
        keys=result,
        moving=moving,
        constant=constant,
        constant_values=values[0, constant] if constant else np.zeros(0),
        keys_before=sum(len(fc.keyframe_points) for fc in curves),
        settings=settings,
        warnings=warnings,
        seconds=time.perf_counter() - t0,
    )


def apply_plan(plan: _Plan) -> ReduceResult:
    """Write the planned keys (in place, or into a new action that replaces the old one)."""
    t0 = time.perf_counter()
    keys = plan.keys
    write_to = plan.fcurves
    new_channels = None
    if plan.settings.output == "NEW_ACTION":
        old = plan.channels.action
        _action, new_channels = actions.new_action_for(plan.obj, f"{old.name}.reduced")
        reduced = {_curve_key(fc): i for i, fc in enumerate(plan.fcurves)}
        write_to = list(plan.fcurves)
        for fc in plan.channels.fcurves:
            group = fc.group.name if fc.group else None
            dst = new_channels.new_fcurve(fc.data_path, fc.array_index, group)
            if _curve_key(fc) in reduced:
                write_to[reduced[_curve_key(fc)]] = dst
            else:
                fcurve_io.copy_keys(fc, dst)
        if not actions.is_linked(old):
            old.use_fake_user = True  # the original stays in the file with no users
    for col, i in enumerate(plan.moving):
        fcurve_io.write_keys(
            write_to[i], keys.key_frames, keys.key_values[:, col], keys.hl[:, col], keys.hr[:, col],
            keys.handle_type,
        )
    ends = plan.frames[[0, -1]]
    for j, i in enumerate(plan.constant):
        v = plan.constant_values[j]
        fcurve_io.write_keys(write_to[i], ends, [v, v], [v, v], [v, v], "FREE")
    if new_channels is not None:
        actions.assign(plan.obj, new_channels)
        action = new_channels.action
    else:
        action = plan.channels.action
    errors = keys.errors
    return ReduceResult(
        action=action,
        curves=len(plan.fcurves),
        keys_before=plan.keys_before,
        keys_after=len(keys.key_frames) * len(plan.moving) + 2 * len(plan.constant),
        max_cm=float(errors.max),
        p95_cm=float(errors.p95),
        mean_cm=float(errors.mean),
        seconds=plan.seconds + time.perf_counter() - t0,
        constant_curves=len(plan.constant),
        key_frames=len(keys.key_frames),
        frames=len(plan.frames),
        warnings=plan.warnings,
    )


def _curve_key(fc):
    return fc.data_path, fc.array_index


def _curve_name(fc) -> str:
    return f"{fc.data_path}[{fc.array_index}]"


def _selected_bones(obj) -> set:
    out = set()
    for pbone in obj.pose.bones:
        sel = pbone.select if "select" in pbone.bl_rna.properties else pbone.bone.select
        if sel:
            out.add(pbone.name)
    return out


def _tracked(obj, selected):
    """Bones whose points can move when the selected bones' keys change: them and their
    descendants (None = every bone)."""
    if selected is None or obj.type != "ARMATURE":
        return None
    out = set()
    for bone in obj.data.bones:
        b = bone
        while b is not None:
            if b.name in selected:
                out.add(bone.name)
                break
            b = b.parent
    return out

