# SPDX-License-Identifier: GPL-3.0-or-later
"""Prompts files, shards and the manifest (bpy-free)."""
import json

import pytest

from sparse_motion.pipeline import batch as pb


def test_text_csv_and_json_give_the_same_items():
    txt = "a person walks\n\n# skip me\nsomeone jumps  \n"
    csv = "prompt,seconds,seed\na person walks,,\nsomeone jumps,,\n"
    js = json.dumps(["a person walks", {"prompt": "someone jumps"}])
    a = pb.parse_prompts(txt, "p.txt", defaults=pb.Defaults(seed=10))
    b = pb.parse_prompts(csv, "p.csv", defaults=pb.Defaults(seed=10))
    c = pb.parse_prompts(js, "p.json", defaults=pb.Defaults(seed=10))
    for items in (a, b, c):
        assert [(i.prompt, i.seed, i.index, i.id) for i in items] == [
            ("a person walks", 10, 0, "0001-a-person-walks"),
            ("someone jumps", 11, 1, "0002-someone-jumps")]
    assert [i.line for i in a] == [1, 4]


def test_per_item_values():
    csv = ("id,prompt,seconds,seed,count,keys,model\n"
           "wave,an old man waves,6.5,7,3,10,smdm-x\n")
    (it,) = pb.parse_prompts(csv, "p.csv")
    assert (it.id, it.seconds, it.seed, it.count, it.keys, it.model) == (
        "wave", 6.5, 7, 3, "10", "smdm-x")


def test_reference_items_make_variations():
    csv = ("id,prompt,reference,seconds,seed,count,method,novelty\n"
           ",,takes/walk.bvh,,3,4,genmm,0.2\n"
           "crowd,,scene.blend::Rig::Idle,12,,2,,\n")
    a, b = pb.parse_prompts(csv, "p.csv", defaults=pb.Defaults(seconds=5, seed=10))
    assert (a.id, a.prompt, a.reference, a.seconds, a.seed, a.count, a.method, a.novelty) == (
        "0001-walk-variations", "", "takes/walk.bvh", 0.0, 3, 4, "genmm", 0.2)
    assert (b.id, b.seconds, b.seed, b.method, b.novelty) == ("crowd", 12.0, 11,
                                                              "motiondreamer", 0.5)
    (c,) = pb.parse_prompts('[{"reference": "a.bvh"}]', "p.json")
    assert c.reference == "a.bvh" and c.seconds == 0.0
    for bad, words in (("prompt,reference,method\n,a.bvh,magic\n", "method must be one of"),
                       ("prompt,reference,novelty\n,a.bvh,2\n", "novelty must be between"),
                       ("prompt,reference\n,\n,a.bvh\n", None)):
        if words is None:
            assert len(pb.parse_prompts(bad, "p.csv")) == 1
            continue
        with pytest.raises(pb.PromptsError, match=words):
            pb.parse_prompts(bad, "p.csv")


def test_path_items_and_model_steps():
    csv = ('id,prompt,model,path\n'
           'a,walk,motionlcm-x,layout.blend::Path\n'
           'b,walk,motionlcm-x,"[[0, 0, 0], [2, 0, 0]]"\n'
           'c,walk,,\n')
    a, b, c = pb.parse_prompts(csv, "p.csv")
    assert (a.path, b.path, c.path) == ("layout.blend::Path", "[[0, 0, 0], [2, 0, 0]]", "")
    assert a.steps is None  # the model's own default (sMDM 50, MotionLCM 4)
    (j,) = pb.parse_prompts('[{"prompt": "walk", "steps": 2, "path": {"points": [[0, 0, 0], '
                            '[1, 0, 0]], "frames": [1, 20]}}]', "p.json")
    assert j.steps == 2 and json.loads(j.path) == {"points": [[0, 0, 0], [1, 0, 0]],
                                                   "frames": [1, 20]}
    for bad, words in (('prompt,path\nwalk,Curve\n', "path must be FILE.blend::Object"),
                       ('prompt,path\nwalk,"[[0, 0"\n', "path is not valid JSON")):
        with pytest.raises(pb.PromptsError, match=words):
            pb.parse_prompts(bad, "p.csv")


def test_segment_rows_are_timelines():
    segs = [{"prompt": " a person walks ", "seconds": 4}, {"prompt": "a person waves",
                                                           "seconds": "2.5", "seed": 9}]
    cell = json.dumps(segs).replace('"', '""')
    csv = f'id,segments,seed,keys\nshot,"{cell}",5,10\n,"{cell}",,\n'
    a, b = pb.parse_prompts(csv, "p.csv", defaults=pb.Defaults(seed=20))
    (c,) = pb.parse_prompts(json.dumps([{"id": "shot", "segments": segs, "seed": 5,
                                         "keys": "10"}]), "p.json")
    for it in (a, c):
        assert (it.id, it.prompt, it.seed, it.seconds, it.keys, it.count) == (
            "shot", "", 5, 6.5, "10", 1)
        assert json.loads(it.segments) == [{"prompt": "a person walks", "seconds": 4.0,
                                            "seed": None},
                                           {"prompt": "a person waves", "seconds": 2.5,
                                            "seed": 9}]
    assert (b.id, b.seed) == ("0002-timeline-a-person-walks", 21)
    assert a.to_dict()["segments"] == a.segments and not pb.parse_prompts(
        "prompt\nwalk\n", "p.csv")[0].segments


@pytest.mark.parametrize("segments, words", [
    ('"[{\'prompt\': 1"', "p.csv, line 2: segments is not valid JSON"),
    ('"{""prompt"": ""walk""}"', "line 2: segments must be a JSON list"),
    ('"[{""prompt"": """", ""seconds"": 2}]"', "line 2: segments: Segment 1: The prompt is empty"),
    ('"[{""prompt"": ""walk"", ""seconds"": 0}]"',
     "line 2: segments: Segment 1 ('walk'): the length must be more than 0 seconds"),
    ('"[{""prompt"": ""walk"", ""seconds"": -2}]"', "the length must be more than 0 seconds"),
    ('"[{""prompt"": ""walk""}]"', "line 2: segments: Segment 1: A timeline segment needs "
                                   "'seconds'"),
    ('"[{""prompt"": ""walk"", ""seconds"": 2, ""seed"": ""x""}]"',
     "Segment 1: the seed must be a whole number, got 'x'"),
    ('"[' + ", ".join(['{""prompt"": ""walk"", ""seconds"": 1}'] * 200) + ']"',
     "segments: The timeline has 200 segments; use at most 50"),
    ('"[' + ", ".join(['{""prompt"": ""walk"", ""seconds"": 60}'] * 30) + ']"',
     "segments: The timeline lasts 1800 s; keep it under 600 s (10 minutes)"),
    ('"[]"', "segments: The timeline is empty"),
])
def test_bad_segment_rows_name_the_line(segments, words):
    with pytest.raises(pb.PromptsError) as info:
        pb.parse_prompts(f"id,segments\nx,{segments}\n", "p.csv")
    assert words in str(info.value)
    assert str(info.value).startswith("p.csv, line 2: ")


def test_segment_rows_take_no_single_prompt_settings():
    segs = json.dumps([{"prompt": "walk", "seconds": 2}])
    for field in ("prompt", "seconds", "count", "steps", "guidance", "path", "reference"):
        with pytest.raises(pb.PromptsError, match=f"item 1: a row with segments takes no "
                                                  f"{field}"):
            pb.parse_prompts(json.dumps([{"segments": segs, field: "2"}]), "p.json")


@pytest.mark.parametrize("text, name, words", [
    ("prompt,seconds\nwalk,abc\n", "p.csv", "p.csv, line 2: seconds must be a number"),
    ("prompt,speed\nwalk,3\n", "p.csv", "p.csv, line 2: unknown column(s) speed"),
    ("seconds\n4\n", "p.csv",
     "line 1: the CSV header needs a 'prompt' (or 'segments' or 'reference') column"),
    ("prompt\nwalk\n\"\"\n", "p.csv", None),  # an empty row is skipped
    ("prompt,seed\nwalk,1\n,2\n", "p.csv", "line 3: the prompt is empty"),
    ('[{"prompt": "walk"}, {"prompt": "run", "count": 40}]', "p.json",
     "p.json, item 2: count must be between 1 and 16"),
    ('[{"prompt": "walk"},\n {"prompt": }]', "p.json", "p.json, line 2: not valid JSON"),
    ("# nothing\n\n", "p.txt", "no prompts"),
    ("id,prompt\nx,walk\nx,run\n", "p.csv", "line 3: id 'x' repeats line 2"),
    ("prompt,keys\nwalk,lots\n", "p.csv", "line 2: keys"),
])
def test_malformed_files_name_the_line(text, name, words):
    if words is None:
        assert len(pb.parse_prompts(text, name)) == 1
        return
    with pytest.raises(pb.PromptsError) as info:
        pb.parse_prompts(text, name)
    assert words in str(info.value)


def test_shards_partition_the_items():
    items = pb.parse_prompts("\n".join(f"p{i}" for i in range(7)), "p.txt")
    parts = [pb.select_shard(items, i, 3) for i in (1, 2, 3)]
    ids = sorted(it.id for part in parts for it in part)
    assert ids == sorted(it.id for it in items) and len(ids) == len(set(ids))
    assert pb.parse_shard("2/3") == (2, 3) and pb.parse_shard(None) == (1, 1)
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(pb.InputError):
            pb.parse_shard(bad)


def test_manifest_round_trip_and_merge(tmp_path):
    m = pb.Manifest.load(tmp_path / "manifest.json")
    m.record("a", {"status": "ok", "files": ["a/a.bvh"]})
    m.record("b", {"status": "failed", "error": "x"})
    again = pb.Manifest.load(tmp_path / "manifest.json")
    assert again.entries == m.entries and again.done("a") and not again.done("b")
    other = pb.Manifest(tmp_path / "o.json", {"b": {"status": "ok"}, "c": {"status": "ok"}})
    again.merge(other)
    assert sorted(again.entries) == ["a", "b", "c"] and again.done("b")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(pb.InputError, match="unreadable"):
        pb.Manifest.load(tmp_path / "bad.json")
