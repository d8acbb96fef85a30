# SPDX-License-Identifier: GPL-3.0-or-later
"""Train the motion/text evaluator and export it as the package ``models/evaluator/``.

Build-time only: runs in the training venv (torch, onnx, onnxscript, onnxruntime,
tokenizers), never inside Blender. The evaluator is a small TMR / Guo-et-al.-style pair of
encoders trained contrastively on the train split of the dataset built by
``training/build_dataset.py``:

* **motion encoder**: normalised 257-d features ``(B, F, 257)`` -> two 1-D convolutions
  (kernel 4, stride 2: 4x temporal downsampling, LeakyReLU, masked so padding never leaks)
  -> bidirectional GRU -> its two final states -> MLP -> L2-normalised 256-d embedding;
* **text projection**: the frozen, L2-normalised 384-d all-MiniLM-L6-v2 sentence embedding
  (the shipped ``models/text-minilm-l6`` package) -> MLP -> L2-normalised 256-d embedding.

Loss: symmetric multi-positive InfoNCE (temperature 0.07) over a batch of 128 (motion,
caption) pairs. Captions are template paraphrases of the clip's (content, style) labels, so
other clips of the same (content, style) in a batch are *positives*, not negatives (TMR's
false-negative handling, here exact because the labels are known): each row's target is
uniform over its positives. Augmentation: left/right mirroring (features, content label and
caption mirrored together, p = 0.5), random crops (60-100 % of the clip, at most 200 frames),
feature-group dropout (each of joint positions / rotations / joint velocities replaced by its
mean with p = 0.2, never all three: the redundant channels must each carry the meaning, so an
off-distribution channel in a generated motion cannot decide alone), Gaussian feature noise
(0.05 in normalised units), and every caption drawn from *all* paraphrases of the (mirrored)
labels, not only the 8 stored per clip. All caption embeddings (33,403 captions, about 6 min
once) are computed with the shipped text encoder and cached in the work folder.

Validation: R@3 (batches of 32, each motion against its own caption and 31 others, one of the
clip's 8 stored captions, 10 random batchings) on the val split after every epoch; the epoch
with the best ``R@3 + 0.1 R@1`` is kept (R@3 decides, R@1 breaks near-ties once R@3
saturates) and training stops after ``--patience`` epochs without improvement (or at ``--epochs`` /
``--max-minutes``). A checkpoint is written after every epoch; ``--resume`` continues from
it, bit for bit (the data order and augmentation of epoch ``e`` come from ``(seed, e)``).

Then: export both encoders to ONNX (dynamic batch and length), check torch vs onnxruntime
parity, write the package (``motion_encoder.onnx``, ``text_projection.onnx``, ``stats.npz``
with the normalisation mean/std, ``reference_stats.npz`` with the embedding mean/covariance
of the train/val/test splits for FID, ``manifest.json``), and evaluate the test split through
the extension's own ``Evaluator``.

The motion encoder is exported with the TorchScript exporter (``dynamo=False`` with dynamic
axes): torch 2.13's dynamo exporter fails to decompose ``aten.gru`` with a symbolic length
(it is still tried first); the text projection goes through ``dynamo=True``.

Reproduce (measured: 7.5 min of training, 46 epochs with early stopping at epoch 15's best,
plus ~1.5 min export and evaluation, 1 torch thread on a shared 2-core machine; add ~6 min
the first time for the caption embeddings)::

    .venv-train/bin/python training/train_evaluator.py --seed 0
    # in the background, resumable:
    nohup .venv-train/bin/python training/train_evaluator.py --seed 0 --resume \\
        > build/evaluator/train.log 2>&1 &
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.motion import captions as _cap  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.inference import metrics as _met  # noqa: E402
from sparse_motion.inference.package import write_manifest  # noqa: E402
from sparse_motion.inference.text_encoder import TextEncoder, default_package_dir  # noqa: E402

DEFAULT_DATA = Path("~/.cache/sparse_motion/dataset-v1").expanduser()
DEFAULT_OUT = ROOT / "models" / "evaluator"
DEFAULT_WORK = ROOT / "build" / "evaluator"
PACKAGE_NAME = "evaluator-tmr-small"
PACKAGE_VERSION = "1.0.0"
FEATURE_DIM = 257
TEXT_DIM = 384
EMBED_DIM = 256
MIN_FRAMES = 4   # two stride-2 convolutions need at least 4 frames
OPSET = 18
SKELETON = "bandai-21"   # the canonical 21-joint skeleton (registry.SUPPORTED_SKELETONS)
REPRESENTATION = {"name": "humanml3d-257", "feature_dim": FEATURE_DIM}
TRAINING_DATA = {
    "name": "Bandai Namco Research Motion Dataset",
    "license": "CC-BY-NC-4.0",
    "commercial_use": False,
    "credit": "Bandai Namco Research Motion Dataset, Bandai Namco Research Inc.",
}

ARCH = {
    "conv_channels": 192,
    "gru_hidden": 128,
    "text_hidden": 384,
    "embed_dim": EMBED_DIM,
    "dropout": 0.1,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# =========================================================================== models


def build_models(torch, arch=ARCH):
    nn = torch.nn
    F = torch.nn.functional

    class MotionEncoder(nn.Module):
        """(B, F, 257) normalised features (+ optional lengths) -> (B, 256) unit vectors."""

        def __init__(self):
            super().__init__()
            c, h = arch["conv_channels"], arch["gru_hidden"]
            self.conv1 = nn.Conv1d(FEATURE_DIM, c, 4, stride=2, padding=1)
            self.conv2 = nn.Conv1d(c, c, 4, stride=2, padding=1)
            self.drop = nn.Dropout(arch["dropout"])
            self.gru = nn.GRU(c, h, batch_first=True, bidirectional=True)
            self.head = nn.Sequential(nn.LayerNorm(2 * h), nn.Linear(2 * h, 2 * h),
                                      nn.LeakyReLU(0.2), nn.Linear(2 * h, arch["embed_dim"]))

        def forward(self, x, lengths=None):
            h = x.transpose(1, 2)
            h = F.leaky_relu(self.conv1(h), 0.2)
            if lengths is not None:
                lengths = torch.div(lengths, 2, rounding_mode="floor")
                h = h * _mask(lengths, h.shape[2])
            h = self.drop(F.leaky_relu(self.conv2(h), 0.2))
            if lengths is not None:
                lengths = torch.div(lengths, 2, rounding_mode="floor")
                h = h * _mask(lengths, h.shape[2])
            h = h.transpose(1, 2)
            if lengths is None:
                # explicit initial state sized from the input: the exported graph then
                # accepts any batch size
                h0 = h.new_zeros(2, h.shape[0], self.gru.hidden_size)
                _, hn = self.gru(h, h0)
            else:
                packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True,
                                                           enforce_sorted=False)
                _, hn = self.gru(packed)
            z = torch.cat([hn[0], hn[1]], dim=1)
            return F.normalize(self.head(z), dim=-1)

    def _mask(lengths, n):
        return (torch.arange(n)[None, :] < lengths[:, None]).to(torch.float32)[:, None, :]

    class TextProjection(nn.Module):
        """(B, 384) MiniLM sentence embeddings -> (B, 256) unit vectors."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(TEXT_DIM, arch["text_hidden"]), nn.GELU(),
                                     nn.Dropout(arch["dropout"]),
                                     nn.Linear(arch["text_hidden"], arch["embed_dim"]))

        def forward(self, t):
            return F.normalize(self.net(t), dim=-1)

    return MotionEncoder(), TextProjection()


# =========================================================================== data


def caption_key(content: str, style: str) -> str:
    return f"{content}|{style}"


def text_cache(ds, work: Path, encoder_dir: Path, captions_of=None):
    """Embeddings of every paraphrase of every (content, style) in the data and of its mirror
    (``captions_of(content, style)``, default every template variant), plus every stored clip
    caption: ``(texts, emb (N, 384), index {text: row})``, cached."""
    captions_of = captions_of or _cap.caption_variants
    pairs = set()
    for c in ds.clips:
        pairs.add((c["content"], c["style"]))
        pairs.add((_cap.mirror_label(c["content"]), c["style"]))
    texts = set()
    for content, style in pairs:
        texts.update(captions_of(content, style))
    for i in range(len(ds)):
        texts.update(ds.captions(i, False))
        texts.update(ds.captions(i, True))
    texts = sorted(texts)
    model_sha = json.loads((encoder_dir / "manifest.json").read_text())["files"]["model.onnx"]["sha256"]
    key = hashlib.sha256(("\n".join(texts) + model_sha).encode()).hexdigest()[:16]
    path = work / f"text-emb-{key}.npy"
    if path.is_file():
        emb = np.load(path)
        log(f"text embeddings: {len(texts)} captions from cache {path.name}")
    else:
        t0 = time.perf_counter()
        enc = TextEncoder(encoder_dir, batch_size=256)
        emb = enc.encode(texts).astype(np.float32)
        work.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        os.replace(tmp, path)
        log(f"text embeddings: {len(texts)} captions encoded in {time.perf_counter() - t0:.0f} s")
    return texts, emb, {t: k for k, t in enumerate(texts)}


def _drop_groups():
    from sparse_motion.motion import features as _feat

    lay = _feat.feature_layout()
    return tuple(lay[k] for k in ("joint_positions", "rotations", "joint_velocities"))


DROP_GROUPS = _drop_groups()


class TrainData:
    """Normalised train clips (and their mirror images) with caption-row tables."""

    def __init__(self, ds, idx, text_index):
        self.feats = {False: [], True: []}
        self.keys = {False: [], True: []}
        self.caps = {False: [], True: []}
        self._cap_rows = {}
        key_ids = {}
        for i in idx:
            i = int(i)
            c = ds.clips[i]
            for m in (False, True):
                self.feats[m].append(ds.features(i, mirrored=m, normalized=True))
                content = ds.content(i, m)
                k = caption_key(content, c["style"])
                self.keys[m].append(key_ids.setdefault(k, len(key_ids)))
                if k not in self._cap_rows:
                    self._cap_rows[k] = np.array(
                        [text_index[t] for t in _cap.caption_variants(content, c["style"])])
                self.caps[m].append(self._cap_rows[k])
        self.n = len(idx)

    def batch(self, ids, rng, max_frames: int, crop_min: float, group_dropout: float = 0.0,
              noise: float = 0.0):
        xs, keys, rows = [], [], []
        for j in ids:
            m = bool(rng.random() < 0.5)
            f = self.feats[m][j]
            n = f.shape[0]
            L = int(round(n * rng.uniform(crop_min, 1.0)))
            L = max(min(L, max_frames, n), min(n, 8))
            s = int(rng.integers(0, n - L + 1))
            x = f[s:s + L]
            if group_dropout > 0 or noise > 0:
                x = x.copy()
                drop = rng.random(len(DROP_GROUPS)) < group_dropout
                if drop.all():
                    drop[rng.integers(len(DROP_GROUPS))] = False
                for g, d in zip(DROP_GROUPS, drop):
                    if d:
                        x[:, g] = 0.0          # the mean, in normalised units
                if noise > 0:
                    x += (noise * rng.standard_normal(x.shape)).astype(np.float32)
            xs.append(x)
            keys.append(self.keys[m][j])
            cr = self.caps[m][j]
            rows.append(int(cr[rng.integers(len(cr))]))
        lengths = np.array([x.shape[0] for x in xs])
        out = np.zeros((len(xs), lengths.max(), FEATURE_DIM), dtype=np.float32)
        for k, x in enumerate(xs):
            out[k, :x.shape[0]] = x
        return out, lengths, np.array(keys), np.array(rows)


# =========================================================================== eval helpers


def embed_motions_torch(torch, menc, feats, batch: int = 64):
    """Embed a list of normalised (F, 257) arrays (full length) with the torch model."""
    order = np.argsort([f.shape[0] for f in feats])
    out = np.zeros((len(feats), EMBED_DIM), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, len(order), batch):
            ids = order[s:s + batch]
            lens = np.array([max(feats[i].shape[0], MIN_FRAMES) for i in ids])
            x = np.zeros((len(ids), lens.max(), FEATURE_DIM), dtype=np.float32)
            for k, i in enumerate(ids):
                x[k, :feats[i].shape[0]] = feats[i]
            out[ids] = menc(torch.from_numpy(x), torch.from_numpy(lens)).numpy()
    return out


def split_eval(torch, menc, tproj, ds, idx, text_emb, text_index, seed: int, repeats: int = 5):
    feats = [ds.features(int(i), normalized=True) for i in idx]
    m = embed_motions_torch(torch, menc, feats)
    caps = [ds.captions(int(i)) for i in idx]
    rows = np.array([[text_index[t] for t in c] for c in caps])       # (N, 8)
    with torch.no_grad():
        t_all = tproj(torch.from_numpy(text_emb[rows.ravel()])).numpy().reshape(
            rows.shape + (EMBED_DIM,))
    rng = np.random.default_rng(seed)
    rp, mm = [], []
    for r in range(repeats):
        pick = rng.integers(0, rows.shape[1], size=len(idx))
        t = t_all[np.arange(len(idx)), pick]
        rp.append(_met.r_precision(m, t, seed=seed * 1000 + r))
        mm.append(_met.matching_score(m, t))
    rp = np.mean(rp, axis=0)
    return {"r1": float(rp[0]), "r2": float(rp[1]), "r3": float(rp[2]),
            "mm_dist": float(np.mean(mm))}


# =========================================================================== training


def lr_at(step, total, warmup, base):
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def train(args, torch, ds, text_emb, text_index):
    work = Path(args.work)
    ckpt_path = work / "checkpoint.pt"
    best_path = work / "best.pt"
    torch.manual_seed(args.seed)
    menc, tproj = build_models(torch)
    params = list(menc.parameters()) + list(tproj.parameters())
    n_params = sum(p.numel() for p in params)
    log(f"parameters: motion {sum(p.numel() for p in menc.parameters()):,}, text "
        f"{sum(p.numel() for p in tproj.parameters()):,}")
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    train_idx = ds.indices("train")
    val_idx = ds.indices("val")
    data = TrainData(ds, train_idx, text_index)
    steps_per_epoch = data.n // args.batch_size
    total_steps = steps_per_epoch * args.epochs
    state = {"epoch": 0, "best_score": -1.0, "best_r3": -1.0, "best_epoch": -1, "history": [], "train_seconds": 0.0}
    if args.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        menc.load_state_dict(ck["menc"])
        tproj.load_state_dict(ck["tproj"])
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        log(f"resumed after epoch {state['epoch']} (best val R@3 {state['best_r3']:.3f} at "
            f"epoch {state['best_epoch']})")
    text_t = torch.from_numpy(text_emb)
    t_start = time.perf_counter() - state["train_seconds"]
    while state["epoch"] < args.epochs:
        e = state["epoch"]
        if e - state["best_epoch"] > args.patience and state["best_epoch"] >= 0:
            log(f"early stop: no val R@3 gain for {args.patience} epochs")
            break
        if (time.perf_counter() - t_start) / 60 > args.max_minutes:
            log(f"time budget of {args.max_minutes} min reached")
            break
        rng = np.random.default_rng([args.seed, e])
        order = rng.permutation(data.n)
        menc.train()
        tproj.train()
        tot = 0.0
        te0 = time.perf_counter()
        for b in range(steps_per_epoch):
            step = e * steps_per_epoch + b
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total_steps, args.warmup * steps_per_epoch, args.lr)
            ids = order[b * args.batch_size:(b + 1) * args.batch_size]
            x, lens, keys, rows = data.batch(ids, rng, args.max_frames, args.crop_min,
                                             args.group_dropout, args.feature_noise)
            zm = menc(torch.from_numpy(x), torch.from_numpy(lens))
            zt = tproj(text_t[torch.from_numpy(rows)])
            logits = zm @ zt.T / args.temperature
            kt = torch.from_numpy(keys)
            pos = (kt[:, None] == kt[None, :]).to(torch.float32)
            target = pos / pos.sum(1, keepdim=True)
            loss = 0.5 * (-(target * torch.log_softmax(logits, 1)).sum(1).mean()
                          - (target * torch.log_softmax(logits.T, 1)).sum(1).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tot += float(loss.detach())
        menc.eval()
        tproj.eval()
        val = split_eval(torch, menc, tproj, ds, val_idx, text_emb, text_index, seed=args.seed,
                         repeats=10)
        state["epoch"] = e + 1
        state["history"].append({"epoch": e + 1, "loss": tot / steps_per_epoch, **val})
        val["score"] = val["r3"] + 0.1 * val["r1"]
        improved = val["score"] > state["best_score"]
        if improved:
            state["best_score"] = val["score"]
            state["best_r3"] = val["r3"]
            state["best_epoch"] = e + 1
            torch.save({"menc": menc.state_dict(), "tproj": tproj.state_dict(),
                        "epoch": e + 1, "val": val}, best_path)
        state["train_seconds"] = time.perf_counter() - t_start
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"menc": menc.state_dict(), "tproj": tproj.state_dict(),
                    "opt": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                    "state": state, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)
        log(f"epoch {e + 1:3d}  loss {tot / steps_per_epoch:.4f}  val R@1 {val['r1']:.3f} "
            f"R@2 {val['r2']:.3f} R@3 {val['r3']:.3f} MM {val['mm_dist']:.3f}  "
            f"{time.perf_counter() - te0:.1f} s{'  *' if improved else ''}")
    return state, n_params


# =========================================================================== export


def io_spec(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


def export_onnx(torch, menc, tproj, work: Path):
    menc.eval()
    tproj.eval()

    class MotionExport(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, features):
            return self.m(features)

    class TextExport(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, sentence_embedding):
            return self.m(sentence_embedding)

    jobs = [
        (MotionExport(menc).eval(), torch.randn(2, 40, FEATURE_DIM), work / "motion_encoder.onnx",
         "features", {0: torch.export.Dim("batch", min=1),
                      1: torch.export.Dim("frames", min=MIN_FRAMES, max=100000)},
         {0: "batch", 1: "frames"}),
        (TextExport(tproj).eval(), torch.randn(3, TEXT_DIM), work / "text_projection.onnx",
         "sentence_embedding", {0: torch.export.Dim("batch", min=1)}, {0: "batch"}),
    ]
    exporters = {}
    for module, example, path, name, dyn_shapes, dyn_axes in jobs:
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=True,
                              input_names=[name], output_names=["embedding"],
                              dynamic_shapes={name: dyn_shapes}, opset_version=OPSET,
                              external_data=False, optimize=True)
            exporters[path.name] = "torch.onnx.export(dynamo=True)"
        except Exception as exc:  # the TorchScript exporter handles nn.GRU with dynamic axes
            log(f"{path.name}: dynamo export failed ({type(exc).__name__}: "
                f"{str(exc)[-400:]}); using the TorchScript exporter")
            torch.onnx.export(module, (example,), str(path), dynamo=False,
                              input_names=[name], output_names=["embedding"],
                              dynamic_axes={name: dyn_axes, "embedding": {0: "batch"}},
                              opset_version=OPSET)
            exporters[path.name] = "torch.onnx.export(dynamo=False, dynamic_axes)"
    menc.eval()   # the exporters restore the wrappers' mode on exit
    tproj.eval()
    return jobs[0][2], jobs[1][2], exporters


def parity(torch, menc, tproj, mot_path, txt_path, ds, text_emb):
    """Max |torch - onnxruntime| over val clips of many lengths (one by one, full length),
    a padded batch (torch, with lengths) vs one by one (onnxruntime), and caption rows."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sm = ort.InferenceSession(str(mot_path), so, providers=["CPUExecutionProvider"])
    st = ort.InferenceSession(str(txt_path), so, providers=["CPUExecutionProvider"])
    idx = ds.indices("val")
    lens = np.array([ds.clips[int(i)]["frames"] for i in idx])
    pick = list(idx[np.argsort(lens)][np.linspace(0, len(idx) - 1, 12).astype(int)])
    feats = [ds.features(int(i), normalized=True) for i in pick]
    feats += [feats[0][:MIN_FRAMES], feats[3][:7], feats[-1][:333]]
    worst = 0.0
    ort_rows = []
    with torch.no_grad():
        for f in feats:
            a = menc(torch.from_numpy(f[None])).numpy()[0]
            b = sm.run(["embedding"], {"features": f[None]})[0][0]
            worst = max(worst, float(np.abs(a - b).max()))
            ort_rows.append(b)
        batched = embed_motions_torch(torch, menc, feats)
        worst_batch = float(np.abs(batched - np.stack(ort_rows)).max())
        tt = text_emb[:: max(1, len(text_emb) // 50)][:50]
        a = tproj(torch.from_numpy(tt)).numpy()
    b = st.run(["embedding"], {"sentence_embedding": tt})[0]
    worst_text = float(np.abs(a - b).max())
    return {"motion_max_abs": worst, "motion_padded_batch_vs_single_max_abs": worst_batch,
            "text_max_abs": worst_text, "motion_clips": len(feats),
            "motion_lengths": [int(f.shape[0]) for f in feats], "text_rows": int(len(tt))}


def text_encoder_requirement(te_manifest: dict) -> dict:
    """The manifest's ``text_encoder``: the package name and version requirement (for the
    registry) plus the exact model checksum (the ``Evaluator`` refuses another model)."""
    return {"name": te_manifest["name"], "version": te_manifest["version"], "dim": TEXT_DIM,
            "model_sha256": te_manifest["files"]["model.onnx"]["sha256"]}


def write_package_manifest(directory: Path, manifest: dict) -> dict:
    """Write ``manifest.json`` (model package format, ``inference/package.py``) for the files
    in ``directory``; sha256 and sizes are computed. Returns the written manifest."""
    files = {name: {k: v for k, v in (extra or {}).items() if k not in ("sha256", "size")}
             for name, extra in manifest["files"].items()}
    path = write_manifest(directory, manifest, files=files)
    return json.loads(path.read_text(encoding="utf-8"))


def upgrade_manifest(old: dict, te_manifest: dict) -> dict:
    """A pre-format-1 evaluator manifest (no ``format_version``; ``text_encoder`` given as
    ``{package, dim, model_sha256}``, training data only in ``data``) in the current format.
    Every other field is kept; the files are not touched."""
    sha = te_manifest["files"]["model.onnx"]["sha256"]
    old_sha = (old.get("text_encoder") or {}).get("model_sha256")
    if old_sha != sha:
        raise SystemExit(f"the evaluator was trained with text-encoder model {old_sha}, the "
                         f"text encoder package has {sha}: retrain instead of rewriting")
    new = {k: old[k] for k in ("name", "kind", "version", "description") if k in old}
    new.update({
        "commercial_use": False,
        "skeleton": SKELETON,
        "fps": old.get("fps", 20),
        "representation": {"name": REPRESENTATION["name"],
                           "feature_dim": old.get("feature_dim", FEATURE_DIM)},
        "stats": "stats.npz",
        "text_encoder": text_encoder_requirement(te_manifest),
    })
    for k, v in old.items():
        if k not in new and k not in ("format_version", "files"):
            new[k] = v
    new["training"] = {"data": [dict(TRAINING_DATA)],
                       **{k: v for k, v in (old.get("training") or {}).items() if k != "data"}}
    new["files"] = old["files"]
    return new


def rewrite_manifest(out: Path, te_dir: Path) -> dict:
    """``--rewrite-manifest``: bring the package's manifest to the current format without
    retraining (the ONNX and .npz files stay as they are; their checksums are recomputed)."""
    old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    te_manifest = json.loads((te_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest = write_package_manifest(out, upgrade_manifest(old, te_manifest))
    for name, entry in manifest["files"].items():
        before = old["files"][name] if isinstance(old.get("files"), dict) else None
        if before is not None and before.get("sha256") != entry["sha256"]:
            raise SystemExit(f"{name} changed since the manifest was written (sha256 "
                             f"{before.get('sha256')} -> {entry['sha256']})")
    log(f"manifest rewritten: {out / 'manifest.json'}")
    return manifest


def write_package(args, torch, ds, menc, tproj, text_emb, text_index, state, n_params):
    out = Path(args.out)
    work = Path(args.work)
    mot_path, txt_path, exporters = export_onnx(torch, menc, tproj, work)
    par = parity(torch, menc, tproj, mot_path, txt_path, ds, text_emb)
    log(f"parity torch vs onnxruntime: {par}")
    if max(par["motion_max_abs"], par["text_max_abs"],
           par["motion_padded_batch_vs_single_max_abs"]) > 1e-4:
        raise SystemExit(f"parity check failed: {par}")
    # reference embedding statistics for FID, per split (through the torch model)
    ref = {}
    counts = {}
    for split in ("train", "val", "test"):
        idx = ds.indices(split)
        e = embed_motions_torch(torch, menc, [ds.features(int(i), normalized=True) for i in idx])
        mu, sigma = _met.gaussian_stats(e)
        ref[f"{split}_mu"] = mu.astype(np.float32)
        ref[f"{split}_sigma"] = sigma.astype(np.float32)
        counts[split] = int(len(idx))
    tmp_dir = out.with_name(out.name + ".tmp")
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)
    shutil.copy2(mot_path, tmp_dir / "motion_encoder.onnx")
    shutil.copy2(txt_path, tmp_dir / "text_projection.onnx")
    np.savez(tmp_dir / "stats.npz", mean=ds.mean.astype(np.float32), std=ds.std.astype(np.float32))
    np.savez(tmp_dir / "reference_stats.npz", **ref)
    te_dir = Path(args.text_encoder)
    te_manifest = json.loads((te_dir / "manifest.json").read_text())

    import onnx
    import onnxruntime

    meta = ds.meta
    manifest = {
        "name": PACKAGE_NAME,
        "kind": "evaluator",
        "version": PACKAGE_VERSION,
        "description": ("Contrastive motion/text evaluator (TMR / Guo et al. style) for FID, "
                        "R-precision, MM-Dist, diversity and multimodality of 257-d motion "
                        "features at 20 fps."),
        "commercial_use": False,
        "skeleton": SKELETON,
        "fps": 20,
        "representation": dict(REPRESENTATION),
        "stats": "stats.npz",
        "feature_dim": FEATURE_DIM,
        "embedding_dim": EMBED_DIM,
        "min_frames": MIN_FRAMES,
        "normalised": True,
        "distance": "euclidean between L2-normalised embeddings",
        "dataset": {
            "name": "dataset-v1", "version": meta["version"], "fps": meta["fps"],
            "feature_dim": meta["feature_dim"], "split_counts": meta["split_counts"],
            "total_frames": meta["total_frames"],
        },
        "normalisation": {
            "file": "stats.npz", "arrays": ["mean", "std"],
            "formula": "(features - mean) / std, per dimension",
            "over": meta["stats"]["over"],
        },
        "reference": {
            "file": "reference_stats.npz",
            "arrays": [f"{s}_{k}" for s in ("train", "val", "test") for k in ("mu", "sigma")],
            "counts": counts, "default": "train",
            "note": "mean / covariance of the motion embeddings of each split (full clips, "
                    "not mirrored), for FID without the dataset",
        },
        "text_encoder": text_encoder_requirement(te_manifest),
        "files": {
            "motion_encoder.onnx": dict(
                opset=OPSET,
                inputs=[io_spec("features", "float32", ["batch", "frames", FEATURE_DIM])],
                outputs=[io_spec("embedding", "float32", ["batch", EMBED_DIM])],
                note="features normalised with stats.npz; frames >= min_frames; a batch "
                     "holds clips of equal length"),
            "text_projection.onnx": dict(
                opset=OPSET,
                inputs=[io_spec("sentence_embedding", "float32", ["batch", TEXT_DIM])],
                outputs=[io_spec("embedding", "float32", ["batch", EMBED_DIM])],
                note="input: the text encoder package's L2-normalised embedding"),
            "stats.npz": dict(purpose="feature normalisation mean / std (257)"),
            "reference_stats.npz": dict(purpose="FID reference statistics per split"),
        },
        "architecture": {
            "motion_encoder": (f"Conv1d(257->{ARCH['conv_channels']}, k4 s2) LeakyReLU, "
                               f"Conv1d({ARCH['conv_channels']}->{ARCH['conv_channels']}, k4 s2) "
                               f"LeakyReLU, BiGRU(hidden {ARCH['gru_hidden']}) final states, "
                               f"LayerNorm-Linear-LeakyReLU-Linear -> {EMBED_DIM}, L2 norm"),
            "text_projection": (f"Linear(384->{ARCH['text_hidden']}) GELU Linear(->{EMBED_DIM}),"
                                " L2 norm"),
            "parameters": int(n_params),
            **ARCH,
        },
        "training": {
            "data": [dict(TRAINING_DATA)],
            "command": ".venv-train/bin/python training/train_evaluator.py --seed "
                       f"{args.seed}",
            "seed": args.seed,
            "loss": (f"symmetric multi-positive InfoNCE, temperature {args.temperature}; "
                     "same (content, style) in a batch = positives"),
            "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
            "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
            "max_epochs": args.epochs, "patience": args.patience,
            "augmentation": (f"mirror p=0.5, crops {args.crop_min:.0%}-100% (<= "
                             f"{args.max_frames} frames), all caption paraphrases, feature "
                             f"group dropout {args.group_dropout} (positions / rotations / "
                             f"velocities), Gaussian feature noise {args.feature_noise}"),
            "train_seconds": round(state["train_seconds"], 1),
            "threads": args.threads,
            "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "exporters": exporters,
            "history": state["history"],
        },
        "data": {
            "name": "Bandai Namco Research Motion Dataset",
            "credit": "Bandai Namco Research Motion Dataset, Bandai Namco Research Inc.",
            "license": "CC BY-NC 4.0",
            "use": "non-commercial use only (trained on CC BY-NC 4.0 data)",
        },
        "license": ("code GPL-3.0-or-later; weights trained on the Bandai Namco Research "
                    "Motion Dataset (CC BY-NC 4.0): non-commercial use only"),
        "parity": par,
        "metrics": {},
    }
    write_package_manifest(tmp_dir, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp_dir, out)
    log(f"package written: {out} ({sum(p.stat().st_size for p in out.iterdir()) / 1e6:.2f} MB)")

    # evaluate through the extension's own Evaluator (onnxruntime), record in the manifest
    from sparse_motion.inference.evaluator import Evaluator

    ev = Evaluator(out, text_encoder=TextEncoder(te_dir))
    test_idx = ds.indices("test")
    motions = [ds.features(int(i)) for i in test_idx]
    caps = [ds.captions(int(i)) for i in test_idx]
    res = ev.evaluate(motions, caps, repeats=20, seed=args.seed, reference="train")
    val_idx = ds.indices("val")
    vres = ev.evaluate([ds.features(int(i)) for i in val_idx],
                       [ds.captions(int(i)) for i in val_idx], repeats=20, seed=args.seed,
                       reference="train", physical=False)
    manifest["metrics"] = {
        "protocol": "R-precision: batches of 32, motion vs its own caption + 31 others, "
                    "one random stored caption per clip, 20 random batchings",
        "test": {k: v for k, v in res.items() if not isinstance(v, (list, dict))},
        "val": {k: v for k, v in vres.items() if not isinstance(v, (list, dict))},
    }
    write_package_manifest(out, manifest)
    log("test split through Evaluator: " + ", ".join(
        f"{k} {v:.3f}" for k, v in manifest["metrics"]["test"].items()
        if isinstance(v, float)))
    return manifest


# =========================================================================== main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="built dataset directory")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="package directory to write")
    ap.add_argument("--work", default=str(DEFAULT_WORK), help="checkpoints, caches, logs")
    ap.add_argument("--text-encoder", default=str(default_package_dir()))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--max-minutes", type=float, default=50.0,
                    help="stop training (and export the best epoch) after this long")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=2, help="warm-up epochs")
    ap.add_argument("--temperature", type=float, default=0.07)
    ap.add_argument("--max-frames", type=int, default=200)
    ap.add_argument("--crop-min", type=float, default=0.6)
    ap.add_argument("--group-dropout", type=float, default=0.2,
                    help="per clip, replace each of joint positions / rotations / joint "
                         "velocities by the mean with this probability (never all three)")
    ap.add_argument("--feature-noise", type=float, default=0.05,
                    help="Gaussian noise (normalised units) added to the training features")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (results are bit-identical for a given count)")
    ap.add_argument("--resume", action="store_true", help="continue from the work checkpoint")
    ap.add_argument("--export-only", action="store_true",
                    help="skip training; export the best checkpoint")
    ap.add_argument("--rewrite-manifest", action="store_true",
                    help="only rewrite --out's manifest.json in the current package format "
                         "(no training, no export; the model files are kept)")
    args = ap.parse_args(argv)
    if args.rewrite_manifest:
        rewrite_manifest(Path(args.out), Path(args.text_encoder))
        return

    import torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log(f"args: {vars(args)}")
    ds = _ds.load_dataset(args.data, mmap=False)
    texts, text_emb, text_index = text_cache(ds, work, Path(args.text_encoder))
    if args.export_only:
        ck = torch.load(work / "checkpoint.pt", weights_only=False)
        state = ck["state"]
        n_params = None
    else:
        state, n_params = train(args, torch, ds, text_emb, text_index)
    menc, tproj = build_models(torch)
    best = torch.load(work / "best.pt", weights_only=False)
    menc.load_state_dict(best["menc"])
    tproj.load_state_dict(best["tproj"])
    menc.eval()
    tproj.eval()
    if n_params is None:
        n_params = sum(p.numel() for p in list(menc.parameters()) + list(tproj.parameters()))
    log(f"best epoch {best['epoch']}: val {best['val']}")
    write_package(args, torch, ds, menc, tproj, text_emb, text_index, state, n_params)


if __name__ == "__main__":
    main()
