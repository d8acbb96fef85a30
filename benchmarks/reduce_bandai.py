# SPDX-License-Identifier: GPL-3.0-or-later
"""Keyframe reduction benchmark on Bandai Namco mocap, evaluated by Blender itself.

For each clip and each budget (5 / 10 / 20 % of frames kept) the same dense action is
reduced by every method in one process, then Blender evaluates the armature at every frame
and we measure joint (bone head and tail) world-position error in centimetres.

Methods:
  decimate   Blender's Graph Editor Decimate (ratio mode; per curve)
  uniform    evenly spaced synchronised keys, least-squares handles
  vw_plain   Visvalingam-Whyatt on joint positions, least-squares handles, no refinement
  ours       Sparse Motion's reducer (VW + error-aware refinement, fitted handles)
  ours_smooth  the same with aligned (smooth-tangent) handles
  floor      optimal synchronised key set for the same count (dynamic programming), same
             handle fitting as ours: the lower bound for the mean error

Every method gets the same number of keys per moving curve (the count Decimate produced).
Constant curves are removed before the comparison (every method keeps them as two keys).

Usage (bpy 4.5 environment):
  .venv/bin/python benchmarks/reduce_bandai.py [--clips N] [--other-skeletons] [--out FILE]
Reads ../shared/data/bandai-namco/*.zip in place. Prints per-clip rows and a summary.
"""
from __future__ import annotations

import argparse
import json
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

from sparse_motion.blender import actions, fcurve_io  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings, reduce_object  # noqa: E402
from sparse_motion.keyframes import bezier, optimal, vw  # noqa: E402
from sparse_motion.keyframes.continuity import make_continuous  # noqa: E402
from sparse_motion.keyframes.rig import ChannelMap  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bandai-namco"
RATIOS = (0.05, 0.10, 0.20)
METHODS = ("decimate", "uniform", "vw_plain", "ours", "ours_smooth", "floor")


def pick_clips(n_max: int):
    """A deterministic spread of contents: every content of dataset 1 and 2 in the 'normal'
    style, then a second style of the most dynamic contents."""
    picks = []
    for zname, extra in (("Bandai-Namco-Research-Motiondataset-1.zip", ("active", "happy")),
                         ("Bandai-Namco-Research-Motiondataset-2.zip", ("active",))):
        zf = zipfile.ZipFile(DATA / zname)
        bvhs = sorted(n for n in zf.namelist() if n.endswith(".bvh"))
        by_key = {}
        for n in bvhs:
            _, content, style, _ = Path(n).stem.split("_")
            by_key.setdefault((content, style), n)
        contents = sorted({c for c, _ in by_key})
        for style in ("normal",) + extra:
            for c in contents:
                if (c, style) in by_key and (style == "normal" or c.startswith(("dance", "kick", "run", "punch", "wave"))):
                    picks.append((zname, by_key[(c, style)]))
    return picks[:n_max]


def fresh_scene():
    bpy.ops.wm.read_factory_settings(use_empty=False)
    for o in list(bpy.data.objects):
        bpy.data.objects.remove(o)


def import_bvh(path):
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=0.01, rotate_mode="NATIVE",
                            update_scene_fps=True, update_scene_duration=True)
    return bpy.context.object


def drop_constant_curves(obj):
    chans = actions.channels_for(obj)
    for fc in list(chans.fcurves):
        v = fcurve_io.key_values(fc)
        if np.ptp(v) <= 1e-7 * max(1.0, np.abs(v).max()):
            chans.remove_fcurve(fc)
    return len(chans.fcurves)


def blender_points(obj, first, last):
    scene = bpy.context.scene
    out = np.empty((last - first + 1, 2 * len(obj.pose.bones), 3))
    for i, f in enumerate(range(first, last + 1)):
        scene.frame_set(f)
        mw = np.array(obj.matrix_world)
        pts = []
        for pb in obj.pose.bones:
            pts.append(pb.head)
            pts.append(pb.tail)
        p = np.array(pts)
        out[i] = p @ mw[:3, :3].T + mw[:3, 3]
    return out * 100.0


def stats(points, dense):
    d = np.linalg.norm(points - dense, axis=-1)
    return float(d.max()), float(np.percentile(d.max(axis=1), 95)), float(d.mean())


def use_copy(obj, dense_action):
    """Give the object a fresh copy of the dense action (same slot layout)."""
    copy = dense_action.copy()
    obj.animation_data.action = copy
    if actions.is_slotted():
        obj.animation_data.action_slot = copy.slots[0]
    return copy


def decimate(obj, factor):
    win = bpy.context.window_manager.windows[0]
    area = win.screen.areas[0]
    area.type = "GRAPH_EDITOR"
    space = area.spaces[0]
    space.dopesheet.show_only_selected = False
    space.dopesheet.show_hidden = True
    region = next(r for r in area.regions if r.type == "WINDOW")
    chans = actions.channels_for(obj)
    for fc in chans.fcurves:
        fc.select = True
        fc.keyframe_points.foreach_set("select_control_point", np.ones(len(fc.keyframe_points), bool))
    obj.select_set(True)
    t = time.perf_counter()
    with bpy.context.temp_override(window=win, area=area, region=region):
        bpy.ops.graph.decimate(mode="RATIO", factor=factor)
    return time.perf_counter() - t


def write_synced(obj, frames, values, key_idx, handles="free"):
    """Write synchronised keys at key_idx with least-squares handles (uniform / floor / plain)."""
    chans = actions.channels_for(obj)
    kv, hl, hr = bezier.fit(frames, values, key_idx, handles=handles)
    kind = "FREE" if handles == "free" else "ALIGNED"
    for c, fc in enumerate(chans.fcurves):
        fcurve_io.write_keys(fc, frames[key_idx], kv[:, c], hl[:, c], hr[:, c], kind)


def dense_model(obj):
    """Dense samples, continuity applied, and the FK points function used by our methods."""
    chans = actions.channels_for(obj)
    curves = list(chans.fcurves)
    first, last = fcurve_io.frame_range(curves)
    values = fcurve_io.sample(curves, first, last)
    rig = fcurve_io.rig_from_object(obj)
    cmap = ChannelMap(rig, [(fc.data_path, fc.array_index) for fc in curves])
    values = make_continuous(values, cmap.groups())
    frames = np.arange(first, last + 1, dtype=np.float64)
    return frames, values, cmap


def run_clip(bvh_path, label, rows, with_floor=True):
    fresh_scene()
    obj = import_bvh(bvh_path)
    n_curves = drop_constant_curves(obj)
    dense_action = obj.animation_data.action
    dense_action.use_fake_user = True
    first, last = fcurve_io.frame_range(actions.channels_for(obj).fcurves)
    dense = blender_points(obj, first, last)
    frames, values, cmap = dense_model(obj)
    T = len(frames)
    for ratio in RATIOS:
        res = {}
        use_copy(obj, dense_action)
        dt = decimate(obj, 1.0 - ratio)
        counts = [len(fc.keyframe_points) for fc in actions.channels_for(obj).fcurves]
        k = int(np.median(counts))
        res["decimate"] = stats(blender_points(obj, first, last), dense) + (dt, sum(counts))

        def timed(fn):
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        for name, handles in (("ours", "FREE"), ("ours_smooth", "ALIGNED")):
            use_copy(obj, dense_action)
            dt = timed(lambda: reduce_object(obj, ReduceSettings(mode="RATIO", ratio=k / T, handles=handles)))
            n = sum(len(fc.keyframe_points) for fc in actions.channels_for(obj).fcurves)
            res[name] = stats(blender_points(obj, first, last), dense) + (dt, n)

        idx_uniform = np.unique(np.round(np.linspace(0, T - 1, k)).astype(int))
        areas = vw.effective_areas(cmap.points(values).reshape(T, -1))
        plans = {"uniform": lambda: idx_uniform, "vw_plain": lambda: vw.select_count(areas, k)}
        if with_floor:
            plans["floor"] = lambda: optimal.optimal_keys(frames, values, cmap.points, k)
        for name, plan in plans.items():
            use_copy(obj, dense_action)
            t = time.perf_counter()
            idx = plan()
            write_synced(obj, frames, values, idx)
            dt = time.perf_counter() - t
            res[name] = stats(blender_points(obj, first, last), dense) + (dt, len(idx) * n_curves)
        for name, (mx, p95, mean, dt, n) in res.items():
            rows.append(dict(clip=label, frames=T, curves=n_curves, ratio=ratio, method=name,
                             keys=n, max=mx, p95=p95, mean=mean, seconds=dt))
        print(f"{label:45s} T={T:5d} {int(ratio*100):2d}%  " + "  ".join(
            f"{m}:{res[m][0]:6.2f}/{res[m][2]:5.3f}" for m in METHODS if m in res), flush=True)


def summarise(rows, title):
    lines = [f"\n## {title}", "",
             "| keep | method | clips | median max cm | median p95 cm | median mean cm | median time s |",
             "|---|---|---|---|---|---|---|"]
    out = {}
    for ratio in RATIOS:
        for m in METHODS:
            sel = [r for r in rows if r["ratio"] == ratio and r["method"] == m]
            if not sel:
                continue
            med = {k: float(np.median([r[k] for r in sel])) for k in ("max", "p95", "mean", "seconds")}
            out[(ratio, m)] = med
            lines.append(f"| {int(ratio*100)} % | {m} | {len(sel)} | {med['max']:.2f} | {med['p95']:.2f} | "
                         f"{med['mean']:.3f} | {med['seconds']:.3f} |")
    lines += ["", "| keep | ours mean / decimate mean (median) | clips with ours mean ≤ 0.5× decimate | "
              "clips with ours max ≤ decimate max | ours mean / floor mean (median) | decimate time / ours time (median) |",
              "|---|---|---|---|---|---|"]
    for ratio in RATIOS:
        by = {}
        for r in rows:
            if r["ratio"] == ratio:
                by.setdefault(r["clip"], {})[r["method"]] = r
        clips = [c for c in by.values() if "ours" in c and "decimate" in c]
        if not clips:
            continue
        mean_ratio = np.median([c["ours"]["mean"] / c["decimate"]["mean"] for c in clips])
        half = np.mean([c["ours"]["mean"] <= 0.5 * c["decimate"]["mean"] for c in clips])
        maxok = np.mean([c["ours"]["max"] <= c["decimate"]["max"] for c in clips])
        floor = [c["ours"]["mean"] / c["floor"]["mean"] for c in clips if "floor" in c and c["floor"]["mean"] > 0]
        speed = np.median([c["decimate"]["seconds"] / c["ours"]["seconds"] for c in clips])
        lines.append(f"| {int(ratio*100)} % | {mean_ratio:.2f} | {half*100:.0f} % | {maxok*100:.0f} % | "
                     f"{np.median(floor) if floor else float('nan'):.2f} | {speed:.1f}× |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def large_action_timing():
    """A 10,000-frame, 60-curve action (20 bones × quaternion+... ) reduced by our operator path."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import bl_fixtures as fx

    fx.reset()
    obj = fx.make_armature(n_bones=14, seed=3)
    fx.key_armature(obj, n_frames=10_000, flips=True)  # 14×4 + 3 = 59 curves
    chans = actions.channels_for(obj)
    fc = chans.new_fcurve('pose.bones["bone1"].location', 0, "bone1")
    fcurve_io.write_dense(fc, np.arange(1, 10_001, dtype=float), np.sin(np.arange(10_000) / 40.0) * 0.05)
    n_curves = len(chans.fcurves)
    t = time.perf_counter()
    result = reduce_object(obj, ReduceSettings(mode="RATIO", ratio=0.1))
    dt = time.perf_counter() - t
    line = (f"\nLarge action: 10,000 frames × {n_curves} curves reduced to 10 % in {dt:.3f} s "
            f"(max {result.max_cm:.2f} cm, mean {result.mean_cm:.3f} cm)")
    print(line, flush=True)
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--other-skeletons", action="store_true",
                    help="also run on Bandai clips rewritten as 3-channel joints, other rotation orders, 60 and 120 fps")
    ap.add_argument("--other-only", action="store_true", help="skip the main Bandai pass")
    ap.add_argument("--other-max-frames", type=int, default=600,
                    help="source clips longer than this are left out of the other-skeleton pass "
                         "(the DP floor is quadratic in length: a 120 fps dance takes many minutes)")
    ap.add_argument("--out", default=None, help="write rows as JSON here")
    args = ap.parse_args()
    rows, texts = [], []
    tmp = Path(tempfile.mkdtemp())
    clips = pick_clips(args.clips)
    def dump(extra=()):
        if args.out:
            Path(args.out).write_text(json.dumps({"rows": rows + list(extra), "summary": "\n".join(texts)}, indent=1))

    for zname, member in [] if args.other_only else clips:
        path = tmp / Path(member).name
        path.write_bytes(zipfile.ZipFile(DATA / zname).read(member))
        run_clip(path, Path(member).stem, rows, with_floor=not args.no_floor)
        dump()
    if rows:
        texts.append(summarise(rows, f"Bandai Namco, {len(clips)} clips (21 joints, 6 channels, ZXY, 30 fps)"))
    if args.other_skeletons or args.other_only:
        import other_skeletons  # benchmarks/other_skeletons.py

        from sparse_motion.motion import bvh as bvh_io

        short = [(z, m) for z, m in clips
                 if bvh_io.read(zipfile.ZipFile(DATA / z).read(m)).num_frames <= args.other_max_frames]
        orows = []
        for variant, path in other_skeletons.variants(short[: max(4, len(clips) // 4)], DATA, tmp):
            run_clip(path, variant, orows, with_floor=not args.no_floor)
            dump(orows)
        texts.append(summarise(orows, "Other skeletons (3-channel joints, XYZ/YZX orders, 60 and 120 fps)"))
        rows += orows
    texts.append(large_action_timing())
    dump()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
