# SPDX-License-Identifier: GPL-3.0-or-later
"""Headless batch generation end to end (``tools/batch_generate.py`` in subprocesses of this
Python with the bpy module) with the tiny sMDM model: a failing item, resume after a kill,
shards, workers and a malformed prompts file."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import smdm_fixture  # noqa: E402
from proc_fixture import alive, children, cmdline, wait_for  # noqa: E402
from sparse_motion.inference import runtime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "batch_generate.py"
CSV = """id,prompt,seconds,seed,count,keys
walk-a,a person walks forward,2,1,1,
arms-a,a person raises both arms,2,2,2,
walk-b,someone walks straight ahead,2.5,3,1,15
broken,a person walks forward,600,4,1,
arms-b,someone lifts both arms up,2,5,1,
walk-c,a man is walking forward,2,6,1,
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    os.symlink(smdm_fixture.tiny_package(), models / smdm_fixture.NAME)
    return dict(os.environ, SPARSE_MOTION_MODELS=str(models), PYTHONDONTWRITEBYTECODE="1",
                HF_HUB_OFFLINE="1")


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    p = tmp_path_factory.mktemp("prompts") / "items.csv"
    p.write_text(CSV)
    return p


def run(env, prompts, out, *extra, timeout=600):
    cmd = [sys.executable, str(SCRIPT), str(prompts), "--out", str(out), "--steps", "10",
           "--model", smdm_fixture.NAME, "--threads", "1", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def comparable(out: Path, manifest="manifest.json"):
    """The manifest without timings, and the bytes of every .bvh it lists."""
    data = json.loads((out / manifest).read_text())["items"]
    files = {}
    for entry in data.values():
        entry.pop("timings", None)
        entry.pop("traceback", None)
        for f in entry.get("files", []):
            assert (out / f).is_file(), f
            if f.endswith(".bvh"):
                files[f] = (out / f).read_bytes()
    return data, files


@pytest.fixture(scope="module")
def reference(env, prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    r = run(env, prompts, out)
    return out, r


def test_batch_records_a_failing_item_and_goes_on(reference):
    out, r = reference
    assert r.returncode == 1, r.stderr[-3000:]
    data, files = comparable(out)
    assert sorted(data) == ["arms-a", "arms-b", "broken", "walk-a", "walk-b", "walk-c"]
    assert data["broken"]["status"] == "failed" and "out of range" in data["broken"]["error"]
    ok = [k for k, v in data.items() if v["status"] == "ok"]
    assert len(ok) == 5
    assert data["arms-a"]["files"] == ["arms-a/arms-a.blend", "arms-a/arms-a-1.bvh",
                                       "arms-a/arms-a-2.bvh"]
    assert data["walk-b"]["seed"] == 3 and data["walk-b"]["model"] == smdm_fixture.NAME
    # what the model made of each prompt, from its text embedding (inference/understand.py)
    for key, content in (("walk-a", "walk"), ("arms-a", "raise-up-both-hands"),
                         ("walk-b", "walk"), ("arms-b", "raise-up-both-hands"),
                         ("walk-c", "walk")):
        u = data[key]["understood_as"]
        assert (u["content"], u["style"], u["understood"]) == (content, "normal", True), (key, u)
        assert 0.0 < u["content_confidence"] <= 1.0 and 0.0 < u["style_confidence"] <= 1.0
        # where it ran and why (--device AUTO: the CPU here, no CUDA-capable onnxruntime)
        assert data[key]["device"] == runtime.resolve_device("AUTO").to_manifest()
        assert data[key]["device"]["used"] in ("CPU", "CUDA") and data[key]["device"]["reason"]
    assert "understood_as" not in data["broken"]
    assert "items done" not in r.stderr and "6 items" in r.stderr and "~" in r.stderr
    # the .blend holds the actions, with sparse keys
    blend = out / "walk-a" / "walk-a.blend"
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert "a person walks forward #1" in bpy.data.actions


def test_rerun_skips_done_items(env, prompts, reference):
    out, _ = reference
    before = comparable(out)
    r = run(env, prompts, out)
    assert r.returncode == 1 and "6 already in the manifest, 0 to do" in r.stderr
    assert comparable(out) == before
    r = run(env, prompts, out, "--retry-failed")  # failed items are tried again on request
    assert r.returncode == 1 and "1 to do" in r.stderr
    assert comparable(out) == before


def test_resume_after_a_kill_equals_an_uninterrupted_run(env, prompts, reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, str(SCRIPT), str(prompts), "--out", str(out), "--steps", "10",
           "--model", smdm_fixture.NAME, "--threads", "1"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        m = out / "manifest.json"
        if m.is_file() and len(json.loads(m.read_text())["items"]) >= 2:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n_before = len(json.loads((out / "manifest.json").read_text())["items"])
    assert 2 <= n_before < 6
    r = run(env, prompts, out)
    assert r.returncode == 1, r.stderr[-2000:]
    assert comparable(out) == comparable(reference[0])


def test_two_shards_equal_one_run(env, prompts, reference, tmp_path):
    out = tmp_path / "sharded"
    r1 = run(env, prompts, out, "--shard", "1/2")
    r2 = run(env, prompts, out, "--shard", "2/2")
    assert {r1.returncode, r2.returncode} == {0, 1}  # the broken item is in one shard
    assert (out / "manifest.shard-1-of-2.json").is_file()
    m = subprocess.run([sys.executable, str(SCRIPT), str(prompts), "--out", str(out), "--merge",
                        "--blend-all"], env=env, capture_output=True, text=True, timeout=120)
    assert m.returncode == 1 and "merged 6 items" in m.stdout, m.stderr[-2000:]
    assert comparable(out) == comparable(reference[0])
    # one .blend for all: every ok item's rig in its own collection, all its actions
    bpy.ops.wm.open_mainfile(filepath=str(out / "all.blend"))
    assert sorted(c.name for c in bpy.data.collections) == ["arms-a", "arms-b", "walk-a",
                                                            "walk-b", "walk-c"]
    assert len(bpy.data.actions) == 6  # arms-a has two results


def test_two_workers_equal_one_run(env, prompts, reference, tmp_path):
    out = tmp_path / "workers"
    r = run(env, prompts, out, "--workers", "2")
    assert r.returncode == 1, r.stderr[-3000:]
    assert comparable(out) == comparable(reference[0])
    assert not list(out.glob("manifest.worker-*"))


# two quick items, then slow ones (20 s, many steps, about 2 s each here): the kill lands
# while the workers have seconds of work left, so an orphan would still be seen running
SLOW_CSV = "id,prompt,seconds,seed,steps\n" + "".join(
    f"{i},{p},{s},{k},{n}\n" for k, (i, p, s, n) in enumerate([
        ("q1", "a person walks forward", 2, 10), ("q2", "a person raises both arms", 6, 10),
        ("s1", "someone walks straight ahead", 20, 500), ("s2", "a man jumps", 20, 500),
        ("s3", "a person waves", 20, 500), ("s4", "someone turns around", 20, 500),
        ("s5", "a person sits down", 20, 500), ("s6", "a person runs", 20, 500)]))


def recorded(out: Path) -> dict:
    """Every item recorded so far: the run's manifest and its workers' manifests."""
    found = {}
    for m in [out / "manifest.json", *sorted(out.glob("manifest.worker-*-of-*.json"))]:
        try:
            found.update(json.loads(m.read_text())["items"])
        except (OSError, ValueError):
            pass  # not there yet
    return found


def snapshot(out: Path, ids) -> dict:
    """Modification times (ns) and bytes of the recorded items' files."""
    data = recorded(out)
    return {f: ((out / f).stat().st_mtime_ns, (out / f).read_bytes())
            for i in ids for f in data[i]["files"]}


def seen_workers(pid, seen):
    """The worker processes of batch parent ``pid`` seen so far (``--worker k/N`` in their
    arguments; other short-lived children, e.g. ones the bpy module starts, are not workers)."""
    return sorted(set(seen) | {k for k in children(pid) if "--worker" in cmdline(k)})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_and_resume_with_two_workers_redoes_nothing(env, tmp_path):
    prompts = tmp_path / "slow.csv"
    prompts.write_text(SLOW_CSV)
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), str(prompts), "--out", str(out), "--model",
           smdm_fixture.NAME, "--threads", "1", "--workers", "2"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None:
            kids = seen_workers(p.pid, kids)
            if any(v["status"] == "ok" for v in recorded(out).values()):
                break
            time.sleep(0.02)
        kids = seen_workers(p.pid, kids)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        assert len(kids) == 2, kids
        assert wait_for(lambda: not any(alive(k) for k in kids), 3.0), \
            "a worker outlived its killed parent"
    finally:
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)
    done = sorted(k for k, v in recorded(out).items() if v["status"] == "ok")
    assert 1 <= len(done) < 8, done
    before = snapshot(out, done)
    time.sleep(0.05)  # a rewrite would get a later mtime even on coarse clocks

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    todo = 8 - len(done)
    assert f"8 items in this run, {len(done)} already in the manifest, {todo} to do" in r.stderr
    counts = [ln.split("] ")[1].split(" items")[0] for ln in r.stderr.splitlines()
              if " items, " in ln and ln.startswith("[")]
    assert counts == [f"{k}/{todo}" for k in range(1, todo + 1)], r.stderr
    assert "~-" not in r.stderr
    assert snapshot(out, done) == before  # not one finished item redone
    final = json.loads((out / "manifest.json").read_text())["items"]
    assert sorted(final) == ["q1", "q2", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert all(v["status"] == "ok" for v in final.values())
    assert final["q2"]["frames"] == 180 and final["s1"]["frames"] == 600  # round(s × 30 fps)
    assert sorted(f.name for f in out.iterdir() if f.is_file()) == ["manifest.json"]
    assert not list(out.rglob("*.blend1"))


def test_an_item_redone_over_its_files_leaves_no_backup(env, tmp_path):
    """A run killed after an item's files but before its record redoes the item over them:
    its .blend is written afresh, no .blend1 left beside it."""
    prompts = tmp_path / "one.txt"
    prompts.write_text("a person walks forward\n")
    out = tmp_path / "out"
    for _ in range(2):
        r = run(env, prompts, out, "--seconds", "1")
        assert r.returncode == 0, r.stderr[-2000:]
        (out / "manifest.json").unlink()  # as if killed before recording it
    assert sorted(f.name for f in (out / "0001-a-person-walks-forward").iterdir()) == [
        "0001-a-person-walks-forward.blend", "0001-a-person-walks-forward.bvh"]


def test_malformed_prompts_file_names_the_line(env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,seconds\nwalk,2\nrun,fast\n")
    r = run(env, bad, tmp_path / "out")
    assert r.returncode == 2
    assert "bad.csv, line 3: seconds must be a number, got 'fast'" in r.stderr


def test_rows_of_segments_make_timelines(env, tmp_path):
    """A row with segments (JSON in a CSV cell) is one action from that timeline; a row whose
    segments are bad stops the file with its line, before anything is generated."""
    segments = json.dumps([{"prompt": "a person walks forward", "seconds": 1.5, "seed": 1},
                           {"prompt": "a person raises both arms", "seconds": 1, "seed": 2}])
    cell = segments.replace('"', '""')
    prompts = tmp_path / "shots.csv"
    prompts.write_text(f'id,prompt,segments\nwalk,a person walks forward,\nshot,,"{cell}"\n')
    out = tmp_path / "out"
    r = run(env, prompts, out, "--seconds", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    data, files = comparable(out)
    assert data["shot"]["status"] == "ok" and "shot/shot.bvh" in files
    assert [s["frames"] for s in data["shot"]["segments"]] == [[1, 45], [46, 75]]
    assert data["shot"]["frames"] == 75 and data["walk"]["frames"] == 30
    bad = tmp_path / "bad.csv"
    bad.write_text(f'id,segments\nshot,"{cell}"\nempty,"[{{""prompt"": """", ""seconds"": 2}}]"\n')
    r = run(env, bad, tmp_path / "out2")
    assert r.returncode == 2 and not (tmp_path / "out2" / "manifest.json").exists()
    assert "bad.csv, line 3: segments: Segment 1: The prompt is empty" in r.stderr
