# SPDX-License-Identifier: GPL-3.0-or-later
"""Reduce Keyframes on real Blender (the bpy wheel): 4.5 LTS, 5.0 and 4.2 in CI."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
from sparse_motion.blender import actions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def addon():
    with fx.addon_registered():
        yield


@pytest.fixture
def rig():
    fx.reset()
    obj = fx.make_armature()
    fx.key_armature(obj, n_frames=120)
    return obj


def run(**kwargs):
    return bpy.ops.sparse_motion.reduce_keyframes(**kwargs)


def measured_error(obj, dense_points, frames):
    got = fx.world_points(obj, frames)
    d = np.linalg.norm(got - dense_points, axis=-1)
    return d.max(), d.mean()


def test_ratio_replace_keeps_synchronised_keys_within_reported_error(rig):
    frames = np.arange(1, 121)
    dense = fx.world_points(rig, frames)
    assert run(mode="RATIO", ratio=0.1) == {"FINISHED"}
    keys = fx.curve_keys(rig)
    key_sets = {tuple(v) for v in keys.values()}
    assert len(key_sets) == 1, "every moving channel must be keyed on the same frames"
    (kf,) = key_sets
    assert len(kf) == 12 and kf[0] == 1 and kf[-1] == 120
    mx, mean = measured_error(rig, dense, frames)
    assert mx < 5.0  # cm, on a 30-60 cm limb with 10 % of the keys
    assert mean < mx


def test_error_bound_is_honoured_as_blender_evaluates_it(rig):
    frames = np.arange(1, 121)
    dense = fx.world_points(rig, frames)
    assert run(mode="ERROR", max_error=0.5) == {"FINISHED"}
    mx, _ = measured_error(rig, dense, frames)
    assert mx <= 0.5 + 1e-3
    n_keys = len(next(iter(fx.curve_keys(rig).values())))
    assert n_keys < 60


def test_aligned_handles_are_smooth(rig):
    assert run(mode="RATIO", ratio=0.15, handles="ALIGNED") == {"FINISHED"}
    for fc in actions.channels_for(rig).fcurves:
        for kp in fc.keyframe_points[1:-1]:
            assert kp.handle_left_type == "ALIGNED"
            left = np.subtract(kp.co, kp.handle_left)
            right = np.subtract(kp.handle_right, kp.co)
            cross = left[0] * right[1] - left[1] * right[0]
            assert abs(cross) < 1e-4 * (1 + abs(left[1]) + abs(right[1]))


def test_undo_restores_the_original(rig):
    # Headless Blender does not push the operator's own undo step (there is no UI), so the
    # test pushes the step a UI session would: everything the operator did must be in it.
    before = fx.snapshot()
    bpy.ops.ed.undo_push(message="before reduce")
    assert run(mode="RATIO", ratio=0.1) == {"FINISHED"}
    after = fx.snapshot()
    assert after != before
    bpy.ops.ed.undo_push(message="Reduce Keyframes")
    bpy.ops.ed.undo()
    assert fx.snapshot() == before
    bpy.ops.ed.redo()
    assert fx.snapshot() == after


def test_new_action_keeps_the_original(rig):
    original = rig.animation_data.action
    before = fx.snapshot()[original.name]
    assert run(mode="RATIO", ratio=0.1, output="NEW_ACTION") == {"FINISHED"}
    new = rig.animation_data.action
    assert new != original and new.name.startswith(original.name)
    assert original.use_fake_user, "the original must survive saving with no users"
    assert fx.snapshot()[original.name][0] == before[0]
    assert len(next(iter(fx.curve_keys(rig).values()))) == 12


def test_selected_bones_only(rig):
    keys_before = fx.curve_keys(rig)
    for pb in rig.pose.bones:
        sel = pb.name in {"bone1", "bone3"}
        if "select" in pb.bl_rna.properties:
            pb.select = sel
        else:
            pb.bone.select = sel
    assert run(mode="RATIO", ratio=0.1, bones="SELECTED") == {"FINISHED"}
    after = fx.curve_keys(rig)
    for (path, idx), frames in after.items():
        if '"bone1"' in path or '"bone3"' in path:
            assert len(frames) == 12
        else:
            np.testing.assert_array_equal(frames, keys_before[(path, idx)])


def test_action_with_several_slots_only_touches_the_objects_slot():
    if not actions.is_slotted():
        pytest.skip("slots exist from Blender 4.4")
    fx.reset()
    a = fx.make_armature("A")
    b = fx.make_armature("B", seed=1)
    action = fx.key_armature(a, n_frames=60)
    slot_b = action.slots.new(id_type="OBJECT", name="B")
    bag_b = action.layers[0].strips[0].channelbag(slot_b, ensure=True)
    fc = bag_b.fcurves.new('pose.bones["bone0"].location', index=2)
    fc.keyframe_points.add(60)
    fc.keyframe_points.foreach_set("co", np.ravel(np.c_[np.arange(1, 61), np.sin(np.arange(60) / 5)]).astype(np.float32))
    b.animation_data_create()
    b.animation_data.action = action
    b.animation_data.action_slot = slot_b
    bpy.context.view_layer.objects.active = a
    assert run(mode="RATIO", ratio=0.1) == {"FINISHED"}
    assert len(bag_b.fcurves[0].keyframe_points) == 60
    assert all(len(f) == 6 for f in fx.curve_keys(a).values())


def test_plain_object():
    fx.reset()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.object
    t = np.arange(100) / 30
    fx.key_object(cube, {("location", 0): np.sin(t * 3), ("location", 2): t, ("rotation_euler", 2): 2 * t})
    dense = fx.world_points(cube, np.arange(1, 101))
    assert run(mode="ERROR", max_error=0.2) == {"FINISHED"}
    mx, _ = measured_error(cube, dense, np.arange(1, 101))
    assert mx <= 0.2 + 1e-3
    assert len(next(iter(fx.curve_keys(cube).values()))) < 40


# ---- bad input: a clear report, nothing changed -------------------------------------------


def expect_refusal(match):
    before = fx.snapshot()
    with pytest.raises(RuntimeError, match=match):
        run(mode="RATIO", ratio=0.1)
    assert fx.snapshot() == before


def test_no_animation_data():
    fx.reset()
    fx.make_armature()
    expect_refusal("has no action to reduce")


def test_no_active_object():
    fx.reset()
    expect_refusal("Select an object")


def test_single_key():
    fx.reset()
    obj = fx.make_armature()
    fx.key_object(obj, {("location", 0): [1.0]})
    expect_refusal("fewer than three keys")


def test_constant_curves():
    fx.reset()
    obj = fx.make_armature()
    fx.key_object(obj, {("location", 0): np.full(50, 2.0), ("location", 1): np.zeros(50)})
    expect_refusal("all 2 curves are constant")


def test_nan_values():
    fx.reset()
    obj = fx.make_armature()
    vals = np.sin(np.arange(50) / 4)
    vals[20] = np.nan
    fx.key_object(obj, {("location", 0): vals})
    expect_refusal(r"invalid value \(NaN or infinite\) at frame 21")


def test_locked_fcurves(rig):
    chans = actions.channels_for(rig)
    chans.fcurves[3].lock = True
    expect_refusal("locked")


def test_linked_action_refused_in_place_and_copied_as_new(tmp_path, rig):
    lib_path = str(tmp_path / "lib.blend")
    action = rig.animation_data.action
    action.name = "LibMocap"
    bpy.data.libraries.write(lib_path, {action})
    fx.reset()
    obj = fx.make_armature()
    with bpy.data.libraries.load(lib_path, link=True) as (src, dst):
        dst.actions = ["LibMocap"]
    linked = dst.actions[0]
    assert linked.library is not None
    obj.animation_data_create()
    obj.animation_data.action = linked
    if actions.is_slotted():
        obj.animation_data.action_slot = linked.slots[0]
    expect_refusal("linked from a library")
    assert run(mode="RATIO", ratio=0.1, output="NEW_ACTION") == {"FINISHED"}
    assert obj.animation_data.action.library is None
    assert len(next(iter(fx.curve_keys(obj).values()))) == 12


# ---- the built extension ------------------------------------------------------------------

INSTALLED_SCRIPT = r"""
import os, sys, numpy as np
import bpy
sys.path.insert(0, sys.argv[-2])
bpy.ops.wm.read_factory_settings(use_empty=True)
res = bpy.ops.extensions.package_install_files(filepath=sys.argv[-1], repo="user_default", enable_on_install=True)
assert res == {"FINISHED"}, res
assert "bl_ext.user_default.sparse_motion" in bpy.context.preferences.addons
import bl_ext.user_default.sparse_motion as sm
assert "/extensions/" in sm.__file__.replace(os.sep, "/"), sm.__file__
sys.modules["sparse_motion"] = sm  # the fixtures speak of the package by this name
import bl_fixtures as fx
obj = fx.make_armature()
fx.key_armature(obj, n_frames=100)
assert bpy.ops.sparse_motion.reduce_keyframes(mode="RATIO", ratio=0.1) == {"FINISHED"}
n = {len(v) for v in fx.curve_keys(obj).values()}
assert n == {10}, n
prefs = bpy.context.preferences.addons["bl_ext.user_default.sparse_motion"].preferences
assert prefs.device == "AUTO"
print("INSTALLED-OK")
"""


def test_built_zip_installs_and_runs(tmp_path):
    ext = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core/bl_pkg/cli/blender_ext.py"
    out = subprocess.run(
        [sys.executable, str(ext), "validate", str(ROOT)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run(
        [sys.executable, str(ext), "build", "--source-dir", str(ROOT), "--output-dir", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (zip_path,) = tmp_path.glob("sparse_motion-*.zip")
    script = tmp_path / "installed.py"
    script.write_text(INSTALLED_SCRIPT)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    proc = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent), str(zip_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert "INSTALLED-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
