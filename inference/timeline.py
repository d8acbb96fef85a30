# SPDX-License-Identifier: GPL-3.0-or-later
"""A timeline of prompts as one continuous motion (bpy-free: numpy).

An animator lays out a shot as segments — prompt, seconds, seed — and gets ONE motion: the
segments follow each other on consecutive frames, the root moves on continuously (features
carry root velocities, so decoding the concatenated features integrates one trajectory) and
the transitions are smooth. :func:`generate` makes it with any text-to-motion model:

* a model with its own long-motion sampler (``model.timeline_features``, KMM: masked decoding
  over the whole token sequence, every segment conditioned on its own prompt and length) is
  asked for the features of the whole timeline at once;
* any other model (sMDM, MotionLCM) generates each segment separately, a little longer, and
  consecutive segments are crossfaded in feature space over ``overlap`` frames
  (:func:`crossfade_features`) — the baseline the long-motion model is measured against.

:func:`regenerate` resamples one segment and keeps every other frame of the previous result
exactly (same rotations, same root), so the keys written outside the segment stay
bit-identical: the new segment is blended (:func:`~.inbetween.blend_to_keys`) onto the held
neighbours' poses at the frames next to it, root included, so the motion leaves the previous
segment and reaches the next one without a jump.

Keys are chosen per segment (Visvalingam-Whyatt on joint positions inside the segment's
frames, both ends kept): regenerating one segment changes only its own keys.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..motion import features as _feat
from ..motion import footlock as _footlock
from . import generation as _gen

__all__ = ["Segment", "Timeline", "check_segments", "generate", "regenerate",
           "crossfade_features", "segment_ranges", "MAX_SEGMENTS", "MAX_TOTAL_SECONDS",
           "MIN_SEGMENT_SECONDS", "MAX_SEGMENT_SECONDS"]

MAX_SEGMENTS = 50
MAX_TOTAL_SECONDS = 600.0
MIN_SEGMENT_SECONDS = 0.5
MAX_SEGMENT_SECONDS = 60.0
#: frames over which the crossfade baseline blends consecutive segments (at 20 fps: 0.5 s)
OVERLAP = 10


@dataclass
class Segment:
    """One prompt of the timeline: ``text``, ``seconds``, and its own ``seed`` (None: the
    timeline's seed + the segment's index)."""

    text: str
    seconds: float
    seed: int | None = None

    @classmethod
    def coerce(cls, value) -> "Segment":
        """A Segment from a Segment, a dict (``prompt``/``text``, ``seconds``, ``seed``) or a
        ``(text, seconds[, seed])`` tuple; InputError for anything else."""
        if isinstance(value, Segment):
            return value
        if isinstance(value, dict):
            text = value.get("prompt", value.get("text", ""))
            if "seconds" not in value:
                raise InputError(f"A timeline segment needs 'seconds': {value!r}")
            return cls(str(text or ""), value["seconds"], value.get("seed"))
        if isinstance(value, (tuple, list)) and 2 <= len(value) <= 3:
            return cls(str(value[0] or ""), value[1], value[2] if len(value) > 2 else None)
        raise InputError(f"A timeline segment is a prompt, seconds and an optional seed, "
                         f"got {value!r}")


def check_segments(segments, fps: float | None, *, max_segments: int = MAX_SEGMENTS,
                   max_total_seconds: float = MAX_TOTAL_SECONDS,
                   min_seconds: float = MIN_SEGMENT_SECONDS,
                   max_seconds: float = MAX_SEGMENT_SECONDS) -> list[Segment]:
    """The cleaned segments (prompts stripped, seconds as float); InputError naming the segment
    for an empty or overlong prompt, a length that is not a number, ≤ 0 or out of range, a
    seed that is not a whole number ≥ 0, no segments, too many, or a timeline too long.
    ``fps`` None (a batch file read before its model is known) skips the two-frame rule."""
    try:
        segs = list(segments or [])
    except TypeError as exc:
        raise InputError(f"The timeline segments are not a list: {exc}") from None
    for i, s in enumerate(segs):
        try:
            segs[i] = Segment.coerce(s)
        except InputError as exc:
            raise InputError(f"Segment {i + 1}: {exc}") from None
    if not segs:
        raise InputError("The timeline is empty: add at least one segment (prompt and seconds)")
    if len(segs) > max_segments:
        raise InputError(f"The timeline has {len(segs)} segments; use at most {max_segments}")
    out, total = [], 0.0
    for i, s in enumerate(segs, 1):
        try:
            text = _gen.check_prompt(s.text)
        except InputError as exc:
            raise InputError(f"Segment {i}: {exc}") from None
        try:
            sec = float(s.seconds)
        except (TypeError, ValueError):
            raise InputError(f"Segment {i}: the length must be a number of seconds, got "
                             f"{s.seconds!r}") from None
        if not np.isfinite(sec) or sec <= 0:
            raise InputError(f"Segment {i} ('{text[:40]}'): the length must be more than 0 "
                             f"seconds, got {s.seconds}")
        if not (min_seconds - 1e-9 <= sec <= max_seconds + 1e-9):
            raise InputError(f"Segment {i} ('{text[:40]}'): {sec:g} s is out of range; a "
                             f"segment lasts {min_seconds:g} to {max_seconds:g} s")
        seed = _seed(s.seed, i)
        if fps is not None and int(round(sec * fps)) < 2:
            raise InputError(f"Segment {i}: {sec:g} s is less than two frames at {fps:g} fps")
        total += sec
        out.append(Segment(text, sec, seed))
    if total > max_total_seconds + 1e-9:
        raise InputError(f"The timeline lasts {total:g} s; keep it under "
                         f"{max_total_seconds:g} s ({max_total_seconds / 60:g} minutes)")
    return out


def _seed(value, i: int) -> int | None:
    if value is None:
        return None
    try:
        seed = int(value)
        whole = seed == float(value)
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or isinstance(value, bool):
        raise InputError(f"Segment {i}: the seed must be a whole number, got {value!r}")
    if seed < 0:
        raise InputError(f"Segment {i}: the seed must be 0 or more, got {value}")
    return seed


def segment_ranges(segments, fps: float) -> list[tuple[int, int]]:
    """``[(start, end), …]`` frame ranges (end exclusive) of consecutive segments: segment i
    lasts round(seconds·fps) frames."""
    out, start = [], 0
    for s in segments:
        n = int(round(float(s.seconds) * fps))
        out.append((start, start + n))
        start += n
    return out


@dataclass
class Timeline:
    """The result: ``quats (N, 21, 4)``, ``root (N, 3)`` canonical motion at ``fps`` (feet
    locked unless ``foot_lock`` was off), ``features (N, 257)`` the raw features it was decoded
    from, ``ranges`` per segment (end exclusive), ``keys`` per segment (global frame indices,
    sorted, both ends of the segment among them)."""

    segments: list
    fps: float
    quats: np.ndarray
    root: np.ndarray
    features: np.ndarray
    ranges: list
    keys: list
    model: str
    seed: int
    key_fraction: float
    foot_lock: bool = True
    method: str = ""
    timings: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)   # the model's own (KMM: the token ids)

    @property
    def frames(self) -> int:
        return int(len(self.quats))

    def all_keys(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(k, np.int64) for k in self.keys]))

    def seeds(self) -> list[int]:
        return [segment_seed(s, self.seed, i) for i, s in enumerate(self.segments)]


def segment_seed(seg: Segment, seed: int, index: int) -> int:
    return int(seg.seed) if seg.seed is not None else int(seed) + int(index)


def crossfade_features(model, segments, seeds, *, overlap: int = OVERLAP, progress=None,
                       cancel=None, grounding=None) -> np.ndarray:
    """The baseline: each segment generated on its own (``model.generate``), ``overlap`` frames
    longer than its range except the last, and consecutive segments crossfaded linearly over
    those frames in feature space. Returns raw features ``(N, 257)``."""
    fps = model.fps
    ranges = segment_ranges(segments, fps)
    limit = float(getattr(model, "max_seconds", MAX_SEGMENT_SECONDS))
    for i, (seg, (a, b)) in enumerate(zip(segments, ranges)):
        if (b - a + (overlap if i + 1 < len(segments) else 0)) / fps > limit + 1e-9:
            raise InputError(f"Segment {i + 1} ('{seg.text[:40]}') lasts {seg.seconds:g} s; "
                             f"{model.name} makes segments of at most "
                             f"{max(limit - overlap / fps, 0):g} s in a timeline: split it, or "
                             "choose a long-motion model (KMM)")
    N = ranges[-1][1]
    out = None
    for i, (seg, (a, b)) in enumerate(zip(segments, ranges)):
        o = overlap if i + 1 < len(segments) else 0
        n = b - a + o
        sub = _sub_progress(progress, i, len(segments))
        gen = model.generate(seg.text, n, int(seeds[i]), progress=sub, cancel=cancel,
                             grounding=grounding)
        f = np.asarray(gen.features[0], dtype=np.float32)
        if out is None:
            out = np.zeros((N + o, f.shape[1]), np.float32)
            out[: n] = f
            continue
        # blend the previous segment's tail (written on [a, a+overlap)) into this one's start
        prev_o = min(overlap, b - a)
        w = ((np.arange(prev_o) + 1.0) / (prev_o + 1.0))[:, None].astype(np.float32)
        out[a: a + prev_o] = (1 - w) * out[a: a + prev_o] + w * f[:prev_o]
        out[a + prev_o: a + n] = f[prev_o:]
    return out[:N]


def _sub_progress(progress, i, n):
    if progress is None:
        return None

    def sub(fraction, status=""):
        progress((i + float(fraction)) / n, f"segment {i + 1}/{n}: {status}".rstrip(": "))
    return sub


def _decode(features, foot_lock: bool):
    f = np.asarray(features, dtype=np.float64)
    q, x = _feat.features_to_motion(f)
    if foot_lock:
        contacts = f[:, _feat.feature_layout()["foot_contacts"]]
        q, x = _footlock.lock_feet(q, x, contacts=contacts)
    return np.asarray(q, np.float64), np.asarray(x, np.float64)


def _segment_keys(quats, root, a: int, b: int, fraction: float) -> np.ndarray:
    from . import smdm_core as core

    pos = _positions(quats[a:b], root[a:b])
    return a + core.vw_keys(pos, core.key_count(b - a, fraction))


def _positions(quats, root):
    from ..motion.canonical import SKELETON
    from ..motion.skeleton import forward_kinematics

    return forward_kinematics(SKELETON, quats, root)


def _features_for(model, segments, seeds, progress, cancel, hold=None, regenerate=None,
                  grounding=None):
    """``(features, state, method)`` from the model's own long-motion sampler, or
    ``(None, {}, "crossfade")`` when it has none."""
    if hasattr(model, "timeline_features"):
        feats, state = model.timeline_features(
            [s.text for s in segments], [r[1] - r[0] for r in segment_ranges(segments, model.fps)],
            seeds, hold=hold, regenerate=regenerate, grounding=grounding, progress=progress,
            cancel=cancel)
        return feats, state, "native"
    return None, {}, "crossfade"


def generate(model, segments, *, seed: int = 0, key_fraction: float | None = None,
             foot_lock: bool = True, method: str = "auto", progress=None, cancel=None,
             grounding=None) -> Timeline:
    """The timeline ``segments`` (checked with :func:`check_segments`) as one motion.
    ``method``: "auto" (the model's own long-motion sampler when it has one, else the
    crossfade), "crossfade" (the baseline with any model). ``key_fraction``: share of frames
    kept as keys per segment (None: the model's default)."""
    model.load()
    fps = model.fps
    segs = check_segments(segments, fps)
    if int(seed) < 0:
        raise InputError(f"The seed must be 0 or more, got {seed}")
    kf = float(key_fraction if key_fraction is not None else model.config["key_fraction"])
    if not 0.0 < kf <= 1.0:
        raise InputError(f"Keyframe fraction must be in (0, 1], got {kf}")
    seeds = [segment_seed(s, seed, i) for i, s in enumerate(segs)]
    timings = {}
    t0 = time.perf_counter()
    feats, state, used = (None, {}, "crossfade")
    if method == "auto":
        feats, state, used = _features_for(model, segs, seeds, progress, cancel,
                                           grounding=grounding)
    elif method != "crossfade":
        raise ValueError(f"unknown timeline method {method!r}")
    if feats is None:
        feats = crossfade_features(model, segs, seeds, progress=progress, cancel=cancel,
                                   grounding=grounding)
    timings["sampling"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q, x = _decode(feats, foot_lock)
    ranges = segment_ranges(segs, fps)
    keys = [_segment_keys(q, x, a, b, kf) for a, b in ranges]
    timings["decoding"] = time.perf_counter() - t0
    pkg = model.package
    return Timeline(segments=segs, fps=fps, quats=q, root=x, features=np.asarray(feats, np.float32),
                    ranges=ranges, keys=keys, model=f"{pkg.name} {pkg.version}", seed=int(seed),
                    key_fraction=kf, foot_lock=bool(foot_lock), method=used, timings=timings,
                    state=state)


def regenerate(model, timeline: Timeline, index: int, *, seed: int | None = None,
               text: str | None = None, progress=None, cancel=None, grounding=None) -> Timeline:
    """``timeline`` with segment ``index`` resampled (new ``seed``, default: the segment's seed
    + 1000; new ``text`` optional; same length) and every frame outside it kept exactly. The
    new segment joins the held frames next to it (rotations and root) without a jump."""
    from . import inbetween

    model.load()
    n = len(timeline.segments)
    if not 0 <= int(index) < n:
        raise InputError(f"There is no segment {int(index) + 1}: the timeline has {n}")
    i = int(index)
    segs = list(timeline.segments)
    old = segs[i]
    new_seed = int(seed) if seed is not None else segment_seed(old, timeline.seed, i) + 1000
    segs[i] = Segment(old.text if text is None else text, old.seconds, new_seed)
    segs = check_segments(segs, timeline.fps)
    seeds = [segment_seed(s, timeline.seed, k) for k, s in enumerate(segs)]
    a, b = timeline.ranges[i]
    timings = {}
    t0 = time.perf_counter()
    feats, state = None, {}
    if timeline.method == "native" and hasattr(model, "timeline_features"):
        feats, state, _ = _features_for(model, segs, seeds, progress, cancel, hold=timeline,
                                        regenerate=i, grounding=grounding)
    if feats is None:
        gen = model.generate(segs[i].text, b - a, seeds[i], progress=progress, cancel=cancel,
                             grounding=grounding)
        feats = np.array(timeline.features, dtype=np.float32)
        f = np.asarray(gen.features[0], np.float32)
        o = min(OVERLAP, (b - a) // 2)
        w = np.ones((b - a, 1), np.float32)
        if i > 0 and o:
            w[:o, 0] = (np.arange(o) + 1.0) / (o + 1.0)
        if i + 1 < n and o:
            w[-o:, 0] = np.minimum(w[-o:, 0], ((np.arange(o)[::-1]) + 1.0) / (o + 1.0))
        feats[a:b] = (1 - w) * feats[a:b] + w * f
    timings["sampling"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q_new, x_new = _decode(feats, timeline.foot_lock)
    # the window [a-1, b] (held neighbours' frames at its ends) blended onto the held poses
    lo, hi = max(a - 1, 0), min(b, timeline.frames - 1)
    wq = q_new[lo: hi + 1].copy()
    wx = x_new[lo: hi + 1].copy()
    held = [k for k in (lo, hi) if k < a or k >= b]
    if held:  # none for a timeline of one segment: the new motion as it comes
        known_q = wq.copy()
        known_x = wx.copy()
        rows = [k - lo for k in held]
        known_q[rows] = timeline.quats[held]
        known_x[rows] = timeline.root[held]
        wq, wx = inbetween.blend_to_keys(
            wq, wx, inbetween.Keyframes.full(known_q, known_x, rows))
    q = np.array(timeline.quats, dtype=np.float64)
    x = np.array(timeline.root, dtype=np.float64)
    q[a:b] = wq[a - lo: a - lo + (b - a)]
    x[a:b] = wx[a - lo: a - lo + (b - a)]
    if i > 0:  # quaternion hemisphere continuous with the held frame before
        flip = np.sum(q[a] * q[a - 1], axis=-1) < 0
        q[a:b, flip] *= -1
    keys = list(timeline.keys)
    keys[i] = _segment_keys(q, x, a, b, timeline.key_fraction)
    timings["decoding"] = time.perf_counter() - t0
    return Timeline(segments=segs, fps=timeline.fps, quats=q, root=x, features=feats,
                    ranges=list(timeline.ranges), keys=keys, model=timeline.model,
                    seed=timeline.seed, key_fraction=timeline.key_fraction,
                    foot_lock=timeline.foot_lock, method=timeline.method, timings=timings,
                    state=state)
