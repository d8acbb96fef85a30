# SPDX-License-Identifier: GPL-3.0-or-later
"""sMDM maths shared by training and inference, numpy only: the noise schedule, DDIM step
lists, keyframe masks (uniform, Visvalingam-Whyatt, random) and the interpolation tables the
denoiser takes as inputs.
"""
from __future__ import annotations

import math

import numpy as np

from ..keyframes import vw as _vw

__all__ = [
    "TIMESTEPS",
    "KEY_FRACTION",
    "cosine_alphas_cumprod",
    "ddim_timesteps",
    "key_count",
    "uniform_keys",
    "vw_keys",
    "vw_areas",
    "random_keys",
    "keys_from_areas",
    "interpolation",
    "interpolation_batch",
]

TIMESTEPS = 1000
KEY_FRACTION = 0.2


def cosine_alphas_cumprod(T: int = TIMESTEPS, s: float = 0.008) -> np.ndarray:
    """ᾱ_t for t = 0..T-1 (Nichol & Dhariwal's cosine schedule, betas clipped at 0.999, as
    MDM uses), float64."""
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def ddim_timesteps(steps: int, T: int = TIMESTEPS) -> np.ndarray:
    """``steps`` diffusion steps from T-1 down to 0 (evenly spaced, int64, descending)."""
    steps = int(steps)
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    ts = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(np.int64))
    return ts[::-1].copy()


def key_count(frames: int, fraction: float = KEY_FRACTION) -> int:
    """Keyframes for a clip of ``frames`` frames: round(fraction·N), at least 2, at most N."""
    frames = int(frames)
    return int(min(frames, max(2, round(float(fraction) * frames))))


def uniform_keys(frames: int, k: int) -> np.ndarray:
    """``k`` evenly spaced indices over ``frames`` (first and last included)."""
    return np.unique(np.round(np.linspace(0, frames - 1, k)).astype(np.int64))


def vw_areas(positions) -> np.ndarray:
    """VW significance of every frame of joint positions ``(N, J, 3)`` (ends: +inf)."""
    p = np.asarray(positions, dtype=np.float64)
    return _vw.effective_areas(p.reshape(len(p), -1))


def keys_from_areas(areas, k: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The ``k`` most significant frames of ``areas[start:stop]`` (its ends always kept),
    as indices relative to ``start``. Used to take VW keys of a crop from the whole clip's
    areas (an approximation of running VW on the crop itself)."""
    a = np.array(areas[start:stop], dtype=np.float64)
    if len(a) >= 1:
        a[0] = a[-1] = np.inf
    return _vw.select_count(a, k).astype(np.int64)


def vw_keys(positions, k: int) -> np.ndarray:
    """The keyframe engine's Visvalingam-Whyatt selection of ``k`` frames of ``(N, J, 3)``."""
    return _vw.select_count(vw_areas(positions), k).astype(np.int64)


def random_keys(frames: int, k: int, rng) -> np.ndarray:
    """``k`` random frames, the two ends always included (the ablation's keyframes)."""
    k = int(min(max(k, 2), frames))
    inner = rng.choice(np.arange(1, frames - 1), size=k - 2, replace=False) if k > 2 else []
    return np.sort(np.concatenate([[0, frames - 1], np.asarray(inner, dtype=np.int64)])).astype(np.int64)


def interpolation(keys, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``keys`` (first 0, last frames-1): per frame the slot of the keyframe at or
    before it (int64) and the weight of the next slot (float32), so that
    ``f[n] = (1-w)·key[left] + w·key[left+1]``."""
    keys = np.asarray(keys, dtype=np.int64)
    if len(keys) < 1 or keys[0] != 0 or keys[-1] != frames - 1 or np.any(np.diff(keys) <= 0):
        raise ValueError("keys must be strictly increasing from 0 to frames-1")
    n = np.arange(frames)
    left = np.clip(np.searchsorted(keys, n, side="right") - 1, 0, len(keys) - 1)
    right = np.minimum(left + 1, len(keys) - 1)
    span = (keys[right] - keys[left]).astype(np.float64)
    w = np.where(span > 0, (n - keys[left]) / np.where(span > 0, span, 1.0), 0.0)
    return left.astype(np.int64), w.astype(np.float32)


def interpolation_batch(keys_list, frames: int):
    """Stack :func:`interpolation` for a batch of key sets of equal length."""
    lefts, ws = zip(*(interpolation(k, frames) for k in keys_list))
    return (np.stack([np.asarray(k, dtype=np.int64) for k in keys_list]), np.stack(lefts),
            np.stack(ws))
