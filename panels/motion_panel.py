# SPDX-License-Identifier: GPL-3.0-or-later
"""The "Motion" tab of the 3D viewport's N-panel."""
import bpy

from ..properties import (FILL_FIELDS, GENERATE_FIELDS, TIMELINE_FIELDS, VARIATION_FIELDS,
                          draw_fill_options, draw_generate_options, draw_timeline_options,
                          draw_variation_options, selected_model_kind)
from ..operators.reduce_keyframes import SPARSEMOTION_OT_reduce_keyframes, active_action_problem
from .. import preferences
from .tab import MAIN_PANEL, MotionTab


class SPARSEMOTION_PT_main(MotionTab, bpy.types.Panel):
    bl_label = "Sparse Motion"
    bl_idname = MAIN_PANEL

    def draw(self, context):
        obj = context.active_object
        self.layout.label(text=obj.name if obj else "No active object", icon="ARMATURE_DATA")
        preferences.draw_device(self.layout)  # which device models run on (and why not CUDA)


class SPARSEMOTION_PT_generate(MotionTab, bpy.types.Panel):
    bl_label = "Generate Motion"
    bl_idname = "SPARSEMOTION_PT_generate"
    bl_parent_id = MAIN_PANEL

    def draw(self, context):
        from ..operators import generate as gen_op

        layout = self.layout
        settings = context.scene.sparse_motion
        layout.row().prop(settings, "gen_mode", expand=True)
        if settings.gen_mode == "TIMELINE":
            draw_timeline(layout, context, settings)
            return
        layout.prop(settings, "gen_prompt", text="")
        draw_understood_as(layout, context, settings)
        col = _options_column(layout, settings)
        draw_generate_options(col, settings, "gen_")
        path_problem = draw_follow_path(col, settings)
        if gen_op.running():
            draw_progress(layout, gen_op.current_job,
                          gen_op.SPARSEMOTION_OT_cancel_generation.bl_idname)
            return
        problem = gen_op.generate_problem(context, settings.gen_prompt) or \
            target_problem(settings)
        if problem is None and settings.gen_follow != "NONE":
            problem = path_problem
        op = draw_button(layout, gen_op.SPARSEMOTION_OT_generate_motion.bl_idname,
                         "ARMATURE_DATA", problem, settings, GENERATE_FIELDS, "gen_", 1.4)
        op.target = settings.gen_target.name if settings.gen_target else ""
        path, coll = follow_path_names(settings)
        op.path, op.path_collection = path, coll


def _options_column(layout, settings):
    """The settings column under the prompt (or the segments), with the target first."""
    col = layout.column()
    col.use_property_split = True
    col.use_property_decorate = False
    col.prop(settings, "gen_target")
    return col


def target_problem(settings):
    """Why the chosen target cannot be animated (None: it can, or there is none)."""
    target = settings.gen_target
    if target is not None and target.type != "ARMATURE":
        return f"'{target.name}' is not an armature: pick an armature or none"
    return None


class SPARSEMOTION_UL_segments(bpy.types.UIList):
    """The timeline's segments: number, prompt, seconds and seed."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname,
                  index=0, flt_flag=0):
        row = layout.row(align=True)
        row.label(text=f"{index + 1}")
        row.prop(item, "prompt", text="", emboss=False)
        sub = row.row(align=True)
        sub.scale_x = 0.45
        sub.prop(item, "seconds", text="")
        sub.prop(item, "seed", text="")


def segments_problem(settings):
    """Why the segment list cannot be generated as it is (None: it can; the model checks the
    lengths)."""
    segments = settings.tl_segments
    if not len(segments):
        return "Add a segment: a prompt and its seconds"
    for i, s in enumerate(segments, 1):
        if not s.prompt.strip():
            return f"Segment {i} has no prompt: describe its motion"
    return None


def draw_timeline(layout, context, settings):
    """Timeline mode: the segment list (add / remove / move), the active segment's fields,
    the options, Generate Timeline (or its progress) and Regenerate Segment."""
    from ..blender.timeline import timeline_action
    from ..operators import timeline as tl_op

    row = layout.row()
    row.template_list("SPARSEMOTION_UL_segments", "", settings, "tl_segments", settings,
                      "tl_index", rows=4)
    side = row.column(align=True)
    side.operator("sparse_motion.timeline_add", text="", icon="ADD")
    side.operator("sparse_motion.timeline_remove", text="", icon="REMOVE")
    side.separator()
    side.operator("sparse_motion.timeline_move", text="", icon="TRIA_UP").direction = "UP"
    side.operator("sparse_motion.timeline_move", text="", icon="TRIA_DOWN").direction = "DOWN"
    segments = settings.tl_segments
    active = segments[settings.tl_index] if 0 <= settings.tl_index < len(segments) else None
    if active is not None:
        layout.prop(active, "prompt", text="")
        sub = layout.row(align=True)
        sub.prop(active, "seconds")
        sub.prop(active, "seed")
    layout.label(text=f"{len(segments)} segments, {sum(s.seconds for s in segments):g} s")
    col = _options_column(layout, settings)
    draw_timeline_options(col, settings, "gen_")
    if tl_op.running():
        draw_progress(layout, tl_op.current_job, tl_op.SPARSEMOTION_OT_cancel_timeline.bl_idname)
        return
    problem = (tl_op.timeline_problem(context) or target_problem(settings)
               or segments_problem(settings))
    op = draw_button(layout, tl_op.SPARSEMOTION_OT_generate_timeline.bl_idname,
                     "SEQ_STRIP_DUPLICATE", problem, settings, TIMELINE_FIELDS, "gen_", 1.4)
    op.target = settings.gen_target.name if settings.gen_target else ""
    if active is not None and timeline_action(context.active_object) is not None:
        col = layout.column()
        col.enabled = tl_op.regenerate_problem(context) is None
        op = col.operator(tl_op.SPARSEMOTION_OT_regenerate_segment.bl_idname,
                          text=f"Regenerate Segment {settings.tl_index + 1}",
                          icon="FILE_REFRESH")
        op.index = settings.tl_index
        op.prompt = active.prompt


#: Why Follow path is greyed out for a model that cannot follow one.
PATH_NEEDS_LCM = "Follow path needs a MotionLCM model: choose one in Model"


def follow_path_names(settings) -> tuple[str, str]:
    """The operator's ``path`` and ``path_collection`` for the scene's Follow Path setting."""
    if settings.gen_follow == "OBJECT" and settings.gen_path is not None:
        return settings.gen_path.name, ""
    if settings.gen_follow == "COLLECTION" and settings.gen_path_collection is not None:
        return "", settings.gen_path_collection.name
    return "", ""


def draw_follow_path(layout, settings):
    """Follow Path: the mode and the curve / empty / collection; greyed out, with the reason,
    unless the model is MotionLCM. Returns what stops Generate with this setting (None:
    nothing)."""
    col = layout.column()
    problem = None
    mode = settings.gen_follow
    if selected_model_kind(settings, "gen_") != "motionlcm":
        col.enabled = False  # greyed out; the reason in its label (and below, once set)
        col.prop(settings, "gen_follow", text="Follow Path (MotionLCM)")
        if mode == "NONE":
            return None
        problem = PATH_NEEDS_LCM
    else:
        col.prop(settings, "gen_follow")
    if mode == "OBJECT":
        col.prop(settings, "gen_path")
        obj = settings.gen_path
        if obj is not None and obj.type == "CURVE":
            col.prop(settings, "gen_pace")
        if obj is None:
            problem = problem or "Pick a curve or an empty keyed at frames to follow"
        elif obj.type not in ("CURVE", "EMPTY"):
            problem = problem or (f"'{obj.name}' is not a curve: pick a curve (Bezier, NURBS "
                                  "or poly) or an empty keyed at frames")
    elif mode == "COLLECTION":
        col.prop(settings, "gen_path_collection")
        if settings.gen_path_collection is None:
            problem = problem or "Pick a collection of empties keyed at frames"
    if mode != "NONE":
        col.prop(settings, "gen_fit_path")
    if problem:
        layout.label(text=problem, icon="INFO")
    return problem


def draw_understood_as(layout, context, settings):
    """Under the prompt: what the chosen model makes of it (nearest content and style, from
    the text embedding: ``inference.understand``) and the labels the model knows. A redraw is
    a dict lookup; a new prompt costs one text-encoder call, done here when the encoder and
    the label embeddings are ready, else they load on a thread and the panel redraws after."""
    from .. import preferences
    from ..inference import registry
    from ..inference import understand as ua
    from ..inference.runtime import RuntimeSettings

    from ..inference.generation import KINDS

    try:
        pkg = registry.get_registry().resolve(tuple(KINDS), settings.gen_model)
    except Exception:  # no usable model: the Generate button says why
        return
    col = layout.column(align=True)
    text = settings.gen_prompt
    if text.strip():
        u = ua.lookup(text, pkg)
        if u is None:
            rs = RuntimeSettings.from_preferences(preferences.get(context))
            error = ua.warming_error(pkg)
            if error is not None:
                col.label(text=f"Understood as: unavailable ({error})", icon="ERROR")
            elif ua.ready(pkg, rs):
                try:
                    u = ua.understand(text, pkg, settings=rs)
                except Exception as exc:  # never break the panel
                    col.label(text=f"Understood as: unavailable ({exc})", icon="ERROR")
            else:
                _redraw_when_done(ua.warm_async(pkg, rs))
                col.label(text=UNDERSTANDING, icon="SORTTIME")
        if u is not None:
            col.label(text=u.line(), icon="CHECKMARK" if u.understood else "QUESTION")
            if u.note and u.content is not None:
                col.label(text=u.note[:1].upper() + u.note[1:])
    for line in ua.known_labels(pkg).short():
        col.label(text="Knows " + line)


#: What the panel shows while the text encoder loads for "Understood as".
UNDERSTANDING = "Understood as: loading the text encoder…"


_waiting: dict = {}  # thread -> the redraw timer that waits for it


def _redraw_when_done(thread):
    """Redraw the 3D views once ``thread`` has finished (polled by a timer on the main thread)."""
    if thread in _waiting:
        return

    def poll():
        if thread.is_alive():
            return 0.05
        _waiting.pop(thread, None)
        wm = bpy.context.window_manager
        for window in (wm.windows if wm is not None else ()):
            for area in window.screen.areas:
                if area.type == "VIEW_3D":
                    area.tag_redraw()
        return None

    _waiting[thread] = poll
    bpy.app.timers.register(poll, first_interval=0.05)


def _cancel_redraws():
    """Unregister the redraw timers still waiting (a timer left registered at exit crashes
    bpy 4.2 in its static destructors; without a window manager, e.g. bpy as a module, timers
    never run)."""
    for poll in list(_waiting.values()):
        if bpy.app.timers.is_registered(poll):
            bpy.app.timers.unregister(poll)
    _waiting.clear()


def draw_button(layout, idname, icon, problem, settings, fields, prefix="", scale_y=1.0):
    """The panel's operator button, greyed out with the reason below it when ``problem`` is
    set; the operator gets the scene settings ``prefix + name`` for each of ``fields``."""
    col = layout.column()
    col.enabled = problem is None
    col.scale_y = scale_y
    op = col.operator(idname, icon=icon)
    for name in fields:
        setattr(op, name, getattr(settings, prefix + name))
    if problem:
        layout.label(text=problem, icon="INFO")
    return op


def draw_progress(layout, job, cancel_idname):
    """A running job's progress bar (status, loss, time left) and its Cancel button."""
    row = layout.row(align=True)
    text = f"{job.status} ({100 * job.progress:.0f} %)"
    if hasattr(row, "progress"):  # Blender 4.0+
        row.progress(factor=job.progress, type="BAR", text=text)
    else:
        row.label(text=text)
    row.operator(cancel_idname, text="", icon="CANCEL")


class SPARSEMOTION_PT_fill(MotionTab, bpy.types.Panel):
    bl_label = "Fill Between"
    bl_idname = "SPARSEMOTION_PT_fill"
    bl_parent_id = MAIN_PANEL

    def draw(self, context):
        from ..operators import fill as fill_op

        layout = self.layout
        settings = context.scene.sparse_motion
        layout.prop(settings, "fill_prompt", text="")
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        draw_fill_options(col, settings, "fill_")
        if fill_op.running():
            draw_progress(layout, fill_op.current_job, fill_op.SPARSEMOTION_OT_cancel_fill.bl_idname)
            return
        draw_button(layout, fill_op.SPARSEMOTION_OT_fill_between.bl_idname, "IPO_EASE_IN_OUT",
                    fill_op.fill_problem(context), settings, FILL_FIELDS, "fill_", 1.2)


class SPARSEMOTION_PT_variations(MotionTab, bpy.types.Panel):
    bl_label = "Variations"
    bl_idname = "SPARSEMOTION_PT_variations"
    bl_parent_id = MAIN_PANEL
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from ..operators import variations as var_op

        layout = self.layout
        settings = context.scene.sparse_motion
        col = layout.column()
        col.use_property_split = True
        col.use_property_decorate = False
        obj = context.active_object
        playing = None
        if obj is not None and obj.animation_data is not None:
            playing = obj.animation_data.action
        col.prop(settings, "var_action",
                 text="Reference" if settings.var_action else
                 f"Reference ({playing.name})" if playing else "Reference")
        draw_variation_options(col, settings, "var_")
        if var_op.running():
            draw_progress(layout, var_op.current_job,
                          var_op.SPARSEMOTION_OT_cancel_variations.bl_idname)
            return
        problem = var_op.variations_problem(context)
        if problem is None and settings.var_action is None and playing is None:
            problem = f"'{obj.name}' plays no action: pick a reference action"
        from ..blender.variations import torch_available

        if problem is None and settings.var_method == "MOTIONDREAMER" and not torch_available():
            problem = "MotionDreamer needs PyTorch in Blender's Python: choose GenMM"
        op = draw_button(layout, var_op.SPARSEMOTION_OT_make_variations.bl_idname, "MOD_WAVE",
                         problem, settings, VARIATION_FIELDS, "var_", 1.4)
        op.action = settings.var_action.name if settings.var_action else ""


class SPARSEMOTION_PT_reduce(MotionTab, bpy.types.Panel):
    bl_label = "Reduce Keyframes"
    bl_idname = "SPARSEMOTION_PT_reduce"
    bl_parent_id = MAIN_PANEL

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.sparse_motion
        layout.prop(settings, "mode")
        layout.prop(settings, "ratio" if settings.mode == "RATIO" else "max_error")
        layout.prop(settings, "bones")
        layout.prop(settings, "handles")
        layout.prop(settings, "output")
        draw_button(layout, SPARSEMOTION_OT_reduce_keyframes.bl_idname, "IPO_BEZIER",
                    active_action_problem(context), settings,
                    ("mode", "ratio", "max_error", "bones", "handles", "output"))


classes = (SPARSEMOTION_UL_segments, SPARSEMOTION_PT_main, SPARSEMOTION_PT_generate,
           SPARSEMOTION_PT_fill,
           SPARSEMOTION_PT_variations,
           SPARSEMOTION_PT_reduce)


register, _unregister_classes = bpy.utils.register_classes_factory(classes)


def unregister():
    _cancel_redraws()
    _unregister_classes()
