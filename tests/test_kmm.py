# SPDX-License-Identifier: GPL-3.0-or-later
"""KMM without Blender: the key-frame score and the two scans of the selective state-space
layer, a tiny package trained through both stages on synthetic motion
(``training/tiny_kmm.py``), found by the registry; generation, seeds, onnxruntime vs the
PyTorch path through the whole sampling loop, timelines (one sequence, regeneration that
keeps the other tokens), bad input and broken packages."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import smdm_fixture
from sparse_motion.errors import Cancelled, InputError
from sparse_motion.inference import generation as gen_mod
from sparse_motion.inference import kmm_net as net
from sparse_motion.inference import registry as reg_mod
from sparse_motion.inference import timeline as tl
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.kmm import KIND, KmmModel

tiny_package = smdm_fixture.tiny_kmm_package


@pytest.fixture(scope="module")
def tiny():
    return KmmModel(tiny_package()).load()


# --------------------------------------------------------------------------- maths


def test_keyframe_score_picks_the_centre_of_each_pose_cluster():
    # density-peak scores: a token scores high when it is dense AND far from any denser one,
    # i.e. the most typical token of each distinct pose (a key pose), not an outlier
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.05, (10, 4)), [[3.0, 3.0, 0, 0]],
                        rng.normal(0, 0.05, (6, 4)) + [1.0, 0, 0, 0]])
    g = net.keyframe_scores(x)
    top = set(np.argsort(-g)[:2].tolist())
    assert len(top & set(range(10))) == 1 and len(top & set(range(11, 17))) == 1, top
    assert 10 not in top  # the lone outlier has no density
    assert np.all(np.isfinite(g)) and np.all(g > 0)


def test_mask_schedule_goes_from_all_to_none():
    assert net.mask_schedule(0.0) == pytest.approx(1.0)
    assert net.mask_schedule(1.0) == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(net.mask_schedule(np.linspace(0, 1, 11))) < 0)


def test_quadratic_scan_equals_the_sequential_recurrence():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cfg = net.BackboneConfig(codes=16, quantizers=2, text_dim=8, width=32, layers=2, heads=4,
                             state=4, mlp=64, dropout=0.0)
    m = net.build_backbone(torch, cfg).eval()
    ids = torch.randint(0, 17, (2, 23, 2))
    args = (ids, torch.tensor([0, 1]), torch.randn(2, 23, 8), torch.rand(2, 23))
    with torch.no_grad():
        a = m(*args)
        for b in m.blocks:
            b.fwd.scan = b.bwd.scan = "sequential"
        b_ = m(*args)
    assert float((a - b_).abs().max()) < 1e-4
    # and the layer really mixes time in both directions: changing the last token changes
    # the first token's logits and vice versa
    ids2 = ids.clone()
    ids2[:, -1, 0] = (ids2[:, -1, 0] + 1) % 16
    with torch.no_grad():
        c = m(ids2, *args[1:])
    assert float((c[:, 0] - b_[:, 0]).abs().max()) > 1e-6


# --------------------------------------------------------------------------- the package


def test_package_loads_through_the_registry_with_its_licence(tiny):
    root = Path(__file__).resolve().parents[1]
    reg = reg_mod.Registry(shipped_dirs=[root / "models" / "text-minilm-l6"],
                           user_dirs=[tiny_package().parent])
    pkg = reg.default(KIND)
    assert pkg.name == smdm_fixture.KMM_NAME
    assert pkg.kind == KIND and "kmm" in gen_mod.KINDS
    m = json.loads((tiny_package() / "manifest.json").read_text())
    assert m["training"]["data"][0]["name"] == "synthetic"
    assert m["training"]["parity_max_abs"] < 1e-3
    model = gen_mod.open_model(pkg)
    assert isinstance(model, KmmModel)


def test_generates_the_asked_motion_deterministically(tiny):
    walk = tiny.generate("a person walks forward", seconds=3, seed=1)
    assert walk.features.shape == (1, 60, 257) and walk.frames == 60
    again = tiny.generate("a person walks forward", seconds=3, seed=1)
    np.testing.assert_array_equal(walk.features, again.features)
    other = tiny.generate("a person walks forward", seconds=3, seed=2)
    assert not np.array_equal(walk.features, other.features)
    arms = tiny.generate("a person raises both arms", seconds=3, seed=1)
    walked = walk.motion(0)[1][-1, 2] - walk.motion(0)[1][0, 2]
    stood = np.linalg.norm(arms.motion(0)[1][-1, [0, 2]] - arms.motion(0)[1][0, [0, 2]])
    assert walked > 100 and stood < 40, (walked, stood)
    k = walk.keys[0]
    assert k[0] == 0 and k[-1] == 59 and len(k) == 12
    # odd lengths: exactly the frames asked
    assert tiny.generate("a person walks forward", 37, seed=0, results=2).features.shape == (2, 37, 257)


def test_decoded_features_are_low_passed(tiny):
    """The token decoder's frame-to-frame jitter is filtered out at the package's
    ``lowpass_hz`` (default 6 Hz): the same tokens decoded without the filter have more
    third-difference energy, the slow motion is the same, and the contact channels are
    left as the decoder made them."""
    from sparse_motion.inference import kmm as kmm_mod
    from sparse_motion.motion import features as feat

    assert tiny.config["lowpass_hz"] == kmm_mod.LOWPASS_HZ == 6.0
    on = tiny.generate("a person walks forward", seconds=4, seed=3).features[0]
    raw = KmmModel(tiny_package()).load()
    raw.config["lowpass_hz"] = 0.0
    off = raw.generate("a person walks forward", seconds=4, seed=3).features[0]
    contacts = feat.feature_layout()["foot_contacts"]
    np.testing.assert_array_equal(on[:, contacts], off[:, contacts])
    rest = np.ones(on.shape[1], bool)
    rest[contacts] = False
    d3 = lambda f: np.abs(np.diff(f[:, rest], n=3, axis=0)).mean()  # noqa: E731
    assert d3(on) < 0.85 * d3(off), (d3(on), d3(off))
    slow = lambda f: np.cumsum(f[:, rest], axis=0)[::10]  # noqa: E731 (integrated: low frequencies)
    assert np.abs(slow(on) - slow(off)).max() < 0.1 * np.abs(slow(off)).max()


def test_onnxruntime_and_torch_agree_through_the_sampling_loop(tiny):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    t = KmmModel(tiny_package(), backend="torch").load()
    assert t.backend == "torch" and tiny.backend == "onnx"
    assert t.device.engine == "torch" and t.device.device == "CPU"
    for text, secs, seed in (("a person walks forward", 3, 4), ("someone lifts both arms up", 5.5, 9)):
        a = tiny.generate(text, seconds=secs, seed=seed)
        b = t.generate(text, seconds=secs, seed=seed)
        assert np.abs(a.features - b.features).max() < 1e-3
    ta = tl.generate(tiny, [("a person walks forward", 2), ("a person raises both arms", 3)], seed=5)
    tb = tl.generate(t, [("a person walks forward", 2), ("a person raises both arms", 3)], seed=5)
    np.testing.assert_array_equal(ta.state["kmm_ids"], tb.state["kmm_ids"])
    assert np.abs(ta.features - tb.features).max() < 1e-3


def test_timeline_is_one_sequence_and_regeneration_keeps_the_other_tokens(tiny):
    segs = [("a person walks forward", 2), ("a person raises both arms", 2),
            ("someone walks straight ahead", 2)]
    T = tl.generate(tiny, segs, seed=3)
    assert T.method == "native" and T.frames == 120
    assert T.ranges == [(0, 40), (40, 80), (80, 120)]
    assert T.state["token_ranges"] == [(0, 10), (10, 20), (20, 30)]
    # the walks walk, the arm raise stays: per segment root travel
    travel = [np.linalg.norm(T.root[b - 1, [0, 2]] - T.root[a, [0, 2]]) for a, b in T.ranges]
    assert travel[0] > 60 and travel[2] > 60 and travel[1] < travel[0] / 2, travel
    # per-segment seeds: another seed for the middle segment changes only its tokens' draws
    ids = T.state["kmm_ids"]
    changed = 0
    for seed in (77, 78, 79, 80, 81):
        T2 = tl.regenerate(tiny, T, 1, seed=seed)
        ids2 = T2.state["kmm_ids"]
        np.testing.assert_array_equal(ids[:10], ids2[:10])
        np.testing.assert_array_equal(ids[20:], ids2[20:])
        changed += not np.array_equal(ids[10:20], ids2[10:20])
    assert changed >= 1  # the tiny model is confident: not every seed draws other tokens
    a, b = T.ranges[1]
    np.testing.assert_array_equal(T.quats[:a], T2.quats[:a])
    np.testing.assert_array_equal(T.root[b:], T2.root[b:])
    for k in (0, 2):
        np.testing.assert_array_equal(T.keys[k], T2.keys[k])
    # no jump where the new segment meets the held ones
    step = np.linalg.norm(np.diff(T2.root, axis=0), axis=1)
    assert step[a - 1] < 3 * np.median(step) + 1 and step[b - 1] < 3 * np.median(step) + 1
    # the same timeline again: the same result (deterministic from its seeds)
    np.testing.assert_array_equal(tl.generate(tiny, segs, seed=3).quats, T.quats)


def test_bad_input_is_refused_with_a_message(tiny):
    with pytest.raises(InputError, match="empty"):
        tiny.generate("  ", seconds=2)
    with pytest.raises(InputError, match="out of range"):
        tiny.generate("a person walks", seconds=10000)
    with pytest.raises(InputError, match="Steps"):
        tiny.generate("a person walks", seconds=2, steps=0)
    with pytest.raises(InputError, match="seed"):
        tiny.generate("a person walks", seconds=2, seed=-1)
    with pytest.raises(Cancelled):
        tiny.generate("a person walks", seconds=2, cancel=lambda: True)


def test_broken_packages_say_what_is_wrong(tmp_path):
    bad = tmp_path / smdm_fixture.KMM_NAME
    shutil.copytree(tiny_package(), bad)
    (bad / "backbone.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelPackageError, match="backbone.onnx"):
        KmmModel(bad).load()
    (bad / "backbone.onnx").unlink()
    with pytest.raises(ModelPackageError, match="backbone.onnx"):
        KmmModel(bad).load()
