# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings shown in the N-panel, stored per scene."""
import bpy
from bpy.props import EnumProperty, FloatProperty, PointerProperty

REDUCE_MODES = [
    ("RATIO", "Keep Ratio", "Keep a fraction of the frames as keys"),
    ("ERROR", "Max Error", "Keep as few keys as possible while joints stay within an error (cm)"),
]
BONE_SCOPES = [
    ("ALL", "All Bones", "Reduce every animated bone"),
    ("SELECTED", "Selected Bones", "Reduce only the selected bones"),
]
HANDLE_KINDS = [
    ("FREE", "Fitted", "Handles fitted by least squares on each side of a key (most accurate)"),
    ("ALIGNED", "Smooth", "Aligned handles: smooth tangents through every key, easier to edit"),
]
OUTPUTS = [
    ("REPLACE", "Replace", "Replace the keys of the action in place (one undo step)"),
    ("NEW_ACTION", "New Action", "Write a reduced copy and keep the original action"),
]


def reduce_props():
    """The reduce settings, shared by the operator and the scene settings."""
    return {
        "mode": EnumProperty(name="Mode", items=REDUCE_MODES, default="RATIO"),
        "ratio": FloatProperty(
            name="Keep", description="Fraction of frames kept as keys", default=0.1,
            min=0.005, max=1.0, subtype="FACTOR",
        ),
        "max_error": FloatProperty(
            name="Max Error (cm)", description="Largest joint position error allowed, in centimetres",
            default=1.0, min=0.001, soft_max=20.0,
        ),
        "bones": EnumProperty(name="Bones", items=BONE_SCOPES, default="ALL"),
        "handles": EnumProperty(name="Handles", items=HANDLE_KINDS, default="FREE"),
        "output": EnumProperty(name="Output", items=OUTPUTS, default="REPLACE"),
    }


def draw_reduce_options(layout, owner):
    """Mode, keep ratio or max error, and handles of ``owner``'s reduce properties."""
    layout.prop(owner, "mode")
    layout.prop(owner, "ratio" if owner.mode == "RATIO" else "max_error")
    layout.prop(owner, "handles")


class SPARSEMOTION_PG_settings(bpy.types.PropertyGroup):
    __annotations__ = reduce_props()


classes = (SPARSEMOTION_PG_settings,)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.sparse_motion = PointerProperty(type=SPARSEMOTION_PG_settings)


def unregister():
    del bpy.types.Scene.sparse_motion
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
