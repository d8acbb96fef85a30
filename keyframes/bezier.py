# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender Bezier segments under the one-third handle rule, and least-squares handle fits.

Between keys ``(t0, v0)`` and ``(t1, v1)`` Blender draws a cubic Bezier in the (frame, value)
plane whose inner control points are key 0's right handle and key 1's left handle. We always
put the handles' x at ``t0 + Δ/3`` and ``t1 − Δ/3`` (``Δ = t1 − t0``); then x(u) is linear in
the curve parameter, ``u = (t − t0)/Δ``, and the value at frame ``t`` is the cubic Bernstein
polynomial ``v0·(1−u)³ + 3·hr0·u(1−u)² + 3·hl1·u²(1−u) + v1·u³`` with ``hr0``/``hl1`` the
handles' y. Before the first key and after the last the curve is constant (Blender's
'CONSTANT' extrapolation).

Arrays: ``frames`` (T,) are the dense sample frames (increasing), ``key_idx`` (K,) increasing
indices into them, ``key_values``/``hl``/``hr`` (K, C): the value, left-handle y and right-handle
y of every key for every channel. ``hl[0]`` and ``hr[-1]`` do not shape the curve; the fits set
them so that the key's tangent continues to the outside (harmless in Blender).

Two fits, both keeping key values equal to the samples at the key frames:

* :func:`fit_free` — every segment's two inner control values are fitted independently by
  least squares (closed-form 2×2 per segment and channel). Tangents may break at keys
  (Blender handle type 'FREE'). Segments are independent, which is what makes the optimal
  key set a dynamic programme (:mod:`.optimal`).
* :func:`fit_aligned` — one slope per key and channel, shared by both sides (a C¹ cubic
  Hermite spline; handle type 'ALIGNED'), fitted by one global least squares. Its normal
  matrix depends only on the key times, is tridiagonal and shared by all channels, so it is
  factorised once and solved for all channels together.

Where the data do not determine a control value (a segment with fewer than two interior
samples), it is taken from a prior: the slope of the dense samples at the key (central
differences). With one interior sample the fit still passes through that sample exactly, with
the handles as close to the prior as possible.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "bernstein",
    "evaluate",
    "fit_free",
    "fit_aligned",
    "fit",
    "Segments",
    "fit_segments_free",
    "eval_segments",
    "HANDLE_TYPES",
    "clamp_handle",
    "segment_parameter",
    "fit_segments_given",
]

HANDLE_TYPES = {"free": "FREE", "aligned": "ALIGNED"}


def bernstein(u):
    """The four cubic Bernstein basis values at ``u`` (any shape) → tuple of 4 arrays."""
    u = np.asarray(u, dtype=np.float64)
    w = 1.0 - u
    return w * w * w, 3.0 * u * w * w, 3.0 * u * u * w, u * u * u


def _check(frames, key_idx, key_values=None):
    frames = np.asarray(frames, dtype=np.float64).reshape(-1)
    key_idx = np.asarray(key_idx).reshape(-1)
    if key_idx.dtype.kind not in "iu":
        if not np.all(key_idx == np.round(key_idx)):
            raise ValueError("key_idx must be integer indices into frames")
        key_idx = key_idx.astype(np.intp)
    key_idx = key_idx.astype(np.intp, copy=False)
    if len(key_idx) == 0:
        raise ValueError("need at least one key")
    if np.any(np.diff(key_idx) <= 0):
        raise ValueError("key_idx must be strictly increasing")
    if key_idx[0] < 0 or key_idx[-1] >= len(frames):
        raise ValueError("key_idx out of range")
    return frames, key_idx


def _as_2d(values):
    v = np.asarray(values, dtype=np.float64)
    squeeze = v.ndim == 1
    if squeeze:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"values must be (T, C), got {v.shape}")
    return v, squeeze


def evaluate(frames_dense, key_idx, key_values, hl, hr, key_frames=None) -> np.ndarray:
    """Value of the Bezier curves at ``frames_dense`` (T,) → (T, C).

    The keys sit at ``frames_dense[key_idx]`` (or at ``key_frames`` if given; then ``key_idx``
    only needs to be increasing). Constant before the first and after the last key.
    """
    t = np.asarray(frames_dense, dtype=np.float64).reshape(-1)
    kv, squeeze = _as_2d(key_values)
    hl, _ = _as_2d(hl)
    hr, _ = _as_2d(hr)
    if key_frames is None:
        _, key_idx = _check(t, key_idx)
        kf = t[key_idx]
    else:
        kf = np.asarray(key_frames, dtype=np.float64).reshape(-1)
    K = len(kf)
    if not (kv.shape == hl.shape == hr.shape and kv.shape[0] == K):
        raise ValueError("key_values, hl, hr must all be (K, C) with K keys")
    if K == 1:
        out = np.broadcast_to(kv[0], (len(t), kv.shape[1])).copy()
        return out[:, 0] if squeeze else out
    seg = np.clip(np.searchsorted(kf, t, side="right") - 1, 0, K - 2)
    t0 = kf[seg]
    u = np.clip((t - t0) / (kf[seg + 1] - t0), 0.0, 1.0)
    b0, b1, b2, b3 = bernstein(u)
    out = (
        b0[:, None] * kv[seg]
        + b1[:, None] * hr[seg]
        + b2[:, None] * hl[seg + 1]
        + b3[:, None] * kv[seg + 1]
    )
    return out[:, 0] if squeeze else out


def _dense_slopes(frames, values):
    """Slope of the samples at every frame (central differences; one-sided at the ends)."""
    if len(frames) < 2:
        return np.zeros_like(values)
    return np.gradient(values, frames, axis=0)


class Segments:
    """Interior samples of a set of segments ``(starts[s], ends[s])`` (sample indices,
    ``ends > starts``; segments may overlap), concatenated segment by segment, with their
    Bernstein basis values. ``idx`` (n,) are the interior sample indices, ``seg`` (n,) the
    segment of each, ``run`` (S,) where each segment's samples begin, ``counts`` (S,) how many."""

    def __init__(self, frames, starts, ends):
        frames = np.asarray(frames, dtype=np.float64)
        starts = np.asarray(starts, dtype=np.intp).reshape(-1)
        ends = np.asarray(ends, dtype=np.intp).reshape(-1)
        self.starts, self.ends = starts, ends
        self.n_seg = nseg = len(starts)
        f0 = frames[starts]
        self.dt = frames[ends] - f0
        counts = ends - starts - 1
        self.counts = counts
        n = int(counts.sum())
        seg = np.repeat(np.arange(nseg), counts)
        run = np.zeros(nseg, dtype=np.intp)
        if nseg > 1:
            np.cumsum(counts[:-1], out=run[1:])
        self.run = run
        self.idx = starts[seg] + 1 + (np.arange(n) - run[seg])
        self.seg = seg
        u = (frames[self.idx] - f0[seg]) / self.dt[seg]
        self.b0, self.b1, self.b2, self.b3 = bernstein(u)

    def segsum(self, x):
        """Per-segment sums of ``x`` (n,) or (n, C) over interior samples → (S,) or (S, C)."""
        sums = np.zeros((self.n_seg,) + x.shape[1:])
        nonempty = self.counts > 0
        if np.any(nonempty):
            sums[nonempty] = np.add.reduceat(x, self.run[nonempty], axis=0)
        return sums


def fit_segments_free(frames, values, starts, ends, slopes=None, segments=None):
    """Free least-squares handles of independent segments ``(starts[s], ends[s])``.

    Returns ``(hr, hl, segments)``: the right-handle value of each segment's first key and the
    left-handle value of its last, (S, C), and the :class:`Segments` used. ``slopes`` (T, C)
    are the dense slopes (prior for under-determined handles); computed if not given. This is
    exactly what :func:`fit_free` does for consecutive keys.
    """
    v = values
    it = segments if segments is not None else Segments(frames, starts, ends)
    starts, ends = it.starts, it.ends
    if slopes is None:
        slopes = _dense_slopes(np.asarray(frames, dtype=np.float64), v)
    v0, v1 = v[starts], v[ends]
    dt3 = (it.dt / 3.0)[:, None]
    pa = v0 + slopes[starts] * dt3  # prior right handle of the first key
    pb = v1 - slopes[ends] * dt3  # prior left handle of the last key
    seg = it.seg
    b1, b2 = it.b1, it.b2
    r = v[it.idx] - it.b0[:, None] * v0[seg] - it.b3[:, None] * v1[seg]
    n11 = it.segsum(b1 * b1)[:, None]
    n12 = it.segsum(b1 * b2)[:, None]
    n22 = it.segsum(b2 * b2)[:, None]
    r1 = it.segsum(b1[:, None] * r)
    r2 = it.segsum(b2[:, None] * r)
    cnt = it.counts[:, None]
    # >= 2 samples: the 2x2 normal equations (a negligible ridge towards the prior for safety)
    lam = 1e-12 * (n11 + n22)
    a11, a22 = n11 + lam, n22 + lam
    det = a11 * a22 - n12 * n12
    det_safe = np.where(det > 0, det, 1.0)
    q1 = r1 + lam * pa
    q2 = r2 + lam * pb
    x1 = (a22 * q1 - n12 * q2) / det_safe
    x2 = (a11 * q2 - n12 * q1) / det_safe
    # exactly 1 sample: pass through it, handles as close to the prior as possible
    # (minimise |x − prior|² subject to b1·x1 + b2·x2 = r)
    if len(b1):
        first = np.minimum(it.run, len(b1) - 1)
        s1, s2, s_r = b1[first][:, None], b2[first][:, None], r[first]
    else:
        s1 = s2 = np.zeros((it.n_seg, 1))
        s_r = np.zeros_like(pa)
    nn = s1 * s1 + s2 * s2
    step = (s_r - s1 * pa - s2 * pb) / np.where(nn > 0, nn, 1.0)
    many = (cnt >= 2) & (det > 0)
    one = (cnt == 1) & (nn > 0)
    hr = np.where(many, x1, np.where(one, pa + s1 * step, pa))
    hl = np.where(many, x2, np.where(one, pb + s2 * step, pb))
    return hr, hl, it


def eval_segments(it, values, hr, hl):
    """Values (n, C) of fitted segments at their interior samples ``it.idx``; ``values`` are the
    dense samples (the segment end values are taken from them)."""
    seg = it.seg
    return (
        it.b0[:, None] * values[it.starts][seg]
        + it.b1[:, None] * hr[seg]
        + it.b2[:, None] * hl[seg]
        + it.b3[:, None] * values[it.ends][seg]
    )


def fit_free(frames, values, key_idx):
    """Independent least-squares handles per segment and channel.

    Returns ``(key_values, hl, hr)``, each (K, C) (or (K,) for 1-D ``values``). Key values are the
    samples at the keys; for each segment the right handle of its first key and the left handle
    of its second minimise the squared error over the segment's interior samples.
    """
    frames, key_idx = _check(frames, key_idx)
    v, squeeze = _as_2d(values)
    if len(v) != len(frames):
        raise ValueError("values and frames differ in length")
    kv = v[key_idx].copy()
    hl = kv.copy()
    hr = kv.copy()
    if len(key_idx) >= 2:
        h_r, h_l, _ = fit_segments_free(frames, v, key_idx[:-1], key_idx[1:])
        hr[:-1] = h_r
        hl[1:] = h_l
        # outer handles: continue the tangent of the adjacent segment
        hl[0] = kv[0] - (hr[0] - kv[0])
        hr[-1] = kv[-1] + (kv[-1] - hl[-1])
    if squeeze:
        return kv[:, 0], hl[:, 0], hr[:, 0]
    return kv, hl, hr


def _tridiag_solve(lower, diag, upper, rhs):
    """Solve a tridiagonal system for many right-hand sides at once.

    ``diag`` (K,), ``lower``/``upper`` (K-1,) (``lower[k]`` couples row k+1 to column k), ``rhs``
    (K, C). Thomas algorithm; the scalar elimination factors are computed once (the matrix is
    shared by all channels) and the right-hand sides are swept as (C,) vectors.
    """
    K = len(diag)
    lower = [float(x) for x in lower]
    upper = [float(x) for x in upper]
    d = [float(x) for x in diag]
    cp = [0.0] * K
    den = [0.0] * K
    den[0] = d[0]
    for k in range(1, K):
        cp[k - 1] = upper[k - 1] / den[k - 1]
        den[k] = d[k] - lower[k - 1] * cp[k - 1]
    y = np.array(rhs, dtype=np.float64, copy=True)
    y[0] /= den[0]
    for k in range(1, K):
        y[k] -= lower[k - 1] * y[k - 1]
        y[k] /= den[k]
    for k in range(K - 2, -1, -1):
        y[k] -= cp[k] * y[k + 1]
    return y


def fit_aligned(frames, values, key_idx):
    """One tangent slope per key and channel (C¹ at every key), global least squares.

    Returns ``(key_values, hl, hr)``: ``hr[k] = v[k] + m[k]·Δ_right/3`` and
    ``hl[k] = v[k] − m[k]·Δ_left/3``, each side with its own segment length, so the left and
    right slopes at every key are equal (Blender handle type 'ALIGNED').
    """
    frames, key_idx = _check(frames, key_idx)
    v, squeeze = _as_2d(values)
    if len(v) != len(frames):
        raise ValueError("values and frames differ in length")
    kv = v[key_idx].copy()
    prior = _dense_slopes(frames, v)[key_idx]
    K, C = kv.shape
    if K < 2:
        m = prior
        hl = kv.copy()
        hr = kv.copy()
    else:
        it = Segments(frames, key_idx[:-1], key_idx[1:])
        seg = it.seg
        dt3 = it.dt / 3.0
        # value = v_s (B0+B1) + v_{s+1} (B2+B3) + m_s a_t − m_{s+1} b_t
        a = dt3[seg] * it.b1
        b = dt3[seg] * it.b2
        r = (
            v[it.idx]
            - (it.b0 + it.b1)[:, None] * kv[:-1][seg]
            - (it.b2 + it.b3)[:, None] * kv[1:][seg]
        )
        saa = it.segsum(a * a)
        sbb = it.segsum(b * b)
        sab = it.segsum(a * b)
        sar = it.segsum(a[:, None] * r)
        sbr = it.segsum(b[:, None] * r)
        diag = np.zeros(K)
        diag[:-1] += saa
        diag[1:] += sbb
        off = -sab
        rhs = np.zeros((K, C))
        rhs[:-1] += sar
        rhs[1:] -= sbr
        # ridge towards the dense slopes: decides slopes the samples leave free
        scale = float(diag.max()) if K else 0.0
        lam = 1e-9 * scale if scale > 0 else 1.0
        diag = diag + lam
        rhs = rhs + lam * prior
        m = _tridiag_solve(off, diag, off, rhs)
        hl = kv.copy()
        hr = kv.copy()
        hr[:-1] = kv[:-1] + m[:-1] * dt3[:, None]
        hl[1:] = kv[1:] - m[1:] * dt3[:, None]
        hl[0] = kv[0] - m[0] * dt3[0]
        hr[-1] = kv[-1] + m[-1] * dt3[-1]
    if squeeze:
        return kv[:, 0], hl[:, 0], hr[:, 0]
    return kv, hl, hr


def fit(frames, values, key_idx, handles="free"):
    """Dispatch to :func:`fit_free` (``'free'``) or :func:`fit_aligned` (``'aligned'``)."""
    if handles == "free":
        return fit_free(frames, values, key_idx)
    if handles == "aligned":
        return fit_aligned(frames, values, key_idx)
    raise ValueError(f"handles must be 'free' or 'aligned', got {handles!r}")


# --------------------------------------------------------------------------- given handles


def clamp_handle(key_x, key_y, handle_x, handle_y, length):
    """A handle as Blender draws it on a segment ``length`` frames long: no longer (in x) than
    the segment, shortened towards its key along its own direction (Blender's
    ``BKE_fcurve_correct_bezpart``, applied when it evaluates; checked against
    ``FCurve.evaluate`` on 4.2, 4.5 and 5.0). Arrays or scalars; returns ``(x, y)``."""
    key_x, key_y, handle_x, handle_y, length = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (key_x, key_y, handle_x, handle_y, length)))
    dx = handle_x - key_x
    adx = np.abs(dx)
    f = np.where((adx > length) & (length > 0), length / np.where(adx > 0, adx, 1.0), 1.0)
    return key_x + f * dx, key_y + f * (handle_y - key_y)


def segment_parameter(cx, t, iterations: int = 48):
    """Curve parameter ``u`` (n,) of frames ``t`` (n,) on Bezier segments whose control points'
    x are ``cx`` (4,) or (4, n) (x(u) monotone: the keys in order, each handle inside the
    segment): bisection."""
    t = np.asarray(t, dtype=np.float64)
    lo = np.zeros_like(t)
    hi = np.ones_like(t)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        b0, b1, b2, b3 = bernstein(mid)
        x = b0 * cx[0] + b1 * cx[1] + b2 * cx[2] + b3 * cx[3]
        below = x < t
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def fit_segments_given(seg, t, values, x0, y0, x1, y1, hr0, hl1, free0, free1, prior0,
                       prior1):
    """Least-squares handles of independent Bezier segments where either inner handle may be
    given, with Blender's own geometry.

    Segment ``s`` runs from key ``(x0[s], y0[s])`` to ``(x1[s], y1[s])``; ``hr0`` (S, 2) is the
    first key's right handle and ``hl1`` (S, 2) the second key's left handle, (x, y). Where
    ``free0`` / ``free1`` (S,) the handle's y is fitted (its x is where it will be written:
    inside the segment, a third of it keeps the curve monotone in time whatever the other
    handle); elsewhere the handle is given and taken as Blender draws it
    (:func:`clamp_handle`: a handle longer than the segment is shortened). Frames need not
    follow the one-third rule: each sample's curve parameter is solved from the cubic in x
    (:func:`segment_parameter`). Samples: ``t`` (n,) frames strictly inside their segment
    ``seg`` (n,), non-decreasing, with ``values`` (n,). ``prior0`` / ``prior1`` (S,): the
    handles' y where the samples do not determine them (no sample; one sample for two free
    handles: through it, as close to the priors as possible — as :func:`fit_free`).

    Returns ``(y of hr0, y of hl1)`` (S,) each: fitted where free, given elsewhere."""
    seg = np.asarray(seg, dtype=np.intp)
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    x0, y0, x1, y1 = (np.asarray(a, dtype=np.float64) for a in (x0, y0, x1, y1))
    hr0 = np.asarray(hr0, dtype=np.float64).reshape(-1, 2)
    hl1 = np.asarray(hl1, dtype=np.float64).reshape(-1, 2)
    free0 = np.asarray(free0, dtype=bool)
    free1 = np.asarray(free1, dtype=bool)
    p0 = np.asarray(prior0, dtype=np.float64)
    p1 = np.asarray(prior1, dtype=np.float64)
    S = len(x0)
    L = x1 - x0
    ax, ay = clamp_handle(x0, y0, hr0[:, 0], np.where(free0, p0, hr0[:, 1]), L)
    bx, by = clamp_handle(x1, y1, hl1[:, 0], np.where(free1, p1, hl1[:, 1]), L)
    ax = np.where(free0, hr0[:, 0], ax)
    bx = np.where(free1, hl1[:, 0], bx)
    out0 = np.where(free0, p0, hr0[:, 1])
    out1 = np.where(free1, p1, hl1[:, 1])
    if len(t) == 0 or S == 0:
        return out0, out1
    cx = np.stack([x0[seg], ax[seg], bx[seg], x1[seg]])
    u = segment_parameter(cx, t)
    b0, b1, b2, b3 = bernstein(u)
    f0, f1 = free0[seg], free1[seg]
    r = v - b0 * y0[seg] - b3 * y1[seg] - np.where(f0, 0.0, b1 * ay[seg]) \
        - np.where(f1, 0.0, b2 * by[seg])
    c1 = np.where(f0, b1, 0.0)
    c2 = np.where(f1, b2, 0.0)

    def ssum(x):
        return np.bincount(seg, weights=x, minlength=S)

    n11, n12, n22 = ssum(c1 * c1), ssum(c1 * c2), ssum(c2 * c2)
    # the residual after the priors; the ridge pulls towards them only where the samples leave
    # the handles undetermined
    rr = r - c1 * p0[seg] - c2 * p1[seg]
    q1, q2 = ssum(c1 * rr), ssum(c2 * rr)
    lam = 1e-9 * (n11 + n22) + 1e-300
    a11 = np.where(free0, n11 + lam, 1.0)
    a22 = np.where(free1, n22 + lam, 1.0)
    a12 = np.where(free0 & free1, n12, 0.0)
    det = a11 * a22 - a12 * a12
    det = np.where(det > 0, det, 1.0)
    d0 = (a22 * q1 - a12 * q2) / det
    d1 = (a11 * q2 - a12 * q1) / det
    return np.where(free0, p0 + d0, out0), np.where(free1, p1 + d1, out1)
