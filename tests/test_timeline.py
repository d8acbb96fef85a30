# SPDX-License-Identifier: GPL-3.0-or-later
"""The timeline core (``inference/timeline.py``, bpy-free): segments checked with clear
messages, one motion from several prompts with the tiny sMDM model trained in the tests (real
onnxruntime), per-segment keys with both ends, a segment regenerated with every other frame
kept exactly and no jump at its joins, and the crossfade baseline's arithmetic."""
import numpy as np
import pytest

import smdm_fixture
from sparse_motion.errors import InputError
from sparse_motion.inference import timeline as tl
from sparse_motion.motion.canonical import canonical_forward_kinematics

SEGMENTS = [("a person walks forward", 2.0, 1), ("a person raises both arms", 1.5, 2),
            ("a person walks forward", 2.0, 3)]


@pytest.fixture(scope="module")
def model():
    from sparse_motion.inference.smdm import SmdmModel

    return SmdmModel(smdm_fixture.tiny_package()).load()


@pytest.fixture(scope="module")
def timeline(model):
    return tl.generate(model, SEGMENTS, seed=0)


@pytest.mark.parametrize("segments, words", [
    ([], "The timeline is empty: add at least one segment"),
    (None, "The timeline is empty"),
    (5, "The timeline segments are not a list"),
    ([("  ", 2)], "Segment 1: The prompt is empty"),
    ([("walk", 2), ("wave", 0)], "Segment 2 ('wave'): the length must be more than 0 seconds"),
    ([("walk", -1.5)], "Segment 1 ('walk'): the length must be more than 0 seconds, got -1.5"),
    ([("walk", float("nan"))], "the length must be more than 0 seconds"),
    ([("walk", "fast")], "Segment 1: the length must be a number of seconds, got 'fast'"),
    ([("walk", 0.2)], "Segment 1 ('walk'): 0.2 s is out of range; a segment lasts 0.5 to 60 s"),
    ([("walk", 61)], "61 s is out of range"),
    ([("walk", 2, -1)], "Segment 1: the seed must be 0 or more, got -1"),
    ([("walk", 2, "x")], "Segment 1: the seed must be a whole number, got 'x'"),
    ([("walk", 2, 1.5)], "Segment 1: the seed must be a whole number, got 1.5"),
    ([("walk", 2), {"prompt": "wave"}], "Segment 2: A timeline segment needs 'seconds'"),
    ([("walk", 2), 7], "Segment 2: A timeline segment is a prompt, seconds and an optional"),
    ([("walk", 1)] * 200, "The timeline has 200 segments; use at most 50"),
    ([("walk", 60)] * 30, "The timeline lasts 1800 s; keep it under 600 s (10 minutes)"),
])
def test_check_segments_says_what_is_wrong(segments, words):
    with pytest.raises(InputError) as info:
        tl.check_segments(segments, 20.0)
    assert words in str(info.value)


def test_check_segments_cleans_and_accepts_every_form():
    segs = tl.check_segments([(" walk  ", "2"), {"prompt": "wave", "seconds": 1, "seed": "4"},
                              {"text": "run", "seconds": 0.5}, tl.Segment("jump", 3, 2)], 20)
    assert segs == [tl.Segment("walk", 2.0, None), tl.Segment("wave", 1.0, 4),
                    tl.Segment("run", 0.5, None), tl.Segment("jump", 3.0, 2)]
    # two frames at least: 0.5 s at 2 fps is one frame; without a rate (a batch file read
    # before its model is known) that rule waits for the model
    with pytest.raises(InputError, match="less than two frames at 2 fps"):
        tl.check_segments([("walk", 0.5)], 2.0)
    assert tl.check_segments([("walk", 0.5)], None) == [tl.Segment("walk", 0.5, None)]
    assert len(tl.check_segments([("walk", 12)] * 50, 20)) == 50  # 600 s: the most


def test_generate_one_motion_with_keys_per_segment(model, timeline):
    t = timeline
    assert t.ranges == [(0, 40), (40, 70), (70, 110)] and t.frames == 110
    assert t.quats.shape == (110, 21, 4) and t.root.shape == (110, 3)
    assert t.features.shape == (110, 257) and t.method == "crossfade"
    assert t.seeds() == [1, 2, 3] and t.model.startswith(smdm_fixture.NAME)
    for (a, b), keys in zip(t.ranges, t.keys):
        keys = np.asarray(keys)
        assert keys[0] == a and keys[-1] == b - 1  # both ends of the segment
        assert np.all(np.diff(keys) > 0) and 3 <= len(keys) <= 0.3 * (b - a) + 2
    assert np.array_equal(t.all_keys(), np.concatenate(t.keys))
    again = tl.generate(model, SEGMENTS, seed=0)
    assert np.array_equal(again.quats, t.quats) and np.array_equal(again.root, t.root)
    # segments without a seed take the timeline's seed + their index
    plain = tl.generate(model, [(s[0], s[1]) for s in SEGMENTS], seed=5, key_fraction=0.5)
    assert plain.seeds() == [5, 6, 7] and len(plain.keys[0]) > len(t.keys[0])
    with pytest.raises(InputError, match="seed must be 0 or more"):
        tl.generate(model, SEGMENTS, seed=-1)


def joint_steps(t):
    """Largest joint displacement per frame (cm), for each of the N - 1 frame steps."""
    pos = canonical_forward_kinematics(t.quats, t.root)
    return np.linalg.norm(np.diff(pos, axis=0), axis=-1).max(axis=1)


def boundary_mask(t):
    near = np.zeros(t.frames - 1, bool)
    for a, _b in t.ranges[1:]:
        near[a - 2: a + 1] = True
    return near


def test_the_root_moves_on_without_a_jump(timeline):
    t = timeline
    step = np.linalg.norm(np.diff(t.root, axis=0), axis=1)
    near = boundary_mask(t)
    assert step[near].max() <= step[~near].max()
    assert np.linalg.norm(t.root[-1, [0, 2]] - t.root[0, [0, 2]]) > 50  # cm: it walks on
    steps = joint_steps(t)
    assert steps[near].max() <= steps[~near].max()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_regenerate_keeps_every_other_frame_exactly(model, timeline, index):
    t = timeline
    r = tl.regenerate(model, t, index)
    a, b = t.ranges[index]
    outside = np.r_[0:a, b:t.frames]
    assert np.array_equal(r.quats[outside], t.quats[outside])
    assert np.array_equal(r.root[outside], t.root[outside])
    assert np.abs(r.quats[a:b] - t.quats[a:b]).max() > 0.05  # the segment is new
    for k in range(3):
        if k != index:
            assert np.array_equal(r.keys[k], t.keys[k])
    assert r.keys[index][0] == a and r.keys[index][-1] == b - 1
    assert r.seeds()[index] == t.seeds()[index] + 1000 and r.ranges == t.ranges
    # it joins the held frames without a jump
    near = boundary_mask(r)
    steps = joint_steps(r)
    assert steps[near].max() <= steps[~near].max()
    root = np.linalg.norm(np.diff(r.root, axis=0), axis=1)
    assert root[near].max() <= root[~near].max()


def test_regenerate_with_a_new_prompt_and_seed_and_bad_index(model, timeline):
    r = tl.regenerate(model, timeline, 1, seed=9, text="a person walks forward")
    assert r.segments[1] == tl.Segment("a person walks forward", 1.5, 9)
    assert r.segments[0] == timeline.segments[0]
    again = tl.regenerate(model, timeline, 1, seed=9, text="a person walks forward")
    assert np.array_equal(again.quats, r.quats)  # deterministic: a record can replay it
    with pytest.raises(InputError, match="There is no segment 4: the timeline has 3"):
        tl.regenerate(model, timeline, 3)
    with pytest.raises(InputError, match="Segment 2: The prompt is empty"):
        tl.regenerate(model, timeline, 1, text="  ")


class Constant:
    """A text-to-motion model that makes features equal to its seed (the crossfade's
    arithmetic, exactly)."""

    fps = 20.0

    def __init__(self):
        self.calls = []

    def generate(self, text, frames, seed, progress=None, cancel=None, grounding=None):
        self.calls.append((text, frames, seed))
        return type("G", (), {"features": np.full((1, frames, 3), float(seed), np.float32)})


def test_crossfade_blends_each_join_linearly():
    m = Constant()
    segs = tl.check_segments([("a", 2.0, 10), ("b", 1.0, 20), ("c", 1.0, 30)], m.fps)
    f = tl.crossfade_features(m, segs, [10, 20, 30], overlap=4)
    assert f.shape == (80, 3)
    # every segment but the last is generated overlap frames longer
    assert m.calls == [("a", 44, 10), ("b", 24, 20), ("c", 20, 30)]
    assert np.all(f[:40, 0] == 10)  # the first segment's own frames are its own
    w = np.arange(1, 5) / 5.0
    np.testing.assert_allclose(f[40:44, 0], (1 - w) * 10 + w * 20, rtol=1e-6)
    assert np.all(f[44:60, 0] == 20)
    np.testing.assert_allclose(f[60:64, 0], (1 - w) * 20 + w * 30, rtol=1e-6)
    assert np.all(f[64:, 0] == 30)


def test_a_model_with_its_own_long_sampler_is_asked_for_the_whole_timeline(model):
    """``model.timeline_features`` (KMM's masked decoding) gives the features of the whole
    timeline at once; regenerating asks it again with the held features and the index."""

    class Native:
        def __init__(self, inner):
            self.inner, self.asked = inner, []
            self.fps, self.config, self.package = inner.fps, inner.config, inner.package

        def load(self):
            return self

        def generate(self, *args, **kw):
            return self.inner.generate(*args, **kw)

        def timeline_features(self, texts, lengths, seeds, hold=None, regenerate=None,
                              grounding=None, progress=None, cancel=None):
            self.asked.append((texts, lengths, seeds, hold is not None, regenerate))
            segs = tl.check_segments(list(zip(texts, [n / self.fps for n in lengths], seeds)),
                                     self.fps)
            return tl.crossfade_features(self.inner, segs, seeds), {"asked": len(self.asked)}

    m = Native(model)
    t = tl.generate(m, SEGMENTS)
    assert t.method == "native" and t.state == {"asked": 1} and m.asked == [
        ([s[0] for s in SEGMENTS], [40, 30, 40], [1, 2, 3], False, None)]
    r = tl.regenerate(m, t, 2)
    assert m.asked[-1][3:] == (True, 2) and m.asked[-1][2] == [1, 2, 1003]
    assert r.state == {"asked": 2}
    assert np.array_equal(r.quats[:70], t.quats[:70])
    assert tl.generate(m, SEGMENTS, method="crossfade").method == "crossfade"


def test_crossfade_refuses_a_segment_longer_than_the_model_makes_before_generating():
    import smdm_fixture
    from sparse_motion.inference.smdm import SmdmModel

    model = SmdmModel(smdm_fixture.tiny_package()).load()
    calls = []
    real = model.generate
    model.generate = lambda *a, **k: calls.append(a) or real(*a, **k)
    with pytest.raises(InputError, match=r"Segment 2 .*lasts 24 s.*at most 19\.5 s"):
        tl.generate(model, [("a person walks forward", 3), ("a person raises both arms", 24)])
    assert calls == []  # refused before the first segment was made
