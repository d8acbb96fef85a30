# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot locking on canonical motion: planted feet stop sliding, the rest is left alone."""
import numpy as np

from sparse_motion.inference import metrics
from sparse_motion.motion import canonical as canon
from sparse_motion.motion import footlock

SK = canon.SKELETON
TOES = [SK.names.index("Toes_L"), SK.names.index("Toes_R")]


def standing(F, drift_cm_per_frame, lift_cm=0.0):
    """Knees a little bent, feet on the ground, the root drifting forward (feet slide). (A
    straight leg cannot reach any further: IK can only pin what the leg can reach.)"""
    q = np.zeros((F, SK.num_joints, 4))
    q[..., 0] = 1.0
    for name in ("LowerLeg_L", "LowerLeg_R"):
        a = np.radians(30.0)
        q[:, SK.names.index(name)] = [np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)]
    pos0 = canon.canonical_forward_kinematics(q[:1], np.array([SK.offsets[0]]))
    floor = pos0[0, TOES, 1].min()
    x = np.zeros((F, 3))
    x[:, 1] = SK.offsets[0][1] - floor + 1.0 + lift_cm  # toes 1 cm above the floor
    x[:, 2] = drift_cm_per_frame * np.arange(F)
    return q, x


def toe_steps(q, x):
    p = canon.canonical_forward_kinematics(q, x)
    return np.linalg.norm(np.diff(p[:, TOES][..., [0, 2]], axis=0), axis=-1), p


def test_sliding_planted_feet_are_held():
    q, x = standing(40, 3.0)  # 3 cm per frame: skating by the metric's definition
    before, p0 = toe_steps(q, x)
    grounded = p0[0, TOES, 1] < 5.0  # the rest pose of this skeleton has one toe down
    assert grounded.any() and before[:, grounded].min() > 2.9
    assert metrics.foot_skating_ratio(p0) == 1.0
    q2, x2, info = footlock.lock_feet(q, x, return_info=True)
    after, p1 = toe_steps(q2, x2)
    assert after[:, grounded].max() < 0.05 and metrics.foot_skating_ratio(p1) == 0.0
    assert info["contact_frames"] > 0
    # bones keep their lengths and the quaternions stay unit
    np.testing.assert_allclose(np.linalg.norm(q2, axis=-1), 1.0, atol=1e-9)


def test_anchored_frames_stay_and_pin_their_run():
    """An animator's keys (anchors) are not moved, and a planted foot whose run holds one is
    held where it is at that key (not at the run's median): Fill Between then needs no
    second blend that would slide the foot again."""
    q, x = standing(40, 1.0)  # 20 cm/s: a slow slide the legs can reach both ways
    anchors = np.zeros(40, bool)
    anchors[10] = True
    p0 = canon.canonical_forward_kinematics(q, x)
    grounded = p0[0, TOES, 1] < 5.0
    key = np.broadcast_to(p0[10, TOES][grounded][..., [0, 2]], (31, 1, 2))
    # the hard reach (soft_cm=0), then the default soft one: near full extension the leg
    # stops up to soft_cm / e short of the target instead of snapping straight
    for soft, tol in ((0.0, 0.1), (2.0, 2.0 / np.e + 0.05)):
        q2, x2 = footlock.lock_feet(q, x, root=False, ground=False, anchors=anchors,
                                    soft_cm=soft)
        np.testing.assert_array_equal(q2[anchors], q[anchors])
        np.testing.assert_array_equal(x2, x)
        after, p1 = toe_steps(q2, x2)
        # one run over the whole clip: held at frame 10's toe position, not the median
        # (frame 20), as far as the leg reaches (the root drifts on: 20 cm past the key it
        # cannot)
        held = p1[:31, TOES][:, grounded][..., [0, 2]]
        np.testing.assert_allclose(held, key, atol=tol)
        np.testing.assert_allclose(held[:20], key[:20], atol=0.1)  # well within reach
    assert after[:20, grounded].max() < 0.05
    q3, _ = footlock.lock_feet(q, x, root=False, ground=False)  # without: the median
    assert np.abs(q3[10] - q[10]).max() > 1e-3


def test_feet_in_the_air_are_left_alone():
    q, x = standing(30, 3.0, lift_cm=40.0)
    q2, x2 = footlock.lock_feet(q, x)
    np.testing.assert_allclose(q2, q, atol=1e-12)
    np.testing.assert_allclose(x2, x, atol=1e-12)


def test_a_toe_scraping_the_floor_is_lifted():
    q, x = standing(20, 0.0)
    # the grounded right toe sweeps fast (~13 cm per frame) along the floor
    i = SK.names.index("UpperLeg_R")
    ang = np.linspace(-1.5, 1.5, 20)
    q[:, i] = np.stack([np.cos(ang / 2), 0 * ang, np.sin(ang / 2), 0 * ang], axis=1)
    steps0, p0 = toe_steps(q, x)
    toe = TOES[1]
    assert (p0[:, toe, 1] < 5.0).all() and steps0[:, 1].min() > 12.0
    assert metrics.foot_skating_ratio(p0) > 0.5
    q2, x2 = footlock.lock_feet(q, x)
    _, p1 = toe_steps(q2, x2)
    assert (p1[:, toe, 1] >= 5.0).all()  # lifted clear of the floor
    assert metrics.foot_skating_ratio(p1) == 0.0


# --- contacts at any speed, grounding, no penetration, no pops (issue 13, part 4) ----------

from sparse_motion.motion import physics  # noqa: E402

R_TOE = SK.names.index("Toes_R")


def grounded(F, drift_cm_per_frame, sink_cm=0.0):
    """:func:`standing` with the grounded (right) foot resting on the floor: clearance 0
    (``sink_cm`` under it), the root drifting forward."""
    q, x = standing(F, drift_cm_per_frame)
    p = canon.canonical_forward_kinematics(q[:1], x[:1])
    x[:, 1] -= footlock.clearance(p)[0].min() + sink_cm
    return q, x


def run_contacts(F, period=8, stance=3, side=1):
    """Foot-contact channels (F, 4) of a run: ``stance`` frames in every ``period``."""
    c = np.zeros((F, 4))
    on = (np.arange(F) % period) < stance
    c[on, 2 * side:2 * side + 2] = 1.0
    return c, on


def synthetic_run_positions(F=40, speed=10.0):
    """Positions (F, 21, 3) of feet touching the floor for 3 frames in 8 while sliding
    ``speed`` cm per frame (200 cm/s at 20 fps), flying 25 cm up in between."""
    p = np.zeros((F, SK.num_joints, 3))
    p[:, :, 1] = 90.0
    c, on = run_contacts(F, side=1)
    for toe, ankle in ((16, 15), (20, 19)):
        p[:, toe, 2] = speed * np.arange(F)
        p[:, toe, 1] = np.where(on, footlock.TOE_CONTACT_CM, 30.0) if toe == 20 else 30.0
        p[:, ankle] = p[:, toe] + [0.0, footlock.ANKLE_CONTACT_CM - footlock.TOE_CONTACT_CM, -12.0]
    return p, c, on


def test_contacts_at_speed_are_found_from_the_channels():
    p, c, on = synthetic_run_positions()
    m = footlock.contact_mask(p, c)
    np.testing.assert_array_equal(m[:, 1], on)      # every touch, at 200 cm/s
    assert not m[:, 0].any()                          # the left foot never touches
    # the height-and-speed rule alone misses them: they are too fast
    assert not footlock.contact_mask(p).any()
    # a channel that says "contact" for a foot 25 cm up is not believed
    c2 = c.copy()
    c2[:, 0:2] = 1.0
    assert not footlock.contact_mask(p, c2)[:, 0].any()


def test_feet_touching_at_speed_are_pinned():
    # 160 cm/s, the toe 4 cm over its contact height: the height rule never plants it
    q, x = grounded(40, 8.0, sink_cm=-4.0)
    c, on = run_contacts(40)
    q0, x0 = footlock.lock_feet(q, x)          # without the channels: never planted
    s0, _ = toe_steps(q0, x0)
    assert s0[:, 1].min() > 7.0
    q2, x2 = footlock.lock_feet(q, x, contacts=c)
    s2, p2 = toe_steps(q2, x2)
    both = on[1:] & on[:-1]
    assert s2[both, 1].max() < 0.05            # held still inside every contact
    np.testing.assert_allclose(footlock.clearance(p2)[on, 1], 0.0, atol=0.05)


def test_grounding_leaves_a_clip_on_the_floor_unchanged():
    q, x = grounded(30, 0.0)
    c, _ = run_contacts(30, period=30, stance=30)
    for contacts in (None, c):
        q2, x2 = footlock.lock_feet(q, x, contacts=contacts)
        np.testing.assert_allclose(q2, q, atol=1e-9)
        np.testing.assert_allclose(x2, x, atol=1e-9)


def test_a_floating_or_sinking_body_is_put_on_the_floor():
    for sink in (-8.0, 3.0):                   # 8 cm over the floor, 3 cm under it
        q, x = grounded(30, 0.0, sink_cm=sink)
        c, _ = run_contacts(30, period=30, stance=30)
        q2, x2 = footlock.lock_feet(q, x, contacts=c)
        p2 = canon.canonical_forward_kinematics(q2, x2)
        np.testing.assert_allclose(footlock.clearance(p2)[:, 1], 0.0, atol=0.05)
        np.testing.assert_allclose(x2[:, 1], x[:, 1] + sink, atol=0.05)  # by the root


def test_penetration_never_increases():
    rng = np.random.default_rng(0)
    for sink in (0.0, 1.5, 4.0, -3.0):
        for drift in (0.0, 3.0, 9.0):
            q, x = grounded(48, drift, sink_cm=sink)
            x[:, 1] += rng.normal(0.0, 1.0, 48).cumsum() * 0.3   # the body bobs
            c, _ = run_contacts(48, period=int(rng.integers(6, 12)), stance=3)
            before = physics.measure(canon.canonical_forward_kinematics(q, x), 20)
            p2 = canon.canonical_forward_kinematics(*footlock.lock_feet(q, x, contacts=c))
            after = physics.measure(p2, 20)
            assert after["penetration_cm"] <= before["penetration_cm"] + 1e-9
            if sink > 0:
                assert after["penetration_cm"] < 0.5 * before["penetration_cm"]


def _max_accel_at_boundaries(q, x, on):
    p = canon.canonical_forward_kinematics(q, x)
    acc = np.linalg.norm(np.diff(p, n=2, axis=0), axis=-1).max(axis=1)   # (F-2,) cm/frame²
    edges = np.flatnonzero(np.diff(on.astype(int)))                      # contact changes
    near = np.unique(np.clip(np.concatenate([edges + k for k in range(-3, 4)]), 0, len(acc) - 1))
    return acc[near].max()


def test_no_pops_at_contact_boundaries():
    # a body floating 4 cm up whose right foot touches for 6 frames in 16 while sliding
    # 8 cm per frame: grounded, the root carried, the pins faded in and out
    q, x = grounded(48, 8.0, sink_cm=-4.0)
    c, on = run_contacts(48, period=16, stance=6)
    q2, x2 = footlock.lock_feet(q, x, contacts=c)
    # no joint's speed changes by more than 2 cm/frame from one frame to the next (a foot
    # stopped at once would change by 8)
    assert _max_accel_at_boundaries(q2, x2, on) < 2.0
    p = canon.canonical_forward_kinematics(q2, x2)
    assert np.linalg.norm(np.diff(p, axis=0), axis=-1).max() < 9.0   # and no jumps


def test_plants_are_eased_and_contacts_untouched():
    """A foot sliding into a plant slows into it over a few frames (the least-jerk path
    outside the contact run) instead of stopping dead; the planted frames are exactly where
    they were, and smoothing with weight 0 is the old locking."""
    from sparse_motion.motion import smoothness
    F = 40
    q, x = standing(F, 2.0)
    grounded = canon.canonical_forward_kinematics(q[:1], x[:1])[0, TOES, 1] < 5.0
    c = np.zeros((F, 4))
    c[15:30] = 1.0  # the model's contact channels: planted on frames 15-29 only

    def toe(**kw):
        q2, x2 = footlock.lock_feet(q, x, contacts=c, root=False, speed_cm=1.0, **kw)
        return canon.canonical_forward_kinematics(q2, x2)[:, TOES][:, grounded][:, 0]

    hard, eased = toe(smooth=0.0, soft_cm=0.0), toe(soft_cm=0.0)
    for t in (hard, eased):  # held still on the run
        assert np.abs(np.diff(t[15:30, [0, 2]], axis=0)).max() < 1e-6
    np.testing.assert_allclose(eased[15:30], hard[15:30], atol=1e-6)
    j_hard = np.abs(np.diff(hard, n=3, axis=0)).sum(-1).max()
    j_eased = np.abs(np.diff(eased, n=3, axis=0)).sum(-1).max()
    assert j_eased < 0.9 * j_hard, (j_eased, j_hard)
    # smooth_path: held frames never move, weight 0 is the identity
    path = np.cumsum(np.r_[np.full(10, 3.0), np.zeros(10)])[:, None]
    held = np.arange(20) >= 10
    out = footlock.smooth_path(path, held, ~held, 1.0)
    np.testing.assert_array_equal(out[held], path[held])
    assert np.abs(np.diff(out, n=3, axis=0)).max() < np.abs(np.diff(path, n=3, axis=0)).max()
    np.testing.assert_array_equal(footlock.smooth_path(path, held, ~held, 0.0), path)


def test_soft_reach_keeps_the_knee_from_snapping():
    """A pinned foot the leg cannot reach: with the hard limit the knee snaps straight (a
    spike of jerk), with the soft reach it straightens gradually (the knee's easing off, to
    see the soft reach alone)."""
    from sparse_motion.motion import smoothness
    q, x = standing(40, 4.0)
    c = np.zeros((40, 4))
    c[15:30] = 1.0
    jerk = {}
    for soft in (0.0, 2.0):
        q2, x2 = footlock.lock_feet(q, x, contacts=c, root=False, speed_cm=1.0, soft_cm=soft,
                                    knee_smooth=0.0)
        jerk[soft] = smoothness.jerk(canon.canonical_forward_kinematics(q2, x2), 20).max()
    assert jerk[2.0] < 0.5 * jerk[0.0], jerk


def test_lifting_a_nearly_straight_leg_eases_the_knee():
    """A nearly straight swinging leg whose toe dips to 2 cm above the floor mid-swing: the
    lift that clears it bends the knee, and a few cm of lift on a straight leg swing the knee
    fast. With the knee's correction eased its jerk is a fraction of the plain IK's, while
    the toe is lifted just as high, and a leg lifted the same on every frame is left as it was."""
    F = 30
    q, x = standing(F, 0.0)
    for name in ("LowerLeg_L", "LowerLeg_R"):
        a = np.radians(5.0)
        q[:, SK.names.index(name)] = [np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)]
    ang = 0.6 - 0.12 * np.linspace(-1, 1, F) ** 2   # hip swing: the toe lowest mid-way
    q[:, SK.names.index("UpperLeg_R")] = np.stack(
        [np.cos(ang / 2), 0 * ang, 0 * ang, np.sin(ang / 2)], axis=1)
    p0 = canon.canonical_forward_kinematics(q, x)
    x[:, 1] += 2.0 - p0[:, R_TOE, 1].min()
    p0 = canon.canonical_forward_kinematics(q, x)
    assert p0[:, R_TOE, 1].min() < 2.5 and p0[[0, -1], R_TOE, 1].min() > 10.0
    knee = SK.names.index("LowerLeg_R")
    out = {}
    for ks in (0.0, 1.0):
        q2, x2 = footlock.lock_feet(q, x, root=False, knee_smooth=ks)
        out[ks] = canon.canonical_forward_kinematics(q2, x2)
    jerk = {k: np.abs(np.diff(p[:, knee], n=3, axis=0)).sum(-1).max() for k, p in out.items()}
    assert jerk[1.0] < 0.4 * jerk[0.0], jerk
    lifted = p0[:, R_TOE, 1] < 4.0
    assert (out[1.0][lifted, R_TOE, 1] > 4.0).all()  # clear of the floor (flat: 4.24)
    np.testing.assert_allclose(out[1.0][lifted, R_TOE, 1], out[0.0][lifted, R_TOE, 1], atol=0.3)
    # the standing left leg is lifted by the same amount on every frame: nothing to ease
    left = [SK.names.index(n) for n in footlock.LEGS[0]]
    np.testing.assert_allclose(out[1.0][:, left], out[0.0][:, left], atol=1e-6)


def test_smooth_path_is_the_least_squares_solution():
    """The banded, blockwise solve of :func:`footlock.smooth_path` equals the dense normal
    equations over every free frame at once, for scattered free and held frames (blocks of
    one frame, blocks a window apart, long runs) and several weights."""
    D3 = np.array([-1.0, 3.0, -3.0, 1.0])

    def dense(path, free, lam):
        out = path.copy()
        F = len(path)
        W = [s for s in range(F - 3) if free[s:s + 4].any()]
        A = np.zeros((len(W), F))
        for r, s in enumerate(W):
            A[r, s:s + 4] = D3
        Af, Ax = A[:, free], A[:, ~free]
        M = np.eye(free.sum()) + lam * Af.T @ Af
        out[free] = np.linalg.solve(M, path[free] - lam * Af.T @ (Ax @ path[~free]))
        return out

    rng = np.random.default_rng(3)
    for F in (9, 40, 300):
        for _ in range(3):
            path = rng.normal(size=(F, 2)).cumsum(axis=0)
            fixed, free = rng.random(F) < 0.3, rng.random(F) < 0.8
            if F == 300:
                free[20:290] = True   # a long run
                fixed[20:290] = False
            for lam in (0.5, 30.0):
                got = footlock.smooth_path(path, fixed, free, lam)
                np.testing.assert_allclose(got, dense(path, free & ~fixed, lam), atol=1e-8)
                np.testing.assert_array_equal(got[~(free & ~fixed)], path[~(free & ~fixed)])
