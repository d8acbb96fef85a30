# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from sparse_motion.keyframes import bezier as bz


def direct_eval(t, kf, kv, hl, hr):
    """Per-sample Bernstein evaluation with a plain loop (the definition)."""
    out = np.empty((len(t), kv.shape[1]))
    for n, x in enumerate(t):
        if x <= kf[0]:
            out[n] = kv[0]
            continue
        if x >= kf[-1]:
            out[n] = kv[-1]
            continue
        k = np.searchsorted(kf, x, side="right") - 1
        u = (x - kf[k]) / (kf[k + 1] - kf[k])
        out[n] = ((1 - u) ** 3 * kv[k] + 3 * u * (1 - u) ** 2 * hr[k]
                  + 3 * u * u * (1 - u) * hl[k + 1] + u ** 3 * kv[k + 1])
    return out


def random_curve(rng, T=60, K=7, C=3):
    frames = np.arange(T, dtype=float) * 0.5 + 10
    inner = np.sort(rng.choice(np.arange(1, T - 1), K - 2, replace=False))
    key = np.concatenate(([0], inner, [T - 1]))
    kv, hl, hr = (rng.normal(size=(K, C)) for _ in range(3))
    return frames, key, kv, hl, hr


def test_evaluate_matches_direct_bernstein():
    rng = np.random.default_rng(0)
    frames, key, kv, hl, hr = random_curve(rng)
    got = bz.evaluate(frames, key, kv, hl, hr)
    np.testing.assert_allclose(got, direct_eval(frames, frames[key], kv, hl, hr), atol=1e-12)
    # keys inside the frame range: constant outside
    key2 = key.copy()
    key2[0], key2[-1] = 5, len(frames) - 6
    got2 = bz.evaluate(frames, key2, kv, hl, hr)
    np.testing.assert_allclose(got2[:6], np.broadcast_to(kv[0], (6, 3)))
    np.testing.assert_allclose(got2[-6:], np.broadcast_to(kv[-1], (6, 3)))
    np.testing.assert_allclose(got2, direct_eval(frames, frames[key2], kv, hl, hr), atol=1e-12)


def test_evaluate_hand_examples():
    f = np.arange(4.0)
    # handles on the straight line: the curve is the line
    v = bz.evaluate(f, [0, 3], np.array([[0.0], [3.0]]), np.array([[0.0], [2.0]]),
                    np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(v[:, 0], [0, 1, 2, 3], atol=1e-12)
    # a bump: v0 = v1 = 0, both handles at 1 → 0.75 at the middle
    f = np.array([0.0, 1.0, 2.0])
    v = bz.evaluate(f, [0, 2], np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1)))
    assert v[1, 0] == pytest.approx(0.75)
    # 1-D input gives 1-D output; a single key is constant
    v = bz.evaluate(np.arange(5.0), [2], np.array([4.0]), np.array([0.0]), np.array([9.0]))
    np.testing.assert_array_equal(v, [4.0] * 5)


def test_fit_free_exact_on_bezier_data():
    rng = np.random.default_rng(1)
    T = 80
    frames = np.arange(T, dtype=float)
    key = np.array([0, 9, 20, 24, 41, 60, 79])  # every segment has >= 2 interior samples
    kv, hl, hr = (rng.normal(size=(7, 4)) for _ in range(3))
    data = bz.evaluate(frames, key, kv, hl, hr)
    v, l, r = bz.fit_free(frames, data, key)
    np.testing.assert_allclose(v, kv, atol=1e-12)
    np.testing.assert_allclose(r[:-1], hr[:-1], atol=1e-8)
    np.testing.assert_allclose(l[1:], hl[1:], atol=1e-8)
    np.testing.assert_allclose(bz.evaluate(frames, key, v, l, r), data, atol=1e-8)


def test_fit_free_is_least_squares():
    rng = np.random.default_rng(2)
    T = 50
    frames = np.cumsum(rng.uniform(0.5, 1.5, T))  # irregular frames
    data = rng.normal(size=(T, 2)).cumsum(0)
    key = np.array([0, 7, 19, 30, 49])
    v, l, r = bz.fit_free(frames, data, key)
    for k in range(len(key) - 1):
        a, b = key[k], key[k + 1]
        t = frames[a + 1 : b]
        u = (t - frames[a]) / (frames[b] - frames[a])
        B0, B1, B2, B3 = bz.bernstein(u)
        A = np.column_stack([B1, B2])
        rhs = data[a + 1 : b] - np.outer(B0, data[a]) - np.outer(B3, data[b])
        sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
        np.testing.assert_allclose(r[k], sol[0], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(l[k + 1], sol[1], rtol=1e-7, atol=1e-9)


def test_fit_free_short_segments():
    frames = np.arange(10.0)
    data = np.sin(frames)[:, None] * 3
    key = np.array([0, 2, 3, 9])  # one interior sample, none, six
    v, l, r = bz.fit_free(frames, data, key)
    fit = bz.evaluate(frames, key, v, l, r)
    assert fit[1, 0] == pytest.approx(data[1, 0], abs=1e-12)  # passes through its only sample
    assert np.all(np.isfinite(l)) and np.all(np.isfinite(r))
    # no interior sample: handles on the dense slopes (central differences)
    slope2 = (data[3, 0] - data[1, 0]) / 2
    slope3 = (data[4, 0] - data[2, 0]) / 2
    assert r[1, 0] == pytest.approx(data[2, 0] + slope2 / 3)
    assert l[2, 0] == pytest.approx(data[3, 0] - slope3 / 3)


def _slopes(frames, key, v, l, r):
    kf = frames[key]
    dt = np.diff(kf)[:, None]
    left = (v[1:] - l[1:]) / (dt / 3)  # slope arriving at keys 1..K-1
    right = (r[:-1] - v[:-1]) / (dt / 3)  # slope leaving keys 0..K-2
    return left, right


def test_fit_aligned_is_c1():
    rng = np.random.default_rng(3)
    T = 120
    frames = np.arange(T, dtype=float)
    data = np.column_stack([np.sin(frames / 7), np.abs(np.sin(frames / 13)) * 5,
                            rng.normal(size=T).cumsum()])
    key = np.array([0, 4, 5, 17, 40, 41, 42, 80, 119])
    v, l, r = bz.fit_aligned(frames, data, key)
    left, right = _slopes(frames, key, v, l, r)
    np.testing.assert_allclose(left[:-1], right[1:], rtol=1e-9, atol=1e-9)
    # the free fit of the same keys is not C1 (so the test can tell them apart)
    vf, lf, rf = bz.fit_free(frames, data, key)
    left_f, right_f = _slopes(frames, key, vf, lf, rf)
    assert np.abs(left_f[:-1] - right_f[1:]).max() > 1e-3


def test_fit_aligned_exact_on_hermite_data_and_least_squares():
    rng = np.random.default_rng(4)
    T = 90
    frames = np.arange(T, dtype=float) * 2.0
    key = np.array([0, 10, 25, 31, 60, 89])
    K = len(key)
    kv = rng.normal(size=(K, 2))
    m = rng.normal(size=(K, 2))
    dt = np.diff(frames[key])[:, None]
    hr = kv.copy()
    hl = kv.copy()
    hr[:-1] = kv[:-1] + m[:-1] * dt / 3
    hl[1:] = kv[1:] - m[1:] * dt / 3
    data = bz.evaluate(frames, key, kv, hl, hr)
    v, l, r = bz.fit_aligned(frames, data, key)
    np.testing.assert_allclose(bz.evaluate(frames, key, v, l, r), data, atol=1e-7)
    # on noisy data it is the least-squares slope solution (dense design matrix)
    noisy = data + rng.normal(scale=0.3, size=data.shape)
    v, l, r = bz.fit_aligned(frames, noisy, key)
    seg = np.clip(np.searchsorted(key, np.arange(T), side="right") - 1, 0, K - 2)
    u = (frames - frames[key][seg]) / np.diff(frames[key])[seg]
    B0, B1, B2, B3 = bz.bernstein(u)
    design = np.zeros((T, K))
    design[np.arange(T), seg] += B1 * dt[seg, 0] / 3
    design[np.arange(T), seg + 1] -= B2 * dt[seg, 0] / 3
    base = (B0 + B1)[:, None] * noisy[key][seg] + (B2 + B3)[:, None] * noisy[key][seg + 1]
    sol = np.linalg.lstsq(design, noisy - base, rcond=None)[0]
    left, right = _slopes(frames, key, v, l, r)
    np.testing.assert_allclose(right, sol[:-1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(left, sol[1:], rtol=1e-6, atol=1e-6)


def test_tridiagonal_solver():
    rng = np.random.default_rng(5)
    K = 30
    diag = rng.uniform(4, 6, K)
    off = rng.uniform(-1, 1, K - 1)
    rhs = rng.normal(size=(K, 5))
    A = np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)
    np.testing.assert_allclose(bz._tridiag_solve(off, diag, off, rhs), np.linalg.solve(A, rhs),
                               atol=1e-12)


def test_fit_dispatch_and_validation():
    frames = np.arange(10.0)
    data = np.arange(10.0)[:, None] ** 2
    for h in ("free", "aligned"):
        v, l, r = bz.fit(frames, data, [0, 4, 9], handles=h)
        assert v.shape == l.shape == r.shape == (3, 1)
    with pytest.raises(ValueError):
        bz.fit(frames, data, [0, 4, 9], handles="auto")
    with pytest.raises(ValueError):
        bz.fit_free(frames, data, [0, 4, 4, 9])
    with pytest.raises(ValueError):
        bz.fit_free(frames, data, [0, 10])
