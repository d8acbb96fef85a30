# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from sparse_motion.motion import bvh as B
from sparse_motion.motion import rotations as R
from sparse_motion.motion import skeleton as S

P6 = ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]


def _test_bvh(frames=6, seed=0):
    """A small skeleton exercising branches, 3-channel joints in several rotation orders,
    position channels on a non-root joint, a joint without channels and End Sites."""
    rng = np.random.default_rng(seed)
    joints = [
        B.BvhJoint("Hips", -1, [1, 2, 3], P6),
        B.BvhJoint("Spine", 0, [0, 10, 0.5], ["Xrotation", "Yrotation", "Zrotation"]),
        B.BvhJoint("Neck", 1, [0, 8, 1], ["Yrotation", "Zrotation", "Xrotation"], [0, 4, 0]),
        B.BvhJoint("ArmL", 1, [5, 6, 0],
                   ["Xposition", "Yposition", "Zposition", "Yrotation", "Xrotation", "Zrotation"]),
        B.BvhJoint("HandL", 3, [7, 0, 0], ["Zrotation", "Yrotation", "Xrotation"], [2, 0, 0]),
        B.BvhJoint("LegL", 0, [-3, -2, 0], ["Xrotation", "Zrotation", "Yrotation"]),
        B.BvhJoint("FootL", 5, [0, -15, 1], [], [0, 0, 4]),
        B.BvhJoint("LegR", 0, [3, -2, 0], ["Zrotation", "Xrotation", "Yrotation"]),
        B.BvhJoint("FootR", 7, [0, -15, 1], ["Yrotation", "Xrotation", "Zrotation"], [0, -1, 4]),
    ]
    C = sum(len(j.channels) for j in joints)
    b = B.Bvh(joints, 1 / 30, np.round(rng.uniform(-170, 170, size=(frames, C)), 4))
    for j, jt in enumerate(joints):
        for a, col in enumerate(b.position_channels(j)):
            if col >= 0:
                b.motion[:, col] = np.round(jt.offset[a] + rng.normal(size=frames) * 3, 4)
    return b


def _naive_fk(b):
    """Reference FK with 4x4 matrices, one frame at a time."""
    F, J = b.num_frames, b.num_joints
    out = np.zeros((F, J, 3))
    for f in range(F):
        mats = []
        for j, jt in enumerate(b.joints):
            t = jt.offset.copy()
            pc = b.position_channels(j)
            if np.any(pc >= 0):
                t = np.array([b.motion[f, c] if c >= 0 else 0.0 for c in pc])
            rm = np.eye(3)
            for ch, col in zip(jt.channels, range(b.channel_slices()[j].start, 10 ** 9)):
                if ch.endswith("rotation"):
                    e = np.zeros(3)
                    e["XYZ".index(ch[0])] = np.deg2rad(b.motion[f, col])
                    rm = rm @ R.euler_to_matrix(e)
            m = np.eye(4)
            m[:3, :3] = rm
            m[:3, 3] = t
            if jt.parent >= 0:
                m = mats[jt.parent] @ m
            mats.append(m)
            out[f, j] = m[:3, 3]
    return out


def test_skeleton_construction():
    b = _test_bvh()
    sk = S.Skeleton.from_bvh(b)
    assert sk.num_joints == 9 and len(sk) == 9
    assert sk.index("Neck") == 2
    assert sk.end_site_joints.tolist() == [2, 4, 6, 8]
    assert sk.children(0).tolist() == [1, 5, 7]
    np.testing.assert_allclose(sk.rest_positions()[2], [1, 20, 4.5])
    sk2 = S.Skeleton(sk.names, sk.parents, sk.offsets, {"Neck": [0, 4, 0], 4: [2, 0, 0]})
    assert sk2.end_site_joints.tolist() == [2, 4]
    with pytest.raises(ValueError, match="topologically"):
        S.Skeleton(["a", "b"], [-1, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="unique"):
        S.Skeleton(["a", "a"], [-1, 0], np.zeros((2, 3)))
    with pytest.raises(KeyError):
        sk.index("nope")


def test_fk_matches_naive_matrices_and_batches():
    b = _test_bvh(frames=5)
    pos, glob = S.bvh_forward_kinematics(b, return_rotations=True)
    np.testing.assert_allclose(pos, _naive_fk(b), atol=1e-9)
    sk = S.Skeleton.from_bvh(b)
    q = b.local_quaternions()
    jt = b.local_translations()
    # batched over a leading dim, and matrices accepted as input
    q2 = np.stack([q, q[::-1]])
    jt2 = np.stack([jt, jt[::-1]])
    pos2 = S.forward_kinematics(sk, q2, None, jt2)
    assert pos2.shape == (2, 5, 9, 3)
    np.testing.assert_allclose(pos2[0], pos, atol=1e-12)
    np.testing.assert_allclose(pos2[1], pos[::-1], atol=1e-12)
    np.testing.assert_allclose(S.forward_kinematics(sk, b.local_rotations_matrix(), None, jt),
                               pos, atol=1e-9)
    # root_translation overrides joint 0; NaN entries in joint_translations mean "offset"
    jt_nan = np.full_like(jt, np.nan)
    rest = S.forward_kinematics(sk, R.quat_identity((5, 9)), b.root_translation(), jt_nan)
    np.testing.assert_allclose(rest - rest[:, :1], np.broadcast_to(
        sk.rest_positions() - sk.rest_positions()[:1], rest.shape), atol=1e-12)
    np.testing.assert_allclose(rest[:, 0], b.motion[:, :3])
    # global rotations
    np.testing.assert_allclose(R.quat_to_matrix(glob[:, 4]),
                               b.local_rotations_matrix()[:, 0] @ b.local_rotations_matrix()[:, 1]
                               @ b.local_rotations_matrix()[:, 3]
                               @ b.local_rotations_matrix()[:, 4], atol=1e-12)
    es = S.end_site_positions(sk, pos, glob)
    assert es.shape == (5, 4, 3)
    np.testing.assert_allclose(es[:, 1], pos[:, 4] + np.einsum(
        "fij,j->fi", R.quat_to_matrix(glob[:, 4]), [2, 0, 0]), atol=1e-12)


def test_fk_rejects_bad_shapes():
    sk = S.Skeleton(["a", "b"], [-1, 0], [[0, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError):
        S.forward_kinematics(sk, np.zeros((4, 3, 4)))
    with pytest.raises(ValueError):
        S.forward_kinematics(sk, np.zeros((4, 2, 5)))


@pytest.fixture(scope="module")
def blender():
    try:
        import bpy
        import addon_utils
        from bpy_extras.io_utils import axis_conversion
    except Exception:  # pragma: no cover
        pytest.skip("bpy not available")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("io_anim_bvh")  # bundled add-on providing bpy.ops.import_anim.bvh
    return bpy, axis_conversion


def test_fk_matches_blender_import(blender, tmp_path):
    """Our FK equals Blender's own BVH import (pose bone heads and End Site tails)."""
    bpy, axis_conversion = blender
    b = _test_bvh(frames=6, seed=3)
    path = tmp_path / "fk_test.bvh"
    B.write(b, path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    res = bpy.ops.import_anim.bvh(filepath=str(path), axis_forward="-Z", axis_up="Y",
                                  global_scale=1.0, frame_start=1, rotate_mode="NATIVE")
    assert res == {"FINISHED"}
    arm = [o for o in bpy.data.objects if o.type == "ARMATURE"][0]
    conv = np.array(axis_conversion(from_forward="-Z", from_up="Y").to_3x3())  # Y-up -> Z-up
    pos, glob = S.bvh_forward_kinematics(b, return_rotations=True)
    sk = S.Skeleton.from_bvh(b)
    ends = S.end_site_positions(sk, pos, glob)
    size = np.abs(pos).max()
    scene = bpy.context.scene
    for f in range(b.num_frames):
        scene.frame_set(f + 1)
        bl = arm.matrix_world
        heads = np.array([bl @ arm.pose.bones[n].head for n in b.names])
        np.testing.assert_allclose(heads, pos[f] @ conv.T, atol=1e-4 * size)
        tails = np.array([bl @ arm.pose.bones[b.names[j]].tail for j in sk.end_site_joints])
        np.testing.assert_allclose(tails, ends[f] @ conv.T, atol=1e-4 * size)
        # global rotation: pose matrix = conv R_global conv^T @ rest orientation
        for j, n in enumerate(b.names):
            pb = arm.pose.bones[n]
            rest = np.array(pb.bone.matrix_local.to_3x3())
            got = conv.T @ np.array(pb.matrix.to_3x3()) @ rest.T @ conv
            np.testing.assert_allclose(got, R.quat_to_matrix(glob[f, j]), atol=1e-4)
