# SPDX-License-Identifier: GPL-3.0-or-later
"""MotionDreamer vs GenMM on single references from the Bandai Namco data (issue #5).

References: for every (dataset, content) of the built dataset (``training/build_dataset.py``,
20 fps canonical features), its longest clip, cut to its first ``--seconds`` (10 s); contents
whose longest clip is shorter than ``--min-seconds`` are left out. The features modelled are the
root's (yaw rate, heading-local velocity, height) and the 6-D local rotations of the 21 joints
(130 numbers a frame) — the same kind of features the Variations operator builds from an action.

For each reference: MotionDreamer is trained (seed 0, the default config, torch on
``--threads`` threads) and samples ``--count`` variations as long as the reference (seeds
0..count-1, novelty 0.5 = plain sampling); GenMM (the training-free baseline,
``variations/genmm.py``) makes as many with the same seeds. Both are scored with
``variations/metrics.py`` on the joint rotations (root excluded, as GANimator / SinMDM / MotionDreamer
do): coverage (threshold 2.0, the published value; ``cov@0.5`` is a stricter threshold we also
report because 2.0 covers nearly everything on these features), global and local diversity,
inter-diversity, and the harmonic mean of coverage and global diversity; ``jitter``: the mean
absolute acceleration of the rotations relative to the reference's (1 = as smooth as the
reference; a check that diversity is not noise). Times: training, and
sampling one variation of 10 s (median over the variations).

The first reference also gets a metric curve: every ``--curve-every`` Local-M steps, 3
variations are sampled and scored.

Usage: .venv/bin/python benchmarks/variations.py [--dataset ~/.cache/sparse_motion/dataset-v1]
       [--limit 12] [--out build/bench/variations.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sparse_motion.motion.dataset import load_dataset  # noqa: E402
from sparse_motion.variations import motiondreamer as md  # noqa: E402
from sparse_motion.variations.genmm import genmm  # noqa: E402
from sparse_motion.variations.metrics import (coverage, evaluate_variations,  # noqa: E402
                                              harmonic_mean)

KEYS = ("coverage", "cov@0.5", "global_diversity", "local_diversity", "inter_diversity",
        "harmonic_mean", "hm@0.5", "jitter")


def references(ds, seconds, min_seconds, limit):
    lay = ds.meta["layout"]
    cols = np.r_[lay["root_rot_vel"][0]:lay["root_height"][1], slice(*lay["rotations"])]
    best = {}
    for i, c in enumerate(ds.clips):
        key = (c["dataset"], c["content"])
        if c["frames"] >= min_seconds * ds.fps and (key not in best
                                                     or c["frames"] > ds.clips[best[key]]["frames"]):
            best[key] = i
    out = []
    for key in sorted(best, key=lambda k: (-ds.clips[best[k]]["frames"], k)):
        i = best[key]
        f = ds.features(i)[: int(seconds * ds.fps), cols]
        out.append((ds.clips[i]["id"], f"{key[0]}:{key[1]}", f.astype(np.float32)))
    return out[:limit], 4  # rotations start after the 4 root numbers


def jitter(x):
    """Mean absolute second difference (acceleration) of the rotation features per frame."""
    return float(np.abs(np.diff(np.asarray(x, np.float64), 2, axis=0)).mean())


def score(ref, gens, rot0):
    ref, gens = ref[:, rot0:], [g[:, rot0:] for g in gens]
    ev = evaluate_variations(ref, gens)
    ev["cov@0.5"] = float(np.mean([coverage(g, ref, threshold=0.5) for g in gens]))
    ev["hm@0.5"] = harmonic_mean(ev["cov@0.5"], ev["global_diversity"])
    ev["jitter"] = float(np.mean([jitter(g) for g in gens]) / jitter(ref))
    return {k: float(ev[k]) for k in KEYS}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="~/.cache/sparse_motion/dataset-v1")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--min-seconds", type=float, default=6.0)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--curve-every", type=int, default=250)
    ap.add_argument("--config", default="{}", help="JSON overrides of variations.motiondreamer.Config")
    ap.add_argument("--out", default="build/bench/variations.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    config = md.Config(**json.loads(args.config))
    refs, rot0 = references(ds, args.seconds, args.min_seconds, args.limit)
    rows, curve = [], []
    print(f"{len(refs)} references, {args.count} variations each, {args.threads} threads, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}", flush=True)
    for n, (clip, content, ref) in enumerate(refs):
        seconds_per_10s = 10.0 * ds.fps / len(ref)
        log = []

        def on_checkpoint(model, step, ref=ref):
            gens = [model.sample(len(ref), seed=s) for s in range(3)]
            curve.append({"step": step, **score(ref, gens, rot0)})

        t0 = time.perf_counter()
        model = md.train(ref, seed=0, config=config, log=log, checkpoint=on_checkpoint if n == 0 else None,
                         checkpoint_every=args.curve_every)
        train_s = time.perf_counter() - t0
        gens, times = [], []
        for s in range(args.count):
            t0 = time.perf_counter()
            gens.append(model.sample(len(ref), seed=s))
            times.append(time.perf_counter() - t0)
        base, btimes = [], []
        for s in range(args.count):
            t0 = time.perf_counter()
            base.append(genmm(ref, len(ref), seed=s))
            btimes.append(time.perf_counter() - t0)
        row = {"clip": clip, "content": content, "frames": len(ref), "train_s": train_s,
               "sample_s_10s": statistics.median(times) * seconds_per_10s,
               "genmm_s_10s": statistics.median(btimes) * seconds_per_10s,
               "info": model.info, "motiondreamer": score(ref, gens, rot0),
               "genmm": score(ref, base, rot0),
               "reconstruction": score(ref, [model.reconstruct(ref)], rot0),
               "log": log if n == 0 else log[-2:]}
        rows.append(row)
        a, b = row["motiondreamer"], row["genmm"]
        print(f"{content:24s} {len(ref):4d} f  train {train_s:5.1f} s  sample {row['sample_s_10s']:.3f} s"
              f"  HM  MD {a['harmonic_mean']:.3f}  GenMM {b['harmonic_mean']:.3f}"
              f"  HM@0.5  MD {a['hm@0.5']:.3f}  GenMM {b['hm@0.5']:.3f}"
              f"  (cov {a['coverage']:.2f}/{b['coverage']:.2f}, cov@0.5 {a['cov@0.5']:.2f}/"
              f"{b['cov@0.5']:.2f}, gdiv {a['global_diversity']:.3f}/{b['global_diversity']:.3f})",
              flush=True)
    mean = {m: {k: float(np.mean([r[m][k] for r in rows])) for k in KEYS}
            for m in ("motiondreamer", "genmm", "reconstruction")}
    summary = {"references": len(rows), "mean": mean,
               "train_s_median": statistics.median(r["train_s"] for r in rows),
               "train_s_max": max(r["train_s"] for r in rows),
               "sample_s_10s_median": statistics.median(r["sample_s_10s"] for r in rows),
               "genmm_s_10s_median": statistics.median(r["genmm_s_10s"] for r in rows),
               "wins": sum(r["motiondreamer"]["harmonic_mean"] > r["genmm"]["harmonic_mean"]
                           for r in rows),
               "wins@0.5": sum(r["motiondreamer"]["hm@0.5"] > r["genmm"]["hm@0.5"] for r in rows)}
    print("\n| method | " + " | ".join(KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for m in ("motiondreamer", "genmm", "reconstruction"):
        print(f"| {m} | " + " | ".join(f"{mean[m][k]:.3f}" for k in KEYS) + " |")
    print(f"\nMotionDreamer better harmonic mean on {summary['wins']}/{len(rows)} references "
          f"({summary['wins@0.5']}/{len(rows)} at threshold 0.5); "
          f"training median {summary['train_s_median']:.0f} s (max {summary['train_s_max']:.0f} s); "
          f"sampling 10 s: {summary['sample_s_10s_median']:.3f} s (GenMM "
          f"{summary['genmm_s_10s_median']:.3f} s)")
    if curve:
        print("\nmetric curve (first reference):")
        for c in curve:
            print(f"  step {c['step']:5d}  HM {c['harmonic_mean']:.3f}  HM@0.5 {c['hm@0.5']:.3f}  "
                  f"cov {c['coverage']:.2f}  "
                  f"cov@0.5 {c['cov@0.5']:.2f}  gdiv {c['global_diversity']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows, "curve": curve,
                               "args": vars(args)}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
