# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill Between on real Blender (the bpy wheel) with the shipped sMDM model: the canonical rig
Generate Motion makes and a Mixamo-like rig keyed on a few frames (some bones only), the
animator's keys bit-identical afterwards, Blender's evaluation exact at them, one undo step,
and bad input reported with nothing changed."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import test_retarget_core as core  # noqa: E402
from test_bl_retarget import build  # noqa: E402
from sparse_motion.blender import actions, bvh_io, fcurve_io  # noqa: E402
from sparse_motion.blender import fill  # noqa: E402
from sparse_motion.blender import retarget as bl_retarget  # noqa: E402
from sparse_motion.blender.generate import CANONICAL_RIG_TAG  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.motion import canonical as canon  # noqa: E402

KEYS = (1, 31, 61, 91)


@pytest.fixture(scope="module", autouse=True)
def addon():
    with fx.addon_registered():
        yield


def keys_of(obj, action=None):
    """Every key of the armature's action (or ``action``), every property: {(path, index):
    bytes per prop}."""
    out = {}
    for fc in actions.channels_for(obj, action).fcurves:
        keys = fcurve_io.read_keys(fc)
        out[(fc.data_path, fc.array_index)] = {p: np.asarray(v).copy() for p, v in keys.items()}
    return out


def user_keys_identical(before, after):
    """The animator's keys (every property) are still there, bit for bit."""
    for key, old in before.items():
        new = after[key]
        idx = np.searchsorted(new["co"][:, 0], old["co"][:, 0])
        for p, v in old.items():
            assert np.array_equal(new[p][idx], v), (key, p)


def canonical_rig(fps=30, frames=KEYS):
    fx.reset()
    scene = bpy.context.scene
    scene.render.fps = fps
    q, x = core.procedural_walk(seconds=3.0, fps=fps)
    res = bvh_io.import_bvh_result(canon.canonical_to_bvh(q, x, fps), scale=0.01,
                                   reduce=ReduceSettings(mode="KEYS", key_frames=tuple(
                                       float(f) for f in frames)),
                                   frame_start=1, name="Poses", set_fps=False)
    obj = res.obj
    obj.data[CANONICAL_RIG_TAG] = True
    key_whole_poses(obj, frames)
    bpy.context.view_layer.objects.active = obj
    return obj


def key_whole_poses(obj, frames):
    """Every curve keyed on ``frames`` (the animator keys whole poses; constant curves were
    written as two keys)."""
    for fc in actions.channels_for(obj).fcurves:
        have = set(np.round(fcurve_io.key_frames(fc)).astype(int).tolist())
        for f in sorted(set(frames) - have):
            fc.keyframe_points.insert(f, fc.evaluate(f))
        fc.update()


def world_heads(obj, frames):
    return fx.world_points(obj, frames)[:, 0::2]


def test_canonical_rig_passes_through_the_keys_exactly():
    obj = canonical_rig()
    before = keys_of(obj)
    at_keys = world_heads(obj, KEYS)
    assert bpy.ops.sparse_motion.fill_between(seed=1) == {"FINISHED"}
    after = keys_of(obj)
    user_keys_identical(before, after)
    frames = np.unique(np.concatenate([v["co"][:, 0] for v in after.values()]))
    assert len(frames) > 2 * len(KEYS)  # new keys between
    assert frames.min() == KEYS[0] and frames.max() == KEYS[-1]
    # Blender's own evaluation at the animator's frames: unchanged (≤ 0.1 cm)
    assert np.abs(world_heads(obj, KEYS) - at_keys).max() <= 0.1
    # the motion between the keys moves, without jumps
    dense = world_heads(obj, range(KEYS[0], KEYS[-1] + 1))
    step = np.linalg.norm(np.diff(dense, axis=0), axis=-1).max()
    assert step < 30.0  # cm per frame at 30 fps: no jump


def test_undo_restores_exactly_and_one_step():
    obj = canonical_rig()
    bpy.ops.ed.undo_push(message="start")
    snap = fx.snapshot()
    bpy.ops.ed.undo_push(message="before fill")
    assert bpy.ops.sparse_motion.fill_between(seed=2) == {"FINISHED"}
    assert fx.snapshot() != snap
    bpy.ops.ed.undo_push(message="Fill Between")
    bpy.ops.ed.undo()
    assert fx.snapshot() == snap


@pytest.mark.parametrize("key", ["mixamo", "rigify", "mixamo-euler"])
def test_own_rig_with_only_some_bones_keyed(key):
    fx.reset()
    bpy.context.scene.render.fps = 30
    spec = core.RIGS[key.split("-")[0]]()
    obj = build(spec)
    if key.endswith("euler"):
        for pb in obj.pose.bones:
            pb.rotation_mode = "YXZ"
    q, x = core.procedural_walk(seconds=3.0, fps=30)
    bl_retarget.retarget_motion_result(q, x, 30, obj, reduce=ReduceSettings(
        mode="KEYS", key_frames=tuple(float(f) for f in KEYS)), resample=False)
    key_whole_poses(obj, KEYS)
    chans = actions.channels_for(obj)
    arm = spec.expect["LowerArm_L"]
    hand = spec.expect["Hand_L"]
    for fc in list(chans.fcurves):  # the animator keyed the legs and body, not the left arm
        if f'"{arm}"' in fc.data_path:
            chans.remove_fcurve(fc)
    bpy.context.view_layer.objects.active = obj
    before = keys_of(obj)
    at_keys = world_heads(obj, KEYS)
    res = fill.fill_between(fill.FillRequest(obj=obj, seed=0))
    after = keys_of(obj)
    user_keys_identical(before, after)
    assert any(f'"{arm}"' in k[0] for k in after)  # the unkeyed bone is filled too
    bones = [pb.name for pb in obj.pose.bones]
    keyed = {k[0].split('"')[1] for k in before if k[0].startswith("pose.bones")}
    keep = [i for i, b in enumerate(bones) if b in keyed and b not in (arm, hand)]
    got = world_heads(obj, KEYS)
    assert np.abs(got[:, keep] - at_keys[:, keep]).max() <= 0.1
    assert res.new_keys > 0 and "Filled frames 1–91" in res.message()
    dense = world_heads(obj, range(KEYS[0], KEYS[-1] + 1))
    assert np.linalg.norm(np.diff(dense, axis=0), axis=-1).max() < 30.0  # no jump (cm/frame)


def test_bad_input_changes_nothing():
    obj = canonical_rig()
    for fc in actions.channels_for(obj).fcurves:  # keys on frame 1 only
        while len(fc.keyframe_points) > 1:
            fc.keyframe_points.remove(fc.keyframe_points[-1])
    snap = fx.snapshot()
    with pytest.raises(InputError, match="on frame 1"):
        fill.fill_between(fill.FillRequest(obj=obj))
    assert fx.snapshot() == snap
    # no keys in the range
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 40, 60
    obj2 = canonical_rig()
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 40, 60
    snap = fx.snapshot()
    with pytest.raises(InputError, match="No keys between frames 40 and 60"):
        fill.fill_between(fill.FillRequest(obj=obj2, frame_range="SCENE"))
    assert fx.snapshot() == snap
    # not an armature, and the operator says so
    mesh = bpy.data.objects.new("Empty", None)
    bpy.context.scene.collection.objects.link(mesh)
    bpy.context.view_layer.objects.active = mesh
    snap = fx.snapshot()
    assert fill.fill_problem(mesh) == "'Empty' is not an armature: select an armature with keys"
    assert not bpy.ops.sparse_motion.fill_between.poll()
    with pytest.raises(InputError, match="not an armature"):
        fill.fill_between(fill.FillRequest(obj=mesh))
    assert fx.snapshot() == snap


def test_linked_action_is_refused(tmp_path):
    obj = canonical_rig()
    lib = tmp_path / "lib.blend"
    bpy.data.libraries.write(str(lib), {obj.animation_data.action})
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.actions = ["Poses"]
    linked = next(a for a in bpy.data.actions if a.library is not None)
    obj.animation_data.action = linked
    snap = fx.snapshot()
    with pytest.raises(InputError, match="linked from a library"):
        fill.fill_between(fill.FillRequest(obj=obj))
    assert fx.snapshot() == snap


def test_teleport_warns_and_still_fills():
    obj = canonical_rig()
    chans = actions.channels_for(obj)
    fc = chans.find('pose.bones["Hips"].location', 0)
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    co[-1] += 30.0  # the last key 30 m to the side
    fc.keyframe_points.foreach_set("co", co)
    fc.update()
    res = fill.fill_between(fill.FillRequest(obj=obj))
    assert any("teleport" in w for w in res.warnings) and res.new_keys > 0


def test_panel_and_cancel_change_nothing():
    from sparse_motion.operators.jobs import Job
    from sparse_motion.panels.motion_panel import SPARSEMOTION_PT_fill

    obj = canonical_rig()
    drawn = fx.draw_panel(SPARSEMOTION_PT_fill)
    assert ("operator", "sparse_motion.fill_between") in drawn
    assert ("prop", "fill_bones") in drawn and ("prop", "fill_prompt") in drawn
    snap = fx.snapshot()
    plan = fill.prepare(fill.FillRequest(obj=obj, prompt="a person walks"))
    job = Job(lambda progress, cancel: fill.sample(plan, progress, cancel))
    job.cancel()
    job.start().wait(60)
    assert job.cancelled and job.generation is None
    assert fx.snapshot() == snap
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = None
    labels = [v for k, v in fx.draw_panel(SPARSEMOTION_PT_fill) if k == "label"]
    assert "Select an armature with keys to fill between" in labels


def test_scene_range_fills_inside_it_only():
    obj = canonical_rig()
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 20, 80
    before = keys_of(obj)
    at = world_heads(obj, [20, 31, 61, 80])
    res = fill.fill_between(fill.FillRequest(obj=obj, frame_range="SCENE", seed=4))
    after = keys_of(obj)
    user_keys_identical(before, after)
    new = np.setdiff1d(np.unique(np.concatenate([v["co"][:, 0] for v in after.values()])),
                       np.unique(np.concatenate([v["co"][:, 0] for v in before.values()])))
    assert len(new) and new.min() >= 20 and new.max() <= 80
    assert np.abs(world_heads(obj, [20, 31, 61, 80]) - at).max() <= 0.1  # joins what plays
    assert res.first == 20 and res.last == 80


def test_several_results_go_into_copies_of_the_action():
    """Results = 3: the first fill in the action, the other two in copies of the action as it
    was (new actions with a fake user, not assigned), each with the animator's keys
    bit-identical and a different fill; out-of-range results are refused with nothing
    changed."""
    obj = canonical_rig()
    action = obj.animation_data.action
    before = keys_of(obj)
    n_actions = len(bpy.data.actions)
    with pytest.raises(InputError, match="Results must be between 1 and 8"):
        fill.fill_between(fill.FillRequest(obj=obj, results=9))
    assert len(bpy.data.actions) == n_actions
    user_keys_identical(before, keys_of(obj))
    assert all(len(keys_of(obj)[k]["co"]) == len(before[k]["co"]) for k in before)
    res = fill.fill_between(fill.FillRequest(obj=obj, seed=3, results=3))
    assert obj.animation_data.action == action           # still plays the filled action
    assert [a.name for a in res.alternatives] == [f"{action.name} fill 2",
                                                  f"{action.name} fill 3"]
    assert len(bpy.data.actions) == n_actions + 2
    assert "2 more results as new actions" in res.message()
    fills = [keys_of(obj)]
    for alt in res.alternatives:
        assert alt.use_fake_user and alt.users == 1      # only the fake user: not assigned
        fills.append(keys_of(obj, alt))
    for keys in fills:
        user_keys_identical(before, keys)
        assert sum(len(v["co"]) for v in keys.values()) > sum(
            len(v["co"]) for v in before.values())       # filled: new keys between
    hips = ('pose.bones["Hips"].rotation_quaternion', 1)
    values = [np.asarray(k[hips]["co"]) for k in fills]
    assert not np.array_equal(values[0], values[1]) and not np.array_equal(values[1], values[2])
    # result 0 is the single fill of that seed (the batch may differ in the last digits)
    obj2 = canonical_rig()
    fill.fill_between(fill.FillRequest(obj=obj2, seed=3))
    single = np.asarray(keys_of(obj2)[hips]["co"])
    assert np.array_equal(single[:, 0], values[0][:, 0])
    np.testing.assert_allclose(single[:, 1], values[0][:, 1], atol=1e-3)


def test_results_through_the_operator():
    obj = canonical_rig()
    name = obj.animation_data.action.name
    assert bpy.ops.sparse_motion.fill_between(seed=1, results=2) == {"FINISHED"}
    alt = bpy.data.actions.get(f"{name} fill 2")
    assert alt is not None and alt.use_fake_user and obj.animation_data.action.name == name
