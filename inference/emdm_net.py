# SPDX-License-Identifier: GPL-3.0-or-later
"""EMDM (a conditional denoising diffusion GAN over motion) as PyTorch modules, and the numpy
maths that training and the runtime share: the T-step grid over the 1000-step cosine schedule
and the posterior between two of its levels.

torch is passed in (``build_generator(torch, cfg)``), so this module imports without torch and
the extension needs it only for the PyTorch path.

::

    Generator      x_t (B, N, 257) normalised features, t (B,) int64 (a grid timestep),
                   text (B, 384) caption embedding (zeros = unconditional), z (B, 64) ~ N(0, I)
      tokens       [MLP(sin t), Linear(text), MLP_4(z) (LeakyReLU 0.2)]  +  per frame
                   io_layer(x_t) + sin(frame)       (sMDM's Lipschitz sine MLP, or a Linear)
      pre-LN transformer over the 3 + N tokens (attention over every frame, MDM-style);
      the 3 prefix outputs dropped, LayerNorm, io_layer -> x0 (B, N, 257)
    Discriminator  x_prev (B, N, 257) the denoised sample (level k-1), x_t (B, N, 257) the
                   noisier one (level k), t, text
      tokens       [MLP(sin t), Linear(text)] + per frame Linear([x_prev, x_t]) + sin(frame)
      pre-LN transformer; LayerNorm; MLP head (LeakyReLU 0.2) on the first token -> logit (B,)

The generator's layers are named as sMDM's denoiser (``inp``, ``out``, ``time_mlp``,
``text_proj``, ``blocks``, ``ln_f``), so weights of the same sizes load by name
(``train_emdm --init-from``).

**The grid.** T denoising steps use the levels k = 1..T of the 1000-step cosine schedule at
timesteps ``t_k = k·1000/T − 1`` (T = 10: 99, 199, …, 999); level 0 is the clean motion
(ᾱ = 1). A step from level k goes to level j < k through the DDPM posterior
``q(x_j | x_k, x0) = N(c0·x0 + ck·x_k, σ²)`` (:func:`posterior_coefficients`), with x0 the
generator's prediction; from level 1 (or whichever level is last) the prediction itself is
the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motionlcm_net import _block, _Config, root_trajectory
from .smdm_core import TIMESTEPS, cosine_alphas_cumprod
from .smdm_net import DenoiserConfig, denoiser_class, io_layer, lipschitz_loss, sinusoid_encoding

__all__ = ["GeneratorConfig", "DiscriminatorConfig", "build_generator", "build_discriminator",
           "joint_positions", "grid_timesteps", "level_alphas", "posterior_coefficients",
           "sampling_levels", "step_choices", "input_names", "INPUT_NAMES", "KEY_INPUTS",
           "OUTPUT_NAMES", "Z_DIM"]

INPUT_NAMES = ("x_t", "t", "text", "z")
KEY_INPUTS = ("key_idx", "interp_left", "interp_w")   # the sparse generator's (sMDM's)
OUTPUT_NAMES = ("x0",)
Z_DIM = 64


@dataclass
class GeneratorConfig(_Config):
    feature_dim: int = 257
    text_dim: int = 384
    z_dim: int = Z_DIM
    width: int = 128
    layers: int = 4
    heads: int = 4
    ff: int = 256
    dropout: float = 0.1
    lipschitz: bool = True     # sMDM's Lipschitz sine MLPs in and out (False: one Linear each)
    sparse: bool = False       # sMDM's denoiser over keyframe tokens (+ z in its condition)


@dataclass
class DiscriminatorConfig(_Config):
    feature_dim: int = 257
    text_dim: int = 384
    width: int = 128
    layers: int = 2
    heads: int = 4
    ff: int = 256


# =========================================================================== numpy maths


def grid_timesteps(T: int) -> np.ndarray:
    """Timesteps ``t_k`` of levels k = 1..T (ascending, int64): ``k·1000/T − 1``."""
    T = int(T)
    if not 1 <= T <= TIMESTEPS:
        raise ValueError(f"T must be in [1, {TIMESTEPS}], got {T}")
    return (np.arange(1, T + 1, dtype=np.int64) * TIMESTEPS) // T - 1


def level_alphas(T: int) -> np.ndarray:
    """ᾱ of levels 0..T (float64; level 0 = the clean motion, 1.0)."""
    return np.concatenate([[1.0], cosine_alphas_cumprod(TIMESTEPS)[grid_timesteps(T)]])


def posterior_coefficients(a_to, a_from):
    """``(c0, ck, sigma)`` of ``q(x_to | x_from, x0) = N(c0·x0 + ck·x_from, sigma²)`` for
    ᾱ ``a_to`` > ``a_from`` (numbers or arrays): DDPM's posterior over the one step from ᾱ
    ``a_from`` to ``a_to``. ``a_to`` = 1 (the clean level) gives (1, 0, 0): x0 itself."""
    a_to, a_from = np.asarray(a_to, np.float64), np.asarray(a_from, np.float64)
    alpha = a_from / a_to
    beta = 1.0 - alpha
    c0 = np.sqrt(a_to) * beta / (1.0 - a_from)
    ck = np.sqrt(alpha) * (1.0 - a_to) / (1.0 - a_from)
    sigma = np.sqrt(np.maximum(beta * (1.0 - a_to) / (1.0 - a_from), 0.0))
    return c0, ck, sigma


def step_choices(T: int) -> list[int]:
    """The step counts a model trained on T levels can sample with: the divisors of T (their
    levels are a subset of the trained ones)."""
    return [s for s in range(1, int(T) + 1) if int(T) % s == 0]


def sampling_levels(T: int, steps: int) -> np.ndarray:
    """The trained levels ``steps`` sampling steps visit, descending (T = 10, 5 steps:
    10, 8, 6, 4, 2)."""
    T, steps = int(T), int(steps)
    if steps not in step_choices(T):
        raise ValueError(f"steps must divide {T}, got {steps}")
    return np.arange(T, 0, -(T // steps), dtype=np.int64)


# =========================================================================== torch parts


def joint_positions(torch, f_raw, layout):
    """World joint positions ``(…, N, J, 3)`` of raw features ``(…, N, D)``, differentiable:
    the integrated root (:func:`~.motionlcm_net.root_trajectory`) plus the heading-frame
    joint positions turned by the integrated heading (``motion.features.features_to_positions``)."""
    root = root_trajectory(torch, f_raw, layout)
    w = f_raw[..., layout["root_rot_vel"]][..., 0]
    theta = torch.cat([torch.zeros_like(w[..., :1]), torch.cumsum(w[..., 1:], dim=-1)], dim=-1)
    c, s = torch.cos(theta)[..., None], torch.sin(theta)[..., None]
    ric = f_raw[..., layout["joint_positions"]].unflatten(-1, (-1, 3))
    x = c * ric[..., 0] + s * ric[..., 2] + root[..., None, 0]
    z = -s * ric[..., 0] + c * ric[..., 2] + root[..., None, 2]
    return torch.cat([root[..., None, :], torch.stack([x, ric[..., 1], z], dim=-1)], dim=-2)


def _encoder_class(torch):
    nn = torch.nn

    class Encoder(nn.Module):
        """What the generator and the discriminator share: the time and text tokens, the
        frame sinusoid, pre-LN transformer blocks and the final LayerNorm."""

        def __init__(self, d, text_dim, layers, heads, ff, dropout):
            super().__init__()
            self.width = d
            self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
            self.text_proj = nn.Linear(text_dim, d)
            self.blocks = nn.ModuleList([_block(torch, d, heads, ff, dropout)
                                         for _ in range(layers)])
            self.ln_f = nn.LayerNorm(d)

        def encode(self, frames, t, text, *more):
            """``frames`` (B, N, d) per-frame tokens; returns the normalised outputs of
            [time, text, *more, frames] and the number of prefix tokens."""
            d = self.width
            pos = sinusoid_encoding(torch, torch.arange(frames.shape[1], device=frames.device), d)
            prefix = [self.time_mlp(sinusoid_encoding(torch, t, d)), self.text_proj(text), *more]
            h = torch.cat([torch.stack(prefix, dim=1), frames + pos], dim=1)
            for blk in self.blocks:
                h = blk(h)
            return self.ln_f(h), len(prefix)

    return Encoder


def input_names(config: GeneratorConfig) -> tuple:
    """The generator's inputs, in order: x_t, t, text, z (+ sMDM's keyframe inputs when sparse)."""
    return INPUT_NAMES + (KEY_INPUTS if config.sparse else ())


def _z_mlp(torch, z_dim, d, zero_last: bool):
    nn = torch.nn
    layers = [nn.Linear(z_dim, d)]
    for _ in range(3):
        layers += [nn.LeakyReLU(0.2), nn.Linear(d, d)]
    if zero_last:  # starts without effect: a generator initialised from sMDM is sMDM
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


def build_generator(torch, config: GeneratorConfig | None = None):
    """A fresh generator ``G(x_t, t, text, z[, key_idx, interp_left, interp_w]) -> x0`` for
    ``config``. Sparse: sMDM's denoiser (attention over the keyframe tokens only, the frames
    between rebuilt by interpolation) whose condition token adds ``MLP_4(z)``; its weights
    carry sMDM's names, so an sMDM denoiser of the same sizes loads into it whole."""
    nn = torch.nn
    cfg = config or GeneratorConfig()
    d = cfg.width
    if cfg.sparse:
        dcfg = DenoiserConfig(feature_dim=cfg.feature_dim, text_dim=cfg.text_dim, width=d,
                              layers=cfg.layers, heads=cfg.heads, ff=cfg.ff,
                              dropout=cfg.dropout, lipschitz=cfg.lipschitz)

        class SparseGenerator(denoiser_class(torch, dcfg)):
            def __init__(self):
                super().__init__()
                self.config = cfg
                self.z_mlp = _z_mlp(torch, cfg.z_dim, d, zero_last=True)

            def forward(self, x_t, t, text, z, key_idx, interp_left, interp_w):
                return super().forward(x_t, t, text, key_idx, interp_left, interp_w,
                                       cond_extra=self.z_mlp(z))

        return SparseGenerator()

    class Generator(_encoder_class(torch)):
        def __init__(self):
            super().__init__(d, cfg.text_dim, cfg.layers, cfg.heads, cfg.ff, cfg.dropout)
            self.config = cfg
            self.inp = io_layer(torch, cfg.feature_dim, d, d, cfg.lipschitz)
            self.out = io_layer(torch, d, d, cfg.feature_dim, cfg.lipschitz)
            self.z_mlp = _z_mlp(torch, cfg.z_dim, d, zero_last=False)

        def lipschitz_loss(self):
            return lipschitz_loss(torch, (self.inp, self.out))

        def forward(self, x_t, t, text, z):
            h, n = self.encode(self.inp(x_t), t, text, self.z_mlp(z))
            return self.out(h[:, n:])

    return Generator()


def build_discriminator(torch, config: DiscriminatorConfig | None = None):
    """A fresh discriminator ``D(x_prev, x_t, t, text) -> logit (B,)`` for ``config``."""
    nn = torch.nn
    cfg = config or DiscriminatorConfig()
    d = cfg.width

    class Discriminator(_encoder_class(torch)):
        def __init__(self):
            super().__init__(d, cfg.text_dim, cfg.layers, cfg.heads, cfg.ff, 0.0)
            self.config = cfg
            self.inp = nn.Linear(2 * cfg.feature_dim, d)
            self.head = nn.Sequential(nn.Linear(d, d), nn.LeakyReLU(0.2), nn.Linear(d, 1))

        def forward(self, x_prev, x_t, t, text):
            h, _ = self.encode(self.inp(torch.cat([x_prev, x_t], dim=-1)), t, text)
            return self.head(h[:, 0])[:, 0]

    return Discriminator()
