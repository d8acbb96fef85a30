# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH (Biovision Hierarchy) reader and writer, numpy only.

* :func:`read` accepts a path, ``str`` text, ``bytes`` or a file object and returns a
  :class:`Bvh`. Any malformed input raises :class:`BvhError` (a ``ValueError``) whose
  message names the line and what was expected; nothing else escapes.
* :func:`write` / :func:`dumps` produce a file that :func:`read` turns back into exactly
  the same numbers (shortest round-trip decimal representations by default).

Supported: any hierarchy (several ``ROOT`` s too), ``End Site``, 0-6 channels per joint in
any order (each of ``X/Y/Zposition`` and ``X/Y/Zrotation`` at most once, names matched
case-insensitively), tabs/spaces, LF/CRLF/CR line ends, scientific notation, blank lines.
Rejected: NaN/inf anywhere, frame rows with the wrong number of values, a ``Frames:``
count that disagrees with the rows, duplicate joint names, non-positive frame time.

The MOTION block is parsed in bulk with a vectorised decimal parser (exact: it gives the
same doubles as Python's ``float``); tokens it cannot handle exactly fall back to
``float`` one by one.

Units and floor: :func:`resolve_units` / :func:`detect_units` choose the length unit (m,
ASF, inch, cm or mm) from the skeleton's height, :func:`floor_shift` / :func:`shifted_up`
put the clip's lowest foot on the floor (see the section at the end for the rule).

Semantics (see :mod:`.skeleton`): rotation channels are degrees; a joint's rotation is the
product of its rotation channels in the listed order (``Zrotation Xrotation Yrotation`` ->
``Rz @ Rx @ Ry``, Blender order ``'YXZ'``). Position channels, where present, *replace*
the joint's OFFSET as its local translation (missing position axes are 0), which is what
Blender's importer does for every joint, root or not.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field

import numpy as np

from . import rotations as _rot

__all__ = [
    "BvhError",
    "BvhJoint",
    "Bvh",
    "read",
    "loads",
    "write",
    "dumps",
    "CHANNEL_NAMES",
    "UNITS",
    "Units",
    "parse_scale",
    "skeleton_height",
    "detect_units",
    "resolve_units",
    "foot_points",
    "floor_level",
    "floor_shift",
    "shifted_up",
]

CHANNEL_NAMES = ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
_CHANNEL_LOOKUP = {c.lower(): c for c in CHANNEL_NAMES}


class BvhError(ValueError):
    """Malformed BVH input (or a :class:`Bvh` that cannot be written)."""


# =========================================================================== data model


@dataclass
class BvhJoint:
    """One joint. ``parent`` is the index of the parent joint, -1 for a root."""

    name: str
    parent: int
    offset: np.ndarray
    channels: list = field(default_factory=list)
    end_site: np.ndarray | None = None

    def __post_init__(self):
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(3)
        if self.end_site is not None:
            self.end_site = np.asarray(self.end_site, dtype=np.float64).reshape(3)
        self.channels = [_canonical_channel(c) for c in self.channels]
        self.parent = int(self.parent)

    @property
    def is_root(self) -> bool:
        return self.parent < 0


def _canonical_channel(name) -> str:
    c = _CHANNEL_LOOKUP.get(str(name).lower())
    if c is None:
        raise BvhError(f"unknown channel name {name!r}; expected one of {CHANNEL_NAMES}")
    return c


@dataclass
class Bvh:
    """A parsed BVH file.

    ``motion`` is float64 ``(frames, total_channels)``; columns follow the joints in order,
    each joint's columns in the order of ``joint.channels``. Angles are in degrees.
    """

    joints: list
    frame_time: float
    motion: np.ndarray

    def __post_init__(self):
        self.motion = np.asarray(self.motion, dtype=np.float64)
        if self.motion.ndim != 2:
            self.motion = self.motion.reshape(-1, self.num_channels)
        self.frame_time = float(self.frame_time)

    # ----------------------------------------------------------------- structure
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def num_channels(self) -> int:
        return sum(len(j.channels) for j in self.joints)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def names(self) -> list:
        return [j.name for j in self.joints]

    @property
    def parents(self) -> np.ndarray:
        return np.array([j.parent for j in self.joints], dtype=np.int64)

    @property
    def offsets(self) -> np.ndarray:
        return np.array([j.offset for j in self.joints], dtype=np.float64).reshape(-1, 3)

    @property
    def end_sites(self) -> np.ndarray:
        """``(J, 3)`` End Site offsets, NaN rows for joints without one."""
        out = np.full((self.num_joints, 3), np.nan)
        for i, j in enumerate(self.joints):
            if j.end_site is not None:
                out[i] = j.end_site
        return out

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(name)

    def channel_slices(self) -> list:
        """Per joint, the ``slice`` of ``motion`` columns holding its channels."""
        out, start = [], 0
        for j in self.joints:
            out.append(slice(start, start + len(j.channels)))
            start += len(j.channels)
        return out

    def _columns(self, j: int, names) -> np.ndarray:
        sl = self.channel_slices()[j]
        chans = self.joints[j].channels
        return np.array([sl.start + chans.index(n) if n in chans else -1 for n in names],
                        dtype=np.int64)

    def rotation_channels(self, j: int) -> np.ndarray:
        """Motion columns of joint ``j``'s X/Y/Z rotation (-1 where absent)."""
        return self._columns(j, CHANNEL_NAMES[3:])

    def position_channels(self, j: int) -> np.ndarray:
        """Motion columns of joint ``j``'s X/Y/Z position (-1 where absent)."""
        return self._columns(j, CHANNEL_NAMES[:3])

    positions_channels = position_channels

    def has_position(self, j: int) -> bool:
        return any(c.endswith("position") for c in self.joints[j].channels)

    def rotation_order(self, j: int) -> str:
        """BVH order of joint ``j``'s rotation channels as listed, e.g. ``'ZXY'``.

        Axes without a channel (angle 0) are appended in X, Y, Z order; a joint with no
        rotation channels gives ``'XYZ'``.
        """
        axes = [c[0] for c in self.joints[j].channels if c.endswith("rotation")]
        axes += [a for a in "XYZ" if a not in axes]
        return "".join(axes)

    def blender_rotation_order(self, j: int) -> str:
        """Blender rotation_mode equivalent of :meth:`rotation_order` (``'ZXY'`` -> ``'YXZ'``)."""
        return _rot.bvh_order_to_blender(self.rotation_order(j))

    # ----------------------------------------------------------------- motion views
    def local_euler(self, j: int, degrees: bool = True) -> np.ndarray:
        """``(F, 3)`` rotation angles of joint ``j`` indexed by axis (x, y, z); 0 if absent."""
        cols = self.rotation_channels(j)
        out = np.zeros((self.num_frames, 3))
        for a in range(3):
            if cols[a] >= 0:
                out[:, a] = self.motion[:, cols[a]]
        return out if degrees else np.deg2rad(out)

    def local_rotations_matrix(self) -> np.ndarray:
        """``(F, J, 3, 3)`` local rotation matrices (parent-relative)."""
        F, J = self.num_frames, self.num_joints
        out = np.empty((F, J, 3, 3))
        groups = {}
        for j in range(J):
            groups.setdefault(self.blender_rotation_order(j), []).append(j)
        for order, js in groups.items():
            ang = np.stack([self.local_euler(j, degrees=False) for j in js], axis=1)
            out[:, js] = _rot.euler_to_matrix(ang, order)
        return out

    def local_quaternions(self) -> np.ndarray:
        """``(F, J, 4)`` local rotations as (w, x, y, z) quaternions."""
        F, J = self.num_frames, self.num_joints
        out = np.empty((F, J, 4))
        groups = {}
        for j in range(J):
            groups.setdefault(self.blender_rotation_order(j), []).append(j)
        for order, js in groups.items():
            ang = np.stack([self.local_euler(j, degrees=False) for j in js], axis=1)
            out[:, js] = _rot.euler_to_quat(ang, order)
        return out

    local_rotations_quat = local_quaternions

    def local_translations(self) -> np.ndarray:
        """``(F, J, 3)`` local translations: the OFFSET, or the position channels where the
        joint has any (missing axes 0), exactly as Blender's importer treats them."""
        F, J = self.num_frames, self.num_joints
        out = np.empty((F, J, 3))
        out[:] = self.offsets[None]
        for j in range(J):
            cols = self.position_channels(j)
            if np.any(cols >= 0):
                for a in range(3):
                    out[:, j, a] = self.motion[:, cols[a]] if cols[a] >= 0 else 0.0
        return out

    def root_translation(self, root: int = 0) -> np.ndarray:
        """``(F, 3)`` translation of joint ``root`` (position channels, else its OFFSET)."""
        cols = self.position_channels(root)
        out = np.empty((self.num_frames, 3))
        if np.any(cols >= 0):
            for a in range(3):
                out[:, a] = self.motion[:, cols[a]] if cols[a] >= 0 else 0.0
        else:
            out[:] = self.joints[root].offset
        return out

    # ----------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise :class:`BvhError` if the structure is inconsistent or values non-finite."""
        names = set()
        for i, j in enumerate(self.joints):
            if not isinstance(j, BvhJoint):
                raise BvhError(f"joint {i} is not a BvhJoint")
            if not (-1 <= j.parent < i):
                raise BvhError(f"joint {i} ({j.name!r}): parent {j.parent} must be -1 or < {i}")
            _check_name(j.name)
            if j.name in names:
                raise BvhError(f"duplicate joint name {j.name!r}")
            names.add(j.name)
            if len(set(j.channels)) != len(j.channels):
                raise BvhError(f"joint {j.name!r}: repeated channel in {j.channels}")
            if not np.all(np.isfinite(j.offset)):
                raise BvhError(f"joint {j.name!r}: non-finite OFFSET")
            if j.end_site is not None and not np.all(np.isfinite(j.end_site)):
                raise BvhError(f"joint {j.name!r}: non-finite End Site OFFSET")
        if not self.joints:
            raise BvhError("no joints")
        if self.joints[0].parent != -1:
            raise BvhError("joint 0 must be a root")
        if self.motion.ndim != 2 or self.motion.shape[1] != self.num_channels:
            raise BvhError(
                f"motion has shape {self.motion.shape}, expected (frames, {self.num_channels})")
        if not (np.isfinite(self.frame_time) and self.frame_time > 0):
            raise BvhError(f"frame_time must be finite and > 0, got {self.frame_time!r}")
        if not np.all(np.isfinite(self.motion)):
            bad = np.argwhere(~np.isfinite(self.motion))[0]
            raise BvhError(f"non-finite motion value at frame {bad[0]}, channel {bad[1]}")

    def copy(self) -> "Bvh":
        joints = [BvhJoint(j.name, j.parent, j.offset.copy(), list(j.channels),
                           None if j.end_site is None else j.end_site.copy())
                  for j in self.joints]
        return Bvh(joints, self.frame_time, self.motion.copy())


def _check_name(name) -> None:
    if not isinstance(name, str) or not name or name != name.strip(" "):
        raise BvhError(f"invalid joint name {name!r}: must be non-empty without surrounding spaces")
    if any(ch in name for ch in "\r\n\t\x0b\x0c{}") or "  " in name:
        raise BvhError(f"invalid joint name {name!r}: no line breaks, tabs, braces or double spaces")


# =========================================================================== number parsing

_NUM_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_WS = b" \t\n\r\x0b\x0c"
_ALLOWED = _WS + b"0123456789.+-eE"
_CHUNK = 1 << 20

_P10F = 10.0 ** np.arange(23)
_P10U = np.array([10 ** i for i in range(20)], dtype=np.uint64)
try:  # 80-bit x87 long double on Linux x86-64; plain double elsewhere (then unused)
    _LD_OK = np.finfo(np.longdouble).nmant >= 63
except Exception:  # pragma: no cover
    _LD_OK = False
if _LD_OK:
    # exact powers of ten up to 1e27 (5**27 < 2**63): 10**i for i <= 19 converts exactly,
    # larger ones are exact products
    _P10L = np.empty(28, dtype=np.longdouble)
    for _i in range(28):
        _P10L[_i] = (np.longdouble(10 ** min(_i, 19))
                     * np.longdouble(10 ** max(_i - 19, 0)))
_TWO53 = np.uint64(1 << 53)
_ASCII0 = np.uint64(0x3030303030303030)
# masks selecting the low k bytes of a little-endian word, k = 0..8
_LOWBYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_M1 = np.uint64(0x00FF00FF00FF00FF)
_M2 = np.uint64(0x0000FFFF0000FFFF)
_M3 = np.uint64(0x00000000FFFFFFFF)
_U8, _U16, _U32 = np.uint64(8), np.uint64(16), np.uint64(32)
_U10, _U100, _U10000 = np.uint64(10), np.uint64(100), np.uint64(10000)


class _BadToken(Exception):
    def __init__(self, index, token):
        self.index = index
        self.token = token


def _parse_token(tok: bytes) -> float:
    """Strict single-token parse (the grammar the fast path accepts); None if invalid."""
    if _NUM_RE.fullmatch(tok) is None:
        return None
    return float(tok)


def _swar8(x):
    """8 ASCII digits per uint64 (first digit in the lowest byte) -> their integer value."""
    x = x - _ASCII0
    x = (x * _U10 + (x >> _U8)) & _M1
    x = (x * _U100 + (x >> _U16)) & _M2
    return (x * _U10000 + (x >> _U32)) & _M3


def _words(padded, pos):
    """uint64 little-endian words starting at the byte offsets ``pos`` of ``padded``."""
    view = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, offset=0,
                      strides=(1,))
    return view[pos]


def _scale(m, k):
    """Exact ``m * 10**-k`` for uint64 ``m`` and int ``k``; returns (values, ok mask)."""
    vals = np.empty(len(m))
    ok = (m < _TWO53) & (k <= 22) & (k >= -22)
    if ok.all():
        mf = m.astype(np.float64)
        pos = k >= 0
        if pos.all():
            return mf / _P10F[k], ok
        kk = np.abs(k)
        return np.where(pos, mf / _P10F[kk], mf * _P10F[kk]), ok
    i = np.flatnonzero(ok)
    mf = m[i].astype(np.float64)
    kk = k[i]
    vals[i] = np.where(kk >= 0, mf / _P10F[np.abs(kk)], mf * _P10F[np.abs(kk)])
    if _LD_OK:
        j = np.flatnonzero(~ok & (k <= 27) & (k >= -27))
        if len(j):
            ml = m[j].astype(np.longdouble)
            kj = k[j]
            r = np.where(kj >= 0, ml / _P10L[np.abs(kj)], ml * _P10L[np.abs(kj)])
            f = r.astype(np.float64)
            d = np.abs(r - f.astype(np.longdouble))
            af = np.abs(f)
            up = (np.nextafter(af, np.inf) - af).astype(np.longdouble) / 2
            down = (af - np.nextafter(af, 0.0)).astype(np.longdouble) / 2
            good = (d != up) & (d != down) & np.isfinite(f)
            vals[j[good]] = f[good]
            ok[j[good]] = True
    return vals, ok


def _parse_fast(c: np.ndarray, st, en):
    """The common case: every token is ``[-]d{1,7}.d{0,8}`` (no exponent, no '+').

    Returns the values, or None if any token is outside that shape.
    """
    n = len(st)
    dots = np.flatnonzero(c == 46)
    if len(dots) != n or np.count_nonzero(c == 43) or np.count_nonzero((c | 32) == 101):
        return None
    first = c[st]
    neg = first == 45
    if np.count_nonzero(c == 45) != np.count_nonzero(neg):
        return None
    nint = dots - st
    nint -= neg
    nfrac = en - dots
    nfrac -= 1
    if n == 0 or nint.min() < 1 or nint.max() > 7 or nfrac.min() < 0 or nfrac.max() > 8:
        return None  # (a dot outside its token also lands here)
    L = len(c)
    padded = np.empty(L + 32, dtype=np.uint8)
    padded[:8] = 48
    padded[8:8 + L] = c
    padded[8 + L:] = 48
    dots += 8
    low = _LOWBYTES[8 - nint]
    x = _words(padded, dots - 8)
    x &= ~low
    x |= _ASCII0 & low
    hi = ~_LOWBYTES[nfrac]
    f = _words(padded, dots + 1)
    f &= ~hi
    f |= _ASCII0 & hi
    m = _swar8(x) * _P10U[8] + _swar8(f)  # < 10**15 < 2**53: exact as float64
    v = m.astype(np.float64)
    v /= 1e8
    np.negative(v, out=v, where=neg)
    return v


def _tokenize(c: np.ndarray):
    """Token ``(starts, ends)`` of ``c`` and the index of the first token after each newline."""
    L = len(c)
    ws = c <= 32
    edge = np.empty(L + 1, dtype=bool)
    edge[0] = not ws[0]
    np.not_equal(ws[1:], ws[:-1], out=edge[1:L])
    edge[L] = not ws[-1]
    b = np.flatnonzero(edge)
    st = b[0::2]
    en = b[1::2]
    n = len(st)
    # first token of each line: usually the token right after a b"\n"
    n_nl = np.count_nonzero(c == 10)
    if n and st[0] > 0:
        after_nl = np.flatnonzero(c[st - 1] == 10)
    else:
        after_nl = np.flatnonzero(c[st[1:] - 1] == 10) + 1
    tail = [n] if c[-1] == 10 else []
    if len(after_nl) + len(tail) == n_nl:
        line_first = np.concatenate((after_nl, tail)).astype(np.int64)
    else:  # blank lines / trailing spaces: do it properly
        line_first = np.searchsorted(st, np.flatnonzero(c == 10))
    return st, en, line_first


def _parse_chunk(c: np.ndarray, tok_base: int, maybe_exp: bool = True):
    """Parse the whitespace-separated numbers of ``c`` (uint8, only _ALLOWED bytes).

    ``maybe_exp=False`` promises there is no 'e'/'E' in the chunk. Returns
    ``(values, line_first_tokens)`` where the second lists (chunk-local) indices of the
    first token after each newline. Raises _BadToken (global index) for invalid tokens.
    """
    L = len(c)
    if L == 0:
        return np.empty(0), np.empty(0, np.int64)
    st, en, line_first = _tokenize(c)
    n = len(st)
    if n == 0:
        return np.empty(0), line_first
    v = _parse_fast(c, st, en)
    if v is not None:
        return v, line_first
    return _parse_general(c, st, en, tok_base, maybe_exp), line_first


# per-byte counters for the general path, packed in 16 bits:
# '.' (bits 0-4), 'e'/'E' (5-9), '-' and '+' (10-15); exact for tokens of <= 31 bytes
_COUNT = np.zeros(256, dtype=np.uint16)
_COUNT[ord(".")] = 1
_COUNT[ord("e")] = _COUNT[ord("E")] = 1 << 5
_COUNT[ord("-")] = _COUNT[ord("+")] = 1 << 10


def _parse_general(c, st, en, tok_base, maybe_exp):
    """Any token of the grammar ``[+-]?(d+.?d*|.d+)([eE][+-]?d+)?``; exact.

    Mantissas of up to 8 integer and 16 fraction digits are converted vectorised, the
    rest (and exponents beyond 1e+-9999) with ``float``.
    """
    L = len(c)
    n = len(st)
    ln = en - st
    # how many dots, exponent markers and signs each token has (tokens are separated by
    # whitespace, which counts nothing, so summing from one start to the next is enough)
    cnt = np.add.reduceat(_COUNT[c], st)
    if ln.max() > 31:  # a field could overflow: recount those tokens exactly
        for i in np.flatnonzero(ln > 31):
            tok = bytes(c[st[i]:en[i]])
            cnt[i] = (min(tok.count(b"."), 2) + (min(tok.count(b"e") + tok.count(b"E"), 2) << 5)
                      + (min(tok.count(b"-") + tok.count(b"+"), 3) << 10))
    ndot = cnt & 31
    nexp = (cnt >> 5) & 31
    nsign = cnt >> 10
    bad = (ndot > 1) | (nexp > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _BadToken(tok_base + i, bytes(c[st[i]:en[i]]))
    me = en.copy()  # mantissa end (exclusive)
    hasexp = None
    if maybe_exp and nexp.any():
        hasexp = nexp.astype(bool)
        me[hasexp] = np.flatnonzero((c | 32) == 101)  # one per exponent token, in order
    hasdot = ndot.astype(bool)
    q = me.copy()
    q[hasdot] = np.flatnonzero(c == 46)
    bad = q > me  # dot inside the exponent
    # signs: only at the token start and right after the exponent marker
    first = c[st]
    neg = first == 45
    hassign = neg | (first == 43)
    if nsign.any():
        expected = hassign.astype(np.uint16)
        if hasexp is not None:
            ie = np.flatnonzero(hasexp)
            after = c[np.minimum(me[ie] + 1, L - 1)]
            expected[ie] += ((after == 45) | (after == 43)) & (me[ie] + 1 < en[ie])
        bad |= nsign != expected
    nint = q - st
    nint -= hassign
    nfrac = np.where(hasdot, me - q - 1, 0)
    bad |= (nint + nfrac) <= 0
    # --- exponent values
    expo = None
    if hasexp is not None:
        ie = np.flatnonzero(hasexp)
        es = me[ie] + 1
        inside = es < en[ie]
        e0 = c[np.minimum(es, L - 1)]
        eneg = (e0 == 45) & inside
        es = es + ((e0 == 45) | (e0 == 43)) * inside
        elen = en[ie] - es
        bad[ie[elen <= 0]] = True
        ev = np.zeros(len(ie), dtype=np.int64)
        for t in range(4):
            m = elen > t
            ev[m] = ev[m] * 10 + (c[es[m] + t].astype(np.int64) - 48)
        ev = np.where(eneg, -ev, ev)
        ev[elen > 4] = 100000  # |exponent| >= 10000: float() decides
        expo = np.zeros(n, dtype=np.int64)
        expo[ie] = ev
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _BadToken(tok_base + i, bytes(c[st[i]:en[i]]))

    # --- digits via SWAR on 8-byte words: 8 integer digits and 8 (+8) fraction digits
    padded = np.empty(L + 40, dtype=np.uint8)
    padded[:8] = 48
    padded[8:8 + L] = c
    padded[8 + L:] = 48
    qp = q + 8
    slow = nint > 8
    low = _LOWBYTES[8 - np.minimum(nint, 8)]
    x = _words(padded, qp - 8)
    x &= ~low
    x |= _ASCII0 & low
    hi = ~_LOWBYTES[np.minimum(nfrac, 8)]
    f = _words(padded, qp + 1)
    f &= ~hi
    f |= _ASCII0 & hi
    m = _swar8(x) * _P10U[8] + _swar8(f)
    k = np.full(n, 8, dtype=np.int64)
    long = np.flatnonzero(nfrac > 8)
    if len(long):
        slow[long] |= (nfrac[long] > 16) | (nint[long] > 3)  # keep m < 10**19
        hi = ~_LOWBYTES[np.minimum(nfrac[long] - 8, 8)]
        f = _words(padded, qp[long] + 9)
        f &= ~hi
        f |= _ASCII0 & hi
        m[long] = m[long] * _P10U[8] + _swar8(f)
        k[long] = 16
    if expo is not None:
        k -= expo
    v, ok = _scale(m, k)
    slow |= ~ok
    np.negative(v, out=v, where=neg)
    if slow.any():
        for i in np.flatnonzero(slow):
            tok = bytes(c[st[i]:en[i]])
            val = float(tok)
            if not np.isfinite(val):
                raise _BadToken(tok_base + int(i), tok)
            v[i] = val
    return v


def _parse_numbers(data, start: int = 0, expected: int = 0):
    """All whitespace-separated numbers in ``data[start:]`` and the global index of the
    first token of every line after the first (sorted; may include the total count).

    Raises _BadToken for the first invalid or non-finite token.
    """
    if _has_odd_bytes(data, start):
        # Unusual bytes somewhere: validate token by token (slow, but exact errors).
        return _parse_numbers_slow(data[start:])
    firsts = []
    pos = start
    N = len(data)
    base = 0
    out = np.empty(expected if expected else 0)
    extra = []  # chunks beyond the expected count (the error path then reports it)
    maybe_exp = data.find(b"e", start) >= 0 or data.find(b"E", start) >= 0
    while pos < N:
        end = data.find(b"\n", min(pos + _CHUNK, N))
        end = N if end < 0 else end + 1
        c = np.frombuffer(data, dtype=np.uint8, count=end - pos, offset=pos)
        vals, lf = _parse_chunk(c, base, maybe_exp)
        k = len(vals)
        if not extra and base + k <= len(out):
            out[base:base + k] = vals
        else:
            if not extra:
                extra.append(out[:base])
            extra.append(vals)
        firsts.append(lf + base)
        base += k
        pos = end
    values = np.concatenate(extra) if extra else out[:base]
    lf = np.concatenate(firsts) if firsts else np.empty(0, np.int64)
    return values, lf


def _has_odd_bytes(data: bytes, start: int) -> bool:
    step = 1 << 24
    for i in range(start, len(data), step):
        if data[i:i + step].translate(None, _ALLOWED):
            return True
    return False


def _parse_numbers_slow(data: bytes):
    vals = []
    firsts = []
    for line in data.split(b"\n"):
        firsts.append(len(vals))
        for tok in line.split():
            v = _parse_token(tok)
            if v is None or not np.isfinite(v):
                raise _BadToken(len(vals), tok)
            vals.append(v)
    return np.array(vals, dtype=np.float64), np.array(firsts[1:], dtype=np.int64)


# =========================================================================== reading


_ASCII_WS = re.compile(r"[ \t\x0b\x0c\r]+")  # names may contain any other character


class _Lines:
    """Line cursor over the (newline-normalised) bytes of the header."""

    def __init__(self, data: bytes, encoding: str):
        self.data = data
        self.encoding = encoding
        self.pos = 0
        self.lineno = 0  # number of the line last returned

    def next(self):
        """Next non-blank line as (lineno, text, tokens) or None at end of data."""
        data = self.data
        while self.pos < len(data):
            end = data.find(b"\n", self.pos)
            if end < 0:
                end = len(data)
            raw = data[self.pos:end]
            self.pos = end + 1
            self.lineno += 1
            text = raw.decode(self.encoding, errors="replace")
            toks = [t for t in _ASCII_WS.split(text) if t]
            if toks:
                return self.lineno, text, toks
        return None


class _HierarchyParser:
    def __init__(self, lines: _Lines):
        self.lines = lines
        self.toks = []  # pending tokens of the current line
        self.lineno = 0
        self.text = ""
        self.joints = []

    def _fill(self):
        while not self.toks:
            nxt = self.lines.next()
            if nxt is None:
                return False
            self.lineno, self.text, toks = nxt
            self.toks = list(toks)
        return True

    def peek(self):
        return self.toks[0] if self._fill() else None

    def take(self, what):
        if not self._fill():
            raise BvhError(f"line {self.lines.lineno}: unexpected end of file, expected {what}")
        return self.toks.pop(0)

    def error(self, expected, found=None):
        if found is None:
            found = self.peek()
        found = "end of file" if found is None else repr(found)
        return BvhError(f"line {self.lineno}: expected {expected}, found {found}")

    def expect(self, word, context=""):
        tok = self.peek()
        if tok is None or tok.lower() != word.lower():
            raise self.error(f"'{word}'{context}")
        self.toks.pop(0)

    def number(self, what):
        tok = self.peek()
        if tok is None:
            raise self.error(what)
        try:
            v = _parse_token(tok.encode("ascii"))
        except UnicodeEncodeError:
            v = None
        if v is None:
            try:
                v = float(tok)
            except ValueError:
                v = None
            if v is None or np.isfinite(v):
                raise self.error(what)
        if not np.isfinite(v):
            raise BvhError(f"line {self.lineno}: non-finite value {tok!r} in {what}")
        self.toks.pop(0)
        return v

    def offset(self, owner):
        self.expect("OFFSET", f" in {owner}")
        return np.array([self.number(f"OFFSET {a} value of {owner}") for a in "XYZ"])

    def name_rest_of_line(self, keyword):
        # the name is everything left on the keyword's line (minus a trailing '{')
        toks = self.toks
        self.toks = []
        if toks and toks[-1] == "{":
            toks = toks[:-1]
            self.toks = ["{"]
        elif toks and toks[-1].endswith("{") and len(toks[-1]) > 1:
            toks = toks[:-1] + [toks[-1][:-1]]
            self.toks = ["{"]
        if not toks:
            raise BvhError(f"line {self.lineno}: expected a joint name after {keyword}")
        return " ".join(toks)

    def joint_header(self, keyword, parent):
        """Parse ``<name> { OFFSET .. [CHANNELS ..]`` and append the joint; return its index."""
        kw_line = self.lineno
        name = self.name_rest_of_line(keyword)
        if any(j.name == name for j in self.joints):
            raise BvhError(f"line {kw_line}: duplicate joint name {name!r}")
        self.expect("{", f" after {keyword} {name}")
        offset = self.offset(f"{keyword} {name}")
        channels = []
        if (self.peek() or "").lower() == "channels":
            self.toks.pop(0)
            tok = self.peek()
            if tok is None or not tok.isdigit() or not tok.isascii() or len(tok) > 3:
                raise self.error(f"channel count (0-6) after CHANNELS in {name}")
            count = int(self.toks.pop(0))
            if count > 6:
                raise BvhError(f"line {self.lineno}: {name} has {count} channels, at most 6 allowed")
            for _ in range(count):
                tok = self.peek()
                ch = _CHANNEL_LOOKUP.get(tok.lower()) if tok is not None else None
                if ch is None:
                    raise self.error(
                        f"a channel name (one of {', '.join(CHANNEL_NAMES)}) in {name} "
                        f"({count} declared)")
                if ch in channels:
                    raise BvhError(f"line {self.lineno}: channel {ch} repeated in {name}")
                channels.append(ch)
                self.toks.pop(0)
        self.joints.append(BvhJoint(name, parent, offset, channels, None))
        return len(self.joints) - 1

    def joint(self, keyword, parent):
        """Parse a whole joint subtree (iteratively: deep hierarchies are fine)."""
        stack = [self.joint_header(keyword, parent)]
        while stack:
            index = stack[-1]
            jt = self.joints[index]
            tok = self.peek()
            low = None if tok is None else tok.lower()
            if low == "}":
                self.toks.pop(0)
                stack.pop()
            elif low == "joint":
                self.toks.pop(0)
                stack.append(self.joint_header("JOINT", index))
            elif low == "end":
                self.toks.pop(0)
                if (self.peek() or "").lower() != "site":
                    raise self.error("'Site' after 'End'")
                self.toks.pop(0)
                if jt.end_site is not None:
                    raise BvhError(f"line {self.lineno}: second End Site in {jt.name}")
                # an optional name may follow on the same line; ignore it
                rest = self.toks
                self.toks = ["{"] if rest and rest[-1] == "{" else []
                self.expect("{", f" after End Site in {jt.name}")
                jt.end_site = self.offset(f"End Site of {jt.name}")
                self.expect("}", f" closing End Site of {jt.name}")
            else:
                raise self.error(f"'JOINT', 'End Site' or '}}' in {jt.name}")

    def parse(self):
        tok = self.peek()
        if tok is None:
            raise BvhError("empty file: expected 'HIERARCHY'")
        self.expect("HIERARCHY")
        self.expect("ROOT")
        self.joint("ROOT", -1)
        while (self.peek() or "").lower() == "root":
            self.toks.pop(0)
            self.joint("ROOT", -1)
        tok = self.peek()
        if tok is None or tok.lower() != "motion":
            raise self.error("'MOTION' (or another 'ROOT') after the hierarchy")
        self.toks.pop(0)
        if self.toks:
            raise self.error("end of line after 'MOTION'", self.toks[0])
        return self.joints


_FRAMES_RE = re.compile(r"\s*frames\s*:\s*(\S*)\s*", re.I)
_FTIME_RE = re.compile(r"\s*frame\s+time\s*:\s*(\S*)\s*", re.I)


def _read_header(data: bytes):
    """Parse up to and including 'Frame Time:'; return (joints, frames, frame_time, pos, lineno)."""
    try:
        data[:65536].split(b"MOTION")[0].decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "latin-1"
    lines = _Lines(data, encoding)
    hp = _HierarchyParser(lines)
    joints = hp.parse()
    nxt = lines.next()
    if nxt is None:
        raise BvhError(f"line {lines.lineno}: unexpected end of file, expected 'Frames: <count>'")
    ln, text, _ = nxt
    m = _FRAMES_RE.fullmatch(text)
    if m is None:
        raise BvhError(f"line {ln}: expected 'Frames: <count>', found {text.strip()!r}")
    if not (m.group(1).isascii() and m.group(1).isdigit()):
        raise BvhError(f"line {ln}: expected a non-negative integer frame count, found {m.group(1)!r}")
    if len(m.group(1).lstrip("0")) > 10:
        raise BvhError(f"line {ln}: implausible frame count {m.group(1)!r}")
    frames = int(m.group(1))
    nxt = lines.next()
    if nxt is None:
        raise BvhError(f"line {lines.lineno}: unexpected end of file, expected 'Frame Time: <seconds>'")
    ln, text, _ = nxt
    m = _FTIME_RE.fullmatch(text)
    if m is None:
        raise BvhError(f"line {ln}: expected 'Frame Time: <seconds>', found {text.strip()!r}")
    try:
        ft = _parse_token(m.group(1).encode("ascii"))
    except UnicodeEncodeError:
        ft = None
    if ft is None:
        raise BvhError(f"line {ln}: expected a number after 'Frame Time:', found {m.group(1)!r}")
    if not (np.isfinite(ft) and ft > 0):
        raise BvhError(f"line {ln}: frame time must be finite and > 0, found {m.group(1)!r}")
    return joints, frames, ft, lines.pos, lines.lineno


def _diagnose(body: bytes, first_line: int, frames: int, nch: int, bad_token=None):
    """Build a precise BvhError for a MOTION block that failed the bulk checks."""
    row = 0
    lineno = first_line
    for lineno_i, line in enumerate(body.split(b"\n"), start=first_line):
        toks = line.split()
        if not toks:
            continue
        lineno = lineno_i
        for i, tok in enumerate(toks):
            v = _parse_token(tok)
            shown = tok.decode("latin-1")
            if v is None:
                try:
                    v = float(tok)
                except ValueError:
                    v = None
                if v is not None and not np.isfinite(v):
                    return BvhError(f"line {lineno}: non-finite value {shown!r} (value {i + 1} "
                                    f"of frame {row + 1}); NaN/inf are not allowed")
                v = None
                return BvhError(f"line {lineno}: expected a number, found {shown!r} "
                                f"(value {i + 1} of frame {row + 1})")
            if not np.isfinite(v):
                return BvhError(f"line {lineno}: non-finite value {shown!r} "
                                f"(value {i + 1} of frame {row + 1}); NaN/inf are not allowed")
        if row >= frames:
            return BvhError(f"line {lineno}: more frame rows than 'Frames: {frames}' declares")
        if len(toks) != nch:
            return BvhError(f"line {lineno}: expected {nch} values in frame {row + 1}, "
                            f"found {len(toks)}")
        row += 1
    if row != frames:
        return BvhError(f"line {lineno}: 'Frames: {frames}' declared but only {row} frame rows "
                        f"found")
    if bad_token is not None:  # pragma: no cover - defensive
        return BvhError(f"invalid value {bad_token!r} in MOTION")
    return BvhError("malformed MOTION block")  # pragma: no cover - defensive


def _to_bytes(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, os.PathLike):
        with open(source, "rb") as fh:
            return fh.read()
    if isinstance(source, str):
        head = source[:4096]
        if ("\n" in source or "\r" in source or not head.strip()
                or head.lstrip().upper().startswith("HIERARCHY")):
            return source.encode("utf-8", errors="replace")
        with open(source, "rb") as fh:
            return fh.read()
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            return data.encode("utf-8", errors="replace")
        return bytes(data)
    raise TypeError(f"cannot read BVH from {type(source).__name__}")


def read(source) -> Bvh:
    """Read a BVH from a path (str or PathLike), BVH text (str), bytes or a file object.

    A ``str`` containing a line break or starting with ``HIERARCHY`` is taken as text.
    Raises :class:`BvhError` for malformed content (``OSError`` for unreadable paths).
    """
    data = _to_bytes(source)
    try:
        return _read_bytes(data)
    except BvhError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise BvhError(f"cannot parse BVH: {type(exc).__name__}") from None
    except Exception as exc:  # pragma: no cover - defensive: never leak other errors
        raise BvhError(f"cannot parse BVH: {type(exc).__name__}: {exc}") from exc


def loads(text) -> Bvh:
    """Parse BVH text (``str`` or ``bytes``)."""
    if isinstance(text, str):
        text = text.encode("utf-8", errors="replace")
    return read(bytes(text))


def _read_bytes(data: bytes) -> Bvh:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data or data.isspace():
        raise BvhError("empty file: expected 'HIERARCHY'")
    joints, frames, frame_time, pos, lineno = _read_header(data)
    nch = sum(len(j.channels) for j in joints)
    first_line = lineno + 1
    try:
        values, line_first = _parse_numbers(data, pos, min(frames * nch, (len(data) - pos) // 2 + 1))
    except _BadToken as bt:
        raise _diagnose(data[pos:], first_line, frames, nch, bt.token) from None
    if nch == 0:
        if len(values):
            raise _diagnose(data[pos:], first_line, frames, nch)
        motion = np.zeros((frames, 0))
    else:
        if len(values) != frames * nch:
            raise _diagnose(data[pos:], first_line, frames, nch)
        # every non-blank line must hold exactly one frame: the first token of each line
        # must sit at a multiple of nch
        lf = line_first[line_first < len(values)]
        if len(lf) and np.any(lf % nch):
            raise _diagnose(data[pos:], first_line, frames, nch)
        starts = np.unique(np.concatenate(([0], lf))) if frames else lf
        if frames and len(starts) != frames:
            raise _diagnose(data[pos:], first_line, frames, nch)
        motion = values.reshape(frames, nch)
    return Bvh(joints, frame_time, motion)


# =========================================================================== writing


def _fmt(x: float) -> str:
    return repr(float(x))


def _digit_tables():
    def pack(strs):
        return np.frombuffer(b"".join(x.encode("ascii").ljust(4, b"\0")[:4] for x in strs),
                             dtype="<u4").copy()

    full = [f"{v:04d}" for v in range(10000)]
    lead = [f"{v:4d}".replace(" ", "\0") if v else "\0\0\0\0" for v in range(10000)]
    lead0 = [f"{v:4d}".replace(" ", "\0") for v in range(10000)]
    trail = [f"{v:04d}".rstrip("0").ljust(4, "\0") for v in range(10000)]
    trail0 = [x if v else "0\0\0\0" for v, x in enumerate(trail)]
    # 'lead' strings put NULs first; pack keeps byte order = string order
    return tuple(pack(t) for t in (full, lead, lead0, trail, trail0))


_FULL4 = _LEAD4 = _LEAD04 = _TRAIL4 = _TRAIL04 = None


def _format_block(block: np.ndarray) -> bytes:
    """Rows of exact decimals separated by spaces, newline-terminated.

    Values with at most 7 integer and 8 fraction digits are formatted vectorised (the
    reader's fast path maps them back exactly); others use numpy's shortest repr.
    """
    global _FULL4, _LEAD4, _LEAD04, _TRAIL4, _TRAIL04
    r, c = block.shape
    if c == 0:
        return b"\n" * r
    if _FULL4 is None:
        _FULL4, _LEAD4, _LEAD04, _TRAIL4, _TRAIL04 = _digit_tables()
    x = np.ascontiguousarray(block, dtype=np.float64).ravel()
    N = len(x)
    ax = np.abs(x)
    with np.errstate(invalid="ignore", over="ignore"):
        kf = np.rint(ax * 1e8)
        fast = (ax < 1e7) & (kf / 1e8 == ax)
    k = np.where(fast, kf, 0.0).astype(np.uint64)
    ip = k // np.uint64(100000000)
    fp = k - ip * np.uint64(100000000)
    ihi = (ip // np.uint64(10000)).astype(np.intp)
    ilo = (ip % np.uint64(10000)).astype(np.intp)
    fhi = (fp // np.uint64(10000)).astype(np.intp)
    flo = (fp % np.uint64(10000)).astype(np.intp)
    out = np.zeros((N, 8), dtype="<u4")
    out[:, 0] = np.where(np.signbit(x), 45, 0)
    big = ihi > 0
    out[:, 1] = np.where(big, _LEAD4[ihi], 0)
    out[:, 2] = np.where(big, _FULL4[ilo], _LEAD04[ilo])
    out[:, 3] = 46
    tail = flo > 0
    out[:, 4] = np.where(tail, _FULL4[fhi], _TRAIL04[fhi])
    out[:, 5] = np.where(tail, _TRAIL4[flo], 0)
    sep = np.full((r, c), 32, dtype="<u4")
    sep[:, -1] = 10
    out[:, 7] = sep.ravel()
    slow = np.flatnonzero(~fast)
    if len(slow):
        ob = out.view(np.uint8).reshape(N, 32)
        strs = x[slow].astype("S28")
        ob[slow, :28] = strs.view(np.uint8).reshape(len(slow), 28)
    return out.tobytes().translate(None, b"\x00")


def _hierarchy_lines(bvh: Bvh, order):
    """HIERARCHY text lines, depth first; appends the joint visiting order to ``order``."""
    children = [[] for _ in bvh.joints]
    roots = []
    for i, j in enumerate(bvh.joints):
        (roots if j.parent < 0 else children[j.parent]).append(i)
    out = ["HIERARCHY"]
    # iterative DFS: ("open", i, depth) emits the header and schedules children + close
    todo = [("open", r, 0) for r in reversed(roots)]
    while todo:
        what, i, depth = todo.pop()
        j = bvh.joints[i]
        ind = "\t" * depth
        if what == "open":
            order.append(i)
            out.append(f"{ind}{'ROOT' if j.parent < 0 else 'JOINT'} {j.name}")
            out.append(f"{ind}{{")
            out.append(f"{ind}\tOFFSET {' '.join(_fmt(v) for v in j.offset)}")
            out.append(f"{ind}\tCHANNELS {len(j.channels)}" + "".join(" " + c for c in j.channels))
            todo.append(("close", i, depth))
            todo.extend(("open", ch, depth + 1) for ch in reversed(children[i]))
        else:
            if j.end_site is not None:
                out.append(f"{ind}\tEnd Site")
                out.append(f"{ind}\t{{")
                out.append(f"{ind}\t\tOFFSET {' '.join(_fmt(v) for v in j.end_site)}")
                out.append(f"{ind}\t}}")
            out.append(f"{ind}}}")
    return out


def _round(block, precision):
    """Round to ``precision`` decimals; huge values (already integers) stay as they are."""
    p = int(precision)
    if p < 0:
        raise BvhError(f"precision must be >= 0, got {precision!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.round(block, p)
    return np.where(np.abs(block) < 2.0 ** 52, r, block) + 0.0  # +0.0 turns -0.0 into 0.0


def _iter_chunks(bvh: Bvh, precision=None, rows_per_chunk=4096):
    bvh.validate()
    order = []
    lines = _hierarchy_lines(bvh, order)
    motion = bvh.motion
    if order != list(range(bvh.num_joints)):
        # hierarchy is written depth-first; reorder motion columns to match
        sl = bvh.channel_slices()
        cols = np.concatenate([np.arange(sl[i].start, sl[i].stop) for i in order] + [[]])
        motion = motion[:, cols.astype(np.int64)]
    lines += ["MOTION", f"Frames: {bvh.num_frames}", f"Frame Time: {_fmt(bvh.frame_time)}"]
    yield ("\n".join(lines) + "\n").encode("utf-8")
    for r0 in range(0, motion.shape[0], rows_per_chunk):
        block = motion[r0:r0 + rows_per_chunk]
        if precision is not None:
            block = _round(block, precision)
        yield _format_block(block)


def dumps(bvh: Bvh, precision=None) -> str:
    """The BVH text of ``bvh``. ``precision=None`` writes exact (round-trip) values;
    an int rounds motion values to that many decimals (offsets stay exact)."""
    return b"".join(_iter_chunks(bvh, precision)).decode("utf-8")


def write(bvh: Bvh, dest, precision=None) -> None:
    """Write ``bvh`` to a path or a binary/text file object (see :func:`dumps`)."""
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as fh:
            for chunk in _iter_chunks(bvh, precision):
                fh.write(chunk)
        return
    text_mode = isinstance(dest, io.TextIOBase)
    for chunk in _iter_chunks(bvh, precision):
        dest.write(chunk.decode("utf-8") if text_mode else chunk)


# =========================================================================== units and floor
#
# BVH files carry no length unit. A person is about 1.7 m tall, and the units in use are far
# enough apart (m, ASF, inch, cm, mm: factors 17.7, 2.2, 2.5, 10) that the skeleton's height
# tells them apart: :func:`detect_units` picks the unit that makes it closest to 1.7 m (in
# ratio, i.e. on a log scale). The height is the larger of the rest skeleton's vertical
# extent and the median over the frames of the pose's vertical extent (joints and End Sites,
# Y up as BVH defines it), so a rest pose that does not stand (legs up, folded) is outvoted
# by the motion. The thresholds between neighbouring units fall at 7.2 (m | asf), 44.9
# (asf | in), 106.7 (in | cm) and 537 (cm | mm) file units of height.

#: unit key → (label, metres per BVH unit). ASF: CMU's ASF/AMC length unit, 1/0.45 inch.
UNITS = {
    "m": ("metres", 1.0),
    "asf": ("ASF units (1/0.45 in)", 0.0254 / 0.45),
    "in": ("inches", 0.0254),
    "cm": ("centimetres", 0.01),
    "mm": ("millimetres", 0.001),
}
_UNIT_ALIASES = {"inch": "in", "inches": "in", "metres": "m", "meters": "m",
                 "centimetres": "cm", "centimeters": "cm", "millimetres": "mm",
                 "millimeters": "mm"}
HUMAN_HEIGHT_M = 1.7
#: heights (m) a person is taken to have; outside it the detected unit is only a guess
PLAUSIBLE_HEIGHT_M = (1.0, 2.3)
#: a clip whose lowest foot point is this high (cm, from … to) is on the floor already and
#: is left as it is: joints sit above the sole (Bandai Namco's toe joints touch down at
#: 4.2 cm), and a centimetre under the floor is noise
FLOOR_BAND_CM = (-1.0, 6.0)
#: joints whose name contains one of these (case-insensitive) are feet; with their
#: descendants and End Sites they are the points that stand on the floor
_FOOT_RE = re.compile(r"foot|toe|ankle|heel", re.I)


@dataclass
class Units:
    """How BVH lengths become metres: ``scale`` metres per BVH unit.

    ``unit`` is a key of :data:`UNITS`, or ``""`` for a factor given by hand; ``detected``
    is True when it was chosen from the skeleton's height (``height``, in BVH units).
    """

    unit: str
    scale: float
    height: float
    detected: bool

    @property
    def height_m(self) -> float:
        return self.height * self.scale

    @property
    def plausible(self) -> bool:
        lo, hi = PLAUSIBLE_HEIGHT_M
        return lo <= self.height_m <= hi

    def describe(self) -> str:
        """e.g. ``'ASF units (1/0.45 in), detected from a 1.69 m skeleton'``."""
        what = UNITS[self.unit][0] if self.unit else f"scale {self.scale:g} m per unit"
        how = "detected from" if self.detected else "given;"
        return f"{what}, {how} a {self.height_m:.2f} m skeleton"


#: command-line help of a ``--scale`` option parsed by :func:`parse_scale`
SCALE_HELP = ("BVH length unit: auto (from the skeleton's height, the default), m, cm, mm, in, "
              "asf (CMU ASF units, 1/0.45 in), or metres per BVH unit (0.01 for cm)")


def parse_scale(text):
    """``'auto'``, a unit key or alias (``'cm'``, ``'inches'``, ``'asf'``…) or a positive
    number (metres per BVH unit) → ``'auto'``, the unit key, or the float. Raises
    ``ValueError`` with the accepted forms otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        word = str(text).strip().lower()
        if word in ("auto", ""):
            return "auto"
        word = _UNIT_ALIASES.get(word, word)
        if word in UNITS:
            return word
        try:
            value = float(word)
        except ValueError:
            value = None
    if value is None or not (np.isfinite(value) and value > 0):
        raise ValueError(f"Unknown scale {text!r}: give auto, one of {', '.join(UNITS)}, or a "
                         "positive number of metres per BVH unit")
    return value


def _points(bvh: Bvh, positions=None, rotations=None):
    """World positions ``(F, J + E, 3)`` of the joints and End Sites at every frame, and the
    rest pose's ``(J + E, 3)``; the FK is computed when not given."""
    from .skeleton import Skeleton, bvh_forward_kinematics, end_site_positions

    sk = Skeleton.from_bvh(bvh)
    if positions is None or rotations is None:
        positions, rotations = bvh_forward_kinematics(bvh, return_rotations=True)
    ends = end_site_positions(sk, positions, rotations)
    rest = sk.rest_positions()
    js = sk.end_site_joints
    return (np.concatenate([positions, ends], axis=1),
            np.concatenate([rest, rest[js] + sk.end_sites[js]], axis=0))


def skeleton_height(bvh: Bvh, positions=None, rotations=None) -> float:
    """The skeleton's height in BVH units: the larger of the rest pose's vertical (Y) extent
    and the median of the frames' vertical extents, joints and End Sites included.

    ``positions`` / ``rotations``: :func:`~.skeleton.bvh_forward_kinematics` output, if the
    caller has it already."""
    frames, rest = _points(bvh, positions, rotations)
    h = float(np.ptp(rest[:, 1]))
    if len(frames):
        h = max(h, float(np.median(np.ptp(frames[..., 1], axis=1))))
    return h


def detect_units(bvh: Bvh, positions=None, rotations=None) -> Units:
    """The unit of :data:`UNITS` that makes the skeleton closest to :data:`HUMAN_HEIGHT_M`
    tall (by ratio). Raises :class:`BvhError` for a skeleton without height."""
    return resolve_units(bvh, "auto", positions, rotations)


def resolve_units(bvh: Bvh, scale="auto", positions=None, rotations=None) -> Units:
    """:class:`Units` for ``scale``: ``'auto'`` (detect), a unit key/alias, or a positive
    float (metres per BVH unit); see :func:`parse_scale`. Raises ``ValueError`` for a bad
    ``scale`` and :class:`BvhError` when ``'auto'`` meets a skeleton without height."""
    scale = parse_scale("auto" if scale is None else scale)
    height = skeleton_height(bvh, positions, rotations)
    if scale != "auto":
        unit = scale if isinstance(scale, str) else ""
        factor = UNITS[unit][1] if unit else scale
        return Units(unit, factor, height, detected=False)
    size = max(float(np.abs(bvh.offsets).max(initial=0.0)), 1e-300)
    if not (height > 1e-9 * size and height > 0):
        raise BvhError("cannot tell the length unit: the skeleton has no height (every joint "
                       "and End Site at the same height, at rest and in the frames); give the "
                       "unit or scale")
    ratio = {u: abs(np.log(height * s / HUMAN_HEIGHT_M)) for u, (_, s) in UNITS.items()}
    unit = min(ratio, key=ratio.get)
    return Units(unit, UNITS[unit][1], height, detected=True)


def foot_points(bvh: Bvh) -> np.ndarray:
    """Indices into :func:`_points`' ``J + E`` points that stand on the floor: joints named
    like a foot, toe, ankle or heel, their descendants and their End Sites; every point
    when no joint has such a name."""
    J = bvh.num_joints
    feet = np.zeros(J, dtype=bool)
    for j, joint in enumerate(bvh.joints):
        feet[j] = bool(_FOOT_RE.search(joint.name)) or (joint.parent >= 0 and feet[joint.parent])
    if not feet.any():
        feet[:] = True
    ends = np.array([j.end_site is not None for j in bvh.joints], dtype=bool)
    return np.flatnonzero(np.concatenate([feet, feet[ends]]))


def floor_level(bvh: Bvh, positions=None, rotations=None, percentile: float = 5.0) -> float:
    """Height (BVH units, Y) of the floor the clip stands on: the ``percentile`` of the
    per-frame lowest :func:`foot_points` (a low percentile, so a glitch does not count and
    jumps do not lift it). 0 for a clip without frames."""
    frames, _rest = _points(bvh, positions, rotations)
    if not len(frames):
        return 0.0
    lowest = frames[:, foot_points(bvh), 1].min(axis=1)
    return float(np.percentile(lowest, percentile))


def floor_shift(bvh: Bvh, scale: float, positions=None, rotations=None) -> float:
    """How far (BVH units, along Y) to move the clip so its lowest foot point is at 0; 0
    when it is on the floor already (its :func:`floor_level` within :data:`FLOOR_BAND_CM`).
    ``scale``: metres per BVH unit."""
    level = floor_level(bvh, positions, rotations)
    lo, hi = FLOOR_BAND_CM
    if lo <= level * scale * 100.0 <= hi:
        return 0.0
    return -level


def shifted_up(bvh: Bvh, dy: float) -> Bvh:
    """A copy of ``bvh`` moved up by ``dy`` (BVH units, Y): every root's Y position channel,
    or its OFFSET when it has no position channels (a ``Yposition`` channel is added to a
    root that has X/Z position channels only)."""
    out = bvh.copy()
    if dy == 0.0:
        return out
    for j, joint in enumerate(out.joints):
        if not joint.is_root:
            continue
        if not out.has_position(j):
            joint.offset = joint.offset + np.array([0.0, dy, 0.0])
            continue
        col = out.position_channels(j)[1]
        if col < 0:  # position channels without Y: Y is 0; add the channel
            col = out.channel_slices()[j].stop
            joint.channels.append("Yposition")
            out.motion = np.insert(out.motion, col, 0.0, axis=1)
        out.motion[:, col] += dy
    return out
