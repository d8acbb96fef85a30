# SPDX-License-Identifier: GPL-3.0-or-later
"""Jerk and FlowMDM's transition measures on hand-made motions with known answers."""
import numpy as np
import pytest

from sparse_motion.motion import smoothness

J = 21


def moving(T, velocity=(3.0, 0.0, 1.0)):
    """Every joint at its own place, all moving at one constant velocity (cm per frame)."""
    p = np.zeros((T, J, 3))
    p[:, :, 0] = np.arange(J) * 5.0
    p[:, :, 1] = 90.0
    return p + np.arange(T)[:, None, None] * np.asarray(velocity)


def test_constant_velocity_and_constant_acceleration_have_zero_jerk():
    assert np.allclose(smoothness.jerk(moving(40), fps=20), 0.0)
    p = moving(40)
    p[:, 3, 1] += 0.5 * 2.0 * np.arange(40) ** 2       # one joint accelerating steadily
    assert np.allclose(smoothness.jerk(p, fps=20), 0.0, atol=1e-6)


def test_jerk_is_the_max_over_joints_of_the_l1_third_difference_in_cm_per_s3():
    p = moving(10)
    p[5:, 7, 0] += 2.0                  # joint 7 steps 2 cm in x at frame 5 ...
    p[5:, 9, 1] += 1.0                  # ... joint 9 steps 1 cm in y and 1 cm in z
    p[5:, 9, 2] += 1.0
    j = smoothness.jerk(p, fps=1)
    # a unit step has third differences 1, -2, 1 over the 3 windows that contain it
    assert j.shape == (7,)
    assert j.tolist() == pytest.approx([0, 0, 2, 4, 2, 0, 0])
    assert smoothness.jerk(p, fps=20) == pytest.approx(j * 20 ** 3)


def test_a_pose_jump_at_the_boundary_has_more_jerk_than_a_smooth_motion():
    smooth = moving(100)
    jump = moving(100)
    jump[50:, :, 1] += 4.0              # every joint jumps 4 cm up at frame 50
    blend = moving(100)                 # the same 4 cm spread over 20 frames (smoothstep)
    t = np.clip((np.arange(100) - 40) / 20.0, 0.0, 1.0)
    blend[:, :, 1] += (4.0 * t * t * (3 - 2 * t))[:, None]
    wins = smoothness.boundary_windows([50], 100)
    assert wins == [(35, 65)]
    s = {k: smoothness.summarize(smoothness.window_curves(m, wins, 20), 20, reference=0.0)
         for k, m in (("smooth", smooth), ("jump", jump), ("blend", blend))}
    assert s["smooth"]["peak_jerk"] == pytest.approx(0.0, abs=1e-6)
    assert s["jump"]["peak_jerk"] > 5 * s["blend"]["peak_jerk"] > 0
    assert s["jump"]["area_jerk"] > s["blend"]["area_jerk"] > 0
    assert s["jump"]["flowmdm_peak_jerk"] > s["blend"]["flowmdm_peak_jerk"]
    assert s["jump"]["flowmdm_auj"] > s["blend"]["flowmdm_auj"]


def test_summarize_follows_flowmdm_definitions():
    curves = np.array([[1.0, 3.0, 2.0], [3.0, 1.0, 0.0]])
    s = smoothness.summarize(curves, fps=10, reference=1.0)
    assert s["peak_jerk"] == pytest.approx((3 + 3) / 2)
    assert s["area_jerk"] == pytest.approx((6 + 4) / 2 / 10)
    assert s["flowmdm_peak_jerk"] == pytest.approx(2.0)         # mean curve [2, 2, 1]
    assert s["flowmdm_auj"] == pytest.approx((1 + 1 + 0) / 10)
    assert s["windows"] == 2 and s["mean_jerk"] == pytest.approx(10 / 6)
    assert np.isnan(smoothness.summarize(curves, 10)["flowmdm_auj"])
    assert smoothness.summarize(np.zeros((0, 0)), 10)["windows"] == 0


def test_windows_stay_inside_the_motion():
    assert smoothness.boundary_windows([10, 20, 95], 100, half=15) == [(5, 35)]
    draws = smoothness.random_windows([10, 40, 31], 2000, 30, rng=0)
    assert {i for i, _ in draws} == {1, 2}          # the 10-frame motion is too short
    for i, s in draws:
        assert 0 <= s <= [10, 40, 31][i] - 30
    counts = np.bincount([i for i, _ in draws], minlength=3)
    assert counts[1] > 3 * counts[2] > 0             # 11 start frames vs 2
    assert draws == smoothness.random_windows([10, 40, 31], 2000, 30, rng=0)
    with pytest.raises(ValueError):
        smoothness.random_windows([10, 12], 5, 30, rng=0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        smoothness.jerk(np.zeros((10, 21)))
    with pytest.raises(ValueError):
        smoothness.jerk(np.zeros((3, 21, 3)))
    bad = moving(10)
    bad[4, 2, 0] = np.nan
    with pytest.raises(ValueError):
        smoothness.jerk(bad)
    with pytest.raises(ValueError):
        smoothness.window_curves(moving(60), [(0, 30), (30, 50)], 20)


def test_lowpass_halves_the_cut_off_and_keeps_slow_motion():
    """``lowpass`` at 6 Hz (20 fps): a 1 Hz sine passes unchanged, one at the cut-off comes
    out at half its amplitude, one at 8 Hz at less than a third; 0 Hz (off) and frequencies
    at Nyquist or above return the input; a (T,) array is refused."""
    t = np.arange(400)
    amp = {}
    for hz in (1, 6, 8):
        x = np.sin(2 * np.pi * hz * t / 20.0)[:, None]
        amp[hz] = np.abs(smoothness.lowpass(x, 6.0, 20.0)[100:300]).max()
    assert amp[1] > 0.99 and 0.42 < amp[6] < 0.55 and amp[8] < 0.3, amp
    x = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_array_equal(smoothness.lowpass(x, 0.0, 20.0), x)
    np.testing.assert_array_equal(smoothness.lowpass(x, 10.0, 20.0), x)
    with pytest.raises(ValueError):
        smoothness.lowpass(np.zeros(10), 6.0, 20.0)
