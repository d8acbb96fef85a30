# SPDX-License-Identifier: GPL-3.0-or-later
"""tools/make_variations.py headless: a .blend or a BVH reference of a non-canonical rig in,
a .blend with the variations and a .bvh per variation out (GenMM: no torch needed)."""
import re
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


def test_bvh_reference_in_asf_units_is_detected_so_the_key_tolerance_is_in_cm(scene_file,
                                                                             tmp_path):
    """The walk in CMU ASF units (and 1 m under the floor, as rigs recorded at the hips
    play): the same variation and keys as from the cm file; --scale cm reads it as the
    0.3 m person of the bug report."""
    from bvh_clips import rescaled

    walk = bvh_mod.read((scene_file / "walk.bvh").read_bytes())
    sunk = walk.copy()
    sunk.motion[:, sunk.position_channels(0)[1]] -= 100.0
    bvh_mod.write(rescaled(sunk, 0.45 / 2.54), str(tmp_path / "walk-asf.bvh"))
    runs = {}
    for name, ref, extra in (("cm", scene_file / "walk.bvh", ()),
                             ("asf", tmp_path / "walk-asf.bvh", ()),
                             ("as-cm", tmp_path / "walk-asf.bvh", ("--scale", "cm"))):
        r = run(str(ref), "--count", "1", "--seconds", "2", "--seed", "4", "--method", "genmm",
                "--out", str(tmp_path / name), *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[name] = r.stdout, int(re.search(r"; ([\d,]+) keys", r.stdout).group(1)
                                          .replace(",", ""))
    print("keys per reference:", {k: v[1] for k, v in runs.items()})
    height = bvh_mod.detect_units(walk).height_m
    assert f"reference units: centimetres, detected from a {height:.2f} m skeleton" \
        in runs["cm"][0]
    assert (f"reference units: ASF units (1/0.45 in), detected from a {height:.2f} m "
            "skeleton; moved up ") in runs["asf"][0]
    moved = re.search(r"moved up ([\d.]+) m to stand on the floor", runs["asf"][0]).group(1)
    assert float(moved) == pytest.approx(1.0, abs=0.02)
    assert runs["asf"][1] == pytest.approx(runs["cm"][1], rel=0.05)
    assert "reference units: centimetres, given; a 0." in runs["as-cm"][0]
    assert runs["as-cm"][1] < 0.8 * runs["asf"][1]
    # the variation comes out at the reference's height (written in cm)
    out = bvh_mod.read(next((tmp_path / "asf").glob("*.bvh")).read_bytes())
    assert bvh_mod.detect_units(out).height_m == pytest.approx(height, rel=0.02)


def test_bad_scale_is_reported(scene_file, tmp_path):
    r = run(str(scene_file / "walk.bvh"), "--scale", "furlongs", "--method", "genmm",
            "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and "Unknown scale 'furlongs'" in r.stderr
    assert not (tmp_path / "out").exists()
