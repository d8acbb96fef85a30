# SPDX-License-Identifier: GPL-3.0-or-later
"""Text-to-motion evaluation metrics (numpy only; no scipy, no torch).

Embedding metrics (HumanML3D protocol, Guo et al. 2022), on motion/text embeddings from the
evaluator package (``inference/evaluator.py``):

- :func:`frechet_distance` / :func:`fid`: Fréchet distance between Gaussian fits of two sets
  of motion embeddings. The trace of the matrix square root is taken from the eigenvalues
  (``numpy.linalg.eigh``) of the symmetrised product ``sqrt(S1) S2 sqrt(S1)``, which is
  similar to ``S1 S2`` and so has the same square-root trace; it is symmetric PSD, so no
  complex parts appear.
- :func:`r_precision`: top-k retrieval accuracy in batches of 32 — each motion against its own
  caption and the 31 others of its batch (k = 1, 2, 3), averaged over random batchings.
- :func:`matching_score` (MM-Dist): mean Euclidean distance between each motion and its own
  caption.
- :func:`diversity`: mean distance between 300 random pairs of motions.
- :func:`multimodality`: mean distance between pairs of generations of the same text.

Physical metrics on world joint positions ``(F, J, 3)`` in centimetres, Y up, floor at y = 0
(``motion.features.features_to_positions`` of 257-d features gives them):

- :func:`foot_skating_ratio`: among frame transitions where a toe joint is in contact (height
  below ``height_cm`` = 5 cm in both frames), the fraction where it slides horizontally
  faster than ``speed_cm_s`` = 50 cm/s (2.5 cm per frame at 20 fps) — the definition of
  GMD / OmniControl on HumanML3D's foot joints. The canonical skeleton's toe joints sit
  4.2 cm above the floor when the foot is flat.
- :func:`jitter`: mean magnitude of the joints' third time derivative (jerk), in m/s³.
- :func:`ground_penetration`: mean depth (cm) of the lowest joint below the floor, per frame
  (0 for frames above it).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "gaussian_stats",
    "frechet_distance",
    "fid",
    "euclidean_distances",
    "r_precision",
    "matching_score",
    "diversity",
    "multimodality",
    "foot_skating_ratio",
    "jitter",
    "ground_penetration",
    "physical_metrics",
    "TOE_JOINTS",
    "FOOT_HEIGHT_CM",
    "FOOT_SPEED_CM_S",
]

#: Canonical skeleton joints used for foot skating (Toes_L, Toes_R).
TOE_JOINTS = (16, 20)
#: A toe joint is in contact below this height (cm; 4.2 cm when the foot is flat).
FOOT_HEIGHT_CM = 5.0
#: Sliding faster than this (cm/s; 2.5 cm/frame at 20 fps) while in contact is skating.
FOOT_SPEED_CM_S = 50.0


def _as_2d(x, name):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (samples, dim) array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


# =========================================================================== distribution


def gaussian_stats(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, ``N - 1``) of ``(N, D)`` embeddings."""
    e = _as_2d(embeddings, "embeddings")
    if e.shape[0] < 2:
        raise ValueError("need at least 2 embeddings for a covariance")
    return e.mean(axis=0), np.cov(e, rowvar=False)


def _sqrt_psd(s):
    w, v = np.linalg.eigh(0.5 * (s + s.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))`` for two Gaussians.

    ``tr sqrt(S1 S2) = tr sqrt(A S2 A)`` with ``A = sqrt(S1)`` (similar matrices), and
    ``A S2 A`` is symmetric positive semi-definite, so its square-root trace is the sum of the
    square roots of its (clipped) eigenvalues from ``eigh``.
    """
    mu1 = np.asarray(mu1, dtype=np.float64).ravel()
    mu2 = np.asarray(mu2, dtype=np.float64).ravel()
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape}")
    a = _sqrt_psd(s1)
    m = a @ s2 @ a
    ev = np.linalg.eigvalsh(0.5 * (m + m.T))
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean, 0.0))


def fid(embeddings_a, embeddings_b=None, *, reference=None) -> float:
    """FID between two embedding sets, or between ``embeddings_a`` and ``reference``
    (``(mu, sigma)``, e.g. the statistics shipped with the evaluator package)."""
    mu1, s1 = gaussian_stats(embeddings_a)
    if reference is not None:
        if embeddings_b is not None:
            raise ValueError("give embeddings_b or reference, not both")
        mu2, s2 = reference
    else:
        if embeddings_b is None:
            raise ValueError("fid needs a second embedding set or reference statistics")
        mu2, s2 = gaussian_stats(embeddings_b)
    return frechet_distance(mu1, s1, mu2, s2)


# =========================================================================== retrieval


def euclidean_distances(a, b) -> np.ndarray:
    """``(N, M)`` Euclidean distances between rows of ``a (N, D)`` and ``b (M, D)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(d2, 0.0, None))


def _ranks(dist, rng):
    """Rank (0 = nearest) of the diagonal entry of each row; ties broken at random."""
    n = dist.shape[0]
    own = np.diag(dist)[:, None]
    off = ~np.eye(n, dtype=bool)
    closer = ((dist < own) & off).sum(1)
    ties = ((dist == own) & off).sum(1)
    if ties.any():
        # random tie-break: the own entry takes a uniform place among its ties
        closer = closer + np.floor(rng.random(n) * (ties + 1)).astype(int)
    return closer


def r_precision(motion_emb, text_emb, *, batch_size: int = 32, top_k: int = 3,
                repeats: int = 1, seed=0, direction: str = "motion_to_text") -> np.ndarray:
    """R-precision top-1..``top_k`` (array of ``top_k`` values in [0, 1]).

    Row ``i`` of ``motion_emb`` is matched with row ``i`` of ``text_emb``. The samples are
    shuffled and cut into batches of ``batch_size`` (an incomplete last batch is dropped, as
    in HumanML3D); in each batch every motion ranks the batch's captions by Euclidean
    distance (``direction="text_to_motion"``: every caption ranks the motions, as HumanML3D's
    code does), and top-k counts how often its own caption is among the k nearest. Averaged
    over all samples and ``repeats`` random batchings. Chance level is ``k / batch_size``.
    """
    m = _as_2d(motion_emb, "motion_emb")
    t = _as_2d(text_emb, "text_emb")
    if m.shape != t.shape:
        raise ValueError(f"motion and text embeddings differ in shape: {m.shape} vs {t.shape}")
    if direction not in ("motion_to_text", "text_to_motion"):
        raise ValueError(f"direction must be 'motion_to_text' or 'text_to_motion', got {direction!r}")
    n = m.shape[0]
    if n < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} pairs, got {n}")
    if top_k < 1 or top_k > batch_size:
        raise ValueError(f"top_k must be in 1..{batch_size}")
    rng = np.random.default_rng(seed)
    hits = np.zeros(top_k)
    count = 0
    for _ in range(int(repeats)):
        order = rng.permutation(n)
        for s in range(0, n - batch_size + 1, batch_size):
            idx = order[s:s + batch_size]
            d = euclidean_distances(m[idx], t[idx])
            if direction == "text_to_motion":
                d = d.T
            r = _ranks(d, rng)
            hits += (r[:, None] < np.arange(1, top_k + 1)[None, :]).sum(0)
            count += batch_size
    return hits / count


def matching_score(motion_emb, text_emb) -> float:
    """MM-Dist: mean Euclidean distance between each motion and its own caption."""
    m = _as_2d(motion_emb, "motion_emb")
    t = _as_2d(text_emb, "text_emb")
    if m.shape != t.shape:
        raise ValueError(f"motion and text embeddings differ in shape: {m.shape} vs {t.shape}")
    return float(np.linalg.norm(m - t, axis=1).mean())


def diversity(embeddings, n_pairs: int = 300, seed=0) -> float:
    """Mean distance between ``n_pairs`` random pairs (two independent draws of ``n_pairs``
    samples without replacement, as in HumanML3D)."""
    e = _as_2d(embeddings, "embeddings")
    n = e.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least 2 embeddings")
    n_pairs = min(int(n_pairs), n)
    rng = np.random.default_rng(seed)
    a = rng.choice(n, n_pairs, replace=False)
    b = rng.choice(n, n_pairs, replace=False)
    return float(np.linalg.norm(e[a] - e[b], axis=1).mean())


def multimodality(group_embeddings, n_pairs: int = 10, seed=0) -> float:
    """Mean distance between generations of the same text.

    ``group_embeddings``: ``(T, G, D)`` array or list of ``(G_i, D)`` arrays — ``G`` motions
    generated for each of ``T`` texts. For each text, ``n_pairs`` random pairs of its
    generations (two draws without replacement, as in HumanML3D; ``min(n_pairs, G)``).
    """
    groups = [np.asarray(g, dtype=np.float64) for g in group_embeddings]
    if not groups:
        raise ValueError("multimodality needs at least one group")
    rng = np.random.default_rng(seed)
    dists = []
    for g in groups:
        if g.ndim != 2 or g.shape[0] < 2:
            raise ValueError("each multimodality group must be (G >= 2, D)")
        k = min(int(n_pairs), g.shape[0])
        a = rng.choice(g.shape[0], k, replace=False)
        b = rng.choice(g.shape[0], k, replace=False)
        dists.append(np.linalg.norm(g[a] - g[b], axis=1))
    return float(np.concatenate(dists).mean())


# =========================================================================== physical


def _positions(p):
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"positions must be (frames, joints, 3), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("positions contain NaN or infinite values")
    return a


def foot_skating_ratio(positions, fps: float = 20.0, *, feet=TOE_JOINTS,
                       height_cm: float = FOOT_HEIGHT_CM, speed_cm_s: float = FOOT_SPEED_CM_S,
                       return_counts: bool = False):
    """Fraction of contact transitions in which the foot slides.

    For each foot joint and each pair of consecutive frames: *contact* if its height is below
    ``height_cm`` in both frames; *skating* if, in contact, its horizontal (x, z) displacement
    exceeds ``speed_cm_s / fps`` (2.5 cm at 20 fps). Returns skating / contact (0.0 when the
    feet never touch the ground); ``return_counts`` also returns ``(skating, contact)``.
    """
    p = _positions(positions)
    feet = list(feet)
    if p.shape[0] < 2:
        return (0.0, 0, 0) if return_counts else 0.0
    f = p[:, feet]                                   # (F, n, 3)
    h = f[..., 1]
    contact = (h[1:] < height_cm) & (h[:-1] < height_cm)
    step = np.linalg.norm(np.diff(f[..., [0, 2]], axis=0), axis=-1)
    skating = contact & (step > speed_cm_s / float(fps))
    nc, ns = int(contact.sum()), int(skating.sum())
    ratio = ns / nc if nc else 0.0
    return (ratio, ns, nc) if return_counts else ratio


def jitter(positions, fps: float = 20.0) -> float:
    """Mean magnitude of the third finite difference of joint positions, in m/s³
    (positions in cm)."""
    p = _positions(positions)
    if p.shape[0] < 4:
        return 0.0
    jerk = np.diff(p, n=3, axis=0) * float(fps) ** 3 / 100.0
    return float(np.linalg.norm(jerk, axis=-1).mean())


def ground_penetration(positions, floor: float = 0.0) -> float:
    """Mean over frames of how far (cm) the lowest joint is below the floor (0 if above)."""
    p = _positions(positions)
    low = p[..., 1].min(axis=1)
    return float(np.clip(floor - low, 0.0, None).mean())


def physical_metrics(positions_list, fps: float = 20.0) -> dict:
    """Foot skating ratio (pooled over all motions' contact transitions), jitter and ground
    penetration (frame-weighted means) of a list of ``(F, J, 3)`` position arrays."""
    ns = nc = 0
    jit_sum = jit_n = 0.0
    pen_sum = pen_n = 0.0
    for p in positions_list:
        p = _positions(p)
        _, s, c = foot_skating_ratio(p, fps, return_counts=True)
        ns += s
        nc += c
        if p.shape[0] >= 4:
            w = p.shape[0] - 3
            jit_sum += jitter(p, fps) * w
            jit_n += w
        pen_sum += ground_penetration(p) * p.shape[0]
        pen_n += p.shape[0]
    return {
        "foot_skating": ns / nc if nc else 0.0,
        "foot_contacts": int(nc),
        "jitter": jit_sum / jit_n if jit_n else 0.0,
        "ground_penetration": pen_sum / pen_n if pen_n else 0.0,
    }
