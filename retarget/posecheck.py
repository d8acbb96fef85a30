# SPDX-License-Identifier: GPL-3.0-or-later
"""Does a pose stand, and does retargeted motion stand like its source? (no bpy)

Retargeting aligns the target's *reference pose* with the source's T-pose, so that pose must be
a person standing upright: a rest pose whose legs point up (an iClone BVH exported with the
hips turned over) would otherwise give a character standing on its head, with every bone
mapped by name.

* :func:`standing_problems` — why a pose of the mapped joints is not standing (head above the
  hips, feet hanging below the hips), as sentences for the user; empty when it stands.
* :func:`is_t_or_a_pose` — a standing pose with straight legs and the arms out (T) or lowered
  at most 60° (A): what an action's bind frame looks like.
* :func:`motion_problems` — the retargeted motion against its source, before anything is
  written: on every frame where the source has its head above its hips above its feet, the
  target must too; the target's lowest foot must be as near its floor as the source's (5 % of
  the height); its standing height (the source's most upright frame) within 5 % of the rig's.

Heights are measured along ``up`` from the *floor*, the lowest foot joint (ankle or toe joint)
of the reference pose; the *height* of a pose is from there to the head joint (neck when no
head is mapped). ``points`` are dicts canonical joint → position (any unit).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import conventions as cv

#: Tolerances of :func:`motion_problems` (fractions of the height).
HEIGHT_TOLERANCE = 0.05
FLOOR_TOLERANCE = 0.05
#: A source frame counts as upright when its head is this far (fraction of the height) above
#: its hips, and its hips this far above its lowest foot.
UPRIGHT_MARGIN = 0.1

_FEET = ("Foot_L", "Foot_R", "Toes_L", "Toes_R")


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def hip_centre(points):
    """Mid-point of the upper legs (the hips joint when a leg is missing), or None."""
    if points.get("UpperLeg_L") is not None and points.get("UpperLeg_R") is not None:
        return 0.5 * (np.asarray(points["UpperLeg_L"]) + np.asarray(points["UpperLeg_R"]))
    return None if points.get("Hips") is None else np.asarray(points["Hips"])


def top_joint(points):
    """The highest joint of the body chain that is mapped: head, else neck, chest, spine."""
    return next((j for j in ("Head", "Neck", "Chest", "Spine") if points.get(j) is not None), None)


def leg_length(points):
    """Mean of (upper leg → lower leg → foot) over the legs that have all three, or None."""
    out = []
    for s in ("L", "R"):
        p = [points.get(f"{b}_{s}") for b in ("UpperLeg", "LowerLeg", "Foot")]
        if all(x is not None for x in p):
            out.append(np.linalg.norm(np.subtract(p[1], p[0])) + np.linalg.norm(np.subtract(p[2], p[1])))
    return float(np.mean(out)) if out else None


def _fmt(d, metres):
    return f"{d * metres:.2f} m" if metres else f"{d:.3g}"


def standing_problems(points, up=None, metres=None) -> list:
    """Why the pose ``points`` (canonical joint → position of the mapped bone's head) is not a
    person standing upright along ``up`` (None: the body's own axis, hips → head, so only the
    legs are checked). ``metres``: metres per unit, for the messages. Empty list: it stands."""
    pts = {j: np.asarray(p, dtype=np.float64) for j, p in points.items() if p is not None}
    hc, top = hip_centre(pts), top_joint(pts)
    feet = [s for s in ("L", "R") if f"Foot_{s}" in pts]
    if hc is None or top is None or not feet:
        return []
    leg = leg_length(pts) or float(np.mean([np.linalg.norm(pts[f"Foot_{s}"] - hc) for s in feet]))
    if leg <= 0:
        return []
    up = _unit(pts[top] - hc if up is None else up)
    problems = []
    rise = float((pts[top] - hc) @ up)
    if rise < 0.25 * leg:
        where = "below" if rise < 0 else "level with"
        problems.append(f"the {top.lower()} is {where} the hips"
                        + (f" ({_fmt(-rise, metres)} lower)" if rise < 0 else ""))
    side_name = {"L": "left", "R": "right"}
    for s in feet:
        drop = float((hc - pts[f"Foot_{s}"]) @ up)
        if drop < 0:
            problems.append(f"the {side_name[s]} leg points up (its foot is "
                            f"{_fmt(-drop, metres)} above the hips)")
        elif drop < 0.5 * leg:
            problems.append(f"the {side_name[s]} foot is not below the hips (only "
                            f"{_fmt(drop, metres)} lower)")
    return problems


def is_t_or_a_pose(points, up=None) -> bool:
    """A standing pose (:func:`standing_problems` finds nothing) with straight legs (ankles at
    least 90 % of the leg length below the hips) and the upper arms out sideways, at most 60°
    below (or 20° above) the horizontal."""
    pts = {j: np.asarray(p, dtype=np.float64) for j, p in points.items() if p is not None}
    if standing_problems(pts, up):
        return False
    hc, top = hip_centre(pts), top_joint(pts)
    up = _unit(pts[top] - hc if up is None else up)
    leg = leg_length(pts)
    if leg is None:
        return False
    for s in ("L", "R"):
        if float((hc - pts[f"Foot_{s}"]) @ up) < 0.9 * leg:
            return False
        a, b = pts.get(f"UpperArm_{s}"), pts.get(f"LowerArm_{s}")
        if a is None or b is None:
            return False
        elev = np.degrees(np.arcsin(np.clip(_unit(b - a) @ up, -1.0, 1.0)))
        if not -60.0 <= elev <= 20.0:
            return False
    return True


def straightness(points, up=None) -> float:
    """How straight both legs stand: the smaller (hip centre − ankle) height over the leg
    length (1: straight legs under the hips), for choosing among standing frames."""
    pts = {j: np.asarray(p, dtype=np.float64) for j, p in points.items() if p is not None}
    hc, top, leg = hip_centre(pts), top_joint(pts), leg_length(pts)
    if hc is None or top is None or not leg:
        return 0.0
    up = _unit(pts[top] - hc if up is None else up)
    return min(float((hc - pts[f"Foot_{s}"]) @ up) / leg for s in ("L", "R"))


@dataclass
class MotionCheck:
    """What :func:`motion_problems` measured (heights as fractions of the rig's height)."""

    problems: list = field(default_factory=list)
    height_error: float = 0.0  # |standing height / expected − 1| on the source's most upright frame
    floor_error: float = 0.0  # largest |lowest-foot height − source's|, fraction of the height
    upside_down_frames: int = 0  # upright source frames where the target is not upright
    upright_frames: int = 0
    rig_height: float = 0.0  # reference pose: head joint above the floor (target units)
    standing_height: float = 0.0  # the motion's, on the source's most upright frame
    worst: dict = field(default_factory=dict)  # frame index → heights of head, hips, feet


def _profile(pos, up, floor):
    """Per frame heights above ``floor`` of the top joint, the hip centre and the lowest foot
    joint: ``(F, 3)``; ``pos`` (F, 21, 3) with NaN rows for unmapped joints."""
    pts = {j: pos[:, i] for i, j in enumerate(cv.JOINTS) if np.all(np.isfinite(pos[:, i]))}
    hc = hip_centre(pts)
    top = pts[top_joint(pts)]
    feet = np.stack([pts[j] for j in _FEET if j in pts], axis=1)  # (F, n, 3)
    return np.stack([top @ up, hc @ up, (feet @ up).min(axis=1)], axis=1) - floor


def _reference(ref, up):
    """(floor, height) of a reference pose ``ref`` (21, 3) along ``up``."""
    prof = _profile(ref[None], up, 0.0)[0]
    return prof[2], prof[0] - prof[2]


def motion_problems(src_pos, src_ref, src_up, tgt_pos, tgt_ref, tgt_up, metres=None,
                    height_tol=HEIGHT_TOLERANCE, floor_tol=FLOOR_TOLERANCE) -> MotionCheck:
    """Check retargeted joint positions ``tgt_pos (F, 21, 3)`` (NaN rows: unmapped) against the
    source's ``src_pos (F, 21, 3)``; ``*_ref (21, 3)`` are the reference (standing) poses and
    ``*_up`` the up directions. ``metres``: target metres per unit (messages)."""
    src_up, tgt_up = _unit(src_up), _unit(tgt_up)
    present = np.all(np.isfinite(tgt_ref), axis=1) & np.all(np.isfinite(src_ref), axis=1)
    src_pos = np.where(present[None, :, None], src_pos, np.nan)
    src_ref = np.where(present[:, None], src_ref, np.nan)
    fs, hs = _reference(src_ref, src_up)
    ft, ht = _reference(tgt_ref, tgt_up)
    out = MotionCheck(rig_height=float(ht))
    if not hs > 0:
        out.problems.append("the source's reference pose has no height")
        return out
    if not ht > 0:  # measured along up, the rig's reference pose is upside down
        out.problems.append("the rig's reference pose does not stand (head not above the feet)")
        ht = abs(ht) or 1.0
    s = _profile(src_pos, src_up, fs) / hs
    t = _profile(tgt_pos, tgt_up, ft) / ht
    # order: head above hips above feet wherever the source is upright
    upright = (s[:, 0] - s[:, 1] > UPRIGHT_MARGIN) & (s[:, 1] - s[:, 2] > UPRIGHT_MARGIN)
    wrong = upright & ~((t[:, 0] > t[:, 1]) & (t[:, 1] > t[:, 2]))
    out.upright_frames, out.upside_down_frames = int(upright.sum()), int(wrong.sum())
    m = metres * ht if metres else None

    def h(x):
        return f"{x * m:.2f} m" if m else f"{100 * x:.0f} % of the height"

    if wrong.any():
        f = int(np.flatnonzero(wrong)[0])
        out.worst[f] = t[f]
        out.problems.append(
            f"it would be upside down on {int(wrong.sum())} of {len(t)} frames (frame {f + 1}: "
            f"head at {h(t[f, 0])}, hips at {h(t[f, 1])}, feet at {h(t[f, 2])} above the floor)")
    # feet near the floor, as the source's are
    d = np.abs(t[:, 2] - s[:, 2])
    out.floor_error = float(d.max())
    if out.floor_error > floor_tol:
        f = int(np.argmax(d))
        out.worst.setdefault(f, t[f])
        out.problems.append(f"its feet would be {h(t[f, 2])} above the floor on frame {f + 1} "
                            f"(the motion has them at {h(s[f, 2])})")
    # standing height on the source's most upright frame
    f = int(np.argmax(s[:, 0] - s[:, 2]))
    want = s[f, 0] - s[f, 2]
    got = t[f, 0] - t[f, 2]
    out.standing_height = float(got * ht)
    out.height_error = float(abs(got / want - 1.0)) if want > 0 else float("inf")
    if out.height_error > height_tol:
        out.problems.append(f"standing, it would be {h(got)} tall instead of {h(want)} "
                            f"({100 * out.height_error:.0f} % off)")
    return out
