# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt-robustness yardstick (issue 13): the prompt file, its disjointness from every
training caption, the motion-classifier package and its training/inference path.

No dataset needed; the data-dependent checks skip without ../shared / the built dataset."""
import collections
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
