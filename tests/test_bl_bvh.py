# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH import / export on real Blender (the bpy wheel): 4.5 LTS, 5.0 and 4.2.

Positions are checked against Blender's own evaluation of the pose at every frame and
against :func:`sparse_motion.motion.skeleton.bvh_forward_kinematics` (the reference BVH
semantics), converted to Blender axes (x, -z, y) and scaled.
"""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
from bvh_clips import make_bvh, write_bvh  # noqa: E402
from sparse_motion.blender import actions, bvh_io  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402
from sparse_motion.motion.skeleton import bvh_forward_kinematics  # noqa: E402

C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
SCALE = 0.01  # centimetres → metres


@pytest.fixture(scope="module", autouse=True)
def addon():
    with fx.addon_registered():
        yield


# ---- BVH fixtures, written by script: tests/bvh_clips.py ----------------------------------

def expected_heads(bvh, scale=SCALE):
    """Reference positions in Blender axes: (F, J, 3)."""
    return scale * bvh_forward_kinematics(bvh) @ C.T


def size_of(bvh, scale=SCALE):
    pos = expected_heads(bvh, scale)
    return float(np.ptp(pos.reshape(-1, 3), axis=0).max())


def blender_heads(obj, names, frames):
    """World head of the named bones at each frame, as Blender evaluates them."""
    scene = bpy.context.scene
    pbs = obj.pose.bones
    idx = [pbs.find(n) for n in names]
    buf = np.empty(3 * len(pbs), np.float32)
    out = np.empty((len(frames), len(names), 3))
    mw = np.array(obj.matrix_world)
    for i, f in enumerate(frames):
        scene.frame_set(int(f))
        pbs.foreach_get("head", buf)
        h = buf.reshape(-1, 3)[idx].astype(np.float64)
        out[i] = h @ mw[:3, :3].T + mw[:3, 3]
    return out


def n_keys(obj):
    return {(fc.data_path, fc.array_index): len(fc.keyframe_points)
            for fc in actions.channels_for(obj).fcurves}


def datablocks():
    return (sorted(o.name for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions),
            sorted(a.name for a in bpy.data.armatures))


# ---- import onto a new armature ------------------------------------------------------------


@pytest.mark.parametrize("kind,fps", [("6ch", 60), ("mixed", 120), ("6ch", 120), ("mixed", 60)])
def test_import_new_armature_matches_bvh_fk(tmp_path, kind, fps):
    fx.reset()
    bvh = make_bvh(kind, n_frames=80, fps=fps, seed=fps)
    path = write_bvh(tmp_path, bvh)
    assert bpy.ops.sparse_motion.import_bvh(filepath=path) == {"FINISHED"}
    obj = bpy.context.active_object
    assert obj.type == "ARMATURE" and obj.name == "take"
    assert obj.animation_data.action.name == "take"
    assert [b.name for b in obj.data.bones] == bvh.names
    scene = bpy.context.scene
    assert scene.render.fps == fps and scene.render.fps_base == 1.0
    assert (scene.frame_start, scene.frame_end) == (1, 80)
    # rest heads at the joint rest positions
    rest = np.array([obj.data.bones[n].head_local for n in bvh.names])
    from sparse_motion.motion.skeleton import Skeleton
    np.testing.assert_allclose(rest, SCALE * Skeleton.from_bvh(bvh).rest_positions() @ C.T,
                               atol=1e-6)
    assert min(b.length for b in obj.data.bones) > 0.01
    # every bone keyed on every frame, quaternions; location where the joint has positions
    keys = n_keys(obj)
    assert set(keys.values()) == {80}
    for j, name in enumerate(bvh.names):
        assert obj.pose.bones[name].rotation_mode == "QUATERNION"
        has_loc = ('pose.bones["%s"].location' % name, 0) in keys
        assert has_loc == bvh.has_position(j), name
    # Feet on Floor (on by default) moved the whole clip along Z, by one constant
    got = blender_heads(obj, bvh.names, range(1, 81))
    want = expected_heads(bvh)
    dz = got[..., 2] - want[..., 2]
    assert np.ptp(dz) <= 1e-4 * size_of(bvh) and abs(dz.mean()) > 0.02
    want[..., 2] += dz.mean()
    err = np.abs(got - want).max()
    assert err <= 1e-4 * size_of(bvh), err


def test_import_function_with_bvh_object_and_frame_offset():
    fx.reset()
    bvh = make_bvh("mixed", n_frames=40, fps=30, seed=3)
    obj = bvh_io.import_bvh(bvh, frame_start=101, name="Clip", scale=1.0)
    assert obj.name == "Clip"
    assert bpy.context.scene.frame_start == 101 and bpy.context.scene.frame_end == 140
    got = blender_heads(obj, bvh.names, range(101, 141))
    assert np.abs(got - expected_heads(bvh, 1.0)).max() <= 1e-4 * size_of(bvh, 1.0)


# ---- import onto an existing armature ------------------------------------------------------


def make_target(bvh, seed=0, extra=True):
    """An armature with the BVH's joints as bones at the rest positions, but random rolls and
    tail directions; optionally extra bones (one between Hips and Spine, two leaves)."""
    from mathutils import Vector

    from sparse_motion.motion.skeleton import Skeleton

    rng = np.random.default_rng(seed)
    heads = SCALE * Skeleton.from_bvh(bvh).rest_positions() @ C.T
    data = bpy.data.armatures.new("Target")
    obj = bpy.data.objects.new("Target", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    ebs = {}
    for j, joint in enumerate(bvh.joints):
        eb = data.edit_bones.new(joint.name)
        eb.head = heads[j].tolist()
        d = rng.normal(size=3)
        eb.tail = (heads[j] + 0.05 * d / np.linalg.norm(d)).tolist()
        eb.roll = float(rng.uniform(-3, 3))
        if joint.parent >= 0:
            eb.parent = ebs[bvh.joints[joint.parent].name]
        ebs[joint.name] = eb
    if extra:
        mid = data.edit_bones.new("SpineTwist")  # between Hips and Spine
        mid.head = Vector(ebs["Hips"].head)
        mid.tail = Vector(ebs["Spine"].head)
        mid.roll = 0.7
        mid.parent = ebs["Hips"]
        ebs["Spine"].parent = mid
        for leaf, parent in (("Prop", "LeftHand"), ("Tail", "Hips")):
            eb = data.edit_bones.new(leaf)
            eb.head = Vector(ebs[parent].head)
            eb.tail = eb.head + Vector((0.0, -0.1, 0.0))
            eb.parent = ebs[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "XYZ"
    if extra:
        obj.pose.bones["SpineTwist"].rotation_euler = (0.0, 0.3, 0.0)  # a posed extra bone
    return obj


@pytest.mark.parametrize("kind", ["6ch", "mixed"])
def test_import_onto_existing_armature_with_other_rolls(kind):
    fx.reset()
    bvh = make_bvh(kind, n_frames=60, fps=30, seed=11)
    target = make_target(bvh, seed=2, extra=False)
    obj = bvh_io.import_bvh(bvh, target=target, name="Take")
    assert obj == target
    assert obj.animation_data.action.name == "Take"
    assert {pb.rotation_mode for pb in obj.pose.bones} == {"QUATERNION"}
    got = blender_heads(obj, bvh.names, range(1, 61))
    assert np.abs(got - expected_heads(bvh)).max() <= 1e-4 * size_of(bvh)


def test_import_onto_armature_with_extra_bones_leaves_them_alone():
    fx.reset()
    bvh = make_bvh("mixed", n_frames=50, fps=30, seed=5)
    target = make_target(bvh, seed=4, extra=True)
    old = fx.key_object(target, {("location", 2): np.linspace(0, 1, 10)}, "Old")
    assert bvh_io.import_bvh(bvh, target=target) == target
    keyed = {fc.data_path.split('"')[1] for fc in actions.channels_for(target).fcurves}
    assert keyed == set(bvh.names)
    assert old.use_fake_user  # the previous action stays in the file
    assert tuple(target.pose.bones["SpineTwist"].rotation_euler) == pytest.approx((0, 0.3, 0))
    assert target.pose.bones["SpineTwist"].rotation_mode == "XYZ"
    got = blender_heads(target, bvh.names, range(1, 51))
    assert np.abs(got - expected_heads(bvh)).max() <= 1e-4 * size_of(bvh)


def test_import_onto_armature_missing_bones_is_refused():
    fx.reset()
    bvh = make_bvh("mixed", n_frames=10, seed=1)
    target = make_target(bvh, extra=False)
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("LeftThumb", "Head"):
        target.data.edit_bones.remove(target.data.edit_bones[name])
    bpy.ops.object.mode_set(mode="OBJECT")
    before = datablocks()
    with pytest.raises(InputError, match=r"no bone for 2 of the 16 BVH joints: 'Head', 'LeftThumb'"):
        bvh_io.import_bvh(bvh, target=target)
    assert datablocks() == before and target.animation_data is None


def test_import_operator_onto_active_armature(tmp_path):
    fx.reset()
    bvh = make_bvh("6ch", n_frames=30, fps=24, seed=8)
    path = write_bvh(tmp_path, bvh)
    target = make_target(bvh, seed=1, extra=False)
    fps = bpy.context.scene.render.fps
    assert bpy.ops.sparse_motion.import_bvh(filepath=path, target="ACTIVE", set_fps=False,
                                            set_frame_range=False, ground=False) == {"FINISHED"}
    assert bpy.context.scene.render.fps == fps
    assert len(bpy.data.armatures) == 1
    got = blender_heads(target, bvh.names, range(1, 31))
    assert np.abs(got - expected_heads(bvh)).max() <= 1e-4 * size_of(bvh)
    # a mesh as the active object is refused
    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RuntimeError, match="Select the armature to import onto"):
        bpy.ops.sparse_motion.import_bvh(filepath=path, target="ACTIVE")


def test_import_is_one_undo_step(tmp_path):
    fx.reset()
    path = write_bvh(tmp_path, make_bvh("mixed", n_frames=20, fps=50))
    before = datablocks(), bpy.context.scene.render.fps
    # after a factory reset the undo stack is empty: two steps, so 'undo' has one to go back to
    bpy.ops.ed.undo_push(message="start")
    bpy.ops.ed.undo_push(message="before import")
    assert bpy.ops.sparse_motion.import_bvh(filepath=path) == {"FINISHED"}
    assert (datablocks(), bpy.context.scene.render.fps) != before
    bpy.ops.ed.undo()  # a single step takes back the armature, the action and the fps
    assert (datablocks(), bpy.context.scene.render.fps) == before


def test_long_joint_names_are_shortened_by_blender_but_still_keyed():
    fx.reset()
    bvh = make_bvh("mixed", n_frames=20, seed=2)
    for j, joint in enumerate(bvh.joints):
        joint.name = "mixamorig_" + "x" * 60 + f"_{j:02d}"  # > 63 bytes: Blender truncates
    obj = bvh_io.import_bvh(bvh)
    names = [b.name for b in obj.data.bones]
    assert len(set(names)) == bvh.num_joints and all(len(n) <= 63 for n in names)
    assert {fc.data_path.split('"')[1] for fc in actions.channels_for(obj).fcurves} == set(names)
    got = blender_heads(obj, names, range(1, 21))
    assert np.abs(got - expected_heads(bvh)).max() <= 1e-4 * size_of(bvh)


# ---- reduce on import ----------------------------------------------------------------------


def test_reduce_on_import_keeps_the_error_bound(tmp_path):
    fx.reset()
    bvh = make_bvh("mixed", n_frames=150, fps=30, seed=21)
    path = write_bvh(tmp_path, bvh)
    assert bpy.ops.sparse_motion.import_bvh(filepath=path, reduce=True, mode="ERROR",
                                            max_error=0.5, ground=False) == {"FINISHED"}
    obj = bpy.context.active_object
    keys = n_keys(obj)
    assert max(keys.values()) < 150 / 2
    got = blender_heads(obj, bvh.names, range(1, 151))
    err_cm = 100.0 * np.linalg.norm(got - expected_heads(bvh), axis=-1).max()
    assert err_cm <= 0.5 + 1e-3


def test_reduce_on_a_still_pose_keeps_the_dense_keys_with_a_warning():
    fx.reset()
    bvh = make_bvh("mixed", n_frames=2, seed=1)
    res = bvh_io.import_bvh_result(bvh, reduce=ReduceSettings(mode="RATIO", ratio=0.1))
    assert res.reduce_result is None
    assert any(w.startswith("Keys not reduced") for w in res.warnings)
    assert set(n_keys(res.obj).values()) == {2}


# ---- export --------------------------------------------------------------------------------


def fk_by_name(bvh):
    pos = bvh_forward_kinematics(bvh)
    return {n: pos[:, j] for j, n in enumerate(bvh.names)}


@pytest.mark.parametrize("order", ["ZXY", "XYZ"])
def test_export_round_trip_dense(tmp_path, order):
    fx.reset()
    bvh = make_bvh("mixed", n_frames=60, fps=60, seed=31)
    obj = bvh_io.import_bvh(bvh, name="Take")
    out = tmp_path / "out.bvh"
    result = bvh_io.export_bvh(obj, str(out), rotation_order=order)
    assert (result.frame_start, result.frame_end, result.frames) == (1, 60, 60)
    back = bvh_mod.read(str(out))
    assert back.names == bvh.names
    assert back.num_frames == 60 and back.frame_time == pytest.approx(1 / 60)
    assert back.joints[0].channels == ["Xposition", "Yposition", "Zposition"] + [
        a + "rotation" for a in order]
    assert all(len(j.channels) == 3 for j in back.joints[1:])
    np.testing.assert_allclose(back.offsets, bvh.offsets, atol=1e-4)
    a, b = fk_by_name(bvh), fk_by_name(back)
    size = size_of(bvh, 1.0)
    for name in bvh.names:
        assert np.abs(a[name] - b[name]).max() <= 1e-4 * size, name


def test_export_round_trip_with_moving_child_positions(tmp_path):
    fx.reset()
    bvh = make_bvh("6ch", n_frames=40, fps=30, seed=32)
    obj = bvh_io.import_bvh(bvh)
    out = tmp_path / "out.bvh"
    bvh_io.export_bvh(obj, str(out), frame_start=5, frame_end=30)
    back = bvh_mod.read(str(out))
    assert back.num_frames == 26
    # joints whose positions move get position channels back
    assert all(len(j.channels) == 6 for j in back.joints)
    a, b = fk_by_name(bvh), fk_by_name(back)
    for name in bvh.names:
        assert np.abs(a[name][4:30] - b[name]).max() <= 1e-4 * size_of(bvh, 1.0), name


def test_export_after_reduction_stays_within_the_bound(tmp_path):
    fx.reset()
    bvh = make_bvh("mixed", n_frames=120, fps=30, seed=33)
    obj = bvh_io.import_bvh(bvh, reduce=ReduceSettings(mode="ERROR", max_error_cm=0.5))
    assert max(n_keys(obj).values()) < 60  # sparse Bezier keys now
    out = tmp_path / "sparse.bvh"
    bvh_io.export_bvh(obj, str(out))
    back = bvh_mod.read(str(out))
    assert back.num_frames == 120
    a, b = fk_by_name(bvh), fk_by_name(back)
    err = max(np.linalg.norm(a[n] - b[n], axis=-1).max() for n in bvh.names)
    assert err <= 0.5 + 1e-3  # cm: the BVH is in centimetres


def exported_positions_equal_blender(obj, path, frames, scale=100.0):
    """FK of the exported file equals Blender's world heads (Y up, scaled)."""
    back = bvh_mod.read(path)
    pos = bvh_forward_kinematics(back)
    got = blender_heads(obj, [b.name for b in obj.data.bones], frames)
    want = {b.name: scale * got[:, i] @ C for i, b in enumerate(obj.data.bones)}
    size = max(float(np.ptp(pos.reshape(-1, 3), axis=0).max()), 1e-9)
    for j, name in enumerate(back.names):
        assert np.abs(pos[:, j] - want[name]).max() <= 1e-4 * size, name
    return back


def test_export_of_a_hand_made_rig_with_rolls_and_connected_bones(tmp_path):
    fx.reset()
    obj = fx.make_armature(n_bones=7)  # rolls, connected bones, sign-flipping quaternions
    fx.key_armature(obj, n_frames=40)
    out = str(tmp_path / "rig.bvh")
    bvh_io.export_bvh(obj, out)
    back = exported_positions_equal_blender(obj, out, range(1, 41))
    assert back.num_joints == 7 and back.joints[0].name == "bone0"
    leaves = [j for j in back.joints if j.end_site is not None]
    assert len(leaves) == 4  # binary tree of 7 bones


def test_export_includes_the_object_transform(tmp_path):
    fx.reset()
    bvh = make_bvh("mixed", n_frames=20, seed=35)
    obj = bvh_io.import_bvh(bvh)
    obj.location = (1.0, -2.0, 0.5)
    obj.rotation_euler = (0.2, -0.1, 1.3)
    obj.scale = (1.5, 1.5, 1.5)
    out = str(tmp_path / "moved.bvh")
    bvh_io.export_bvh(obj, out)
    exported_positions_equal_blender(obj, out, range(1, 21))


def test_export_operator(tmp_path):
    fx.reset()
    bvh = make_bvh("mixed", n_frames=30, fps=30, seed=34)
    bvh_io.import_bvh(bvh)
    out = tmp_path / "op.bvh"
    assert bpy.ops.sparse_motion.export_bvh(filepath=str(out), frame_range="CUSTOM",
                                            frame_start=3, frame_end=12,
                                            rotation_order="YXZ") == {"FINISHED"}
    back = bvh_mod.read(str(out))
    assert back.num_frames == 10 and back.joints[1].channels == ["Yrotation", "Xrotation", "Zrotation"]
    a, b = fk_by_name(bvh), fk_by_name(back)
    for name in bvh.names:
        assert np.abs(a[name][2:12] - b[name]).max() <= 1e-4 * size_of(bvh, 1.0), name


# ---- bad input: a clear report, nothing changed -------------------------------------------


def corrupt_texts():
    good = bvh_mod.dumps(make_bvh("mixed", n_frames=5))
    lines = good.split("\n")
    motion_at = lines.index("MOTION")
    bad_number = list(lines)
    row = bad_number[motion_at + 4].split()
    row[3] = "1.2.3"
    bad_number[motion_at + 4] = " ".join(row)
    missing_brace = [ln for i, ln in enumerate(lines) if not (i == 2 and ln.strip() == "{")]
    short_row = list(lines)
    short_row[motion_at + 3] = " ".join(short_row[motion_at + 3].split()[:-1])
    return {
        "bad number": ("\n".join(bad_number), f"line {motion_at + 5}"),
        "short row": ("\n".join(short_row), f"line {motion_at + 4}"),
        "hierarchy": ("\n".join(missing_brace), "line 3"),
    }


@pytest.mark.parametrize("case", ["bad number", "short row", "hierarchy"])
def test_corrupt_bvh_reports_the_line_and_changes_nothing(tmp_path, case):
    fx.reset()
    target = make_target(make_bvh("mixed", n_frames=5), extra=False)
    text, line = corrupt_texts()[case]
    path = tmp_path / "broken.bvh"
    path.write_text(text)
    before = datablocks()
    fps = bpy.context.scene.render.fps
    for kind in ("NEW", "ACTIVE"):
        with pytest.raises(RuntimeError, match=f"'broken.bvh' is not a valid BVH file: {line}:"):
            bpy.ops.sparse_motion.import_bvh(filepath=str(path), target=kind, reduce=True)
    assert datablocks() == before
    assert target.animation_data is None and bpy.context.scene.render.fps == fps


def test_missing_file():
    fx.reset()
    with pytest.raises(RuntimeError, match="Cannot read 'nope.bvh'"):
        bpy.ops.sparse_motion.import_bvh(filepath="/nonexistent/nope.bvh")
    assert datablocks() == ([], [], [])


def test_failure_after_creating_the_armature_leaves_nothing(monkeypatch):
    fx.reset()

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(bvh_io.fcurve_io, "write_dense", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        bvh_io.import_bvh(make_bvh("mixed", n_frames=10))
    assert datablocks() == ([], [], [])


def test_export_refuses_non_armatures_and_missing_actions(tmp_path):
    fx.reset()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    out = tmp_path / "x.bvh"
    with pytest.raises(InputError, match="'Cube' is not an armature"):
        bvh_io.export_bvh(cube, str(out))
    with pytest.raises(RuntimeError, match="Select an armature to export"):
        bpy.ops.sparse_motion.export_bvh(filepath=str(out))
    rig = fx.make_armature()
    with pytest.raises(InputError, match="'Rig' has no action to export"):
        bvh_io.export_bvh(rig, str(out))
    with pytest.raises(RuntimeError, match="'Rig' has no action to export"):
        bpy.ops.sparse_motion.export_bvh(filepath=str(out))
    assert not out.exists()
