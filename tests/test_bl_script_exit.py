# SPDX-License-Identifier: GPL-3.0-or-later
"""Scripts written the way a pipeline TD writes them: ``import bpy``, register the extension,
call an operator, print, end of script. Each must exit by itself within seconds of its last
line (a farm job that never ends is the bug: bpy 4.5 hung in its C++ static destructors for
as long as one waited when classes were still registered at interpreter exit).

Each script runs in its own process on this Python's Blender (4.5, 5.0 and 4.2 in CI) with a
hard timeout that fails the test."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from bvh_clips import standing_clip  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXIT_WITHIN_S = 10.0  # from the script's last line to the process's end
RUN_LIMIT_S = 120.0  # the whole script; past it the process is killed and the test fails

#: bpy 4.2.23 as a module segfaults in its static destructors at exit (after the script and
#: Python's own finalisation are done: output is complete) once any PropertyGroup with a
#: dynamic EnumProperty has been registered, even if unregistered again: reproduced with a
#: ten-line script without this extension. Blender 4.2 itself (the application) and bpy 4.5
#: and 5.0 are not affected. There the test still requires a prompt exit.
KNOWN_EXIT_CRASH = bpy.app.version[:2] == (4, 2)

PRELUDE = f"""
import sys, time
import bpy
sys.path.insert(0, {str(ROOT / "tools")!r})
import devimport
sparse_motion = devimport.load()  # as if installed: the extension package
sparse_motion.register()
"""

SCRIPTS = {
    "generate": """
        r = bpy.ops.sparse_motion.generate_motion(prompt="a person walks forward", seconds=2,
                                                  seed=1, steps=10)
        assert r == {"FINISHED"}, r
    """,
    "bvh_import": """
        r = bpy.ops.sparse_motion.import_bvh(filepath=CLIP)
        assert r == {"FINISHED"}, r
    """,
    "reduce": """
        bpy.ops.sparse_motion.import_bvh(filepath=CLIP)
        r = bpy.ops.sparse_motion.reduce_keyframes(mode="RATIO", ratio=0.2)
        assert r == {"FINISHED"}, r
    """,
    "retarget": """
        bpy.ops.sparse_motion.generate_motion(prompt="a person walks forward", seconds=2,
                                              seed=1, steps=10)
        source = bpy.context.view_layer.objects.active.name
        sys.path.insert(0, TESTS)  # the tests' rig builder: a Blender metarig-style target
        import test_retarget_core, test_bl_retarget
        target = test_bl_retarget.build(test_retarget_core.metarig_rig())
        bpy.context.view_layer.objects.active = target
        r = bpy.ops.sparse_motion.retarget_action(source=source)
        assert r == {"FINISHED"}, r
    """,
    "variations": """
        bpy.ops.sparse_motion.import_bvh(filepath=CLIP)
        r = bpy.ops.sparse_motion.make_variations(count=1, seconds=3, method="GENMM")
        assert r == {"FINISHED"}, r
    """,
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "standing.bvh"
    bvh_mod.write(standing_clip(n_frames=120, fps=30), path)
    return path


def _run(script: Path):
    """``(returncode, stdout, seconds from the last line to the process's end)``; the
    process is killed and the test fails past ``RUN_LIMIT_S``."""
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=script.parent)
    lines = []  # (time read, line), by a reader thread: a hung process never closes the pipe

    def read():
        for line in proc.stdout:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        rc = None
        proc.kill()
        proc.wait()
    ended = time.monotonic()
    reader.join(5.0)
    out = "".join(line for _, line in lines)
    last = [t for t, line in lines if line.startswith("LAST LINE")]
    assert last, f"{script.name} never reached its last line (exit {rc}):\n{out[-3000:]}"
    return rc, out, ended - last[0]


@pytest.mark.parametrize("what", sorted(SCRIPTS))
def test_a_script_that_registers_and_runs_an_operator_exits_by_itself(what, clip, tmp_path):
    script = tmp_path / f"{what}.py"
    paths = f"CLIP = {str(clip)!r}\nTESTS = {str(ROOT / 'tests')!r}\n"
    script.write_text(PRELUDE + paths + textwrap.dedent(SCRIPTS[what])
                      + 'print("LAST LINE", flush=True)\n')
    rc, out, tail_s = _run(script)
    print(f"{what}: exit {rc}, {tail_s:.2f} s after the last line")
    assert rc is not None, f"{what}: still running {RUN_LIMIT_S:.0f} s after it started"
    assert tail_s <= EXIT_WITHIN_S, f"{what}: exited {tail_s:.1f} s after its last line"
    allowed = (0, -11) if KNOWN_EXIT_CRASH else (0,)
    assert rc in allowed, f"{what}: exit status {rc}:\n{out[-3000:]}"


def test_the_exit_check_sees_a_script_that_hangs(tmp_path):
    """The check can fail: a script whose last line is followed by a wait in a
    non-daemon thread for longer than the limit is caught."""
    script = tmp_path / "hang.py"
    script.write_text(f"import threading, time\n"
                      f"threading.Thread(target=time.sleep, args=({EXIT_WITHIN_S + 2},)).start()\n"
                      'print("LAST LINE", flush=True)\n')
    rc, _, tail_s = _run(script)
    assert rc == 0 and tail_s > EXIT_WITHIN_S
