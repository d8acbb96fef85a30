# SPDX-License-Identifier: GPL-3.0-or-later
"""MotionLCM without Blender: the shared maths, a tiny package trained through the four
stages on synthetic motion (``training/tiny_motionlcm.py``), exported and found by the
registry; 1/2/4-step sampling, seeds, torch vs onnxruntime, the ControlNet, bad input."""
import shutil
import sys
import json
from pathlib import Path

import numpy as np
import pytest

import smdm_fixture
from sparse_motion.errors import Cancelled, InputError
from sparse_motion.inference import generation as gen_mod
from sparse_motion.inference import motionlcm_net as net
from sparse_motion.inference import registry as reg_mod
from sparse_motion.inference import smdm_core as core
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.generation import Generation
from sparse_motion.inference.motionlcm import KIND, MotionLcmModel
from sparse_motion.motion import features as feat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))  # tiny_smdm, train_motionlcm
NAME = smdm_fixture.LCM_NAME
tiny_package = smdm_fixture.tiny_lcm_package


@pytest.fixture(scope="module")
def tiny():
    return MotionLcmModel(tiny_package()).load()


# --------------------------------------------------------------------------- maths


def test_sampling_timesteps_and_boundary_condition():
    assert list(net.lcm_timesteps(1, 10)) == [999]
    assert list(net.lcm_timesteps(2, 10)) == [999, 499]
    assert list(net.lcm_timesteps(4, 10)) == [999, 749, 499, 249]
    assert list(net.lcm_timesteps(4, 20)) == [999, 759, 519, 279]  # grid 19, 39, …, 999; every 12th
    with pytest.raises(ValueError):
        net.lcm_timesteps(0, 10)
    c_skip, c_out = net.boundary_coefficients([0, 1, 999])
    assert c_skip[0] == 1.0 and c_out[0] == 0.0          # f(z, 0) = z
    assert c_skip[2] < 1e-6 and c_out[2] > 0.999999       # f(z, T) = the x0 estimate
    np.testing.assert_allclose(c_skip + c_out ** 2, 1.0)  # sigma-preserving pair


def test_torch_root_trajectory_equals_the_features_decoding():
    torch = pytest.importorskip("torch")
    import tiny_smdm

    rng = np.random.default_rng(0)
    q, x = tiny_smdm.synthetic_clip("walk", 50, rng)
    # make it turn: yaw the root a little more every frame, and move it along the heading
    from sparse_motion.motion import rotations as rot

    yaw = np.linspace(0, 2.0, 50)
    q[:, 0] = rot.quat_mul(tiny_smdm._axis_angle([0, 1, 0], yaw), q[:, 0])
    x[:, 0] = np.cumsum(4 * np.sin(yaw))
    x[:, 2] = np.cumsum(4 * np.cos(yaw))
    f = feat.motion_to_features(q, x)
    want = feat.features_to_positions(f)[:, 0]
    got = net.root_trajectory(torch, torch.from_numpy(f), feat.feature_layout()).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.ptp(want[:, 0]) > 20  # the path really curves


# --------------------------------------------------------------------------- the package


def test_registry_finds_and_opens_the_package():
    pkg_dir = tiny_package()
    reg = reg_mod.Registry(shipped_dirs=[ROOT / "models" / "text-minilm-l6"],
                           user_dirs=[pkg_dir.parent])
    pkg = reg.default(KIND)
    assert pkg.name == NAME and pkg.kind == "motionlcm"
    assert set(pkg.onnx_files()) == {"decoder.onnx", "denoiser.onnx", "controlnet.onnx"}
    m = pkg.manifest
    assert m["training"]["command"].startswith("training/tiny_motionlcm.py")
    assert m["training"]["parity_max_abs"] < 1e-4
    assert set(m["training"]["final"]) == {"vae", "teacher", "distill", "control"}
    model = gen_mod.open_model(pkg)
    assert isinstance(model, MotionLcmModel)
    assert [it[0] for it in reg.enum_items(KIND)] == ["DEFAULT", NAME]


def _travel(g, r=0):
    _q, x = g.motion(r)
    return float(np.linalg.norm(x[-1, [0, 2]] - x[0, [0, 2]]))


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_sampling_at_1_2_4_steps(tiny, steps):
    walk = tiny.generate("a person walks forward", 60, seed=3, steps=steps, results=2)
    arms = tiny.generate("a person raises both arms", 60, seed=3, steps=steps)
    assert isinstance(walk, Generation) and walk.steps == steps
    assert walk.features.shape == (2, 60, 257) and np.isfinite(walk.features).all()
    for r, k in enumerate(walk.keys):  # VW keyframes of the decoded motion: 20 %, both ends
        assert len(k) == core.key_count(60) and k[0] == 0 and k[-1] == 59
        np.testing.assert_array_equal(k, core.vw_keys(feat.features_to_positions(
            walk.features[r]), core.key_count(60)))
    # trained on walks of ~4 cm per frame and arm raises in place
    assert min(_travel(walk, 0), _travel(walk, 1)) > 120.0
    assert _travel(arms) < 80.0
    assert {"text", "sampling", "keyframes"} <= set(walk.timings)


def test_same_seed_same_motion(tiny):
    a = tiny.generate("a person walks forward", 50, seed=11, steps=2, results=2)
    b = tiny.generate("a person walks forward", 50, seed=11, steps=2, results=1)
    c = tiny.generate("a person walks forward", 50, seed=12, steps=2)
    np.testing.assert_array_equal(a.features[0], b.features[0])  # whatever the result count
    assert not np.allclose(a.features[0], c.features[0])
    assert not np.allclose(a.features[0], a.features[1])


def _work_modules(torch):
    """The trained parts from the tiny build's work folder (torch)."""
    import train_motionlcm as tm

    pkg = tiny_package()
    work = Path(str(pkg) + ".work")
    m = MotionLcmModel(pkg).load().package.manifest["model"]
    vcfg, dcfg = net.VaeConfig.from_dict(m["vae"]), net.DenoiserConfig.from_dict(m["denoiser"])
    vae = net.build_vae(torch, vcfg)
    st = torch.load(work / "vae-final.pt", weights_only=False)
    vae.load_state_dict(st["model"])
    dec = net.build_decoder_export(torch, vae, st["lat_mean"], st["lat_std"]).eval()
    student = net.build_denoiser(torch, dcfg)
    student.load_state_dict(torch.load(work / "distill-final.pt", weights_only=False)["model"])
    cn = net.build_controlnet(torch, dcfg, net.ControlConfig.from_dict(m["control"]))
    cst = torch.load(work / "control-final.pt", weights_only=False)
    cn.load_state_dict(cst["model"])
    return (dec, student.eval(), cn.eval()), dcfg, tm, cst["history"]


def test_torch_and_onnxruntime_agree_on_one_step(tiny):
    torch = pytest.importorskip("torch")
    modules, dcfg, tm, _ = _work_modules(torch)
    rng = np.random.default_rng(1)
    for B, N in ((1, 33), (3, 64)):
        feeds = tm.example_feeds(dcfg, B, N, rng)
        for fname, (i, inputs, output) in tm.PARTS.items():
            with torch.no_grad():
                ref = modules[i](*(torch.from_numpy(feeds[k]) for k in inputs)).numpy()
            got = tiny._run(fname, output, {k: feeds[k] for k in inputs})
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_a_fresh_controlnet_leaves_the_step_exactly_unchanged():
    torch = pytest.importorskip("torch")
    (dec, student, _cn), dcfg, tm, _ = _work_modules(torch)
    fresh = net.build_controlnet(torch, dcfg).eval()
    fresh.copy.load_state_dict(student.state_dict())
    f = {k: torch.from_numpy(v) for k, v in tm.example_feeds(dcfg, 2, 48, np.random.default_rng(2)).items()}
    with torch.no_grad():
        res = fresh(*(f[k] for k in net.CONTROLNET_INPUTS))
        assert res.shape == (2, dcfg.layers, dcfg.tokens + 2, dcfg.width)
        assert torch.count_nonzero(res) == 0
        args = [f[k] for k in net.DENOISER_INPUTS[:-1]]
        plain = student(*args)
        controlled = student(*args, res)
    assert torch.equal(plain, controlled)


def test_control_path_trains_and_changes_the_motion(tiny):
    torch = pytest.importorskip("torch")
    *_, history = _work_modules(torch)
    first, last = history[0], history[-1]
    assert last["pelvis_m2"] < first["pelvis_m2"]  # the pelvis loss after decoding went down
    N = 60
    path = np.zeros((N, 3))
    path[:, 1] = 93.0                   # stand still at the start point, pelvis height 93 cm
    a = tiny.generate("a person walks forward", N, seed=0, steps=2)
    b = tiny.generate("a person walks forward", N, seed=0, steps=2, control=path)
    c = tiny.generate("a person walks forward", N, seed=0, steps=2, control=path,
                      control_mask=np.arange(N) % 10 == 0)
    assert np.abs(a.features - b.features).max() > 1e-4
    assert np.abs(b.features - c.features).max() > 1e-5
    assert np.isfinite(c.features).all()


def test_cancel_stops_between_steps(tiny):
    seen = []
    with pytest.raises(Cancelled):
        tiny.generate("a person walks forward", 60, seed=0, steps=4,
                      progress=lambda f, m: seen.append(f), cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2


@pytest.mark.parametrize("kwargs, words", [
    (dict(text="   ", frames=60), "prompt is empty"),
    (dict(text="x" * 1001, frames=60), "characters long"),
    (dict(text="walk", seconds=0.1), "out of range"),
    (dict(text="walk", seconds=600.0), "out of range"),
    (dict(text="walk", frames=60, steps=0), "Steps must be"),
    (dict(text="walk", frames=60, steps=9), "Steps must be"),
    (dict(text="walk", frames=60, results=17), "Number of results"),
    (dict(text="walk", frames=60, guidance=float("nan")), "Guidance"),
    (dict(text="walk", frames=60, seed=-1), "seed must be 0 or more"),
    (dict(text="walk", frames=60, control=np.zeros((59, 3))), "one \\(x, y, z\\) point per frame"),
    (dict(text="walk", frames=60, control=np.full((60, 3), np.nan)), "no frame to follow"),
    (dict(text="walk", frames=60, control=np.full((60, 3), np.nan),
          control_mask=np.ones(60, bool)), "NaN or infinite"),
    (dict(text="walk", frames=60, control=np.full((60, 3), 1e9)), "1 km"),
    (dict(text="walk", frames=60, control_mask=np.ones(60, bool)), "needs a control"),
])
def test_bad_requests_are_refused(tiny, kwargs, words):
    with pytest.raises(InputError, match=words):
        tiny.generate(**kwargs)


def _copy(tmp_path: Path, sub: str) -> Path:
    out = tmp_path / sub / NAME
    shutil.copytree(tiny_package(), out)
    return out


@pytest.mark.parametrize("fname", ["decoder.onnx", "denoiser.onnx", "controlnet.onnx"])
def test_missing_and_corrupt_model_files(tmp_path, fname):
    pkg = _copy(tmp_path, "missing")
    (pkg / fname).unlink()
    with pytest.raises(ModelPackageError, match=fname):
        MotionLcmModel(pkg).load()
    pkg = _copy(tmp_path, "corrupt")
    data = bytearray((pkg / fname).read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\0" * 64
    (pkg / fname).write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="checksum"):
        MotionLcmModel(pkg).load()


def test_an_smdm_package_is_not_a_motionlcm_model(tmp_path):
    with pytest.raises(ModelPackageError):
        MotionLcmModel(smdm_fixture.tiny_package()).load()
    model = gen_mod.open_model(smdm_fixture.tiny_package())
    assert type(model).__name__ == "SmdmModel"


def test_a_stage_resumed_from_its_checkpoint_equals_an_uninterrupted_run(tmp_path):
    torch = pytest.importorskip("torch")
    import tiny_motionlcm
    import train_motionlcm as tm

    data, emb, mean, std = tiny_motionlcm.tiny_data(0)

    def trainer(work, *extra):
        args = tm.parse_args(["--config", "tiny", "--work", str(work), "--steps", "6", "1", "1",
                              "1", "--warmup", "2", "--stat-batches", "1", *extra])
        return tm.Trainer(args, torch, data, emb, mean, std, log_fn=lambda m: None)

    assert trainer(tmp_path / "a").run(("vae",))
    assert not trainer(tmp_path / "b", "--stop-at", "3").run(("vae",))  # "out of time"
    assert (tmp_path / "b" / "vae.pt").is_file() and not (tmp_path / "b" / "vae-final.pt").exists()
    assert torch.load(tmp_path / "b" / "vae.pt", weights_only=False)["step"] == 3
    assert trainer(tmp_path / "b", "--resume").run(("vae",))
    a = torch.load(tmp_path / "a" / "vae-final.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "vae-final.pt", weights_only=False)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert torch.equal(a["lat_mean"], b["lat_mean"])


def test_the_evaluators_generator_runs_any_kind(tiny):
    """training/evaluate.py's ModelGenerator opens a MotionLCM package by its kind and gives
    raw features at the clamped length, foot-locked as Generate Motion writes them."""
    from sparse_motion.inference.generation import ModelGenerator

    gen = ModelGenerator(tiny.package_dir, kind="motionlcm", steps=2, max_frames=48)
    f = gen.generate("a person walks forward", 60, 3)
    assert f.shape == (48, 257) and np.isfinite(f).all()
    assert np.allclose(f, gen.generate("a person walks forward", 60, 3))
    raw = ModelGenerator(tiny.package_dir, kind="motionlcm", steps=2, max_frames=48,
                         foot_lock=False).generate("a person walks forward", 60, 3)
    assert raw.shape == (48, 257) and not np.allclose(raw, f)


def test_int8_package_runs_and_records_its_check(tmp_path):
    """training/quantize_package.py: int8 ONNX weights, a valid package that loads and runs,
    the end-to-end difference to the float package recorded in its manifest."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    import quantize_package

    src = tiny_package()
    dst = tmp_path / "lcm-int8"
    assert quantize_package.main([str(src), str(dst), "--frames", "40", "--max-mean", "10"]) == 0
    m = json.loads((dst / "manifest.json").read_text())
    q = m["quantization"]
    assert set(q["files"]) == {f for f in m["files"] if f.endswith(".onnx")}
    assert q["bytes"]["int8"] < q["bytes"]["float32"]
    assert 0.0 <= q["check"]["mean_abs_std"] <= q["check"]["max_abs_std"]
    g = MotionLcmModel(dst).load().generate("a person walks forward", 40, 0, steps=2)
    assert g.features.shape == (1, 40, 257) and np.isfinite(g.features).all()
    with pytest.raises(SystemExit):
        quantize_package.main([str(src), str(tmp_path / "strict"), "--frames", "40",
                               "--max-mean", "-1"])
