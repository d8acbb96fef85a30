# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill Between: the operator (modal, the model on a worker thread, like Generate Motion) and
Cancel; also in the Dope Sheet's and Graph Editor's Key menus.

Invoked from the UI the checks run and the animation is read at once (a problem is reported
and nothing changes), the model runs on a worker thread with progress and Cancel (Esc), and
the keys are written on the main thread when it finishes: one undo step. Headless it blocks.
"""
from __future__ import annotations

import bpy

from ..properties import draw_fill_options, fill_props
from .jobs import Job, JobOperator, cancel_operator, job_module_registration
from .reduce_keyframes import add_to_key_menus, remove_from_key_menus
from .reporting import poll_problem, reports_user_errors, run_and_report

#: The running fill (one at a time), read by the panel.
current_job: Job | None = None


def running() -> bool:
    return current_job is not None and not current_job.done


def fill_problem(context):
    """Why Fill Between cannot run now (None: it can)."""
    from ..blender.fill import fill_problem as object_problem
    from . import generate, timeline

    if running():
        return "Keys are being filled: wait or cancel"
    if generate.running() or timeline.running():
        return "A motion is being generated: wait for it or cancel it"
    if context.mode not in ("OBJECT", "POSE"):
        return "Switch to Object or Pose Mode to fill between keys"
    return object_problem(context.active_object)


def _request(op, context):
    from .. import preferences
    from ..blender.fill import FillRequest

    prefs = preferences.get(context)
    return FillRequest(obj=context.active_object, prompt=op.prompt, seed=op.seed,
                       results=op.results, frame_range=op.frame_range, bones=op.bones,
                       key_mode=op.key_mode, key_percent=op.key_percent, steps=op.steps,
                       device=getattr(prefs, "device", "AUTO"),
                       threads=int(getattr(prefs, "threads", 0) or 0))


class SPARSEMOTION_OT_fill_between(JobOperator, bpy.types.Operator):
    """Fill the frames between the active armature's keys with motion that passes through them exactly (new sparse keys; your keys are kept as they are)"""

    bl_idname = "sparse_motion.fill_between"
    bl_label = "Fill Between"
    bl_options = {"REGISTER", "UNDO"}
    job_label = "Fill Between"

    __annotations__ = fill_props()

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, fill_problem(context))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "prompt")
        draw_fill_options(layout, self)

    def execute(self, context):
        from ..blender.fill import fill_between

        return run_and_report(self, lambda: fill_between(_request(self, context)))

    @reports_user_errors
    def invoke(self, context, event):
        global current_job
        if bpy.app.background or context.window is None:
            return self.execute(context)
        from ..blender import fill

        plan = fill.prepare(_request(self, context))
        for warning in plan.warnings:
            self.report({"WARNING"}, warning)
        current_job = self.start_job(
            context, lambda progress, cancel: fill.sample(plan, progress, cancel),
            lambda result: fill.apply(result, plan))
        return {"RUNNING_MODAL"}


SPARSEMOTION_OT_cancel_fill = cancel_operator(
    __name__, "sparse_motion.cancel_fill",
    "Stop the running fill (nothing is written)",
    "No fill is running")


def menu_entry(self, context):
    self.layout.operator(SPARSEMOTION_OT_fill_between.bl_idname)


classes = (SPARSEMOTION_OT_fill_between, SPARSEMOTION_OT_cancel_fill)

register, unregister = job_module_registration(
    __name__, classes, menus=[(add_to_key_menus, remove_from_key_menus, menu_entry)])
