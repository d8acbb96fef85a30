# SPDX-License-Identifier: GPL-3.0-or-later
"""Reducer and DP floor on a synthetic 3-D chain (root translation + 2 angles per link)."""
import itertools
import time

import numpy as np
import pytest

from sparse_motion.keyframes import bezier as bz
from sparse_motion.keyframes import metrics, optimal
from sparse_motion.keyframes.reduce import Reduction, reduce_keys


def _rot(axis, a):
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i = "XYZ".index(axis)
    j, k = [x for x in range(3) if x != i]
    m[..., i, i] = 1
    m[..., j, j] = c
    m[..., k, k] = c
    m[..., j, k] = -s
    m[..., k, j] = s
    return m


class Chain:
    """Root location (m) + per link a Z then a Y rotation (radians); points: root and the end of
    every link, in cm."""

    def __init__(self, n_links=5, seed=0):
        rng = np.random.default_rng(seed)
        self.lengths = rng.uniform(15, 40, n_links)
        self.n_links = n_links
        self.n_channels = 3 + 2 * n_links
        self.calls = 0

    def __call__(self, values):
        values = np.asarray(values, dtype=float)
        self.calls += 1
        n = len(values)
        pos = values[:, :3] * 100.0
        R = np.broadcast_to(np.eye(3), (n, 3, 3))
        pts = [pos]
        for j in range(self.n_links):
            R = R @ _rot("Z", values[:, 3 + 2 * j]) @ _rot("Y", values[:, 4 + 2 * j])
            pos = pos + R[:, :, 0] * self.lengths[j]
            pts.append(pos)
        return np.stack(pts, axis=1)


def motion(chain, T=240, seed=0):
    """Smooth parts, a fast swing, a kink and a hold."""
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=float)
    v = np.zeros((T, chain.n_channels))
    v[:, 0] = 0.5 * t / T
    v[:, 2] = 0.05 * np.sin(t / 9)
    for c in range(3, chain.n_channels):
        f = rng.uniform(0.02, 0.12)
        v[:, c] = rng.uniform(0.2, 0.8) * np.sin(f * t + rng.uniform(0, 6))
    swing = np.clip((t - 0.42 * T) / 6, 0, 1)
    v[:, 5] += 1.5 * swing * swing * (3 - 2 * swing)  # fast swing over 6 frames
    v[:, 7] += 0.8 * np.abs((t - 0.66 * T) / T)  # a kink
    hold = t >= 0.75 * T
    v[hold] = v[np.argmax(hold)]  # everything holds still at the end
    return t, v


def total_error(frames, values, fk, keys, handles="free"):
    kv, hl, hr = bz.fit(frames, values, keys, handles)
    d = metrics.distances(fk(bz.evaluate(frames, keys, kv, hl, hr)), fk(values))
    return d.mean(axis=1).sum(), d


@pytest.fixture(scope="module")
def scene():
    chain = Chain()
    frames, values = motion(chain)
    return chain, frames, values


def test_n_keys_and_ratio(scene):
    chain, frames, values = scene
    T = len(frames)
    res = reduce_keys(frames, values, chain, n_keys=24)
    assert isinstance(res, Reduction)
    assert res.n_keys == 24 and len(np.unique(res.key_idx)) == 24
    assert res.key_idx[0] == 0 and res.key_idx[-1] == T - 1
    np.testing.assert_array_equal(res.key_frames, frames[res.key_idx])
    assert res.key_values.shape == res.hl.shape == res.hr.shape == (24, values.shape[1])
    np.testing.assert_array_equal(res.key_values, values[res.key_idx])
    assert res.handle_type == "FREE" and res.n_dense == T
    res2 = reduce_keys(frames, values, chain, ratio=0.1)
    assert res2.n_keys == round(0.1 * T)
    for n in (1, 2):
        assert reduce_keys(frames, values, chain, n_keys=n).n_keys == 2
    assert reduce_keys(frames, values, chain, n_keys=10 * T).n_keys == T
    with pytest.raises(ValueError):
        reduce_keys(frames, values, chain, n_keys=10, ratio=0.1)
    with pytest.raises(ValueError):
        reduce_keys(frames, values, chain)


def test_reported_errors_are_measured(scene):
    chain, frames, values = scene
    for handles in ("free", "aligned"):
        res = reduce_keys(frames, values, chain, n_keys=20, handles=handles)
        fitted = bz.evaluate(frames, res.key_idx, res.key_values, res.hl, res.hr)
        np.testing.assert_allclose(res.evaluate(), fitted, atol=1e-12)
        stats = metrics.joint_errors(chain(fitted), chain(values))
        assert res.errors.max == pytest.approx(stats.max, rel=1e-9, abs=1e-12)
        assert res.errors.mean == pytest.approx(stats.mean, rel=1e-9, abs=1e-12)
        assert res.errors.p95 == pytest.approx(stats.p95, rel=1e-9, abs=1e-12)
        assert res.errors.max > 0


@pytest.mark.parametrize("bound", [3.0, 0.5])
def test_max_error_bound_honoured(scene, bound):
    chain, frames, values = scene
    res = reduce_keys(frames, values, chain, max_error=bound)
    stats = metrics.joint_errors(chain(res.evaluate()), chain(values))
    assert stats.max <= bound
    assert res.errors.max <= bound
    assert 2 < res.n_keys < len(frames) // 2
    # a key fewer would not do with the same selection — at least the bound is not trivial
    assert res.errors.max > 0.25 * bound


def test_max_error_tighter_bound_needs_more_keys(scene):
    chain, frames, values = scene
    loose = reduce_keys(frames, values, chain, max_error=4.0)
    tight = reduce_keys(frames, values, chain, max_error=0.3)
    assert tight.n_keys > loose.n_keys
    assert tight.errors.max <= 0.3 and loose.errors.max <= 4.0
    aligned = reduce_keys(frames, values, chain, max_error=1.0, handles="aligned")
    assert aligned.errors.max <= 1.0 and aligned.handle_type == "ALIGNED"


@pytest.mark.parametrize("handles", ["free", "aligned"])
def test_refinement_never_worse_than_plain_vw(scene, handles):
    chain, frames, values = scene
    better_mean = 0
    for K in (8, 14, 24, 40):
        plain = reduce_keys(frames, values, chain, n_keys=K, refine=False, handles=handles)
        ref = reduce_keys(frames, values, chain, n_keys=K, handles=handles)
        assert plain.n_keys == ref.n_keys == K
        assert ref.errors.max <= plain.errors.max + 1e-9
        better_mean += ref.errors.mean < plain.errors.mean
    assert better_mean >= 3  # and it does help


def test_max_gap(scene):
    chain, frames, values = scene
    res = reduce_keys(frames, values, chain, n_keys=20, max_gap=14)
    assert np.diff(res.key_idx).max() <= 14 and res.n_keys == 20
    plain = reduce_keys(frames, values, chain, n_keys=20, max_gap=14, refine=False)
    assert np.diff(plain.key_idx).max() <= 14
    # a gap rule that needs more keys than asked for wins over the count
    res = reduce_keys(frames, values, chain, n_keys=5, max_gap=30)
    assert np.diff(res.key_idx).max() <= 30 and res.n_keys >= 9


def test_local_search_path(scene):
    chain, frames, values = scene
    dp = reduce_keys(frames, values, chain, n_keys=24, method="dp")
    local = reduce_keys(frames, values, chain, n_keys=24, method="local")
    plain = reduce_keys(frames, values, chain, n_keys=24, refine=False)
    assert dp.method in ("dp", "vw") and local.method in ("vw+local", "vw")
    assert local.n_keys == 24
    assert local.errors.mean < plain.errors.mean
    assert local.errors.max <= plain.errors.max + 1e-9


def test_aligned_handles_are_c1(scene):
    chain, frames, values = scene
    res = reduce_keys(frames, values, chain, n_keys=20, handles="aligned")
    assert res.handle_type == "ALIGNED"
    dt = np.diff(res.key_frames)[:, None]
    left = (res.key_values[1:] - res.hl[1:]) / dt
    right = (res.hr[:-1] - res.key_values[:-1]) / dt
    np.testing.assert_allclose(left[:-1], right[1:], atol=1e-9)


def test_continuity_groups_used(scene):
    chain, frames, values = scene
    spun = values.copy()
    spun[:, 3] += np.linspace(0, 40 * np.pi, len(frames))  # 20 turns of link 0: many wraps
    wrapped = spun.copy()
    wrapped[:, 3:] = (wrapped[:, 3:] + np.pi) % (2 * np.pi) - np.pi
    groups = [("other", [0, 1, 2])] + [("euler", [c]) for c in range(3, values.shape[1])]
    good = reduce_keys(frames, wrapped, chain, n_keys=30, groups=groups)
    bad = reduce_keys(frames, wrapped, chain, n_keys=30)
    assert np.abs(np.diff(good.values[:, 3:], axis=0)).max() < 1.0
    assert good.errors.mean < 0.5 * bad.errors.mean


def test_dp_floor_not_above_ours(scene):
    chain, frames, values = scene
    f, v = frames[:90], values[:90]
    for K in (8, 12):
        floor_keys, floor = optimal.optimal_keys(f, v, chain, K, max_span=len(f) - 1,
                                                 return_cost=True)
        assert len(floor_keys) == K and floor_keys[0] == 0 and floor_keys[-1] == len(f) - 1
        floor_total, _ = total_error(f, v, chain, floor_keys)
        assert floor_total == pytest.approx(floor, rel=1e-9)
        ours = reduce_keys(f, v, chain, n_keys=K)
        ours_total, _ = total_error(f, v, chain, ours.key_idx)
        assert floor_total <= ours_total * (1 + 1e-9)
        plain = reduce_keys(f, v, chain, n_keys=K, refine=False)
        assert total_error(f, v, chain, plain.key_idx)[0] >= floor_total


@pytest.mark.parametrize("frame_error", ["mean", "max"])
def test_dp_equals_brute_force(scene, frame_error):
    chain, frames, values = scene
    sl = slice(95, 107)  # through the fast swing
    f, v = frames[sl], values[sl]
    T = len(f)
    red = np.max if frame_error == "max" else np.mean
    for K in (3, 4, 5):
        best = None
        for inner in itertools.combinations(range(1, T - 1), K - 2):
            keys = np.array((0,) + inner + (T - 1,))
            _, d = total_error(f, v, chain, keys)
            total = red(d, axis=1).sum()
            if best is None or total < best[0] - 1e-12:
                best = (total, keys)
        keys, cost = optimal.optimal_keys(f, v, chain, K, max_span=T - 1,
                                          frame_error=frame_error, return_cost=True)
        assert cost == pytest.approx(best[0], rel=1e-9, abs=1e-12)
        _, d = total_error(f, v, chain, keys)
        assert red(d, axis=1).sum() == pytest.approx(best[0], rel=1e-9, abs=1e-12)


def test_dp_respects_max_span(scene):
    chain, frames, values = scene
    keys = optimal.optimal_keys(frames[:120], values[:120], chain, 10, max_span=16)
    assert np.diff(keys).max() <= 16 and len(keys) == 10


def big_chain_scene(T, n_links, seed=1):
    chain = Chain(n_links=n_links, seed=seed)
    frames, values = motion(chain, T=T, seed=seed)
    return chain, frames, values


def test_timing_printout():
    for T, links in ((500, 31), (10_000, 28)):
        chain, frames, values = big_chain_scene(T, links)
        t = time.perf_counter()
        res = reduce_keys(frames, values, chain, ratio=0.1)
        dt = time.perf_counter() - t
        parts = ", ".join(f"{k} {v * 1000:.0f}" for k, v in res.timings.items()
                          if k not in ("total", "fk_rows") and v >= 0.001)
        print(f"\n{T} frames x {values.shape[1]} channels: {dt * 1000:.0f} ms total "
              f"({res.method}; {parts}; FK rows {res.timings['fk_rows']}); {res.errors}")
        assert res.n_keys == round(0.1 * T)


def test_repair_bookkeeping_matches_fresh_measurement():
    from sparse_motion.keyframes import reduce as R

    chain, frames, values = big_chain_scene(600, 6, seed=4)
    truth = R._Truth(frames, values, chain, chain(values))
    proxy = R.ProxyModel.from_kinematics(frames, values, chain, rank=4)
    rng = np.random.default_rng(1)
    keys = np.unique(np.r_[0, rng.choice(np.arange(1, 599), 38, replace=False), 599])
    st = R._State(truth, keys)
    before_max, before_sum = st.max, st.segsum.sum()
    st = R._max_repair(st, proxy, iters=30, rounds=8, target=0.0)
    fresh = R._State(truth, st.keys)
    assert len(st.keys) == len(keys)
    assert st.max < before_max
    np.testing.assert_allclose(st.segmax, fresh.segmax, atol=1e-12)
    np.testing.assert_allclose(st.segsum, fresh.segsum, atol=1e-9)
    np.testing.assert_allclose(st.dist, fresh.dist, atol=1e-12)
    cap = st.max
    mid_sum = st.segsum.sum()
    st = R._mean_repair(st, proxy, cap, rounds=4)
    fresh = R._State(truth, st.keys)
    assert len(st.keys) == len(keys) and st.max <= cap
    assert st.segsum.sum() < mid_sum < before_sum
    np.testing.assert_allclose(st.segsum, fresh.segsum, atol=1e-9)
    np.testing.assert_allclose(st.dist, fresh.dist, atol=1e-12)


def test_points_fn_gets_rows_for_channels_it_keeps(scene):
    """A points_fn that also takes ``rows`` gets the dense frame of every row, so it can fill in
    animated channels that are not being reduced (as the Blender layer does)."""
    chain, frames, values = scene
    kept = [5, 6]  # animated, but not handed to the reducer
    reduced = [c for c in range(values.shape[1]) if c not in kept]
    seen = []

    def points_fn(vals, rows=None):
        assert rows is not None and len(rows) == len(vals)
        seen.append(np.asarray(rows))
        full = values[rows].copy()
        full[:, reduced] = vals
        return chain(full)

    for kw in (dict(n_keys=20), dict(max_error=1.0)):
        res = reduce_keys(frames, values[:, reduced], points_fn, **kw)
        full = values.copy()
        full[:, reduced] = res.evaluate()
        stats = metrics.joint_errors(chain(full), chain(values))
        assert res.errors.max == pytest.approx(stats.max, rel=1e-9)
        assert res.errors.mean == pytest.approx(stats.mean, rel=1e-9)
    assert any(len(r) < len(frames) for r in seen)  # subsets of rows were asked for
    k = optimal.optimal_keys(frames[:60], values[:60, reduced], points_fn, 6)
    assert len(k) == 6


def test_irregular_frames_and_small_inputs(scene):
    chain, frames, values = scene
    rng = np.random.default_rng(7)
    irregular = np.cumsum(rng.uniform(0.5, 1.5, len(frames)))
    for kw in (dict(n_keys=25), dict(max_error=1.0), dict(n_keys=25, method="local")):
        res = reduce_keys(irregular, values, chain, **kw)
        stats = metrics.joint_errors(chain(res.evaluate()), chain(values))
        assert res.errors.max == pytest.approx(stats.max, rel=1e-9)
        np.testing.assert_array_equal(res.key_frames, irregular[res.key_idx])
    # the proxy programme handles the irregular spacing itself (not just the true measure)
    uniform_cost = reduce_keys(frames, values, chain, n_keys=25).errors.mean
    assert res.errors.mean < 10 * uniform_cost + 1.0
    for T in (1, 2, 3, 5):
        res = reduce_keys(frames[:T], values[:T], chain, n_keys=3)
        assert res.n_keys == min(T, 3) and res.errors.max >= 0
    one = reduce_keys(frames, values[:, 3], lambda v: chain(np.column_stack(
        [np.zeros((len(v), 3)), v, np.zeros((len(v), chain.n_channels - 4))])), n_keys=10)
    assert one.key_values.shape == (10, 1)
    flat = np.repeat(values[:1], len(frames), axis=0)
    res = reduce_keys(frames, flat, chain, n_keys=10)
    assert res.errors.max < 1e-9
