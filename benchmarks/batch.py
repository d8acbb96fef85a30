# SPDX-License-Identifier: GPL-3.0-or-later
"""Batch generation throughput: items per minute and peak memory per worker process.

Runs the same prompts file (``--items`` prompts, ``--seconds`` long, ``--steps`` DDIM steps,
the default sMDM model, .blend + .bvh per item) three ways on this machine:

  plain loop   one Python process that loads the model again for every item (what a naive
               script does: ``release_models()`` before each item), same files written
  1 worker     ``tools/batch_generate.py`` (model loaded once)
  2 workers    ``tools/batch_generate.py --workers 2`` (model loaded once per worker)

and prints items per minute, the speed-up against the plain loop, and the peak resident
memory of the largest process (each worker holds its own model).

Usage: .venv/bin/python benchmarks/batch.py [--items 12] [--seconds 4] [--steps 50]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a person walks forward", "a person runs in a circle", "someone waves with the left hand",
           "a tired person walks slowly", "a person kicks with the right leg",
           "a person bows politely", "a happy person dances", "someone punches forward",
           "a person walks backwards", "an old man walks", "a person raises both hands",
           "a person turns around"]

PLAIN = r"""
import sys, time
sys.path.insert(0, %(tools)r)
import devimport; devimport.load()
from pathlib import Path
from sparse_motion.pipeline import batch as pb
from sparse_motion.blender import batch as bb, generate as gen
items = pb.read_prompts(%(prompts)r, pb.Defaults(seconds=%(seconds)r, steps=%(steps)r))
for it in items:
    gen.release_models()   # a plain loop loads the model for every item
    bb.run_item(it, Path(%(out)r), formats=("blend", "bvh"), threads=%(threads)r)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args(argv)
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompts = tmp / "prompts.txt"
        prompts.write_text("\n".join((PROMPTS * 4)[:args.items]) + "\n")
        # the per-process memory cannot be told apart after the fact: measure each way in a
        # fresh child of a fresh python, reading its RUSAGE_CHILDREN peak
        def measure(label, cmd):
            probe = ("import resource, subprocess, sys, time; t=time.perf_counter(); "
                     f"r=subprocess.run({cmd!r}, capture_output=True, text=True); "
                     "dt=time.perf_counter()-t; "
                     "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024.0, "
                     "r.returncode); sys.stderr.write(r.stderr[-1500:] if r.returncode > 1 else '')")
            r = subprocess.run([py, "-c", probe], capture_output=True, text=True)
            dt, mb, rc = r.stdout.split()
            if int(rc) > 1:
                raise SystemExit(f"{label} failed:\n{r.stderr}")
            rows.append((label, float(dt), float(mb)))
            print(f"{label}: {float(dt):.1f} s, peak {float(mb):.0f} MB", flush=True)

        plain = PLAIN % {"tools": str(ROOT / "tools"), "prompts": str(prompts),
                         "seconds": args.seconds, "steps": args.steps, "out": str(tmp / "plain"),
                         "threads": 0}
        measure("plain loop (model per item)", [py, "-c", plain])
        base = [py, str(ROOT / "tools" / "batch_generate.py"), str(prompts), "--seconds",
                str(args.seconds), "--steps", str(args.steps)]
        measure("batch, 1 worker", base + ["--out", str(tmp / "w1")])
        measure("batch, 2 workers", base + ["--out", str(tmp / "w2"), "--workers", "2",
                                            "--threads", "1"])
    print(f"\n{args.items} items of {args.seconds:g} s, {args.steps} steps, .blend + .bvh each\n")
    print("| run | seconds | items/min | vs plain loop | peak MB (largest process) |")
    print("|---|---|---|---|---|")
    base_rate = None
    for label, dt, mb in rows:
        rate = 60.0 * args.items / dt
        base_rate = base_rate or rate
        print(f"| {label} | {dt:.1f} | {rate:.1f} | {rate / base_rate:.2f}x | {mb:.0f} |")


if __name__ == "__main__":
    main()
