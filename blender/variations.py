# SPDX-License-Identifier: GPL-3.0-or-later
"""Variations of a reference action: check and read (main thread), train and sample (any
thread, no bpy), write (main thread, all or nothing).

* :func:`prepare` reads the reference through :mod:`.variations_io` (any armature, any bone
  names, rotation modes and rest pose), encodes it (:mod:`..variations.channels`) and checks
  everything the work needs (length, torch for MotionDreamer) before anything runs.
* :func:`compute` is the model work: MotionDreamer trained on the reference (cached on disk
  by the reference's content hash, seed and settings, and in memory for this session, so
  asking again is instant) or GenMM (no training); then ``count`` variations, seeds
  ``seed, seed+1, …``, decoded back to channel values. Only numpy/torch: it runs on the
  operator's worker thread with progress and cancel.
* :func:`apply` writes every variation as a new action of sparse keys (the keyframe engine),
  in one :class:`~.edits.Rollback`.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import bpy

from ..errors import Cancelled, InputError
from .edits import Rollback, set_scene_range
from .reduce import ReduceSettings
from . import variations_io

METHODS = ("MOTIONDREAMER", "GENMM")
METHOD_LABELS = {"MOTIONDREAMER": "MotionDreamer", "GENMM": "GenMM"}
MAX_COUNT = 32
MAX_SECONDS = 600.0
#: The environment variable that moves the on-disk model cache (tests, render farms).
CACHE_ENV = "SPARSE_MOTION_VARIATIONS_CACHE"
_models = {}  # cache key → trained MotionDreamer (this session)


@dataclass
class VariationRequest:
    obj: object                 # the armature whose action is varied
    action: object = None       # None: the action it plays
    count: int = 3
    seconds: float = 0.0        # 0: as long as the reference
    seed: int = 0
    novelty: float = 0.5        # 0 close to the reference … 1 novel
    method: str = "MOTIONDREAMER"
    max_error_cm: float = 1.0   # keyframe reduction tolerance
    handles: str = "FREE"
    frame_start: int | None = None  # None: where the reference starts
    set_frame_range: bool = True
    threads: int = 0
    config: object = None       # variations.motiondreamer.Config (None: the default)


@dataclass
class Plan:
    req: VariationRequest
    ref: object                 # variations_io.Reference
    encoded: object             # channels.Encoded
    frames: int                 # frames of each variation
    cache_dir: Path


@dataclass
class VariationResult:
    obj: object
    actions: list
    method: str
    frames: int
    keys: int
    trained: bool               # False: the model came from the cache (or GenMM)
    timings: dict
    warnings: list = field(default_factory=list)

    def message(self) -> str:
        how = ("trained" if self.trained else "cached model") \
            if self.method == "MOTIONDREAMER" else "no training"
        return (f"{len(self.actions)} variation(s) of {self.frames} frames with "
                f"{METHOD_LABELS[self.method]} ({how}, {self.timings.get('total', 0):.1f} s): "
                f"{', '.join(a.name for a in self.actions)}; {self.keys:,} keys")


def cache_dir() -> Path:
    """Where trained models are kept: ``$SPARSE_MOTION_VARIATIONS_CACHE``, else the
    extension's user folder (Blender 4.2+ extensions), else ``~/.cache/sparse_motion``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    package = __package__.rpartition(".")[0]
    try:
        return Path(bpy.utils.extension_path_user(package, path="variations", create=True))
    except (ValueError, AttributeError, OSError):
        return Path.home() / ".cache" / "sparse_motion" / "variations"


def min_frames(method: str, config=None) -> int:
    """The shortest reference a method can work from (MotionDreamer: one attention window)."""
    if method == "MOTIONDREAMER":
        from ..variations.motiondreamer import DOWNSAMPLE, Config

        c = config or Config()
        return (2 * c.window + 1) * DOWNSAMPLE
    return 12  # GenMM: one patch and then some


@functools.lru_cache(maxsize=1)
def torch_available() -> bool:
    """Whether PyTorch can be imported here (checked once; MotionDreamer needs it)."""
    return importlib.util.find_spec("torch") is not None


def default_reference(obj):
    """The action to vary when none is named: the one ``obj`` plays, or, when that is itself a
    variation made here, the action it varies (so asking again varies the same reference)."""
    adt = getattr(obj, "animation_data", None)
    action = adt.action if adt is not None else None
    if action is None:
        return None
    meta = action.get("sparse_motion")
    source = meta.get("variation_of") if meta is not None and hasattr(meta, "get") else None
    if not source:
        return action
    return bpy.data.actions.get(source) or action  # the reference may have been deleted


def prepare(req: VariationRequest) -> Plan:
    """Check and read everything (main thread); raises InputError and changes nothing."""
    if req.method not in METHODS:
        raise InputError(f"Unknown variation method '{req.method}'")
    if not 1 <= int(req.count) <= MAX_COUNT:
        raise InputError(f"Ask for 1 to {MAX_COUNT} variations")
    if req.seconds < 0 or req.seconds > MAX_SECONDS:
        raise InputError(f"Length must be between 0 (as the reference) and {MAX_SECONDS:.0f} s")
    if req.seed < 0:
        raise InputError("The seed must be 0 or more")
    if req.method == "MOTIONDREAMER":
        from ..inference.runtime import import_torch
        from ..inference.errors import ModelPackageError

        try:
            import_torch("MotionDreamer (training on the reference)")
        except ModelPackageError as exc:
            raise InputError(f"{exc}; or choose the GenMM method, which needs no PyTorch") \
                from exc
    ref = variations_io.read_reference(req.obj, default_reference(req.obj)
                                       if req.action is None else req.action)
    need = min_frames(req.method, req.config)
    if ref.n_frames < need:
        raise InputError(
            f"Action '{ref.action.name}' is {ref.n_frames} frames long: "
            f"{METHOD_LABELS[req.method]} needs a reference of at least {need} frames "
            f"({need / ref.fps:.1f} s at {ref.fps:g} fps; its attention window)")
    frames = ref.n_frames if req.seconds <= 0 else int(round(req.seconds * ref.fps))
    if frames < need // 4 or frames < 4:
        raise InputError(f"{req.seconds:g} s is too short: ask for at least "
                         f"{max(need // 4, 4) / ref.fps:.2f} s")
    encoded = ref.layout.encode(ref.values)
    return Plan(req=req, ref=ref, encoded=encoded, frames=frames, cache_dir=cache_dir())


def _cache_extra(plan: Plan) -> str:
    """What else makes a model differ besides the features, seed and config."""
    return f"{plan.ref.layout.fingerprint()}@{plan.ref.fps:g}"


def model_key(plan: Plan) -> str:
    from ..variations.motiondreamer import cache_key

    return cache_key(plan.encoded.features, plan.req.seed, plan.req.config,
                     extra=_cache_extra(plan))


def cached(plan: Plan) -> bool:
    """True when the model for this reference is ready without training."""
    if plan.req.method != "MOTIONDREAMER":
        return True
    key = model_key(plan)
    return key in _models or (plan.cache_dir / f"motiondreamer-{key}.pt").is_file()


@dataclass
class Computed:
    values: list                # (frames, C) per variation
    trained: bool
    timings: dict


def compute(plan: Plan, progress=None, cancel=None) -> Computed:
    """Train (or fetch) and sample; no bpy. ``progress(fraction, status)``, ``cancel()``."""
    req, feats = plan.req, plan.encoded.features
    t0 = time.perf_counter()
    trained = False
    if req.method == "MOTIONDREAMER":
        from ..variations import motiondreamer as md

        if req.threads:
            import torch

            torch.set_num_threads(int(req.threads))
        key = model_key(plan)
        model = _models.get(key)
        if model is None:
            def train_progress(f, status):
                if progress is not None:
                    progress(0.95 * f, status)

            model, hit = md.train_cached(
                feats, plan.cache_dir, seed=req.seed, config=req.config,
                progress=train_progress, cancel=cancel, extra=_cache_extra(plan))
            trained = not hit
            _models[key] = model
        t_train = time.perf_counter() - t0

        def one(i):
            return model.sample(plan.frames, seed=req.seed + i, novelty=req.novelty)
    else:
        from ..variations.genmm import genmm

        t_train = 0.0
        noise = 0.5 + req.novelty  # GenMM's initial noise: 0.5 (close) … 1.5 (novel)

        def one(i):
            return genmm(feats, plan.frames, seed=req.seed + i, noise=noise)
    values = []
    for i in range(req.count):
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None:
            progress(0.95 + 0.05 * i / req.count, f"Sampling variation {i + 1}/{req.count}")
        values.append(plan.ref.layout.decode(np.asarray(one(i), np.float64), plan.encoded.start))
    t1 = time.perf_counter()
    return Computed(values=values, trained=trained,
                    timings={"training": t_train, "sampling": t1 - t0 - t_train})


def action_names(ref, req: VariationRequest) -> list:
    base = ref.action.name[:40]
    return [f"{base} var {req.seed + i}" for i in range(req.count)]


def apply(plan: Plan, computed: Computed) -> VariationResult:
    """Main thread: every variation a new action of sparse keys; all or nothing."""
    req, ref = plan.req, plan.ref
    t0 = time.perf_counter()
    meta = [{"variation_of": ref.action.name, "method": req.method, "seed": req.seed + i,
             "novelty": float(req.novelty), "frames": plan.frames,
             "reference_hash": ref.content_hash} for i in range(req.count)]
    warnings, results = [], []
    reduce = ReduceSettings(mode="ERROR", max_error_cm=float(req.max_error_cm),
                            handles=req.handles)
    scene = bpy.context.scene
    with Rollback() as rb:
        made = variations_io.write_variations(
            ref, computed.values, action_names(ref, req), reduce=reduce,
            frame_start=req.frame_start, meta=meta, warnings=warnings, reduce_results=results)
        for a in made:
            rb.created(a)
        if req.set_frame_range:
            start = int(ref.frames[0] if req.frame_start is None else req.frame_start)
            old = (scene.frame_start, scene.frame_end)
            rb.restore(lambda o=old: set_scene_range(scene, *o))
            set_scene_range(scene, start, start + plan.frames - 1)
    keys = sum(r.keys_after for r in results if r is not None)
    timings = dict(computed.timings)
    timings["writing"] = time.perf_counter() - t0
    timings["total"] = sum(timings.values())
    return VariationResult(obj=req.obj, actions=made, method=req.method, frames=plan.frames,
                           keys=keys, trained=computed.trained, timings=timings,
                           warnings=list(ref.warnings) + warnings)


def make_variations(req: VariationRequest, progress=None, cancel=None) -> VariationResult:
    """Blocking: :func:`prepare`, :func:`compute`, :func:`apply`."""
    plan = prepare(req)
    return apply(plan, compute(plan, progress, cancel))


def release_models() -> None:
    _models.clear()
