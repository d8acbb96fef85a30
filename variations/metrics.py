# SPDX-License-Identifier: GPL-3.0-or-later
"""One-to-many motion metrics (MotionDreamer's table: the SinMDM / GANimator protocol), numpy only.

All metrics work on (T, D) per-frame feature arrays; the frame distance is the Euclidean norm of
the feature difference (GANimator evaluates on 6-D joint rotations, root excluded; pass whatever
features you want compared). A "window distance" between two equally long windows is the mean of
their per-frame distances over time-aligned frames.

* **coverage** -- for every window (``coverage_window`` = 30 frames, stride 1) of the reference,
  the distance to its nearest window of a generated motion; the window is covered when that is
  below ``coverage_threshold`` (2.0, GANimator's value). Fraction of covered windows per generated
  motion, averaged over the motions. Higher is better.
* **global_diversity** -- GANimator's patched nearest neighbour: the generated motion is split
  into segments of at least ``global_min_segment`` (30) frames, each matched to a contiguous
  reference segment of the same length, by dynamic programming minimising the summed per-frame
  distance; the minimum divided by the generated length. Zero for a copy or for a re-ordering of
  long reference segments; grows when new transitions appear. Averaged over motions.
* **local_diversity** -- for every window of ``local_window`` (15) frames of the generated motion,
  the distance to its nearest reference window; mean over windows, then over motions.
* **inter_diversity** -- diversity *between* generated motions: ``local_diversity`` of motion i
  measured against motion i-1 (cyclic) instead of the reference, averaged. SinMDM's evaluation
  code also records ``inter_diversity_dist`` = ``||g_i - g_{i-1}||_F / T`` (time-aligned); we
  return both and treat the window form as the main one (it is not fooled by a time shift).
  Needs at least two motions (``nan`` otherwise).
* **intra_diversity** -- diversity *within* a motion: ``||w_a - w_b||_F / W`` between two random
  windows of ``intra_window`` (15) frames of the same motion, averaged over ``intra_pairs``
  random pairs per motion (seeded by ``seed``); ``reference_intra_diversity`` is the same on the
  reference and ``intra_diversity_diff = |intra - reference_intra|`` (lower is better: a
  variation should vary internally as much as the reference does).
* **harmonic_mean** -- ``2 c g / (c + g)`` of coverage ``c`` (a fraction, 0..1) and global
  diversity ``g`` (SinMDM's summary of the coverage/diversity trade-off; 0 when either is 0).

Choices the available text leaves open (documented here, adjustable by keyword):
window lengths and threshold (GANimator/SinMDM values at 30 fps; scale them with the frame rate
if needed); windows include the last one (``T - W + 1`` windows; GANimator's loop drops it);
the intra-diversity pairs are seeded and several per motion instead of one unseeded pair;
the harmonic mean uses the raw global diversity (its scale depends on the features).
"""

import numpy as np

__all__ = ["frame_distances", "window_distances", "patched_nn", "local_nn", "coverage",
           "intra_diversity", "harmonic_mean", "evaluate_variations"]


def frame_distances(a, b):
    """Euclidean distance between every frame of ``a`` (Ta, D) and of ``b`` (Tb, D): (Ta, Tb)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = (np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
         - 2.0 * (a @ b.T))
    return np.sqrt(np.maximum(d, 0.0))


def window_distances(cost, window):
    """Mean per-frame distance between every window of the rows and every window of the columns.

    ``cost`` is a frame distance matrix (Ta, Tb); returns (Ta - W + 1, Tb - W + 1).
    """
    ta, tb = cost.shape
    na, nb = ta - window + 1, tb - window + 1
    if na < 1 or nb < 1:
        raise ValueError(f"window {window} longer than a sequence ({ta}, {tb} frames)")
    out = np.zeros((na, nb))
    for t in range(window):
        out += cost[t:t + na, t:t + nb]
    return out / window


def local_nn(source, target, window):
    """Mean over windows of ``source`` of the distance to the nearest window of ``target``."""
    return float(window_distances(frame_distances(source, target), window).min(axis=1).mean())


def coverage(generated, reference, window=30, threshold=2.0):
    """Fraction of reference windows whose nearest generated window is closer than ``threshold``."""
    nn = window_distances(frame_distances(reference, generated), window).min(axis=1)
    return float(np.mean(nn < threshold))


def harmonic_mean(cov, global_div) -> float:
    """``2 c g / (c + g)`` of coverage and global diversity; 0 when either is 0."""
    return 0.0 if cov <= 0.0 or global_div <= 0.0 else 2.0 * cov * global_div / (cov + global_div)


def patched_nn(source, target, min_segment=30):
    """GANimator's patched nearest neighbour: mean per-frame cost of the best segmentation.

    ``source`` (L frames) is cut into consecutive segments of at least ``min_segment`` frames,
    each aligned frame-to-frame with a contiguous segment of ``target``; the summed frame
    distance is minimised exactly by dynamic programming over diagonals (offset
    ``k = target index - source index``), in O(L * (L + Lt)) time and memory, and divided by L.
    """
    cost = frame_distances(source, target)
    n, m = cost.shape
    min_segment = min(min_segment, n, m)
    offsets = np.arange(-(n - 1), m)  # diagonal offsets k
    rows = np.arange(n)[:, None]
    cols = rows + offsets[None, :]
    valid = (cols >= 0) & (cols < m)
    diag = np.where(valid, cost[rows, np.clip(cols, 0, m - 1)], 0.0)
    csum = np.vstack([np.zeros((1, offsets.size)), np.cumsum(diag, axis=0)])  # (n + 1, K)
    lo = np.maximum(0, -offsets)   # first source frame valid on diagonal k
    hi = np.minimum(n, m - offsets)  # one past the last
    g = np.full(n + 1, np.inf)
    g[0] = 0.0
    best = np.full(offsets.size, np.inf)  # min over admissible l of g[l] - csum[l, k]
    for i in range(min_segment, n + 1):
        l = i - min_segment
        if np.isfinite(g[l]):
            ok = l >= lo
            cand = g[l] - csum[l]
            best = np.where(ok & (cand < best), cand, best)
        val = np.where(i <= hi, csum[i] + best, np.inf)
        g[i] = val.min()
    return float(g[n] / n)


def intra_diversity(motion, window=15, pairs=16, rng=None):
    """Mean ``||w_a - w_b||_F / window`` over ``pairs`` random window pairs of one motion."""
    motion = np.asarray(motion, dtype=np.float64)
    rng = np.random.default_rng(0) if rng is None else rng
    n = motion.shape[0] - window + 1
    if n < 1:
        raise ValueError("motion shorter than the intra-diversity window")
    starts = rng.integers(0, n, size=(pairs, 2))
    vals = [np.linalg.norm(motion[a:a + window] - motion[b:b + window]) / window for a, b in starts]
    return float(np.mean(vals))


def evaluate_variations(reference, generated_list, *, coverage_window=30, coverage_threshold=2.0,
                        global_min_segment=30, local_window=15, intra_window=15, intra_pairs=16,
                        seed=0):
    """All metrics of a set of generated motions against their one reference (see module doc).

    Returns a dict of floats: coverage, global_diversity, local_diversity, inter_diversity,
    inter_diversity_dist, intra_diversity, reference_intra_diversity, intra_diversity_diff,
    harmonic_mean, plus ``*_std`` (std over motions) for the per-motion metrics and
    ``num_motions``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    gens = [np.asarray(g, dtype=np.float64) for g in generated_list]
    if not gens:
        raise ValueError("generated_list is empty")
    for g in gens:
        if g.ndim != 2 or g.shape[1] != ref.shape[1]:
            raise ValueError("every generated motion must be (T, D) with the reference's D")
    rng = np.random.default_rng(seed)
    cov = [coverage(g, ref, coverage_window, coverage_threshold) for g in gens]
    glob = [patched_nn(g, ref, global_min_segment) for g in gens]
    loc = [local_nn(g, ref, local_window) for g in gens]
    intra = [intra_diversity(g, intra_window, intra_pairs, rng) for g in gens]
    ref_intra = intra_diversity(ref, intra_window, intra_pairs * len(gens), rng)
    if len(gens) > 1:
        inter = [local_nn(gens[i], gens[i - 1], local_window) for i in range(len(gens))]
        inter_dist = []
        for i in range(len(gens)):
            a, b = gens[i], gens[i - 1]
            t = min(a.shape[0], b.shape[0])
            inter_dist.append(np.linalg.norm(a[:t] - b[:t]) / t)
    else:
        inter, inter_dist = [np.nan], [np.nan]
    c, g = float(np.mean(cov)), float(np.mean(glob))
    out = {
        "coverage": c,
        "global_diversity": g,
        "local_diversity": float(np.mean(loc)),
        "inter_diversity": float(np.mean(inter)),
        "inter_diversity_dist": float(np.mean(inter_dist)),
        "intra_diversity": float(np.mean(intra)),
        "reference_intra_diversity": ref_intra,
        "intra_diversity_diff": abs(float(np.mean(intra)) - ref_intra),
        "harmonic_mean": harmonic_mean(c, g),
        "num_motions": len(gens),
    }
    for name, vals in (("coverage", cov), ("global_diversity", glob), ("local_diversity", loc),
                       ("inter_diversity", inter), ("intra_diversity", intra)):
        out[name + "_std"] = float(np.std(vals))
    return out
