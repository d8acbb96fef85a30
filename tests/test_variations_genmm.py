# SPDX-License-Identifier: GPL-3.0-or-later
"""GenMM baseline and the one-to-many metrics (plain numpy, fast)."""

import numpy as np
import pytest

from sparse_motion.variations.genmm import extract_patches, genmm, patch_nearest
from sparse_motion.variations.metrics import evaluate_variations, frame_distances, patched_nn

T = 240


@pytest.fixture(scope="module")
def ref():
    """12 features, each a sum of three sinusoids with random frequency/phase (20 fps)."""
    rng = np.random.default_rng(0)
    t = np.arange(T) / 20.0
    cols = [sum(rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(0.1, 1.2) * t + rng.uniform(0, 6))
                for _ in range(3)) for _ in range(12)]
    return np.stack(cols, axis=1)


def _longest_copy(out, ref, tol):
    """Longest run of consecutive output frames equal (within tol) to a shifted reference window."""
    close = frame_distances(out, ref) < tol
    best = 0
    for d in range(-(close.shape[0] - 1), close.shape[1]):
        run = 0
        for v in np.diagonal(close, offset=d):
            run = run + 1 if v else 0
            best = max(best, run)
    return best


@pytest.mark.parametrize("length", [150, 400])
def test_genmm_length(ref, length):
    out = genmm(ref, length, seed=0)
    assert out.shape == (length, ref.shape[1])
    assert np.all(np.isfinite(out))


def test_genmm_deterministic_and_seed_dependent(ref):
    a, b, c = genmm(ref, 200, seed=3), genmm(ref, 200, seed=3), genmm(ref, 200, seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    differing = np.linalg.norm(a - c, axis=1) > 0.05
    assert differing.mean() > 0.1


@pytest.mark.parametrize("length", [150, 400])
def test_genmm_patches_come_from_reference(ref, length):
    keys = extract_patches(ref, 11)
    out = genmm(ref, length, seed=1)
    _, d_out = patch_nearest(extract_patches(out, 11), keys, alpha=None)
    noise = np.random.default_rng(5).standard_normal((length, ref.shape[1])) * ref.std(0) + ref.mean(0)
    _, d_noise = patch_nearest(extract_patches(noise, 11), keys, alpha=None)
    assert d_out.mean() < 0.2 * d_noise.mean()
    assert np.median(d_out) < 0.05 * np.median(d_noise)


@pytest.mark.parametrize("length", [150, T, 400])
def test_genmm_is_not_a_verbatim_copy(ref, length):
    # length == T used to return the reference itself (identity attractor of the completeness term)
    tol = 0.05 * np.sqrt(ref.shape[1])
    for seed in (0, 1):
        out = genmm(ref, length, seed=seed)
        assert _longest_copy(out, ref, tol) < 0.5 * length


def test_patched_nn_matches_brute_force():
    rng = np.random.default_rng(1)
    src, tgt, tmin = rng.normal(size=(14, 3)), rng.normal(size=(11, 3)), 4
    c = frame_distances(src, tgt)
    n, m = c.shape

    def seg(l, i):  # best aligned cost of src[l:i]
        return min(sum(c[l + t, k + t] for t in range(i - l)) for k in range(m - (i - l) + 1)) \
            if i - l <= m else np.inf

    g = [0.0] + [np.inf] * n
    for i in range(tmin, n + 1):
        g[i] = min(g[l] + seg(l, i) for l in range(0, i - tmin + 1))
    assert patched_nn(src, tgt, tmin) == pytest.approx(g[n] / n)


def test_metrics_copies(ref):
    m = evaluate_variations(ref, [ref.copy() for _ in range(3)])
    assert m["coverage"] > 0.99
    assert m["global_diversity"] < 1e-6
    assert m["local_diversity"] < 1e-6
    assert m["inter_diversity"] < 1e-6
    assert m["harmonic_mean"] < 1e-6


def test_metrics_noise_low_coverage(ref):
    rng = np.random.default_rng(2)
    noise = [rng.standard_normal(ref.shape) * ref.std(0) + ref.mean(0) for _ in range(3)]
    m = evaluate_variations(ref, noise)
    assert m["coverage"] < 0.1
    assert m["local_diversity"] > 1.0


def _shuffled(ref, seg, seed):
    parts = [ref[i:i + seg] for i in range(0, ref.shape[0], seg)]
    order = np.random.default_rng(seed).permutation(len(parts))
    return np.concatenate([parts[j] for j in order])


def test_metrics_shuffled_more_diverse_than_copies(ref):
    copies = evaluate_variations(ref, [ref.copy() for _ in range(3)])
    shuffled = evaluate_variations(ref, [_shuffled(ref, 10, s) for s in range(3)])
    for key in ("global_diversity", "local_diversity", "inter_diversity", "inter_diversity_dist"):
        assert shuffled[key] > copies[key] + 0.1, key
    # Segments longer than the 30-frame minimum are whole reference pieces: no global diversity.
    long = evaluate_variations(ref, [_shuffled(ref, 40, s) for s in range(2)])
    assert long["global_diversity"] < 1e-6 < long["local_diversity"]


def test_metrics_genmm_between_copy_and_noise(ref):
    gens = [genmm(ref, 2 * T, seed=s) for s in range(3)]
    m = evaluate_variations(ref, gens)
    assert m["coverage"] > 0.9
    assert m["global_diversity"] > 0.1
    assert 0.0 < m["harmonic_mean"]
    assert m["inter_diversity"] > 0.05
