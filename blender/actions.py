# SPDX-License-Identifier: GPL-3.0-or-later
"""Actions across Blender versions: one place that knows about slots, layers and channelbags.

- 4.2 / 4.3: F-curves live on ``action.fcurves`` (legacy API).
- 4.4 / 4.5: every action is slotted; ``action.fcurves`` is a legacy view of the first slot.
- 5.0: ``action.fcurves`` is gone; F-curves live in ``layer.strips[..].channelbag(slot)``.

Everything else in the extension goes through :func:`channels_for` (read) and
:func:`ensure_channels` (write), so no other module touches ``action.fcurves``.
Features are detected on the RNA, not from the version number.
"""
from __future__ import annotations

import bpy


def is_slotted() -> bool:
    """True when this Blender has slotted actions (4.4+)."""
    return "slots" in bpy.types.Action.bl_rna.properties


class Channels:
    """The F-curves one ID animates from one action (a channelbag, or the legacy action)."""

    def __init__(self, action, container, slot=None):
        self.action = action
        self.container = container  # ActionChannelbag (4.4+) or Action (4.2/4.3)
        self.slot = slot

    @property
    def fcurves(self):
        return self.container.fcurves if self.container is not None else ()

    def find(self, data_path: str, index: int):
        if self.container is None:
            return None
        return self.container.fcurves.find(data_path, index=index)

    def new_fcurve(self, data_path: str, index: int, group: str | None = None):
        if is_slotted():
            fcurve = self.container.fcurves.new(data_path, index=index)
            if group:
                groups = self.container.groups
                fcurve.group = groups.get(group) or groups.new(group)
            return fcurve
        if group:
            return self.container.fcurves.new(data_path, index=index, action_group=group)
        return self.container.fcurves.new(data_path, index=index)

    def remove_fcurve(self, fcurve):
        self.container.fcurves.remove(fcurve)


def assigned_slot(id_data):
    adt = getattr(id_data, "animation_data", None)
    if adt is None or adt.action is None or not is_slotted():
        return None
    return adt.action_slot


def channels_for(id_data, action=None) -> Channels | None:
    """The channels that animate ``id_data`` (from its assigned action unless one is given).

    Returns None when there is no action. On slotted Blender, the channelbag of the slot the
    ID uses; in another action (a copy of it, say) the slot with the same identifier, else
    its first slot for the ID's type; an action whose slot has no channelbag gives an empty
    :class:`Channels`.
    """
    adt = getattr(id_data, "animation_data", None)
    if action is None:
        action = adt.action if adt is not None else None
    if action is None:
        return None
    if not is_slotted():
        return Channels(action, action)
    slot = assigned_slot(id_data)
    if slot is not None and adt.action != action:
        slot = next((s for s in action.slots if s.identifier == slot.identifier), None)
    if slot is None:
        slot = _first_slot_for(action, id_data)
    if slot is None:
        return Channels(action, None)
    from bpy_extras import anim_utils

    return Channels(action, anim_utils.action_get_channelbag_for_slot(action, slot), slot)


def _first_slot_for(action, id_data):
    id_type = id_data.id_type if hasattr(id_data, "id_type") else "OBJECT"
    for slot in action.slots:
        if slot.target_id_type in {id_type, "UNSPECIFIED"}:
            return slot
    return None


def new_action_for(id_data, name: str):
    """Create an empty action ready to receive F-curves for ``id_data``.

    Returns ``(action, channels)``. Nothing is assigned yet: call :func:`assign` once the
    curves are written, so a failure never leaves the ID pointing at a half-made action.
    """
    action = bpy.data.actions.new(name)
    if not is_slotted():
        action.id_root = id_data.id_type
        return action, Channels(action, action)
    slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    return action, Channels(action, strip.channelbag(slot, ensure=True), slot)


def assign(id_data, channels: Channels):
    """Make ``id_data`` play ``channels`` (assigning the action and, on 4.4+, its slot)."""
    adt = id_data.animation_data or id_data.animation_data_create()
    adt.action = channels.action
    if channels.slot is not None and adt.action_slot != channels.slot:
        adt.action_slot = channels.slot


def play(id_data, action):
    """Make ``id_data`` play ``action`` (on 4.4+ through the action's slot for it)."""
    assign(id_data, channels_for(id_data, action))


def reassign(id_data, action, slot):
    """Put back a previous action (and slot) on ``id_data``."""
    adt = id_data.animation_data or id_data.animation_data_create()
    adt.action = action
    if slot is not None and adt.action_slot != slot:
        adt.action_slot = slot


def is_linked(action) -> bool:
    """True for an action that cannot be edited here (linked from a library, or an override's
    linked reference)."""
    return action.library is not None or not getattr(action, "is_editable", True)


def editable_action_problem(obj, select: str, not_armature: str, no_action: str):
    """Why the action ``obj`` plays cannot be edited (None: it can): no object (``select``),
    not an armature (``"'<name>' is not an armature: <not_armature>"``), no action
    (``"'<name>' <no_action>"``), or a linked action."""
    if obj is None:
        return select
    if obj.type != "ARMATURE":
        return f"'{obj.name}' is not an armature: {not_armature}"
    adt = obj.animation_data
    if adt is None or adt.action is None:
        return f"'{obj.name}' {no_action}"
    if is_linked(adt.action):
        return (f"Action '{adt.action.name}' is linked from a library and cannot be edited: "
                "make it local first")
    return None
