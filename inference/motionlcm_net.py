# SPDX-License-Identifier: GPL-3.0-or-later
"""MotionLCM-V2 as PyTorch modules (training and ONNX export), and the numpy maths that
training and the runtime share (sampling timesteps, consistency boundary coefficients).

torch is passed in (``build_vae(torch, cfg)``), so this module imports without torch.

Parts (see ``docs/motionlcm.md``)::

    VAE       x (B, N, 257) normalised features, frame_idx (N,)
              encoder: [2T distribution tokens] + Linear(x) + sinusoid(frame) -> transformer
              -> latent adapter Linear(width -> latent_dim) -> mu, logvar (B, T, latent_dim)
              decoder: Linear(latent_dim -> width) + token embedding, frame queries
              sinusoid(frame) -> Linear; transformer over [T latent tokens, N queries]
              -> LayerNorm -> Linear -> x (B, N, 257)
    Denoiser  MLD++: tokens [time (+ length, + guidance w for the student), text, T latents];
              text through Linear only (no ReLU), latents through a trainable Linear (the two
              MLD++ fixes); pre-LN transformer with MLD's long skips (in, middle, out blocks);
              LayerNorm -> Linear -> x0 of the latent tokens. The student (consistency model)
              returns c_skip(t) z_t + c_out(t) x0 (LCM's boundary condition). ``residual``
              (B, L, T+2, width) is added after block i (the ControlNet's outputs; zeros:
              no control).
    ControlNet  trajectory encoder (transformer over [T queries] + per-frame Linear(pelvis/100,
              mask) + sinusoid(frame)), its T outputs added to the latent tokens of a trainable
              copy of the denoiser; each copy block's output -> zero-initialised Linear
              -> residual (B, L, T+2, width).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .smdm_net import sinusoid_encoding as _sinusoid

__all__ = ["VaeConfig", "DenoiserConfig", "ControlConfig", "build_vae", "build_denoiser",
           "build_controlnet", "build_decoder_export", "root_trajectory", "lcm_timesteps", "boundary_coefficients",
           "DECODER_INPUTS", "DENOISER_INPUTS", "CONTROLNET_INPUTS"]

DECODER_INPUTS = ("z", "frame_idx")
DENOISER_INPUTS = ("z_t", "t", "text", "length", "w", "residual")
CONTROLNET_INPUTS = ("z_t", "t", "text", "length", "w", "control", "control_mask")
#: LCM's boundary condition: sigma_data and the timestep scaling.
SIGMA_DATA = 0.5
TIMESTEP_SCALING = 10.0
#: Control positions are in cm; the networks see metres.
CONTROL_SCALE = 0.01


class _Config:
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class VaeConfig(_Config):
    feature_dim: int = 257
    width: int = 256
    enc_layers: int = 3
    dec_layers: int = 3
    heads: int = 4
    ff: int = 512
    dropout: float = 0.1
    tokens: int = 8           # latent tokens T
    latent_dim: int = 32      # per token, set by the latent adapter


@dataclass
class DenoiserConfig(_Config):
    tokens: int = 8
    latent_dim: int = 32
    text_dim: int = 384
    width: int = 256
    layers: int = 5           # odd: (layers-1)/2 in, 1 middle, (layers-1)/2 out (MLD's skips)
    heads: int = 4
    ff: int = 512
    dropout: float = 0.1
    guidance_embed: bool = False   # the student takes w as an input
    consistency: bool = False      # the student returns c_skip z_t + c_out x0
    timesteps: int = 1000


@dataclass
class ControlConfig(_Config):
    control_dim: int = 3
    traj_layers: int = 2


# =========================================================================== numpy maths


def lcm_timesteps(steps: int, skip: int, T: int = 1000) -> np.ndarray:
    """Consistency sampling timesteps (descending): LCM's rule over the distillation grid
    ``skip-1, 2 skip-1, …, T-1``: every ``len(grid)//steps``-th from the top. skip 10:
    1 -> [999], 2 -> [999, 499], 4 -> [999, 749, 499, 249]."""
    grid = np.arange(skip - 1, T, skip, dtype=np.int64)
    steps = int(steps)
    if not 1 <= steps <= len(grid):
        raise ValueError(f"steps must be in [1, {len(grid)}], got {steps}")
    return grid[::-1][::len(grid) // steps][:steps].copy()


def boundary_coefficients(t):
    """LCM's ``(c_skip, c_out)`` at timesteps ``t`` (array-like): c_skip(0) = 1, c_out(0) = 0."""
    s = np.asarray(t, dtype=np.float64) * TIMESTEP_SCALING
    return SIGMA_DATA ** 2 / (s ** 2 + SIGMA_DATA ** 2), s / np.sqrt(s ** 2 + SIGMA_DATA ** 2)


# =========================================================================== torch parts


def _block(torch, d, heads, ff, dropout):
    nn = torch.nn

    class Block(nn.Module):
        """Pre-LN transformer block."""

        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
            self.ln2 = nn.LayerNorm(d)
            self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(ff, d))
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
            return x + self.drop(self.ff(self.ln2(x)))

    return Block()


def root_trajectory(torch, f_raw, layout):
    """Root (pelvis) positions ``(…, N, 3)`` of raw features ``(…, N, D)``, differentiable:
    the same integration as ``motion.features`` (frame 0 at the ground origin facing +Z)."""
    w = f_raw[..., layout["root_rot_vel"]][..., 0]
    theta = torch.cat([torch.zeros_like(w[..., :1]), torch.cumsum(w[..., 1:], dim=-1)], dim=-1)
    v = f_raw[..., layout["root_lin_vel"]]
    th = theta[..., :-1]
    vx, vz = v[..., 1:, 0], v[..., 1:, 1]
    c, s = torch.cos(th), torch.sin(th)
    dx = c * vx + s * vz
    dz = -s * vx + c * vz
    zero = torch.zeros_like(w[..., :1])
    x = torch.cat([zero, torch.cumsum(dx, dim=-1)], dim=-1)
    z = torch.cat([zero, torch.cumsum(dz, dim=-1)], dim=-1)
    y = f_raw[..., layout["root_height"]][..., 0]
    return torch.stack([x, y, z], dim=-1)


def build_vae(torch, cfg: VaeConfig | None = None):
    nn = torch.nn
    cfg = cfg or VaeConfig()
    d, T = cfg.width, cfg.tokens

    class Vae(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.enc_in = nn.Linear(cfg.feature_dim, d)
            self.dist_tokens = nn.Parameter(torch.randn(2 * T, d) * 0.02)
            self.enc_blocks = nn.ModuleList(
                [_block(torch, d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.enc_layers)])
            self.enc_ln = nn.LayerNorm(d)
            self.adapter = nn.Linear(d, cfg.latent_dim)          # the latent adapter (MLD++)
            self.dec_in = nn.Linear(cfg.latent_dim, d)
            self.dec_tokens = nn.Parameter(torch.randn(T, d) * 0.02)
            self.query = nn.Linear(d, d)
            self.dec_blocks = nn.ModuleList(
                [_block(torch, d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(cfg.dec_layers)])
            self.dec_ln = nn.LayerNorm(d)
            self.dec_out = nn.Linear(d, cfg.feature_dim)

        def encode(self, x, frame_idx):
            B = x.shape[0]
            h = self.enc_in(x) + _sinusoid(torch, frame_idx, d)
            h = torch.cat([self.dist_tokens[None].expand(B, -1, -1), h], dim=1)
            for blk in self.enc_blocks:
                h = blk(h)
            dist = self.adapter(self.enc_ln(h[:, :2 * T]))
            return dist[:, :T], dist[:, T:]

        def decode(self, z, frame_idx):
            B = z.shape[0]
            N = frame_idx.shape[0]
            q = self.query(_sinusoid(torch, frame_idx, d))[None].expand(B, N, d)
            h = torch.cat([self.dec_in(z) + self.dec_tokens, q], dim=1)
            for blk in self.dec_blocks:
                h = blk(h)
            return self.dec_out(self.dec_ln(h[:, T:]))

        def forward(self, x, frame_idx, sample: bool = True):
            mu, logvar = self.encode(x, frame_idx)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
            return self.decode(z, frame_idx), mu, logvar

    return Vae()


def build_decoder_export(torch, vae, lat_mean, lat_std):
    """The VAE decoder on *normalised* latents (what the diffusion models make):
    ``x = decode(z · std + mean)``; the ONNX ``decoder.onnx``."""
    nn = torch.nn

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae
            self.register_buffer("lat_mean", torch.as_tensor(lat_mean, dtype=torch.float32))
            self.register_buffer("lat_std", torch.as_tensor(lat_std, dtype=torch.float32))

        def forward(self, z, frame_idx):
            return self.vae.decode(z * self.lat_std + self.lat_mean, frame_idx)

    return Decoder()


def build_denoiser(torch, cfg: DenoiserConfig | None = None):
    nn = torch.nn
    cfg = cfg or DenoiserConfig()
    d, T, L = cfg.width, cfg.tokens, cfg.layers
    if L % 2 != 1:
        raise ValueError(f"layers must be odd (MLD's skip structure), got {L}")
    half = L // 2

    def mlp():
        return nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    class Denoiser(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.latent_in = nn.Linear(cfg.latent_dim, d)       # MLD++ Op1
            self.token_pos = nn.Parameter(torch.randn(T, d) * 0.02)
            self.text_proj = nn.Linear(cfg.text_dim, d)         # MLD++ Op2: no ReLU before
            self.time_mlp = mlp()
            self.length_mlp = mlp()
            if cfg.guidance_embed:
                self.w_mlp = mlp()
                nn.init.zeros_(self.w_mlp[2].weight)            # the student starts as the teacher
                nn.init.zeros_(self.w_mlp[2].bias)
            self.blocks = nn.ModuleList(
                [_block(torch, d, cfg.heads, cfg.ff, cfg.dropout) for _ in range(L)])
            self.skip = nn.ModuleList([nn.Linear(2 * d, d) for _ in range(half)])
            self.ln_f = nn.LayerNorm(d)
            self.latent_out = nn.Linear(d, cfg.latent_dim)
            c_skip, c_out = boundary_coefficients(np.arange(cfg.timesteps))
            self.register_buffer("c_skip", torch.tensor(c_skip, dtype=torch.float32), persistent=False)
            self.register_buffer("c_out", torch.tensor(c_out, dtype=torch.float32), persistent=False)

        def hidden(self, z_t, t, text, length, w=None, latent_add=None, residual=None):
            """Token states after each block (list of L) and the final states."""
            cond = self.time_mlp(_sinusoid(torch, t, d)) + self.length_mlp(_sinusoid(torch, length, d))
            if cfg.guidance_embed:
                cond = cond + self.w_mlp(_sinusoid(torch, w * 100.0, d))
            lat = self.latent_in(z_t) + self.token_pos
            if latent_add is not None:
                lat = lat + latent_add
            h = torch.cat([cond[:, None], self.text_proj(text)[:, None], lat], dim=1)
            states, skips = [], []
            for i, blk in enumerate(self.blocks):
                if i > half:
                    h = self.skip[i - half - 1](torch.cat([h, skips.pop()], dim=-1))
                h = blk(h)
                if residual is not None:
                    h = h + residual[:, i]
                if i < half:
                    skips.append(h)
                states.append(h)
            return states, h

        def forward(self, z_t, t, text, length, w=None, residual=None):
            _, h = self.hidden(z_t, t, text, length, w, residual=residual)
            x0 = self.latent_out(self.ln_f(h[:, 2:]))
            if cfg.consistency:
                return (self.c_skip[t][:, None, None] * z_t
                        + self.c_out[t][:, None, None] * x0)
            return x0

    return Denoiser()


def build_controlnet(torch, dcfg: DenoiserConfig, ccfg: ControlConfig | None = None):
    """A ControlNet for a denoiser of config ``dcfg``; copy the base weights into ``.copy``
    (``net.copy.load_state_dict(base.state_dict())``) before training."""
    nn = torch.nn
    ccfg = ccfg or ControlConfig()
    d, T, L = dcfg.width, dcfg.tokens, dcfg.layers

    class ControlNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = ccfg
            self.traj_in = nn.Linear(ccfg.control_dim + 1, d)
            self.traj_tokens = nn.Parameter(torch.randn(T, d) * 0.02)
            self.traj_blocks = nn.ModuleList(
                [_block(torch, d, dcfg.heads, dcfg.ff, dcfg.dropout) for _ in range(ccfg.traj_layers)])
            self.traj_ln = nn.LayerNorm(d)
            self.copy = build_denoiser(torch, dcfg)
            self.zero = nn.ModuleList([nn.Linear(d, d) for _ in range(L)])
            for lin in self.zero:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

        def forward(self, z_t, t, text, length, w, control, control_mask):
            B, N = control_mask.shape
            m = control_mask[..., None]
            frame = torch.arange(N, device=control.device)
            h = self.traj_in(torch.cat([control * CONTROL_SCALE * m, m], dim=-1)) \
                + _sinusoid(torch, frame, d)
            h = torch.cat([self.traj_tokens[None].expand(B, -1, -1), h], dim=1)
            for blk in self.traj_blocks:
                h = blk(h)
            traj = self.traj_ln(h[:, :T])
            states, _ = self.copy.hidden(z_t, t, text, length, w, latent_add=traj)
            return torch.stack([z(s) for z, s in zip(self.zero, states)], dim=1)

    return ControlNet()

