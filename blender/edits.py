# SPDX-License-Identifier: GPL-3.0-or-later
"""Changes made in several steps that must leave nothing behind if one step fails."""
from __future__ import annotations

import bpy
import numpy as np


class Rollback:
    """Record what a change creates and how to restore what it modifies; on an exception
    inside the ``with`` block, restore everything (newest first), remove what was created,
    and let the exception propagate::

        with Rollback() as rb:
            action = rb.created(bpy.data.actions.new("A"))
            rb.restore(lambda old=scene.frame_end: setattr(scene, "frame_end", old))
            ...
    """

    def __init__(self):
        self._created = []
        self._restore = []

    def created(self, datablock):
        self._created.append(datablock)
        return datablock

    def restore(self, undo):
        self._restore.append(undo)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        for undo in reversed(self._restore):
            try:
                undo()
            except Exception:  # pragma: no cover - best effort
                pass
        for datablock in reversed(self._created):
            try:
                getattr(bpy.data, _COLLECTIONS[datablock.id_type]).remove(datablock)
            except Exception:  # pragma: no cover - best effort (already gone)
                pass
        return False


def assign_keeping_previous(obj, channels, rb: Rollback, warnings: list):
    """Make ``obj`` play the new action in ``channels``; the previous action gets a fake user
    (so it survives saving) and both are restored if the surrounding change fails."""
    from . import actions

    adt = obj.animation_data
    if adt is None:
        rb.restore(lambda: obj.animation_data_clear())
    old_action = adt.action if adt is not None else None
    old_slot = actions.assigned_slot(obj)
    if old_action is not None:
        rb.restore(lambda a=old_action, s=old_slot: actions.reassign(obj, a, s))
    actions.assign(obj, channels)
    if old_action is not None and old_action != channels.action and not old_action.use_fake_user:
        old_action.use_fake_user = True
        rb.restore(lambda a=old_action: setattr(a, "use_fake_user", False))
        warnings.append(f"The previous action '{old_action.name}' is kept (fake user)")


def add_keys(channels, key, group, fcurve, keys: dict, rb: Rollback, replace=None):
    """Add ``keys`` (:func:`.fcurve_io.read_keys`' form) to the curve ``key`` = (data path,
    index) of ``channels`` — ``fcurve``, or a new curve in ``group`` when it is None — keeping
    its keys as they are, bit for bit, except those ``replace(keys)`` (a mask) drops; ``rb``
    puts the curve back. Returns the curve."""
    from . import fcurve_io

    if fcurve is None:
        fcurve = channels.new_fcurve(key[0], key[1], group)
        rb.restore(lambda: channels.remove_fcurve(fcurve))
    old = fcurve_io.read_keys(fcurve)
    rb.restore(lambda: fcurve_io.write_key_props(fcurve, old))
    kept = old if replace is None else {p: v[~replace(old)] for p, v in old.items()}
    order = np.argsort(np.concatenate([kept["co"][:, 0], keys["co"][:, 0]]), kind="stable")
    fcurve_io.write_key_props(fcurve, {p: np.concatenate([kept[p], keys[p]])[order]
                                       for p in kept})
    return fcurve


_COLLECTIONS = {"OBJECT": "objects", "ARMATURE": "armatures", "ACTION": "actions", "MESH": "meshes"}


def change_scene_range(scene, start: int, end: int, rb: Rollback):
    """:func:`set_scene_range`, put back by ``rb`` if the surrounding change fails."""
    old = (scene.frame_start, scene.frame_end)
    rb.restore(lambda: set_scene_range(scene, *old))
    set_scene_range(scene, start, end)


def set_scene_range(scene, start: int, end: int):
    """Set the scene's frame range without tripping start > end on the way."""
    if start > scene.frame_end:
        scene.frame_end = end
        scene.frame_start = start
    else:
        scene.frame_start = start
        scene.frame_end = end
