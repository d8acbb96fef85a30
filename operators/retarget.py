# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting: the bone mapping stored on a target armature, and the operators that detect,
edit, save, load and use it.

Settings live on the *target* armature: ``Object.sparse_motion_retarget``
(:class:`SPARSEMOTION_PG_retarget`), with one :class:`SPARSEMOTION_PG_retarget_bone` row per
canonical joint (joint name → bone name, edited with a bone picker in the Retarget panel).
"""
import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       IntProperty, PointerProperty, StringProperty)
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .reporting import poll_problem, reports_user_errors, run_and_report
from ..properties import draw_reduce_options, reduce_props
from ..retarget import conventions as cv

ROOT_MOTIONS = [
    ("HIPS", "On the Hips", "The hips bone carries the whole translation"),
    ("ROOT", "On the Root Bone",
     "The root bone above the hips carries the ground-plane translation (game engines' root "
     "motion), the hips keep the height and sway"),
]
PRESETS = [(c.key, c.label, f"Bone names of the {c.label} convention") for c in cv.CONVENTIONS]


class SPARSEMOTION_PG_retarget_bone(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint", description="Joint of the canonical skeleton")
    bone: StringProperty(name="Bone", description="Bone of this armature that follows the joint "
                                                  "(empty: not driven)")


class SPARSEMOTION_PG_retarget(bpy.types.PropertyGroup):
    source: PointerProperty(
        name="Source", type=bpy.types.Object,  # no poll callback: bpy 4.2 crashes on exit
        #                                        with one; the operator checks the source
        description="Armature whose animation is retargeted onto this one (e.g. an imported "
                    "BVH)")
    bones: CollectionProperty(type=SPARSEMOTION_PG_retarget_bone)
    root_bone: StringProperty(name="Root Bone",
                              description="Bone above the hips that can carry root motion")
    convention: StringProperty(name="Convention", default="")
    confidence: FloatProperty(name="Confidence", default=0.0, min=0.0, max=1.0,
                              subtype="FACTOR")
    show_mapping: BoolProperty(name="Bone Mapping", default=False)
    root_motion: EnumProperty(name="Root Motion", items=ROOT_MOTIONS, default="HIPS")
    foot_pinning: BoolProperty(
        name="Pin Feet", default=True,
        description="Hold planted feet in place (two-bone IK on the legs) so they do not slide")
    reduce: BoolProperty(name="Reduce Keyframes", default=True,
                         description="Write sparse keys (the keyframe engine) instead of one "
                                     "key per frame")
    use_reference_frame: BoolProperty(
        name="Reference Frame", default=False,
        description="Align the motion with this armature's pose at a frame of its action "
                    "where it stands, instead of its rest pose (off: the rest pose when it "
                    "stands, else a standing frame found in the action)")
    reference_frame: IntProperty(
        name="Frame", default=0,
        description="Frame of this armature's action where it stands upright")
    __annotations__.update({k: v for k, v in reduce_props().items()
                            if k in ("mode", "ratio", "max_error", "handles")})


# --------------------------------------------------------------------------- mapping ⇄ props


def store_mapping(obj, mapping):
    """Write a :class:`~..retarget.mapping.BoneMapping` into ``obj.sparse_motion_retarget``."""
    settings = obj.sparse_motion_retarget
    settings.bones.clear()
    for joint in cv.JOINTS:
        item = settings.bones.add()
        item.joint = joint
        item.bone = mapping.bones.get(joint) or ""
    settings.root_bone = mapping.root or ""
    settings.convention = mapping.convention or "CUSTOM"
    settings.confidence = float(mapping.confidence)


def _armature_problem(context):
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        return "Make the target armature active"
    return None


def _report_notes(op, mapping):
    missing = mapping.missing_core()
    if missing:
        op.report({"WARNING"}, f"{mapping.summary()}. Not mapped (required): "
                               f"{', '.join(missing)}")
    else:
        op.report({"INFO"}, mapping.summary())


class SPARSEMOTION_OT_retarget_detect(bpy.types.Operator):
    """Detect which bone of the active armature follows each joint of the generated motion (from bone names, then the hierarchy)"""

    bl_idname = "sparse_motion.retarget_detect"
    bl_label = "Detect Bone Mapping"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, _armature_problem(context))

    @reports_user_errors
    def execute(self, context):
        from ..blender.retarget import detect_object_mapping

        obj = context.active_object
        mapping = detect_object_mapping(obj)
        store_mapping(obj, mapping)
        obj.sparse_motion_retarget.show_mapping = True
        _report_notes(self, mapping)
        return {"FINISHED"}


class SPARSEMOTION_OT_retarget_preset(bpy.types.Operator):
    """Fill the bone mapping with the bone names of a known rig convention"""

    bl_idname = "sparse_motion.retarget_preset"
    bl_label = "Mapping Preset"
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "preset"

    preset: EnumProperty(name="Preset", items=PRESETS)

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, _armature_problem(context))

    def execute(self, context):
        from ..retarget.mapping import convention_preset

        obj = context.active_object
        mapping = convention_preset(self.preset)
        bones = obj.data.bones
        absent = [b for b in mapping.bones.values() if b and b not in bones]
        store_mapping(obj, mapping)
        obj.sparse_motion_retarget.show_mapping = True
        if absent:
            self.report({"WARNING"}, f"{len(absent)} bone(s) of the preset are not in "
                                     f"'{obj.name}': {', '.join(absent[:5])}")
        return {"FINISHED"}


class SPARSEMOTION_OT_retarget_clear(bpy.types.Operator):
    """Forget the bone mapping (it is detected again when retargeting)"""

    bl_idname = "sparse_motion.retarget_clear"
    bl_label = "Clear Bone Mapping"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE" and len(obj.sparse_motion_retarget.bones)

    def execute(self, context):
        settings = context.active_object.sparse_motion_retarget
        settings.bones.clear()
        settings.root_bone = ""
        settings.convention = ""
        settings.confidence = 0.0
        return {"FINISHED"}


class SPARSEMOTION_OT_retarget_save(bpy.types.Operator, ExportHelper):
    """Save the bone mapping of the active armature as a JSON preset"""

    bl_idname = "sparse_motion.retarget_save"
    bl_label = "Save Mapping Preset"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, _armature_problem(context))

    @reports_user_errors
    def execute(self, context):
        from ..blender.retarget import detect_object_mapping, stored_mapping
        from ..retarget.mapping import save_preset

        obj = context.active_object
        mapping = stored_mapping(obj) or detect_object_mapping(obj)
        mapping.name = mapping.name or obj.name
        save_preset(mapping, self.filepath)
        self.report({"INFO"}, f"Saved the bone mapping of '{obj.name}'")
        return {"FINISHED"}


class SPARSEMOTION_OT_retarget_load(bpy.types.Operator, ImportHelper):
    """Load a JSON bone mapping preset onto the active armature"""

    bl_idname = "sparse_motion.retarget_load"
    bl_label = "Load Mapping Preset"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, _armature_problem(context))

    @reports_user_errors
    def execute(self, context):
        from ..retarget.mapping import load_preset

        obj = context.active_object
        mapping = load_preset(self.filepath)
        store_mapping(obj, mapping)
        obj.sparse_motion_retarget.show_mapping = True
        absent = [b for b in mapping.bones.values() if b and b not in obj.data.bones]
        if absent:
            self.report({"WARNING"}, f"{len(absent)} bone(s) of the preset are not in "
                                     f"'{obj.name}': {', '.join(absent[:5])}")
        else:
            self.report({"INFO"}, f"Loaded bone mapping '{mapping.name}'")
        return {"FINISHED"}


def retarget_problem(context, source_name=""):
    """Why Retarget Action cannot run now (None when it can)."""
    problem = _armature_problem(context)
    if problem:
        return problem
    obj = context.active_object
    source = bpy.data.objects.get(source_name) if source_name else obj.sparse_motion_retarget.source
    if source is None:
        return "Pick a source armature (with the animation to retarget)"
    if source == obj:
        return "The source must be another armature than the active one"
    if source.type != "ARMATURE":
        return f"The source '{source.name}' is not an armature"
    adt = source.animation_data
    if adt is None or adt.action is None:
        return f"The source '{source.name}' has no action"
    return None


def _retarget_props():
    reduce = reduce_props()
    return {
        "source": StringProperty(
            name="Source", description="Name of the source armature (empty: the one picked in "
                                       "the Retarget panel)"),
        "foot_pinning": BoolProperty(name="Pin Feet", default=True,
                                     description="Hold planted feet in place"),
        "root_motion": EnumProperty(name="Root Motion", items=ROOT_MOTIONS, default="HIPS"),
        "reduce": BoolProperty(name="Reduce Keyframes", default=True,
                               description="Write sparse keys instead of one key per frame"),
        "mode": reduce["mode"],
        "ratio": reduce["ratio"],
        "max_error": reduce["max_error"],
        "handles": reduce["handles"],
    }


class SPARSEMOTION_OT_retarget_action(bpy.types.Operator):
    """Retarget the source armature's animation onto the active armature, as a new action with sparse keys"""

    bl_idname = "sparse_motion.retarget_action"
    bl_label = "Retarget Action"
    bl_options = {"REGISTER", "UNDO"}
    __annotations__ = _retarget_props()

    @classmethod
    def poll(cls, context):
        # the source may be named by the operator's own `source` property (scripts), so the
        # poll only needs some other animated armature; execute() checks the actual source
        problem = _armature_problem(context)
        if problem is None and not any(
                o.type == "ARMATURE" and o != context.active_object and o.animation_data
                and o.animation_data.action for o in context.scene.objects):
            problem = "No other armature with an action to retarget from"
        return poll_problem(cls, problem)

    def execute(self, context):
        from ..blender.reduce import ReduceSettings
        from ..blender.retarget import retarget_armature

        problem = retarget_problem(context, self.source)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        target = context.active_object
        source = (bpy.data.objects.get(self.source) if self.source
                  else target.sparse_motion_retarget.source)
        settings = ReduceSettings.from_props(self, bones="ALL", output="REPLACE") if self.reduce else None
        stored = len(target.sparse_motion_retarget.bones) > 0

        def work():
            result = retarget_armature(source, target, foot_pinning=self.foot_pinning,
                                       reduce=settings, root_motion=self.root_motion)
            if not stored:
                store_mapping(target, result.mapping)
            return result

        return run_and_report(self, work)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(self, "root_motion")
        layout.prop(self, "foot_pinning")
        layout.prop(self, "reduce")
        col = layout.column()
        col.enabled = self.reduce
        draw_reduce_options(col, self)


classes = (
    SPARSEMOTION_PG_retarget_bone,
    SPARSEMOTION_PG_retarget,
    SPARSEMOTION_OT_retarget_detect,
    SPARSEMOTION_OT_retarget_preset,
    SPARSEMOTION_OT_retarget_clear,
    SPARSEMOTION_OT_retarget_save,
    SPARSEMOTION_OT_retarget_load,
    SPARSEMOTION_OT_retarget_action,
)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Object.sparse_motion_retarget = PointerProperty(type=SPARSEMOTION_PG_retarget)


def unregister():
    del bpy.types.Object.sparse_motion_retarget
    _unregister_classes()
