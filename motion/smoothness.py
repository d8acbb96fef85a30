# SPDX-License-Identifier: GPL-3.0-or-later
"""Smoothness of motion as the jerk of its joint positions (numpy only, bpy-free): the
transition measures of FlowMDM (Barquero et al., CVPR 2024), for timelines of prompts.

::

    from sparse_motion.motion import smoothness
    j = smoothness.jerk(positions_cm, fps=20)                 # (T-3,) cm/s³
    wins = smoothness.boundary_windows([120, 260], len(positions_cm))
    s = smoothness.summarize(smoothness.window_curves(positions_cm, wins, 20), 20,
                             reference=real_mean_jerk)

**Jerk** of a frame, as FlowMDM computes it (``calculate_jerk``): the third finite difference
of every joint's position, its L1 norm over x, y and z, and the maximum over the joints; here
multiplied by ``fps³`` so it is in cm/s³ for positions in cm (FlowMDM leaves it per frame³:
at one frame rate the two differ by a constant). Entry ``t`` spans frames ``t .. t+3``.
A motion at constant velocity has zero jerk; a pose that jumps has a spike.

**Windows**: FlowMDM cuts ``2·half`` frames around each boundary ``b`` (frames
``b-half .. b+half-1``), a window giving ``2·half − 3`` jerk values. Its transition length
``2·half`` is 30 frames on BABEL (30 fps: ±0.5 s) and 60 on HumanML3D (20 fps: ±1.5 s); the
default here is ``half`` = :data:`HALF_WINDOW` = 15 (±0.75 s at 20 fps). :func:`boundary_windows` keeps the boundaries with a
whole window inside the motion; :func:`random_windows` draws windows of the same size at
random frames of other motions (real clips, segment interiors), the reference.

:func:`summarize` of a set of windows' jerk curves ``(W, 2·half − 3)``:

``peak_jerk``
    mean over the windows of each window's maximum jerk (cm/s³).
``area_jerk``
    mean over the windows of the area under each window's jerk curve (sum × 1/fps, cm/s²).
``flowmdm_peak_jerk``
    FlowMDM's *Peak Jerk*: the maximum over the window's frames of the jerk curve averaged
    over the windows.
``flowmdm_auj``
    FlowMDM's *Area Under the Jerk*: the L1 distance (sum × 1/fps) between that mean curve
    and ``reference``, the mean jerk of real motion (FlowMDM's ``GT_jerk``); ``nan`` without
    a reference. The last two depend on the number of windows (a mean of few windows is
    noisier): compare them only between sets of the same size.
``mean_jerk``, ``windows``
    the mean of every value, and the number of windows.
"""
from __future__ import annotations

import numpy as np

__all__ = ["jerk", "boundary_windows", "random_windows", "window_curves", "summarize",
           "lowpass", "HALF_WINDOW", "MEASURES"]

#: Frames each side of a boundary (a window of 30 frames, FlowMDM's transition length on BABEL).
HALF_WINDOW = 15
#: The measures of :func:`summarize`, in table order.
MEASURES = ("peak_jerk", "area_jerk", "flowmdm_peak_jerk", "flowmdm_auj")


def jerk(positions, fps: float = 1.0) -> np.ndarray:
    """``(T-3,)`` jerk per frame of joint positions ``(T, J, 3)``: the max over joints of the
    L1 norm of the third finite difference, times ``fps³`` (see the module docstring)."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(f"positions must be (T, J, 3), got shape {p.shape}")
    if p.shape[0] < 4:
        raise ValueError(f"jerk needs at least 4 frames, got {p.shape[0]}")
    if not np.all(np.isfinite(p)):
        raise ValueError("positions contain NaN or infinite values")
    d3 = np.diff(p, n=3, axis=0)
    return np.abs(d3).sum(axis=-1).max(axis=-1) * float(fps) ** 3


def boundary_windows(boundaries, frames: int, half: int = HALF_WINDOW) -> list:
    """``[(start, end), …]`` windows ``[b-half, b+half)`` around each boundary ``b`` (the first
    frame of the next segment) that lie whole inside ``frames`` frames."""
    half = int(half)
    if half < 2:
        raise ValueError(f"half must be at least 2 frames, got {half}")
    return [(int(b) - half, int(b) + half) for b in boundaries
            if int(b) - half >= 0 and int(b) + half <= int(frames)]


def random_windows(lengths, n: int, size: int, rng) -> list:
    """``n`` windows ``(index, start)`` of ``size`` frames in motions of ``lengths`` frames,
    every start frame of every motion long enough equally likely (so longer motions give more
    windows), drawn with ``rng`` (a seed or a Generator)."""
    rng = np.random.default_rng(rng)
    room = np.maximum(np.asarray(lengths, dtype=np.int64) - int(size) + 1, 0)
    total = int(room.sum())
    if total == 0:
        raise ValueError(f"no motion is {size} frames long")
    flat = rng.integers(total, size=int(n))
    ends = np.cumsum(room)
    idx = np.searchsorted(ends, flat, side="right")
    starts = flat - (ends[idx] - room[idx])
    return [(int(i), int(s)) for i, s in zip(idx, starts)]


def window_curves(positions, windows, fps: float) -> np.ndarray:
    """``(W, size − 3)`` jerk curves of the windows ``(start, end)`` of one motion's joint
    positions ``(T, J, 3)`` (all windows the same size)."""
    p = np.asarray(positions, dtype=np.float64)
    curves = [jerk(p[a:b], fps) for a, b in windows]
    if not curves:
        return np.zeros((0, 0))
    if len({len(c) for c in curves}) != 1:
        raise ValueError("the windows must all have the same size")
    return np.stack(curves)


def summarize(curves, fps: float, reference: float | None = None) -> dict:
    """The measures (module docstring) of jerk curves ``(W, L)`` of ``W`` windows;
    ``reference``: real motion's mean jerk for ``flowmdm_auj``."""
    c = np.asarray(curves, dtype=np.float64)
    nan = float("nan")
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        return {"peak_jerk": nan, "area_jerk": nan, "flowmdm_peak_jerk": nan,
                "flowmdm_auj": nan, "mean_jerk": nan, "windows": 0}
    dt = 1.0 / float(fps)
    mean_curve = c.mean(axis=0)
    auj = nan if reference is None else float(np.abs(mean_curve - float(reference)).sum() * dt)
    return {"peak_jerk": float(c.max(axis=1).mean()),
            "area_jerk": float(c.sum(axis=1).mean() * dt),
            "flowmdm_peak_jerk": float(mean_curve.max()),
            "flowmdm_auj": auj,
            "mean_jerk": float(c.mean()),
            "windows": int(c.shape[0])}


def lowpass(x, hz: float, fps: float) -> np.ndarray:
    """``x`` (T, C) filtered along its frames: the path minimising ``|p − x|² + lam |Δ³p|²``
    with ``lam = 1 / (2 sin(π hz / fps))⁶``, whose gain at ``hz`` is one half (a response
    ``1 / (1 + lam (2 sin(ω/2))⁶)``: flat below, falling as the sixth power above). ``hz`` 0
    (or at or above the Nyquist frequency) returns a copy; the first and last frames move
    too (nothing is held)."""
    from .footlock import smooth_path

    out = np.array(x, dtype=np.float64)
    hz, fps = float(hz), float(fps)
    if out.ndim != 2:
        raise ValueError(f"x must be (T, C), got shape {out.shape}")
    if hz <= 0 or hz >= fps / 2 or len(out) < 4:
        return out
    lam = 1.0 / (2.0 * np.sin(np.pi * hz / fps)) ** 6
    every = np.ones(len(out), dtype=bool)
    return smooth_path(out, ~every, every, lam)
