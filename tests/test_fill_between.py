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


# --------------------------------------------------------------------------- known-keyframe inputs


def test_known_inputs_mark_what_the_keys_fix(walk):
    """The denoiser's known-keyframe inputs: exactly the channels the imputation imposes, the
    root's ground position and heading relative to the first known root frame, zero
    elsewhere; the same function serves training and Fill Between."""
    from sparse_motion.motion import features as feat

    q, x = rcore.procedural_walk(seconds=3.0, fps=20, turn=0.6)  # a curving walk
    x = x + np.array([40.0, 0.0, -25.0])
    N = len(q)
    f = feat.motion_to_features(q, x)
    D = f.shape[1]
    mean, std = f.mean(0), np.maximum(f.std(0), 1e-2)
    keys = np.array([10, 30, N - 1])
    known = ib.Keyframes.full(q, x, keys)
    vals, mask = ib.known_inputs(f, known.joints, known.root_known, mean, std)
    assert vals.shape == mask.shape == (N, D + ib.ROOT_CHANNELS)
    rows, cols = ib.known_channels(known.joints, known.root_known)
    want = np.zeros((N, D), bool)
    want[rows, cols] = True
    np.testing.assert_array_equal(mask[:, :D] > 0, want)
    assert set(np.flatnonzero(mask.any(axis=1))) == set(keys.tolist())
    np.testing.assert_allclose(vals[rows, cols], ((f - mean) / std)[rows, cols], atol=1e-5)
    assert np.all(vals[mask == 0] == 0)
    # root channels: the first known root frame at the origin facing +Z, the others where the
    # walk took them (in its frame, metres), against the motion's own world positions
    np.testing.assert_allclose(vals[10, D:], [0.0, 0.0, 1.0, 0.0], atol=1e-6)
    th = feat.heading_angles(q[:, 0])
    for k in keys[1:]:
        d = feat._yaw(th[10], (x[k] - x[10])[None], inverse=True)[0]
        np.testing.assert_allclose(vals[k, D:D + 2], [d[0] / 100, d[2] / 100], atol=2e-3)
        a = th[k] - th[10]
        np.testing.assert_allclose(vals[k, D + 2:], [np.cos(a), np.sin(a)], atol=2e-3)
    # only some joints, no root: their rotation channels and nothing of the root
    joints = np.zeros((N, 21), bool)
    joints[np.ix_(keys, [3, 4])] = True
    vals, mask = ib.known_inputs(f, joints, np.zeros(N, bool), mean, std)
    assert mask[:, D:].sum() == 0 and mask.sum() == len(keys) * 2 * 6


def test_known_layer_starts_as_the_model_it_is_fine_tuned_from():
    """A denoiser with the known-keyframe inputs, loaded from one without them, predicts the
    same whatever it is told is known (the new layer starts at zero): fine-tuning starts from
    the shipped model, not from scratch."""
    torch = pytest.importorskip("torch")
    from sparse_motion.inference import smdm_core as core
    from sparse_motion.inference.smdm_net import DenoiserConfig, build_denoiser, input_names

    cfg = DenoiserConfig(width=32, layers=1, heads=2, ff=64, dropout=0.0)
    kcfg = DenoiserConfig(**{**cfg.to_dict(), "known_dim": cfg.feature_dim + 4})
    assert input_names(kcfg)[-2:] == ("known", "known_mask") and len(input_names(cfg)) == 6
    torch.manual_seed(0)
    base = build_denoiser(torch, cfg).eval()
    tuned = build_denoiser(torch, kcfg).eval()
    missing, unexpected = tuned.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and set(missing) == {"known_proj.weight", "known_proj.bias"}
    B, N = 2, 30
    keys, left, w = core.interpolation_batch([core.uniform_keys(N, 7)] * B, N)
    args = (torch.randn(B, N, cfg.feature_dim), torch.tensor([5, 700]),
            torch.randn(B, cfg.text_dim), torch.from_numpy(keys), torch.from_numpy(left),
            torch.from_numpy(w))
    known = torch.randn(B, N, kcfg.known_dim)
    mask = (torch.rand(B, N, kcfg.known_dim) < 0.5).float()
    with torch.no_grad():
        ref = base(*args)
        torch.testing.assert_close(tuned(*args, known, mask), ref)
        torch.nn.init.normal_(tuned.known_proj.weight)  # once trained, the keys matter
        assert (tuned(*args, known, mask) - ref).abs().max() > 1e-3
        torch.testing.assert_close(tuned(*args, torch.zeros_like(known),
                                         torch.zeros_like(mask)), ref)


def test_training_with_known_keys(tmp_path, walk):
    """A tiny model trained by the real training code with ``--known`` exports the two inputs,
    and onnxruntime and PyTorch fill alike through them; plain generation still runs."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    import tiny_smdm

    out = tmp_path / "pkg"
    manifest = tiny_smdm.build(out, steps=40, seed=0, log=lambda m: None,
                               train_args=("--known", "0.5"))
    names = [i["name"] for i in manifest["files"]["denoiser.onnx"]["inputs"]]
    assert names[-2:] == ["known", "known_mask"]
    assert manifest["model"]["config"]["known_dim"] == 257 + ib.ROOT_CHANNELS
    q, x = walk
    known = ib.Keyframes.full(q, x, [0, 30, 60, 100])
    got = {}
    for backend in ("onnx", "torch"):
        m = SmdmModel(out, backend=backend, settings=RuntimeSettings(threads=1)).load()
        assert m.known_dim == 261
        res = m.fill(known, "", seed=1, steps=10)
        got[backend] = res.generation.features
        at = [0, 30, 60, 100]
        np.testing.assert_allclose(fk(*res.motions[0])[at], fk(q, x)[at], atol=1e-4)
        assert m.generate("a person walks", seconds=2.0, steps=10).features.shape[-1] == 257
    np.testing.assert_allclose(got["onnx"], got["torch"], atol=2e-3)
