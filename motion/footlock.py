# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot locking and grounding: planted feet rest on the floor and stay still (canonical
motion, numpy only).

Generated motion decoded from features slides its feet where the root velocity and the joint
rotations disagree, and at speed (running, dashing) its feet float above or sink under the
floor. :func:`lock_feet` is the one post-processing step every text-to-motion model's output
goes through (``inference.smdm.Generation.motion``):

1. **Contacts** (:func:`contact_mask`), per foot: the model's own foot-contact channels (the
   features' ``foot_contacts``, Foot/Toes of a side, above 0.5) while the foot is less than
   ``channel_gate_cm`` above the floor — at any speed — or, without channels or besides them,
   the toe low (``height_cm``) and slow (``speed_cm`` per frame).
2. **Grounding**: a foot's clearance is the lower of its toe joint's height above
   :data:`TOE_CONTACT_CM` and its ankle's above :data:`ANKLE_CONTACT_CM` (the joints' heights
   when the foot stands flat on the floor, y = 0; 0 for a planted foot, heel or ball). The
   root is moved up or down by the planted feet's median clearance per contact, interpolated
   between contacts and smoothed (:func:`ground_root`), so a floating or sinking body is put
   on the floor; the rest is left to the leg IK.
3. **Carrying the root** (:func:`correct_root`): its ground-plane steps cancel the mean slide of
   the planted toes (smoothed), so the body moves over its feet instead of the feet sliding.
4. **Pinning** with two-bone IK (hip fixed, knee kept in its plane, the foot keeps its world
   orientation): during a contact the toe is held at the run's median ground position and
   the foot's clearance brought to 0; swinging toes lower than ``clear_cm`` are lifted clear;
   outside the runs the correction fades out (smoothstep over ``blend`` frames), so nothing
   pops, and a fade never pushes a foot deeper under the floor than it was.
5. **Smooth plants** (:func:`smooth_path`): where a correction was made, the toe's ground-plane
   path outside the contact runs is the least-jerk path near the faded one (third differences
   penalised, contact runs and animator's keys held exactly), so a foot slows into its plant
   over a few frames instead of stopping dead in one; and the leg reaches further softly
   over its last ``soft_cm`` (:func:`_soft_reach`), so a target at the edge of reach does
   not snap the knee. Outside the contact runs the knee's correction is eased the same way
   (least jerk, runs and keys held): bending a nearly straight leg moves the knee fast for a
   small change of reach, so lifting a low swinging toe by a few cm snapped the knee. The
   shin points at the target; where the foot would end lower than it, the knee's correction
   there is pushed further and eased again (a few rounds: in a lift the foot may stay a few
   cm short of its clearance), and where it would still end near the floor while moving
   fast (a foot skimming the floor reads as skating) the plain IK is kept and the rest eased
   around it (:func:`_ease_knee`). All three only lower the jerk the pinning adds: contact
   frames and feet that needed no correction are untouched.

A clip whose planted feet already rest still on the floor comes back unchanged. Returns new
local rotations and root translation.
"""
from __future__ import annotations

import numpy as np

from . import rotations as _rot
from .canonical import SKELETON, CanonicalSkeleton
from .skeleton import forward_kinematics

__all__ = ["lock_feet", "correct_root", "ground_root", "contact_mask", "clearance", "smooth_path",
           "LEGS", "TOE_CONTACT_CM", "ANKLE_CONTACT_CM", "CHANNEL_THRESHOLD"]

#: (upper leg, lower leg, foot, toes) joint names per side.
LEGS = (("UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L"),
        ("UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R"))
#: Heights (cm) of the toe joint and the ankle (Foot) when the foot stands flat on the floor
#: (the median heights of the real clips' joints in contact).
TOE_CONTACT_CM = 4.24
ANKLE_CONTACT_CM = 11.74
#: A foot-contact channel above this value marks a contact.
CHANNEL_THRESHOLD = 0.5
#: Knee easing (:func:`_ease_knee`): a foot may end this much lower than its target before
#: the knee's correction there is pushed further, in at most this many rounds; a foot still
#: short that would come within KNEE_LOW_CM of its contact height while its toe moves more
#: than KNEE_SKIM_CM per frame keeps the plain IK.
KNEE_DROP_CM = 0.5
KNEE_ROUNDS = 8
KNEE_LOW_CM = 5.0
KNEE_SKIM_CM = 2.0


def _runs(mask):
    """(start, stop) of the runs of True in a 1-D bool array."""
    m = np.concatenate([[False], mask, [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _normalize(v, fallback):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-9, v / np.maximum(n, 1e-12), fallback)


def _quat_between(a, b):
    """Shortest-arc rotation taking directions a to b (…, 3) → (…, 4)."""
    a = _normalize(a, np.array([0.0, 1.0, 0.0]))
    b = _normalize(b, np.array([0.0, 1.0, 0.0]))
    w = 1.0 + np.sum(a * b, axis=-1, keepdims=True)
    q = np.concatenate([w, np.cross(a, b)], axis=-1)
    return _rot.quat_normalize(q)


def _offsets(F, runs, d_runs, blend):
    """Per-frame correction: d inside runs, fading out (smoothstep) outside."""
    out = np.zeros((F, d_runs[0].shape[1]))
    weight = np.zeros(F)
    for (s, e), d in zip(runs, d_runs):
        out[s:e] = d
        weight[s:e] = 2.0  # inside a run always wins
        for k in range(1, blend + 1):
            u = k / (blend + 1)
            w = 1.0 - u * u * (3.0 - 2.0 * u)
            for t, dd in ((s - k, d[0]), (e - 1 + k, d[-1])):
                if 0 <= t < F and w > weight[t]:
                    weight[t] = w
                    out[t] = w * dd
    return out


def correct_root(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON, *,
                 height_cm: float = 6.0, speed_cm: float = 12.0, planted=None,
                 planted_speed_cm: float = 25.0, positions=None):
    """Root translation whose ground-plane steps cancel the mean slide of the toes that are
    on the ground (below ``height_cm`` in both frames, slower than ``speed_cm`` per frame; or
    in contact in both frames by ``planted`` (F, 2) (per leg of :data:`LEGS`) and slower than
    ``planted_speed_cm``): the body is carried by its planted feet instead of sliding over
    them. The correction is smoothed over 7 frames. ``positions``: the motion's joint
    positions when the caller has them (saves a forward kinematics)."""
    x = np.array(root_translation, dtype=np.float64)
    pos = forward_kinematics(skeleton, local_quats, x) if positions is None else positions
    names = list(skeleton.names)
    toes = pos[:, [names.index(leg[3]) for leg in LEGS]]           # (F, 2, 3)
    step = np.diff(toes[..., [0, 2]], axis=0)                       # (F-1, 2, 2)
    dist = np.linalg.norm(step, axis=-1)
    low = (toes[1:, :, 1] < height_cm) & (toes[:-1, :, 1] < height_cm)
    planted_t = low & (dist < speed_cm)                             # (F-1, 2)
    if planted is not None:
        pl = np.asarray(planted, dtype=bool)
        planted_t |= pl[1:] & pl[:-1] & (dist < planted_speed_cm)
    n = planted_t.sum(axis=1)
    slide = np.where(n[:, None] > 0, (step * planted_t[..., None]).sum(axis=1)
                     / np.maximum(n, 1)[:, None], 0.0)
    shift = np.zeros((len(x), 2))
    shift[1:] = -np.cumsum(slide, axis=0)
    # smoothed (triangle, 7 frames) so the root's velocity does not jump at contact changes;
    # the IK in lock_feet removes what smoothing leaves
    for c in range(2):
        shift[:, c] = _smooth7(shift[:, c])
    x[:, [0, 2]] += shift
    return x


def _smooth7(v):
    k = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]) / 16.0
    return np.convolve(np.pad(v, 3, mode="edge"), k, mode="valid")


def clearance(positions, skeleton: CanonicalSkeleton = SKELETON):
    """(F, 2): per leg of :data:`LEGS`, how far the foot is above the floor: the lower of
    its toe joint's height above :data:`TOE_CONTACT_CM` and its ankle's above
    :data:`ANKLE_CONTACT_CM` (0 for a foot resting on the floor, flat, on its heel or on its
    ball; negative under the floor)."""
    names = list(skeleton.names)
    out = np.empty((positions.shape[0], 2))
    for i, leg in enumerate(LEGS):
        a, t = names.index(leg[2]), names.index(leg[3])
        out[:, i] = np.minimum(positions[:, t, 1] - TOE_CONTACT_CM,
                               positions[:, a, 1] - ANKLE_CONTACT_CM)
    return out


def _toe_speed(toe):
    """Per frame, the slower of the two horizontal toe steps next to it (cm per frame)."""
    step = np.linalg.norm(np.diff(toe[:, [0, 2]], axis=0), axis=1)
    speed = np.empty(len(toe))
    speed[0], speed[-1] = step[0], step[-1]
    speed[1:-1] = np.minimum(step[:-1], step[1:])
    return speed


def contact_mask(positions, contacts=None, skeleton: CanonicalSkeleton = SKELETON, *,
                 height_cm: float = 6.0, speed_cm: float = 6.0,
                 channel_gate_cm: float = 4.0, min_frames: int = 2):
    """(F, 2) bool: the frames each leg of :data:`LEGS` is planted. A toe below
    ``height_cm`` and slower than ``speed_cm`` per frame for at least ``min_frames`` frames;
    and, given the model's foot-contact channels ``contacts`` (F, 4: Foot_L, Toes_L, Foot_R,
    Toes_R, the features' ``foot_contacts``), every frame where the side's larger channel is
    above :data:`CHANNEL_THRESHOLD` and the foot's :func:`clearance` below
    ``channel_gate_cm``, whatever its speed (a running foot slides where it should stand)."""
    pos = np.asarray(positions, dtype=np.float64)
    F = pos.shape[0]
    names = list(skeleton.names)
    clear = clearance(pos, skeleton)
    mask = np.zeros((F, 2), dtype=bool)
    if contacts is not None:
        c = np.asarray(contacts, dtype=np.float64)
        if c.shape != (F, 4):
            raise ValueError(f"contacts must be (F, 4) = ({F}, 4), got {c.shape}")
    for i, leg in enumerate(LEGS):
        toe = pos[:, names.index(leg[3])]
        slow = (toe[:, 1] < height_cm) & (_toe_speed(toe) < speed_cm) if F > 1 else \
            np.zeros(F, dtype=bool)
        for s, e in _runs(slow):
            if e - s >= min_frames:
                mask[s:e, i] = True
        if contacts is not None:
            ch = np.max(c[:, 2 * i:2 * i + 2], axis=1) > CHANNEL_THRESHOLD
            mask[:, i] |= ch & (clear[:, i] < channel_gate_cm)
    return mask


def ground_root(root_translation, planted, clear):
    """Root translation moved up or down so the planted feet rest on the floor: on planted
    frames by minus the median clearance of the contact runs planted there (averaged over
    the legs), interpolated linearly between them, smoothed over 7 frames. ``planted`` and
    ``clear`` are (F, 2) (:func:`contact_mask`, :func:`clearance`)."""
    x = np.array(root_translation, dtype=np.float64)
    F = len(x)
    total = np.zeros(F)
    count = np.zeros(F)
    for i in range(planted.shape[1]):
        for s, e in _runs(planted[:, i]):
            total[s:e] -= np.median(clear[s:e, i])
            count[s:e] += 1
    on = count > 0
    if not on.any():
        return x
    t = np.flatnonzero(on)
    dy = np.interp(np.arange(F), t, total[on] / count[on])
    x[:, 1] += _smooth7(dy)
    return x


def _max_filter(v, r: int):
    """Each frame's largest value of the 1-D ``v`` within ``r`` frames (a dilation of a bool
    mask)."""
    F = len(v)
    pad = np.pad(v, r, mode="edge")
    return np.max(np.stack([pad[i:i + F] for i in range(2 * r + 1)]), axis=0)


def _lift(toe_y, swing, clear_cm):
    """Upward correction that brings swinging toes to ``clear_cm``, widened and smoothed."""
    need = np.where(swing, np.clip(clear_cm - toe_y, 0.0, None), 0.0)
    if not need.any():
        return need
    wide = _max_filter(need, 2)
    kernel = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    smooth = np.convolve(np.pad(wide, 2, mode="edge"), kernel, mode="valid")
    return np.maximum(smooth, need)


_D3 = np.array([-1.0, 3.0, -3.0, 1.0])


class _Smoother:
    """:func:`smooth_path` for one set of free frames, factored once: calling it with a path
    solves for that path's free frames (the held frames' values enter the right-hand side),
    so a caller easing several paths over the same frames pays for one factorisation.

    The normal equations ``(I + lam AᵀA) x = path_free − lam Aᵀ h`` (A: the third-difference
    windows touching a free frame, over the free frames; h: the held frames' part of each
    window) are banded in the free frames' order (a window spans 4 frames), and split into
    blocks that no window joins. Blocks of similar length are padded to one length and
    factored together (a banded Cholesky vectorised over the blocks), so the Python loop
    runs over a block's length, not over every frame."""

    def __init__(self, free, lam: float):
        free = np.asarray(free, dtype=bool)
        F = len(free)
        self.lam = float(lam)
        self.unk = np.flatnonzero(free)
        starts = np.arange(max(0, F - 3))
        cols = starts[:, None] + np.arange(4)[None, :]       # (W, 4) frames of each window
        inside = free[cols] if len(cols) else np.zeros((0, 4), dtype=bool)
        keep = inside.any(axis=1)
        self.cols, self.inside = cols[keep], inside[keep]
        pos = np.full(F, -1)
        pos[self.unk] = np.arange(len(self.unk))
        n = len(self.unk)
        band = np.zeros((4, n))
        band[0] = 1.0
        for c1 in range(4):
            for c2 in range(c1 + 1):
                ok = self.inside[:, c1] & self.inside[:, c2]
                r, c = pos[self.cols[ok, c1]], pos[self.cols[ok, c2]]
                np.add.at(band, (r - c, c), self.lam * _D3[c1] * _D3[c2])
        self.pos = pos
        # blocks: free frames more than 3 frames apart share no window
        cut = np.flatnonzero(np.diff(self.unk) > 3) + 1
        offs = np.r_[0, cut] if n else np.zeros(0, dtype=int)
        lens = np.diff(np.r_[offs, n]) if n else np.zeros(0, dtype=int)
        self.buckets = []
        size = np.maximum(8, 2 ** np.ceil(np.log2(np.maximum(lens, 1)))).astype(int)
        for m in np.unique(size):
            ks = np.flatnonzero(size == m)
            j = np.arange(m)
            idx = offs[ks][:, None] + j[None, :]
            valid = j[None, :] < lens[ks][:, None]
            B = np.zeros((4, len(ks), m))
            B[0] = 1.0                                         # padding: the identity
            B[:, valid] = band[:, idx[valid]]
            self.buckets.append((idx, valid, self._factor(B)))

    @staticmethod
    def _factor(B):
        """Banded Cholesky (half-bandwidth 3) of the (4, K, m) lower bands of K systems."""
        L = np.zeros_like(B)
        m = B.shape[2]
        for j in range(m):
            s = B[0, :, j].copy()
            for k in range(1, min(4, j + 1)):
                s -= L[k, :, j - k] ** 2
            d = np.sqrt(s)
            L[0, :, j] = d
            for i in range(1, min(4, m - j)):
                v = B[i, :, j].copy()
                for k in range(1, 4 - i):
                    if j - k < 0:
                        break
                    v -= L[i + k, :, j - k] * L[k, :, j - k]
                L[i, :, j] = v / d
        return L

    def __call__(self, path):
        out = np.array(path, dtype=np.float64)
        if not len(self.unk):
            return out
        held = np.where(self.inside[..., None], 0.0, _D3[None, :, None] * out[self.cols]).sum(1)
        rhs = out[self.unk].copy()
        for c in range(4):
            ok = self.inside[:, c]
            np.add.at(rhs, self.pos[self.cols[ok, c]], -self.lam * _D3[c] * held[ok])
        x = np.empty_like(rhs)
        for idx, valid, L in self.buckets:
            m = L.shape[2]
            y = np.zeros((L.shape[1], m, rhs.shape[1]))
            y[valid] = rhs[idx[valid]]
            for j in range(m):                                 # L y = rhs
                for k in range(1, min(4, j + 1)):
                    y[:, j] -= L[k, :, j - k, None] * y[:, j - k]
                y[:, j] /= L[0, :, j, None]
            for j in range(m - 1, -1, -1):                     # Lᵀ x = y
                for k in range(1, min(4, m - j)):
                    y[:, j] -= L[k, :, j, None] * y[:, j + k]
                y[:, j] /= L[0, :, j, None]
            x[idx[valid]] = y[valid]
        out[self.unk] = x
        return out


def smooth_path(path, fixed, free, lam: float = 1.0):
    """``path`` (F, C) with its ``free`` frames (F,) bool replaced by the path that minimises
    ``Σ_free |p − path|² + lam · Σ |Δ³p|²`` (Δ³: the third difference over frames, every
    window touching a free frame), the other frames held as they are (``fixed`` frames are
    never free). ``lam`` 0 returns a copy. (:class:`_Smoother` solves it.)"""
    out = np.array(path, dtype=np.float64)
    free = np.asarray(free, dtype=bool) & ~np.asarray(fixed, dtype=bool)
    if lam <= 0 or len(out) < 4 or not free.any():
        return out
    return _Smoother(free, lam)(out)


def _soft_reach(D, D0, length, soft_cm):
    """Hip-to-ankle distances ``D`` wanted, the leg's own ``D0``: reaching further than
    ``D0`` follows ``D`` through a soft limit over the leg's last ``soft_cm`` (it nears the
    full ``length`` exponentially, so the knee straightens gradually instead of snapping),
    measured from ``D0`` so an uncorrected frame is unchanged; drawing the foot up (``D`` <
    ``D0``, out of the floor) goes all the way."""
    top = length - soft_cm

    def soft(v):
        return np.where(v > top, top + soft_cm * (1.0 - np.exp(-(v - top) / soft_cm)), v)
    return np.where(D > D0, D0 + soft(D) - soft(D0), D)


def _ease_knee(K, K2, T2, H, l1, l2, uvec, held, toe, lam):
    """The knee's IK correction ``K2 - K`` made the least-jerk one (:func:`smooth_path`,
    weight ``lam``) outside the ``held`` frames, the shin pointing at the ankle targets
    ``T2``. Where the eased foot ends more than :data:`KNEE_DROP_CM` lower than its target,
    the correction there is pushed further and eased again (up to :data:`KNEE_ROUNDS`
    rounds); frames still short where the foot would come within :data:`KNEE_LOW_CM` of its
    contact height while the toe (``toe``: the toe positions wanted, (F, 3)) moves more than
    :data:`KNEE_SKIM_CM` per frame are held at the plain IK, and the rest eased again around
    them. Returns ``(knees, ankles, largest shortfall left (cm), frames held)``."""
    kept = np.zeros(len(K), dtype=bool)
    want = K2 - K
    for _ in range(2):
        free = ~held & ~kept
        c = want.copy()
        ease = _Smoother(free, lam)
        for _ in range(KNEE_ROUNDS):
            eased = K + ease(c)
            Ke = H + l1[:, None] * _normalize(eased - H, uvec)
            Te = Ke + l2[:, None] * _normalize(T2 - Ke, uvec)
            short = free & (Te[:, 1] < T2[:, 1] - KNEE_DROP_CM)
            if not short.any():
                break
            c[short] += want[short] - (eased[short] - K[short])
        drop = np.where(free, T2[:, 1] - Te[:, 1], 0.0)
        near = (drop > KNEE_DROP_CM) & (toe[:, 1] - drop < TOE_CONTACT_CM + KNEE_LOW_CM) \
            & (_toe_speed(toe) > KNEE_SKIM_CM)
        if not near.any():
            break
        kept |= near
    Ke[kept], Te[kept] = K2[kept], T2[kept]
    drop[kept] = 0.0
    return Ke, Te, float(drop.max(initial=0.0)), int(kept.sum())


def lock_feet(local_quats, root_translation, skeleton: CanonicalSkeleton = SKELETON, *,
              contacts=None, height_cm: float = 6.0, speed_cm: float = 6.0, blend: int = 4,
              clear_cm: float = 6.0, root: bool = True, ground: bool = True,
              channel_gate_cm: float = 4.0, ground_gate_cm: float = 15.0,
              fast_clear_cm: float = 10.0, swing_speed_cm: float = 5.0,
              smooth: float = 1.0, soft_cm: float = 2.0, knee_smooth: float = 1.0, anchors=None,
              return_info: bool = False):
    """Planted feet on the floor and held still (see the module docstring): contacts from
    ``contacts`` (the model's (F, 4) foot-contact channels, optional) and the foot heights,
    :func:`ground_root` (``root and ground``; contacts gated at ``ground_gate_cm`` of
    clearance so a floating body is found), :func:`correct_root` (``root``), then two-bone IK
    pinning each contact run (toe at its median ground position, clearance 0 when
    ``ground``), the ground-plane path eased into and out of each plant (:func:`smooth_path`
    with weight ``smooth`` over the frames up to ``blend`` + 4 of a correction; 0: off) and a
    soft reach over the leg's last ``soft_cm`` (0: the hard limit), and the knee's correction
    eased outside the contact runs (:func:`smooth_path` with weight ``knee_smooth``; 0: off).
    ``anchors`` (F,) bool:
    frames whose legs must stay as they are (an animator's keys): a contact run holding one is pinned where the toe is at its first
    anchor frame, and no anchor frame is moved. Returns ``(local_quats, root_translation)``
    (and an info dict)."""
    q = _rot.quat_normalize(np.asarray(local_quats, dtype=np.float64))
    x = np.asarray(root_translation, dtype=np.float64)
    F = q.shape[0]
    names = list(skeleton.names)
    parents = skeleton.parents
    info = {"contact_frames": 0, "max_shift_cm": 0.0, "ground_shift_cm": 0.0,
            "knee_short_cm": 0.0, "knee_held_frames": 0}
    if F < 2:
        return (q, x, info) if return_info else (q, x)
    kw = dict(height_cm=height_cm, speed_cm=speed_cm)
    if root:
        if ground:
            pos = forward_kinematics(skeleton, q, x)
            x0 = x
            x = ground_root(x, contact_mask(pos, contacts, skeleton, channel_gate_cm=ground_gate_cm,
                                            **kw), clearance(pos, skeleton))
            dy = x[:, 1] - x0[:, 1]
            info["ground_shift_cm"] = float(np.abs(dy).max())
            pos[..., 1] += dy[:, None]
            planted = contact_mask(pos, contacts, skeleton, channel_gate_cm=channel_gate_cm, **kw)
        else:
            pos = planted = None
        x = correct_root(q, x, skeleton, height_cm=height_cm, planted=planted, positions=pos)
    pos, glob = forward_kinematics(skeleton, q, x, return_rotations=True)
    planted = contact_mask(pos, contacts, skeleton, channel_gate_cm=channel_gate_cm, **kw)
    clear = clearance(pos, skeleton)
    q = q.copy()
    for i, leg in enumerate(LEGS):
        u, k, a, t = (names.index(n) for n in leg)
        toe = pos[:, t]
        runs = _runs(planted[:, i])
        in_run = planted[:, i]
        held = in_run if anchors is None else in_run | anchors   # frames the easing keeps
        # a swinging toe this close to the ground scrapes it: lift it clear, higher when it
        # moves fast (real feet in swing are above the contact height + 5 cm)
        step = np.linalg.norm(np.diff(toe[:, [0, 2]], axis=0), axis=1)
        fast = np.zeros(F, dtype=bool)
        fast[:-1] |= step > swing_speed_cm
        fast[1:] |= step > swing_speed_cm
        need_cm = np.where(fast, fast_clear_cm, clear_cm)
        lift = _lift(toe[:, 1], ~in_run & (toe[:, 1] < need_cm), need_cm)
        lift[in_run] = 0.0
        if anchors is not None:
            lift[anchors] = 0.0
        d_runs = []
        for s, e in runs:
            at = np.flatnonzero(anchors[s:e]) if anchors is not None else ()
            target = toe[s + at[0], [0, 2]] if len(at) else np.median(toe[s:e][:, [0, 2]], axis=0)
            d = np.zeros((e - s, 3))
            d[:, [0, 2]] = target[None, :] - toe[s:e][:, [0, 2]]
            if ground:
                d[:, 1] = -clear[s:e, i]
            d_runs.append(d)
        d = _offsets(F, runs, d_runs, blend) if runs else np.zeros((F, 3))
        if anchors is not None:
            d[anchors] = 0.0
        # a fade never pushes the foot deeper under the floor than it was
        floor = np.minimum(clear[:, i], 0.0) - clear[:, i]
        d[~in_run, 1] = np.maximum(d[~in_run, 1], floor[~in_run])
        d[:, 1] = np.where(lift > 0, np.maximum(d[:, 1], lift), d[:, 1])
        if smooth > 0 and runs:
            # ease the ground-plane path into and out of the plants: only near a correction
            near = _max_filter(np.abs(d[:, [0, 2]]).max(axis=1) > 1e-9, blend + 4)
            path = smooth_path(toe[:, [0, 2]] + d[:, [0, 2]], held, near, smooth)
            d[:, [0, 2]] = path - toe[:, [0, 2]]
        info["contact_frames"] += int(in_run.sum())
        info["max_shift_cm"] = max(info["max_shift_cm"], float(np.abs(d).max()))
        moved = np.linalg.norm(d, axis=1) > 1e-9
        if not moved.any():
            continue
        H, K, A = pos[:, u], pos[:, k], pos[:, a]
        T = A + d
        l1 = np.linalg.norm(K - H, axis=1)
        l2 = np.linalg.norm(A - K, axis=1)
        HT = T - H
        D = np.linalg.norm(HT, axis=1)
        if soft_cm > 0:
            D = _soft_reach(D, np.linalg.norm(A - H, axis=1), l1 + l2, soft_cm)
        D = np.clip(D, np.abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
        uvec = _normalize(HT, np.array([0.0, -1.0, 0.0]))
        # the knee stays on its side of the hip-target line
        fwd = _rot.quat_rotate(glob[:, parents[u]], np.array([0.0, 0.0, 1.0]))
        p = (K - H) - np.sum((K - H) * uvec, axis=1, keepdims=True) * uvec
        pf = fwd - np.sum(fwd * uvec, axis=1, keepdims=True) * uvec
        p = _normalize(p, _normalize(pf, np.array([0.0, 0.0, 1.0])))
        cos_a = np.clip((l1 ** 2 + D ** 2 - l2 ** 2) / (2 * l1 * D), -1.0, 1.0)
        sin_a = np.sqrt(1.0 - cos_a ** 2)
        K2 = H + l1[:, None] * (cos_a[:, None] * uvec + sin_a[:, None] * p)
        T2 = H + D[:, None] * uvec
        if knee_smooth > 0:
            # ease the knee: bending a nearly straight leg moves the knee fast for a small
            # change of reach (a lift of swinging toes, a plant's approach)
            K2, T2, short_cm, kept = _ease_knee(K, K2, T2, H, l1, l2, uvec, held | ~moved,
                                                toe + d, knee_smooth)
            info["knee_short_cm"] = max(info["knee_short_cm"], short_cm)
            info["knee_held_frames"] += kept
        du = _quat_between(K - H, K2 - H)
        Ru = _rot.quat_mul(du, glob[:, u])
        lower_dir = _rot.quat_rotate(du, A - K)
        dk = _quat_between(lower_dir, T2 - K2)
        Rk = _rot.quat_mul(dk, _rot.quat_mul(du, glob[:, k]))
        Ra = glob[:, a]
        sel = moved
        q[sel, u] = _rot.quat_mul(_rot.quat_inv(glob[sel, parents[u]]), Ru[sel])
        q[sel, k] = _rot.quat_mul(_rot.quat_inv(Ru[sel]), Rk[sel])
        q[sel, a] = _rot.quat_mul(_rot.quat_inv(Rk[sel]), Ra[sel])
    q = _rot.quat_normalize(q)
    return (q, x, info) if return_info else (q, x)
