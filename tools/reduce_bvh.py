# SPDX-License-Identifier: GPL-3.0-or-later
"""Reduce a dense BVH to sparse keys headless, and save a .blend and a .bvh.

Works with the bpy module and inside Blender:
  .venv/bin/python tools/reduce_bvh.py INPUT --out DIR [--ratio 0.1 | --max-error 1.0]
  blender --background --python tools/reduce_bvh.py -- INPUT --out DIR

INPUT is a .bvh file or ZIP::MEMBER (a file inside a zip, read in place), e.g.
  ../shared/data/bandai-namco/Bandai-Namco-Research-Motiondataset-1.zip::Bandai-Namco-Research-Motiondataset-1/data/dataset-1_dance-short_normal_001.bvh
The length unit is detected from the skeleton's height (--scale auto; or give cm, m, mm, in,
asf or metres per unit), so --max-error is in real centimetres; the output BVH is written in
the input's unit. The lowest foot is put on the floor unless --no-ground.
Exit code 0 on success, 1 with a message on bad input.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devimport  # noqa: E402

devimport.load()
import bpy  # noqa: E402

from sparse_motion.blender import bvh_io  # noqa: E402
from sparse_motion.blender.reduce import ReduceSettings  # noqa: E402
from sparse_motion.errors import SparseMotionError  # noqa: E402
from sparse_motion.motion import bvh as bvh_mod  # noqa: E402


def materialise(spec: str, tmp: Path) -> Path:
    if "::" in spec:
        archive, member = spec.split("::", 1)
        try:
            data = zipfile.ZipFile(archive).read(member)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise SparseMotionError(f"cannot read {member} from {archive}: {exc}") from None
        path = tmp / Path(member).name
        path.write_bytes(data)
        return path
    path = Path(spec)
    if not path.is_file():
        raise SparseMotionError(f"no such file: {spec}")
    return path


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("--out", required=True, help="folder for NAME.blend and NAME.bvh")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--ratio", type=float, default=None, help="fraction of frames kept (default 0.1)")
    group.add_argument("--max-error", type=float, default=None, help="max joint error in cm")
    ap.add_argument("--handles", choices=("free", "aligned"), default="free")
    ap.add_argument("--scale", default="auto", help=bvh_mod.SCALE_HELP)
    ap.add_argument("--no-ground", action="store_true",
                    help="keep the file's height (default: the lowest foot on the floor)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        src = materialise(args.input, Path(tmp))
        bpy.ops.wm.read_factory_settings(use_empty=True)
        settings = ReduceSettings(
            mode="ERROR" if args.max_error is not None else "RATIO",
            ratio=args.ratio if args.ratio is not None else 0.1,
            max_error_cm=args.max_error or 1.0,
            handles=args.handles.upper(),
        )
        result = bvh_io.import_bvh_result(src, scale=args.scale, reduce=settings,
                                          ground=not args.no_ground)
        print(result.message())
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        stem = src.stem
        blend = (out / f"{stem}.blend").resolve()
        bvh_out = (out / f"{stem}.bvh").resolve()
        out.mkdir(parents=True, exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        bvh_io.export_bvh(result.obj, str(bvh_out), scale=1.0 / result.units.scale)
        print(f"wrote {blend} and {bvh_out}")


if __name__ == "__main__":
    devimport.run_script(main)
