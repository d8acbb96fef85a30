# SPDX-License-Identifier: GPL-3.0-or-later
"""Timelines of prompts (issue 15 part 4): per-segment accuracy, transition smoothness, foot
skating and speed of each model, against real motion and the sMDM crossfade baseline.

::

    .venv/bin/python benchmarks/timeline.py --model smdm-default@crossfade \\
        --model build/kmm/pkg-main --out build/eval/timeline.json
    .venv/bin/python benchmarks/timeline.py --timelines 2 --speed-repeats 1   # quick look

``--model`` (repeatable; default ``smdm-default@crossfade``): a package folder or an
installed package's name, ``@crossfade`` for the baseline (each segment generated alone, the
segments crossfaded; ``inference.timeline.crossfade_features``) or ``@auto`` (the model's own
long-motion sampler when it has one: KMM; else the crossfade). Without a suffix, ``--method``.

The timelines are ``benchmarks/timelines.tsv`` (22 shots of 4–6 segments of 5–15 s, fixed
seeds, prompts in everyday words, none a yardstick prompt or a training caption). For each
model:

* **per-segment accuracy**: the motion classifiers of the yardstick (``models/classifiers``)
  on each segment's frames of the final motion (feet locked, as Generate Motion writes it;
  features made again from the rotations and root, ``motion_to_features``), scored as the
  yardstick scores (``training/yardstick.score``): content accuracy over every segment, style
  over the segments whose prompt names one. The reference: single-prompt sMDM (the default
  package) on the same prompts, lengths and seeds. Bar: content within 5 points of it.
* **transitions**: FlowMDM's jerk (``motion.smoothness``) in windows of ±15 frames around
  every boundary (``--half-window``; FlowMDM used ±15 on BABEL at 30 fps, ±30 on HumanML3D
  at 20 fps), against the same windows at random frames of every real clip of the
  dataset (the reference) and inside the segments (away from the boundaries, the model's own
  jerk). Peak jerk and area under the jerk curve are per window, averaged; FlowMDM's Peak
  Jerk and AUJ (from the mean curve over the windows, AUJ against real motion's mean jerk)
  are beside them, real motion's from random sets of as many windows. Bar: peak and area
  within 1.5× real, and below the crossfade baseline's.
* **foot skating per content**: ``motion.physics`` pooled over the segments of each content,
  against every real clip of that content (``physics.real_per_content``); the post-processing
  bar is ≤ 1.3× real.
* **speed**: a timeline of 5 equal segments of 15, 30, 60 and 120 s, ``--speed-threads``
  (2) threads, each length in a fresh process (model loaded, one short warm-up, median of
  ``--speed-repeats``); the peak resident memory (``ru_maxrss``) of the process that made the
  60 s one. Bars: 60 s in ≤ 5 s, memory < 1.5 GB, time about linear in length.

The dataset (``--dataset``, built by ``training/build_dataset.py``) is read where it is. Every
number goes to ``--out`` (JSON); the tables to stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import numpy as np  # noqa: E402

from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.motion import canonical as _can  # noqa: E402
from sparse_motion.motion import captions as _cap  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402
from sparse_motion.motion import physics  # noqa: E402
from sparse_motion.motion import smoothness  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import yardstick as _ys  # noqa: E402

TIMELINES = Path(__file__).resolve().with_name("timelines.tsv")
HEADER = ["timeline", "seed", "seconds", "prompt", "content", "style"]
SPEED_SECONDS = (15, 30, 60, 120)
SPEED_SEGMENTS = 5
BARS = {"content_points": 5.0, "jerk_x_real": 1.5, "speed_60s_s": 5.0, "rss_60s_mb": 1500.0}


# =========================================================================== timelines


def load_timelines(path=TIMELINES, segments=(4, 6), seconds=(5.0, 15.0)) -> list:
    """``[{"id", "segments": [{prompt, seconds, seed, content, style}, …]}, …]`` in file
    order; ValueError for a malformed row, an unknown label, or a timeline whose segment count
    or lengths are out of range."""
    out, by = [], {}
    header = None
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if header is None:
            header = cells
            if header != HEADER:
                raise ValueError(f"{path}:{n}: header must be {', '.join(HEADER)}")
            continue
        if len(cells) != len(HEADER):
            raise ValueError(f"{path}:{n}: {len(cells)} columns, expected {len(HEADER)}")
        tid, seed, sec, prompt, content, style = cells
        if content not in _cap.ALL_CONTENTS:
            raise ValueError(f"{path}:{n}: unknown content {content!r}")
        if style != _ys.ANY_STYLE and style not in _cap.ALL_STYLES:
            raise ValueError(f"{path}:{n}: unknown style {style!r}")
        if not prompt:
            raise ValueError(f"{path}:{n}: empty prompt")
        try:
            seg = {"prompt": prompt, "seconds": float(sec), "seed": int(seed),
                   "content": content, "style": style}
        except ValueError:
            raise ValueError(f"{path}:{n}: seed and seconds must be numbers") from None
        if not seconds[0] <= seg["seconds"] <= seconds[1]:
            raise ValueError(f"{path}:{n}: {sec} s is out of {seconds[0]:g}-{seconds[1]:g} s")
        if tid not in by:
            by[tid] = {"id": tid, "segments": []}
            out.append(by[tid])
        by[tid]["segments"].append(seg)
    for tl in out:
        if not segments[0] <= len(tl["segments"]) <= segments[1]:
            raise ValueError(f"{path}: timeline {tl['id']!r} has {len(tl['segments'])} "
                             f"segments, not {segments[0]}-{segments[1]}")
    return out


# =========================================================================== models


def parse_spec(spec: str, default_method: str) -> tuple:
    """``(package, method)`` from ``PACKAGE[@crossfade|@auto]``."""
    pkg, _, method = spec.partition("@")
    method = method or default_method
    if method not in ("auto", "crossfade"):
        raise SystemExit(f"--model {spec}: the method is 'auto' or 'crossfade'")
    return pkg, method


def open_spec(pkg: str, threads: int):
    """The loaded text-to-motion model of a package folder or an installed package name."""
    from sparse_motion.inference import registry
    from sparse_motion.inference.generation import open_model
    from sparse_motion.inference.package import load_package
    from sparse_motion.inference.runtime import RuntimeSettings

    package = load_package(pkg) if Path(pkg).is_dir() else registry.get_registry().get(pkg)
    return open_model(package, settings=RuntimeSettings(threads=int(threads))).load()


def make_timeline(model, segments, method):
    from sparse_motion.inference import timeline as _tl

    segs = [_tl.Segment(s["prompt"], s["seconds"], s["seed"]) for s in segments]
    return _tl.generate(model, segs, method=method)


def final_motion(quats, root, fps):
    """``(features (F, 257), positions (F, 21, 3))`` of the motion as written: features made
    again from its rotations and root, FK joint positions (cm)."""
    f, pos = _feat.motion_to_features(quats, root, fps=fps, return_positions=True)
    return f.astype(np.float32), pos


# =========================================================================== speed


def speed_child(args) -> None:
    """One length in this process: print one JSON line (seconds per run, peak RSS)."""
    pkg, method = parse_spec(args.model[0], args.method)
    seconds = float(args.speed_child)
    prompts = [s["prompt"] for s in load_timelines(args.timelines_file)[0]["segments"]]
    prompts = (prompts * SPEED_SEGMENTS)[:SPEED_SEGMENTS]

    def segs(total):
        return [{"prompt": p, "seconds": total / SPEED_SEGMENTS, "seed": k}
                for k, p in enumerate(prompts)]

    out = {"seconds": seconds, "segments": SPEED_SEGMENTS, "threads": args.speed_threads}
    try:
        model = open_spec(pkg, args.speed_threads)
        make_timeline(model, segs(5.0), method)   # warm-up: sessions, text encoder, caches
        out["rss_after_warmup_mb"] = _maxrss_mb()
        runs, tl = [], None
        for _ in range(max(1, args.speed_repeats)):
            t0 = time.perf_counter()
            tl = make_timeline(model, segs(seconds), method)
            runs.append(time.perf_counter() - t0)
        out.update(runs=runs, median_s=statistics.median(runs), method_used=tl.method,
                   frames=tl.frames, timings=tl.timings, rss_peak_mb=_maxrss_mb())
    except InputError as exc:
        out["error"] = str(exc)
    print(json.dumps(out), flush=True)


def _maxrss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return kb * 1024 / 1e6


def measure_speed(spec, args, log) -> dict:
    out = {}
    for s in SPEED_SECONDS:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--speed-child", str(s),
               "--model", spec, "--method", args.method, "--speed-threads",
               str(args.speed_threads), "--speed-repeats", str(args.speed_repeats),
               "--timelines-file", str(args.timelines_file)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode != 0 or not lines:
            raise SystemExit(f"speed run {s} s failed ({r.returncode}):\n{r.stderr[-3000:]}")
        out[str(s)] = json.loads(lines[-1])
        c = out[str(s)]
        log(f"  speed {s} s: " + (f"{c['median_s']:.2f} s, peak RSS {c['rss_peak_mb']:.0f} MB"
                                  if "error" not in c else f"n/a ({c['error']})"))
    return out


# =========================================================================== real motion


def real_reference(ds, n_windows, half, seed, log) -> dict:
    """Real motion's jerk: the mean over every frame of every clip (FlowMDM's GT jerk) and
    the curves of ``n_windows`` windows at random frames; physics per content."""
    fps = ds.fps
    t0 = time.perf_counter()
    lengths = [ds.clip(i)["frames"] for i in range(len(ds))]
    draws = smoothness.random_windows(lengths, n_windows, 2 * half, seed)
    starts = {}
    for k, (i, s) in enumerate(draws):
        starts.setdefault(i, []).append((k, s))
    total = count = 0.0
    curves = [None] * len(draws)
    for i in range(len(ds)):
        if lengths[i] < 4:
            continue
        pos = _feat.features_to_positions(ds.features(i))
        j = smoothness.jerk(pos, fps)
        total += float(j.sum())
        count += len(j)
        for k, s in starts.get(i, ()):
            curves[k] = smoothness.jerk(pos[s:s + 2 * half], fps)
    curves = np.stack(curves)
    phys, _ = physics.real_per_content(ds)
    log(f"real motion: {len(ds)} clips, {len(draws)} windows, {time.perf_counter() - t0:.1f} s")
    return {"mean_jerk": total / count, "curves": curves, "physics": phys, "fps": fps}


def real_matched(real, n, draws, seed) -> dict:
    """FlowMDM's Peak Jerk and AUJ of real motion from ``draws`` random sets of ``n`` of its
    windows (the two depend on the number of windows): the mean and the 95th percentile."""
    rng = np.random.default_rng(seed)
    c = real["curves"]
    vals = {"flowmdm_peak_jerk": [], "flowmdm_auj": []}
    for _ in range(draws):
        s = smoothness.summarize(c[rng.choice(len(c), size=min(n, len(c)), replace=False)],
                                 real["fps"], real["mean_jerk"])
        for k in vals:
            vals[k].append(s[k])
    return {k: {"mean": float(np.mean(v)), "p95": float(np.percentile(v, 95))}
            for k, v in vals.items()}


# =========================================================================== one model


def run_model(model, method, timelines, half, seed, log) -> dict:
    """Generate every timeline; the segments' features, the jerk curves of the boundary and
    interior windows, positions per content, timings."""
    rng = np.random.default_rng(seed)
    fps = model.fps
    feats, rows, by_content, per_tl = [], [], {}, []
    boundary, boundary_raw, interior, interior_raw = [], [], [], []
    t_all = time.perf_counter()
    for tl_spec in timelines:
        t0 = time.perf_counter()
        tl = make_timeline(model, tl_spec["segments"], method)
        wall = time.perf_counter() - t0
        f, pos = final_motion(tl.quats, tl.root, fps)
        raw_pos = _can.canonical_forward_kinematics(*_feat.features_to_motion(tl.features))
        wins = smoothness.boundary_windows([a for a, _ in tl.ranges[1:]], tl.frames, half)
        inner = [(a + half, b - half) for a, b in tl.ranges]
        picks = smoothness.random_windows([b - a for a, b in inner], 2 * len(wins), 2 * half, rng)
        boundary.append(smoothness.window_curves(pos, wins, fps))
        boundary_raw.append(smoothness.window_curves(raw_pos, wins, fps))
        inner_wins = [(inner[k][0] + s, inner[k][0] + s + 2 * half) for k, s in picks]
        interior.append(smoothness.window_curves(pos, inner_wins, fps))
        interior_raw.append(smoothness.window_curves(raw_pos, inner_wins, fps))
        for seg, (a, b) in zip(tl_spec["segments"], tl.ranges):
            feats.append(f[a:b])
            rows.append({"prompt": seg["prompt"], "content": seg["content"],
                         "style": seg["style"], "kinds": (), "timeline": tl_spec["id"]})
            by_content.setdefault(seg["content"], []).append(pos[a:b])
        per_tl.append({"id": tl_spec["id"], "frames": tl.frames, "method": tl.method,
                       "seconds": wall, "timings": tl.timings,
                       "boundary_peak_jerk": [float(c.max()) for c in boundary[-1]]})
        log(f"  {tl_spec['id']}: {tl.frames} frames, {tl.method}, {wall:.1f} s")
    return {"features": feats, "rows": rows, "by_content": by_content,
            **{k: np.concatenate([c for c in v if c.size]) for k, v in (
                ("boundary", boundary), ("boundary_raw", boundary_raw), ("interior", interior),
                ("interior_raw", interior_raw))},
            "timelines": per_tl, "seconds": time.perf_counter() - t_all,
            "method": per_tl[0]["method"] if per_tl else method}


def single_prompt(model, timelines, log) -> dict:
    """Single-prompt generations of every segment (same prompt, frames, seed): features."""
    from sparse_motion.inference import timeline as _tl

    feats, rows = [], []
    t0 = time.perf_counter()
    for tl_spec in timelines:
        segs = [_tl.Segment(s["prompt"], s["seconds"], s["seed"]) for s in tl_spec["segments"]]
        for seg, spec, (a, b) in zip(segs, tl_spec["segments"], _tl.segment_ranges(segs, model.fps)):
            gen = model.generate(seg.text, b - a, seg.seed)
            feats.append(final_motion(*gen.motion(0), model.fps)[0])
            rows.append({"prompt": spec["prompt"], "content": spec["content"],
                         "style": spec["style"], "kinds": ()})
    log(f"single-prompt reference: {len(feats)} segments, {time.perf_counter() - t0:.1f} s")
    return {"features": feats, "rows": rows}


def classify(clf, feats, rows) -> dict:
    res = _ys.score(rows, clf.probabilities(feats, "content"), clf.probabilities(feats, "style"),
                    clf.classes("content"), clf.classes("style"),
                    lambda s: clf.class_of("style", s), clf.manifest["dataset"]["content_clips"], 1)
    for r, row in zip(res["results"], rows):
        if "timeline" in row:
            r["timeline"] = row["timeline"]
        r["kinds"] = list(r["kinds"])
    return res


def physics_per_content(by_content, fps) -> dict:
    return {c: dict(physics.measure(p, fps), segments=len(p)) for c, p in sorted(by_content.items())}


# =========================================================================== report


def ratio(a, b):
    return float(a) / float(b) if b and np.isfinite(a) and np.isfinite(b) else float("nan")


def pct(v):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def num(v, f=".2f"):
    return "–" if v is None or not np.isfinite(v) else format(v, f)


def md(head, lines) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in lines])


def report(result) -> str:
    out = []
    models, ref = result["models"], result.get("single_prompt")
    # accuracy
    lines = []
    ref_c = ref["score"]["all"]["content"] if ref else None
    if ref:
        lines.append([f"single-prompt {ref['model']} (reference)", ref["score"]["all"]["n"],
                      pct(ref_c), pct(ref["score"]["all"]["style"]), "", ""])
    for name, m in models.items():
        a = m["accuracy"]["all"]
        d = None if ref_c is None else 100 * (a["content"] - ref_c)
        ok = "" if d is None else ("met" if d >= -BARS["content_points"] else "MISSED")
        lines.append([name, a["n"], pct(a["content"]), pct(a["style"]),
                      "" if d is None else f"{d:+.1f}", ok])
    out.append("Per-segment accuracy (motion classifiers; style over the segments that name "
               "one):\n\n" + md(["model", "segments", "content %", "style %",
                                 "content vs single-prompt (points)",
                                 f"bar (≥ −{BARS['content_points']:g})"], lines))
    # transitions (m/s³ and m/s² in the table: the measures are in cm)
    real = result["real"]
    base = next((m["transitions"] for m in models.values() if m["method"] == "crossfade"), None)
    m_ = lambda v: num(v / 100.0, ".0f")  # noqa: E731
    lines = [["real motion (random windows)", real["windows"], m_(real["peak_jerk"]), "1.00",
              m_(real["area_jerk"]), "1.00", "", "", "", ""]]
    for name, m in models.items():
        mt = m["real_matched"]
        for label, t, i in ((name, m["transitions"], m["interior"]),
                            (f"{name}, feet not locked", m["transitions_feet_not_locked"],
                             m["interior_feet_not_locked"])):
            bar = [t["peak_x_real"] <= BARS["jerk_x_real"], t["area_x_real"] <= BARS["jerk_x_real"]]
            if base is not None and m["method"] != "crossfade":
                bar += [t["peak_jerk"] < base["peak_jerk"], t["area_jerk"] < base["area_jerk"]]
            inner = f"{num(i['peak_x_real'])} / {num(i['area_x_real'])}"
            lines.append([label, t["windows"], m_(t["peak_jerk"]), num(t["peak_x_real"]),
                          m_(t["area_jerk"]), num(t["area_x_real"]),
                          f"{m_(t['flowmdm_peak_jerk'])} / {m_(mt['flowmdm_peak_jerk']['mean'])}",
                          f"{m_(t['flowmdm_auj'])} / {m_(mt['flowmdm_auj']['mean'])}", inner,
                          ("met" if all(bar) else "MISSED") if t is m["transitions"] else ""])
    out.append(f"\nTransitions: jerk (m/s³; FlowMDM's: 3rd difference of the joint positions, "
               f"L1 over xyz, max over joints) in ±{result['settings']['half_window']} frames "
               "around each boundary of the motion as written (feet locked; and of the decode "
               "before foot locking). Peak and area per window, averaged, × real motion's in "
               "windows at random frames of every clip; FlowMDM's Peak Jerk / AUJ of the mean "
               "curve, real motion's from as many random windows; interior: windows inside the "
               f"segments, ≥ {result['settings']['half_window']} frames from a boundary.\n\n"
               + md(
                   ["motion", "windows", "peak jerk", "× real", "area (m/s²)", "× real",
                    "FlowMDM PJ gen / real", "AUJ gen / real", "interior peak / area × real",
                    f"bar (≤ {BARS['jerk_x_real']:g}× real, < crossfade)"], lines))
    # foot skating
    contents = sorted({c for m in models.values() for c in m["physics"]})
    head = ["content", "real clips", "real skate cm/s"]
    for name in models:
        head += [f"{name} segments", "skate cm/s", "× real"]
    lines = []
    for c in contents:
        r = real["physics"].get(c, {})
        line = [c, r.get("clips", 0), num(r.get("foot_skate_cm_s", float("nan")))]
        for m in models.values():
            g = m["physics"].get(c)
            line += ["0", "–", "–"] if g is None else [
                g["segments"], num(g["foot_skate_cm_s"]),
                num(ratio(g["foot_skate_cm_s"], r.get("foot_skate_cm_s")))]
        lines.append(line)
    summary = "; ".join(f"{name}: {m['skate_met']}/{len(m['physics'])} contents within 1.3× "
                        f"real ({m['skate_never_near_floor']} never near the floor)"
                        for name, m in models.items())
    out.append("\nFoot skating per content (segments of that content vs every real clip of it):"
               f"\n\n{md(head, lines)}\n\n{summary}")
    # speed
    lines = []
    for name, m in models.items():
        sp = m.get("speed")
        if not sp:
            continue
        cells = [num(sp[str(s)].get("median_s", float("nan"))) if "error" not in sp[str(s)]
                 else "n/a" for s in SPEED_SECONDS]
        s60 = sp["60"]
        t60, rss = s60.get("median_s", float("nan")), s60.get("rss_peak_mb", float("nan"))
        per = [num(sp[str(s)]["median_s"] / s, ".3f") for s in SPEED_SECONDS
               if "median_s" in sp[str(s)]]
        ok = t60 <= BARS["speed_60s_s"] and rss < BARS["rss_60s_mb"]
        lines.append([name] + cells + [" / ".join(per), num(rss, ".0f"),
                                       "met" if ok else "MISSED"])
    if lines:
        th = result["settings"]["speed_threads"]
        out.append(f"\nSpeed: a timeline of {SPEED_SEGMENTS} equal segments, {th} threads, "
                   "median seconds; each length in a fresh process:\n\n" + md(
                       ["model"] + [f"{s} s" for s in SPEED_SECONDS]
                       + ["s per motion-s (15/30/60/120)", "peak RSS 60 s (MB)",
                          f"bar (60 s ≤ {BARS['speed_60s_s']:g} s, < {BARS['rss_60s_mb']:g} MB)"],
                       lines))
    return "\n".join(out)


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


# =========================================================================== main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=None,
                    help="package folder or name, optional @crossfade/@auto; repeatable")
    ap.add_argument("--method", default="auto", choices=("auto", "crossfade"))
    ap.add_argument("--timelines-file", default=str(TIMELINES))
    ap.add_argument("--timelines", type=int, default=0, help="only the first N (0: all)")
    ap.add_argument("--dataset", default=str(_ds.DEFAULT_OUT))
    ap.add_argument("--threads", type=int, default=2, help="threads of the quality runs")
    ap.add_argument("--half-window", type=int, default=smoothness.HALF_WINDOW)
    ap.add_argument("--real-windows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the random windows")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the single-prompt sMDM reference")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-threads", type=int, default=2)
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--speed-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="write every number to this JSON file")
    args = ap.parse_args(argv)
    args.model = args.model or ["smdm-default@crossfade"]
    if args.speed_child is not None:
        return speed_child(args)

    from sparse_motion.inference.classifier import MotionClassifier

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    timelines = load_timelines(args.timelines_file)
    if args.timelines:
        timelines = timelines[:args.timelines]
    half = int(args.half_window)
    ds = _ds.load_dataset(args.dataset)
    clf = MotionClassifier(threads=args.threads).load()
    real = real_reference(ds, args.real_windows, half, args.seed, log)
    real_sum = smoothness.summarize(real["curves"], real["fps"], real["mean_jerk"])
    result = {"settings": {**vars(args), "half_window": half,
                           "timelines_used": [t["id"] for t in timelines],
                           "segments": sum(len(t["segments"]) for t in timelines),
                           "classifiers": f"{clf.manifest['name']} {clf.manifest['version']}"},
              "bars": BARS,
              "real": {**real_sum, "mean_jerk_all_frames": real["mean_jerk"],
                       "physics": real["physics"]},
              "models": {}}
    if not args.no_reference:
        ref_model = open_spec("smdm-default", args.threads)
        sp = single_prompt(ref_model, timelines, log)
        result["single_prompt"] = {"model": f"{ref_model.package.name} "
                                   f"{ref_model.package.version}",
                                   "score": classify(clf, sp["features"], sp["rows"])}
        ref_model.release()
    for spec in args.model:
        pkg, method = parse_spec(spec, args.method)
        model = open_spec(pkg, args.threads)
        if float(model.fps) != float(ds.fps) or int(clf.manifest["fps"]) != int(ds.fps):
            raise SystemExit(f"{pkg}: {model.fps} fps; the classifiers and data are at {ds.fps}")
        name = f"{model.package.name} {model.package.version} ({method})"
        log(f"{name}:")
        r = run_model(model, method, timelines, half, args.seed, log)
        model.release()
        t, t_raw, inner, inner_raw = (
            smoothness.summarize(r[k], model.fps, real["mean_jerk"])
            for k in ("boundary", "boundary_raw", "interior", "interior_raw"))
        for s in (t, t_raw, inner, inner_raw):
            s["peak_x_real"] = ratio(s["peak_jerk"], real_sum["peak_jerk"])
            s["area_x_real"] = ratio(s["area_jerk"], real_sum["area_jerk"])
        phys = physics_per_content(r["by_content"], model.fps)
        m = {"package": pkg, "method": r["method"], "accuracy": classify(clf, r["features"], r["rows"]),
             "transitions": t, "transitions_feet_not_locked": t_raw, "interior": inner,
             "interior_feet_not_locked": inner_raw,
             "real_matched": real_matched(real, t["windows"], 200, args.seed),
             "physics": phys,
             "skate_met": sum(physics.meets_bar("foot_skate_cm_s",
                                                real["physics"][c]["foot_skate_cm_s"],
                                                v["foot_skate_cm_s"])
                              for c, v in phys.items() if c in real["physics"]),
             "skate_never_near_floor": sum(not np.isfinite(v["foot_skate_cm_s"])
                                           for v in phys.values()),
             "timelines": r["timelines"], "generate_seconds": r["seconds"]}
        if not args.no_speed:
            m["speed"] = measure_speed(f"{pkg}@{method}", args, log)
        result["models"][name] = m
    text = report(result)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(jsonable(result), indent=1, allow_nan=False))
        log(f"written {args.out}")


if __name__ == "__main__":
    main()
