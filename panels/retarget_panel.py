# SPDX-License-Identifier: GPL-3.0-or-later
"""The Retarget sub-panel of the "Motion" tab: source, bone mapping editor, options."""
import bpy

from ..operators.retarget import (SPARSEMOTION_OT_retarget_action, SPARSEMOTION_OT_retarget_clear,
                                  SPARSEMOTION_OT_retarget_detect, SPARSEMOTION_OT_retarget_load,
                                  SPARSEMOTION_OT_retarget_preset, SPARSEMOTION_OT_retarget_save,
                                  retarget_problem)
from ..properties import draw_reduce_options
from ..retarget import conventions as cv
from .tab import MAIN_PANEL, MotionTab


class SPARSEMOTION_PT_retarget(MotionTab, bpy.types.Panel):
    bl_label = "Retarget"
    bl_idname = "SPARSEMOTION_PT_retarget"
    bl_parent_id = MAIN_PANEL
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Make the target armature active", icon="INFO")
            return
        settings = obj.sparse_motion_retarget
        layout.prop(settings, "source")

        # ---- bone mapping
        box = layout.box()
        row = box.row(align=True)
        row.use_property_split = False
        row.prop(settings, "show_mapping", emboss=False,
                 icon="TRIA_DOWN" if settings.show_mapping else "TRIA_RIGHT")
        row.operator(SPARSEMOTION_OT_retarget_detect.bl_idname, text="", icon="VIEWZOOM")
        row.operator_menu_enum(SPARSEMOTION_OT_retarget_preset.bl_idname, "preset", text="",
                               icon="PRESET")
        row.operator(SPARSEMOTION_OT_retarget_load.bl_idname, text="", icon="FILE_FOLDER")
        row.operator(SPARSEMOTION_OT_retarget_save.bl_idname, text="", icon="FILE_TICK")
        row.operator(SPARSEMOTION_OT_retarget_clear.bl_idname, text="", icon="X")
        if not len(settings.bones):
            box.label(text="Not set: detected when retargeting", icon="INFO")
        else:
            label = next((c.label for c in cv.CONVENTIONS if c.key == settings.convention),
                         settings.convention.title() or "Custom")
            missing = [i.joint for i in settings.bones if not i.bone]
            box.label(text=f"{label}, {100 * settings.confidence:.0f} % confidence",
                      icon="CHECKMARK" if not missing else "QUESTION")
            if settings.show_mapping:
                col = box.column(align=True)
                for item in settings.bones:
                    col.prop_search(item, "bone", obj.data, "bones", text=item.joint,
                                    icon="BONE_DATA")
                col.separator()
                col.prop_search(settings, "root_bone", obj.data, "bones", icon="BONE_DATA")
            elif missing:
                more = "…" if len(missing) > 6 else ""
                box.label(text=f"Unmapped: {', '.join(missing[:6])}{more}")

        # ---- options and the button
        row = layout.row(align=True)
        row.prop(settings, "use_reference_frame")
        sub = row.row(align=True)
        sub.enabled = settings.use_reference_frame
        sub.prop(settings, "reference_frame")
        layout.prop(settings, "root_motion")
        layout.prop(settings, "foot_pinning")
        layout.prop(settings, "reduce")
        col = layout.column()
        col.enabled = settings.reduce
        draw_reduce_options(col, settings)
        problem = retarget_problem(context)
        col = layout.column()
        col.enabled = problem is None
        op = col.operator(SPARSEMOTION_OT_retarget_action.bl_idname, icon="ARMATURE_DATA")
        if settings.source is not None:
            op.source = settings.source.name
        for name in ("foot_pinning", "root_motion", "reduce", "mode", "ratio", "max_error",
                     "handles"):
            setattr(op, name, getattr(settings, name))
        if problem:
            layout.label(text=problem, icon="INFO")


classes = (SPARSEMOTION_PT_retarget,)


register, unregister = bpy.utils.register_classes_factory(classes)
