# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sparse_motion.motion import rotations as R

ORDERS = R.EULER_ORDERS
RNG = np.random.default_rng(0)


def _mathutils():
    try:
        import bpy  # noqa: F401  (mathutils is only importable after bpy in the wheel)
        import mathutils
    except Exception:  # pragma: no cover
        pytest.skip("mathutils not available")
    return mathutils


def _rand_quats(n):
    q = RNG.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_euler_hand_built():
    x, y, z = 0.3, -0.7, 1.1
    np.testing.assert_allclose(R.euler_to_matrix([x, y, z], "XYZ"), _rz(z) @ _ry(y) @ _rx(x))
    np.testing.assert_allclose(R.euler_to_matrix([x, y, z], "YXZ"), _rz(z) @ _rx(x) @ _ry(y))
    np.testing.assert_allclose(R.euler_to_matrix([x, y, z], "ZYX"), _rx(x) @ _ry(y) @ _rz(z))


@pytest.mark.parametrize("order", ORDERS)
def test_euler_matches_mathutils(order):
    mu = _mathutils()
    angles = RNG.uniform(-np.pi, np.pi, size=(20, 3))
    ours = R.euler_to_matrix(angles, order)
    ours_q = R.euler_to_quat(angles, order)
    for a, m, q in zip(angles, ours, ours_q):
        e = mu.Euler(tuple(a), order)
        ref = np.array(e.to_matrix())
        np.testing.assert_allclose(m, ref, atol=1e-6)
        ref_q = np.array(e.to_quaternion())
        assert min(np.abs(q - ref_q).max(), np.abs(q + ref_q).max()) < 1e-6
    # matrix -> euler round trip, and vs mathutils' to_euler (same matrix either way)
    back = R.matrix_to_euler(ours, order)
    np.testing.assert_allclose(R.euler_to_matrix(back, order), ours, atol=1e-12)
    for m in ours[:5]:
        ref_e = np.array(mu.Matrix(m.tolist()).to_euler(order))
        np.testing.assert_allclose(R.euler_to_matrix(ref_e, order), m, atol=1e-5)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_angles_recovered_in_principal_range(order):
    angles = RNG.uniform(-np.pi, np.pi, size=(100, 3))
    mid = "XYZ".index(order[1])
    angles[:, mid] = RNG.uniform(-np.pi / 2 + 1e-3, np.pi / 2 - 1e-3, size=100)
    back = R.matrix_to_euler(R.euler_to_matrix(angles, order), order)
    np.testing.assert_allclose(back, angles, atol=1e-9)
    back_q = R.quat_to_euler(R.euler_to_quat(angles, order), order)
    np.testing.assert_allclose(back_q, angles, atol=1e-9)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mid_angle", [np.pi / 2, -np.pi / 2])
def test_gimbal_lock(order, mid_angle):
    mid = "XYZ".index(order[1])
    angles = RNG.uniform(-np.pi, np.pi, size=(50, 3))
    angles[:, mid] = mid_angle
    m = R.euler_to_matrix(angles, order)
    back = R.matrix_to_euler(m, order)
    assert np.all(np.isfinite(back))
    np.testing.assert_allclose(R.euler_to_matrix(back, order), m, atol=1e-9)
    last = "XYZ".index(order[2])
    np.testing.assert_allclose(back[:, last], 0.0, atol=1e-12)


def test_quat_matrix_roundtrip_and_mathutils():
    mu = _mathutils()
    q = _rand_quats(200)
    m = R.quat_to_matrix(q)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)
    for qi, mi in zip(q[:20], m[:20]):
        np.testing.assert_allclose(mi, np.array(mu.Quaternion(qi.tolist()).to_matrix()),
                                   atol=1e-6)
    q2 = R.matrix_to_quat(m)
    assert np.all(q2[:, 0] >= 0)
    qc = np.where(q[:, :1] < 0, -q, q)
    np.testing.assert_allclose(q2, qc, atol=1e-12)


def test_matrix_to_quat_180_degrees():
    for axis in np.eye(3):
        m = R.axis_angle_to_matrix(np.r_[np.pi, axis])
        q = R.matrix_to_quat(m)
        np.testing.assert_allclose(R.quat_to_matrix(q), m, atol=1e-12)
        np.testing.assert_allclose(np.abs(q[1:]), np.abs(axis), atol=1e-12)


def test_quat_mul_conj_rotate():
    a, b = _rand_quats(50), _rand_quats(50)
    v = RNG.normal(size=(50, 3))
    ab = R.quat_mul(a, b)
    np.testing.assert_allclose(R.quat_to_matrix(ab), R.quat_to_matrix(a) @ R.quat_to_matrix(b),
                               atol=1e-12)
    np.testing.assert_allclose(R.quat_rotate(ab, v),
                               R.quat_rotate(a, R.quat_rotate(b, v)), atol=1e-12)
    np.testing.assert_allclose(R.quat_rotate(a, v),
                               np.einsum("nij,nj->ni", R.quat_to_matrix(a), v), atol=1e-12)
    ident = R.quat_mul(a, R.quat_conj(a))
    np.testing.assert_allclose(ident, np.broadcast_to([1, 0, 0, 0], ident.shape), atol=1e-12)
    np.testing.assert_allclose(R.quat_mul(a * 2, R.quat_inv(a * 2)), ident, atol=1e-12)
    # broadcasting over leading dims
    assert R.quat_mul(a[:, None], b[None, :]).shape == (50, 50, 4)
    assert R.quat_rotate(a[:, None], v[None, :5]).shape == (50, 5, 3)


def test_quat_normalised_inside_and_zero():
    q = _rand_quats(10)
    np.testing.assert_allclose(R.quat_to_matrix(q * 3.7), R.quat_to_matrix(q), atol=1e-12)
    np.testing.assert_allclose(R.quat_to_matrix(np.zeros(4)), np.eye(3))
    np.testing.assert_allclose(R.quat_identity((2, 3)), np.broadcast_to([1, 0, 0, 0], (2, 3, 4)))


def test_axis_angle_matches_mathutils():
    mu = _mathutils()
    aa = np.c_[RNG.uniform(-4, 4, 20), RNG.normal(size=(20, 3)) * 3]
    m = R.axis_angle_to_matrix(aa)
    for a, mi in zip(aa, m):
        ref = np.array(mu.Matrix.Rotation(a[0], 3, mu.Vector(a[1:]).normalized()))
        np.testing.assert_allclose(mi, ref, atol=1e-6)
    np.testing.assert_allclose(R.axis_angle_to_matrix([1.0, 0, 0, 0]), np.eye(3))
    back = R.quat_to_axis_angle(R.axis_angle_to_quat(aa))
    np.testing.assert_allclose(R.axis_angle_to_matrix(back), m, atol=1e-12)


def test_bvh_order():
    assert R.bvh_order_to_blender("ZXY") == "YXZ"
    assert R.blender_order_to_bvh("YXZ") == "ZXY"
    z, x, y = 0.4, -1.2, 2.0
    # BVH "Zrotation Xrotation Yrotation": M = Rz Rx Ry
    np.testing.assert_allclose(
        R.euler_to_matrix([x, y, z], R.bvh_order_to_blender("ZXY")), _rz(z) @ _rx(x) @ _ry(y),
        atol=1e-12)
    with pytest.raises(ValueError):
        R.bvh_order_to_blender("XXY")
    with pytest.raises(ValueError):
        R.euler_to_matrix([0, 0, 0], "ABC")


def test_rot6d():
    m = R.quat_to_matrix(_rand_quats(100)).reshape(10, 10, 3, 3)
    r6 = R.rot6d_from_matrix(m)
    assert r6.shape == (10, 10, 6)
    np.testing.assert_allclose(R.matrix_from_rot6d(r6), m, atol=1e-12)
    noisy = r6 + RNG.normal(scale=0.1, size=r6.shape)
    mm = R.matrix_from_rot6d(noisy)
    np.testing.assert_allclose(np.linalg.det(mm), 1.0, atol=1e-12)
    degenerate = R.matrix_from_rot6d(np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 2, 0, 0.0]]))
    np.testing.assert_allclose(np.linalg.det(degenerate), 1.0, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=3, max_size=3), st.sampled_from(ORDERS))
def test_euler_roundtrip_property(angles, order):
    m = R.euler_to_matrix(angles, order)
    back = R.matrix_to_euler(m, order)
    np.testing.assert_allclose(R.euler_to_matrix(back, order), m, atol=1e-9)
    q = R.euler_to_quat(angles, order)
    np.testing.assert_allclose(R.quat_to_matrix(q), m, atol=1e-9)
