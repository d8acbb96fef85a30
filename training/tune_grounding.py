# SPDX-License-Identifier: GPL-3.0-or-later
"""Tune a text-to-motion package's prompt grounding and guidance on the dev prompts.

Issue 13: grounding (``inference/understand.ground``) conditions the model on a mix of the
prompt's embedding and the mean embedding of training captions of the prompt's nearest
(content, style). This sweeps its ``weight`` (0 = the prompt alone), ``min_confidence`` and
the guidance scale on ``training/dev_prompts.tsv`` — **never on the yardstick**
(``training/yardstick_prompts.tsv`` is the test set; ``training/evaluate.py --yardstick``
measures the chosen setting once) — with the yardstick's motion classifiers, and prints
content / style accuracy per setting (and writes them with ``--json``)::

    .venv/bin/python training/tune_grounding.py --package models/smdm-default \\
        --weight 0 0.5 0.7 0.85 1 --guidance 2.5 --json build/tune_grounding.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import evaluate as _ev  # noqa: E402  (sets up the import path)

from sparse_motion.inference.classifier import MotionClassifier  # noqa: E402
from sparse_motion.inference.evaluator import Evaluator  # noqa: E402
from sparse_motion.inference.generation import ModelGenerator  # noqa: E402

DEV_PROMPTS = ROOT / "training" / "dev_prompts.tsv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", default=None,
                    help="a text-to-motion package, any kind (default: the registry's sMDM)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (package default)")
    ap.add_argument("--prompts", default=str(DEV_PROMPTS))
    ap.add_argument("--weight", type=float, nargs="+", default=[0.0, 0.5, 0.7, 0.85, 1.0])
    ap.add_argument("--min-confidence", type=float, nargs="+", default=[0.3])
    ap.add_argument("--guidance", type=float, nargs="+", default=[None],
                    help="guidance scales (default: the package's)")
    ap.add_argument("--key-fraction", type=float, nargs="+", default=[None],
                    help="keyframes per frame (package default)")
    ap.add_argument("--results", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if Path(args.prompts).resolve() == _ev._ys.PROMPTS_FILE.resolve():
        raise SystemExit("refusing to tune on the yardstick: it is the test set")
    rows = _ev._ys.load_prompts(args.prompts)
    ev = Evaluator(None, threads=args.threads).load()
    clf = MotionClassifier(None, threads=args.threads).load()
    out = []
    for w, mc, g, kf in itertools.product(args.weight, args.min_confidence, args.guidance,
                                          args.key_fraction):
        grounding = {"weight": w, "min_confidence": mc} if w > 0 else False
        gen = ModelGenerator(args.package, steps=args.steps, guidance=g, threads=args.threads,
                             grounding=grounding, key_fraction=kf)
        t0 = time.perf_counter()
        res = _ev.run_yardstick(gen, ev, clf, rows, args.results, args.seconds, args.seed,
                                f"w={w}")
        row = {"weight": w, "min_confidence": mc, "guidance": g, "key_fraction": kf,
               "content": res["all"]["content"],
               "content_ge15": res[f"content_ge{_ev._ys.MIN_CLIPS}"]["content"],
               "content_top3": res["all"]["content_top3"],
               "style": res["all"]["style"], "seconds": round(time.perf_counter() - t0, 1)}
        out.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"prompts": str(args.prompts),
                                               "package": args.package, "results": out},
                                              indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
