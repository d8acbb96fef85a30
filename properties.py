# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings shown in the N-panel, stored per scene."""
import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       IntProperty, PointerProperty, StringProperty)

REDUCE_MODES = [
    ("RATIO", "Keep Ratio", "Keep a fraction of the frames as keys"),
    ("ERROR", "Max Error", "Keep as few keys as possible while joints stay within an error (cm)"),
]
BONE_SCOPES = [
    ("ALL", "All Bones", "Reduce every animated bone"),
    ("SELECTED", "Selected Bones", "Reduce only the selected bones"),
]
HANDLE_KINDS = [
    ("FREE", "Fitted", "Handles fitted by least squares on each side of a key (most accurate)"),
    ("ALIGNED", "Smooth", "Aligned handles: smooth tangents through every key, easier to edit"),
]
OUTPUTS = [
    ("REPLACE", "Replace", "Replace the keys of the action in place (one undo step)"),
    ("NEW_ACTION", "New Action", "Write a reduced copy and keep the original action"),
]


def reduce_props():
    """The reduce settings, shared by the operator and the scene settings."""
    return {
        "mode": EnumProperty(name="Mode", items=REDUCE_MODES, default="RATIO"),
        "ratio": FloatProperty(
            name="Keep", description="Fraction of frames kept as keys", default=0.1,
            min=0.005, max=1.0, subtype="FACTOR",
        ),
        "max_error": FloatProperty(
            name="Max Error (cm)", description="Largest joint position error allowed, in centimetres",
            default=1.0, min=0.001, soft_max=20.0,
        ),
        "bones": EnumProperty(name="Bones", items=BONE_SCOPES, default="ALL"),
        "handles": EnumProperty(name="Handles", items=HANDLE_KINDS, default="FREE"),
        "output": EnumProperty(name="Output", items=OUTPUTS, default="REPLACE"),
    }


def draw_reduce_options(layout, owner):
    """Mode, keep ratio or max error, and handles of ``owner``'s reduce properties."""
    layout.prop(owner, "mode")
    layout.prop(owner, "ratio" if owner.mode == "RATIO" else "max_error")
    layout.prop(owner, "handles")


KEY_MODES = [
    ("MODEL", "Model's Keyframes", "Keys on the keyframes the model chose (sMDM: 20 % of the "
                                   "frames, Visvalingam-Whyatt)"),
    ("PERCENT", "Percentage", "Keys on a percentage of the frames chosen by the keyframe engine"),
]


def _text_to_motion_models(self, context):
    from .inference.generation import KINDS
    from .inference.registry import enum_items

    return enum_items(tuple(KINDS))


def selected_model_kind(owner, prefix=""):
    """The kind (``smdm``, ``motionlcm``) of the model ``owner``'s ``model`` setting stands
    for; None when no usable model is installed."""
    from .inference.generation import KINDS
    from .inference.registry import get_registry

    try:
        return get_registry().resolve(tuple(KINDS), getattr(owner, prefix + "model")).kind
    except Exception:  # no usable model: the Generate button says why
        return None


LCM_STEPS = [
    ("1", "1", "One consistency step: the fastest"),
    ("2", "2", "Two steps"),
    ("4", "4", "Four steps: the best quality (default)"),
]
PACES = [
    ("EVEN", "Even", "The pelvis moves along the path at an even speed over the length"),
    ("PROMPT", "From the Prompt", "The pelvis moves along the path at the pace the prompt "
     "gives (its speeding up, slowing down and stops): the motion is generated once without "
     "the path to measure it"),
]
FOLLOW_MODES = [
    ("NONE", "None", "The motion goes where the prompt takes it"),
    ("OBJECT", "Curve or Empty", "The pelvis follows a curve's ground projection (Bezier, "
     "NURBS or poly), evenly over the length, or an empty at its key frames"),
    ("COLLECTION", "Keyed Empties", "The pelvis reaches each empty of a collection at the "
     "empty's key frames"),
]


def generate_props():
    """The Generate Motion settings, shared by the operator and the scene settings."""
    return {
        "prompt": StringProperty(name="Prompt", description="What the motion shows, e.g. 'an "
                                 "old man waves with his left hand'", default=""),
        "seconds": FloatProperty(name="Length (s)", description="Length of the motion in seconds",
                                 default=4.0, min=0.0, max=3600.0, soft_min=1.0, soft_max=20.0,
                                 step=50, precision=1),
        "seed": IntProperty(name="Seed", description="Same seed, same settings: same motion",
                            default=0, min=0),
        "results": IntProperty(name="Results", description="How many motions to generate (each "
                               "a new action)", default=1, min=1, max=16),
        "model": EnumProperty(name="Model", items=_text_to_motion_models,
                              description="The text-to-motion model (hover an item: its speed "
                              "and what it is good for)"),
        "guidance": FloatProperty(name="Guidance", description="Classifier-free guidance: higher "
                                  "follows the prompt more closely, lower varies more",
                                  default=2.5, min=0.0, max=20.0, soft_max=8.0),
        "steps": IntProperty(name="Steps", description="Denoising steps (more: slower)",
                             default=50, min=1, max=100000, soft_min=10, soft_max=1000),
        "pace": EnumProperty(name="Pace", items=PACES, default="EVEN",
                             description="How the pelvis moves along a curve (MotionLCM)"),
        "fit_path": BoolProperty(name="Fit to Path", default=True,
                                 description="Bend the generated motion onto the path (its way "
                                 "carried along the path, the body turned with it, planted feet "
                                 "pinned again); off: only what the model's ControlNet makes of "
                                 "the path"),
        "lcm_steps": EnumProperty(name="Steps", items=LCM_STEPS, default="4",
                                  description="MotionLCM consistency steps (more: slower, "
                                  "better)"),
        "key_mode": EnumProperty(name="Keyframes", items=KEY_MODES, default="MODEL"),
        "key_percent": FloatProperty(name="Keep (%)", description="Percentage of frames kept as "
                                     "keys", default=10.0, min=0.5, max=100.0, subtype="PERCENTAGE"),
        "frame_start": IntProperty(name="Start Frame", description="Scene frame of the first "
                                   "frame of the motion", default=1),
        "handles": EnumProperty(name="Handles", items=HANDLE_KINDS, default="FREE"),
    }


#: The names of the Generate Motion settings (the scene keeps them as ``gen_<name>``).
GENERATE_FIELDS = tuple(generate_props())


def draw_generate_options(layout, owner, prefix=""):
    """Everything but the prompt, the target and the path (``prefix``: "gen_" for the scene
    settings); the model's own options only (MotionLCM: its steps; sMDM: guidance, steps; KMM
    and EMDM: none, their package's defaults)."""
    kind = selected_model_kind(owner, prefix)
    own = {"motionlcm": ("lcm_steps",), "smdm": ("guidance", "steps")}.get(kind, ())
    for name in ("seconds", "seed", "results", "model", *own):
        layout.prop(owner, prefix + name)
    draw_key_options(layout, owner, prefix)


def draw_key_options(layout, owner, prefix=""):
    """Keyframes (and the percentage), handles and the start frame of Generate Motion."""
    layout.prop(owner, prefix + "key_mode")
    if getattr(owner, prefix + "key_mode") == "PERCENT":
        layout.prop(owner, prefix + "key_percent")
    layout.prop(owner, prefix + "handles")
    layout.prop(owner, prefix + "frame_start")


def timeline_props():
    """The Generate Timeline settings the operator shares with Generate Motion's (the scene
    keeps them as ``gen_<name>``); the segments are a list of their own."""
    gen = generate_props()
    return {k: gen[k] for k in TIMELINE_FIELDS}


#: The Generate Motion settings Generate Timeline uses (steps and guidance: the model's own).
TIMELINE_FIELDS = ("model", "key_mode", "key_percent", "handles", "frame_start")


def draw_timeline_options(layout, owner, prefix=""):
    layout.prop(owner, prefix + "model")
    draw_key_options(layout, owner, prefix)


GENERATE_MODES = [
    ("PROMPT", "Prompt", "One prompt, one motion (or several results)"),
    ("TIMELINE", "Timeline", "A list of prompts, each for some seconds, made into one action "
     "with continuous motion and a marker per segment"),
]


class SPARSEMOTION_PG_segment(bpy.types.PropertyGroup):
    """One segment of the timeline: what happens, for how long, with which seed."""

    __annotations__ = {k: generate_props()[k] for k in ("prompt", "seconds", "seed")}


FILL_RANGES = [
    ("KEYS", "Between All Keys", "Every gap from the first key to the last"),
    ("SCENE", "Scene Range", "The scene's frame range (the preview range when it is on)"),
]
FILL_BONES = [
    ("ALL", "All Keyed Bones", "The motion passes through every keyed bone's keys"),
    ("SELECTED", "Selected Bones", "Only the selected bones' keys condition the motion (the "
     "others' keys are still met exactly)"),
]


def fill_props():
    """The Fill Between settings, shared by the operator and the scene settings."""
    gen = generate_props()
    return {
        "prompt": StringProperty(name="Prompt", description="What happens between the keys "
                                 "(empty: whatever moves naturally through them)", default=""),
        "frame_range": EnumProperty(name="Range", items=FILL_RANGES, default="KEYS"),
        "bones": EnumProperty(name="Constrain", items=FILL_BONES, default="ALL"),
        **{k: gen[k] for k in ("seed",)},
        "results": IntProperty(name="Results", description="How many fills: the first is "
                               "written into the action, each other one into a copy of the "
                               "action (a new action to swap in)", default=1, min=1, max=8),
        **{k: gen[k] for k in ("key_mode", "key_percent", "steps")},
    }


#: The names of the Fill Between settings (the scene keeps them as ``fill_<name>``).
FILL_FIELDS = tuple(fill_props())


def draw_fill_options(layout, owner, prefix=""):
    for name in ("seed", "results", "frame_range", "bones", "key_mode"):
        layout.prop(owner, prefix + name)
    if getattr(owner, prefix + "key_mode") == "PERCENT":
        layout.prop(owner, prefix + "key_percent")
    layout.prop(owner, prefix + "steps")


VARIATION_METHODS = [
    ("MOTIONDREAMER", "MotionDreamer", "Train a small model on the reference (about 1-3 minutes "
     "the first time, cached afterwards) and sample from it: new combinations of its local "
     "patterns. Needs PyTorch in Blender's Python"),
    ("GENMM", "GenMM", "Generative motion matching: no training, instant; rearranges patches "
     "of the reference"),
]


def variation_props():
    """The Variations settings, shared by the operator and the scene settings."""
    return {
        "count": IntProperty(name="Count", description="How many variations (each a new action)",
                             default=3, min=1, max=32),
        "seconds": FloatProperty(name="Length (s)", description="Length of each variation in "
                                 "seconds (0: as long as the reference)", default=0.0, min=0.0,
                                 max=600.0, soft_max=60.0, step=50, precision=1),
        "seed": IntProperty(name="Seed", description="Variation i uses seed + i; same seed, same "
                            "settings: same variations", default=0, min=0),
        "novelty": FloatProperty(name="Novelty", description="0: close to the reference (cooler "
                                 "sampling, some of its own moments kept); 1: novel (hotter "
                                 "sampling)", default=0.5, min=0.0, max=1.0, subtype="FACTOR"),
        "method": EnumProperty(name="Method", items=VARIATION_METHODS, default="MOTIONDREAMER"),
        "max_error": FloatProperty(name="Key Tolerance (cm)", description="Keys are placed so "
                                   "that no joint is further than this from the dense variation",
                                   default=1.0, min=0.01, max=100.0, soft_max=10.0),
    }


#: The names of the Variations settings (the scene keeps them as ``var_<name>``).
VARIATION_FIELDS = tuple(variation_props())


def draw_variation_options(layout, owner, prefix=""):
    for name in ("method", "count", "seconds", "seed", "novelty", "max_error"):
        layout.prop(owner, prefix + name)


class SPARSEMOTION_PG_settings(bpy.types.PropertyGroup):
    __annotations__ = {
        **reduce_props(),
        **{f"gen_{k}": v for k, v in generate_props().items()},
        # no poll callback on an Object pointer: bpy 4.2 crashes at exit with one; the
        # operator checks the target
        "gen_target": PointerProperty(
            name="Target", type=bpy.types.Object,
            description="Armature to animate (its bone mapping is used); empty: create the "
                        "canonical rig"),
        "gen_follow": EnumProperty(name="Follow Path", items=FOLLOW_MODES, default="NONE",
                                   description="Make the pelvis follow a path (MotionLCM)"),
        "gen_path": PointerProperty(
            name="Path", type=bpy.types.Object,
            description="A curve (Bezier, NURBS or poly; one spline) whose ground projection "
                        "the pelvis follows, or an empty keyed at frames"),
        "gen_path_collection": PointerProperty(
            name="Empties", type=bpy.types.Collection,
            description="A collection of empties keyed at frames: the pelvis is at each "
                        "empty at its key frames (one keyed at the first frame: the start)"),
        **{f"fill_{k}": v for k, v in fill_props().items()},
        **{f"var_{k}": v for k, v in variation_props().items()},
        "var_action": PointerProperty(
            name="Reference", type=bpy.types.Action,
            description="The action to vary (empty: the one the active armature plays)"),
        "gen_mode": EnumProperty(name="Mode", items=GENERATE_MODES, default="PROMPT"),
        "tl_segments": CollectionProperty(type=SPARSEMOTION_PG_segment, name="Segments"),
        "tl_index": IntProperty(name="Segment", default=0, min=0),
    }


classes = (SPARSEMOTION_PG_segment, SPARSEMOTION_PG_settings)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()
    bpy.types.Scene.sparse_motion = PointerProperty(type=SPARSEMOTION_PG_settings)


def unregister():
    del bpy.types.Scene.sparse_motion
    _unregister_classes()
