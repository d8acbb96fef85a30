# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting on real Blender armatures: read the rig, solve (:mod:`..retarget.solve`),
write dense keys into a new action through the compat layer, reduce them to sparse keys.

Entry points:

* :func:`retarget_motion` — canonical motion (generated, or converted from Bandai BVH) onto
  a target armature; what Generate Motion and Variations call.
* :func:`retarget_armature` — the animation of a source armature (e.g. a BVH imported with
  :func:`.bvh_io.import_bvh`, or any mapped humanoid rig) onto a target armature.
* :func:`detect_object_mapping` / :func:`resolve_mapping` — the bone mapping of an armature
  (detected, or the one stored in its ``sparse_motion_retarget`` settings).

Everything is computed before the scene is touched; a failure removes the new action and
leaves the rig as it was. The action is assigned at the end, the previous one is kept with a
fake user.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import bpy

from ..errors import InputError
from ..keyframes.continuity import euler_filter, quat_continuous
from ..keyframes.rig import affine_inverse, bone_data_path
from ..motion import canonical as canon
from ..motion import rotations as rot
from ..retarget import conventions as cv
from ..retarget import mapping as rmap
from ..retarget import posecheck
from ..retarget import solve as rsolve
from . import actions, fcurve_io
from .edits import Rollback, assign_keeping_previous, set_scene_range

# BVH / canonical (Y up) → Blender armature space of an imported BVH (Z up).
_C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
RIGIFY_IK_FK = "IK_FK"


@dataclass
class RetargetResult:
    obj: object
    action: object
    frames: int
    bones: list  # keyed bone names
    mapping: object  # retarget.mapping.BoneMapping
    solution: object = None  # retarget.solve.Solution (armature-space pose, for checks)
    frame_start: int = 1
    reduce_result: object = None
    pinned_frames: int = 0
    foot_drift_cm: float | None = None  # largest distance of a pinned ankle from its pin
    warnings: list = field(default_factory=list)
    seconds: float = 0.0
    check: object = None  # retarget.posecheck.MotionCheck of the motion written
    reference: object = None  # Reference: the standing pose the rig was aligned in

    def message(self) -> str:
        text = (f"Retargeted {self.frames:,} frames onto '{self.obj.name}': {len(self.bones)} "
                f"bones keyed in action '{self.action.name}' ({self.seconds:.2f} s)")
        if self.pinned_frames:
            text += f"; feet pinned on {self.pinned_frames} frames"
            if self.foot_drift_cm is not None:
                text += f" (drift ≤ {self.foot_drift_cm:.2f} cm)"
        if self.reduce_result is not None:
            r = self.reduce_result
            text += f"; reduced to {r.key_frames} keyed frames, max error {r.max_cm:.2f} cm"
        return text


# =========================================================================== the rig


def check_target(obj, what="target"):
    if obj is None:
        raise InputError(f"Select the {what} armature")
    if getattr(obj, "type", None) != "ARMATURE":
        raise InputError(f"'{obj.name}' is not an armature: the {what} must be an armature")
    if obj.library is not None or obj.data.library is not None:
        raise InputError(f"'{obj.name}' is linked from a library and cannot be animated here")
    adt = obj.animation_data
    if adt is not None and getattr(adt, "use_tweak_mode", False):
        raise InputError(f"'{obj.name}' is in NLA tweak mode: exit tweak mode first")
    if len(obj.data.bones) == 0:
        raise InputError(f"Armature '{obj.name}' has no bones")
    if obj.mode == "EDIT":
        obj.update_from_editmode()


def target_rig(obj, reference=None) -> rsolve.TargetRig:
    """The bones of ``obj`` (rest ``matrix_local``, connection, current ``matrix_basis``);
    with a :class:`Reference` from a frame, that frame's pose is the reference pose and its
    ``matrix_basis`` the pose of the bones that are not driven."""
    bones = fcurve_io.topological_bones(obj.data.bones)
    names = [b.name for b in bones]
    parents = [b.parent.name if b.parent else None for b in bones]
    rest = np.array([np.array(b.matrix_local, dtype=np.float64) for b in bones])
    connected = [bool(b.use_connect) for b in bones]
    ref = static = None
    order = {b.name: i for i, b in enumerate(obj.data.bones)}
    if reference is not None and reference.matrices is not None:
        ref = reference.matrices[[order[n] for n in names]]
    if reference is not None and reference.basis is not None:
        static = reference.basis[[order[n] for n in names]]
    else:
        static = np.array([np.array(obj.pose.bones[n].matrix_basis, dtype=np.float64)
                           for n in names])
    follow = [_copied_bone(obj, obj.pose.bones[n]) for n in names]
    rig = rsolve.TargetRig.build(names, parents, rest, connected, static, follow, ref)
    if reference is not None and reference.frame is not None:
        rig.up = world_up(obj)  # a frame of an action need not be symmetric
    rig.ref_placed = reference is not None and reference.placed
    return rig


# =========================================================================== standing pose


@dataclass
class Reference:
    """The pose of a target that retargeting aligns with the source's T-pose: the rest pose
    (``frame`` and ``matrices`` None), a frame of the rig's action where it stands, or (the
    canonical skeleton: ``frame`` None) its T-pose, :func:`canonical_tpose`."""

    frame: int | None = None
    matrices: np.ndarray = None  # (B, 4, 4) pose_bone.matrix, obj.data.bones order
    basis: np.ndarray = None  # (B, 4, 4) pose_bone.matrix_basis at that frame (None: current)
    description: str = "its rest pose"
    rest_problems: list = field(default_factory=list)  # why the rest pose does not stand
    placed: bool = False  # it stands where the motion is placed (TargetRig.ref_placed)


def world_up(obj) -> np.ndarray:
    """The world's up (+Z) as a unit direction in the armature space of ``obj``."""
    m = np.array(obj.matrix_world, dtype=np.float64)[:3, :3]
    v = np.linalg.solve(m, np.array([0.0, 0.0, 1.0]))
    return v / np.linalg.norm(v)


def _mapped_points(obj, mapping, heads):
    """Canonical joint → position, from ``heads (B, 3)`` in ``obj.data.bones`` order."""
    order = {b.name: i for i, b in enumerate(obj.data.bones)}
    return {j: heads[order[b]] for j, b in mapping.mapped.items() if b in order}


def _action_range(obj, what="target"):
    """``(action, first, last)`` of the keys of the action of ``obj``; raises InputError when
    there is none."""
    adt = obj.animation_data
    action = adt.action if adt is not None else None
    if action is None:
        raise InputError(f"The {what} '{obj.name}' has no action")
    channels = actions.channels_for(obj)
    curves = [fc for fc in (channels.fcurves if channels else ()) if len(fc.keyframe_points)]
    if not curves:
        raise InputError(f"Action '{action.name}' of '{obj.name}' has no keys")
    first, last = fcurve_io.frame_range(curves)
    return action, first, last


def canonical_scale(obj, mapping):
    """Armature units per cm when ``obj`` is the canonical skeleton and ``mapping`` drives
    every canonical joint with its namesake bone: the rig Generate Motion creates (tagged
    with :data:`.generate.CANONICAL_RIG_TAG`) or any rig with the canonical joints in the BVH
    rest pose (:func:`_canonical_layout`: a canonical or Bandai-layout BVH imported), else
    None."""
    from .generate import CANONICAL_RIG_TAG

    if any(mapping.mapped.get(j) != j for j in cv.JOINTS):
        return None
    return _canonical_layout(obj, check_offsets=not obj.data.get(CANONICAL_RIG_TAG))


def canonical_placement(obj, mapping=None):
    """Where retargeting canonical motion onto ``obj`` puts the hips: ``(a (3,), B (3, 3))``
    with the armature-space hip centre ``a + B · x`` for the canonical Hips at ``x`` (cm, Y
    up). The solver's own placement (its reference pose, leg ratio and body frames), read off
    by retargeting four T-pose frames at the origin and 100 cm along each axis."""
    mapping = resolve_mapping(obj, mapping)
    reference = reference_pose(obj, mapping, _reference_frame(obj, None))
    rig = target_rig(obj, reference)
    x = np.zeros((4, 3))
    x[:, 1] = cv.TPOSE_HIPS_HEIGHT
    x[1:] += 100.0 * np.eye(3)
    q = np.repeat(np.asarray(cv.TPOSE_LOCAL_QUATS, dtype=np.float64)[None], 4, axis=0)
    sol = rsolve.solve(rsolve.SourceMotion.from_canonical(q, x, 20.0), rig, mapping.bones,
                       root=mapping.root, hold=_held_bones(rig, mapping, reference))
    g = sol.hip_goal
    B = (g[1:] - g[0]).T / 100.0
    return g[0] - B @ x[0], B


def canonical_tpose(obj, s) -> Reference:
    """The canonical skeleton's standing pose, known exactly: its T-pose
    (:data:`..retarget.conventions.TPOSE_LOCAL_QUATS`) as the pose matrices of ``obj`` (``s``
    armature units per cm; see :func:`canonical_scale`). Each joint's bone is its rest bone
    turned by the joint's T-pose world rotation (carried into armature space, as the BVH
    import lays the zero pose out), placed along the rig's own rest offsets from the Hips at
    the T-pose height, where the canonical motion puts it (so retargeted canonical motion
    lands where it would be written directly); other bones keep their rest matrices."""
    _q, G, pos = cv.tpose()
    bones = obj.data.bones
    M = np.array([np.array(b.matrix_local, dtype=np.float64) for b in bones])
    idx = [bones.find(j) for j in cv.JOINTS]
    W = _C @ G @ _C.T  # the joints' T-pose rotations in armature space
    rest_heads = M[idx, :3, 3].copy()
    for j, b in enumerate(idx):  # parents come first in the canonical order
        p = cv.PARENTS[j]
        head = (s * _C @ pos[0] if p < 0
                else M[idx[p], :3, 3] + W[p] @ (rest_heads[j] - rest_heads[p]))
        M[b, :3, :3] = W[j] @ M[b, :3, :3]
        M[b, :3, 3] = head
    return Reference(matrices=M, description="the canonical T-pose", placed=True)


def reference_pose(obj, mapping, frame=None, scan=25) -> Reference:
    """Where ``obj`` stands: frame ``frame`` of its action when given (refused when it does
    not stand), else the T-pose of the canonical skeleton when ``obj`` is one
    (:func:`canonical_scale`), else its rest pose when that stands, else the first frame of
    its action that stands, preferring a T or A pose (``scan`` frames looked at). Raises
    :class:`InputError` saying what is wrong and how to fix it when there is none."""
    up = world_up(obj)
    metres = _cm_per_armature_unit(obj) / 100.0
    if frame is None:
        s = canonical_scale(obj, mapping)
        if s is not None:
            return canonical_tpose(obj, s)
    rest_heads = np.array([tuple(b.head_local) for b in obj.data.bones], dtype=np.float64)
    rest_problems = posecheck.standing_problems(_mapped_points(obj, mapping, rest_heads), up,
                                                metres)
    fix = ("pick a frame where it stands upright (Retarget panel › Reference Frame), or pose it "
           "standing and apply that as its rest pose (Pose › Apply › Apply Pose as Rest Pose)")
    if frame is None and not rest_problems:
        return Reference()
    rest_text = "; ".join(rest_problems)
    if frame is not None:
        frames = [int(frame)]
        action = obj.animation_data.action if obj.animation_data else None
    else:
        try:
            action, first, last = _action_range(obj)
        except InputError as exc:
            raise InputError(
                f"Cannot retarget onto '{obj.name}': its rest pose does not stand "
                f"({rest_text}) and it has no action with a standing frame ({exc}). Give it an "
                f"action where it stands (e.g. the motion it was imported with), {fix}.") from None
        frames = [first] + [int(f) for f in np.unique(np.linspace(first, last, scan).round())
                            if int(f) != first]
    P = _sample_pose(obj, frames)
    found, found_ta, best = None, None, -np.inf
    problems = []
    for i, f in enumerate(frames):
        pts = _mapped_points(obj, mapping, P[i, :, :3, 3])
        problems = posecheck.standing_problems(pts, up, metres)
        if not problems:
            if posecheck.is_t_or_a_pose(pts, up):
                found_ta = i
                break
            straight = posecheck.straightness(pts, up)  # else the straightest legs
            if straight > best:
                found, best = i, straight
    pick = found_ta if found_ta is not None else found
    if pick is None:
        if frame is not None:
            raise InputError(
                f"Cannot retarget onto '{obj.name}': at the reference frame {frame} it does not "
                f"stand ({'; '.join(problems)}). Pick a frame where it stands upright, or turn "
                "the reference frame off to use its rest pose.")
        raise InputError(
            f"Cannot retarget onto '{obj.name}': its rest pose does not stand ({rest_text}) and "
            f"no frame of its action '{action.name}' ({frames[0]}–{frames[-1]}) stands either. "
            f"Give it an action where it stands, {fix}.")
    f = frames[pick]
    basis = _sample_pose(obj, [f], "matrix_basis")[0]
    name = f"'{action.name}'" if action is not None else "its action"
    kind = " (a T/A pose)" if pick == found_ta else ""
    return Reference(f, P[pick], basis, f"frame {f} of {name}{kind}", rest_problems)


def _copied_bone(obj, pb):
    """The bone whose pose ``pb`` copies whole (a single enabled world-space Copy Transforms
    constraint at full influence on a bone of the same armature, as generated rigs use),
    else None. Other constraints are not modelled (the result is checked with Blender)."""
    live = [c for c in pb.constraints if not c.mute and c.influence > 0.0]
    if len(live) != 1:
        return None
    c = live[0]
    if (c.type != "COPY_TRANSFORMS" or c.influence < 0.999 or c.target != obj
            or c.subtarget not in obj.data.bones or c.subtarget == pb.name
            or c.owner_space != "WORLD" or c.target_space != "WORLD"
            or getattr(c, "mix_mode", "REPLACE") != "REPLACE"
            or getattr(c, "head_tail", 0.0) != 0.0):
        return None
    return c.subtarget


def _tree_args(obj):
    bones = list(obj.data.bones)
    return ([b.name for b in bones], [b.parent.name if b.parent else None for b in bones],
            np.array([tuple(b.head_local) for b in bones], dtype=np.float64))


def detect_object_mapping(obj) -> rmap.BoneMapping:
    """Detect the bone mapping of armature ``obj`` (never raises for a poor rig: see
    :func:`.mapping.require_core`)."""
    check_target(obj)
    return rmap.detect_mapping(*_tree_args(obj), up=world_up(obj))


def stored_mapping(obj):
    """The mapping edited in the Retarget panel (``obj.sparse_motion_retarget``), or None."""
    settings = getattr(obj, "sparse_motion_retarget", None)
    if settings is None or not len(settings.bones):
        return None
    bones = {item.joint: (item.bone or None) for item in settings.bones if item.joint in cv.INDEX}
    return rmap.BoneMapping(bones, settings.root_bone or None, settings.convention or "CUSTOM",
                            float(settings.confidence))


def resolve_mapping(obj, mapping=None) -> rmap.BoneMapping:
    """``mapping`` (a :class:`BoneMapping`, a dict joint → bone, or None: the stored mapping,
    else a detected one), checked against ``obj``; raises :class:`InputError` when a bone is
    unknown or a required joint is unmapped."""
    if mapping is None:
        mapping = stored_mapping(obj) or detect_object_mapping(obj)
    elif isinstance(mapping, dict):
        mapping = rmap.BoneMapping(mapping, convention="CUSTOM")
    names, parents, _heads = _tree_args(obj)
    warnings = rmap.check_mapping(mapping, names, parents)
    rmap.require_core(mapping, obj.name)
    mapping = mapping.copy()
    mapping.notes = list(mapping.notes) + warnings
    return mapping


# =========================================================================== retarget


def retarget_motion(local_quats, root_translation, fps, target_obj, mapping=None,
                    foot_pinning=False, reduce=None, **kwargs):
    """Canonical motion onto ``target_obj``; returns the new action.

    local_quats ``(F, 21, 4)`` and root_translation ``(F, 3)`` (cm, Y up: see
    :mod:`..motion.canonical`) at ``fps``; resampled to the scene's frame rate. ``mapping``:
    a :class:`~..retarget.mapping.BoneMapping`, a dict, or None (stored, else detected).
    ``reduce``: :class:`~.reduce.ReduceSettings` to make the keys sparse (None: dense keys).
    Keyword arguments: see :func:`retarget_motion_result`.
    """
    return retarget_motion_result(local_quats, root_translation, fps, target_obj, mapping,
                                  foot_pinning, reduce, **kwargs).action


def retarget_motion_result(local_quats, root_translation, fps, target_obj, mapping=None,
                           foot_pinning=False, reduce=None, *, name="Retarget", frame_start=1,
                           root_motion="HIPS", resample=True, set_frame_range=False,
                           verify=True, reference_frame=None) -> RetargetResult:
    """:func:`retarget_motion` returning a :class:`RetargetResult`.

    name: the new action's name. frame_start: scene frame of the first motion frame.
    root_motion: ``"HIPS"`` (the hips bone carries the translation) or ``"ROOT"`` (the
    mapping's root bone carries the ground-plane part). resample: convert ``fps`` to the
    scene frame rate (else one motion frame per scene frame). set_frame_range: set the
    scene's frame range to the new keys. verify: evaluate a few frames with Blender and warn
    when constraints or drivers move the bones elsewhere. reference_frame: a frame of the
    target's action where it stands, to align with the source instead of its rest pose (None:
    the one set in its Retarget settings, else the rest pose when it stands, else a standing
    frame found in its action: :func:`reference_pose`).

    The retargeted motion is checked before anything is written (head above hips above feet,
    feet on the floor, standing height within 5 % of the rig's: :mod:`..retarget.posecheck`);
    an :class:`InputError` says what is wrong otherwise.
    """
    t0 = time.perf_counter()
    check_target(target_obj)
    mapping = resolve_mapping(target_obj, mapping)
    reference = reference_pose(target_obj, mapping, _reference_frame(target_obj, reference_frame))
    q = np.asarray(local_quats, dtype=np.float64)
    x = np.asarray(root_translation, dtype=np.float64)
    scene = bpy.context.scene
    scene_fps = scene.render.fps / scene.render.fps_base
    try:
        if resample and abs(float(fps) - scene_fps) > 1e-6 * scene_fps:
            q, x = canon.resample(q, x, float(fps), scene_fps)
            fps = scene_fps
        source = rsolve.SourceMotion.from_canonical(q, x, fps)
    except canon.CanonicalError as exc:
        raise InputError(f"Invalid motion: {exc}") from None
    return _apply(source, target_obj, mapping, foot_pinning, reduce, name, frame_start,
                  root_motion, set_frame_range, verify, t0, reference)


def retarget_armature(source_obj, target_obj, mapping=None, foot_pinning=False, reduce=None, *,
                      frame_range=None, source_mapping=None, name=None, root_motion="HIPS",
                      verify=True, reference_frame=None) -> RetargetResult:
    """The animation of armature ``source_obj`` onto ``target_obj`` (keys on the same frames).

    The source is read as Blender evaluates it (every frame of its action, or
    ``frame_range=(first, last)``). A source with the canonical joint names and the BVH
    rest pose (a Bandai-like BVH imported by :func:`.bvh_io.import_bvh`) is read as canonical
    motion; any other humanoid source is mapped like a target (``source_mapping`` or
    detected) and its rest pose is aligned to the T-pose.
    """
    t0 = time.perf_counter()
    check_target(source_obj, "source")
    check_target(target_obj)
    if source_obj == target_obj:
        raise InputError("The source and the target are the same armature: pick another source")
    mapping = resolve_mapping(target_obj, mapping)
    reference = reference_pose(target_obj, mapping, _reference_frame(target_obj, reference_frame))
    source, first, label = source_from_armature(source_obj, frame_range, source_mapping)
    if name is None:
        name = f"{label} ({target_obj.name})"
    return _apply(source, target_obj, mapping, foot_pinning, reduce, name, first, root_motion,
                  False, verify, t0, reference)


def _reference_frame(obj, frame):
    """``frame``, else the reference frame set in the Retarget settings of ``obj``, else None."""
    if frame is not None:
        return int(frame)
    settings = getattr(obj, "sparse_motion_retarget", None)
    if settings is not None and getattr(settings, "use_reference_frame", False):
        return int(settings.reference_frame)
    return None


def source_from_armature(obj, frame_range=None, mapping=None):
    """``(SourceMotion, first frame, label)`` of the animation of armature ``obj``."""
    action, *keyed = _action_range(obj, "source")
    if frame_range is None:
        frame_range = keyed
    first, last = int(frame_range[0]), int(frame_range[1])
    if last < first:
        raise InputError(f"Empty frame range {first}-{last}")
    if obj.name not in bpy.context.scene.objects:
        raise InputError(f"The source '{obj.name}' is not in the current scene")
    names = [b.name for b in obj.data.bones]
    rest = {b.name: np.array(b.matrix_local, dtype=np.float64) for b in obj.data.bones}
    canonical = _canonical_layout(obj)
    if canonical is None:
        if mapping is None:
            mapping = rmap.detect_mapping(*_tree_args(obj))
        elif isinstance(mapping, dict):
            mapping = rmap.BoneMapping(mapping)
        rmap.check_mapping(mapping, *(_tree_args(obj)[:2]))
        missing = mapping.missing_core()
        if missing:
            raise InputError(f"Cannot read the source '{obj.name}': no bone could be mapped "
                             f"for {', '.join(missing)}")
        bone_of = mapping.mapped
    else:
        bone_of = {j: j for j in cv.JOINTS}
    used = [bone_of.get(j) for j in cv.JOINTS]
    sel = [names.index(b) for b in used if b]
    P = _sample_pose(obj, range(first, last + 1))[:, sel]  # (F, n, 4, 4) armature space
    F = P.shape[0]
    present = np.array([b is not None for b in used])
    rots = np.broadcast_to(np.eye(3), (F, len(cv.JOINTS), 3, 3)).copy()
    heads = np.zeros((F, len(cv.JOINTS), 3))
    rots[:, present] = P[..., :3, :3]
    heads[:, present] = P[..., :3, 3]
    rest_rot = np.array([rest[b][:3, :3] if b else np.eye(3) for b in used])
    rest_head = np.array([rest[b][:3, 3] if b else np.zeros(3) for b in used])
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    # drop bone scale from the pose rotations
    rots = rots / np.maximum(np.linalg.norm(rots, axis=-2, keepdims=True), 1e-12)
    if canonical is not None:
        s = canonical
        G = _C.T @ rots @ np.swapaxes(rest_rot, -1, -2) @ _C  # canonical world rotations
        pos = heads @ _C / s  # Cᵀ · v per row, in cm
        par = np.array(cv.PARENTS)
        local = G.copy()
        local[:, 1:] = np.swapaxes(G[:, par[1:]], -1, -2) @ G[:, 1:]
        q = rot.matrix_to_quat(local)
        source = rsolve.SourceMotion.from_canonical(q, pos[:, 0], fps)
    else:
        source = rsolve.SourceMotion.from_rig(rest_rot, rest_head, rots, heads, present, fps)
    return source, first, action.name


def _canonical_layout(obj, check_offsets=True):
    """Armature units per cm when ``obj`` has the canonical joints in the BVH rest pose
    (zero rotations: bones laid out by the canonical offsets, Y up converted to Z up), else
    None. ``check_offsets=False``: only the joints and the scale (a rig known to be one)."""
    bones = obj.data.bones
    if not all(j in bones for j in cv.JOINTS):
        return None
    heads = {j: np.array(bones[j].head_local, dtype=np.float64) for j in cv.JOINTS}
    leg = np.linalg.norm(heads["LowerLeg_L"] - heads["UpperLeg_L"])
    s = leg / np.linalg.norm(canon.OFFSETS[cv.INDEX["LowerLeg_L"]])
    if not s > 0:
        return None
    if not check_offsets:
        return s
    for j in range(1, len(cv.JOINTS)):
        p = cv.PARENTS[j]
        got = heads[cv.JOINTS[j]] - heads[cv.JOINTS[p]]
        want = s * (_C @ canon.OFFSETS[j])
        if np.linalg.norm(got - want) > 0.02 * max(np.linalg.norm(want), s):
            return None
    return s


def _sample_pose(obj, frames, prop="matrix"):
    """``pose_bone.matrix`` (armature space; or another matrix ``prop``) of every bone at each
    of ``frames`` (integers) → ``(F, B, 4, 4)``, bones in ``obj.data.bones`` order."""
    scene = bpy.context.scene
    pbones = obj.pose.bones
    n = len(pbones)
    frames = [int(f) for f in frames]
    out = np.empty((len(frames), n * 16), dtype=np.float32)
    f0, sub0 = scene.frame_current, scene.frame_subframe
    try:
        for i, f in enumerate(frames):
            scene.frame_set(f)
            pbones.foreach_get(prop, out[i])
    finally:
        scene.frame_set(f0, subframe=sub0)
    order = {pb.name: i for i, pb in enumerate(pbones)}
    idx = [order[b.name] for b in obj.data.bones]
    return out.reshape(len(frames), n, 4, 4).transpose(0, 1, 3, 2)[:, idx].astype(np.float64)


def _apply(source, obj, mapping, foot_pinning, reduce, name, frame_start, root_motion,
           set_frame_range, verify, t0, reference=None):
    reference = reference or Reference()
    rig = target_rig(obj, reference)
    if root_motion == "ROOT" and not mapping.root:
        raise InputError(f"'{obj.name}' has no root bone in its mapping: choose root motion on "
                         "the hips, or set the root bone")
    sol = rsolve.solve(source, rig, mapping.bones, root=mapping.root, root_motion=root_motion,
                       foot_pinning=foot_pinning, hold=_held_bones(rig, mapping, reference))
    check = check_motion(source, sol, rig, mapping, obj)
    if check.problems:
        raise InputError(
            f"Retargeting onto '{obj.name}' was stopped before writing anything: "
            f"{'; '.join(check.problems)}. The reference pose ({reference.description}) is "
            "probably not the rig standing upright, or the bone mapping is wrong: pick a frame "
            "where it stands (Retarget panel › Reference Frame) or apply a standing pose as its "
            "rest pose, and check the mapping.")
    F = source.frames
    frames = float(frame_start) + np.arange(F, dtype=np.float64)
    warnings = list(sol.warnings)
    if reference.frame is not None and reference.rest_problems:
        warnings.append(f"The rest pose of '{obj.name}' does not stand "
                        f"({'; '.join(reference.rest_problems)}): retargeted from "
                        f"{reference.description}, where it stands")

    with Rollback() as rb:  # nothing is left behind if any step fails
        action, channels = actions.new_action_for(obj, name or "Retarget")
        rb.created(action)
        curves = {}
        for bone, (quat, loc) in sol.keyed.items():
            pb = obj.pose.bones[bone]
            rot_curves = _write_rotation(channels, pb, frames, quat)
            loc_curves = None
            if loc is not None:
                loc_curves = []
                for i in range(3):
                    fc = channels.new_fcurve(bone_data_path(bone, "location"), i, bone)
                    fcurve_io.write_dense(fc, frames, loc[:, i])
                    loc_curves.append(fc)
            curves[bone] = (rot_curves, loc_curves)
        ik_fk = []
        if mapping.convention == "RIGIFY":
            for pb in obj.pose.bones:
                if RIGIFY_IK_FK in pb.keys():
                    old = pb[RIGIFY_IK_FK]
                    rb.restore(lambda pb=pb, old=old: pb.__setitem__(RIGIFY_IK_FK, old))
                    pb[RIGIFY_IK_FK] = 1.0
                    path = f'pose.bones["{_escape(pb.name)}"]["{RIGIFY_IK_FK}"]'
                    fcurve_io.write_dense(channels.new_fcurve(path, 0, pb.name), frames[[0, -1]],
                                          np.ones(2))
                    ik_fk.append(pb.name)
        if ik_fk:
            warnings.append(f"Rigify limbs switched to FK ({', '.join(ik_fk)})")

        assign_keeping_previous(obj, channels, rb, warnings)
        if verify:  # the dense keys as Blender evaluates them, before any reduction
            warnings += _verify_and_refine(obj, sol, frames, curves)
        reduce_result = None
        if reduce is not None:
            from dataclasses import replace

            from .reduce import reduce_or_warn

            reduce_result = reduce_or_warn(obj, replace(reduce, output="REPLACE", bones="ALL"), warnings)
        scene = bpy.context.scene
        if set_frame_range:
            old = (scene.frame_start, scene.frame_end)
            rb.restore(lambda o=old: set_scene_range(scene, *o))
            set_scene_range(scene, int(frames[0]), int(frames[-1]))

    drift, pinned = _foot_drift(obj, sol)
    unreached = sum(len(v) for v in sol.unreached.values())
    if unreached:
        warnings.append(f"The legs could not reach the pinned foot on {unreached} frame(s)")
    return RetargetResult(
        obj=obj, action=action, frames=F, bones=list(sol.keyed), mapping=mapping, solution=sol,
        frame_start=int(frame_start), reduce_result=reduce_result, pinned_frames=pinned,
        foot_drift_cm=drift, warnings=warnings, seconds=time.perf_counter() - t0, check=check,
        reference=reference)


def _held_bones(rig, mapping, reference):
    """Bones that are not mapped but carry mapped bones and are posed in a reference frame
    (a pelvis turned over): keyed with that pose, so the new action does not depend on it."""
    if reference.frame is None:
        return ()
    mapped = {rig.index[b] for b in mapping.mapped.values() if b in rig.index}
    carries = set()
    for b in mapped:
        p = rig.parents[b]
        while p >= 0:
            carries.add(int(p))
            p = rig.parents[p]
    out = []
    for b in sorted(carries - mapped):
        st = rig.static[b]
        if np.abs(st - np.eye(4)).max() > 1e-6:
            out.append(rig.names[b])
    return tuple(out)


def check_motion(source, sol, rig, mapping, obj) -> posecheck.MotionCheck:
    """:func:`..retarget.posecheck.motion_problems` of a solution (before it is written):
    the target's mapped joints in its reference pose and on every frame, against the source,
    along the world's up."""
    J = len(cv.JOINTS)
    pos = np.full((source.frames, J, 3), np.nan)
    ref = np.full((J, 3), np.nan)
    for j, bone in mapping.mapped.items():
        i = cv.INDEX[j]
        if bone in sol.bone_index and source.present[i]:
            pos[:, i] = sol.heads[:, sol.bone_index[bone]]
            ref[i] = rig.ref_heads[rig.index[bone]]
    return posecheck.motion_problems(source.positions, source.ref_positions, source.body[:, 1],
                                     pos, ref, world_up(obj),
                                     metres=_cm_per_armature_unit(obj) / 100.0)


def _rotation_values(pb, quat):
    """(data path, (F, n) values) of a bone's rotation channels for its rotation mode."""
    mode = pb.rotation_mode
    if mode == "QUATERNION":
        return "rotation_quaternion", quat
    if mode == "AXIS_ANGLE":
        return "rotation_axis_angle", rot.quat_to_axis_angle(quat)
    return "rotation_euler", euler_filter(rot.quat_to_euler(quat, mode), mode)


def _write_rotation(channels, pb, frames, quat):
    prop, values = _rotation_values(pb, quat)
    out = []
    for i in range(values.shape[1]):
        fc = channels.new_fcurve(bone_data_path(pb.name, prop), i, pb.name)
        fcurve_io.write_dense(fc, frames, values[:, i])
        out.append(fc)
    return out


def _set_values(fcurves, frames, values):
    for fc, col in zip(fcurves, values.T):
        co = np.empty(2 * len(frames), dtype=np.float32)
        co[0::2], co[1::2] = frames, col
        fc.keyframe_points.foreach_set("co", co)
        fc.update()


def _escape(name):
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _cm_per_armature_unit(obj):
    m = np.array(obj.matrix_world, dtype=np.float64)[:3, :3]
    scale = float(np.cbrt(abs(np.linalg.det(m)))) or 1.0
    unit = bpy.context.scene.unit_settings.scale_length or 1.0
    return 100.0 * scale * unit


def _foot_drift(obj, sol):
    """Largest distance (cm) of a held ankle (or toe joint) from its pin, and the number of
    frames a foot is held."""
    if not sol.pins:
        return None, 0
    cm = _cm_per_armature_unit(obj)
    worst, pinned = 0.0, 0
    for side in sol.pins:
        for bone, frames, pins in sol.planted(side):
            pinned += len(frames)
            if len(frames):
                d = np.linalg.norm(sol.heads[frames, bone] - pins, axis=1)
                worst = max(worst, float(d.max()) * cm)
    return worst, pinned


def _pose_error(obj, sol, P, rows, bones, loc_bones):
    """Largest error (cm) of Blender's pose of ``bones`` (pose matrices ``P``, bones in
    ``obj.data.bones`` order) against the solution, on frames ``rows``: the bone vector
    (head → tail) of every bone, the head of bones with keyed locations. (Other heads follow
    the rig's own chain, which constraints may link differently from the parenting.)"""
    order = {b.name: i for i, b in enumerate(obj.data.bones)}
    cm = _cm_per_armature_unit(obj)
    worst, where = 0.0, None
    for b in bones:
        i, k = order[b], sol.bone_index[b]
        length = obj.data.bones[b].length
        d = np.linalg.norm(P[:, i, :3, 1] - sol.rots[rows, k][:, :, 1], axis=1).max() * length
        if b == sol.centre_bone:
            d = max(d, np.linalg.norm(_hip_centre(obj, sol, P) - sol.hip_goal[rows], axis=1).max())
        elif b in loc_bones:
            d = max(d, np.linalg.norm(P[:, i, :3, 3] - sol.heads[rows, k], axis=1).max())
        if d * cm > worst:
            worst, where = d * cm, b
    return worst, where


def _hip_centre(obj, sol, P):
    order = {b.name: i for i, b in enumerate(obj.data.bones)}
    return np.mean([P[:, order[b], :3, 3] for b in sol.hip_bones], axis=0)


def _verify_and_refine(obj, sol, frames, curves, samples=8, tol_cm=0.05, iterations=8):
    """Check the written keys with Blender's evaluation; where constraints or drivers on
    parent bones move the keyed bones elsewhere (generated rigs), solve the keys again
    against the parents' evaluated poses, a few passes (one per level of the chain)."""
    F = len(frames)
    picks = np.unique(np.linspace(0, F - 1, min(samples, F)).round().astype(int))
    bones = list(curves)
    P = _sample_pose(obj, frames[picks])
    loc_bones = {b for b, (_r, loc) in curves.items() if loc is not None}
    worst, where = _pose_error(obj, sol, P, picks, bones, loc_bones)
    if worst <= tol_cm:
        return []
    order = {b.name: i for i, b in enumerate(obj.data.bones)}
    data_bones = obj.data.bones
    rows = np.arange(F)
    for _ in range(iterations):
        P = _sample_pose(obj, frames)
        worst, where = _pose_error(obj, sol, P, rows, bones, loc_bones)
        if worst <= tol_cm:
            break
        for bone in bones:
            db = data_bones[bone]
            k = sol.bone_index[bone]
            rest = np.array(db.matrix_local, dtype=np.float64)
            if db.parent is not None:
                prest = np.array(db.parent.matrix_local, dtype=np.float64)
                rel = affine_inverse(prest) @ rest
                Pp = P[:, order[db.parent.name]]
            else:
                rel = rest
                Pp = np.broadcast_to(np.eye(4), (F, 4, 4))
            Pinv = affine_inverse(Pp)[:, :3, :3]  # closed form: no LAPACK per frame
            R = rel[:3, :3].T @ Pinv @ sol.rots[:, k]
            R = R / np.linalg.norm(R, axis=-2, keepdims=True)
            quat = quat_continuous(rot.matrix_to_quat(R))
            rot_curves, loc_curves = curves[bone]
            _set_values(rot_curves, frames, _rotation_values(obj.pose.bones[bone], quat)[1])
            if loc_curves is not None:
                head = sol.heads[:, k]
                if bone == sol.centre_bone:  # put the hip centre where it belongs
                    head = P[:, order[bone], :3, 3] + sol.hip_goal - _hip_centre(obj, sol, P)
                local = (Pinv @ (head - Pp[:, :3, 3])[..., None])[..., 0]
                _set_values(loc_curves, frames, (local - rel[:3, 3]) @ rel[:3, :3])
    if worst > 1.0:
        return [f"Constraints or drivers keep '{where}' {worst:.1f} cm away from the retargeted "
                "pose: check the rig's IK/FK switches and constraints"]
    return []
