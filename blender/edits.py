# SPDX-License-Identifier: GPL-3.0-or-later
"""Changes made in several steps that must leave nothing behind if one step fails."""
from __future__ import annotations

import bpy


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


_COLLECTIONS = {"OBJECT": "objects", "ARMATURE": "armatures", "ACTION": "actions", "MESH": "meshes"}


def set_scene_range(scene, start: int, end: int):
    """Set the scene's frame range without tripping start > end on the way."""
    if start > scene.frame_end:
        scene.frame_end = end
        scene.frame_start = start
    else:
        scene.frame_start = start
        scene.frame_end = end
