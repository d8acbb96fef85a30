# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH import on real Blender: the length unit detected from the skeleton's height (the same
clip written in cm, m, mm, inches and CMU ASF units comes in at the same height), the unit
given by hand, and Feet on Floor (a clip under the floor or floating is moved onto it, a
clip on the floor is left alone); tools/reduce_bvh.py with the same options."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
from bvh_clips import (ASF_NAMES, FLOOR_END, FLOOR_JOINT, STANDING_HEIGHT_CM,  # noqa: E402
                       make_bvh, rescaled, standing_clip, write_bvh)
from sparse_motion.blender import bvh_io  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402
from sparse_motion.motion.skeleton import bvh_forward_kinematics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ASF = 0.45 / 2.54  # centimetres → ASF units
ASF_M = 0.0254 / 0.45  # metres per ASF unit
# the standing clip in each unit: (factor from cm, joint names, the report's unit label)
FILES = {
    "cm": (1.0, None, "centimetres"),
    "m": (0.01, None, "metres"),
    "in": (1 / 2.54, None, "inches"),
    "asf": (ASF, ASF_NAMES, "ASF units (1/0.45 in)"),
    "mm": (10.0, None, "millimetres"),
}
FLAT = ("HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n"
        "JOINT B\n{\nOFFSET 10 0 0\nCHANNELS 0\nEnd Site\n{\nOFFSET 0 0 5\n}\n}\n}\n"
        "MOTION\nFrames: 2\nFrame Time: 0.1\n0 0 0\n5 0 1\n")


@pytest.fixture(scope="module", autouse=True)
def addon():
    with fx.addon_registered():
        yield


def clip_file(tmp_path, unit, lift_cm=0.0, n_frames=60, name=None):
    factor, names, _ = FILES[unit]
    clip = rescaled(standing_clip(n_frames=n_frames, lift_cm=lift_cm), factor, names)
    return write_bvh(tmp_path, clip, name or f"stand-{unit}.bvh")


def datablocks():
    return (sorted(o.name for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions),
            sorted(a.name for a in bpy.data.armatures))


def _measured(obj):
    """The bones that mark the top of the head (the Head bone's tail: its End Site) and the
    lowest foot points (LeftToe's head, RightFoot's tail: its End Site)."""
    asf = "head" in obj.data.bones
    return (("head" if asf else "Head"), ASF_NAMES[FLOOR_JOINT] if asf else FLOOR_JOINT,
            ASF_NAMES[FLOOR_END] if asf else FLOOR_END)


def evaluated(obj, frames):
    """World Z of (top of the head, lowest foot point) at each frame, as Blender plays it."""
    head, toe, foot = (obj.pose.bones[n] for n in _measured(obj))
    mw = np.array(obj.matrix_world)
    out = []
    for f in frames:
        bpy.context.scene.frame_set(int(f))
        z = [(mw @ np.array([*v, 1.0]))[2] for v in (head.tail, toe.head, foot.tail)]
        out.append((z[0], min(z[1], z[2])))
    return np.array(out)


def rest_height(obj):
    """Top of the head minus the lowest foot point in the armature's rest pose (m)."""
    head, toe, foot = (obj.data.bones[n] for n in _measured(obj))
    return head.tail_local.z - min(toe.head_local.z, foot.tail_local.z)


def all_points(obj, frames):
    """Every bone's head and tail at each frame (F, 2B, 3)."""
    out = []
    for f in frames:
        bpy.context.scene.frame_set(int(f))
        out.append([[*pb.head] for pb in obj.pose.bones] + [[*pb.tail] for pb in obj.pose.bones])
    return np.array(out)


# ---- units ---------------------------------------------------------------------------------


def test_the_same_clip_in_cm_m_mm_inches_and_asf_units_comes_in_at_the_same_height(
        tmp_path, capfd):
    heights, rest = {}, {}
    for unit, (_factor, _names, label) in FILES.items():
        fx.reset()
        path = clip_file(tmp_path, unit)
        capfd.readouterr()
        assert bpy.ops.sparse_motion.import_bvh(filepath=path) == {"FINISHED"}
        report = capfd.readouterr().out
        assert f"units: {label}, detected from a 1.70 m skeleton" in report, report
        obj = bpy.context.active_object
        z = evaluated(obj, range(1, 61))
        heights[unit] = float((z[:, 0] - z[:, 1]).max())
        rest[unit] = rest_height(obj)
        assert z[:, 1].min() == pytest.approx(0.0, abs=1e-5)  # on the floor as written
        info = obj.animation_data.action[bvh_io.IMPORT_PROPERTY]
        assert info["unit"] == unit and info["detected"] and info["floor_shift_m"] == 0.0
    print("imported heights (m), rest:", {u: round(h, 5) for u, h in rest.items()},
          "playing:", {u: round(h, 5) for u, h in heights.items()})
    for unit in FILES:
        assert heights[unit] == pytest.approx(heights["cm"], rel=0.01), unit
        assert rest[unit] == pytest.approx(STANDING_HEIGHT_CM / 100.0, rel=0.01), unit


def test_the_unit_or_a_scale_given_by_hand_wins(tmp_path, capfd):
    path = clip_file(tmp_path, "asf")
    fx.reset()
    capfd.readouterr()
    assert bpy.ops.sparse_motion.import_bvh(filepath=path, unit="CM") == {"FINISHED"}
    assert "units: centimetres, given; a 0.30 m skeleton" in capfd.readouterr().out
    assert rest_height(bpy.context.active_object) == pytest.approx(0.301, abs=0.001)  # as before
    fx.reset()
    assert bpy.ops.sparse_motion.import_bvh(filepath=path, unit="CUSTOM", scale=0.1) == \
        {"FINISHED"}
    assert rest_height(bpy.context.active_object) == pytest.approx(3.01, abs=0.01)
    fx.reset()
    res = bvh_io.import_bvh_result(path, scale="inches")
    assert res.units.unit == "in" and "inches, given" in res.message()
    before = datablocks()
    with pytest.raises(InputError, match="Unknown scale 'yards'"):
        bvh_io.import_bvh_result(path, scale="yards")
    assert datablocks() == before


def test_a_skeleton_that_is_not_a_person_comes_in_with_a_warning(tmp_path):
    fx.reset()
    doll = rescaled(standing_clip(n_frames=10), 0.1)  # 17 units: 0.96 m in ASF units
    res = bvh_io.import_bvh_result(doll, ground=False)
    assert res.units.unit == "asf"
    assert any("would be 0.96 m tall in the closest unit (ASF units (1/0.45 in)), outside the "
               "1–2.3 m of a person: if that is wrong, set the unit or scale" in w
               for w in res.warnings), res.warnings


def test_a_skeleton_without_height_is_refused_and_nothing_is_made(tmp_path):
    fx.reset()
    path = tmp_path / "flat.bvh"
    path.write_text(FLAT)
    fps = bpy.context.scene.render.fps
    with pytest.raises(RuntimeError, match="'flat.bvh': cannot tell the length unit: the "
                                           "skeleton has no height"):
        bpy.ops.sparse_motion.import_bvh(filepath=str(path))
    assert datablocks() == ([], [], []) and bpy.context.scene.render.fps == fps
    # with the unit given it is a flat prop, and comes in
    assert bpy.ops.sparse_motion.import_bvh(filepath=str(path), unit="CM") == {"FINISHED"}


# ---- the floor -----------------------------------------------------------------------------


@pytest.mark.parametrize("unit, lift_cm", [("asf", -100.0), ("cm", -100.0), ("m", 30.0)])
def test_a_clip_under_the_floor_or_floating_comes_in_on_the_floor(tmp_path, capfd, unit,
                                                                  lift_cm):
    """-100: a rig whose root is recorded at the hips plays 1 m under the floor."""
    path = clip_file(tmp_path, unit, lift_cm=lift_cm)
    fx.reset()
    assert bpy.ops.sparse_motion.import_bvh(filepath=path, ground=False) == {"FINISHED"}
    as_is = evaluated(bpy.context.active_object, range(1, 61))
    assert as_is[:, 1].min() == pytest.approx(lift_cm / 100.0, abs=1e-5)
    fx.reset()
    capfd.readouterr()
    assert bpy.ops.sparse_motion.import_bvh(filepath=path) == {"FINISHED"}
    way = "up" if lift_cm < 0 else "down"
    assert f"; moved {way} {abs(lift_cm) / 100:.2f} m to stand on the floor" in \
        capfd.readouterr().out
    obj = bpy.context.active_object
    grounded = evaluated(obj, range(1, 61))
    assert grounded[:, 1].min() == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(grounded, as_is - lift_cm / 100.0, atol=1e-5)
    assert obj.animation_data.action[bvh_io.IMPORT_PROPERTY]["floor_shift_m"] == \
        pytest.approx(-lift_cm / 100.0)


@pytest.mark.parametrize("lift_cm", [0.0, 4.2])  # 4.2: Bandai Namco's toe joints
def test_a_clip_on_the_floor_is_left_as_it_is(tmp_path, capfd, lift_cm):
    path = clip_file(tmp_path, "cm", lift_cm=lift_cm)
    points = {}
    for ground in (False, True):
        fx.reset()
        capfd.readouterr()
        assert bpy.ops.sparse_motion.import_bvh(filepath=path, ground=ground) == {"FINISHED"}
        assert "moved" not in capfd.readouterr().out
        points[ground] = all_points(bpy.context.active_object, range(1, 61))
        if ground:
            z = evaluated(bpy.context.active_object, range(1, 61))
            assert z[:, 1].min() == pytest.approx(lift_cm / 100.0, abs=1e-5)
    np.testing.assert_array_equal(points[True], points[False])


# ---- tools/reduce_bvh.py -------------------------------------------------------------------


def reduce_tool(*args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "reduce_bvh.py"), *args],
                          capture_output=True, text=True, timeout=300)


def keys_and_error(stdout):
    m = re.search(r"reduced ([\d,]+) → ([\d,]+) keys, max error ([\d.]+) cm", stdout)
    assert m, stdout
    return int(m.group(2).replace(",", "")), float(m.group(3))


def test_reduce_tool_detects_the_unit_so_the_error_is_in_cm(tmp_path):
    """The lively 'mixed' clip of the import tests, its root 1 m lower, in cm and ASF units:
    the same keys for 1 cm; the ASF file read as cm (a 0.3 m person) keeps far fewer."""
    clip = make_bvh("mixed", n_frames=120, fps=30, seed=5)
    clip.motion[:, clip.position_channels(0)[1]] -= 100.0
    runs = {}
    for unit, extra in (("cm", ()), ("asf", ()), ("asf-as-cm", ("--scale", "cm"))):
        factor, names, _ = FILES[unit.split("-")[0]]
        src = write_bvh(tmp_path, rescaled(clip, factor, names), f"{unit}.bvh")
        r = reduce_tool(src, "--max-error", "1.0", "--out", str(tmp_path / unit), *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        runs[unit] = r.stdout, keys_and_error(r.stdout)
    print("reduce_bvh.py keys, max error:", {k: v[1] for k, v in runs.items()})
    cm_keys, cm_err = runs["cm"][1]
    asf_keys, asf_err = runs["asf"][1]
    assert "units: ASF units (1/0.45 in), detected from a 1.70 m skeleton" in runs["asf"][0]
    assert "m to stand on the floor" in runs["asf"][0] and "; moved up 0.9" in runs["asf"][0]
    assert abs(asf_keys - cm_keys) <= 0.02 * cm_keys and cm_err <= 1.0 + 1e-3
    assert asf_err <= 1.0 + 1e-3
    # told the ASF file is in cm, the person is 0.3 m tall and 1 cm allows 5.6 real cm
    assert "units: centimetres, given; a 0.30 m skeleton" in runs["asf-as-cm"][0]
    assert runs["asf-as-cm"][1][0] < 0.8 * asf_keys
    # the reduced BVH is written in the unit it came in (ASF units), moved onto the floor
    src = bvh_mod.read((tmp_path / "asf.bvh").read_bytes())
    out = bvh_mod.read((tmp_path / "asf" / "asf.bvh").read_bytes())
    assert bvh_mod.detect_units(out).unit == "asf"
    diff = bvh_forward_kinematics(out)[:, [out.index(n) for n in src.names]] \
        - bvh_forward_kinematics(src)
    moved = float(re.search(r"moved up ([\d.]+) m", runs["asf"][0]).group(1))
    assert np.median(diff[..., 1]) * ASF_M == pytest.approx(moved, abs=0.006)
    diff[..., 1] -= np.median(diff[..., 1])
    assert np.abs(diff).max() * ASF_M <= 0.0101  # the 1 cm bound, in ASF units


@pytest.mark.parametrize("case", ["no height", "bad scale"])
def test_reduce_tool_refuses_bad_input_and_writes_nothing(tmp_path, case):
    src = tmp_path / "in.bvh"
    if case == "no height":
        src.write_text(FLAT)
        args, words = (), "cannot tell the length unit: the skeleton has no height"
    else:
        src = Path(clip_file(tmp_path, "cm", n_frames=10))
        args, words = ("--scale", "yards"), "Unknown scale 'yards'"
    r = reduce_tool(str(src), "--out", str(tmp_path / "out"), *args)
    assert r.returncode == 1 and words in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "out").exists()
