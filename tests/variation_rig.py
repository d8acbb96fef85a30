# SPDX-License-Identifier: GPL-3.0-or-later
"""A rig that is not the canonical skeleton, and a walk on it, built by script (no files).

Used by the variation tests: the reference action of a variation can come from any armature,
so the bridge is tested on one with its own bone names, a rest pose that is not a T-pose (arms
down and angled), rolls on every bone (rest frames not aligned to the world), a mix of Euler
orders and quaternions, and an armature object that is itself moved and turned.
"""
from __future__ import annotations

import numpy as np

import bpy
from mathutils import Vector

import bl_fixtures as fx
from sparse_motion.blender import actions, fcurve_io
from sparse_motion.keyframes.rig import bone_data_path
from sparse_motion.motion import rotations as rot
from sparse_motion.variations.channels import rotation_values

# name, parent, head, tail, roll (rad), connected, rotation mode
BONES = [
    ("pelvis_ctrl", None, (0.0, 0.02, 1.0), (0.0, 0.0, 1.12), 0.35, False, "ZXY"),
    ("spine_a", "pelvis_ctrl", (0.0, 0.0, 1.12), (0.0, 0.03, 1.38), -0.2, True, "QUATERNION"),
    ("neck_x", "spine_a", (0.0, 0.03, 1.38), (0.0, 0.0, 1.58), 0.5, True, "QUATERNION"),
    ("head_tip", "neck_x", (0.0, 0.0, 1.58), (0.0, -0.05, 1.75), 0.1, True, "XYZ"),
    ("L_thigh", "pelvis_ctrl", (0.1, 0.02, 0.98), (0.12, 0.0, 0.54), 0.4, False, "XYZ"),
    ("L_shin", "L_thigh", (0.12, 0.0, 0.54), (0.12, 0.04, 0.1), -0.3, True, "XYZ"),
    ("L_foot", "L_shin", (0.12, 0.04, 0.1), (0.13, -0.1, 0.02), 0.8, True, "ZXY"),
    ("R_thigh", "pelvis_ctrl", (-0.1, 0.02, 0.98), (-0.12, 0.0, 0.54), -0.25, False, "ZXY"),
    ("R_shin", "R_thigh", (-0.12, 0.0, 0.54), (-0.12, 0.04, 0.1), 0.6, True, "XYZ"),
    ("R_foot", "R_shin", (-0.12, 0.04, 0.1), (-0.13, -0.1, 0.02), -0.7, True, "XYZ"),
    ("L_upperarm", "spine_a", (0.18, 0.03, 1.36), (0.3, 0.05, 1.1), 1.2, False, "XYZ"),
    ("L_forearm", "L_upperarm", (0.3, 0.05, 1.1), (0.34, -0.05, 0.88), -0.6, True, "ZXY"),
    ("R_upperarm", "spine_a", (-0.18, 0.03, 1.36), (-0.3, 0.05, 1.1), -1.0, False, "ZXY"),
    ("R_forearm", "R_upperarm", (-0.3, 0.05, 1.1), (-0.34, -0.05, 0.88), 0.9, True, "XYZ"),
]
ROOT = "pelvis_ctrl"


def make_rig(name="VarRig", location=(0.4, -0.3, 0.0), turn=0.4):
    """The 14-bone armature (linked to the scene, active), its object moved by ``location``
    and turned by ``turn`` radians about Z."""
    obj, data = fx.new_armature_in_edit_mode(name)
    made = {}
    for bone, parent, head, tail, roll, connected, _mode in BONES:
        b = data.edit_bones.new(bone)
        b.head, b.tail, b.roll = Vector(head), Vector(tail), roll
        if parent is not None:
            b.parent = made[parent]
            b.use_connect = connected
        made[bone] = b
    bpy.ops.object.mode_set(mode="OBJECT")
    for bone, *_rest, mode in BONES:
        obj.pose.bones[bone].rotation_mode = mode
    obj.location = location
    obj.rotation_euler = (0.0, 0.0, turn)
    return obj


def _noise(rng, t, scale):
    """A smooth irregular curve: three sinusoids of random slow frequencies and phases."""
    return scale * sum(rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * rng.uniform(0.05, 0.6) * t
                                                      + rng.uniform(0, 2 * np.pi))
                       for _ in range(3)) / 2.0


def _about(axis, angle):
    e = np.zeros(np.shape(angle) + (3,))
    e[..., "XYZ".index(axis)] = angle
    return rot.euler_to_matrix(e, "XYZ")


def walk(n_frames, fps, seed=0):
    """Armature-space motion of a walk: {bone: (T, 3, 3) rotation deltas} (about armature axes,
    applied as if the parent were at rest) and the root's (T, 3) armature-space head position.

    Periodic swings with a drifting stride frequency and amplitude and per-bone noise, so the
    motion is not a pure loop; walking toward -Y with a slow turn, bobbing and swaying.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    freq = 0.9 + _noise(rng, t, 0.08)
    phase = 2 * np.pi * np.cumsum(freq) / fps + rng.uniform(0, 2 * np.pi)
    amp = 1.0 + _noise(rng, t, 0.15)
    heading = 0.12 * t + 0.15 * np.sin(0.7 * t + rng.uniform(0, 6))
    s, s2 = np.sin(phase), np.sin(2 * phase)

    def n(scale=0.03):
        return _noise(rng, t, scale)

    deltas = {
        ROOT: _about("Z", heading) @ _about("Y", 0.05 * s + n()) @ _about("X", 0.04 * s2 + n()),
        "spine_a": _about("Z", -0.12 * s + n()) @ _about("X", -0.06 + n()),
        "neck_x": _about("X", 0.05 * s2 + n()) @ _about("Z", n(0.08)),
        "head_tip": _about("X", n(0.05)) @ _about("Y", n(0.05)),
    }
    for side, sign in (("L", 1.0), ("R", -1.0)):
        ph = phase if side == "L" else phase + np.pi
        swing = -0.45 * amp * np.sin(ph) + 0.1
        knee = 0.7 * np.maximum(0.0, np.sin(ph + 0.8)) ** 1.5 + 0.05
        deltas[f"{side}_thigh"] = _about("X", swing + n()) @ _about("Y", sign * n(0.05))
        deltas[f"{side}_shin"] = _about("X", knee + n())
        deltas[f"{side}_foot"] = _about("X", 0.2 * np.sin(ph - 0.5) + n()) @ _about("Z", n())
        deltas[f"{side}_upperarm"] = _about("X", 0.35 * amp * np.sin(ph) + n()) @ _about(
            "Y", sign * (0.1 + n()))
        deltas[f"{side}_forearm"] = _about("X", -0.3 - 0.15 * np.sin(ph) + n())
    forward = np.stack([np.sin(heading), -np.cos(heading)], axis=1)  # -Y turned by heading
    step = 1.2 / fps * (1.0 + _noise(rng, t, 0.1))
    head = np.zeros((n_frames, 3))
    head[:, :2] = np.cumsum(forward * step[:, None], axis=0)
    head[:, :2] += 0.02 * s[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    head[:, 2] = 0.03 * np.cos(2 * phase)
    head += np.array(BONES[0][2])
    return deltas, head


def animate(obj, seconds=4, fps=30, seed=0, name="RefWalk", scale_curves=True):
    """Key a dense walk (one key per frame from frame 1) as a new action on ``obj`` and assign
    it; the scene's frame rate and range follow. Each bone gets the rotation curves of its
    current rotation mode; the root also location curves; with ``scale_curves``, ``neck_x``
    gets scale curves (Y moving, X and Z constant). Returns the action."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(fps), 1.0
    n_frames = round(seconds * fps)
    scene.frame_start, scene.frame_end = 1, n_frames
    frames = np.arange(1, n_frames + 1, dtype=np.float64)
    deltas, head = walk(n_frames, fps, seed)
    action, channels = actions.new_action_for(obj, name)

    def key(bone, prop, values):
        for i in range(values.shape[1]):
            fc = channels.new_fcurve(bone_data_path(bone, prop), i, bone)
            fcurve_io.write_dense(fc, frames, values[:, i])

    for bone in obj.data.bones:
        pb = obj.pose.bones[bone.name]
        rest = np.array(bone.matrix_local)[:3, :3]
        delta = deltas.get(bone.name, np.broadcast_to(np.eye(3), (n_frames, 3, 3)))
        pose = rest.T @ delta @ rest  # rotation about armature axes, in the bone's frame
        mode = pb.rotation_mode
        if mode == "QUATERNION":
            key(bone.name, "rotation_quaternion", rotation_values("quat", pose))
        elif mode == "AXIS_ANGLE":
            key(bone.name, "rotation_axis_angle", rotation_values("axis_angle", pose))
        else:
            key(bone.name, "rotation_euler", rotation_values("euler", pose, mode))
        if bone.name == ROOT:
            key(bone.name, "location", (head - np.array(bone.head_local)) @ rest)
    if scale_curves:
        t = np.arange(n_frames) / fps
        scale = np.ones((n_frames, 3))
        scale[:, 1] += 0.03 * np.sin(2 * np.pi * 1.7 * t)
        key("neck_x", "scale", scale)
    actions.assign(obj, channels)
    return action
