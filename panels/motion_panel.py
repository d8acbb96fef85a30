# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Motion" tab of the 3D viewport's N-panel."""
import bpy

from ..operators.reduce_keyframes import SPARSEMOTION_OT_reduce_keyframes, active_action_problem


class SPARSEMOTION_PT_main(bpy.types.Panel):
    bl_label = "Sparse Motion"
    bl_idname = "SPARSEMOTION_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Motion"

    def draw(self, context):
        obj = context.active_object
        self.layout.label(text=obj.name if obj else "No active object", icon="ARMATURE_DATA")


class SPARSEMOTION_PT_reduce(bpy.types.Panel):
    bl_label = "Reduce Keyframes"
    bl_idname = "SPARSEMOTION_PT_reduce"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Motion"
    bl_parent_id = "SPARSEMOTION_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.sparse_motion
        layout.prop(settings, "mode")
        layout.prop(settings, "ratio" if settings.mode == "RATIO" else "max_error")
        layout.prop(settings, "bones")
        layout.prop(settings, "handles")
        layout.prop(settings, "output")
        problem = active_action_problem(context)
        col = layout.column()
        col.enabled = problem is None
        op = col.operator(SPARSEMOTION_OT_reduce_keyframes.bl_idname, icon="IPO_BEZIER")
        for name in ("mode", "ratio", "max_error", "bones", "handles", "output"):
            setattr(op, name, getattr(settings, name))
        if problem:
            layout.label(text=problem, icon="INFO")


classes = (SPARSEMOTION_PT_main, SPARSEMOTION_PT_reduce)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
