# SPDX-License-Identifier: GPL-3.0-or-later
"""GenMM: training-free generative motion matching from ONE reference motion (numpy only).

Works on any (T, D) array of per-frame features (e.g. 6-D rotations per joint plus root
velocity); nothing here knows about skeletons.

Algorithm (Li et al., "Example-based Motion Synthesis via Generative Motion Matching", 2023):

1. Build a temporal pyramid of the reference with factor ``pyramid_factor`` (0.75); the number of
   levels is the largest that keeps the coarsest reference at least ``coarsest_patches *
   patch_size`` frames long (one level when the reference is already shorter). The target length
   is scaled by the same factors, the finest level being exactly ``length``.
2. The initial synthesis is the coarsest reference linearly resampled to the coarsest target
   length, plus Gaussian noise ``noise * std_d`` per feature ``d`` (std of the reference;
   ``numpy.random.default_rng(seed)``).
3. At each level, ``rounds`` times: extract all temporal patches (size ``patch_size``, stride 1)
   of the synthesis (queries) and the reference (keys); for each query ``q`` pick the key ``k``
   minimising ``d(q, k) / (alpha + min_q' d(q', k))`` (the normalisation favours keys that no
   query uses yet: GenMM's completeness term); rebuild every frame as the average of the
   overlapping chosen key patches.
4. Linearly upsample the synthesis to the next level's target length.

Choices of ours (the paper/notes leave them open): ``d`` is the *mean* squared difference over
the patch's ``patch_size * D`` elements (so ``alpha = 0.01`` means the same for any D); the
noise is scaled by the per-feature std of the reference (features of different units); the
patch size shrinks to the shortest sequence at a level when a level is shorter than the patch.

Known behaviour: when ``length`` equals the reference length, the completeness term (each
reference patch wants to be used once) together with an initial guess that *is* the resampled
reference makes the result converge to a verbatim copy for ``noise`` up to ~3; variations appear
for other lengths (or with ``noise`` >= 5, at some cost in fidelity).
"""

import math

import numpy as np

__all__ = ["genmm", "extract_patches", "patch_sq_distances", "patch_nearest", "blend_patches",
           "resample", "pyramid_lengths"]

# Upper bound on the number of float64 entries of one distance block (queries x keys).
_BLOCK_ENTRIES = 1 << 22  # 4 M entries = 32 MiB


def resample(x, length):
    """Linearly interpolate ``x`` (T, D) along time to ``length`` frames (end points kept)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if length == n:
        return x.copy()
    if n == 1:
        return np.repeat(x, length, axis=0)
    pos = np.linspace(0.0, n - 1, int(length))
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n - 2)
    frac = (pos - lo)[:, None]
    return x[lo] * (1.0 - frac) + x[lo + 1] * frac


def extract_patches(x, patch_size):
    """All temporal patches of ``x`` (T, D), stride 1, flattened: (T - patch_size + 1, patch_size * D)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    t, d = x.shape
    n = t - patch_size + 1
    if n < 1:
        raise ValueError(f"sequence of {t} frames is shorter than the patch size {patch_size}")
    view = np.lib.stride_tricks.as_strided(
        x, shape=(n, patch_size * d), strides=(x.strides[0], x.strides[1]), writeable=False)
    return np.array(view)  # rows are contiguous frames, so a patch is x[i:i+P].ravel()


def _blocks(n_queries, n_keys):
    step = max(1, _BLOCK_ENTRIES // max(1, n_keys))
    for start in range(0, n_queries, step):
        yield start, min(n_queries, start + step)


def patch_sq_distances(queries, keys, keys_sq=None):
    """Mean squared distance between rows of ``queries`` (Nq, E) and ``keys`` (Nk, E): (Nq, Nk).

    Uses ``|q|^2 + |k|^2 - 2 q.k`` (one matrix product), clipped at 0. Callers chunk the
    queries (see :func:`patch_nearest`) to bound memory.
    """
    if keys_sq is None:
        keys_sq = np.einsum("ij,ij->i", keys, keys)
    q_sq = np.einsum("ij,ij->i", queries, queries)
    d = q_sq[:, None] + keys_sq[None, :] - 2.0 * (queries @ keys.T)
    np.maximum(d, 0.0, out=d)
    d /= queries.shape[1]
    return d


def patch_nearest(queries, keys, alpha=0.01):
    """Index of the key chosen for each query under GenMM's normalised distance.

    ``alpha=None`` gives the plain nearest neighbour. Otherwise the score is
    ``d(q, k) / (alpha + min_q' d(q', k))``. Distances are computed in query blocks of at most
    ``_BLOCK_ENTRIES`` entries; when the whole matrix does not fit in a few blocks the blocks are
    recomputed in a second pass instead of being stored (memory stays bounded for T ~ 2000+).
    Returns ``(index, distance)`` with the plain mean squared distance of each chosen key.
    """
    queries = np.asarray(queries, dtype=np.float64)
    keys = np.asarray(keys, dtype=np.float64)
    nq, nk = queries.shape[0], keys.shape[0]
    keys_sq = np.einsum("ij,ij->i", keys, keys)
    idx = np.empty(nq, dtype=np.int64)
    dist = np.empty(nq, dtype=np.float64)
    if alpha is None:
        for a, b in _blocks(nq, nk):
            d = patch_sq_distances(queries[a:b], keys, keys_sq)
            idx[a:b] = np.argmin(d, axis=1)
            dist[a:b] = d[np.arange(b - a), idx[a:b]]
        return idx, dist
    keep = nq * nk <= 4 * _BLOCK_ENTRIES
    stored = []
    col_min = np.full(nk, np.inf)
    for a, b in _blocks(nq, nk):
        d = patch_sq_distances(queries[a:b], keys, keys_sq)
        np.minimum(col_min, d.min(axis=0), out=col_min)
        if keep:
            stored.append(d)
    scale = 1.0 / (alpha + col_min)
    for n, (a, b) in enumerate(_blocks(nq, nk)):
        d = stored[n] if keep else patch_sq_distances(queries[a:b], keys, keys_sq)
        idx[a:b] = np.argmin(d * scale[None, :], axis=1)
        dist[a:b] = d[np.arange(b - a), idx[a:b]]
    return idx, dist


def blend_patches(reference, index, length, patch_size):
    """Rebuild ``length`` frames: frame t = mean over patches i covering t of reference[index[i] + t - i]."""
    reference = np.asarray(reference, dtype=np.float64)
    out = np.zeros((length, reference.shape[1]))
    count = np.zeros((length, 1))
    n = index.shape[0]
    for j in range(patch_size):
        out[j:j + n] += reference[index + j]
        count[j:j + n] += 1.0
    return out / count


def pyramid_lengths(ref_len, length, patch_size=11, pyramid_factor=0.75, coarsest_patches=5):
    """(reference lengths, target lengths) per level, coarsest first, finest = (ref_len, length)."""
    coarse = coarsest_patches * patch_size
    if ref_len <= coarse or not 0.0 < pyramid_factor < 1.0:
        levels = 1
    else:
        levels = int(math.floor(math.log(coarse / ref_len) / math.log(pyramid_factor))) + 1
    refs, targets = [], []
    for k in range(levels):
        s = pyramid_factor ** (levels - 1 - k)
        refs.append(max(1, int(round(ref_len * s))))
        targets.append(max(1, int(round(length * s))))
    refs[-1], targets[-1] = ref_len, length
    return refs, targets


def genmm(reference, length, seed, *, patch_size=11, pyramid_factor=0.75, coarsest_patches=5,
          rounds=3, alpha=0.01, noise=1.0):
    """Synthesise a (length, D) variation of ``reference`` (T, D) by generative motion matching.

    Deterministic for a given ``seed``. ``noise`` scales the initial Gaussian noise relative to
    the per-feature std of the reference (0 gives a near-resampled copy of the reference).
    See the module docstring for the algorithm and the choices made.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 2:
        raise ValueError("reference must be a (T, D) array with T >= 2")
    length = int(length)
    if length < 1:
        raise ValueError("length must be positive")
    rng = np.random.default_rng(seed)
    ref_lens, tgt_lens = pyramid_lengths(ref.shape[0], length, patch_size, pyramid_factor,
                                         coarsest_patches)
    std = ref.std(axis=0)
    syn = None
    for level, (rl, tl) in enumerate(zip(ref_lens, tgt_lens)):
        ref_l = resample(ref, rl)
        if syn is None:
            syn = resample(ref_l, tl) + noise * std[None, :] * rng.standard_normal((tl, ref.shape[1]))
        else:
            syn = resample(syn, tl)
        p = min(patch_size, rl, tl)
        keys = extract_patches(ref_l, p)
        for _ in range(rounds):
            idx, _ = patch_nearest(extract_patches(syn, p), keys, alpha)
            syn = blend_patches(ref_l, idx, tl, p)
    return syn
