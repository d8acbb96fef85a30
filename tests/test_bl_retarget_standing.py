# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting onto rigs whose rest pose does not stand (real Blender: 4.5, 5.0, 4.2).

A Character Creator (CC_Base) rig imported from an iClone BVH has a zero pose with its legs
pointing up (the motion turns the pelvis over). Built here: the CC_Base-like rig of
``test_retarget_core.cc_rig`` with every bone of the pelvis' subtree turned 180° about the
lateral axis through the hips, plus an action whose frames turn the pelvis back (standing).
Retargeting must give upright motion (measured on Blender's evaluation) or refuse, naming
what is wrong, with nothing changed.
"""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from mathutils import Matrix  # noqa: E402

import bl_fixtures as fx  # noqa: E402
import test_bl_retarget as blr  # noqa: E402
import test_retarget_core as core  # noqa: E402
from sparse_motion.blender import retarget as bl_retarget  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402

PELVIS = "CC_Base_Pelvis"


@pytest.fixture(scope="module", autouse=True)
def addon():
    with fx.addon_registered():
        yield


@pytest.fixture
def scene():
    fx.reset()
    return bpy.context.scene


class LegsUp(core.RigSpec):
    """A rig spec whose pelvis subtree is turned over (180° about the armature's X axis, the
    character's lateral axis, through the hips): legs pointing up in the rest pose."""

    def __init__(self, spec):
        super().__init__(spec.key + "_legs_up", spec.bones, spec.expect, spec.axes, spec.scale,
                         spec.apose, spec.obj_rotation, spec.obj_scale, spec.convention,
                         spec.root)
        names = spec.names()
        parents = dict(zip(names, spec.parents()))

        def under_pelvis(n):
            while n:
                if n == PELVIS:
                    return True
                n = parents[n]
            return False

        self.flipped = np.array([under_pelvis(n) for n in names])
        self.pivot = spec.to_armature("Hips")

    def _flip(self, pts):
        out = pts.copy()
        d = pts[self.flipped] - self.pivot
        out[self.flipped] = self.pivot + d * np.array([1.0, -1.0, -1.0])
        return out

    def heads(self):
        return self._flip(super().heads())

    def tails(self):
        return self._flip(super().tails())


def legs_up_cc(name="CC_legs_up"):
    return blr.build(LegsUp(core.cc_rig()), name=name)


def key_pelvis_standing(obj, frames=(0, 30), upright=True):
    """Key the pelvis turned back over (standing) on ``frames`` (or left as in the rest pose,
    legs up, with ``upright=False``)."""
    pb = obj.pose.bones[PELVIS]
    pb.rotation_mode = "QUATERNION"
    rest = obj.data.bones[PELVIS].matrix_local.to_3x3()
    turn = Matrix.Rotation(np.pi, 3, "X") if upright else Matrix.Identity(3)
    pb.rotation_quaternion = (rest.transposed() @ turn @ rest).to_quaternion()
    for f in frames:
        pb.keyframe_insert("rotation_quaternion", frame=f)
    bpy.context.view_layer.update()


def world_points_at(obj, mapping, frame):
    return blr.mapped_world(obj, mapping, [frame])[0]


def test_rest_pose_legs_up_lowers_the_mapping_confidence(scene):
    obj = legs_up_cc()
    m = bl_retarget.detect_object_mapping(obj)
    assert m.bones == {j: core.cc_rig().expect.get(j) for j in m.bones}  # names still map
    assert m.confidence <= 0.4
    assert any("rest pose does not stand" in n and "leg points up" in n for n in m.notes), m.notes
    # the same rig standing keeps its confidence
    assert bl_retarget.detect_object_mapping(blr.build(core.cc_rig(), "CC")).confidence > 0.9


def test_legs_up_rig_with_a_standing_frame_gets_upright_motion(scene):
    obj = legs_up_cc()
    key_pelvis_standing(obj)
    m = bl_retarget.detect_object_mapping(obj)
    standing = world_points_at(obj, m, 0)  # the rig standing, as the action has it
    rest = blr.mapped_world(obj, m)
    assert rest[core.cv.INDEX["Foot_L"], 2] > rest[core.cv.INDEX["Head"], 2]  # legs up at rest
    q, x = core.procedural_walk(1.5)
    result = bl_retarget.retarget_motion_result(q, x, 20, obj, foot_pinning=True, name="walk")
    assert result.reference.frame == 0
    assert any("does not stand" in w and "frame 0" in w for w in result.warnings)
    assert not result.check.problems
    height, floor, wrong = blr.upright_errors(obj, result.mapping, standing, q, x)
    print(f"\nlegs-up CC rig: height error {100 * height:.2f} %, floor error "
          f"{100 * floor:.2f} %, upside-down frames {wrong}")
    assert wrong == 0 and height <= 0.05 and floor <= 0.05
    # the pelvis is keyed turned over, so the new action stands by itself
    assert PELVIS in result.bones
    bpy.context.scene.frame_set(5)
    head = (obj.matrix_world @ obj.pose.bones["CC_Base_Head"].head).z
    foot = (obj.matrix_world @ obj.pose.bones["CC_Base_L_Foot"].head).z
    assert head > 1.3 and foot < 0.2, (head, foot)
    # retargeting again (the current action is now the retargeted one) stays upright
    again = bl_retarget.retarget_motion_result(q, x, 20, obj, name="walk again")
    height, floor, wrong = blr.upright_errors(obj, again.mapping, standing, q, x)
    assert wrong == 0 and height <= 0.05 and floor <= 0.05


def test_legs_up_rig_with_the_frame_picked_by_the_user(scene):
    obj = legs_up_cc()
    key_pelvis_standing(obj, frames=(0,), upright=False)  # frame 0: legs up
    key_pelvis_standing(obj, frames=(12,))  # frame 12: standing
    q, x = core.procedural_walk(1.0)
    before = fx.snapshot()
    with pytest.raises(InputError, match="reference frame 0 it does not stand"):
        bl_retarget.retarget_motion(q, x, 20, obj, reference_frame=0)
    assert fx.snapshot() == before
    settings = obj.sparse_motion_retarget
    settings.use_reference_frame, settings.reference_frame = True, 12
    m = bl_retarget.detect_object_mapping(obj)
    standing = world_points_at(obj, m, 12)
    result = bl_retarget.retarget_motion_result(q, x, 20, obj)
    assert result.reference.frame == 12
    height, floor, wrong = blr.upright_errors(obj, result.mapping, standing, q, x)
    assert wrong == 0 and height <= 0.05 and floor <= 0.05


def test_no_standing_pose_is_refused_with_nothing_changed(scene):
    obj = legs_up_cc()
    q, x = core.procedural_walk(1.0)
    before = fx.snapshot()
    with pytest.raises(InputError) as err:
        bl_retarget.retarget_motion(q, x, 20, obj)
    text = str(err.value)
    for part in ("rest pose does not stand", "leg points up", "no action",
                 "Apply Pose as Rest Pose", "Reference Frame"):
        assert part in text, text
    assert fx.snapshot() == before and len(bpy.data.actions) == 0
    # an action that never stands: refused too, the action left as it was
    key_pelvis_standing(obj, upright=False)
    action = obj.animation_data.action
    before = fx.snapshot()
    with pytest.raises(InputError, match="no frame of its action"):
        bl_retarget.retarget_motion(q, x, 20, obj)
    assert fx.snapshot() == before and obj.animation_data.action == action
    assert len(bpy.data.actions) == 1
    # the operator reports it (rig to rig, from a standing source)
    src = blr.build(core.metarig_rig(), name="Source")
    bl_retarget.retarget_motion(q, x, 20, src)
    bpy.context.view_layer.objects.active = obj
    before = fx.snapshot()
    with pytest.raises(RuntimeError, match="leg points up"):
        bpy.ops.sparse_motion.retarget_action(source=src.name)
    assert fx.snapshot() == before


def test_upside_down_result_is_refused_before_writing(scene):
    """The motion check itself: with the legs-up rest pose forced as the reference (its
    head-to-feet axis pointing down), the solved motion would stand on its head; it is
    refused before writing."""
    obj = legs_up_cc()
    q, x = core.procedural_walk(1.0)
    m = bl_retarget.resolve_mapping(obj)
    source = bl_retarget.rsolve.SourceMotion.from_canonical(q, x, 20)
    before = fx.snapshot()
    with pytest.raises(InputError) as err:
        bl_retarget._apply(source, obj, m, False, None, "x", 1, "HIPS", False, True, 0.0)
    text = str(err.value)
    assert "stopped before writing anything" in text and "upside down" in text, text
    assert fx.snapshot() == before and len(bpy.data.actions) == 0
