# SPDX-License-Identifier: GPL-3.0-or-later
"""Batch workers die with their parent (bpy-free): the parent-death signal and the ppid
watchdog each on their own, a parent gone before the worker starts watching, the parent's
stop(); and the bookkeeping of a resumed run (to-do list, leftover worker manifests,
progress counts)."""
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from proc_fixture import alive, wait_for

from sparse_motion.pipeline import batch as pb
from sparse_motion.pipeline import workers

ROOT = Path(__file__).resolve().parents[1]
PRELUDE = f"import sys; sys.path.insert(0, {str(ROOT / 'tools')!r}); import devimport; " \
          "devimport.load(); from sparse_motion.pipeline import workers; import os, time\n"
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX process semantics")


def parent_with_a_worker(tmp_path, guard):
    """A parent process that starts a worker running ``guard`` (code using PARENT, its
    parent's pid) and then sleeps; returns (parent Popen, the worker's pid)."""
    pid_file = tmp_path / "worker.pid"
    worker = PRELUDE + f"PARENT = {{parent}}\n{guard}\n" + \
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n"
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        code = {worker!r}.replace("{{parent}}", str(os.getpid()))
        subprocess.Popen([sys.executable, "-c", code])
        time.sleep(120)
    """)
    p = subprocess.Popen([sys.executable, "-c", parent])
    assert wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 60), \
        "the worker did not start"
    return p, int(pid_file.read_text())


@posix
@pytest.mark.parametrize("guard, within", [
    # the kernel's parent-death signal alone (the watchdog would wake only after an hour)
    ("workers.die_with_parent(PARENT, interval=3600)", 3.0),
    # the ppid watchdog alone (no prctl): every system
    ("workers.die_with_parent(PARENT, interval=0.2, pdeathsig=False)", 5.0),
])
def test_worker_dies_when_its_parent_is_killed(tmp_path, guard, within):
    if "interval=3600" in guard and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    parent, worker = parent_with_a_worker(tmp_path, guard)
    try:
        time.sleep(0.3)
        assert alive(worker)  # the guard does not kill a worker whose parent lives
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: not alive(worker), within), "the worker outlived its parent"
    finally:
        if alive(worker):
            os.kill(worker, signal.SIGKILL)


@posix
def test_unguarded_worker_outlives_its_parent(tmp_path):
    """The control: without the guard the same worker survives (what the tests above catch)."""
    parent, worker = parent_with_a_worker(tmp_path, "pass")
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        time.sleep(1.0)
        assert alive(worker)
    finally:
        os.kill(worker, signal.SIGKILL)


@posix
def test_worker_whose_parent_already_died_exits_at_once():
    r = subprocess.run([sys.executable, "-c", PRELUDE + "workers.die_with_parent(os.getppid() "
                        "+ 100000)\ntime.sleep(60)\n"], timeout=60)
    assert r.returncode == -signal.SIGKILL


def test_stop_ends_running_workers():
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
             for _ in range(2)]
    procs.append(subprocess.Popen([sys.executable, "-c", "pass"]))
    procs[-1].wait(30)
    t0 = time.monotonic()
    workers.stop(procs, timeout=5)
    assert time.monotonic() - t0 < 10
    assert all(p.returncode is not None for p in procs) and procs[-1].returncode == 0


def items(n):
    return pb.parse_prompts("\n".join(f"prompt {i}" for i in range(n)), "p.txt")


def test_a_killed_runs_worker_manifests_are_saved_before_the_to_do_list(tmp_path):
    its = items(5)
    main = pb.Manifest.load(tmp_path / "manifest.json")
    main.record(its[0].id, {"status": "ok"})
    main.record(its[1].id, {"status": "failed", "error": "x"})
    # what a killed run left: worker 1 finished item 2, worker 2 item 1 (failed before, ok now)
    w1, w2 = pb.WorkerFiles(main.path, 1, 2), pb.WorkerFiles(main.path, 2, 2)
    pb.Manifest(w1.part).record(its[2].id, {"status": "ok"})
    pb.Manifest(w2.part).record(its[1].id, {"status": "ok"})
    w1.write_todo([its[2].id, its[4].id])
    w1.log.write_text("log")
    (tmp_path / (w2.part.name + ".tmp123")).write_text("{")
    other = pb.WorkerFiles(tmp_path / "manifest.shard-1-of-2.json", 1, 2)  # another shard's
    pb.Manifest(other.part).record("x", {"status": "ok"})

    m = pb.Manifest.load(tmp_path / "manifest.json")
    assert pb.recover_worker_manifests(m) == 2
    saved = pb.Manifest.load(tmp_path / "manifest.json")
    assert saved.entries == m.entries and sorted(saved.entries) == sorted(
        it.id for it in its[:3])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json", "manifest.shard-1-of-2.worker-1-of-2.json"]
    assert [it.id for it in pb.to_do(its, saved)] == [its[3].id, its[4].id]
    saved.record(its[3].id, {"status": "failed"})
    assert [it.id for it in pb.to_do(its, saved)] == [its[4].id]
    assert [it.id for it in pb.to_do(its, saved, retry_failed=True)] == [its[3].id, its[4].id]


def test_worker_files_and_to_do_list(tmp_path):
    wf = pb.WorkerFiles(tmp_path / "manifest.shard-2-of-4.json", 1, 3)
    assert wf.part.name == "manifest.shard-2-of-4.worker-1-of-3.json"
    wf.write_todo(["a", "b"])
    assert wf.read_todo() == ["a", "b"]
    wf.remove()
    assert not list(tmp_path.iterdir())
    with pytest.raises(pb.InputError, match="to-do list"):
        wf.read_todo()


def test_progress_counts_the_items_of_this_run():
    out = io.StringIO()
    p = pb.Progress(2, stream=out)
    p.update("a", True)
    p.update("b", False)
    lines = out.getvalue().splitlines()
    assert [ln.split("] ")[1].split(" items")[0] for ln in lines] == ["1/2", "2/2"]
    assert "1 failed" in lines[1] and lines[1].endswith("b FAILED")
    assert "~0 s left" in lines[1]
    p.update("c", True)  # more than announced (a run never does): still no negative time
    assert "~-" not in out.getvalue().splitlines()[-1]
