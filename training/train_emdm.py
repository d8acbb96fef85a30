# SPDX-License-Identifier: GPL-3.0-or-later
"""Train EMDM (a conditional denoising diffusion GAN: a few large denoising steps, each learned
adversarially) and export it as a model package (kind ``emdm``).

Build-time only (the training venv: torch, onnx, onnxscript, onnxruntime). The networks and
the grid maths are ``inference/emdm_net.py``; the runtime is ``inference/emdm.py``;
``docs/emdm.md`` says what follows the paper and what departs from it.

The objective (EMDM, after Xiao et al.'s denoising diffusion GAN), over ``--steps-t`` T levels
of the 1000-step cosine schedule (T = 10: timesteps 99, 199, …, 999; level 0 = clean):

* **discriminator step**: a level k ∈ 1..T per sample; the real pair is x_{k-1} ~ q(x_{k-1} |
  x0) and x_k ~ q(x_k | x_{k-1}); the fake pair is x'_{k-1} ~ q(x_{k-1} | x_k, G(x_k, t_k,
  text, z)) (the DDPM posterior around the generator's x0) with the same x_k.
  D(x_{k-1}, x_k, t_k, text) is trained with the softplus GAN loss, plus the R1 penalty
  ``--r1`` γ/2·‖∇_{x_{k-1}} D(real)‖² every ``--r1-every`` steps (lazy, scaled by it);
* **generator step** (a new level, noise and z on the same clips): softplus(−D(fake))
  × ``--adv-weight`` plus the geometric losses on its x0 prediction (``--no-geometric``: none,
  the paper's ablation): reconstruction (MSE of the normalised features), joint positions
  (world positions from the features, differentiable, in m), velocities (of those positions,
  m/s) and foot contact (speed of the foot joints where the clip's contact label is on), each
  with its ``--*-weight``; plus sMDM's small Lipschitz term of the input/output MLPs.
  10 % of captions dropped (zeros) for classifier-free guidance; the discriminator sees the
  same text.

Stabilisers: R1, AdamW(β = 0.5, 0.9) for the discriminator, gradient clipping of the
generator, EMA of the generator (exported). Training runs through
``train_motionlcm.run_stage`` (warm-up + cosine decay, checkpoints every
``--checkpoint-minutes`` with the discriminator and its optimiser, ``--resume``,
``--max-minutes``, ``--stop-at``; the history of every loss in the checkpoint);
``--snapshot-every N`` keeps the EMA generator every N steps (``work/ema-<step>.pt``):
GAN training is not monotone, so the package to ship is the snapshot the evaluator likes
best — export each with ``--from-weights work/ema-<step>.pt --export DIR`` and compare them
with ``training/evaluate.py`` (``docs/emdm.md``). ``--init-from`` starts the generator from a
denoiser of the same sizes (the ``cpu`` and ``gpu`` configs: the shipped sMDM's
``denoiser.pt``, whose layers the sparse generator shares; ``none``: from scratch).

Data: the train split and its mirror image, sMDM 1.1.0's captions (``--captions-per-pair``,
``--balance``) and its caption-embedding cache (``train_kmm.load_data``).

Then ``--export``: ``generator.onnx`` (inputs x_t, t, text, z and, for the sparse generator,
sMDM's key_idx, interp_left, interp_w; output x0; dynamic batch, frames and keys; exported
unoptimised so that its named weights also load the PyTorch path), torch vs onnxruntime
parity (refused above 1e-3), ``stats.npz`` and the manifest.

On GPUs (``training/distributed.py``): ``--device cuda``, or ``torchrun --nproc_per_node N``
(the generator in DistributedDataParallel, the discriminator's gradients averaged by hand:
DDP does not support the R1 gradient with respect to its input; ``--batch`` is the global
batch; bf16 autocast unless ``--no-amp``)::

    torchrun --standalone --nproc_per_node 4 training/train_emdm.py --config gpu --device cuda \\
        --seed 0 --resume --snapshot-every 5000 --export build/emdm/gpu-package

The shipped model on 2 CPU cores (``--config cpu``; the exact command is in
``models/emdm-default/manifest.json`` and ``docs/emdm.md``; ``--time-steps 20`` times a step
without training).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import train_smdm as ts  # noqa: E402  (sets up the sparse_motion import)
import train_motionlcm as tlcm  # noqa: E402
import distributed  # noqa: E402

from sparse_motion.inference import emdm_net as net  # noqa: E402
from sparse_motion.inference import smdm_core as core  # noqa: E402
from sparse_motion.inference.package import write_manifest  # noqa: E402
from sparse_motion.motion import canonical as _canon  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402

KIND = "emdm"
STAGE = "gan"
DEFAULT_WORK = ROOT / "build" / "emdm"
OPSET = ts.OPSET
FPS = 20
log = ts.log

SMDM_DEFAULT = "models/smdm-default/denoiser.pt"
CONFIGS = {
    # 2 CPU cores, <= 3 h: the generator is sMDM default's denoiser (attention over the
    # keyframe tokens; + the z MLP), started from the shipped sMDM (--init-from)
    "cpu": dict(gen=dict(width=256, layers=4, heads=4, ff=1024, dropout=0.1, sparse=True),
                disc=dict(width=128, layers=2, heads=4, ff=256),
                batch=32, max_frames=200, steps=600, lr=5e-5, lr_d=1e-4,
                init_from=SMDM_DEFAULT),
    # the first CPU design: a dense 4 x 128 generator (attention over every frame) from
    # scratch; 3,000 steps gave FID 0.47 (docs/emdm.md), kept for the record
    "cpu-dense": dict(gen=dict(width=128, layers=4, heads=4, ff=256, dropout=0.1),
                      disc=dict(width=128, layers=2, heads=4, ff=256),
                      batch=32, max_frames=200, steps=10000, lr=2e-4, lr_d=1e-4, init_from=None),
    # one GPU or several: the same sparse generator, a larger discriminator and batch
    "gpu": dict(gen=dict(width=256, layers=4, heads=4, ff=1024, dropout=0.1, sparse=True),
                disc=dict(width=256, layers=3, heads=4, ff=512),
                batch=128, max_frames=200, steps=20000, lr=5e-5, lr_d=1e-4,
                init_from=SMDM_DEFAULT),
    # tests and smoke runs (the generator has tiny sMDM's sizes)
    "tiny": dict(gen=dict(width=64, layers=2, heads=2, ff=128, dropout=0.0, sparse=True),
                 disc=dict(width=32, layers=1, heads=2, ff=64),
                 batch=16, max_frames=64, steps=400, lr=2e-3, lr_d=1e-3, init_from=None),
}


@contextlib.contextmanager
def _no_param_grads(module):
    """``module``'s parameters need no gradient inside the block (the generator's loss goes
    through the discriminator without training it)."""
    ps = [p for p in module.parameters() if p.requires_grad]
    for p in ps:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in ps:
            p.requires_grad_(True)


def _math_attention(on: bool, torch):
    """PyTorch's reference attention (the fused CPU/GPU kernels have no double backward, which
    the R1 penalty needs)."""
    if not on:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


# =========================================================================== training


class Trainer(tlcm.TrainerBase):
    """The GAN over one data set (``ts.TrainClips``) and caption embeddings."""

    def __init__(self, args, torch, data, text_emb, feat_mean, feat_std, log_fn=log, ctx=None):
        super().__init__(args, torch, data, text_emb, log_fn, ctx)
        D, E = data.feats[False][0].shape[1], text_emb.shape[1]
        self.gcfg = net.GeneratorConfig(feature_dim=D, text_dim=E, **args.gen)
        self.dcfg = net.DiscriminatorConfig(feature_dim=D, text_dim=E, **args.disc)
        T = args.steps_t
        abar = net.level_alphas(T)

        def tensor(a, dtype=torch.float32):
            return torch.as_tensor(np.asarray(a), dtype=dtype, device=self.dev)

        self.t_grid = tensor(net.grid_timesteps(T), torch.int64)         # level k at [k - 1]
        self.abar = tensor(abar)                                         # levels 0..T
        self.post = tensor(np.stack(net.posterior_coefficients(abar[:-1], abar[1:])))  # (3, T)
        self.feat_mean, self.feat_std = tensor(feat_mean), tensor(feat_std)
        self.layout = _feat.feature_layout()
        self.feet = tensor(_canon.SKELETON.foot_joints, torch.int64)
        self.history = []
        self.generator = None

    # --- the diffusion pieces (level k per sample, 1..T) ----------------------------------

    def levels(self, rng):
        """This rank's slice of a global draw of levels k."""
        k = self.ctx.shard(rng.integers(1, self.args.steps_t + 1, self.args.batch))
        return self.torch.from_numpy(k).to(self.dev)

    def _noised(self, x, a):
        """``sqrt(a)·x + sqrt(1 - a)·ε`` with ``a`` (B,) per sample."""
        a = a[:, None, None]
        return a.sqrt() * x + (1 - a).sqrt() * self.torch.randn_like(x)

    def real_pair(self, x0, k):
        """``(x_{k-1} ~ q(x_{k-1} | x0), x_k ~ q(x_k | x_{k-1}))``."""
        x_prev = self._noised(x0, self.abar[k - 1])
        return x_prev, self._noised(x_prev, self.abar[k] / self.abar[k - 1])

    def posterior(self, x0, x_k, k):
        """A draw of ``q(x_{k-1} | x_k, x0)``."""
        c0, ck, sigma = (c[k - 1][:, None, None] for c in self.post)
        return c0 * x0 + ck * x_k + sigma * self.torch.randn_like(x_k)

    def z(self, B):
        return self.torch.randn(B, self.gcfg.z_dim, device=self.dev)

    def batch(self, rng):
        """``(x0, text, keys)``: this rank's slice of the global batch on the device; ``keys``
        the sparse generator's keyframe inputs (the real clip's Visvalingam-Whyatt keyframes,
        as sMDM trains) or () for the dense one."""
        args, torch, ctx = self.args, self.torch, self.ctx
        x, text, *kf = self.data.batch(rng, args.batch, args.max_frames, "vw", args.cond_drop,
                                      self.text_emb)
        kf = kf if self.gcfg.sparse else []
        return tuple(torch.from_numpy(ctx.shard(a)).to(self.dev) for a in (x, text)) + (
            tuple(torch.from_numpy(ctx.shard(a)).to(self.dev) for a in kf),)

    def geometric(self, pred, x0) -> dict:
        """The geometric losses of a predicted x0 against the real one (normalised features)."""
        torch = self.torch
        pred = pred.float()
        rec = ((pred - x0) ** 2).mean()
        lay = self.layout
        p = net.joint_positions(torch, pred * self.feat_std + self.feat_mean, lay) * 0.01
        with torch.no_grad():
            raw = x0 * self.feat_std + self.feat_mean
            r = net.joint_positions(torch, raw, lay) * 0.01
            contact = (raw[:, 1:, lay["foot_contacts"]] > 0.5).float()
        pos = ((p - r) ** 2).sum(-1).mean()
        vp, vr = (p[:, 1:] - p[:, :-1]) * FPS, (r[:, 1:] - r[:, :-1]) * FPS
        vel = ((vp - vr) ** 2).sum(-1).mean()
        foot_speed2 = (vp[:, :, self.feet] ** 2).sum(-1)
        foot = (foot_speed2 * contact).sum() / contact.sum().clamp_min(1.0)
        return {"rec": rec, "pos": pos, "vel": vel, "foot": foot}

    # --- the two updates ------------------------------------------------------------------

    def d_step(self, gen, disc, opt_d, rng, step, x0, text, keys) -> dict:
        torch, args = self.torch, self.args
        F = torch.nn.functional
        B = len(x0)
        k = self.levels(rng)
        t = self.t_grid[k - 1]
        x_prev, x_k = self.real_pair(x0, k)
        with torch.no_grad():
            fake = self.posterior(gen(x_k, t, text, self.z(B), *keys), x_k, k)
        r1 = args.r1 > 0 and step % args.r1_every == 0
        real = x_prev.detach().requires_grad_(r1)
        with _math_attention(r1, torch):
            logits = disc(torch.cat([real, fake.to(real.dtype)]), torch.cat([x_k, x_k]),
                          torch.cat([t, t]), torch.cat([text, text])).float()
        l_real, l_fake = F.softplus(-logits[:B]).mean(), F.softplus(logits[B:]).mean()
        loss = l_real + l_fake
        parts = {"d_real": float(l_real.detach()), "d_fake": float(l_fake.detach())}
        if r1:
            (g,) = torch.autograd.grad(logits[:B].sum(), real, create_graph=True)
            pen = g.float().pow(2).flatten(1).sum(1).mean()
            loss = loss + 0.5 * args.r1 * args.r1_every * pen
            parts["r1"] = float(pen.detach())
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.ctx.average_gradients(disc)
        opt_d.step()
        return parts

    def g_loss(self, gen, ddp_g, disc, rng, x0, text, keys):
        torch, args = self.torch, self.args
        k = self.levels(rng)
        t = self.t_grid[k - 1]
        x_k = self._noised(x0, self.abar[k])
        pred = ddp_g(x_k, t, text, self.z(len(x0)), *keys)
        with _no_param_grads(disc):
            adv = torch.nn.functional.softplus(-disc(self.posterior(pred, x_k, k), x_k, t,
                                                     text).float()).mean()
        geo = self.geometric(pred, x0)
        loss = args.adv_weight * adv + args.lip_weight * gen.lipschitz_loss()
        if not args.no_geometric:
            loss = loss + sum(getattr(args, f"{n}_weight") * v for n, v in geo.items())
        return loss, {"g_adv": float(adv.detach()), **{n: float(v.detach()) for n, v in geo.items()}}

    # --- the loop -------------------------------------------------------------------------

    def build(self):
        """``(generator, discriminator, EMA generator)`` on the training device; the same
        weights on every rank, then each rank's own noise."""
        torch, args = self.torch, self.args
        torch.manual_seed(args.seed * 10 + 7)
        gen = net.build_generator(torch, self.gcfg)
        disc = net.build_discriminator(torch, self.dcfg)
        if args.init_from:
            init_from(torch, gen, args.init_from, self.log)
        gen.to(self.dev), disc.to(self.dev)
        ema = tlcm._frozen(copy.deepcopy(gen))
        if self.ctx.distributed:
            torch.manual_seed(args.seed * 10 + 7 + 1000 * self.ctx.rank)
        return gen, disc, ema

    def snapshot(self, ema, step: int) -> None:
        n = self.args.snapshot_every
        if n and step and step % n == 0 and self.ctx.is_main:
            self.torch.save({"ema": ema.state_dict(), "config": self.gcfg.to_dict(),
                             "step": step, "steps_t": self.args.steps_t},
                            self.work / f"ema-{step:06d}.pt")

    def train(self) -> bool:
        """Train (or resume); False when the time budget stopped it (resume later)."""
        torch, args, ctx = self.torch, self.args, self.ctx
        final = self.work / f"{STAGE}-final.pt"
        if args.resume and final.is_file():
            st = self.load_weights(final)
            self.history = st.get("history", [])
            self.log(f"{STAGE}: finished earlier, kept")
            return True
        gen, disc, ema = self.build()
        opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr_d, betas=(0.5, 0.9),
                                  weight_decay=0.0)
        ddp_g = ctx.wrap(gen)
        steps = args.stage_steps[STAGE]
        log_fn = self.log
        self.log(f"generator {sum(p.numel() for p in gen.parameters()):,} parameters, "
                 f"discriminator {sum(p.numel() for p in disc.parameters()):,}; T = "
                 f"{args.steps_t} (timesteps {net.grid_timesteps(args.steps_t).tolist()}), "
                 f"geometric losses {'off' if args.no_geometric else 'on'}; {ctx.reason}")

        def step_fn(rng, step):
            self.snapshot(ema, step)
            for g in opt_d.param_groups:
                g["lr"] = ts.lr_at(step, steps, min(args.warmup, steps // 5), args.lr_d)
            x0, text, keys = self.batch(rng)
            parts = self.d_step(gen, disc, opt_d, rng, step, x0, text, keys)
            loss, g_parts = self.g_loss(gen, ddp_g, disc, rng, x0, text, keys)
            return loss, {**parts, **g_parts}

        ema, done, hist = tlcm.run_stage(STAGE, args, torch, gen, ema, step_fn,
                                         ema_decay=args.ema, budget=self.budget, log_fn=log_fn,
                                         ctx=ctx, extra={"disc": disc, "disc_opt": opt_d})
        self.history = hist
        self.generator = tlcm._frozen(copy.deepcopy(ema).cpu())
        if done and ctx.is_main:
            torch.save({"ema": ema.state_dict(), "config": self.gcfg.to_dict(), "step": steps,
                        "steps_t": args.steps_t, "history": hist}, final)
        ctx.barrier()
        return done

    def load_weights(self, path) -> dict:
        """Use the EMA generator of ``path`` (``ema-<step>.pt`` or ``gan-final.pt``)."""
        st = self.torch.load(path, weights_only=False, map_location="cpu")
        if st.get("steps_t", self.args.steps_t) != self.args.steps_t:
            raise SystemExit(f"{path} was trained with --steps-t {st['steps_t']}, not "
                             f"{self.args.steps_t}")
        self.gcfg = net.GeneratorConfig.from_dict(st["config"])
        gen = net.build_generator(self.torch, self.gcfg)
        gen.load_state_dict(st["ema"])
        self.generator = tlcm._frozen(gen)
        return st


def init_from(torch, gen, path, log_fn=log) -> int:
    """Load the tensors of ``path`` (sMDM's ``denoiser.pt``, or an EMA checkpoint) whose names
    the generator shares (every part but the z MLP); their sizes must match."""
    st = ts.load_init_weights(torch, path)
    own = gen.state_dict()
    shared = [k for k in st if k in own]
    wrong = [k for k in shared if own[k].shape != st[k].shape]
    if not shared or wrong:
        k = (wrong or list(own))[0]
        raise SystemExit(f"--init-from {path}: its weights do not fit this generator (e.g. "
                         f"{k}: {tuple(st[k].shape) if k in st else 'absent'} vs "
                         f"{tuple(own[k].shape)}): give the generator the same sizes (sMDM "
                         "default: --config gpu)")
    gen.load_state_dict({k: st[k] for k in shared}, strict=False)
    log_fn(f"generator initialised from {path}: {len(shared)} of {len(own)} tensors "
           f"(new: {', '.join(sorted({k.split('.')[0] for k in own if k not in st}))})")
    return len(shared)


def time_steps(trainer: Trainer, n: int, log_fn=log) -> dict:
    """Seconds per training step (mean and median over ``n`` steps after a warm-up step; the
    length varies per batch) on real batches, and the hours of the configured run (from the
    mean); throw-away weights in a temporary folder."""
    args = trainer.args
    saved = (args.work, dict(args.stage_steps), args.resume, args.log_every, args.snapshot_every,
             trainer.log, trainer.work)
    stamps = []
    with tempfile.TemporaryDirectory() as tmp:
        args.work, trainer.work, args.resume = tmp, Path(tmp), False
        args.stage_steps, args.log_every, args.snapshot_every = {STAGE: n + 1}, 1, 0
        trainer.log = lambda msg: (stamps.append(time.perf_counter())
                                   if msg.startswith(STAGE + " ") else None)
        trainer.train()
    (args.work, args.stage_steps, args.resume, args.log_every, args.snapshot_every, trainer.log,
     trainer.work) = saved
    d = np.diff(stamps)
    per, med = float(np.mean(d)), float(np.median(d))
    hours = per * args.stage_steps[STAGE] / 3600
    log_fn(f"{per:.3f} s/step mean, {med:.3f} median, over {len(d)} steps (batch {args.batch}, "
           f"lengths drawn up to {args.max_frames} frames, T = {args.steps_t}); "
           f"{args.stage_steps[STAGE]} steps: {hours:.2f} h")
    return {"seconds_per_step": per, "median": med, "hours": hours}


# =========================================================================== export


def example_feeds(cfg: net.GeneratorConfig, B: int, N: int, rng) -> dict:
    feeds = {"x_t": rng.standard_normal((B, N, cfg.feature_dim)).astype(np.float32),
             "t": rng.integers(0, 1000, B).astype(np.int64),
             "text": rng.standard_normal((B, cfg.text_dim)).astype(np.float32),
             "z": rng.standard_normal((B, cfg.z_dim)).astype(np.float32)}
    if cfg.sparse:
        K = core.key_count(N)
        feeds.update(zip(net.KEY_INPUTS, core.interpolation_batch(
            [core.random_keys(N, K, rng) for _ in range(B)], N)))
    return feeds


def export_onnx(torch, gen, path: Path) -> Path:
    """``generator.onnx``: x_t, t, text, z (+ the keyframe inputs) -> x0, dynamic batch, frames
    and keyframes. Unoptimised, so every weight keeps its name: the PyTorch path reads them
    from this file (``runtime.state_from_onnx``) and the package holds one copy."""
    gen.eval()
    names = net.input_names(gen.config)
    feeds = example_feeds(gen.config, 2, 40, np.random.default_rng(0))
    batch = torch.export.Dim("batch", min=1, max=1024)
    frames = torch.export.Dim("frames", min=3, max=100000)
    dyn = {"x_t": {0: batch, 1: frames}, "t": {0: batch}, "text": {0: batch}, "z": {0: batch}}
    if gen.config.sparse:
        dyn.update({"key_idx": {0: batch, 1: torch.export.Dim("keys", min=2, max=100000)},
                    "interp_left": {0: batch, 1: frames}, "interp_w": {0: batch, 1: frames}})
    torch.onnx.export(gen, tuple(torch.from_numpy(feeds[k]) for k in names), str(path),
                      dynamo=True, input_names=list(names), output_names=["x0"],
                      dynamic_shapes=dyn, opset_version=OPSET, external_data=False,
                      optimize=False)
    return path


def parity(torch, gen, path: Path, seed: int = 0) -> float:
    """Max |torch - onnxruntime| over a few batch sizes and lengths."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for B, N in ((1, 17), (2, 120), (3, 200)):
        feeds = example_feeds(gen.config, B, N, rng)
        with torch.no_grad():
            ref = gen(*(torch.from_numpy(feeds[k]) for k in net.input_names(gen.config))).numpy()
        worst = max(worst, float(np.abs(ref - sess.run(["x0"], feeds)[0]).max()))
    return worst


def write_package(out: Path, onnx_path: Path, gen, mean, std, te_manifest, *, name, version,
                  description, training: dict, steps_t: int, guidance: float, max_frames: int,
                  backend: str = "auto", data_licence=True, default=True, metrics=None,
                  grounding: dict | None = None) -> dict:
    """``out``: ``generator.onnx`` (its weights serve the PyTorch path too), ``stats.npz``,
    the manifest."""
    ts.package_files(out, {"generator.onnx": onnx_path}, mean, std)
    cfg = gen.config
    manifest = ts.package_manifest(
        KIND, name=name, version=version, description=description, default=default,
        data_licence=data_licence, feature_dim=cfg.feature_dim, te_manifest=te_manifest,
        model={"generator": cfg.to_dict(), "prediction": "x0", "schedule": "cosine",
               "timesteps": 1000, "steps_t": int(steps_t),
               "grid": net.grid_timesteps(steps_t).tolist(), "steps": int(steps_t),
               "guidance": float(guidance), "key_fraction": 0.2, "min_frames": 10,
               "max_frames": int(max_frames), "backend": backend,
               **({"grounding": dict(grounding)} if grounding else {})},
        files={"generator.onnx": {"purpose": "one EMDM step: x_t, t, text, z (+ keyframes) "
                                             "-> x0; its named weights also load the PyTorch "
                                             "path (needs torch and onnx)"},
               "stats.npz": {"purpose": "feature normalisation mean/std (257,)"}},
        training=training, metrics=metrics)
    path = write_manifest(out, manifest)
    return json.loads(path.read_text(encoding="utf-8"))


def _in_repo(path):
    """``path`` relative to the repository when inside it (no machine path in a manifest)."""
    if not path:
        return path
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name


def export(trainer, args, torch, feat_mean, feat_std, argv=None, *, data_licence=True,
           data_meta=None, command=None, description=None, default=True, log_fn=log) -> dict:
    """Export the trainer's EMA generator, check parity, write the package ``args.export``."""
    gen = trainer.generator
    onnx_path = export_onnx(torch, gen, Path(args.work) / "generator.onnx")
    err = parity(torch, gen, onnx_path)
    ts.check_parity(err, 'exported', log_fn)
    te_manifest = json.loads((ts.TEXT_ENCODER_DIR / "manifest.json").read_text())
    if command is None:
        command = ts.train_command("train_emdm.py", argv)
    hist = trainer.history or []
    training = {"command": command, "seed": args.seed, "git_commit": ts.git_commit(),
                "config": args.config, "steps": args.stage_steps[STAGE], "steps_t": args.steps_t,
                "batch": args.batch, "lr": args.lr, "lr_d": args.lr_d,
                "geometric": not args.no_geometric,
                "weights": {n: getattr(args, f"{n}_weight") for n in
                            ("adv", "rec", "pos", "vel", "foot", "lip")},
                "r1": args.r1, "r1_every": args.r1_every, "ema": args.ema,
                "cond_drop": args.cond_drop, "max_frames": args.max_frames,
                "init_from": _in_repo(args.init_from), "from_weights": _in_repo(args.from_weights),
                "captions_per_pair": args.captions_per_pair, "balance": args.balance,
                "discriminator": trainer.dcfg.to_dict(),
                "parameters": sum(p.numel() for p in gen.parameters()),
                "parity_max_abs": err, "final": hist[-1] if hist else None,
                **(data_meta or {})}
    c = gen.config
    desc = description or (f"EMDM ({c.layers}x{c.width} GAN denoiser, {args.steps_t} steps"
                           f"{'' if not args.no_geometric else ', no geometric losses'}), "
                           "Bandai Namco, non-commercial")
    settings = dict(name=args.name, version=args.version, steps_t=args.steps_t,
                    guidance=args.guidance, max_frames=args.max_frames, backend=args.backend,
                    grounding=ts.grounding_setting(args))
    m = write_package(Path(args.export), onnx_path, gen, feat_mean, feat_std, te_manifest,
                      description=desc, training=training, data_licence=data_licence,
                      default=default, **settings)
    size = sum(f["size"] for f in m["files"].values())
    log_fn(f"package written: {args.export} ({size / 1e6:.1f} MB)")
    return m


# =========================================================================== main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    ap.add_argument("--work", default=None, help="checkpoints (build/emdm/<config>-T<T>[-nogeo])")
    tlcm.add_run_args(ap)
    ap.add_argument("--stop-at", type=int, default=None, help="stop at this step (checkpointed)")
    ap.add_argument("--snapshot-every", type=int, default=0,
                    help="keep the EMA generator every N steps (work/ema-<step>.pt)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (the config's)")
    ap.add_argument("--steps-t", type=int, default=10,
                    help="denoising steps T the model learns (1, 5, 10, ...)")
    ap.add_argument("--no-geometric", action="store_true",
                    help="adversarial loss only (the paper's ablation)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="generator learning rate")
    ap.add_argument("--lr-d", type=float, default=None, help="discriminator learning rate")
    ap.add_argument("--width", type=int, default=None, help="generator width (the config's)")
    ap.add_argument("--layers", type=int, default=None, help="generator layers")
    ap.add_argument("--heads", type=int, default=None, help="generator heads")
    ap.add_argument("--ff", type=int, default=None, help="generator feed-forward width")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--adv-weight", type=float, default=1.0)
    ap.add_argument("--rec-weight", type=float, default=1.0)
    ap.add_argument("--pos-weight", type=float, default=1.0, help="joint positions (m²)")
    ap.add_argument("--vel-weight", type=float, default=1.0, help="joint velocities ((m/s)²)")
    ap.add_argument("--foot-weight", type=float, default=1.0,
                    help="foot speed where the clip's contact label is on ((m/s)²)")
    ap.add_argument("--lip-weight", type=float, default=1e-6)
    ap.add_argument("--r1", type=float, default=0.05, help="R1 penalty γ (0: off)")
    ap.add_argument("--r1-every", type=int, default=4, help="lazy R1: every N steps")
    ap.add_argument("--init-from", default=None,
                    help="start the generator from these weights (sMDM's denoiser.pt of the "
                         "same sizes, or an ema-<step>.pt; default: the config's, 'none': "
                         "from scratch)")
    ap.add_argument("--captions-per-pair", type=int, default=96)
    ap.add_argument("--balance", type=float, default=0.5)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--time-steps", type=int, default=None,
                    help="only time this many training steps on real batches and print the "
                         "estimate of the full run (nothing kept)")
    ap.add_argument("--export", default=None, help="write the package to this folder")
    ap.add_argument("--from-weights", default=None,
                    help="export these EMA weights (ema-<step>.pt) instead of training")
    ap.add_argument("--guidance", type=float, default=2.5, help="the package's default guidance")
    ap.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                    help="the package's backend (auto: onnxruntime, PyTorch when it cannot "
                         "load the graph)")
    ap.add_argument("--name", default="emdm-default")
    ap.add_argument("--version", default="1.0.0")
    ts.add_grounding_arg(ap)
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.config]
    args.gen, args.disc = dict(cfg["gen"]), dict(cfg["disc"])
    for k in ("width", "layers", "heads", "ff"):
        if getattr(args, k) is not None:
            args.gen[k] = getattr(args, k)
    for k in ("batch", "max_frames", "lr", "lr_d", "steps"):
        if getattr(args, k) is None:
            setattr(args, k, cfg[k])
    if args.init_from is None and cfg["init_from"]:  # the config's (in the repository)
        args.init_from = str(ROOT / cfg["init_from"])
    elif args.init_from == "none":
        args.init_from = None
    args.stages = (STAGE,)
    args.stage_steps, args.stage_lr = {STAGE: args.steps}, {STAGE: args.lr}
    if args.work is None:
        tag = f"{args.config}-T{args.steps_t}" + ("-nogeo" if args.no_geometric else "")
        args.work = str(DEFAULT_WORK / tag)
    return args


def main(argv=None):
    args = parse_args(argv)
    import torch

    import train_kmm  # its load_data: sMDM's captions and their embedding cache

    ctx = distributed.from_args(args, torch)
    with ctx.main_first():  # rank 0 fills the caption cache, the others read it
        data, text_emb, ds = train_kmm.load_data(args, ctx.log)
    trainer = Trainer(args, torch, data, text_emb, ds.mean, ds.std, ctx=ctx)
    if args.time_steps:
        time_steps(trainer, args.time_steps)
        return 0
    if args.from_weights:
        trainer.load_weights(args.from_weights)
        done = True
    else:
        t0 = time.time()
        done = trainer.train()
        ctx.log(f"training {'done' if done else 'stopped'} in {(time.time() - t0) / 60:.1f} min")
    ctx.close()
    if not done or not args.export or not ctx.is_main:  # rank 0 exports
        return 0
    export(trainer, args, torch, ds.mean, ds.std, argv,
           data_meta={"dataset_version": ds.meta["version"], "split": "train (+ mirror)"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
