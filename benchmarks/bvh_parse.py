# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: read/write a large BVH (default 100,000 frames, 21 joints x 6 channels).

    python benchmarks/bvh_parse.py [--frames N] [--repeat R] [--compare]

Writes three files into a temporary directory and times
:func:`sparse_motion.motion.bvh.read` / :func:`write` on them:

* ``%.6f``-style values (like the Bandai-Namco dataset 2), written with ``precision=6``;
* ``%g``-style values with exponents and bare integers (like Bandai-Namco dataset 1);
* full-precision values written exactly (shortest round-trip repr, ~17 digits).

``--compare`` also times the PyPI packages ``bvh`` (``Bvh(text)`` + float conversion of
``frames``) and ``bvhio`` (``readAsBvh`` / ``writeBvh``) on the first file, when they are
importable. Install them in a throwaway environment, never in the project's.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()
from sparse_motion.motion import bvh as B  # noqa: E402

# A Bandai-like 21-joint tree in depth-first order (hips, spine chain, arms, legs).
PARENTS = [-1, 0, 1, 2, 3, 2, 5, 6, 7, 2, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19]
CHANNELS = ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]


def make_bvh(frames: int, seed: int = 0) -> B.Bvh:
    rng = np.random.default_rng(seed)
    leaves = set(range(len(PARENTS))) - set(PARENTS)
    js = [B.BvhJoint(f"joint_{j}", p, np.round(rng.normal(size=3) * 10, 4), CHANNELS,
                     np.round(rng.normal(size=3), 4) if j in leaves else None)
          for j, p in enumerate(PARENTS)]
    motion = np.round(rng.uniform(-180, 180, size=(frames, len(js) * 6)), 6)
    return B.Bvh(js, 1 / 30, motion)


def write_g_style(bvh: B.Bvh, path: str, block: int = 2000) -> np.ndarray:
    """Write ``bvh`` with '%g' values (many tiny ones in exponent form, some bare '0');
    returns the values as Python's float() reads them. Rows repeat in blocks (fast)."""
    rng = np.random.default_rng(1)
    base = bvh.motion[:block].copy()
    base[:, ::5] *= 1e-7  # exponent notation
    base[:, 3::11] = 0.0  # bare integers
    rows = ["".join(" ".join("%g" % v for v in r)) for r in base]
    text_block = ("\n".join(rows) + "\n").encode()
    parsed = np.array([[float(v) for v in r.split()] for r in rows])
    reps = -(-bvh.num_frames // block)
    head = B.dumps(B.Bvh(bvh.joints, bvh.frame_time, np.zeros((0, bvh.num_channels))))
    head = head.replace("Frames: 0", f"Frames: {reps * len(rows)}").encode()
    with open(path, "wb") as fh:
        fh.write(head)
        for _ in range(reps):
            fh.write(text_block)
    del rng
    return np.tile(parsed, (reps, 1))


def timeit(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", action="store_true", help="also time PyPI 'bvh' and 'bvhio'")
    args = ap.parse_args(argv)
    mb = lambda p: os.path.getsize(p) / 1e6  # noqa: E731

    bvh = make_bvh(args.frames)
    print(f"{args.frames} frames x {bvh.num_channels} channels, numpy {np.__version__}, "
          f"best of {args.repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        p6, pg, pex = (os.path.join(tmp, n) for n in ("six.bvh", "g.bvh", "exact.bvh"))

        t, _ = timeit(lambda: B.write(bvh, p6, precision=6), args.repeat)
        print(f"write  %.6f-style   {t:7.3f} s  ({mb(p6):.0f} MB)")
        t, got = timeit(lambda: B.read(p6), args.repeat)
        assert np.array_equal(got.motion, bvh.motion)
        print(f"read   %.6f-style   {t:7.3f} s")

        expect = write_g_style(bvh, pg)
        t, got = timeit(lambda: B.read(pg), args.repeat)
        assert np.array_equal(got.motion, expect)
        print(f"read   %g-style     {t:7.3f} s  ({mb(pg):.0f} MB)")

        noisy = bvh.copy()
        noisy.motion = bvh.motion + np.random.default_rng(1).normal(size=bvh.motion.shape)
        t, _ = timeit(lambda: B.write(noisy, pex), 1)
        print(f"write  exact 17-digit {t:7.3f} s  ({mb(pex):.0f} MB)")
        t, got = timeit(lambda: B.read(pex), args.repeat)
        assert np.array_equal(got.motion, noisy.motion)
        print(f"read   exact 17-digit {t:7.3f} s")

        if args.compare:
            try:
                from bvh import Bvh as PyPIBvh
            except ImportError:
                print("PyPI 'bvh' not importable; skipped")
            else:
                def pypi_bvh():
                    with open(p6) as fh:
                        m = PyPIBvh(fh.read())
                    return np.array(m.frames, dtype=np.float64)

                t, arr = timeit(pypi_bvh, 1)
                assert np.array_equal(arr, bvh.motion)
                print(f"PyPI bvh: read %.6f-style   {t:7.3f} s")
            try:
                import bvhio
            except ImportError:
                print("PyPI 'bvhio' not importable; skipped")
            else:
                t, cont = timeit(lambda: bvhio.readAsBvh(p6), 1)
                print(f"PyPI bvhio: readAsBvh  {t:7.3f} s")
                t, _ = timeit(lambda: bvhio.writeBvh(os.path.join(tmp, "io.bvh"), cont), 1)
                print(f"PyPI bvhio: writeBvh   {t:7.3f} s")


if __name__ == "__main__":
    main()
