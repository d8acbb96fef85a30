# SPDX-License-Identifier: GPL-3.0-or-later
"""Int8 weights for a text-to-motion package: every ONNX file through onnxruntime's dynamic
quantization (weights int8, activations quantized on the fly), checked end to end against the
float package, written as a new package (the manifest rewritten through the package code)::

    .venv-train/bin/python training/quantize_package.py build/motionlcm/cpu/pkg \\
        models/motionlcm-default

The check: the same prompts, lengths and seeds through both packages (``open_model``, foot
locking off, grounding off), the normalised features compared (mean and max absolute
difference, in units of each feature's standard deviation); it is recorded in the manifest
(``quantization``) and the command fails above ``--max-mean``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.inference.generation import open_model  # noqa: E402
from sparse_motion.inference.package import load_package, write_manifest  # noqa: E402

PROMPTS = ("a person walks forward", "someone waves with the right hand", "a man runs fast",
           "an old woman bows")


def quantize(src: Path, dst: Path) -> list:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if dst.resolve() == src.resolve():
        raise SystemExit("write the quantized package to another folder")
    dst.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    done = []
    for fname in manifest["files"]:
        if fname.endswith(".onnx"):
            # the exporter's stored intermediate shapes can disagree with onnx's own shape
            # inference (which the quantizer runs): drop them, keep the graph
            import onnx

            model = onnx.load(str(src / fname))
            del model.graph.value_info[:]
            tmp = dst / (fname + ".float.onnx")
            onnx.save(model, str(tmp))
            try:
                quantize_dynamic(str(tmp), str(dst / fname), weight_type=QuantType.QInt8)
            finally:
                tmp.unlink(missing_ok=True)
            done.append(fname)
        else:
            shutil.copyfile(src / fname, dst / fname)
    return done


def compare(src: Path, dst: Path, frames: int, seeds=(0, 1)) -> dict:
    a, b = open_model(load_package(src)).load(), open_model(load_package(dst)).load()
    diffs = []
    for text in PROMPTS:
        for seed in seeds:
            fa = a.generate(text, frames, seed, grounding=False, foot_lock=False).features[0]
            fb = b.generate(text, frames, seed, grounding=False, foot_lock=False).features[0]
            diffs.append(np.abs(fa - fb) / a.std)
    d = np.concatenate([x.ravel() for x in diffs])
    return {"mean_abs_std": round(float(d.mean()), 5), "max_abs_std": round(float(d.max()), 4),
            "prompts": len(PROMPTS), "seeds": len(seeds), "frames": frames}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--max-mean", type=float, default=0.1,
                    help="refuse when the mean |difference| exceeds this many std")
    args = ap.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    files = quantize(src, dst)
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    entries = {k: {kk: vv for kk, vv in v.items() if kk not in ("sha256", "size")}
               for k, v in manifest["files"].items()}
    write_manifest(dst, manifest, files=entries)   # valid package for the comparison
    check = compare(src, dst, args.frames)
    size = {"float32": sum((src / f).stat().st_size for f in manifest["files"]),
            "int8": sum((dst / f).stat().st_size for f in manifest["files"])}
    manifest["quantization"] = {"method": "onnxruntime quantize_dynamic, int8 weights",
                                "files": files, "bytes": size, "check": check,
                                "command": "training/quantize_package.py " + " ".join(
                                    sys.argv[1:] if argv is None else argv)}
    write_manifest(dst, manifest, files=entries)
    print(json.dumps(manifest["quantization"], indent=1))
    if check["mean_abs_std"] > args.max_mean:
        raise SystemExit(f"int8 differs too much: mean {check['mean_abs_std']} std")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
