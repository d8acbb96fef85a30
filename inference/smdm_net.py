# SPDX-License-Identifier: GPL-3.0-or-later
"""The sMDM denoiser as a PyTorch module (training, ONNX export and the torch inference path).

torch is imported by the caller and passed in (``build_denoiser(torch, config)``), so this
module imports without torch and the extension never needs it for ONNX inference.

One call predicts the clean motion ``x0`` from the noisy motion ``x_t``::

    x_t (B, N, 257) normalised features, t (B,) int64 diffusion step, text (B, 384) caption
    embedding (zeros = unconditional), key_idx (B, K) int64 sorted keyframe indices (first and
    last frame included), interp_left (B, N) int64 and interp_w (B, N) float32: for frame n the
    keyframe slot j at or before it and the weight of slot j+1 (see ``smdm.interpolation``).

1. Only the K keyframes are gathered from ``x_t``: a Lipschitz MLP with sine activations
   (or a plain linear layer, ``lipschitz=False``) lifts them to the model width, plus a
   sinusoidal encoding of their frame index.
2. One condition token (diffusion step + projected text) is prepended; a pre-LN transformer
   encoder runs over the K + 1 tokens only (attention costs O(K²), not O(N²)).
3. After each block the features of the frames between keyframes would be rebuilt by linear
   interpolation; since the next block gathers the keyframe tokens again (which interpolation
   leaves unchanged), this equals one interpolation after the last block, which is what runs.
4. A second Lipschitz MLP maps every one of the N frames back to features: ``x0`` (B, N, 257).

**Known keyframes** (``known_dim`` > 0; Fill Between, issue 16): two more inputs, ``known``
(B, N, known_dim) normalised known values and ``known_mask`` (B, N, known_dim) 1 where a value
is known (``inference.inbetween.known_inputs``: the features' channels an animator's key
fixes, plus the root's ground position and heading relative to the first known root frame).
At the keyframes (the known frames always among them) a zero-initialised linear layer adds
``[known·mask, mask]`` to the tokens, so a model fine-tuned from one without it starts as that
model; all-zero masks are plain text-to-motion.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["DenoiserConfig", "build_denoiser", "denoiser_class", "sinusoid_encoding", "io_layer", "lipschitz_loss",
           "INPUT_NAMES", "KNOWN_INPUTS", "OUTPUT_NAMES", "input_names"]

INPUT_NAMES = ("x_t", "t", "text", "key_idx", "interp_left", "interp_w")
KNOWN_INPUTS = ("known", "known_mask")
OUTPUT_NAMES = ("x0",)


def input_names(config) -> tuple:
    """The denoiser's inputs for ``config`` (a :class:`DenoiserConfig` or its dict)."""
    k = config.get("known_dim", 0) if isinstance(config, dict) else config.known_dim
    return INPUT_NAMES + (KNOWN_INPUTS if k else ())


@dataclass
class DenoiserConfig:
    feature_dim: int = 257
    text_dim: int = 384
    width: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 1024
    dropout: float = 0.1
    lipschitz: bool = True
    max_frames: int = 2400  # positional encoding period (frames) is far beyond any clip
    timesteps: int = 1000
    known_dim: int = 0  # > 0: the known-keyframe inputs (features + 4 root channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> "DenoiserConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def sinusoid_encoding(torch, pos, dim):
    """(…,) positions → (…, dim) sin/cos encoding (float32; also MotionLCM's)."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=pos.device)
                     * (-math.log(10000.0) / half))
    a = pos.to(torch.float32)[..., None] * freq
    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)


def _io_classes(torch):
    """The classes of :func:`io_layer` (defined per call: torch is passed in)."""
    nn = torch.nn
    F = torch.nn.functional

    class LipschitzLinear(nn.Module):
        """Linear layer whose rows are rescaled to an absolute sum <= softplus(c) (Liu et al.
        2022): the layer's infinity-norm Lipschitz bound is softplus(c), a learned number."""

        def __init__(self, din, dout):
            super().__init__()
            self.linear = nn.Linear(din, dout)
            with torch.no_grad():
                c0 = self.linear.weight.abs().sum(1).max()
                # softplus^-1(c0): start with no rescaling
                self.c = nn.Parameter(torch.log(torch.expm1(c0)).reshape(1))

        def bound(self):
            return F.softplus(self.c)

        def forward(self, x):
            w = self.linear.weight
            scale = torch.clamp(self.bound() / w.abs().sum(1), max=1.0)
            return F.linear(x, w * scale[:, None], self.linear.bias)

    class Sine(nn.Module):
        def forward(self, x):
            return torch.sin(x)

    class LipschitzMLP(nn.Module):
        def __init__(self, din, dhidden, dout):
            super().__init__()
            self.l1 = LipschitzLinear(din, dhidden)
            self.l2 = LipschitzLinear(dhidden, dout)
            self.act = Sine()

        def lipschitz_bound(self):
            return self.l1.bound() * self.l2.bound()

        def forward(self, x):
            return self.l2(self.act(self.l1(x)))

    class Plain(nn.Module):  # the ablation: MDM's single linear input/output layer
        def __init__(self, din, dout):
            super().__init__()
            self.linear = nn.Linear(din, dout)

        def lipschitz_bound(self):
            return None

        def forward(self, x):
            return self.linear(x)

    return LipschitzMLP, Plain


def io_layer(torch, din: int, dhidden: int, dout: int, lipschitz: bool = True):
    """sMDM's per-frame input/output layer: a Lipschitz MLP with a sine activation
    (``din -> dhidden -> dout``), or MDM's single linear layer (``lipschitz=False``). Its
    ``lipschitz_bound()`` is the product of the two layers' bounds (None for the plain one)."""
    mlp, plain = _io_classes(torch)
    return mlp(din, dhidden, dout) if lipschitz else plain(din, dout)


def lipschitz_loss(torch, layers):
    """Π softplus(c_i) per Lipschitz MLP of ``layers``, summed (0 without any)."""
    bounds = [m.lipschitz_bound() for m in layers]
    bounds = [b for b in bounds if b is not None]
    if not bounds:
        return torch.zeros(())
    return sum(b.sum() for b in bounds)


def build_denoiser(torch, config: DenoiserConfig | None = None):
    """A fresh ``torch.nn.Module`` for ``config``."""
    return denoiser_class(torch, config)()


def denoiser_class(torch, config: DenoiserConfig | None = None):
    """The denoiser's ``nn.Module`` class for ``config`` (EMDM's sparse generator subclasses
    it: ``forward(..., cond_extra)`` adds a term to the condition token)."""
    nn = torch.nn
    cfg = config or DenoiserConfig()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.width
            self.ln1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
            self.ln2 = nn.LayerNorm(d)
            self.ff = nn.Sequential(nn.Linear(d, cfg.ff), nn.GELU(), nn.Dropout(cfg.dropout),
                                    nn.Linear(cfg.ff, d))
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
            return x + self.drop(self.ff(self.ln2(x)))

    def sinusoid(pos, dim):
        return sinusoid_encoding(torch, pos, dim)

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.width
            self.config = cfg
            self.inp = io_layer(torch, cfg.feature_dim, d, d, cfg.lipschitz)
            self.out = io_layer(torch, d, d, cfg.feature_dim, cfg.lipschitz)
            self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
            self.text_proj = nn.Linear(cfg.text_dim, d)
            self.blocks = nn.ModuleList([Block() for _ in range(cfg.layers)])
            self.ln_f = nn.LayerNorm(d)
            if cfg.known_dim:
                self.known_proj = nn.Linear(2 * cfg.known_dim, d)
                nn.init.zeros_(self.known_proj.weight)
                nn.init.zeros_(self.known_proj.bias)

        def lipschitz_loss(self):
            """Π softplus(c_i) per MLP, summed over the two MLPs (0 without them)."""
            return lipschitz_loss(torch, (self.inp, self.out))

        def forward(self, x_t, t, text, key_idx, interp_left, interp_w, known=None,
                    known_mask=None, cond_extra=None):
            B, N, D = x_t.shape
            K = key_idx.shape[1]
            d = cfg.width
            xk = torch.gather(x_t, 1, key_idx[:, :, None].expand(B, K, D))
            h = self.inp(xk) + sinusoid(key_idx, d)
            if cfg.known_dim and known is not None:
                idx = key_idx[:, :, None].expand(B, K, cfg.known_dim)
                mk = torch.gather(known_mask, 1, idx)
                kk = torch.gather(known, 1, idx) * mk
                h = h + self.known_proj(torch.cat([kk, mk], dim=-1))
            cond = self.time_mlp(sinusoid(t, d)) + self.text_proj(text)
            if cond_extra is not None:
                cond = cond + cond_extra
            h = torch.cat([cond[:, None, :], h], dim=1)
            for blk in self.blocks:
                h = blk(h)
            hk = h[:, 1:, :]
            right = torch.clamp(interp_left + 1, max=K - 1)
            left_f = torch.gather(hk, 1, interp_left[:, :, None].expand(B, N, d))
            right_f = torch.gather(hk, 1, right[:, :, None].expand(B, N, d))
            w = interp_w[:, :, None]
            hn = left_f * (1.0 - w) + right_f * w
            return self.out(self.ln_f(hn))

    return Denoiser
