# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt-robustness yardstick (issue 13): the prompt file, its disjointness from every
training caption, the motion-classifier package and its training/inference path.

No dataset needed; the data-dependent checks skip without ../shared / the built dataset."""
import collections
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import yardstick  # noqa: E402
from sparse_motion.motion import captions as _cap  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    return yardstick.load_prompts()


@pytest.fixture(scope="module")
def train_caps():
    return yardstick.training_captions()


# --------------------------------------------------------------------------- the prompt file

def test_prompt_file_size_and_labels(rows):
    assert len(rows) >= 300
    kinds = collections.Counter(k for r in rows for k in r["kinds"])
    for k in yardstick.KINDS:
        assert kinds[k] >= 10, (k, kinds[k])
    contents = collections.Counter(r["content"] for r in rows)
    # every content of the data is asked for (dance-long has no clip: dance is dance-short)
    for c in set(_cap.ALL_CONTENTS) - {"dance-long"}:
        assert contents[c] >= 7, (c, contents[c])
    # the rare contents (1-2 clips) are asked for often enough to measure
    for c in ("punch", "slash", "call", "kick", "dance-short"):
        assert contents[c] >= 10
    assert sum(r["style"] != yardstick.ANY_STYLE for r in rows) >= 150
    assert all(r["prompt"] == r["prompt"].strip() for r in rows)


def test_prompt_file_rejects_bad_rows(tmp_path):
    head = "prompt\tcontent\tstyle\tkind\n"
    for body, msg in (("a\twalk\tany\tparaphrase\nA!\twalk\tany\ttypo\n", "duplicate"),
                      ("a\tjump\tany\tparaphrase\n", "unknown content"),
                      ("a\twalk\tsleepy\tparaphrase\n", "unknown style"),
                      ("a\twalk\tany\tslang\n", "unknown kind"),
                      ("a\twalk\tany\n", "columns")):
        p = tmp_path / "p.tsv"
        p.write_text(head + body)
        with pytest.raises(ValueError, match=msg):
            yardstick.load_prompts(p)


# --------------------------------------------------------------------------- disjointness

def test_normalize():
    assert yardstick.normalize("  A person, WALKS   forward! ") == "a person walks forward"
    assert yardstick.normalize("Wave-left-hand.") == "wave left hand"


def test_training_captions_are_exhaustive(train_caps):
    # every template variant of every pair, stored clip captions (drawn from them by seed)
    # and the mirrored captions of the augmentation are in the set
    for content in _cap.ALL_CONTENTS:
        for style in _cap.ALL_STYLES:
            variants = _cap.caption_variants(content, style)
            assert all(yardstick.normalize(v) in train_caps for v in variants)
            for seed in range(5):
                for c in _cap.clip_captions(f"{content}_{style}_{seed:03d}", content, style):
                    assert yardstick.normalize(c) in train_caps
                    assert yardstick.normalize(_cap.mirror_text(c)) in train_caps
    assert len(train_caps) > 40000


def test_yardstick_is_disjoint_from_training_captions(rows, train_caps):
    assert yardstick.leaks(rows, train_caps) == []


def test_leak_check_can_fail(rows, train_caps):
    # the same check finds a training caption, in another case and punctuation, among the
    # yardstick prompts, and a mirrored one too
    cap = _cap.captions("wave-left-hand", "elderly", 1, seed=3)[0]
    planted = [r["prompt"] for r in rows[:5]] + ["  " + cap.upper().rstrip(".") + " !"]
    assert yardstick.leaks(planted, train_caps) == [planted[-1]]
    mirrored = _cap.mirror_text(_cap.captions("walk-turn-left", "normal", 1, seed=1)[0])
    assert yardstick.leaks([mirrored.lower()], train_caps) == [mirrored.lower()]
    assert yardstick.leaks(["a person moonwalks"], train_caps) == []


# --------------------------------------------------------------------------- scoring

def test_score_counts_every_result():
    rows = [{"prompt": "a", "content": "walk", "style": "old", "kinds": ("typo",)},
            {"prompt": "b", "content": "punch", "style": "any", "kinds": ("rare-content",)}]
    cc, sc = ["walk", "run", "punch"], ["normal", "old"]
    # prompt a: result 0 right (walk, old), result 1 wrong content (run; walk 2nd), style old
    # prompt b: result 0 punch, result 1 walk (punch 3rd)
    pc = np.array([[.8, .1, .1], [.3, .6, .1], [.1, .2, .7], [.5, .3, .2]])
    ps = np.array([[.2, .8], [.1, .9], [.9, .1], [.9, .1]])
    elderly = {"elderly": "old"}
    res = yardstick.score(rows, pc, ps, cc, sc, lambda s: elderly.get(s, s),
                          {"walk": 200, "punch": 2}, results_per_prompt=2)
    assert res["all"]["content"] == 0.5 and res["all"]["content_top3"] == 1.0
    assert res["all"]["style"] == 1.0 and res["all"]["n_style"] == 2
    assert res["content_ge15"]["content"] == 0.5 and res["content_ge15"]["n"] == 2
    assert res["per_content"]["punch"]["content"] == 0.5
    assert res["per_kind"]["typo"]["content"] == 0.5
    assert res["confusions"] == {"walk -> run": 1, "punch -> walk": 1}
    with pytest.raises(ValueError):
        yardstick.score(rows, pc[:3], ps[:3], cc, sc, str, {}, 2)


# --------------------------------------------------------------------------- classifiers

from sparse_motion.inference import registry as _reg  # noqa: E402
from sparse_motion.inference.classifier import KIND, MotionClassifier  # noqa: E402
from sparse_motion.inference.errors import ModelPackageError  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402

PACKAGE = ROOT / "models" / "classifiers"


@pytest.fixture(scope="module")
def shipped():
    return MotionClassifier(threads=2).load()


def test_package_through_the_registry(shipped):
    pkg = _reg.Registry().default(KIND)
    assert pkg.path == PACKAGE.absolute() and pkg.name == "motion-classifiers"
    assert shipped.package.path == pkg.path        # the default classifier is the registry's
    man = shipped.manifest
    assert man["commercial_use"] is False
    assert "CC BY-NC 4.0" in man["data"]["license"] and "Bandai Namco" in man["data"]["credit"]
    assert man["training"]["data"][0]["license"] == "CC-BY-NC-4.0"
    assert isinstance(man["training"]["seed"], int) and "train_classifiers.py" in man["training"]["command"]
    assert sum(p.stat().st_size for p in PACKAGE.iterdir()) <= 5_000_000
    # every content with a clip is a class; styles of both datasets map onto the classes
    assert set(shipped.classes("content")) == set(_cap.ALL_CONTENTS) - {"dance-long"}
    for s in _cap.ALL_STYLES:
        assert shipped.class_of("style", s) is not None
    assert shipped.class_of("style", "elderly") == shipped.class_of("style", "old") == "old"
    assert shipped.class_of("style", "exhausted") == "tired"
    test = man["metrics"]["test"]
    assert test["content"]["accuracy"] >= 0.85 and test["style"]["accuracy"] >= 0.5


def test_corrupt_package_is_refused(tmp_path):
    dst = tmp_path / "classifiers"
    shutil.copytree(PACKAGE, dst)
    data = bytearray((dst / "style.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dst / "style.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="checksum"):
        MotionClassifier(dst).load()
    with pytest.raises(ModelPackageError, match="not a motion-classifier"):
        MotionClassifier(ROOT / "models" / "evaluator").load()


def _procedural(name, n):
    import test_evaluator as te     # the evaluator tests' procedural motions (no dataset)

    q, x = te.MOTIONS[name][0](n)
    return _feat.motion_to_features(q, x).astype(np.float32)


LOCOMOTION = {"walk", "run", "dash", "walk-back", "walk-left", "walk-right", "walk-turn-left",
              "walk-turn-right"}


def test_shipped_classifier_on_procedural_motion(shipped):
    # hand-made motions (not from the data): locomotion is named a locomotion content,
    # arm gestures an arm gesture, at 6 s (one window) and 9 s (overlapping windows)
    names = ["walk", "run", "walk-back", "turn-left", "turn-right",
             "wave-left", "wave-right", "wave-both", "raise-left", "raise-right", "raise-both"]
    for n in (120, 180):
        motions = [_procedural(k, n) for k in names]
        pred = [shipped.classes("content")[i]
                for i in shipped.probabilities(motions, "content").argmax(1)]
        is_loco = [p in LOCOMOTION for p in pred]
        want = [k in ("walk", "run", "walk-back", "turn-left", "turn-right") for k in names]
        agree = np.mean([a == b for a, b in zip(is_loco, want)])
        assert agree >= 0.8, list(zip(names, pred))
        # the side of a raised hand is read right
        assert pred[names.index("raise-left")].endswith("left-hand"), pred
        assert pred[names.index("raise-right")].endswith("right-hand"), pred
    p = shipped.probabilities(motions[:2], "style")
    assert p.shape == (2, len(shipped.classes("style"))) and np.allclose(p.sum(1), 1)
    # windows: one for a short motion, overlapping ones ending at the last frame for a long one
    assert shipped.windows(motions[0][:30]).shape == (1, 30, 257)
    assert shipped.windows(motions[0]).shape == (2, 120, 257)                 # 0, 60
    long = np.concatenate([motions[0], motions[0][:20]])
    w = shipped.windows(long)
    assert w.shape == (3, 120, 257)                                           # 0, 60, 80
    assert np.allclose(w[-1], shipped.windows(long[80:])[0])
    with pytest.raises(ValueError):
        shipped.windows(np.zeros((10, 12), np.float32))


def test_training_and_inference_path_end_to_end(tmp_path):
    # a tiny classifier trained here on procedural motion (walk vs raise both hands, random
    # lengths and noise), exported and packaged as train_classifiers.py does, then run
    # through the package layer: it must tell the two apart
    torch = pytest.importorskip("torch")
    import train_classifiers as tc

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    base = {"walk": _procedural("walk", 200), "raise-up-both-hands": _procedural("raise-both", 200)}
    mean = np.mean(np.concatenate(list(base.values())), 0)
    std = np.std(np.concatenate(list(base.values())), 0) + 0.1
    classes = sorted(base)
    model = tc.build_model(torch, len(classes), {"channels": 16, "kernel": 5, "dropout": 0.0})
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(40):
        L = int(rng.integers(20, 60))
        ys = rng.integers(0, 2, 16)
        xs = []
        for y in ys:
            f = base[classes[y]]
            s = int(rng.integers(0, len(f) - L))
            xs.append((f[s:s + L] - mean) / std + 0.1 * rng.standard_normal((L, 257)))
        loss = torch.nn.functional.cross_entropy(
            model(torch.from_numpy(np.stack(xs).astype(np.float32))), torch.from_numpy(ys))
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = tmp_path / "tiny"
    d.mkdir()
    tc.export(torch, model, d / "content.onnx")
    np.savez(d / "stats.npz", mean=mean.astype(np.float32), std=std.astype(np.float32))
    import train_evaluator as te

    te.write_package_manifest(d, {
        "name": "tiny-classifier", "kind": KIND, "version": "0.1.0", "commercial_use": False,
        "skeleton": "bandai-21", "fps": 20, "representation": te.REPRESENTATION,
        "stats": "stats.npz", "window": 40, "hop": 20, "min_frames": 8,
        "heads": {"content": {"file": "content.onnx", "classes": classes}},
        "files": {"content.onnx": {}, "stats.npz": {}}})
    clf = MotionClassifier(d, threads=1).load()
    tests = [_procedural("walk", 90), _procedural("raise-both", 90),
             _procedural("walk", 33)[5:], _procedural("raise-both", 150)]
    pred = [classes[i] for i in clf.probabilities(tests, "content").argmax(1)]
    assert pred == ["walk", "raise-up-both-hands", "walk", "raise-up-both-hands"]
    clf.release()


# --------------------------------------------------------------------------- evaluate.py

DATA = Path("~/.cache/sparse_motion/dataset-v1").expanduser()


class RealClipGenerator:
    """A generator that answers a prompt with a real held-out clip of the content (and, when
    it can, the style) the prompt asks for, or always with the same clip (``fixed``)."""

    def __init__(self, ds, rows, fixed=None):
        self.ds, self.fixed = ds, fixed
        self.want = {r["prompt"]: (r["content"], r["style"]) for r in rows}
        self.test = [int(i) for i in ds.indices("test")]

    def generate(self, text, length_frames, seed):
        if self.fixed is not None:
            return self.ds.features(self.fixed)
        content, style = self.want[text]
        same = [i for i in self.test if self.ds.clips[i]["content"] == content]
        styled = [i for i in same if self.ds.clips[i]["style"] == style]
        pick = (styled or same)[seed % len(styled or same)]
        return self.ds.features(pick)[:length_frames]


def test_evaluate_yardstick_scores_right_motion_high_and_wrong_motion_low(shipped):
    if not (DATA / "meta.json").is_file():
        pytest.skip("no built dataset (training/build_dataset.py)")
    import evaluate
    from sparse_motion.inference.evaluator import Evaluator
    from sparse_motion.motion import dataset as _ds

    ds = _ds.load_dataset(DATA)
    ev = Evaluator(threads=2)
    have = {ds.clips[int(i)]["content"] for i in ds.indices("test")}
    rows = [r for r in yardstick.load_prompts() if r["content"] in have][::6]
    right = evaluate.run_yardstick(RealClipGenerator(ds, rows), ev, shipped, rows, 1, 6.0, 0,
                                   "real clips")
    walk = next(int(i) for i in ds.indices("test") if ds.clips[int(i)]["content"] == "walk")
    wrong = evaluate.run_yardstick(RealClipGenerator(ds, rows, fixed=walk), ev, shipped, rows,
                                   1, 6.0, 0, "one walk")
    assert right["all"]["content"] >= 0.85, right["confusions"]
    n_walk = sum(r["content"] == "walk" for r in rows) / len(rows)
    assert abs(wrong["all"]["content"] - n_walk) < 0.05     # only the walk prompts are right
    assert right["all"]["style"] > wrong["all"]["style"]
    assert set(right["physics"]) == {r["content"] for r in rows}
    ceiling = evaluate.real_ceiling(shipped, ds, "test")
    text = evaluate.format_yardstick(ceiling, {"real clips": {**right, "clips": {}}},
                                     evaluate.real_physics(ds, ["walk"]))
    assert "ceiling" in text and "unseen pairs" in text


def test_unseen_pairs_have_no_clip(rows):
    # with the data: a prompt is labelled unseen-pair exactly when no clip has its content
    # and style (the two datasets' names of one style count as one)
    if not (DATA / "meta.json").is_file():
        pytest.skip("no built dataset (training/build_dataset.py)")
    import json
    import train_classifiers as tc

    clips = json.loads((DATA / "clips.json").read_text())["clips"]
    same = lambda s: tc.STYLE_LABEL_MAP.get(s, s)  # noqa: E731
    have = {(c["content"], same(c["style"])) for c in clips}
    for r in rows:
        if r["style"] == yardstick.ANY_STYLE:
            continue
        unseen = (r["content"], same(r["style"])) not in have
        assert unseen == ("unseen-pair" in r["kinds"]), r
    counts = collections.Counter(c["content"] for c in clips)
    assert all(counts[r["content"]] <= 2 for r in rows if "rare-content" in r["kinds"])
    assert all(counts[r["content"]] >= 15 for r in rows if "rare-content" not in r["kinds"])
