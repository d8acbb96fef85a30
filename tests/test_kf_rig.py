# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np

from sparse_motion.keyframes.rig import ChannelMap, Node, Rig, affine_inverse, bone_data_path, parse_data_path


def test_affine_inverse_matches_linalg():
    rng = np.random.default_rng(0)
    m = np.zeros((40, 4, 4))
    m[:, :3, :3] = rng.normal(size=(40, 3, 3))
    m[:, :3, 3] = rng.normal(size=(40, 3))
    m[:, 3, 3] = 1.0
    np.testing.assert_allclose(affine_inverse(m), np.linalg.inv(m), atol=1e-9)
    np.testing.assert_allclose(affine_inverse(m) @ m, np.broadcast_to(np.eye(4), m.shape), atol=1e-9)


def test_data_paths_round_trip_with_quotes():
    for name in ("Hips", 'we"ird', "back\\slash", "mixamorig:LeftArm"):
        path = bone_data_path(name, "rotation_quaternion")
        assert parse_data_path(path) == (name, "rotation_quaternion")
    assert parse_data_path("location") == (None, "location")
    assert parse_data_path('pose.bones["A"]["custom"]') == (None, None)


def test_chain_fk_by_hand():
    # object → bone a (rest at origin, Y up the bone) → bone b 1 unit up a's Y axis
    rest_b = np.eye(4)
    rest_b[1, 3] = 1.0
    rig = Rig(nodes=[
        Node(None, -1, np.eye(4), "XYZ", points=np.zeros((0, 3))),
        Node("a", 0, np.eye(4), "XYZ", points=np.array([[0, 0, 0], [0, 1, 0]])),
        Node("b", 1, rest_b, "XYZ", connected=True, points=np.array([[0, 1, 0]])),
    ], cm_per_unit=1.0)
    cmap = ChannelMap(rig, [(bone_data_path("a", "rotation_euler"), 2), ("location", 0)])
    pts = cmap.points(np.array([[np.pi / 2, 0.0], [0.0, 5.0]]))
    # a rotated 90° about Z: its Y axis points to -X; b's tail 2 units along it
    np.testing.assert_allclose(pts[0], [[0, 0, 0], [-1, 0, 0], [-2, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(pts[1], [[5, 0, 0], [5, 1, 0], [5, 2, 0]], atol=1e-12)
    assert cmap.other == [] and len(cmap.groups()) == 2
