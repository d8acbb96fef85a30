# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths for the pelvis to follow (bpy-free): a drawn path or points keyed at frames →
a control trajectory in a text-to-motion model's generation frame, and the placement that
puts the generated motion back where the path is.

Everything here is in canonical coordinates: centimetres, Y up (the Blender layer converts
world points with the BVH axis convention first). The generation frame (the frame a model
decodes into, ``features_to_motion``) has frame 0 at the ground origin facing +Z, so the
path is moved and turned about the vertical: its start goes to the origin and its initial
direction to +Z (:class:`Placement`); the generated motion is then turned and moved back by
:meth:`Placement.to_world`, so the character starts at the path's start facing along it.

* :func:`path_control` — a path (a polyline, e.g. a curve evaluated by Blender): followed
  on every frame, at an even pace over the motion's length (sampled by arc length) or at a
  given pace (fractions of the length per frame);
* :func:`pace_of` — the pace of a motion (how far along its own way it is at each frame),
  for following a path at the pace the prompt gives instead of evenly;
* :func:`fit_to_path` — bend a generated motion onto the path it was asked to follow (in
  the generation frame), whatever the model made of the control: a path's centre line is
  carried along the path at the asked pace and the body turned with the path's heading
  (its own sway and its facing relative to its way kept: a sidestep stays a sidestep);
  keyed points are hit at their frames by an offset interpolated between them;
* :func:`keyed_control` — points at given frames (empties keyed at frames): followed at
  those frames only (sparse control); the first key must be the motion's first frame.

Rules (an :class:`~..errors.InputError` says which): at least two distinct points; every
point finite and within :data:`MAX_DISTANCE_CM` (1 km) of the world origin; no faster than
:data:`MAX_SPEED_CM_S` (8 m/s, a sprint) — for a path its length over the motion's
duration, for keyed points between each two consecutive keys.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from . import rotations as _rot

__all__ = ["MAX_SPEED_CM_S", "MAX_DISTANCE_CM", "HEADING_CM", "Placement", "PathControl",
           "path_control", "keyed_control", "arc_length_points", "check_points", "pace_of",
           "fit_to_path", "fit_and_pin", "FIT_WINDOW_S"]

#: The fastest a path may ask the pelvis to move, cm/s (8 m/s: a sprint; a walk is 1-2 m/s).
MAX_SPEED_CM_S = 800.0
#: Points further than this from the world origin are refused (1 km).
MAX_DISTANCE_CM = 1.0e5
#: The path's initial direction: from its start to the point this far along it (cm).
HEADING_CM = 25.0
#: :func:`fit_to_path`: the moving average (seconds) that separates a motion's way from its
#: sway, and smooths the path's turns.
FIT_WINDOW_S = 0.75


@dataclass
class Placement:
    """The generation frame in the world: its origin on the ground ``(x, z)`` cm and its
    turn about +Y, ``yaw`` radians (the generation frame's +Z is the world direction
    ``(sin yaw, 0, cos yaw)``)."""

    origin: np.ndarray
    yaw: float

    def _turn(self, v, angle):
        c, s = np.cos(angle), np.sin(angle)
        v = np.asarray(v, dtype=np.float64)
        out = v.copy()
        out[..., 0] = c * v[..., 0] + s * v[..., 2]
        out[..., 2] = -s * v[..., 0] + c * v[..., 2]
        return out

    def to_generation(self, points) -> np.ndarray:
        """World points ``(..., 3)`` cm → the generation frame."""
        p = np.asarray(points, dtype=np.float64).copy()
        p[..., 0] -= self.origin[0]
        p[..., 2] -= self.origin[1]
        return self._turn(p, -self.yaw)

    def to_world(self, local_quats, root_translation):
        """Generated canonical motion ``(q (F, J, 4), x (F, 3))`` → placed in the world:
        the root turned by ``yaw`` about +Y and moved to the origin."""
        q = np.array(local_quats, dtype=np.float64)
        turn = _rot.axis_angle_to_quat(np.array([self.yaw, 0.0, 1.0, 0.0]))
        q[:, 0] = _rot.quat_mul(np.broadcast_to(turn, q[:, 0].shape), q[:, 0])
        x = self._turn(root_translation, self.yaw)
        x[:, 0] += self.origin[0]
        x[:, 2] += self.origin[1]
        return q, x


@dataclass
class PathControl:
    """What a model needs to follow a path: ``control (F, 3)`` pelvis cm in the generation
    frame, ``mask (F,)`` the frames to follow, the ``placement`` back into the world, the
    path's ``length`` (cm; keyed points: along the keys) and the ground points it follows
    in the world ``target (F, 2)`` (x, z; NaN where not followed); ``label`` names it."""

    control: np.ndarray
    mask: np.ndarray
    placement: Placement
    length: float
    target: np.ndarray
    label: str = ""
    points: np.ndarray | None = None  # a path's world points (to follow it at another pace)
    height: float = 0.0

    @property
    def followed(self) -> int:
        return int(self.mask.sum())


def check_points(points, what: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"{what}: points must be (x, y, z), got shape {p.shape}")
    if len(p) < 2:
        raise InputError(f"{what} has {len(p)} point{'s' if len(p) != 1 else ''}: a path "
                         "needs at least two")
    if not np.isfinite(p).all():
        raise InputError(f"{what} has points that are not numbers (NaN or infinite)")
    far = np.linalg.norm(p, axis=1).max()
    if far > MAX_DISTANCE_CM:
        raise InputError(f"{what} has points {far / 1e5:.1f} km from the world origin: keep "
                         f"the path within {MAX_DISTANCE_CM / 1e5:g} km")
    return p


def _speed_check(distance_cm: float, seconds: float, what: str) -> None:
    speed = distance_cm / max(seconds, 1e-9)
    if speed > MAX_SPEED_CM_S:
        raise InputError(
            f"{what} asks for {distance_cm / 100:.1f} m in {seconds:.2f} s ({speed / 100:.1f} "
            f"m/s); a person walks or runs at most {MAX_SPEED_CM_S / 100:g} m/s: make the "
            "motion longer or the path shorter")


def _placement(ground: np.ndarray, cum: np.ndarray) -> Placement:
    """Start at ``ground[0]``, facing the point :data:`HEADING_CM` along the path (straight
    ahead, +Z, when the path never leaves its start)."""
    if cum[-1] <= 1e-6:
        return Placement(ground[0].copy(), 0.0)
    ahead = arc_length_points(ground, cum, np.array([min(HEADING_CM, cum[-1])]))[0]
    d = ahead - ground[0]
    return Placement(ground[0].copy(), float(np.arctan2(d[0], d[1])))


def _cumulative(ground: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(ground, axis=0), axis=1))])


def arc_length_points(ground, cum, s) -> np.ndarray:
    """Points ``(len(s), 2)`` at arc lengths ``s`` along the polyline ``ground (N, 2)``
    whose cumulative lengths are ``cum (N,)``."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, cum[-1])
    keep = np.concatenate([[True], np.diff(cum) > 1e-9])  # repeated points add no length
    g, c = ground[keep], cum[keep]
    if len(c) == 1:
        return np.repeat(g[:1], len(s), axis=0)
    return np.stack([np.interp(s, c, g[:, 0]), np.interp(s, c, g[:, 1])], axis=1)


def _control(pl: Placement, target: np.ndarray, mask: np.ndarray, height: float):
    F = len(target)
    world = np.zeros((F, 3))
    world[:, 0], world[:, 2] = target[:, 0], target[:, 1]
    control = pl.to_generation(np.where(mask[:, None], world, 0.0))
    control[:, 1] = height
    control[~mask] = np.nan
    return control


def path_control(points, frames: int, fps: float, height: float, *, pace=None,
                 what: str = "The path") -> PathControl:
    """Follow the ground projection of the polyline ``points (N, 3)`` (world cm, Y up) on
    each of ``frames`` frames at ``fps``, the pelvis at ``height`` cm. ``pace``: the
    fraction of the path's length reached at each frame ``(frames,)`` from 0 to 1 (None:
    even, ``i / (frames - 1)``)."""
    p = check_points(points, what)
    ground = p[:, [0, 2]]
    cum = _cumulative(ground)
    length = float(cum[-1])
    if length < 1.0:
        raise InputError(f"{what} has no length (all its points are at one place on the "
                         "ground): draw a path, or key empties at frames")
    frames = int(frames)
    _speed_check(length, (frames - 1) / float(fps), what)
    if pace is None:
        u = np.linspace(0.0, 1.0, frames)
    else:
        u = np.asarray(pace, dtype=np.float64)
        if u.shape != (frames,) or not np.isfinite(u).all():
            raise InputError(f"The pace must give one fraction per frame ({frames})")
        u = np.clip(u, 0.0, 1.0)
    target = arc_length_points(ground, cum, u * length)
    pl = _placement(ground, cum)
    mask = np.ones(frames, dtype=bool)
    return PathControl(_control(pl, target, mask, height), mask, pl, length, target, what,
                       p, float(height))


def pace_of(positions) -> np.ndarray | None:
    """The pace of a motion: the fraction of its pelvis's ground distance covered by each
    frame, from joint positions ``(F, J, 3)`` (joint 0 the pelvis); None when it hardly
    travels (less than 10 cm: then an even pace is as good as any)."""
    ground = np.asarray(positions, dtype=np.float64)[:, 0][:, [0, 2]]
    cum = _cumulative(ground)
    return None if cum[-1] < 10.0 else cum / cum[-1]


def keyed_control(points, frame_index, frames: int, fps: float, height: float, *,
                  what: str = "The keyed points") -> PathControl:
    """Follow ``points (K, 3)`` (world cm, Y up) at the motion frames ``frame_index (K,)``
    only; the first key must be at frame 0 (where the character starts)."""
    p = check_points(points, what)
    idx = np.asarray(frame_index)
    if idx.shape != (len(p),) or not np.all(np.round(idx) == idx):
        raise InputError(f"{what}: one whole frame per point, got {idx!r}")
    idx = idx.astype(np.int64)
    frames = int(frames)
    order = np.argsort(idx, kind="stable")
    p, idx = p[order], idx[order]
    if idx[0] < 0 or idx[-1] >= frames:
        bad = idx[0] if idx[0] < 0 else idx[-1]
        raise InputError(f"{what}: a key at motion frame {bad + 1} is outside the motion "
                         f"(frames 1-{frames}): make the motion longer or move the key")
    if idx[0] != 0:
        raise InputError(f"{what}: the first key is at motion frame {idx[0] + 1}; key a point "
                         "at the motion's first frame too (where the character starts)")
    ground = p[:, [0, 2]]
    same = np.flatnonzero(np.diff(idx) == 0)
    for i in same:
        if np.linalg.norm(ground[i + 1] - ground[i]) > 1.0:
            raise InputError(f"{what}: two different points are keyed at motion frame "
                             f"{idx[i] + 1}")
    step = np.linalg.norm(np.diff(ground, axis=0), axis=1)
    dt = np.diff(idx) / float(fps)
    for i in np.flatnonzero(dt > 0):
        _speed_check(step[i], dt[i], f"{what} between motion frames {idx[i] + 1} and "
                     f"{idx[i + 1] + 1}")
    cum = _cumulative(ground)
    pl = _placement(ground, cum)
    mask = np.zeros(frames, dtype=bool)
    mask[idx] = True
    target = np.full((frames, 2), np.nan)
    target[idx] = ground
    world_target = np.where(mask[:, None], target, 0.0)
    return PathControl(_control(pl, world_target, mask, height), mask, pl, float(cum[-1]),
                       target, what)


def _smooth(a, n: int):
    """Moving average over ``n`` frames (odd), the ends extended by point reflection (a
    straight line stays itself, up to its ends)."""
    a = np.asarray(a, dtype=np.float64)
    if n <= 1 or len(a) < 3:
        return a.copy()
    n = min(n, 2 * (len(a) // 2) - 1)
    pad = [(n // 2, n // 2)] + [(0, 0)] * (a.ndim - 1)
    p = np.pad(a, pad, mode="reflect", reflect_type="odd")
    c = np.cumsum(np.concatenate([np.zeros((1,) + a.shape[1:]), p]), axis=0)
    return (c[n:] - c[:-n]) / n


def _headings(ground, min_step: float = 0.05) -> np.ndarray:
    """Unwrapped heading ``atan2(dx, dz)`` of a ground trajectory ``(F, 2)`` per frame, held
    where it barely moves (0, facing +Z, if it never does)."""
    d = np.gradient(ground, axis=0) if len(ground) > 1 else np.zeros_like(ground)
    ok = np.linalg.norm(d, axis=1) > min_step
    if not ok.any():
        return np.zeros(len(ground))
    theta = np.full(len(ground), np.nan)
    theta[ok] = np.arctan2(d[ok, 0], d[ok, 1])
    idx = np.where(ok, np.arange(len(ground)), -1)
    idx = np.maximum.accumulate(idx)
    first = np.argmax(ok)
    idx[idx < 0] = first
    return np.unwrap(theta[idx])


def fit_to_path(local_quats, root_translation, pc: PathControl, fps: float):
    """Bend generated motion ``(q (F, J, 4), x (F, 3))`` in the generation frame onto
    ``pc``'s trajectory (see the module docstring); returns new ``(q, x)``. Dense control:
    the root's way (its moving average over :data:`FIT_WINDOW_S`) goes where ``pc.control``
    is at each frame, its sway about the way is kept, turned with the path, and the root
    rotation turned by the difference between the path's heading and the way's. Sparse
    control: the root is moved by the offset to each followed point, interpolated between
    them (held after the last)."""
    q = np.array(local_quats, dtype=np.float64)
    x = np.array(root_translation, dtype=np.float64)
    F = len(x)
    mask = np.asarray(pc.mask, dtype=bool)
    target = np.asarray(pc.control, dtype=np.float64)[:, [0, 2]]
    g = x[:, [0, 2]]
    if not mask.all():
        keys = np.flatnonzero(mask)
        off = target[keys] - g[keys]
        t = np.arange(F)
        x[:, 0] += np.interp(t, keys, off[:, 0])
        x[:, 2] += np.interp(t, keys, off[:, 1])
        return q, x
    n = max(3, int(round(FIT_WINDOW_S * float(fps))) | 1)
    way = _smooth(g, n)
    turn = _smooth(_headings(_smooth(target, n)) - _headings(way), n)
    sway = g - way
    c, s_ = np.cos(turn), np.sin(turn)
    x[:, 0] = target[:, 0] + c * sway[:, 0] + s_ * sway[:, 1]
    x[:, 2] = target[:, 1] - s_ * sway[:, 0] + c * sway[:, 1]
    yaw = _rot.axis_angle_to_quat(np.stack([turn, np.zeros(F), np.ones(F), np.zeros(F)], 1))
    q[:, 0] = _rot.quat_mul(yaw, q[:, 0])
    return q, x


def fit_and_pin(local_quats, root_translation, pc: PathControl, fps: float, contacts=None):
    """Follow path's *Fit to Path*: :func:`fit_to_path`, then, with ``contacts`` (F, 4) (the
    model's foot-contact channels), the planted feet pinned again where the bend moved them
    with the root left on the path (``footlock.lock_feet(root=False)``)."""
    q, x = fit_to_path(local_quats, root_translation, pc, fps)
    if contacts is None:
        return q, x
    from . import footlock as _footlock

    return _footlock.lock_feet(q, x, contacts=contacts, root=False)
