# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences (keyed by ``__package__``, as extensions require)."""
import bpy
from bpy.props import EnumProperty, IntProperty

_PACKAGE = __package__


class SPARSEMOTION_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = _PACKAGE

    device: EnumProperty(
        name="Device",
        description="Where models run",
        items=[
            ("AUTO", "Automatic", "GPU (CUDA) when onnxruntime-gpu and a GPU are present, else CPU"),
            ("CPU", "CPU", "Always run models on the CPU"),
            ("CUDA", "CUDA", "Run models on an NVIDIA GPU (falls back to CPU when unavailable)"),
        ],
        default="AUTO",
    )
    threads: IntProperty(
        name="CPU Threads",
        description="Threads for model inference on the CPU (0 = automatic)",
        default=0,
        min=0,
        max=64,
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "device")
        layout.prop(self, "threads")


def get(context=None):
    """The preferences, or an object with the defaults when the add-on was registered by
    hand (tests, scripts) rather than enabled."""
    context = context or bpy.context
    addon = context.preferences.addons.get(_PACKAGE)
    if addon is not None:
        return addon.preferences
    return _Defaults()


class _Defaults:
    device = "AUTO"
    threads = 0


classes = (SPARSEMOTION_AP_preferences,)


register, unregister = bpy.utils.register_classes_factory(classes)
