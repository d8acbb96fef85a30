# SPDX-License-Identifier: GPL-3.0-or-later
"""Make Variations end to end in Blender (4.5, the bpy module) on a real 10 s reference.

A Bandai Namco BVH clip (its own skeleton and bone names, 30 fps) is cut to its first
``--seconds`` and imported with our BVH importer (one key per frame); then, timed separately:

1. MotionDreamer, first request: read + encode the action, train (default settings, empty
   cache), sample ``--count`` variations, write them as sparse actions;
2. the same request again (model from the in-memory cache) and after clearing the memory
   cache (from the disk cache);
3. GenMM with the same count.

Targets (issue #5, 2 CPU cores): training ≤ 3 minutes for a 10 s reference, sampling a 10 s
variation ≤ 2 s.

Usage: .venv/bin/python benchmarks/variations_blender.py [--data ../shared/data/bandai-namco]
       [--clip dataset-1_walk_not-confident_001] [--count 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import bpy  # noqa: E402

from sparse_motion.blender import bvh_io  # noqa: E402
from sparse_motion.blender import variations as var  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402
from sparse_motion.motion.dataset import iter_clips  # noqa: E402


def load_clip(data, clip_id, seconds):
    for info, raw, _zip in iter_clips(data):
        if info.clip_id == clip_id:
            b = bvh_mod.loads(raw.decode("utf-8", "replace"))
            b.motion = b.motion[: int(round(seconds * b.fps))]
            return b
    raise SystemExit(f"no clip {clip_id} in {data}")


def run(req, label):
    t0 = time.perf_counter()
    res = var.make_variations(req)
    total = time.perf_counter() - t0
    t = res.timings
    per = t["sampling"] / req.count
    print(f"{label:34s} total {total:6.1f} s  training {t['training']:6.1f} s  sampling "
          f"{t['sampling']:5.2f} s ({per:.2f} s per variation)  writing {t['writing']:5.2f} s  "
          f"keys {res.keys:,} ({res.frames} frames)", flush=True)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                          / "bandai-namco"))
    ap.add_argument("--clip", default="dataset-1_walk_not-confident_001")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="sm-variations-")
    os.environ[var.CACHE_ENV] = cache
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = load_clip(args.data, args.clip, args.seconds)
    obj = bvh_io.import_bvh(clip, name="Reference")
    action = obj.animation_data.action
    ref = var.variations_io.read_reference(obj, action)
    print(f"{args.clip}: {ref.n_frames} frames at {ref.fps:g} fps, {len(ref.keys)} moving curves "
          f"-> {ref.layout.feature_dim} features; {args.threads} threads", flush=True)
    base = dict(obj=obj, action=action, count=args.count, seed=0, threads=args.threads)
    run(var.VariationRequest(method="MOTIONDREAMER", **base), "MotionDreamer, first (trains)")
    run(var.VariationRequest(method="MOTIONDREAMER", **base), "MotionDreamer, again (memory)")
    var.release_models()
    run(var.VariationRequest(method="MOTIONDREAMER", **base), "MotionDreamer, again (disk)")
    run(var.VariationRequest(method="GENMM", **base), "GenMM")


if __name__ == "__main__":
    main()
