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

``--yardstick`` adds the prompt-robustness yardstick (``training/yardstick.py``, issue 13):
every generator (default: the shipped sMDM, ``sparse_motion.inference.smdm:SmdmGenerator``)
makes ``--yardstick-results`` motions of ``--yardstick-seconds`` for each of the 345
hand-written prompts (held out of every training caption), the ``motion-classifier``
package (``models/classifiers``, trained on real motion) names their content and style, and
the tables give content accuracy (all prompts; prompts whose content has >= 15 clips),
content top-3, style accuracy, per kind and per content, beside the classifiers' accuracy on
real held-out clips (the ceiling), and per content the physics of the generated motion
(``motion.physics``) beside the real clips of that content. ``--no-table`` skips the
test-split table.

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
from sparse_motion.inference.classifier import MotionClassifier  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402
from sparse_motion.motion import physics as _phys  # noqa: E402

sys.path.insert(0, str(ROOT / "training"))
import yardstick as _ys  # noqa: E402

DEFAULT_DATA = Path("~/.cache/sparse_motion/dataset-v1").expanduser()
DEFAULT_YARDSTICK_GENERATOR = "sparse_motion.inference.smdm:SmdmGenerator"

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
    return _md(head, lines)


def _md(head, lines) -> str:
    """A Markdown table, columns padded."""
    widths = [max(len(str(r[k])) for r in [head] + lines) for k in range(len(head))]
    fmt_row = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt_row(head), sep] + [fmt_row(r) for r in lines])


# =========================================================================== yardstick


def real_ceiling(clf, ds, split: str) -> dict:
    """The classifiers on the real clips of ``split`` (held out of their training): overall
    and per content, as the yardstick scores generated motion."""
    idx = ds.indices(split)
    feats = [ds.features(int(i)) for i in idx]
    cc = clf.classes("content")
    sc = clf.classes("style")
    pc = clf.probabilities(feats, "content")
    ps = clf.probabilities(feats, "style")
    rows = [{"prompt": ds.clips[int(i)]["id"], "content": ds.clips[int(i)]["content"],
             "style": ds.clips[int(i)]["style"], "kinds": ()} for i in idx]
    res = _ys.score(rows, pc, ps, cc, sc, lambda s: clf.class_of("style", s),
                    clf.manifest["dataset"]["content_clips"], 1)
    res.pop("results")
    return res


def real_physics(ds, contents) -> dict:
    """Physics of every real clip of each content (positions from the features)."""
    out = {}
    for content in contents:
        pos = [_feat.features_to_positions(ds.features(i).astype(np.float64))
               for i in range(len(ds)) if ds.clips[i]["content"] == content]
        if pos:
            out[content] = _phys.measure(pos, fps=ds.fps)
    return out


def run_yardstick(gen, ev, clf, rows, results: int, seconds: float, seed: int, name: str):
    """Generate ``results`` motions per prompt, classify them, score; physics per content."""
    n = int(round(seconds * ev.fps))
    feats, positions = [], []
    t0 = time.perf_counter()
    for p, row in enumerate(rows):
        for r in range(results):
            f = np.asarray(gen.generate(row["prompt"], n, int(seed * 100003 + p * results + r)),
                           dtype=np.float32)
            if f.ndim != 2 or f.shape[1] != ev.feature_dim:
                raise SystemExit(f"{name}: generate() returned shape {f.shape}")
            f, pos = ev.prepare(f, return_positions=True)   # as the extension shows it
            feats.append(f)
            positions.append(pos)
        if (p + 1) % 50 == 0:
            print(f"  {name}: {p + 1}/{len(rows)} prompts, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    secs = time.perf_counter() - t0
    pc = clf.probabilities(feats, "content")
    ps = clf.probabilities(feats, "style")
    res = _ys.score(rows, pc, ps, clf.classes("content"), clf.classes("style"),
                    lambda s: clf.class_of("style", s), clf.manifest["dataset"]["content_clips"],
                    results)
    by_content = {}
    for k, row in enumerate(r for r in rows for _ in range(results)):
        by_content.setdefault(row["content"], []).append(positions[k])
    res["physics"] = {c: _phys.measure(v, fps=ev.fps) for c, v in sorted(by_content.items())}
    res["generate_seconds"] = round(secs, 1)
    return res


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def format_yardstick(ceiling: dict, gens: dict, real_phys: dict) -> str:
    k15 = f"content_ge{_ys.MIN_CLIPS}"
    head = ["motion", "content % (all)", f"content % (>= {_ys.MIN_CLIPS} clips)",
            "content top-3 %", "style %", "unseen pairs: content / style %"]
    lines = [["real held-out clips (test) — ceiling", _pct(ceiling["all"]["content"]),
              _pct(ceiling[k15]["content"]), _pct(ceiling["all"]["content_top3"]),
              _pct(ceiling["all"]["style"]), "-"]]
    for name, g in gens.items():
        lines.append([name, _pct(g["all"]["content"]), _pct(g[k15]["content"]),
                      _pct(g["all"]["content_top3"]), _pct(g["all"]["style"]),
                      f"{_pct(g['unseen_pair']['content'])} / {_pct(g['unseen_pair']['style'])}"])
    out = [_md(head, lines)]
    for name, g in gens.items():
        out.append(f"\n{name}, per prompt kind (a prompt may have two kinds):")
        out.append(_md(["kind", "prompts", "content %", "content top-3 %", "style %"],
                       [[k, v["n"] // g["results_per_prompt"], _pct(v["content"]),
                         _pct(v["content_top3"]), _pct(v["style"])]
                        for k, v in g["per_kind"].items()]))
        out.append(f"\n{name}, per content (real = the classifier on held-out real clips of "
                   "the content; physics: generated / real clips of the content):")
        rows = []
        for c, v in g["per_content"].items():
            real = ceiling["per_content"].get(c)
            ph, rp = g["physics"].get(c, {}), real_phys.get(c, {})
            cell = lambda k, f: (f"{ph.get(k, float('nan')):{f}} / "  # noqa: E731
                                 f"{rp.get(k, float('nan')):{f}}")
            rows.append([c, g["clips"].get(c, 0), v["n"] // g["results_per_prompt"],
                         _pct(real["content"]) if real else "-", _pct(v["content"]),
                         _pct(v["style"]),
                         cell("foot_skate_cm_s", ".0f"), cell("penetration_cm", ".2f"),
                         cell("modal_foot_height_cm", ".1f"), cell("mean_joint_speed_cm_s", ".0f")])
        out.append(_md(["content", "clips", "prompts", "real content %", "content %", "style %",
                        "skate cm/s", "penetr. cm", "modal foot cm", "joint speed cm/s"], rows))
        out.append("most frequent confusions: " + ", ".join(
            f"{k} ({v})" for k, v in g["confusions"].items()))
    return "\n".join(out)


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
    ap.add_argument("--yardstick", action="store_true",
                    help="also score every generator (default: the shipped sMDM) on the "
                         "prompt-robustness yardstick")
    ap.add_argument("--no-table", action="store_true", help="skip the test-split table")
    ap.add_argument("--yardstick-prompts", default=str(_ys.PROMPTS_FILE))
    ap.add_argument("--yardstick-results", type=int, default=2, help="motions per prompt")
    ap.add_argument("--yardstick-seconds", type=float, default=6.0)
    ap.add_argument("--classifiers", default=None,
                    help="motion-classifier package (default: the registry's)")
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
    if not args.no_table:
        real_emb = ev.embed_motion(motions)
        rows[f"real ({args.split})"] = ev.evaluate(motions, captions,
                                                   motion_embeddings=real_emb, **common)
    if not args.no_baselines and not args.no_table:
        perm = np.random.default_rng(args.seed + 1).permutation(len(idx))
        rows["shuffled text"] = ev.evaluate(motions, [captions[p] for p in perm],
                                            motion_embeddings=real_emb, **common)
        noise = NoiseGenerator(ev)
        gen_m, _ = generate_rows(noise, captions, lengths, args.seed, ev.feature_dim, "noise")
        rows["noise"] = ev.evaluate(
            gen_m, captions, mm_groups=multimodality_groups(
                noise, captions, lengths, args.mm_texts, args.mm_gens, args.seed), **common)
    kwargs_list = [json.loads(k) for k in args.generator_kwargs]
    specs = list(args.generator)
    if args.yardstick and not specs:
        specs = [DEFAULT_YARDSTICK_GENERATOR]
        args.label = args.label or ["sMDM default"]
    yard = {}
    if args.yardstick:
        clf = MotionClassifier(args.classifiers, threads=args.threads or 0).load()
        ys_rows = _ys.load_prompts(args.yardstick_prompts)
        ceiling = real_ceiling(clf, ds, args.split)
    for g, spec in enumerate(specs):
        kwargs = kwargs_list[g] if g < len(kwargs_list) else {}
        gen = load_generator(spec, kwargs)
        name = args.label[g] if g < len(args.label) else spec
        if args.yardstick:
            yard[name] = run_yardstick(gen, ev, clf, ys_rows, args.yardstick_results,
                                       args.yardstick_seconds, args.seed, name)
            yard[name]["clips"] = clf.manifest["dataset"]["content_clips"]
        if args.no_table:
            continue
        gen_m, secs = generate_rows(gen, captions, lengths, args.seed, ev.feature_dim, spec)
        groups = (multimodality_groups(gen, captions, lengths, args.mm_texts, args.mm_gens,
                                       args.seed) if args.mm_gens >= 2 else None)
        rows[name] = ev.evaluate(gen_m, captions, mm_groups=groups, **common)
        rows[name]["generate_seconds"] = round(secs, 2)

    out = {}
    if args.yardstick:
        real_phys = real_physics(ds, sorted({c for y in yard.values() for c in y["physics"]}))
        print(f"yardstick: {len(ys_rows)} prompts held out of every training caption, "
              f"{args.yardstick_results} x {args.yardstick_seconds:g} s motions each; "
              f"classifiers {clf.manifest['name']} {clf.manifest['version']} (ceiling: "
              f"{args.split} split, {ceiling['all']['n']} real clips)")
        print(format_yardstick(ceiling, yard, real_phys))
        out["yardstick"] = {"prompts": str(args.yardstick_prompts),
                            "classifiers": clf.manifest["name"],
                            "classifiers_version": clf.manifest["version"],
                            "ceiling": ceiling, "real_physics": real_phys, "generators": yard}
    if args.no_table:
        print(f"({time.perf_counter() - t0:.0f} s)")
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        return out

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
             "evaluator_version": ev.manifest["version"], "rows": rows, **out},
            indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
