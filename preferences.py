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
        draw_device(layout, self, always_why=True)
        layout.prop(self, "threads")


def device_choice(prefs=None):
    """Where models run with these preferences and why (``inference.runtime.DeviceChoice``):
    what the last model session really got, else what the next one will get."""
    from .inference.runtime import RuntimeSettings, device_status

    return device_status(RuntimeSettings.from_preferences(prefs if prefs is not None else get()))


def draw_device(layout, prefs=None, always_why: bool = False):
    """"Running on: CPU" and, in the preferences or when CUDA was asked for and the CPU is
    used, why (e.g. "CUDA requested, no CUDA-capable onnxruntime: running on the CPU")."""
    try:
        choice = device_choice(prefs)
    except Exception as exc:  # never break a panel over it
        layout.label(text=f"Device unknown: {exc}", icon="ERROR")
        return
    col = layout.column(align=True)
    col.label(text=f"Running on: {choice.device}",
              icon="ERROR" if choice.fallback else "MEMORY" if choice.device == "CUDA" else "NONE")
    if always_why or choice.fallback:
        reason = choice.reason
        col.label(text=reason[:1].upper() + reason[1:])


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
