# SPDX-License-Identifier: GPL-3.0-or-later
"""KMM (key-frame mask Mamba) as PyTorch modules (training, ONNX export and the torch runtime
path), and the numpy maths that training and the runtime share.

torch is passed in (``build_tokenizer(torch, cfg)``), so this module imports without torch.

Parts (see ``docs/kmm.md``)::

    Tokenizer   residual VQ over the canonical features (normalised, 257-d, 20 fps):
                encoder Conv1d + residual blocks, two stride-2 convolutions (4 frames a token)
                -> latent (B, L, code_dim); Q quantisers of K codes each, every one quantising
                what the ones before left (EMA codebooks, dead codes reset in training);
                decoder: nearest ×2 upsampling + convolutions -> features (B, 4L, 257).
    Backbone    masked bidirectional Mamba over the tokens: input = embedding of the layer-0
                ids (a MASK id for unknown ones) for the masked task, or the sum of the
                embeddings of layers < q for the residual task (predict layer q from the ones
                below, as MoMask's residual transformer, here the same network), plus a layer
                embedding, the per-token text condition (each token carries the embedding of
                its own segment's prompt: a timeline is one sequence) and the token's phase in
                its segment (0 at its start, 1 at its end: the segment's length is known).
                Blocks: h + SSM_fwd(LN h) + flip(SSM_bwd(flip(LN h))), then h + MLP(LN h).
                Head per layer -> logits (B, L, K).
    SSM         a selective state-space layer (Mamba-2 form, a scalar decay per head):
                in_proj -> x, z, B, C, dt; causal depthwise conv on x; dt = softplus(dt + b),
                a_t = exp(-exp(A_log) dt_t); h_t = a_t h_{t-1} + dt_t x_t B_tᵀ, y_t = h_t C_t
                + D x_t; y · silu(z) -> out_proj. Two exact forms of the same recurrence:
                ``scan="sequential"`` (a loop over time: the reference),
                ``scan="quadratic"`` (y = (L ∘ C Bᵀ)(dt x) with L_ts = exp(Σ_{s<r≤t} log a_r):
                matrix products only) and ``scan="chunked"`` (Mamba-2's SSD: the quadratic
                form inside chunks of 32 tokens, the states between chunks by the same form
                over the chunks; linear in the length, no loop: what is exported to ONNX with
                a dynamic length).
    Alignment   text MLP (the condition's own projection) and a motion head over the tokens'
                code embeddings, symmetric InfoNCE with a learnable temperature.

Key-frame masking (:func:`keyframe_scores`): on the tokens' latents x_i, density
d_i = Σ_j exp(-‖x_i - x_j‖² / σ²) (σ² the mean squared distance of the sequence), distance
to a denser token S_i = min_{d_j > d_i} ‖x_i - x_j‖ (the densest: its largest distance),
score Γ_i = d_i · S_i; training masks the top-Γ tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .motionlcm_net import _Config  # to_dict / from_dict of the config dataclasses

__all__ = ["TokenizerConfig", "BackboneConfig", "build_tokenizer", "build_backbone",
           "build_tokenizer_parts", "keyframe_scores", "mask_schedule", "DOWNSAMPLE",
           "BACKBONE_INPUTS", "DECODER_INPUTS"]

DOWNSAMPLE = 4
#: tokens per chunk of the chunked scan
CHUNK = 32
BACKBONE_INPUTS = ("ids", "layer", "text", "phase")
DECODER_INPUTS = ("z",)


@dataclass
class TokenizerConfig(_Config):
    feature_dim: int = 257
    width: int = 256
    code_dim: int = 128
    codes: int = 512          # K per quantiser
    quantizers: int = 6       # Q
    res_blocks: int = 2


@dataclass
class BackboneConfig(_Config):
    codes: int = 512
    quantizers: int = 6
    text_dim: int = 384
    width: int = 256
    layers: int = 4
    heads: int = 8            # SSM heads (scalar decay each)
    state: int = 16           # N, the SSM state per head channel
    expand: int = 2           # d_inner = expand * width
    conv: int = 4
    mlp: int = 512
    dropout: float = 0.1
    scan: str = "chunked"     # or "quadratic", "sequential" (same weights, same result)


# =========================================================================== numpy maths


def keyframe_scores(latents) -> np.ndarray:
    """KMM's key-frame score Γ of ``latents (L, C)`` (numpy; training uses the torch twin)."""
    x = np.asarray(latents, dtype=np.float64)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    sigma2 = max(float(d2.mean()), 1e-8)
    dens = np.exp(-d2 / sigma2).sum(1)
    dist = np.sqrt(d2)
    denser = dens[None, :] > dens[:, None]
    S = np.where(denser, dist, np.inf).min(1)
    S = np.where(np.isfinite(S), S, dist.max(1))
    return dens * S


def mask_schedule(r):
    """Share of tokens still masked after a fraction ``r`` of the decoding (MoMask's cosine)."""
    return np.cos(np.pi / 2 * np.asarray(r, dtype=np.float64))


# =========================================================================== torch parts


def build_tokenizer_parts(torch, cfg: TokenizerConfig):
    """``(encoder, decoder)`` modules: (B, N, 257) -> (B, N/4, code_dim) -> (B, N, 257)."""
    nn = torch.nn
    F = torch.nn.functional
    W = cfg.width

    class Res(nn.Module):
        def __init__(self, dilation):
            super().__init__()
            self.c1 = nn.Conv1d(W, W, 3, padding=dilation, dilation=dilation)
            self.c2 = nn.Conv1d(W, W, 1)

        def forward(self, h):
            return h + self.c2(F.relu(self.c1(F.relu(h))))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Conv1d(cfg.feature_dim, W, 3, padding=1)
            layers = []
            for _ in range(2):
                layers += [nn.Conv1d(W, W, 4, stride=2, padding=1)]
                layers += [Res(3 ** i) for i in range(cfg.res_blocks)]
            self.body = nn.Sequential(*layers)
            self.out = nn.Conv1d(W, cfg.code_dim, 3, padding=1)

        def forward(self, x):  # (B, N, D), N a multiple of 4
            h = self.body(F.relu(self.inp(x.transpose(1, 2))))
            return self.out(h).transpose(1, 2)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Conv1d(cfg.code_dim, W, 3, padding=1)
            self.ups = nn.ModuleList()
            for _ in range(2):
                self.ups.append(nn.ModuleList([
                    nn.Sequential(*[Res(3 ** i) for i in reversed(range(cfg.res_blocks))]),
                    nn.Conv1d(W, W, 3, padding=1)]))
            self.mid = nn.Conv1d(W, W, 3, padding=1)
            self.out = nn.Conv1d(W, cfg.feature_dim, 3, padding=1)

        def forward(self, z):  # (B, L, code_dim)
            h = F.relu(self.inp(z.transpose(1, 2)))
            for res, conv in self.ups:
                h = res(h)
                h = h.repeat_interleave(2, dim=2)
                h = conv(h)
            return self.out(F.relu(self.mid(h))).transpose(1, 2)

    return Encoder(), Decoder()


def build_tokenizer(torch, cfg: TokenizerConfig | None = None):
    """The RVQ tokenizer (training): ``forward(x)`` -> ``(recon, commit_loss, ids)``; its
    ``encoder``, ``rvq.quantize`` and ``decoder`` are used on their own too."""
    cfg = cfg or TokenizerConfig()
    nn = torch.nn

    class RVQ(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("codebooks", torch.randn(cfg.quantizers, cfg.codes, cfg.code_dim) * 0.1)
            self.register_buffer("ema_count", torch.ones(cfg.quantizers, cfg.codes))
            self.register_buffer("ema_sum", self.codebooks.clone())
            self.register_buffer("usage", torch.zeros(cfg.quantizers, cfg.codes))
            self.decay = 0.99

        def quantize(self, z, n_q=None):
            """z (B, L, C) -> (quantised sum, ids (B, L, Q'), per-layer inputs)"""
            n_q = n_q or cfg.quantizers
            resid = z
            out = torch.zeros_like(z)
            ids, inputs = [], []
            for q in range(n_q):
                cb = self.codebooks[q]
                flat = resid.reshape(-1, cfg.code_dim)
                d = (flat ** 2).sum(-1, keepdim=True) - 2 * flat @ cb.t() + (cb ** 2).sum(-1)[None]
                idx = d.argmin(-1)
                qv = cb[idx].reshape(resid.shape)
                inputs.append(resid)
                ids.append(idx.reshape(resid.shape[:-1]))
                out = out + qv
                resid = resid - qv
            return out, torch.stack(ids, -1), inputs

        @torch.no_grad()
        def ema_update(self, inputs, ids):
            for q in range(len(inputs)):
                flat = inputs[q].reshape(-1, cfg.code_dim).detach()
                idx = ids[..., q].reshape(-1)
                onehot = torch.zeros(flat.shape[0], cfg.codes, device=flat.device)
                onehot.scatter_(1, idx[:, None], 1.0)
                count = onehot.sum(0)
                self.ema_count[q].mul_(self.decay).add_(count, alpha=1 - self.decay)
                self.ema_sum[q].mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
                n = self.ema_count[q].sum()
                c = (self.ema_count[q] + 1e-5) / (n + cfg.codes * 1e-5) * n
                self.codebooks[q].copy_(self.ema_sum[q] / c[:, None])
                self.usage[q].mul_(0.99).add_(count)
                dead = self.usage[q] < 1e-3
                if dead.any():  # dead codes restart on random inputs of this layer
                    pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
                    self.codebooks[q][dead] = flat[pick]
                    self.ema_sum[q][dead] = flat[pick]
                    self.ema_count[q][dead] = 1.0
                    self.usage[q][dead] = 1.0

    class Tokenizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.encoder, self.decoder = build_tokenizer_parts(torch, cfg)
            self.rvq = RVQ()

        def forward(self, x, n_q=None):
            z = self.encoder(x)
            zq, ids, inputs = self.rvq.quantize(z, n_q)
            commit = ((z - zq.detach()) ** 2).mean()
            if self.training:
                self.rvq.ema_update(inputs, ids)
            zq = z + (zq - z).detach()  # straight-through
            return self.decoder(zq), commit, ids

    return Tokenizer()


def _ssm(torch, cfg: BackboneConfig):
    nn = torch.nn
    F = torch.nn.functional
    d = cfg.width
    di = cfg.expand * d
    H, N = cfg.heads, cfg.state
    P = di // H

    class SSM(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_proj = nn.Linear(d, 2 * di + 2 * N + H)
            self.conv = nn.Conv1d(di, di, cfg.conv, groups=di, padding=cfg.conv - 1)
            self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, H)))
            self.dt_bias = nn.Parameter(torch.log(torch.expm1(
                torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), H)))))
            self.D = nn.Parameter(torch.ones(H))
            self.norm = nn.LayerNorm(di)
            self.out_proj = nn.Linear(di, d)
            self.scan = cfg.scan

        def forward(self, u):  # (B, L, d)
            Bsz, L, _ = u.shape
            zxbcdt = self.in_proj(u)
            x, z, Bm, Cm, dt = torch.split(zxbcdt, [di, di, N, N, H], dim=-1)
            x = F.silu(self.conv(x.transpose(1, 2))[..., :L].transpose(1, 2))
            dt = F.softplus(dt + self.dt_bias)                       # (B, L, H)
            loga = -torch.exp(self.A_log) * dt                       # log a_t (B, L, H)
            xh = x.reshape(Bsz, L, H, P)
            xdt = xh * dt[..., None]                                 # (B, L, H, P)
            if self.scan == "sequential":
                y = self._sequential(loga, xdt, Bm, Cm)
            elif self.scan == "chunked":
                y = self._chunked(loga, xdt, Bm, Cm)
            else:
                y = self._quadratic(loga, xdt, Bm, Cm)
            y = y + xh * self.D[:, None]
            y = y.reshape(Bsz, L, di)
            return self.out_proj(self.norm(y) * F.silu(z))

        @staticmethod
        def _quadratic(loga, xdt, Bm, Cm):
            L = loga.shape[1]
            cs = torch.cumsum(loga, dim=1).transpose(1, 2)           # (B, H, L)
            diff = cs[..., :, None] - cs[..., None, :]               # (B, H, t, s)
            idx = torch.arange(L, device=loga.device)
            causal = idx[:, None] >= idx[None, :]
            decay = torch.exp(torch.where(causal, diff, torch.full_like(diff, -1e4)))
            G = Cm @ Bm.transpose(1, 2)                              # (B, t, s)
            M = decay * G[:, None]                                   # (B, H, t, s)
            return (M @ xdt.transpose(1, 2)).transpose(1, 2)         # (B, L, H, P)

        @staticmethod
        def _chunked(loga, xdt, Bm, Cm, chunk: int = CHUNK):
            """Mamba-2's chunked form (SSD): the quadratic form inside chunks of ``chunk``
            tokens, the state carried between chunks by a quadratic form over the (few)
            chunks — linear in the length, no loop. Padded at the end to whole chunks (padding
            after the last token changes nothing before it: the scan is causal)."""
            Bsz, L, H, P = xdt.shape
            pad = (chunk - L % chunk) % chunk
            loga = F.pad(loga, (0, 0, 0, pad))
            xdt = F.pad(xdt, (0, 0, 0, 0, 0, pad))
            Bm = F.pad(Bm, (0, 0, 0, pad))
            Cm = F.pad(Cm, (0, 0, 0, pad))
            nc = (L + pad) // chunk
            A = loga.reshape(Bsz, nc, chunk, H).permute(0, 3, 1, 2)        # (b, h, c, l)
            X = xdt.reshape(Bsz, nc, chunk, H, P)
            Bc = Bm.reshape(Bsz, nc, chunk, -1)
            Cc = Cm.reshape(Bsz, nc, chunk, -1)
            cs = torch.cumsum(A, dim=-1)                                    # (b, h, c, l)
            idx = torch.arange(chunk, device=A.device)
            causal = idx[:, None] >= idx[None, :]
            diff = cs[..., :, None] - cs[..., None, :]                      # (b, h, c, l, s)
            Ld = torch.exp(torch.where(causal, diff, torch.full_like(diff, -1e4)))
            G = Cc @ Bc.transpose(2, 3)                                     # (b, c, l, s)
            M = Ld * G[:, None]                                             # (b, h, c, l, s)
            y_diag = M @ X.permute(0, 3, 1, 2, 4)                           # (b, h, c, l, p)
            # each chunk's final state: sum_s exp(cs_last - cs_s) x_s B_s^T -> (b, h, c, p, n)
            w = torch.exp(cs[..., -1:] - cs)                                # (b, h, c, l)
            Xw = X.permute(0, 3, 1, 2, 4) * w[..., None]                    # (b, h, c, l, p)
            states = Xw.transpose(-1, -2) @ Bc[:, None]                     # (b, h, c, p, n)
            # state entering chunk k: sum_{j<k} exp(S_{k-1} - S_j) states_j, S = chunk sums
            S = torch.cumsum(cs[..., -1], dim=-1)                           # (b, h, c)
            ci = torch.arange(nc, device=A.device)
            before = ci[:, None] > ci[None, :]
            dS = (S[..., :, None] - cs[..., :, -1][..., :, None]) - S[..., None, :]
            Dc = torch.exp(torch.where(before, dS, torch.full_like(dS, -1e4)))  # (b, h, k, j)
            h_in = (Dc @ states.flatten(-2)).reshape(states.shape)          # (b, h, c, p, n)
            # its contribution inside chunk k: exp(cs_t) C_t . h_in
            y_off = (Cc[:, None] @ h_in.transpose(-1, -2)) * torch.exp(cs)[..., None]
            y = (y_diag + y_off).permute(0, 2, 3, 1, 4).reshape(Bsz, nc * chunk, H, P)
            return y[:, :L]

        @staticmethod
        def _sequential(loga, xdt, Bm, Cm):
            Bsz, L, H, P = xdt.shape
            h = xdt.new_zeros(Bsz, H, P, Bm.shape[-1])
            a = torch.exp(loga)
            ys = []
            for t in range(L):
                h = a[:, t, :, None, None] * h + xdt[:, t, :, :, None] * Bm[:, t, None, None, :]
                ys.append((h * Cm[:, t, None, None, :]).sum(-1))
            return torch.stack(ys, dim=1)

    return SSM()


def build_backbone(torch, cfg: BackboneConfig | None = None):
    """The masked bidirectional Mamba: ``forward(ids (B, L, Q) int64, layer (B,) int64,
    text (B, L, E), phase (B, L))`` -> logits (B, L, K) of layer ``layer``'s ids. ids equal
    to K are unknown (MASK on layer 0; ignored above). ``motion_embedding`` /
    ``text_embedding``: the alignment heads (training only)."""
    cfg = cfg or BackboneConfig()
    nn = torch.nn
    F = torch.nn.functional
    d, K, Q = cfg.width, cfg.codes, cfg.quantizers

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = nn.LayerNorm(d)
            self.fwd = _ssm(torch, cfg)
            self.bwd = _ssm(torch, cfg)
            self.cond = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp), nn.GELU(), nn.Dropout(cfg.dropout),
                                     nn.Linear(cfg.mlp, d))
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, h, c):
            h = h + self.cond(c)
            u = self.ln(h)
            h = h + self.drop(self.fwd(u) + torch.flip(self.bwd(torch.flip(u, [1])), [1]))
            return h + self.drop(self.mlp(self.ln2(h)))

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.tok = nn.Parameter(torch.randn(Q, K + 1, d) * 0.02)   # row K: mask / unused
            self.layer_emb = nn.Embedding(Q, d)
            self.text = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d))
            self.phase = nn.Linear(16, d)
            self.blocks = nn.ModuleList([Block() for _ in range(cfg.layers)])
            self.ln = nn.LayerNorm(d)
            self.heads = nn.Parameter(torch.randn(Q, d, K) * 0.02)
            self.motion_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

        def _phase(self, phase):
            f = torch.arange(8, dtype=torch.float32, device=phase.device)
            a = phase[..., None] * math.pi * (2.0 ** f)
            return self.phase(torch.cat([torch.sin(a), torch.cos(a)], -1))

        def embed_ids(self, ids, layer):
            """Sum over quantisers q of tok[q][ids_q], q = 0 always, 0 < q < layer."""
            q_idx = torch.arange(Q, device=ids.device)
            use = (q_idx[None, :] < layer[:, None]) | (q_idx[None, :] == 0)   # (B, Q)
            e = torch.stack([self.tok[q][ids[..., q]] for q in range(Q)], 2)   # (B, L, Q, d)
            return (e * use[:, None, :, None].to(e.dtype)).sum(2)

        def forward(self, ids, layer, text, phase):
            c = self.text(text)
            h = self.embed_ids(ids, layer) + self.layer_emb(layer)[:, None] + self._phase(phase)
            for blk in self.blocks:
                h = blk(h, c)
            h = self.ln(h)
            W = self.heads[layer]                                   # (B, d, K)
            return h @ W

        def text_embedding(self, text):
            return F.normalize(self.text(text), dim=-1)

        def motion_embedding(self, ids, lengths=None):
            """From the layer-0 code embeddings of the ground-truth tokens (B, L)."""
            e = self.tok[0][ids].mean(1)
            return F.normalize(self.motion_head(e), dim=-1)

    return Backbone()
