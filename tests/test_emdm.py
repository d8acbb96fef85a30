# SPDX-License-Identifier: GPL-3.0-or-later
"""EMDM without Blender: the grid and posterior maths, the differentiable joint positions, a
tiny package trained as a GAN on synthetic motion (``training/tiny_emdm.py``) and found by the
registry; generation, seeds, step counts, onnxruntime vs the PyTorch path through the whole
sampling loop, the fallback to PyTorch, bad input and broken packages; the training loop's
resume, snapshots and ``--init-from``."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import smdm_fixture
from sparse_motion.errors import Cancelled, InputError
from sparse_motion.inference import emdm_net as net
from sparse_motion.inference import generation as gen_mod
from sparse_motion.inference import registry as reg_mod
from sparse_motion.inference.emdm import KIND, EmdmModel
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.package import file_sha256
from sparse_motion.motion import features as feat

ROOT = Path(__file__).resolve().parents[1]
tiny_package = smdm_fixture.tiny_emdm_package
WALK, ARMS = "a person walks forward", "a person raises both arms"


@pytest.fixture(scope="module")
def tiny():
    return EmdmModel(tiny_package()).load()


@pytest.fixture(scope="module")
def tiny_torch():
    pytest.importorskip("torch")
    return EmdmModel(tiny_package(), backend="torch").load()


# --------------------------------------------------------------------------- maths


def test_grid_levels_are_trained_levels():
    assert net.grid_timesteps(10).tolist() == [99, 199, 299, 399, 499, 599, 699, 799, 899, 999]
    assert net.grid_timesteps(1).tolist() == [999]
    a = net.level_alphas(10)
    assert a[0] == 1.0 and np.all(np.diff(a) < 0) and a[-1] < 1e-6
    assert net.step_choices(10) == [1, 2, 5, 10]
    for steps in (1, 2, 5, 10):
        levels = net.sampling_levels(10, steps)
        assert len(levels) == steps and levels[0] == 10
        # fewer steps visit trained levels: the same timesteps as a model trained for them
        np.testing.assert_array_equal(net.grid_timesteps(10)[levels - 1],
                                      net.grid_timesteps(steps)[::-1])
    with pytest.raises(ValueError):
        net.sampling_levels(10, 3)


@pytest.mark.parametrize("to, frm", [(0, 1), (3, 4), (2, 6), (0, 10), (9, 10)])
def test_posterior_keeps_the_forward_marginals(to, frm):
    # x_k ~ q(x_k | x0) then x_j ~ q(x_j | x_k, x0) must be distributed as q(x_j | x0):
    # mean sqrt(a_j) x0, variance 1 - a_j
    a = net.level_alphas(10)
    c0, ck, sigma = net.posterior_coefficients(a[to], a[frm])
    assert c0 + ck * np.sqrt(a[frm]) == pytest.approx(np.sqrt(a[to]), abs=1e-9)
    assert ck ** 2 * (1 - a[frm]) + sigma ** 2 == pytest.approx(1 - a[to], abs=1e-9)
    if to == 0:  # the clean level: x0 itself
        assert (c0, ck, sigma) == pytest.approx((1.0, 0.0, 0.0))


def test_joint_positions_are_the_features_positions():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    n = 50
    t = np.arange(n)
    yaw = 0.04 * t + 0.3 * np.sin(0.2 * t)            # turning while moving
    q = np.zeros((n, 21, 4))
    q[..., 0] = 1.0
    q[:, 0] = np.stack([np.cos(yaw / 2), 0 * t, np.sin(yaw / 2), 0 * t], -1)
    q[:, 1:] += 0.2 * rng.standard_normal((n, 20, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    x = np.stack([3 * np.sin(0.1 * t), 90 + 2 * np.cos(0.3 * t), 4.0 * t], -1)
    f = feat.motion_to_features(q, x)
    got = net.joint_positions(torch, torch.from_numpy(f), feat.feature_layout()).numpy()
    np.testing.assert_allclose(got, feat.features_to_positions(f), atol=1e-6)


# --------------------------------------------------------------------------- the package


def test_package_loads_through_the_registry_with_its_licence(tiny):
    reg = reg_mod.Registry(shipped_dirs=[ROOT / "models" / "text-minilm-l6"],
                           user_dirs=[tiny_package().parent])
    pkg = reg.default(KIND)
    assert pkg.name == smdm_fixture.EMDM_NAME and pkg.kind == KIND and KIND in gen_mod.KINDS
    assert isinstance(gen_mod.open_model(pkg), EmdmModel)
    m = json.loads((tiny_package() / "manifest.json").read_text())
    assert m["commercial_use"] is True  # synthetic data, no restriction
    assert m["training"]["data"] == [{"name": "synthetic", "license": "GPL-3.0-or-later"}]
    assert m["training"]["parity_max_abs"] < 1e-3 and m["training"]["geometric"] is True
    assert m["model"]["steps_t"] == 10 and m["model"]["grid"] == net.grid_timesteps(10).tolist()
    # the sparse generator (sMDM's denoiser + z): the keyframe inputs too
    assert m["model"]["generator"]["sparse"] is True
    assert [i["name"] for i in m["files"]["generator.onnx"]["inputs"]] == list(
        net.INPUT_NAMES + net.KEY_INPUTS)
    assert m["text_encoder"]["name"] == "text-minilm-l6"
    # one copy of the weights: the PyTorch path reads generator.onnx's
    assert set(m["files"]) == {"generator.onnx", "stats.npz"}
    assert tiny.backend == "onnx" and tiny.fallback is None


def test_a_real_data_package_is_non_commercial(tmp_path):
    """The packaging of the real training writes the Bandai Namco CC BY-NC entry and
    commercial_use false (the same manifest code as sMDM's)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    sys.path.insert(0, str(ROOT / "training"))
    import train_emdm as te

    g = net.build_generator(torch, net.GeneratorConfig(width=16, layers=1, heads=2, ff=16)).eval()
    onnx = te.export_onnx(torch, g, tmp_path / "g.onnx")
    te_manifest = json.loads((ROOT / "models" / "text-minilm-l6" / "manifest.json").read_text())
    m = te.write_package(tmp_path / "pkg", onnx, g, np.zeros(257), np.ones(257), te_manifest,
                         name="emdm-x", version="1.0.0", description="x", training={"seed": 0},
                         steps_t=5, guidance=2.5, max_frames=200)
    assert m["commercial_use"] is False and m["kind"] == "emdm"
    assert m["training"]["data"][0]["license"] == "CC-BY-NC-4.0"
    assert m["training"]["data"][0]["commercial_use"] is False
    assert EmdmModel(tmp_path / "pkg").load().config["steps"] == 5
    # the dense generator (attention over every frame) runs alike on both backends
    a = EmdmModel(tmp_path / "pkg").generate(WALK, seconds=2, seed=1)
    b = EmdmModel(tmp_path / "pkg", backend="torch").generate(WALK, seconds=2, seed=1)
    assert np.abs(a.features - b.features).max() < 1e-3


# --------------------------------------------------------------------------- generation


def test_generates_the_asked_motion_deterministically(tiny):
    walk = tiny.generate(WALK, seconds=3, seed=1)
    assert walk.features.shape == (1, 60, 257) and walk.steps == 10 and walk.guidance == 2.5
    np.testing.assert_array_equal(walk.features, tiny.generate(WALK, seconds=3, seed=1).features)
    other = tiny.generate(WALK, seconds=3, seed=2)
    assert np.abs(walk.features - other.features).max() > 1e-2
    # result r draws from its own generator: result 0 of two is the single result
    two = tiny.generate(WALK, seconds=3, seed=1, results=2)
    np.testing.assert_array_equal(two.features[0], walk.features[0])
    assert np.abs(two.features[1] - two.features[0]).max() > 1e-2
    # the tiny model learned the two kinds: walks go forward, arm raises stay
    for seed in (1, 2, 3):
        _q, x = tiny.generate(WALK, seconds=3, seed=seed).motion(0)
        _q, y = tiny.generate(ARMS, seconds=3, seed=seed).motion(0)
        walked = x[-1, 2] - x[0, 2]
        stood = np.linalg.norm(y[-1, [0, 2]] - y[0, [0, 2]])
        assert walked > 100 and stood < 40, (seed, walked, stood)
    k = walk.keys[0]
    assert k[0] == 0 and k[-1] == 59 and len(k) == 12
    assert tiny.generate(WALK, 37, seed=0, results=2).features.shape == (2, 37, 257)


def test_fewer_steps_and_no_guidance(tiny):
    progress = []
    one = tiny.generate(WALK, seconds=2, seed=0, steps=1, progress=lambda p, m: progress.append(m))
    assert progress == ["step 1/1"] and one.steps == 1
    five = tiny.generate(WALK, seconds=2, seed=0, steps=5)
    ten = tiny.generate(WALK, seconds=2, seed=0)
    assert np.abs(five.features - ten.features).max() > 1e-3
    unguided = tiny.generate(WALK, seconds=2, seed=0, guidance=1.0)
    assert np.abs(unguided.features - ten.features).max() > 1e-3
    for g in (one, five, unguided):
        assert np.all(np.isfinite(g.features))


def assert_agree(a, b, std):
    """onnxruntime and torch features agree after the whole sampling loop: within 5 % of each
    feature's spread (the package's std). float32 kernels differ by CPU and the one-step
    generator carries the difference through the loop: on one AMD EPYC (AVX-512) machine
    up to 1.4 % of a spread (0.06 cm on a 129 cm joint position), 2e-5 on others."""
    assert (np.abs(a - b) / std).max() < 0.05, (np.abs(a - b) / std).max()


def test_onnxruntime_and_torch_agree_through_the_sampling_loop(tiny, tiny_torch):
    assert tiny_torch.backend == "torch" and tiny_torch.device.engine == "torch"
    for text, secs, seed, steps in ((WALK, 3, 4, 10), ("someone lifts both arms up", 2.55, 9, 10),
                                    (WALK, 2, 1, 5)):
        a = tiny.generate(text, seconds=secs, seed=seed, steps=steps, results=2)
        b = tiny_torch.generate(text, seconds=secs, seed=seed, steps=steps, results=2)
        assert_agree(a.features, b.features, tiny.std)
        assert [k.tolist() for k in a.keys] == [k.tolist() for k in b.keys]


def test_bad_input_is_refused_with_a_message(tiny):
    with pytest.raises(InputError, match="empty"):
        tiny.generate("  ", seconds=2)
    with pytest.raises(InputError, match="out of range"):
        tiny.generate(WALK, seconds=10000)
    with pytest.raises(InputError, match="out of range"):
        tiny.generate(WALK, seconds=0.1)
    for steps in (0, 3, 50):
        with pytest.raises(InputError, match=r"Steps must be one of 1, 2, 5, 10 .*trained for 10"):
            tiny.generate(WALK, seconds=2, steps=steps)
    with pytest.raises(InputError, match="Guidance"):
        tiny.generate(WALK, seconds=2, guidance=float("nan"))
    with pytest.raises(InputError, match="seed"):
        tiny.generate(WALK, seconds=2, seed=-1)
    with pytest.raises(InputError, match="results"):
        tiny.generate(WALK, seconds=2, results=0)
    with pytest.raises(Cancelled):
        tiny.generate(WALK, seconds=2, cancel=lambda: True)


# --------------------------------------------------------------------------- broken packages


def _copy(tmp_path, **model):
    pkg = tmp_path / smdm_fixture.EMDM_NAME
    shutil.copytree(tiny_package(), pkg)
    if model:
        m = json.loads((pkg / "manifest.json").read_text())
        m["model"].update(model)
        (pkg / "manifest.json").write_text(json.dumps(m))
    return pkg


def _replace_listed(pkg, name, data: bytes):
    """Put ``data`` in place of ``name`` and list it in the manifest (an intact package whose
    file onnxruntime cannot load)."""
    (pkg / name).write_bytes(data)
    m = json.loads((pkg / "manifest.json").read_text())
    m["files"][name].update(sha256=file_sha256(pkg / name), size=len(data))
    (pkg / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("backend", [None, "onnx"])
def test_broken_packages_say_what_is_wrong(tmp_path, backend):
    pkg = _copy(tmp_path)
    data = bytearray((pkg / "generator.onnx").read_bytes())
    data[1000:1064] = b"\1" * 64
    (pkg / "generator.onnx").write_bytes(bytes(data))
    # a modified file is a broken package, not a reason to fall back to PyTorch
    with pytest.raises(ModelPackageError, match="checksum mismatch for EMDM model generator"):
        EmdmModel(pkg, backend=backend).load()
    (pkg / "generator.onnx").unlink()
    with pytest.raises(ModelPackageError, match="EMDM model generator missing: .*generator.onnx"):
        EmdmModel(pkg, backend=backend).load()


def _with_unknown_operator(path):
    """An intact graph this onnxruntime cannot load: one more node of an operator nobody
    registered (its output unused), weights untouched."""
    onnx = pytest.importorskip("onnx")
    m = onnx.load(str(path))
    m.opset_import.append(onnx.helper.make_opsetid("sparse_motion.test", 1))
    m.graph.node.append(onnx.helper.make_node("NoSuchOperator", ["x_t"], ["unused"],
                                              domain="sparse_motion.test"))
    return m.SerializeToString()


def test_intact_graph_onnxruntime_cannot_load_falls_back_to_torch(tmp_path, tiny):
    pytest.importorskip("torch")
    pkg = _copy(tmp_path)
    _replace_listed(pkg, "generator.onnx", _with_unknown_operator(pkg / "generator.onnx"))
    with pytest.raises(ModelPackageError, match="generator could not be loaded"):
        EmdmModel(pkg, backend="onnx").load()
    m = EmdmModel(pkg).load()  # the package's "auto"
    assert m.backend == "torch" and "onnxruntime cannot run generator.onnx" in m.fallback
    a = m.generate(WALK, seconds=2, seed=3)
    assert_agree(a.features, tiny.generate(WALK, seconds=2, seed=3).features, tiny.std)
    # a file that is no graph at all leaves nothing to fall back to: both reasons are given
    _replace_listed(pkg, "generator.onnx", b"not a graph")
    with pytest.raises(ModelPackageError, match="onnxruntime cannot run .*PyTorch path failed"):
        EmdmModel(pkg).load()


def test_package_can_ask_for_torch(tmp_path):
    pytest.importorskip("torch")
    assert EmdmModel(_copy(tmp_path, backend="torch")).load().backend == "torch"
    with pytest.raises(ValueError, match="backend"):
        EmdmModel(tiny_package(), backend="tensorflow")


def test_not_an_emdm_package(tmp_path):
    pkg = _copy(tmp_path)
    m = json.loads((pkg / "manifest.json").read_text())
    del m["model"]["steps_t"]
    (pkg / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelPackageError, match="not an EMDM package"):
        EmdmModel(pkg).load()


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def train_emdm():
    pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "training"))
    import tiny_emdm
    import train_emdm

    return tiny_emdm, train_emdm


def test_resume_continues_exactly_and_snapshots_are_kept(tmp_path, train_emdm):
    """Six steps in one go equal three, a stop (checkpoint: generator, EMA, discriminator and
    both optimisers) and three more after --resume; the loss history is kept."""
    torch = pytest.importorskip("torch")
    tiny, _ = train_emdm
    opts = ["--steps", "6", "--log-every", "1", "--snapshot-every", "2", "--r1-every", "2"]
    whole = tiny.build(tmp_path / "a", extra_args=opts, export=False)
    tiny.build(tmp_path / "b", extra_args=opts + ["--stop-at", "3"], export=False)
    part = tiny.build(tmp_path / "b", extra_args=opts + ["--resume"], export=False)
    a = torch.load(tmp_path / "a.work" / "gan.pt", weights_only=False)
    b = torch.load(tmp_path / "b.work" / "gan.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name, v in a[key].items():
            assert torch.equal(v, b[key][name]), (key, name)
    for name, v in a["extra"]["disc"].items():
        assert torch.equal(v, b["extra"]["disc"][name]), name
    # the history goes on from the stop (its running means start again after a resume)
    assert [h["step"] for h in b["history"]] == [1, 2, 3, 4, 5, 6]
    assert a["history"][:3] == b["history"][:3]
    assert whole.history == a["history"] and part.history == b["history"]
    assert {"d_real", "d_fake", "g_adv", "rec", "pos", "vel", "foot", "r1"} <= set(a["history"][-1])
    assert sorted(p.name for p in (tmp_path / "a.work").glob("ema-*.pt")) == [
        "ema-000002.pt", "ema-000004.pt"]
    assert (tmp_path / "a.work" / "gan-final.pt").is_file()


def test_no_geometric_trains_on_the_adversarial_loss_alone(tmp_path, train_emdm):
    """The ablation: the generator's loss is the adversarial term (and the tiny Lipschitz
    term); the geometric terms are still logged."""
    torch = pytest.importorskip("torch")
    tiny, te = train_emdm
    trainer = tiny.build(tmp_path / "n", extra_args=["--steps", "2", "--no-geometric",
                                                     "--log-every", "1"], export=False)
    assert trainer.args.no_geometric and {"rec", "g_adv"} <= set(trainer.history[-1])
    args = te.parse_args(["--config", "tiny", "--no-geometric", "--steps-t", "5"])
    assert args.work.endswith("tiny-T5-nogeo") and args.steps_t == 5
    # the geometric losses vanish for a perfect prediction and pull a wrong one back
    x0 = torch.from_numpy(trainer.data.feats[False][0][None, :40].copy())
    assert all(float(v) == 0.0 for v in trainer.geometric(x0, x0).values())
    pred = (x0 + 0.1 * torch.randn_like(x0)).requires_grad_(True)
    geo = trainer.geometric(pred, x0)
    assert all(float(v.detach()) > 0 for k, v in geo.items() if k != "foot")
    sum(geo.values()).backward()
    assert float(pred.grad.abs().sum()) > 0


def test_generator_starts_from_smdm_weights_of_the_same_size(train_emdm):
    torch = pytest.importorskip("torch")
    _tiny, te = train_emdm
    smdm_pt = smdm_fixture.tiny_package() / "denoiser.pt"
    args = te.parse_args(["--config", "tiny"])
    g = net.build_generator(torch, net.GeneratorConfig(**args.gen))
    assert te.init_from(torch, g, smdm_pt, log_fn=lambda m: None) > 10
    st = torch.load(smdm_pt, weights_only=True)
    own = g.state_dict()
    for name in ("inp.l1.linear.weight", "blocks.1.attn.in_proj_weight", "time_mlp.0.bias",
                 "text_proj.weight", "ln_f.weight", "out.l2.c"):
        assert torch.equal(own[name], st[name].float()), name
    # the z MLP starts without effect: the sparse generator starts as sMDM, whatever z
    from sparse_motion.inference import smdm_net
    den = smdm_net.build_denoiser(torch, smdm_net.DenoiserConfig.from_dict(
        json.loads((smdm_fixture.tiny_package() / "manifest.json").read_text())["model"]["config"]))
    den.load_state_dict({k: v.float() for k, v in st.items()})
    feeds = train_emdm[1].example_feeds(g.config, 2, 30, np.random.default_rng(1))
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        a = g.eval()(*(t[k] for k in net.input_names(g.config)))
        b = den.eval()(t["x_t"], t["t"], t["text"], *(t[k] for k in net.KEY_INPUTS))
    assert torch.equal(a, b)
    big = net.build_generator(torch, net.GeneratorConfig(**te.parse_args(["--config", "cpu"]).gen))
    with pytest.raises(SystemExit, match="do not fit this generator"):
        te.init_from(torch, big, smdm_pt, log_fn=lambda m: None)
