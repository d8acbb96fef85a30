# SPDX-License-Identifier: GPL-3.0-or-later
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sparse_motion.keyframes import vw


def reference_vw(points, monotonic=True):
    """O(n²) Visvalingam–Whyatt: scan all remaining points for the smallest (area, index) at
    every step; recompute the two neighbours with the monotonic rule. Uses the same pair
    distances and area formula as the module (tested separately below), so results must be
    bit-identical."""
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    areas = np.full(n, np.inf)
    if n <= 2:
        return areas, []
    sq = vw.PairSq(x)
    alive = list(range(n))

    def area_of(pos):
        a, b, c = alive[pos - 1], alive[pos], alive[pos + 1]
        return vw.area_from_sq(sq(a, b), sq(b, c), sq(a, c))

    cur = {alive[p]: area_of(p) for p in range(1, n - 1)}
    order = []
    while len(alive) > 2:
        best_pos = min(range(1, len(alive) - 1), key=lambda p: (cur[alive[p]], alive[p]))
        i = alive[best_pos]
        a = cur[i]
        areas[i] = a
        order.append(i)
        del alive[best_pos]
        for p in (best_pos - 1, best_pos):
            if 0 < p < len(alive) - 1:
                cur[alive[p]] = max(area_of(p), a) if monotonic else area_of(p)
    return areas, order


def gram_area(a, b, c):
    u, v = a - b, c - b
    g = (u @ u) * (v @ v) - (u @ v) ** 2
    return 0.5 * math.sqrt(max(g, 0.0))


def test_ends_infinite_and_interior_finite():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).cumsum(0)
    a = vw.effective_areas(x)
    assert a.dtype == np.float64 and a.shape == (50,)
    assert np.isinf(a[0]) and np.isinf(a[-1])
    assert np.all(np.isfinite(a[1:-1])) and np.all(a[1:-1] >= 0)


def test_tiny_inputs():
    assert vw.effective_areas(np.zeros((0, 2))).shape == (0,)
    assert np.all(np.isinf(vw.effective_areas(np.zeros((1, 2)))))
    assert np.all(np.isinf(vw.effective_areas(np.zeros((2, 2)))))
    a = vw.effective_areas(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))
    assert a[1] == pytest.approx(1.0)


def test_collinear_points_have_zero_area():
    x = np.column_stack([np.arange(10.0), 2 * np.arange(10.0)])
    a = vw.effective_areas(x)
    np.testing.assert_allclose(a[1:-1], 0.0, atol=1e-9)


def test_monotonic_in_removal_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).cumsum(0)
    a = vw.effective_areas(x)
    order = vw.removal_order(x)
    assert sorted(order.tolist()) == list(range(1, 299))
    assert np.all(np.diff(a[order]) >= 0)


def test_monotonic_rule_is_applied():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(80, 2)).cumsum(0)
    a = vw.effective_areas(x)
    with_rule, _ = reference_vw(x, monotonic=True)
    without, order = reference_vw(x, monotonic=False)
    # on this data the rule changes the result; the module follows it
    assert not np.array_equal(with_rule, without)
    assert np.any(np.diff(without[order]) < 0)
    np.testing.assert_array_equal(a, with_rule)


def test_deterministic_and_tie_breaking():
    # a zig-zag with identical triangles everywhere: ties broken by index
    x = np.array([[i, (i % 2)] for i in range(12)], dtype=float)
    a1 = vw.effective_areas(x)
    a2 = vw.effective_areas(x.copy())
    np.testing.assert_array_equal(a1, a2)
    order = vw.removal_order(x)
    assert order[0] == 1  # all first areas equal: the smallest index goes first
    ref_a, ref_order = reference_vw(x)
    np.testing.assert_array_equal(a1, ref_a)
    assert order.tolist() == ref_order


def test_pair_distances_and_area_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5)) * 10
    sq = vw.PairSq(x, gap=4)
    for a, b in [(0, 1), (3, 7), (10, 40), (0, 59)]:
        assert sq(a, b) == pytest.approx(float(np.sum((x[a] - x[b]) ** 2)), rel=1e-12)
    for i in range(1, 59):
        d_ab = float(np.sum((x[i - 1] - x[i]) ** 2))
        d_bc = float(np.sum((x[i] - x[i + 1]) ** 2))
        d_ac = float(np.sum((x[i - 1] - x[i + 1]) ** 2))
        assert vw.area_from_sq(d_ab, d_bc, d_ac) == pytest.approx(
            gram_area(x[i - 1], x[i], x[i + 1]), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("D", [1, 2, 3, 7, 64])
def test_matches_reference_for_dims(D):
    rng = np.random.default_rng(D)
    x = rng.normal(size=(70, D)).cumsum(0)
    a = vw.effective_areas(x)
    ref_a, ref_order = reference_vw(x)
    np.testing.assert_array_equal(a, ref_a)
    assert vw.removal_order(x).tolist() == ref_order


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 45), st.integers(1, 4)),
        elements=st.one_of(
            st.integers(-5, 5).map(float),
            st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
        ),
    )
)
def test_matches_reference_random(x):
    a = vw.effective_areas(x)
    ref_a, ref_order = reference_vw(x)
    np.testing.assert_array_equal(a, ref_a)
    assert vw.removal_order(x).tolist() == list(ref_order)


def test_select_count():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 2)).cumsum(0)
    a = vw.effective_areas(x)
    for n in [0, 1, 2, 5, 17, 40, 100]:
        keep = vw.select_count(a, n)
        assert keep.dtype.kind == "i"
        assert len(keep) == min(max(n, 2), 40)
        assert keep[0] == 0 and keep[-1] == 39
        assert np.all(np.diff(keep) > 0)
    keep = vw.select_count(a, 10)
    inner = np.setdiff1d(np.arange(1, 39), keep)
    assert a[keep[1:-1]].min() >= a[inner].max()  # the most significant ones
    # keeping n is where VW stops with n points left (no ties in random data)
    order = vw.removal_order(x)
    np.testing.assert_array_equal(keep, np.sort(np.setdiff1d(np.arange(40), order[: 40 - 10])))


def test_speed_10k_by_64():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10_000, 64)).cumsum(0)
    vw.effective_areas(x[:100])
    t = time.perf_counter()
    a = vw.effective_areas(x)
    dt = time.perf_counter() - t
    print(f"\nVW 10,000 x 64: {dt * 1000:.0f} ms")
    assert np.isinf(a[0]) and np.all(np.isfinite(a[1:-1]))
