# SPDX-License-Identifier: GPL-3.0-or-later
"""Skeleton conventions: the canonical T-pose and the bone names of common rigs (no bpy).

The canonical skeleton (:mod:`..motion.canonical`) has non-anatomical joint frames: all-zero
rotations give a folded pose, every bone points along a local ±X axis. Retargeting needs a
*reference pose* whose meaning is the same on every rig, so :data:`TPOSE_LOCAL_QUATS` defines
one: a T-pose facing +Z (Y up, the character's left towards +X), legs straight down, arms
straight out with the palms down, feet flat. It was measured once on the Bandai Namco data:
the mean heading-normalised world rotation of each joint over the first frames of 40 standing
clips, each bone then swung (minimal rotation, so the twist about the bone is the data's) to
its T-pose direction, and the result made exactly left/right symmetric. Twist therefore
follows a relaxed human: palms that face the thighs standing face down in the T-pose.

The name tables list, for each supported rig convention, the bone that drives each canonical
joint. ``{s}`` in a name is the convention's side marker (``.L``/``.R``, ``_l``/``_r``,
``Left``/``Right``…).
"""
from __future__ import annotations

import numpy as np

from ..motion import canonical as _canon
from ..motion import rotations as _rot

JOINTS = _canon.JOINT_NAMES
PARENTS = _canon.PARENTS
INDEX = {name: j for j, name in enumerate(JOINTS)}

#: Local rotations of the canonical T-pose (w, x, y, z); joint 0 is the Hips' world rotation.
TPOSE_LOCAL_QUATS = np.array([
    (0.707107, 0.000000, 0.000000, 0.707107),  # Hips
    (0.706926, 0.706926, -0.015973, 0.015973),  # Spine
    (0.999745, 0.000000, 0.000000, -0.022589),  # Chest
    (1.000000, 0.000000, 0.000000, 0.000000),  # Neck
    (1.000000, 0.000000, 0.000000, 0.000000),  # Head
    (0.518876, -0.480361, -0.518897, -0.480382),  # Shoulder_L
    (0.994203, 0.107521, 0.000000, 0.000003),  # UpperArm_L
    (0.999115, -0.042052, 0.000000, -0.000004),  # LowerArm_L
    (0.999603, 0.028190, 0.000000, 0.000000),  # Hand_L
    (0.480382, 0.518897, -0.480361, 0.518876),  # Shoulder_R
    (0.994203, 0.107521, 0.000000, 0.000003),  # UpperArm_R
    (0.999115, -0.042052, 0.000000, -0.000004),  # LowerArm_R
    (0.999603, 0.028190, 0.000000, 0.000000),  # Hand_R
    (0.000040, -0.000255, -0.097590, 0.995227),  # UpperLeg_L
    (0.999986, -0.005329, -0.000257, 0.000014),  # LowerLeg_L
    (0.897347, 0.074480, -0.431696, -0.053485),  # Foot_L
    (0.992127, 0.000996, -0.125231, -0.000446),  # Toes_L
    (0.097590, 0.995227, 0.000040, 0.000255),  # UpperLeg_R
    (0.999986, -0.005329, -0.000257, 0.000014),  # LowerLeg_R
    (0.897347, 0.074480, -0.431696, -0.053485),  # Foot_R
    (0.992127, 0.000996, -0.125231, -0.000446),  # Toes_R
])
TPOSE_LOCAL_QUATS /= np.linalg.norm(TPOSE_LOCAL_QUATS, axis=1, keepdims=True)
TPOSE_LOCAL_QUATS.setflags(write=False)

#: Height of the Hips in the T-pose (cm): the ankles are then 11.6 cm above the floor (y = 0),
#: as in the data standing flat.
TPOSE_HIPS_HEIGHT = 93.9

#: The joint whose direction from a joint defines that joint's bone direction.
PRIMARY_CHILD = {
    "Hips": "Spine", "Spine": "Chest", "Chest": "Neck", "Neck": "Head",
    "Shoulder_L": "UpperArm_L", "UpperArm_L": "LowerArm_L", "LowerArm_L": "Hand_L",
    "Shoulder_R": "UpperArm_R", "UpperArm_R": "LowerArm_R", "LowerArm_R": "Hand_R",
    "UpperLeg_L": "LowerLeg_L", "LowerLeg_L": "Foot_L", "Foot_L": "Toes_L",
    "UpperLeg_R": "LowerLeg_R", "LowerLeg_R": "Foot_R", "Foot_R": "Toes_R",
}

#: Joints a rig must have for retargeting (one of Spine/Chest and one of Neck/Head too).
CORE_JOINTS = (
    "Hips",
    "UpperArm_L", "LowerArm_L", "Hand_L", "UpperArm_R", "LowerArm_R", "Hand_R",
    "UpperLeg_L", "LowerLeg_L", "Foot_L", "UpperLeg_R", "LowerLeg_R", "Foot_R",
)
#: Groups of which at least one joint must be mapped.
CORE_ANY = (("Spine", "Chest"), ("Neck", "Head"))

#: Left/right joint pairs (canonical names).
MIRROR = {}
for _a, _b in _canon.MIRROR_PAIRS:
    MIRROR[_a], MIRROR[_b] = _b, _a
del _a, _b


def tpose():
    """The canonical T-pose: ``(local_quats (21, 4), world_rotations (21, 3, 3), positions
    (21, 3))``, in canonical axes and centimetres, Hips at ``(0, TPOSE_HIPS_HEIGHT, 0)``."""
    q = np.array(TPOSE_LOCAL_QUATS)
    root = np.array([[0.0, TPOSE_HIPS_HEIGHT, 0.0]])
    pos, glob = _canon.canonical_forward_kinematics(q[None], root, return_rotations=True)
    return q, _rot.quat_to_matrix(glob[0]), pos[0]


def joint(base: str, side: str | None) -> str:
    """``joint("UpperArm", "L")`` → ``"UpperArm_L"``; ``joint("Hips", None)`` → ``"Hips"``."""
    return f"{base}_{side}" if side else base


def split_joint(name: str):
    """``"UpperArm_L"`` → ``("UpperArm", "L")``; ``"Hips"`` → ``("Hips", None)``."""
    if name.endswith(("_L", "_R")):
        return name[:-2], name[-1]
    return name, None


# =========================================================================== name tables

SIDED = ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "Toes")
CENTRE = ("Hips", "Spine", "Chest", "Neck", "Head")


class Convention:
    """Bone names of one rig family.

    ``bones`` maps a canonical base name (``"Hips"``, ``"UpperArm"``…) to candidate bone
    names, best first; ``{s}`` is replaced by ``sides[0]`` (left) or ``sides[1]`` (right).
    ``root`` lists candidates for a root bone above the hips (for root motion).
    ``signature`` names bones that identify the family when present.
    """

    def __init__(self, key, label, bones, sides=("", ""), root=(), signature=(), prefix="",
                 case_sensitive=True):
        self.key = key
        self.label = label
        self.bones = bones
        self.sides = sides
        self.root = tuple(root)
        self.signature = tuple(signature)
        self.prefix = prefix
        self.case_sensitive = case_sensitive

    def candidates(self, joint_name: str):
        base, side = split_joint(joint_name)
        names = self.bones.get(base, ())
        if side is None:
            return list(names)
        marker = self.sides[0] if side == "L" else self.sides[1]
        return [n.replace("{s}", marker) for n in names]

    def preset(self) -> dict:
        """The first candidate of every joint: a mapping in canonical joint names."""
        out = {}
        for j in JOINTS:
            cands = self.candidates(j)
            out[j] = cands[0] if cands else None
        return out


CONVENTIONS = (
    Convention(
        "RIGIFY", "Rigify (generated rig, FK controls)",
        {
            "Hips": ["torso"], "Spine": ["spine_fk.002"], "Chest": ["spine_fk.003", "chest"],
            "Neck": ["neck"], "Head": ["head"],
            "Shoulder": ["shoulder{s}"],
            "UpperArm": ["upper_arm_fk{s}", "upper_arm.fk{s}"],
            "LowerArm": ["forearm_fk{s}", "forearm.fk{s}"],
            "Hand": ["hand_fk{s}", "hand.fk{s}"],
            "UpperLeg": ["thigh_fk{s}", "thigh.fk{s}"],
            "LowerLeg": ["shin_fk{s}", "shin.fk{s}"],
            "Foot": ["foot_fk{s}", "foot.fk{s}"],
            "Toes": ["toe_fk{s}", "toe{s}"],
        },
        sides=(".L", ".R"), root=("root",),
        signature=("torso", "upper_arm_fk.L", "thigh_fk.L", "ORG-spine", "upper_arm.fk.L"),
    ),
    Convention(
        "METARIG", "Rigify / Blender human metarig",
        {
            "Hips": ["spine"], "Spine": ["spine.001"], "Chest": ["spine.003", "spine.002"],
            "Neck": ["spine.004"], "Head": ["spine.006", "spine.005"],
            "Shoulder": ["shoulder{s}"], "UpperArm": ["upper_arm{s}"],
            "LowerArm": ["forearm{s}"], "Hand": ["hand{s}"],
            "UpperLeg": ["thigh{s}"], "LowerLeg": ["shin{s}"], "Foot": ["foot{s}"],
            "Toes": ["toe{s}"],
        },
        sides=(".L", ".R"), root=("root",),
        signature=("spine.001", "spine.004", "upper_arm.L", "heel.02.L", "pelvis.L"),
    ),
    Convention(
        # MotionBuilder / HumanIK names without a namespace (Mixamo's names with its
        # ``mixamorig:`` namespace are told apart by that prefix)
        "HUMANIK", "MotionBuilder HumanIK",
        {
            "Hips": ["Hips"], "Spine": ["Spine"], "Chest": ["Spine2", "Spine1"],
            "Neck": ["Neck"], "Head": ["Head"],
            "Shoulder": ["{s}Shoulder"], "UpperArm": ["{s}Arm"], "LowerArm": ["{s}ForeArm"],
            "Hand": ["{s}Hand"], "UpperLeg": ["{s}UpLeg"], "LowerLeg": ["{s}Leg"],
            "Foot": ["{s}Foot"], "Toes": ["{s}ToeBase"],
        },
        sides=("Left", "Right"), root=("Reference",),
        signature=("Hips", "LeftUpLeg", "LeftForeArm", "LeftToeBase"),
    ),
    Convention(
        "MIXAMO", "Mixamo",
        {
            "Hips": ["Hips"], "Spine": ["Spine"], "Chest": ["Spine2", "Spine1"],
            "Neck": ["Neck"], "Head": ["Head"],
            "Shoulder": ["{s}Shoulder"], "UpperArm": ["{s}Arm"], "LowerArm": ["{s}ForeArm"],
            "Hand": ["{s}Hand"], "UpperLeg": ["{s}UpLeg"], "LowerLeg": ["{s}Leg"],
            "Foot": ["{s}Foot"], "Toes": ["{s}ToeBase"],
        },
        sides=("Left", "Right"),
        signature=("mixamorig:Hips", "LeftUpLeg", "LeftForeArm", "Spine2"), prefix="mixamorig:",
    ),
    Convention(
        "UE5", "Unreal Engine 5 mannequin",
        {
            "Hips": ["pelvis"], "Spine": ["spine_01"], "Chest": ["spine_05", "spine_04"],
            "Neck": ["neck_01"], "Head": ["head"],
            "Shoulder": ["clavicle{s}"], "UpperArm": ["upperarm{s}"],
            "LowerArm": ["lowerarm{s}"], "Hand": ["hand{s}"],
            "UpperLeg": ["thigh{s}"], "LowerLeg": ["calf{s}"], "Foot": ["foot{s}"],
            "Toes": ["ball{s}"],
        },
        sides=("_l", "_r"), root=("root",),
        signature=("spine_05", "neck_02", "spine_04"),
    ),
    Convention(
        "UE4", "Unreal Engine 4 mannequin",
        {
            "Hips": ["pelvis"], "Spine": ["spine_01"], "Chest": ["spine_03"],
            "Neck": ["neck_01"], "Head": ["head"],
            "Shoulder": ["clavicle{s}"], "UpperArm": ["upperarm{s}"],
            "LowerArm": ["lowerarm{s}"], "Hand": ["hand{s}"],
            "UpperLeg": ["thigh{s}"], "LowerLeg": ["calf{s}"], "Foot": ["foot{s}"],
            "Toes": ["ball{s}"],
        },
        sides=("_l", "_r"), root=("root",),
        signature=(),
    ),
    Convention(
        "CC", "Reallusion Character Creator (CC_Base)",
        {
            "Hips": ["CC_Base_Hip"], "Spine": ["CC_Base_Waist"],
            "Chest": ["CC_Base_Spine02", "CC_Base_Spine01"],
            "Neck": ["CC_Base_NeckTwist01"], "Head": ["CC_Base_Head"],
            "Shoulder": ["CC_Base_{s}_Clavicle"], "UpperArm": ["CC_Base_{s}_Upperarm"],
            "LowerArm": ["CC_Base_{s}_Forearm"], "Hand": ["CC_Base_{s}_Hand"],
            "UpperLeg": ["CC_Base_{s}_Thigh"], "LowerLeg": ["CC_Base_{s}_Calf"],
            "Foot": ["CC_Base_{s}_Foot"], "Toes": ["CC_Base_{s}_ToeBase"],
        },
        sides=("L", "R"), root=("CC_Base_BoneRoot", "RL_BoneRoot"),
        signature=("CC_Base_Hip", "CC_Base_Waist", "CC_Base_L_Upperarm"), case_sensitive=False,
    ),
    Convention(
        # DAZ Studio Genesis 3 / 8 (bend and twist bones: the bend bones are driven), then
        # Genesis 1 / 2 and Poser figures
        "DAZ", "DAZ / Poser (Genesis)",
        {
            "Hips": ["hip"], "Spine": ["abdomenLower", "abdomen"],
            "Chest": ["chestUpper", "chest", "chestLower", "abdomen2"],
            "Neck": ["neckLower", "neck"], "Head": ["head"],
            "Shoulder": ["{s}Collar"], "UpperArm": ["{s}ShldrBend", "{s}Shldr"],
            "LowerArm": ["{s}ForearmBend", "{s}ForeArm", "{s}Forearm"], "Hand": ["{s}Hand"],
            "UpperLeg": ["{s}ThighBend", "{s}Thigh"], "LowerLeg": ["{s}Shin"],
            "Foot": ["{s}Foot"], "Toes": ["{s}Toe", "{s}Metatarsals"],
        },
        sides=("l", "r"),
        signature=("lCollar", "lShldrBend", "lThighBend", "abdomenLower", "lShldr", "lShin"),
    ),
    Convention(
        # CMU motion-capture ASF skeletons (and BVH files converted from them)
        "CMU", "CMU ASF",
        {
            "Hips": ["root", "hip"], "Spine": ["lowerback"], "Chest": ["thorax", "upperback"],
            "Neck": ["lowerneck", "upperneck"], "Head": ["head"],
            "Shoulder": ["{s}clavicle"], "UpperArm": ["{s}humerus"], "LowerArm": ["{s}radius"],
            "Hand": ["{s}wrist", "{s}hand"], "UpperLeg": ["{s}femur"], "LowerLeg": ["{s}tibia"],
            "Foot": ["{s}foot"], "Toes": ["{s}toes"],
        },
        sides=("l", "r"),
        signature=("lhipjoint", "lfemur", "lhumerus", "lowerback", "upperneck"),
    ),
    Convention(
        # 3ds Max Biped (``Bip01`` or ``Bip001``): the thighs hang from the first spine bone,
        # the clavicles from the neck
        "BIPED", "3ds Max Biped",
        {
            "Hips": ["Bip01 Pelvis", "Bip001 Pelvis"], "Spine": ["Bip01 Spine", "Bip001 Spine"],
            "Chest": ["Bip01 Spine2", "Bip001 Spine2", "Bip01 Spine3", "Bip001 Spine3",
                      "Bip01 Spine1", "Bip001 Spine1"],
            "Neck": ["Bip01 Neck", "Bip001 Neck"], "Head": ["Bip01 Head", "Bip001 Head"],
            "Shoulder": ["Bip01 {s} Clavicle", "Bip001 {s} Clavicle"],
            "UpperArm": ["Bip01 {s} UpperArm", "Bip001 {s} UpperArm"],
            "LowerArm": ["Bip01 {s} Forearm", "Bip001 {s} Forearm"],
            "Hand": ["Bip01 {s} Hand", "Bip001 {s} Hand"],
            "UpperLeg": ["Bip01 {s} Thigh", "Bip001 {s} Thigh"],
            "LowerLeg": ["Bip01 {s} Calf", "Bip001 {s} Calf"],
            "Foot": ["Bip01 {s} Foot", "Bip001 {s} Foot"],
            "Toes": ["Bip01 {s} Toe0", "Bip001 {s} Toe0"],
        },
        sides=("L", "R"), root=("Bip01", "Bip001"),
        signature=("Bip01", "Bip001", "Bip01 Pelvis", "Bip001 Pelvis"),
    ),
    Convention(
        "CANONICAL", "Sparse Motion canonical (Bandai Namco BVH)",
        {b: [b + "{s}"] if b in SIDED else [b] for b in CENTRE + SIDED},
        sides=("_L", "_R"), root=("joint_Root",),
        signature=("UpperArm_L", "LowerLeg_R", "Toes_L"),
    ),
)
CONVENTIONS_BY_KEY = {c.key: c for c in CONVENTIONS}

# =========================================================================== generic names

#: Tokens (after splitting a bone name) that say "not a body joint to drive".
EXCLUDE_TOKENS = frozenset({
    "twist", "roll", "ik", "pole", "target", "tgt", "end", "nub", "tip", "helper",
    "corrective", "socket", "prop", "weapon", "attach", "tweak", "parent", "mch", "org", "def",
    "thumb", "index", "middle", "ring", "pinky", "pinkie", "finger", "fingers", "palm", "heel",
    "metacarpal", "carpal", "phalanx",
    "breast", "eye", "eyes", "jaw", "teeth", "tongue", "lip", "lips", "brow", "ear", "nose",
    "cheek", "hair", "tail", "wing", "skirt", "cloth", "bag", "vis", "wgt", "hose", "pad",
    "offset", "follow", "pivot", "slot", "dummy", "bend", "upvector", "float", "hinge",
})
#: Prefixes of mechanism / deform bones in generated rigs.
EXCLUDE_PREFIXES = ("MCH-", "ORG-", "DEF-", "VIS_", "WGT-", "IK-", "ik_", "IK_")

#: Ordered (keyword, joint base) rules on a bone name's joined non-side tokens. The first rule
#: whose keyword equals a token, or is contained in the joined tokens, wins.
KEYWORDS = (
    ("forearm", "LowerArm"), ("lowerarm", "LowerArm"), ("loarm", "LowerArm"),
    ("elbow", "LowerArm"),
    ("upperarm", "UpperArm"), ("uparm", "UpperArm"), ("humerus", "UpperArm"),
    ("clavicle", "Shoulder"), ("collar", "Shoulder"), ("shoulder", "Shoulder"),
    ("hand", "Hand"), ("wrist", "Hand"),
    ("upleg", "UpperLeg"), ("upperleg", "UpperLeg"), ("thigh", "UpperLeg"), ("femur", "UpperLeg"),
    ("lowerleg", "LowerLeg"), ("loleg", "LowerLeg"), ("calf", "LowerLeg"), ("shin", "LowerLeg"),
    ("knee", "LowerLeg"), ("tibia", "LowerLeg"),
    ("foot", "Foot"), ("ankle", "Foot"),
    ("toebase", "Toes"), ("toes", "Toes"), ("toe", "Toes"), ("ball", "Toes"),
    ("arm", "UpperArm"),
    ("leg", "Leg"),  # upper or lower: decided by the hierarchy
    ("pelvis", "Hips"), ("hips", "Hips"), ("hip", "Hips"),
    ("upperchest", "Chest"), ("chest", "Chest"), ("thorax", "Chest"), ("ribcage", "Chest"),
    ("spine", "Spine"), ("waist", "Spine"), ("abdomen", "Spine"),
    ("lowerback", "Spine"),
    ("neck", "Neck"),
    ("head", "Head"),
)
LEFT_TOKENS = frozenset({"l", "left", "lft"})
RIGHT_TOKENS = frozenset({"r", "right", "rgt"})
