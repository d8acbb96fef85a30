# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end timing of Generate Motion, split into its stages, in one process.

For 6 s and 10 s motions at 10 and 50 DDIM steps, with onnxruntime and with PyTorch (the
package's ``denoiser.pt``; skipped when torch is missing), one result, guidance 2.5:

  text      caption → sentence embedding (the shipped ONNX text encoder)
  sampling  the DDIM loop (numpy) with the denoiser (2 rows per step for guidance)
  decoding  features → canonical rotations + root, foot locking
  writing   everything in Blender (4.5, the bpy module): a new canonical rig, the motion in
            its bones' space, and the keys on the model's keyframes with fitted handles
  keys      the part of writing that fits the Bezier handles and writes the F-curve keys

Each cell is the median of ``--repeats`` runs after one warm-up; the ratio column is
torch / onnxruntime for the same cell. The targets (issue #4, 2 CPU cores): 10 s at 50 steps
≤ 1.5 s end to end with writing ≤ 5 % of it.

Usage: .venv/bin/python benchmarks/generate.py [--model DIR] [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

import bpy  # noqa: E402

from sparse_motion.blender import generate as bl_gen  # noqa: E402
from sparse_motion.inference.runtime import RuntimeSettings  # noqa: E402
from sparse_motion.inference.smdm import SmdmModel  # noqa: E402
from sparse_motion.inference import registry  # noqa: E402

PROMPT = "a person walks forward and waves with the right hand"
STAGES = ("text", "sampling", "decoding", "writing")


def run_once(model, seconds, steps, seed):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 20
    req = bl_gen.GenerateRequest(prompt=PROMPT, seconds=seconds, seed=seed, steps=steps)
    frames = int(round(seconds * model.fps))
    gen = bl_gen.sample(model, req, frames)
    res = bl_gen.apply(gen, req)
    t = {k: res.timings.get(k, 0.0) for k in STAGES}
    t["total"] = sum(t.values())
    t["keys_s"] = res.timings.get("keys", 0.0)
    t["keys"] = res.keys
    t["key_frames"] = res.key_frames
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="sMDM package folder (default: the default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="CPU", choices=("CPU", "CUDA", "AUTO"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    pkg = args.model or registry.get_registry().default("smdm").path
    settings = RuntimeSettings(device=args.device, threads=args.threads)
    backends = ["onnx"]
    try:
        import torch  # noqa: F401

        backends.append("torch")
    except ImportError:
        print("torch not installed: onnxruntime only")
    results = {}
    for backend in backends:
        model = SmdmModel(pkg, settings=settings, backend=backend).load()
        run_once(model, 2.0, 10, 0)  # warm-up
        for seconds in (6.0, 10.0):
            for steps in (10, 50):
                runs = [run_once(model, seconds, steps, seed) for seed in range(args.repeats)]
                cell = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                results[(backend, seconds, steps)] = cell
        model.release()
    print(f"\nsMDM Generate Motion, {Path(pkg).name}, {args.threads} threads, device "
          f"{args.device}, {platform.processor() or platform.machine()}, median of "
          f"{args.repeats} (seconds)\n")
    head = "| backend | length | steps | text | sampling | decoding | writing | (keys) | total " \
           "| writing % | keys % | keys | torch/ORT |"
    print(head)
    print("|" + "|".join("---" for _ in head.split("|")[1:-1]) + "|")
    for (backend, seconds, steps), c in results.items():
        ratio = ""
        if backend == "torch" and ("onnx", seconds, steps) in results:
            ratio = f"{c['total'] / results[('onnx', seconds, steps)]['total']:.2f}x"
        print(f"| {backend} | {seconds:.0f} s | {steps} | {c['text']:.3f} | {c['sampling']:.3f} "
              f"| {c['decoding']:.3f} | {c['writing']:.3f} | {c['keys_s']:.3f} | {c['total']:.3f} "
              f"| {100 * c['writing'] / c['total']:.1f} | {100 * c['keys_s'] / c['total']:.1f} "
              f"| {int(c['keys'])} | {ratio} |")
    key = ("onnx", 10.0, 50)
    if key in results:
        c = results[key]
        print(f"\ntarget: 10 s at 50 steps (onnxruntime) {c['total']:.2f} s end to end "
              f"({'meets' if c['total'] <= 1.5 else 'misses'} ≤ 1.5 s); key writing (fit + "
              f"F-curves) {100 * c['keys_s'] / c['total']:.1f} % "
              f"({'meets' if c['keys_s'] <= 0.05 * c['total'] else 'misses'} ≤ 5 %); all "
              f"Blender work (rig + pose + keys) {100 * c['writing'] / c['total']:.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {f"{b}|{s}|{st}": c for (b, s, st), c in results.items()}, indent=1))


if __name__ == "__main__":
    main()
