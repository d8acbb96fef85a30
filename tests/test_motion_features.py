# SPDX-License-Identifier: GPL-3.0-or-later
"""Canonical skeleton, Bandai -> canonical conversion, features and mirroring (synthetic data,
no /work/shared needed)."""
import numpy as np
import pytest

from sparse_motion.motion import bvh as B
from sparse_motion.motion import canonical as C
from sparse_motion.motion import features as Fe
from sparse_motion.motion import rotations as R
from sparse_motion.motion import skeleton as S

SK = C.SKELETON
J = SK.num_joints


def _aa_quat(v):
    v = np.asarray(v, dtype=np.float64)
    ang = np.linalg.norm(v, axis=-1, keepdims=True)
    axis = v / np.maximum(ang, 1e-12)
    return np.concatenate([np.cos(ang / 2), axis * np.sin(ang / 2)], axis=-1)


def synth_motion(frames=40, seed=0, turn=2.0, speed=(3.0, 1.5), yaw0=0.3):
    """Smooth random motion of the canonical skeleton: an upright Hips (local X up) that
    turns and travels, every joint wobbling."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, frames)[:, None, None]
    aa = rng.normal(size=(1, J, 3)) * 0.4 + 0.4 * np.sin(7 * t + rng.normal(size=(1, J, 3)))
    q = _aa_quat(aa)
    upright = _aa_quat([0.0, 0.0, np.pi / 2])  # local X (spine) -> world Y, local Z -> +Z
    yaw = _aa_quat(np.stack([np.zeros(frames), yaw0 + np.linspace(0, turn, frames),
                             np.zeros(frames)], -1))
    q[:, 0] = R.quat_mul(yaw, R.quat_mul(upright, _aa_quat(aa[:, 0] * 0.3)))
    k = np.arange(frames)
    x = np.stack([10 + speed[0] * k, 92 + 3 * np.sin(k / 3), -5 + speed[1] * k], -1)
    return q, x


def same_rotation(a, b, atol=1e-9):
    np.testing.assert_allclose(R.quat_to_matrix(a), R.quat_to_matrix(b), atol=atol)


# =========================================================================== skeleton


def test_canonical_skeleton():
    assert J == 21 and SK.names[0] == "Hips" and SK.parents[0] == -1
    assert "joint_Root" not in SK.names
    assert isinstance(SK, S.Skeleton)
    assert list(SK.parents) == list(C.PARENTS)
    # symmetric offsets stay within 0.03 cm of the data's
    assert np.abs(C.OFFSETS - C.DATA_OFFSETS).max() < 0.03
    m = SK.mirror_index
    assert np.array_equal(m[m], np.arange(J))
    assert SK.names[m[SK.index("Hand_L")]] == "Hand_R"
    assert SK.names[m[SK.index("Spine")]] == "Spine"
    for j in range(1, J):  # o_j = T_parent o_partner exactly
        np.testing.assert_array_equal(SK.offsets[j],
                                      SK.mirror_signs[SK.parents[j]] * SK.offsets[m[j]])
    assert [SK.names[j] for j in SK.foot_joints] == list(C.FOOT_JOINTS)
    assert SK.up_axis == "Y" and C.FPS == 20
    c = SK.copy()
    assert isinstance(c, C.CanonicalSkeleton) and c.names == SK.names
    with pytest.raises(ValueError, match="symmetric"):
        C.CanonicalSkeleton(C.JOINT_NAMES, C.PARENTS, C.DATA_OFFSETS)
    with pytest.raises(ValueError, match="Y-up"):
        C.CanonicalSkeleton(C.JOINT_NAMES, C.PARENTS, C.OFFSETS, up_axis="Z")
    with pytest.raises(ValueError, match="unknown joint"):
        C.CanonicalSkeleton(C.JOINT_NAMES, C.PARENTS, C.OFFSETS,
                            mirror_pairs=(("Hand_L", "Paw_R"),))


# =========================================================================== conversion


def _bandai_bvh(frames=12, seed=1, root_motion=True):
    """A BVH in the Bandai file layout (static-or-moving joint_Root + 21 joints, 6 channels
    each), built from synthetic canonical motion."""
    q, x = synth_motion(frames, seed)
    b = C.canonical_to_bvh(q, x, 30, bandai_layout=True)
    if root_motion:  # the 4 Bandai clips whose joint_Root moves; also rotate it
        rng = np.random.default_rng(seed)
        b.motion[:, 0:3] = rng.normal(size=(frames, 3)) * 5
        b.motion[:, 3:6] = rng.normal(size=(frames, 3)) * 10
    return B.loads(B.dumps(b))


def test_bandai_to_canonical_fk_matches_bvh_fk():
    b = _bandai_bvh()
    assert b.names[0] == "joint_Root" and b.num_joints == 22
    q, x = C.bandai_to_canonical(b, fps=None)
    assert q.shape == (12, 21, 4) and x.shape == (12, 3)
    p = C.canonical_forward_kinematics(q, x)
    pb = S.bvh_forward_kinematics(b)
    np.testing.assert_allclose(p, pb[:, 1:], atol=1e-9)


def test_canonical_to_bvh_round_trip_plain_layout():
    q, x = synth_motion(9, 4)
    b = C.canonical_to_bvh(q, x, 20)
    assert b.num_joints == 21 and b.joints[1].channels == ["Zrotation", "Xrotation", "Yrotation"]
    q2, x2 = C.bandai_to_canonical(B.loads(B.dumps(b)), fps=None)
    same_rotation(q, q2)
    np.testing.assert_allclose(x, x2, atol=1e-12)


def test_resample_30_to_20():
    F = 31
    ang = np.linspace(0, 3.0, F)  # constant angular velocity: slerp is exact
    q = np.repeat(_aa_quat(np.stack([ang * 0, ang, ang * 0], -1))[:, None], J, axis=1)
    x = np.stack([np.arange(F) * 2.0, np.zeros(F), np.zeros(F)], -1)
    qo, xo = C.resample(q, x, 30, 20)
    assert len(qo) == (F - 1) * 2 // 3 + 1 == 21
    ang_o = np.linspace(0, 3.0, F)[0] + np.arange(21) * 1.5 * (3.0 / (F - 1))
    same_rotation(qo, np.repeat(_aa_quat(np.stack([ang_o * 0, ang_o, ang_o * 0], -1))[:, None],
                                J, axis=1), atol=1e-12)
    np.testing.assert_allclose(xo[:, 0], np.arange(21) * 3.0)
    np.testing.assert_allclose(qo[::2], q[::3], atol=1e-15)  # even output frames: source frames
    # identity resample, and the frame-time snapping of Bandai's 0.0333333
    q1, x1 = C.resample(q, x, 30, 30)
    np.testing.assert_array_equal(x1, x)
    assert C.snap_fps(1 / 0.0333333) == 30.0
    b = _bandai_bvh(13)
    q2, _ = C.bandai_to_canonical(b)
    assert len(q2) == 9


def test_bandai_to_canonical_errors():
    b = _bandai_bvh(5, root_motion=False)
    with pytest.raises(C.CanonicalError, match="Bvh"):
        C.bandai_to_canonical("not a bvh")
    bad = b.copy()
    bad.joints[5].name = "Skull"  # Head renamed
    with pytest.raises(C.CanonicalError, match="lacks canonical joints"):
        C.bandai_to_canonical(bad)
    bad = b.copy()
    bad.joints[bad.index("Hand_L")].parent = bad.index("Chest")
    with pytest.raises(C.CanonicalError, match="parent"):
        C.bandai_to_canonical(bad)
    bad = b.copy()
    bad.joints[bad.index("LowerLeg_L")].offset = bad.joints[bad.index("LowerLeg_L")].offset * 1.2
    with pytest.raises(C.CanonicalError, match="canonical"):
        C.bandai_to_canonical(bad)
    bad = b.copy()
    col = bad.position_channels(bad.index("Neck"))[1]
    bad.motion[2, col] += 1.0
    with pytest.raises(C.CanonicalError, match="animated translation"):
        C.bandai_to_canonical(bad)
    joints = b.copy().joints + [B.BvhJoint("Tail", 1, [0, 0, -5], [])]
    with pytest.raises(C.CanonicalError, match="lacks: \\['Tail'\\]"):
        C.bandai_to_canonical(B.Bvh(joints, b.frame_time, b.motion))
    bad = b.copy()
    bad.motion[1, 7] = np.nan
    with pytest.raises(C.CanonicalError, match="invalid BVH"):
        C.bandai_to_canonical(bad)
    with pytest.raises(C.CanonicalError, match="frames"):
        C.bandai_to_canonical(B.Bvh(b.joints, b.frame_time, np.zeros((0, b.num_channels))))


# =========================================================================== features


def test_layout_and_shapes():
    lay = Fe.feature_layout()
    assert list(lay) == ["root_rot_vel", "root_lin_vel", "root_height", "joint_positions",
                         "rotations", "joint_velocities", "foot_contacts"]
    sizes = [s.stop - s.start for s in lay.values()]
    assert sizes == [1, 2, 1, 60, 126, 63, 4]
    assert all(a.stop == b.start for a, b in zip(list(lay.values()), list(lay.values())[1:]))
    assert Fe.feature_dim() == 257 == lay["foot_contacts"].stop
    q, x = synth_motion(17)
    f = Fe.motion_to_features(q, x, SK, 20)
    assert f.shape == (17, 257) and f.dtype == np.float64
    # frame 0's differences copy frame 1's
    for name in ("root_rot_vel", "root_lin_vel", "joint_velocities"):
        np.testing.assert_array_equal(f[0, lay[name]], f[1, lay[name]])
    np.testing.assert_allclose(f[:, lay["root_height"]][:, 0], x[:, 1])
    one = Fe.motion_to_features(q[:1], x[:1], SK, 20)
    assert one.shape == (1, 257)
    assert np.all(one[0, lay["joint_velocities"]] == 0) and one[0, 0] == 0


def test_features_round_trip_identity():
    q, x = synth_motion(50, 2)
    f = Fe.motion_to_features(q, x, SK, 20)
    q2, x2 = Fe.features_to_motion(f, SK)
    f2 = Fe.motion_to_features(q2, x2, SK, 20)
    np.testing.assert_allclose(f2, f, atol=1e-10, rtol=0)
    # float32 storage round trip stays at float32 precision
    f32 = f.astype(np.float32)
    f3 = Fe.motion_to_features(*Fe.features_to_motion(f32, SK), SK, 20)
    lay = Fe.feature_layout()
    rot = lay["rotations"]
    np.testing.assert_allclose(f3[:, rot], f32[:, rot], atol=1e-5)


def test_motion_round_trip_up_to_start_convention():
    q, x = synth_motion(45, 3, yaw0=2.5)
    f = Fe.motion_to_features(q, x, SK, 20)
    q2, x2 = Fe.features_to_motion(f, SK)
    qc, xc = Fe.canonicalize_start(q, x)
    # the convention: frame 0 faces +Z with the root above the origin, at its own height
    assert abs(Fe.heading_angles(qc[0, 0])) < 1e-12
    np.testing.assert_allclose(xc[0], [0.0, x[0, 1], 0.0], atol=1e-12)
    same_rotation(q2, qc)
    np.testing.assert_allclose(x2, xc, atol=1e-9)
    # non-root local rotations are recovered as they were
    same_rotation(q2[:, 1:], q[:, 1:])
    # and the start convention loses nothing else: FK is a rigid yaw+shift of the original
    p, p2 = C.canonical_forward_kinematics(q, x), C.canonical_forward_kinematics(q2, x2)
    th = Fe.heading_angles(q[0, 0])
    d = p - np.array([x[0, 0], 0.0, x[0, 2]])
    c, s = np.cos(-th), np.sin(-th)
    rot = np.stack([c * d[..., 0] + s * d[..., 2], d[..., 1], -s * d[..., 0] + c * d[..., 2]], -1)
    np.testing.assert_allclose(p2, rot, atol=1e-9)


def test_features_invariant_to_start_yaw_and_position():
    q, x = synth_motion(30, 5)
    f = Fe.motion_to_features(q, x, SK, 20)
    qc, xc = Fe.canonicalize_start(q, x)
    np.testing.assert_allclose(Fe.motion_to_features(qc, xc, SK, 20), f, atol=1e-9)


def test_features_to_positions_and_batches():
    q, x = synth_motion(20, 6)
    f = Fe.motion_to_features(q, x, SK, 20)
    q2, x2 = Fe.features_to_motion(f, SK)
    np.testing.assert_allclose(Fe.features_to_positions(f, SK),
                               C.canonical_forward_kinematics(q2, x2), atol=1e-9)
    g = Fe.motion_to_features(*synth_motion(20, 7), SK, 20)
    qb, xb = Fe.features_to_motion(np.stack([f, g]), SK)
    assert qb.shape == (2, 20, 21, 4) and xb.shape == (2, 20, 3)
    same_rotation(qb[0], q2)
    np.testing.assert_allclose(xb[1], Fe.features_to_motion(g, SK)[1])


def test_heading_convention():
    upright = _aa_quat([0.0, 0.0, np.pi / 2])
    assert abs(Fe.heading_angles(upright)) < 1e-12  # Hips local Z = forward = +Z
    for th in (0.5, -2.0, 3.0):
        q = R.quat_mul(_aa_quat([0.0, th, 0.0]), upright)
        assert abs(Fe.heading_angles(q) - th) < 1e-12
        # bending forward 80 degrees (about the pelvis' lateral axis) keeps the heading
        bent = R.quat_mul(q, _aa_quat([0.0, np.radians(80), 0.0]))
        assert abs(Fe.heading_angles(bent) - th) < 1e-9


def test_foot_contacts():
    F = 10
    q = np.zeros((F, J, 4))
    q[..., 0] = 1.0
    q[:, 0] = _aa_quat([0.0, 0.0, np.pi / 2])
    lay = Fe.feature_layout()
    fc = lay["foot_contacts"]
    # a fixed pose; put the highest foot joint 2 cm above the floor: every foot in contact
    p = C.canonical_forward_kinematics(q[:1], np.zeros((1, 3)))[0, SK.foot_joints, 1]
    x = np.tile([0.0, 2.0 - p.max(), 0.0], (F, 1))
    f = Fe.motion_to_features(q, x, SK, 20)
    assert np.all(f[:, fc] == 1.0)
    # the lowest one 30 cm up: no contact
    lifted = np.tile([0.0, 30.0 - p.min(), 0.0], (F, 1))
    assert np.all(Fe.motion_to_features(q, lifted, SK, 20)[:, fc] == 0.0)
    # only the joints below their own threshold
    mid = np.tile([0.0, 10.0 - p[0], 0.0], (F, 1))
    expect = (p - p[0] + 10.0 < SK.contact_heights).astype(float)
    np.testing.assert_array_equal(Fe.motion_to_features(q, mid, SK, 20)[:, fc],
                                  np.tile(expect, (F, 1)))
    # sliding at 60 cm/s (3 cm per frame at 20 fps): no contact; at 20 cm/s: contact
    slide = x + np.arange(F)[:, None] * [3.0, 0.0, 0.0]
    assert np.all(Fe.motion_to_features(q, slide, SK, 20)[:, fc] == 0.0)
    assert np.all(Fe.motion_to_features(q, slide, SK, 60)[:, fc] == 0.0)
    assert np.all(Fe.motion_to_features(q, slide, SK, 6)[:, fc] == 1.0)


def test_feature_errors():
    q, x = synth_motion(5)
    with pytest.raises(Fe.FeatureError, match="local_quats"):
        Fe.motion_to_features(q[:, :20], x, SK, 20)
    with pytest.raises(Fe.FeatureError, match="root_translation"):
        Fe.motion_to_features(q, x[:4], SK, 20)
    bad = q.copy()
    bad[2, 3, 1] = np.nan
    with pytest.raises(Fe.FeatureError, match="NaN"):
        Fe.motion_to_features(bad, x, SK, 20)
    bad = q.copy()
    bad[2, 3] = 0
    with pytest.raises(Fe.FeatureError, match="zero-length"):
        Fe.motion_to_features(bad, x, SK, 20)
    with pytest.raises(Fe.FeatureError, match="frames"):
        Fe.motion_to_features(q[:0], x[:0], SK, 20)
    with pytest.raises(Fe.FeatureError, match="fps"):
        Fe.motion_to_features(q, x, SK, 0)
    with pytest.raises(Fe.FeatureError, match="CanonicalSkeleton"):
        Fe.motion_to_features(q, x, S.Skeleton(SK.names, SK.parents, SK.offsets), 20)
    f = Fe.motion_to_features(q, x, SK, 20)
    with pytest.raises(Fe.FeatureError, match="257"):
        Fe.features_to_motion(f[:, :-1], SK)
    with pytest.raises(Fe.FeatureError, match="257"):
        Fe.features_to_motion(f[0], SK)
    bad = f.copy()
    bad[1, 7] = np.inf
    with pytest.raises(Fe.FeatureError, match="NaN or infinite"):
        Fe.features_to_motion(bad, SK)
    with pytest.raises(Fe.FeatureError, match="257"):
        Fe.mirror_features(f[:, :10], SK)
    with pytest.raises(C.CanonicalError, match="local_quats"):
        C.mirror_motion(q[:, :3], x)
    with pytest.raises(C.CanonicalError, match="frames"):
        C.resample(q[:0], x[:0], 30, 20)
    with pytest.raises(C.CanonicalError, match="frame rates"):
        C.resample(q, x, 30, -1)


# =========================================================================== mirroring


def test_mirror_motion_fk_is_reflected_fk():
    q, x = synth_motion(25, 8)
    qm, xm = C.mirror_motion(q, x)
    p = C.canonical_forward_kinematics(q, x)
    pm = C.canonical_forward_kinematics(qm, xm)
    np.testing.assert_allclose(pm, p[:, SK.mirror_index] * C.WORLD_MIRROR, atol=1e-9)
    # the left hand of the mirror is where the right hand was, reflected
    hl, hr = SK.index("Hand_L"), SK.index("Hand_R")
    np.testing.assert_allclose(pm[:, hl, 0], -p[:, hr, 0], atol=1e-9)
    # involution, exactly up to quaternion sign
    qmm, xmm = C.mirror_motion(qm, xm)
    np.testing.assert_array_equal(xmm, x)
    np.testing.assert_array_equal(np.abs(np.sum(qmm * q, -1)), np.sum(q * q, -1))
    # also on the BVH level: mirrored FK of a Bandai-layout file
    b = _bandai_bvh(6, 9)
    qb, xb = C.bandai_to_canonical(b, fps=None)
    pm = C.canonical_forward_kinematics(*C.mirror_motion(qb, xb))
    pb = S.bvh_forward_kinematics(b)[:, 1:]
    np.testing.assert_allclose(pm, pb[:, SK.mirror_index] * C.WORLD_MIRROR, atol=1e-9)
    # local rotations of the hips-rooted chain flip heading
    assert np.allclose(Fe.heading_angles(qm[:, 0]), -Fe.heading_angles(q[:, 0]), atol=1e-12)


def test_mirror_features_matches_mirrored_motion():
    q, x = synth_motion(30, 10)
    f = Fe.motion_to_features(q, x, SK, 20)
    fm = Fe.motion_to_features(*C.mirror_motion(q, x), SK, 20)
    np.testing.assert_allclose(Fe.mirror_features(f, SK), fm, atol=1e-9)
    np.testing.assert_array_equal(Fe.mirror_features(Fe.mirror_features(f, SK), SK), f)
    f32 = f.astype(np.float32)
    assert Fe.mirror_features(f32, SK).dtype == np.float32
    perm, sign = Fe.feature_mirror_map(SK)
    assert sorted(perm.tolist()) == list(range(257)) and set(np.abs(sign)) == {1.0}
    lay = Fe.feature_layout()
    # contacts swap left/right; root turn rate flips
    c = lay["foot_contacts"].start
    assert perm[c:c + 4].tolist() == [c + 2, c + 3, c, c + 1]
    assert sign[0] == -1
