# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH clips written by script (numpy only, no bpy): the 16-joint humanoid of the import and
export tests, a standing clip whose feet touch the floor, and the same clip in other length
units or lifted / sunk (the units-and-floor tests)."""
import numpy as np

from sparse_motion.motion import bvh as bvh_mod

# name, parent, offset (cm, Y up), End Site or None
HUMANOID = [
    ("Hips", None, (0.0, 95.0, 0.0), None),
    ("Spine", "Hips", (0.0, 10.0, -1.0), None),
    ("Chest", "Spine", (0.0, 20.0, 0.0), None),
    ("Neck", "Chest", (0.0, 22.0, 2.0), None),
    ("Head", "Neck", (0.0, 9.0, 1.0), (0.0, 16.0, 0.0)),
    ("LeftShoulder", "Chest", (4.0, 18.0, 0.0), None),
    ("LeftArm", "LeftShoulder", (14.0, 0.0, 0.0), None),
    ("LeftForeArm", "LeftArm", (28.0, 0.0, 0.0), None),
    ("LeftHand", "LeftForeArm", (25.0, 0.0, 0.0), (9.0, 0.0, 0.0)),
    ("LeftThumb", "LeftHand", (0.0, 0.0, 0.0), (0.0, 0.0, 4.0)),  # zero offset
    ("RightUpLeg", "Hips", (-9.0, -4.0, 0.0), None),
    ("RightLeg", "RightUpLeg", (0.0, -42.0, 1.0), None),
    ("RightFoot", "RightLeg", (0.0, -41.0, -2.0), (0.0, -6.0, 13.0)),
    ("LeftUpLeg", "Hips", (9.0, -4.0, 0.0), None),
    ("LeftLeg", "LeftUpLeg", (0.0, -42.0, 1.0), None),
    ("LeftToe", "LeftLeg", (0.0, -47.0, 11.0), (0.0, 0.0, 0.0)),  # zero End Site
]
ORDERS = ["XYZ", "YZX", "ZYX", "XZY", "YXZ", "ZXY"]


def make_bvh(kind, n_frames=90, fps=60, seed=0):
    """'6ch': every joint Xposition.. Zrotation Xrotation Yrotation, with moving positions;
    'mixed': root 6 channels (YXZ), other joints 3 rotation channels in every order, one
    joint with two rotation channels and one with none."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    joints, cols = [], []
    index = {}
    for k, (name, parent, offset, end) in enumerate(HUMANOID):
        p = index[parent] if parent else -1
        offset = np.array(offset)
        if kind == "6ch":
            rot_order = "ZXY"
            chans = ["Xposition", "Yposition", "Zposition"] + [a + "rotation" for a in rot_order]
        elif p < 0:
            rot_order = "YXZ"
            chans = ["Xposition", "Yposition", "Zposition"] + [a + "rotation" for a in rot_order]
        elif name == "LeftThumb":
            rot_order, chans = "", []
        elif name == "LeftToe":
            rot_order, chans = "XZ", ["Xrotation", "Zrotation"]
        else:
            rot_order = ORDERS[k % 6]
            chans = [a + "rotation" for a in rot_order]
        joints.append(bvh_mod.BvhJoint(name, p, offset, chans, end))
        index[name] = k
        for c in chans:
            if c.endswith("position"):
                a = "XYZ".index(c[0])
                if p < 0:
                    base = offset[a] + [30.0 * np.sin(0.7 * t), 3.0 * np.sin(5 * t), 40.0 * t][a]
                else:  # child joints slide a little around their offset
                    base = offset[a] + rng.uniform(0.5, 2.0) * np.sin(rng.uniform(1, 4) * t + rng.uniform(0, 6))
                cols.append(base)
            else:
                amp = rng.uniform(20, 170) if name in {"Hips", "LeftArm", "Neck"} else rng.uniform(5, 60)
                cols.append(amp * np.sin(rng.uniform(0.5, 3.0) * t + rng.uniform(0, 6))
                            + rng.uniform(-30, 30))
    return bvh_mod.Bvh(joints, 1.0 / fps, np.stack(cols, axis=1))


def write_bvh(tmp_path, bvh, name="take.bvh"):
    path = tmp_path / name
    bvh_mod.write(bvh, str(path))
    return str(path)


# CMU ASF joint names for the humanoid's joints
ASF_NAMES = {
    "Hips": "hip", "Spine": "lowerback", "Chest": "thorax", "Neck": "upperneck", "Head": "head",
    "LeftShoulder": "lclavicle", "LeftArm": "lhumerus", "LeftForeArm": "lradius",
    "LeftHand": "lhand", "LeftThumb": "lthumb", "RightUpLeg": "rfemur", "RightLeg": "rtibia",
    "RightFoot": "rfoot", "LeftUpLeg": "lfemur", "LeftLeg": "ltibia", "LeftToe": "ltoes",
}
STANDING_HEIGHT_CM = 170.0  # standing_clip: feet at 0, the top of the head at 170 cm
# the points standing_clip keeps on the floor: LeftToe's head and RightFoot's End Site
FLOOR_JOINT, FLOOR_END = "LeftToe", "RightFoot"


def standing_clip(n_frames=60, fps=30, lift_cm=0.0, seed=0):
    """The humanoid standing (legs still, their lowest points exactly on y = 0) while it
    turns, walks forward and moves its upper body; in centimetres. ``lift_cm`` moves the
    whole clip up (negative: under the floor)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    hips_y = 93.0  # HUMANOID's legs hang 93 cm below the hips
    upper = {"Spine", "Chest", "Neck", "Head", "LeftShoulder", "LeftArm", "LeftForeArm",
             "LeftHand"}
    joints, cols, index = [], [], {}
    for k, (name, parent, offset, end) in enumerate(HUMANOID):
        p = index[parent] if parent else -1
        offset = np.array(offset)
        if p < 0:
            offset = np.array([0.0, hips_y, 0.0])
            chans = ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation",
                     "Yrotation"]
            cols += [10.0 * np.sin(t), np.full_like(t, hips_y + lift_cm), 40.0 * t,
                     np.zeros_like(t), np.zeros_like(t), 30.0 * np.sin(0.8 * t)]
        else:
            chans = ["Zrotation", "Xrotation", "Yrotation"]
            for _ in chans:
                amp = rng.uniform(5, 25) if name in upper else 0.0
                cols.append(amp * np.sin(rng.uniform(0.5, 3.0) * t + rng.uniform(0, 6)))
        joints.append(bvh_mod.BvhJoint(name, p, offset, chans, end))
        index[name] = k
    return bvh_mod.Bvh(joints, 1.0 / fps, np.stack(cols, axis=1))


def rescaled(bvh, factor, names=None):
    """The same clip with every length (offsets, End Sites, position channels) times
    ``factor``; ``names`` renames joints (a dict)."""
    out = bvh.copy()
    for j, joint in enumerate(out.joints):
        joint.offset = joint.offset * factor
        if joint.end_site is not None:
            joint.end_site = joint.end_site * factor
        cols = out.position_channels(j)
        out.motion[:, cols[cols >= 0]] *= factor
        if names:
            joint.name = names.get(joint.name, joint.name)
    return out
