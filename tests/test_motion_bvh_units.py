# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH length units from the skeleton's height, and the floor (motion.bvh, numpy only)."""
import numpy as np
import pytest

from bvh_clips import ASF_NAMES, STANDING_HEIGHT_CM, rescaled, standing_clip
from sparse_motion.motion import bvh as B
from sparse_motion.motion.skeleton import bvh_forward_kinematics

CM = STANDING_HEIGHT_CM


def test_parse_scale():
    assert B.parse_scale("auto") == B.parse_scale(None if False else "AUTO") == "auto"
    assert [B.parse_scale(w) for w in ("cm", "Inches", "inch", "ASF", "metres", "mm")] == \
        ["cm", "in", "in", "asf", "m", "mm"]
    assert B.parse_scale("0.02") == 0.02 and B.parse_scale(1) == 1.0
    for bad in ("feet", "-1", "0", "nan", "inf", ""):
        if bad == "":
            assert B.parse_scale(bad) == "auto"
            continue
        with pytest.raises(ValueError, match="give auto, one of m, asf, in, cm, mm"):
            B.parse_scale(bad)
    assert B.UNITS["asf"][1] == pytest.approx(0.0254 / 0.45)  # 5.644 cm


@pytest.mark.parametrize("unit", list(B.UNITS))
@pytest.mark.parametrize("height_m", [1.5, 1.7, 1.95])
def test_a_person_of_any_height_is_detected_in_every_unit(unit, height_m):
    per_unit = B.UNITS[unit][1]
    clip = rescaled(standing_clip(), height_m / (CM / 100.0) * 0.01 / per_unit)
    units = B.detect_units(clip)
    assert units.unit == unit and units.detected and units.plausible
    assert units.height_m == pytest.approx(height_m, rel=1e-9)
    assert units.height == pytest.approx(height_m / per_unit, rel=1e-9)


def test_cmu_asf_clip_is_about_thirty_units_tall():
    clip = rescaled(standing_clip(), 0.45 / 2.54, names=ASF_NAMES)  # cm → ASF units
    units = B.detect_units(clip)
    assert units.unit == "asf" and units.height == pytest.approx(30.1, abs=0.05)
    assert units.describe() == "ASF units (1/0.45 in), detected from a 1.70 m skeleton"
    # 0.01 would make the 0.30 m person of the bug report
    assert B.resolve_units(clip, 0.01).height_m == pytest.approx(0.301, abs=1e-3)


def test_a_rest_pose_that_does_not_stand_is_outvoted_by_the_frames():
    """Legs pointing up at rest (turned down by a 180° Z rotation in every frame): the rest
    pose alone is 0.89 m in cm, which is closer to inches; the frames say 1.70 m."""
    clip = standing_clip()
    for j, joint in enumerate(clip.joints):
        if joint.name in ("LeftLeg", "RightLeg", "RightFoot", "LeftToe"):
            joint.offset = joint.offset * [1.0, -1.0, 1.0]
            if joint.end_site is not None:
                joint.end_site = joint.end_site * [1.0, -1.0, 1.0]
        if joint.name in ("LeftUpLeg", "RightUpLeg"):
            clip.motion[:, clip.rotation_channels(j)[2]] = 180.0
    rest_only = B.Bvh(clip.joints, clip.frame_time, clip.motion[:0])
    assert B.skeleton_height(rest_only) == pytest.approx(89.0)
    assert B.detect_units(rest_only).unit == "in"
    units = B.detect_units(clip)
    assert units.unit == "cm" and units.height == pytest.approx(CM, rel=0.03)  # bent over a bit


def test_given_units_and_factors_are_used_as_given():
    clip = standing_clip()
    u = B.resolve_units(clip, "in")
    assert (u.unit, u.scale, u.detected) == ("in", 0.0254, False)
    assert u.describe() == "inches, given; a 4.32 m skeleton"
    f = B.resolve_units(clip, 0.02)
    assert (f.unit, f.scale, f.height_m) == ("", 0.02, pytest.approx(3.4))
    assert f.describe().startswith("scale 0.02 m per unit, given")
    with pytest.raises(ValueError, match="Unknown scale 'yards'"):
        B.resolve_units(clip, "yards")


def test_implausible_heights_pick_the_closest_unit_and_say_so():
    doll = rescaled(standing_clip(), 0.1)  # 17 units: 0.96 m in ASF units, 0.43 m in inches
    units = B.detect_units(doll)
    assert units.unit == "asf" and not units.plausible
    assert units.height_m == pytest.approx(0.96, abs=0.005)


def test_a_skeleton_without_height_is_refused_unless_the_unit_is_given():
    flat = B.read("HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n"
                  "JOINT B\n{\nOFFSET 10 0 0\nCHANNELS 0\nEnd Site\n{\nOFFSET 0 0 5\n}\n}\n}\n"
                  "MOTION\nFrames: 2\nFrame Time: 0.1\n0 0 0\n5 0 1\n")
    with pytest.raises(B.BvhError, match="cannot tell the length unit: the skeleton has no "
                                         "height"):
        B.detect_units(flat)
    assert B.resolve_units(flat, "cm").height == 0.0
    point = B.read("HIERARCHY\nROOT A\n{\nOFFSET 0 0 0\nCHANNELS 0\n}\nMOTION\nFrames: 1\n"
                   "Frame Time: 0.1\n\n")
    with pytest.raises(B.BvhError, match="no height"):
        B.detect_units(point)


# ---- the floor -----------------------------------------------------------------------------


def _column_clip(heights, names=("Root", "Foot")):
    """A root whose Y position is ``heights`` (one frame each) with a child 10 below."""
    text = (f"HIERARCHY\nROOT {names[0]}\n{{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition "
            f"Zposition\nJOINT {names[1]}\n{{\nOFFSET 0 -10 0\nCHANNELS 0\nEnd Site\n{{\n"
            f"OFFSET 0 0 4\n}}\n}}\n}}\nMOTION\nFrames: {len(heights)}\nFrame Time: 0.1\n"
            + "".join(f"0 {h!r} 0\n" for h in heights))
    return B.read(text)


def test_floor_level_is_a_low_percentile_of_the_lowest_foot():
    heights = np.random.default_rng(0).permutation(np.arange(100.0) + 10.0)
    clip = _column_clip(heights)
    # the foot is 10 below the root: per-frame lowest 0..99, 5th percentile 4.95
    assert B.floor_level(clip) == pytest.approx(4.95)
    assert B.floor_level(clip, percentile=0) == pytest.approx(0.0)


def test_foot_points_are_named_feet_their_descendants_and_end_sites():
    clip = rescaled(standing_clip(), 1.0)
    names = clip.names
    ends = [j for j, joint in enumerate(clip.joints) if joint.end_site is not None]
    points = B.foot_points(clip)
    J = clip.num_joints
    joints = sorted(names[p] for p in points if p < J)
    assert joints == ["LeftToe", "RightFoot"]
    assert sorted(names[ends[p - J]] for p in points if p >= J) == ["LeftToe", "RightFoot"]
    asf = rescaled(clip, 1.0, names=ASF_NAMES)
    assert sorted(asf.names[p] for p in B.foot_points(asf) if p < J) == ["ltoes", "rfoot"]
    # no foot names: every joint and End Site counts
    plain = _column_clip([0.0], names=("Root", "Child"))
    assert list(B.foot_points(plain)) == [0, 1, 2]


def test_floor_shift_leaves_a_clip_on_the_floor_alone():
    clip = standing_clip()
    assert B.floor_level(clip) == pytest.approx(0.0, abs=1e-9)
    assert B.floor_shift(clip, 0.01) == 0.0
    # within the band (1 cm under … 6 cm over: joints sit above the sole) it stays
    for lift in (-0.9, 2.0, 5.9):
        assert B.floor_shift(standing_clip(lift_cm=lift), 0.01) == 0.0
    assert B.floor_shift(standing_clip(lift_cm=-1.5), 0.01) == pytest.approx(1.5)
    assert B.floor_shift(standing_clip(lift_cm=6.5), 0.01) == pytest.approx(-6.5)
    assert B.floor_shift(standing_clip(lift_cm=-100.0), 0.01) == pytest.approx(100.0)
    assert B.floor_shift(standing_clip(lift_cm=30.0), 0.01) == pytest.approx(-30.0)
    # the band is in cm whatever the unit: 5 cm in metres is left, 8 cm is not
    assert B.floor_shift(rescaled(standing_clip(lift_cm=5.0), 0.01), 1.0) == 0.0
    assert B.floor_shift(rescaled(standing_clip(lift_cm=8.0), 0.01), 1.0) == \
        pytest.approx(-0.08)


@pytest.mark.parametrize("root", ["y channel", "no position channels", "x and z only"])
def test_shifted_up_moves_every_joint_by_the_same_amount(root):
    clip = standing_clip(n_frames=10)
    if root != "y channel":
        keep = [c for c in range(clip.num_channels) if c not in
                (range(0, 3) if root == "no position channels" else (1,))]
        j0 = clip.joints[0]
        j0.channels = [c for c in j0.channels
                       if not (c.endswith("position") and (root == "no position channels"
                                                            or c == "Yposition"))]
        clip = B.Bvh(clip.joints, clip.frame_time, clip.motion[:, keep])
    before = bvh_forward_kinematics(clip)
    moved = B.shifted_up(clip, 12.5)
    after = bvh_forward_kinematics(moved)
    np.testing.assert_allclose(after - before, np.broadcast_to([0.0, 12.5, 0.0], after.shape),
                               atol=1e-9)
    assert B.floor_level(moved) == pytest.approx(B.floor_level(clip) + 12.5)
    moved.validate()
    assert B.shifted_up(clip, 0.0).motion.tolist() == clip.motion.tolist()
