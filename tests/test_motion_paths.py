# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths → control trajectories in the generation frame and back (motion/paths.py, bpy-free)."""
import numpy as np
import pytest

from sparse_motion.errors import InputError
from sparse_motion.motion import paths
from sparse_motion.motion import rotations as rot


def test_a_path_starts_at_the_origin_facing_plus_z_and_is_sampled_by_arc_length():
    # an L: 300 cm along +X from (100, 0), then 300 cm along +Z
    pts = np.array([[100.0, 5.0, 0.0], [400.0, 5.0, 0.0], [400.0, 5.0, 300.0]])
    pc = paths.path_control(pts, 61, 20.0, 93.0)
    assert pc.length == pytest.approx(600.0) and pc.mask.all() and pc.label == "The path"
    assert pc.placement.yaw == pytest.approx(np.pi / 2)  # +Z of the generation frame is +X
    np.testing.assert_allclose(pc.control[0], [0.0, 93.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(pc.control[:, 1], 93.0)
    step = np.linalg.norm(np.diff(pc.control[:, [0, 2]], axis=0), axis=1)
    np.testing.assert_allclose(step[:29], 10.0, atol=1e-6)   # even: 600 cm over 60 frames
    np.testing.assert_allclose(pc.control[30], [0.0, 93.0, 300.0], atol=1e-6)  # the corner
    np.testing.assert_allclose(pc.control[-1], [-300.0, 93.0, 300.0], atol=1e-6)
    # placed back: the generation frame's path lands on the world path, the root turned
    q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (61, 21, 1))
    q2, x2 = pc.placement.to_world(q, pc.control)
    np.testing.assert_allclose(x2[[0, 30, 60]][:, [0, 2]], [[100, 0], [400, 0], [400, 300]],
                               atol=1e-6)
    np.testing.assert_allclose(rot.quat_rotate(q2[0, 0], [0.0, 0.0, 1.0]), [1, 0, 0], atol=1e-9)
    # a pace: all of the way in the first half, then standing
    pace = np.minimum(np.linspace(0, 2, 61), 1.0)
    slow = paths.path_control(pts, 61, 20.0, 93.0, pace=pace)
    np.testing.assert_allclose(slow.control[30:], np.repeat(pc.control[-1:], 31, 0), atol=1e-6)


def test_keyed_points_are_followed_at_their_frames_only():
    pts = np.array([[0.0, 0, 0], [0.0, 0, -200], [150.0, 0, -200]])
    kc = paths.keyed_control(pts[::-1], [40, 20, 0], 60, 20.0, 90.0)  # any order
    assert list(np.flatnonzero(kc.mask)) == [0, 20, 40]
    assert kc.placement.yaw == pytest.approx(np.pi)  # the second key is behind: -Z
    np.testing.assert_allclose(kc.control[20], [0.0, 90.0, 200.0], atol=1e-9)
    np.testing.assert_allclose(kc.control[40], [-150.0, 90.0, 200.0], atol=1e-9)
    assert np.isnan(kc.control[1]).all() and np.isnan(kc.target[1]).all()


@pytest.mark.parametrize("points, words", [
    ([[0, 0, 0]], "has 1 point"),
    ([[0, 0, 0], [np.nan, 0, 0]], "NaN or infinite"),
    ([[0, 0, 0], [2e5, 0, 0]], "2.0 km from the world origin"),
    ([[0, 0, 0], [0, 300, 0]], "has no length"),
    ([[0, 0, 0], [5000, 0, 0]], "50.0 m in 2.95 s .*at most 8 m/s"),
])
def test_bad_paths(points, words):
    with pytest.raises(InputError, match=words):
        paths.path_control(np.array(points, float), 60, 20.0, 93.0)


@pytest.mark.parametrize("frames, words", [
    ([5, 30], "first key is at motion frame 6"),
    ([0, 60], "motion frame 61 is outside the motion"),
    ([0, 2], "between motion frames 1 and 3 asks for 2.0 m in 0.10 s"),
])
def test_bad_keyed_points(frames, words):
    with pytest.raises(InputError, match=words):
        paths.keyed_control(np.array([[0.0, 0, 0], [200.0, 0, 0]]), frames, 60, 20.0, 93.0)


def test_the_pace_of_a_motion():
    F = 41
    pos = np.zeros((F, 21, 3))
    pos[20:, 0, 2] = np.linspace(0.0, 200.0, 21)  # stands for 1 s, then walks 2 m
    pace = paths.pace_of(pos)
    np.testing.assert_allclose(pace[:21], 0.0)
    np.testing.assert_allclose(pace[30], 0.5) and np.testing.assert_allclose(pace[-1], 1.0)
    pos[:, 0, 2] = np.linspace(0.0, 5.0, F)  # hardly moves: no pace of its own
    assert paths.pace_of(pos) is None


def test_fit_bends_a_straight_walk_onto_the_path_and_turns_the_body():
    F = 60
    t = np.arange(F)
    x = np.zeros((F, 3))
    x[:, 2], x[:, 0], x[:, 1] = 4.0 * t, 3.0 * np.sin(t / 3.0), 93.0  # +Z with a 3 cm sway
    q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (F, 21, 1))
    ang = np.linspace(0, np.pi / 2, 40)  # a quarter circle: +Z at the start, +X at the end
    pts = np.stack([200 - 200 * np.cos(ang), np.zeros(40), 200 * np.sin(ang)], 1)
    pc = paths.path_control(pts, F, 20.0, 93.0)
    q2, x2 = paths.fit_to_path(q, x, pc, 20.0)
    d = np.linalg.norm(x2[:, [0, 2]] - pc.control[:, [0, 2]], axis=1)
    assert d.mean() < 3.0 and d.max() < 8.0  # the sway is kept (3 cm), the way is on the path
    np.testing.assert_allclose(x2[:, 1], 93.0)
    facing = rot.quat_rotate(q2[:, 0], [0.0, 0.0, 1.0])
    assert facing[0, 2] > 0.99 and facing[-1, 0] > 0.9  # turned with the path
    # a straight path at the walk's own pace: hardly anything to bend (what the moving
    # average leaves of the sway in the way)
    straight = paths.path_control(np.array([[0.0, 0, 0], [0.0, 0, 4.0 * (F - 1)]]), F, 20.0,
                                  93.0)
    q3, x3 = paths.fit_to_path(q, x, straight, 20.0)
    assert np.abs(x3 - x).max() < 3.0
    assert rot.quat_rotate(q3[:, 0], [0.0, 0.0, 1.0])[:, 2].min() > 0.98  # within 11 degrees
    # keyed points: hit exactly at their frames, the offset interpolated between them
    k = paths.keyed_control(pts[[0, 20, 39]], [0, 30, 59], F, 20.0, 93.0)
    _q4, x4 = paths.fit_to_path(q, x, k, 20.0)
    np.testing.assert_allclose(x4[[0, 30, 59]][:, [0, 2]], k.control[[0, 30, 59]][:, [0, 2]],
                               atol=1e-9)


def test_fit_and_pin_keeps_the_root_on_the_path_and_only_turns_the_legs():
    from test_motion_footlock import standing, toe_steps

    from sparse_motion.motion import footlock

    F = 40
    q, x = standing(F, 0.5)  # knees bent, toes on the floor, the root drifting (feet slide)
    h = float(x[0, 1])
    ang = np.linspace(0, np.pi / 6, 20)  # a gentle bend: 30 degrees over the walk's length
    r = 0.5 * (F - 1) / (np.pi / 6)
    pts = np.stack([r - r * np.cos(ang), np.zeros(20), r * np.sin(ang)], 1)
    pc = paths.path_control(pts, F, 20.0, h)
    qf, xf = paths.fit_to_path(q, x, pc, 20.0)
    q0, x0 = paths.fit_and_pin(q, x, pc, 20.0)  # no contacts: the bend alone
    np.testing.assert_array_equal(q0, qf)
    np.testing.assert_array_equal(x0, xf)
    contacts = np.ones((F, 4))  # both feet planted throughout while the root moves on
    qp, xp = paths.fit_and_pin(q, x, pc, 20.0, contacts)
    np.testing.assert_allclose(xp, xf, atol=1e-9)  # the root stays where the bend put it
    names = list(footlock.SKELETON.names)
    legs = {names.index(j) for leg in footlock.LEGS for j in leg}
    moved = {j for j in range(21) if np.abs(qp[:, j] - qf[:, j]).max() > 1e-9}
    assert moved and moved <= legs  # the pinning turned leg joints and nothing else
    before, _ = toe_steps(qf, xf)
    after, _ = toe_steps(qp, xp)
    assert after.sum() < 0.5 * before.sum()  # the bent path's planted feet slide less
