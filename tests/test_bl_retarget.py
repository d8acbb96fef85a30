# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting on real Blender (the bpy wheel): 4.5 LTS, 5.0 and 4.2.

Rigs of every supported convention are built by script (names, hierarchy, rolls, rest poses,
object transforms: see ``test_retarget_core.RIGS``), a procedural walk in canonical space is
retargeted onto them, and Blender's own evaluation (``scene.frame_set`` + pose bone heads in
world space) is compared with the source: joint positions relative to the hip centre, scaled
by the height ratio, within 2 % of the height; planted feet within 2 cm with foot pinning.
"""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import test_retarget_core as core  # noqa: E402
from sparse_motion.blender import actions, bvh_io  # noqa: E402
from sparse_motion.blender import retarget as bl_retarget  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.motion import canonical as canon  # noqa: E402
from sparse_motion.retarget import conventions as cv  # noqa: E402
from sparse_motion.retarget import mapping as rmap  # noqa: E402

RESULTS = {}  # rig → max error (% of height), printed at the end (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def addon():
    with fx.addon_registered():
        yield
    if RESULTS:
        print("\nretarget max error (% of height):",
              ", ".join(f"{k} {v:.3f}" for k, v in RESULTS.items()))


def build(spec, name=None):
    """The rig of ``spec`` as a Blender armature (edit bones with heads, tails, rolls)."""
    name = name or spec.key
    obj, data = fx.new_armature_in_edit_mode(name)
    heads, tails = spec.heads(), spec.tails()
    edit = {}
    for (bname, _p, _h, _t, roll, _c), head, tail in zip(spec.bones, heads, tails):
        eb = data.edit_bones.new(bname)
        eb.head, eb.tail, eb.roll = head.tolist(), tail.tolist(), np.radians(roll)
        edit[bname] = eb
    for bname, parent, _h, _t, _r, connect in spec.bones:
        if parent:
            eb = edit[bname]
            eb.parent = edit[parent]
            if connect and (eb.head - edit[parent].tail).length < 1e-6:
                eb.use_connect = True
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.rotation_euler = spec.obj_rotation
    obj.scale = (spec.obj_scale,) * 3
    for pb in obj.pose.bones:
        if pb.name.startswith(("upper_arm_parent", "thigh_parent")):
            pb["IK_FK"] = 0.0  # Rigify's switch, on IK
    for bone, target in spec.constraints.items():
        con = obj.pose.bones[bone].constraints.new("COPY_TRANSFORMS")
        con.target, con.subtarget = obj, target
    bpy.context.view_layer.update()
    return obj


def world_heads(obj, bones, frames):
    """Blender's evaluation: world positions (cm) of the heads of ``bones`` at ``frames``."""
    scene = bpy.context.scene
    out = np.empty((len(frames), len(bones), 3))
    for i, f in enumerate(frames):
        scene.frame_set(int(f))
        mw = obj.matrix_world
        for k, b in enumerate(bones):
            out[i, k] = tuple(mw @ obj.pose.bones[b].head)
    return out * 100.0


def source_at_scene_rate(q, x, fps=20):
    scene = bpy.context.scene
    return canon.resample(q, x, fps, scene.render.fps / scene.render.fps_base)


def check_positions(spec, obj, q, x, frame_start=1):
    """Max error (fraction of the height) of the placed joints relative to the hip centre,
    and of the hip centre's path."""
    q, x = source_at_scene_rate(q, x)
    pos = canon.canonical_forward_kinematics(q, x)  # cm, canonical axes
    I = cv.INDEX
    hc_s = 0.5 * (pos[:, I["UpperLeg_L"]] + pos[:, I["UpperLeg_R"]])
    placed = spec.placed()
    joints = list(placed)
    bones = [placed[j] for j in joints] + [spec.expect["UpperLeg_L"], spec.expect["UpperLeg_R"]]
    frames = frame_start + np.arange(len(q))
    got = world_heads(obj, bones, frames)
    hc_t = 0.5 * (got[:, -1] + got[:, -2])
    mw = np.array(obj.matrix_world)[:3, :3]
    carry = mw @ core.AXES[spec.axes] * spec.scale * 100.0  # canonical cm → world cm
    height = np.linalg.norm(carry @ (core.PTS["HeadTop"] - core.PTS["Ground"]))
    want = (pos[:, [I[j] for j in joints]] - hc_s[:, None]) @ carry.T
    err = np.linalg.norm(got[:, :len(joints)] - hc_t[:, None] - want, axis=-1).max()
    path = (hc_s - hc_s[0]) @ carry.T
    path_err = np.linalg.norm(hc_t - hc_t[0] - path, axis=-1).max()
    return err / height, path_err / height


def _heights(pos, up_index):
    """(…, 3) heights of the top joint, the hip centre and the lowest foot joint, from
    ``pos`` (…, 21, 3) of the canonical joints (NaN where unmapped)."""
    I = cv.INDEX
    top = next(j for j in ("Head", "Neck") if np.isfinite(pos[..., I[j], 0]).all())
    hc = 0.5 * (pos[..., I["UpperLeg_L"], up_index] + pos[..., I["UpperLeg_R"], up_index])
    feet = np.stack([pos[..., I[j], up_index] for j in ("Foot_L", "Foot_R", "Toes_L", "Toes_R")
                     if np.isfinite(pos[..., I[j], 0]).all()], axis=-1)
    return np.stack([pos[..., I[top], up_index], hc, feet.min(axis=-1)], axis=-1)


def mapped_world(obj, mapping, frames=None):
    """World positions (cm) of the heads of the mapped bones: ``(21, 3)`` in the rest pose
    (frames None) or ``(F, 21, 3)`` as Blender evaluates ``frames``; NaN rows unmapped."""
    joints = [j for j in cv.JOINTS if mapping.bones.get(j)]
    mw = obj.matrix_world
    if frames is None:
        got = np.array([tuple(mw @ obj.data.bones[mapping.bones[j]].head_local) for j in joints]) * 100
        out = np.full((21, 3), np.nan)
    else:
        got = world_heads(obj, [mapping.bones[j] for j in joints], frames)
        out = np.full((len(frames), 21, 3), np.nan)
    out[..., [cv.INDEX[j] for j in joints], :] = got
    return out


def upright_errors(obj, mapping, rig_ref, q, x, frame_start=1):
    """Blender's evaluation of the retargeted motion against the source, measured here (not
    by the code under test): ``(height error, floor error, frames not upright)``.

    rig_ref: world positions (cm) of the mapped joints in a pose where the rig stands (its
    rest pose, or a standing frame). Height error: the standing height (head joint above the
    lowest foot) on the source's most upright frame against the rig's times the source's
    ratio there; floor error: the lowest foot's height above the rig's floor against the
    source's (fractions of the height); upright: head above hips above feet where the source
    has that order."""
    q, x = source_at_scene_rate(q, x)
    src = _heights(canon.canonical_forward_kinematics(q, x), 1)
    src_ref = _heights(cv.tpose()[2], 1)
    frames = frame_start + np.arange(len(q))
    got = _heights(mapped_world(obj, mapping, frames), 2)
    ref = _heights(rig_ref, 2)
    hs, ht = src_ref[0] - src_ref[2], ref[0] - ref[2]
    s, t = (src - src_ref[2]) / hs, (got - ref[2]) / ht
    f = int(np.argmax(s[:, 0] - s[:, 2]))
    height = abs((t[f, 0] - t[f, 2]) / (s[f, 0] - s[f, 2]) - 1.0)
    floor = np.abs(t[:, 2] - s[:, 2]).max()
    upright_src = (s[:, 0] > s[:, 1]) & (s[:, 1] > s[:, 2])
    wrong = upright_src & ~((t[:, 0] > t[:, 1]) & (t[:, 1] > t[:, 2]))
    return height, floor, int(wrong.sum())


@pytest.fixture
def scene():
    fx.reset()
    return bpy.context.scene


# =========================================================================== every convention


@pytest.mark.parametrize("key", list(core.RIGS))
def test_retarget_walk_onto_each_convention(scene, key):
    spec = core.rigify_rig(constraints=True) if key == "rigify" else core.RIGS[key]()
    obj = build(spec)
    q, x = core.procedural_walk(1.6, turn=0.4 if key == "ue5" else 0.0)
    reduce = ReduceSettings(mode="ERROR", max_error_cm=0.3) if key in ("rigify", "mixamo") else None
    result = bl_retarget.retarget_motion_result(q, x, 20, obj, reduce=reduce,
                                                name=f"walk ({key})")
    assert result.mapping.convention == spec.convention
    assert result.mapping.bones == {j: spec.expect.get(j) for j in cv.JOINTS}
    assert obj.animation_data.action == result.action and result.action.name == f"walk ({key})"
    # keys only on mapped bones (and Rigify's IK/FK switches)
    keyed = {fc.data_path.split('"')[1] for fc in actions.channels_for(obj).fcurves}
    assert keyed <= set(result.mapping.mapped.values()) | {"upper_arm_parent.L",
                                                            "upper_arm_parent.R",
                                                            "thigh_parent.L", "thigh_parent.R"}
    if reduce is not None:
        assert result.reduce_result is not None
        assert result.reduce_result.key_frames < 0.5 * result.frames
    err, path_err = check_positions(spec, obj, q, x)
    RESULTS[key] = 100 * err
    assert err <= 0.02, f"{key}: {100 * err:.2f} % of the height"
    assert path_err <= 0.02
    # the height check holds (the code's own, and measured here on Blender's evaluation)
    assert not result.check.problems and result.check.height_error <= 0.05
    height, floor, wrong = upright_errors(obj, result.mapping,
                                          mapped_world(obj, result.mapping), q, x)
    RESULTS[f"{key} height"] = 100 * height
    assert height <= 0.05 and floor <= 0.05 and wrong == 0, (height, floor, wrong)
    assert not any("Constraints" in w for w in result.warnings), result.warnings
    if key == "rigify":
        assert obj.pose.bones["upper_arm_parent.L"]["IK_FK"] == 1.0  # switched to FK


def test_root_motion_on_the_root_bone(scene):
    spec = core.ue4_rig()
    obj = build(spec)
    q, x = core.procedural_walk(1.0)
    result = bl_retarget.retarget_motion_result(q, x, 20, obj, root_motion="ROOT")
    chans = actions.channels_for(obj)
    paths = {fc.data_path for fc in chans.fcurves}
    assert 'pose.bones["root"].location' in paths and 'pose.bones["pelvis"].location' in paths
    err, path_err = check_positions(spec, obj, q, x)
    assert err <= 0.02 and path_err <= 0.02
    # the root bone stays on the ground and follows the hips
    scene.frame_set(result.frame_start)
    z0 = (obj.matrix_world @ obj.pose.bones["root"].head).z
    scene.frame_set(result.frame_start + result.frames - 1)
    end = obj.matrix_world @ obj.pose.bones["root"].head
    assert abs(end.z - z0) < 1e-4 and end.y < -0.5  # walked forward (-Y) on the ground


# =========================================================================== foot pinning


@pytest.mark.parametrize("key", ["mixamo", "ue5", "rigify"])
def test_foot_pinning_keeps_planted_feet(scene, key):
    spec = core.rigify_rig(constraints=True) if key == "rigify" else core.RIGS[key]()
    obj = build(spec)
    q, x = core.procedural_walk(2.0, slide=1.08)
    reduce = ReduceSettings(mode="ERROR", max_error_cm=0.5)
    result = bl_retarget.retarget_motion_result(q, x, 20, obj, foot_pinning=True, reduce=reduce)
    sol = result.solution
    assert result.pinned_frames >= 10
    assert result.foot_drift_cm is not None and result.foot_drift_cm < 0.01
    mw = np.array(obj.matrix_world)
    names = list(sol.bone_index)

    def drift(rig_obj, start):
        worst = 0.0
        for side in ("L", "R"):
            for bone, frames, pins in sol.planted(side):
                if len(frames):
                    got = world_heads(rig_obj, [names[bone]], start + frames)[:, 0]
                    pin_world = (pins @ mw[:3, :3].T + mw[:3, 3]) * 100.0
                    worst = max(worst, np.linalg.norm(got - pin_world, axis=1).max())
        return worst

    worst = drift(obj, result.frame_start)
    RESULTS[f"{key} foot drift cm"] = worst
    assert worst <= 2.0
    # without pinning the same feet slide
    obj2 = build(spec, name=key + "_free")
    free = bl_retarget.retarget_motion_result(q, x, 20, obj2, foot_pinning=False)
    skate = drift(obj2, free.frame_start)
    RESULTS[f"{key} unpinned slide cm"] = skate
    assert skate > 2.0


# =========================================================================== operator


def _bandai_like_source(q, x):
    """A BVH in the Bandai Namco layout, imported as a new armature."""
    bvh = canon.canonical_to_bvh(q, x, 20, bandai_layout=True)
    return bvh_io.import_bvh(bvh, name="walk_bandai")


def canonical_spec():
    """The canonical skeleton as a rig spec (for :func:`check_positions`): one bone per joint,
    its head at the joint, Z up, metres: the armature an imported canonical BVH builds."""
    bones = [core._b(j, cv.JOINTS[p] if p >= 0 else None, j, j)
             for j, p in zip(cv.JOINTS, cv.PARENTS)]
    return core.RigSpec("canonical", bones, {j: j for j in cv.JOINTS}, convention="CANONICAL")


@pytest.mark.parametrize("tagged", [True, False], ids=["generated", "detected"])
def test_retarget_onto_the_canonical_rig(scene, tagged):
    """Onto the rig Generate Motion creates (a canonical BVH imported, tagged) or a rig from a
    Bandai-layout BVH (no tag: detected by its joints and rest offsets): its zero pose is
    folded and no frame of its walk is a T-pose, so the reference is the canonical T-pose,
    exactly: the motion lands where the source is, joint for joint."""
    from sparse_motion.blender.generate import CANONICAL_RIG_TAG

    qa, xa = core.procedural_walk(2.0, turn=0.3)  # the rig's own action
    rig = bvh_io.import_bvh(canon.canonical_to_bvh(qa, xa, 20, bandai_layout=not tagged),
                            scale=0.01, name="Generated Motion" if tagged else "canonical")
    if tagged:
        rig.data[CANONICAL_RIG_TAG] = True
    q, x = core.procedural_walk(1.6)
    src = _bandai_like_source(q, x)
    result = bl_retarget.retarget_armature(src, rig)
    assert result.reference.description == "the canonical T-pose" and result.reference.frame is None
    assert result.mapping.mapped == {j: j for j in cv.JOINTS}
    assert not any("does not stand" in w for w in result.warnings), result.warnings
    check = result.check
    assert not check.problems and check.height_error <= 1e-4 and check.floor_error <= 1e-4
    spec = canonical_spec()
    err, path_err = check_positions(spec, rig, q, x)
    key = "generated canonical rig" if tagged else "canonical-layout rig"
    RESULTS[key] = 100 * err
    assert err <= 1e-4 and path_err <= 1e-4, (err, path_err)
    tpose = cv.tpose()[2] @ core.AXES["Z_UP"].T  # its standing pose, world cm
    height, floor, wrong = upright_errors(rig, result.mapping, tpose, q, x)
    RESULTS[key + " height"] = 100 * height
    assert height <= 1e-4 and floor <= 1e-4 and wrong == 0, (height, floor, wrong)
    # where the source is, not only relative to the hips: as Generate Motion writes it
    frames = result.frame_start + np.arange(result.frames)
    got, want = (world_heads(o, list(cv.JOINTS), frames) for o in (rig, src))
    assert np.abs(got - want).max() < 1e-3  # cm


def test_operator_retargets_an_imported_bandai_bvh(scene):
    q, x = core.procedural_walk(1.5)
    src = _bandai_like_source(q, x)
    assert scene.render.fps == 20  # set by the import
    spec = core.metarig_rig()
    target = build(spec)
    bpy.context.view_layer.objects.active = target
    target.sparse_motion_retarget.source = src
    assert bpy.ops.sparse_motion.retarget_action(source=src.name, reduce=False,
                                                 foot_pinning=False) == {"FINISHED"}
    action = target.animation_data.action
    assert action.name == "walk_bandai (metarig)"
    settings = target.sparse_motion_retarget
    assert len(settings.bones) == len(cv.JOINTS) and settings.convention == "METARIG"
    err, path_err = check_positions(spec, target, q, x)
    RESULTS["bandai bvh → metarig (operator)"] = 100 * err
    assert err <= 0.02 and path_err <= 0.02


def test_operator_with_a_mapped_rig_as_source(scene):
    """Rig to rig: a UE5 (A-pose) animation onto a generic T-pose rig."""
    q, x = core.procedural_walk(1.0)
    ue = build(core.ue5_rig())
    bl_retarget.retarget_motion(q, x, 20, ue)
    spec = core.generic_dot_rig()
    target = build(spec)
    bpy.context.view_layer.objects.active = target
    assert bpy.ops.sparse_motion.retarget_action(source=ue.name, reduce=False,
                                                 foot_pinning=False) == {"FINISHED"}
    err, path_err = check_positions(spec, target, q, x)
    RESULTS["ue5 rig → generic (operator)"] = 100 * err
    assert err <= 0.02 and path_err <= 0.02


def test_quadruped_is_refused(scene):
    dog = build(core.quadruped_rig(), name="Dog")
    q, x = core.procedural_walk(0.5)
    before = fx.snapshot()
    with pytest.raises(InputError) as err:
        bl_retarget.retarget_motion(q, x, 20, dog)
    text = str(err.value)
    for joint in ("UpperArm_L", "Hand_R", "Foot_L", "quadruped"):
        assert joint in text
    assert fx.snapshot() == before and len(bpy.data.actions) == 0
    src = _bandai_like_source(q, x)
    bpy.context.view_layer.objects.active = dog
    with pytest.raises(RuntimeError, match="UpperArm_L"):  # the operator's error report
        bpy.ops.sparse_motion.retarget_action(source=src.name)
    assert dog.animation_data is None or dog.animation_data.action is None


def test_detect_preset_save_load_operators(scene, tmp_path):
    obj = build(core.cc_rig(), name="CC")
    assert bpy.ops.sparse_motion.retarget_detect() == {"FINISHED"}
    settings = obj.sparse_motion_retarget
    got = {i.joint: i.bone for i in settings.bones}
    assert got["UpperArm_L"] == "CC_Base_L_Upperarm" and settings.root_bone == "CC_Base_BoneRoot"
    assert settings.convention == "CC" and settings.confidence > 0.9
    # edit a row (as the bone picker does), save, clear, load
    next(i for i in settings.bones if i.joint == "Toes_L").bone = ""
    path = str(tmp_path / "cc.json")
    assert bpy.ops.sparse_motion.retarget_save(filepath=path) == {"FINISHED"}
    assert rmap.load_preset(path).bones["Toes_L"] is None
    assert bpy.ops.sparse_motion.retarget_clear() == {"FINISHED"} and not len(settings.bones)
    assert bpy.ops.sparse_motion.retarget_load(filepath=path) == {"FINISHED"}
    got = {i.joint: i.bone for i in settings.bones}
    assert got["Toes_L"] == "" and got["Hand_R"] == "CC_Base_R_Hand"
    # the stored (edited) mapping is the one used
    q, x = core.procedural_walk(0.5)
    result = bl_retarget.retarget_motion_result(q, x, 20, obj)
    assert result.mapping.bones["Toes_L"] is None and "CC_Base_L_ToeBase" not in result.bones
    assert bpy.ops.sparse_motion.retarget_preset(preset="MIXAMO") == {"FINISHED"}
    assert next(i for i in settings.bones if i.joint == "Hips").bone == "mixamorig:Hips"
    with pytest.raises(InputError, match="mixamorig:Hips"):
        bl_retarget.retarget_motion(q, x, 20, obj)


def test_failure_leaves_the_rig_unchanged_and_undo(scene):
    obj = build(core.generic_dot_rig(), name="G")
    q, x = core.procedural_walk(0.8)
    bl_retarget.retarget_motion(q, x, 20, obj, name="first")
    before = fx.snapshot()
    bad = q.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        bl_retarget.retarget_motion(bad, x, 20, obj)
    assert fx.snapshot() == before
    # one undo step restores the previous action
    src = _bandai_like_source(q, x)
    bpy.context.view_layer.objects.active = obj
    before = fx.snapshot()
    bpy.ops.ed.undo_push(message="before retarget")
    assert bpy.ops.sparse_motion.retarget_action(source=src.name, reduce=True,
                                                 max_error=1.0) == {"FINISHED"}
    after = fx.snapshot()
    assert after != before and bpy.data.actions["first"].use_fake_user
    bpy.ops.ed.undo_push(message="Retarget Action")
    bpy.ops.ed.undo()
    assert fx.snapshot() == before


def test_panel_draws_the_mapping_editor(scene):
    from sparse_motion.panels.retarget_panel import SPARSEMOTION_PT_retarget

    obj = build(core.ue4_rig(), name="UE")
    q, x = core.procedural_walk(0.5)
    src = _bandai_like_source(q, x)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.sparse_motion.retarget_detect() == {"FINISHED"}
    settings = obj.sparse_motion_retarget
    settings.source = src
    log = fx.draw_panel(SPARSEMOTION_PT_retarget)
    bones = [v for k, v in log if k == "prop_search"]
    assert len(bones) == len(cv.JOINTS) + 1 and "upperarm_l" in bones and "root" in bones
    assert ("operator", "sparse_motion.retarget_action") in log
    assert not any(k == "label" and "Pick a source" in v for k, v in log)
