# SPDX-License-Identifier: GPL-3.0-or-later
"""Physics measures on hand-made trajectories with known answers."""
import numpy as np
import pytest

from sparse_motion.motion import physics

J = 21
FOOT = physics.FOOT_JOINTS  # Foot_L, Toes_L, Foot_R, Toes_R


def body(T, toe_y=4.24, foot_y=11.74, other_y=90.0):
    """Every joint still; the foot joints at the given heights (x apart so nothing overlaps)."""
    p = np.zeros((T, J, 3))
    p[:, :, 1] = other_y
    p[:, :, 0] = np.arange(J) * 3.0
    for j, y in zip(FOOT, (foot_y, toe_y, foot_y, toe_y + 2.0)):
        p[:, j, 1] = y
    return p


def test_still_feet_on_the_floor():
    m = physics.measure(body(30), fps=20)
    assert m["foot_skate_cm_s"] == 0.0
    assert m["penetration_cm"] == 0.0
    assert m["modal_foot_height_cm"] == 4.5  # the [4, 5) cm bin
    assert m["mean_joint_speed_cm_s"] == 0.0
    assert m["frames"] == 30 and m["near_floor_transitions"] == 29


def test_a_sliding_toe_is_measured_in_cm_per_second():
    p = body(11)
    p[:, 16, 2] = np.arange(11) * 2.0          # the lowest toe slides 2 cm per frame
    m = physics.measure(p, fps=20)
    assert m["foot_skate_cm_s"] == pytest.approx(40.0)
    assert m["mean_joint_speed_cm_s"] == pytest.approx(40.0 / J)
    assert physics.measure(p, fps=30)["foot_skate_cm_s"] == pytest.approx(60.0)
    # vertical motion is no slide: the toe bobbing 0.5 cm is not skating
    q = body(11)
    q[:, 16, 1] += 0.5 * (np.arange(11) % 2)
    assert physics.measure(q, fps=20)["foot_skate_cm_s"] == 0.0


def test_a_fast_toe_5_cm_above_the_floor_is_not_skating():
    p = body(11, toe_y=9.5)   # 5.26 cm above its contact height
    p[:, 16, 2] = np.arange(11) * 10.0
    m = physics.measure(p, fps=20)
    assert m["near_floor_transitions"] == 0 and np.isnan(m["foot_skate_cm_s"])
    assert m["modal_foot_height_cm"] == 9.5
    p[:, 16, 1] = 9.0         # 4.76 cm above: near the floor
    assert physics.measure(p, fps=20)["foot_skate_cm_s"] == pytest.approx(200.0)


def test_the_lowest_foot_joint_is_the_one_measured():
    p = body(10)
    p[:, 20, 1] = 3.0          # the right toe is now the lowest ...
    p[:, 20, 0] += np.arange(10) * 1.5    # ... and slides; the left one (4.24 cm) is still
    m = physics.measure(p, fps=20)
    assert m["foot_skate_cm_s"] == pytest.approx(30.0)
    assert m["penetration_cm"] == pytest.approx(1.24)
    assert m["modal_foot_height_cm"] == 3.5


def test_penetration_is_the_mean_depth_below_the_contact_height():
    p = body(4)
    p[:, 16, 1] = [4.24, 2.24, 0.24, 6.0]  # 0, 2, 4 cm deep, then lifted (the other toe: 6.24)
    m = physics.measure(p, fps=20)
    assert m["penetration_cm"] == pytest.approx((0 + 2 + 4 + 0) / 4)
    assert physics.measure(p, fps=20, contact_height_cm=0.0)["penetration_cm"] == 0.0


def test_clip_floor_is_the_modal_height():
    p = body(10, toe_y=11.7)          # floating feet: no penetration of the world floor
    p[3, 16, 1] = 9.7                 # one frame 2 cm under where the feet rest
    assert physics.measure(p, fps=20)["penetration_cm"] == 0.0
    m = physics.measure(p, fps=20, floor="clip")
    assert m["modal_foot_height_cm"] == 11.5
    assert m["penetration_cm"] == pytest.approx((11.5 - 9.7) / 10)


def test_z_up_gives_the_same_numbers():
    p = body(12)
    p[:, 16, 2] = np.arange(12) * 1.0
    p[5, 16, 1] = 3.0
    zup = np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
    a, b = physics.measure(p, fps=20), physics.measure(zup, fps=20, up="z")
    for k in physics.MEASURES:
        assert a[k] == pytest.approx(b[k])


def test_clips_are_pooled_frame_by_frame():
    still = body(10)
    slide = body(21)
    slide[:, 16, 2] = np.arange(21) * 3.0     # 60 cm/s over 20 transitions
    m = physics.measure([still, slide], fps=20)
    assert m["frames"] == 31 and m["near_floor_transitions"] == 29
    assert m["foot_skate_cm_s"] == pytest.approx(60.0 * 20 / 29)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        physics.measure(np.zeros((5, 21)), fps=20)
    with pytest.raises(ValueError):
        physics.measure(body(5), fps=20, up="x")
    bad = body(5)
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError):
        physics.measure(bad, fps=20)


def test_meets_bar_is_the_post_processing_bars():
    assert physics.meets_bar("foot_skate_cm_s", 10.0, 13.0)
    assert not physics.meets_bar("foot_skate_cm_s", 10.0, 13.1)
    assert physics.meets_bar("foot_skate_cm_s", 10.0, float("nan"))   # never near the floor
    assert physics.meets_bar("penetration_cm", 0.1, 0.4) and not physics.meets_bar(
        "penetration_cm", 0.1, 0.41)
    assert physics.meets_bar("modal_foot_height_cm", 4.5, 6.0)
    assert not physics.meets_bar("modal_foot_height_cm", 4.5, 6.5)
    assert physics.meets_bar("mean_joint_speed_cm_s", 100, 70)
    assert not physics.meets_bar("mean_joint_speed_cm_s", 100, 141)


def test_real_per_content_pools_the_clips_of_each_content():
    from sparse_motion.motion import features

    def make_clip(T, slide):
        q = np.zeros((T, J, 4))
        q[..., 0] = 1.0
        x = np.zeros((T, 3))
        x[:, 1] = 90.0
        x[:, 2] = np.arange(T) * slide
        return features.motion_to_features(q, x)

    class FakeDataset:
        meta = {"fps": 20}
        clips = [("walk", make_clip(12, 2.0)), ("bow", make_clip(8, 0.0)),
                 ("walk", make_clip(10, 1.0))]

        def __len__(self):
            return len(self.clips)

        def clip(self, i):
            return {"content": self.clips[i][0]}

        def features(self, i):
            return self.clips[i][1]

    ds = FakeDataset()
    real, by = physics.real_per_content(ds)
    assert by == {"walk": [0, 2], "bow": [1]}
    assert real["walk"]["clips"] == 2 and real["walk"]["frames"] == 22
    pos = [features.features_to_positions(ds.features(i)) for i in (0, 2)]
    assert real["walk"]["mean_joint_speed_cm_s"] == pytest.approx(
        physics.measure(pos, 20)["mean_joint_speed_cm_s"])
    assert set(physics.real_per_content(ds, ["bow", "run"])[0]) == {"bow"}


def test_mean_jerk_is_flowmdms_jerk_in_m_per_s3():
    """Still or constant-velocity motion has no jerk; one joint stepping 1 cm once gives
    third differences of 1, 2, 1... cm (max over joints, L1 over axes) times fps³."""
    still = body(20)
    assert physics.measure(still, fps=20)["mean_jerk_m_s3"] == 0.0
    moving = still.copy()
    moving[:, :, 2] += 2.0 * np.arange(20)[:, None]          # 40 cm/s, constant
    assert physics.measure(moving, fps=20)["mean_jerk_m_s3"] == pytest.approx(0.0, abs=1e-9)
    step = still.copy()
    step[10:, 3, 0] += 1.0                                    # joint 3 jumps 1 cm at frame 10
    d3 = np.array([1.0, 2.0, 1.0])                            # |Δ³| of a unit step
    want = d3.sum() * 20 ** 3 / 100.0 / (20 - 3)
    assert physics.measure(step, fps=20)["mean_jerk_m_s3"] == pytest.approx(want)
    assert np.isnan(physics.measure(body(3), fps=20)["mean_jerk_m_s3"])  # too short
