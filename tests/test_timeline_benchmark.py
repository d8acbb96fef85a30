# SPDX-License-Identifier: GPL-3.0-or-later
"""The timelines of benchmarks/timeline.py (issue 15 part 4): enough of them, the sizes the
issue asks for, labels the motion classifiers know, and prompts of their own (no yardstick
prompt, which is held out for the yardstick, and no training caption)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import yardstick  # noqa: E402


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("timeline_benchmark",
                                                  ROOT / "benchmarks" / "timeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def timelines(bench):
    return bench.load_timelines()


def test_sizes_seeds_and_labels(timelines):
    assert len(timelines) >= 20
    assert len({t["id"] for t in timelines}) == len(timelines)
    segs = [s for t in timelines for s in t["segments"]]
    assert all(4 <= len(t["segments"]) <= 6 for t in timelines)
    assert all(5 <= s["seconds"] <= 15 for s in segs)
    assert len({s["seed"] for s in segs}) == len(segs)
    heads = json.loads((ROOT / "models" / "classifiers" / "manifest.json").read_text())["heads"]
    contents = set(heads["content"]["classes"])
    styles = set(heads["style"]["classes"]) | set(heads["style"]["label_map"])
    assert {s["content"] for s in segs} <= contents
    assert {s["style"] for s in segs} - {yardstick.ANY_STYLE} <= styles
    assert len({s["content"] for s in segs}) >= 20      # most of what the data has


def test_prompts_are_neither_yardstick_prompts_nor_training_captions(timelines):
    prompts = [s["prompt"] for t in timelines for s in t["segments"]]
    held_out = {yardstick.normalize(r["prompt"]) for r in yardstick.load_prompts()}
    assert [p for p in prompts if yardstick.normalize(p) in held_out] == []
    assert yardstick.leaks(prompts) == []


def test_bad_files_are_refused(bench, tmp_path):
    head = "\t".join(bench.HEADER) + "\n"
    row = "t1\t{seed}\t{sec}\ta person strolls\t{content}\tnormal\n"
    ok = head + "".join(row.format(seed=k, sec=6, content="walk") for k in range(4))
    f = tmp_path / "t.tsv"
    f.write_text(ok)
    assert len(bench.load_timelines(f)[0]["segments"]) == 4
    for bad in (ok.replace("walk", "moonwalk", 1),                 # unknown content
                ok.replace("\t6\t", "\t20\t", 1),                  # a segment too long
                head + row.format(seed=1, sec=6, content="walk"),  # too few segments
                ok.replace("\t1\t6", "\tone\t6", 1),               # a seed that is no number
                ok.replace("timeline\t", "id\t", 1)):               # wrong header
        f.write_text(bad)
        with pytest.raises(ValueError):
            bench.load_timelines(f)
