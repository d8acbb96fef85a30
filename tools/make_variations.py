# SPDX-License-Identifier: GPL-3.0-or-later
"""Make variations of a reference action headless; save a .blend (and a .bvh per variation).

The reference is an armature in a .blend file, or a BVH file (imported first, any skeleton):
  .venv/bin/python tools/make_variations.py scene.blend::Armature::Walk --count 3 --out DIR
  .venv/bin/python tools/make_variations.py walk.bvh --count 5 --seconds 12 --out DIR
  blender --background --python tools/make_variations.py -- walk.bvh --out DIR

``FILE.blend`` alone works when its scene has one armature; ``::Action`` is optional (default:
the action the armature plays). Options: --count 3 --seconds 0 (as the reference) --seed 0
--novelty 0.5 --method motiondreamer|genmm --max-error 1.0 (cm) --no-bvh, and for a BVH
reference --scale auto (its length unit from the skeleton's height; or cm, m, mm, in, asf, or
metres per unit) and --no-ground (keep its height; default: lowest foot on the floor), so the
key tolerance in cm is in real centimetres. MotionDreamer models
are cached (``$SPARSE_MOTION_VARIATIONS_CACHE``, default ``~/.cache/sparse_motion/variations``
outside Blender's extension folder), so a second run on the same reference is instant.
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
from sparse_motion.blender import variations as var  # noqa: E402
from sparse_motion.blender.batch import open_reference  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402
from sparse_motion.pipeline.batch import slug  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference", help="FILE.bvh or FILE.blend[::Object[::Action]]")
    ap.add_argument("--out", required=True, help="folder for the .blend and .bvh files")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.0, help="0: as long as the reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--novelty", type=float, default=0.5, help="0 close … 1 novel")
    ap.add_argument("--method", choices=("motiondreamer", "genmm"), default="motiondreamer")
    ap.add_argument("--max-error", type=float, default=1.0, help="key tolerance in cm")
    ap.add_argument("--no-bvh", action="store_true", help="only the .blend")
    ap.add_argument("--scale", default="auto", help="BVH reference: " + bvh_mod.SCALE_HELP)
    ap.add_argument("--no-ground", action="store_true",
                    help="BVH reference: keep its height (default: the lowest foot on the floor)")
    args = ap.parse_args(argv)
    obj, action = open_reference(args.reference, scale=args.scale, ground=not args.no_ground)
    note = bvh_io.import_note(action or getattr(obj.animation_data, "action", None))
    if note:
        print(f"reference {note}")
    req = var.VariationRequest(obj=obj, action=action, count=args.count, seconds=args.seconds,
                               seed=args.seed, novelty=args.novelty, method=args.method.upper(),
                               max_error_cm=args.max_error)

    shown = set()

    def progress(fraction, status):  # a line every 10 %
        pct = int(100 * fraction)
        if pct // 10 not in shown:
            shown.add(pct // 10)
            print(f"{pct:3d} % {status}", file=sys.stderr, flush=True)

    result = var.make_variations(req, progress=progress)
    print(result.message())
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = slug(result.actions[0].get("sparse_motion", {}).get("variation_of", "reference"),
                40, fallback="reference")
    blend = (out / f"{stem}-variations-{args.seed}.blend").resolve()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False)
    written = [blend]
    if not args.no_bvh:
        for action in result.actions:
            actions.play(obj, action)
            path = (out / f"{slug(action.name, 60)}.bvh").resolve()
            bvh_io.export_bvh(obj, str(path), scale=100.0)
            written.append(path)
        actions.play(obj, result.actions[-1])
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    devimport.run_script(main)
