# SPDX-License-Identifier: GPL-3.0-or-later
"""What should Visvalingam-Whyatt measure areas on, and what do the handles cost?

At the same key budget (10 % of frames), on Bandai clips imported by Blender:
  VW areas on raw channel values (radians and metres mixed), on joint world positions (cm),
  and on joint positions plus a time column; each with least-squares (free) handles.
  Handles at the position-VW keys: Blender's auto-clamped, least-squares free, aligned.
Errors are joint (bone head/tail) world-position errors in cm from our FK, which matches
Blender's evaluation to 5e-4 cm (tests). Auto-clamped handles are computed by Blender itself
(keys written with AUTO_CLAMPED, then the curves are sampled).

  .venv/bin/python benchmarks/vw_area_space.py [--clips 16] [--ratio 0.1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reduce_bandai as rb  # noqa: E402  (sets up the sparse_motion import)

from sparse_motion.blender import actions, fcurve_io  # noqa: E402
from sparse_motion.keyframes import bezier, metrics, vw  # noqa: E402


def errors(cmap, values, fitted):
    return metrics.joint_errors(cmap.points(fitted), cmap.points(values))


def auto_clamped(obj, frames, values, idx):
    """Write keys at idx with Blender's auto-clamped handles, then sample what Blender plays."""
    chans = actions.channels_for(obj)
    curves = list(chans.fcurves)
    for c, fc in enumerate(curves):
        kp = fc.keyframe_points
        kp.clear()
        kp.add(len(idx))
        kp.foreach_set("co", fcurve_io._pairs(frames[idx], values[idx, c]))
        kp.foreach_set("handle_left_type", np.full(len(idx), fcurve_io.HANDLE_TYPES["AUTO_CLAMPED"], np.uint8))
        kp.foreach_set("handle_right_type", np.full(len(idx), fcurve_io.HANDLE_TYPES["AUTO_CLAMPED"], np.uint8))
        kp.foreach_set("interpolation", np.full(len(idx), fcurve_io.INTERPOLATION_BEZIER, np.uint8))
        fc.update()
    return fcurve_io.sample(curves, int(frames[0]), int(frames[-1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--ratio", type=float, default=0.1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = {}
    for zname, member in rb.pick_clips(args.clips):
        path = tmp / Path(member).name
        path.write_bytes(zipfile.ZipFile(rb.DATA / zname).read(member))
        rb.fresh_scene()
        obj = rb.import_bvh(path)
        rb.drop_constant_curves(obj)
        frames, values, cmap = rb.dense_model(obj)
        T = len(frames)
        k = max(2, int(round(args.ratio * T)))
        pos = cmap.points(values).reshape(T, -1)
        speed = np.linalg.norm(np.diff(pos, axis=0), axis=1).mean() + 1e-9
        spaces = {
            "raw channels": values,
            "joint positions": pos,
            "joint positions + time": np.concatenate([pos, (frames * speed)[:, None]], axis=1),
        }
        out = {}
        for name, pts in spaces.items():
            idx = vw.select_count(vw.effective_areas(pts), k)
            out[f"VW on {name}, fitted handles"] = errors(cmap, values, bezier.evaluate(
                frames, idx, *bezier.fit(frames, values, idx, "free")))
        idx = vw.select_count(vw.effective_areas(spaces["joint positions + time"]), k)
        out["VW keys, auto-clamped handles (Blender)"] = errors(cmap, values, auto_clamped(obj, frames, values, idx))
        out["VW keys, aligned fitted handles"] = errors(cmap, values, bezier.evaluate(
            frames, idx, *bezier.fit(frames, values, idx, "aligned")))
        for name, e in out.items():
            rows.setdefault(name, []).append(e)
        print(Path(member).stem, "  ".join(f"{n.split(',')[0][:22]}:{e.max:.2f}/{e.mean:.3f}" for n, e in out.items()), flush=True)
    print(f"\n| at {args.ratio:.0%} keys, {len(next(iter(rows.values())))} clips | median max cm | median mean cm |")
    print("|---|---|---|")
    for name, es in rows.items():
        print(f"| {name} | {np.median([e.max for e in es]):.2f} | {np.median([e.mean for e in es]):.3f} |")


if __name__ == "__main__":
    main()
