# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill Between on other skeletons (issue 16 part 3): held-out real clips retargeted onto
rigs of other conventions, a pose kept every G frames, the frames between filled in Blender.

::

    .venv/bin/python benchmarks/fill_other_skeletons.py            # 8 test clips, G = 15 30
    .venv/bin/python benchmarks/fill_other_skeletons.py --rigs mixamo --clips 2 --gaps 30

For each rig (the tests' script-built rigs: ``canonical`` — the rig Generate Motion makes —,
``mixamo``, ``ue5``, ``metarig``) and each clip of the dataset's test split (the dataset
cache, ``training/build_dataset.py``; 20 fps, scene at 20 fps, at most ``--frames`` frames):

1. the clip is retargeted onto the rig with a key on every frame (``retarget_motion_result``,
   ``resample=False``): the truth is Blender's evaluation of that action (bone heads and tails
   in world space, cm);
2. every F-curve keeps only its keys on frames 1, 1 + G, 1 + 2G, … and the last frame, with
   Blender's default handles (auto-clamped): what plays now is the **Bezier** baseline;
3. **Fill Between** (``blender.fill.fill_between``: all keyed bones constrained, the model's
   default strength, 50 steps, seed 0) fills the frames between.

Measure: the mean distance of the bones' world heads and tails to the truth over the frames
between the keys, fill and Bezier, and their ratio (the issue's bars: ≤ 0.6× at G = 15,
≤ 0.5× at G = 30, never worse at 5, on the canonical data: ``benchmarks/fill_between.py``);
and the largest error at the kept frames (the animator's keys must be met).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import bl_fixtures as fx  # noqa: E402
import test_retarget_core as core  # noqa: E402
from test_bl_retarget import build  # noqa: E402
from sparse_motion.blender import actions, bvh_io, fcurve_io, fill  # noqa: E402
from sparse_motion.blender import retarget as bl_retarget  # noqa: E402
from sparse_motion.blender.generate import CANONICAL_RIG_TAG  # noqa: E402
from sparse_motion.motion import canonical as canon  # noqa: E402
from sparse_motion.motion import dataset as ds  # noqa: E402
from sparse_motion.motion import features as feat  # noqa: E402

RIGS = ("canonical", "mixamo", "ue5", "metarig")


def rig_with_motion(kind, q, x, fps):
    """A fresh scene at ``fps`` with the rig ``kind`` keyed on every frame of (q, x)."""
    fx.reset()
    bpy.context.scene.render.fps = int(fps)
    if kind == "canonical":
        res = bvh_io.import_bvh_result(canon.canonical_to_bvh(q, x, fps), scale=0.01,
                                       frame_start=1, name="Truth", set_fps=False)
        obj = res.obj
        obj.data[CANONICAL_RIG_TAG] = True
    else:
        obj = build(core.RIGS[kind]())
        bl_retarget.retarget_motion_result(q, x, fps, obj, resample=False)
    bpy.context.view_layer.objects.active = obj
    return obj


def keep_every(obj, frames):
    """Every F-curve keeps only its values at ``frames`` (auto-clamped Bezier keys)."""
    for fc in actions.channels_for(obj).fcurves:
        vals = np.array([fc.evaluate(f) for f in frames])
        # auto-clamped handles: Blender computes them on update, the values given do not count
        fcurve_io.write_keys(fc, frames, vals, vals, vals, handle_type="AUTO_CLAMPED")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=str(ds.DEFAULT_OUT))
    ap.add_argument("--rigs", nargs="+", default=list(RIGS), choices=RIGS)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--min-frames", type=int, default=80)
    ap.add_argument("--gaps", type=int, nargs="+", default=[15, 30])
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    d = ds.load_dataset(a.dataset)
    idx = [int(i) for i in d.indices("test") if d.clip(int(i))["frames"] >= a.min_frames]
    idx = idx[::max(1, len(idx) // a.clips)][:a.clips]
    fps = d.fps
    out = {}
    with fx.addon_registered():
        for kind in a.rigs:
            for G in a.gaps:
                err = {"fill": [], "bezier": []}
                key_err, t_fill = 0.0, []
                for i in idx:
                    q, x = feat.features_to_motion(d.features(i)[:a.frames])
                    N = len(q)
                    obj = rig_with_motion(kind, q, x, fps)
                    frames = np.arange(1, N + 1)
                    truth = fx.world_points(obj, frames)
                    kept = np.unique(np.r_[np.arange(1, N + 1, G), N])
                    keep_every(obj, kept)
                    inner = np.setdiff1d(frames, kept) - 1
                    bez = fx.world_points(obj, frames)
                    t0 = time.perf_counter()
                    fill.fill_between(fill.FillRequest(obj=obj, seed=0))
                    t_fill.append(time.perf_counter() - t0)
                    got = fx.world_points(obj, frames)
                    err["bezier"].append(np.linalg.norm(bez[inner] - truth[inner], axis=-1).mean())
                    err["fill"].append(np.linalg.norm(got[inner] - truth[inner], axis=-1).mean())
                    key_err = max(key_err, float(np.linalg.norm(
                        got[kept - 1] - bez[kept - 1], axis=-1).max()))
                r = {k: float(np.mean(v)) for k, v in err.items()}
                r.update(ratio=r["fill"] / r["bezier"], max_key_error_cm=key_err,
                         fill_seconds=float(np.median(t_fill)), clips=len(idx))
                out.setdefault(kind, {})[G] = r
                print(f"{kind:9s} G={G:3d}: fill {r['fill']:.2f} cm, bezier {r['bezier']:.2f} "
                      f"(fill/bezier {r['ratio']:.2f}); at the keys ≤ {key_err:.3f} cm; "
                      f"{r['fill_seconds']:.2f} s a fill", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
