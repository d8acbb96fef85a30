# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH import and export on real Blender armatures.

Import (:func:`import_bvh`) parses with :mod:`..motion.bvh`, computes every key with numpy,
and writes them with ``foreach_set`` into a new action that is assigned last. Export
(:func:`export_bvh`) lets Blender evaluate the pose at every frame (so constraints, drivers
and sparse Bezier keys all export as seen) and writes with our BVH writer.

Conventions
-----------
``C`` maps BVH axes (Y up, -Z forward) to Blender's (Z up, -Y forward): ``x' = x``,
``y' = -z``, ``z' = y``; ``s`` is the import scale (BVH units → Blender units), detected from
the skeleton's height unless given (:func:`..motion.bvh.resolve_units`); with ``ground`` the
roots are first moved up so the lowest foot stands on the floor (:func:`..motion.bvh.floor_shift`).

In the BVH (see :mod:`..motion.skeleton`) joint ``j`` with parent ``p`` has local rotation
``L_j``, global rotation ``G_j = G_p · L_j`` and world position ``W_j = W_p + G_p · t_j``
(``t_j`` = OFFSET, or the position channels where the joint has them). A bone keeps its rest
orientation ``Rrest = bone.matrix_local[:3, :3]`` relative to its joint, so in armature space
the bone's pose rotation is ``Q_b = C · G_j · C⁻¹ · Rrest_b``. Blender evaluates
``P_b = P_a · (Rest_a⁻¹ · Rest_b) · Basis_b`` (``a`` the parent bone), which gives

* ``Basis_rot = Rrest_b⁻¹ · C · L_j · C⁻¹ · Rrest_b`` when the bone's parent is the bone of
  the joint's BVH parent (or for a root);
* ``Basis_loc = Rrest_b⁻¹ · (s·C·t_j − (head_b − head_a))`` for a child joint with position
  channels, which is ``Rrest_b⁻¹ · C · (t_j − OFFSET_j) · s`` when the rest heads follow the
  offsets (always for a new armature), and ``Rrest_b⁻¹ · (s·C·t_j − head_b)`` for a root.

The code solves the general ``Basis_b = (Rest_a⁻¹ Rest_b)⁻¹ · P_a⁻¹ · P_b`` frame by frame,
which reduces to the formulas above and also handles existing armatures whose hierarchy has
extra bones between mapped ones (those keep their current pose).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

import bpy

from ..errors import InputError
from ..keyframes.continuity import quat_continuous
from ..keyframes.rig import affine_inverse, bone_data_path
from ..motion import bvh as bvh_mod
from ..motion import rotations as rot
from ..motion.skeleton import Skeleton, bvh_forward_kinematics
from . import actions, fcurve_io
from .edits import Rollback, assign_keeping_previous, set_scene_range
from .reduce import reduce_or_warn

# BVH (Y up) → Blender (Z up): x' = x, y' = -z, z' = y
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
C_INV = C.T



# =========================================================================== results


@dataclass
class ImportResult:
    obj: object
    action: object
    frames: int
    joints: int
    keys: int  # keys written (before any reduction)
    new_armature: bool
    reduce_result: object = None  # blender.reduce.ReduceResult when reduced
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    units: object = None  # motion.bvh.Units: the length unit used
    floor_shift_m: float = 0.0  # how far the clip was moved up to stand on the floor

    def message(self) -> str:
        text = (
            f"Imported {self.frames:,} frames of {self.joints} joints onto "
            f"'{self.obj.name}' (action '{self.action.name}', {self.seconds:.2f} s)"
        )
        if self.units is not None:
            text += "; " + _note(self.units, self.floor_shift_m)
        if self.reduce_result is not None:
            r = self.reduce_result
            text += f"; reduced {r.keys_before:,} → {r.keys_after:,} keys"
            if r.max_cm == r.max_cm:  # measured (not NaN)
                text += f", max error {r.max_cm:.2f} cm"
        return text


@dataclass
class ExportResult:
    filepath: str
    frames: int
    joints: int
    frame_start: int
    frame_end: int
    seconds: float = 0.0
    warnings: list = field(default_factory=list)

    def message(self) -> str:
        return (
            f"Exported {self.joints} joints, frames {self.frame_start}-{self.frame_end} "
            f"({self.frames:,} frames) to '{os.path.basename(self.filepath)}'"
        )


# =========================================================================== import


def import_bvh(source, target=None, scale="auto", reduce=None, frame_start=1, name=None,
               set_fps=None, set_frame_range=None, ground=False):
    """Import a BVH file (path) or :class:`~..motion.bvh.Bvh`; returns the animated armature.

    See :func:`import_bvh_result` for the arguments.
    """
    return import_bvh_result(source, target, scale, reduce, frame_start, name, set_fps,
                             set_frame_range, ground).obj


def import_bvh_result(source, target=None, scale="auto", reduce=None, frame_start=1, name=None,
                      set_fps=None, set_frame_range=None, ground=False) -> ImportResult:
    """Import a BVH and return an :class:`ImportResult`.

    source: a path or a parsed ``Bvh``.
    target: None to build a new armature, or an existing armature whose bones are matched
        to the joints by name (every joint needs a bone; other bones are left alone). Its
        rest pose must be the BVH rest pose (same T/A pose); rolls and bone directions may
        differ.
    scale: BVH units → Blender units (metres): ``"auto"`` detects the unit from the
        skeleton's height (m, ASF, inches, cm or mm: the one that makes it closest to 1.7 m,
        see :func:`..motion.bvh.resolve_units`), a unit (``"cm"``, ``"in"``, ``"asf"``…) or
        a factor (0.01: centimetres → metres).
    reduce: :class:`~.reduce.ReduceSettings` to reduce the keys right after the import.
    frame_start: scene frame of the first BVH frame (one BVH frame per scene frame).
    set_fps / set_frame_range: set the scene frame rate from Frame Time / the scene frame
        range to the imported frames; None means "only when creating a new armature".
    ground: move the clip up or down so its lowest foot point (a low percentile over the
        frames) is on the floor (z = 0); a clip whose lowest foot point is between 1 cm under
        and 6 cm over the floor is on it already and left as it is
        (:func:`..motion.bvh.floor_shift`).

    The unit and the floor shift are in the result (``units``, ``floor_shift_m``) and on the
    action (``action["sparse_motion_bvh"]``, read by :func:`import_note`).

    Raises :class:`InputError` (nothing changed) for unreadable files and unusable targets.
    """
    t0 = time.perf_counter()
    bvh, label = _load(source)
    if name is None:
        name = os.path.splitext(os.path.basename(label))[0] if label else "BVH"
    name = name or "BVH"
    if bvh.num_frames == 0:
        raise InputError(f"{repr(label) if label else 'The BVH'} has no frames of motion")
    new_armature = target is None
    if not new_armature:
        _check_target(target, bvh)
    if set_fps is None:
        set_fps = new_armature
    if set_frame_range is None:
        set_frame_range = new_armature

    # ---- everything that can be computed before touching the scene
    W, Gq = bvh_forward_kinematics(bvh, return_rotations=True)  # (F, J, 3), (F, J, 4)
    warnings = []
    units, bvh, W, shift = _units_and_floor(bvh, label, scale, ground, W, Gq, warnings)
    scale = units.scale
    sk = Skeleton.from_bvh(bvh)
    G = rot.quat_to_matrix(Gq)  # (F, J, 3, 3)
    T = bvh.local_translations()  # (F, J, 3)
    layout = _rest_layout(bvh, sk, scale) if new_armature else None

    with Rollback() as rb:  # nothing is left behind if any step fails
        if new_armature:
            obj, bone_names = _build_armature(name, bvh, layout, rb)
        else:
            obj = target
            bone_names = [j.name for j in bvh.joints]
            if obj.mode == "EDIT":
                obj.update_from_editmode()
        basis = _solve_basis(obj, bvh, bone_names, W, G, T, scale, warnings)
        n_frames = bvh.num_frames
        frames = frame_start + np.arange(n_frames, dtype=np.float64)

        action, channels = actions.new_action_for(obj, name)
        rb.created(action)
        action[IMPORT_PROPERTY] = {"unit": units.unit, "scale": units.scale,
                                   "height": units.height, "detected": units.detected,
                                   "floor_shift_m": shift * scale}
        n_keys = 0
        given_keys = reduce is not None and reduce.mode == "KEYS"
        columns = []  # (data path, index, bone, values)
        for bone, (quat, loc) in basis.items():
            path = bone_data_path(bone, "rotation_quaternion")
            columns += [(path, i, bone, quat[:, i]) for i in range(4)]
            if loc is not None:
                path = bone_data_path(bone, "location")
                columns += [(path, i, bone, loc[:, i]) for i in range(3)]
        if given_keys:  # keys on given frames: fit and write them directly, no dense pass
            reduce_result = _write_given_keys(channels, columns, frames, reduce)
            n_keys = reduce_result.keys_after
        else:
            for path, i, bone, values in columns:
                fcurve_io.write_dense(channels.new_fcurve(path, i, bone), frames, values)
            n_keys = len(columns) * n_frames

        # ---- assign, set the static state of the keyed bones
        for bone, (_quat, loc) in basis.items():
            pb = obj.pose.bones[bone]
            old = (pb.rotation_mode, tuple(pb.location), tuple(pb.scale))
            rb.restore(lambda pb=pb, old=old: _set_pose_static(pb, *old))
            _set_pose_static(pb, "QUATERNION", (0.0, 0.0, 0.0) if loc is None else None,
                             (1.0, 1.0, 1.0))
        assign_keeping_previous(obj, channels, rb, warnings)

        if reduce is not None and not given_keys:
            reduce_result = reduce_or_warn(obj, reduce, warnings)
        elif not given_keys:
            reduce_result = None

        scene = bpy.context.scene
        if set_fps:
            fps, base = _fps_for(bvh.frame_time)
            old_fps = (scene.render.fps, scene.render.fps_base)
            rb.restore(lambda o=old_fps: _set_fps(scene, *o))
            _set_fps(scene, fps, base)
        if set_frame_range:
            old_range = (scene.frame_start, scene.frame_end)
            rb.restore(lambda o=old_range: set_scene_range(scene, *o))
            set_scene_range(scene, int(frames[0]), int(frames[-1]))
    return ImportResult(
        obj=obj, action=action, frames=bvh.num_frames, joints=bvh.num_joints, keys=n_keys,
        new_armature=new_armature, reduce_result=reduce_result, warnings=warnings,
        seconds=time.perf_counter() - t0, units=units, floor_shift_m=shift * scale,
    )


IMPORT_PROPERTY = "sparse_motion_bvh"


def _units_and_floor(bvh, label, scale, ground, W, Gq, warnings):
    """(Units, the Bvh moved onto the floor, its positions, the shift in BVH units); a
    warning when the detected unit does not make a person of the skeleton."""
    what = repr(label) if label else "The BVH"
    try:
        units = bvh_mod.resolve_units(bvh, scale, W, Gq)
    except bvh_mod.BvhError as exc:
        raise InputError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    shift = bvh_mod.floor_shift(bvh, units.scale, W, Gq) if ground else 0.0
    if shift:
        bvh = bvh_mod.shifted_up(bvh, shift)
        W = W + np.array([0.0, shift, 0.0])  # every joint hangs from a root
    if units.detected and not units.plausible:
        lo, hi = bvh_mod.PLAUSIBLE_HEIGHT_M
        warnings.append(f"{what} would be {units.height_m:.2f} m tall in the closest unit "
                        f"({bvh_mod.UNITS[units.unit][0]}), outside the {lo:g}–{hi:g} m of a "
                        "person: if that is wrong, set the unit or scale")
    return units, bvh, W, shift


def _note(units, floor_shift_m) -> str:
    text = f"units: {units.describe()}"
    if floor_shift_m:
        text += (f"; moved {'up' if floor_shift_m > 0 else 'down'} {abs(floor_shift_m):.2f} m "
                 "to stand on the floor")
    return text


def import_note(action):
    """How the BVH behind ``action`` was imported (its unit, the floor shift), or None for
    an action not imported from a BVH: e.g. ``'units: centimetres, detected from a 1.72 m
    skeleton; moved up 0.95 m to stand on the floor'``."""
    info = action.get(IMPORT_PROPERTY) if action is not None else None
    if info is None:
        return None
    units = bvh_mod.Units(str(info["unit"]), float(info["scale"]), float(info["height"]),
                          bool(info["detected"]))
    return _note(units, float(info["floor_shift_m"]))


def _write_given_keys(channels, columns, frames, settings):
    """Bezier keys on ``settings.key_frames`` (scene frames) fitted to every column's dense
    values (the keyframe engine's least-squares handles); constant columns get their two end
    keys. Returns a ReduceResult (errors not measured: NaN)."""
    from ..keyframes import bezier
    from ..keyframes.reduce import constant_columns
    from .reduce import ReduceResult

    t0 = time.perf_counter()
    F = len(frames)
    kf = np.asarray(settings.key_frames, dtype=np.float64).reshape(-1)
    idx = np.unique(np.concatenate([np.clip(np.round(kf - frames[0]), 0, F - 1), [0, F - 1]]))
    idx = idx.astype(np.intp)
    V = np.stack([c[3] for c in columns], axis=1)
    constant = constant_columns(V)
    handles = settings.handles.lower()
    kv, hl, hr = bezier.fit(frames, V, idx, handles)
    kt = "FREE" if handles == "free" else "ALIGNED"
    ends = frames[[0, -1]]
    for c, (path, i, bone, values) in enumerate(columns):
        fc = channels.new_fcurve(path, i, bone)
        if constant[c]:
            v = float(values[0])
            fcurve_io.write_keys(fc, ends, [v, v], [v, v], [v, v], "FREE")
        else:
            fcurve_io.write_keys(fc, frames[idx], kv[:, c], hl[:, c], hr[:, c], kt)
    n_const = int(constant.sum())
    nan = float("nan")
    return ReduceResult(action=channels.action, curves=len(columns), keys_before=F * len(columns),
                        keys_after=len(idx) * (len(columns) - n_const) + 2 * n_const,
                        max_cm=nan, p95_cm=nan, mean_cm=nan, seconds=time.perf_counter() - t0,
                        constant_curves=n_const, key_frames=len(idx), frames=F)


def _load(source):
    """(Bvh, label for messages)."""
    if isinstance(source, bvh_mod.Bvh):
        try:
            source.validate()
        except bvh_mod.BvhError as exc:
            raise InputError(f"Invalid BVH data: {exc}") from None
        return source, ""
    path = os.fspath(source)
    label = os.path.basename(path) or path
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"Cannot read '{label}': {exc.strerror or exc}") from None
    try:
        return bvh_mod.read(data), label
    except bvh_mod.BvhError as exc:
        raise InputError(f"'{label}' is not a valid BVH file: {exc}") from None


def _check_target(target, bvh):
    if getattr(target, "type", None) != "ARMATURE":
        name = getattr(target, "name", target)
        raise InputError(f"'{name}' is not an armature: choose an armature to import onto, "
                         "or import to a new armature")
    if target.library is not None or target.data.library is not None:
        raise InputError(f"'{target.name}' is linked from a library and cannot be animated here")
    adt = target.animation_data
    if adt is not None and getattr(adt, "use_tweak_mode", False):
        raise InputError(f"'{target.name}' is in NLA tweak mode: exit tweak mode first")
    bones = target.data.bones
    missing = [j.name for j in bvh.joints if j.name not in bones]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise InputError(
            f"Armature '{target.name}' has no bone for {len(missing)} of the "
            f"{bvh.num_joints} BVH joints: {shown}{more} (bones are matched by name)"
        )


# --------------------------------------------------------------------------- new armature


@dataclass
class _Layout:
    heads: np.ndarray  # (J, 3) Blender units, Z up
    tails: np.ndarray
    connect: np.ndarray  # (J,) bool


def _rest_layout(bvh, sk, s) -> _Layout:
    """Rest heads and tails of the bones of a new armature (Blender axes, scaled)."""
    J = bvh.num_joints
    heads = sk.rest_positions() @ C.T * s
    offsets = sk.offsets @ C.T * s
    ends = bvh.end_sites @ C.T * s  # NaN rows where no End Site
    children = [[] for _ in range(J)]
    for j, p in enumerate(sk.parents):
        if p >= 0:
            children[p].append(j)
    lengths = np.linalg.norm(offsets[sk.parents >= 0], axis=1)
    lengths = lengths[lengths > 1e-9]
    typical = float(np.median(lengths)) if len(lengths) else 0.1
    min_len = 0.05 * typical
    tails = np.empty_like(heads)
    directions = np.empty_like(heads)
    for j in range(J):
        kids = children[j]
        if len(kids) == 1:
            d = offsets[kids[0]]
        elif not np.isnan(ends[j, 0]):
            d = ends[j]
        elif kids:
            d = offsets[kids].mean(axis=0)
        else:
            d = np.zeros(3)
        if np.linalg.norm(d) < min_len:
            # along the joint's own offset, else along the parent's bone, else up
            p = sk.parents[j]
            candidates = [offsets[j], directions[p]] if p >= 0 else []
            for cand in candidates + [np.array([0.0, 0.0, 1.0])]:
                n = np.linalg.norm(cand)
                if n >= min_len and n > 1e-12:
                    d = cand / n * (0.5 * typical)
                    break
        directions[j] = d
        tails[j] = heads[j] + d
    connect = np.zeros(J, dtype=bool)
    for j, p in enumerate(sk.parents):
        if p >= 0 and not bvh.has_position(j):
            connect[j] = np.linalg.norm(heads[j] - tails[p]) <= 1e-6 * max(typical, 1e-6)
    return _Layout(heads, tails, connect)


def _build_armature(name, bvh, layout, rb):
    """Create and link a new armature object; returns (object, bone name per joint)."""
    ctx = bpy.context
    if ctx.mode != "OBJECT" and bpy.ops.object.mode_set.poll():
        bpy.ops.object.mode_set(mode="OBJECT")
    data = rb.created(bpy.data.armatures.new(name))
    obj = rb.created(bpy.data.objects.new(name, data))
    collection = ctx.collection
    if collection is None or collection.library is not None:
        collection = ctx.scene.collection
    collection.objects.link(obj)
    for other in ctx.view_layer.objects.selected:
        other.select_set(False)
    ctx.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit = []
        for j, joint in enumerate(bvh.joints):
            eb = data.edit_bones.new(joint.name)
            eb.head = layout.heads[j].tolist()
            eb.tail = layout.tails[j].tolist()
            eb.roll = 0.0
            if joint.parent >= 0:
                eb.parent = edit[joint.parent]
                eb.use_connect = bool(layout.connect[j])
            edit.append(eb)
        names = [eb.name for eb in edit]  # Blender may shorten long names (63 bytes)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return obj, names


# --------------------------------------------------------------------------- the keys


def _solve_basis(obj, bvh, bone_names, W, G, T, s, warnings):
    """Per keyed bone: (quaternions (F, 4), locations (F, 3) or None) of ``matrix_basis``.

    Walks the armature parents first, keeping each bone's armature-space pose rotation
    (``rot``, with its inverse ``inv``) and head; bones that no joint maps to keep their
    current (static) pose and carry their children.
    """
    F = bvh.num_frames
    bones = obj.data.bones
    joint_of = {bone_names[j]: j for j in range(bvh.num_joints)}
    needed = set()
    for bname in joint_of:
        b = bones[bname]
        while b is not None and b.name not in needed:
            needed.add(b.name)
            b = b.parent
    order = [b for b in fcurve_io.topological_bones(bones) if b.name in needed]
    eye = np.eye(3)
    pose_rot, pose_inv, pose_head = {}, {}, {}  # armature-space pose of processed bones
    out = {}
    ignored_loc, odd = [], []
    for bone in order:
        rest = np.array(bone.matrix_local, dtype=np.float64)
        parent = bone.parent
        if parent is not None:
            rel = affine_inverse(np.array(parent.matrix_local, dtype=np.float64)) @ rest
            Ra, Ra_inv, Ha = pose_rot[parent.name], pose_inv[parent.name], pose_head[parent.name]
        else:
            rel = rest
            Ra, Ra_inv, Ha = eye, eye, np.zeros(3)
        Tr, Tt = rel[:3, :3], rel[:3, 3]
        j = joint_of.get(bone.name)
        if j is None:  # an extra bone: its current pose (static) carries its children
            basis = np.array(obj.pose.bones[bone.name].matrix_basis, dtype=np.float64)
            if bone.use_connect:
                basis[:3, 3] = 0.0
            M = rel @ basis
            pose_rot[bone.name] = Ra @ M[:3, :3]
            pose_inv[bone.name] = affine_inverse(M)[:3, :3] @ Ra_inv
            pose_head[bone.name] = Ha + _apply(Ra, M[:3, 3])
            continue
        # Q = C · G_j · C⁻¹ · Rrest: the bone's pose rotation in armature space
        Q = C @ G[:, j] @ (C_INV @ rest[:3, :3])
        basis_rot = Tr.T @ Ra_inv @ Q  # (Rest_a⁻¹ Rest_b)⁻¹ · P_a⁻¹ · P_b, rotation part
        loc = None
        if bvh.has_position(j) and not bone.use_connect:
            p = bvh.joints[j].parent
            pb_name = bone_names[p] if p >= 0 else None
            if p < 0:
                H = s * T[:, j] @ C.T
            elif pb_name in pose_head:  # parent head + s · C · G_p · t_j
                H = pose_head[pb_name] + s * _apply(G[:, p], T[:, j]) @ C.T
            else:  # the BVH parent is not above this bone in the armature: absolute place
                H = s * W[:, j] @ C.T
            loc = _apply(Ra_inv, H - Ha) - Tt
            loc = loc @ Tr  # Trᵀ · v for every row v
        else:
            if bvh.has_position(j):
                ignored_loc.append(bone.name)
            H = np.broadcast_to(Ha + _apply(Ra, Tt), (F, 3))
        pose_rot[bone.name] = Q
        pose_inv[bone.name] = np.swapaxes(Q, -1, -2)
        pose_head[bone.name] = H
        out[bone.name] = (quat_continuous(rot.matrix_to_quat(basis_rot)), loc)
        if (not bone.use_inherit_rotation or bone.inherit_scale != "FULL"
                or not bone.use_local_location):
            odd.append(bone.name)
    if ignored_loc:
        warnings.append(
            f"{len(ignored_loc)} connected bone(s) cannot move away from their parent, their "
            f"position channels were ignored ({', '.join(ignored_loc[:3])}"
            f"{'…' if len(ignored_loc) > 3 else ''})"
        )
    if odd:
        warnings.append(
            "Bones with non-default inheritance may not follow the BVH exactly "
            f"({', '.join(odd[:3])}{'…' if len(odd) > 3 else ''})"
        )
    # keep the BVH joint order (it is also the F-curve order)
    return {bone_names[j]: out[bone_names[j]] for j in range(bvh.num_joints)}


def _apply(R, v):
    """R @ v for R (3, 3) or (F, 3, 3) and v (3,) or (F, 3)."""
    if R.ndim == 2:
        return v @ R.T
    return (R @ v[..., None])[..., 0]


def _set_pose_static(pb, mode, location, scale):
    pb.rotation_mode = mode
    if location is not None:
        pb.location = location
    if scale is not None:
        pb.scale = scale


def _fps_for(frame_time):
    exact = 1.0 / frame_time
    fps = int(min(max(round(exact), 1), 1000))
    base = fps / exact
    if abs(base - 1.0) < 1e-4:
        base = 1.0
    return fps, base


def _set_fps(scene, fps, base):
    scene.render.fps = fps
    scene.render.fps_base = base


# =========================================================================== export


def export_bvh(obj, filepath, frame_start=None, frame_end=None, scale=100.0,
               rotation_order="ZXY", precision=6) -> ExportResult:
    """Write the animation of armature ``obj`` as a BVH file.

    The pose is evaluated by Blender at every integer frame (``scene.frame_set``), so sparse
    Bezier keys, constraints and drivers export as they play. The hierarchy follows the
    bones (several roots if the armature has several), offsets come from the rest heads,
    End Sites from the tails of leaf bones. Roots have 6 channels; other joints get position
    channels only when their bone moves away from its rest offset. ``rotation_order`` is a
    BVH channel order (``'ZXY'`` → ``Zrotation Xrotation Yrotation``); angles in degrees.
    ``scale``: Blender units → BVH units (100: metres → centimetres). Positions include the
    armature object's transform (uniform scale; a non-uniform object scale is approximated).
    """
    t0 = time.perf_counter()
    if obj is None:
        raise InputError("Select the armature to export")
    if getattr(obj, "type", None) != "ARMATURE":
        raise InputError(f"'{obj.name}' is not an armature: only armatures can be exported as BVH")
    channels = actions.channels_for(obj)
    if channels is None:
        raise InputError(f"'{obj.name}' has no action to export")
    order = str(rotation_order).upper()
    if order not in rot.EULER_ORDERS:
        raise InputError(f"Unknown rotation order {rotation_order!r}: use one of "
                         f"{', '.join(rot.EULER_ORDERS)}")
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"Scale must be a positive number, got {scale!r}")
    if len(obj.data.bones) == 0:
        raise InputError(f"Armature '{obj.name}' has no bones")
    scene = bpy.context.scene
    if obj.name not in scene.objects:
        raise InputError(f"'{obj.name}' is not in the current scene")
    action = channels.action
    if frame_start is None or frame_end is None:
        a_start, a_end = _action_range(action, channels)
        frame_start = a_start if frame_start is None else frame_start
        frame_end = a_end if frame_end is None else frame_end
    frame_start, frame_end = int(frame_start), int(frame_end)
    if frame_end < frame_start:
        raise InputError(f"Empty frame range {frame_start}-{frame_end}")

    bones = fcurve_io.topological_bones(obj.data.bones)  # parents first
    pose_bones = obj.pose.bones
    index = {pb.name: i for i, pb in enumerate(pose_bones)}
    sel = np.array([index[b.name] for b in bones])
    F, B = frame_end - frame_start + 1, len(bones)

    # ---- sample the evaluated pose
    mats = np.empty((F, len(pose_bones) * 16), dtype=np.float32)
    world = np.empty((F, 16))
    frame0, sub0 = scene.frame_current, scene.frame_subframe
    try:
        for i in range(F):
            scene.frame_set(frame_start + i)
            pose_bones.foreach_get("matrix", mats[i])
            m = obj.matrix_world
            world[i] = (*m[0], *m[1], *m[2], *m[3])
    finally:
        scene.frame_set(frame0, subframe=sub0)
    P = mats.reshape(F, -1, 4, 4).transpose(0, 1, 3, 2)[:, sel].astype(np.float64)
    M = world.reshape(F, 4, 4).astype(np.float64)

    # ---- world (Blender) → BVH (Y up, scaled)
    sigma = np.cbrt(np.abs(np.linalg.det(M[:, :3, :3])))  # (F,) uniform object scale
    warnings = []
    if np.ptp(sigma) > 1e-6 * sigma.max():
        warnings.append("The armature object's scale is animated: offsets use the first frame")
    Mrot = M[:, :3, :3] / np.where(sigma > 0, sigma, 1.0)[:, None, None]
    heads = (M[:, None, :3, :3] @ P[:, :, :3, 3:])[..., 0] + M[:, None, :3, 3]
    pos = scale * heads @ C  # (F, B, 3): C⁻¹ · v = Cᵀ · v, row form v @ C
    Rw = Mrot[:, None] @ P[:, :, :3, :3]
    Rw = Rw / np.maximum(np.linalg.norm(Rw, axis=-2, keepdims=True), 1e-12)  # drop bone scale
    rest_rot = np.array([np.array(b.matrix_local)[:3, :3] for b in bones])
    rest_head = np.array([b.head_local for b in bones], dtype=np.float64)
    rest_tail = np.array([b.tail_local for b in bones], dtype=np.float64)
    G = C_INV @ Rw @ (np.swapaxes(rest_rot, -1, -2) @ C)  # C⁻¹ · Rw · Rrest⁻¹ · C

    bone_index = {b.name: i for i, b in enumerate(bones)}
    parents = np.array([bone_index[b.parent.name] if b.parent else -1 for b in bones])
    s0 = float(sigma[0])
    offsets = np.empty((B, 3))
    local_rot = np.empty_like(G)
    local_pos = np.empty((F, B, 3))
    for b in range(B):
        p = parents[b]
        if p < 0:
            offsets[b] = scale * (M[0, :3, :3] @ rest_head[b] + M[0, :3, 3]) @ C
            local_rot[:, b] = G[:, b]
            local_pos[:, b] = pos[:, b]
        else:
            offsets[b] = scale * s0 * (rest_head[b] - rest_head[p]) @ C
            Gp_t = np.swapaxes(G[:, p], -1, -2)
            local_rot[:, b] = Gp_t @ G[:, b]
            local_pos[:, b] = _apply(Gp_t, pos[:, b] - pos[:, p])
    size = max(float(np.abs(offsets).max()), 1e-9)
    moves = np.abs(local_pos - offsets[None]).max(axis=0).max(axis=1) > 1e-5 * size
    has_pos = (parents < 0) | moves

    euler = np.degrees(rot.matrix_to_euler(local_rot, rot.bvh_order_to_blender(order)))
    euler = np.unwrap(euler, period=360.0, axis=0)
    names = _joint_names([b.name for b in bones])
    leaves = np.ones(B, dtype=bool)
    leaves[parents[parents >= 0]] = False
    joints, columns = [], []
    for b in range(B):
        chans = []
        if has_pos[b]:
            chans += ["Xposition", "Yposition", "Zposition"]
            columns += [local_pos[:, b, 0], local_pos[:, b, 1], local_pos[:, b, 2]]
        for axis in order:
            chans.append(f"{axis}rotation")
            columns.append(euler[:, b, "XYZ".index(axis)])
        end = scale * s0 * (rest_tail[b] - rest_head[b]) @ C if leaves[b] else None
        joints.append(bvh_mod.BvhJoint(names[b], int(parents[b]), offsets[b], chans, end))
    motion = np.stack(columns, axis=1)
    if precision is not None:
        motion = np.round(motion, int(precision)) + 0.0
    fps = scene.render.fps / scene.render.fps_base
    out = bvh_mod.Bvh(joints, 1.0 / fps, motion)

    filepath = os.fspath(filepath)
    tmp = filepath + ".tmp"
    try:
        bvh_mod.write(out, tmp)
        os.replace(tmp, filepath)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise InputError(f"Cannot write '{filepath}': {exc.strerror or exc}") from None
    return ExportResult(filepath=filepath, frames=F, joints=B, frame_start=frame_start,
                        frame_end=frame_end, seconds=time.perf_counter() - t0,
                        warnings=warnings)


def _action_range(action, channels):
    if getattr(action, "use_frame_range", False):
        return int(round(action.frame_start)), int(round(action.frame_end))
    curves = [fc for fc in channels.fcurves if len(fc.keyframe_points)]
    if not curves:
        raise InputError(f"Action '{action.name}' has no keys to export")
    return fcurve_io.frame_range(curves)


def _joint_names(names):
    """Bone names made valid (and unique) as BVH joint names."""
    out, seen = [], set()
    for n in names:
        clean = "".join("_" if (ch in "{}" or ch.isspace() and ch != " ") else ch for ch in n)
        clean = " ".join(clean.split()) or "bone"
        base, k = clean, 1
        while clean in seen:
            k += 1
            clean = f"{base}_{k}"
        seen.add(clean)
        out.append(clean)
    return out
