# SPDX-License-Identifier: GPL-3.0-or-later
"""Train KMM (key-frame mask Mamba) and export it as a model package (``models/kmm-default``).

Build-time only (the training venv: torch, onnx, onnxscript, onnxruntime). The networks are
``inference/kmm_net.py``; the runtime is ``inference/kmm.py``; see ``docs/kmm.md``.

Two stages over the train split (+ mirror images) of ``training/build_dataset.py``'s data,
the captions of sMDM 1.1.0 (``--captions-per-pair`` fixed draws per content/style pair,
``--balance`` rebalancing of rare contents; the same embedding cache):

1. ``tokenizer``: residual VQ (Q quantisers × K codes, 4 frames a token) on random crops;
   smooth-L1 reconstruction + velocity term + commitment, EMA codebooks with dead-code
   restarts, quantiser dropout (a random number of quantisers on 20 % of batches).
2. ``masked``: every clip is tokenized once with the trained tokenizer; the bidirectional
   Mamba learns, on crops of 6..``--max-frames``/4 tokens, half the samples the masked task
   (layer-0 ids, a share cos(π/2·u) of them masked: ``--masking keyframe`` masks the tokens of
   highest key-frame score Γ (KMM), ``random`` random ones (the ablation)) and half the
   residual task (layer q from the layers below). 10 % of captions dropped for
   classifier-free guidance. ``--align W`` adds the contrastive text-motion loss (symmetric
   InfoNCE, learnable temperature; pairs with the same content and style are positives);
   0 is the ablation.

Checkpoints every few minutes and ``--resume``; ``--snapshot-at`` keeps EMA weights at given
steps of the masked stage so ablations compare at equal steps; ``--stop-at`` stops there.
Then ``--export``: ``decoder.onnx``, ``backbone.onnx`` (dynamic batch and length), torch vs
onnxruntime parity, ``codebooks.npz``, ``stats.npz`` and the manifest.

The shipped package::

    nohup .venv-train/bin/python training/train_kmm.py --config cpu --seed 0 --threads 2 \\
        --resume --export models/kmm-default > build/kmm/train.log 2>&1 &
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import train_smdm as ts  # noqa: E402  (sets up the sparse_motion import)
import train_motionlcm as tlcm  # noqa: E402

from sparse_motion.inference import kmm_net as net  # noqa: E402
from sparse_motion.inference.package import write_manifest  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402

KIND = "kmm"
STAGES = ("tokenizer", "masked")
DEFAULT_WORK = ROOT / "build" / "kmm"
OPSET = ts.OPSET
log = ts.log

CONFIGS = {
    # 2 CPU cores, under 3 hours together
    "cpu": dict(tok=dict(width=256, code_dim=128, codes=512, quantizers=6, res_blocks=2),
                net=dict(width=192, layers=4, heads=8, state=16, expand=2, mlp=512,
                         dropout=0.1),
                steps={"tokenizer": 5000, "masked": 8000},
                lr={"tokenizer": 5e-4, "masked": 6e-4}, batch=32, max_frames=160),
    # one GPU
    "gpu": dict(tok=dict(width=512, code_dim=256, codes=512, quantizers=6, res_blocks=3),
                net=dict(width=384, layers=8, heads=8, state=32, expand=2, mlp=1024,
                         dropout=0.1),
                steps={"tokenizer": 50000, "masked": 100000},
                lr={"tokenizer": 2e-4, "masked": 2e-4}, batch=128, max_frames=200),
    # tests and smoke runs
    "tiny": dict(tok=dict(width=48, code_dim=16, codes=32, quantizers=3, res_blocks=1),
                 net=dict(width=48, layers=2, heads=4, state=8, expand=2, mlp=96, dropout=0.0),
                 steps={"tokenizer": 200, "masked": 300},
                 lr={"tokenizer": 2e-3, "masked": 2e-3}, batch=16, max_frames=64),
}


# =========================================================================== data


class TokenClips:
    """Every train clip (and mirror image) as token ids ``(L, Q)`` and encoder latents
    ``(L, C)`` (for the key-frame scores), with its caption rows and sampling weight."""

    def __init__(self, ids, latents, caps, pairs, weights):
        self.ids, self.latents, self.caps, self.pairs = ids, latents, caps, pairs
        self.lengths = np.array([len(i) for i in ids])
        self.weights = weights

    @classmethod
    def encode(cls, torch, tokenizer, data: "ts.TrainClips", log_fn=log):
        ids, lat, caps, pairs, weights = [], [], [], [], []
        w = data.weights if data.weights is not None else np.full(len(data.lengths),
                                                                  1.0 / len(data.lengths))
        tokenizer.eval()
        with torch.no_grad():
            for m in (False, True):
                for j, f in enumerate(data.feats[m]):
                    n = (len(f) // net.DOWNSAMPLE) * net.DOWNSAMPLE
                    if n < net.DOWNSAMPLE * 2:
                        continue
                    x = torch.from_numpy(np.ascontiguousarray(f[:n], dtype=np.float32))[None]
                    z = tokenizer.encoder(x)
                    i = tokenizer.rvq.quantize(z)[1]
                    ids.append(i[0].numpy().astype(np.int64))
                    lat.append(z[0].numpy())
                    rows = data.caps[m][j]
                    caps.append(rows)
                    pairs.append(int(rows[0]))  # the pair's first caption row names the pair
                    weights.append(w[j])
        weights = np.asarray(weights, np.float64)
        log_fn(f"tokenized {len(ids)} clips (with mirrors): {sum(len(i) for i in ids)} tokens")
        return cls(ids, lat, caps, np.asarray(pairs), weights / weights.sum())

    def batch(self, rng, B, max_tokens, min_tokens=6):
        pick = int(self.lengths[rng.integers(len(self.lengths))])
        M = int(min(max(pick, min_tokens), max_tokens, self.lengths.max()))
        eligible = np.flatnonzero(self.lengths >= M)
        p = self.weights[eligible]
        sel = rng.choice(eligible, size=B, replace=True, p=p / p.sum())
        Q = self.ids[0].shape[1]
        ids = np.empty((B, M, Q), np.int64)
        lat = np.empty((B, M, self.latents[0].shape[1]), np.float32)
        cap = np.empty(B, np.int64)
        for b, j in enumerate(sel):
            s = int(rng.integers(0, self.lengths[j] - M + 1))
            ids[b] = self.ids[j][s:s + M]
            lat[b] = self.latents[j][s:s + M]
            rows = self.caps[j]
            cap[b] = rows[rng.integers(len(rows))]
        return ids, lat, cap, self.pairs[sel]


def feature_batch(data: "ts.TrainClips", rng, B, frames):
    """Random crops ``(B, frames, D)`` of normalised clips (or mirrors) at least that long."""
    eligible = np.flatnonzero(data.lengths >= frames)
    p = None if data.weights is None else data.weights[eligible] / data.weights[eligible].sum()
    sel = rng.choice(eligible, size=B, replace=True, p=p)
    out = np.empty((B, frames, data.feats[False][0].shape[1]), np.float32)
    for b, j in enumerate(sel):
        f = data.feats[bool(rng.random() < 0.5)][j]
        s = int(rng.integers(0, len(f) - frames + 1))
        out[b] = f[s:s + frames]
    return out


def phases(M: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, M, dtype=np.float32) if M > 1 else np.zeros(1, np.float32)


# =========================================================================== training


class Trainer:
    def __init__(self, args, torch, data, text_emb, log_fn=log):
        self.args, self.torch, self.data, self.text_emb = args, torch, data, text_emb
        self.log = log_fn
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        D = data.feats[False][0].shape[1]
        self.tcfg = net.TokenizerConfig(feature_dim=D, **args.tok)
        self.ncfg = net.BackboneConfig(codes=self.tcfg.codes, quantizers=self.tcfg.quantizers,
                                       text_dim=text_emb.shape[1], **args.net)
        self.budget = tlcm.Budget(args.max_minutes)
        self.tokenizer = None
        self.backbone = None

    def train_tokenizer(self) -> bool:
        torch, args = self.torch, self.args
        F = torch.nn.functional
        st = tlcm._load_final(self.torch, self.work, "tokenizer")
        tok = net.build_tokenizer(torch, self.tcfg)
        if st is not None:
            tok.load_state_dict(st["ema"])
            self.tokenizer = tlcm._frozen(tok)
            return True
        torch.manual_seed(args.seed * 10 + 1)
        ema = copy.deepcopy(tok)
        frames = min(64, args.max_frames)
        Q = self.tcfg.quantizers

        def step_fn(rng, step):
            x = torch.from_numpy(feature_batch(self.data, rng, args.batch, frames))
            n_q = int(rng.integers(1, Q + 1)) if rng.random() < 0.2 else Q
            rec, commit, _ = tok(x, n_q)
            l_rec = F.smooth_l1_loss(rec, x)
            l_vel = F.smooth_l1_loss(rec[:, 1:] - rec[:, :-1], x[:, 1:] - x[:, :-1])
            loss = l_rec + 0.5 * l_vel + 0.02 * commit
            return loss, {"rec": float(l_rec.detach()), "vel": float(l_vel.detach()),
                          "commit": float(commit.detach())}

        # the live weights are kept, not the EMA: the codebooks follow the live encoder
        _ema, done, hist = tlcm.run_stage("tokenizer", args, torch, tok, ema, step_fn,
                                          ema_decay=args.ema, budget=self.budget,
                                          log_fn=self.log)
        if done:
            torch.save({"ema": tok.state_dict(), "config": self.tcfg.to_dict(), "history": hist},
                       self.work / "tokenizer-final.pt")
        self.tokenizer = tlcm._frozen(tok)
        return done

    def masked_step_fn(self, model, tokens: TokenClips):
        torch, args = self.torch, self.args
        F = torch.nn.functional
        Q, K = self.ncfg.quantizers, self.ncfg.codes
        max_tokens = args.max_frames // net.DOWNSAMPLE
        temb = torch.from_numpy(self.text_emb)

        def step_fn(rng, step):
            ids_np, lat_np, cap, pair = tokens.batch(rng, args.batch, max_tokens)
            B, M, _ = ids_np.shape
            layer = np.where(rng.random(B) < 0.5, 0, rng.integers(1, Q, B)) if Q > 1 \
                else np.zeros(B, np.int64)
            ratio = np.cos(np.pi / 2 * rng.random(B))
            n_mask = np.clip(np.ceil(ratio * M), 1, M).astype(int)
            if args.masking == "keyframe":
                score = np.stack([np.log(net.keyframe_scores(lat_np[b]) + 1e-12) for b in range(B)])
                score = score + args.keyframe_noise * rng.gumbel(size=score.shape)
            else:
                score = rng.random((B, M))
            order = np.argsort(-score, axis=1)
            mask = np.zeros((B, M), bool)
            for b in range(B):
                mask[b, order[b, :n_mask[b]]] = True
            inp = ids_np.copy()
            inp[..., 0] = np.where(mask & (layer[:, None] == 0), K, inp[..., 0])
            has_text = rng.random(B) >= args.cond_drop
            text = temb[torch.from_numpy(cap)] * torch.from_numpy(has_text[:, None].astype(np.float32))
            text_tok = text[:, None].expand(B, M, text.shape[-1])
            ph = torch.from_numpy(np.tile(phases(M), (B, 1)))
            lt = torch.from_numpy(layer.astype(np.int64))
            logits = model(torch.from_numpy(inp), lt, text_tok, ph)
            target = torch.from_numpy(ids_np[np.arange(B)[:, None], np.arange(M)[None], layer[:, None]])
            valid = torch.from_numpy(np.where(layer[:, None] == 0, mask, True))
            ce = F.cross_entropy(logits[valid], target[valid])
            with torch.no_grad():
                acc0 = (logits.argmax(-1) == target)[valid & (lt[:, None] == 0)].float().mean()
            loss, parts = ce, {"ce": float(ce.detach()), "acc0": float(acc0)}
            if args.align > 0 and has_text.sum() > 1:
                sel = torch.from_numpy(np.flatnonzero(has_text))
                te = model.text_embedding(temb[torch.from_numpy(cap)][sel])
                me = model.motion_embedding(torch.from_numpy(ids_np[..., 0])[sel])
                scale = model.logit_scale.exp().clamp(max=100.0)
                sim = scale * te @ me.t()
                pr = pair[has_text]
                same = torch.from_numpy((pr[:, None] == pr[None]).astype(np.float32))
                tgt = same / same.sum(1, keepdim=True)
                l_al = 0.5 * (-(tgt * F.log_softmax(sim, 1)).sum(1).mean()
                              - (tgt.t() * F.log_softmax(sim.t(), 1)).sum(1).mean())
                loss = loss + args.align * l_al
                parts["align"] = float(l_al.detach())
            return loss, parts

        return step_fn

    def train_masked(self) -> bool:
        torch, args = self.torch, self.args
        st = tlcm._load_final(torch, self.work, "masked")
        if args.from_weights:
            st = torch.load(args.from_weights, weights_only=False, map_location="cpu")
            self.log(f"backbone weights from {args.from_weights} (step {st.get('step', '?')})")
        if st is not None:
            model = net.build_backbone(torch, self.ncfg)
            model.load_state_dict(st["ema"])
            self.backbone, self.history = tlcm._frozen(model), st.get("history", [])
            return True
        tokens = TokenClips.encode(torch, self.tokenizer, self.data, self.log)
        torch.manual_seed(args.seed * 10 + 2)
        model = net.build_backbone(torch, self.ncfg)
        ema = copy.deepcopy(model)
        step_fn = self.masked_step_fn(model, tokens)
        snapshots = set(args.snapshot_at or [])
        if snapshots:
            inner = step_fn

            def step_fn(rng, step):  # noqa: F811  (keeps EMA snapshots at given steps)
                if step in snapshots:
                    torch.save({"ema": ema.state_dict(), "config": self.ncfg.to_dict(),
                                "step": step}, self.work / f"masked-ema-{step}.pt")
                return inner(rng, step)
        ema, done, hist = tlcm.run_stage("masked", args, torch, model, ema, step_fn,
                                         ema_decay=args.ema, budget=self.budget,
                                         log_fn=self.log)
        if done:
            torch.save({"ema": ema.state_dict(), "config": self.ncfg.to_dict(), "history": hist},
                       self.work / "masked-final.pt")
        self.backbone = tlcm._frozen(ema)
        self.history = hist
        return done

    def run(self) -> bool:
        if not self.train_tokenizer():
            return False
        if self.args.stage == "tokenizer":
            return True
        return self.train_masked()


# =========================================================================== export


def backbone_feeds(cfg: net.BackboneConfig, B: int, L: int, rng) -> dict:
    ids = rng.integers(0, cfg.codes + 1, (B, L, cfg.quantizers)).astype(np.int64)
    return {"ids": ids, "layer": rng.integers(0, cfg.quantizers, B).astype(np.int64),
            "text": rng.standard_normal((B, L, cfg.text_dim)).astype(np.float32),
            "phase": np.tile(phases(L), (B, 1))}


def export_onnx(torch, tokenizer, backbone, out: Path) -> dict:
    """``decoder.onnx`` (latent (B, L, C) -> normalised features (B, 4L, D)) and
    ``backbone.onnx`` (ids, layer, text, phase -> logits), dynamic batch and length."""
    out.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    tokens = torch.export.Dim("tokens", min=2, max=4096)
    rng = np.random.default_rng(0)
    paths = {}
    dec = tokenizer.decoder.eval()
    lat = torch.randn(2, 12, tokenizer.config.code_dim)
    paths["decoder.onnx"] = out / "decoder.onnx"
    torch.onnx.export(dec, (lat,), str(paths["decoder.onnx"]), dynamo=True,
                      input_names=list(net.DECODER_INPUTS), output_names=["x"],
                      dynamic_shapes={"z": {0: batch, 1: tokens}}, opset_version=OPSET,
                      external_data=False, optimize=False)
    bb = backbone.eval()
    for blk in bb.blocks:  # the exported form: linear in the length, no loop
        blk.fwd.scan = blk.bwd.scan = "chunked"
    bb.config.scan = "chunked"
    feeds = backbone_feeds(bb.config, 2, 45, rng)
    paths["backbone.onnx"] = out / "backbone.onnx"
    torch.onnx.export(bb, tuple(torch.from_numpy(feeds[k]) for k in net.BACKBONE_INPUTS),
                      str(paths["backbone.onnx"]), dynamo=True,
                      input_names=list(net.BACKBONE_INPUTS), output_names=["logits"],
                      dynamic_shapes={"ids": {0: batch, 1: tokens}, "layer": {0: batch},
                                      "text": {0: batch, 1: tokens},
                                      "phase": {0: batch, 1: tokens}},
                      opset_version=OPSET, external_data=False, optimize=False)
    return paths


def parity(torch, tokenizer, backbone, paths: dict, seed: int = 0) -> float:
    """Max |torch - onnxruntime| of both parts over a few batch sizes and lengths (the torch
    backbone with the sequential scan: the export's quadratic form must equal it)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    worst = 0.0
    dec = ort.InferenceSession(str(paths["decoder.onnx"]), providers=["CPUExecutionProvider"])
    bb = ort.InferenceSession(str(paths["backbone.onnx"]), providers=["CPUExecutionProvider"])
    seq = copy.deepcopy(backbone).eval()
    for blk in seq.blocks:
        blk.fwd.scan = blk.bwd.scan = "sequential"
    for B, L in ((1, 5), (2, 40), (1, 150), (1, 300)):
        lat = rng.standard_normal((B, L, tokenizer.config.code_dim)).astype(np.float32)
        with torch.no_grad():
            ref = tokenizer.decoder(torch.from_numpy(lat)).numpy()
        worst = max(worst, float(np.abs(ref - dec.run(["x"], {"z": lat})[0]).max()))
        feeds = backbone_feeds(backbone.config, B, L, rng)
        with torch.no_grad():
            ref = seq(*(torch.from_numpy(feeds[k]) for k in net.BACKBONE_INPUTS)).numpy()
        worst = max(worst, float(np.abs(ref - bb.run(["logits"], feeds)[0]).max()))
    return worst


def write_package(out: Path, trainer: Trainer, paths: dict, feat_mean, feat_std, te_manifest, *,
                  name, version, description, training: dict, data_licence=True, default=True,
                  metrics=None, grounding: dict | None = None, labels: dict | None = None) -> dict:
    """``out``: the two ONNX files, ``codebooks.npz``, ``stats.npz`` and the manifest (the
    fields every package shares from ``train_smdm.package_manifest``)."""
    ts.package_files(out, paths, feat_mean, feat_std)
    np.savez(out / "codebooks.npz",
             codebooks=trainer.tokenizer.rvq.codebooks.detach().numpy().astype(np.float32))
    a = trainer.args
    model = {"tokenizer": trainer.tcfg.to_dict(),
             "backbone": {**trainer.ncfg.to_dict(), "scan": "chunked"},
             "downsample": net.DOWNSAMPLE, "steps": a.decode_steps,
             "guidance": a.guidance, "temperature": 1.0, "top_k": 0.9,
             "key_fraction": 0.2, "min_frames": 8, "max_frames": 2400,
             "masking": a.masking, "align": a.align,
             **({"grounding": dict(grounding)} if grounding else {})}
    manifest = ts.package_manifest(KIND, name=name, version=version, description=description,
                                   default=default, data_licence=data_licence,
                                   feature_dim=trainer.tcfg.feature_dim, te_manifest=te_manifest,
                                   model=model, training=training, metrics=metrics)
    if labels:
        manifest["labels"] = labels
    files = {"decoder.onnx": {"purpose": "tokenizer decoder: summed code latents -> normalised "
                                         "features (4 frames a token)"},
             "backbone.onnx": {"purpose": "masked bidirectional Mamba: token ids, layer, "
                                          "per-token text and phase -> logits of that layer"},
             "codebooks.npz": {"purpose": "residual VQ codebooks (Q, K, C)"},
             "stats.npz": {"purpose": "feature normalisation mean/std (257,)"}}
    path = write_manifest(out, manifest, files=files)
    return json.loads(path.read_text(encoding="utf-8"))


# =========================================================================== main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--stage", choices=STAGES, default="masked",
                    help="train up to and including this stage")
    ap.add_argument("--data", default=str(ts.DEFAULT_DATA))
    ap.add_argument("--work", default=None, help="checkpoints (build/kmm/<config>)")
    ap.add_argument("--tokenizer-from", default=None,
                    help="a tokenizer-final.pt to use instead of training one (ablations share "
                         "the main run's tokenizer)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-at", type=int, default=None)
    ap.add_argument("--snapshot-at", type=int, nargs="*", default=None)
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--from-weights", default=None,
                    help="export these backbone EMA weights (masked-ema-<step>.pt, or the "
                         "masked.pt checkpoint's EMA) with the work folder's tokenizer instead "
                         "of training the masked stage (ablations at equal steps)")
    ap.add_argument("--steps", type=int, nargs=2, default=None, metavar=("TOKENIZER", "MASKED"))
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--masking", choices=("keyframe", "random"), default="keyframe")
    ap.add_argument("--keyframe-noise", type=float, default=0.5,
                    help="Gumbel noise on log Γ (0: always exactly the top-Γ tokens)")
    ap.add_argument("--align", type=float, default=0.5, help="contrastive loss weight (0: off)")
    ap.add_argument("--captions-per-pair", type=int, default=96)
    ap.add_argument("--balance", type=float, default=0.5)
    ap.add_argument("--decode-steps", type=int, default=8, help="the package's default")
    ap.add_argument("--guidance", type=float, default=3.0, help="the package's default")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--export", default=None)
    ap.add_argument("--name", default="kmm-default")
    ap.add_argument("--version", default="1.0.0")
    ts.add_grounding_arg(ap)
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.config]
    args.tok, args.net = dict(cfg["tok"]), dict(cfg["net"])
    for k in ("batch", "max_frames"):
        if getattr(args, k) is None:
            setattr(args, k, cfg[k])
    args.stages = STAGES
    args.stage_steps = dict(zip(STAGES, args.steps)) if args.steps else dict(cfg["steps"])
    args.stage_lr = dict(cfg["lr"])
    if args.work is None:
        args.work = str(DEFAULT_WORK / args.config)
    return args


def load_data(args, log_fn=log):
    """``(TrainClips, text_emb, dataset)`` of the real data (sMDM's captions and cache)."""
    from train_evaluator import text_cache

    ds = _ds.load_dataset(args.data)
    captions_of = ts.pair_captions(args.captions_per_pair)
    cache = ts.DEFAULT_WORK / "text" if args.captions_per_pair else ROOT / "build" / "evaluator"
    _t, text_emb, text_index = text_cache(ds, cache, ts.TEXT_ENCODER_DIR, captions_of)
    data = ts.TrainClips.from_dataset(ds, ds.indices("train"), text_index, captions_of,
                                      balance_power=args.balance)
    log_fn(f"{len(data.lengths)} train clips (+ mirrors)")
    return data, text_emb, ds


def export(trainer, args, torch, feat_mean, feat_std, argv=None, *, data_licence=True,
           dataset_version=None, data_meta=None, command=None, description=None, default=True,
           labels=None, log_fn=log) -> dict:
    """Export, check parity and write the package ``args.export``. ``data_meta``: training
    fields replacing the dataset's (e.g. synthetic data); ``command``: the reproducing command
    (default: this script's)."""
    work = Path(args.work)
    paths = export_onnx(torch, trainer.tokenizer, trainer.backbone, work / "onnx")
    err = parity(torch, trainer.tokenizer, trainer.backbone, paths)
    ts.check_parity(err, 'exported', log_fn)
    te_manifest = json.loads((ts.TEXT_ENCODER_DIR / "manifest.json").read_text())
    if command is None:
        command = ts.train_command("train_kmm.py", argv)
    hist = getattr(trainer, "history", None) or []
    training = {"command": command, "seed": args.seed,
                "git_commit": ts.git_commit(), "steps": dict(args.stage_steps),
                "batch": args.batch, "lr": dict(args.stage_lr), "masking": args.masking,
                "keyframe_noise": args.keyframe_noise, "align": args.align,
                "cond_drop": args.cond_drop, "ema": args.ema, "max_frames": args.max_frames,
                "captions_per_pair": args.captions_per_pair, "balance": args.balance,
                "parameters": {"tokenizer": sum(p.numel() for p in trainer.tokenizer.parameters()),
                               "backbone": sum(p.numel() for p in trainer.backbone.parameters())},
                "split": "train (+ mirror)", "dataset_version": dataset_version,
                "parity_max_abs": err, "final": hist[-1] if hist else None,
                **(data_meta or {})}
    desc = description or (f"KMM ({trainer.ncfg.layers}x{trainer.ncfg.width} bidirectional "
                           f"Mamba, RVQ {trainer.tcfg.quantizers}x{trainer.tcfg.codes}), "
                           "Bandai Namco, non-commercial")
    m = write_package(Path(args.export), trainer, paths, feat_mean, feat_std, te_manifest,
                      name=args.name, version=args.version, description=desc, training=training,
                      data_licence=data_licence, default=default,
                      grounding=ts.grounding_setting(args), labels=labels)
    log_fn(f"package written: {args.export} "
           f"({sum(f['size'] for f in m['files'].values()) / 1e6:.1f} MB)")
    return m


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    data, text_emb, ds = load_data(args)
    trainer = Trainer(args, torch, data, text_emb)
    if args.tokenizer_from:
        st = torch.load(args.tokenizer_from, weights_only=False, map_location="cpu")
        Path(args.work).mkdir(parents=True, exist_ok=True)
        torch.save(st, Path(args.work) / "tokenizer-final.pt")
    t0 = time.time()
    done = trainer.run()
    log(f"training {'done' if done else 'stopped'} in {(time.time() - t0) / 60:.1f} min")
    if not done or not args.export or args.stage != "masked":
        return 0
    export(trainer, args, torch, ds.mean, ds.std, argv, dataset_version=ds.meta["version"],
           labels=ts.train_labels(ds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
