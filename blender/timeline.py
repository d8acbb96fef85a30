# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Timeline and Regenerate Segment: a timeline of prompts as ONE action (the Blender
side of :mod:`..inference.timeline`).

:func:`generate_timeline` does it all, blocking; the operator splits it like Generate Motion:
:func:`prepare` (main thread: checks, nothing changed), :func:`sample` (any thread: the model),
:func:`apply` (main thread: writes, all or nothing). The motion is written by Generate
Motion's own path (:func:`.generate.write_motion`: the canonical rig, created or made
earlier, or a target armature through its bone mapping) as one action whose sparse keys are
the union of the segments' keys. Each segment gets a timeline marker at its first frame named
``"<number>: <prompt>"`` (numbers from 1), and the action keeps the timeline as a JSON string
(``action["sparse_motion_timeline"]``, :func:`read_record`): the segments' prompts, seconds,
seeds, model frames and scene frames, the settings, and the regenerations made since.

Regenerate Segment (:func:`prepare_regenerate`, :func:`sample_regenerate`,
:func:`apply_regenerate`; blocking :func:`regenerate_segment`) resamples one segment of the
active action's timeline with :func:`..inference.timeline.regenerate`, which holds every
other frame exactly. The timeline it starts from is the one kept in memory since it was
written (by its id and history), else (the file was reloaded) rebuilt from the record — the
first generation from its seeds, then every regeneration since, in order: deterministic. The
new motion is written into a scratch action by the same path, and only the keys whose frames
lie in that segment's scene frames are moved into the action (quaternion signs and Euler
turns matched to the held neighbour); every other key stays bit-identical.
"""
from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..errors import InputError
from ..inference import timeline as _tl
from ..inference.runtime import RuntimeSettings
from ..keyframes.rig import parse_data_path
from . import actions, fcurve_io
from . import generate as gen
from .edits import Rollback, add_keys, change_scene_range

__all__ = ["TimelineRequest", "TimelineResult", "prepare", "sample", "apply",
           "generate_timeline", "RegeneratePlan", "prepare_regenerate", "sample_regenerate",
           "apply_regenerate", "regenerate_segment", "regenerate_problem", "read_record",
           "marker_name", "TIMELINE_PROPERTY"]

#: The custom property (a JSON string) that keeps the timeline on its action.
TIMELINE_PROPERTY = "sparse_motion_timeline"
RECORD_VERSION = 1
KEY_MODES = ("MODEL", "PERCENT")
#: Timelines kept in memory for Regenerate Segment (by id and history), newest last.
CACHE_SIZE = 4
_cache: OrderedDict = OrderedDict()


@dataclass
class TimelineRequest:
    segments: list              # Segment, {"prompt", "seconds", "seed"} or (text, seconds, seed)
    seed: int = 0               # a segment without its own seed gets seed + its index
    model: str = ""             # package name; "" or "DEFAULT": the default model
    key_mode: str = "MODEL"     # per segment: the model's share of keys, or PERCENT of frames
    key_percent: float = 20.0
    handles: str = "FREE"
    frame_start: int = 1
    target: object = None       # an armature, or None: create the canonical rig
    mapping: object = None      # the target's bone mapping (None: stored on it, or detected)
    set_frame_range: bool = True
    device: str = "AUTO"
    threads: int = 0
    backend: str = "onnx"
    package: object = None      # set by prepare(): the model's package


@dataclass
class TimelineResult(gen.GenerateResult):
    """Generate Motion's result for the one action of a timeline (``prompt``: the segments'
    prompts, ``seed``: the first segment's)."""

    segments: list = field(default_factory=list)  # the record's (prompt, seconds, seed, frames)
    regenerated: int | None = None   # Regenerate Segment: the segment's index

    @property
    def action(self):
        return self.actions[0]

    def message(self) -> str:
        total = sum(self.timings.get(k, 0.0) for k in ("text", "sampling", "decoding", "writing"))
        if self.regenerated is not None:
            s = self.segments[self.regenerated]
            first, last = s["frames"]
            return (f"Regenerated segment {self.regenerated + 1} ('{s['prompt']}', seed "
                    f"{s['seed']}) of '{self.action.name}': frames {first}–{last}, "
                    f"{self.key_frames} keyframes ({self.keys:,} keys), {total:.2f} s")
        return (f"Generated timeline '{self.action.name}' on '{self.obj.name}': "
                f"{len(self.segments)} segments, {self.frames} frames, {self.key_frames} "
                f"keyframes ({self.keys:,} keys) with {self.model}, {total:.2f} s")


def marker_name(index: int, prompt: str) -> str:
    """The timeline marker of segment ``index`` (from 0): ``"<index + 1>: <prompt>"``, cut to
    Blender's 63 characters."""
    name = f"{index + 1}: {' '.join(str(prompt).split())}"
    return name if len(name) <= 63 else name[:62] + "…"


def _key_fraction(key_mode: str, key_percent: float):
    if key_mode not in KEY_MODES:
        raise InputError(f"Keyframes must be one of {KEY_MODES}")
    if not 0.0 < float(key_percent) <= 100.0:
        raise InputError("Keyframe percentage must be between 0 and 100")
    return None if key_mode == "MODEL" else float(key_percent) / 100.0


def _load(model, progress):
    if progress is not None and not model.loaded:
        progress(0.0, "loading the model")
    model.load()


def _settings(req) -> RuntimeSettings:
    return RuntimeSettings(device=req.device, threads=int(req.threads or 0))


# --------------------------------------------------------------------------- generate


def prepare(req: TimelineRequest):
    """Main thread: check everything that can be checked before sampling (raises InputError
    or ModelPackageError; changes nothing). Returns the model and the checked segments; sets
    ``req.package``."""
    _key_fraction(req.key_mode, req.key_percent)
    if int(req.seed) < 0:
        raise InputError(f"The seed must be 0 or more, got {req.seed}")
    gen.check_target_mapping(req.target, req.mapping)
    model = gen.get_model(req.model, _settings(req), req.backend)
    segments = _tl.check_segments(req.segments, model.fps)
    req.package = model.package
    return model, segments


def sample(model, req: TimelineRequest, segments, progress=None, cancel=None) -> _tl.Timeline:
    """Any thread: load (first time) and run the model (raises ``errors.Cancelled`` on
    cancel)."""
    _load(model, progress)
    return _tl.generate(model, segments, seed=int(req.seed),
                        key_fraction=_key_fraction(req.key_mode, req.key_percent),
                        progress=progress, cancel=cancel)


def _scene_frames(tl: _tl.Timeline, scene_fps: float, frame_start: int):
    """``(frames, [[first, last], …])``: the timeline's length at ``scene_fps`` and each
    segment's scene frames (its first frame as the model frame maps, to the frame before the
    next segment's first)."""
    F = gen.clip_frames(tl.frames / tl.fps, scene_fps)
    starts = [int(gen._scene_keys([a], tl.fps, scene_fps, F, frame_start)[0])
              for a, _b in tl.ranges]
    ends = [s - 1 for s in starts[1:]] + [int(frame_start) + F - 1]
    return F, [[s, e] for s, e in zip(starts, ends)]


def _record(tl, pkg, scene_fps, frame_start, handles, frames, mapping, reference):
    seeds = tl.seeds()
    mapping = mapping.to_dict() if hasattr(mapping, "to_dict") else mapping
    return {
        "version": RECORD_VERSION, "id": uuid.uuid4().hex, "model": pkg.name,
        "model_version": pkg.version, "fps": float(tl.fps), "scene_fps": float(scene_fps),
        "frame_start": int(frame_start), "frames": int(frames[0]), "seed": int(tl.seed),
        "key_fraction": float(tl.key_fraction), "foot_lock": bool(tl.foot_lock),
        "method": tl.method, "handles": handles, "mapping": mapping, "reference": reference,
        "segments": [{"prompt": s.text, "seconds": float(s.seconds), "seed": int(seeds[i]),
                      "range": [int(a), int(b)], "frames": frames[1][i]}
                     for i, (s, (a, b)) in enumerate(zip(tl.segments, tl.ranges))],
        "base": [{"prompt": s.text, "seconds": float(s.seconds), "seed": int(seeds[i])}
                 for i, s in enumerate(tl.segments)],
        "history": []}


def _cache_key(record) -> tuple:
    return record["id"], json.dumps(record["history"])


def _remember(record, tl):
    key = _cache_key(record)
    _cache[key] = tl
    _cache.move_to_end(key)
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)


def forget():
    """Drop the timelines kept in memory (they are rebuilt from the record when needed)."""
    _cache.clear()


def _reference(res):
    ref = getattr(res, "reference", None)
    return None if ref is None else ref.description


def _written_keys(res):
    rr = res.reduce_result
    return (rr.keys_after, rr.key_frames) if rr is not None else (0, 0)


def apply(tl: _tl.Timeline, req: TimelineRequest) -> TimelineResult:
    """Main thread: write the timeline as one new action with a marker per segment; all or
    nothing."""
    t0 = time.perf_counter()
    gen._check_target(req.target)  # it may have gone while the model ran
    scene = bpy.context.scene
    scene_fps = scene.render.fps / scene.render.fps_base
    frames = _scene_frames(tl, scene_fps, req.frame_start)
    texts = [s.text for s in tl.segments]
    name = gen.action_name("Timeline: " + " / ".join(texts), tl.seeds()[0])
    with Rollback() as rb:
        res = gen.write_motion(tl.quats, tl.root, tl.fps, frames[0], tl.all_keys(),
                               obj=req.target, mapping=req.mapping, name=name,
                               frame_start=req.frame_start, handles=req.handles,
                               key_percent=req.key_percent, scene_fps=scene_fps, rb=rb)
        obj, action = res.obj, res.action
        record = _record(tl, req.package, scene_fps, req.frame_start, req.handles, frames,
                         req.mapping, _reference(res))
        action[TIMELINE_PROPERTY] = json.dumps(record)
        for i, (text, (first, _last)) in enumerate(zip(texts, frames[1])):
            marker = scene.timeline_markers.new(marker_name(i, text), frame=first)
            rb.restore(lambda m=marker: scene.timeline_markers.remove(m))
        if req.set_frame_range:
            change_scene_range(scene, int(req.frame_start),
                               int(req.frame_start) + frames[0] - 1, rb)
        if req.target is None:
            gen.make_active(obj)
    _remember(record, tl)
    timings = dict(tl.timings)
    timings["writing"] = time.perf_counter() - t0
    keys, key_frames = _written_keys(res)
    return TimelineResult(obj=obj, actions=[action], prompt=" / ".join(texts),
                          seed=tl.seeds()[0], segments=record["segments"], frames=frames[0],
                          keys=keys, key_frames=key_frames, model=tl.model, timings=timings,
                          warnings=list(res.warnings), created_rig=req.target is None)


def generate_timeline(req: TimelineRequest, progress=None, cancel=None) -> TimelineResult:
    """Blocking: :func:`prepare`, :func:`sample`, :func:`apply`."""
    model, segments = prepare(req)
    return apply(sample(model, req, segments, progress, cancel), req)


# --------------------------------------------------------------------------- the record


def read_record(action) -> dict:
    """The timeline kept on ``action`` (InputError when there is none or it is unreadable)."""
    text = action.get(TIMELINE_PROPERTY) if action is not None else None
    if text is None:
        raise InputError(f"Action '{action.name}' was not made by Generate Timeline: it has no "
                         "timeline segments to regenerate")
    try:
        record = json.loads(str(text))
        segments = record["segments"]
        for key in ("id", "model", "model_version", "fps", "scene_fps", "frame_start",
                    "frames", "seed", "key_fraction", "base", "history", "handles"):
            record[key]
        for s in segments:
            s["prompt"], s["seconds"], s["seed"], s["range"], s["frames"]
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"The timeline kept on action '{action.name}' is unreadable "
                         f"({type(exc).__name__}: {exc}): generate the timeline again") from None
    if record.get("version") != RECORD_VERSION:
        raise InputError(f"The timeline kept on action '{action.name}' is version "
                         f"{record.get('version')}; this extension reads version "
                         f"{RECORD_VERSION}: generate the timeline again")
    return record


def timeline_action(obj):
    """The action ``obj`` plays when it carries a timeline, else None."""
    adt = getattr(obj, "animation_data", None)
    action = adt.action if adt is not None else None
    return action if action is not None and TIMELINE_PROPERTY in action else None


def regenerate_problem(obj) -> str | None:
    """Why Regenerate Segment cannot run on ``obj`` (None: it can)."""
    problem = actions.editable_action_problem(
        obj, "Select the armature that plays a timeline",
        "select the armature that plays a timeline", "plays no action: generate a timeline first")
    if problem is None and TIMELINE_PROPERTY not in obj.animation_data.action:
        return (f"Action '{obj.animation_data.action.name}' was not made by Generate Timeline: "
                "generate a timeline first")
    return problem


# --------------------------------------------------------------------------- regenerate


@dataclass
class RegeneratePlan:
    obj: object
    action: object
    record: dict
    index: int
    seed: int
    text: str
    model: object
    timeline: object = None     # the timeline kept in memory (None: rebuilt in sample)


def prepare_regenerate(obj, index: int, seed: int = -1, prompt: str = "", device="AUTO",
                       threads: int = 0) -> RegeneratePlan:
    """Main thread: check everything (raises InputError or ModelPackageError; changes
    nothing). ``seed`` < 0: the segment's seed + 1000; ``prompt`` empty: the segment's."""
    from ..inference.errors import ModelPackageError

    problem = regenerate_problem(obj)
    if problem:
        raise InputError(problem)
    action = obj.animation_data.action
    record = read_record(action)
    gen.check_target_mapping(obj, record.get("mapping"))
    n = len(record["segments"])
    if not 0 <= int(index) < n:
        raise InputError(f"There is no segment {int(index) + 1}: the timeline of "
                         f"'{action.name}' has {n}")
    segment = record["segments"][int(index)]
    text = (prompt or "").strip() or segment["prompt"]
    seed = int(seed) if int(seed) >= 0 else int(segment["seed"]) + 1000
    try:
        model = gen.get_model(record["model"], RuntimeSettings(device=device,
                                                               threads=int(threads or 0)))
    except ModelPackageError as exc:
        raise ModelPackageError(f"The timeline of '{action.name}' was made with the model "
                                f"'{record['model']}': {exc}") from None
    kept = _cache.get(_cache_key(record))
    pkg = model.package
    if kept is None and pkg.version != record["model_version"]:
        raise InputError(f"The timeline of '{action.name}' was made with {record['model']} "
                         f"{record['model_version']}; the installed one is {pkg.version}, so "
                         "the segments around cannot be rebuilt: generate the timeline again")
    return RegeneratePlan(obj=obj, action=action, record=record, index=int(index), seed=seed,
                          text=text, model=model, timeline=kept)


def rebuild(model, record, progress=None, cancel=None) -> _tl.Timeline:
    """The timeline a record describes, made again: the first generation from its seeds,
    then each regeneration since, in order."""
    steps = 1 + len(record["history"])

    def part(k):
        if progress is None:
            return None
        return lambda f, status="": progress((k + float(f)) / steps, f"rebuilding: {status}")

    tl = _tl.generate(model, record["base"], seed=int(record["seed"]),
                      key_fraction=float(record["key_fraction"]),
                      foot_lock=bool(record.get("foot_lock", True)),
                      method="auto" if record.get("method") == "native" else "crossfade",
                      progress=part(0), cancel=cancel)
    for k, (index, seed, text) in enumerate(record["history"], 1):
        tl = _tl.regenerate(model, tl, int(index), seed=int(seed), text=text,
                            progress=part(k), cancel=cancel)
    if [list(r) for r in tl.ranges] != [s["range"] for s in record["segments"]]:
        raise InputError("The timeline could not be rebuilt as it was written (its segments' "
                         "frames differ): generate the timeline again")
    return tl


def sample_regenerate(plan: RegeneratePlan, progress=None, cancel=None) -> _tl.Timeline:
    """Any thread: the timeline (kept, else rebuilt) with the segment resampled."""
    _load(plan.model, progress)
    tl = plan.timeline
    if tl is None:
        sub = None if progress is None else (lambda f, s="": progress(0.8 * f, s))
        tl = rebuild(plan.model, plan.record, sub, cancel)
    sub = None if progress is None or plan.timeline is not None else (
        lambda f, s="": progress(0.8 + 0.2 * f, s))
    out = _tl.regenerate(plan.model, tl, plan.index, seed=plan.seed, text=plan.text,
                         progress=sub or progress, cancel=cancel)
    out.timings["rebuilt"] = plan.timeline is None
    return out


def _scratch_keys(tl, record, obj, action, first, last):
    """The timeline ``tl`` written by Generate Motion's path into a scratch action of ``obj``
    (removed again; ``obj`` plays ``action`` as before): ``(keys, values, ref)`` — the keys
    of every curve (``{(path, index): keys}``, :func:`.fcurve_io.read_keys`), each curve's
    value at ``ref``, the scene frame of the held neighbour's key next to ``first``–``last``
    (None: the timeline has one segment)."""
    ref = _reference_frame(actions.channels_for(obj), first, last)
    slot = actions.assigned_slot(obj)
    fake = action.use_fake_user
    res = None
    try:
        res = gen.write_motion(tl.quats, tl.root, tl.fps, int(record["frames"]), tl.all_keys(),
                               obj=obj, mapping=record.get("mapping"), name="timeline scratch",
                               frame_start=int(record["frame_start"]),
                               handles=record["handles"], key_percent=100.0,
                               scene_fps=float(record["scene_fps"]))
        if _reference(res) != record.get("reference"):
            raise InputError(f"'{obj.name}' would be retargeted from {_reference(res)} now, "
                             f"the timeline was from {record.get('reference')}: set the "
                             "Reference Frame in the Retarget panel to match, or generate the "
                             "timeline again")
        keys, at = {}, {}
        for fc in actions.channels_for(obj, res.action).fcurves:
            key = (fc.data_path, fc.array_index)
            keys[key] = fcurve_io.read_keys(fc)
            at[key] = None if ref is None else fc.evaluate(ref)
        return keys, at, ref
    finally:
        actions.reassign(obj, action, slot)
        action.use_fake_user = fake
        if res is not None:
            bpy.data.actions.remove(res.action)


def _reference_frame(channels, first, last):
    """The held key nearest the segment ``first``–``last``: the last before it, else the first
    after it (None: no key outside it)."""
    frames = np.unique(np.concatenate([fcurve_io.key_frames(fc) for fc in channels.fcurves]
                                      or [np.zeros(0)]))
    before = frames[frames < first - 0.5]
    if len(before):
        return float(before[-1])
    after = frames[frames > last + 0.5]
    return float(after[0]) if len(after) else None


def _matched(keys, path, at_new, at_old):
    """``keys`` (the new segment's keys of one curve, a copy) moved onto the held neighbour's
    branch: a whole number of turns for an Euler angle (the quaternion's sign is matched per
    bone by :func:`_quat_signs`)."""
    if at_new is None or at_old is None or not path.endswith("rotation_euler"):
        return keys
    return _shifted(keys, 2.0 * np.pi * np.round((at_old - at_new) / (2.0 * np.pi)), 1.0)


def _shifted(keys, offset, sign):
    out = dict(keys)
    for p in ("co", "handle_left", "handle_right"):
        v = np.array(keys[p], np.float32)
        v[:, 1] = sign * v[:, 1] + offset
        out[p] = v
    return out


def _quat_signs(new_at, channels, ref):
    """{data path: -1 or 1}: the sign that puts each bone's new quaternion in the hemisphere of
    the held key at ``ref``."""
    signs = {}
    if ref is None:
        return signs
    paths = {path for path, _i in new_at if path.endswith("rotation_quaternion")}
    for path in paths:
        old = [channels.find(path, i) for i in range(4)]
        new = [new_at.get((path, i)) for i in range(4)]
        if any(o is None for o in old) or any(v is None for v in new):
            continue
        dot = float(np.dot([o.evaluate(ref) for o in old], new))
        signs[path] = -1.0 if dot < 0 else 1.0
    return signs


def _in_range(keys, first, last):
    f = keys["co"][:, 0]
    return (f >= first - 1e-3) & (f <= last + 1e-3)


def _segment_keys(new, first, last, frames):
    """The new keys of one curve inside ``first``–``last``; a curve written constant (two keys
    at the ends of the timeline) gets flat keys on the segment's ``frames``."""
    inside = _in_range(new, first, last)
    if inside.any() or not len(new["co"]) or len(frames) == 0:
        return {p: v[inside] for p, v in new.items()}
    v = float(new["co"][0, 1])
    k = len(frames)
    one = {p: np.repeat(val[:1], k, axis=0) for p, val in new.items()}
    for p in ("co", "handle_left", "handle_right"):
        one[p] = np.stack([frames, np.full(k, v)], 1).astype(np.float32)
    return one


def apply_regenerate(tl: _tl.Timeline, plan: RegeneratePlan) -> TimelineResult:
    """Main thread: the segment's keys replaced in the action (the other segments' keys are
    not touched), the record and the segment's marker updated; all or nothing."""
    t0 = time.perf_counter()
    obj, action = plan.obj, plan.action
    problem = regenerate_problem(obj)
    if problem:
        raise InputError(problem)
    if obj.animation_data.action != action or read_record(action) != plan.record:
        raise InputError(f"'{obj.name}' plays another action or timeline now: regenerate again")
    record = json.loads(json.dumps(plan.record))
    i = plan.index
    segment = record["segments"][i]
    first, last = segment["frames"]
    new_keys, new_at, ref = _scratch_keys(tl, record, obj, action, first, last)
    channels = actions.channels_for(obj)
    signs = _quat_signs(new_at, channels, ref)
    seg_frames = np.unique(np.concatenate(
        [k["co"][_in_range(k, first, last), 0] for k in new_keys.values()] or [np.zeros(0)]))
    scene = bpy.context.scene
    n_keys = 0
    with Rollback() as rb:
        for (path, index), new in new_keys.items():
            fc = channels.find(path, index)
            at_old = None if fc is None or ref is None else fc.evaluate(ref)
            part = _segment_keys(new, first, last, seg_frames)
            part = _shifted(part, 0.0, signs.get(path, 1.0)) if path in signs else part
            part = _matched(part, path, new_at[(path, index)], at_old)
            add_keys(channels, (path, index), parse_data_path(path)[0], fc, part, rb,
                     replace=lambda old: _in_range(old, first, last))
            n_keys += len(part["co"])
        old_text = segment["prompt"]
        segment.update(prompt=tl.segments[i].text, seed=int(tl.seeds()[i]))
        record["history"].append([i, int(plan.seed), tl.segments[i].text])
        before = action[TIMELINE_PROPERTY]
        rb.restore(lambda: action.__setitem__(TIMELINE_PROPERTY, before))
        action[TIMELINE_PROPERTY] = json.dumps(record)
        if segment["prompt"] != old_text:
            for m in scene.timeline_markers:
                if m.frame == first and m.name == marker_name(i, old_text):
                    rb.restore(lambda m=m, old=m.name: setattr(m, "name", old))
                    m.name = marker_name(i, segment["prompt"])
    _remember(record, tl)
    timings = dict(tl.timings)
    timings.pop("rebuilt", None)
    timings["writing"] = time.perf_counter() - t0
    warnings = []
    if plan.timeline is None:
        warnings.append("The timeline was rebuilt from its record first (not in memory since "
                        "the file was opened)")
    return TimelineResult(obj=obj, actions=[action], prompt=segment["prompt"],
                          seed=segment["seed"], segments=record["segments"],
                          frames=int(record["frames"]), keys=n_keys, key_frames=len(seg_frames),
                          model=tl.model, timings=timings, warnings=warnings, regenerated=i)


def regenerate_segment(obj, index: int, seed: int = -1, prompt: str = "", progress=None,
                       cancel=None, **settings) -> TimelineResult:
    """Blocking: :func:`prepare_regenerate`, :func:`sample_regenerate`,
    :func:`apply_regenerate`."""
    plan = prepare_regenerate(obj, index, seed, prompt, **settings)
    return apply_regenerate(sample_regenerate(plan, progress, cancel), plan)
