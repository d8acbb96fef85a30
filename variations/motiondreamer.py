# SPDX-License-Identifier: GPL-3.0-or-later
"""MotionDreamer: variations of ONE reference motion (Wang et al. 2025), trained on that motion.

Works on a (T, D) per-frame feature array (see :mod:`variations.channels` for how an action of
any skeleton becomes one); nothing here knows about skeletons or Blender. Imports torch: import
this module only where PyTorch is wanted (:func:`inference.runtime.import_torch` first gives
the user a clear message when it is missing).

The model (paper section 3, ``../shared/papers/motiondreamer-one-to-many.md``):

1. **Tokenizer** — a 1-D convolutional VQ-VAE, temporal downsampling 4: encoder convs →
   latent per 4 frames → nearest of ``codes`` codebook entries (EMA updates, dead-code reset)
   → convolutional decoder. Loss: reconstruction (smooth L1 on the normalised features and on
   their velocities) + commitment + the **codebook distribution regulariser**: KL divergence
   of the batch's soft code usage (softmax of negative distances) to the uniform distribution,
   against codebook collapse on so little data.
2. **Local-M** — a masked transformer over code tokens with **sliding-window attention**: the
   token sequence is cut into overlapping windows of ``2W+1`` tokens every ``S`` tokens
   (W = 5, S = 4); attention runs inside each window with a learned relative-position bias and
   learned per-offset queries; the window outputs are averaged where windows overlap
   (AttnFuse). No absolute positions anywhere, so the model learns local patterns, not the
   reference's global order.
3. **Differentiable dequantisation** — the predicted logits go through sparsemax, the sparse
   weights mix codebook vectors, the frozen decoder turns them into motion, and a motion
   reconstruction loss (weight ``rec_weight`` = 0.2) reaches the transformer next to the
   masked-token cross entropy.
4. **Sampling** — MaskGIT-style iterative masked decoding with re-masking: start from the
   requested number of tokens (any length), all masked; at each of ``iterations`` steps sample
   every masked token (temperature), keep the most confident (Gumbel-perturbed confidence)
   and re-mask the rest following a cosine schedule; decode the tokens.

Choices of ours (not fixed by the paper, sized for 2 CPU cores and one 10 s reference):
latent width 64, hidden 128, 48 codes; Local-M 3 layers of width 128 with 4 heads; the
tokenizer trains on random crops at any frame offset; Local-M on the reference tokenised at
the 4 frame phases (4 token sequences) and random crops of them; cosine mask ratio; the
"novelty" control (0 = close to the reference, 1 = novel) sets the sampling temperature and
how many of the reference's own tokens (time-stretched to the new length, at random places)
are given to the sampler as fixed context.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import Cancelled

__all__ = ["Config", "MotionDreamer", "Cancelled", "train", "train_cached", "min_frames",
           "sparsemax", "cache_key", "MODEL_VERSION"]

#: Bumped whenever the architecture or the training recipe changes (part of the cache key).
MODEL_VERSION = 1
DOWNSAMPLE = 4


@dataclass
class Config:
    codes: int = 48
    latent: int = 64
    hidden: int = 64
    width: int = 96
    layers: int = 3
    heads: int = 4
    window: int = 5  # W: a window holds 2W+1 tokens
    stride: int = 4  # S
    vq_steps: int = 600
    vq_batch: int = 32
    vq_crop: int = 64  # frames
    vq_lr: float = 1e-3
    commit: float = 0.25
    kl_weight: float = 0.05
    kl_temperature: float = 1.0
    ema_decay: float = 0.95
    tr_steps: int = 2000
    tr_batch: int = 16
    tr_crop: int = 32  # tokens
    tr_lr: float = 5e-4
    rec_weight: float = 0.2
    dropout: float = 0.1

    def to_json(self) -> dict:
        return asdict(self)


def min_frames(config: Config | None = None) -> int:
    """Shortest reference the model can learn from: one attention window of tokens."""
    c = config or Config()
    return (2 * c.window + 1) * DOWNSAMPLE


def sparsemax(z, dim: int = -1):
    """Sparsemax (Martins & Astudillo 2016): Euclidean projection onto the simplex; like
    softmax but with exact zeros, and differentiable almost everywhere."""
    zs, _ = torch.sort(z, dim=dim, descending=True)
    n = z.shape[dim]
    shape = [1] * z.dim()
    shape[dim] = n
    k = torch.arange(1, n + 1, device=z.device, dtype=z.dtype).view(shape)
    cs = zs.cumsum(dim) - 1.0
    support = (k * zs) > cs
    k_z = support.sum(dim=dim, keepdim=True).clamp(min=1)
    tau = cs.gather(dim, k_z - 1) / k_z.to(z.dtype)
    return torch.clamp(z - tau, min=0.0)


# ----------------------------------------------------------------------------- tokenizer

class _Res(nn.Module):
    def __init__(self, ch, dilation):
        super().__init__()
        self.conv1 = nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Tokenizer(nn.Module):
    def __init__(self, dim, c: Config):
        super().__init__()
        h = c.hidden
        self.encoder = nn.Sequential(
            nn.Conv1d(dim, h, 3, padding=1), nn.ReLU(),
            nn.Conv1d(h, h, 4, stride=2, padding=1), _Res(h, 1), _Res(h, 3),
            nn.Conv1d(h, h, 4, stride=2, padding=1), _Res(h, 1), _Res(h, 3),
            nn.Conv1d(h, c.latent, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv1d(c.latent, h, 3, padding=1), _Res(h, 3), _Res(h, 1),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(h, h, 3, padding=1),
            _Res(h, 3), _Res(h, 1),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(h, h, 3, padding=1), nn.ReLU(),
            nn.Conv1d(h, dim, 3, padding=1))
        self.register_buffer("codebook", torch.randn(c.codes, c.latent) * 0.1)
        self.register_buffer("ema_count", torch.ones(c.codes))
        self.register_buffer("ema_sum", self.codebook.clone())

    def encode(self, x):
        """(B, T, D) → latents (B, N, latent), N = ceil(T / 4) (input padded by repetition)."""
        T = x.shape[1]
        pad = (-T) % DOWNSAMPLE
        if pad:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def distances(self, z):
        cb = self.codebook
        return (z.pow(2).sum(-1, keepdim=True) - 2.0 * z @ cb.t() + cb.pow(2).sum(-1))

    def tokens(self, x):
        return self.distances(self.encode(x)).argmin(-1)

    def decode_latents(self, q):
        """(B, N, latent) → (B, 4N, D)."""
        return self.decoder(q.transpose(1, 2)).transpose(1, 2)

    def decode_tokens(self, idx):
        return self.decode_latents(self.codebook[idx])


# ----------------------------------------------------------------------------- Local-M

class SlidingWindowAttention(nn.Module):
    """Self-attention inside overlapping windows of 2W+1 tokens every S tokens, a learned
    relative-position bias per head, learned per-offset queries, outputs averaged over the
    windows that contain a token (AttnFuse). Padding outside the sequence is never attended."""

    def __init__(self, width, heads, window, stride, dropout):
        super().__init__()
        self.h, self.W, self.S = heads, window, stride
        self.w = 2 * window + 1
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * self.w - 1))
        self.query_pos = nn.Parameter(torch.zeros(self.w, width))
        self.drop = nn.Dropout(dropout)
        r = torch.arange(self.w)
        self.register_buffer("rel_index", (r[None, :] - r[:, None]) + self.w - 1, persistent=False)

    def _layout(self, n, device):
        n_win = max(1, math.ceil((n - 1) / self.S) + 1)
        total = (n_win - 1) * self.S + self.w  # padded length (W before the first token)
        pos = torch.arange(n_win, device=device)[:, None] * self.S + torch.arange(self.w, device=device)
        real = pos - self.W  # sequence index of each window slot
        valid = (real >= 0) & (real < n)
        return n_win, total, real.clamp(0, n - 1), valid

    def forward(self, x):
        B, n, d = x.shape
        h, dh = self.h, d // self.h
        n_win, _total, real, valid = self._layout(n, x.device)
        # project every token once, then gather the windows (cheaper than projecting windows)
        qkv = self.qkv(x)[:, real.reshape(-1)].reshape(B, n_win, self.w, 3, h, dh)
        q, k, v = qkv.unbind(3)  # (B, nw, w, h, dh)
        q = q + self.query_pos.reshape(self.w, h, dh)
        att = torch.einsum("bnihd,bnjhd->bnhij", q, k) * (dh ** -0.5)
        att = att + self.rel_bias[:, self.rel_index]
        att = att.masked_fill(~valid[None, :, None, None, :], float("-inf")).softmax(-1)
        y = torch.einsum("bnhij,bnjhd->bnihd", att, v).reshape(B, n_win * self.w, d)
        # AttnFuse: average every token's outputs over the windows that hold it; the output
        # projection is linear, so it runs once per token after the averaging
        weight = valid.to(y.dtype).reshape(-1)
        idx = real.reshape(-1)
        fused = torch.zeros(B, n, d, dtype=y.dtype, device=y.device)
        fused.index_add_(1, idx, y * weight[None, :, None])
        count = torch.zeros(n, dtype=y.dtype, device=y.device).index_add_(0, idx, weight)
        return self.drop(self.out(fused / count[None, :, None]))


class _Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.width)
        self.attn = SlidingWindowAttention(c.width, c.heads, c.window, c.stride, c.dropout)
        self.ln2 = nn.LayerNorm(c.width)
        self.ff = nn.Sequential(nn.Linear(c.width, 4 * c.width), nn.GELU(),
                                nn.Linear(4 * c.width, c.width), nn.Dropout(c.dropout))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ff(self.ln2(x))


class LocalM(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.mask_id = c.codes
        self.embed = nn.Embedding(c.codes + 1, c.width)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.ln = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.codes)

    def forward(self, tokens):
        x = self.embed(tokens)
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


# ----------------------------------------------------------------------------- model

class MotionDreamer:
    """A trained model: ``sample`` variations; ``save`` / ``load`` one file."""

    def __init__(self, config: Config, dim: int, mean, std, tokenizer=None, local=None,
                 info=None):
        self.config = config
        self.dim = int(dim)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.tokenizer = tokenizer or Tokenizer(dim, config)
        self.local = local or LocalM(config)
        self.info = dict(info or {})
        self.reference_tokens = None  # (N,) tokens of the reference at phase 0

    # -- persistence
    def state(self) -> dict:
        return {"version": MODEL_VERSION, "config": self.config.to_json(), "dim": self.dim,
                "mean": self.mean.tolist(), "std": self.std.tolist(), "info": self.info,
                "tokenizer": self.tokenizer.state_dict(), "local": self.local.state_dict(),
                "reference_tokens": None if self.reference_tokens is None
                else self.reference_tokens.tolist()}

    def save(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)  # never a half-written cache file

    @classmethod
    def load(cls, path) -> "MotionDreamer":
        s = torch.load(str(path), map_location="cpu", weights_only=True)
        if s.get("version") != MODEL_VERSION:
            raise ValueError(f"{path}: model version {s.get('version')}, expected {MODEL_VERSION}")
        m = cls(Config(**s["config"]), s["dim"], s["mean"], s["std"], info=s["info"])
        m.tokenizer.load_state_dict(s["tokenizer"])
        m.local.load_state_dict(s["local"])
        if s.get("reference_tokens") is not None:
            m.reference_tokens = np.asarray(s["reference_tokens"], np.int64)
        return m

    # -- helpers
    def normalize(self, x):
        return (np.asarray(x, np.float32) - self.mean) / self.std

    def denormalize(self, x):
        return np.asarray(x, np.float32) * self.std + self.mean

    def reconstruct(self, features) -> np.ndarray:
        """Tokenise and decode ``features`` (T, D): what the tokenizer keeps of a motion."""
        with torch.no_grad():
            self.tokenizer.eval()
            x = torch.from_numpy(self.normalize(features))[None]
            y = self.tokenizer.decode_tokens(self.tokenizer.tokens(x))[0, :len(features)]
        return self.denormalize(y.numpy())

    # -- sampling
    def sample(self, length: int, seed: int = 0, novelty: float = 0.5, iterations: int = 10,
               temperature: float | None = None) -> np.ndarray:
        """One (length, D) variation. Same ``seed`` → same result.

        ``novelty`` 0..1 (default 0.5 = plain MotionDreamer sampling: temperature 1, no
        context): below 0.5 the temperature drops (0.6 at 0) and up to half of the tokens are
        the reference's own (time-stretched to ``length``, at random places) given as fixed
        context, so the result stays close to the reference; above 0.5 the temperature rises
        (1.4 at 1) for freer, more novel motion."""
        length = int(length)
        if length < DOWNSAMPLE:
            raise ValueError(f"length must be at least {DOWNSAMPLE} frames")
        novelty = float(min(max(novelty, 0.0), 1.0))
        tau = float(temperature) if temperature is not None else 0.6 + 0.8 * novelty
        keep_ref = max(0.0, 0.5 - novelty)
        g = torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        n = math.ceil(length / DOWNSAMPLE)
        mask_id = self.local.mask_id
        tokens = torch.full((1, n), mask_id, dtype=torch.long)
        fixed = torch.zeros(1, n, dtype=torch.bool)
        if keep_ref > 0 and self.reference_tokens is not None:
            ref = torch.from_numpy(self.reference_tokens)
            src = torch.round(torch.linspace(0, len(ref) - 1, n)).long()
            pick = torch.rand(n, generator=g) < keep_ref
            tokens[0, pick] = ref[src[pick]]
            fixed[0, pick] = True
        self.local.eval()
        self.tokenizer.eval()
        with torch.no_grad():
            free = int((~fixed).sum())
            for it in range(iterations):
                masked = tokens == mask_id
                if not masked.any():
                    break
                logits = self.local(tokens)[0] / max(tau, 1e-4)
                probs = logits.softmax(-1)
                sampled = torch.multinomial(probs, 1, generator=g)[:, 0]
                conf = probs.gather(-1, sampled[:, None])[:, 0].log()
                gumbel = -torch.log(-torch.log(torch.rand(n, generator=g).clamp(1e-9, 1 - 1e-9)))
                conf = conf + tau * (1.0 - (it + 1) / iterations) * gumbel
                m = masked[0]
                new = torch.where(m, sampled, tokens[0])
                # how many of the free tokens stay masked after this step (cosine schedule)
                remain = int(math.floor(free * math.cos(math.pi / 2 * (it + 1) / iterations)))
                remain = min(remain, int(m.sum()) - 1) if it < iterations - 1 else 0
                if remain > 0:
                    conf = conf.masked_fill(~m, float("inf"))
                    low = torch.topk(conf, remain, largest=False).indices
                    new[low] = mask_id
                tokens = new[None]
            out = self.tokenizer.decode_tokens(tokens)[0, :length]
        return self.denormalize(out.numpy())


# ----------------------------------------------------------------------------- training

def _check(features, c: Config):
    x = np.asarray(features, np.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError("features must be a (T, D) array")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    need = min_frames(c)
    if x.shape[0] < need:
        raise ValueError(f"the reference is {x.shape[0]} frames long; MotionDreamer needs at "
                         f"least {need} frames (its attention window of {2 * c.window + 1} "
                         f"tokens of {DOWNSAMPLE} frames)")
    return x


def _crops(x, n, length, rng):
    T = x.shape[0]
    length = min(length, T)
    starts = rng.integers(0, T - length + 1, size=n)
    return np.stack([x[s:s + length] for s in starts])


def _ema_update(tok: Tokenizer, z, idx, decay):
    with torch.no_grad():
        K = tok.codebook.shape[0]
        onehot = F.one_hot(idx, K).to(z.dtype)
        tok.ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        tok.ema_sum.mul_(decay).add_(onehot.t() @ z, alpha=1 - decay)
        n = tok.ema_count.sum()
        count = (tok.ema_count + 1e-5) / (n + K * 1e-5) * n
        tok.codebook.copy_(tok.ema_sum / count[:, None])
        dead = tok.ema_count < 0.03 * n / K  # hardly used: restart from a random latent
        if dead.any():
            pick = torch.randint(0, z.shape[0], (int(dead.sum()),))
            tok.codebook[dead] = z[pick]
            tok.ema_sum[dead] = z[pick]
            tok.ema_count[dead] = n / K


def _schedule(opt, steps):
    """Linear warm-up over 5 % of the steps, then cosine decay to 4 % of the rate."""
    warm = max(1, steps // 20)

    def factor(i):
        if i < warm:
            return (i + 1) / warm
        return 0.04 + 0.96 * 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def perplexity(idx, K) -> float:
    p = np.bincount(np.asarray(idx).reshape(-1), minlength=K) / max(np.asarray(idx).size, 1)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def train(features, *, seed: int = 0, config: Config | None = None, progress=None, cancel=None,
          log=None, checkpoint=None, checkpoint_every: int = 0) -> MotionDreamer:
    """Train both stages on one reference (T, D). ``progress(fraction, status)`` is called
    every few steps; ``cancel()`` returning True raises :class:`Cancelled`; ``log`` (a list)
    receives dict rows (stage, step, losses, seconds) for loss curves; ``checkpoint(model,
    step)`` is called every ``checkpoint_every`` Local-M steps (in eval mode; for metric
    curves)."""
    c = config or Config()
    x = _check(features, c)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean = x.mean(0)
    std = x.std(0)
    std = np.maximum(std, max(float(std.mean()) * 0.05, 1e-4)).astype(np.float32)
    model = MotionDreamer(c, x.shape[1], mean, std)
    xn = model.normalize(x)
    tok, local = model.tokenizer, model.local
    total = c.vq_steps + c.tr_steps
    t0 = time.perf_counter()

    def tick(step, status):
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None:
            done = step / total
            el = time.perf_counter() - t0
            left = el / done * (1 - done) if done > 0.02 else float("nan")
            progress(done, status if math.isnan(left) else f"{status}, {left:.0f} s left")

    # stage 1: tokenizer
    with torch.no_grad():  # codebook starts on encoder outputs
        z0 = tok.encode(torch.from_numpy(xn)[None])[0]
        pick = torch.from_numpy(rng.integers(0, len(z0), c.codes))
        tok.codebook.copy_(z0[pick] + 0.01 * torch.randn(c.codes, c.latent))
        tok.ema_sum.copy_(tok.codebook)
    opt = torch.optim.AdamW(tok.parameters(), lr=c.vq_lr, weight_decay=0.0)
    sched = _schedule(opt, c.vq_steps)
    crop = min(c.vq_crop - c.vq_crop % DOWNSAMPLE, len(xn) - len(xn) % DOWNSAMPLE)
    tok.train()
    for step in range(c.vq_steps):
        batch = torch.from_numpy(_crops(xn, c.vq_batch, crop, rng))
        z = tok.encode(batch)
        flat = z.reshape(-1, z.shape[-1])
        d = tok.distances(flat)
        idx = d.argmin(-1)
        q = tok.codebook[idx].reshape(z.shape)
        zq = z + (q - z).detach()
        y = tok.decode_latents(zq)
        rec = F.smooth_l1_loss(y, batch) + F.smooth_l1_loss(y[:, 1:] - y[:, :-1],
                                                            batch[:, 1:] - batch[:, :-1])
        commit = F.mse_loss(z, q.detach())
        usage = (-d / (c.kl_temperature * d.detach().mean() + 1e-8)).softmax(-1).mean(0)
        kl = (usage * (usage * c.codes + 1e-8).log()).sum()
        loss = rec + c.commit * commit + c.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
        opt.step()
        sched.step()
        _ema_update(tok, flat.detach(), idx, c.ema_decay)
        if step % 25 == 0 or step == c.vq_steps - 1:
            if log is not None:
                log.append({"stage": "tokenizer", "step": step, "rec": float(rec.detach()),
                            "commit": float(commit.detach()), "kl": float(kl.detach()),
                            "perplexity": perplexity(idx.numpy(), c.codes),
                            "seconds": time.perf_counter() - t0})
            tick(step, f"Learning motion patterns: step {step}/{c.vq_steps}, "
                       f"loss {float(rec.detach()):.3f}")

    # tokens of the reference at the 4 frame phases (4 sequences), and their targets
    tok.eval()
    for p in tok.parameters():
        p.requires_grad_(False)
    seqs, targets = [], []
    with torch.no_grad():
        for s in range(DOWNSAMPLE):
            part = xn[s:]
            part = part[:len(part) - len(part) % DOWNSAMPLE]
            if len(part) < DOWNSAMPLE * (2 * c.window + 1):
                continue
            t = tok.tokens(torch.from_numpy(part)[None])[0]
            seqs.append(t)
            targets.append(torch.from_numpy(part))
        ref_tokens = seqs[0]
        ref_rec = tok.decode_tokens(ref_tokens[None])[0]
        rec_err = float(F.l1_loss(ref_rec, targets[0]))
    model.reference_tokens = ref_tokens.numpy().astype(np.int64)
    vq_perplexity = perplexity(torch.cat(seqs).numpy(), c.codes)
    codebook = tok.codebook.detach()

    # stage 2: Local-M
    opt = torch.optim.AdamW(local.parameters(), lr=c.tr_lr, weight_decay=0.01)
    sched = _schedule(opt, c.tr_steps)
    local.train()
    L = min(c.tr_crop, min(len(s) for s in seqs))
    for step in range(c.tr_steps):
        which = rng.integers(0, len(seqs), c.tr_batch)
        tb, fb = [], []
        for w in which:
            n = len(seqs[w])
            a = int(rng.integers(0, n - L + 1))
            tb.append(seqs[w][a:a + L])
            fb.append(targets[w][a * DOWNSAMPLE:(a + L) * DOWNSAMPLE])
        tb = torch.stack(tb)
        fb = torch.stack(fb)
        ratio = np.cos(np.pi / 2 * rng.random(c.tr_batch))
        nmask = np.maximum(1, np.round(ratio * L)).astype(int)
        scores = torch.from_numpy(rng.random((c.tr_batch, L)))
        ranks = scores.argsort(-1).argsort(-1)
        mask = ranks < torch.from_numpy(nmask)[:, None]
        inp = tb.masked_fill(mask, local.mask_id)
        logits = local(inp)
        ce = F.cross_entropy(logits[mask], tb[mask])
        w = sparsemax(logits)
        soft = w @ codebook
        lat = torch.where(mask[..., None], soft, codebook[tb])
        y = tok.decode_latents(lat)
        rec = F.smooth_l1_loss(y, fb)
        loss = ce + c.rec_weight * rec
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(local.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == c.tr_steps - 1:
            acc = float((logits[mask].argmax(-1) == tb[mask]).float().mean())
            if log is not None:
                log.append({"stage": "local", "step": step, "ce": float(ce.detach()), "rec": float(rec.detach()),
                            "accuracy": acc, "seconds": time.perf_counter() - t0})
            tick(c.vq_steps + step, f"Learning to vary: step {step}/{c.tr_steps}, "
                                    f"loss {float(ce.detach()):.3f}")
        if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            local.eval()
            checkpoint(model, step + 1)
            local.train()
    local.eval()
    model.info = {"seed": int(seed), "frames": int(len(x)), "train_seconds":
                  round(time.perf_counter() - t0, 2), "reconstruction_l1": round(rec_err, 5),
                  "vq_perplexity": round(vq_perplexity, 3), "final_ce": round(float(ce.detach()), 4)}
    if progress is not None:
        progress(1.0, "Trained")
    return model


def cache_key(features, seed: int, config: Config | None = None, extra: str = "") -> str:
    """Content hash of everything that determines a trained model."""
    c = config or Config()
    h = hashlib.sha256()
    x = np.ascontiguousarray(np.asarray(features, np.float32))
    h.update(repr(x.shape).encode())
    h.update(x.tobytes())
    h.update(json.dumps({"v": MODEL_VERSION, "seed": int(seed), "config": c.to_json(),
                         "extra": extra}, sort_keys=True).encode())
    return h.hexdigest()[:32]


def train_cached(features, cache_dir, *, seed: int = 0, config: Config | None = None,
                 progress=None, cancel=None, extra: str = "", log=None):
    """A model for ``features``: loaded from ``cache_dir`` when this exact reference, seed
    and config were trained before (returns ``(model, True)``), else trained and saved
    (``(model, False)``). A cancelled training writes nothing."""
    key = cache_key(features, seed, config, extra)
    path = Path(cache_dir) / f"motiondreamer-{key}.pt"
    if path.is_file():
        try:
            return MotionDreamer.load(path), True
        except Exception:  # an unreadable cache entry is trained again
            pass
    model = train(features, seed=seed, config=config, progress=progress, cancel=cancel, log=log)
    model.info["cache_key"] = key
    model.save(path)
    return model, False
