# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate a motion from a prompt headless with the shipped model; save a .blend and a .bvh.

Works with the bpy module and inside Blender:
  .venv/bin/python tools/generate.py "a person walks forward and waves" --out DIR
  blender --background --python tools/generate.py -- "a person waves" --out DIR

Options: --seconds 4 --seed 0 --steps 50 --guidance 2.5 --results 1 --model NAME
--keys model|PERCENT (e.g. --keys 10 for 10 % of the frames) --fps 30 (scene frame rate).
The armature is the canonical 21-joint rig; the .bvh is in centimetres, Y up.
Exit code 0 on success, 1 with a message on bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devimport  # noqa: E402

devimport.load()
import bpy  # noqa: E402

from sparse_motion.blender import actions, bvh_io  # noqa: E402
from sparse_motion.blender.generate import GenerateRequest, generate  # noqa: E402
from sparse_motion.pipeline.batch import slug  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prompt")
    ap.add_argument("--out", required=True, help="folder for NAME.blend and NAME.bvh")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--results", type=int, default=1)
    ap.add_argument("--model", default="", help="model package name (default: the default)")
    ap.add_argument("--keys", default="model",
                    help="'model' (the model's keyframes) or a percentage of the frames")
    ap.add_argument("--fps", type=int, default=30, help="scene frame rate")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = args.fps
    bpy.context.scene.render.fps_base = 1.0
    key_mode, percent = "MODEL", 20.0
    if args.keys != "model":
        key_mode, percent = "PERCENT", float(args.keys)
    req = GenerateRequest(prompt=args.prompt, seconds=args.seconds, seed=args.seed,
                          steps=args.steps, guidance=args.guidance, results=args.results,
                          model=args.model, key_mode=key_mode, key_percent=percent)
    result = generate(req)
    print(result.message())
    t = result.timings
    print("timings: " + ", ".join(f"{k} {t[k]:.3f} s" for k in ("text", "sampling", "decoding",
                                                                 "writing") if k in t))
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    stem = f"{slug(args.prompt, 48, fallback='motion')}-{args.seed}"
    blend = (out / f"{stem}.blend").resolve()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    written = [blend]
    for i, action in enumerate(result.actions):
        bvh_path = (out / (f"{stem}.bvh" if len(result.actions) == 1 else f"{stem}-{i + 1}.bvh"))
        actions.play(result.obj, action)
        bvh_io.export_bvh(result.obj, str(bvh_path.resolve()), scale=100.0)
        written.append(bvh_path.resolve())
    print("wrote " + " and ".join(str(p) for p in written))


if __name__ == "__main__":
    devimport.run_script(main)
