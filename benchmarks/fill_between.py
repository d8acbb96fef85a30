# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill Between on held-out real clips: the standard in-betweening protocol (LaFAN1's L2P),
on our data.

::

    .venv/bin/python benchmarks/fill_between.py                 # 40 test clips, G = 5 15 30 60
    .venv/bin/python benchmarks/fill_between.py --clips 10 --gaps 15 30 --split val

For each held-out clip of the dataset's test split (``~/.cache/sparse_motion/dataset-v1``,
``training/build_dataset.py``; 20 fps, at most ``--frames`` frames) a pose is kept every G
frames (and the last frame) and the frames between are rebuilt by

* **fill** — ``SmdmModel.fill`` with the shipped sMDM default (imputation in the loop, no
  prompt, ``--steps``, ``--strength`` as Fill Between: the model's default), the known poses full body with the root;
* **bezier** — Blender's default interpolation of the same keys: every channel (quaternion
  components, root location) a Bezier curve with auto-clamped handles (tangent from the
  neighbouring keys, flat at extrema and at the ends), quaternions normalised;
* **slerp** — spherical linear interpolation of the joint rotations, linear root.

Measures against the real clip: mean joint position error (cm, all joints and frames) and
foot skating (``motion.physics``, cm/s) against the real clip's own. Also the time of one
10 s fill with 4 keys (``--threads``, default 2). Bars (issue 16): fill ≤ 0.5× bezier error at
G = 30, ≤ 0.6× at 15, never worse at 5; foot skating ≤ 1.3× real; 10 s with 4 keys ≤ 1 s.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import numpy as np  # noqa: E402

from sparse_motion.inference import inbetween as ib  # noqa: E402
from sparse_motion.inference import registry  # noqa: E402
from sparse_motion.inference.runtime import RuntimeSettings  # noqa: E402
from sparse_motion.inference.smdm import SmdmModel  # noqa: E402
from sparse_motion.keyframes import bezier  # noqa: E402
from sparse_motion.keyframes.continuity import quat_continuous  # noqa: E402
from sparse_motion.motion import canonical as canon  # noqa: E402
from sparse_motion.motion import dataset as ds  # noqa: E402
from sparse_motion.motion import features as feat  # noqa: E402
from sparse_motion.motion import physics  # noqa: E402
from sparse_motion.motion import rotations as rot  # noqa: E402
from sparse_motion.motion.skeleton import forward_kinematics  # noqa: E402

SK = canon.SKELETON


def auto_clamped(values, keys):
    """Blender-like Bezier interpolation of ``values (N, C)`` through rows ``keys``:
    auto-clamped handles (Catmull-Rom slope, flat at local extrema and at the end keys)."""
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(keys, dtype=np.float64)
    kv = v[keys]
    slope = np.zeros_like(kv)
    if len(keys) > 2:
        slope[1:-1] = (kv[2:] - kv[:-2]) / (t[2:] - t[:-2])[:, None]
        ext = (kv[1:-1] - kv[:-2]) * (kv[2:] - kv[1:-1]) <= 0
        slope[1:-1][ext] = 0.0
    dt = np.diff(t)
    dl = np.concatenate([dt[:1], dt])[:, None] / 3.0
    dr = np.concatenate([dt, dt[-1:]])[:, None] / 3.0
    return bezier.evaluate(np.arange(len(v), dtype=np.float64), keys, kv, kv - slope * dl,
                           kv + slope * dr)


def bezier_fill(q, x, keys):
    qc = quat_continuous(q)
    qb = auto_clamped(qc.reshape(len(q), -1), keys).reshape(q.shape)
    return rot.quat_normalize(qb), auto_clamped(x, keys)


def slerp_fill(q, x, keys):
    qs, xs = q.copy(), x.copy()
    for a, b in zip(keys[:-1], keys[1:]):
        u = (np.arange(a, b + 1) - a) / (b - a)
        n = len(u)
        qs[a:b + 1] = canon.slerp(np.repeat(q[a][None], n, 0), np.repeat(q[b][None], n, 0),
                                  np.repeat(u[:, None], q.shape[1], 1))
        xs[a:b + 1] = x[a] * (1 - u)[:, None] + x[b] * u[:, None]
    return qs, xs


def positions(q, x):
    return forward_kinematics(SK, q, x)


def skate(p, fps):
    return physics.measure(p, fps)["foot_skate_cm_s"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=str(ds.DEFAULT_OUT))
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--frames", type=int, default=200, help="at most this many frames a clip")
    ap.add_argument("--min-frames", type=int, default=80)
    ap.add_argument("--gaps", type=int, nargs="+", default=[5, 15, 30, 60])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--strength", type=float, default=None,
                    help="start from the Bezier in-betweens noised to this (1: pure noise; "
                         "default: the model's, SmdmModel.fill)")
    ap.add_argument("--key-fraction", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--caption", action="store_true",
                    help="give the model the clip's own first caption as the prompt (a side "
                    "figure: the protocol has no prompt)")
    ap.add_argument("--no-foot-lock", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the numbers here")
    ap.add_argument("--package", default=None,
                    help="an sMDM package (default: the registry's default sMDM)")
    ap.add_argument("--split", default="test",
                    help="the dataset split whose clips are filled (tune on 'val', report 'test')")
    a = ap.parse_args(argv)

    d = ds.load_dataset(a.dataset)
    idx = [int(i) for i in d.indices(a.split) if d.clip(int(i))["frames"] >= a.min_frames]
    idx = idx[::max(1, len(idx) // a.clips)][:a.clips]
    model = SmdmModel(a.package or registry.get_registry().default("smdm"),
                      settings=RuntimeSettings(threads=a.threads)).load()
    fps = d.fps
    rows = {}
    for G in a.gaps:
        err = {"fill": [], "bezier": [], "slerp": []}
        sk = {"real": [], "fill": [], "bezier": [], "slerp": []}
        exact = 0.0
        for i in idx:
            f = d.features(i)[:a.frames]
            q, x = feat.features_to_motion(f)
            N = len(q)
            keys = np.unique(np.r_[np.arange(0, N, G), N - 1])
            truth = positions(q, x)
            qb, xb = bezier_fill(q, x, keys)
            qs, xs = slerp_fill(q, x, keys)
            known = ib.Keyframes.full(qb, xb, keys)  # between the keys: what Blender plays
            known.quats[keys], known.root[keys] = q[keys], x[keys]
            res = model.fill(known, d.clip(i)["captions"][0] if a.caption else "", seed=a.seed,
                             steps=a.steps, strength=a.strength, key_fraction=a.key_fraction,
                             foot_lock=not a.no_foot_lock)
            out = {"fill": positions(*res.motions[0]), "bezier": positions(qb, xb),
                   "slerp": positions(qs, xs)}
            inner = np.setdiff1d(np.arange(N), keys)
            for k, p in out.items():
                err[k].append(np.linalg.norm(p[inner] - truth[inner], axis=-1).mean())
                sk[k].append(skate(p, fps))
            sk["real"].append(skate(truth, fps))
            exact = max(exact, float(np.linalg.norm(out["fill"][keys] - truth[keys], axis=-1).max()))
        r = {k: float(np.mean(v)) for k, v in err.items()}
        r.update({f"skate_{k}": float(np.nanmean(v)) for k, v in sk.items()})
        r["fill_over_bezier"] = r["fill"] / r["bezier"]
        r["max_key_error_cm"] = exact
        rows[G] = r
        print(f"G={G:3d}: fill {r['fill']:.2f} cm, bezier {r['bezier']:.2f}, slerp {r['slerp']:.2f}"
              f" (fill/bezier {r['fill_over_bezier']:.2f}); skating cm/s real "
              f"{r['skate_real']:.2f} fill {r['skate_fill']:.2f} bezier {r['skate_bezier']:.2f} "
              f"slerp {r['skate_slerp']:.2f}; key error ≤ {exact:.4f} cm", flush=True)

    # speed: a 10 s range (200 frames) with 4 keys, as Fill Between runs it
    f = d.features(idx[0])
    q, x = feat.features_to_motion(np.concatenate([f] * (1 + 200 // len(f)))[:200])
    keys = np.array([0, 66, 133, 199])
    known = ib.Keyframes.full(*bezier_fill(q, x, keys), keys)
    times = []
    for s in range(3):
        t0 = time.perf_counter()
        model.fill(known, "", seed=s, steps=a.steps, strength=a.strength,
                   key_fraction=a.key_fraction)
        times.append(time.perf_counter() - t0)
    speed = float(np.median(times))
    print(f"10 s range, 4 keys, {a.steps} steps, {a.threads} threads: {speed:.2f} s (median of 3)")
    bars = {
        "G30 fill <= 0.5 x bezier": rows.get(30, {}).get("fill_over_bezier", np.nan) <= 0.5,
        "G15 fill <= 0.6 x bezier": rows.get(15, {}).get("fill_over_bezier", np.nan) <= 0.6,
        "G5 fill <= bezier": rows.get(5, {}).get("fill_over_bezier", np.nan) <= 1.0,
        "skating <= 1.3 x real": all(r["skate_fill"] <= 1.3 * r["skate_real"] for r in rows.values()),
        "10 s / 4 keys <= 1 s": speed <= 1.0,
    }
    for k, ok in bars.items():
        print(f"  {'held ' if ok else 'MISSED'} {k}")
    if a.json:
        Path(a.json).write_text(json.dumps({"clips": len(idx), "steps": a.steps,
                                            "strength": a.strength, "gaps": rows,
                                            "seconds_10s_4keys": speed, "bars": bars}, indent=1))


if __name__ == "__main__":
    main()
