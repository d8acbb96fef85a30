# SPDX-License-Identifier: GPL-3.0-or-later
"""The keyframe engine's FK (keyframes/rig.py) against Blender's own pose evaluation."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from mathutils import Matrix, Vector  # noqa: E402

import bl_fixtures as fx  # noqa: E402
from sparse_motion.blender import fcurve_io  # noqa: E402
from sparse_motion.keyframes.rig import ChannelMap, bone_data_path  # noqa: E402

MODES = ["QUATERNION", "XYZ", "ZXY", "AXIS_ANGLE", "YXZ", "ZYX"]
PROPS = {"QUATERNION": ("rotation_quaternion", 4), "AXIS_ANGLE": ("rotation_axis_angle", 4)}


def build(rng):
    fx.reset()
    data = bpy.data.armatures.new("A")
    arm = bpy.data.objects.new("A", data)
    bpy.context.scene.collection.objects.link(arm)
    parent = bpy.data.objects.new("P", None)
    bpy.context.scene.collection.objects.link(parent)
    parent.location, parent.rotation_euler, parent.scale = (1, 2, 3), (0.3, 0.1, 0.7), (2, 2, 2)
    arm.parent = parent
    arm.matrix_parent_inverse = Matrix.Translation((0.5, 0, 0))
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for i in range(len(MODES)):
        b = data.edit_bones.new(f"b{i}")
        b.head = Vector(rng.normal(size=3))
        b.tail = b.head + Vector(rng.normal(size=3))
        b.roll = float(rng.normal())
        if bones:
            b.parent = bones[max(0, i - 2)] if i % 2 else bones[-1]
            b.use_connect = i == 2
        bones.append(b)
    bpy.ops.object.mode_set(mode="OBJECT")
    channels = [("location", 0), ("rotation_euler", 2), ("scale", 1)]
    for i, mode in enumerate(MODES):
        pb = arm.pose.bones[f"b{i}"]
        pb.rotation_mode = mode
        prop, size = PROPS.get(mode, ("rotation_euler", 3))
        for name, n in ((prop, size), ("location", 3), ("scale", 3)):
            channels += [(bone_data_path(pb.name, name), k) for k in range(n)]
    return arm, channels


def blender_points(arm):
    bpy.context.view_layer.update()
    out = []
    for bone in fcurve_io.topological_bones(arm.data.bones):
        pb = arm.pose.bones[bone.name]
        out += [arm.matrix_world @ pb.head, arm.matrix_world @ pb.tail]
    return np.array(out) * 100.0


def test_fk_matches_blender_pose_evaluation():
    rng = np.random.default_rng(7)
    arm, channels = build(rng)
    values = rng.normal(size=(5, len(channels))) * 0.6
    scale_cols = [k for k, (path, _) in enumerate(channels) if path.endswith("scale")]
    values[:, scale_cols] = 1 + 0.3 * values[:, scale_cols]
    cmap = ChannelMap(fcurve_io.rig_from_object(arm), channels)
    ours = cmap.points(values)
    size = np.ptp(ours.reshape(-1, 3), axis=0).max()
    for f in range(len(values)):
        for (path, idx), v in zip(channels, values[f]):
            owner, _, prop = path.rpartition(".")
            getattr(arm.path_resolve(owner) if owner else arm, prop)[idx] = v
        np.testing.assert_allclose(ours[f], blender_points(arm), atol=1e-5 * size)
