# SPDX-License-Identifier: GPL-3.0-or-later
"""Reduce Keyframes: dense motion → synchronised sparse keys with fitted handles."""
import bpy

from .reporting import poll_problem, run_and_report
from ..properties import reduce_props


def active_action_problem(context):
    """Why the active object's action cannot be reduced right now (None when it can)."""
    obj = context.active_object
    if obj is None:
        return "Select an object or armature with an action"
    adt = obj.animation_data
    if adt is None or adt.action is None:
        return f"'{obj.name}' has no action to reduce"
    return None


class SPARSEMOTION_OT_reduce_keyframes(bpy.types.Operator):
    """Keep keys only where the motion needs them (all channels of a bone on the same frames), with fitted Bezier handles"""

    bl_idname = "sparse_motion.reduce_keyframes"
    bl_label = "Reduce Keyframes"
    bl_options = {"REGISTER", "UNDO"}
    __annotations__ = reduce_props()

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, active_action_problem(context))

    def execute(self, context):
        from ..blender.reduce import ReduceSettings, reduce_object

        settings = ReduceSettings.from_props(self)
        return run_and_report(self, lambda: reduce_object(context.active_object, settings))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "mode")
        layout.prop(self, "ratio" if self.mode == "RATIO" else "max_error")
        layout.prop(self, "bones")
        layout.prop(self, "handles")
        layout.prop(self, "output")


def menu_entry(self, context):
    self.layout.separator()
    self.layout.operator(SPARSEMOTION_OT_reduce_keyframes.bl_idname)


_MENUS = ("GRAPH_MT_key", "DOPESHEET_MT_key")
classes = (SPARSEMOTION_OT_reduce_keyframes,)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def add_to_key_menus(entry):
    """Add ``entry`` (a menu draw function) to the Graph Editor's and Dope Sheet's Key menus."""
    for name in _MENUS:
        menu = getattr(bpy.types, name, None)
        if menu is not None:
            menu.append(entry)


def remove_from_key_menus(entry):
    for name in _MENUS:
        menu = getattr(bpy.types, name, None)
        if menu is not None:
            menu.remove(entry)


def register():
    _register_classes()
    add_to_key_menus(menu_entry)


def unregister():
    remove_from_key_menus(menu_entry)
    _unregister_classes()
