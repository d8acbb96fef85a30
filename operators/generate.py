# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Motion: the operator (modal, model work on a worker thread) and Cancel.

Invoked from the UI, the checks run at once (a problem is reported and nothing changes), the
model runs on a worker thread while a timer updates the progress shown in the panel and the
window's progress indicator; Esc or the panel's Cancel button stops it between two denoising
steps. The result is written on the main thread when the operator finishes: one undo step.
Headless (``blender --background``, scripts calling ``execute``) it blocks.
"""
from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..errors import SparseMotionError
from ..properties import draw_generate_options, generate_props
from .jobs import Job, JobOperator, cancel_operator, job_module_registration
from .reporting import poll_problem


#: The running generation (one at a time), read by the panel.
current_job: Job | None = None


def running() -> bool:
    return current_job is not None and not current_job.done


def generate_problem(context, prompt=None):
    """Why Generate Motion cannot run now (None: it can)."""
    if running():
        return "A motion is being generated: wait for it or cancel it"
    from . import timeline, variations

    if timeline.running():
        return "A timeline is being generated: wait for it or cancel it"
    if variations.running():
        return "Variations are being made: wait for them or cancel"
    if context.mode not in ("OBJECT", "POSE"):
        return "Switch to Object or Pose Mode to generate motion"
    if prompt is not None and not prompt.strip():
        return "Type a prompt describing the motion"
    return None


def _target_from(context, name, what="target armature"):
    if not name:
        return None
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise SparseMotionError(f"No object named '{name}': choose another {what}")
    return obj


def _collection_from(name):
    if not name:
        return None
    coll = bpy.data.collections.get(name)
    if coll is None:
        raise SparseMotionError(f"No collection named '{name}': choose the collection of "
                                "empties to follow")
    return coll


def _request(op, context):
    from ..blender.generate import GenerateRequest
    from .. import preferences

    prefs = preferences.get(context)
    return GenerateRequest(
        prompt=op.prompt, seconds=op.seconds, seed=op.seed, results=op.results,
        model=op.model, guidance=op.guidance, steps=op.steps, lcm_steps=int(op.lcm_steps),
        key_mode=op.key_mode, key_percent=op.key_percent, handles=op.handles,
        frame_start=op.frame_start, target=_target_from(context, op.target),
        path=_target_from(context, op.path, "curve or empty to follow"),
        path_collection=_collection_from(op.path_collection), pace=op.pace,
        fit_path=op.fit_path,
        device=getattr(prefs, "device", "AUTO"), threads=int(getattr(prefs, "threads", 0) or 0))


class SPARSEMOTION_OT_generate_motion(JobOperator, bpy.types.Operator):
    """Generate a motion from the prompt with the text-to-motion model and write it as sparse keys (a new action)"""

    bl_idname = "sparse_motion.generate_motion"
    bl_label = "Generate Motion"
    bl_options = {"REGISTER", "UNDO"}
    job_label = "Generation"

    __annotations__ = {
        **generate_props(),
        "target": StringProperty(name="Target", description="Name of the armature to animate "
                                 "(empty: create the canonical rig)", default=""),
        "path": StringProperty(name="Path", description="MotionLCM: name of a curve whose "
                               "ground projection the pelvis follows, or of an empty keyed at "
                               "frames (empty: no path)", default=""),
        "path_collection": StringProperty(name="Empties", description="MotionLCM: name of a "
                                          "collection of empties keyed at frames for the "
                                          "pelvis to reach", default=""),
    }

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, generate_problem(context))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "prompt")
        draw_generate_options(layout, self)
        if self.path or self.path_collection:  # Follow path (MotionLCM)
            layout.prop(self, "path" if self.path else "path_collection")
            for name in ("pace", "fit_path"):
                layout.prop(self, name)

    def prepare_job(self, context):
        from ..blender import generate as gen

        req = _request(self, context)
        model, prompt, frames = gen.prepare(req)
        req.prompt = prompt
        return (lambda progress, cancel: gen.sample(model, req, frames, progress, cancel),
                lambda generation: gen.apply(generation, req))


SPARSEMOTION_OT_cancel_generation = cancel_operator(
    __name__, "sparse_motion.cancel_generation",
    "Stop the running generation (nothing is written)",
    "No generation is running")


classes = (SPARSEMOTION_OT_generate_motion, SPARSEMOTION_OT_cancel_generation)


register, unregister = job_module_registration(__name__, classes)
