# SPDX-License-Identifier: GPL-3.0-or-later
"""sMDM without Blender: the shared maths, the tiny trained package (torch vs onnxruntime
parity, prompts followed, seeds, cancel) and bad input."""
import numpy as np
import pytest

import smdm_fixture
from sparse_motion.errors import InputError
from sparse_motion.inference import smdm_core as core
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.smdm import Cancelled, SmdmModel


# --------------------------------------------------------------------------- maths


def test_schedule_and_steps():
    ab = core.cosine_alphas_cumprod()
    assert ab.shape == (1000,) and np.all(np.diff(ab) < 0) and 0.99 < ab[0] <= 1 and ab[-1] < 1e-3
    for s in (10, 50, 1000):
        ts = core.ddim_timesteps(s)
        assert len(ts) == s and ts[0] == 999 and ts[-1] == 0 and np.all(np.diff(ts) < 0)
    with pytest.raises(ValueError):
        core.ddim_timesteps(0)


def test_interpolation_rebuilds_linear_features():
    N = 37
    keys = np.array([0, 3, 10, 11, 30, 36])
    left, w = core.interpolation(keys, N)
    f = np.stack([np.arange(N) * 2.0 + 1, -np.arange(N) * 0.5], axis=1)  # linear in time
    fk = f[keys]
    right = np.minimum(left + 1, len(keys) - 1)
    rebuilt = fk[left] * (1 - w[:, None]) + fk[right] * w[:, None]
    np.testing.assert_allclose(rebuilt, f, atol=1e-5)
    np.testing.assert_array_equal(rebuilt[keys], fk)
    with pytest.raises(ValueError):
        core.interpolation([1, 36], N)  # must start at frame 0


def test_keyframe_selections():
    rng = np.random.default_rng(0)
    assert core.key_count(200) == 40 and core.key_count(5) == 2
    u = core.uniform_keys(100, 20)
    assert len(u) == 20 and u[0] == 0 and u[-1] == 99
    r = core.random_keys(50, 10, rng)
    assert len(r) == 10 and r[0] == 0 and r[-1] == 49 and np.all(np.diff(r) > 0)
    # VW keeps the corner of a polyline with one sharp turn
    t = np.arange(41, dtype=float)
    pts = np.stack([np.minimum(t, 20), np.maximum(t - 20, 0), np.zeros_like(t)], 1)[:, None]
    assert list(core.vw_keys(pts, 3)) == [0, 20, 40]
    areas = core.vw_areas(pts)
    assert list(core.keys_from_areas(areas, 3, 5, 30)) == [0, 15, 24]  # crop 5..29


# --------------------------------------------------------------------------- the tiny model


@pytest.fixture(scope="module")
def tiny():
    return SmdmModel(smdm_fixture.tiny_package()).load()


def _travel(gen, r=0):
    _q, x = gen.motion(r)
    return float(np.linalg.norm(x[-1, [0, 2]] - x[0, [0, 2]]))


def test_tiny_model_follows_the_prompt(tiny):
    walk = tiny.generate("a person walks forward", 60, seed=3, steps=20, results=2)
    arms = tiny.generate("a person raises both arms", 60, seed=3, steps=20, results=2)
    # trained: walks move ~4 cm per frame, arm raises stay in place
    assert min(_travel(walk, 0), _travel(walk, 1)) > 120.0
    assert max(_travel(arms, 0), _travel(arms, 1)) < 40.0
    assert walk.features.shape == (2, 60, 257) and np.isfinite(walk.features).all()
    assert set(walk.timings) == {"text", "sampling"}


def test_same_seed_same_motion(tiny):
    a = tiny.generate("a person walks forward", 50, seed=11, steps=12, results=2)
    b = tiny.generate("a person walks forward", 50, seed=11, steps=12, results=1)
    c = tiny.generate("a person walks forward", 50, seed=12, steps=12)
    np.testing.assert_array_equal(a.features[0], b.features[0])  # result 0 whatever the count
    assert not np.allclose(a.features[0], c.features[0])
    assert not np.allclose(a.features[0], a.features[1])


def test_model_keyframes(tiny):
    g = tiny.generate("a person raises both arms", 80, seed=0, steps=20, gamma=0.0)
    np.testing.assert_array_equal(g.keys[0], core.uniform_keys(80, 16))
    g = tiny.generate("a person raises both arms", 80, seed=0, steps=20, gamma=0.5)
    k = g.keys[0]
    assert len(k) == 16 and k[0] == 0 and k[-1] == 79  # VW re-selected in the late steps


def test_torch_and_onnxruntime_agree(tiny):
    pytest.importorskip("torch")
    torch_model = SmdmModel(smdm_fixture.tiny_package(), backend="torch").load()
    for n, g in ((40, 2.5), (97, 1.0)):
        a = tiny.generate("a person walks forward", n, seed=5, steps=10, guidance=g)
        b = torch_model.generate("a person walks forward", n, seed=5, steps=10, guidance=g)
        np.testing.assert_allclose(a.features, b.features, atol=2e-3 * float(np.abs(a.features).max()))
        np.testing.assert_array_equal(a.keys[0], b.keys[0])


def test_cancel_stops_between_steps(tiny):
    seen = []

    def progress(f, msg):
        seen.append(f)

    with pytest.raises(Cancelled):
        tiny.generate("a person walks forward", 60, seed=0, steps=50, progress=progress,
                      cancel=lambda: len(seen) >= 3)
    assert len(seen) == 3


@pytest.mark.parametrize("kwargs, words", [
    (dict(text="   ", frames=60), "prompt is empty"),
    (dict(text="walk", seconds=0.0), "out of range"),
    (dict(text="walk", seconds=600.0), "out of range"),
    (dict(text="walk", frames=60, steps=3), "Steps must be"),
    (dict(text="walk", frames=60, results=0), "Number of results"),
    (dict(text="walk", frames=60, guidance=float("nan")), "Guidance"),
    (dict(text="walk", frames=60, seed=-1), "seed must be 0 or more"),
])
def test_bad_requests_are_refused(tiny, kwargs, words):
    with pytest.raises(InputError, match=words):
        tiny.generate(**kwargs)


def test_missing_and_corrupt_model_files(tmp_path):
    pkg = smdm_fixture.copy_package(tmp_path / "a")
    (pkg / "denoiser.onnx").unlink()
    with pytest.raises(ModelPackageError, match="denoiser.onnx"):
        SmdmModel(pkg).load()
    pkg = smdm_fixture.copy_package(tmp_path / "b")
    data = bytearray((pkg / "denoiser.onnx").read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    (pkg / "denoiser.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="checksum"):
        SmdmModel(pkg).load()
