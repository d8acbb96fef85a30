# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenes built by script for the Blender tests (no external files)."""
from __future__ import annotations

import contextlib

import numpy as np

import bpy
from mathutils import Vector

import sparse_motion
from sparse_motion.blender import actions, fcurve_io
from sparse_motion.keyframes.rig import bone_data_path


def reset():
    bpy.ops.wm.read_factory_settings(use_empty=True)


# The operator every registration of the extension adds; its presence means "registered".
_REGISTERED_MARK = "SPARSE_MOTION_OT_reduce_keyframes"


def is_registered() -> bool:
    return hasattr(bpy.types, _REGISTERED_MARK)


def ensure_registered() -> bool:
    """Register the extension unless it already is; True when this call registered it.

    Test modules share one Blender session: register through :func:`addon_registered`, which
    unregisters only what it registered, so modules can be collected together in any order.
    """
    if is_registered():
        return False
    sparse_motion.register()
    return True


def unregister():
    if is_registered():
        sparse_motion.unregister()


@contextlib.contextmanager
def addon_registered():
    """The extension registered for the block (a test module's fixture)::

        @pytest.fixture(scope="module", autouse=True)
        def addon():
            with fx.addon_registered():
                yield
    """
    registered = ensure_registered()
    try:
        yield
    finally:
        if registered:
            unregister()


@contextlib.contextmanager
def addon_with_models(models, packages):
    """The extension registered with the model packages ``packages`` (folders) copied into
    ``models`` (a temporary folder), which the registry reads as a user folder for the block
    (a test module's fixture); the models are released and the registry rescanned after."""
    import shutil

    import pytest

    from sparse_motion.blender import generate as gen
    from sparse_motion.inference import registry

    for pkg in packages:
        shutil.copytree(pkg, models / pkg.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.ENV_VAR, str(models))
        registry.get_registry(refresh=True)
        with addon_registered():
            yield models
        gen.release_models()
    registry.get_registry(refresh=True)


def new_armature_in_edit_mode(name):
    """A new armature object linked to the scene, active and selected, in Edit Mode:
    ``(obj, data)`` ready for ``data.edit_bones.new``; switch back to Object Mode after."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    return obj, data


def make_armature(name="Rig", n_bones=6, rotation_mode="QUATERNION", seed=0):
    """A branching chain of bones with rolls, like a small humanoid limb set."""
    rng = np.random.default_rng(seed)
    obj, data = new_armature_in_edit_mode(name)
    bones = []
    for i in range(n_bones):
        b = data.edit_bones.new(f"bone{i}")
        parent = bones[(i - 1) // 2] if i else None  # binary tree
        head = parent.tail if parent is not None else Vector((0, 0, 1))
        b.head = head
        b.tail = head + Vector(rng.normal(size=3) * 0.15 + (0, 0, 0.25))
        b.roll = float(rng.normal())
        if parent is not None:
            b.parent = parent
            b.use_connect = True
        bones.append(b)
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = rotation_mode
    return obj


def dense_motion(n_frames, n_bones, seed=0, flips=True):
    """Smooth random rotations with a few fast parts; quaternions with sign flips."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / 30.0
    quats = []
    for _ in range(n_bones):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        freq, amp = rng.uniform(0.3, 1.5), rng.uniform(0.2, 0.8)
        angle = amp * np.sin(2 * np.pi * freq * t) + 0.3 * np.tanh((t - t.mean()) * 6)
        q = np.concatenate([np.cos(angle / 2)[:, None], np.sin(angle / 2)[:, None] * axis], axis=1)
        if flips:
            q[rng.random(n_frames) < 0.05] *= -1
        quats.append(q)
    root = np.stack([0.5 * np.sin(t), 0.3 * t, 0.05 * np.abs(np.sin(4 * t))], axis=1)
    return np.stack(quats, axis=1), root


def key_armature(obj, n_frames=90, seed=0, flips=True, action_name="Mocap"):
    """Key every frame of every bone (rotation; root location too) through the slotted API."""
    quats, root = dense_motion(n_frames, len(obj.pose.bones), seed, flips)
    action, channels = actions.new_action_for(obj, action_name)
    frames = np.arange(1, n_frames + 1, dtype=np.float64)
    for j, pb in enumerate(obj.pose.bones):
        for i in range(4):
            fc = channels.new_fcurve(bone_data_path(pb.name, "rotation_quaternion"), i, pb.name)
            _key_dense(fc, frames, quats[:, j, i])
    for i in range(3):
        fc = channels.new_fcurve(bone_data_path(obj.pose.bones[0].name, "location"), i, obj.pose.bones[0].name)
        _key_dense(fc, frames, root[:, i])
    actions.assign(obj, channels)
    return action


def key_object(obj, values_by_path, action_name="ObjMotion"):
    """Dense keys on an object's own channels: {(data_path, index): values}."""
    action, channels = actions.new_action_for(obj, action_name)
    for (path, index), vals in values_by_path.items():
        fc = channels.new_fcurve(path, index, "Object Transforms")
        _key_dense(fc, np.arange(1, len(vals) + 1, dtype=np.float64), np.asarray(vals, float))
    actions.assign(obj, channels)
    return action


def _key_dense(fc, frames, values):
    fcurve_io.write_dense(fc, np.asarray(frames, float), np.asarray(values, float))


def world_points(obj, frames):
    """Blender's own evaluation: world head and tail of every bone (cm) at each frame."""
    scene = bpy.context.scene
    out = []
    for f in frames:
        scene.frame_set(int(f))
        mw = obj.matrix_world
        pts = []
        if obj.type == "ARMATURE":
            for pb in obj.pose.bones:
                pts += [tuple(mw @ pb.head), tuple(mw @ pb.tail)]
        else:
            pts.append(tuple(mw.translation))
            for axis in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
                pts.append(tuple(mw @ Vector(axis)))
        out.append(pts)
    return np.array(out) * 100.0


def snapshot():
    """Every key of every action in the file: a dict that compares equal iff nothing changed."""
    snap = {}
    for action in bpy.data.actions:
        curves = []
        containers = []
        if actions.is_slotted():
            for layer in action.layers:
                for strip in layer.strips:
                    for bag in strip.channelbags:
                        containers.append(bag)
        else:
            containers.append(action)
        for bag in containers:
            for fc in bag.fcurves:
                n = len(fc.keyframe_points)
                buf = np.empty(6 * n, np.float32)
                parts = []
                for prop in ("co", "handle_left", "handle_right"):
                    b = np.empty(2 * n, np.float32)
                    fc.keyframe_points.foreach_get(prop, b)
                    parts.append(b)
                buf = np.concatenate(parts) if parts else buf
                curves.append((fc.data_path, fc.array_index, buf.tobytes()))
        snap[action.name] = (sorted(curves), action.use_fake_user)
    for obj in bpy.data.objects:
        adt = obj.animation_data
        snap["obj:" + obj.name] = adt.action.name if adt and adt.action else None
    return snap


def assert_one_undo_step(run, state):
    """``run()`` (an operator call, FINISHED) is one undo step: undo puts ``state()`` back as
    it was, redo makes it again. Returns ``state()`` after it."""
    before = state()
    bpy.ops.ed.undo_push(message="start")
    bpy.ops.ed.undo_push(message="before")
    assert run() == {"FINISHED"}
    after = state()
    assert after != before
    bpy.ops.ed.undo_push(message="after")
    bpy.ops.ed.undo()
    assert state() == before
    bpy.ops.ed.redo()
    assert state() == after
    return after


def curve_keys(obj):
    chans = actions.channels_for(obj)
    return {(fc.data_path, fc.array_index): fcurve_io.key_frames(fc) for fc in chans.fcurves}


class FakeLayout:
    """Records what a panel's draw() asks for (panels cannot draw without a window)."""

    def __init__(self, log):
        self.log = log
        self.use_property_split = self.use_property_decorate = False
        self.enabled = True
        self.scale_y = 1.0

    def _child(self, *args, **kwargs):
        return type(self)(self.log)

    row = column = box = _child

    def prop(self, data, name, **kwargs):
        assert hasattr(data, name), name
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert hasattr(data, name) and hasattr(search_data, search_name), name
        self.log.append(("prop_search", getattr(data, name)))

    def operator(self, idname, **kwargs):
        self.log.append(("operator", idname))
        return type("Props", (), {})()

    def template_list(self, listtype, list_id, data, propname, active_data, active_propname,
                      **kwargs):
        assert hasattr(data, propname) and hasattr(active_data, active_propname), propname
        self.log.append(("list", propname))

    def operator_menu_enum(self, idname, prop, **kwargs):
        self.log.append(("menu", idname))

    def label(self, text="", **kwargs):
        self.log.append(("label", text))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(("progress", text))

    def separator(self, **kwargs):
        pass


def draw_panel(panel_cls, context=None) -> list:
    """What ``panel_cls.draw`` puts in its layout: [(kind, value)] (see :class:`FakeLayout`)."""
    log = []
    panel_cls.draw(type("P", (), {"layout": FakeLayout(log)})(), context or bpy.context)
    return log
