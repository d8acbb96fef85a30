# SPDX-License-Identifier: GPL-3.0-or-later
"""Train MotionLCM-V2 (VAE, MLD++ teacher, consistency distillation, motion ControlNet) and
export it as a model package (kind ``motionlcm``).

Build-time only (torch, onnxscript, onnxruntime). The networks are
``inference/motionlcm_net.py``; the runtime is ``inference/motionlcm.py``; ``docs/motionlcm.md``
says what follows the paper and what departs from it.

Stages, each resumable (``work/<stage>.pt`` every ``--checkpoint-minutes``; ``--resume``
continues it, a finished stage's ``work/<stage>-final.pt`` is kept and skipped)::

    vae      reconstruction MSE + KL (weight --kl) of the multi-token VAE with latent adapter;
             then the latent mean/std per token and dimension (the diffusion works on
             normalised latents)
    teacher  MLD++ latent diffusion: x0 prediction over the 1000-step cosine schedule (sMDM's),
             10 % of captions dropped for guidance; EMA weights
    distill  latent consistency distillation: student initialised from the teacher, guidance w
             sampled in --w-range (an input of the student), DDIM teacher step over --skip
             original steps with classifier-free guidance, target network = EMA of the student
             (--ema-target), pseudo-Huber loss (--huber-c)
    control  motion ControlNet on the frozen student: pelvis trajectory (dense in half of the
             samples, a few random frames in the others) → residuals; loss = latent MSE to the
             clean latent + --control-weight × pelvis error after decoding (m²)

Data: the train split and its mirror image (``train_smdm.TrainClips``: one length per batch,
random crops; captions from every template paraphrase), the shipped text encoder's embeddings.

On GPUs (``training/distributed.py``, ``docs/gpu.md``): ``--device cuda``, one GPU or under
``torchrun --nproc_per_node N`` (DistributedDataParallel in every stage, ``--batch`` the global
batch, bf16 autocast unless ``--no-amp``); the ``gpu`` config is the paper's sizes::

    torchrun --standalone --nproc_per_node 4 training/train_motionlcm.py --config gpu \
        --device cuda --seed 0 --resume --export build/motionlcm/gpu-package

Plan for the shipped model (see docs/motionlcm.md for the measured step times)::

    nohup .venv-train/bin/python training/train_motionlcm.py --config cpu --seed 0 --resume \\
        --threads 2 --export models/motionlcm-default > build/motionlcm/train.log 2>&1 &
"""
from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import train_smdm as ts  # noqa: E402  (sets up the sparse_motion import)
import distributed  # noqa: E402

from sparse_motion.inference import motionlcm_net as net  # noqa: E402
from sparse_motion.inference import smdm_core as core  # noqa: E402
from sparse_motion.inference.package import write_manifest  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402

STAGES = ("vae", "teacher", "distill", "control")
DEFAULT_WORK = ROOT / "build" / "motionlcm"
OPSET = ts.OPSET
KIND = "motionlcm"

CONFIGS = {
    # 2 CPU cores, <= 4 h for the four stages (docs/motionlcm.md: measured step times)
    "cpu": dict(vae=dict(width=128, enc_layers=3, dec_layers=3, heads=4, ff=256, tokens=8,
                         latent_dim=32),
                den=dict(width=256, layers=5, heads=4, ff=512),
                ctl=dict(traj_layers=1),
                batch=32, max_frames=200, w_range=(2.0, 8.0),
                steps=dict(vae=10000, teacher=8000, distill=3000, control=3000),
                lr=dict(vae=2e-4, teacher=2e-4, distill=1e-4, control=1e-4)),
    # 2 CPU cores, a wider VAE: the `cpu` VAE's reconstruction stopped at MSE 0.55 from step
    # 1,500 on (docs/motionlcm.md); twice the width, a layer more each side, no dropout
    "cpu-wide": dict(vae=dict(width=256, enc_layers=4, dec_layers=4, heads=4, ff=512, tokens=8,
                              latent_dim=32, dropout=0.0),
                     den=dict(width=256, layers=5, heads=4, ff=512),
                     ctl=dict(traj_layers=1),
                     batch=32, max_frames=200, w_range=(2.0, 8.0),
                     steps=dict(vae=6000, teacher=8000, distill=1500, control=1500),
                     lr=dict(vae=2e-4, teacher=2e-4, distill=1e-4, control=1e-4)),
    # one GPU: the paper's sizes (VAE 9+9 layers, 16 x 32 latent; denoiser 9 layers)
    "gpu": dict(vae=dict(width=256, enc_layers=9, dec_layers=9, heads=4, ff=1024, tokens=16,
                         latent_dim=32),
                den=dict(width=256, layers=9, heads=4, ff=1024),
                ctl=dict(traj_layers=9),
                batch=128, max_frames=200, w_range=(5.0, 15.0),
                steps=dict(vae=150000, teacher=150000, distill=30000, control=30000),
                lr=dict(vae=1e-4, teacher=1e-4, distill=2e-5, control=1e-4)),
    # tests and smoke runs
    "tiny": dict(vae=dict(width=32, enc_layers=1, dec_layers=1, heads=2, ff=64, tokens=4,
                          latent_dim=8, dropout=0.0),
                 den=dict(width=32, layers=3, heads=2, ff=64, dropout=0.0),
                 ctl=dict(traj_layers=1),
                 batch=16, max_frames=64, w_range=(1.0, 3.0),
                 steps=dict(vae=60, teacher=60, distill=30, control=40),
                 lr=dict(vae=3e-3, teacher=3e-3, distill=1e-3, control=2e-3)),
}

log = ts.log


# =========================================================================== helpers


class Budget:
    """Shared wall-clock deadline of one invocation (``--max-minutes``)."""

    def __init__(self, minutes):
        self.deadline = time.time() + minutes * 60 if minutes else None

    def over(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline


def _frozen(module):
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _ema_update(torch, ema, model, decay):
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)


def run_stage(stage, args, torch, model, ema, step_fn, *, ema_decay, budget, log_fn,
              ramp_ema=True, ctx=None, extra=None):
    """The training loop shared by the four stages: AdamW with warm-up and cosine decay,
    gradient clipping, EMA, time-based checkpoints, ``--resume``, the time budget (also KMM's
    stages: ``args.stages`` names a script's own stage list). Returns
    ``(ema, finished, history)``; ``step_fn(rng, step)`` returns ``(loss, {name: value})``.

    Several processes (``ctx``, a :class:`distributed.Context`; None: one process on the CPU):
    ``step_fn`` calls ``ctx.wrap(model)`` rather than ``model`` and runs under
    ``ctx.autocast()``, logged values are the mean over the ranks, rank 0 logs and
    writes the checkpoints (the unwrapped weights), and the time budget stops every rank at
    the same step.

    ``extra``: ``{name: object with state_dict/load_state_dict}`` kept in the checkpoint
    beside the model (e.g. a GAN's discriminator and its optimiser, which ``step_fn`` updates
    itself) and restored by ``--resume``."""
    ctx = ctx or distributed.setup("cpu", torch=torch)
    if not ctx.is_main:
        log_fn = ts._quiet
    work = Path(args.work)
    ckpt = work / f"{stage}.pt"
    steps, lr = args.stage_steps[stage], args.stage_lr[stage]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng([args.seed, getattr(args, "stages", STAGES).index(stage)])
    step, history = 0, []
    if args.resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=False, map_location="cpu")
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step, history = st["step"], st["history"]
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        for k, obj in (extra or {}).items():
            obj.load_state_dict(st["extra"][k])
        log_fn(f"{stage}: resumed at step {step}")

    def save():
        if not ctx.is_main:
            return
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(),
                    "opt": opt.state_dict(), "step": step, "history": history,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    **({"extra": {k: o.state_dict() for k, o in extra.items()}} if extra else {})},
                   tmp)
        os.replace(tmp, ckpt)

    n = sum(p.numel() for p in params)
    log_fn(f"{stage}: {n:,} trainable parameters, {steps} steps, batch {args.batch}")
    model.train()
    t0 = t_ckpt = time.time()
    run = {}
    while step < steps:
        for g in opt.param_groups:
            g["lr"] = ts.lr_at(step, steps, min(args.warmup, steps // 5), lr)
        with ctx.autocast():  # bf16 on CUDA; the losses come out in float32
            loss, parts = step_fn(rng, step)
        parts = {k: ctx.mean(v) for k, v in parts.items()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        d = min(ema_decay, (1 + step) / (10 + step)) if ramp_ema else ema_decay
        _ema_update(torch, ema, model, d)
        for k, v in parts.items():
            run[k] = v if k not in run else 0.95 * run[k] + 0.05 * v
        if step % args.log_every == 0 or step == steps:
            history.append({"step": step, **{k: round(v, 5) for k, v in run.items()}})
            log_fn(f"{stage} {step}/{steps} " + " ".join(f"{k} {v:.4f}" for k, v in run.items())
                   + f" {(time.time() - t0) / 60:.1f} min")
        if time.time() - t_ckpt > args.checkpoint_minutes * 60:
            save()
            t_ckpt = time.time()
        if ctx.mean(budget.over()) > 0 or (args.stop_at and step >= args.stop_at):
            break  # any rank out of time: all stop here
    save()
    return ema, step >= steps, history


def _batch(torch, data, rng, args, text_emb, cond_drop=0.0, ctx=None):
    """``(x, text, frame_idx, lengths)``: the global batch (drawn alike on every rank), this
    rank's slice of it on ``ctx.device`` (``ctx`` None: all of it, on the CPU)."""
    x, text, *_ = data.batch(rng, args.batch, args.max_frames, "random", cond_drop, text_emb)
    N = x.shape[1]
    if ctx is not None:
        x, text = ctx.shard(x), ctx.shard(text)
    dev = ctx.device if ctx is not None else "cpu"
    return (torch.from_numpy(x).to(dev), torch.from_numpy(text).to(dev),
            torch.arange(N, device=dev), torch.full((x.shape[0],), N, dtype=torch.int64, device=dev))


def _load_final(torch, work: Path, stage: str):
    path = work / f"{stage}-final.pt"
    return torch.load(path, weights_only=False, map_location="cpu") if path.is_file() else None


# =========================================================================== the stages


class TrainerBase:
    """What a trainer over one data set (``ts.TrainClips``) and caption embeddings sets up:
    ``args``, ``torch``, ``data``, ``text_emb``, ``ctx`` (``args.device``/``args.no_amp``
    when not given), ``dev``, ``log`` (quiet on ranks other than 0), ``work`` (made),
    ``budget`` (``args.max_minutes``) and ``history``."""

    def __init__(self, args, torch, data, text_emb, log_fn=log, ctx=None):
        self.args, self.torch, self.data, self.text_emb = args, torch, data, text_emb
        self.ctx = ctx or distributed.setup(getattr(args, "device", "cpu"),
                                            amp=not getattr(args, "no_amp", False), torch=torch)
        self.dev = self.ctx.device
        self.log = log_fn if self.ctx.is_main else ts._quiet
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.budget = Budget(args.max_minutes)
        self.history = {}


class Trainer(TrainerBase):
    """The four stages over one data set (``ts.TrainClips``) and caption embeddings."""

    def __init__(self, args, torch, data, text_emb, feat_mean, feat_std, log_fn=log, ctx=None):
        super().__init__(args, torch, data, text_emb, log_fn, ctx)
        self.vcfg = net.VaeConfig(feature_dim=data.feats[False][0].shape[1], **args.vae)
        self.dcfg = net.DenoiserConfig(tokens=self.vcfg.tokens, latent_dim=self.vcfg.latent_dim,
                                       text_dim=text_emb.shape[1], **args.den)
        self.ccfg = net.ControlConfig(**args.ctl)
        self.abar = torch.tensor(core.cosine_alphas_cumprod(core.TIMESTEPS), dtype=torch.float32,
                                 device=self.dev)
        self.feat_mean = torch.as_tensor(np.asarray(feat_mean, np.float32), device=self.dev)
        self.feat_std = torch.as_tensor(np.asarray(feat_std, np.float32), device=self.dev)
        self.layout = _feat.feature_layout()

    # --- shared pieces -------------------------------------------------------------------

    def student_config(self):
        return net.DenoiserConfig(**{**self.dcfg.to_dict(), "guidance_embed": True,
                                     "consistency": True})

    def vae(self, device=None):
        dev = device or self.dev
        st = _load_final(self.torch, self.work, "vae")
        vae = net.build_vae(self.torch, self.vcfg)
        vae.load_state_dict(st["model"])
        return _frozen(vae).to(dev), st["lat_mean"].to(dev), st["lat_std"].to(dev)

    def batch(self, rng, cond_drop=0.0):
        """This rank's slice of a global batch, on the training device."""
        return _batch(self.torch, self.data, rng, self.args, self.text_emb, cond_drop, self.ctx)

    def seed(self, stage):
        """Seed torch for ``stage`` (weights and noise): the same on every rank, so the
        weights start alike; call :meth:`rank_noise` once they are built."""
        self.torch.manual_seed(self.args.seed * 10 + STAGES.index(stage))

    def rank_noise(self, stage):
        """With several processes, each rank's own noise from here on (one process: unchanged)."""
        if self.ctx.distributed:
            self.torch.manual_seed(self.args.seed * 10 + STAGES.index(stage) + 1000 * self.ctx.rank)

    def latents(self, vae, lat, x, frame_idx, sample):
        mu, logvar = vae.encode(x, frame_idx)
        z = mu + self.torch.randn_like(mu) * self.torch.exp(0.5 * logvar) if sample else mu
        return (z - lat[0]) / lat[1]

    def noisy(self, z0, t):
        a = self.abar[t][:, None, None]
        return a.sqrt() * z0 + (1 - a).sqrt() * self.torch.randn_like(z0)

    def grid_t(self, rng, B):
        k = self.args.skip
        idx = rng.integers(0, core.TIMESTEPS // k, B)
        return self.torch.from_numpy((idx + 1) * k - 1).to(self.dev)

    def w(self, rng, B):
        lo, hi = self.args.w_range
        return self.torch.from_numpy(rng.uniform(lo, hi, B).astype(np.float32)).to(self.dev)

    def pelvis(self, x_norm):
        return net.root_trajectory(self.torch, x_norm * self.feat_std + self.feat_mean, self.layout)

    def finish(self, stage, model, history, **extra):
        if self.ctx.is_main:
            self.torch.save({"model": model.state_dict(), "history": history, **extra},
                            self.work / f"{stage}-final.pt")
        self.ctx.barrier()  # the next stage reads it on every rank
        self.history[stage] = history

    # --- stages ---------------------------------------------------------------------------

    def train_vae(self):
        torch, args = self.torch, self.args
        self.seed("vae")
        model = net.build_vae(torch, self.vcfg).to(self.dev)
        ema = _frozen(copy.deepcopy(model))
        self.rank_noise("vae")
        ddp = self.ctx.wrap(model)

        def step(rng, i):
            x, _text, fidx, _n = self.batch(rng)
            rec, mu, logvar = ddp(x, fidx)
            mse = ((rec - x) ** 2).mean()
            kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).mean()
            return mse + args.kl * kl, {"mse": float(mse.detach()), "kl": float(kl.detach())}

        ema, done, hist = run_stage("vae", args, torch, model, ema, step, ema_decay=args.ema,
                                    budget=self.budget, log_fn=self.log, ctx=self.ctx)
        if not done:
            return False
        # latent statistics (normalised latents for the diffusion stages)
        rng = np.random.default_rng([args.seed, 99])
        zs = []
        with torch.no_grad():
            for _ in range(args.stat_batches):  # the whole global batches, on every rank alike
                x, _t, fidx, _n = _batch(torch, self.data, rng, args, self.text_emb)
                x, fidx = x.to(self.dev), fidx.to(self.dev)
                zs.append(ema.encode(x, fidx)[0])
        z = torch.cat(zs)
        self.finish("vae", ema, hist, lat_mean=z.mean(0), lat_std=z.std(0).clamp_min(1e-3),
                    config=self.vcfg.to_dict())
        return True

    def train_teacher(self):
        torch, args = self.torch, self.args
        self.seed("teacher")
        vae, lm, ls = self.vae()
        model = net.build_denoiser(torch, self.dcfg).to(self.dev)
        ema = _frozen(copy.deepcopy(model))
        self.rank_noise("teacher")
        ddp = self.ctx.wrap(model)

        def step(rng, i):
            x, text, fidx, n = self.batch(rng, args.cond_drop)
            with torch.no_grad():
                z0 = self.latents(vae, (lm, ls), x, fidx, sample=True)
            t = torch.randint(0, core.TIMESTEPS, (len(x),)).to(self.dev)
            pred = ddp(self.noisy(z0, t), t, text, n)
            mse = ((pred - z0) ** 2).mean()
            return mse, {"mse": float(mse.detach())}

        ema, done, hist = run_stage("teacher", args, torch, model, ema, step, ema_decay=args.ema,
                                    budget=self.budget, log_fn=self.log, ctx=self.ctx)
        if done:
            self.finish("teacher", ema, hist, config=self.dcfg.to_dict())
        return done

    def train_distill(self):
        torch, args = self.torch, self.args
        self.seed("distill")
        vae, lm, ls = self.vae()
        teacher = net.build_denoiser(torch, self.dcfg)
        teacher.load_state_dict(_load_final(torch, self.work, "teacher")["model"])
        _frozen(teacher).to(self.dev)
        student = net.build_denoiser(torch, self.student_config())
        missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("w_mlp.") for k in missing), missing
        student.to(self.dev)
        target = _frozen(copy.deepcopy(student))
        self.rank_noise("distill")
        ddp = self.ctx.wrap(student)
        k = args.skip

        def step(rng, i):
            x, text, fidx, n = self.batch(rng)
            B = len(x)
            with torch.no_grad():
                z0 = self.latents(vae, (lm, ls), x, fidx, sample=True)
                t = self.grid_t(rng, B)
                t_prev = torch.clamp(t - k, min=0)
                w = self.w(rng, B)
                z_t = self.noisy(z0, t)
                both = teacher(torch.cat([z_t, z_t]), torch.cat([t, t]),
                               torch.cat([text, torch.zeros_like(text)]), torch.cat([n, n]))
                x0_c, x0_u = both[:B], both[B:]
                x0 = x0_u + w[:, None, None] * (x0_c - x0_u)
                a, ap = self.abar[t][:, None, None], self.abar[t_prev][:, None, None]
                eps = (z_t - a.sqrt() * x0) / (1 - a).sqrt()
                z_prev = ap.sqrt() * x0 + (1 - ap).sqrt() * eps
                tgt = target(z_prev, t_prev, text, n, w)
            pred = ddp(z_t, t, text, n, w)
            c = args.huber_c
            loss = (torch.sqrt((pred - tgt) ** 2 + c * c) - c).mean()
            return loss, {"huber": float(loss.detach())}

        target, done, hist = run_stage("distill", args, torch, student, target, step,
                                       ema_decay=args.ema_target, budget=self.budget,
                                       log_fn=self.log, ramp_ema=False, ctx=self.ctx)
        if done:
            self.finish("distill", target, hist, config=self.student_config().to_dict())
        return done

    def student(self, device=None):
        s = net.build_denoiser(self.torch, self.student_config())
        s.load_state_dict(_load_final(self.torch, self.work, "distill")["model"])
        return _frozen(s).to(device or self.dev)

    def control_mask(self, rng, B, N):
        mask = np.zeros((B, N), np.float32)
        for b in range(B):
            if rng.random() < 0.5:
                mask[b] = 1.0
            else:
                mask[b, rng.choice(N, size=int(rng.integers(1, max(2, N // 10) + 1)),
                                   replace=False)] = 1.0
        return self.torch.from_numpy(mask).to(self.dev)

    def train_control(self):
        torch, args = self.torch, self.args
        self.seed("control")
        vae, lm, ls = self.vae()
        decoder = _frozen(net.build_decoder_export(torch, vae, lm, ls))
        student = self.student()
        model = net.build_controlnet(torch, self.student_config(), self.ccfg)
        model.copy.load_state_dict(student.state_dict())
        model.to(self.dev)
        ema = _frozen(copy.deepcopy(model))
        self.rank_noise("control")
        ddp = self.ctx.wrap(model, find_unused=True)  # parts of the denoiser copy go unused

        def step(rng, i):
            x, text, fidx, n = self.batch(rng, args.control_cond_drop)
            B, N = x.shape[:2]
            with torch.no_grad():
                z0 = self.latents(vae, (lm, ls), x, fidx, sample=False)
                control = self.pelvis(x)
            t = self.grid_t(rng, B)
            w = self.w(rng, B)
            mask = self.control_mask(rng, B, N)
            z_t = self.noisy(z0, t)
            res = ddp(z_t, t, text, n, w, control, mask)
            pred = student(z_t, t, text, n, w, res)
            lat = ((pred - z0) ** 2).mean()
            err = ((self.pelvis(decoder(pred, fidx)) - control) * net.CONTROL_SCALE) ** 2
            ctl = (err.sum(-1) * mask).sum() / mask.sum()
            return lat + args.control_weight * ctl, {"latent": float(lat.detach()),
                                                     "pelvis_m2": float(ctl.detach())}

        ema, done, hist = run_stage("control", args, torch, model, ema, step, ema_decay=args.ema,
                                    budget=self.budget, log_fn=self.log, ctx=self.ctx)
        if done:
            self.finish("control", ema, hist, config=self.ccfg.to_dict())
        return done

    def run(self, stages=STAGES) -> bool:
        """Train the given stages in order (finished ones skipped with --resume); False when
        the time budget stopped it (resume later)."""
        for stage in stages:
            if self.args.resume and (self.work / f"{stage}-final.pt").is_file():
                self.history[stage] = _load_final(self.torch, self.work, stage)["history"]
                self.log(f"{stage}: finished earlier, kept")
                continue
            t0 = time.time()
            if not getattr(self, f"train_{stage}")():
                self.log(f"{stage}: time budget reached; continue with --resume")
                return False
            self.log(f"{stage}: done in {(time.time() - t0) / 60:.1f} min")
        return True

    # --- export ---------------------------------------------------------------------------

    def modules(self):
        """The exported parts in eval mode: decoder (on normalised latents), student, ControlNet."""
        vae, lm, ls = self.vae("cpu")
        decoder = _frozen(net.build_decoder_export(self.torch, vae, lm, ls))
        cn = net.build_controlnet(self.torch, self.student_config(), self.ccfg)
        cn.load_state_dict(_load_final(self.torch, self.work, "control")["model"])
        return decoder, self.student("cpu"), _frozen(cn)


def example_feeds(dcfg: net.DenoiserConfig, B: int, N: int, rng, layers_out=True) -> dict:
    """Random inputs of every exported part (numpy), for export and parity checks."""
    T, dl, d = dcfg.tokens, dcfg.latent_dim, dcfg.width
    mask = (rng.random((B, N)) < 0.3).astype(np.float32)
    return {
        "z": rng.standard_normal((B, T, dl)).astype(np.float32),
        "frame_idx": np.arange(N, dtype=np.int64),
        "z_t": rng.standard_normal((B, T, dl)).astype(np.float32),
        "t": rng.integers(0, core.TIMESTEPS, B).astype(np.int64),
        "text": rng.standard_normal((B, dcfg.text_dim)).astype(np.float32),
        "length": np.full(B, N, dtype=np.int64),
        "w": rng.uniform(1, 8, B).astype(np.float32),
        "residual": (0.1 * rng.standard_normal((B, dcfg.layers, T + 2, d))).astype(np.float32),
        "control": (100 * rng.standard_normal((B, N, 3))).astype(np.float32),
        "control_mask": mask,
    }


PARTS = {  # file: (module index in Trainer.modules(), input names, output name)
    "decoder.onnx": (0, net.DECODER_INPUTS, "x"),
    "denoiser.onnx": (1, net.DENOISER_INPUTS, "z0"),
    "controlnet.onnx": (2, net.CONTROLNET_INPUTS, "residual"),
}


def export_onnx(torch, modules, dcfg, out: Path) -> dict:
    """The three ONNX files in ``out`` (dynamic batch and frames)."""
    out.mkdir(parents=True, exist_ok=True)
    feeds = example_feeds(dcfg, 2, 40, np.random.default_rng(0))
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=2, max=4096)
    dims = {"z": {0: batch}, "frame_idx": {0: frames}, "z_t": {0: batch}, "t": {0: batch},
            "text": {0: batch}, "length": {0: batch}, "w": {0: batch}, "residual": {0: batch},
            "control": {0: batch, 1: frames}, "control_mask": {0: batch, 1: frames}}
    paths = {}
    for name, (i, inputs, output) in PARTS.items():
        example = tuple(torch.from_numpy(feeds[k]) for k in inputs)
        path = out / name
        torch.onnx.export(modules[i], example, str(path), dynamo=True, input_names=list(inputs),
                          output_names=[output], dynamic_shapes={k: dims[k] for k in inputs},
                          opset_version=OPSET, external_data=False, optimize=True)
        paths[name] = path
    return paths


def parity(torch, modules, dcfg, paths: dict, seed: int = 0) -> float:
    """Max |torch - onnxruntime| of every part over a few batch sizes and lengths."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    worst = 0.0
    for name, (i, inputs, output) in PARTS.items():
        sess = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
        for B, N in ((1, 17), (3, 120), (2, 200)):
            feeds = example_feeds(dcfg, B, N, rng)
            with torch.no_grad():
                ref = modules[i](*(torch.from_numpy(feeds[k]) for k in inputs)).numpy()
            got = sess.run([output], {k: feeds[k] for k in inputs})[0]
            worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def write_package(out: Path, trainer: Trainer, paths: dict, feat_mean, feat_std, te_manifest, *,
                  name, version, description, training: dict, data_licence=True, default=True,
                  metrics=None, grounding: dict | None = None) -> dict:
    """``out``: the three ONNX files, ``stats.npz`` and the manifest (through the package code)."""
    out.mkdir(parents=True, exist_ok=True)
    for fname, src in paths.items():
        if Path(src).resolve() != (out / fname).resolve():
            (out / fname).write_bytes(Path(src).read_bytes())
    np.savez(out / "stats.npz", mean=np.asarray(feat_mean, np.float32),
             std=np.asarray(feat_std, np.float32))
    a = trainer.args
    guidance = float(np.mean(a.w_range))
    data = []
    if data_licence:
        data.append({"name": "Bandai Namco Research Motion Dataset", "license": "CC-BY-NC-4.0",
                     "commercial_use": False, "attribution": _ds.CREDIT})
    manifest = {
        "format_version": 1, "name": name, "kind": KIND, "version": version, "default": default,
        "description": description, "commercial_use": not data_licence,
        "skeleton": "bandai-21", "fps": 20,
        "representation": {"name": "humanml3d-257", "feature_dim": trainer.vcfg.feature_dim},
        "stats": "stats.npz",
        "text_encoder": {"name": te_manifest["name"], "version": te_manifest["version"],
                         "model_sha256": te_manifest["files"]["model.onnx"]["sha256"]},
        "model": {"vae": trainer.vcfg.to_dict(), "denoiser": trainer.student_config().to_dict(),
                  "control": trainer.ccfg.to_dict(), "schedule": "cosine",
                  "timesteps": core.TIMESTEPS, "skip": a.skip, "w_range": list(a.w_range),
                  "guidance": guidance, "steps": 4, "key_fraction": core.KEY_FRACTION,
                  "min_frames": 10, "max_frames": a.max_frames, "control_units": "cm",
                  **({"grounding": dict(grounding)} if grounding else {})},
        "training": {"data": data, **training},
        "metrics": metrics or {},
    }
    files = {"decoder.onnx": {"purpose": "VAE decoder: normalised latent tokens -> normalised "
                                         "features"},
             "denoiser.onnx": {"purpose": "consistency step: z_t -> z0 (residual: ControlNet "
                                          "output, zeros without control)"},
             "controlnet.onnx": {"purpose": "motion ControlNet: pelvis trajectory (cm) and mask "
                                            "-> denoiser residuals"},
             "stats.npz": {"purpose": "feature normalisation mean/std (257,)"}}
    path = write_manifest(out, manifest, files=files)
    return json.loads(path.read_text(encoding="utf-8"))


# =========================================================================== main


def add_run_args(ap) -> None:
    """The options of a training run through :func:`run_stage`: ``--data``, ``--seed``,
    ``--threads``, ``--device``/``--no-amp``, ``--max-minutes``, ``--resume`` and
    ``--checkpoint-minutes``."""
    ap.add_argument("--data", default=str(ts.DEFAULT_DATA))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    distributed.add_args(ap)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (with a checkpoint) after this long; continue with --resume")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--stage", choices=STAGES + ("all",), default="all",
                    help="train up to and including this stage (all: the four)")
    ap.add_argument("--work", default=None, help="checkpoints (build/motionlcm/<config>)")
    add_run_args(ap)
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop every stage at this step (with a checkpoint), as if out of time")
    ap.add_argument("--steps", type=int, nargs=4, default=None, metavar=("VAE", "TEACHER",
                    "DISTILL", "CONTROL"), help="override the steps of the four stages")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--captions-per-pair", type=int, default=96,
                    help="captions per (content, style) pair, a fixed draw (0: every variant)")
    ap.add_argument("--balance", type=float, default=0.5,
                    help="clip sampling weight (clips of the content) ** -P (0: uniform)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ema-target", type=float, default=0.95, help="distillation target EMA")
    ap.add_argument("--kl", type=float, default=1e-4)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--skip", type=int, default=10, help="original steps per distillation step")
    ap.add_argument("--huber-c", type=float, default=0.5)
    ap.add_argument("--w-range", type=float, nargs=2, default=None)
    ap.add_argument("--control-weight", type=float, default=1.0)
    ap.add_argument("--control-cond-drop", type=float, default=0.25,
                    help="captions dropped in the control stage (the path must carry the motion)")
    ap.add_argument("--stat-batches", type=int, default=40)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--time-steps", type=int, default=None,
                    help="only time this many steps of every stage on data-shaped batches and "
                         "print the estimate of the full run (no training, nothing written)")
    ap.add_argument("--export", default=None, help="write the package to this folder")
    ap.add_argument("--name", default="motionlcm-default")
    ap.add_argument("--version", default="1.0.0")
    ts.add_grounding_arg(ap)
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.config]
    args.vae, args.den, args.ctl = dict(cfg["vae"]), dict(cfg["den"]), dict(cfg["ctl"])
    for k in ("batch", "max_frames", "w_range"):
        if getattr(args, k) is None:
            setattr(args, k, cfg[k])
    args.stage_steps = dict(zip(STAGES, args.steps)) if args.steps else dict(cfg["steps"])
    args.stage_lr = dict(cfg["lr"])
    if args.work is None:
        args.work = str(DEFAULT_WORK / args.config)
    return args


def time_steps(trainer: Trainer, n: int, log_fn=log) -> dict:
    """Seconds per step of each stage (median over ``n`` steps after a warm-up step) on the
    real batches, and the estimated hours of the full run. Trains throw-away copies in a
    temporary folder."""
    import tempfile

    args = trainer.args
    saved = (args.work, dict(args.stage_steps), args.resume, args.log_every, args.stat_batches,
             trainer.log)
    per = {}
    with tempfile.TemporaryDirectory() as tmp:
        args.work, trainer.work, args.resume = tmp, Path(tmp), False
        args.stage_steps = {s: n + 1 for s in STAGES}
        args.log_every, args.stat_batches = 1, 1
        for stage in STAGES:
            stamps = []
            trainer.log = lambda msg, _s=stamps, _p=f"{stage} ": (
                _s.append(time.perf_counter()) if msg.startswith(_p) else None)
            getattr(trainer, f"train_{stage}")()
            per[stage] = float(np.median(np.diff(stamps)))
            log_fn(f"{stage}: {per[stage]:.3f} s/step (batch {args.batch})")
    (args.work, args.stage_steps, args.resume, args.log_every, args.stat_batches,
     trainer.log) = saved
    trainer.work = Path(args.work)
    hours = sum(per[s] * args.stage_steps[s] for s in STAGES) / 3600
    log_fn(f"estimated full run: {hours:.2f} h for steps {args.stage_steps}")
    return {"seconds_per_step": per, "hours": hours}


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = distributed.setup(args.device, amp=not args.no_amp, torch=torch)
    ds = _ds.load_dataset(args.data)
    if args.time_steps:  # the caption embeddings do not change the cost of a step
        text_emb, text_index = np.zeros((1, 384), np.float32), collections.defaultdict(int)
    else:
        from train_evaluator import text_cache

        # the caption generator's several hundred variants per pair: a fixed draw of
        # --captions-per-pair of them (sMDM's draw, sharing its embedding cache)
        captions_of = ts.pair_captions(args.captions_per_pair)
        cache = ts.DEFAULT_WORK / "text" if args.captions_per_pair else ROOT / "build" / "evaluator"
        with ctx.main_first():  # rank 0 fills the cache, the others read it
            _t, text_emb, text_index = text_cache(ds, cache, ts.TEXT_ENCODER_DIR, captions_of)
    t = time.perf_counter()
    data = ts.TrainClips.from_dataset(ds, ds.indices("train"), text_index,
                                      ts.pair_captions(args.captions_per_pair),
                                      balance_power=args.balance)
    ctx.log(f"{len(data.lengths)} train clips (+ mirrors) ready in {time.perf_counter() - t:.0f} s")
    trainer = Trainer(args, torch, data, text_emb, ds.mean, ds.std, ctx=ctx)
    if args.time_steps:
        time_steps(trainer, args.time_steps)
        return 0
    stages = STAGES if args.stage == "all" else STAGES[:STAGES.index(args.stage) + 1]
    done = trainer.run(stages)
    ctx.close()
    if not done or not args.export or not ctx.is_main:  # rank 0 exports
        return 0
    return export(trainer, args, torch, ds.mean, ds.std, argv,
                  data_meta={"dataset_version": ds.meta["version"], "split": "train (+ mirror)"})


def export(trainer, args, torch, feat_mean, feat_std, argv=None, *, data_licence=True,
           data_meta=None, command=None, description=None, default=True, log_fn=log) -> int:
    modules = trainer.modules()
    paths = export_onnx(torch, modules, trainer.dcfg, Path(args.work) / "onnx")
    err = parity(torch, modules, trainer.dcfg, paths)
    ts.check_parity(err, 'exported ONNX', log_fn)
    te_manifest = json.loads((ts.TEXT_ENCODER_DIR / "manifest.json").read_text())
    if command is None:
        command = ts.train_command("train_motionlcm.py", argv)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in zip(PARTS, modules)}
    training = {"command": command, "seed": args.seed, "git_commit": ts.git_commit(),
                "config": args.config, "steps": args.stage_steps, "batch": args.batch,
                "lr": args.stage_lr, "w_range": list(args.w_range), "skip": args.skip,
                "huber_c": args.huber_c, "ema_target": args.ema_target, "kl": args.kl,
                "control_weight": args.control_weight, "max_frames": args.max_frames,
                "captions_per_pair": getattr(args, "captions_per_pair", None),
                "balance": getattr(args, "balance", 0.0),
                "parameters": params, "parity_max_abs": err,
                "final": {s: (h[-1] if h else None) for s, h in trainer.history.items()},
                **(data_meta or {})}
    v, d = trainer.vcfg, trainer.dcfg
    desc = description or (f"MotionLCM-V2 ({v.tokens}x{v.latent_dim} latent, {d.layers}x{d.width} "
                           "denoiser): 1-4 steps, pelvis path control; Bandai Namco, non-commercial")
    m = write_package(Path(args.export), trainer, paths, feat_mean, feat_std, te_manifest,
                      name=args.name, version=args.version, description=desc, training=training,
                      data_licence=data_licence, default=default,
                      grounding=ts.grounding_setting(args))
    log_fn(f"package written: {args.export} "
           f"({sum(f['size'] for f in m['files'].values()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
