# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Motion: text → a text-to-motion model (sMDM or MotionLCM) → sparse keys on an
armature (the Blender side).

:func:`generate` does it all, blocking (headless, scripts, tests). The operator splits it:
:func:`prepare` (main thread: checks, nothing changed), :func:`sample` (any thread: the
model), :func:`apply` (main thread: writes the actions, all or nothing).

Each result becomes a new action named from the prompt, with keys on the model's own
keyframes (``key_mode="MODEL"``) or on a fraction of the frames chosen by the keyframe engine
(``"PERCENT"``), Bezier handles fitted by the keyframe engine. Without a target armature the
canonical 21-joint rig is created (one per generation; its results are all actions of it).
With a target, the motion is retargeted (its stored or detected bone mapping). The previous
action of the armature keeps a fake user; the generation settings are stored on each action
(``action["sparse_motion"]``).

The model is any installed text-to-motion package (:data:`MODEL_KINDS`, opened by
``generation.open_model``): sMDM takes ``steps`` / ``guidance``; MotionLCM takes
``lcm_steps`` (1, 2 or 4) and its package's guidance. With MotionLCM the pelvis can follow a
path (``path``: a curve or an empty keyed at frames; ``path_collection``: empties keyed at
frames; ``path_points``: a :class:`.paths.PathSource`, e.g. from a batch row): :func:`prepare`
turns it into the model's control trajectory in the generation frame (:mod:`..motion.paths`)
and :func:`apply` places the result back so the character starts at the path's start facing
along it.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..errors import InputError
from ..inference import registry as _registry
from ..inference.generation import KINDS, Generation, TextToMotionModel, open_model
from ..inference.runtime import RuntimeSettings
from ..motion import canonical as canon
from ..motion import features as _feat
from .edits import Rollback, change_scene_range
from .reduce import ReduceSettings

__all__ = ["GenerateRequest", "GenerateResult", "prepare", "sample", "apply", "generate",
           "get_model", "action_name", "clip_frames", "MODEL_KINDS", "PATH_KIND"]

KEY_MODES = ("MODEL", "PERCENT")
#: The package kinds Generate Motion can use, the default's kind first.
MODEL_KINDS = tuple(KINDS)
#: The kind that can follow a path.
PATH_KIND = "motionlcm"
#: How a path is followed: evenly over the length, or at the pace the prompt gives.
PACES = ("EVEN", "PROMPT")


@dataclass
class GenerateRequest:
    prompt: str
    seconds: float = 4.0
    seed: int = 0
    results: int = 1
    model: str = ""             # package name; "" or "DEFAULT": the default model
    guidance: float = 2.5       # sMDM (MotionLCM: its package's guidance)
    steps: int = 50             # sMDM's denoising steps
    gamma: float = 0.1          # sMDM
    lcm_steps: int = 4          # MotionLCM's steps (1, 2 or 4)
    path: object = None         # MotionLCM: a curve, or an empty keyed at frames, to follow
    path_collection: object = None  # MotionLCM: a collection of empties keyed at frames
    path_points: object = None  # MotionLCM: a blender.paths.PathSource (batch rows)
    pace: str = "EVEN"          # a path: EVEN over the length, or PROMPT (the prompt's own)
    fit_path: bool = True       # a path: bend the result onto it (motion.paths.fit_to_path)
    key_mode: str = "MODEL"     # the model's own keyframes, or PERCENT of the frames
    key_percent: float = 20.0
    handles: str = "FREE"
    frame_start: int = 1
    target: object = None       # an armature object, or None: create the canonical rig
    mapping: object = None      # the target's bone mapping (None: stored on it, or detected)
    set_frame_range: bool = True
    device: str = "AUTO"
    threads: int = 0
    backend: str = "onnx"
    path_control: object = None  # set by prepare(): the motion.paths.PathControl followed

    @property
    def follows_path(self) -> bool:
        return any(v is not None for v in (self.path, self.path_collection, self.path_points))


@dataclass
class GenerateResult:
    obj: object
    actions: list
    prompt: str
    seed: int
    frames: int
    keys: int
    key_frames: int
    model: str
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    created_rig: bool = False
    path: str = ""              # what the pelvis followed ("" none)

    def message(self) -> str:
        n = len(self.actions)
        what = f"{n} actions" if n > 1 else f"action '{self.actions[0].name}'"
        total = sum(self.timings.get(k, 0.0) for k in ("text", "sampling", "decoding", "writing"))
        along = f" along {self.path}" if self.path else ""
        return (f"Generated {what} on '{self.obj.name}'{along}: {self.frames} frames, "
                f"{self.key_frames} keyframes ({self.keys:,} keys) with {self.model}, "
                f"seed {self.seed}, {total:.2f} s")


# --------------------------------------------------------------------------- the model cache

_models: dict = {}
_models_lock = threading.Lock()


#: Set on the armature data of the canonical rig Generate Motion creates: later generations onto
#: it write the canonical motion directly (its rest pose is not a standing pose, so it could not
#: serve as a retargeting reference).
CANONICAL_RIG_TAG = "sparse_motion_canonical_rig"


def get_model(name: str = "", settings: RuntimeSettings | None = None,
              backend: str = "onnx") -> TextToMotionModel:
    """The model (``SmdmModel``, ``MotionLcmModel``, …: ``generation.open_model``) for a
    model choice, kept between generations; it loads on first use, in :func:`sample`.
    ``backend`` is sMDM's (onnx or torch)."""
    settings = settings or RuntimeSettings()
    reg = _registry.get_registry()
    if name and name not in (_registry.DEFAULT_ITEM, _registry.NONE_ITEM):
        pkg = reg.get(name, MODEL_KINDS)  # a model asked for by name must exist
    else:
        pkg = reg.default(MODEL_KINDS)
    key = (str(pkg.path.resolve()), pkg.version, backend, settings.device, settings.threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            for old in _models.values():  # one model in memory at a time
                old.release()
            _models.clear()
            extra = {"backend": backend} if pkg.kind == "smdm" else {}
            model = open_model(pkg, settings=settings, **extra)
            _models[key] = model
    return model


def release_models() -> None:
    with _models_lock:
        for m in _models.values():
            m.release()
        _models.clear()


# --------------------------------------------------------------------------- the three steps


def action_name(prompt: str, seed: int, index: int = 0, count: int = 1) -> str:
    words = " ".join(prompt.split())
    if len(words) > 40:
        words = words[:40].rsplit(" ", 1)[0] + "…"
    suffix = f" #{seed}" + (f".{index + 1}" if count > 1 else "")
    return words + suffix


def _check_target(target):
    """The retargeting checks (:func:`.retarget.check_target`), plus: still there, in this
    scene. None (create the canonical rig) passes."""
    if target is None:
        return
    from .retarget import check_target

    try:
        name = target.name
    except ReferenceError:
        raise InputError("The target armature was deleted: choose another one") from None
    check_target(target)
    if name not in bpy.context.scene.objects:
        raise InputError(f"'{name}' is not in the current scene")


def check_target_mapping(target, mapping=None):
    """:func:`_check_target`, and a target's bone mapping (``mapping``, else stored or
    detected) maps the core joints; InputError otherwise (nothing changed)."""
    _check_target(target)
    if target is not None:
        from .retarget import resolve_mapping

        missing = resolve_mapping(target, mapping).missing_core()
        if missing:
            raise InputError(f"'{target.name}' has no bones mapped for {', '.join(missing)}: "
                             "set its bone mapping in the Retarget panel")


def model_kind(model) -> str:
    return model.package.kind


def model_options(model, req: GenerateRequest) -> dict:
    """The options the model of ``req`` takes: ``steps``, ``guidance``, ``gamma`` (sMDM's from
    the request; MotionLCM: ``lcm_steps`` and its package's guidance; the other kinds (KMM,
    EMDM): their package's own steps and guidance — sMDM's settings mean nothing to them)."""
    kind = model_kind(model)
    if kind == "smdm":
        return {"steps": int(req.steps), "guidance": float(req.guidance), "gamma": float(req.gamma)}
    cfg = model.load().config
    steps = int(req.lcm_steps) if kind == PATH_KIND else int(cfg["steps"])
    return {"steps": steps, "guidance": float(cfg["guidance"]), "gamma": 0.0}


def path_placement(target, mapping=None):
    """``(a, B)``: where canonical motion lands in ``target``'s armature space (see
    :func:`.paths.world_to_canonical`); None for the rig Generate Motion creates, or one it
    made earlier (written directly, the BVH axes at 0.01 m per cm)."""
    if target is None or target.data.get(CANONICAL_RIG_TAG):
        return None
    from .retarget import canonical_placement

    return canonical_placement(target, mapping)


def path_problem(model) -> str | None:
    """Why ``model`` cannot follow a path (None: it can)."""
    if model_kind(model) != PATH_KIND:
        return (f"Follow path needs a MotionLCM model; {model.package.label} is "
                f"{model_kind(model)}: choose a MotionLCM model, or no path")
    return None


def _path_control(model, req: GenerateRequest, frames: int):
    """The :class:`..motion.paths.PathControl` of the request's path (None: no path)."""
    from . import paths

    if not req.follows_path:
        return None
    problem = path_problem(model)
    if problem:
        raise InputError(problem)
    source = req.path_points or paths.path_source(req.path, req.path_collection)
    model.load()
    height = float(model.mean[_feat.feature_layout()["root_height"]][0])
    scene = bpy.context.scene
    return paths.control_for(source, frames, model.fps, height, frame_start=req.frame_start,
                             scene_fps=scene.render.fps / scene.render.fps_base,
                             obj=req.target, placement=path_placement(req.target, req.mapping))


def prepare(req: GenerateRequest) -> tuple[TextToMotionModel, str, int]:
    """Main thread: check everything that can be checked before sampling (raises InputError
    or ModelPackageError; changes nothing). Returns the model, the prompt, frames; sets
    ``req.path_control`` when the request follows a path."""
    if req.key_mode not in KEY_MODES:
        raise InputError(f"Keyframes must be one of {KEY_MODES}")
    if not (0.0 < req.key_percent <= 100.0):
        raise InputError("Keyframe percentage must be between 0 and 100")
    if req.pace not in PACES:
        raise InputError(f"Pace must be one of {', '.join(PACES)}, got {req.pace!r}")
    check_target_mapping(req.target, req.mapping)
    model = get_model(req.model, RuntimeSettings(device=req.device, threads=int(req.threads or 0)),
                      req.backend)
    frames = clip_frames(req.seconds, model.fps)
    opts = model_options(model, req)
    prompt = model.check_request(req.prompt, frames, opts["steps"], opts["guidance"],
                                 opts["gamma"], req.results, req.key_percent / 100.0)
    req.path_control = _path_control(model, req, frames)
    return model, prompt, frames


def sample(model: TextToMotionModel, req: GenerateRequest, frames: int, progress=None,
           cancel=None) -> Generation:
    """Any thread: load (first time) and run the model (raises
    `errors.Cancelled` on cancel)."""
    if progress is not None and not model.loaded:
        progress(0.0, "loading the model")
    model.load()
    extra = {}
    pc = req.path_control
    if pc is not None:
        if req.pace == "PROMPT" and pc.points is not None:
            pc = req.path_control = _prompt_paced(model, req, frames, pc, cancel)
        extra = {"control": pc.control, "control_mask": pc.mask}
    gen = model.generate(req.prompt, frames, req.seed, results=req.results, progress=progress,
                         cancel=cancel, **model_options(model, req), **extra)
    t0 = time.perf_counter()
    for r in range(len(gen.features)):  # decoded here (timed), kept for apply()
        gen.motion(r)
    gen.timings["decoding"] = time.perf_counter() - t0
    return gen


def _prompt_paced(model, req, frames, pc, cancel):
    """``pc``'s path at the pace the prompt gives: the same request without the path first
    (result 0), its pelvis's progress along its own way per frame (``motion.paths.pace_of``),
    then the path followed at that progress (evenly when the prompt's motion hardly
    travels). The placement is the same."""
    from ..motion import paths as _paths

    free = model.generate(req.prompt, frames, req.seed, results=1, cancel=cancel,
                          **model_options(model, req))
    pace = _paths.pace_of(_feat.features_to_positions(free.features[0]))
    return _paths.path_control(pc.points, frames, model.fps, pc.height, pace=pace,
                               what=pc.label)


def clip_frames(seconds: float, fps: float) -> int:
    """The length rule: ``seconds`` at ``fps`` is round(seconds × fps) frames (halves up), the
    frames ``start … start + n - 1``, each lasting 1/fps, so the clip plays for ``seconds``
    (6 s at 30 fps: 180 frames, 1–180)."""
    return int(math.floor(float(seconds) * float(fps) + 0.5))


def _to_scene_rate(q, x, src_fps: float, dst_fps: float, frames: int):
    """The model's motion as ``frames`` frames at ``dst_fps``: frame ``j`` at time
    ``j / dst_fps`` (slerp/lerp between the model's frames); the last fraction of a model
    frame that the model's last frame does not reach holds that pose. (Resampling only the
    span between the first and last model frame gave one frame less: 120 frames at 20 fps
    span 5.95 s, 179 frames at 30 fps.)"""
    need = int(math.ceil((frames - 1) * src_fps / dst_fps - 1e-9)) + 1 - len(q)
    if need > 0:
        q = np.concatenate([q, np.repeat(q[-1:], need, axis=0)])
        x = np.concatenate([x, np.repeat(x[-1:], need, axis=0)])
    if abs(src_fps - dst_fps) > 1e-6:
        q, x = canon.resample(q, x, src_fps, dst_fps)
    return q[:frames], x[:frames]


def _scene_keys(keys, fps_src, fps_dst, frames_dst, frame_start):
    k = np.round(np.asarray(keys, dtype=np.float64) * fps_dst / fps_src)
    k = np.unique(np.clip(k, 0, frames_dst - 1))
    return tuple(float(frame_start + v) for v in k)


def write_motion(q, x, fps: float, frames: int, keys, *, obj, mapping, name: str,
                 frame_start: int, handles: str, key_percent: float, scene_fps: float,
                 rb: Rollback | None = None):
    """Canonical motion ``q, x`` at ``fps`` as a new action of ``frames`` scene frames (at
    ``scene_fps``, from ``frame_start``) that ``obj`` plays: retargeted through ``mapping``,
    or written directly onto a rig Generate Motion made, or (``obj`` None) onto a new
    canonical rig (recorded in ``rb``). Bezier keys (``handles``) on the model frames ``keys``
    (mapped to scene frames), or with ``keys`` None on ``key_percent`` % of the frames chosen
    by the keyframe engine. Returns the :class:`.bvh_io.ImportResult` or
    :class:`.retarget.RetargetResult` (``obj``, ``action``, ``reduce_result``, ``warnings``);
    the new action is recorded in ``rb``."""
    from .bvh_io import import_bvh_result
    from .retarget import retarget_motion_result

    # a rig this made earlier is the canonical skeleton itself: written directly, no retargeting
    direct = obj is None or bool(obj.data.get(CANONICAL_RIG_TAG))
    q, x = _to_scene_rate(q, x, fps, scene_fps, frames)
    if keys is not None:
        kf = _scene_keys(keys, fps, scene_fps, len(q), frame_start)
        reduce = ReduceSettings(mode="KEYS", key_frames=kf, handles=handles)
    else:
        reduce = ReduceSettings(mode="RATIO", ratio=key_percent / 100.0, handles=handles)
    if direct:
        res = import_bvh_result(canon.canonical_to_bvh(q, x, scene_fps), target=obj,
                                scale=0.01, reduce=reduce, frame_start=frame_start, name=name,
                                set_fps=False, set_frame_range=False)
        if obj is None:
            if rb is not None:
                rb.created(res.obj)
                rb.created(res.obj.data)
            res.obj.name = "Generated Motion"
            res.obj.data.name = "Generated Motion"
            res.obj.data[CANONICAL_RIG_TAG] = True
    else:
        res = retarget_motion_result(q, x, scene_fps, obj, mapping, reduce=reduce, name=name,
                                     frame_start=frame_start, resample=False, verify=False)
    if rb is not None:
        rb.created(res.action)
    return res


def make_active(obj):
    """``obj`` alone selected and active (a rig just created)."""
    for o in list(bpy.context.view_layer.objects.selected):
        o.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def apply(gen: Generation, req: GenerateRequest) -> GenerateResult:
    """Main thread: write every result as a new action; all or nothing."""
    t0 = time.perf_counter()
    _check_target(req.target)  # it may have gone while the model ran
    scene = bpy.context.scene
    scene_fps = scene.render.fps / scene.render.fps_base
    warnings, made, keys_total, key_frames, key_seconds = [], [], 0, 0, 0.0
    ua = gen.understood_as
    if ua and not ua.get("understood", True):  # say so instead of silently making something
        warnings.append(f"Prompt not understood (closest content: {ua['content']}, low "
                        "confidence): the motion may not show what was asked — the model knows "
                        "the contents listed under the prompt")
    obj = req.target
    created_rig = obj is None
    R = len(gen.features)
    F = clip_frames(req.seconds, scene_fps)
    with Rollback() as rb:
        for r in range(R):
            q, x = gen.motion(r)
            if req.path_control is not None:
                if req.fit_path:
                    q, x = _fitted(gen, r, req.path_control)
                # start at the path's start, facing along it
                q, x = req.path_control.placement.to_world(q, x)
            res = write_motion(q, x, gen.fps, F,
                               gen.keys[r] if req.key_mode == "MODEL" else None, obj=obj,
                               mapping=req.mapping, name=action_name(gen.text, gen.seed, r, R),
                               frame_start=req.frame_start, handles=req.handles,
                               key_percent=req.key_percent, scene_fps=scene_fps, rb=rb)
            obj = res.obj
            action = res.action
            action["sparse_motion"] = {
                "prompt": gen.text, "seed": int(gen.seed), "result": r, "model": gen.model,
                "steps": int(gen.steps), "guidance": float(gen.guidance),
                "gamma": float(gen.gamma), "key_mode": req.key_mode, "fps": float(gen.fps),
                "path": _path_label(req), "path_fit": bool(req.fit_path and req.path_control)}
            rr = res.reduce_result
            if rr is not None:
                keys_total += rr.keys_after
                key_seconds += rr.seconds
                key_frames = max(key_frames, rr.key_frames)
            # the earlier results of this same generation are kept on purpose
            warnings += [w for w in res.warnings if w not in warnings
                         and not any(f"'{a.name}'" in w for a in made)]
            made.append(action)
        for a in made[:-1]:
            a.use_fake_user = True  # every result survives saving; the last one plays
        if req.set_frame_range:
            change_scene_range(scene, int(req.frame_start), int(req.frame_start + F - 1), rb)
        if created_rig:
            make_active(obj)
    timings = dict(gen.timings)
    timings["writing"] = time.perf_counter() - t0  # everything done in Blender
    timings["keys"] = key_seconds  # of which: fitting and writing the F-curve keys
    return GenerateResult(obj=obj, actions=made, prompt=gen.text, seed=gen.seed, frames=F,
                          keys=keys_total, key_frames=key_frames, model=gen.model,
                          timings=timings, warnings=warnings, created_rig=created_rig,
                          path=_path_label(req))


def _fitted(gen, r, pc):
    """Result ``r`` bent onto the path it was asked to follow, its planted feet pinned again
    when the generation locks feet (``motion.paths.fit_and_pin``)."""
    from ..motion import paths as _paths

    contacts = (gen.features[r][:, _feat.feature_layout()["foot_contacts"]] if gen.foot_lock
                else None)
    return _paths.fit_and_pin(*gen.motion(r), pc, gen.fps, contacts)


def _path_label(req) -> str:
    return "" if req.path_control is None else req.path_control.label


def generate(req: GenerateRequest, progress=None, cancel=None) -> GenerateResult:
    """Blocking: :func:`prepare`, :func:`sample`, :func:`apply`."""
    model, prompt, frames = prepare(req)
    req.prompt = prompt
    gen = sample(model, req, frames, progress, cancel)
    return apply(gen, req)
