# SPDX-License-Identifier: GPL-3.0-or-later
"""Captions, text mirroring, splits and the dataset builder (on a tiny synthetic zip)."""
import json
import random
import re
import zipfile

import numpy as np
import pytest

from sparse_motion.motion import bvh as B
from sparse_motion.motion import canonical as C
from sparse_motion.motion import captions as K
from sparse_motion.motion import dataset as DS
from sparse_motion.motion import features as Fe
from sparse_motion.motion import rotations as R

# =========================================================================== captions


def test_captions_cover_every_label_and_are_sentences():
    labels = set(K.CONTENT_LABELS[1]) | set(K.CONTENT_LABELS[2])
    styles = set(K.STYLE_LABELS[1]) | set(K.STYLE_LABELS[2])
    assert set(K.ALL_CONTENTS) == labels and set(K.ALL_STYLES) == styles
    assert len(K.CONTENT_LABELS[1]) == 17 and len(K.CONTENT_LABELS[2]) == 10
    assert len(K.STYLE_LABELS[1]) == 15 and len(K.STYLE_LABELS[2]) == 7
    raw = {lab for lab in labels | styles if "-" in lab} | {"chimpira", "masculinity", "byebye"}
    for ds in (1, 2):
        for c in K.CONTENT_LABELS[ds]:
            for s in K.STYLE_LABELS[ds]:
                caps = K.caption_variants(c, s)
                assert len(caps) >= 20 and len(set(caps)) == len(caps)
                for t in caps:
                    assert t[0].isupper() and t.endswith(".") and len(t.split()) >= 2
                    low = t.lower()
                    assert low.rstrip(".") not in (c, s, f"{c} {s}")
                    assert "_" not in t
                    assert not any(re.search(rf"\b{re.escape(r)}\b", low) for r in raw), t


def test_caption_examples_and_styles_show():
    caps = K.caption_variants("walk-turn-left", "elderly")
    assert "An elderly person walks and turns left." in caps
    assert "Someone waves both hands, full of energy." in K.caption_variants(
        "wave-both-hands", "active")
    # every non-normal caption carries the style somehow
    words = {"giant": ("giant", "lumbering", "huge", "heav", "hulking", "massive", "ogre",
                       "troll", "ponderous"),
             "tired": ("tired", "tierd", "wear", "worn", "sleepy", "fatigued", "sluggish",
                       "lethargic", "drows")}
    for s, ws in words.items():
        assert all(any(w in t.lower() for w in ws) for t in K.caption_variants("bow", s))


def test_captions_deterministic_given_seed():
    a = K.captions("run", "happy", 6, seed=3)
    assert a == K.captions("run", "happy", 6, seed=3)
    assert len(a) == 6 and len(set(a)) == 6
    assert K.captions("run", "happy", None, seed=3) != K.captions("run", "happy", None, seed=4)
    assert sorted(K.captions("run", "happy", seed=9)) == K.caption_variants("run", "happy")
    assert K.clip_captions("dataset-2_run_active_001", "run", "active") == \
        K.clip_captions("dataset-2_run_active_001", "run", "active")
    assert K.clip_seed("x") == K.clip_seed("x") != K.clip_seed("y")
    with pytest.raises(ValueError, match="unknown content"):
        K.caption_variants("swim", "normal")
    with pytest.raises(ValueError, match="unknown style"):
        K.caption_variants("walk", "sleepy")
    with pytest.raises(ValueError, match="n must"):
        K.captions("walk", "normal", 0)


def test_mirror_text():
    m = K.mirror_text
    assert m("a person raises the left hand") == "a person raises the right hand"
    assert m("Left foot, then RIGHT foot; left-hand and right-handed") == \
        "Right foot, then LEFT foot; right-hand and left-handed"
    assert m("turns leftwards, rightmost, Leftward") == "turns rightwards, leftmost, Rightward"
    assert m("spins clockwise then Counterclockwise") == "spins counterclockwise then Clockwise"
    assert m("all right, he turns right away") == "all right, he turns right away"
    assert m("leftover bright wrights") == "leftover bright wrights"  # not whole words
    assert m("no sides here") == "no sides here"
    for t in ("The left arm swings; right leg kicks.", "LEFT-HAND Right", "left"):
        assert m(m(t)) == t
    with pytest.raises(TypeError):
        m(None)


def test_mirrored_captions_are_captions_of_the_mirrored_label():
    for c in K.ALL_CONTENTS:
        mc = K.mirror_label(c)
        assert K.mirror_label(mc) == c
        for s in ("normal", "active"):
            caps = K.caption_variants(c, s)
            assert sorted(K.mirror_text(t) for t in caps) == K.caption_variants(mc, s)
    assert K.mirror_label("wave-left-hand") == "wave-right-hand"
    assert K.mirror_label("walk-turn-right") == "walk-turn-left"
    assert K.mirror_label("bow") == "bow"


# =========================================================================== splits


def test_parse_clip_id():
    info = DS.parse_clip_id("Bandai/data/dataset-2_walk-turn-left_elderly_012.bvh")
    assert info == DS.ClipInfo("dataset-2_walk-turn-left_elderly_012", 2, "walk-turn-left",
                               "elderly", "012")
    assert DS.parse_clip_id("dataset-1_walk-back_not-confident_001").style == "not-confident"
    for bad, msg in (("walk_normal_001", "does not read"), ("dataset-3_walk_normal_001", "dataset"),
                     ("dataset-1_wave-left-hand_normal_001", "content label"),
                     ("dataset-2_walk_happy_001", "style label")):
        with pytest.raises(DS.DatasetError, match=msg):
            DS.parse_clip_id(bad)


def _ids():
    ids = [f"dataset-2_{c}_{s}_{k:03d}" for c in K.CONTENT_LABELS[2]
           for s in K.STYLE_LABELS[2] for k in range(1 + (len(c) + len(s)) % 5)]
    ids += [f"dataset-1_{c}_{s}_001" for c in ("walk", "bow", "run") for s in K.STYLE_LABELS[1]]
    ids += ["dataset-1_kick_normal_001", "dataset-1_punch_normal_001", "dataset-1_punch_normal_002"]
    return ids


def test_split_deterministic_order_independent_stratified():
    ids = _ids()
    a = DS.assign_splits(ids)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert DS.assign_splits(shuffled) == a
    assert DS.assign_splits(list(reversed(ids))) == a
    assert set(a.values()) == {"train", "val", "test"}
    strata = {}
    for cid, sp in a.items():
        i = DS.parse_clip_id(cid)
        strata.setdefault((i.dataset, i.content), []).append(sp)
    for key, sps in strata.items():
        if len(sps) >= 2:
            assert "test" in sps, key
        if len(sps) >= 3:
            assert "val" in sps, key
        assert "train" in sps, key  # singletons (kick) stay in train
    assert strata[(1, "kick")] == ["train"]
    n = len(ids)
    assert 0.7 * n < list(a.values()).count("train") < 0.85 * n
    # a clip's split does not depend on clips of other strata
    b = DS.assign_splits([i for i in ids if "_walk_" in i])
    assert all(b[i] == a[i] for i in b)
    with pytest.raises(DS.DatasetError, match="duplicate"):
        DS.assign_splits(ids + ids[:1])


# =========================================================================== builder


def _aa_quat(v):
    v = np.asarray(v, dtype=np.float64)
    ang = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.concatenate([np.cos(ang / 2), v / np.maximum(ang, 1e-12) * np.sin(ang / 2)], -1)


def _clip_text(seed, frames=16):
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / frames
    q = _aa_quat(0.3 * rng.normal(size=(1, 21, 3))
                 + 0.3 * np.sin(5 * t + rng.normal(size=(1, 21, 3))))
    yaw = 0.5 * t[:, 0, 0] + seed
    q[:, 0] = R.quat_mul(_aa_quat(np.stack([0 * yaw, yaw, 0 * yaw], -1)),
                         _aa_quat([0.0, 0.0, np.pi / 2]))
    x = np.stack([np.arange(frames) * 2.0, np.full(frames, 90.0), np.arange(frames) * 1.0], -1)
    return B.dumps(C.canonical_to_bvh(q, x, 30, bandai_layout=True), precision=6)


CLIPS = ["dataset-1_walk_happy_001", "dataset-1_walk_sad_001", "dataset-1_kick_normal_001",
         "dataset-2_wave-left-hand_active_001", "dataset-2_wave-left-hand_normal_002",
         "dataset-2_wave-left-hand_elderly_003", "dataset-2_run_youthful_001",
         "dataset-2_run_normal_002", "dataset-2_run_exhausted_003", "dataset-2_run_active_004"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bandai")
    for zn, prefix in (("Bandai-Namco-Research-Motiondataset-1.zip", "dataset-1"),
                       ("Bandai-Namco-Research-Motiondataset-2.zip", "dataset-2")):
        root = zn[:-4]
        with zipfile.ZipFile(d / zn, "w") as zf:
            zf.writestr(f"{root}/README.md", "readme")
            zf.writestr(f"{root}/cfg/content_label.txt", "x")
            for k, cid in enumerate(CLIPS):
                if cid.startswith(prefix):
                    zf.writestr(f"{root}/data/{cid}.bvh", _clip_text(k, 16 + k))
                    zf.writestr(f"{root}/data/{cid}.json", "{}")
    return d


@pytest.fixture(scope="module")
def built(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "dataset-v1"
    meta = DS.build_dataset(data_dir, out, log=None)
    return out, meta


def test_build_outputs(built):
    out, meta = built
    assert sorted(p.name for p in out.iterdir()) == ["clips.json", "features.npy", "meta.json",
                                                     "stats.npz"]
    assert meta["num_clips"] == len(CLIPS) and meta["feature_dim"] == 257 and meta["fps"] == 20
    assert meta["sources"] == {"Bandai-Namco-Research-Motiondataset-1.zip": 3,
                               "Bandai-Namco-Research-Motiondataset-2.zip": 7}
    assert sum(meta["split_counts"].values()) == len(CLIPS)
    assert "Bandai Namco Research" in meta["credit"] and meta["license"] == "CC BY-NC 4.0"
    ds = DS.load_dataset(out)
    assert len(ds) == len(CLIPS) and [c["id"] for c in ds.clips] == sorted(CLIPS)
    total = 0
    for i, c in enumerate(ds.clips):
        src = 16 + CLIPS.index(c["id"])
        assert c["source_frames"] == src and c["frames"] == (src - 1) * 2 // 3 + 1
        assert c["start"] == total
        total += c["frames"]
        assert len(c["captions"]) == DS.CAPTIONS_PER_CLIP
        assert c["split"] == DS.assign_splits(CLIPS)[c["id"]]
        f = ds.features(i)
        assert f.dtype == np.float32 and f.shape == (c["frames"], 257)
        # the stored features are those of the clip, computed directly
        ref, _ = DS.clip_features(_clip_text(CLIPS.index(c["id"]), src))
        np.testing.assert_array_equal(f, ref)
    assert total == meta["total_frames"]
    assert np.all(np.isfinite(ds.mean)) and np.all(ds.std > 0)
    assert {i for s in DS.SPLITS for i in ds.indices(s)} == set(range(len(CLIPS)))


def test_mirror_augmentation(built):
    out, _ = built
    ds = DS.load_dataset(out)
    i = [c["id"] for c in ds.clips].index("dataset-2_wave-left-hand_active_001")
    f, fm = ds.features(i), ds.features(i, mirrored=True)
    np.testing.assert_array_equal(ds.features(i, mirrored=True), fm)
    np.testing.assert_allclose(Fe.mirror_features(fm), f, atol=0)
    # features of the mirrored motion
    q, x = Fe.features_to_motion(f.astype(np.float64))
    ref = Fe.motion_to_features(*C.mirror_motion(q, x), fps=ds.fps)
    np.testing.assert_allclose(fm, ref, atol=2e-4)
    assert ds.content(i, mirrored=True) == "wave-right-hand"
    caps, mcaps = ds.captions(i), ds.captions(i, mirrored=True)
    assert all("left" in t for t in caps) and all("right" in t and "left" not in t for t in mcaps)
    assert [K.mirror_text(t) for t in mcaps] == caps
    s = ds.sample(i, np.random.default_rng(0), mirror_prob=1.0)
    assert s["mirrored"] and s["caption"] in mcaps and s["content"] == "wave-right-hand"
    np.testing.assert_allclose(s["features"], ds.normalize(fm))
    np.testing.assert_allclose(ds.denormalize(s["features"]), fm, atol=1e-4)
    s = ds.sample(i, 0, mirror_prob=0.0, normalized=False)
    assert not s["mirrored"] and s["caption"] in caps


def test_stats_mirror_symmetric_and_floored():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 257)) * 3 + 1
    lay = Fe.feature_layout()
    f[:, lay["foot_contacts"]] = (rng.random((200, 4)) < 0.01).astype(float)
    f[:, lay["rotations"].start] = 0.5  # a constant dimension
    st = DS.normalization_stats(f)
    perm, sign = Fe.feature_mirror_map()
    np.testing.assert_allclose(st["mean"][perm] * sign, st["mean"], atol=1e-6)
    np.testing.assert_allclose(st["std"][perm], st["std"], rtol=1e-6)
    assert np.all(st["std"][lay["foot_contacts"]] >= DS.CONTACT_STD_FLOOR)
    rot = lay["rotations"]
    assert st["std"][rot.start] >= DS.REL_STD_FLOOR * st["std_raw"][rot].mean() * 0.999
    # chunks give the same statistics
    st2 = DS.normalization_stats([f[:50], f[50:]])
    for k in st:
        np.testing.assert_allclose(st2[k], st[k], rtol=1e-5, atol=1e-7)
    with pytest.raises(DS.DatasetError, match="257"):
        DS.normalization_stats(f[:, :5])
    with pytest.raises(DS.DatasetError, match="no feature rows"):
        DS.normalization_stats([f[:0]])


def test_build_deterministic_and_limit(data_dir, built, tmp_path):
    out, meta = built
    again = tmp_path / "again"
    DS.build_dataset(data_dir, again, log=None)
    assert (again / "features.npy").read_bytes() == (out / "features.npy").read_bytes()
    assert (again / "clips.json").read_text() == (out / "clips.json").read_text()
    small = DS.build_dataset(data_dir, tmp_path / "small", limit=3, log=None)
    assert small["num_clips"] == 3
    ids = [c["id"] for c in json.loads((tmp_path / "small" / "clips.json").read_text())["clips"]]
    assert len({DS.parse_clip_id(c).content for c in ids}) == 3  # a cross-section


def test_build_errors(tmp_path, built):
    with pytest.raises(DS.DatasetError, match="does not exist"):
        DS.build_dataset(tmp_path / "nope", tmp_path / "o", log=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DS.DatasetError, match="no .zip"):
        DS.build_dataset(tmp_path / "empty", tmp_path / "o", log=None)
    bad = tmp_path / "bad"
    bad.mkdir()
    with zipfile.ZipFile(bad / "x.zip", "w") as zf:
        zf.writestr("data/dataset-2_swim_normal_001.bvh", _clip_text(0))
    with pytest.raises(DS.DatasetError, match="'swim' is not a content label"):
        DS.build_dataset(bad, tmp_path / "o", log=None)
    with zipfile.ZipFile(bad / "x.zip", "w") as zf:
        zf.writestr("data/dataset-2_run_normal_001.bvh", "HIERARCHY\nROOT a\n{\n")
    with pytest.raises(DS.DatasetError, match="dataset-2_run_normal_001"):
        DS.build_dataset(bad, tmp_path / "o", log=None)
    with pytest.raises(DS.DatasetError, match="meta.json missing"):
        DS.load_dataset(tmp_path / "empty")
    out, _ = built
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("clips.json", "features.npy", "stats.npz"):
        (broken / name).write_bytes((out / name).read_bytes())
    meta = json.loads((out / "meta.json").read_text())
    meta["version"] = 99
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DS.DatasetError, match="version"):
        DS.load_dataset(broken)
    with pytest.raises(ValueError, match="split"):
        DS.load_dataset(out).indices("training")
