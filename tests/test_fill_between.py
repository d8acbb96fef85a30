# SPDX-License-Identifier: GPL-3.0-or-later
"""Keyframe-conditioned sampling (Fill Between's core) without Blender, with the shipped sMDM
default: the known frames exact, a clip that passes through its keys without velocity pops,
only some joints constrained, and bad input."""
from pathlib import Path

import numpy as np
import pytest

import test_retarget_core as rcore
from sparse_motion.errors import InputError
from sparse_motion.inference import inbetween as ib
from sparse_motion.inference.runtime import RuntimeSettings
from sparse_motion.inference.smdm import SmdmModel
from sparse_motion.motion import canonical as canon

PKG = Path(__file__).resolve().parents[1] / "models" / "smdm-default"
NAMES = canon.SKELETON.names


@pytest.fixture(scope="module")
def model():
    return SmdmModel(PKG, settings=RuntimeSettings(threads=2)).load()


@pytest.fixture(scope="module")
def walk():
    q, x = rcore.procedural_walk(seconds=5.0, fps=20)  # 101 frames
    x = x + np.array([40.0, 0.0, -25.0])  # anywhere in the world
    return q, x


def fk(q, x):
    return canon.canonical_forward_kinematics(q, x)


def test_offset_blend_is_exact_and_flat_at_the_rows():
    t = np.linspace(0, 3, 61)
    v = np.stack([np.sin(t), t ** 2], 1)
    rows = np.array([0, 20, 45, 60])
    target = v[rows] + np.array([[0.3, -1.0], [-0.2, 0.5], [0.1, 0.0], [0.0, 2.0]])
    out = ib.offset_blend(v, rows, target)
    np.testing.assert_array_equal(out[rows], target)
    off = out - v
    for a, b in zip(rows[:-1], rows[1:]):  # zero slope at every row: the velocity is kept
        mean_step = np.abs(off[b] - off[a]) / (b - a)
        assert np.all(np.abs(off[a + 1] - off[a]) <= 0.2 * mean_step + 1e-12)
        assert np.all(np.abs(off[b] - off[b - 1]) <= 0.2 * mean_step + 1e-12)
    np.testing.assert_allclose(ib.offset_blend(v, [], np.zeros((0, 2))), v)


def test_known_frames_are_exact_and_keys(model, walk):
    q, x = walk
    N = len(q)
    keys = np.array([0, 30, 55, 100])
    known = ib.Keyframes.full(q, x, keys)
    res = model.fill(known, "", seed=0, steps=20)
    qg, xg = res.motions[0]
    assert qg.shape == q.shape and xg.shape == x.shape
    err = np.linalg.norm(fk(qg, xg)[keys] - fk(q, x)[keys], axis=-1).max()
    assert err < 1e-3  # cm
    assert set(keys) <= set(res.keys[0].tolist())  # the user's frames are the model's keys
    assert res.keys[0][0] == 0 and res.keys[0][-1] == N - 1
    # a clip through its keys: no velocity pop at them (speed change within the walk's p95)
    p = fk(qg, xg)
    acc = np.linalg.norm(np.diff(p, 2, axis=0), axis=-1).max(axis=1)  # (N-2,) per frame
    real = np.linalg.norm(np.diff(fk(q, x), 2, axis=0), axis=-1).max(axis=1)
    at = acc[keys[1:-1] - 1]
    assert at.max() <= max(np.percentile(real, 95), np.percentile(acc, 95)) * 1.5
    # and it moves between them like the walk (the hips travel with it)
    assert np.linalg.norm(xg[55, [0, 2]] - xg[30, [0, 2]]) > 20.0


def test_with_a_prompt_and_seeds(model, walk):
    q, x = walk
    known = ib.Keyframes.full(q, x, [0, 50, 100])
    a = model.fill(known, "a person walks forward", seed=1, steps=12, results=2)
    b = model.fill(known, "a person walks forward", seed=1, steps=12)
    assert len(a.motions) == 2 and a.generation.guidance == 2.5
    np.testing.assert_allclose(a.motions[0][0], b.motions[0][0], atol=1e-5)
    assert not np.allclose(a.motions[0][0], a.motions[1][0], atol=1e-3)
    c = model.fill(known, "", seed=1, steps=12)
    assert c.generation.guidance == 1.0  # no prompt: unconditional


def test_only_some_joints_constrained(model, walk):
    q, x = walk
    N = len(q)
    arm = [NAMES.index(n) for n in ("Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L")]
    joints = np.zeros((N, 21), bool)
    frames = [0, 40, 80]
    joints[np.ix_(frames, arm)] = True
    known = ib.Keyframes(q, x, joints, np.zeros(N, bool))
    res = model.fill(known, "", seed=3, steps=20)
    qg, _xg = res.motions[0]
    for j in arm:  # the known rotations exactly
        d = np.abs(np.sum(qg[frames, j] * q[frames, j], -1))
        np.testing.assert_allclose(d, 1.0, atol=1e-6)
    free = NAMES.index("LowerLeg_R")  # a free joint follows the model, not the input
    assert set(frames) <= set(res.keys[0].tolist())
    assert np.isfinite(qg[:, free]).all()


def test_bad_known_poses():
    q, x = rcore.procedural_walk(seconds=1.0, fps=20)
    with pytest.raises(InputError, match="one frame"):
        ib.Keyframes.full(q, x, [5]).check()
    with pytest.raises(InputError, match="no keys"):
        ib.Keyframes.full(q, x, []).check()
    with pytest.raises(InputError, match="same N frames"):
        ib.Keyframes(q, x[:-1], np.zeros((len(q), 21), bool), np.zeros(len(q), bool))
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ib.Keyframes.full(q, bad, [0, 5])


def test_blend_to_keys_ignores_quaternion_signs(walk):
    """Decoded or foot-locked rotations may flip hemisphere from frame to frame (q and -q are
    one rotation): the blend to the keys must not turn a flip into a jump."""
    from sparse_motion.motion import rotations as rot

    q, x = walk
    N = len(q)
    keys = np.array([0, 40, 100])
    rng = np.random.default_rng(0)
    turn = rot.quat_normalize(np.r_[1.0, 0.0, 0.0, 0.0] + rng.normal(0.0, 0.15, (1, 21, 4)))
    model = rot.quat_mul(turn, q)  # the model's motion: every joint off the keys by a turn
    flipped = model * np.where(rng.random((N, 21, 1)) < 0.3, -1.0, 1.0)
    known = ib.Keyframes.full(q, x, keys)
    a_q, a_x = ib.blend_to_keys(model, x, known)
    b_q, b_x = ib.blend_to_keys(flipped, x, known)
    np.testing.assert_allclose(fk(a_q, a_x), fk(b_q, b_x), atol=1e-6)
    np.testing.assert_allclose(fk(b_q, b_x)[keys], fk(q, x)[keys], atol=1e-6)
    step = np.linalg.norm(np.diff(fk(b_q, b_x), axis=0), axis=-1).max()
    assert step < 1.5 * np.linalg.norm(np.diff(fk(q, x), axis=0), axis=-1).max()
    assert np.all(np.sum(b_q[1:] * b_q[:-1], -1) >= 0)  # hemisphere-continuous
