# SPDX-License-Identifier: GPL-3.0-or-later
"""Train the sMDM text-to-motion model and export it as a model package (``models/smdm-default``).

Build-time only (the training venv: torch, onnx, onnxscript, onnxruntime). The model is
``inference/smdm_net.py``; the maths it shares with inference (noise schedule, keyframes,
interpolation tables) is ``inference/smdm_core.py``.

Data: the train split of the dataset built by ``training/build_dataset.py`` (normalised
257-d features, 20 fps) and its left/right mirror image; captions drawn from every template
paraphrase of the clip's (mirrored) labels, embedded once with the shipped text encoder
(the evaluator's cache in ``build/evaluator`` is reused when present). Each batch has one
length N (drawn from the train clips' lengths, 24..``--max-frames``), random crops of clips at
least that long, and K = round(0.2 N) keyframes per sample:

* ``--keys vw`` (default): Visvalingam-Whyatt on the clip's joint world positions (the
  keyframe engine's ``vw.effective_areas``, computed once per clip; a crop keeps its two ends
  plus its most significant frames);
* ``--keys random``: random frames with the two ends (the paper's ablation).

Diffusion: 1000-step cosine schedule, the model predicts x0, MSE over all N dense frames
(the interpolated ones included) + ``--lip-weight`` × Π softplus(c_i) of the Lipschitz MLPs
(``--no-lipschitz``: plain linear input/output layers, the other ablation), 10 % of captions
dropped (zeros) for classifier-free guidance. AdamW, warm-up then cosine decay, EMA of the
weights (exported). Time-based checkpoints (``work/checkpoint.pt``) and ``--resume``;
``--snapshot-at`` keeps EMA weights at given steps (``work/ema-<step>.pt``) so ablations can
be compared at equal steps.

Issue 13 (text understanding): ``--captions-per-pair N`` trains each (content, style) with a
fixed draw of N of its (several hundred) template captions, so the text encoder embeds a
bounded set; ``--balance P`` samples clips with weight (clips of their content) ** -P (0.5:
each content drawn ∝ sqrt of its clips, so the 1-2-clip contents are seen ~10x more often);
``--init-weights`` fine-tunes from existing weights (e.g. the shipped package's
``denoiser.pt``) instead of a random start.

Then ``--export``: ONNX (dynamic batch, frames and keyframe count), a torch vs onnxruntime
parity check, and the package (``denoiser.onnx``, ``stats.npz``, ``manifest.json``).

On GPUs (``training/distributed.py``, ``docs/gpu.md``): ``--device cuda`` on one GPU, or under
``torchrun --nproc_per_node N`` one process per GPU with DistributedDataParallel (``--batch``
is the global batch, bf16 autocast unless ``--no-amp``); checkpoints resume on any device
count. The ``gpu`` config (MDM's size, 18 M parameters) is the one meant for it::

    torchrun --standalone --nproc_per_node 4 training/train_smdm.py --config gpu --device cuda \
        --seed 0 --resume --export build/smdm/gpu-package

Reproduce the shipped model (see ``docs/smdm.md`` for the measured times)::

    nohup .venv-train/bin/python training/train_smdm.py --config cpu --seed 0 --resume \\
        --export models/smdm-default > build/smdm/train.log 2>&1 &
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "training"))
import devimport  # noqa: E402

devimport.load()

import distributed  # noqa: E402

from sparse_motion.inference import smdm_core as core  # noqa: E402
from sparse_motion.inference.smdm_net import DenoiserConfig, build_denoiser, input_names  # noqa: E402
from sparse_motion.inference.inbetween import ROOT_CHANNELS, known_inputs  # noqa: E402
from sparse_motion.keyframes import vw as _vw  # noqa: E402
from sparse_motion.motion.canonical import SKELETON as _SK  # noqa: E402
from sparse_motion.inference.package import write_manifest  # noqa: E402
from sparse_motion.motion import captions as _cap  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402

DEFAULT_DATA = Path("~/.cache/sparse_motion/dataset-v1").expanduser()
DEFAULT_WORK = ROOT / "build" / "smdm"
TEXT_ENCODER_DIR = ROOT / "models" / "text-minilm-l6"
OPSET = 18
MIN_FRAMES = 24

CONFIGS = {
    # 2 CPU cores, about an hour: the shipped default
    "cpu": dict(width=256, layers=4, heads=4, ff=1024, batch=64, lr=4e-4, steps=7000,
                max_frames=200),
    # one GPU: MDM's size
    "gpu": dict(width=512, layers=8, heads=4, ff=1024, batch=128, lr=2e-4, steps=200000,
                max_frames=200),
    # tests and smoke runs
    "tiny": dict(width=64, layers=2, heads=2, ff=128, batch=16, lr=2e-3, steps=300,
                 max_frames=64),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def check_parity(err: float, what: str = "exported", log_fn=log) -> None:
    """Log the torch vs onnxruntime parity of an export (``what``: the log line's start) and
    stop when it is over 1e-3."""
    log_fn(f"{what}; parity max |diff| {err:.2e}")
    if err > 1e-3:
        raise SystemExit(f"torch/onnxruntime parity failed: {err}")


def train_command(script: str, argv=None) -> str:
    """The command that reproduces this run of ``training/<script>`` (``argv``: its arguments,
    default the process's), for a package's ``training.command``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return f".venv-train/bin/python {' '.join([f'training/{script}'] + args)}"


# =========================================================================== data


class TrainClips:
    """Normalised clips (and mirror images) with VW areas and caption-embedding rows.

    ``feats[m][j]`` (F, D) normalised, ``areas[j]`` VW significance per frame (the same for the
    mirror image: a reflection keeps triangle areas), ``caps[m][j]`` rows into ``text_emb``.
    Also usable with any list of (features, caption rows) for synthetic tests.
    """

    def __init__(self, feats, feats_mirror, areas, caps, caps_mirror, weights=None, stats=None):
        self.feats = {False: feats, True: feats_mirror}
        # (mean, std) of the normalisation: the known-keyframe inputs need raw features
        self.stats = stats
        self.areas = areas
        self.caps = {False: caps, True: caps_mirror}
        self.lengths = np.array([len(f) for f in feats])
        # per-clip sampling weights (None: uniform); see balance_weights
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)

    @classmethod
    def from_dataset(cls, ds, idx, text_index, captions_of=None, balance_power=0.0):
        """``captions_of(content, style)``: the captions a pair is trained with (default: every
        template variant); ``balance_power``: see :func:`balance_weights`."""
        captions_of = captions_of or _cap.caption_variants
        feats, mfeats, areas, caps, mcaps = [], [], [], [], []
        rows_of = {}
        for i in idx:
            i = int(i)
            c = ds.clips[i]
            raw = ds.features(i)
            feats.append(ds.normalize(raw))
            mfeats.append(ds.features(i, mirrored=True, normalized=True))
            areas.append(core.vw_areas(_feat.features_to_positions(raw)))
            for m, out in ((False, caps), (True, mcaps)):
                content = ds.content(i, m)
                key = (content, c["style"])
                if key not in rows_of:
                    rows_of[key] = np.array([text_index[t] for t in
                                             captions_of(content, c["style"])])
                out.append(rows_of[key])
        weights = balance_weights([ds.clips[int(i)]["content"] for i in idx], balance_power)
        return cls(feats, mfeats, areas, caps, mcaps, weights, stats=(ds.mean, ds.std))

    def batch(self, rng, B, max_frames, keys_mode, cond_drop, text_emb, known_p: float = 0.0):
        """One training batch ``(x0, text, keys, left, w)``; with ``known_p`` > 0 also
        ``(known, known_mask)``: each clip has, with probability ``known_p``, an animator's
        keys (:func:`draw_known`; its text dropped half the time, as a fill often has no
        prompt), the known frames always among its keyframes."""
        # one length per batch, drawn from the clip lengths
        n_pick = int(self.lengths[rng.integers(len(self.lengths))])
        N = int(min(max(n_pick, MIN_FRAMES), max_frames, self.lengths.max()))
        eligible = np.flatnonzero(self.lengths >= N)
        if self.weights is None:
            ids = rng.choice(eligible, size=B, replace=True)
        else:
            p = self.weights[eligible]
            ids = rng.choice(eligible, size=B, replace=True, p=p / p.sum())
        K = core.key_count(N)
        D = self.feats[False][0].shape[1]
        x0 = np.empty((B, N, D), dtype=np.float32)
        text = np.zeros((B, text_emb.shape[1]), dtype=np.float32)
        picks, forced, rand = [], [], {}
        for b, j in enumerate(ids):
            m = bool(rng.random() < 0.5)
            f = self.feats[m][j]
            s = int(rng.integers(0, len(f) - N + 1))
            x0[b] = f[s:s + N]
            picks.append((j, s))
            has = known_p > 0 and rng.random() < known_p
            forced.append(draw_known(rng, N) if has else None)
            if keys_mode != "vw" and not has:  # drawn here: the ablation's random stream
                rand[b] = core.random_keys(N, K, rng)
            if rng.random() >= (cond_drop if not has else max(cond_drop, 0.5)):
                rows = self.caps[m][j]
                text[b] = text_emb[rows[rng.integers(len(rows))]]
        # the known frames are always keyframes: one key count for the batch
        K = max([K] + [len(k[0]) for k in forced if k is not None])  # ends among them
        keys = np.empty((B, K), dtype=np.int64)
        for b, (j, s) in enumerate(picks):
            if forced[b] is not None:
                a = np.array(self.areas[j][s:s + N], dtype=np.float64)
                a[0] = a[-1] = np.inf
                a[forced[b][0]] = np.inf
                keys[b] = _vw.select_count(a, K).astype(np.int64)
            elif keys_mode == "vw":
                keys[b] = core.keys_from_areas(self.areas[j], K, s, s + N)
            else:
                keys[b] = rand[b]
        _, left, w = core.interpolation_batch(keys, N)
        if not known_p:
            return x0, text, keys, left, w
        kd = D + ROOT_CHANNELS
        known = np.zeros((B, N, kd), dtype=np.float32)
        mask = np.zeros((B, N, kd), dtype=np.float32)
        mean, std = self.stats
        for b in range(B):
            if forced[b] is None:
                continue
            _frames, joints, root_known = forced[b]
            raw = x0[b].astype(np.float64) * std + mean
            known[b], mask[b] = known_inputs(raw, joints, root_known, mean, std)
        return x0, text, keys, left, w, known, mask


_J = _SK.num_joints


def draw_known(rng, N: int):
    """An animator's keys on a clip of ``N`` frames: ``(frames, joints (N, 21), root_known
    (N,))``. A key every G frames (G log-uniform in 3–70, both ends kept; a third of the time
    the same count at random frames); 70 %: whole poses with the root, else each joint with
    probability 1/2 and the root half the time (only some bones keyed)."""
    G = int(round(np.exp(rng.uniform(np.log(3), np.log(70)))))
    frames = np.union1d(np.arange(0, N, G), [N - 1])
    if rng.random() < 1 / 3 and N > 2:
        n = min(N - 2, max(0, len(frames) - 2))
        frames = np.union1d(rng.choice(np.arange(1, N - 1), size=n, replace=False), [0, N - 1])
    frames = frames.astype(np.int64)
    joints = np.zeros((N, _J), bool)
    root_known = np.zeros(N, bool)
    if rng.random() < 0.7:
        joints[frames] = True
        root_known[frames] = True
    else:
        cols = np.flatnonzero(rng.random(_J) < 0.5)
        if len(cols) == 0:
            cols = np.array([int(rng.integers(_J))])
        joints[np.ix_(frames, cols)] = True
        root_known[frames] = rng.random() < 0.5
    return frames, joints, root_known


def balance_weights(contents, power: float = 0.5):
    """Per-clip sampling weights ∝ (clips of the clip's content) ** -power, summing to 1:
    0 keeps uniform sampling (None), 0.5 gives each content a share ∝ sqrt(its clip count)
    (rare contents such as punch, 2 clips, are drawn ~10x more often than uniformly), 1 gives
    every content the same share."""
    if not power:
        return None
    contents = list(contents)
    counts = {}
    for c in contents:
        counts[c] = counts.get(c, 0) + 1
    w = np.array([counts[c] ** -float(power) for c in contents], dtype=np.float64)
    return w / w.sum()


def pair_captions(n: int | None):
    """``captions_of(content, style)`` for training: every template variant (``n`` None) or
    ``n`` of them, drawn deterministically per pair (the text encoder then embeds a bounded
    set: a few hundred variants x ~220 pairs would take most of the CPU budget)."""
    if not n:
        return _cap.caption_variants
    cache = {}

    def captions_of(content, style):
        key = (content, style)
        if key not in cache:
            cache[key] = _cap.pair_captions(content, style, n)
        return cache[key]

    return captions_of


def load_init_weights(torch, path):
    """A state dict to start from: a package's ``denoiser.pt`` (float16 state dict), a
    checkpoint's ``ema-<step>.pt`` or ``checkpoint.pt`` (its EMA weights); float32."""
    st = torch.load(path, weights_only=False, map_location="cpu")
    if isinstance(st, dict) and "ema" in st:
        st = st["ema"]
    return {k: (v.float() if v.is_floating_point() else v) for k, v in st.items()}


# =========================================================================== training


def lr_at(step, total, warmup, base):
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))


def train(args, torch, data, text_emb, log_fn=log, ctx=None):
    """Train (or resume) and return the EMA model. ``data``: a :class:`TrainClips`.

    On one device, or under torchrun on several (``ctx``: a :class:`distributed.Context`,
    made from ``args.device`` when None): every rank draws the same global batch of
    ``args.batch`` and trains on its slice; rank 0 logs and writes the checkpoints (the
    unwrapped model's weights: a run resumes on any device count)."""
    ctx = ctx or distributed.setup(args.device, amp=not args.no_amp, torch=torch)
    if not ctx.is_main:
        log_fn = _quiet
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / "checkpoint.pt"
    torch.manual_seed(args.seed)
    cfg = DenoiserConfig(width=args.width, layers=args.layers, heads=args.heads, ff=args.ff,
                         lipschitz=not args.no_lipschitz, feature_dim=data.feats[False][0].shape[1],
                         text_dim=text_emb.shape[1],
                         known_dim=(data.feats[False][0].shape[1] + ROOT_CHANNELS
                                    if getattr(args, "known", 0) else 0),
                         **({} if args.dropout is None else {"dropout": args.dropout}))
    device = ctx.device
    model = build_denoiser(torch, cfg).to(device)
    if getattr(args, "init_weights", None):
        st = load_init_weights(torch, args.init_weights)
        missing, unexpected = model.load_state_dict(st, strict=False)
        # only the known-keyframe layer may be new (zero-initialised: the model starts as the
        # one it is fine-tuned from)
        if unexpected or any(not k.startswith("known_proj.") for k in missing):
            raise SystemExit(f"--init-weights does not match the config: missing {missing}, "
                             f"unexpected {unexpected}")
        log_fn(f"initialised from {args.init_weights} (fine-tuning"
               f"{', new known-keyframe inputs' if missing else ''})")
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    abar = torch.tensor(core.cosine_alphas_cumprod(core.TIMESTEPS), dtype=torch.float32,
                        device=device)
    step = 0
    rng = np.random.default_rng(args.seed)
    history = []
    if args.resume and ckpt_path.is_file():
        st = torch.load(ckpt_path, weights_only=False, map_location=device)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"].cpu())
        history = st.get("history", [])
        log_fn(f"resumed at step {step}")
    n_params = sum(p.numel() for p in model.parameters())
    log_fn(f"model {n_params:,} parameters on {device} ({ctx.reason}"
           f"{', bf16 autocast' if ctx.amp is not None else ''}), config {cfg.to_dict()}")
    net = ctx.wrap(model)
    snapshots = set(args.snapshot_at or [])
    t_last_ckpt = time.time()
    t0 = time.time()
    run_loss = None
    deadline = t0 + args.max_minutes * 60 if args.max_minutes else None

    def save():
        if not ctx.is_main:
            return
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "step": step, "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(), "config": cfg.to_dict(),
                    "args": vars(args), "history": history}, tmp)
        os.replace(tmp, ckpt_path)

    model.train()
    stop = min(args.steps, args.stop_at or args.steps)
    known_p = float(getattr(args, "known", 0) or 0)  # the share of clips with keys
    while step < stop:
        # the global batch, data and noise, drawn alike on every rank (on the CPU: the same on
        # any device); each rank keeps its slice
        x0, text, keys, left, w, *kn = data.batch(rng, args.batch, args.max_frames, args.keys,
                                                  args.cond_drop, text_emb, known_p)
        x0 = torch.from_numpy(x0)
        B = x0.shape[0]
        t = torch.randint(0, core.TIMESTEPS, (B,))
        noise = torch.randn(x0.shape)
        x0, t, noise, text, keys, left, w, *kn = (
            (v if isinstance(v, torch.Tensor) else torch.from_numpy(v)).to(device)
            for v in map(ctx.shard, (x0, t, noise, text, keys, left, w, *kn)))
        a = abar[t][:, None, None]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.warmup, args.lr)
        with ctx.autocast():
            pred = net(x_t, t, text, keys, left, w, *kn)
        mse = ((pred.float() - x0) ** 2).mean()
        lip = model.lipschitz_loss()
        loss = mse + args.lip_weight * lip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        v = ctx.mean(float(mse.detach()))  # the global batch's
        run_loss = v if run_loss is None else 0.98 * run_loss + 0.02 * v
        if step % args.log_every == 0 or step == args.steps:
            el = time.time() - t0
            history.append({"step": step, "mse": round(run_loss, 5), "lip": float(lip.detach()),
                            "batch_mse": v})
            log_fn(f"step {step}/{args.steps} mse {run_loss:.4f} lip {float(lip.detach()):.1f} "
                   f"lr {opt.param_groups[0]['lr']:.2e} {el / 60:.1f} min")
        if step in snapshots and ctx.is_main:
            torch.save({"ema": ema.state_dict(), "config": cfg.to_dict(), "step": step},
                       work / f"ema-{step}.pt")
        if time.time() - t_last_ckpt > args.checkpoint_minutes * 60:
            save()
            t_last_ckpt = time.time()
        if deadline and ctx.mean(time.time() > deadline) > 0:  # all ranks stop together
            log_fn(f"time budget reached at step {step}")
            break
    save()
    if ctx.is_main:
        torch.save({"ema": ema.state_dict(), "config": cfg.to_dict(), "step": step},
                   work / "ema-final.pt")
    return ema.cpu(), cfg, step, n_params, history


def _quiet(msg: str) -> None:
    """The log of ranks other than 0."""


# =========================================================================== export


def export_onnx(torch, model, path: Path):
    """Export the denoiser with dynamic batch, frames and keyframe count."""
    model.eval()
    B, N, K = 2, 40, 8
    D = model.config.feature_dim
    keys, left, w = core.interpolation_batch([core.uniform_keys(N, K)] * B, N)
    example = (torch.randn(B, N, D), torch.tensor([10, 500]), torch.randn(B, model.config.text_dim),
               torch.from_numpy(keys), torch.from_numpy(left), torch.from_numpy(w))
    kd = model.config.known_dim
    if kd:
        example += (torch.randn(B, N, kd), (torch.rand(B, N, kd) < 0.5).float())
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=3, max=100000)
    nkeys = torch.export.Dim("keys", min=2, max=100000)
    dyn = {"x_t": {0: batch, 1: frames}, "t": {0: batch}, "text": {0: batch},
           "key_idx": {0: batch, 1: nkeys}, "interp_left": {0: batch, 1: frames},
           "interp_w": {0: batch, 1: frames}}
    if kd:
        dyn.update({"known": {0: batch, 1: frames}, "known_mask": {0: batch, 1: frames}})
    names = input_names(model.config)
    torch.onnx.export(model, example, str(path), dynamo=True, input_names=list(names),
                      output_names=["x0"], dynamic_shapes=dyn, opset_version=OPSET,
                      external_data=False, optimize=True)
    return path


def parity(torch, model, path: Path, seed: int = 0) -> float:
    """Max |torch - onnxruntime| over several batch sizes, lengths and key counts."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    D, E = model.config.feature_dim, model.config.text_dim
    for B, N in ((1, 17), (2, 120), (3, 200), (1, 401)):
        K = core.key_count(N)
        keys, left, w = core.interpolation_batch([core.random_keys(N, K, rng) for _ in range(B)], N)
        feeds = {"x_t": rng.standard_normal((B, N, D)).astype(np.float32),
                 "t": rng.integers(0, core.TIMESTEPS, B).astype(np.int64),
                 "text": rng.standard_normal((B, E)).astype(np.float32),
                 "key_idx": keys, "interp_left": left, "interp_w": w}
        kd = model.config.known_dim
        if kd:
            feeds["known"] = rng.standard_normal((B, N, kd)).astype(np.float32)
            feeds["known_mask"] = (rng.random((B, N, kd)) < 0.3).astype(np.float32)
        with torch.no_grad():
            ref = model(*(torch.from_numpy(feeds[k]) for k in input_names(model.config))).numpy()
        got = sess.run(["x0"], feeds)[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def add_grounding_arg(ap) -> None:
    """``--grounding WEIGHT MIN_CONFIDENCE``: prompt grounding written into the package."""
    ap.add_argument("--grounding", type=float, nargs=2, default=None,
                    metavar=("WEIGHT", "MIN_CONFIDENCE"),
                    help="prompt grounding written into the package (inference/understand.ground)")


def grounding_setting(args) -> dict | None:
    """The package's ``model.grounding`` from ``--grounding`` (None: off)."""
    g = getattr(args, "grounding", None)
    return None if not g else {"weight": g[0], "min_confidence": g[1], "captions": 16}


def bandai_data() -> dict:
    """The training-data entry of a package trained on the Bandai Namco data (CC BY-NC 4.0:
    the package is then non-commercial)."""
    return {"name": "Bandai Namco Research Motion Dataset", "license": "CC-BY-NC-4.0",
            "commercial_use": False,
            "attribution": "Bandai Namco Research Motion Dataset, Bandai Namco Research Inc."}


def train_labels(ds, split: str = "train") -> dict:
    """The manifest's ``labels``: the contents (mirrored ones too) and styles of the clips a
    model was trained on, so that 'Understood as' and grounding answer only what it learned
    (``inference.understand.known_labels``)."""
    contents, styles, pairs = set(), set(), set()
    for i in ds.indices(split):
        i = int(i)
        style = ds.clips[i]["style"]
        for m in (False, True):
            contents.add(ds.content(i, m))
            pairs.add((ds.content(i, m), style))
        styles.add(style)
    return {"content": sorted(contents), "style": sorted(styles),
            "pairs": [list(p) for p in sorted(pairs)],
            "note": "the contents and styles of the training clips (and mirror images), and "
                    "which content x style pairs have a clip"}


def package_manifest(kind: str, *, name, version, description, default, data_licence: bool,
                     feature_dim: int, te_manifest: dict, model: dict, training: dict,
                     metrics: dict | None = None, files: dict | None = None) -> dict:
    """The manifest fields every text-to-motion package of ours shares: kind, name, version,
    the licence (``data_licence``: trained on the Bandai Namco data, so non-commercial;
    False: synthetic data), skeleton, fps, representation, stats file, the text encoder
    (``te_manifest``: its manifest; name, version and model sha256 are required), then the
    kind's own ``model`` settings, ``training`` (its ``data`` list first) and ``metrics``."""
    data = [bandai_data()] if data_licence else []
    out = {
        "format_version": 1, "name": name, "kind": kind, "version": version,
        "default": default, "description": description,
        "commercial_use": not data_licence, "skeleton": "bandai-21", "fps": 20,
        "representation": {"name": "humanml3d-257", "feature_dim": feature_dim},
        "stats": "stats.npz",
        "text_encoder": {"name": te_manifest["name"], "version": te_manifest["version"],
                         "model_sha256": te_manifest["files"]["model.onnx"]["sha256"]},
        "model": model,
    }
    if files is not None:
        out["files"] = files
    out["training"] = {"data": data, **training}
    out["metrics"] = metrics or {}
    return out


def package_files(out: Path, paths: dict, mean, std) -> None:
    """Copy ``paths`` (``{name in the package: source file}``) into ``out`` and write the
    normalisation statistics ``stats.npz`` (mean/std float32)."""
    out.mkdir(parents=True, exist_ok=True)
    for fname, src in paths.items():
        if Path(src).resolve() != (out / fname).resolve():
            (out / fname).write_bytes(Path(src).read_bytes())
    np.savez(out / "stats.npz", mean=np.asarray(mean, np.float32), std=np.asarray(std, np.float32))


def save_torch_weights(model, path: Path, dtype: str = "float16") -> None:
    """``model``'s state dict for a package's PyTorch path, floats as ``dtype``."""
    import torch

    dt = {"float16": torch.float16, "float32": torch.float32}[dtype]
    torch.save({k: (v.detach().to(dt) if v.is_floating_point() else v.detach())
                for k, v in model.state_dict().items()}, path)


def write_package(out: Path, onnx_path: Path, cfg: DenoiserConfig, mean, std, te_manifest,
                  *, name, version, description, training: dict, metrics: dict | None = None,
                  default: bool = True, data_licence: bool = True, torch_model=None,
                  torch_dtype: str = "float16", guidance: float = 2.5,
                  grounding: dict | None = None, labels: dict | None = None) -> dict:
    """``grounding``: the package's prompt grounding (``inference/understand.ground``; None:
    off), tuned with ``training/tune_grounding.py`` on the dev prompts."""
    package_files(out, {"denoiser.onnx": onnx_path}, mean, std)
    if torch_model is not None:  # float16 state dict for the PyTorch path (comparison)
        save_torch_weights(torch_model, out / "denoiser.pt", torch_dtype)
    D, E = cfg.feature_dim, cfg.text_dim
    spec_in = [
        {"name": "x_t", "dtype": "float32", "shape": ["batch", "frames", D]},
        {"name": "t", "dtype": "int64", "shape": ["batch"]},
        {"name": "text", "dtype": "float32", "shape": ["batch", E]},
        {"name": "key_idx", "dtype": "int64", "shape": ["batch", "keys"]},
        {"name": "interp_left", "dtype": "int64", "shape": ["batch", "frames"]},
        {"name": "interp_w", "dtype": "float32", "shape": ["batch", "frames"]},
    ]
    if cfg.known_dim:
        spec_in += [{"name": n, "dtype": "float32", "shape": ["batch", "frames", cfg.known_dim]}
                    for n in ("known", "known_mask")]
    spec_out = [{"name": "x0", "dtype": "float32", "shape": ["batch", "frames", D]}]
    manifest = package_manifest(
        "smdm", name=name, version=version, description=description, default=default,
        data_licence=data_licence, feature_dim=D, te_manifest=te_manifest,
        model={"config": cfg.to_dict(), "prediction": "x0", "schedule": "cosine",
               "timesteps": core.TIMESTEPS, "key_fraction": core.KEY_FRACTION,
               "gamma": 0.1, "guidance": float(guidance), "steps": 50, "min_frames": 3,
               **({"grounding": dict(grounding)} if grounding else {})},
        files={"denoiser.onnx": {"inputs": spec_in, "outputs": spec_out, "opset": OPSET,
                                 "purpose": "one denoising step: x_t -> x0"},
               "stats.npz": {"purpose": "normalisation mean/std (257,)"}},
        training=training, metrics=metrics)
    if labels:
        manifest["labels"] = labels
    if torch_model is not None:
        manifest["files"]["denoiser.pt"] = {
            "optional": True, "purpose": f"{torch_dtype} PyTorch state dict of the same denoiser "
                                         "(backend='torch', for comparison; needs torch)"}
    files = {k: {kk: vv for kk, vv in v.items()} for k, v in manifest["files"].items()}
    path = write_manifest(out, manifest, files=files)
    return json.loads(path.read_text(encoding="utf-8"))


# =========================================================================== main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--work", default=None, help="checkpoints and logs (build/smdm/<name>)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keys", choices=("vw", "random"), default="vw")
    ap.add_argument("--no-lipschitz", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--ff", type=int, default=None)
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--lip-weight", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=None)
    distributed.add_args(ap)
    ap.add_argument("--dropout", type=float, default=None,
                    help="the denoiser's dropout (default: the config's, 0.1)")
    ap.add_argument("--log-every", type=int, default=50,
                    help="steps between log lines and history entries")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop at this step (the schedule still runs over --steps): ablations "
                         "compared with the main run's --snapshot-at weights")
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--snapshot-at", type=int, nargs="*", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export", default=None, help="write the package to this folder")
    ap.add_argument("--from-weights", default=None,
                    help="export these EMA weights (ema-<step>.pt) instead of training")
    ap.add_argument("--init-weights", default=None,
                    help="fine-tune: start from these weights (a package's denoiser.pt or an "
                         "ema-<step>.pt / checkpoint.pt); the config must match")
    ap.add_argument("--captions-per-pair", type=int, default=None,
                    help="train each (content, style) with this many of its caption variants "
                         "(deterministic draw; default all, cached in build/evaluator)")
    ap.add_argument("--balance", type=float, default=0.0,
                    help="sample clips with weight (clips of its content) ** -BALANCE: 0 "
                         "uniform, 0.5 sqrt rebalancing of rare contents, 1 equal per content")
    ap.add_argument("--known", type=float, default=0.0,
                    help="train with the animator's known keyframes (Fill Between, issue 16): "
                         "this share of the clips gets keys (known_dim > 0 in the package)")
    ap.add_argument("--guidance", type=float, default=2.5,
                    help="the package's default guidance scale (tune on the dev prompts)")
    add_grounding_arg(ap)
    ap.add_argument("--name", default="smdm-default")
    ap.add_argument("--version", default="1.0.0")
    args = ap.parse_args(argv)
    if args.known and args.keys != "vw":
        ap.error("--known needs --keys vw")
    if not 0.0 <= args.known <= 1.0:
        ap.error("--known is a share in [0, 1]")
    for k, v in CONFIGS[args.config].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.work is None:
        tag = args.config + ("-random" if args.keys == "random" else "") + (
            "-nolip" if args.no_lipschitz else "")
        args.work = str(DEFAULT_WORK / tag)
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = distributed.setup(args.device, amp=not args.no_amp, torch=torch)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    ds = _ds.load_dataset(args.data)
    from train_evaluator import text_cache

    te_dir = TEXT_ENCODER_DIR
    captions_of = pair_captions(args.captions_per_pair)
    # a drawn subset has its own cache folder (the evaluator's cache holds every variant)
    cache = DEFAULT_WORK / "text" if args.captions_per_pair else ROOT / "build" / "evaluator"
    with ctx.main_first():  # rank 0 fills the cache, the others read it
        _texts, text_emb, text_index = text_cache(ds, cache, te_dir, captions_of)
    t = time.perf_counter()
    data = TrainClips.from_dataset(ds, ds.indices("train"), text_index, captions_of,
                                   balance_power=args.balance)
    ctx.log(f"{len(data.lengths)} train clips (+ mirrors) ready in {time.perf_counter() - t:.0f} s")
    if args.from_weights:
        st = torch.load(args.from_weights, weights_only=False, map_location="cpu")
        cfg = DenoiserConfig.from_dict(st["config"])
        model = build_denoiser(torch, cfg)
        model.load_state_dict(st["ema"])
        step, n_params = st["step"], sum(p.numel() for p in model.parameters())
        history = []
    else:
        t_train = time.time()
        model, cfg, step, n_params, history = train(args, torch, data, text_emb, ctx=ctx)
        ctx.log(f"training done: step {step} in {(time.time() - t_train) / 60:.1f} min")
    ctx.close()
    if not args.export or not ctx.is_main:  # rank 0 exports
        return 0
    model.eval()
    onnx_path = work / "denoiser.onnx"
    export_onnx(torch, model, onnx_path)
    err = parity(torch, model, onnx_path)
    check_parity(err, f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")
    te_manifest = json.loads((te_dir / "manifest.json").read_text())
    training = {
        "command": train_command("train_smdm.py", argv), "seed": args.seed, "git_commit": git_commit(),
        "steps": step, "batch": args.batch, "lr": args.lr, "keys": args.keys,
        "lipschitz": not args.no_lipschitz, "cond_drop": args.cond_drop,
        "lip_weight": args.lip_weight, "ema": args.ema, "max_frames": args.max_frames,
        "init_weights": args.init_weights, "captions_per_pair": args.captions_per_pair,
        "balance": args.balance, "known": args.known,
        "parameters": n_params, "split": "train (+ mirror)", "dataset_version": ds.meta["version"],
        "parity_max_abs": err, "final_mse": history[-1]["mse"] if history else None,
    }
    desc = (f"sMDM ({cfg.layers}x{cfg.width}, {args.keys.upper()} keyframes"
            f"{'' if cfg.lipschitz else ', no Lipschitz'}), Bandai Namco, non-commercial")
    m = write_package(Path(args.export), onnx_path, cfg, ds.mean, ds.std, te_manifest,
                      name=args.name, version=args.version, description=desc, training=training,
                      torch_model=model, guidance=args.guidance,
                      grounding=grounding_setting(args), labels=train_labels(ds))
    log(f"package written: {args.export} ({sum(f['size'] for f in m['files'].values()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
