# SPDX-License-Identifier: GPL-3.0-or-later
"""Variations ↔ Blender (blender/variations_io.py) on a rig that is not the canonical skeleton:
reading the reference, writing variations as sparse actions, all or nothing. 4.5, 5.0, 4.2."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import variation_rig as vr  # noqa: E402
from sparse_motion.blender import actions, fcurve_io  # noqa: E402
from sparse_motion.blender import variations_io as vio  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.keyframes.rig import ChannelMap, bone_data_path, parse_data_path  # noqa: E402

N = 120  # 4 s at 30 fps, frames 1..120


@pytest.fixture
def rig():
    fx.reset()
    obj = vr.make_rig()
    obj.pose.bones["R_foot"].rotation_mode = "AXIS_ANGLE"  # every rotation kind on one rig
    vr.animate(obj)
    return obj


def fk_points(obj, action, first, last):
    """Joint positions (cm) the action gives, by the keyframe engine's FK (as reduce.py)."""
    curves = list(actions.channels_for(obj, action).fcurves)
    cmap = ChannelMap(fcurve_io.rig_from_object(obj),
                      [(fc.data_path, fc.array_index) for fc in curves])
    return cmap.points(fcurve_io.sample(curves, first, last))


def test_read_reference_groups_the_rig(rig):
    snap = fx.snapshot()
    ref = vio.read_reference(rig)
    assert fx.snapshot() == snap  # reading changes nothing
    assert ref.obj == rig and ref.action == rig.animation_data.action
    assert ref.channels.action == ref.action and ref.slot == ref.channels.slot
    assert ref.root == "pelvis_ctrl"
    assert ref.fps == 30.0
    np.testing.assert_array_equal(ref.frames, np.arange(1, N + 1))
    groups = ref.layout.groups
    rotations = {g.name: (g.kind, g.order) for g in groups if g.kind != "root" and g.kind != "scalar"}
    assert len(rotations) == len(vr.BONES) == 14
    for name, *_rest, mode in vr.BONES:
        if name == "R_foot":
            assert rotations[name][0] == "axis_angle"
        elif mode == "QUATERNION":
            assert rotations[name][0] == "quat"
        else:
            assert rotations[name] == ("euler", mode)
    (root,) = [g for g in groups if g.kind == "root"]
    assert root.name == "pelvis_ctrl" and groups[root.rotation].name == "pelvis_ctrl"
    rest = np.array(rig.data.bones["pelvis_ctrl"].matrix_local)[:3, :3]
    np.testing.assert_allclose(np.array(root.rest).reshape(3, 3), rest, atol=1e-6)
    assert root.up == 2
    assert [ref.keys[c] for c in root.columns] == [
        (bone_data_path("pelvis_ctrl", "location"), i) for i in range(3)]
    # neck scale: Y moves (scalar), X and Z never do (constants)
    scalars = [ref.keys[g.columns[0]] for g in groups if g.kind == "scalar"]
    assert scalars == [(bone_data_path("neck_x", "scale"), 1)]
    assert sorted((p, i, v, g) for p, i, v, g in ref.constant) == [
        (bone_data_path("neck_x", "scale"), i, pytest.approx(1.0), "neck_x") for i in (0, 2)]
    # one column per curve, sampled exactly; groups named after the bones
    assert not any(ref.missing)
    assert ref.values.shape == (N, ref.layout.n_columns) == (N, len(ref.keys))
    curves = {(fc.data_path, fc.array_index): fc for fc in ref.channels.fcurves}
    assert len(curves) == len(ref.keys) + len(ref.constant)
    for c, key in enumerate(ref.keys):
        np.testing.assert_allclose(ref.values[:, c], fcurve_io.key_values(curves[key]), atol=1e-7)
        assert ref.curve_groups[c] == parse_data_path(key[0])[0]
    assert len(ref.content_hash) == 64
    assert vio.read_reference(rig).content_hash == ref.content_hash


def test_content_hash_follows_values_and_fps(rig):
    ref = vio.read_reference(rig)
    bpy.context.scene.render.fps = 25
    assert vio.read_reference(rig).content_hash != ref.content_hash
    bpy.context.scene.render.fps = 30
    fc = ref.channels.find(bone_data_path("L_shin", "rotation_euler"), 0)
    fc.keyframe_points[10].co.y += 0.01
    fc.update()
    assert vio.read_reference(rig).content_hash != ref.content_hash


def test_round_trip_writes_sparse_actions_that_match_the_reference(rig):
    ref = vio.read_reference(rig)
    enc = ref.layout.encode(ref.values)
    dec = ref.layout.decode(enc.features, enc.start)
    np.testing.assert_allclose(dec, ref.values, atol=1e-4)  # same curves, not only same pose
    before = len(bpy.data.actions)
    dense = fk_points(rig, ref.action, 1, N)
    blender_dense = fx.world_points(rig, range(1, N + 1, 7))
    results, notes = [], []
    made = vio.write_variations(ref, [dec], ["Walk var"], meta={"seed": 3, "model": "test"},
                                warnings=notes, reduce_results=results)
    assert len(made) == 1 and len(bpy.data.actions) == before + 1
    (action,) = made
    assert rig.animation_data.action == action
    assert ref.action.use_fake_user  # the reference lost its only user: kept
    assert any(ref.action.name in n for n in notes)
    assert dict(action["sparse_motion"]) == {"seed": 3, "model": "test"}
    # the keyframe engine's error bound (1 cm by default) as FK and as Blender evaluate it
    err = np.linalg.norm(fk_points(rig, action, 1, N) - dense, axis=-1)
    assert err.max() < 1.5, err.max()
    assert results[0] is not None and results[0].max_cm <= 1.0 + 1e-6
    got = fx.world_points(rig, range(1, N + 1, 7))
    assert np.linalg.norm(got - blender_dense, axis=-1).max() < 1.5
    # sparse, synchronised Bezier keys, every curve of the reference, in the bones' groups
    chans = actions.channels_for(rig, action)
    curves = list(chans.fcurves)
    assert {(fc.data_path, fc.array_index) for fc in curves} == \
        {(fc.data_path, fc.array_index) for fc in ref.channels.fcurves}
    key_sets = set()
    for fc in curves:
        frames = fcurve_io.key_frames(fc)
        assert frames[0] == 1 and frames[-1] == N
        if len(frames) > 2:
            key_sets.add(tuple(frames))
        assert {k.interpolation for k in fc.keyframe_points} == {"BEZIER"}
        assert fc.group is not None and fc.group.name == parse_data_path(fc.data_path)[0]
    (keys,) = key_sets
    assert len(keys) < N / 2


def test_several_variations_last_plays_earlier_kept(rig):
    ref = vio.read_reference(rig)
    enc = ref.layout.encode(ref.values)
    short = ref.layout.decode(enc.features[20:100], enc.start)
    full = ref.layout.decode(enc.features, enc.start)
    made = vio.write_variations(ref, [short, full], ["A", "B"], frame_start=101,
                                reduce=ReduceSettings(mode="RATIO", ratio=0.2),
                                meta=[{"variation": 0}, {"variation": 1}])
    assert [a.name for a in made] == ["A", "B"]
    assert rig.animation_data.action == made[1]
    assert made[0].use_fake_user and not made[1].use_fake_user
    for i, (action, n) in enumerate(zip(made, (80, N))):
        assert action["sparse_motion"]["variation"] == i
        chans = actions.channels_for(rig, action)
        fc = chans.find(bone_data_path("L_thigh", "rotation_euler"), 0)
        frames = fcurve_io.key_frames(fc)
        assert frames[0] == 101 and frames[-1] == 100 + n
        assert len(frames) == round(0.2 * n)
    # the short one starts where the reference starts (its root at the reference's frame 0)
    root = next(g for g in ref.layout.groups if g.kind == "root")
    np.testing.assert_allclose(short[0, list(root.columns)][:2], ref.values[0, list(root.columns)][:2],
                               atol=0.2)


def test_no_reduction_keeps_one_key_per_frame(rig):
    ref = vio.read_reference(rig)
    (action,) = vio.write_variations(ref, [ref.values], ["Dense"], reduce=None)
    fc = actions.channels_for(rig, action).find(bone_data_path("spine_a", "rotation_quaternion"), 0)
    assert len(fc.keyframe_points) == N
    assert "sparse_motion" not in action


def test_missing_components_come_from_the_pose_and_are_written(rig):
    chans = actions.channels_for(rig)
    shin = bone_data_path("L_shin", "rotation_euler")
    loc = bone_data_path("pelvis_ctrl", "location")
    for path, i in ((shin, 1), (shin, 2), (loc, 2)):
        chans.remove_fcurve(chans.find(path, i))
    rig.pose.bones["L_shin"].rotation_euler[1] = 0.2
    rig.pose.bones["L_shin"].rotation_euler[2] = -0.1
    rig.pose.bones["pelvis_ctrl"].location[2] = 0.05
    ref = vio.read_reference(rig)
    missing = [k for k, m in zip(ref.keys, ref.missing) if m]
    assert sorted(missing) == sorted([(shin, 1), (shin, 2), (loc, 2)])
    for key, value in (((shin, 1), 0.2), ((shin, 2), -0.1), ((loc, 2), 0.05)):
        np.testing.assert_allclose(ref.values[:, ref.keys.index(key)], value, atol=1e-6)
    kinds = {g.name: g.kind for g in ref.layout.groups}
    assert kinds["L_shin"] == "euler" and ref.root == "pelvis_ctrl"
    (action,) = vio.write_variations(ref, [ref.values], ["Filled"])
    new = actions.channels_for(rig, action)
    for path, i in missing:
        fc = new.find(path, i)
        assert fc is not None and fc.group.name == parse_data_path(path)[0]


def test_curves_in_another_rotation_mode(rig):
    rig.pose.bones["L_thigh"].rotation_mode = "QUATERNION"  # keyed with XYZ Euler curves
    chans = actions.channels_for(rig)
    path = bone_data_path("L_foot", "rotation_quaternion")  # ZXY bone: these do not move it
    for i in range(4):
        fcurve_io.write_dense(chans.new_fcurve(path, i, "L_foot"), np.array([1.0, N]),
                              np.array([1.0, 0.9]) if i == 0 else np.array([0.0, 0.1]))
    ref = vio.read_reference(rig)
    groups = {g.name: g for g in ref.layout.groups}
    assert (groups["L_thigh"].kind, groups["L_thigh"].order) == ("euler", "XYZ")
    assert (groups["L_foot"].kind, groups["L_foot"].order) == ("euler", "ZXY")
    assert sorted((p, i) for p, i, _v, _g in ref.constant if p == path) == [(path, i) for i in range(4)]
    assert any("L_thigh" in w for w in ref.warnings) and any("L_foot" in w for w in ref.warnings)


def test_object_transforms_and_custom_properties_are_scalars(rig):
    rig["sway"] = 0.0
    chans = actions.channels_for(rig)
    frames = np.arange(1.0, N + 1)
    fcurve_io.write_dense(chans.new_fcurve('["sway"]', 0), frames, np.sin(frames / 9))
    fcurve_io.write_dense(chans.new_fcurve("location", 2, "Object Transforms"), frames,
                          0.01 * frames)
    fcurve_io.write_dense(chans.new_fcurve("rotation_euler", 2, "Object Transforms"), frames,
                          0.4 + 0.002 * frames)
    ref = vio.read_reference(rig)
    groups = {g.name: g for g in ref.layout.groups}
    assert groups['["sway"][0]'].kind == "scalar" and groups["location[2]"].kind == "scalar"
    obj_rot = groups[rig.name]
    assert (obj_rot.kind, obj_rot.order) == ("euler", "XYZ")
    assert [ref.keys[c] for c in obj_rot.columns] == [("rotation_euler", i) for i in range(3)]
    assert [ref.missing[c] for c in obj_rot.columns] == [True, True, False]
    enc = ref.layout.encode(ref.values)
    (action,) = vio.write_variations(ref, [ref.layout.decode(enc.features, enc.start)], ["Obj"])
    new = actions.channels_for(rig, action)
    sway = new.find('["sway"]', 0)
    np.testing.assert_allclose([sway.evaluate(f) for f in (1, 50, N)],
                               np.sin(np.array([1, 50, N]) / 9), atol=0.05)
    assert new.find("location", 2).group.name == "Object Transforms"
    assert new.find("rotation_euler", 0).group.name == "Object Transforms"


def test_linked_reference_can_be_read_and_varied(rig, tmp_path):
    action = rig.animation_data.action
    lib = str(tmp_path / "lib.blend")
    bpy.data.libraries.write(lib, {action}, fake_user=True)
    name = action.name
    bpy.data.actions.remove(action)
    with bpy.data.libraries.load(lib, link=True) as (_src, dst):
        dst.actions = [name]
    linked = bpy.data.actions[name, lib] if (name, lib) in bpy.data.actions else dst.actions[0]
    assert linked.library is not None
    actions.play(rig, linked)
    ref = vio.read_reference(rig)
    assert ref.action == linked
    (made,) = vio.write_variations(ref, [ref.values], ["FromLinked"])
    assert made.library is None and rig.animation_data.action == made


def _only_location(obj):
    _action, chans = actions.new_action_for(obj, "Slide")
    for i in range(3):
        fc = chans.new_fcurve(bone_data_path("pelvis_ctrl", "location"), i, "pelvis_ctrl")
        fcurve_io.write_dense(fc, np.arange(1.0, 31.0), np.linspace(0, 1, 30))
    actions.assign(obj, chans)


def _still(obj):
    _action, chans = actions.new_action_for(obj, "Still")
    for i in range(4):
        fc = chans.new_fcurve(bone_data_path("spine_a", "rotation_quaternion"), i, "spine_a")
        fcurve_io.write_dense(fc, np.arange(1.0, 31.0), np.full(30, 1.0 if i == 0 else 0.0))
    actions.assign(obj, chans)


@pytest.mark.parametrize("case, match", [
    ("none", "No object"),
    ("mesh", "'Box' is not an armature"),
    ("no_action", "has no action"),
    ("only_location", "no bone rotation curves"),
    ("still", "does not move"),
    ("short", "at least 8 frames"),
])
def test_bad_inputs_raise_and_change_nothing(case, match):
    fx.reset()
    obj = vr.make_rig()
    if case == "none":
        obj = None
    elif case == "mesh":
        obj = bpy.data.objects.new("Box", bpy.data.meshes.new("Box"))
        bpy.context.scene.collection.objects.link(obj)
    elif case == "only_location":
        _only_location(obj)
    elif case == "still":
        _still(obj)
    elif case == "short":
        vr.animate(obj, seconds=0.2)
    snap, count = fx.snapshot(), len(bpy.data.actions)
    with pytest.raises(InputError, match=match):
        vio.read_reference(obj)
    assert fx.snapshot() == snap and len(bpy.data.actions) == count


def test_bad_values_write_nothing(rig):
    ref = vio.read_reference(rig)
    snap, count = fx.snapshot(), len(bpy.data.actions)
    bad_nan = ref.values.copy()
    bad_nan[5, 3] = np.nan
    for values, names, match in [
        ([ref.values, ref.values[:, :-1]], ["A", "B"], "shape"),
        ([ref.values[:1]], ["A"], "shape"),
        ([bad_nan], ["A"], "invalid"),
        ([ref.values], ["A", "B"], "names"),
        ([], [], "No variations"),
    ]:
        with pytest.raises(InputError, match=match):
            vio.write_variations(ref, values, names)
    assert fx.snapshot() == snap and len(bpy.data.actions) == count


def test_failure_while_writing_rolls_everything_back(rig, monkeypatch):
    ref = vio.read_reference(rig)
    slot = actions.assigned_slot(rig)
    snap, count = fx.snapshot(), len(bpy.data.actions)
    calls = []
    real = vio.reduce_or_warn

    def fail_on_second(obj, settings, warnings):
        calls.append(obj)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(obj, settings, warnings)

    monkeypatch.setattr(vio, "reduce_or_warn", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        vio.write_variations(ref, [ref.values, ref.values, ref.values], ["A", "B", "C"])
    assert len(calls) == 2
    assert len(bpy.data.actions) == count and fx.snapshot() == snap
    assert rig.animation_data.action == ref.action and not ref.action.use_fake_user
    assert actions.assigned_slot(rig) == slot
