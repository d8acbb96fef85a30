# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill Between: motion between the animator's own keys on an armature's action (the Blender
side of :mod:`..inference.inbetween`).

:func:`fill_between` does it all, blocking. The operator splits it like Generate Motion:
:func:`prepare` (main thread: checks, reads the animation; nothing changed), :func:`sample`
(any thread: the model), :func:`apply` (main thread: writes the keys, all or nothing).

The armature's animation over the range is read as Blender evaluates it and turned into
canonical motion (:func:`..retarget.solve.source_to_canonical`; the canonical rig Generate
Motion creates reads back exactly), resampled to the model's 20 fps; the frames where the
animator keyed a bone are its known frames (its rotation; the hips' keys also fix the root).
The filled motion goes back onto the rig through the retargeting solver, at the scene's
frame rate; every F-curve is then offset (smoothstep between its keys,
:func:`..inference.inbetween.offset_blend`) so that it meets the animator's keys exactly, and
new Bezier keys with fitted handles are added on the model's keyframes between them and
beside the animator's keys (their handles, kept, are part of the fit). The
animator's keys themselves are never rewritten: their frames, values, handles and types are
bit-identical afterwards.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..errors import InputError
from ..inference import inbetween as ib
from ..inference.runtime import RuntimeSettings
from ..keyframes import bezier
from ..keyframes.continuity import _flip, _flip_columns, _wrap, euler_filter, quat_continuous
from ..keyframes.rig import bone_data_path, parse_data_path
from ..motion import canonical as canon
from ..retarget import conventions as cv
from ..retarget import solve as rsolve
from . import actions, fcurve_io
from . import retarget as bl_rt
from .edits import Rollback, add_keys

__all__ = ["FillRequest", "FillResult", "FillPlan", "prepare", "sample", "apply",
           "fill_between", "fill_problem"]

RANGES = ("KEYS", "SCENE")
KEY_MODES = ("MODEL", "PERCENT")
#: The most results one fill makes (the first in place, the others as new actions).
MAX_RESULTS = 8
#: Keys further apart than this (cm of hip travel per second) are a teleport warning.
TELEPORT_CM_S = 1000.0


@dataclass
class FillRequest:
    obj: object
    prompt: str = ""
    seed: int = 0
    results: int = 1            # > 1: the others go into copies of the action (alternatives)
    frame_range: str = "KEYS"   # KEYS: first to last key; SCENE: the scene's (preview) range
    bones: str = "ALL"          # constrained bones: ALL keyed bones, or the SELECTED ones
    key_mode: str = "MODEL"     # keys on the model's keyframes, or PERCENT of the frames
    key_percent: float = 20.0
    steps: int = 50
    guidance: float = 2.5
    strength: float | None = None  # < 1: start from what plays now, noised; None: the model's
                                   # (see SmdmModel.fill)
    model: str = ""
    device: str = "AUTO"
    threads: int = 0


@dataclass
class FillPlan:
    """What :func:`prepare` read: the range, the rig's animated curves, the known poses."""
    req: FillRequest
    action: object
    first: int
    last: int
    fps: float
    known: ib.Keyframes        # at the model's frame rate
    key_frames: np.ndarray     # scene frames with keys of the constrained bones in the range
    mapping: object
    direct: bool               # the canonical skeleton itself
    warnings: list = field(default_factory=list)
    model: object = None
    prompt: str = ""


@dataclass
class FillResult:
    obj: object
    action: object
    first: int
    last: int
    user_keys: int
    new_keys: int
    key_frames: int
    bones: int
    model: str
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    alternatives: list = field(default_factory=list)  # the other results: new actions

    def message(self) -> str:
        total = sum(self.timings.get(k, 0.0) for k in ("text", "sampling", "decoding", "writing"))
        more = ""
        if self.alternatives:
            names = ", ".join(f"'{a.name}'" for a in self.alternatives)
            more = (f"; {len(self.alternatives)} more result"
                    f"{'s' if len(self.alternatives) > 1 else ''} as new actions ({names}, "
                    "kept with a fake user: swap one in from the Action Editor)")
        return (f"Filled frames {self.first}–{self.last} of '{self.action.name}' between "
                f"{self.user_keys} keyed frames: {self.new_keys:,} keys on {self.key_frames} "
                f"new frames, {self.bones} bones, with {self.model}, {total:.2f} s{more}")


# --------------------------------------------------------------------------- checks


def fill_problem(obj) -> str | None:
    """Why Fill Between cannot run on ``obj`` (None: it can)."""
    return actions.editable_action_problem(obj, "Select an armature with keys to fill between",
                                           "select an armature with keys",
                                           "has no action: key some poses first")


def _bone_curves(obj, channels):
    """bone → {prop: [fcurves]} of the pose bones' transform curves."""
    out = {}
    for fc in channels.fcurves:
        bone, prop = parse_data_path(fc.data_path)
        if bone is None or prop is None or bone not in obj.pose.bones:
            continue
        out.setdefault(bone, {}).setdefault(prop, []).append(fc)
    return out


def _keys_in(curves, first, last):
    frames = [fcurve_io.key_frames(fc) for fc in curves if len(fc.keyframe_points)]
    if not frames:
        return np.zeros(0)
    f = np.unique(np.concatenate(frames))
    return f[(f >= first - 1e-6) & (f <= last + 1e-6)]


def prepare(req: FillRequest) -> FillPlan:
    """Main thread: check everything and read the animation (raises InputError or
    ModelPackageError; changes nothing)."""
    from .generate import get_model

    obj = req.obj
    problem = fill_problem(obj)
    if problem:
        raise InputError(problem)
    bl_rt.check_target(obj, "armature")
    if obj.name not in bpy.context.scene.objects:
        raise InputError(f"'{obj.name}' is not in the current scene")
    if req.frame_range not in RANGES or req.bones not in ("ALL", "SELECTED") \
            or req.key_mode not in KEY_MODES:
        raise InputError("Unknown range, bones or keyframes option")
    if not 0.0 < req.key_percent <= 100.0:
        raise InputError("Keyframe percentage must be between 0 and 100")
    if not 1 <= int(req.results) <= MAX_RESULTS:
        raise InputError(f"Results must be between 1 and {MAX_RESULTS}")
    action = obj.animation_data.action
    channels = actions.channels_for(obj)
    curves = _bone_curves(obj, channels)
    all_curves = [fc for props in curves.values() for fcs in props.values() for fc in fcs]
    if not any(len(fc.keyframe_points) for fc in all_curves):
        raise InputError(f"Action '{action.name}' has no bone keys to fill between")
    scene = bpy.context.scene
    if req.frame_range == "SCENE":
        first, last = ((scene.frame_preview_start, scene.frame_preview_end)
                       if scene.use_preview_range else (scene.frame_start, scene.frame_end))
    else:
        first, last = fcurve_io.frame_range([fc for fc in all_curves if len(fc.keyframe_points)])
    mapping = bl_rt.resolve_mapping(obj)
    constrained = set(curves)
    if req.bones == "SELECTED":
        constrained = {b.name for b in obj.data.bones if b.select} & constrained
        if not constrained:
            raise InputError("No selected bone has keys: select the keyed bones to constrain, "
                             "or constrain all keyed bones")
    keyed = _keys_in([fc for b in constrained for fcs in curves[b].values() for fc in fcs],
                     first, last)
    if len(keyed) == 0:
        raise InputError(f"No keys between frames {first} and {last}: key the poses to fill "
                         "between, or change the range")
    if len(keyed) == 1:
        raise InputError(f"All the keys in frames {first}–{last} are on frame "
                         f"{keyed[0]:g}: key at least two frames to fill between them")
    fps = scene.render.fps / scene.render.fps_base
    settings = RuntimeSettings(device=req.device, threads=int(req.threads or 0))
    model = get_model(req.model, settings)
    if model.package.kind != "smdm":
        raise InputError(f"Fill Between needs an sMDM model; {model.package.label} is "
                         f"{model.package.kind}: choose an sMDM model")
    model.load()
    source, _first, _label = bl_rt.source_from_armature(obj, (first, last), mapping)
    q, x = rsolve.source_to_canonical(source)
    q20, x20 = canon.resample(q, x, fps, model.fps)
    N = len(q20)
    to_model = lambda f: np.clip(np.round((np.asarray(f) - first) * model.fps / fps), 0,  # noqa: E731
                                 N - 1).astype(np.int64)
    joints = np.zeros((N, len(cv.JOINTS)), bool)
    root = np.zeros(N, bool)
    ends = [first, last]
    for j, name in enumerate(cv.JOINTS):
        bone = mapping.mapped.get(name)
        if bone is None or bone not in constrained:
            continue
        kf = _keys_in([fc for fcs in curves[bone].values() for fc in fcs], first, last)
        joints[to_model(np.r_[kf, ends]), j] = True
        if name == "Hips":
            root[to_model(np.r_[kf, ends])] = True
    joints[to_model(ends)] = True  # the range's ends join what plays outside it
    root[to_model(ends)] = True
    known = ib.Keyframes(q20, x20, joints, root)
    warnings = []
    kr = np.flatnonzero(root)
    if len(kr) > 1:
        step = np.linalg.norm(np.diff(x20[kr][:, [0, 2]], axis=0), axis=1)
        speed = step / (np.diff(kr) / model.fps)
        if np.any(speed > TELEPORT_CM_S):
            i = int(np.argmax(speed))
            warnings.append(f"The keys at frames {first + kr[i] * fps / model.fps:.0f} and "
                            f"{first + kr[i + 1] * fps / model.fps:.0f} are {step[i] / 100:.1f} m "
                            f"apart ({speed[i] / 100:.0f} m/s): nobody moves that fast, the "
                            "fill will look like a teleport")
    plan = FillPlan(req=req, action=action, first=int(first), last=int(last), fps=fps,
                    known=known, key_frames=keyed, mapping=mapping,
                    direct=bl_rt._canonical_layout(obj) is not None, warnings=warnings,
                    model=model, prompt=(req.prompt or "").strip())
    model.check_request(plan.prompt or "-", N, req.steps, req.guidance, model.config["gamma"],
                        1, req.key_percent / 100.0)
    return plan


def sample(plan: FillPlan, progress=None, cancel=None):
    """Any thread: the model (raises ``errors.Cancelled`` on cancel)."""
    req = plan.req
    frac = None if req.key_mode == "MODEL" else req.key_percent / 100.0
    return plan.model.fill(plan.known, plan.prompt, int(req.seed), steps=int(req.steps),
                           guidance=float(req.guidance), key_fraction=frac,
                           results=int(req.results),
                           strength=req.strength, progress=progress, cancel=cancel)


# --------------------------------------------------------------------------- writing


def _rig_values(plan: FillPlan, q, x):
    """Canonical motion at the scene rate → {(data path, index): (F,) values} of the rig's
    bones (the retargeting solver, as Retarget writes them)."""
    obj = plan.req.obj
    mapping = plan.mapping
    reference = bl_rt.reference_pose(obj, mapping, bl_rt._reference_frame(obj, None))
    rig = bl_rt.target_rig(obj, reference)
    source = rsolve.SourceMotion.from_canonical(q, x, plan.fps)
    sol = rsolve.solve(source, rig, mapping.bones, root=mapping.root,
                       hold=bl_rt._held_bones(rig, mapping, reference))
    out = {}
    for bone, (quat, loc) in sol.keyed.items():
        pb = obj.pose.bones[bone]
        prop, vals = bl_rt._rotation_values(pb, quat_continuous(quat))
        for i in range(vals.shape[1]):
            out[(bone_data_path(bone, prop), i)] = (bone, prop, vals[:, i])
        if loc is not None:
            for i in range(3):
                out[(bone_data_path(bone, "location"), i)] = (bone, "location", loc[:, i])
    return out


def _match_branch(vals, at, target, prop):
    """Generated values of one channel shifted to the animator's branch at row ``at``
    (quaternion sign is handled per bone; Euler angles by whole turns)."""
    if prop == "rotation_euler":
        return vals + 2.0 * np.pi * np.round((target - vals[at]) / (2.0 * np.pi))
    return vals


def _quat_signs(values, curves, rows_of, first):
    """Flip a bone's generated quaternion (all four channels) to the hemisphere of the
    animator's value at its first key in the range."""
    cols = sorted(values)
    q = np.stack([values[c] for c in cols], axis=1)
    fcs = [curves.get(c) for c in cols]
    if any(fc is None for fc in fcs):
        return values
    rows = rows_of(fcs[0])
    if len(rows) == 0:
        return values
    f = first + rows[0]
    user = np.array([fc.evaluate(f) for fc in fcs])
    if user @ q[rows[0]] < 0:
        q = -q
    return {c: q[:, k] for k, c in enumerate(cols)}


def _euler_branch(values, curves, rows_of, first, order):
    """A bone's generated Euler angles (all three channels, continuous) on the animator's
    branch at each of the bone's keys in the range: of the two equivalent triples
    (``keyframes.continuity``: ``(a + π, π − b, c + π)``) the one closer to the animator's
    angles there; where consecutive keys want different branches the switch is made where
    the two triples are closest between them (near gimbal lock, where it is nearly
    continuous), then unwrapped. The offset to the animator's keys is per channel: from the
    other branch it bent the bone through other rotations between the keys (a knee folded
    backwards: 53 cm a frame at the toes)."""
    cols = sorted(values)
    fcs = [curves.get(c) for c in cols]
    if len(cols) != 3 or any(fc is None or not len(fc.keyframe_points) for fc in fcs):
        return values
    rows = rows_of(fcs[0])
    if len(rows) == 0:
        return values
    e = np.stack([values[c] for c in cols], axis=1)
    flipped = _flip(e, _flip_columns(order))
    user = np.array([[fc.evaluate(first + r) for fc in fcs] for r in rows])
    want = (np.linalg.norm(_wrap(flipped[rows] - user), axis=1)
            < np.linalg.norm(_wrap(e[rows] - user), axis=1))
    if not want.any():
        return values
    gap = np.linalg.norm(_wrap(flipped - e), axis=1)
    branch = np.zeros(len(e), bool)
    branch[:rows[0] + 1] = want[0]
    branch[rows[-1]:] = want[-1]
    for k in range(len(rows) - 1):
        a, b = rows[k], rows[k + 1]
        m = a + int(np.argmin(gap[a:b + 1])) if want[k] != want[k + 1] else b + 1
        m = min(max(m, a + 1), b)
        branch[a:m] = want[k]
        branch[m:b + 1] = want[k + 1]
    e = np.unwrap(np.where(branch[:, None], flipped, e), axis=0)
    return {c: e[:, k] for k, c in enumerate(cols)}


def _new_keys(frames, values, hl, hr):
    """New Bezier keys at ``frames`` with ``values`` and FREE handles ``hl``/``hr`` ((K, 2): x
    and y, :func:`_fit_new_keys`), in :func:`.fcurve_io.read_keys`' form."""
    k = len(frames)
    new = {"co": np.stack([frames, values], 1), "handle_left": np.asarray(hl),
           "handle_right": np.asarray(hr),
           "interpolation": np.full(k, fcurve_io.INTERPOLATION_BEZIER, np.int32),
           "handle_left_type": np.full(k, fcurve_io.HANDLE_TYPES["FREE"], np.int32),
           "handle_right_type": np.full(k, fcurve_io.HANDLE_TYPES["FREE"], np.int32),
           "easing": np.zeros(k, np.int32), "type": np.zeros(k, np.int32),
           "back": np.full(k, 1.70158, np.float32), "amplitude": np.full(k, 0.8, np.float32),
           "period": np.full(k, 4.1, np.float32)}
    return new


#: New keys' handles reach a third of the way to the neighbouring key (with the animator's
#: handle, however long, Blender's curve stays monotone in time).
_THIRD = 1.0 / 3.0
#: Every animator's key in the range gets a new key this close on either side (unless a key
#: is already as close): their handles, kept as they were keyed for the old gaps, then shape
#: only that short stretch.
NEAR_SECONDS = 1.0 / 15.0


def _beside(user, keys, first, last, near):
    """Frames ``near`` before and after each of the animator's keys ``user`` (ints) inside
    ``first``–``last`` where no key of ``keys`` is that close already."""
    user = np.asarray(user, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64)
    out = []
    for u in user[(user >= first) & (user <= last)]:
        for g in (u - near, u + near):
            if first <= g <= last and not np.any((keys != u) & (np.abs(keys - u) <= near)
                                                 & (np.sign(keys - u) == np.sign(g - u))):
                out.append(g)
    return np.unique(np.asarray(out, dtype=np.int64))


def _fit_new_keys(old, new, vals, first, last, original):
    """Values and FREE handles ``(kv (K,), hl (K, 2), hr (K, 2))`` of the new keys at scene
    frames ``new`` (sorted ints in the range) so that the curve Blender draws through them and
    the animator's keys ``old`` (:func:`_read_keys`; None for a new curve) follows ``vals``
    (one value a frame of the range) — and, outside the range, ``original(frame)`` (what the
    curve plays now).

    The animator's keys keep their handles bit for bit, so the segments next to them are
    fitted with those handles as Blender draws them (shortened to the segment,
    :func:`..keyframes.bezier.clamp_handle`; a handle keyed for a 30-frame gap reaches past a
    new key 2 frames away): only the new key's handle is fitted there (a third of the way, so
    Blender's curve stays monotone in time), all segments at once
    (:func:`..keyframes.bezier.fit_segments_given`). A fit that took both handles as free and
    a third long shaped the new key's handle for a curve Blender never draws (jumps of 30 cm
    a frame at the feet); :func:`_beside` keeps the animator's handles to short stretches."""
    vals = np.asarray(vals, dtype=np.float64)
    F = len(vals)
    new = np.asarray(new, dtype=np.float64)
    kv = vals[np.round(new - first).astype(np.int64)]
    slope = np.gradient(vals) if F > 1 else np.zeros(F)
    ks = slope[np.round(new - first).astype(np.int64)]
    if old is not None and len(old["co"]):
        ox = old["co"][:, 0].astype(np.float64)
        oy = old["co"][:, 1].astype(np.float64)
        ohl = old["handle_left"].astype(np.float64)
        ohr = old["handle_right"].astype(np.float64)
    else:
        ox = oy = np.zeros(0)
        ohl = ohr = np.zeros((0, 2))
    # every key of the curve, in order: (x, y, is_new, index in new or old)
    xs = np.r_[ox, new]
    ys = np.r_[oy, kv]
    is_new = np.r_[np.zeros(len(ox), bool), np.ones(len(new), bool)]
    idx = np.r_[np.arange(len(ox)), np.arange(len(new))]
    order = np.argsort(xs, kind="stable")
    xs, ys, is_new, idx = xs[order], ys[order], is_new[order], idx[order]
    K = len(new)
    hl = np.zeros((K, 2))
    hr = np.zeros((K, 2))
    done_l = np.zeros(K, bool)
    done_r = np.zeros(K, bool)

    # the segments with a new key at one end (or both), and their frames
    segs = [s for s in range(len(xs) - 1) if (is_new[s] or is_new[s + 1]) and xs[s + 1] > xs[s]]
    S = len(segs)
    segs = np.asarray(segs, dtype=np.int64)
    x0, x1 = xs[segs], xs[segs + 1]
    y0, y1 = ys[segs], ys[segs + 1]
    free0, free1 = is_new[segs], is_new[segs + 1]
    third = (x1 - x0) * _THIRD
    i0, i1 = idx[segs], idx[segs + 1]
    hr0 = np.where(free0[:, None], np.stack([x0 + third, y0], 1),
                   ohr[np.where(free0, 0, i0)] if len(ox) else 0.0)
    hl1 = np.where(free1[:, None], np.stack([x1 - third, y1], 1),
                   ohl[np.where(free1, 0, i1)] if len(ox) else 0.0)
    p0 = y0 + np.where(free0, ks[np.where(free0, i0, 0)] * third, 0.0) if K else y0
    p1 = y1 - np.where(free1, ks[np.where(free1, i1, 0)] * third, 0.0) if K else y1
    ts, sid = [], []
    for k in range(S):
        t = np.arange(np.floor(x0[k]) + 1.0, np.ceil(x1[k]))
        t = t[(t > x0[k]) & (t < x1[k])]
        ts.append(t)
        sid.append(np.full(len(t), k))
    t = np.concatenate(ts) if S else np.zeros(0)
    sid = np.concatenate(sid).astype(np.int64) if S else np.zeros(0, np.int64)
    inside = (t >= first) & (t <= last)
    target = np.empty(len(t))
    target[inside] = vals[np.round(t[inside] - first).astype(np.int64)]
    target[~inside] = [original(float(f)) for f in t[~inside]]
    ya, yb = bezier.fit_segments_given(sid, t, target, x0, y0, x1, y1, hr0, hl1, free0, free1,
                                       p0, p1)
    for k in range(S):
        if free0[k]:
            hr[i0[k]] = (x0[k] + third[k], ya[k])
            done_r[i0[k]] = True
        if free1[k]:
            hl[i1[k]] = (x1[k] - third[k], yb[k])
            done_l[i1[k]] = True
    # a new key at an end of the curve: its outer handle continues the inner one
    for k in range(K):
        if not done_l[k] and done_r[k]:
            hl[k] = 2.0 * np.array([new[k], kv[k]]) - hr[k]
        elif not done_r[k] and done_l[k]:
            hr[k] = 2.0 * np.array([new[k], kv[k]]) - hl[k]
        elif not (done_l[k] or done_r[k]):
            hl[k] = (new[k] - 1.0, kv[k])
            hr[k] = (new[k] + 1.0, kv[k])
    return kv, hl, hr


def _alternative_channels(obj, plan: FillPlan, r: int):
    """A copy of the filled action for result ``r`` (named "<action> fill <r+1>", kept with a
    fake user; not assigned) and its channels for ``obj`` (the same slot on 4.4+)."""
    copy = plan.action.copy()
    copy.name = f"{plan.action.name} fill {r + 1}"
    copy.use_fake_user = True
    return copy, actions.channels_for(obj, copy)


def apply(fill, plan: FillPlan) -> FillResult:
    """Main thread: write the filled motion into the action, all or nothing. With several
    results the first goes into the action, each other one into a copy of the action as it
    was (a new action, not assigned), so the animator can swap one in."""
    t0 = time.perf_counter()
    obj = plan.req.obj
    problem = fill_problem(obj)
    if problem:
        raise InputError(problem)
    if obj.animation_data.action != plan.action:
        raise InputError(f"'{obj.name}' plays another action now: fill again")
    copies = []
    try:
        with Rollback() as rb:
            for r in range(1, len(fill.motions)):  # from the action before it is filled
                copy, channels = _alternative_channels(obj, plan, r)
                copies.append(copy)
                _write(fill, plan, r, channels, rb)
            counts, t_fit = _write(fill, plan, 0, actions.channels_for(obj), rb)
    except BaseException:
        for copy in copies:
            bpy.data.actions.remove(copy)
        raise
    timings = dict(fill.timings)
    timings["writing"] = time.perf_counter() - t0
    timings["fitting"] = t_fit - t0
    return FillResult(obj=obj, action=plan.action, first=plan.first, last=plan.last,
                      user_keys=len(plan.key_frames), model=fill.generation.model,
                      timings=timings, warnings=list(plan.warnings), alternatives=copies,
                      **counts)


def _write(fill, plan: FillPlan, result: int, channels, rb):
    """Result ``result`` of ``fill`` into ``channels`` (the action's curves for the rig): new keys
    beside the animator's, recorded in ``rb``. ``({new_keys, key_frames, bones}, t_fit)``."""
    from .generate import _scene_keys, _to_scene_rate

    req = plan.req
    obj = req.obj
    first, last, fps = plan.first, plan.last, plan.fps
    F = last - first + 1
    q, x = fill.motions[result]
    q, x = _to_scene_rate(q, x, fill.generation.fps, fps, F)
    values = _rig_values(plan, q, x)
    if req.key_mode == "MODEL":
        write = np.array(_scene_keys(fill.keys[result], fill.generation.fps, fps, F, first))
    else:
        from ..inference import smdm_core as core

        pos = canon.canonical_forward_kinematics(q, x)
        areas = core.vw_areas(pos)
        areas[np.round(plan.key_frames - first).astype(np.int64)] = np.inf
        n = core.key_count(F, req.key_percent / 100.0)
        write = first + core.keys_from_areas(areas, n).astype(np.float64)
    existing = {(fc.data_path, fc.array_index): fc for fc in channels.fcurves}

    def rows_of(fc):
        kf = fcurve_io.key_frames(fc)
        kf = kf[(kf >= first - 1e-6) & (kf <= last + 1e-6)]
        return np.unique(np.round(np.r_[kf, first, last] - first).astype(np.int64))

    near = max(1, int(round(fps * NEAR_SECONDS)))
    by_bone = {}
    for key, (bone, prop, vals) in values.items():
        by_bone.setdefault((bone, prop), {})[key] = vals
    planned = []  # (key, fcurve or None, bone, new frames, values, hl, hr)
    for (bone, prop), chans in by_bone.items():
        if prop == "rotation_quaternion":
            chans = _quat_signs(chans, existing, rows_of, first)
        elif prop == "rotation_euler":
            chans = _euler_branch(chans, existing, rows_of, first,
                                  obj.pose.bones[bone].rotation_mode)
        for key, vals in chans.items():
            fc = existing.get(key)
            if fc is not None and len(fc.keyframe_points):
                rows = rows_of(fc)
                target = np.array([fc.evaluate(first + r) for r in rows])
                vals = _match_branch(vals, rows[0], target[0], prop)
                vals = ib.offset_blend(vals[:, None], rows, target[:, None])[:, 0]
                have = np.round(fcurve_io.key_frames(fc)).astype(np.int64)
            else:
                have = np.zeros(0, np.int64)
            new = np.setdiff1d(np.round(write).astype(np.int64), have)
            new = np.union1d(new, _beside(have, np.union1d(new, have), first, last, near))
            if len(new) == 0:
                continue
            has = fc is not None and len(fc.keyframe_points)
            kv, hl, hr = _fit_new_keys(fcurve_io.read_keys(fc) if has else None, new, vals,
                                       first, last, fc.evaluate if has else None)
            planned.append((key, fc, bone, new.astype(np.float64), kv, hl, hr))
    t_fit = time.perf_counter()
    new_frames = set()
    new_keys = 0
    for key, fc, bone, frames, kv, hl, hr in planned:
        add_keys(channels, key, bone, fc, _new_keys(frames, kv, hl, hr), rb)
        new_frames.update(frames.tolist())
        new_keys += len(frames)
    return (dict(new_keys=new_keys, key_frames=len(new_frames),
                 bones=len({p[2] for p in planned})), t_fit)


def fill_between(req: FillRequest, progress=None, cancel=None) -> FillResult:
    """Blocking: :func:`prepare`, :func:`sample`, :func:`apply`."""
    plan = prepare(req)
    return apply(sample(plan, progress, cancel), plan)
