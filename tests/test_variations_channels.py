# SPDX-License-Identifier: GPL-3.0-or-later
"""Channel values ↔ variation features (variations/channels.py): exact round trips for every
rotation kind and Euler order, root trajectory invariance, JSON, fingerprint, validation."""
import json

import numpy as np
import pytest

from sparse_motion.keyframes.continuity import count_quat_flips
from sparse_motion.motion import rotations as rot
from sparse_motion.variations.channels import (
    ChannelLayout,
    Encoded,
    Group,
    rotation_matrices,
    rotation_values,
)

T = 120


def smooth(rng, n, k, scale=1.0):
    """(n, k) smooth random curves: a few sinusoids per column plus a slow drift."""
    t = np.arange(n) / 30.0
    out = np.zeros((n, k))
    for j in range(k):
        for _ in range(3):
            out[:, j] += rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * rng.uniform(0.1, 1.5) * t
                                                      + rng.uniform(0, 6))
        out[:, j] += rng.uniform(-0.3, 0.3) * t
    return out * scale


def smooth_rotations(rng, n):
    """(n, 3, 3) smooth rotations from a smooth rotation vector (large angles included)."""
    v = smooth(rng, n, 3, 1.2)
    angle = np.linalg.norm(v, axis=1)
    axis = v / angle[:, None]
    return rot.axis_angle_to_matrix(np.concatenate([angle[:, None], axis], axis=1))


def continuous_values(kind, m, order="XYZ"):
    """Continuous channel values of the matrices, as an animator's curves would hold them."""
    return rotation_values(kind, m, order)


def random_rest(rng):
    q = rot.quat_normalize(rng.normal(size=4))
    return rot.quat_to_matrix(q)


def make_case(seed=0, root_kind="quat", up=2, orders=rot.EULER_ORDERS):
    """A layout and continuous values: a root (rotation of kind ``root_kind`` or none), one
    Euler group per order, a quaternion, an axis-angle, two scalars and one unmodelled column,
    columns shuffled so groups are not contiguous."""
    rng = np.random.default_rng(seed)
    blocks = []  # (kind, values (T, k), order)
    if root_kind is not None:
        blocks.append((root_kind, None, "ZXY" if root_kind == "euler" else "XYZ"))
    blocks += [("euler", None, o) for o in orders]
    blocks += [("quat", None, "XYZ"), ("axis_angle", None, "XYZ")]
    cols = []
    for kind, _v, order in blocks:
        cols.append(continuous_values(kind, smooth_rotations(rng, T), order))
    n_rot = sum(c.shape[1] for c in cols)
    C = n_rot + 3 + 2 + 1
    perm = rng.permutation(C)
    values = np.zeros((T, C))
    groups, at = [], 0
    for (kind, _v, order), vals in zip(blocks, cols):
        idx = perm[at:at + vals.shape[1]]
        at += vals.shape[1]
        values[:, idx] = vals
        groups.append(Group(kind, tuple(idx), order=order, name=f"{kind}{len(groups)}"))
    rest = random_rest(rng)
    # walking forward with turns: armature-space path, then into the bone's rest frame
    t = np.arange(T) / 30.0
    heading = 0.4 * t + 0.3 * np.sin(t)
    a, b = (up + 1) % 3, (up + 2) % 3
    p = np.zeros((T, 3))
    p[:, a] = np.cumsum(np.cos(heading)) * 0.04 + 1.5
    p[:, b] = np.cumsum(np.sin(heading)) * 0.04 - 0.7
    p[:, up] = 1.0 + 0.03 * np.sin(8 * t)
    loc = p @ rest  # rest^T p per frame
    idx = perm[at:at + 3]
    at += 3
    values[:, idx] = loc
    groups.append(Group("root", tuple(idx), rest=tuple(rest.ravel()),
                        rotation=0 if root_kind is not None else -1, up=up, name="root"))
    for _ in range(2):
        idx = perm[at:at + 1]
        at += 1
        values[:, idx[0]] = smooth(rng, T, 1)[:, 0]
        groups.append(Group("scalar", tuple(idx), name="s"))
    values[:, perm[at]] = 0.25  # not named by any group
    return ChannelLayout(groups, C), values


def group_matrices(layout, values):
    return {i: rotation_matrices(g.kind, values[:, list(g.columns)], g.order)
            for i, g in enumerate(layout.groups) if g.kind in ("quat", "euler", "axis_angle")}


@pytest.mark.parametrize("up", [2, 1])
@pytest.mark.parametrize("root_kind", ["quat", "euler", "axis_angle", None])
def test_round_trip_is_exact_for_the_reference(root_kind, up):
    layout, values = make_case(seed=3, root_kind=root_kind, up=up)
    enc = layout.encode(values)
    assert enc.features.dtype == np.float32
    assert enc.features.shape == (T, layout.feature_dim)
    json.dumps(enc.start)  # plain lists and floats
    out = layout.decode(enc.features, enc.start)
    assert out.shape == values.shape
    # continuous references come back in their own sign / branch / turn: values match
    np.testing.assert_allclose(out, values, atol=1e-5)
    got, want = group_matrices(layout, out), group_matrices(layout, values)
    for i in want:
        np.testing.assert_allclose(got[i], want[i], atol=1e-5)


def test_features_ignore_quaternion_signs_and_euler_branches():
    layout, values = make_case(seed=1, root_kind="euler")
    rng = np.random.default_rng(9)
    noisy = values.copy()
    for g in layout.groups:
        cols = list(g.columns)
        if g.kind == "quat":
            flip = rng.random(T) < 0.2
            noisy[np.ix_(flip, cols)] *= -1
        elif g.kind == "euler":
            e = noisy[:, cols]
            wrapped = (e + np.pi) % (2 * np.pi) - np.pi  # 2π jumps
            other = wrapped.copy()
            f, m, last = ("XYZ".index(ax) for ax in g.order)
            other[:, f] += np.pi
            other[:, m] = np.pi - other[:, m]
            other[:, last] += np.pi
            pick = rng.random(T) < 0.3
            noisy[:, cols] = np.where(pick[:, None], other, wrapped)
    assert not np.allclose(noisy, values)
    np.testing.assert_allclose(layout.encode(noisy).features, layout.encode(values).features,
                               atol=1e-5)
    # decoding gives continuous curves again, on the reference's first-frame branch
    out = layout.decode(layout.encode(noisy).features, layout.encode(values).start)
    np.testing.assert_allclose(out, values, atol=1e-5)


def _turn(layout, values, angle, shift):
    """The same motion turned by ``angle`` about the up axis and moved by ``shift``."""
    root = next(g for g in layout.groups if g.kind == "root")
    rest = root.rest_matrix()
    from sparse_motion.motion.rotations import axis_matrix

    turn = axis_matrix(root.up, angle)
    out = values.copy()
    p = values[:, list(root.columns)] @ rest.T
    out[:, list(root.columns)] = (p @ turn.T + shift) @ rest
    g = layout.groups[root.rotation]
    m = rotation_matrices(g.kind, values[:, list(g.columns)], g.order)
    m = rest.T @ turn @ rest @ m  # armature-space rotation turned: A' = turn @ A
    first = values[0, list(g.columns)]
    out[:, list(g.columns)] = rotation_values(g.kind, m, g.order, first)
    return out


@pytest.mark.parametrize("up", [2, 1])
def test_features_do_not_depend_on_where_the_character_stands_or_faces(up):
    layout, values = make_case(seed=5, root_kind="quat", up=up)
    shift = np.zeros(3)
    shift[(up + 1) % 3], shift[(up + 2) % 3] = 3.0, -2.0
    moved = _turn(layout, values, 1.3, shift)
    a, b = layout.encode(values), layout.encode(moved)
    np.testing.assert_allclose(a.features, b.features, atol=1e-5)
    assert not np.isclose(a.start["root_yaw"], b.start["root_yaw"])
    # decoding with the other start puts the same motion there
    np.testing.assert_allclose(layout.decode(a.features, b.start), moved, atol=1e-5)


def test_root_yaw_is_zero_without_a_rotation_group():
    layout, values = make_case(seed=2, root_kind=None)
    enc = layout.encode(values)
    root = layout.feature_slices()["root_trajectory"]
    assert np.all(enc.features[:, root[3]] == 0.0)
    assert enc.start["root_yaw"] == 0.0


def test_root_features_are_velocity_height_and_yaw_rate():
    # identity rest, up Z, root quaternion turning at a constant rate, moving along its heading
    n = 40
    yaw = 0.02 * np.arange(n) + 0.5
    q = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
    p = np.stack([np.cumsum(0.05 * np.cos(yaw)), np.cumsum(0.05 * np.sin(yaw)),
                  np.full(n, 0.9)], axis=1)
    layout = ChannelLayout([Group("quat", (0, 1, 2, 3)), Group("root", (4, 5, 6), rotation=0)], 7)
    enc = layout.encode(np.concatenate([q, p], axis=1))
    f = enc.features[:, layout.feature_slices()["root_trajectory"]]
    # forward along the heading axis (X); frame 0 repeats the first step, seen from frame 0
    np.testing.assert_allclose(f[1:, 0], 0.05, atol=1e-6)
    np.testing.assert_allclose(f[1:, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(f[0, :2], 0.05 * np.array([np.cos(0.02), np.sin(0.02)]), atol=1e-6)
    np.testing.assert_allclose(f[:, 2], 0.9, atol=1e-6)
    np.testing.assert_allclose(f[1:, 3], 0.02, atol=1e-6)
    assert f[0, 3] == 0.0
    assert enc.start["root_yaw"] == pytest.approx(0.5)
    # the de-yawed root rotation is the identity on every frame
    rot6 = enc.features[:, layout.feature_columns(0)]
    np.testing.assert_allclose(rot6, np.tile([1, 0, 0, 0, 1, 0], (n, 1)), atol=1e-6)


def test_heading_axis_is_the_most_horizontal_rest_axis():
    # a bone pointing up (Blender's usual hips): local Y is world Z, yaw comes from local X or Z
    rest = rot.euler_to_matrix(np.array([np.pi / 2, 0.0, 0.3]), "XYZ")
    n = 30
    spin = 0.05 * np.arange(n)
    # spinning about world Z: A = Rz(spin) @ rest  →  R_pose = rest^T Rz rest
    world = rot.euler_to_matrix(np.stack([0 * spin, 0 * spin, spin], axis=1), "XYZ")
    pose = rest.T @ world @ rest
    values = np.concatenate([rot.matrix_to_quat(pose), np.zeros((n, 3))], axis=1)
    layout = ChannelLayout([Group("quat", range(4)), Group("root", (4, 5, 6), rest=rest.ravel(),
                                                          rotation=0)], 7)
    f = layout.encode(values).features
    np.testing.assert_allclose(f[1:, layout.feature_slices()["root_trajectory"][3]], 0.05,
                               atol=1e-6)


def test_decoded_model_output_is_valid_and_continuous():
    layout, values = make_case(seed=4, root_kind="quat")
    enc = layout.encode(values)
    rng = np.random.default_rng(0)
    feats = enc.features[::-1][30:100] + 0.05 * rng.standard_normal((70, layout.feature_dim))
    out = layout.decode(feats, enc.start)
    assert out.shape == (70, layout.n_columns) and np.all(np.isfinite(out))
    for g in layout.groups:
        v = out[:, list(g.columns)]
        if g.kind == "quat":
            np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-9)
            assert count_quat_flips(v) == 0
        elif g.kind == "euler":
            assert np.abs(np.diff(v, axis=0)).max() < 1.5
        elif g.kind == "axis_angle":
            np.testing.assert_allclose(np.linalg.norm(v[:, 1:], axis=1), 1.0, atol=1e-9)
            assert np.abs(np.diff(v[:, 0])).max() < 1.5
    # the root starts where the reference starts
    root = next(g for g in layout.groups if g.kind == "root")
    np.testing.assert_allclose(out[0, list(root.columns)] @ root.rest_matrix().T,
                               [*enc.start["root_position"][:2], feats[0, layout.feature_columns(
                                   layout.groups.index(root))[2]]], atol=1e-6)
    unmodelled = layout.unmodelled[0]
    assert np.all(out[:, unmodelled] == values[0, unmodelled])


def test_short_motions():
    layout, values = make_case(seed=0)
    for n in (1, 2):
        enc = layout.encode(values[:n])
        np.testing.assert_allclose(layout.decode(enc.features, enc.start), values[:n], atol=1e-5)


def test_feature_slices_partition_the_features():
    layout, _ = make_case(seed=0, root_kind="euler")
    s = layout.feature_slices()
    parts = np.concatenate([s["rotation"], s["root"], s["scalar"]])
    assert sorted(parts.tolist()) == list(range(layout.feature_dim))
    assert len(s["root"]) == 10 and len(s["root_trajectory"]) == 4 and len(s["scalar"]) == 2
    assert set(s["root_trajectory"]) <= set(s["root"])
    assert len(s["rotation"]) == 6 * 8  # six Euler orders, one quaternion, one axis-angle


def test_json_round_trip():
    layout, values = make_case(seed=6, root_kind="axis_angle", up=1)
    d = json.loads(json.dumps(layout.to_json()))
    back = ChannelLayout.from_json(d)
    assert back == layout and back.groups == layout.groups
    assert back.fingerprint() == layout.fingerprint()
    np.testing.assert_array_equal(back.encode(values).features, layout.encode(values).features)


def test_fingerprint_is_stable_and_sensitive():
    layout, _ = make_case(seed=0)
    again, _ = make_case(seed=0)
    assert layout.fingerprint() == again.fingerprint()
    assert len(layout.fingerprint()) == 64
    groups = list(layout.groups)
    renamed = ChannelLayout([Group(**{**g.to_json(), "name": "x"}) for g in groups],
                            layout.n_columns)
    assert renamed.fingerprint() == layout.fingerprint()  # names are not part of the features
    root = next(i for i, g in enumerate(groups) if g.kind == "root")
    euler = next(i for i, g in enumerate(groups) if g.kind == "euler" and g.order == "XYZ")

    def changed(i, **kw):
        gs = list(groups)
        gs[i] = Group(**{**gs[i].to_json(), **kw})
        return ChannelLayout(gs, layout.n_columns).fingerprint()

    rest = np.array(groups[root].rest).reshape(3, 3)
    tiny = rot.euler_to_matrix(np.array([0, 0, 1e-9]), "XYZ") @ rest
    assert changed(root, rest=tuple(tiny.ravel())) == layout.fingerprint()  # rounded
    other = rot.euler_to_matrix(np.array([0, 0, 0.1]), "XYZ") @ rest
    fingerprints = {
        changed(euler, order="ZXY"),
        changed(root, rest=tuple(other.ravel())),
        changed(root, up=1),
        changed(root, rotation=-1),
        changed(euler, columns=tuple(reversed(groups[euler].columns))),
        ChannelLayout(groups, layout.n_columns + 1).fingerprint(),
        ChannelLayout(groups[:-1], layout.n_columns).fingerprint(),
    }
    assert layout.fingerprint() not in fingerprints and len(fingerprints) == 7


@pytest.mark.parametrize("groups, n, match", [
    ([Group("quat", (0, 1, 2))], 4, "needs 4 columns"),
    ([Group("euler", (0, 1, 2)), Group("scalar", (2,))], 3, "already used"),
    ([Group("scalar", (5,))], 3, "outside"),
    ([Group("scalar", (-1,))], 3, "outside"),
    ([Group("spline", (0,))], 1, "unknown kind"),
    ([Group("euler", (0, 1, 2), order="XYX")], 3, "Euler order"),
    ([Group("scalar", (0,)), Group("root", (1, 2, 3), rotation=0)], 4, "rotation group"),
    ([Group("root", (0, 1, 2), rotation=3)], 3, "rotation group"),
    ([Group("root", (0, 1, 2), rotation=-2)], 3, "rotation must be"),
    ([Group("root", (0, 1, 2)), Group("root", (3, 4, 5))], 6, "at most one root"),
    ([Group("root", (0, 1, 2), rest=(2, 0, 0, 0, 1, 0, 0, 0, 1))], 3, "rotation matrix"),
    ([Group("root", (0, 1, 2), rest=(-1, 0, 0, 0, 1, 0, 0, 0, 1))], 3, "rotation matrix"),
    ([Group("root", (0, 1, 2), rest=(1, 0, 0))], 3, "9 finite"),
    ([Group("root", (0, 1, 2), up=3)], 3, "up must be"),
])
def test_bad_layouts_are_rejected(groups, n, match):
    with pytest.raises(ValueError, match=match):
        ChannelLayout(groups, n)


def test_bad_arrays_are_rejected():
    layout, values = make_case(seed=0)
    with pytest.raises(ValueError, match="shape"):
        layout.encode(values[:, :-1])
    bad = values.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layout.encode(bad)
    enc = layout.encode(values)
    with pytest.raises(ValueError, match="shape"):
        layout.decode(enc.features[:, :-1], enc.start)
    with pytest.raises(ValueError, match="first"):
        layout.decode(enc.features, {**enc.start, "first": [0.0]})
    assert isinstance(enc, Encoded)
    with pytest.raises(ValueError, match="rotation kind"):
        rotation_matrices("scalar", values[:, :3])


def test_rotation_values_without_a_first_frame_are_continuous():
    m = smooth_rotations(np.random.default_rng(7), T)
    for kind, order in [("quat", "XYZ"), ("euler", "YZX"), ("axis_angle", "XYZ")]:
        v = rotation_values(kind, m, order)
        np.testing.assert_allclose(rotation_matrices(kind, v, order), m, atol=1e-9)
        if kind == "axis_angle":  # the axis itself may turn fast near the identity
            assert np.abs(np.diff(v[:, 0])).max() < 0.5
            assert np.all(np.einsum("ij,ij->i", v[1:, 1:], v[:-1, 1:]) > 0)
        else:
            assert np.abs(np.diff(v, axis=0)).max() < 0.5
