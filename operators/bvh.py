# SPDX-License-Identifier: GPL-3.0-or-later
"""File › Import / Export › Sparse Motion BVH (.bvh)."""
import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .reporting import poll_problem, run_and_report
from ..properties import draw_reduce_options, reduce_props

MENU_LABEL = "Sparse Motion BVH (.bvh)"

IMPORT_TARGETS = [
    ("NEW", "New Armature", "Build a new armature from the BVH hierarchy"),
    ("ACTIVE", "Active Armature",
     "Animate the active armature: joints are matched to bones by name, the armature's rest "
     "pose must be the BVH rest pose"),
]
FRAME_RANGES = [
    ("ACTION", "Action", "The frame range of the armature's action"),
    ("SCENE", "Scene", "The scene's frame range"),
    ("CUSTOM", "Custom", "The frames given below"),
]
UNIT_ITEMS = [
    ("AUTO", "Auto", "Detect the unit from the skeleton's height: the one of metres, ASF units, "
                     "inches, centimetres or millimetres that makes it closest to 1.7 m tall"),
    ("CM", "Centimetres", "1 BVH unit = 1 cm"),
    ("M", "Metres", "1 BVH unit = 1 m"),
    ("MM", "Millimetres", "1 BVH unit = 1 mm"),
    ("IN", "Inches", "1 BVH unit = 1 inch"),
    ("ASF", "ASF Units", "CMU ASF/AMC-derived files: 1 BVH unit = 1/0.45 inch (5.64 cm)"),
    ("CUSTOM", "Custom", "The Scale factor below"),
]
ROTATION_ORDERS = [(o, o, f"Channels {o[0]}rotation {o[1]}rotation {o[2]}rotation")
                   for o in ("ZXY", "XYZ", "XZY", "YXZ", "YZX", "ZYX")]


def _import_props():
    reduce = reduce_props()
    return {
        "filter_glob": StringProperty(default="*.bvh", options={"HIDDEN"}),
        "target": EnumProperty(name="Target", items=IMPORT_TARGETS, default="NEW"),
        "unit": EnumProperty(
            name="Unit", items=UNIT_ITEMS, default="AUTO",
            description="Length unit of the BVH file (the import report says which one Auto "
                        "chose)",
        ),
        "scale": FloatProperty(
            name="Scale", description="With Unit Custom: BVH units to Blender units (0.01: "
                                      "centimetres to metres)",
            default=0.01, min=1e-6, soft_min=1e-4, soft_max=100.0, precision=4,
        ),
        "ground": BoolProperty(
            name="Feet on Floor",
            description="Move the motion up or down so its lowest foot stands on the floor "
                        "(for files whose root is recorded at the hips and play under the "
                        "floor, or that float); a clip already on the floor is left as it is",
            default=True,
        ),
        "frame_start": IntProperty(
            name="Start Frame", description="Scene frame of the first BVH frame", default=1,
        ),
        "set_fps": BoolProperty(
            name="Set Scene FPS", description="Set the scene frame rate from the BVH Frame Time",
            default=True,
        ),
        "set_frame_range": BoolProperty(
            name="Set Frame Range", description="Set the scene frame range to the imported frames",
            default=True,
        ),
        "reduce": BoolProperty(
            name="Reduce Keyframes",
            description="Reduce the dense mocap keys to sparse keys with fitted handles right "
                        "after the import",
            default=False,
        ),
        "mode": reduce["mode"],
        "ratio": reduce["ratio"],
        "max_error": reduce["max_error"],
        "handles": reduce["handles"],
    }


class SPARSEMOTION_OT_import_bvh(bpy.types.Operator, ImportHelper):
    """Import a BVH motion capture file as keyframes, optionally reduced to sparse keys"""

    bl_idname = "sparse_motion.import_bvh"
    bl_label = "Import BVH"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".bvh"
    __annotations__ = _import_props()

    def execute(self, context):
        from ..blender.bvh_io import import_bvh_result
        from ..blender.reduce import ReduceSettings

        target = None
        if self.target == "ACTIVE":
            target = context.active_object
            if target is None or target.type != "ARMATURE":
                self.report({"ERROR"}, "Select the armature to import onto (make it active), "
                                       "or import to a new armature")
                return {"CANCELLED"}
        settings = None
        if self.reduce:
            settings = ReduceSettings.from_props(self, bones="ALL", output="REPLACE")
        scale = self.scale if self.unit == "CUSTOM" else self.unit.lower()
        return run_and_report(self, lambda: import_bvh_result(
            self.filepath, target=target, scale=scale, reduce=settings,
            frame_start=self.frame_start, set_fps=self.set_fps,
            set_frame_range=self.set_frame_range, ground=self.ground,
        ))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(self, "target")
        layout.prop(self, "unit")
        row = layout.row()
        row.enabled = self.unit == "CUSTOM"
        row.prop(self, "scale")
        layout.prop(self, "ground")
        layout.prop(self, "frame_start")
        layout.prop(self, "set_fps")
        layout.prop(self, "set_frame_range")
        layout.prop(self, "reduce")
        col = layout.column()
        col.enabled = self.reduce
        draw_reduce_options(col, self)


def export_problem(context):
    """Why the active object cannot be exported as BVH (None when it can)."""
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        return "Select an armature to export"
    adt = obj.animation_data
    if adt is None or adt.action is None:
        return f"'{obj.name}' has no action to export"
    return None


class SPARSEMOTION_OT_export_bvh(bpy.types.Operator, ExportHelper):
    """Export the active armature's animation as a BVH file (the pose as Blender plays it)"""

    bl_idname = "sparse_motion.export_bvh"
    bl_label = "Export BVH"
    bl_options = {"REGISTER"}
    filename_ext = ".bvh"
    __annotations__ = {
        "filter_glob": StringProperty(default="*.bvh", options={"HIDDEN"}),
        "frame_range": EnumProperty(name="Frames", items=FRAME_RANGES, default="ACTION"),
        "frame_start": IntProperty(name="Start", default=1),
        "frame_end": IntProperty(name="End", default=250),
        "rotation_order": EnumProperty(name="Rotation Order", items=ROTATION_ORDERS,
                                       default="ZXY"),
        "scale": FloatProperty(
            name="Scale", description="Blender units to BVH units (100: metres to centimetres)",
            default=100.0, min=1e-6, soft_max=10000.0,
        ),
    }

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, export_problem(context))

    def invoke(self, context, event):
        obj = context.active_object
        if not self.filepath and obj is not None:
            self.filepath = bpy.path.clean_name(obj.name) + self.filename_ext
        if not self.properties.is_property_set("frame_start"):
            self.frame_start = context.scene.frame_start
        if not self.properties.is_property_set("frame_end"):
            self.frame_end = context.scene.frame_end
        return ExportHelper.invoke(self, context, event)

    def execute(self, context):
        from ..blender.bvh_io import export_bvh

        start = end = None
        if self.frame_range == "SCENE":
            start, end = context.scene.frame_start, context.scene.frame_end
        elif self.frame_range == "CUSTOM":
            start, end = self.frame_start, self.frame_end
        return run_and_report(self, lambda: export_bvh(
            context.active_object, self.filepath, frame_start=start, frame_end=end,
            scale=self.scale, rotation_order=self.rotation_order,
        ))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(self, "frame_range")
        if self.frame_range == "CUSTOM":
            col = layout.column(align=True)
            col.prop(self, "frame_start")
            col.prop(self, "frame_end")
        layout.prop(self, "rotation_order")
        layout.prop(self, "scale")


def menu_import(self, context):
    self.layout.operator(SPARSEMOTION_OT_import_bvh.bl_idname, text=MENU_LABEL)


def menu_export(self, context):
    self.layout.operator(SPARSEMOTION_OT_export_bvh.bl_idname, text=MENU_LABEL)


_MENUS = (("TOPBAR_MT_file_import", menu_import), ("TOPBAR_MT_file_export", menu_export))
classes = (SPARSEMOTION_OT_import_bvh, SPARSEMOTION_OT_export_bvh)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    for name, func in _MENUS:
        menu = getattr(bpy.types, name, None)
        if menu is not None:
            menu.append(func)


def unregister():
    for name, func in _MENUS:
        menu = getattr(bpy.types, name, None)
        if menu is not None:
            menu.remove(func)
    _unregister_classes()
