# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot locking on canonical motion: planted feet stop sliding, the rest is left alone."""
import numpy as np

from sparse_motion.inference import metrics
from sparse_motion.motion import canonical as canon
from sparse_motion.motion import footlock

SK = canon.SKELETON
TOES = [SK.names.index("Toes_L"), SK.names.index("Toes_R")]


def standing(F, drift_cm_per_frame, lift_cm=0.0):
    """Knees a little bent, feet on the ground, the root drifting forward (feet slide). (A
    straight leg cannot reach any further: IK can only pin what the leg can reach.)"""
    q = np.zeros((F, SK.num_joints, 4))
    q[..., 0] = 1.0
    for name in ("LowerLeg_L", "LowerLeg_R"):
        a = np.radians(30.0)
        q[:, SK.names.index(name)] = [np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)]
    pos0 = canon.canonical_forward_kinematics(q[:1], np.array([SK.offsets[0]]))
    floor = pos0[0, TOES, 1].min()
    x = np.zeros((F, 3))
    x[:, 1] = SK.offsets[0][1] - floor + 1.0 + lift_cm  # toes 1 cm above the floor
    x[:, 2] = drift_cm_per_frame * np.arange(F)
    return q, x


def toe_steps(q, x):
    p = canon.canonical_forward_kinematics(q, x)
    return np.linalg.norm(np.diff(p[:, TOES][..., [0, 2]], axis=0), axis=-1), p


def test_sliding_planted_feet_are_held():
    q, x = standing(40, 3.0)  # 3 cm per frame: skating by the metric's definition
    before, p0 = toe_steps(q, x)
    grounded = p0[0, TOES, 1] < 5.0  # the rest pose of this skeleton has one toe down
    assert grounded.any() and before[:, grounded].min() > 2.9
    assert metrics.foot_skating_ratio(p0) == 1.0
    q2, x2, info = footlock.lock_feet(q, x, return_info=True)
    after, p1 = toe_steps(q2, x2)
    assert after[:, grounded].max() < 0.05 and metrics.foot_skating_ratio(p1) == 0.0
    assert info["contact_frames"] > 0
    # bones keep their lengths and the quaternions stay unit
    np.testing.assert_allclose(np.linalg.norm(q2, axis=-1), 1.0, atol=1e-9)


def test_feet_in_the_air_are_left_alone():
    q, x = standing(30, 3.0, lift_cm=40.0)
    q2, x2 = footlock.lock_feet(q, x)
    np.testing.assert_allclose(q2, q, atol=1e-12)
    np.testing.assert_allclose(x2, x, atol=1e-12)


def test_a_toe_scraping_the_floor_is_lifted():
    q, x = standing(20, 0.0)
    # the grounded right toe sweeps fast (~13 cm per frame) along the floor
    i = SK.names.index("UpperLeg_R")
    ang = np.linspace(-1.5, 1.5, 20)
    q[:, i] = np.stack([np.cos(ang / 2), 0 * ang, np.sin(ang / 2), 0 * ang], axis=1)
    steps0, p0 = toe_steps(q, x)
    toe = TOES[1]
    assert (p0[:, toe, 1] < 5.0).all() and steps0[:, 1].min() > 12.0
    assert metrics.foot_skating_ratio(p0) > 0.5
    q2, x2 = footlock.lock_feet(q, x)
    _, p1 = toe_steps(q2, x2)
    assert (p1[:, toe, 1] >= 5.0).all()  # lifted clear of the floor
    assert metrics.foot_skating_ratio(p1) == 0.0
