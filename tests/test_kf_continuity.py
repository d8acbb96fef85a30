# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from sparse_motion.keyframes import continuity as cont


def _axis_matrix(axis, a):
    c, s = np.cos(a), np.sin(a)
    i = "XYZ".index(axis)
    j, k = [x for x in range(3) if x != i]
    m = np.zeros(np.shape(a) + (3, 3))
    m[..., i, i] = 1.0
    m[..., j, j] = c
    m[..., k, k] = c
    m[..., j, k] = -s
    m[..., k, j] = s
    return m


def euler_matrix(e, order):
    """Rotation matrices of X, Y, Z angles ``e`` (T, 3) applied in ``order`` (Blender mode)."""
    m = np.broadcast_to(np.eye(3), e.shape[:-1] + (3, 3)).copy()
    for ax in order:
        m = _axis_matrix(ax, e[..., "XYZ".index(ax)]) @ m
    return m


def _smooth_quats(T, rng):
    t = np.linspace(0, 1, T)
    axis = np.stack([np.sin(3 * t), np.cos(2 * t), 0.5 + 0 * t], axis=1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    ang = 4.0 * np.pi * t  # several full turns: sign continuity is not automatic
    q = np.concatenate([np.cos(ang / 2)[:, None], np.sin(ang / 2)[:, None] * axis], axis=1)
    return q


def test_quat_flips_fixed():
    rng = np.random.default_rng(0)
    q = _smooth_quats(200, rng)
    assert cont.count_quat_flips(q) == 0
    signs = np.where(rng.random(200) < 0.3, -1.0, 1.0)
    signs[0] = 1.0
    noisy = q * signs[:, None]
    assert cont.count_quat_flips(noisy) > 10
    fixed = cont.quat_continuous(noisy)
    assert cont.count_quat_flips(fixed) == 0
    np.testing.assert_allclose(fixed, q, atol=1e-12)  # same rotations, original signs back
    assert noisy is not fixed and cont.count_quat_flips(noisy) > 10  # input untouched


def test_quat_continuous_keeps_first_sign_and_rotation():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = cont.quat_continuous(q)
    np.testing.assert_array_equal(out[0], q[0])
    np.testing.assert_allclose(np.abs(np.sum(out * q, axis=1)), 1.0, atol=1e-12)
    assert np.all(np.sum(out[1:] * out[:-1], axis=1) >= 0)


def test_euler_unwrap_removes_2pi_jumps():
    t = np.linspace(0, 1, 300)
    e = np.stack([6 * np.pi * t, -5 * np.pi * t + 1, np.sin(9 * t)], axis=1)
    wrapped = (e + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(np.diff(wrapped, axis=0)).max() > 6
    out = cont.euler_unwrap(wrapped)
    assert np.abs(np.diff(out, axis=0)).max() < 0.2
    np.testing.assert_allclose(out - e, np.round((out - e) / (2 * np.pi)) * 2 * np.pi, atol=1e-9)
    np.testing.assert_allclose(out[:, 2], e[:, 2], atol=1e-12)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_filter_undoes_branch_flips(order):
    rng = np.random.default_rng(2)
    T = 150
    t = np.linspace(0, 1, T)
    e = np.stack([2 * np.sin(3 * t), 1.2 * np.cos(2 * t), 3 * t], axis=1)
    first, middle, last = ["XYZ".index(a) for a in order]
    flipped = e.copy()
    sel = rng.random(T) < 0.4
    flipped[sel, first] += np.pi
    flipped[sel, middle] = np.pi - flipped[sel, middle]
    flipped[sel, last] += np.pi
    flipped = (flipped + np.pi) % (2 * np.pi) - np.pi
    # same rotations, but jumpy channels
    np.testing.assert_allclose(euler_matrix(flipped, order), euler_matrix(e, order), atol=1e-12)
    assert cont.count_euler_jumps(flipped) > 5
    out = cont.euler_filter(flipped, order)
    assert cont.count_euler_jumps(out) == 0
    np.testing.assert_allclose(euler_matrix(out, order), euler_matrix(e, order), atol=1e-9)
    # plain unwrapping cannot do that
    assert cont.count_euler_jumps(cont.euler_unwrap(flipped)) > 0


def test_make_continuous_groups():
    rng = np.random.default_rng(3)
    q = _smooth_quats(80, rng)
    signs = np.where(rng.random(80) < 0.5, -1.0, 1.0)
    signs[0] = 1
    e = np.linspace(0, 8, 80)
    other = np.linspace(-40, 40, 80)  # large jumps in an 'other' channel stay
    other[40:] += 100
    values = np.column_stack([e, q * signs[:, None], other, (e + np.pi) % (2 * np.pi) - np.pi])
    groups = [("quaternion", [1, 2, 3, 4]), ("other", [5]), ("euler", [6])]
    out = cont.make_continuous(values, groups)
    assert out is not values
    assert cont.count_quat_flips(out[:, 1:5]) == 0
    np.testing.assert_allclose(out[:, 6], e, atol=1e-9)
    np.testing.assert_array_equal(out[:, 5], values[:, 5])
    np.testing.assert_array_equal(out[:, 0], values[:, 0])  # not in any group
    # euler group with a rotation mode uses the branch filter
    out2 = cont.make_continuous(np.column_stack([e, e * 0, e * 0]), [("euler", [0, 1, 2], "XYZ")])
    assert cont.count_euler_jumps(out2) == 0
    with pytest.raises(ValueError):
        cont.make_continuous(values, [("spline", [0])])
    with pytest.raises(ValueError):
        cont.make_continuous(values, [("quaternion", [0, 1, 2])])
