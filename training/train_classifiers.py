# SPDX-License-Identifier: GPL-3.0-or-later
"""Train the content and style classifiers of the prompt-robustness yardstick on real motion
and write the ``motion-classifier`` package (``models/classifiers/``).

Two small 1-D conv nets (one per head) read windows of the normalised 257-d canonical
features (20 fps) of the train split and its left/right mirror image (the mirror swaps the
content label: ``wave-left-hand`` <-> ``wave-right-hand``). Styles that the two datasets name
differently are one class (``elderly`` = ``old``, ``exhausted`` = ``tired``, ``masculinity``
= ``masculine``; the manifest's ``label_map``). Held-out accuracy on the test split (whole
clips, windows of 120 frames as at evaluation time, through the exported ONNX package) is
the ceiling the yardstick's generated motions are compared with.

    .venv/bin/python training/train_classifiers.py --seed 0          # ~3-4 min on 2 cores

Checkpoints after every evaluation in ``build/classifiers/`` (``--resume`` continues a head;
a finished head is not retrained). Needs torch (CPU) and the built dataset
(``training/build_dataset.py``). Data licence: CC BY-NC 4.0 (Bandai Namco Research Motion
Dataset, Bandai Namco Research Inc.): the package is for non-commercial use only.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import train_evaluator as _te  # noqa: E402  (also makes sparse_motion importable)

from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.inference.classifier import KIND, MotionClassifier, cut_windows  # noqa: E402

log = _te.log
DEFAULT_DATA = _te.DEFAULT_DATA
DEFAULT_OUT = ROOT / "models" / "classifiers"
DEFAULT_WORK = ROOT / "build" / "classifiers"
PACKAGE_NAME = "motion-classifiers"
PACKAGE_VERSION = "1.0.0"
FEATURE_DIM = _te.FEATURE_DIM
OPSET = _te.OPSET
WINDOW, HOP, MIN_FRAMES = 120, 60, 8
#: dataset-1 and dataset-2 names of the same style
STYLE_LABEL_MAP = {"elderly": "old", "exhausted": "tired", "masculinity": "masculine"}
HEADS = ("content", "style")
ARCH = {"channels": 128, "kernel": 5, "dropout": 0.2}


def build_model(torch, n_classes: int, arch=ARCH):
    nn = torch.nn
    C, k = arch["channels"], arch["kernel"]

    class WindowClassifier(nn.Module):
        """(B, F, 257) normalised features -> (B, classes) logits; mean + max over time."""

        def __init__(self):
            super().__init__()
            self.convs = nn.Sequential(
                nn.Conv1d(FEATURE_DIM, C, k, padding=k // 2), nn.GELU(),
                nn.Conv1d(C, C, k, stride=2, padding=k // 2), nn.GELU(),
                nn.Conv1d(C, C, k, stride=2, padding=k // 2), nn.GELU())
            self.drop = nn.Dropout(arch["dropout"])
            self.head = nn.Linear(2 * C, n_classes)

        def forward(self, features):
            h = self.convs(features.transpose(1, 2))
            h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
            return self.head(self.drop(h))

    return WindowClassifier()


def label_of(head: str, content: str, style: str) -> str:
    return content if head == "content" else STYLE_LABEL_MAP.get(style, style)


class Clips:
    """Normalised clips of a split (and mirror images) with their class per head."""

    def __init__(self, ds, idx, mirror: bool):
        self.feats, self.labels = [], {h: [] for h in HEADS}
        for i in idx:
            i = int(i)
            for m in ((False, True) if mirror else (False,)):
                self.feats.append(ds.features(i, mirrored=m, normalized=True))
                for h in HEADS:
                    self.labels[h].append(label_of(h, ds.content(i, m), ds.clips[i]["style"]))

    def batch(self, ids, rng, length: int, group_dropout: float, noise: float):
        out = np.empty((len(ids), length, FEATURE_DIM), dtype=np.float32)
        for k, j in enumerate(ids):
            f = self.feats[j]
            n = f.shape[0]
            if n >= length:
                s = int(rng.integers(0, n - length + 1))
                x = f[s:s + length].copy()
            else:  # short clip: hold its last frame (as the classifier does at inference)
                x = np.concatenate([f, np.repeat(f[-1:], length - n, axis=0)])
            drop = rng.random(len(_te.DROP_GROUPS)) < group_dropout
            if drop.all():
                drop[rng.integers(len(drop))] = False
            for g, d in zip(_te.DROP_GROUPS, drop):
                if d:
                    x[:, g] = 0.0
            if noise > 0:
                x += (noise * rng.standard_normal(x.shape)).astype(np.float32)
            out[k] = x
        return out


def windows(f):
    """Windows of a normalised clip as the package cuts them (MotionClassifier.windows)."""
    return cut_windows(f, WINDOW, HOP, MIN_FRAMES)


def torch_accuracy(torch, model, clips: Clips, head, classes):
    model.eval()
    hits = []
    with torch.no_grad():
        for f, lab in zip(clips.feats, clips.labels[head]):
            p = torch.softmax(model(torch.from_numpy(windows(f))), dim=1).mean(0)
            hits.append(classes[int(p.argmax())] == lab)
    model.train()
    return float(np.mean(hits))


def train_head(args, torch, head, train: Clips, val: Clips, classes):
    work = Path(args.work)
    ckpt_path, best_path = work / f"{head}.ckpt.pt", work / f"{head}.best.pt"
    y = np.array([classes.index(lab) for lab in train.labels[head]])
    counts = np.bincount(y, minlength=len(classes))
    w = counts[y] ** -0.5                 # rare classes drawn more often (not uniformly)
    w = w / w.sum()
    torch.manual_seed(args.seed + (0 if head == "content" else 1))
    model = build_model(torch, len(classes))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    state = {"step": 0, "best": -1.0, "best_step": 0, "history": [], "seconds": 0.0,
             "done": False}
    if args.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        log(f"{head}: resumed at step {state['step']}")
    if state["done"]:
        log(f"{head}: already trained (best val {state['best']:.3f} at step {state['best_step']})")
        model.load_state_dict(torch.load(best_path, weights_only=True))
        return model, state
    t0 = time.perf_counter() - state["seconds"]
    model.train()
    lossf = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    for step in range(state["step"], args.steps):
        rng = np.random.default_rng([args.seed, step, 0 if head == "content" else 1])
        ids = rng.choice(len(y), args.batch, p=w)
        length = int(rng.integers(args.min_window, WINDOW + 1))
        x = train.batch(ids, rng, length, args.group_dropout, args.noise)
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = lossf(model(torch.from_numpy(x)), torch.from_numpy(y[ids]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            acc = torch_accuracy(torch, model, val, head, classes)
            state["history"].append({"step": step + 1, "loss": round(loss.item(), 4),
                                     "val_accuracy": round(acc, 4)})
            better = acc > state["best"]
            if better:
                state["best"], state["best_step"] = acc, step + 1
                torch.save(model.state_dict(), best_path)
            state["step"], state["seconds"] = step + 1, time.perf_counter() - t0
            state["done"] = step + 1 == args.steps
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, tmp)
            os.replace(tmp, ckpt_path)
            log(f"{head} step {step + 1:5d}  loss {loss.item():.3f}  val acc {acc:.3f}"
                f"{'  *' if better else ''}  {state['seconds']:.0f} s")
    model.load_state_dict(torch.load(best_path, weights_only=True))
    model.eval()
    return model, state


def export(torch, model, path: Path) -> str:
    model.eval()
    example = torch.randn(2, WINDOW, FEATURE_DIM)
    try:
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["features"],
                          output_names=["logits"], opset_version=OPSET, external_data=False,
                          dynamic_shapes={"features": {
                              0: torch.export.Dim("batch", min=1),
                              1: torch.export.Dim("frames", min=MIN_FRAMES, max=100000)}},
                          optimize=True)
        return "torch.onnx.export(dynamo=True)"
    except Exception as exc:
        log(f"{path.name}: dynamo export failed ({type(exc).__name__}); TorchScript exporter")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["features"],
                          output_names=["logits"], opset_version=OPSET,
                          dynamic_axes={"features": {0: "batch", 1: "frames"},
                                        "logits": {0: "batch"}})
        return "torch.onnx.export(dynamo=False, dynamic_axes)"


def real_accuracy(clf: MotionClassifier, ds, idx) -> dict:
    """Held-out accuracy of the package on real clips: overall, per class, per content."""
    feats = [ds.features(int(i)) for i in idx]
    out = {"n": int(len(idx))}
    for head in clf.heads:
        classes = clf.classes(head)
        pred = clf.probabilities(feats, head).argmax(1)
        want = [clf.class_of(head, ds.clips[int(i)][head]) for i in idx]
        hits = [classes[p] == w for p, w in zip(pred, want)]
        per = collections.defaultdict(list)
        for h, w in zip(hits, want):
            per[w].append(h)
        out[head] = {"accuracy": round(float(np.mean(hits)), 4),
                     "per_class": {c: {"n": len(v), "accuracy": round(float(np.mean(v)), 4)}
                                   for c, v in sorted(per.items())}}
        if head == "style":   # style accuracy per content too (contents differ in difficulty)
            per_c = collections.defaultdict(list)
            for h, i in zip(hits, idx):
                per_c[ds.clips[int(i)]["content"]].append(h)
            out[head]["per_content"] = {c: {"n": len(v), "accuracy": round(float(np.mean(v)), 4)}
                                        for c, v in sorted(per_c.items())}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--work", default=str(DEFAULT_WORK))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--min-window", type=int, default=40)
    ap.add_argument("--group-dropout", type=float, default=0.2)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    ds = _ds.load_dataset(args.data)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    train = Clips(ds, ds.indices("train"), mirror=True)
    val = Clips(ds, ds.indices("val"), mirror=False)
    classes = {h: sorted(set(train.labels[h])) for h in HEADS}
    log(f"{len(train.feats)} train windows sources (with mirrors), {len(val.feats)} val clips; "
        f"{len(classes['content'])} contents, {len(classes['style'])} styles")
    models, states = {}, {}
    for head in HEADS:
        models[head], states[head] = train_head(args, torch, head, train, val, classes[head])

    out = Path(args.out)
    tmp_dir = out.with_name(out.name + ".tmp")
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)
    exporters, parity = {}, {}
    import onnxruntime as ort

    for head in HEADS:
        path = tmp_dir / f"{head}.onnx"
        exporters[path.name] = export(torch, models[head], path)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        worst = 0.0
        for L in (MIN_FRAMES, 37, WINDOW, 333):
            x = np.random.default_rng(L).standard_normal((3, L, FEATURE_DIM)).astype(np.float32)
            with torch.no_grad():
                a = models[head](torch.from_numpy(x)).numpy()
            worst = max(worst, float(np.abs(a - sess.run(["logits"], {"features": x})[0]).max()))
        parity[head] = worst
        if worst > 1e-3:
            raise SystemExit(f"parity torch vs onnxruntime failed for {head}: {worst}")
    log(f"parity torch vs onnxruntime (max |logit diff|): {parity}")
    np.savez(tmp_dir / "stats.npz", mean=ds.mean.astype(np.float32), std=ds.std.astype(np.float32))
    content_clips = dict(sorted(collections.Counter(c["content"] for c in ds.clips).items()))
    style_clips = dict(sorted(collections.Counter(c["style"] for c in ds.clips).items()))
    n_params = {h: int(sum(p.numel() for p in models[h].parameters())) for h in HEADS}
    import onnx

    manifest = {
        "name": PACKAGE_NAME, "kind": KIND, "version": PACKAGE_VERSION,
        "description": ("Content and style classifiers of real motion (1-D conv nets over "
                        "windows of 257-d features at 20 fps), for the prompt-robustness "
                        "yardstick (training/yardstick.py)."),
        "commercial_use": False, "skeleton": _te.SKELETON, "fps": 20,
        "representation": _te.REPRESENTATION, "stats": "stats.npz",
        "window": WINDOW, "hop": HOP, "min_frames": MIN_FRAMES,
        "heads": {
            "content": {"file": "content.onnx", "classes": classes["content"], "label_map": {}},
            "style": {"file": "style.onnx", "classes": classes["style"],
                      "label_map": STYLE_LABEL_MAP},
        },
        "dataset": {"name": "dataset-v1", "version": ds.meta["version"],
                    "split_counts": {s: int(len(ds.indices(s))) for s in _ds.SPLITS},
                    "content_clips": content_clips, "style_clips": style_clips},
        "normalisation": {"file": "stats.npz", "arrays": ["mean", "std"],
                          "formula": "(features - mean) / std, per dimension",
                          "over": "train split + its mirror image (the dataset's stats.npz)"},
        "architecture": {"per_head": ("Conv1d(257->128, k5) GELU, Conv1d(128->128, k5 s2) GELU, "
                                      "Conv1d(128->128, k5 s2) GELU, [mean, max] over time, "
                                      "Dropout 0.2, Linear -> classes"),
                         **ARCH, "parameters": n_params,
                         "inference": (f"softmax averaged over windows of {WINDOW} frames every "
                                       f"{HOP} (the last ending at the last frame); shorter "
                                       f"motions whole")},
        "training": {
            "data": [_te.TRAINING_DATA],
            "command": "training/train_classifiers.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "seed": args.seed, "steps": args.steps, "batch_size": args.batch, "lr": args.lr,
            "weight_decay": args.weight_decay, "loss": "cross-entropy, label smoothing 0.05",
            "sampling": "clips drawn with probability ∝ (clips of their class)^-0.5",
            "augmentation": (f"left/right mirror (content label mirrored), random windows of "
                             f"{args.min_window}-{WINDOW} frames (short clips hold their last "
                             f"frame), feature-group dropout {args.group_dropout}, Gaussian noise "
                             f"{args.noise} (normalised units)"),
            "selection": "best val-split accuracy (whole clips, windows as at inference)",
            "heads": {h: {k: v for k, v in states[h].items() if k != "done"} for h in HEADS},
            "threads": args.threads, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort.__version__, "exporters": exporters},
        "data": {"name": _te.TRAINING_DATA["name"], "credit": _te.TRAINING_DATA["credit"],
                 "license": "CC BY-NC 4.0",
                 "use": "non-commercial use only (trained on CC BY-NC 4.0 data)"},
        "license": ("code GPL-3.0-or-later; weights trained on the Bandai Namco Research Motion "
                    "Dataset (CC BY-NC 4.0): non-commercial use only"),
        "parity": {"max_abs_logit": parity},
        "files": {"content.onnx": {"purpose": "content classifier"},
                  "style.onnx": {"purpose": "style classifier"},
                  "stats.npz": {"purpose": "feature normalisation"}},
    }
    _te.write_package_manifest(tmp_dir, manifest)
    clf = MotionClassifier(tmp_dir, threads=args.threads).load()
    metrics = {"protocol": (f"whole held-out real clips, softmax averaged over {WINDOW}-frame "
                            f"windows (hop {HOP}), through the ONNX package"),
               "test": real_accuracy(clf, ds, ds.indices("test")),
               "val": real_accuracy(clf, ds, ds.indices("val"))}
    clf.release()
    manifest["metrics"] = metrics
    _te.write_package_manifest(tmp_dir, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp_dir, out)
    size = sum(p.stat().st_size for p in out.iterdir())
    log(f"package {out} ({size / 1e6:.2f} MB): test content {metrics['test']['content']['accuracy']:.3f}, "
        f"style {metrics['test']['style']['accuracy']:.3f}; val content "
        f"{metrics['val']['content']['accuracy']:.3f}, style {metrics['val']['style']['accuracy']:.3f} "
        f"({time.perf_counter() - t_all:.0f} s)")
    return manifest


if __name__ == "__main__":
    main()
