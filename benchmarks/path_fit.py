# SPDX-License-Identifier: GPL-3.0-or-later
"""Fit to Path on real walks: what bending a motion onto a drawn path costs in foot skating.

::

    .venv/bin/python benchmarks/path_fit.py [--clips 12] [--content walk]

Real clips of a content from the dataset cache (``training/build_dataset.py``; the Bandai
Namco data, read, never copied), each decoded from its features into the generation frame
(frame 0 at the origin facing +Z). Each is bent (``motion.paths.fit_to_path``, as Follow path
with *Fit to Path* does) onto paths of its own travelled length at an even pace — a straight
line, a quarter circle, an S-curve (two arcs of ±60°) and a full circle — then its planted
feet pinned again with the root left on the path (``lock_feet(root=False)``, contacts from
the clip's own channels). Measured per path, pooled over the clips (``motion.physics``): foot
skating (cm/s of planted feet) of the real clip, of the real clip through Generate Motion's
foot locking, bent, bent and pinned; the pelvis's distance
to the path (cm); the body's facing against the path's heading (degrees, the Hips' forward
against the path's tangent, over the frames where the path is not straight ahead of it by
construction). The issue's bar: foot skating ≤ 1.3× real walks.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import numpy as np  # noqa: E402

from sparse_motion.motion import canonical as _can  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402
from sparse_motion.motion import footlock, paths, physics  # noqa: E402
from sparse_motion.motion import rotations as _rot  # noqa: E402

FPS = 20.0


def arc(length, turns, n=200):
    """A ground path (N, 3) cm from the origin heading +Z, made of arcs of the given turn
    angles (radians, + to the left... of +X) sharing ``length`` equally (0: straight)."""
    pts, heading, p = [np.zeros(3)], 0.0, np.zeros(3)
    per = length / len(turns)
    for turn in turns:
        for _ in range(n):
            heading += turn / n
            p = p + per / n * np.array([np.sin(heading), 0.0, np.cos(heading)])
            pts.append(p)
    return np.array(pts)


SHAPES = {"straight": [0.0], "quarter circle": [np.pi / 2], "S-curve": [np.pi / 3, -np.pi / 3],
          "circle": [2 * np.pi]}


def bend(f, shape):
    q, x = _feat.features_to_motion(f)
    ground = x[:, [0, 2]]
    own = float(np.linalg.norm(np.diff(ground, axis=0), axis=1).sum())
    pc = paths.path_control(arc(own, SHAPES[shape]), len(f), FPS, float(x[:, 1].mean()))
    qb, xb = paths.fit_to_path(q, x, pc, FPS)
    contacts = f[:, _feat.feature_layout()["foot_contacts"]]
    qp, xp = footlock.lock_feet(qb, xb, contacts=contacts, root=False)
    d = np.linalg.norm(xp[:, [0, 2]] - pc.control[:, [0, 2]], axis=1)
    fwd = _rot.quat_rotate(qp[:, 0], [0.0, 0.0, 1.0])[:, [0, 2]]
    tangent = np.gradient(pc.control[:, [0, 2]], axis=0)
    ang = np.degrees(np.abs(np.angle(np.exp(1j * (np.arctan2(fwd[:, 0], fwd[:, 1])
                                                  - np.arctan2(tangent[:, 0], tangent[:, 1]))))))
    return (q, x), (qb, xb), (qp, xp), d, ang


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default=str(_ds.DEFAULT_OUT))
    ap.add_argument("--content", default="walk")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    a = ap.parse_args(argv)
    ds = _ds.load_dataset(Path(a.dataset).expanduser())
    picks = [i for i in range(len(ds)) if ds.content(i) == a.content
             and ds.clip(i)["frames"] >= a.min_seconds * FPS][:a.clips]
    if not picks:
        raise SystemExit(f"no {a.content} clips of {a.min_seconds} s or more")
    print(f"{len(picks)} {a.content} clips of >= {a.min_seconds:g} s, bent onto paths of "
          "their own length at an even pace")
    print("| path | foot skate cm/s real | real, feet locked | bent | bent + pinned | ratio to "
          "real | pelvis to path cm mean / max | facing vs path deg median / p90 |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        real, locked, bent, pinned, dist, ang = [], [], [], [], [], []
        for i in picks:
            f = np.asarray(ds.features(i), dtype=np.float64)
            (q, x), (qb, xb), (qp, xp), d, g = bend(f, shape)
            real.append(_can.canonical_forward_kinematics(q, x))
            contacts = f[:, _feat.feature_layout()["foot_contacts"]]
            locked.append(_can.canonical_forward_kinematics(
                *footlock.lock_feet(q, x, contacts=contacts)))
            bent.append(_can.canonical_forward_kinematics(qb, xb))
            pinned.append(_can.canonical_forward_kinematics(qp, xp))
            dist.append(d)
            ang.append(g)
        m = [physics.measure(p, FPS)["foot_skate_cm_s"] for p in (real, locked, bent, pinned)]
        dist, ang = np.concatenate(dist), np.concatenate(ang)
        print(f"| {shape} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} | "
              f"{m[3] / m[0]:.2f} | "
              f"{dist.mean():.1f} / {dist.max():.1f} | {np.median(ang):.0f} / "
              f"{np.percentile(ang, 90):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
