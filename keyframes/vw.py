# SPDX-License-Identifier: GPL-3.0-or-later
"""Visvalingam–Whyatt significance of the frames of a whole trajectory.

Every frame is one point in N-D (typically the world positions of all tracked joints, in cm,
flattened, optionally with a scaled time column), so all channels share the same key frames.
The point whose triangle with its two current neighbours has the smallest area is removed
first, repeatedly; the area at which a point goes is its *effective area* (its significance).

Details that make the result well defined:

* Triangle area in N-D is the Gram determinant ``½·sqrt(|a|²|b|² − (a·b)²)`` with ``a``, ``b``
  the edges from the middle point; the dot product is taken from the three squared side
  lengths (``a·b = (|a|² + |b|² − |a−b|²)/2``), clamped at 0.
* Visvalingam's monotonic rule: when a neighbour's area is recomputed after a removal and comes
  out smaller than the area of the point just removed, it is raised to that area, so effective
  areas never decrease in removal order.
* Ties are broken by frame index (smallest first): the heap is ordered by ``(area, index)``.
* End points are never removed; their effective area is ``+inf``.

The heap uses lazy invalidation (stale entries are skipped when popped), so the whole ranking
costs O(n log n) plus O(n·D) for the distances, computed with :func:`math.dist` on Python
floats, which is much cheaper than a numpy call per removal for small vectors.
"""
from __future__ import annotations

import heapq
import math

import numpy as np

__all__ = ["effective_areas", "select_count", "removal_order", "ranking", "area_from_sq"]


def area_from_sq(d_ab: float, d_bc: float, d_ac: float) -> float:
    """Area of the triangle (a, b, c) from its squared side lengths |a−b|², |b−c|², |a−c|².

    This is the Gram determinant of the edges ``b→a`` and ``b→c``.
    """
    dot = 0.5 * (d_ab + d_bc - d_ac)
    g = d_ab * d_bc - dot * dot
    return 0.5 * math.sqrt(g) if g > 0.0 else 0.0


def _as_points(points) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"points must be (T, D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("points contain NaN or inf")
    return x


# Pairs at most this many frames apart get their squared distance from one vectorised table;
# the (few) wider pairs that VW meets late, when few points remain, use math.dist.
_TABLE_GAP = 16


class PairSq:
    """Squared distance between points ``a < b`` of ``x``: from a vectorised table when
    ``b − a ≤ gap``, else :func:`math.dist` on lazily converted rows. Every pair the algorithm
    needs is asked for once."""

    def __init__(self, x: np.ndarray, gap: int = _TABLE_GAP):
        n = len(x)
        self.x = x
        self.gap = g = max(1, min(int(gap), n - 1))
        table = np.zeros((n, g + 1))
        for k in range(1, g + 1):
            diff = x[k:] - x[:-k]
            table[: n - k, k] = np.einsum("ij,ij->i", diff, diff)
        self.table = table.tolist()
        self.rows = [None] * n

    def row(self, i):
        r = self.rows[i]
        if r is None:
            r = self.rows[i] = self.x[i].tolist()
        return r

    def __call__(self, a: int, b: int) -> float:
        if b - a <= self.gap:
            return self.table[a][b - a]
        d = math.dist(self.row(a), self.row(b))
        return d * d


def _run(points):
    """Shared core: returns (areas list, removal order list)."""
    x = _as_points(points)
    n = len(x)
    inf = math.inf
    areas = [inf] * n
    order = []
    if n <= 2:
        return areas, order
    sq = PairSq(x)
    table, gap, row, dist, sqrt = sq.table, sq.gap, sq.row, math.dist, math.sqrt
    # d_next[i]: squared distance from i to its current right neighbour.
    # d_skip[i]: squared distance between the current neighbours of i (the third side of its
    # triangle). When i is removed, d_skip[i] becomes the new neighbour distance for free, so
    # each removal needs only two new distances.
    d_next = [table[i][1] for i in range(n - 1)] + [0.0]
    d_skip = [0.0] + [table[i][2] for i in range(n - 2)] + [0.0]  # gap >= 2 as n >= 3
    area_sq = area_from_sq
    cur = [inf] * n
    heap = []
    for i in range(1, n - 1):
        a = area_sq(d_next[i - 1], d_next[i], d_skip[i])
        cur[i] = a
        heap.append((a, i))
    heapq.heapify(heap)
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))
    removed = [False] * n
    heappop, heappush = heapq.heappop, heapq.heappush
    while heap:
        a, i = heappop(heap)
        if removed[i] or a != cur[i]:
            continue  # stale entry
        removed[i] = True
        areas[i] = a
        order.append(i)
        p, q = prev[i], nxt[i]
        nxt[p] = q
        prev[q] = p
        d_pq = d_skip[i]
        d_next[p] = d_pq
        if p > 0:  # p stays interior: its neighbours are now prev[p] and q
            pp = prev[p]
            if q - pp <= gap:
                d = table[pp][q - pp]
            else:
                d = dist(row(pp), row(q))
                d = d * d
            d_skip[p] = d
            e = d_next[pp]
            h = 0.5 * (e + d_pq - d)
            g = e * d_pq - h * h  # area_from_sq, inlined
            b = 0.5 * sqrt(g) if g > 0.0 else 0.0
            if b < a:
                b = a  # Visvalingam's monotonic rule
            cur[p] = b
            heappush(heap, (b, p))
        if q < n - 1:  # q stays interior: its neighbours are now p and nxt[q]
            qq = nxt[q]
            if qq - p <= gap:
                d = table[p][qq - p]
            else:
                d = dist(row(p), row(qq))
                d = d * d
            d_skip[q] = d
            e = d_next[q]
            h = 0.5 * (d_pq + e - d)
            g = d_pq * e - h * h
            b = 0.5 * sqrt(g) if g > 0.0 else 0.0
            if b < a:
                b = a
            cur[q] = b
            heappush(heap, (b, q))
    return areas, order


def effective_areas(points) -> np.ndarray:
    """VW significance of each point of ``points`` (T, D): the (monotonised) triangle area at
    which it is removed. End points get ``+inf``. Returns float64 (T,)."""
    areas, _ = _run(points)
    return np.asarray(areas, dtype=np.float64)


def removal_order(points) -> np.ndarray:
    """Interior indices in the order VW removes them (least significant first)."""
    _, order = _run(points)
    return np.asarray(order, dtype=np.intp)


def ranking(areas) -> np.ndarray:
    """All indices, most significant first: end points, then by area descending, ties by index
    descending. (Removal order is by ``(area, index)`` ascending except where the monotonic rule
    creates ties; there this is the natural reading of "most significant".)"""
    areas = np.asarray(areas, dtype=np.float64)
    T = len(areas)
    idx = np.arange(T)
    not_end = np.ones(T, dtype=bool)
    if T:
        not_end[[0, T - 1]] = False
    # lexsort: the last key is primary.
    return np.lexsort((-idx, -areas, not_end))


def select_count(areas, n_keys) -> np.ndarray:
    """Sorted indices of the ``n_keys`` most significant points (see :func:`ranking`). Ends are
    always kept; ``n_keys`` is clamped to ``[2, T]`` (to ``T`` when ``T < 2``)."""
    areas = np.asarray(areas, dtype=np.float64)
    T = len(areas)
    n = int(min(max(int(n_keys), 2), T))
    return np.sort(ranking(areas)[:n]).astype(np.intp)
