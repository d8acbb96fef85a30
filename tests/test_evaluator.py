# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the motion/text evaluator package (models/evaluator) and the metrics.

Runs in the main test venv (numpy, onnxruntime, tokenizers; no torch) and needs neither
../shared nor the built dataset: the motions are made here, procedurally, with
``motion/canonical.py`` + ``motion/features.py`` from one standing pose.
"""
import json
import shutil

import numpy as np
import pytest

from sparse_motion.inference import metrics as M
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.evaluator import (Evaluator, Generator, NoiseGenerator,
                                               default_package_dir)
from sparse_motion.inference.text_encoder import TextEncoder, file_sha256
from sparse_motion.motion import canonical as _can
from sparse_motion.motion import features as _feat
from sparse_motion.motion import rotations as _rot

PACKAGE = default_package_dir()
D = 257
E = 256

# =========================================================================== synthetic motion

# A standing pose (local quaternions w, x, y, z of the canonical skeleton), rounded from the
# first frame of a "normal"-style clip; everything else below is generated.
REST = np.array([
    [0.713, -0.006, 0.006, 0.701], [0.706, 0.708, -0.018, 0.019], [1.0, 0.002, 0.001, -0.014],
    [0.999, -0.018, 0.025, 0.028], [0.997, -0.004, -0.033, 0.067],
    [0.564, -0.408, -0.421, -0.582], [0.764, 0.223, -0.284, -0.534],
    [0.963, 0.151, -0.222, 0.035], [0.997, 0.047, -0.056, -0.017],
    [0.611, 0.444, -0.386, 0.531], [0.78, 0.245, -0.268, -0.509],
    [0.966, 0.121, -0.227, 0.029], [0.999, 0.046, 0.0, -0.023],
    [0.028, -0.029, 0.073, -0.997], [0.99, 0.002, 0.143, 0.0], [0.854, 0.029, -0.52, -0.02],
    [0.99, 0.0, -0.144, 0.0], [0.095, 0.995, -0.008, -0.009], [0.993, 0.002, 0.117, 0.0],
    [0.856, 0.058, -0.513, -0.027], [0.986, -0.001, -0.167, 0.0]])
REST = REST / np.linalg.norm(REST, axis=1, keepdims=True)
HIP_HEIGHT = 93.0
JOINT = {n: k for k, n in enumerate(_can.JOINT_NAMES)}
AX_X, AX_Y, AX_Z = np.eye(3)   # +X: the character's left, +Y: up, +Z: forward


def _rest_globals():
    g = np.zeros_like(REST)
    for j, p in enumerate(_can.PARENTS):
        g[j] = REST[j] if p < 0 else _rot.quat_mul(g[p], REST[j])
    return g


G_REST = _rest_globals()


def _axis_quats(axis, deg):
    half = np.deg2rad(np.atleast_1d(np.asarray(deg, dtype=np.float64)))[:, None] / 2
    return np.concatenate([np.cos(half), np.sin(half) * axis[None, :]], axis=1)


# Elbows and knees are hinges in the data: their local rotation is Ry(flex) (elbows also
# twist about the bone, local X, after it), so they flex about local Y only; positive flex
# bends them (elbows flex towards -Y, knees towards +Y).
HINGE_SIGN = {"LowerArm_L": -1.0, "LowerArm_R": -1.0, "LowerLeg_L": 1.0, "LowerLeg_R": 1.0}


def animate(n, deltas, root_xz, yaw_deg, height, flex=None):
    """The standing pose plus per-joint rotations ``deltas[joint] = [(axis, degrees), ...]``
    about world axes as oriented at the parent's rest pose (applied in order), hinge flexion
    ``flex[joint] = degrees`` added to elbows/knees, root path ``(n, 2)`` on the ground,
    heading ``yaw_deg (n,)``, hip height ``(n,)``."""
    q = np.repeat(REST[None], n, axis=0)
    for name, rots in deltas.items():
        j = JOINT[name]
        p = _can.PARENTS[j]
        d = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
        for axis, deg in rots:
            d = _rot.quat_mul(_axis_quats(axis, np.broadcast_to(deg, (n,))), d)
        if p < 0:
            q[:, j] = _rot.quat_mul(d, q[:, j])
        else:
            gp = np.broadcast_to(G_REST[p], (n, 4))
            q[:, j] = _rot.quat_mul(_rot.quat_mul(_rot.quat_conj(gp), _rot.quat_mul(d, gp)),
                                    q[:, j])
    for name, deg in (flex or {}).items():
        j = JOINT[name]
        q[:, j] = _rot.quat_mul(
            _axis_quats(AX_Y, HINGE_SIGN[name] * np.broadcast_to(deg, (n,))), q[:, j])
    q[:, 0] = _rot.quat_mul(_axis_quats(AX_Y, yaw_deg), q[:, 0])
    x = np.stack([root_xz[:, 0], height, root_xz[:, 1]], axis=1)
    return q, x


def locomotion(n, speed, freq, hip, knee, arm, elbow=15.0, lean=0.0, turn=0.0, backward=False):
    t = np.arange(n) / 20.0
    ph = 2 * np.pi * freq * t
    s = np.sin(ph)
    head = np.deg2rad(turn * t)
    step = -speed if backward else speed
    vel = np.stack([np.sin(head) * step, np.cos(head) * step], axis=1)
    root = np.cumsum(vel, axis=0) - vel[0]
    deltas = {
        "UpperLeg_L": [(AX_X, -hip * s)], "UpperLeg_R": [(AX_X, hip * s)],
        "UpperArm_L": [(AX_X, arm * s)], "UpperArm_R": [(AX_X, -arm * s)],
        "Hips": [(AX_X, lean)],
    }
    flex = {
        "LowerLeg_L": knee * np.clip(np.sin(ph - 1.2), 0, None),
        "LowerLeg_R": knee * np.clip(np.sin(ph + np.pi - 1.2), 0, None),
        "LowerArm_L": elbow, "LowerArm_R": elbow,
    }
    height = HIP_HEIGHT - 1.5 - 1.5 * np.cos(2 * ph) - (4.0 if hip > 30 else 0.0)
    return animate(n, deltas, root, turn * t, height, flex)


def standing(n, deltas, flex=None):
    return animate(n, deltas, np.zeros((n, 2)), np.zeros(n), np.full(n, HIP_HEIGHT), flex)


def ramp(n, deg, rise=15):
    return deg * np.clip(np.arange(n) / rise, 0, 1)


def arms_up(n, sides, raise_deg, flex_deg, wave_deg=0.0):
    """Raise the arm(s) sideways (upper arm turned out so the elbow bends upwards), forearm
    up; ``wave_deg`` swings the forearm side to side at 1.5 Hz."""
    osc = wave_deg * np.sin(2 * np.pi * 1.5 * np.arange(n) / 20.0) * np.clip(
        np.arange(n) / 15 - 0.5, 0, 1)
    d, flex = {}, {}
    for s in sides:
        sg = 1.0 if s == "L" else -1.0
        d[f"UpperArm_{s}"] = [(AX_Y, sg * ramp(n, 90)), (AX_Z, sg * ramp(n, raise_deg))]
        flex[f"LowerArm_{s}"] = ramp(n, flex_deg) + osc
    return standing(n, d, flex)


def bow(n):
    a = 60 * np.sin(np.pi * np.arange(n) / (n - 1))
    return standing(n, {"Spine": [(AX_X, 0.5 * a)], "Chest": [(AX_X, 0.5 * a)]})


# name: (motion of n frames, caption)
MOTIONS = {
    "walk": (lambda n: locomotion(n, 6.0, 0.9, 25, 40, 15), "A person walks forward."),
    "run": (lambda n: locomotion(n, 16.0, 1.4, 40, 80, 30, elbow=80, lean=10),
            "A person runs forward."),
    "walk-back": (lambda n: locomotion(n, 4.0, 0.9, 20, 30, 10, backward=True),
                  "A person walks backward."),
    "turn-left": (lambda n: locomotion(n, 5.0, 0.9, 25, 40, 15, turn=45),
                  "A person walks and turns left."),
    "turn-right": (lambda n: locomotion(n, 5.0, 0.9, 25, 40, 15, turn=-45),
                   "A person walks and turns right."),
    "wave-left": (lambda n: arms_up(n, "L", 125, 60, 30), "A person waves the left hand."),
    "wave-right": (lambda n: arms_up(n, "R", 125, 60, 30), "A person waves the right hand."),
    "wave-both": (lambda n: arms_up(n, "LR", 125, 60, 30), "A person waves both hands."),
    "raise-left": (lambda n: arms_up(n, "L", 80, 90), "A person raises the left hand."),
    "raise-right": (lambda n: arms_up(n, "R", 80, 90), "A person raises the right hand."),
    "raise-both": (lambda n: arms_up(n, "LR", 100, 80), "A person raises both hands."),
    "bow": (bow, "A person bows."),
}


def synth_features(name, n=80):
    q, x = MOTIONS[name][0](n)
    return _feat.motion_to_features(q, x).astype(np.float32)


# =========================================================================== fixtures


@pytest.fixture(scope="module")
def text_encoder():
    return TextEncoder(threads=2).load()


@pytest.fixture(scope="module")
def evaluator(text_encoder):
    return Evaluator(PACKAGE, text_encoder=text_encoder, threads=2).load()


@pytest.fixture(scope="module")
def synthetic():
    names = list(MOTIONS)
    return {n_frames: [synth_features(k, n_frames) for k in names] for n_frames in (60, 100)}


@pytest.fixture()
def package_copy(tmp_path):
    dst = tmp_path / "evaluator"
    shutil.copytree(PACKAGE, dst)
    return dst


# =========================================================================== the package


def test_manifest_describes_package():
    man = json.loads((PACKAGE / "manifest.json").read_text())
    assert man["kind"] == "evaluator"
    assert man["fps"] == 20 and man["feature_dim"] == D and man["embedding_dim"] == E
    for name, entry in man["files"].items():
        assert file_sha256(PACKAGE / name) == entry["sha256"], name
        assert (PACKAGE / name).stat().st_size == entry["size"]
    spec = man["files"]["motion_encoder.onnx"]
    assert spec["inputs"] == [{"name": "features", "dtype": "float32",
                               "shape": ["batch", "frames", D]}]
    assert spec["outputs"] == [{"name": "embedding", "dtype": "float32", "shape": ["batch", E]}]
    assert man["files"]["text_projection.onnx"]["inputs"][0]["shape"] == ["batch", 384]
    assert man["data"]["license"] == "CC BY-NC 4.0"
    assert "non-commercial" in man["data"]["use"]
    assert "Bandai Namco Research Inc." in man["data"]["credit"]
    assert "train_evaluator.py" in man["training"]["command"]
    assert isinstance(man["training"]["seed"], int)
    # the bar for the real test split against its own captions
    assert man["metrics"]["test"]["r_precision_top3"] >= 0.7
    text_sha = json.loads((PACKAGE.parent / "text-minilm-l6" / "manifest.json").read_text())[
        "files"]["model.onnx"]["sha256"]
    assert man["text_encoder"]["model_sha256"] == text_sha


def test_package_is_small():
    total = sum(p.stat().st_size for p in PACKAGE.iterdir() if p.is_file())
    assert total < 5 * 1024 * 1024, total


def test_shipped_statistics(evaluator):
    with np.load(PACKAGE / "stats.npz") as st:
        assert st["mean"].shape == (D,) and st["std"].shape == (D,)
        assert np.all(st["std"] > 0)
    for split in ("train", "val", "test"):
        mu, sigma = evaluator.reference(split)
        assert mu.shape == (E,) and sigma.shape == (E, E)
        assert np.allclose(sigma, sigma.T, atol=1e-6)
        assert np.linalg.eigvalsh(sigma.astype(np.float64)).min() > -1e-5
    with pytest.raises(ValueError, match="no reference"):
        evaluator.reference("nope")
    z = np.random.default_rng(0).standard_normal((5, D)).astype(np.float32)
    assert np.allclose(evaluator.normalize(evaluator.denormalize(z)), z, atol=1e-4)


# =========================================================================== embeddings


def test_embedding_shapes_and_norms(evaluator, synthetic):
    motions = synthetic[60][:3] + [synthetic[100][0], synthetic[60][0][:1], synthetic[60][1][:3]]
    m = evaluator.embed_motion(motions)
    assert m.shape == (6, E) and m.dtype == np.float32
    assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    t = evaluator.embed_text(["A person walks forward.", "Someone waves both hands."])
    assert t.shape == (2, E) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert evaluator.embed_motion([]).shape == (0, E)
    assert evaluator.project_text(np.zeros((0, 384), np.float32)).shape == (0, E)


def test_embeddings_are_deterministic(evaluator, text_encoder, synthetic):
    motions = synthetic[60] + synthetic[100]
    a = evaluator.embed_motion(motions)
    b = evaluator.embed_motion(motions)
    assert np.array_equal(a, b)
    fresh = Evaluator(PACKAGE, text_encoder=text_encoder, threads=1)
    c = fresh.embed_motion(motions)
    assert np.allclose(a, c, atol=1e-5)
    # batching (equal lengths together) and order do not change a clip's embedding
    single = np.stack([evaluator.embed_motion([m])[0] for m in motions[:5]])
    assert np.allclose(single, a[:5], atol=1e-5)
    rev = evaluator.embed_motion(motions[::-1])
    assert np.allclose(rev[::-1], a, atol=1e-5)
    caps = [MOTIONS[k][1] for k in MOTIONS]
    assert np.array_equal(evaluator.embed_text(caps), evaluator.embed_text(caps))
    # different motions get different embeddings
    assert np.linalg.norm(a[0] - a[5]) > 0.1


def test_bad_motion_inputs(evaluator, synthetic):
    f = synthetic[60][0]
    with pytest.raises(TypeError):
        evaluator.embed_motion(f)
    with pytest.raises(ValueError, match="motion 0"):
        evaluator.embed_motion([f[:, :200]])
    bad = f.copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluator.embed_motion([f, bad])
    with pytest.raises(ValueError):
        evaluator.embed_motion([np.zeros((0, D), np.float32)])


def test_corrupt_file_is_rejected(package_copy, text_encoder):
    path = package_copy / "motion_encoder.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="checksum mismatch"):
        Evaluator(package_copy, text_encoder=text_encoder).load()


def test_corrupt_statistics_are_rejected(package_copy, text_encoder):
    (package_copy / "reference_stats.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelPackageError, match="checksum mismatch"):
        Evaluator(package_copy, text_encoder=text_encoder).embed_motion([np.zeros((9, D))])


def test_missing_file_and_bad_manifest(package_copy, text_encoder):
    (package_copy / "text_projection.onnx").unlink()
    with pytest.raises(ModelPackageError, match="missing"):
        Evaluator(package_copy, text_encoder=text_encoder).load()
    man = json.loads((package_copy / "manifest.json").read_text())
    man["kind"] = "text-encoder"
    (package_copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelPackageError, match="kind"):
        Evaluator(package_copy, text_encoder=text_encoder).load()
    (package_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="unreadable"):
        Evaluator(package_copy, text_encoder=text_encoder).load()


def test_text_encoder_must_match(package_copy, text_encoder):
    man = json.loads((package_copy / "manifest.json").read_text())
    man["text_encoder"]["model_sha256"] = "0" * 64
    (package_copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelPackageError, match="different text-encoder"):
        Evaluator(package_copy, text_encoder=text_encoder).load()


def test_default_text_encoder_is_found_next_to_the_package(tmp_path):
    # a copy without the sibling text-encoder package cannot embed text
    dst = tmp_path / "models" / "evaluator"
    shutil.copytree(PACKAGE, dst)
    with pytest.raises(ModelPackageError, match="text encoder"):
        Evaluator(dst).load()


# =========================================================================== metrics: FID


def test_fid_identical_sets_is_zero():
    x = np.random.default_rng(0).standard_normal((500, 16))
    assert M.fid(x, x.copy()) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_a_shift_is_its_squared_length_and_grows():
    x = np.random.default_rng(1).standard_normal((400, 8))
    prev = 0.0
    for s in (0.1, 0.5, 1.0, 2.0):
        v = M.fid(x, x + s)
        assert v == pytest.approx(8 * s * s, rel=1e-6)
        assert v > prev
        prev = v


def test_frechet_distance_matches_closed_forms():
    a = np.array([1.0, 4.0, 9.0])
    b = np.array([4.0, 1.0, 0.25])
    want = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum()) + 1.0
    got = M.frechet_distance(np.zeros(3), np.diag(a), np.array([1.0, 0, 0]), np.diag(b))
    assert got == pytest.approx(want, rel=1e-10)
    # non-commuting covariances: tr sqrt(S1 S2) from the eigenvalues of the product itself
    rng = np.random.default_rng(2)
    A = rng.standard_normal((6, 6))
    B = rng.standard_normal((6, 6))
    s1, s2 = A @ A.T + 0.1 * np.eye(6), B @ B.T + 0.1 * np.eye(6)
    tr = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    want = np.trace(s1) + np.trace(s2) - 2 * tr
    assert M.frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(want, rel=1e-8)
    mu, sig = M.gaussian_stats(A)
    assert M.fid(A, reference=(mu, sig)) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError):
        M.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# =========================================================================== metrics: retrieval


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_r_precision_aligned_is_one():
    t = _unit(np.random.default_rng(3).standard_normal((320, 32)))
    m = _unit(t + 0.01 * np.random.default_rng(4).standard_normal(t.shape))
    assert np.allclose(M.r_precision(m, t, repeats=3), 1.0)
    assert np.allclose(M.r_precision(m, t, direction="text_to_motion"), 1.0)
    # one caption swapped between two motions: exactly those two miss top-1
    t2 = t.copy()
    t2[[0, 1]] = t2[[1, 0]]
    r = M.r_precision(m, t2, batch_size=320)
    assert r[0] == pytest.approx(318 / 320)


def test_r_precision_random_is_chance():
    rng = np.random.default_rng(5)
    m = _unit(rng.standard_normal((3200, 32)))
    t = _unit(rng.standard_normal((3200, 32)))
    r = M.r_precision(m, t, repeats=3, seed=1)
    assert np.allclose(r, [1 / 32, 2 / 32, 3 / 32], atol=0.015)
    # identical captions everywhere (all ties): still chance, ties are broken at random
    r = M.r_precision(m, np.ones_like(t), repeats=3, seed=1)
    assert np.allclose(r, [1 / 32, 2 / 32, 3 / 32], atol=0.015)
    with pytest.raises(ValueError):
        M.r_precision(m[:10], t[:10])


def test_matching_diversity_multimodality():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((400, 8))
    assert M.matching_score(x, x) == 0.0
    assert M.matching_score(x, x + np.array([3.0, 4, 0, 0, 0, 0, 0, 0])) == pytest.approx(5.0)
    assert M.diversity(np.ones((50, 8))) == 0.0
    assert M.diversity(2 * x, seed=3) == pytest.approx(2 * M.diversity(x, seed=3))
    # diversity of a standard normal in d dims: E|a - b| ~ sqrt(2 d)
    assert M.diversity(x) == pytest.approx(np.sqrt(16), rel=0.1)
    groups = [np.repeat(rng.standard_normal((1, 8)), 5, axis=0) for _ in range(4)]
    assert M.multimodality(groups) == 0.0
    spread = [g + rng.standard_normal(g.shape) for g in groups]
    assert M.multimodality(spread) > 1.0
    with pytest.raises(ValueError):
        M.multimodality([np.ones((1, 8))])


# =========================================================================== metrics: physical


def _feet_positions(toe_xyz):
    """(F, 21, 3) positions: every joint at 50 cm except both toes at ``toe_xyz (F, 3)``."""
    F = toe_xyz.shape[0]
    p = np.zeros((F, 21, 3))
    p[..., 1] = 50.0
    p[:, list(M.TOE_JOINTS)] = toe_xyz[:, None, :]
    return p


def test_foot_skating_planted_vs_sliding():
    F = 40
    planted = np.tile([10.0, 4.2, 0.0], (F, 1))
    assert M.foot_skating_ratio(_feet_positions(planted)) == 0.0
    sliding = planted.copy()
    sliding[:, 2] = 5.0 * np.arange(F)            # 5 cm/frame = 100 cm/s at 20 fps
    ratio, ns, nc = M.foot_skating_ratio(_feet_positions(sliding), return_counts=True)
    assert ratio == 1.0 and nc == 2 * (F - 1) and ns == nc
    slow = planted.copy()
    slow[:, 0] += 2.0 * np.arange(F)              # 2 cm/frame < 2.5: not skating at 20 fps
    assert M.foot_skating_ratio(_feet_positions(slow)) == 0.0
    assert M.foot_skating_ratio(_feet_positions(slow), fps=30) == 1.0   # 60 cm/s > 50
    lifted = sliding.copy()
    lifted[:, 1] = 20.0                           # swinging in the air: no contact at all
    assert M.foot_skating_ratio(_feet_positions(lifted), return_counts=True) == (0.0, 0, 0)
    half = planted.copy()
    half[F // 2:, 2] = 5.0 * np.arange(F - F // 2)
    r = M.foot_skating_ratio(_feet_positions(half))
    assert r == pytest.approx((F - F // 2 - 1) / (F - 1))


def test_jitter_and_ground_penetration():
    t = np.arange(30) / 20.0
    p = np.zeros((30, 21, 3))
    p[..., 1] = 80.0 + 100.0 * t[:, None]         # constant velocity
    assert M.jitter(p) == pytest.approx(0.0, abs=1e-6)
    p[..., 0] = 50.0 * t[:, None] ** 3            # jerk 300 cm/s^3 = 3 m/s^3
    assert M.jitter(p) == pytest.approx(3.0, rel=1e-6)
    q = np.zeros((10, 21, 3))
    q[..., 1] = 10.0
    q[:5, 3, 1] = -2.0                            # one joint 2 cm under the floor, 5 of 10 frames
    assert M.ground_penetration(q) == pytest.approx(1.0)
    res = M.physical_metrics([q, q])
    assert res["ground_penetration"] == pytest.approx(1.0)
    assert set(res) == {"foot_skating", "foot_contacts", "jitter", "ground_penetration"}


def test_physical_metrics_of_synthetic_motion(synthetic):
    f = synthetic[100][list(MOTIONS).index("wave-right")]
    res = M.physical_metrics([_feat.features_to_positions(f)])
    # standing still while waving: both toes on the floor, never sliding, not under it
    assert res["foot_contacts"] >= 2 * 90
    assert res["foot_skating"] == 0.0
    assert res["ground_penetration"] == 0.0
    assert res["jitter"] > 0.0


# =========================================================================== the evaluator


def _retrieval(evaluator, motions, seed=0):
    """R@1..3 of the synthetic set (batch = all 12 motions) for matched captions, for
    shuffled captions (mean over random permutations) and for noise motions."""
    names = list(MOTIONS)
    n = len(names)
    t = evaluator.embed_text([MOTIONS[k][1] for k in names])
    m = evaluator.embed_motion(motions)
    matched = M.r_precision(m, t, batch_size=n)
    rng = np.random.default_rng(seed)
    shuffled = np.mean([M.r_precision(m, t[rng.permutation(n)], batch_size=n, seed=k)
                        for k in range(200)], axis=0)
    noise_gen = NoiseGenerator(evaluator)
    noise = np.mean([M.r_precision(
        evaluator.embed_motion([noise_gen.generate(names[i], len(motions[i]), 100 * k + i)
                                for i in range(n)]), t, batch_size=n, seed=k)
        for k in range(10)], axis=0)
    return matched, shuffled, noise


@pytest.mark.parametrize("frames", [60, 100])
def test_evaluator_tells_real_motion_from_shuffled_text_and_noise(evaluator, synthetic, frames):
    matched, shuffled, noise = _retrieval(evaluator, synthetic[frames])
    chance = np.array([1, 2, 3]) / len(MOTIONS)
    assert matched[2] >= 0.6, matched
    assert matched[0] >= 0.4, matched
    assert np.all(matched - shuffled >= 0.3), (matched, shuffled)
    assert np.all(matched - noise >= 0.3), (matched, noise)
    assert np.allclose(shuffled, chance, atol=0.05), shuffled
    assert np.allclose(noise, chance, atol=0.1), noise


def test_left_and_right_are_told_apart(evaluator, synthetic):
    names = list(MOTIONS)
    t = evaluator.embed_text([MOTIONS[k][1] for k in names])
    m = evaluator.embed_motion(synthetic[100])
    d = M.euclidean_distances(m, t)
    for a, b in (("wave-left", "wave-right"), ("raise-left", "raise-right")):
        ia, ib = names.index(a), names.index(b)
        assert d[ia, ia] < d[ia, ib] and d[ib, ib] < d[ib, ia], (a, b)


def test_evaluate_reports_every_metric(evaluator, synthetic):
    motions = synthetic[60] + synthetic[100]
    caps = [[MOTIONS[k][1], MOTIONS[k][1].replace("A person", "Someone")] for k in MOTIONS] * 2
    gen = NoiseGenerator(evaluator)
    assert isinstance(gen, Generator)
    groups = [[gen.generate("x", 40, s) for s in range(3)] for _ in range(2)]
    res = evaluator.evaluate(motions, caps, batch_size=12, repeats=3, mm_groups=groups)
    for key in ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "fid",
                "diversity", "multimodality", "foot_skating", "jitter", "ground_penetration"):
        assert np.isfinite(res[key]), key
    assert res["n"] == 24
    assert res["r_precision_top1"] <= res["r_precision_top2"] <= res["r_precision_top3"]
    assert res["fid"] > 0 and res["diversity"] > 0 and res["multimodality"] > 0
    # FID to the shipped train statistics: the synthetic set is far closer than noise
    noise = [gen.generate("x", 80, s) for s in range(24)]
    res_noise = evaluator.evaluate(noise, caps, batch_size=12, repeats=3, physical=False)
    assert res_noise["fid"] > res["fid"]
    assert res_noise["mm_dist"] > res["mm_dist"]
    assert "foot_skating" not in res_noise
    same = evaluator.evaluate(motions, caps, batch_size=12, repeats=3, mm_groups=groups)
    assert same == res
    with pytest.raises(ValueError):
        evaluator.evaluate(motions, caps[:3])
