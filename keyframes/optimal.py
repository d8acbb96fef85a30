# SPDX-License-Identifier: GPL-3.0-or-later
"""The floor: the best synchronised key set of a given size, by dynamic programming.

With free handles (:func:`.bezier.fit_free`) every segment is fitted from its own samples only,
so the error at a frame depends only on the two keys around it, and the total error of a key
set is a sum of independent segment costs

    cost(i, j) = Σ_{i < t < j} e_t(fit of segment i..j),

where ``e_t`` is the per-frame joint error in cm: by default (``frame_error='mean'``) the mean
over tracked points of the distance between fitted and dense positions, so the total divided by
``T`` is exactly the ``mean`` of :class:`.metrics.ErrorStats` (key frames are exact);
``frame_error='max'`` uses the worst point instead. A dynamic programme over
(number of keys, last key) then finds the key set of exactly ``n_keys`` keys, first and last
frame included, with the smallest total — **the optimum for the mean error under free handles,
among key sets whose gaps are at most ``max_span`` frames**. With ``max_span = T − 1`` it is the
unrestricted optimum; with the default span (4 average gaps) a reducer that lets segments grow
longer over holds can occasionally beat this "floor".

Costs for all ``T × max_span`` candidate segments are computed span by span, vectorised,
including one batched ``points_fn`` call per span; the DP itself is O(n_keys · T · max_span) in
numpy. Meant for benchmarks on clips up to a few thousand frames (the forward kinematics of
about ``T · max_span² / 2`` frames dominates).
"""
from __future__ import annotations

import numpy as np

from . import bezier, metrics

__all__ = ["segment_costs", "optimal_keys", "default_max_span"]


def default_max_span(T: int, n_keys: int) -> int:
    """Four times the average gap, at least 8, at most 160 (and at most T − 1)."""
    if T < 2:
        return 1
    gap = (T - 1) / max(n_keys - 1, 1)
    span = int(np.ceil(4 * gap))
    return int(min(max(span, 8), 160, T - 1))


def _frame_error(dist, frame_error):
    if frame_error == "mean":
        return dist.mean(axis=1)
    if frame_error == "max":
        return dist.max(axis=1)
    raise ValueError(f"frame_error must be 'mean' or 'max', got {frame_error!r}")


def segment_costs(frames, values, points_fn, max_span, dense_points=None, frame_error="mean",
                  chunk_rows=200_000, with_max=False):
    """``cost[i, s]`` = error sum over the interior of segment ``(i, i+s)`` fitted with free
    handles, for ``s = 1..max_span`` (``cost[:, 0]`` unused; ``inf`` where ``i + s ≥ T``).

    With ``with_max`` also returns ``worst[i, s]``, the largest distance of any point at any
    interior frame of that segment (cm)."""
    frames = np.asarray(frames, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    T = len(frames)
    S = int(max_span)
    if dense_points is None:
        dense_points = metrics.positions(points_fn, values, np.arange(T))
    slopes = np.gradient(values, frames, axis=0) if T >= 2 else np.zeros_like(values)
    cost = np.full((T, S + 1), np.inf)
    cost[: T - 1, 1] = 0.0  # adjacent keys: no interior frames
    worst = cost.copy() if with_max else None
    for s in range(2, S + 1):
        n_seg = T - s
        if n_seg <= 0:
            break
        # segments of this span, in chunks that keep the FK batch bounded
        per = max(1, chunk_rows // (s - 1))
        for c0 in range(0, n_seg, per):
            starts = np.arange(c0, min(n_seg, c0 + per))
            hr, hl, it = bezier.fit_segments_free(frames, values, starts, starts + s, slopes)
            fitted = bezier.eval_segments(it, values, hr, hl)
            pos = metrics.positions(points_fn, fitted, it.idx)
            d = pos - dense_points[it.idx]
            dist = np.sqrt(np.einsum("...i,...i->...", d, d))
            e = _frame_error(dist, frame_error)
            cost[starts, s] = it.segsum(e)
            if with_max:
                m = np.zeros(len(starts))
                np.maximum.at(m, it.seg, dist.max(axis=1))
                worst[starts, s] = m
    return (cost, worst) if with_max else cost


def optimal_keys(frames, values, points_fn, n_keys, handles="free", max_span=None,
                 frame_error="mean", return_cost=False):
    """Key indices (sorted, first and last frame included) of the ``n_keys`` key set that
    minimises the summed per-frame error under free handles, gaps at most ``max_span``.

    ``handles`` must be ``'free'`` (segment independence is what makes the DP exact). If
    ``n_keys`` keys cannot cover the clip with gaps ≤ ``max_span``, ``max_span`` is raised to
    the smallest value that can. With ``return_cost`` also returns the optimal total.
    """
    if handles != "free":
        raise ValueError("the DP floor is exact only for free handles")
    frames = np.asarray(frames, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    T = len(frames)
    K = int(min(max(int(n_keys), 2), T)) if T >= 2 else T
    if T <= 2 or K >= T:
        idx = np.arange(T, dtype=np.intp)
        return (idx, 0.0) if return_cost else idx
    S = default_max_span(T, K) if max_span is None else int(max_span)
    S = int(min(max(S, int(np.ceil((T - 1) / (K - 1)))), T - 1))
    cost = segment_costs(frames, values, points_fn, S, frame_error=frame_error)
    # best[j] = minimal cost of covering 0..j with k keys, the last at j
    INF = np.inf
    best = np.full(T, INF)
    best[0] = 0.0
    back = np.zeros((K, T), dtype=np.int32)
    for k in range(1, K):
        new = np.full(T, INF)
        arg = np.zeros(T, dtype=np.int32)
        for s in range(1, S + 1):
            # from key at j - s to key at j
            cand = best[: T - s] + cost[: T - s, s]
            better = cand < new[s:]
            if np.any(better):
                new[s:] = np.where(better, cand, new[s:])
                arg[s:] = np.where(better, s, arg[s:])
        best = new
        back[k] = arg
    if not np.isfinite(best[T - 1]):
        raise RuntimeError("no feasible key set (internal error)")
    keys = [T - 1]
    j = T - 1
    for k in range(K - 1, 0, -1):
        j = j - int(back[k, j])
        keys.append(j)
    keys = np.asarray(keys[::-1], dtype=np.intp)
    if keys[0] != 0:
        raise RuntimeError("DP backtrack did not reach frame 0 (internal error)")
    return (keys, float(best[T - 1])) if return_cost else keys
