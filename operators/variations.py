# SPDX-License-Identifier: GPL-3.0-or-later
"""Make Variations: the operator (modal; training and sampling on a worker thread) and Cancel.

Invoked from the UI, the reference is read and checked at once (a problem is reported and
nothing changes); the model trains (or comes from the cache) and samples on a worker thread
while a timer shows progress, the loss and the time left in the panel and the window's
progress indicator; Esc or the panel's Cancel button stops it between two training steps. The
variations are written on the main thread when the work is done: one undo step. Headless
(``blender --background``, scripts calling ``execute``) it blocks.
"""
from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..errors import SparseMotionError
from ..properties import draw_variation_options, variation_props
from . import generate as gen_op
from .jobs import Job, JobOperator, cancel_operator, job_module_registration
from .reporting import poll_problem

#: The running variations job (one at a time), read by the panel.
current_job: Job | None = None


def running() -> bool:
    return current_job is not None and not current_job.done


def variations_problem(context):
    """Why Make Variations cannot run now (None: it can)."""
    if running():
        return "Variations are being made: wait for them or cancel"
    from . import timeline

    if gen_op.running() or timeline.running():
        return "A motion is being generated: wait for it or cancel it"
    if context.mode not in ("OBJECT", "POSE"):
        return "Switch to Object or Pose Mode to make variations"
    obj = context.active_object
    if obj is None:
        return "Select the armature whose action to vary"
    if obj.type != "ARMATURE":
        return f"'{obj.name}' is not an armature: select the armature whose action to vary"
    return None


def _request(op, context):
    from ..blender.variations import VariationRequest
    from .. import preferences

    action = None
    if op.action:
        action = bpy.data.actions.get(op.action)
        if action is None:
            raise SparseMotionError(f"No action named '{op.action}'")
    prefs = preferences.get(context)
    return VariationRequest(
        obj=context.active_object, action=action, count=op.count, seconds=op.seconds,
        seed=op.seed, novelty=op.novelty, method=op.method, max_error_cm=op.max_error,
        threads=int(getattr(prefs, "threads", 0) or 0))


class SPARSEMOTION_OT_make_variations(JobOperator, bpy.types.Operator):
    """Make new actions that vary the reference action (its style, not a copy), written as sparse keys"""

    bl_idname = "sparse_motion.make_variations"
    bl_label = "Make Variations"
    bl_options = {"REGISTER", "UNDO"}
    job_label = "Variations"

    __annotations__ = {
        **variation_props(),
        "action": StringProperty(name="Reference", description="Name of the action to vary "
                                 "(empty: the one the active armature plays)", default=""),
    }

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, variations_problem(context))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop_search(self, "action", bpy.data, "actions")
        draw_variation_options(layout, self)

    def prepare_job(self, context):
        from ..blender import variations as var

        plan = var.prepare(_request(self, context))
        return (lambda progress, cancel: var.compute(plan, progress, cancel),
                lambda computed: var.apply(plan, computed))


SPARSEMOTION_OT_cancel_variations = cancel_operator(
    __name__, "sparse_motion.cancel_variations",
    "Stop making variations (nothing is written; a model being trained is not kept)",
    "No variations are being made")


classes = (SPARSEMOTION_OT_make_variations, SPARSEMOTION_OT_cancel_variations)


register, unregister = job_module_registration(__name__, classes)
