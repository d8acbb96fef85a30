# SPDX-License-Identifier: GPL-3.0-or-later
"""Reduce dense per-frame channel values to sparse, synchronised Bezier keys.

All channels are keyed on the same frames, chosen to keep the world positions of the tracked
points (cm) close to the dense motion. Pipeline (:func:`reduce_keys`):

1. **Continuity** (:mod:`.continuity`): quaternion signs, Euler wraps, per channel group.
2. **Dense positions**: one call of the caller's forward kinematics ``points_fn``.
3. **Error model** (the *proxy*, :class:`ProxyModel`). Measuring a candidate segment exactly
   needs forward kinematics of its frames, far too slow for all candidates. Instead the
   kinematics are linearised once: ``points_fn`` is called on a few probe frames with every
   channel nudged in turn (one batched call of ``n_probe·(C+1)`` rows), which gives the
   Jacobian ``J`` there, and ``M = mean over probes and points of JᵀJ``. A channel-space
   fitting residual ``r`` at a frame then costs ``sqrt(rᵀ M r)`` ≈ the RMS over points of the
   position error (cm). Handle fitting is linear and the same for every channel, so fitting the
   transformed channels ``Y = values·Lᵀ`` (``M = LᵀL``) gives exactly the transformed
   residuals: the proxy cost of a segment is a small least-squares fit in ``Y``, further reduced
   to the ``proxy_rank`` principal directions of its acceleration. On motion capture a dynamic
   programme on this proxy lands within a few per cent of the true optimum's mean error; a fit
   of the point trajectories themselves does much worse (it misjudges arcs, and Euler-angle
   trouble near gimbal lock, which only the channels show).
4. **Selection** on the proxy, minimising the summed per-frame error: an exact dynamic
   programme over all frames with segments up to ``SPAN_FACTOR`` average gaps (costs of all
   those segments computed span by span on sliding windows). Long clips are cut into chunks at
   frames of little acceleration, every chunk solved for every key count in one vectorised
   programme, and keys allocated to chunks exactly (knapsack). Sparse keys use a coarser grid
   first. A short local search follows where a chunk bound or the span limit constrained the
   programme (swap the key whose removal costs least for the best split of another segment;
   slide keys between their neighbours). ``method='local'`` skips the programme and searches
   from the VW key set instead.
5. **Fit** of the handles (:mod:`.bezier`) and the **true error**: forward kinematics of every
   non-key frame (key frames are exact), per-frame error = max over points of the distance.
6. **Max repair** (free handles): in a few rounds, insert a key in the segment holding the worst
   frame and remove the key whose removal costs least; every candidate is re-fitted and
   measured with true forward kinematics of its own frames only (one batched call per round).
   A swap is kept only if it lowers the maximum, and only if the rise in mean error is worth
   it (``trade``/``budget`` in :func:`_max_repair`).
7. **Guard**: the maximum error is never above that of plain VW (``refine=False``) with the
   same number of keys. VW segments are measured lazily, likeliest-worst first, until one is at
   least as bad; if plain VW really is better, the repair aims below it, and failing that the
   result starts from the VW keys and lowers their mean error without exceeding their maximum.

Aligned handles couple all segments; keys are then chosen with the free-handle proxy and
improved by a local search on the aligned proxy fit, and the guard compares whole results.

``max_error`` mode: binary search on the key count (each candidate selected as above and
measured), then keys inserted at the worst frame of every violating segment until the bound
holds as measured, then keys removed (cheapest first) while it still holds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import bezier, continuity, metrics, vw

__all__ = ["Reduction", "reduce_keys", "ProxyModel", "constant_columns"]

# Longest segment the programme considers, in average gaps (the optimum rarely needs more).
SPAN_FACTOR = 2.0
# Chunk length (grid steps) of the programme when one over the whole clip is too big.
CHUNK_LEN = 200
# Largest keys × grid points × span for one programme over the whole clip.
DP_BUDGET = 2e7
# Rounds of local search after the programme.
LS_ROUNDS = 1
# Split positions tried per segment in local moves (strided in longer segments).
MAX_CANDIDATES = 24


@dataclass
class Reduction:
    """Result of :func:`reduce_keys`. Key arrays are (K,) / (K, C)."""

    key_idx: np.ndarray
    key_frames: np.ndarray
    key_values: np.ndarray
    hl: np.ndarray
    hr: np.ndarray
    handle_type: str
    errors: metrics.ErrorStats
    n_dense: int
    timings: dict = field(default_factory=dict)
    frame_errors: np.ndarray | None = None  # (T,) max over points of the distance, cm
    values: np.ndarray | None = None  # (T, C) the continuous dense values that were fitted
    frames: np.ndarray | None = None  # (T,) the dense frames
    method: str = ""

    @property
    def n_keys(self) -> int:
        return int(len(self.key_idx))

    def evaluate(self, frames=None) -> np.ndarray:
        """Channel values (n, C) of the reduced curves at ``frames`` (default: the dense
        frames), as Blender evaluates them."""
        if frames is None:
            frames = self.frames
        return bezier.evaluate(
            frames, np.arange(len(self.key_frames)), self.key_values, self.hl, self.hr,
            key_frames=self.key_frames,
        )


# ---------------------------------------------------------------------------------------------
# helpers


def _uniform(frames) -> bool:
    if len(frames) < 3:
        return True
    d = np.diff(frames)
    return bool(np.all(np.abs(d - d[0]) <= 1e-9 * max(1.0, abs(d[0]))))


def _ragged(a, b, max_per=None):
    """For segments (a, b): interior indices m (a < m < b; at most about ``max_per`` per
    segment, evenly strided, when given), the segment of each, and where each segment's run
    starts. Returns (seg, m, first, count)."""
    a = np.asarray(a, dtype=np.intp)
    b = np.asarray(b, dtype=np.intp)
    n_in = np.maximum(b - a - 1, 0)
    if max_per is None:
        step = np.ones(len(a), dtype=np.intp)
    else:
        step = np.maximum(1, -(-n_in // int(max_per)))
    cnt = -(-n_in // step)  # ceil
    seg = np.repeat(np.arange(len(a)), cnt)
    first = np.zeros(len(a), dtype=np.intp)
    if len(a) > 1:
        np.cumsum(cnt[:-1], out=first[1:])
    rank = np.arange(int(cnt.sum())) - first[seg]
    # centre the strided grid inside the segment
    off = (n_in - 1 - (cnt - 1) * step) // 2
    m = a[seg] + 1 + off[seg] + rank * step[seg]
    return seg, m, first, cnt


def _group_argmin(val, seg, first, cnt, n):
    """Per group (contiguous runs) the minimum of ``val`` and the flat index where it is."""
    best = np.full(n, np.inf)
    pos = np.full(n, -1, dtype=np.intp)
    ok = cnt > 0
    if not np.any(ok):
        return best, pos
    order = np.lexsort((val, seg))  # groups are contiguous and ordered, so runs line up
    at = order[first[ok]]
    best[ok] = val[at]
    pos[ok] = at
    return best, pos


# ---------------------------------------------------------------------------------------------
# the error model


class ProxyModel:
    """Linearised error model: segment costs in a small transformed channel space.

    ``Y`` (T, r): transformed channels whose free-handle fitting residual norm at a frame
    approximates the RMS over points of the position error there (cm).
    """

    def __init__(self, frames, Y):
        self.table = None  # optional cost[i, s] for segments (i, i+s), see costs()
        self._cache = {}
        self.frames = np.asarray(frames, dtype=np.float64)
        self.Y = np.ascontiguousarray(Y, dtype=np.float64)
        self.T = len(self.Y)
        self.uniform = _uniform(self.frames)
        self.slopes = (
            np.gradient(self.Y, self.frames, axis=0) if self.T >= 2 else np.zeros_like(self.Y)
        )

    @classmethod
    def from_kinematics(cls, frames, values, points_fn, rank=6, n_probe=3, eps=1e-4):
        """Build the model: probe the Jacobian of ``points_fn`` at ``n_probe`` frames (one batched
        call of ``n_probe·(C+1)`` rows), form ``M``, transform, keep ``rank`` directions."""
        values = np.asarray(values, dtype=np.float64)
        T, C = values.shape
        n_probe = int(max(1, min(n_probe, T)))
        probe = np.unique(np.round(np.linspace(0, T - 1, n_probe + 2)[1:-1]).astype(np.intp))
        if len(probe) == 0:
            probe = np.array([0], dtype=np.intp)
        base = values[probe]  # (m, C)
        m = len(probe)
        rows = np.repeat(base[None], C + 1, axis=0)  # (C+1, m, C)
        idx = np.arange(C)
        rows[1 + idx, :, idx] += eps
        pos = metrics.positions(points_fn, rows.reshape(-1, C), np.tile(probe, C + 1))
        pos = pos.reshape(C + 1, m, -1)  # (C+1, m, 3P)
        P = pos.shape[2] // 3
        J = ((pos[1:] - pos[0][None]) / eps).reshape(C, -1)  # (C, m·3P)
        Mt = (J @ J.T) / (m * max(P, 1))
        w, V = np.linalg.eigh(Mt)
        w = np.clip(w, 0.0, None)
        L = (V * np.sqrt(w)).T  # Mt = Lᵀ L (rows with w = 0 are zero)
        # principal directions of the acceleration in the transformed space
        if T >= 3:
            step = max(1, (T - 2) // 4000)  # a subsample is plenty for a C×C covariance
            acc = np.diff(values, 2, axis=0)[::step]
            G = acc.T @ acc
        else:
            G = np.eye(C)
        Gy = L @ G @ L.T
        gw, U = np.linalg.eigh(Gy)
        order = np.argsort(gw)[::-1]
        gw, U = gw[order], U[:, order]
        r = int(max(1, min(rank, C)))
        if gw[0] > 0:
            r = int(max(1, min(r, np.count_nonzero(gw > 1e-12 * gw[0]))))
        Proj = L.T @ U[:, :r]  # (C, r)
        Y = (values - values.mean(axis=0)) @ Proj
        model = cls(frames, Y)
        model.n_probe_rows = int(len(rows.reshape(-1, C)))
        model.n_points = P
        return model

    # -- arbitrary segments -------------------------------------------------------------------
    def costs(self, a, b, want_max=False):
        """Proxy cost (sum over interior frames of the per-frame error) of segments (a, b);
        with ``want_max`` also the largest per-frame error. Segments covered by an attached
        :attr:`table` are looked up."""
        a = np.asarray(a, dtype=np.intp).reshape(-1)
        b = np.asarray(b, dtype=np.intp).reshape(-1)
        if self.table is not None and not want_max:
            span = b - a
            inside = span < self.table.shape[1]
            if np.all(inside):
                return self.table[a, span]
            out = np.empty(len(a))
            out[inside] = self.table[a[inside], span[inside]]
            out[~inside] = self._cached(a[~inside], b[~inside])
            return out
        if want_max:
            return self._computed(a, b, want_max)
        return self._cached(a, b)

    def _cached(self, a, b):
        """Costs of segments, remembered by (a, b): local moves ask for the same long segments
        round after round."""
        codes = (a.astype(np.int64) * (self.T + 1) + b).tolist()
        cache = self._cache
        got = [cache.get(c) for c in codes]
        missing = [i for i, v in enumerate(got) if v is None]
        if missing:
            miss = np.asarray(missing, dtype=np.intp)
            # the same segment may be asked for twice in one call
            uniq, inv = np.unique(np.asarray(codes, dtype=np.int64)[miss], return_inverse=True)
            ua, ub = uniq // (self.T + 1), uniq % (self.T + 1)
            vals = self._computed(ua.astype(np.intp), ub.astype(np.intp))
            for c, v in zip(uniq.tolist(), vals.tolist()):
                cache[c] = v
            for i, j in zip(missing, inv.tolist()):
                got[i] = vals[j]
        return np.asarray(got, dtype=np.float64)

    def _computed(self, a, b, want_max=False):
        it = bezier.Segments(self.frames, a, b)
        n = len(a)
        if len(it.idx) == 0:
            z = np.zeros(n)
            return (z, z.copy()) if want_max else z
        hr, hl, _ = bezier.fit_segments_free(self.frames, self.Y, a, b, self.slopes, segments=it)
        r = bezier.eval_segments(it, self.Y, hr, hl)
        r -= self.Y[it.idx]
        e = np.sqrt(np.einsum("ij,ij->i", r, r))
        s = it.segsum(e)
        if not want_max:
            return s
        mx = np.zeros(n)
        ok = it.counts > 0
        mx[ok] = np.maximum.reduceat(e, it.run[ok])
        return s, mx

    def frame_errors(self, keys):
        """Per-frame proxy error (T,) of a key set (0 at keys)."""
        keys = np.asarray(keys, dtype=np.intp)
        e = np.zeros(self.T)
        if len(keys) < 2:
            return e
        it = bezier.Segments(self.frames, keys[:-1], keys[1:])
        if len(it.idx):
            hr, hl, _ = bezier.fit_segments_free(
                self.frames, self.Y, keys[:-1], keys[1:], self.slopes, segments=it
            )
            r = bezier.eval_segments(it, self.Y, hr, hl) - self.Y[it.idx]
            e[it.idx] = np.sqrt(np.einsum("ij,ij->i", r, r))
        return e

    # -- all segments up to a span, for the dynamic programme ---------------------------------
    def grid_table(self, grid, S):
        """Proxy costs of all segments between grid points at most ``S`` grid steps apart.

        ``grid`` (M,) are increasing frame indices, evenly spaced by ``g`` except possibly the
        last step. Returns ``cost[i, s]`` for segment (grid[i], grid[i+s]), s = 1..S, ``inf``
        where ``i + s ≥ M``. Segments with at most two interior frames fit exactly (cost 0).
        Evenly spaced segments are computed span by span on sliding windows (float32), the few
        that end at an uneven last step with :meth:`costs`."""
        grid = np.asarray(grid, dtype=np.intp)
        M = len(grid)
        S = int(min(S, max(M - 1, 1)))
        cost = np.full((M, S + 1), np.inf)
        if M < 2:
            return cost
        g = int(grid[1] - grid[0])
        regular = np.diff(grid) == g
        n_reg = M if regular.all() else int(np.argmin(regular)) + 1  # grid[:n_reg] is even
        Y = self.Y.astype(np.float32)
        f = self.frames
        for s in range(1, S + 1):
            span = s * g
            N = n_reg - s  # segments starting at grid[0..N-1] that end inside the even part
            if N <= 0:
                break
            if span <= 3:
                cost[:N, s] = 0.0
                continue
            start0 = int(grid[0])
            W = sliding_window_view(Y[start0:], span + 1, axis=0)[: (N - 1) * g + 1 : g]
            Y0 = W[:, :, 0]
            Y1 = W[:, :, span]
            W = W[:, :, 1:span]  # (N, r, span-1)
            if self.uniform:
                u = (np.arange(1, span) / span).astype(np.float32)
            else:
                starts = grid[:N]
                fw = f[starts[:, None] + np.arange(span + 1)[None, :]]
                u = ((fw[:, 1:span] - fw[:, :1]) / (fw[:, span:] - fw[:, :1]))
                u = u.astype(np.float32)[:, None, :]
            b0, b1, b2, b3 = bezier.bernstein(u)
            b0, b1, b2, b3 = (x.astype(np.float32) for x in (b0, b1, b2, b3))
            z = W - Y0[:, :, None] * b0
            z -= Y1[:, :, None] * b3
            if self.uniform:
                c1 = z @ b1
                c2 = z @ b2
                n11, n12, n22 = b1 @ b1, b1 @ b2, b2 @ b2
            else:
                c1 = (z * b1).sum(-1)
                c2 = (z * b2).sum(-1)
                n11 = (b1 * b1).sum(-1)
                n12 = (b1 * b2).sum(-1)
                n22 = (b2 * b2).sum(-1)
            det = n11 * n22 - n12 * n12
            h1 = (n22 * c1 - n12 * c2) / det
            h2 = (n11 * c2 - n12 * c1) / det
            z -= h1[:, :, None] * b1
            z -= h2[:, :, None] * b2
            e = np.sqrt(np.einsum("nrk,nrk->nk", z, z))
            cost[:N, s] = e.sum(axis=1, dtype=np.float64)
        if n_reg < M:  # segments ending at the uneven tail
            A, B, where = [], [], []
            for i in range(max(0, n_reg - S - 1), M - 1):
                for s in range(1, S + 1):
                    if i + s >= M or (i + s < n_reg):
                        continue
                    A.append(grid[i])
                    B.append(grid[i + s])
                    where.append((i, s))
            if A:
                c = self.costs(np.array(A), np.array(B))
                for (i, s), v in zip(where, c):
                    cost[i, s] = v
        return cost

    def span_table(self, S):
        """``cost[i, s]`` for segments (i, i+s) over all frames, s = 1..S."""
        return self.grid_table(np.arange(self.T), S)


# ---------------------------------------------------------------------------------------------
# selection on the proxy


def _dp_keys(cost, K):
    """Exactly K keys (first and last frame included) minimising the summed segment cost;
    ``cost[i, s]`` for segment (i, i+s). Vectorised over end frames, one step per key."""
    T, S1 = cost.shape
    S = S1 - 1
    if K >= T:
        return np.arange(T, dtype=np.intp)
    j = np.arange(T)[:, None]
    s = np.arange(1, S + 1)[None, :]
    src = j - s
    valid = src >= 0
    src = np.where(valid, src, 0)
    seg = np.where(valid, cost[src, s], np.inf)  # (T, S): segment ending at j with span s
    best = np.full(T, np.inf)
    best[0] = 0.0
    back = np.zeros((K, T), dtype=np.int32)
    rows = np.arange(T)
    for k in range(1, K):
        cand = best[src] + seg
        arg = np.argmin(cand, axis=1)
        best = cand[rows, arg]
        back[k] = arg + 1
    if not np.isfinite(best[T - 1]):
        return None
    keys = [T - 1]
    jj = T - 1
    for k in range(K - 1, 0, -1):
        jj -= int(back[k, jj])
        keys.append(jj)
    keys = np.asarray(keys[::-1], dtype=np.intp)
    if keys[0] != 0 or np.any(np.diff(keys) <= 0):
        return None
    return keys


def _dp_chunked(cost, K, bounds):
    """Like :func:`_dp_keys` but with forced keys at ``bounds`` (grid indices, first 0 and last
    M−1): every chunk between two bounds gets its own programme, all chunks stepped together,
    and the number of keys per chunk is then allocated exactly (a small knapsack over chunks)
    from each chunk's best cost for every key count."""
    M, S1 = cost.shape
    S = S1 - 1
    bounds = np.asarray(bounds, dtype=np.intp)
    n = len(bounds) - 1
    lens = np.diff(bounds)  # chunk lengths in grid steps
    Lmax = int(lens.max())
    total_segments = K - 1
    share = total_segments * lens / max(M - 1, 1)
    k_hi = np.minimum(lens, np.ceil(2.5 * share + 2)).astype(int)
    k_lo = np.maximum(1, np.ceil(lens / S)).astype(int)
    if k_hi.sum() < total_segments or k_lo.sum() > total_segments:
        return None
    kmax = int(k_hi.max())
    # local segment costs: seg[c, j, s] = cost of (bounds[c] + j - s, bounds[c] + j)
    j = np.arange(Lmax + 1)
    s = np.arange(1, S + 1)
    src = j[None, :, None] - s[None, None, :]  # (1, L+1, S)
    glob = bounds[:-1, None, None] + src  # (n, L+1, S)
    valid = (src >= 0) & (j[None, :, None] <= lens[:, None, None])
    gs = np.where(valid, glob, 0)
    ss = np.broadcast_to(s[None, None, :], gs.shape)
    seg = np.where(valid, cost[gs, ss], np.inf)
    srcc = np.where(src >= 0, src, 0)
    best = np.full((n, Lmax + 1), np.inf)
    best[:, 0] = 0.0
    back = np.zeros((kmax + 1, n, Lmax + 1), dtype=np.int32)
    at_end = np.full((kmax + 1, n), np.inf)
    ci = np.arange(n)[:, None]
    for k in range(1, kmax + 1):
        cand = best[ci[:, :, None], np.broadcast_to(srcc, (n, Lmax + 1, S))] + seg
        arg = np.argmin(cand, axis=2)
        best = np.take_along_axis(cand, arg[:, :, None], axis=2)[:, :, 0]
        back[k] = arg + 1
        at_end[k] = best[np.arange(n), lens]
    # allocate: F[c][m] = best total with m segments in chunks 0..c
    INF = np.inf
    F = np.full(total_segments + 1, INF)
    F[0] = 0.0
    choice = np.zeros((n, total_segments + 1), dtype=np.int32)
    for c in range(n):
        G = np.full(total_segments + 1, INF)
        arg = np.zeros(total_segments + 1, dtype=np.int32)
        for k in range(k_lo[c], k_hi[c] + 1):
            if not np.isfinite(at_end[k, c]):
                continue
            cand = np.full(total_segments + 1, INF)
            cand[k:] = F[: total_segments + 1 - k] + at_end[k, c]
            better = cand < G
            G = np.where(better, cand, G)
            arg = np.where(better, k, arg)
        F = G
        choice[c] = arg
    if not np.isfinite(F[total_segments]):
        return None
    counts = np.zeros(n, dtype=int)
    m = total_segments
    for c in range(n - 1, -1, -1):
        counts[c] = choice[c, m]
        m -= counts[c]
    keys = [0]
    for c in range(n):
        jj = int(lens[c])
        local = [jj]
        for k in range(counts[c], 0, -1):
            jj -= int(back[k, c, jj])
            local.append(jj)
        if jj != 0:
            return None
        keys.extend(bounds[c] + np.asarray(local[::-1][1:]))
    keys = np.asarray(keys, dtype=np.intp)
    if len(keys) != K or np.any(np.diff(keys) <= 0):
        return None
    return keys


def _chunk_bounds(proxy_y, grid, S, target_len):
    """Chunk boundaries (grid indices) about ``target_len`` grid steps apart, each moved to the
    grid point of least acceleration nearby (a key there is cheap)."""
    M = len(grid)
    n = int(max(1, round((M - 1) / max(target_len, 1))))
    if n <= 1:
        return np.array([0, M - 1])
    yg = proxy_y[grid]
    acc = np.zeros(M)
    if M >= 3:
        acc[1:-1] = np.linalg.norm(yg[2:] - 2 * yg[1:-1] + yg[:-2], axis=1)
    nominal = np.round(np.linspace(0, M - 1, n + 1)).astype(int)
    out = [0]
    w = max(1, S // 3)
    for b in nominal[1:-1]:
        lo = max(out[-1] + 1, b - w)
        hi = min(M - 2, b + w)
        if hi < lo:
            continue
        out.append(lo + int(np.argmin(acc[lo : hi + 1])))
    out.append(M - 1)
    return np.unique(np.asarray(out, dtype=np.intp))


def _swap_rounds(proxy, keys, max_rounds=30, max_gap=None):
    """Batched swaps: remove the keys whose removal costs least and split the segments whose
    best split gains most, while a gain exceeds a cost. Returns (keys, n_swaps)."""
    keys = np.array(keys, dtype=np.intp)
    n_swaps = 0
    for _ in range(max_rounds):
        if len(keys) < 3:
            break
        A, B = keys[:-1], keys[1:]
        segc = proxy.costs(A, B)
        seg, m, first, cnt = _ragged(A, B, MAX_CANDIDATES)
        if len(m) == 0:
            break
        tot = proxy.costs(A[seg], m) + proxy.costs(m, B[seg])
        best, pos = _group_argmin(tot, seg, first, cnt, len(A))
        gain = segc - best
        split_at = np.where(pos >= 0, m[np.maximum(pos, 0)], -1)
        merged = proxy.costs(keys[:-2], keys[2:])
        loss = merged - segc[:-1] - segc[1:]  # removing key i+1
        if max_gap is not None:
            loss = np.where(keys[2:] - keys[:-2] > max_gap, np.inf, loss)
        gi = np.argsort(-gain, kind="stable")
        li = np.argsort(loss, kind="stable")
        blocked = np.zeros(len(keys), dtype=bool)
        ins, rem = [], []
        ia = ib = 0
        while ia < len(gi) and ib < len(li):
            sidx = gi[ia]
            k = li[ib] + 1
            g, c = gain[sidx], loss[k - 1]
            if not (np.isfinite(g) and g - c > 1e-9 * max(abs(g), 1e-12)):
                break
            if blocked[k - 1] or blocked[k] or blocked[k + 1] or sidx == k - 1 or sidx == k:
                ib += 1
                continue
            if blocked[sidx] or blocked[sidx + 1]:
                ia += 1
                continue
            ins.append(split_at[sidx])
            rem.append(keys[k])
            blocked[[sidx, sidx + 1, k - 1, k, k + 1]] = True
            ia += 1
            ib += 1
        if not ins:
            break
        n_swaps += len(ins)
        keys = np.sort(np.concatenate((np.setdiff1d(keys, rem), ins))).astype(np.intp)
    return keys, n_swaps


def _slide(proxy, keys, sweeps=4, max_gap=None, window=None):
    """Move every key to its best frame between its neighbours (even/odd keys alternately),
    within ``window`` frames of where it is if given."""
    keys = np.array(keys, dtype=np.intp)
    total = 0
    for _ in range(sweeps):
        moved = 0
        for parity in (1, 2):
            ks = np.arange(parity, len(keys) - 1, 2)
            if len(ks) == 0:
                continue
            A, B = keys[ks - 1], keys[ks + 1]
            if window is not None:
                lo = np.maximum(A, keys[ks] - window - 1)
                hi = np.minimum(B, keys[ks] + window + 1)
                seg, m, first, cnt = _ragged(lo, hi)
            else:
                seg, m, first, cnt = _ragged(A, B, MAX_CANDIDATES)
            if len(m) == 0:
                continue
            if max_gap is not None:
                bad = (m - A[seg] > max_gap) | (B[seg] - m > max_gap)
            tot = proxy.costs(A[seg], m) + proxy.costs(m, B[seg])
            if max_gap is not None:
                tot = np.where(bad, np.inf, tot)
            best, pos = _group_argmin(tot, seg, first, cnt, len(ks))
            cur = proxy.costs(A, keys[ks]) + proxy.costs(keys[ks], B)
            ch = (pos >= 0) & (best < cur - 1e-12 * np.abs(cur))
            keys[ks[ch]] = m[pos[ch]]
            moved += int(ch.sum())
        total += moved
        if moved == 0:
            break
    return keys, total


def _local_search(proxy, keys, rounds=4, max_gap=None, swap_rounds=30, sweeps=4):
    keys = np.asarray(keys, dtype=np.intp)
    for _ in range(rounds):
        keys, ns = _swap_rounds(proxy, keys, max_rounds=swap_rounds, max_gap=max_gap)
        keys, nm = _slide(proxy, keys, sweeps=sweeps, max_gap=max_gap)
        if ns == 0 and nm == 0:
            break
    return keys


def _fill_gaps(keys, max_gap, T):
    """Add keys so that no gap exceeds ``max_gap`` (evenly inside each long gap)."""
    keys = np.asarray(keys, dtype=np.intp)
    if max_gap is None or len(keys) < 2:
        return keys
    out = [keys[:1]]
    for a, b in zip(keys[:-1], keys[1:]):
        g = b - a
        if g > max_gap:
            n = int(math.ceil(g / max_gap))
            out.append(np.round(np.linspace(a, b, n + 1)[1:-1]).astype(np.intp))
        out.append(np.array([b]))
    return np.unique(np.concatenate(out))


def _aligned_errors(proxy, keys):
    """Per-frame proxy error (T,) of the aligned-handle fit of a key set."""
    kv, hl, hr = bezier.fit_aligned(proxy.frames, proxy.Y, keys)
    r = bezier.evaluate(proxy.frames, keys, kv, hl, hr) - proxy.Y
    return np.sqrt(np.einsum("ij,ij->i", r, r))


def _aligned_search(proxy, keys, iters, n_remove=4, max_gap=None):
    """Local search for aligned handles, whose fit couples all segments: move a key to the
    frame with the largest aligned error, taking it from where removal costs least (ranked by
    the free-handle model, decided by the aligned one), while the summed error drops."""
    keys = np.asarray(keys, dtype=np.intp)
    e = _aligned_errors(proxy, keys)
    total = float(e.sum())
    for _ in range(int(iters)):
        if len(keys) < 3:
            break
        t = int(np.argmax(e))
        if e[t] <= 0:
            break
        segc = proxy.costs(keys[:-1], keys[1:])
        loss = proxy.costs(keys[:-2], keys[2:]) - segc[:-1] - segc[1:]
        inner = np.arange(1, len(keys) - 1)
        s = int(np.searchsorted(keys, t)) - 1  # t lies in segment s
        ok = (inner != s) & (inner != s + 1)
        if max_gap is not None:
            ok &= keys[2:] - keys[:-2] <= max_gap
        cand = inner[ok][np.argsort(loss[ok], kind="stable")[:n_remove]]
        best = None
        for k in cand:
            new = np.sort(np.concatenate((np.delete(keys, k), [t]))).astype(np.intp)
            if max_gap is not None and np.diff(new).max() > max_gap:
                continue
            ne = _aligned_errors(proxy, new)
            tot = float(ne.sum())
            if best is None or tot < best[0]:
                best = (tot, new, ne)
        if best is None or not best[0] < total * (1 - 1e-9):
            break
        total, keys, e = best
    return keys


# ---------------------------------------------------------------------------------------------
# the true error


class _Truth:
    """True per-frame errors of free-handle segment fits, by forward kinematics on demand."""

    def __init__(self, frames, values, points_fn, dense):
        self.frames = frames
        self.values = values
        self.points_fn = points_fn
        self.dense = dense
        self.slopes = np.gradient(values, frames, axis=0) if len(frames) >= 2 else values * 0
        self.fk_rows = 0
        self.fk_calls = 0

    def fk(self, values, rows):
        self.fk_rows += len(values)
        self.fk_calls += 1
        return metrics.positions(self.points_fn, values, rows)

    def segments(self, a, b):
        """For segments (a, b): (interior indices, per-frame (n, P) distances, Segments)."""
        a = np.asarray(a, dtype=np.intp).reshape(-1)
        b = np.asarray(b, dtype=np.intp).reshape(-1)
        it = bezier.Segments(self.frames, a, b)
        if len(it.idx) == 0:
            return it, np.zeros((0, self.dense.shape[1]))
        hr, hl, _ = bezier.fit_segments_free(
            self.frames, self.values, a, b, self.slopes, segments=it
        )
        fitted = bezier.eval_segments(it, self.values, hr, hl)
        return it, metrics.distances(self.fk(fitted, it.idx), self.dense[it.idx])

    def curve_distances(self, fitted, key_idx):
        """(T, P) distances of a whole fitted curve set; key frames are exact (0)."""
        T = len(fitted)
        mask = np.ones(T, dtype=bool)
        mask[key_idx] = False
        dist = np.zeros((T, self.dense.shape[1]))
        if np.any(mask):
            rows = np.flatnonzero(mask)
            dist[mask] = metrics.distances(self.fk(fitted[mask], rows), self.dense[mask])
        return dist


def _seg_stats(it, d, n):
    """Per-segment max and sum of per-frame mean distance from per-frame distances."""
    mx = np.zeros(n)
    sm = np.zeros(n)
    if len(d):
        fmax = d.max(axis=1)
        ok = it.counts > 0
        mx[ok] = np.maximum.reduceat(fmax, it.run[ok])
        sm = it.segsum(d.mean(axis=1))
    return mx, sm


class _State:
    """Key set with its true per-frame distances (free handles: segments are independent)."""

    def __init__(self, truth, keys, dist=None):
        self.truth = truth
        self.keys = np.asarray(keys, dtype=np.intp)
        T = len(truth.frames)
        if dist is None:
            it, d = truth.segments(self.keys[:-1], self.keys[1:])
            dist = np.zeros((T, truth.dense.shape[1]))
            dist[it.idx] = d
        self.dist = dist
        self._stats()

    def _stats(self):
        k = self.keys
        it = bezier.Segments(self.truth.frames, k[:-1], k[1:])
        d = self.dist[it.idx]
        self.segmax, self.segsum = _seg_stats(it, d, len(k) - 1)

    @property
    def max(self):
        return float(self.segmax.max()) if len(self.segmax) else 0.0

    def swap(self, k, s, m, left, right, merged, measured):
        """Remove key ``k`` and insert frame ``m`` into segment ``s`` (k not an end of s), with
        the (max, sum) stats of the two halves and of the merged segment, and the measured
        distances ``[(segments, d, j), ...]`` of those three segments."""
        for it, d, j in measured:
            r, c = it.run[j], it.counts[j]
            if c:
                self.dist[it.idx[r : r + c]] = d[r : r + c]
        self.dist[m] = 0.0
        mx, sm, keys = self.segmax, self.segsum, self.keys
        # removal merges segments k-1 and k; the insertion splits s (shifted if after k)
        mx = np.delete(mx, k)
        sm = np.delete(sm, k)
        mx[k - 1], sm[k - 1] = merged
        keys = np.delete(keys, k)
        if k < s:
            s -= 1
        mx = np.insert(mx, s + 1, right[0])
        sm = np.insert(sm, s + 1, right[1])
        mx[s], sm[s] = left
        self.keys = np.insert(keys, s + 1, m).astype(np.intp)
        self.segmax = mx
        self.segsum = sm


def _best_splits(proxy, a, b):
    """Best split frame of every segment (a[i], b[i]) by the proxy sum (-1 if none)."""
    seg, m, first, cnt = _ragged(a, b, MAX_CANDIDATES)
    if len(m) == 0:
        return np.full(len(a), -1, dtype=np.intp)
    tot = proxy.costs(a[seg], m) + proxy.costs(m, b[seg])
    _, pos = _group_argmin(tot, seg, first, cnt, len(a))
    return np.where(pos >= 0, m[np.maximum(pos, 0)], -1)


def _removal_candidates(keys, loss, segments, max_gap, limit):
    """Interior keys to try removing, cheapest first (``loss[k-1]`` = cost of removing key
    ``k``): never an end of one of ``segments`` (being split), never two neighbours, never
    leaving a gap over ``max_gap``; at most ``limit``."""
    K = len(keys)
    blocked = np.zeros(K, dtype=bool)
    for w in segments:
        blocked[w] = blocked[w + 1] = True
    taken = np.zeros(K, dtype=bool)
    out = []
    for k in np.argsort(loss, kind="stable") + 1:
        if blocked[k] or taken[k - 1] or taken[k + 1]:
            continue
        if max_gap is not None and keys[k + 1] - keys[k - 1] > max_gap:
            continue
        taken[k] = True
        out.append(int(k))
        if len(out) >= limit:
            break
    return out


def _max_repair(state, proxy, iters, rounds=6, max_gap=None, trade=0.5, budget=0.1,
                target=None, row_budget=None):
    """Swap keys (insert in the worst segment, remove the cheapest) while the true maximum
    error drops, at most ``iters`` swaps in at most ``rounds`` rounds.

    Each round takes the worst segments, two insertion candidates for each (the best split by
    the proxy and the worst frame), a pool of removal candidates (smallest proxy merge cost,
    away from the worst segments and from each other), and measures all of them with true
    forward kinematics of their own frames in one ``points_fn`` call. Swaps are then applied
    one at a time, always on the current worst segment, each with the removal that costs the
    least mean error. A swap must lower the maximum; unless ``target`` is given it must also
    be worth its price: the relative rise of the summed error may be at most ``trade`` times
    the relative fall of the maximum, and at most ``budget`` over the whole repair. With
    ``target`` (a maximum to get below) those limits are lifted. Rounds stop once the rows
    measured exceed ``row_budget``.
    """
    truth = state.truth
    base_sum = float(state.segsum.sum())
    swaps = 0
    rows0 = truth.fk_rows
    for _ in range(int(rounds)):
        if swaps >= iters:
            break
        if row_budget is not None and truth.fk_rows - rows0 > row_budget:
            break
        keys = state.keys
        K = len(keys)
        if K < 3:
            break
        m = int(min(iters - swaps, max(2, K // 25)))
        order = np.argsort(-state.segmax, kind="stable")
        W = [int(w) for w in order[: 2 * m] if keys[w + 1] - keys[w] >= 4][:m]
        if target is not None:
            W = [w for w in W if state.segmax[w] >= target]
        if not W or state.segmax[W[0]] < state.segmax[order[0]]:
            break
        Wa, Wb = keys[W], keys[np.array(W) + 1]
        split = _best_splits(proxy, Wa, Wb)
        A, B, ins = [], [], {}
        for w, a, b, sp in zip(W, Wa, Wb, split):
            worst = a + 1 + int(np.argmax(state.dist[a + 1 : b].max(axis=1)))
            for c in sorted({int(sp), worst} - {-1}):
                ins.setdefault((int(a), int(b)), []).append((c, len(A)))
                A += [a, c]
                B += [c, b]
        segc = proxy.costs(keys[:-1], keys[1:])
        loss = proxy.costs(keys[:-2], keys[2:]) - segc[:-1] - segc[1:]
        pool = []
        for k in _removal_candidates(keys, loss, W, max_gap, len(W) + 4):
            pool.append((int(keys[k - 1]), int(keys[k]), int(keys[k + 1]), len(A)))
            A.append(keys[k - 1])
            B.append(keys[k + 1])
        if not pool:
            break
        it, d = truth.segments(np.array(A), np.array(B))
        mx, sm = _seg_stats(it, d, len(A))
        used = set()
        applied = 0
        while swaps < iters:
            keys = state.keys
            K_now = len(keys)
            s = int(np.argmax(state.segmax))
            gmax = float(state.segmax[s])
            if target is not None and gmax < target:
                break
            cands = ins.pop((int(keys[s]), int(keys[s + 1])), None)
            if not cands:
                break
            ci = min(cands, key=lambda c: (max(mx[c[1]], mx[c[1] + 1]), sm[c[1]] + sm[c[1] + 1]))
            mpos, j = ci
            ins_max = max(mx[j], mx[j + 1])
            ins_sum = sm[j] + sm[j + 1]
            top = np.argsort(-state.segmax, kind="stable")[:4]
            cur_sum = float(state.segsum.sum())
            best = None
            for pi, (pa, pk, pb, pj) in enumerate(pool):
                if pi in used:
                    continue
                k = int(np.searchsorted(keys, pk))
                if (k >= K_now - 1 or k < 1 or keys[k] != pk or keys[k - 1] != pa
                        or keys[k + 1] != pb or k in (s, s + 1)):
                    continue
                rest = next((state.segmax[i] for i in top if i not in (s, k - 1, k)), 0.0)
                new_max = max(float(rest), float(ins_max), float(mx[pj]))
                if not new_max < gmax * (1 - 1e-9):
                    continue
                dsum = ins_sum - state.segsum[s] + sm[pj] - state.segsum[k - 1] - state.segsum[k]
                if target is None and dsum > 0 and base_sum > 0:
                    if dsum / max(cur_sum, 1e-300) > trade * (gmax - new_max) / gmax:
                        continue
                    if cur_sum + dsum > (1 + budget) * base_sum:
                        continue
                rank = (dsum, new_max) if target is None else (new_max, dsum)
                if best is None or rank < best[0]:
                    best = (rank, k, pi, pj)
            if best is None:
                break
            _, k, pi, pj = best
            used.add(pi)
            state.swap(k, s, mpos, (mx[j], sm[j]), (mx[j + 1], sm[j + 1]), (mx[pj], sm[pj]),
                       [(it, d, jj) for jj in (j, j + 1, pj)])
            swaps += 1
            applied += 1
        if applied == 0:
            break
    return state


def _slide_true(state, proxy, cap, max_gap=None):
    """Move keys (every other one) to their proxy-best frame between their neighbours where the
    true summed error drops and the maximum stays within ``cap``. One ``points_fn`` call."""
    truth = state.truth
    moved = 0
    for parity in (1, 2):
        keys = state.keys
        ks = np.arange(parity, len(keys) - 1, 2)
        if len(ks) == 0:
            continue
        A, B = keys[ks - 1], keys[ks + 1]
        best = _best_splits(proxy, A, B)
        sel = (best >= 0) & (best != keys[ks])
        if max_gap is not None:
            sel &= (best - A <= max_gap) & (B - best <= max_gap)
        ks, A, B, best = ks[sel], A[sel], B[sel], best[sel]
        if len(ks) == 0:
            continue
        it, d = truth.segments(np.concatenate((A, best)), np.concatenate((best, B)))
        n = len(ks)
        mx, sm = _seg_stats(it, d, 2 * n)
        dist = state.dist
        keys = state.keys.copy()
        for i, k in enumerate(ks):
            new_sum = sm[i] + sm[n + i]
            old_sum = state.segsum[k - 1] + state.segsum[k]
            if max(mx[i], mx[n + i]) <= cap and new_sum < old_sum - 1e-12:
                for j in (i, n + i):
                    r, c = it.run[j], it.counts[j]
                    if c:
                        dist[it.idx[r : r + c]] = d[r : r + c]
                dist[best[i]] = 0.0
                keys[k] = best[i]
                state.segmax[k - 1], state.segmax[k] = mx[i], mx[n + i]
                state.segsum[k - 1], state.segsum[k] = sm[i], sm[n + i]
                moved += 1
        state.keys = keys
    return moved


def _mean_repair(state, proxy, cap, rounds=4, max_gap=None):
    """Moves that lower the true summed error without lifting the maximum above ``cap``: the
    proxy proposes (slides between neighbours; best splits that gain most paired with removals
    that cost least), true forward kinematics of the touched segments decides."""
    truth = state.truth
    for _ in range(int(rounds)):
        _slide_true(state, proxy, cap, max_gap=max_gap)
        keys = state.keys
        K = len(keys)
        if K < 3:
            break
        A, B = keys[:-1], keys[1:]
        split = _best_splits(proxy, A, B)
        segc = proxy.costs(A, B)
        ok = split >= 0
        gain = np.full(len(A), -np.inf)
        if np.any(ok):
            gain[ok] = segc[ok] - (proxy.costs(A[ok], split[ok]) + proxy.costs(split[ok], B[ok]))
        loss = proxy.costs(keys[:-2], keys[2:]) - segc[:-1] - segc[1:]
        n = max(2, K // 10)
        segs = [int(x) for x in np.argsort(-gain, kind="stable")[:n] if np.isfinite(gain[x])]
        pool = _removal_candidates(keys, loss, segs, max_gap, len(segs) + 2)
        if not segs or not pool:
            break
        qa = [keys[w] for w in segs] + [split[w] for w in segs] + [keys[k - 1] for k in pool]
        qb = [split[w] for w in segs] + [keys[w + 1] for w in segs] + [keys[k + 1] for k in pool]
        it, d = truth.segments(np.array(qa), np.array(qb))
        mx, sm = _seg_stats(it, d, len(qa))
        nw = len(segs)
        gains = [(state.segsum[w] - sm[i] - sm[nw + i], i) for i, w in enumerate(segs)
                 if max(mx[i], mx[nw + i]) <= cap]
        losses = [(sm[2 * nw + j] - state.segsum[k - 1] - state.segsum[k], j) for j, k in
                  enumerate(pool) if mx[2 * nw + j] <= cap]
        gains.sort(reverse=True)
        losses.sort()
        moves = [(gi, lj) for (g, gi), (c, lj) in zip(gains, losses) if g - c > 1e-12 * max(g, 1)]
        if not moves:
            break
        for gi, lj in moves:  # apply, segment positions looked up afresh each time
            keys = state.keys
            w_a, w_b, m = int(qa[gi]), int(qb[nw + gi]), int(qb[gi])
            s_ = int(np.searchsorted(keys, w_a))
            kf = int(qb[2 * nw + lj])
            k = int(np.searchsorted(keys, kf)) - 1  # the removed key sits before qb
            if keys[s_ + 1] != w_b or keys[k + 1] != kf or keys[k - 1] != qa[2 * nw + lj]:
                break
            state.swap(k, s_, m, (mx[gi], sm[gi]), (mx[nw + gi], sm[nw + gi]),
                       (mx[2 * nw + lj], sm[2 * nw + lj]),
                       [(it, d, gi), (it, d, nw + gi), (it, d, 2 * nw + lj)])
    return state


# ---------------------------------------------------------------------------------------------
# the reducer


def _count(T, n_keys, ratio):
    if n_keys is not None:
        n = int(n_keys)
    else:
        n = int(round(float(ratio) * T))
    return int(min(max(n, 2), T)) if T >= 2 else T


def constant_columns(values, rtol: float = 1e-7) -> np.ndarray:
    """Bool per column of ``values`` (T, C): the column never moves (its spread is at most
    ``rtol`` of its largest magnitude, or of 1). Such curves need only their two end keys."""
    values = np.asarray(values, dtype=np.float64)
    spread = values.max(axis=0) - values.min(axis=0)
    return spread <= rtol * np.maximum(np.abs(values).max(axis=0), 1.0)


def reduce_keys(
    frames,
    values,
    points_fn,
    *,
    n_keys=None,
    ratio=None,
    max_error=None,
    keys=None,
    handles="free",
    groups=None,
    max_gap=None,
    refine=True,
    time_weight=1.0,
    method="auto",
    proxy_rank=4,
    n_probe=3,
    repair_iters=None,
) -> Reduction:
    """Choose synchronised key frames and fit Bezier handles for dense channel ``values``.

    Parameters
    ----------
    frames : (T,) increasing frame numbers of the dense samples.
    values : (T, C) channel values (radians for rotations).
    points_fn : ``values (n, C) → (n, P, 3)`` world positions in cm, row-wise independent; it
        is called on subsets and modified copies of rows. If it takes a ``rows`` keyword, it
        gets the dense frame index each row stands for (see :func:`.metrics.positions`).
    n_keys, ratio, max_error, keys : exactly one: a key count, a fraction of the frames, a bound
        on the maximum joint error in cm (honoured as measured with ``points_fn``), or the key
        frames themselves (sample indices; the two ends are always added; only the handles are
        fitted, e.g. for a generator's own keyframes).
    handles : ``'free'`` (independent least-squares handles) or ``'aligned'`` (C¹, one slope per
        key). Keys are always chosen with the free-handle error model.
    groups : channel groups for :func:`.continuity.make_continuous` (skipped when None).
    max_gap : longest allowed gap between keys, in samples. It takes precedence over the count.
    refine : False gives plain VW (top significance, ``time_weight`` time column) with fitted
        handles; True the full pipeline (see the module docstring).
    time_weight : weight of the time column appended to the VW points, in units of the mean
        per-frame displacement of the points (0: no time column).
    method : ``'auto'`` / ``'dp'`` (programme on the proxy, chunked for long clips) or
        ``'local'`` (VW + local search on the proxy).
    proxy_rank, n_probe : size of the error model (directions kept, probe frames).
    repair_iters : cap on max-repair swaps (default: about K/20, at least 4; 0 disables).

    Returns a :class:`Reduction`; ``timings`` holds seconds per stage and ``fk_rows``, the
    number of rows given to ``points_fn`` in all.
    """
    t_start = time.perf_counter()
    timings = {}
    given = [x is not None for x in (n_keys, ratio, max_error, keys)]
    if sum(given) != 1:
        raise ValueError("give exactly one of n_keys, ratio, max_error, keys")
    if handles not in bezier.HANDLE_TYPES:
        raise ValueError(f"handles must be 'free' or 'aligned', got {handles!r}")
    frames = np.asarray(frames, dtype=np.float64).reshape(-1)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[:, None]
    T = len(frames)
    if vals.shape[0] != T:
        raise ValueError(f"values has {vals.shape[0]} rows for {T} frames")
    if T == 0:
        raise ValueError("no frames")
    if np.any(np.diff(frames) <= 0):
        raise ValueError("frames must be strictly increasing")
    if max_gap is not None:
        max_gap = int(max_gap)
        if max_gap < 1:
            raise ValueError("max_gap must be at least 1")
    if max_error is not None and not (float(max_error) >= 0):
        raise ValueError("max_error must be >= 0")

    t = time.perf_counter()
    if groups:
        vals = continuity.make_continuous(vals, groups)
    timings["continuity"] = time.perf_counter() - t

    t = time.perf_counter()
    dense = metrics.positions(points_fn, vals, np.arange(T))
    timings["fk_dense"] = time.perf_counter() - t
    truth = _Truth(frames, vals, points_fn, dense)
    truth.fk_rows = T

    ctx = _Context(frames, vals, dense, truth, handles, max_gap, refine, time_weight, method,
                   proxy_rank, n_probe, repair_iters, timings)

    if T <= 2:
        result = ctx.finish(np.arange(T, dtype=np.intp), "all frames")
    elif keys is not None:
        k = np.asarray(keys, dtype=np.int64).reshape(-1)
        if np.any((k < 0) | (k >= T)):
            raise ValueError(f"keys must be sample indices in [0, {T - 1}]")
        k = np.unique(np.concatenate([k, [0, T - 1]])).astype(np.intp)
        result = ctx.finish(k, "given keys")
    elif max_error is not None:
        result = ctx.bounded(float(max_error))
    else:
        result = ctx.counted(_count(T, n_keys, ratio))
    timings["fk_rows"] = truth.fk_rows
    timings["total"] = time.perf_counter() - t_start
    result.timings = timings
    return result


class _Context:
    def __init__(self, frames, vals, dense, truth, handles, max_gap, refine, time_weight, method,
                 proxy_rank, n_probe, repair_iters, timings):
        self.frames, self.vals, self.dense, self.truth = frames, vals, dense, truth
        self.T = len(frames)
        self.handles, self.max_gap, self.refine = handles, max_gap, refine
        self.time_weight, self.method = time_weight, method
        self.proxy_rank, self.n_probe, self.repair_iters = proxy_rank, n_probe, repair_iters
        self.timings = timings
        self._proxy = None
        self._vw_rank = None
        self._table = None  # ((g, S), cost)

    def _tick(self, name, t0):
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    # -- lazily built pieces -------------------------------------------------------------------
    @property
    def proxy(self):
        if self._proxy is None:
            t = time.perf_counter()
            self._proxy = ProxyModel.from_kinematics(
                self.frames, self.vals, self.truth.points_fn, rank=self.proxy_rank,
                n_probe=self.n_probe,
            )
            self.truth.fk_rows += self._proxy.n_probe_rows
            self._tick("proxy", t)
        return self._proxy

    def vw_rank(self):
        if self._vw_rank is None:
            t = time.perf_counter()
            pts = self.dense.reshape(self.T, -1)
            if self.time_weight:
                speed = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).mean())
                scale = self.time_weight * (speed if speed > 0 else 1.0)
                pts = np.concatenate((pts, (self.frames * scale)[:, None]), axis=1)
            self._vw_rank = vw.ranking(vw.effective_areas(pts))
            self._tick("vw", t)
        return self._vw_rank

    def vw_keys(self, K):
        """Plain VW: the K most significant frames; with ``max_gap``, gaps are filled and then
        the least significant keys whose removal keeps every gap short are dropped again."""
        rank = self.vw_rank()
        keys = np.sort(rank[:K]).astype(np.intp)
        if self.max_gap is None:
            return keys
        keys = _fill_gaps(keys, self.max_gap, self.T)
        if len(keys) <= K:
            return keys
        pos = np.empty(self.T, dtype=np.intp)
        pos[rank] = np.arange(self.T)
        alive = keys.tolist()
        index = {k: i for i, k in enumerate(alive)}
        prev = list(range(-1, len(alive) - 1))
        nxt = list(range(1, len(alive) + 1))
        gone = set()
        excess = len(alive) - K
        for k in sorted(alive[1:-1], key=lambda k: -pos[k]):  # least significant first
            if excess == 0:
                break
            i = index[k]
            if alive[nxt[i]] - alive[prev[i]] <= self.max_gap:
                gone.add(k)
                nxt[prev[i]] = nxt[i]
                prev[nxt[i]] = prev[i]
                excess -= 1
        return np.array([k for k in alive if k not in gone], dtype=np.intp)

    def plan(self, K):
        """Grid step ``g`` (keys are placed on every g-th frame first), number of grid points
        ``M`` and span limit ``S`` in grid steps for the programme with K keys."""
        T = self.T
        gap = (T - 1) / max(K - 1, 1)
        g = max(1, int(math.ceil(gap / 12.0)))
        if self.max_gap is not None:
            g = min(g, max(1, self.max_gap // 4))
        M = int(math.ceil((T - 1) / g)) + 1
        S = int(math.ceil(SPAN_FACTOR * gap / g))
        S = max(S, 8)
        if self.max_gap is not None:
            S = min(S, max(1, self.max_gap // g))
        S = int(min(S, M - 1))
        S = max(S, int(math.ceil((M - 1) / max(K - 1, 1))))
        return g, M, S

    def use_dp(self, K):
        if self.method == "dp":
            return True
        if self.method == "local":
            return False
        if self.method != "auto":
            raise ValueError(f"method must be 'auto', 'dp' or 'local', got {self.method!r}")
        return True

    # -- selection ------------------------------------------------------------------------------
    def select(self, K):
        """Key set of (at least) K keys on the proxy (no true errors)."""
        T = self.T
        if self.max_gap is not None:
            K = max(K, int(math.ceil((T - 1) / self.max_gap)) + 1)
        K = min(K, T)
        if K >= T:
            return np.arange(T, dtype=np.intp), "all frames"
        if not self.refine:
            return self.vw_keys(K), "vw"
        if self.use_dp(K):
            keys = self._select_dp(K)
            if keys is not None:
                return keys, "dp"
        keys = self.vw_keys(K)
        t = time.perf_counter()
        keys = _local_search(self.proxy, keys, max_gap=self.max_gap)
        self._tick("local", t)
        return keys, "vw+local"

    def _select_dp(self, K):
        T = self.T
        g, M, S = self.plan(K)
        grid = np.minimum(np.arange(M) * g, T - 1)
        if K > M:
            return None
        if self._table is None or self._table[0][0] != g or self._table[0][1] < S:
            t = time.perf_counter()
            self._table = ((g, S), self.proxy.grid_table(grid, S))
            self._tick("table", t)
        cost = self._table[1][:, : S + 1]
        if g == 1:
            self.proxy.table = self._table[1]  # segment costs by lookup from now on
        t = time.perf_counter()
        chunked = float(K) * M * S > DP_BUDGET
        if not chunked:
            kg = _dp_keys(cost, K)
        else:
            target = max(4 * S, CHUNK_LEN)
            bounds = _chunk_bounds(self.proxy.Y, grid, S, target)
            kg = _dp_chunked(cost, K, bounds)
        self._tick("dp", t)
        if kg is None:
            return None
        keys = grid[kg]
        t = time.perf_counter()
        if g > 1:  # settle every key on its best frame nearby
            keys, _ = _slide(self.proxy, keys, sweeps=2, max_gap=self.max_gap, window=g)
        # a short local search frees keys forced at chunk bounds and lets segments grow past
        # the span limit where the limit was reached
        binding = np.diff(kg).max() >= S and (self.max_gap is None or S * g < self.max_gap)
        if chunked or binding:
            keys = _local_search(self.proxy, keys, rounds=LS_ROUNDS, max_gap=self.max_gap,
                                 swap_rounds=8, sweeps=2)
        self._tick("local", t)
        return keys

    # -- fitting and measuring ------------------------------------------------------------------
    def state(self, keys):
        t = time.perf_counter()
        st = _State(self.truth, keys)
        self._tick("evaluate", t)
        return st

    def finish(self, keys, method, dist=None):
        """Fit handles, measure (unless ``dist`` is given for free handles), build the result."""
        t = time.perf_counter()
        keys = np.asarray(keys, dtype=np.intp)
        kv, hl, hr = bezier.fit(self.frames, self.vals, keys, self.handles)
        self._tick("fit", t)
        if dist is None or self.handles != "free":
            t = time.perf_counter()
            fitted = bezier.evaluate(self.frames, keys, kv, hl, hr)
            dist = self.truth.curve_distances(fitted, keys)
            self._tick("evaluate", t)
        stats = metrics.stats_from_distances(dist)
        return Reduction(
            key_idx=keys,
            key_frames=self.frames[keys].copy(),
            key_values=kv,
            hl=hl,
            hr=hr,
            handle_type=bezier.HANDLE_TYPES[self.handles],
            errors=stats,
            n_dense=self.T,
            frame_errors=dist.max(axis=1) if dist.size else np.zeros(self.T),
            values=self.vals,
            frames=self.frames,
            method=method,
        )

    def repair(self, st, K, target=None):
        if self.handles != "free" or not self.refine or self.repair_iters == 0:
            return st
        iters = self.repair_iters
        if iters is None:
            iters = max(4, int(math.ceil(K / 20)))
        rounds = 6
        if target is not None:
            iters = max(iters, 4) * 2
            rounds = 12
        if iters <= 0:
            return st
        t = time.perf_counter()
        st = _max_repair(st, self.proxy, iters, rounds=rounds, max_gap=self.max_gap,
                         target=target, row_budget=None if target is not None else self.T // 2)
        self._tick("repair", t)
        return st

    def counted(self, K):
        keys, method = self.select(K)
        if not self.refine or method == "all frames":
            return self.finish(keys, method)
        if self.handles != "free":
            # aligned handles couple all segments: improve on the aligned model, then compare
            # whole results with plain VW
            t = time.perf_counter()
            iters = self.repair_iters if self.repair_iters is not None else max(8, K // 4)
            keys = _aligned_search(self.proxy, keys, iters, max_gap=self.max_gap)
            self._tick("aligned", t)
            res = self.finish(keys, method + "+aligned")
            vw_keys = self.vw_keys(len(keys))
            if not np.array_equal(vw_keys, keys):
                plain = self.finish(vw_keys, "vw")
                if plain.errors.max < res.errors.max:
                    return plain
            return res
        st = self.state(keys)
        st = self.repair(st, K)
        # guard: never worse (max) than plain VW with as many keys
        vw_keys = self.vw_keys(len(st.keys))
        if not np.array_equal(vw_keys, st.keys) and not self._vw_is_worse(vw_keys, st.max):
            vst = self.state(vw_keys)
            if vst.max < st.max:
                st = self.repair(st, K, target=vst.max)
                if vst.max < st.max:
                    # start from plain VW instead and lower its mean under its own maximum
                    t = time.perf_counter()
                    st = _mean_repair(vst, self.proxy, vst.max, max_gap=self.max_gap)
                    self._tick("repair", t)
                    method = "vw+swaps"
        return self.finish(st.keys, method, st.dist)

    def _vw_is_worse(self, vw_keys, target):
        """True once some VW segment is measured at or above ``target`` (true error). VW
        segments are measured in order of their proxy maxima, a few at a time."""
        t = time.perf_counter()
        A, B = vw_keys[:-1], vw_keys[1:]
        _, pm = self.proxy.costs(A, B, want_max=True)
        order = np.argsort(-pm, kind="stable")
        done = 0
        batch = 2
        found = False
        while done < len(order):
            sel = order[done : done + batch]
            it, d = self.truth.segments(A[sel], B[sel])
            if len(d) and d.max() >= target:
                found = True
                break
            done += len(sel)
            batch *= 4
            if done >= 40:  # not found among the likeliest: settle it with a full measure
                break
        self._tick("guard", t)
        return found

    def bounded(self, bound):
        """Smallest key set (searched) whose measured max error is ≤ bound."""
        T = self.T
        aligned = self.handles != "free"
        tried = {}

        def attempt(K):
            """(max error, state or result, method) of the key set chosen for K keys."""
            if K not in tried:
                keys, method = self.select(K)
                if aligned:
                    if self.refine and method != "all frames":
                        keys = _aligned_search(self.proxy, keys, max(8, K // 4),
                                               max_gap=self.max_gap)
                    res = self.finish(keys, method)
                    tried[K] = (res.errors.max, res, method)
                else:
                    st = self.state(keys)
                    if st.max > bound and self.refine:
                        st = self.repair(st, K)
                    tried[K] = (st.max, st, method)
            return tried[K]

        lo, hi = 2, T
        if self.max_gap is not None:
            lo = max(lo, int(math.ceil((T - 1) / self.max_gap)) + 1)
        if attempt(lo)[0] <= bound:
            best_K = lo
        else:
            best_K = hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if attempt(mid)[0] <= bound:
                    hi = best_K = mid
                else:
                    lo = mid
        if best_K >= T:
            return self.finish(np.arange(T, dtype=np.intp), "all frames")
        _, found, method = attempt(best_K)
        if not aligned:
            st = self._insert_until(found, bound)
            if self.refine:
                st = self._remove_while(st, bound)
            return self.finish(st.keys, method, st.dist)
        # aligned handles couple segments: add keys at the worst frame of every run of frames
        # over the bound, measure the whole curve again, until the bound holds
        res = found
        keys = res.key_idx
        while res.errors.max > bound and len(keys) < T:
            over = res.frame_errors > bound
            starts = np.flatnonzero(over & ~np.r_[False, over[:-1]])
            ends = np.flatnonzero(over & ~np.r_[over[1:], False]) + 1
            new = [a + int(np.argmax(res.frame_errors[a:b])) for a, b in zip(starts, ends)]
            keys = np.union1d(keys, new).astype(np.intp)
            res = self.finish(keys, method)
        return res

    def _insert_until(self, st, bound):
        """Insert a key at the worst frame of every violating segment until none violates."""
        while st.max > bound:
            bad = np.nonzero(st.segmax > bound)[0]
            new = []
            for s in bad:
                a, b = st.keys[s], st.keys[s + 1]
                new.append(a + 1 + int(np.argmax(st.dist[a + 1 : b].max(axis=1))))
            keys = np.union1d(st.keys, new).astype(np.intp)
            # re-measure only the split segments
            A, B = [], []
            for s, m in zip(bad, new):
                A += [st.keys[s], m]
                B += [m, st.keys[s + 1]]
            it, d = self.truth.segments(np.array(A), np.array(B))
            dist = st.dist
            dist[new] = 0.0
            if len(d):
                dist[it.idx] = d
            st = _State(self.truth, keys, dist)
        return st

    def _remove_while(self, st, bound):
        """Drop keys (cheapest by the proxy first) while every merged segment stays within the
        bound, a batch of non-adjacent keys per measurement."""
        proxy = self.proxy
        for _ in range(64):
            keys = st.keys
            if len(keys) <= 2:
                break
            segc = proxy.costs(keys[:-1], keys[1:])
            loss = proxy.costs(keys[:-2], keys[2:]) - segc[:-1] - segc[1:]
            inner = np.arange(1, len(keys) - 1)
            if self.max_gap is not None:
                ok = keys[2:] - keys[:-2] <= self.max_gap
                inner, loss = inner[ok], loss[ok]
            if len(inner) == 0:
                break
            order = inner[np.argsort(loss, kind="stable")]
            chosen = []
            taken = np.zeros(len(keys), dtype=bool)
            for k in order:
                if taken[k - 1] or taken[k] or taken[k + 1]:
                    continue
                chosen.append(k)
                taken[k] = True
                if len(chosen) >= max(4, len(keys) // 8):
                    break
            chosen = np.array(sorted(chosen), dtype=np.intp)
            it, d = self.truth.segments(keys[chosen - 1], keys[chosen + 1])
            mx, _ = _seg_stats(it, d, len(chosen))
            okk = mx <= bound
            if not np.any(okk):
                break
            dist = st.dist
            for j in np.nonzero(okk)[0]:
                run, cnt = it.run[j], it.counts[j]
                dist[it.idx[run : run + cnt]] = d[run : run + cnt]
            st = _State(self.truth, np.delete(keys, chosen[okk]), dist)
        return st
