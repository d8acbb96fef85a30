# SPDX-License-Identifier: GPL-3.0-or-later
"""MotionLCM path control on held-out real trajectories (issue 14).

For test-split clips of the dataset cache (``training/build_dataset.py``; 2–10 s, the first
``--clips`` of each content in turn), the clip's own pelvis (Hips) trajectory in cm — the
control convention of ``docs/motionlcm.md`` — is given to the model with the clip's own
caption, **dense** (every frame) and **sparse** (``--sparse`` frames spread evenly, the ends
included), and the same request **without control**; each controlled result as the
ControlNet alone made it and bent by *Fit to Path* (Follow path's default:
``motion.paths.fit_and_pin``, the path's control and mask as given to the model). Measures: mean
and max pelvis distance to the trajectory at the controlled frames (ground plane and 3-D),
foot skating of the result (``motion.physics``) beside the real clip's. Bars: mean ≤ 5 cm
dense, ≤ 10 cm at sparse control frames.

Usage: .venv/bin/python benchmarks/motionlcm_control.py [--package DIR] [--clips 3] [--steps 4]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.inference import registry  # noqa: E402
from sparse_motion.inference.generation import open_model  # noqa: E402
from sparse_motion.motion import canonical as _can  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402
from sparse_motion.motion import paths as _paths  # noqa: E402
from sparse_motion.motion import physics as _phys  # noqa: E402


def pelvis(features) -> np.ndarray:
    return _feat.features_to_positions(np.asarray(features, np.float64))[:, 0, :]


def pick_clips(ds, per_content: int, min_frames: int, max_frames: int) -> list:
    by = {}
    for i in ds.indices("test"):
        i = int(i)
        n = ds.clips[i]["frames"] if "frames" in ds.clips[i] else len(ds.features(i))
        if min_frames <= n <= max_frames:
            by.setdefault(ds.clips[i]["content"], []).append(i)
    return [i for c in sorted(by) for i in by[c][:per_content]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", default=None, help="MotionLCM package (default: the registry's)")
    ap.add_argument("--dataset", default=str(_ds.DEFAULT_OUT))
    ap.add_argument("--clips", type=int, default=3, help="test clips per content")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sparse", type=int, default=5, help="control frames in the sparse case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from sparse_motion.inference.runtime import RuntimeSettings

    pkg = args.package or registry.get_registry().default("motionlcm").path
    model = open_model(pkg, settings=RuntimeSettings(threads=args.threads)).load()
    ds = _ds.load_dataset(args.dataset)
    lo = max(40, int(model.config["min_frames"]))
    idx = pick_clips(ds, args.clips, lo, int(model.config["max_frames"]))
    rows = {"dense": [], "sparse": [], "none": [], "dense fit": [], "sparse fit": []}
    skate = {k: [] for k in (*rows, "real")}
    t0 = time.perf_counter()
    for k, i in enumerate(idx):
        raw = ds.features(i)
        n = len(raw)
        path = pelvis(raw)
        caption = ds.captions(i, False)[0]
        sparse = np.zeros(n, bool)
        sparse[np.linspace(0, n - 1, args.sparse).round().astype(int)] = True
        cases = {"dense": np.ones(n, bool), "sparse": sparse, "none": None}
        skate["real"].append(_phys.measure([_feat.features_to_positions(raw.astype(np.float64))],
                                           fps=model.fps)["foot_skate_cm_s"])
        for name, mask in cases.items():
            g = model.generate(caption, n, k, steps=args.steps, grounding=False,
                               control=None if mask is None else path,
                               control_mask=None if mask is None else mask)
            results = {name: g.motion(0)}
            if mask is not None:
                # Fit to Path as Follow path does it (only control and mask are read)
                pc = _paths.PathControl(control=path, mask=mask, placement=None, length=0.0,
                                        target=None)
                contacts = g.features[0][:, _feat.feature_layout()["foot_contacts"]]
                results[f"{name} fit"] = _paths.fit_and_pin(*g.motion(0), pc, model.fps,
                                                            contacts)
            at = np.ones(n, bool) if mask is None else mask
            for row, (q, x) in results.items():
                # the root (Hips) as written, in the generation frame: not through features,
                # whose decoding puts frame 0 back at the origin facing +Z
                got = np.asarray(x, np.float64)
                d3 = np.linalg.norm(got[at] - path[at], axis=1)
                d2 = np.linalg.norm((got[at] - path[at])[:, [0, 2]], axis=1)
                rows[row].append((d2.mean(), d3.mean(), d3.max()))
                skate[row].append(_phys.measure([_can.canonical_forward_kinematics(q, x)],
                                                fps=model.fps)["foot_skate_cm_s"])
    secs = time.perf_counter() - t0
    out = {"package": str(pkg), "clips": len(idx), "steps": args.steps, "seconds": round(secs, 1)}
    print(f"\nMotionLCM control on {len(idx)} held-out test clips ({args.steps} steps, "
          f"foot locking as written), {secs:.0f} s\n")
    print("| control | pelvis error ground-plane cm (mean) | 3-D cm (mean) | 3-D cm (max) | "
          "foot skate cm/s (real clips: %.1f) |" % float(np.nanmean(skate["real"])))
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        r = np.asarray(r)
        out[name] = {"ground_cm": round(float(r[:, 0].mean()), 2),
                     "mean_cm": round(float(r[:, 1].mean()), 2),
                     "max_cm": round(float(r[:, 2].max()), 2),
                     "foot_skate_cm_s": round(float(np.nanmean(skate[name])), 2)}
        label = {"dense": "dense (every frame), ControlNet alone",
                 "sparse": f"sparse ({args.sparse} frames), ControlNet alone",
                 "none": "none (same prompts; error to the real path)",
                 "dense fit": "dense, + Fit to Path (Follow path's default)",
                 "sparse fit": f"sparse ({args.sparse} frames), + Fit to Path"}[name]
        o = out[name]
        print(f"| {label} | {o['ground_cm']:.1f} | {o['mean_cm']:.1f} | {o['max_cm']:.1f} | "
              f"{o['foot_skate_cm_s']:.2f} |")
    out["real_foot_skate_cm_s"] = round(float(np.nanmean(skate["real"])), 2)
    for how, sfx in (("ControlNet alone", ""), ("with Fit to Path", " fit")):
        d, sp = out["dense" + sfx]["mean_cm"], out["sparse" + sfx]["mean_cm"]
        print(f"bars, {how}: dense mean ≤ 5 cm {'met' if d <= 5 else 'missed'}; "
              f"sparse mean ≤ 10 cm {'met' if sp <= 10 else 'missed'}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
