# SPDX-License-Identifier: GPL-3.0-or-later
"""Timing of BVH import (dense and reduced) and export on real Blender.

Two inputs of 10,000 frames:
  synthetic  22 joints, root 6 channels, the rest 3 (ZXY), smooth random motion
  bandai     Bandai Namco dataset-1 clips (21 joints x 6 channels) concatenated to 10,000
             frames, when ../shared/data is there

For each: import onto a new armature (dense), import + reduce (ratio 0.1, and max error 1 cm),
export of the dense and of the reduced action. Prints seconds and key counts.

Usage: .venv/bin/python benchmarks/bvh_io.py [--frames N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import bpy  # noqa: E402

from sparse_motion.blender import actions, bvh_io  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "bandai-namco"


def synthetic(frames, joints=22, seed=0):
    rng = np.random.default_rng(seed)
    js, cols = [], []
    t = np.arange(frames) / 30.0
    for j in range(joints):
        parent = -1 if j == 0 else int(rng.integers(0, j))
        offset = [0.0, 90.0, 0.0] if j == 0 else rng.normal(size=3) * 10 + [0, 12, 0]
        chans = (["Xposition", "Yposition", "Zposition"] if j == 0 else []) + [
            "Zrotation", "Xrotation", "Yrotation"]
        js.append(bvh_mod.BvhJoint(f"j{j}", parent, offset, chans, [0, 5.0, 0] if j > 15 else None))
        if j == 0:
            cols += [20 * np.sin(0.3 * t), 90 + 3 * np.sin(4 * t), 50 * t]
        for _ in range(3):
            cols.append(sum(rng.uniform(5, 40) * np.sin(rng.uniform(0.2, 3) * t + rng.uniform(0, 6))
                            for _ in range(3)))
    return bvh_mod.Bvh(js, 1 / 30, np.stack(cols, axis=1))


def bandai(frames):
    zips = sorted(SHARED.glob("*1.zip"))
    if not zips:
        return None
    with zipfile.ZipFile(zips[0]) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".bvh"))
        parts, total, first = [], 0, None
        for n in names:
            b = bvh_mod.read(z.read(n))
            first = first or b
            parts.append(b.motion)
            total += b.num_frames
            if total >= frames:
                break
    return bvh_mod.Bvh(first.joints, first.frame_time, np.concatenate(parts)[:frames])


def keys(obj):
    return sum(len(fc.keyframe_points) for fc in actions.channels_for(obj).fcurves)


def run(label, bvh, tmp):
    path = str(Path(tmp) / f"{label}.bvh")
    bvh_mod.write(bvh, path)
    print(f"\n{label}: {bvh.num_frames} frames, {bvh.num_joints} joints, "
          f"{bvh.num_channels} channels, {Path(path).stat().st_size / 1e6:.1f} MB")
    t = time.perf_counter()
    bvh_mod.read(path)
    print(f"  parse only                  {time.perf_counter() - t:6.2f} s")
    for name, settings in [("dense", None),
                           ("reduce ratio 0.1", ReduceSettings(mode="RATIO", ratio=0.1)),
                           ("reduce max error 1 cm", ReduceSettings(mode="ERROR", max_error_cm=1.0))]:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t = time.perf_counter()
        res = bvh_io.import_bvh_result(path, reduce=settings)
        dt = time.perf_counter() - t
        extra = ""
        if res.reduce_result is not None:
            r = res.reduce_result
            extra = f"  (reduce {r.seconds:.2f} s, max {r.max_cm:.2f} cm)"
        print(f"  import {name:<22}{dt:6.2f} s  {keys(res.obj):>9,} keys{extra}")
        t = time.perf_counter()
        bvh_io.export_bvh(res.obj, str(Path(tmp) / "out.bvh"))
        print(f"  export ({name}){'':<{max(0, 13 - len(name))}}{time.perf_counter() - t:6.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=10000)
    args = ap.parse_args()
    print(f"Blender {bpy.app.version_string}")
    with tempfile.TemporaryDirectory() as tmp:
        run("synthetic", synthetic(args.frames), tmp)
        real = bandai(args.frames)
        if real is not None:
            run("bandai", real, tmp)


if __name__ == "__main__":
    main()
