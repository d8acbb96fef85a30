# SPDX-License-Identifier: GPL-3.0-or-later
"""Filling between the animator's own keys (bpy-free: numpy).

The animator's known poses — full body or only some joints, optionally the root position and
heading — at given frames of canonical motion (20 fps) condition sMDM's sampling by
**imputation in the loop** (no retraining): at every denoising step the known channels of the
model's estimate x0 are replaced by the animator's (the joints' rotation channels, the root
height, the joint positions of fully known frames) and the root trajectory is bent to pass
through the known root positions and headings; DDIM then carries the replaced values into
x_t (RePaint-style, deterministic). The known frames are always keyframes of the model (it
only reads x_t at its keyframes); the other keyframes are chosen around them, uniformly and
then by Visvalingam-Whyatt on the current estimate.

After sampling the motion is placed in the animator's world (yaw and ground translation at the
first known root frame) and :func:`blend_to_keys` makes it exact: the difference to the known
values at each known frame is spread to the neighbouring frames with a smoothstep between
consecutive known frames (zero slope at the keys, so the motion's own velocity is kept there:
no velocity pop), constant outside them. :func:`offset_blend` is the same for any channels
(Blender's F-curve values).

:class:`Keyframes` holds what is known; ``SmdmModel.fill`` (``inference/smdm.py``) runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..keyframes import vw as _vw
from ..keyframes.continuity import quat_continuous
from ..motion import features as _feat
from ..motion import rotations as _rot
from ..motion.footlock import lock_feet
from ..motion.canonical import SKELETON
from ..motion.canonical import slerp as _slerp
from ..motion.skeleton import forward_kinematics
from . import smdm_core as core

__all__ = ["Keyframes", "Fill", "Imputation", "offset_blend", "blend_to_keys", "place",
           "smoothstep_weights", "known_channels", "known_inputs", "ROOT_CHANNELS"]

J = SKELETON.num_joints
ROOT_CHANNELS = 4  # the root's ground x, z (m) and heading cos, sin, after the features
ROOT_SCALE_CM = 100.0


def known_channels(joints, root_known, lay=None):
    """``(rows, cols)`` of the feature channels that known poses fix: the rotation channels of
    each known joint on its frames, the root height where the root is known, and the
    (root-relative) joint positions of frames where every joint and the root are known.
    ``joints (N, 21)`` and ``root_known (N,)`` bool."""
    lay = lay or _feat.feature_layout()
    joints = np.asarray(joints, dtype=bool)
    root_known = np.asarray(root_known, dtype=bool)
    cols, rows = [], []
    rot = lay["rotations"].start
    for j in range(J):
        fr = np.flatnonzero(joints[:, j])
        for c in range(rot + 6 * j, rot + 6 * j + 6):
            rows.append(fr)
            cols.append(np.full(len(fr), c))
    fr = np.flatnonzero(root_known)
    rows.append(fr)
    cols.append(np.full(len(fr), lay["root_height"].start))
    full = np.flatnonzero(joints.all(axis=1) & root_known)
    jp = lay["joint_positions"]
    for c in range(jp.start, jp.stop):
        rows.append(full)
        cols.append(np.full(len(full), c))
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def known_inputs(features, joints, root_known, mean, std, channels=None):
    """The denoiser's ``known`` and ``known_mask`` (``(N, D + 4)`` float32 each) for known
    poses: ``features (N, D)`` raw features of a motion holding the known values (unknown
    frames are ignored), ``joints (N, 21)`` / ``root_known (N,)`` what is known where. The
    first D channels: the normalised features of :func:`known_channels`; the last 4: where the
    root is known, its ground position (m) and heading relative to the first root-known frame
    (the features' frame of that frame: facing +Z at the origin). Training
    (``training/train_smdm.py --known``) and Fill Between use this one function.
    ``channels``: :func:`known_channels` of ``joints`` / ``root_known`` when already made."""
    f = np.asarray(features, dtype=np.float64)
    N, D = f.shape
    lay = _feat.feature_layout()
    rows, cols = channels if channels is not None else known_channels(joints, root_known, lay)
    known = np.zeros((N, D + ROOT_CHANNELS), dtype=np.float32)
    mask = np.zeros((N, D + ROOT_CHANNELS), dtype=np.float32)
    norm = (f - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    known[rows, cols] = norm[rows, cols]
    mask[rows, cols] = 1.0
    rk = np.flatnonzero(np.asarray(root_known, dtype=bool))
    if len(rk):
        theta, root = _feat._root_trajectory(f, lay)
        k0 = int(rk[0])
        rel = _feat._yaw(theta[k0], root[rk] - root[k0], inverse=True)
        a = theta[rk] - theta[k0]
        known[rk, D:] = np.stack([rel[:, 0] / ROOT_SCALE_CM, rel[:, 2] / ROOT_SCALE_CM,
                                  np.cos(a), np.sin(a)], axis=1)
        mask[rk, D:] = 1.0
    return known, mask


@dataclass
class Keyframes:
    """Known poses on ``N`` frames of canonical motion: dense ``quats (N, 21, 4)`` and ``root
    (N, 3)`` (cm; values at unknown frames are ignored, except frame 0's root and heading
    when no root is known: they place the result), ``joints (N, 21)`` which joint rotations
    are known on each frame, ``root_known (N,)`` where the root position and heading are
    known."""

    quats: np.ndarray
    root: np.ndarray
    joints: np.ndarray
    root_known: np.ndarray

    @classmethod
    def full(cls, quats, root, frames, root_known: bool = True, joints=None) -> "Keyframes":
        """Known at ``frames`` (indices): every joint (or the joint indices ``joints``), and the
        root when ``root_known``."""
        q = np.asarray(quats, dtype=np.float64)
        N = len(q)
        mask = np.zeros((N, J), bool)
        cols = np.arange(J) if joints is None else np.asarray(joints, dtype=np.int64)
        frames = np.asarray(frames, dtype=np.int64)
        mask[np.ix_(frames, cols)] = True
        rk = np.zeros(N, bool)
        if root_known:
            rk[frames] = True
        return cls(q, np.asarray(root, dtype=np.float64), mask, rk)

    def __post_init__(self):
        self.quats = _rot.quat_normalize(np.asarray(self.quats, dtype=np.float64))
        self.root = np.asarray(self.root, dtype=np.float64)
        self.joints = np.asarray(self.joints, dtype=bool)
        self.root_known = np.asarray(self.root_known, dtype=bool)
        N = len(self.quats)
        if self.quats.shape != (N, J, 4) or self.root.shape != (N, 3) or \
                self.joints.shape != (N, J) or self.root_known.shape != (N,):
            raise InputError(f"Known poses must be quats (N, {J}, 4), root (N, 3), joints "
                             f"(N, {J}), root_known (N,) on the same N frames")
        if not (np.all(np.isfinite(self.quats)) and np.all(np.isfinite(self.root))):
            raise InputError("The known poses contain NaN or infinite values")

    @property
    def frames(self) -> int:
        return len(self.quats)

    @property
    def known_frames(self) -> np.ndarray:
        """Frames where anything is known (sorted indices)."""
        return np.flatnonzero(self.joints.any(axis=1) | self.root_known)

    def check(self) -> None:
        """InputError unless two or more distinct frames are known."""
        k = self.known_frames
        if len(k) == 0:
            raise InputError("There are no keys to fill between")
        if len(k) < 2:
            raise InputError(f"All the keys are on one frame ({int(k[0])}): key at least two "
                             "frames to fill between them")


@dataclass
class Fill:
    """The result of ``SmdmModel.fill``: ``motions[r]`` = ``(quats (N, 21, 4), root (N, 3))``
    in the animator's world, exact at the known frames; ``keys[r]`` the model's keyframes
    (the known frames among them); ``generation``: the raw sampling (features, timings)."""

    motions: list
    keys: list
    known: np.ndarray
    generation: object
    timings: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- blending


def smoothstep_weights(frames: int, rows) -> tuple[np.ndarray, np.ndarray]:
    """For sorted known ``rows``: per frame the slot of the known row at or before it and the
    smoothstep weight of the next one (0 before the first and after the last row)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = np.arange(frames)
    left = np.clip(np.searchsorted(rows, n, side="right") - 1, 0, len(rows) - 1)
    right = np.minimum(left + 1, len(rows) - 1)
    span = (rows[right] - rows[left]).astype(np.float64)
    u = np.where(span > 0, (n - rows[left]) / np.where(span > 0, span, 1.0), 0.0)
    u = np.clip(u, 0.0, 1.0)
    w = u * u * (3.0 - 2.0 * u)
    return left, np.where(n < rows[0], 0.0, w)


def offset_blend(values, rows, targets) -> np.ndarray:
    """``values (N, C)`` plus, per column, the offset that makes rows ``rows`` equal
    ``targets (len(rows), C)``, spread by smoothstep between consecutive rows (constant before
    the first and after the last). The offset has zero slope at every row: the values' own
    velocity is kept there. Rows equal the targets exactly (up to float rounding)."""
    v = np.asarray(values, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return v.copy()
    order = np.argsort(rows)
    rows = rows[order]
    t = np.asarray(targets, dtype=np.float64)[order]
    d = t - v[rows]
    left, w = smoothstep_weights(len(v), rows)
    right = np.minimum(left + 1, len(rows) - 1)
    out = v + d[left] * (1.0 - w)[:, None] + d[right] * w[:, None]
    out[rows] = t
    return out


def blend_to_keys(quats, root, known: Keyframes):
    """Motion exactly on the known values: per joint, the rotation that takes the motion's
    quaternion onto the known one at each of its known frames (``c_k = known · q⁻¹``), slerped
    between consecutive known frames by the smoothstep of :func:`smoothstep_weights` (constant
    before the first and after the last) and applied to every frame (``c(t) · q(t)``): exact
    at the known frames, stationary there (the motion's own angular velocity is kept), and
    blind to the quaternions' signs (decoded or foot-locked rotations may flip hemisphere
    from one frame to the next; a per-component offset turned such a flip into a jump). The
    result is made hemisphere-continuous per joint. The root position: :func:`offset_blend`
    on the root-known frames."""
    q = _rot.quat_normalize(np.array(quats, dtype=np.float64))
    x = np.array(root, dtype=np.float64)
    N = len(q)
    for j in range(J):
        rows = np.flatnonzero(known.joints[:, j])
        if not len(rows):
            continue
        tgt = known.quats[rows, j]
        c = _rot.quat_mul(tgt, _rot.quat_conj(q[rows, j]))
        c = np.where(c[:, :1] < 0, -c, c)
        left, w = smoothstep_weights(N, rows)
        right = np.minimum(left + 1, len(rows) - 1)
        out = _rot.quat_mul(_slerp(c[left], c[right], w), q[:, j])
        out[rows] = np.where(np.sum(tgt * out[rows], -1, keepdims=True) < 0, -tgt, tgt)
        q[:, j] = quat_continuous(out)
    rows = np.flatnonzero(known.root_known)
    if len(rows):
        x = offset_blend(x, rows, known.root[rows])
    return q, x


def _yaw_quat(a):
    return np.array([np.cos(a / 2.0), 0.0, np.sin(a / 2.0), 0.0])


def place(quats, root, known: Keyframes):
    """Motion decoded from features (frame 0 at the origin facing +Z) moved by a yaw and a
    ground translation so that its first known root frame (else frame 0) has the known root
    heading and ground position."""
    q = np.array(quats, dtype=np.float64)
    x = np.array(root, dtype=np.float64)
    rk = np.flatnonzero(known.root_known)
    k = int(rk[0]) if len(rk) else 0
    have = _feat.heading_angles(q[k, 0])
    want = _feat.heading_angles(known.quats[k, 0])
    a = float(want - have)
    q[:, 0] = _rot.quat_mul(_yaw_quat(a), q[:, 0])
    g = x - np.array([x[k, 0], 0.0, x[k, 2]])
    x = _feat._yaw(a, g)
    x[:, 0] += known.root[k, 0]
    x[:, 2] += known.root[k, 2]
    return q, x


# --------------------------------------------------------------------------- in the loop


class Imputation:
    """What the sampling loop calls (``SmdmModel._sample(..., fill=...)``): the keyframes to
    use (the known frames always among them) and the known values imposed on each estimate.
    Works on normalised features with the model's ``mean`` / ``std``."""

    def __init__(self, known: Keyframes, mean, std, strength: float = 1.0):
        known.check()
        if not 0.0 < float(strength) <= 1.0:
            raise InputError(f"Strength must be in (0, 1], got {strength}")
        self.strength = float(strength)
        self.known = known
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        lay = _feat.feature_layout()
        self.lay = lay
        N = known.frames
        target = _feat.motion_to_features(known.quats, known.root)
        self.rows, self.cols = known_channels(known.joints, known.root_known, lay)
        self.values = target[self.rows, self.cols]
        self.dense = ((target - self.mean) / self.std).astype(np.float32)
        # the denoiser's known-keyframe inputs (models trained with them; others ignore them)
        self.known_in, self.known_mask = known_inputs(target, known.joints, known.root_known,
                                                      self.mean, self.std,
                                                      (self.rows, self.cols))
        self.forced = known.known_frames
        rk = np.flatnonzero(known.root_known)
        self.root_rows = rk
        theta = _feat.heading_angles(known.quats[:, 0])
        self.theta = theta[rk]
        self.ground = known.root[rk][:, [0, 2]]
        self.N = N

    # keyframes -----------------------------------------------------------------------------

    def key_count(self, K: int) -> int:
        return int(min(self.N, max(K, len(np.union1d(self.forced, [0, self.N - 1])))))

    def uniform_keys(self, N: int, K: int) -> np.ndarray:
        """``K`` keys: the known frames, the ends, and the uniform keys farthest from them."""
        forced = np.union1d(self.forced, [0, N - 1])
        cand = np.setdiff1d(core.uniform_keys(N, K), forced)
        extra = K - len(forced)
        if extra <= 0 or len(cand) == 0:
            return forced
        dist = np.min(np.abs(cand[:, None] - forced[None]), axis=1)
        pick = cand[np.sort(np.argsort(-dist, kind="stable")[:extra])]
        return np.union1d(forced, pick).astype(np.int64)

    def vw_keys(self, positions, K: int) -> np.ndarray:
        """Visvalingam-Whyatt keys of the current estimate with the known frames kept."""
        areas = core.vw_areas(positions)
        areas[self.forced] = np.inf
        return _vw.select_count(areas, K).astype(np.int64)

    def start(self, ts, noise, abar):
        """``(timesteps, x_t)`` to start from: all of ``ts`` and the noise, or (strength < 1)
        the steps at or below strength·T and the known dense motion noised to the first."""
        if self.strength >= 1.0:
            return ts, noise
        ts = ts[ts <= self.strength * (core.TIMESTEPS - 1)]
        if len(ts) == 0:
            ts = np.array([0], dtype=np.int64)
        ab = float(abar[ts[0]])
        x = np.sqrt(ab) * self.dense[None] + np.sqrt(1.0 - ab) * noise
        return ts, x.astype(np.float32)

    # values --------------------------------------------------------------------------------

    def impose(self, x0n) -> np.ndarray:
        """``x0n (R, N, D)`` normalised → the same with the known channels replaced and the
        root trajectory bent through the known root positions and headings."""
        raw = np.asarray(x0n, dtype=np.float64) * self.std + self.mean
        raw[:, self.rows, self.cols] = self.values
        if len(self.root_rows):
            for r in range(len(raw)):
                raw[r] = self._root_through(raw[r])
        return ((raw - self.mean) / self.std).astype(np.float32)

    def _root_through(self, f):
        lay = self.lay
        theta, root = _feat._root_trajectory(f, lay)
        k = self.root_rows
        k0 = int(k[0])
        a = float(theta[k0] - self.theta[0])  # the animator's world → the features' frame
        g = np.zeros((len(k), 3))
        g[:, 0], g[:, 2] = self.ground[:, 0], self.ground[:, 1]
        g = _feat._yaw(a, g - g[0])
        want_theta = self.theta + a
        err_t = _feat._wrap(want_theta - theta[k])
        err_x = g[:, 0] + root[k0, 0] - root[k, 0]
        err_z = g[:, 2] + root[k0, 2] - root[k, 2]
        n = np.arange(len(f))
        theta = theta + np.interp(n, k, err_t)
        root = root.copy()
        root[:, 0] += np.interp(n, k, err_x)
        root[:, 2] += np.interp(n, k, err_z)
        out = f.copy()
        w = _feat._wrap(np.diff(theta))
        out[1:, lay["root_rot_vel"].start] = w
        out[0, lay["root_rot_vel"].start] = w[0] if len(w) else 0.0
        lin = _feat._yaw(theta[:-1], root[1:] - root[:-1], inverse=True)[:, [0, 2]]
        s = lay["root_lin_vel"]
        out[1:, s] = lin
        out[0, s] = lin[0] if len(lin) else 0.0
        return out

    # after ---------------------------------------------------------------------------------

    def finish(self, quats, root, relock: bool = True):
        """Decoded motion → in the animator's world and exact at the known frames. The blend
        to the keys turns joints by offsets that change between keys, which slides planted
        feet; ``relock``: the planted feet are pinned again afterwards (legs only: the root
        and the floor as they are), the keys as anchors (a contact run through a key is held
        where the toe is at the key, key frames untouched), and the result blended to the keys
        once more, which then changes next to nothing (validation clips filled every 15 / 30
        frames: foot skating 28 / 25 → 2.0 / 2.9 cm/s, real 4.0; the joint error unchanged)."""
        q, x = place(quats, root, self.known)
        q, x = blend_to_keys(q, x, self.known)
        if relock:
            anchors = np.zeros(self.N, bool)
            anchors[self.forced] = True  # the keys' legs stay; runs through them pin there
            q, x = blend_to_keys(*lock_feet(q, x, root=False, ground=False, anchors=anchors),
                                 self.known)
        return q, x


def known_positions(known: Keyframes) -> np.ndarray:
    """World joint positions ``(N, 21, 3)`` of the known dense poses (for checks)."""
    return forward_kinematics(SKELETON, known.quats, known.root)
