# SPDX-License-Identifier: GPL-3.0-or-later
"""tools/make_variations.py headless: a .blend or a BVH reference of a non-canonical rig in,
a .blend with the variations and a .bvh per variation out (GenMM: no torch needed)."""
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import variation_rig as vr  # noqa: E402
from sparse_motion.blender import bvh_io  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "make_variations.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    fx.reset()
    obj = vr.make_rig()
    vr.animate(obj, seconds=3)
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "rig.blend"), check_existing=False)
    bvh_io.export_bvh(obj, str(folder / "walk.bvh"), scale=100.0)
    return folder


def test_blend_reference_gives_blend_and_bvhs(scene_file, tmp_path):
    r = run(f"{scene_file / 'rig.blend'}::VarRig::RefWalk", "--count", "2", "--seconds", "4",
            "--seed", "7", "--method", "genmm", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 variation(s) of 120 frames with GenMM" in r.stdout
    blend = tmp_path / "refwalk-variations-7.blend"
    bvhs = sorted(tmp_path.glob("*.bvh"))
    assert blend.is_file() and [p.name for p in bvhs] == ["refwalk-var-7.bvh", "refwalk-var-8.bvh"]
    data = bvh_mod.read(bvhs[0].read_bytes())
    assert data.num_frames == 120 and "L_thigh" in data.names
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert bpy.data.actions["RefWalk var 7"]["sparse_motion"]["method"] == "GENMM"
    assert bpy.data.objects["VarRig"].animation_data.action.name == "RefWalk var 8"


def test_bvh_reference(scene_file, tmp_path):
    r = run(str(scene_file / "walk.bvh"), "--count", "1", "--method", "genmm", "--no-bvh",
            "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "1 variation(s) of 90 frames" in r.stdout
    assert [p.suffix for p in tmp_path.iterdir()] == [".blend"]


@pytest.mark.parametrize("spec, words", [("missing.blend", "reference file not found"),
                                         ("RIG::Nobody", "no object 'Nobody'"),
                                         ("RIG::VarRig::NoAction", "no action 'NoAction'")])
def test_bad_reference_is_reported(scene_file, tmp_path, spec, words):
    spec = spec.replace("RIG", str(scene_file / "rig.blend"))
    r = run(spec, "--method", "genmm", "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and words in r.stderr
    assert not (tmp_path / "out").exists()


def test_batch_items_with_a_reference(scene_file, tmp_path):
    """tools/batch_generate.py: reference rows make variations; a bad one is recorded."""
    import json

    csv = tmp_path / "items.csv"
    csv.write_text("id,prompt,reference,seconds,seed,count,method\n"
                   f"walk-bvh,,{scene_file / 'walk.bvh'},2,3,2,genmm\n"
                   f"walk-blend,,{scene_file / 'rig.blend'}::VarRig::RefWalk,,5,1,genmm\n"
                   f"missing,,{tmp_path / 'nope.bvh'},,1,1,genmm\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "batch_generate.py"), str(csv),
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    items = json.loads((out / "manifest.json").read_text())["items"]
    a, b, c = items["walk-bvh"], items["walk-blend"], items["missing"]
    assert a["status"] == "ok" and a["method"] == "genmm" and a["frames"] == 60
    assert a["files"] == ["walk-bvh/walk-bvh.blend", "walk-bvh/walk-bvh-1.bvh",
                          "walk-bvh/walk-bvh-2.bvh"]
    assert bvh_mod.read((out / a["files"][1]).read_bytes()).num_frames == 60
    assert b["status"] == "ok" and b["actions"] == ["RefWalk var 5"] and b["frames"] == 90
    assert c["status"] == "failed" and "reference file not found" in c["error"]
