# SPDX-License-Identifier: GPL-3.0-or-later
"""Physics measures of motion on joint positions (numpy only, bpy-free).

::

    from sparse_motion.motion import physics
    m = physics.measure(positions_cm, fps=20)            # (T, J, 3), canonical: Y up, cm
    m = physics.measure([clip_a, clip_b, ...], fps=20)   # pooled over clips (one content)
    m = physics.measure(p_zup, fps=30, up="z")           # Blender-style Z up

Positions are world joint positions in **centimetres**, the canonical skeleton's joint order
(``motion.canonical``; ``features.features_to_positions`` gives them from 257-d features),
with the floor at height 0 (``up="y"``, the canonical frame, or ``up="z"``). Other skeletons
pass their own ``foot_joints`` indices and ``contact_height_cm``.

The **lowest foot joint** of a frame is the lowest of the foot joints (``Foot_L, Toes_L,
Foot_R, Toes_R``); on the canonical rig it is a toe joint, which stands
:data:`TOE_CONTACT_CM` = 4.24 cm above the floor when the foot is flat (the median toe-joint
height of the real clips while in contact, 4.24–4.30 cm in every content).

Measures (all floats; ``nan`` where a measure has nothing to average):

``foot_skate_cm_s``
    mean horizontal speed (cm/s) of the lowest foot joint of frame t between t and t+1, over
    the transitions where that joint is within :data:`NEAR_FLOOR_CM` = 5 cm of the floor in
    both frames: less than 5 cm above its contact height (a canonical toe joint below
    9.24 cm; with ``floor="clip"``, less than 5 cm above the clip's own floor). This counts
    touch-down and take-off, where a real foot slows to a stop; the stricter rule of
    ``inference.metrics.foot_skating_ratio`` (toe joint below 5 cm) sees only flat feet.
``penetration_cm``
    mean over frames of ``max(0, contact_height − h_t)``, ``h_t`` the lowest foot joint's
    height: how far the foot sinks below the floor (a toe joint below 4.24 cm). With
    ``floor="clip"`` the contact height is the clip's own floor instead: the modal height of
    its lowest foot joint (the height it rests at most), for clips whose floor is unknown.
``modal_foot_height_cm``
    the centre of the most populated 1 cm bin (edges at whole centimetres) of the lowest foot
    joint's height: 4.5 for feet resting on the floor.
``mean_joint_speed_cm_s``
    mean 3-D speed of all joints over all transitions (cm/s).
``mean_jerk_m_s3``
    mean over frames of FlowMDM's jerk (``motion.smoothness.jerk``: per frame the largest
    L1 norm over the joints of the third difference of position), in m/s³: how smooth the
    motion is (not one of the issue's bars; real clips about 59).
``frames``, ``near_floor_transitions``
    the counts behind the averages.

A list of clips is pooled: every frame and transition of every clip counts once (the modal
height from the summed histogram, ``floor="clip"`` per clip).

:func:`real_per_content` measures the real clips of a dataset per content (the reference);
:func:`meets_bar` says whether a generated measure meets the issue's bar against the real one.
"""
from __future__ import annotations

import numpy as np

from . import smoothness as _smoothness

__all__ = ["measure", "lowest_foot_height", "modal_height", "real_per_content", "meets_bar",
           "FOOT_JOINTS", "TOE_CONTACT_CM", "NEAR_FLOOR_CM", "MEASURES"]

#: Canonical indices of Foot_L, Toes_L, Foot_R, Toes_R.
FOOT_JOINTS = (15, 16, 19, 20)
#: Height (cm) of the canonical toe joint when the foot stands flat on the floor.
TOE_CONTACT_CM = 4.24
#: A foot joint less than this (cm) above its contact height is near the floor (skating is
#: measured there).
NEAR_FLOOR_CM = 5.0
#: The measures' names, in table order.
MEASURES = ("foot_skate_cm_s", "penetration_cm", "modal_foot_height_cm", "mean_joint_speed_cm_s")

_BIN_LO = -50  # histogram range (cm), wide enough for any foot of a standing body
_BIN_HI = 250


def _as_positions(p, up):
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"positions must be (T, J, 3), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("positions contain NaN or infinite values")
    if up == "y":
        return a
    if up == "z":  # (x, y, z) Z up -> (x, z, -y) Y up: heights in column 1, ground in 0 and 2
        return np.stack([a[..., 0], a[..., 2], -a[..., 1]], axis=-1)
    raise ValueError(f"up must be 'y' or 'z', got {up!r}")


def lowest_foot_height(positions, foot_joints=FOOT_JOINTS, up: str = "y"):
    """``(height (T,), joint (T,))``: the lowest foot joint's height and its index per frame."""
    p = _as_positions(positions, up)
    fj = np.asarray(foot_joints)
    h = p[:, fj, 1]
    k = np.argmin(h, axis=1)
    return h[np.arange(len(h)), k], fj[k]


def _histogram(h):
    return np.histogram(np.clip(h, _BIN_LO, _BIN_HI - 1e-6),
                        bins=np.arange(_BIN_LO, _BIN_HI + 1, 1.0))[0]


def modal_height(heights) -> float:
    """Centre of the most populated 1 cm bin (edges at whole cm) of ``heights``."""
    counts = _histogram(np.asarray(heights, dtype=np.float64).ravel())
    return float(_BIN_LO + np.argmax(counts) + 0.5)


def measure(positions, fps: float, *, up: str = "y", foot_joints=FOOT_JOINTS,
            contact_height_cm: float = TOE_CONTACT_CM, floor: str = "world",
            near_floor_cm: float = NEAR_FLOOR_CM) -> dict:
    """Physics measures (see the module docstring) of one clip ``(T, J, 3)`` or pooled over
    a list of clips. ``floor``: ``"world"`` (height 0; penetration below
    ``contact_height_cm``) or ``"clip"`` (each clip's modal lowest-foot height)."""
    if floor not in ("world", "clip"):
        raise ValueError(f"floor must be 'world' or 'clip', got {floor!r}")
    clips = [positions] if isinstance(positions, np.ndarray) and np.ndim(positions) == 3 \
        else list(positions)
    if not clips:
        raise ValueError("no clips to measure")
    fps = float(fps)
    hist = np.zeros(_BIN_HI - _BIN_LO, dtype=np.int64)
    frames = transitions = near = jerk_n = 0
    skate_sum = pen_sum = speed_sum = jerk_sum = 0.0
    for clip in clips:
        p = _as_positions(clip, up)
        h, joint = lowest_foot_height(p, foot_joints)
        hist += _histogram(h)
        rest = modal_height(h) if floor == "clip" else float(contact_height_cm)
        pen_sum += float(np.clip(rest - h, 0.0, None).sum())
        frames += len(h)
        if len(p) < 2:
            continue
        step = np.diff(p, axis=0)
        speed_sum += float(np.linalg.norm(step, axis=-1).mean(axis=1).sum()) * fps
        if len(p) >= 4:
            j = _smoothness.jerk(p, fps)                     # cm/s³
            jerk_sum += float(j.sum()) / 100.0
            jerk_n += len(j)
        transitions += len(step)
        t = np.arange(len(p) - 1)
        j = joint[:-1]                                   # the lowest foot joint of frame t
        top = rest + near_floor_cm
        low = (p[t, j, 1] < top) & (p[t + 1, j, 1] < top)
        horiz = np.linalg.norm(step[t, j][:, [0, 2]], axis=-1) * fps
        skate_sum += float(horiz[low].sum())
        near += int(low.sum())
    nan = float("nan")
    return {
        "foot_skate_cm_s": skate_sum / near if near else nan,
        "penetration_cm": pen_sum / frames,
        "modal_foot_height_cm": float(_BIN_LO + np.argmax(hist) + 0.5),
        "mean_joint_speed_cm_s": speed_sum / transitions if transitions else nan,
        "mean_jerk_m_s3": jerk_sum / jerk_n if jerk_n else nan,
        "frames": int(frames),
        "near_floor_transitions": int(near),
    }


def real_per_content(ds, contents=None):
    """``(measures, clips)``: :func:`measure` pooled over every clip of each content of the
    dataset ``ds`` (``motion.dataset.MotionDataset``; positions from its features), with the
    clip count under ``"clips"``, and the clip indices per content. ``contents``: those
    (default: every content with clips)."""
    from . import features as _feat

    by = {}
    for i in range(len(ds)):
        by.setdefault(ds.clip(i)["content"], []).append(i)
    out = {}
    for c in (sorted(by) if contents is None else contents):
        if by.get(c):
            clips = [_feat.features_to_positions(ds.features(i)) for i in by[c]]
            out[c] = dict(measure(clips, ds.meta.get("fps", 20)), clips=len(by[c]))
    return out, by


def meets_bar(name: str, real: float, gen: float) -> bool:
    """Generated motion's measure ``name`` against real motion's (the post-processing bars):
    foot skating ≤ 1.3× real (no transition near the floor: nothing slides, met),
    penetration ≤ 2× real + 0.2 cm, modal foot height within 1.5 cm of real, mean joint
    speed 0.7–1.4× real."""
    if not np.isfinite(gen):
        return name == "foot_skate_cm_s"
    if name == "foot_skate_cm_s":
        return gen <= 1.3 * real
    if name == "penetration_cm":
        return gen <= 2.0 * real + 0.2
    if name == "modal_foot_height_cm":
        return abs(gen - real) <= 1.5
    return 0.7 * real <= gen <= 1.4 * real
