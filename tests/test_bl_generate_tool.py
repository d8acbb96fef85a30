# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's main command: tools/generate.py with the shipped model, headless."""
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from sparse_motion.motion import bvh as bvh_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_generate_tool_writes_blend_and_bvh(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "generate.py"),
                        "A person walks forward.", "--seconds", "2", "--steps", "10",
                        "--seed", "4", "--fps", "30", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Generated action 'A person walks forward. #4'" in r.stdout
    blend = tmp_path / "a-person-walks-forward-4.blend"
    bvh = tmp_path / "a-person-walks-forward-4.bvh"
    assert blend.is_file() and bvh.is_file()
    data = bvh_mod.read(bvh.read_bytes())
    assert data.num_joints == 21 and data.num_frames == 60  # 2 s at 30 fps: round(2 × 30)
    assert abs(data.frame_time - 1 / 30) < 1e-6
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    action = bpy.data.actions["A person walks forward. #4"]
    assert action["sparse_motion"]["seed"] == 4


def test_generate_tool_reports_bad_input(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "generate.py"), "   ",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "prompt is empty" in r.stderr
    assert not list(tmp_path.iterdir())
