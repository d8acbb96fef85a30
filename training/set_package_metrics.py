# SPDX-License-Identifier: GPL-3.0-or-later
"""Write evaluation results (``training/evaluate.py --json``) and training facts into a model
package's manifest (checksums and sizes are recomputed; the model files are not touched)::

    .venv/bin/python training/set_package_metrics.py models/smdm-default build/smdm/eval.json \\
        "sMDM default (foot lock)" --set training.command="…" --set training.train_minutes=54
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.inference.package import write_manifest  # noqa: E402

KEEP = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "fid", "mm_dist",
        "diversity", "multimodality", "foot_skating", "jitter", "ground_penetration",
        "r_precision_top1_ci95", "r_precision_top3_ci95", "generate_seconds")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("package")
    ap.add_argument("eval_json")
    ap.add_argument("row", help="the evaluation row of this package")
    ap.add_argument("--extra-rows", nargs="*", default=[],
                    help="other rows to keep under metrics.compared (e.g. the real data)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY.PATH=JSON_OR_TEXT")
    a = ap.parse_args(argv)
    pkg = Path(a.package)
    manifest = json.loads((pkg / "manifest.json").read_text(encoding="utf-8"))
    ev = json.loads(Path(a.eval_json).read_text(encoding="utf-8"))
    rows = ev["rows"]

    def pick(row):
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[row].items()
                if k in KEEP}

    metrics = {"eval_split": ev["split"], "fid_reference": ev["reference"],
               "evaluator": f"{ev['evaluator']} {ev['evaluator_version']}",
               "protocol": f"R-precision batches of 32, {ev['repeats']} batchings, seed "
                           f"{ev['seed']}", **pick(a.row)}
    real = next((r for r in rows if r.startswith("real")), None)
    compared = {r: pick(r) for r in ([real] if real else []) + a.extra_rows if r in rows}
    if compared:
        metrics["compared"] = compared
    manifest["metrics"] = metrics
    for item in a.set:
        key, _, value = item.partition("=")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        node = manifest
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    files = {k: {kk: vv for kk, vv in v.items() if kk not in ("sha256", "size")}
             for k, v in manifest["files"].items()}
    write_manifest(pkg, manifest, files=files)
    print(json.dumps(manifest["metrics"], indent=1))


if __name__ == "__main__":
    main()
