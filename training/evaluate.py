# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluate text-to-motion generators against the real test split with the evaluator package.

One command prints one table (HumanML3D protocol, see ``docs/evaluator.md``):

* **real (test)** — the test split's own motions against their own captions: the ceiling
  for R-precision and MM-Dist, the floor for FID;
* **shuffled text** — the same motions with the captions shuffled across clips (chance);
* **noise** — Gaussian noise in normalised feature space, denormalised (chance);
* every ``--generator module:Class`` — a class with ``generate(text, length_frames, seed) ->
  (F, 257)`` raw features (``inference.evaluator.Generator``), asked for one motion per
  test clip (one of its captions, its length) and, for multimodality, ``--mm-gens``
  motions for each of ``--mm-texts`` captions.

Runs in the main venv (numpy + onnxruntime; no torch)::

    .venv/bin/python training/evaluate.py
    .venv/bin/python training/evaluate.py --generator mypkg.gen:MyGenerator \\
        --generator-kwargs '{"checkpoint": "x.onnx"}' --json build/eval.json

``module`` is imported with the repository root and ``training/`` on ``sys.path``; the class
is called with ``--generator-kwargs`` (a JSON object). Columns: R-precision top-1/2/3 (batches
of 32, motion vs its own caption + 31 others, mean over ``--repeats`` random batchings), FID
against the ``--reference`` split's embedding statistics (default train: the FID of the real
test row is then the sampling floor, not 0), MM-Dist, diversity (300 pairs), multimodality
(generators only), foot skating ratio, jitter (m/s³), ground penetration (cm).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.inference.evaluator import Evaluator, NoiseGenerator  # noqa: E402

DEFAULT_DATA = Path("~/.cache/sparse_motion/dataset-v1").expanduser()

COLUMNS = [
    ("R@1", "r_precision_top1", "{:.3f}"),
    ("R@2", "r_precision_top2", "{:.3f}"),
    ("R@3", "r_precision_top3", "{:.3f}"),
    ("FID", "fid", "{:.3f}"),
    ("MM-Dist", "mm_dist", "{:.3f}"),
    ("Diversity", "diversity", "{:.3f}"),
    ("MModality", "multimodality", "{:.3f}"),
    ("Skate", "foot_skating", "{:.3f}"),
    ("Jitter", "jitter", "{:.1f}"),
    ("Penetr.", "ground_penetration", "{:.2f}"),
]


def load_generator(spec: str, kwargs: dict):
    if ":" not in spec:
        raise SystemExit(f"--generator must be module:Class, got {spec!r}")
    mod_name, _, attr = spec.partition(":")
    for p in (str(ROOT / "training"), str(ROOT), str(Path.cwd())):
        if p not in sys.path:
            sys.path.insert(0, p)
    module = importlib.import_module(mod_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    # a class (or factory) is called with the kwargs; an object with generate() is used as is
    gen = obj if hasattr(obj, "generate") and not isinstance(obj, type) else obj(**kwargs)
    if not hasattr(gen, "generate"):
        raise SystemExit(f"{spec} has no generate(text, length_frames, seed) method")
    return gen


def generate_rows(gen, captions, lengths, seed, feature_dim, name):
    """One motion per test clip: its first caption after a seeded pick, its length."""
    rng = np.random.default_rng(seed)
    out = []
    t0 = time.perf_counter()
    for i, (caps, n) in enumerate(zip(captions, lengths)):
        text = caps[int(rng.integers(len(caps)))]
        f = np.asarray(gen.generate(text, int(n), int(seed * 100003 + i)), dtype=np.float32)
        if f.ndim != 2 or f.shape[1] != feature_dim:
            raise SystemExit(f"{name}: generate() returned shape {f.shape}, expected "
                             f"(frames, {feature_dim})")
        out.append(f)
    return out, time.perf_counter() - t0


def multimodality_groups(gen, captions, lengths, n_texts, n_gens, seed):
    rng = np.random.default_rng(seed + 7)
    pick = rng.choice(len(captions), min(n_texts, len(captions)), replace=False)
    groups = []
    for i in pick:
        text = captions[i][0]
        groups.append([gen.generate(text, int(lengths[i]), int(seed * 7919 + 31 * g + 1))
                       for g in range(n_gens)])
    return groups


def format_table(rows: dict) -> str:
    head = ["method"] + [c[0] for c in COLUMNS]
    lines = []
    for name, res in rows.items():
        cells = [name]
        for _, key, fmt in COLUMNS:
            v = res.get(key)
            if v is None:
                cells.append("-")
            else:
                s = fmt.format(v)
                ci = res.get(key + "_ci95")
                if ci is not None and key.startswith("r_precision"):
                    s += f"±{ci:.3f}"
                cells.append(s)
        lines.append(cells)
    widths = [max(len(str(r[k])) for r in [head] + lines) for k in range(len(head))]
    fmt_row = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt_row(head), sep] + [fmt_row(r) for r in lines])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="built dataset directory")
    ap.add_argument("--package", default=None, help="evaluator package (default: shipped)")
    ap.add_argument("--split", default="test", choices=("test", "val"))
    ap.add_argument("--generator", action="append", default=[], metavar="module:Class")
    ap.add_argument("--generator-kwargs", action="append", default=[], metavar="JSON",
                    help="constructor arguments, one JSON object per --generator")
    ap.add_argument("--label", action="append", default=[], metavar="NAME",
                    help="table row name of the matching --generator (default: its spec)")
    ap.add_argument("--no-baselines", action="store_true", help="skip shuffled and noise")
    ap.add_argument("--reference", default="train", choices=("train", "val", "test"),
                    help="FID reference statistics (split of the shipped package)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mm-texts", type=int, default=32)
    ap.add_argument("--mm-gens", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    ds = _ds.load_dataset(args.data)
    ev = Evaluator(args.package, threads=args.threads).load()
    idx = ds.indices(args.split)
    motions = [ds.features(int(i)) for i in idx]
    captions = [ds.captions(int(i)) for i in idx]
    lengths = [m.shape[0] for m in motions]
    common = dict(reference=args.reference, repeats=args.repeats, seed=args.seed)
    rows = {}
    real_emb = ev.embed_motion(motions)
    rows[f"real ({args.split})"] = ev.evaluate(motions, captions, motion_embeddings=real_emb,
                                               **common)
    if not args.no_baselines:
        perm = np.random.default_rng(args.seed + 1).permutation(len(idx))
        rows["shuffled text"] = ev.evaluate(motions, [captions[p] for p in perm],
                                            motion_embeddings=real_emb, **common)
        noise = NoiseGenerator(ev)
        gen_m, _ = generate_rows(noise, captions, lengths, args.seed, ev.feature_dim, "noise")
        rows["noise"] = ev.evaluate(
            gen_m, captions, mm_groups=multimodality_groups(
                noise, captions, lengths, args.mm_texts, args.mm_gens, args.seed), **common)
    kwargs_list = [json.loads(k) for k in args.generator_kwargs]
    for g, spec in enumerate(args.generator):
        kwargs = kwargs_list[g] if g < len(kwargs_list) else {}
        gen = load_generator(spec, kwargs)
        gen_m, secs = generate_rows(gen, captions, lengths, args.seed, ev.feature_dim, spec)
        groups = (multimodality_groups(gen, captions, lengths, args.mm_texts, args.mm_gens,
                                       args.seed) if args.mm_gens >= 2 else None)
        name = args.label[g] if g < len(args.label) else spec
        rows[name] = ev.evaluate(gen_m, captions, mm_groups=groups, **common)
        rows[name]["generate_seconds"] = round(secs, 2)

    print(f"evaluator {ev.manifest['name']} {ev.manifest['version']}; {args.split} split: "
          f"{len(idx)} clips; R-precision: batches of 32, mean ± 95% over {args.repeats} "
          f"batchings (chance R@1 {1 / 32:.3f}, R@3 {3 / 32:.3f}); FID vs the "
          f"{args.reference} split")
    print(format_table(rows))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"split": args.split, "reference": args.reference, "repeats": args.repeats,
             "seed": args.seed, "evaluator": ev.manifest["name"],
             "evaluator_version": ev.manifest["version"], "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
