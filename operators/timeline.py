# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Timeline and Regenerate Segment (modal, the model on a worker thread through
:mod:`.jobs`, like Generate Motion), their Cancel, and the segment list's add / remove / move.

Invoked from the UI the checks run at once (a problem is reported and nothing changes), the
model runs on a worker thread with progress and Cancel (Esc), and the action is written on the
main thread when it finishes: one undo step. Headless they block.
"""
from __future__ import annotations

import json

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ..errors import InputError
from ..properties import draw_timeline_options, timeline_props
from .jobs import Job, JobOperator, cancel_operator, job_module_registration
from .reporting import poll_problem

#: The running timeline job (one at a time), read by the panel.
current_job: Job | None = None


def running() -> bool:
    return current_job is not None and not current_job.done


def timeline_problem(context):
    """Why Generate Timeline cannot run now (None: it can)."""
    from .generate import generate_problem

    return generate_problem(context)


def regenerate_problem(context):
    """Why Regenerate Segment cannot run now (None: it can)."""
    from ..blender.timeline import regenerate_problem as object_problem

    return timeline_problem(context) or object_problem(context.active_object)


def scene_segments(context) -> list:
    """The scene's segment list as ``[{"prompt", "seconds", "seed"}, …]``."""
    return [{"prompt": s.prompt, "seconds": s.seconds, "seed": s.seed}
            for s in context.scene.sparse_motion.tl_segments]


def _segments(op, context):
    if not op.segments.strip():
        return scene_segments(context)
    try:
        segments = json.loads(op.segments)
    except json.JSONDecodeError as exc:
        raise InputError(f"The segments are not valid JSON ({exc.msg} at character "
                         f"{exc.pos}): give a list like [{{\"prompt\": \"a person walks\", "
                         f"\"seconds\": 4, \"seed\": 1}}]") from None
    if not isinstance(segments, list):
        raise InputError("The segments must be a JSON list of {\"prompt\", \"seconds\", "
                         "\"seed\"} objects")
    return segments


def _request(op, context):
    from ..blender.timeline import TimelineRequest
    from .generate import _target_from

    return TimelineRequest(
        segments=_segments(op, context), seed=op.seed, model=op.model, key_mode=op.key_mode,
        key_percent=op.key_percent, handles=op.handles, frame_start=op.frame_start,
        target=_target_from(context, op.target), **_device(context))


def _device(context) -> dict:
    from .. import preferences
    from ..inference.runtime import RuntimeSettings

    rs = RuntimeSettings.from_preferences(preferences.get(context))
    return {"device": rs.device, "threads": rs.threads}


class SPARSEMOTION_OT_generate_timeline(JobOperator, bpy.types.Operator):
    """Generate one action from a timeline of prompts (the list in the panel): continuous motion, sparse keys, a marker per segment"""

    bl_idname = "sparse_motion.generate_timeline"
    bl_label = "Generate Timeline"
    bl_options = {"REGISTER", "UNDO"}
    job_label = "Timeline"

    __annotations__ = {
        **timeline_props(),
        "segments": StringProperty(name="Segments", description="The segments as JSON, "
                                   "[{\"prompt\": ..., \"seconds\": ..., \"seed\": ...}, ...] "
                                   "(empty: the panel's list)", default=""),
        "seed": IntProperty(name="Seed", description="Seed of a segment that has none: this + "
                            "the segment's index", default=0, min=0),
        "target": StringProperty(name="Target", description="Name of the armature to animate "
                                 "(empty: create the canonical rig)", default=""),
    }

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, timeline_problem(context))

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        draw_timeline_options(layout, self)

    def prepare_job(self, context):
        from ..blender import timeline as tl

        req = _request(self, context)
        model, segments = tl.prepare(req)
        return (lambda progress, cancel: tl.sample(model, req, segments, progress, cancel),
                lambda timeline: tl.apply(timeline, req))


class SPARSEMOTION_OT_regenerate_segment(JobOperator, bpy.types.Operator):
    """Resample one segment of the active armature's timeline; every other segment's keys stay exactly as they are"""

    bl_idname = "sparse_motion.regenerate_segment"
    bl_label = "Regenerate Segment"
    bl_options = {"REGISTER", "UNDO"}
    job_label = "Regenerate Segment"

    index: IntProperty(name="Segment", description="The segment to resample (0: the first)",
                       default=0, min=0)
    seed: IntProperty(name="Seed", description="Its new seed (-1: its seed + 1000)",
                      default=-1, min=-1)
    prompt: StringProperty(name="Prompt", description="Its new prompt (empty: the one it has)",
                           default="")

    @classmethod
    def poll(cls, context):
        return poll_problem(cls, regenerate_problem(context))

    def prepare_job(self, context):
        from ..blender import timeline as tl

        plan = tl.prepare_regenerate(context.active_object, self.index, self.seed, self.prompt,
                                     **_device(context))
        return (lambda progress, cancel: tl.sample_regenerate(plan, progress, cancel),
                lambda timeline: tl.apply_regenerate(timeline, plan))


SPARSEMOTION_OT_cancel_timeline = cancel_operator(
    __name__, "sparse_motion.cancel_timeline",
    "Stop the running timeline generation (nothing is written)",
    "No timeline is being generated")


# --------------------------------------------------------------------------- the list


class SPARSEMOTION_OT_timeline_add(bpy.types.Operator):
    """Add a segment after the selected one"""

    bl_idname = "sparse_motion.timeline_add"
    bl_label = "Add Segment"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    def execute(self, context):
        settings = context.scene.sparse_motion
        segments = settings.tl_segments
        seed = max((s.seed for s in segments), default=-1) + 1
        new = segments.add()
        new.seconds, new.seed = 4.0, seed
        at = min(settings.tl_index + 1, len(segments) - 1) if len(segments) > 1 else 0
        segments.move(len(segments) - 1, at)
        settings.tl_index = at
        return {"FINISHED"}


class SPARSEMOTION_OT_timeline_remove(bpy.types.Operator):
    """Remove the selected segment"""

    bl_idname = "sparse_motion.timeline_remove"
    bl_label = "Remove Segment"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    @classmethod
    def poll(cls, context):
        settings = context.scene.sparse_motion
        return poll_problem(cls, None if 0 <= settings.tl_index < len(settings.tl_segments)
                            else "Select a segment to remove")

    def execute(self, context):
        settings = context.scene.sparse_motion
        settings.tl_segments.remove(settings.tl_index)
        settings.tl_index = max(0, min(settings.tl_index, len(settings.tl_segments) - 1))
        return {"FINISHED"}


class SPARSEMOTION_OT_timeline_move(bpy.types.Operator):
    """Move the selected segment up or down"""

    bl_idname = "sparse_motion.timeline_move"
    bl_label = "Move Segment"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    direction: EnumProperty(items=[("UP", "Up", "Earlier"), ("DOWN", "Down", "Later")])

    @classmethod
    def poll(cls, context):
        settings = context.scene.sparse_motion
        return poll_problem(cls, None if len(settings.tl_segments) > 1
                            else "Add another segment to reorder")

    def execute(self, context):
        settings = context.scene.sparse_motion
        i = settings.tl_index
        j = i - 1 if self.direction == "UP" else i + 1
        if not (0 <= i < len(settings.tl_segments) and 0 <= j < len(settings.tl_segments)):
            return {"CANCELLED"}
        settings.tl_segments.move(i, j)
        settings.tl_index = j
        return {"FINISHED"}


classes = (SPARSEMOTION_OT_generate_timeline, SPARSEMOTION_OT_regenerate_segment,
           SPARSEMOTION_OT_cancel_timeline, SPARSEMOTION_OT_timeline_add,
           SPARSEMOTION_OT_timeline_remove, SPARSEMOTION_OT_timeline_move)

register, unregister = job_module_registration(__name__, classes)

