# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting core (no bpy): bone mapping detection, presets, IK, the solve.

The rig descriptions (:data:`RIGS`) and the procedural walk are shared with
``test_bl_retarget.py``, which builds the same rigs in Blender.
"""
import json

import numpy as np
import pytest

from sparse_motion.errors import InputError
from sparse_motion.keyframes.rig import ChannelMap, Node, Rig, bone_data_path
from sparse_motion.motion import canonical as canon
from sparse_motion.motion import rotations as rot
from sparse_motion.retarget import conventions as cv
from sparse_motion.retarget import mapping as rmap
from sparse_motion.retarget import solve as rsolve

# =========================================================================== a walk


def _rx(a):
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def procedural_walk(seconds=2.0, fps=20, slide=1.12, turn=0.0):
    """Canonical motion of a walk: ``(local_quats (F, 21, 4), root_translation (F, 3))``.

    Built as world-space swings of the T-pose bones (hips, knees, ankles, arms, a little
    spine twist); the root advances so that the stance ankle moves back by ``1/slide`` of the
    hips' advance (``slide`` > 1: the feet skate, which foot pinning has to fix), and sits at
    the height that keeps the lower ankle at its standing height.
    """
    F = int(round(seconds * fps)) + 1
    t = np.arange(F) / fps
    p = 2 * np.pi * 0.9 * t
    d = np.radians
    one = np.ones(F)
    _q, S, _pos = cv.tpose()
    A = np.broadcast_to(np.eye(3), (F, 21, 3, 3)).copy()
    I = cv.INDEX
    A[:, I["Hips"]] = _ry(d(6) * np.sin(p) + turn * t) @ _rx(d(4) + d(2) * np.sin(2 * p))
    A[:, I["Spine"]] = _ry(-d(3) * np.sin(p)) @ _rx(d(3) * one)
    A[:, I["Chest"]] = _ry(-d(4) * np.sin(p)) @ _rz(d(2) * np.sin(p))
    A[:, I["Neck"]] = _rx(-d(5) * one)
    A[:, I["Head"]] = _ry(d(3) * np.sin(p))
    for side, sg, ph in (("L", 1.0, 0.0), ("R", -1.0, np.pi)):
        q = p + ph
        A[:, I["Shoulder_" + side]] = _rz(-sg * d(5) * one)
        A[:, I["UpperArm_" + side]] = _rx(d(18) * np.sin(q)) @ _rz(-sg * d(78) * one)
        A[:, I["LowerArm_" + side]] = _ry(-sg * (d(20) + d(12) * np.cos(q)))
        A[:, I["Hand_" + side]] = _rz(-sg * d(10) * one)
        A[:, I["UpperLeg_" + side]] = _rx(-d(24) * np.sin(q)) @ _rz(sg * d(2) * one)
        qq = np.angle(np.exp(1j * q))  # swing where |qq| < pi/2
        bump = np.where(np.abs(qq) < np.pi / 2, np.cos(qq), 0.0) ** 2
        A[:, I["LowerLeg_" + side]] = _rx(d(6) + d(55) * bump)
        A[:, I["Foot_" + side]] = _rx(-d(8) * np.sin(q))
        A[:, I["Toes_" + side]] = _rx(d(10) * np.maximum(0, -np.cos(q + 0.5)))
    W = np.empty_like(A)
    D = np.empty_like(A)
    L = np.empty_like(A)
    for j in range(21):
        par = cv.PARENTS[j]
        D[:, j] = A[:, j] if par < 0 else D[:, par] @ A[:, j]
        W[:, j] = D[:, j] @ S[j]
        L[:, j] = W[:, j] if par < 0 else np.swapaxes(W[:, par], -1, -2) @ W[:, j]
    q = rot.matrix_to_quat(L)
    x = np.zeros((F, 3))
    x[:, 1] = cv.TPOSE_HIPS_HEIGHT
    pos = canon.canonical_forward_kinematics(q, x)
    fl, fr = pos[:, I["Foot_L"]], pos[:, I["Foot_R"]]
    x[:, 1] += 11.64 - np.minimum(fl[:, 1], fr[:, 1])
    stance_l = np.cos(p) < 0
    step = np.where(stance_l[1:, None], np.diff(fl, axis=0), np.diff(fr, axis=0))
    vel = np.zeros((F, 3))
    vel[1:, [0, 2]] = -step[:, [0, 2]] * slide
    x[:, [0, 2]] = np.cumsum(vel[:, [0, 2]], axis=0)
    if turn:
        # turn the path with the heading
        ang = turn * t
        c, s = np.cos(ang), np.sin(ang)
        v = np.diff(x, axis=0, prepend=x[:1])
        vx = c * v[:, 0] + s * v[:, 2]
        vz = -s * v[:, 0] + c * v[:, 2]
        x[:, 0], x[:, 2] = np.cumsum(vx), np.cumsum(vz)
    return q, x


# =========================================================================== rig descriptions
#
# A rig is a list of bones (name, parent, head, tail, roll in degrees, connected) with heads
# and tails given as points of the canonical T-pose (a joint name, ("mix", a, b, t) or
# ("off", a, (dx, dy, dz)) in cm, canonical axes), plus how it is laid out: axes ("Z_UP":
# Blender's, facing -Y; "Z_UP_BACK": facing +Y, left towards -X; "Y_UP": canonical axes, as
# an FBX armature before its object rotation), a scale (cm → armature units), an A-pose angle
# (arms lowered about the forward axis) and the object transform.


def _pts():
    _q, _R, P = cv.tpose()
    pts = {n: P[j] for j, n in enumerate(cv.JOINTS)}
    pts["Ground"] = np.array([0.0, 0.0, 0.0])
    pts["HeadTop"] = pts["Head"] + [0, 18.0, 0]
    for s, sg in (("L", 1), ("R", -1)):
        pts["HandTip_" + s] = pts["Hand_" + s] + [sg * 17.0, 0, 0]
        pts["ToeTip_" + s] = pts["Toes_" + s] + [0, -2.0, 6.0]
        pts["Heel_" + s] = pts["Foot_" + s] + [0, -10.0, -7.0]
    return pts


PTS = _pts()
_ARM = ("UpperArm", "LowerArm", "Hand", "HandTip")


def point(key, apose=0.0):
    """Position (canonical axes, cm) of a point key, with the arms lowered by ``apose``°."""
    if isinstance(key, str):
        p, names = PTS[key].copy(), [key]
    elif key[0] == "mix":
        p = (1 - key[3]) * point(key[1]) + key[3] * point(key[2])
        names = [key[1], key[2]]
    else:
        p, names = point(key[1]) + np.asarray(key[2], float), [key[1]]
    for n in names:
        base, side = cv.split_joint(n)
        if base in _ARM and side and apose:
            pivot = PTS["UpperArm_" + side]
            ang = np.radians(-apose if side == "L" else apose)
            return pivot + _rz(np.array(ang)) @ (p - pivot)
    return p


AXES = {
    "Z_UP": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]),  # facing -Y
    "Z_UP_BACK": np.array([[-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]),  # facing +Y
    "Y_UP": np.eye(3),
}


class RigSpec:
    def __init__(self, key, bones, expect, axes="Z_UP", scale=0.01, apose=0.0,
                 obj_rotation=(0.0, 0.0, 0.0), obj_scale=1.0, convention=None, root=None):
        self.key = key
        self.bones = bones
        self.expect = expect  # canonical joint → bone
        self.axes = axes
        self.scale = scale
        self.apose = apose
        self.obj_rotation = obj_rotation
        self.obj_scale = obj_scale
        self.convention = convention
        self.root = root
        self.constraints = {}  # bone → bone it copies the transforms of

    def names(self):
        return [b[0] for b in self.bones]

    def parents(self):
        return [b[1] for b in self.bones]

    def to_armature(self, key):
        return AXES[self.axes] @ point(key, self.apose) * self.scale

    def heads(self):
        return np.array([self.to_armature(b[2]) for b in self.bones])

    def tails(self):
        return np.array([self.to_armature(b[3]) for b in self.bones])

    def placed(self):
        """Canonical joint → bone whose head is exactly at that joint (and whose canonical
        ancestors are all mapped: a missing shoulder moves the arm a little)."""
        out = {}
        for j, b in self.expect.items():
            if b is None:
                continue
            p = cv.PARENTS[cv.INDEX[j]]
            if any(not self.expect.get(cv.JOINTS[a]) for a in _canon_ancestors(p)):
                continue
            spec = next(x for x in self.bones if x[0] == b)
            if spec[2] == j:
                out[j] = b
        return out

    def rest_matrices(self):
        """Rest matrices like Blender's (Y along the bone, rolled), without bpy."""
        out = []
        for (name, _p, _h, _t, roll, _c), head, tail in zip(self.bones, self.heads(), self.tails()):
            R = rsolve.min_rotation([0, 1.0, 0], tail - head) @ _ry(np.radians(roll))
            M = np.eye(4)
            M[:3, :3], M[:3, 3] = R, head
            out.append(M)
        return np.array(out)


def _canon_ancestors(p):
    out = []
    while p >= 0:
        out.append(p)
        p = cv.PARENTS[p]
    return out


def _b(name, parent, head, tail, roll=0.0, connect=False):
    return (name, parent, head, tail, roll, connect)


def _sides():
    return (("L", 1), ("R", -1))


def rigify_rig(constraints=False):
    """Rigify's generated rig: FK controls, MCH / ORG / DEF bones. With ``constraints`` the
    ORG pelvis, chest and shoulders (which carry the legs, neck and arms) follow their
    controls by Copy Transforms constraints, as in the real rig (else they are parented to
    them, which moves them the same way)."""
    B = [
        _b("root", None, "Ground", ("off", "Ground", (0, 0, -40))),
        _b("torso", "root", "Spine", ("off", "Spine", (0, 0, -25))),
        _b("hips", "torso", "Spine", "Hips"),
        _b("chest", "torso", "Spine", "Chest"),
        _b("MCH-spine.001", "torso", "Spine", ("mix", "Spine", "Hips", 0.3)),
        _b("spine_fk.001", "MCH-spine.001", "Spine", ("off", "Spine", (0, 8, 0))),
        _b("MCH-spine", "spine_fk.001", ("mix", "Hips", "Spine", 0.5), "Hips"),
        _b("spine_fk", "MCH-spine", ("mix", "Hips", "Spine", 0.5), ("off", "Spine", (0, 3, 0))),
        _b("tweak_spine", "spine_fk", "Hips", "Spine"),
        _b("ORG-spine", "root" if constraints else "tweak_spine", "Hips", "Spine"),
        _b("DEF-spine", "ORG-spine", "Hips", "Spine"),
        _b("MCH-spine.002", "torso", "Spine", ("mix", "Spine", "Chest", 0.3)),
        _b("spine_fk.002", "MCH-spine.002", "Spine", "Chest"),
        _b("tweak_spine.002", "spine_fk.002", "Spine", ("off", "Spine", (0, 3, 0))),
        _b("MCH-spine.003", "spine_fk.002", "Chest", ("off", "Chest", (0, 3, 0))),
        _b("spine_fk.003", "MCH-spine.003", "Chest", "Neck"),
        _b("ORG-spine.003", "torso" if constraints else "spine_fk.003", "Chest", "Neck"),
        _b("DEF-spine.003", "ORG-spine.003", "Chest", "Neck"),
        _b("neck", "ORG-spine.003", "Neck", "Head", 0.0),
        _b("head", "neck", "Head", "HeadTop"),
        _b("ORG-spine.006", "head", "Head", "HeadTop"),
    ]
    for s, sg in _sides():
        S = "." + s
        B += [
            _b("shoulder" + S, "ORG-spine.003", "Shoulder_" + s, "UpperArm_" + s, sg * 10),
            _b("ORG-shoulder" + S, "ORG-spine.003" if constraints else "shoulder" + S,
               "Shoulder_" + s, "UpperArm_" + s, sg * 10),
            _b("MCH-upper_arm_parent" + S, "ORG-shoulder" + S, "UpperArm_" + s,
               ("off", "UpperArm_" + s, (sg * 4, 0, 0))),
            _b("upper_arm_parent" + S, "ORG-shoulder" + S, "UpperArm_" + s,
               ("off", "UpperArm_" + s, (0, 0, -6))),
            _b("upper_arm_fk" + S, "MCH-upper_arm_parent" + S, "UpperArm_" + s, "LowerArm_" + s, sg * 3),
            _b("forearm_fk" + S, "upper_arm_fk" + S, "LowerArm_" + s, "Hand_" + s, sg * 30, True),
            _b("hand_fk" + S, "forearm_fk" + S, "Hand_" + s, "HandTip_" + s, 0, True),
            _b("upper_arm_ik" + S, "MCH-upper_arm_parent" + S, "UpperArm_" + s, "LowerArm_" + s),
            _b("hand_ik" + S, "root", "Hand_" + s, "HandTip_" + s),
            _b("upper_arm_ik_target" + S, "root", ("off", "LowerArm_" + s, (0, 0, -30)),
               ("off", "LowerArm_" + s, (0, 0, -35))),
            _b("ORG-upper_arm" + S, "ORG-shoulder" + S, "UpperArm_" + s, "LowerArm_" + s),
            _b("ORG-forearm" + S, "ORG-upper_arm" + S, "LowerArm_" + s, "Hand_" + s, 0, True),
            _b("ORG-hand" + S, "ORG-forearm" + S, "Hand_" + s, "HandTip_" + s, 0, True),
            _b("DEF-upper_arm" + S, "ORG-shoulder" + S, "UpperArm_" + s,
               ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.5)),
            _b("DEF-upper_arm" + S + ".001", "DEF-upper_arm" + S,
               ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.5), "LowerArm_" + s, 0, True),
            _b("upper_arm_tweak" + S + ".001", "ORG-upper_arm" + S,
               ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.5),
               ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.6)),
            _b("f_index.01" + S, "ORG-hand" + S, "HandTip_" + s,
               ("off", "HandTip_" + s, (sg * 4, 0, 0))),
            _b("thumb.01" + S, "ORG-hand" + S, ("off", "Hand_" + s, (sg * 3, 0, 3)),
               ("off", "Hand_" + s, (sg * 6, 0, 6))),
            _b("MCH-thigh_parent" + S, "ORG-spine", "UpperLeg_" + s,
               ("off", "UpperLeg_" + s, (0, -4, 0))),
            _b("thigh_parent" + S, "ORG-spine", "UpperLeg_" + s, ("off", "UpperLeg_" + s, (0, 0, 6))),
            _b("thigh_fk" + S, "MCH-thigh_parent" + S, "UpperLeg_" + s, "LowerLeg_" + s, sg * 2),
            _b("shin_fk" + S, "thigh_fk" + S, "LowerLeg_" + s, "Foot_" + s, 0, True),
            _b("foot_fk" + S, "shin_fk" + S, "Foot_" + s, "Toes_" + s, 0, True),
            _b("toe_fk" + S, "foot_fk" + S, "Toes_" + s, "ToeTip_" + s, 0, True),
            _b("thigh_ik" + S, "MCH-thigh_parent" + S, "UpperLeg_" + s, "LowerLeg_" + s),
            _b("foot_ik" + S, "root", "Heel_" + s, ("off", "Heel_" + s, (0, 0, 20))),
            _b("ORG-thigh" + S, "ORG-spine", "UpperLeg_" + s, "LowerLeg_" + s),
            _b("ORG-shin" + S, "ORG-thigh" + S, "LowerLeg_" + s, "Foot_" + s, 0, True),
            _b("ORG-foot" + S, "ORG-shin" + S, "Foot_" + s, "Toes_" + s, 0, True),
            _b("DEF-thigh" + S, "ORG-thigh" + S, "UpperLeg_" + s, "LowerLeg_" + s),
            _b("ORG-heel.02" + S, "ORG-foot" + S, "Heel_" + s, ("off", "Heel_" + s, (sg * 4, 0, 0))),
        ]
    expect = {
        "Hips": "torso", "Spine": "spine_fk.002", "Chest": "spine_fk.003", "Neck": "neck",
        "Head": "head",
    }
    for s, _sg in _sides():
        S = "." + s
        expect.update({
            "Shoulder_" + s: "shoulder" + S, "UpperArm_" + s: "upper_arm_fk" + S,
            "LowerArm_" + s: "forearm_fk" + S, "Hand_" + s: "hand_fk" + S,
            "UpperLeg_" + s: "thigh_fk" + S, "LowerLeg_" + s: "shin_fk" + S,
            "Foot_" + s: "foot_fk" + S, "Toes_" + s: "toe_fk" + S,
        })
    spec = RigSpec("rigify", B, expect, scale=0.0115, convention="RIGIFY", root="root")
    if constraints:
        # (Copy Transforms between bones with the same rest, like Rigify's ORG / tweak pairs)
        spec.constraints = {"ORG-spine": "tweak_spine", "ORG-spine.003": "spine_fk.003",
                            "ORG-shoulder.L": "shoulder.L", "ORG-shoulder.R": "shoulder.R"}
    return spec


def metarig_rig():
    B = [
        _b("spine", None, "Hips", "Spine"),
        _b("spine.001", "spine", "Spine", ("mix", "Spine", "Chest", 0.5), 0, True),
        _b("spine.002", "spine.001", ("mix", "Spine", "Chest", 0.5), "Chest", 0, True),
        _b("spine.003", "spine.002", "Chest", "Neck", 0, True),
        _b("spine.004", "spine.003", "Neck", ("mix", "Neck", "Head", 0.5), 0, True),
        _b("spine.005", "spine.004", ("mix", "Neck", "Head", 0.5), "Head", 0, True),
        _b("spine.006", "spine.005", "Head", "HeadTop", 0, True),
        _b("face", "spine.006", ("off", "Head", (0, 2, 4)), ("off", "Head", (0, 8, 4))),
        _b("nose", "face", ("off", "Head", (0, 8, 9)), ("off", "Head", (0, 6, 11))),
        _b("jaw", "face", ("off", "Head", (0, 2, 3)), ("off", "Head", (0, -2, 8))),
        _b("forehead.L", "face", ("off", "Head", (2, 13, 8)), ("off", "Head", (3, 12, 9))),
        _b("eye.L", "face", ("off", "Head", (3, 9, 7)), ("off", "Head", (3, 9, 9))),
        _b("eye.R", "face", ("off", "Head", (-3, 9, 7)), ("off", "Head", (-3, 9, 9))),
    ]
    for s, sg in _sides():
        S = "." + s
        B += [
            _b("pelvis" + S, "spine", "Hips", ("off", "Hips", (sg * 12, 4, 6))),
            _b("thigh" + S, "spine", "UpperLeg_" + s, "LowerLeg_" + s),
            _b("shin" + S, "thigh" + S, "LowerLeg_" + s, "Foot_" + s, 0, True),
            _b("foot" + S, "shin" + S, "Foot_" + s, "Toes_" + s, 0, True),
            _b("toe" + S, "foot" + S, "Toes_" + s, "ToeTip_" + s, 0, True),
            _b("heel.02" + S, "shin" + S, "Heel_" + s, ("off", "Heel_" + s, (sg * 5, 0, 0))),
            _b("shoulder" + S, "spine.003", "Shoulder_" + s, "UpperArm_" + s),
            _b("upper_arm" + S, "shoulder" + S, "UpperArm_" + s, "LowerArm_" + s, sg * 2),
            _b("forearm" + S, "upper_arm" + S, "LowerArm_" + s, "Hand_" + s, sg * 20, True),
            _b("hand" + S, "forearm" + S, "Hand_" + s, "HandTip_" + s, 0, True),
            _b("palm.01" + S, "hand" + S, ("off", "Hand_" + s, (sg * 1, 0, 2)),
               ("off", "Hand_" + s, (sg * 8, 0, 2))),
            _b("f_index.01" + S, "palm.01" + S, ("off", "Hand_" + s, (sg * 8, 0, 2)),
               ("off", "Hand_" + s, (sg * 12, 0, 2))),
            _b("thumb.01" + S, "palm.01" + S, ("off", "Hand_" + s, (sg * 2, 0, 4)),
               ("off", "Hand_" + s, (sg * 5, -1, 7))),
            _b("breast" + S, "spine.003", ("off", "Chest", (sg * 9, 2, 8)),
               ("off", "Chest", (sg * 9, 2, 14))),
        ]
    expect = {"Hips": "spine", "Spine": "spine.001", "Chest": "spine.003", "Neck": "spine.004",
              "Head": "spine.006"}
    for s, _sg in _sides():
        S = "." + s
        expect.update({
            "Shoulder_" + s: "shoulder" + S, "UpperArm_" + s: "upper_arm" + S,
            "LowerArm_" + s: "forearm" + S, "Hand_" + s: "hand" + S, "UpperLeg_" + s: "thigh" + S,
            "LowerLeg_" + s: "shin" + S, "Foot_" + s: "foot" + S, "Toes_" + s: "toe" + S,
        })
    return RigSpec("metarig", B, expect, scale=0.0112, convention="METARIG")


def mixamo_rig():
    P = "mixamorig:"
    B = [
        _b(P + "Hips", None, "Hips", "Spine", 0),
        _b(P + "Spine", P + "Hips", "Spine", ("mix", "Spine", "Chest", 0.5), 0, True),
        _b(P + "Spine1", P + "Spine", ("mix", "Spine", "Chest", 0.5), "Chest", 0, True),
        _b(P + "Spine2", P + "Spine1", "Chest", "Neck", 0, True),
        _b(P + "Neck", P + "Spine2", "Neck", "Head", 0, True),
        _b(P + "Head", P + "Neck", "Head", "HeadTop", 0, True),
        _b(P + "HeadTop_End", P + "Head", "HeadTop", ("off", "HeadTop", (0, 4, 0)), 0, True),
    ]
    for s, sg in (("Left", 1), ("Right", -1)):
        c = s[0]
        B += [
            _b(P + s + "Shoulder", P + "Spine2", "Shoulder_" + c, "UpperArm_" + c, sg * 90),
            _b(P + s + "Arm", P + s + "Shoulder", "UpperArm_" + c, "LowerArm_" + c, sg * 90, True),
            _b(P + s + "ForeArm", P + s + "Arm", "LowerArm_" + c, "Hand_" + c, sg * 90, True),
            _b(P + s + "Hand", P + s + "ForeArm", "Hand_" + c, "HandTip_" + c, sg * 90, True),
            _b(P + s + "HandIndex1", P + s + "Hand", "HandTip_" + c,
               ("off", "HandTip_" + c, (sg * 3, 0, 0)), 0, True),
            _b(P + s + "HandIndex2", P + s + "HandIndex1", ("off", "HandTip_" + c, (sg * 3, 0, 0)),
               ("off", "HandTip_" + c, (sg * 5, 0, 0)), 0, True),
            _b(P + s + "HandThumb1", P + s + "Hand", ("off", "Hand_" + c, (sg * 2, 0, 3)),
               ("off", "Hand_" + c, (sg * 5, 0, 6))),
            _b(P + s + "UpLeg", P + "Hips", "UpperLeg_" + c, "LowerLeg_" + c, 180),
            _b(P + s + "Leg", P + s + "UpLeg", "LowerLeg_" + c, "Foot_" + c, 180, True),
            _b(P + s + "Foot", P + s + "Leg", "Foot_" + c, "Toes_" + c, 180, True),
            _b(P + s + "ToeBase", P + s + "Foot", "Toes_" + c, "ToeTip_" + c, 180, True),
            _b(P + s + "Toe_End", P + s + "ToeBase", "ToeTip_" + c,
               ("off", "ToeTip_" + c, (0, 0, 3)), 0, True),
        ]
    expect = {"Hips": P + "Hips", "Spine": P + "Spine", "Chest": P + "Spine2", "Neck": P + "Neck",
              "Head": P + "Head"}
    for s, _sg in (("Left", 1), ("Right", -1)):
        c = s[0]
        expect.update({
            "Shoulder_" + c: P + s + "Shoulder", "UpperArm_" + c: P + s + "Arm",
            "LowerArm_" + c: P + s + "ForeArm", "Hand_" + c: P + s + "Hand",
            "UpperLeg_" + c: P + s + "UpLeg", "LowerLeg_" + c: P + s + "Leg",
            "Foot_" + c: P + s + "Foot", "Toes_" + c: P + s + "ToeBase",
        })
    # FBX import: bones in centimetres, Y up in armature space, object rotated 90° about X
    # and scaled 0.01
    return RigSpec("mixamo", B, expect, axes="Y_UP", scale=1.1, obj_rotation=(np.pi / 2, 0, 0),
                   obj_scale=0.01, convention="MIXAMO")


def _ue_rig(version):
    # UE bones point along their own X axis: imported as Blender bones, their tails point
    # sideways (here: forward / up / down), not at the child; rolls mirror left and right.
    fwd = (0, 0, 6)
    spines = ["spine_01", "spine_02", "spine_03"] + (["spine_04", "spine_05"] if version == 5 else [])
    n = len(spines)
    B = [
        _b("root", None, "Ground", ("off", "Ground", fwd), 0),
        _b("pelvis", "root", "Hips", ("off", "Hips", fwd), 90),
    ]
    parent = "pelvis"
    for i, name in enumerate(spines):
        head = "Spine" if i == 0 else ("Chest" if i == n - 1 else ("mix", "Spine", "Chest", i / (n - 1)))
        B.append(_b(name, parent, head, ("off", head if isinstance(head, str) else "Spine", fwd), 90))
        parent = name
    chest = spines[-1]
    necks = ["neck_01"] + (["neck_02"] if version == 5 else [])
    B.append(_b("neck_01", chest, "Neck", ("off", "Neck", fwd), 90))
    if version == 5:
        B.append(_b("neck_02", "neck_01", ("mix", "Neck", "Head", 0.5), ("off", "Head", (0, -2, 6)), 90))
    B.append(_b("head", necks[-1], "Head", ("off", "Head", fwd), 90))
    for s, sg in _sides():
        x = "_" + s.lower()
        B += [
            _b("clavicle" + x, chest, "Shoulder_" + s, ("off", "Shoulder_" + s, fwd), sg * 90),
            _b("upperarm" + x, "clavicle" + x, "UpperArm_" + s, ("off", "UpperArm_" + s, (0, 6, 0)), sg * 90),
            _b("lowerarm" + x, "upperarm" + x, "LowerArm_" + s, ("off", "LowerArm_" + s, (0, 6, 0)), sg * 90),
            _b("hand" + x, "lowerarm" + x, "Hand_" + s, ("off", "Hand_" + s, (0, 6, 0)), sg * 90),
            _b("upperarm_twist_01" + x, "upperarm" + x, ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.5),
               ("off", "LowerArm_" + s, (0, 6, 0))),
            _b("lowerarm_twist_01" + x, "lowerarm" + x, ("mix", "LowerArm_" + s, "Hand_" + s, 0.5),
               ("off", "Hand_" + s, (0, 6, 0))),
            _b("index_01" + x, "hand" + x, "HandTip_" + s, ("off", "HandTip_" + s, (sg * 3, 0, 0))),
            _b("thumb_01" + x, "hand" + x, ("off", "Hand_" + s, (sg * 2, 0, 3)),
               ("off", "Hand_" + s, (sg * 4, 0, 5))),
            _b("thigh" + x, "pelvis", "UpperLeg_" + s, ("off", "UpperLeg_" + s, fwd), sg * 90),
            _b("calf" + x, "thigh" + x, "LowerLeg_" + s, ("off", "LowerLeg_" + s, fwd), sg * 90),
            _b("foot" + x, "calf" + x, "Foot_" + s, ("off", "Foot_" + s, (0, -6, 0)), sg * 90),
            _b("ball" + x, "foot" + x, "Toes_" + s, ("off", "Toes_" + s, (0, 6, 0)), sg * 90),
            _b("thigh_twist_01" + x, "thigh" + x, ("mix", "UpperLeg_" + s, "LowerLeg_" + s, 0.5),
               ("off", "LowerLeg_" + s, fwd)),
            _b("calf_twist_01" + x, "calf" + x, ("mix", "LowerLeg_" + s, "Foot_" + s, 0.5),
               ("off", "Foot_" + s, fwd)),
            _b("ik_foot" + x, "ik_foot_root", "Foot_" + s, ("off", "Foot_" + s, fwd)),
        ]
    B.insert(2, _b("ik_foot_root", "root", "Ground", ("off", "Ground", (0, 5, 0))))
    B.insert(3, _b("ik_hand_root", "root", "Ground", ("off", "Ground", (0, 5, 0))))
    B.insert(4, _b("ik_hand_gun", "ik_hand_root", "Hand_R", ("off", "Hand_R", fwd)))
    if version == 5:
        B.append(_b("center_of_mass", "root", "Hips", ("off", "Hips", fwd)))
        B.append(_b("interaction", "root", "Ground", ("off", "Ground", fwd)))
    expect = {"Hips": "pelvis", "Spine": "spine_01", "Chest": chest, "Neck": "neck_01",
              "Head": "head"}
    for s, _sg in _sides():
        x = "_" + s.lower()
        expect.update({
            "Shoulder_" + s: "clavicle" + x, "UpperArm_" + s: "upperarm" + x,
            "LowerArm_" + s: "lowerarm" + x, "Hand_" + s: "hand" + x, "UpperLeg_" + s: "thigh" + x,
            "LowerLeg_" + s: "calf" + x, "Foot_" + s: "foot" + x, "Toes_" + s: "ball" + x,
        })
    return RigSpec(f"ue{version}", B, expect, scale=1.12, apose=45.0 if version == 4 else 40.0,
                   obj_scale=0.01, convention=f"UE{version}", root="root")


def ue4_rig():
    return _ue_rig(4)


def ue5_rig():
    return _ue_rig(5)


def cc_rig():
    P = "CC_Base_"
    B = [
        _b(P + "BoneRoot", None, "Ground", ("off", "Ground", (0, 10, 0))),
        _b(P + "Hip", P + "BoneRoot", "Hips", ("off", "Hips", (0, 8, 0))),
        _b(P + "Pelvis", P + "Hip", "Hips", ("off", "Hips", (0, -8, 0))),
        _b(P + "Waist", P + "Hip", "Spine", ("mix", "Spine", "Chest", 0.5)),
        _b(P + "Spine01", P + "Waist", ("mix", "Spine", "Chest", 0.5), "Chest", 0, True),
        _b(P + "Spine02", P + "Spine01", "Chest", "Neck", 0, True),
        _b(P + "NeckTwist01", P + "Spine02", "Neck", ("mix", "Neck", "Head", 0.5)),
        _b(P + "NeckTwist02", P + "NeckTwist01", ("mix", "Neck", "Head", 0.5), "Head", 0, True),
        _b(P + "Head", P + "NeckTwist02", "Head", "HeadTop", 0, True),
        _b(P + "FacialBone", P + "Head", ("off", "Head", (0, 4, 3)), ("off", "Head", (0, 8, 3))),
        _b(P + "JawRoot", P + "FacialBone", ("off", "Head", (0, 2, 3)), ("off", "Head", (0, -2, 8))),
        _b(P + "L_Eye", P + "FacialBone", ("off", "Head", (3, 9, 7)), ("off", "Head", (3, 9, 9))),
        _b(P + "R_Eye", P + "FacialBone", ("off", "Head", (-3, 9, 7)), ("off", "Head", (-3, 9, 9))),
    ]
    for s, sg in _sides():
        q = P + s + "_"
        B += [
            _b(q + "Thigh", P + "Pelvis", "UpperLeg_" + s, "LowerLeg_" + s, sg * 5),
            _b(q + "Calf", q + "Thigh", "LowerLeg_" + s, "Foot_" + s, 0, True),
            _b(q + "Foot", q + "Calf", "Foot_" + s, "Toes_" + s, 0, True),
            _b(q + "ToeBase", q + "Foot", "Toes_" + s, "ToeTip_" + s, 0, True),
            _b(q + "ThighTwist01", q + "Thigh", "UpperLeg_" + s, ("mix", "UpperLeg_" + s, "LowerLeg_" + s, 0.5)),
            _b(q + "CalfTwist01", q + "Calf", ("mix", "LowerLeg_" + s, "Foot_" + s, 0.5), "Foot_" + s),
            _b(q + "Clavicle", P + "Spine02", "Shoulder_" + s, "UpperArm_" + s, sg * 45),
            _b(q + "Upperarm", q + "Clavicle", "UpperArm_" + s, "LowerArm_" + s, sg * 45, True),
            _b(q + "UpperarmTwist01", q + "Upperarm", "UpperArm_" + s,
               ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.5)),
            _b(q + "Forearm", q + "Upperarm", "LowerArm_" + s, "Hand_" + s, sg * 45, True),
            _b(q + "ForearmTwist01", q + "Forearm", ("mix", "LowerArm_" + s, "Hand_" + s, 0.5), "Hand_" + s),
            _b(q + "Hand", q + "Forearm", "Hand_" + s, "HandTip_" + s, 0, True),
            _b(q + "Index1", q + "Hand", "HandTip_" + s, ("off", "HandTip_" + s, (sg * 3, 0, 0))),
            _b(q + "Thumb1", q + "Hand", ("off", "Hand_" + s, (sg * 2, 0, 3)),
               ("off", "Hand_" + s, (sg * 4, 0, 5))),
            _b(q + "Breast", P + "Spine02", ("off", "Chest", (sg * 9, 2, 8)), ("off", "Chest", (sg * 9, 2, 14))),
        ]
    expect = {"Hips": P + "Hip", "Spine": P + "Waist", "Chest": P + "Spine02",
              "Neck": P + "NeckTwist01", "Head": P + "Head"}
    for s, _sg in _sides():
        q = P + s + "_"
        expect.update({
            "Shoulder_" + s: q + "Clavicle", "UpperArm_" + s: q + "Upperarm",
            "LowerArm_" + s: q + "Forearm", "Hand_" + s: q + "Hand", "UpperLeg_" + s: q + "Thigh",
            "LowerLeg_" + s: q + "Calf", "Foot_" + s: q + "Foot", "Toes_" + s: q + "ToeBase",
        })
    return RigSpec("cc", B, expect, scale=0.0108, apose=35.0, convention="CC", root=P + "BoneRoot")


def generic_dot_rig():
    """Generic names with .L/.R, T-pose, Blender axes, no toes (a joint to skip)."""
    B = [
        _b("Hips", None, "Hips", "Spine"),
        _b("Spine", "Hips", "Spine", "Chest", 0, True),
        _b("Chest", "Spine", "Chest", "Neck", 0, True),
        _b("Neck", "Chest", "Neck", "Head", 0, True),
        _b("Head", "Neck", "Head", "HeadTop", 0, True),
    ]
    for s, sg in _sides():
        S = "." + s
        B += [
            _b("Clavicle" + S, "Chest", "Shoulder_" + s, "UpperArm_" + s, sg * 30),
            _b("UpperArm" + S, "Clavicle" + S, "UpperArm_" + s, "LowerArm_" + s, sg * 60, True),
            _b("ArmTwist" + S, "UpperArm" + S, ("mix", "UpperArm_" + s, "LowerArm_" + s, 0.5), "LowerArm_" + s),
            _b("Forearm" + S, "UpperArm" + S, "LowerArm_" + s, "Hand_" + s, sg * 60, True),
            _b("Hand" + S, "Forearm" + S, "Hand_" + s, "HandTip_" + s, sg * 60, True),
            _b("Thigh" + S, "Hips", "UpperLeg_" + s, "LowerLeg_" + s, sg * 15),
            _b("Shin" + S, "Thigh" + S, "LowerLeg_" + s, "Foot_" + s, sg * 15, True),
            _b("Foot" + S, "Shin" + S, "Foot_" + s, "Toes_" + s, sg * 15, True),
        ]
    expect = {"Hips": "Hips", "Spine": "Spine", "Chest": "Chest", "Neck": "Neck", "Head": "Head"}
    for s, _sg in _sides():
        S = "." + s
        expect.update({
            "Shoulder_" + s: "Clavicle" + S, "UpperArm_" + s: "UpperArm" + S,
            "LowerArm_" + s: "Forearm" + S, "Hand_" + s: "Hand" + S, "UpperLeg_" + s: "Thigh" + S,
            "LowerLeg_" + s: "Shin" + S, "Foot_" + s: "Foot" + S, "Toes_" + s: None,
        })
    return RigSpec("generic_dot", B, expect, scale=0.0105, convention="GENERIC")


def generic_underscore_rig():
    """Generic ``_l``/``_r`` names (a bare ``leg`` is the lower leg), facing +Y (left is -X),
    slight A-pose, no shoulders."""
    B = [
        _b("pelvis", None, "Hips", ("off", "Hips", (0, 0, -8))),
        _b("spine1", "pelvis", "Spine", ("mix", "Spine", "Chest", 0.5)),
        _b("spine2", "spine1", ("mix", "Spine", "Chest", 0.5), "Chest", 0, True),
        _b("spine3", "spine2", "Chest", "Neck", 0, True),
        _b("neck", "spine3", "Neck", "Head", 0, True),
        _b("head", "neck", "Head", "HeadTop", 0, True),
        _b("head_end", "head", "HeadTop", ("off", "HeadTop", (0, 3, 0)), 0, True),
    ]
    for s, sg in _sides():
        x = "_" + s.lower()
        B += [
            _b("arm" + x, "spine3", "UpperArm_" + s, "LowerArm_" + s, 45),
            _b("forearm" + x, "arm" + x, "LowerArm_" + s, "Hand_" + s, 45, True),
            _b("hand" + x, "forearm" + x, "Hand_" + s, "HandTip_" + s, 45, True),
            _b("upleg" + x, "pelvis", "UpperLeg_" + s, "LowerLeg_" + s, -45),
            _b("leg" + x, "upleg" + x, "LowerLeg_" + s, "Foot_" + s, -45, True),
            _b("foot" + x, "leg" + x, "Foot_" + s, "Toes_" + s, 0, True),
            _b("toe" + x, "foot" + x, "Toes_" + s, "ToeTip_" + s, 0, True),
        ]
    expect = {"Hips": "pelvis", "Spine": "spine1", "Chest": "spine3", "Neck": "neck",
              "Head": "head"}
    for s, _sg in _sides():
        x = "_" + s.lower()
        expect.update({
            "Shoulder_" + s: None, "UpperArm_" + s: "arm" + x, "LowerArm_" + s: "forearm" + x,
            "Hand_" + s: "hand" + x, "UpperLeg_" + s: "upleg" + x, "LowerLeg_" + s: "leg" + x,
            "Foot_" + s: "foot" + x, "Toes_" + s: "toe" + x,
        })
    return RigSpec("generic_underscore", B, expect, axes="Z_UP_BACK", scale=0.011, apose=20.0,
                   convention="GENERIC")


def generic_left_right_rig():
    """Unity-humanoid names (``LeftUpperArm``…) with an UpperChest above the Chest."""
    B = [
        _b("Hips", None, "Hips", "Spine"),
        _b("Spine", "Hips", "Spine", ("mix", "Spine", "Chest", 0.5), 0, True),
        _b("Chest", "Spine", ("mix", "Spine", "Chest", 0.5), "Chest", 0, True),
        _b("UpperChest", "Chest", "Chest", "Neck", 0, True),
        _b("Neck", "UpperChest", "Neck", "Head", 0, True),
        _b("Head", "Neck", "Head", "HeadTop", 0, True),
    ]
    for s, sg in (("Left", 1), ("Right", -1)):
        c = s[0]
        B += [
            _b(s + "Shoulder", "UpperChest", "Shoulder_" + c, "UpperArm_" + c),
            _b(s + "UpperArm", s + "Shoulder", "UpperArm_" + c, "LowerArm_" + c, 0, True),
            _b(s + "LowerArm", s + "UpperArm", "LowerArm_" + c, "Hand_" + c, 0, True),
            _b(s + "Hand", s + "LowerArm", "Hand_" + c, "HandTip_" + c, 0, True),
            _b(s + "UpperLeg", "Hips", "UpperLeg_" + c, "LowerLeg_" + c),
            _b(s + "LowerLeg", s + "UpperLeg", "LowerLeg_" + c, "Foot_" + c, 0, True),
            _b(s + "Foot", s + "LowerLeg", "Foot_" + c, "Toes_" + c, 0, True),
            _b(s + "Toes", s + "Foot", "Toes_" + c, "ToeTip_" + c, 0, True),
        ]
    expect = {"Hips": "Hips", "Spine": "Spine", "Chest": "UpperChest", "Neck": "Neck",
              "Head": "Head"}
    for s, _sg in (("Left", 1), ("Right", -1)):
        c = s[0]
        for base in cv.SIDED:
            expect[base + "_" + c] = s + {"Shoulder": "Shoulder", "UpperArm": "UpperArm",
                                          "LowerArm": "LowerArm", "Hand": "Hand",
                                          "UpperLeg": "UpperLeg", "LowerLeg": "LowerLeg",
                                          "Foot": "Foot", "Toes": "Toes"}[base]
    return RigSpec("generic_left_right", B, expect, scale=0.0107, convention="GENERIC")


def quadruped_rig():
    """Four legs and a tail: must be refused. Canonical points reused sideways: the body
    along the forward axis, legs down."""
    def p(x, y, z):
        return ("off", "Ground", (x, y, z))
    B = [
        _b("root", None, p(0, 0, 0), p(0, 0, -20)),
        _b("spine", "root", p(0, 70, -40), p(0, 72, -15)),
        _b("spine.001", "spine", p(0, 72, -15), p(0, 73, 10), 0, True),
        _b("spine.002", "spine.001", p(0, 73, 10), p(0, 73, 30), 0, True),
        _b("spine.003", "spine.002", p(0, 73, 30), p(0, 75, 45), 0, True),
        _b("neck", "spine.003", p(0, 75, 45), p(0, 90, 60), 0, True),
        _b("head", "neck", p(0, 90, 60), p(0, 85, 85), 0, True),
        _b("tail", "spine", p(0, 70, -40), p(0, 65, -60)),
        _b("tail.001", "tail", p(0, 65, -60), p(0, 55, -80), 0, True),
    ]
    for s, sg in _sides():
        S = "." + s
        for part, parent, z in (("back", "spine", -35), ("front", "spine.003", 35)):
            B += [
                _b(f"leg_{part}{S}", parent, p(sg * 12, 65, z), p(sg * 12, 35, z + 3)),
                _b(f"leg_{part}{S}.001", f"leg_{part}{S}", p(sg * 12, 35, z + 3), p(sg * 12, 8, z - 2), 0, True),
                _b(f"paw_{part}{S}", f"leg_{part}{S}.001", p(sg * 12, 8, z - 2), p(sg * 12, 2, z + 6), 0, True),
            ]
    return RigSpec("quadruped", B, {}, scale=0.01)


def _sided_expect(expect, names):
    """``expect`` with the sided joints of ``names`` (base → (left name, right name))."""
    for base, (left, right) in names.items():
        expect[base + "_L"], expect[base + "_R"] = left, right
    return expect


def daz_genesis_rig(apose=0.0):
    """DAZ Genesis 3 / 8: bend + twist bones on the arms and thighs (the bend bones are the
    joints), a pelvis below the hip carrying the thighs, two abdomen, chest and neck bones,
    metatarsals between the foot and the toe."""
    mix = lambda a, b, t=0.5: ("mix", a, b, t)  # noqa: E731
    B = [
        _b("hip", None, "Hips", ("off", "Hips", (0, 6, 0))),
        _b("pelvis", "hip", "Hips", ("off", "Hips", (0, -8, 0))),
        _b("abdomenLower", "hip", "Spine", mix("Spine", "Chest", 1 / 3)),
        _b("abdomenUpper", "abdomenLower", mix("Spine", "Chest", 1 / 3),
           mix("Spine", "Chest", 2 / 3), 0, True),
        _b("chestLower", "abdomenUpper", mix("Spine", "Chest", 2 / 3), "Chest", 0, True),
        _b("chestUpper", "chestLower", "Chest", "Neck", 0, True),
        _b("neckLower", "chestUpper", "Neck", mix("Neck", "Head"), 0, True),
        _b("neckUpper", "neckLower", mix("Neck", "Head"), "Head", 0, True),
        _b("head", "neckUpper", "Head", "HeadTop", 0, True),
    ]
    for s, sg in _sides():
        x = s.lower()
        B += [
            _b(x + "Collar", "chestUpper", "Shoulder_" + s, "UpperArm_" + s, sg * 90),
            _b(x + "ShldrBend", x + "Collar", "UpperArm_" + s, mix("UpperArm_" + s, "LowerArm_" + s),
               sg * 90, True),
            _b(x + "ShldrTwist", x + "ShldrBend", mix("UpperArm_" + s, "LowerArm_" + s),
               "LowerArm_" + s, sg * 90, True),
            _b(x + "ForearmBend", x + "ShldrTwist", "LowerArm_" + s, mix("LowerArm_" + s, "Hand_" + s),
               sg * 90, True),
            _b(x + "ForearmTwist", x + "ForearmBend", mix("LowerArm_" + s, "Hand_" + s),
               "Hand_" + s, sg * 90, True),
            _b(x + "Hand", x + "ForearmTwist", "Hand_" + s, "HandTip_" + s, sg * 90, True),
            _b(x + "Index1", x + "Hand", "HandTip_" + s, ("off", "HandTip_" + s, (sg * 3, 0, 0))),
            _b(x + "ThighBend", "pelvis", "UpperLeg_" + s, mix("UpperLeg_" + s, "LowerLeg_" + s), 180),
            _b(x + "ThighTwist", x + "ThighBend", mix("UpperLeg_" + s, "LowerLeg_" + s),
               "LowerLeg_" + s, 180, True),
            _b(x + "Shin", x + "ThighTwist", "LowerLeg_" + s, "Foot_" + s, 180, True),
            _b(x + "Foot", x + "Shin", "Foot_" + s, mix("Foot_" + s, "Toes_" + s), 0, True),
            _b(x + "Metatarsals", x + "Foot", mix("Foot_" + s, "Toes_" + s), "Toes_" + s, 0, True),
            _b(x + "Toe", x + "Metatarsals", "Toes_" + s, "ToeTip_" + s, 0, True),
        ]
    expect = _sided_expect(
        {"Hips": "hip", "Spine": "abdomenLower", "Chest": "chestUpper", "Neck": "neckLower",
         "Head": "head"},
        {b: ("l" + n, "r" + n) for b, n in (
            ("Shoulder", "Collar"), ("UpperArm", "ShldrBend"), ("LowerArm", "ForearmBend"),
            ("Hand", "Hand"), ("UpperLeg", "ThighBend"), ("LowerLeg", "Shin"), ("Foot", "Foot"),
            ("Toes", "Toe"))})
    return RigSpec("daz_genesis_" + ("a" if apose else "t"), B, expect, scale=0.0104,
                   apose=apose, convention="DAZ")


def daz_poser_rig(apose=0.0):
    """Poser / DAZ Genesis 1-2 names: hip, abdomen, chest, neck, head, lCollar, lShldr,
    lForeArm, lHand, lThigh, lShin, lFoot, lToe."""
    B = [
        _b("hip", None, "Hips", "Spine"),
        _b("abdomen", "hip", "Spine", "Chest", 0, True),
        _b("chest", "abdomen", "Chest", "Neck", 0, True),
        _b("neck", "chest", "Neck", "Head", 0, True),
        _b("head", "neck", "Head", "HeadTop", 0, True),
    ]
    for s, sg in _sides():
        x = s.lower()
        B += [
            _b(x + "Collar", "chest", "Shoulder_" + s, "UpperArm_" + s, sg * 30),
            _b(x + "Shldr", x + "Collar", "UpperArm_" + s, "LowerArm_" + s, sg * 30, True),
            _b(x + "ForeArm", x + "Shldr", "LowerArm_" + s, "Hand_" + s, sg * 30, True),
            _b(x + "Hand", x + "ForeArm", "Hand_" + s, "HandTip_" + s, sg * 30, True),
            _b(x + "Thigh", "hip", "UpperLeg_" + s, "LowerLeg_" + s, -sg * 20),
            _b(x + "Shin", x + "Thigh", "LowerLeg_" + s, "Foot_" + s, -sg * 20, True),
            _b(x + "Foot", x + "Shin", "Foot_" + s, "Toes_" + s, 0, True),
            _b(x + "Toe", x + "Foot", "Toes_" + s, "ToeTip_" + s, 0, True),
        ]
    expect = _sided_expect(
        {"Hips": "hip", "Spine": "abdomen", "Chest": "chest", "Neck": "neck", "Head": "head"},
        {b: ("l" + n, "r" + n) for b, n in (
            ("Shoulder", "Collar"), ("UpperArm", "Shldr"), ("LowerArm", "ForeArm"),
            ("Hand", "Hand"), ("UpperLeg", "Thigh"), ("LowerLeg", "Shin"), ("Foot", "Foot"),
            ("Toes", "Toe"))})
    return RigSpec("daz_poser_" + ("a" if apose else "t"), B, expect, scale=0.0098, apose=apose,
                   convention="DAZ")


def cmu_rig(apose=0.0):
    """CMU ASF skeleton as Blender imports it: root, hip joints, femur / tibia, lower and upper
    back, thorax, lower and upper neck, clavicle / humerus / radius / wrist / hand."""
    mix = lambda a, b, t=0.5: ("mix", a, b, t)  # noqa: E731
    B = [
        _b("root", None, "Hips", ("off", "Hips", (0, 0, -5))),
        _b("lowerback", "root", "Spine", mix("Spine", "Chest")),
        _b("upperback", "lowerback", mix("Spine", "Chest"), "Chest", 0, True),
        _b("thorax", "upperback", "Chest", "Neck", 0, True),
        _b("lowerneck", "thorax", "Neck", mix("Neck", "Head"), 0, True),
        _b("upperneck", "lowerneck", mix("Neck", "Head"), "Head", 0, True),
        _b("head", "upperneck", "Head", "HeadTop", 0, True),
    ]
    for s, sg in _sides():
        x = s.lower()
        B += [
            _b(x + "hipjoint", "root", "Hips", "UpperLeg_" + s),
            _b(x + "femur", x + "hipjoint", "UpperLeg_" + s, "LowerLeg_" + s, sg * 15, True),
            _b(x + "tibia", x + "femur", "LowerLeg_" + s, "Foot_" + s, sg * 15, True),
            _b(x + "foot", x + "tibia", "Foot_" + s, "Toes_" + s, 0, True),
            _b(x + "toes", x + "foot", "Toes_" + s, "ToeTip_" + s, 0, True),
            _b(x + "clavicle", "thorax", "Shoulder_" + s, "UpperArm_" + s),
            _b(x + "humerus", x + "clavicle", "UpperArm_" + s, "LowerArm_" + s, sg * 45, True),
            _b(x + "radius", x + "humerus", "LowerArm_" + s, "Hand_" + s, sg * 45, True),
            _b(x + "wrist", x + "radius", "Hand_" + s, mix("Hand_" + s, "HandTip_" + s, 0.3), 0, True),
            _b(x + "hand", x + "wrist", mix("Hand_" + s, "HandTip_" + s, 0.3), "HandTip_" + s, 0, True),
            _b(x + "fingers", x + "hand", "HandTip_" + s, ("off", "HandTip_" + s, (sg * 3, 0, 0)), 0, True),
            _b(x + "thumb", x + "hand", ("off", "Hand_" + s, (sg * 2, 0, 3)),
               ("off", "Hand_" + s, (sg * 4, 0, 5))),
        ]
    expect = _sided_expect(
        {"Hips": "root", "Spine": "lowerback", "Chest": "thorax", "Neck": "lowerneck",
         "Head": "head"},
        {b: ("l" + n, "r" + n) for b, n in (
            ("Shoulder", "clavicle"), ("UpperArm", "humerus"), ("LowerArm", "radius"),
            ("Hand", "wrist"), ("UpperLeg", "femur"), ("LowerLeg", "tibia"), ("Foot", "foot"),
            ("Toes", "toes"))})
    return RigSpec("cmu_" + ("a" if apose else "t"), B, expect, scale=0.0102, apose=apose,
                   convention="CMU")


def humanik_rig(apose=0.0):
    """MotionBuilder / HumanIK names without a namespace (Hips, Spine, Spine1, LeftUpLeg…),
    under a Reference bone, FBX layout (cm, Y up, object rotated and scaled)."""
    B = [
        _b("Reference", None, "Ground", ("off", "Ground", (0, 0, 10))),
        _b("Hips", "Reference", "Hips", "Spine"),
        _b("Spine", "Hips", "Spine", "Chest", 0, True),
        _b("Spine1", "Spine", "Chest", "Neck", 0, True),
        _b("Neck", "Spine1", "Neck", "Head", 0, True),
        _b("Head", "Neck", "Head", "HeadTop", 0, True),
    ]
    for s, sg in (("Left", 1), ("Right", -1)):
        c = s[0]
        B += [
            _b(s + "Shoulder", "Spine1", "Shoulder_" + c, "UpperArm_" + c, sg * 90),
            _b(s + "Arm", s + "Shoulder", "UpperArm_" + c, "LowerArm_" + c, sg * 90, True),
            _b(s + "ArmRoll", s + "Arm", ("mix", "UpperArm_" + c, "LowerArm_" + c, 0.5),
               "LowerArm_" + c),
            _b(s + "ForeArm", s + "Arm", "LowerArm_" + c, "Hand_" + c, sg * 90, True),
            _b(s + "Hand", s + "ForeArm", "Hand_" + c, "HandTip_" + c, sg * 90, True),
            _b(s + "UpLeg", "Hips", "UpperLeg_" + c, "LowerLeg_" + c, 180),
            _b(s + "Leg", s + "UpLeg", "LowerLeg_" + c, "Foot_" + c, 180, True),
            _b(s + "Foot", s + "Leg", "Foot_" + c, "Toes_" + c, 180, True),
            _b(s + "ToeBase", s + "Foot", "Toes_" + c, "ToeTip_" + c, 180, True),
        ]
    expect = _sided_expect(
        {"Hips": "Hips", "Spine": "Spine", "Chest": "Spine1", "Neck": "Neck", "Head": "Head"},
        {b: ("Left" + n, "Right" + n) for b, n in (
            ("Shoulder", "Shoulder"), ("UpperArm", "Arm"), ("LowerArm", "ForeArm"),
            ("Hand", "Hand"), ("UpperLeg", "UpLeg"), ("LowerLeg", "Leg"), ("Foot", "Foot"),
            ("Toes", "ToeBase"))})
    return RigSpec("humanik_" + ("a" if apose else "t"), B, expect, axes="Y_UP", scale=1.08,
                   apose=apose, obj_rotation=(np.pi / 2, 0, 0), obj_scale=0.01,
                   convention="HUMANIK", root="Reference")


def biped_rig(apose=0.0, prefix="Bip01"):
    """3ds Max Biped: the thighs hang from the first spine bone, the clavicles from the neck,
    bones along their X axis (rolled), ``Bip01`` (or ``Bip001``) the centre of mass above."""
    P = prefix + " "
    B = [
        _b(prefix, None, "Hips", ("off", "Hips", (0, 0, 8)), 90),
        _b(P + "Pelvis", prefix, "Hips", "Spine", 90),
        _b(P + "Spine", P + "Pelvis", "Spine", ("mix", "Spine", "Chest", 0.5), 90, True),
        _b(P + "Spine1", P + "Spine", ("mix", "Spine", "Chest", 0.5), "Chest", 90, True),
        _b(P + "Spine2", P + "Spine1", "Chest", "Neck", 90, True),
        _b(P + "Neck", P + "Spine2", "Neck", "Head", 90, True),
        _b(P + "Head", P + "Neck", "Head", "HeadTop", 90, True),
    ]
    for s, sg in _sides():
        q = P + s + " "
        B += [
            _b(q + "Clavicle", P + "Neck", "Shoulder_" + s, "UpperArm_" + s, sg * 180),
            _b(q + "UpperArm", q + "Clavicle", "UpperArm_" + s, "LowerArm_" + s, sg * 180, True),
            _b(q + "Forearm", q + "UpperArm", "LowerArm_" + s, "Hand_" + s, sg * 180, True),
            _b(q + "Hand", q + "Forearm", "Hand_" + s, "HandTip_" + s, sg * 180, True),
            _b(q + "Finger0", q + "Hand", ("off", "Hand_" + s, (sg * 2, 0, 3)),
               ("off", "Hand_" + s, (sg * 4, 0, 5))),
            _b(q + "Thigh", P + "Spine", "UpperLeg_" + s, "LowerLeg_" + s, -90),
            _b(q + "Calf", q + "Thigh", "LowerLeg_" + s, "Foot_" + s, -90, True),
            _b(q + "Foot", q + "Calf", "Foot_" + s, "Toes_" + s, -90, True),
            _b(q + "Toe0", q + "Foot", "Toes_" + s, "ToeTip_" + s, -90, True),
        ]
    expect = _sided_expect(
        {"Hips": P + "Pelvis", "Spine": P + "Spine", "Chest": P + "Spine2", "Neck": P + "Neck",
         "Head": P + "Head"},
        {b: (P + "L " + n, P + "R " + n) for b, n in (
            ("Shoulder", "Clavicle"), ("UpperArm", "UpperArm"), ("LowerArm", "Forearm"),
            ("Hand", "Hand"), ("UpperLeg", "Thigh"), ("LowerLeg", "Calf"), ("Foot", "Foot"),
            ("Toes", "Toe0"))})
    return RigSpec(f"{prefix.lower()}_" + ("a" if apose else "t"), B, expect, scale=0.0101,
                   apose=apose, convention="BIPED", root=prefix)


def _posed(builder, apose, **kw):
    def make():
        return builder(apose, **kw)
    return make


#: New conventions, each in a T-pose and an A-pose (arms lowered 45°).
CONVENTION_RIGS = {}
for _name, _builder, _kw in (("daz_genesis", daz_genesis_rig, {}), ("daz_poser", daz_poser_rig, {}),
                             ("cmu", cmu_rig, {}), ("humanik", humanik_rig, {}),
                             ("bip01", biped_rig, {}), ("bip001", biped_rig, {"prefix": "Bip001"})):
    for _suffix, _angle in (("t", 0.0), ("a", 45.0)):
        CONVENTION_RIGS[f"{_name}_{_suffix}"] = _posed(_builder, _angle, **_kw)

RIGS = {f.__name__[:-4]: f for f in (rigify_rig, metarig_rig, mixamo_rig, ue4_rig, ue5_rig, cc_rig,
                                      generic_dot_rig, generic_underscore_rig,
                                      generic_left_right_rig)}
RIGS.update(CONVENTION_RIGS)


# =========================================================================== detection


def _detect(spec, heads=True):
    return rmap.detect_mapping(spec.names(), spec.parents(), spec.heads() if heads else None)


@pytest.mark.parametrize("key", list(RIGS))
def test_detection_per_convention(key):
    spec = RIGS[key]()
    m = _detect(spec)
    assert m.bones == {j: spec.expect.get(j) for j in cv.JOINTS}, m.notes
    assert m.convention == spec.convention
    assert m.root == spec.root
    assert not m.missing_core()
    assert m.unmapped == [j for j in cv.JOINTS if not spec.expect.get(j)]
    assert m.confidence >= (0.95 if spec.convention != "GENERIC" else 0.75)
    rmap.require_core(m)  # does not raise


@pytest.mark.parametrize("key", ["mixamo", "ue5", "cc", "generic_left_right", "rigify"])
def test_detection_from_names_and_parents_only(key):
    spec = RIGS[key]()
    m = _detect(spec, heads=False)
    assert m.bones == {j: spec.expect.get(j) for j in cv.JOINTS}


def test_detection_is_order_independent_and_ignores_namespaces():
    spec = mixamo_rig()
    names = [n.replace("mixamorig:", "mixamorig3:") for n in spec.names()]
    parents = [p.replace("mixamorig:", "mixamorig3:") if p else None for p in spec.parents()]
    order = np.random.default_rng(1).permutation(len(names))
    m = rmap.detect_mapping([names[i] for i in order], [parents[i] for i in order])
    assert m.convention == "MIXAMO"
    assert m.bones["LowerLeg_L"] == "mixamorig3:LeftLeg"
    assert m.bones["Chest"] == "mixamorig3:Spine2"


def test_sides_from_position_when_names_have_none():
    # "arm"/"arm.001" style: no side in the names; left is +X in Blender's convention
    spec = generic_dot_rig()
    rename = {}
    for name in spec.names():
        if name.endswith(".L"):
            rename[name] = name[:-2] + "_a"
        elif name.endswith(".R"):
            rename[name] = name[:-2] + "_b"
    names = [rename.get(n, n) for n in spec.names()]
    parents = [rename.get(p, p) if p else None for p in spec.parents()]
    m = rmap.detect_mapping(names, parents, spec.heads())
    assert m.bones["UpperArm_L"] == "UpperArm_a" and m.bones["UpperArm_R"] == "UpperArm_b"
    assert m.bones["LowerLeg_R"] == "Shin_b"


def test_topology_only_for_meaningless_names():
    spec = generic_left_right_rig()
    rename = {n: f"Bone.{i:03d}" for i, n in enumerate(spec.names())}
    m = rmap.detect_mapping([rename[n] for n in spec.names()],
                            [rename[p] if p else None for p in spec.parents()], spec.heads())
    assert m.convention == "TOPOLOGY"
    want = {j: rename[b] for j, b in spec.expect.items() if b}
    for j in cv.CORE_JOINTS + ("Chest", "Head", "Shoulder_L", "Toes_R"):
        assert m.bones[j] == want[j], j
    assert 0.3 < m.confidence < 0.8


def test_quadruped_is_refused_with_the_missing_joints():
    spec = quadruped_rig()
    m = _detect(spec)
    assert m.missing_core()
    with pytest.raises(InputError) as err:
        rmap.require_core(m, "Dog")
    text = str(err.value)
    assert "'Dog'" in text and "UpperArm_L" in text and "Hand_R" in text and "Foot_L" in text
    assert "quadruped" in text


def test_classify_tokens():
    assert rmap.tokens("mixamorig:LeftUpLeg") == ["left", "up", "leg"]
    assert rmap.tokens("thigh_fk.L") == ["thigh", "fk", "l"]
    assert rmap.classify("CC_Base_L_Upperarm") == ("UpperArm", "L", 0.9)
    assert rmap.classify("CC_Base_L_UpperarmTwist01") is None
    assert rmap.classify("spine_fk.002") == ("Spine", None, 0.9)
    assert rmap.classify("upperarm_r") == ("UpperArm", "R", 0.9)
    assert rmap.classify("LeftForeArm")[:2] == ("LowerArm", "L")
    assert rmap.classify("LeftHip")[:2] == ("UpperLeg", "L")
    assert rmap.classify("calf_twist_01_l") is None
    assert rmap.classify("ORG-upper_arm.L") is None
    assert rmap.classify("upper_arm_ik.L") is None
    assert rmap.classify("LeftHandIndex1") is None
    assert rmap.classify("forehead.L") is None  # a centre joint with a side: a face bone
    assert rmap.classify("Bip01 L Calf")[:2] == ("LowerLeg", "L")
    assert rmap.classify("leg_l")[:2] == ("Leg", "L")


# =========================================================================== presets


def test_json_preset_round_trip(tmp_path):
    m = _detect(ue5_rig())
    m.name = "My UE5"
    path = tmp_path / "ue5.json"
    rmap.save_preset(m, path)
    data = json.loads(path.read_text())
    assert data["format"] == rmap.PRESET_FORMAT and data["bones"]["Hand_L"] == "hand_l"
    back = rmap.load_preset(path)
    assert back.bones == m.bones and back.root == "root" and back.convention == "UE5"
    assert back.name == "My UE5"
    assert rmap.mapping_from_json(rmap.mapping_to_json(back)).bones == m.bones


def test_bad_presets_raise_input_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(InputError, match="not valid JSON"):
        rmap.load_preset(bad)
    bad.write_text(json.dumps({"bones": {}}))
    with pytest.raises(InputError, match="Not a Sparse Motion"):
        rmap.load_preset(bad)
    bad.write_text(json.dumps({"format": rmap.PRESET_FORMAT, "bones": {"Tail": "tail"}}))
    with pytest.raises(InputError, match="Unknown canonical joint 'Tail'"):
        rmap.load_preset(bad)
    with pytest.raises(InputError, match="Cannot read"):
        rmap.load_preset(tmp_path / "missing.json")


@pytest.mark.parametrize("key", [c.key for c in cv.CONVENTIONS])
def test_convention_presets_match_their_detection(key):
    preset = rmap.convention_preset(key)
    names, parents = [], []
    for j, name in enumerate(cv.JOINTS):  # a skeleton with only the mapped bones
        names.append(preset.bones[name])
        p = cv.PARENTS[j]
        parents.append(preset.bones[cv.JOINTS[p]] if p >= 0 else preset.root)
    if preset.root:
        names.insert(0, preset.root)
        parents.insert(0, None)
    m = rmap.detect_mapping(names, parents)
    assert m.convention == key
    assert m.bones == preset.bones


def test_check_mapping_names_unknown_and_duplicate_bones():
    spec = metarig_rig()
    m = _detect(spec).copy()
    m.bones["Hand_L"] = "hand.X"
    with pytest.raises(InputError, match="hand.X"):
        rmap.check_mapping(m, spec.names(), spec.parents())
    m.bones["Hand_L"] = "hand.R"
    with pytest.raises(InputError, match="only one joint"):
        rmap.check_mapping(m, spec.names(), spec.parents())
    m.bones["Hand_L"] = "shin.L"
    m.bones["LowerLeg_L"] = None
    warnings = rmap.check_mapping(m, spec.names(), spec.parents())
    assert any("shin.L" in w for w in warnings)


# =========================================================================== IK


def test_two_bone_ik_reaches_and_keeps_lengths_and_bend_plane():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    b = a + [0, -40.0, 3.0]
    c = b + [0, -40.0, -4.0]  # knee bent forward (+z), hip-ankle 80
    target = a + 0.85 * (c - a) + rng.normal(scale=2.0, size=(50, 3))
    R1, R2, reached = rsolve.two_bone_ik(a, b, c, target)
    assert reached.all()
    b2 = a + np.einsum("fij,fj->fi", R1, b - a)
    c2 = b2 + np.einsum("fij,fj->fi", R2, c - b)
    np.testing.assert_allclose(c2, target, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(b2 - a, axis=1), np.linalg.norm(b - a, axis=1))
    for R in (R1, R2):
        np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                                   atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(R), 1.0)
    # the knee stays on the same side (forward)
    u = (target - a) / np.linalg.norm(target - a, axis=1, keepdims=True)
    off = (b2 - a) - np.sum((b2 - a) * u, axis=1, keepdims=True) * u
    assert np.all(off[:, 2] > 0)


def test_two_bone_ik_unreachable_and_straight():
    a = np.zeros((1, 3))
    b = np.array([[0, -40.0, 0]])
    c = np.array([[0, -80.0, 0]])  # straight: the pole decides the bend side
    R1, R2, reached = rsolve.two_bone_ik(a, b, c, [[0, -70.0, 0]], pole=[0, 0, 1.0])
    assert reached.all()
    b2 = a + R1[0] @ (b - a)[0]
    assert b2[0, 2] > 5.0  # bent forward, towards the pole
    R1, R2, reached = rsolve.two_bone_ik(a, b, c, [[0, -100.0, 0]])
    assert not reached.any()
    c2 = a[0] + R1[0] @ (b - a)[0] + R2[0] @ (c - b)[0]
    assert abs(np.linalg.norm(c2) - 80.0) < 1e-3 and abs(c2[1] + 80.0) < 1e-2


def test_min_rotation():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.normal(size=3), rng.normal(size=3)
        R = rsolve.min_rotation(a, b)
        np.testing.assert_allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-12)
        axis = np.cross(a, b)
        np.testing.assert_allclose(R @ axis, axis, atol=1e-9)
    R = rsolve.min_rotation([1, 0, 0], [-1, 0, 0])
    np.testing.assert_allclose(R @ [1, 0, 0], [-1, 0, 0], atol=1e-12)


def test_contact_intervals_and_pin_schedule():
    mask = np.array([0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 0], bool)
    iv = rsolve.contact_intervals(mask)
    assert iv == [(1, 3), (8, 11)]
    owner, w = rsolve.pin_schedule(len(mask), iv, blend=2)
    assert np.all(w[1:4] == 1) and np.all(w[8:12] == 1)
    assert 0 < w[0] < 1 and 0 < w[6] < w[7] < 1 and w[5] < w[4] < 1
    assert owner[5] == 0 and owner[6] == 1


# =========================================================================== solve (no bpy)


def _rig_from_spec(spec):
    return rsolve.TargetRig.build(spec.names(), spec.parents(), spec.rest_matrices(),
                                  [b[5] for b in spec.bones],
                                  follow=[spec.constraints.get(n) for n in spec.names()])


def _expected_positions(spec, sol, q, x):
    """Source joints relative to the hip centre, carried to the rig and scaled."""
    pos = canon.canonical_forward_kinematics(q, x)
    hc = 0.5 * (pos[:, cv.INDEX["UpperLeg_L"]] + pos[:, cv.INDEX["UpperLeg_R"]])
    A = AXES[spec.axes]
    return (pos - hc[:, None]) @ A.T * spec.scale


def _height(spec):
    return (PTS["HeadTop"][1] - PTS["Ground"][1]) * spec.scale


@pytest.mark.parametrize("key", ["metarig", "ue5", "generic_underscore", "rigify",
                                 "rigify_constrained"])
def test_solve_matches_source_directions(key):
    spec = rigify_rig(constraints=True) if key == "rigify_constrained" else RIGS[key]()
    rig = _rig_from_spec(spec)
    m = _detect(spec)
    q, x = procedural_walk(1.0)
    src = rsolve.SourceMotion.from_canonical(q, x, 20)
    sol = rsolve.solve(src, rig, m.bones, root=m.root)
    assert abs(sol.scale - spec.scale) < 1e-6 * spec.scale
    np.testing.assert_allclose(sol.carry, AXES[spec.axes], atol=1e-9)
    want = _expected_positions(spec, sol, q, x)
    legs = [rig.index[spec.expect["UpperLeg_L"]], rig.index[spec.expect["UpperLeg_R"]]]
    hc = sol.heads[:, legs].mean(axis=1)
    for j, b in spec.placed().items():
        got = sol.heads[:, rig.index[b]] - hc
        err = np.abs(got - want[:, cv.INDEX[j]]).max() / _height(spec)
        assert err < 1e-6, (j, b, err)
    # the hip centre follows the source's, scaled
    pos = canon.canonical_forward_kinematics(q, x)
    hcs = 0.5 * (pos[:, cv.INDEX["UpperLeg_L"]] + pos[:, cv.INDEX["UpperLeg_R"]])
    np.testing.assert_allclose(hc - hc[0], (hcs - hcs[0]) @ AXES[spec.axes].T * spec.scale,
                               atol=1e-9)


def test_pose_channels_reproduce_the_solution_through_blender_fk():
    """The keyed matrix_basis values, evaluated with Blender's bone semantics
    (keyframes.rig), give back the solved armature-space pose."""
    spec = cc_rig()
    rig = _rig_from_spec(spec)
    m = _detect(spec)
    q, x = procedural_walk(0.6)
    src = rsolve.SourceMotion.from_canonical(q, x, 20)
    for root_motion in ("HIPS", "ROOT"):
        sol = rsolve.solve(src, rig, m.bones, root=m.root, root_motion=root_motion,
                           foot_pinning=True)
        nodes = [Node(None, -1, np.eye(4), points=np.zeros((0, 3)))]
        for i, name in enumerate(rig.names):
            nodes.append(Node(name, rig.parents[i] + 1, rig.rest[i], connected=bool(rig.connected[i]),
                              points=np.zeros((1, 3))))
        frk = Rig(nodes, cm_per_unit=1.0)
        keys, cols = [], []
        for bone, (quat, loc) in sol.keyed.items():
            for i in range(4):
                keys.append((bone_data_path(bone, "rotation_quaternion"), i))
                cols.append(quat[:, i])
            if loc is not None:
                for i in range(3):
                    keys.append((bone_data_path(bone, "location"), i))
                    cols.append(loc[:, i])
        pts = ChannelMap(frk, keys).points(np.stack(cols, axis=1))
        np.testing.assert_allclose(pts, sol.heads, atol=1e-9)
        if root_motion == "ROOT":
            assert sol.keyed["CC_Base_BoneRoot"][1] is not None
            root_loc = sol.keyed["CC_Base_BoneRoot"][1]
            assert np.ptp(root_loc, axis=0).max() > 0.3  # walks on the root


def test_foot_pinning_holds_planted_ankles():
    spec = mixamo_rig()
    rig = _rig_from_spec(spec)
    m = _detect(spec)
    q, x = procedural_walk(2.0, slide=1.15)
    src = rsolve.SourceMotion.from_canonical(q, x, 20)
    free = rsolve.solve(src, rig, m.bones)
    pinned = rsolve.solve(src, rig, m.bones, foot_pinning=True)
    cm = 1.0 / spec.scale  # armature unit → canonical cm
    for side in ("L", "R"):
        planted = pinned.planted(side)
        assert sum(len(f) for _b, f, _p in planted) >= 10
        assert len(planted) == 2  # ankle, then toes (this walk never lifts the heel first)
        for bone, frames, pins in planted:
            if not len(frames):
                continue
            drift = np.linalg.norm(pinned.heads[frames, bone] - pins, axis=1).max() * cm
            slide = np.linalg.norm(free.heads[frames, bone] - pins, axis=1).max() * cm
            assert drift < 0.01 and slide > 1.0, (side, bone, drift, slide)
        assert len(pinned.unreached[side]) == 0
    # the upper body only moved down where the hips had to drop for a leg to reach its pin
    arm = rig.index[spec.expect["Hand_L"]]
    up = np.array([0, 1.0, 0])
    assert 0 < pinned.hip_drop.max() <= 0.08 * 80 * spec.scale
    np.testing.assert_allclose(pinned.heads[:, arm] + pinned.hip_drop[:, None] * up,
                               free.heads[:, arm], atol=1e-5)


def test_source_rig_in_a_pose_round_trips():
    """A mapped source rig (UE4, A-pose) read with SourceMotion.from_rig and retargeted onto
    a T-pose rig gives the same motion as the canonical source."""
    src_spec, dst_spec = ue4_rig(), generic_dot_rig()
    src_rig, dst_rig = _rig_from_spec(src_spec), _rig_from_spec(dst_spec)
    q, x = procedural_walk(0.8)
    canon_src = rsolve.SourceMotion.from_canonical(q, x, 20)
    m_src = _detect(src_spec)
    on_src = rsolve.solve(canon_src, src_rig, m_src.bones)
    idx = [src_rig.index[m_src.bones[j]] if m_src.bones[j] else 0 for j in cv.JOINTS]
    present = np.array([m_src.bones[j] is not None for j in cv.JOINTS])
    rig_src = rsolve.SourceMotion.from_rig(src_rig.rest[idx, :3, :3], src_rig.heads[idx],
                                           on_src.rots[:, idx], on_src.heads[:, idx], present, 20)
    m_dst = _detect(dst_spec)
    a = rsolve.solve(canon_src, dst_rig, m_dst.bones)
    b = rsolve.solve(rig_src, dst_rig, m_dst.bones)
    tol = 1e-6 * _height(dst_spec)
    for j, bone in dst_spec.placed().items():
        i = dst_rig.index[bone]
        np.testing.assert_allclose(b.heads[:, i], a.heads[:, i], atol=tol, err_msg=j)


def test_solve_errors():
    spec = generic_dot_rig()
    rig = _rig_from_spec(spec)
    q, x = procedural_walk(0.3)
    src = rsolve.SourceMotion.from_canonical(q, x, 20)
    with pytest.raises(InputError, match="hips"):
        rsolve.solve(src, rig, {"Head": "Head"})
    with pytest.raises(InputError, match="Nope"):
        rsolve.solve(src, rig, {"Hips": "Nope"})
    with pytest.raises(InputError, match="root bone"):
        rsolve.solve(src, rig, _detect(spec).bones, root_motion="ROOT")
    with pytest.raises(InputError, match="frames"):
        rsolve.SourceMotion.from_canonical(np.zeros((0, 21, 4)), np.zeros((0, 3)), 20)
    with pytest.raises(InputError, match="NaN"):
        rsolve.SourceMotion.from_canonical(np.full((2, 21, 4), np.nan), np.zeros((2, 3)), 20)


def test_tpose_is_a_symmetric_t_pose():
    _q, R, pos = cv.tpose()
    I = cv.INDEX
    for s, sg in (("L", 1), ("R", -1)):
        arm = pos[I["Hand_" + s]] - pos[I["UpperArm_" + s]]
        assert arm[0] * sg > 40 and abs(arm[1]) < 0.5 and abs(arm[2]) < 0.5
        leg = pos[I["Foot_" + s]] - pos[I["UpperLeg_" + s]]
        assert leg[1] < -75 and abs(leg[0]) < 0.5 and abs(leg[2]) < 0.5
        assert pos[I["Toes_" + s]][2] > pos[I["Foot_" + s]][2] + 5  # feet point forward
    mirrored = pos * canon.WORLD_MIRROR
    for a, b in canon.MIRROR_PAIRS:
        np.testing.assert_allclose(mirrored[I[a]], pos[I[b]], atol=1e-3)
    assert abs(pos[I["Foot_L"]][1] - 11.64) < 0.1


def test_other_proportions_keep_bone_directions_and_scale_the_path_by_leg_length():
    """Longer arms, shorter legs: every mapped bone still points where its source bone points,
    and the hip centre travels by the source's path times the leg-length ratio."""
    spec = generic_left_right_rig()
    rest = spec.rest_matrices()
    names = spec.names()
    parents = spec.parents()
    idx = {n: i for i, n in enumerate(names)}

    def stretch(root, f):
        r = rest[idx[root], :3, 3].copy()
        todo = [root]
        while todo:
            b = todo.pop()
            rest[idx[b], :3, 3] = r + f * (rest[idx[b], :3, 3] - r)
            todo += [n for n, p in zip(names, parents) if p == b]

    for side in ("Left", "Right"):
        stretch(side + "UpperArm", 1.3)
        stretch(side + "UpperLeg", 0.85)
    rig = rsolve.TargetRig.build(names, parents, rest)
    m = rmap.detect_mapping(names, parents, rest[:, :3, 3])
    q, x = procedural_walk(1.0)
    src = rsolve.SourceMotion.from_canonical(q, x, 20)
    sol = rsolve.solve(src, rig, m.bones)
    C = AXES[spec.axes]
    pos = canon.canonical_forward_kinematics(q, x)
    for j, c in cv.PRIMARY_CHILD.items():
        if not (m.bones[j] and m.bones[c]):
            continue
        got = sol.heads[:, rig.index[m.bones[c]]] - sol.heads[:, rig.index[m.bones[j]]]
        want = (pos[:, cv.INDEX[c]] - pos[:, cv.INDEX[j]]) @ C.T
        cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert cos.min() > 1 - 1e-9, j
    assert abs(sol.scale - 0.85 * spec.scale) < 1e-3 * spec.scale
    legs = [rig.index["LeftUpperLeg"], rig.index["RightUpperLeg"]]
    hc = sol.heads[:, legs].mean(axis=1)
    hcs = 0.5 * (pos[:, cv.INDEX["UpperLeg_L"]] + pos[:, cv.INDEX["UpperLeg_R"]])
    np.testing.assert_allclose(hc - hc[0], (hcs - hcs[0]) @ C.T * sol.scale, atol=1e-6)


# =========================================================================== standing checks


def _legs_up(spec):
    """Rest heads of ``spec`` with the legs turned over about the hips (lateral axis)."""
    heads = spec.heads()
    pivot = spec.to_armature("Hips")
    legs = [i for i, n in enumerate(spec.names())
            if any(k in n for k in ("Thigh", "Calf", "Foot", "ToeBase", "Pelvis"))]
    heads[legs] = pivot + (heads[legs] - pivot) * np.array([1.0, -1.0, -1.0])
    return heads


def test_standing_problems_and_the_mapping_confidence():
    from sparse_motion.retarget import posecheck

    spec = cc_rig()
    m = _detect(spec)
    pts = {j: spec.heads()[spec.names().index(b)] for j, b in m.mapped.items()}
    assert posecheck.standing_problems(pts, [0, 0, 1]) == []
    assert posecheck.is_t_or_a_pose(pts, [0, 0, 1])
    flipped = _legs_up(spec)
    up_pts = {j: flipped[spec.names().index(b)] for j, b in m.mapped.items()}
    problems = posecheck.standing_problems(up_pts, [0, 0, 1], metres=1.0)
    assert any("left leg points up" in p for p in problems), problems
    assert posecheck.standing_problems(up_pts) != []  # without a known up: legs vs spine
    # the whole body upside down: only a known up sees it
    down = {j: p * [1, 1, -1] for j, p in pts.items()}
    assert posecheck.standing_problems(down) == []
    assert any("below the hips" in p for p in posecheck.standing_problems(down, [0, 0, 1]))
    # names map 100 %, the pose check lowers the confidence
    bad = rmap.detect_mapping(spec.names(), spec.parents(), flipped, up=[0, 0, 1])
    assert bad.bones == m.bones and m.confidence > 0.95 and bad.confidence <= 0.4
    assert any("rest pose does not stand" in n for n in bad.notes)


def test_motion_check_catches_an_upside_down_solve():
    """The legs-up rest pose taken as the reference gives a motion standing on its head; the
    standing rest pose gives one that passes (height error measured)."""
    from sparse_motion.retarget import posecheck

    spec = cc_rig()
    m = _detect(spec)
    q, x = procedural_walk(1.0)
    src = rsolve.SourceMotion.from_canonical(q, x, 20)
    for heads, ok in ((spec.heads(), True), (_legs_up(spec), False)):
        rest = spec.rest_matrices()
        rest[:, :3, 3] = heads
        rig = rsolve.TargetRig.build(spec.names(), spec.parents(), rest)
        sol = rsolve.solve(src, rig, m.bones)
        pos = np.full((src.frames, 21, 3), np.nan)
        ref = np.full((21, 3), np.nan)
        for j, b in m.mapped.items():
            pos[:, cv.INDEX[j]] = sol.heads[:, rig.index[b]]
            ref[cv.INDEX[j]] = rig.ref_heads[rig.index[b]]
        check = posecheck.motion_problems(src.positions, src.ref_positions, src.body[:, 1],
                                          pos, ref, [0, 0, 1], metres=1.0)
        if ok:
            assert check.problems == [] and check.height_error < 0.01 and check.floor_error < 0.02
        else:
            assert check.upside_down_frames == check.upright_frames > 0
            assert any("upside down" in p for p in check.problems), check.problems
