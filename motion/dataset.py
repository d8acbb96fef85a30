# SPDX-License-Identifier: GPL-3.0-or-later
"""Training dataset from the Bandai Namco Research Motion zips (read in place), cached as
arrays outside the repository.

:func:`build_dataset` reads every ``dataset-N_{content}_{style}_{id}.bvh`` member of the zips
in a folder, converts it to the canonical skeleton at :data:`~.canonical.FPS`
(:func:`~.canonical.bandai_to_canonical`), computes features
(:func:`~.features.motion_to_features`) and writes to ``out_dir``:

``features.npy``
    float32 ``(total_frames, D)``: all clips concatenated (clip ``i`` is rows
    ``start:start + frames``).
``clips.json``
    per clip: id, dataset, content, style, take, split, start, frames, source_frames and
    :data:`CAPTIONS_PER_CLIP` captions.
``stats.npz``
    ``mean``, ``std`` (floored, use this to normalise), ``std_raw``: over the train split and
    its mirror image (the training augmentation), so the statistics are left/right symmetric.
``meta.json``
    version, fps, feature layout, skeleton, mirror map, split rule, counts, build time,
    source zips, licence. Written last: its presence marks a complete build.

Split (:func:`assign_splits`): by clip, stratified by (dataset, content). Inside a stratum
clips are ordered by ``sha256(SPLIT_SALT + clip_id)``; the first ``round(0.1 n)`` (at least 1
when ``n >= 2``) go to test, the next ``round(0.1 n)`` (at least 1 when ``n >= 3``) to val,
the rest to train. It depends only on the set of ids, never on file order; every content with
two or more clips has test clips, a content with a single clip stays in train.

Mirroring: :class:`MotionDataset` returns a clip mirrored on request (features by
:func:`~.features.mirror_features`, captions by :func:`~.captions.mirror_text`, content by
:func:`~.captions.mirror_label`); nothing mirrored is stored.

Data licence: CC BY-NC 4.0, "Bandai Namco Research Motion Dataset, Bandai Namco Research
Inc." Anything trained on it is for non-commercial use and must credit it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bvh as _bvh
from . import captions as _cap
from . import canonical as _can
from . import features as _feat

__all__ = [
    "DATASET_VERSION",
    "DEFAULT_OUT",
    "SPLITS",
    "SPLIT_SALT",
    "CAPTIONS_PER_CLIP",
    "LICENSE",
    "CREDIT",
    "DatasetError",
    "ClipInfo",
    "parse_clip_id",
    "assign_splits",
    "find_zips",
    "iter_clips",
    "clip_features",
    "normalization_stats",
    "build_dataset",
    "MotionDataset",
    "load_dataset",
]

DATASET_VERSION = 1
DEFAULT_OUT = Path("~/.cache/sparse_motion/dataset-v1")
SPLITS = ("train", "val", "test")
SPLIT_SALT = "sparse-motion-split-v1:"
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
CAPTIONS_PER_CLIP = 8
#: Floor for the std of binary foot-contact dimensions.
CONTACT_STD_FLOOR = 0.1
#: Relative floor for every other dimension: this times its group's mean std (the knee and
#: elbow hinge axes are constant to 1e-4; without a floor normalising would amplify them 1000x).
REL_STD_FLOOR = 0.1
LICENSE = "CC BY-NC 4.0"
CREDIT = "Bandai Namco Research Motion Dataset, Bandai Namco Research Inc."

_CLIP_RE = re.compile(r"^dataset-(\d+)_([a-z][a-z-]*)_([a-z][a-z-]*)_(\d+)$")
_MEMBER_RE = re.compile(r"(?:^|/)(dataset-\d+_[^/]+)\.bvh$")


class DatasetError(ValueError):
    """Bad clip names, missing data or a cache that does not match this code."""


@dataclass(frozen=True)
class ClipInfo:
    clip_id: str
    dataset: int
    content: str
    style: str
    take: str


def parse_clip_id(name: str) -> ClipInfo:
    """``dataset-2_walk-turn-left_elderly_012`` (a path or ``.bvh`` name is fine) -> ClipInfo.

    Raises :class:`DatasetError` for names outside the pattern or unknown labels.
    """
    stem = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    if stem.endswith(".bvh"):
        stem = stem[:-4]
    m = _CLIP_RE.match(stem)
    if not m:
        raise DatasetError(
            f"clip name {name!r} does not read dataset-N_{{content}}_{{style}}_{{id}}")
    ds, content, style, take = int(m.group(1)), m.group(2), m.group(3), m.group(4)
    if ds not in _cap.CONTENT_LABELS:
        raise DatasetError(f"clip {stem!r}: unknown dataset number {ds}")
    if content not in _cap.CONTENT_LABELS[ds]:
        raise DatasetError(f"clip {stem!r}: {content!r} is not a content label of dataset {ds}")
    if style not in _cap.STYLE_LABELS[ds]:
        raise DatasetError(f"clip {stem!r}: {style!r} is not a style label of dataset {ds}")
    return ClipInfo(stem, ds, content, style, take)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def assign_splits(clip_ids, salt: str = SPLIT_SALT, val_fraction: float = VAL_FRACTION,
                  test_fraction: float = TEST_FRACTION) -> dict:
    """``{clip_id: 'train' | 'val' | 'test'}``, by clip, stratified by (dataset, content).

    Deterministic and independent of the order of ``clip_ids`` (see the module docstring).
    """
    ids = [str(c) for c in clip_ids]
    if len(set(ids)) != len(ids):
        raise DatasetError("duplicate clip ids")
    strata = {}
    for cid in ids:
        info = parse_clip_id(cid)
        strata.setdefault((info.dataset, info.content), []).append(cid)
    out = {}
    for key in sorted(strata):
        members = sorted(strata[key], key=lambda c: (hashlib.sha256((salt + c).encode()).digest(),
                                                     c))
        n = len(members)
        n_test = max(1, _round_half_up(test_fraction * n)) if n >= 2 else 0
        n_val = max(1, _round_half_up(val_fraction * n)) if n >= 3 else 0
        for k, cid in enumerate(members):
            out[cid] = "test" if k < n_test else ("val" if k < n_test + n_val else "train")
    return out


def find_zips(data_dir) -> list:
    """The ``*.zip`` files in ``data_dir`` (sorted); raises if there are none."""
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise DatasetError(f"data folder {str(d)!r} does not exist")
    zips = sorted(p for p in d.iterdir() if p.suffix.lower() == ".zip" and p.is_file())
    if not zips:
        raise DatasetError(f"no .zip files in {str(d)!r} (expected the Bandai Namco "
                           "Research Motion dataset zips)")
    return zips


def iter_clips(data_dir, limit: int | None = None):
    """Yield ``(ClipInfo, bvh bytes, zip name)`` for every clip in the zips of ``data_dir``,
    read in place, sorted by clip id. ``limit`` keeps the first clips of each (dataset,
    content) in turn (a small cross-section for quick runs)."""
    index = []
    for zp in find_zips(data_dir):
        with zipfile.ZipFile(zp) as zf:
            for name in zf.namelist():
                m = _MEMBER_RE.search(name)
                if m:
                    index.append((parse_clip_id(m.group(1)), zp, name))
    if not index:
        raise DatasetError(f"no dataset-N_*.bvh members in the zips of {str(data_dir)!r}")
    index.sort(key=lambda t: t[0].clip_id)
    ids = [t[0].clip_id for t in index]
    if len(set(ids)) != len(ids):
        dup = sorted({c for c in ids if ids.count(c) > 1})
        raise DatasetError(f"clips found twice: {dup[:5]}")
    if limit is not None:
        groups = {}
        for t in index:
            groups.setdefault((t[0].dataset, t[0].content), []).append(t)
        picked, k = [], 0
        while len(picked) < limit and any(k < len(g) for g in groups.values()):
            for key in sorted(groups):
                if k < len(groups[key]) and len(picked) < limit:
                    picked.append(groups[key][k])
            k += 1
        index = sorted(picked, key=lambda t: t[0].clip_id)
    open_zips = {}
    try:
        for info, zp, name in index:
            zf = open_zips.get(zp)
            if zf is None:
                zf = open_zips[zp] = zipfile.ZipFile(zp)
            yield info, zf.read(name), zp.name
    finally:
        for zf in open_zips.values():
            zf.close()


def clip_features(bvh_source, fps: float = _can.FPS):
    """BVH (bytes, text, path or :class:`~.bvh.Bvh`) -> ``(features float32 (F, D),
    source_frames)``."""
    b = bvh_source if isinstance(bvh_source, _bvh.Bvh) else _bvh.read(bvh_source)
    q, x = _can.bandai_to_canonical(b, fps)
    return _feat.motion_to_features(q, x, _can.SKELETON, fps).astype(np.float32), b.num_frames


def normalization_stats(features, skeleton=_can.SKELETON, mirror: bool = True) -> dict:
    """Mean / std per feature dimension of ``features`` ``(N, D)`` or a list of such
    arrays (clips; read in chunks, float64 sums) and, with ``mirror``, of their mirror
    image, equally weighted.

    ``std`` floors: foot contacts at :data:`CONTACT_STD_FLOOR`, every other dimension at
    :data:`REL_STD_FLOOR` times the mean std of its group (:func:`~.features.feature_layout`).
    """
    D = _feat.feature_dim(skeleton)
    parts = [features] if isinstance(features, np.ndarray) else list(features)
    for p in parts:
        if not (isinstance(p, np.ndarray) and p.ndim == 2 and p.shape[1] == D):
            raise DatasetError(f"features must be (N, {D}) arrays, got "
                               f"{getattr(p, 'shape', type(p).__name__)}")
    n = sum(len(p) for p in parts)
    if n == 0:
        raise DatasetError("no feature rows to compute statistics from")

    def chunks():
        for p in parts:
            for a in range(0, len(p), 1 << 16):
                yield np.asarray(p[a:a + (1 << 16)], dtype=np.float64)

    mean = sum(c.sum(0) for c in chunks()) / n
    var = sum(((c - mean) ** 2).sum(0) for c in chunks()) / n
    if mirror:
        perm, sign = _feat.feature_mirror_map(skeleton)
        mean_m = mean[perm] * sign
        var_m = var[perm]
        var = 0.5 * (var + var_m) + (0.5 * (mean - mean_m)) ** 2
        mean = 0.5 * (mean + mean_m)
    std_raw = np.sqrt(np.maximum(var, 0.0))
    std = std_raw.copy()
    for name, sl in _feat.feature_layout(skeleton).items():
        if name == "foot_contacts":
            std[sl] = np.maximum(std[sl], CONTACT_STD_FLOOR)
        else:
            std[sl] = np.maximum(std[sl], max(REL_STD_FLOOR * std_raw[sl].mean(), 1e-8))
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "std_raw": std_raw.astype(np.float32)}


def _save_atomic(path: Path, writer):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        writer(fh)
    os.replace(tmp, path)


def build_dataset(data_dir, out_dir=DEFAULT_OUT, fps: float = _can.FPS, limit: int | None = None,
                  captions_per_clip: int = CAPTIONS_PER_CLIP, log=print) -> dict:
    """Build the cached dataset (see the module docstring); returns the summary that is also
    stored in ``meta.json``. ``limit`` builds a cross-section of that many clips."""
    t0 = time.perf_counter()
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    sk = _can.SKELETON
    feats, clips = [], []
    sources = {}
    start = 0
    for k, (info, data, zname) in enumerate(iter_clips(data_dir, limit)):
        try:
            f, src_frames = clip_features(data, fps)
        except (_bvh.BvhError, _can.CanonicalError, _feat.FeatureError) as e:
            raise DatasetError(f"{zname}: {info.clip_id}: {e}") from e
        feats.append(f)
        clips.append({
            "id": info.clip_id, "dataset": info.dataset, "content": info.content,
            "style": info.style, "take": info.take, "start": start, "frames": len(f),
            "source_frames": src_frames,
            "captions": _cap.clip_captions(info.clip_id, info.content, info.style,
                                           captions_per_clip),
        })
        sources[zname] = sources.get(zname, 0) + 1
        start += len(f)
        if log and (k + 1) % 500 == 0:
            log(f"  {k + 1} clips, {start} frames, {time.perf_counter() - t0:.1f} s")
    split = assign_splits([c["id"] for c in clips])
    for c in clips:
        c["split"] = split[c["id"]]
    allf = np.concatenate(feats, axis=0)
    del feats
    train = [allf[c["start"]:c["start"] + c["frames"]] for c in clips if c["split"] == "train"]
    stats = normalization_stats(train or [allf], sk, mirror=True)
    _save_atomic(out / "features.npy", lambda fh: np.save(fh, allf))
    _save_atomic(out / "stats.npz", lambda fh: np.savez(fh, **stats))
    _save_atomic(out / "clips.json", lambda fh: fh.write(
        json.dumps({"version": DATASET_VERSION, "clips": clips}, indent=1).encode()))

    counts = {s: sum(c["split"] == s for c in clips) for s in SPLITS}
    frames = {s: int(sum(c["frames"] for c in clips if c["split"] == s)) for s in SPLITS}
    contents_in = {s: sorted({f"{c['dataset']}:{c['content']}" for c in clips if c["split"] == s})
                   for s in SPLITS}
    perm, sign = _feat.feature_mirror_map(sk)
    lay = _feat.feature_layout(sk)
    meta = {
        "version": DATASET_VERSION,
        "fps": float(fps),
        "source_fps": _can.SOURCE_FPS,
        "units": "centimetres, Y up; velocities per frame",
        "feature_dim": int(allf.shape[1]),
        "layout": {n: [s.start, s.stop] for n, s in lay.items()},
        "total_frames": int(allf.shape[0]),
        "num_clips": len(clips),
        "split_counts": counts,
        "split_frames": frames,
        "split_contents": contents_in,
        "split_rule": (f"per (dataset, content): order by sha256({SPLIT_SALT!r} + clip_id); "
                       f"first round({TEST_FRACTION} n) (>= 1 if n >= 2) test, next "
                       f"round({VAL_FRACTION} n) (>= 1 if n >= 3) val, rest train"),
        "stats": {"over": "train split + its mirror image (all clips if no train clip)",
                  "contact_std_floor":
                  CONTACT_STD_FLOOR, "relative_std_floor": REL_STD_FLOOR},
        "skeleton": {
            "names": list(sk.names), "parents": sk.parents.tolist(),
            "offsets": sk.offsets.tolist(), "mirror_index": sk.mirror_index.tolist(),
            "mirror_signs": sk.mirror_signs.tolist(),
            "foot_joints": [sk.names[j] for j in sk.foot_joints],
            "contact_heights": sk.contact_heights.tolist(), "contact_speed": sk.contact_speed,
        },
        "mirror_map": {"perm": perm.tolist(), "sign": sign.tolist()},
        "captions_per_clip": int(captions_per_clip),
        "sources": sources,
        "limit": limit,
        "license": LICENSE,
        "credit": CREDIT,
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    _save_atomic(out / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=1).encode()))
    if log:
        log(f"built {len(clips)} clips, {allf.shape[0]} frames x {allf.shape[1]} features in "
            f"{meta['build_seconds']} s -> {out}")
    return meta


class MotionDataset:
    """A built dataset (``features.npy`` memory-mapped).

    ``features(i, mirrored, normalized)``, ``captions(i, mirrored)``, ``content(i, mirrored)``
    give clip ``i`` as stored or left/right mirrored; ``sample(i, rng)`` draws a caption and
    mirrors with probability ``mirror_prob``.
    """

    def __init__(self, root=DEFAULT_OUT, mmap: bool = True):
        self.root = Path(root).expanduser()
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"no dataset at {str(self.root)!r} (meta.json missing; run "
                               "training/build_dataset.py)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("version") != DATASET_VERSION:
            raise DatasetError(f"dataset version {self.meta.get('version')} != "
                               f"{DATASET_VERSION}; rebuild it")
        self.skeleton = _can.SKELETON
        if (self.meta["skeleton"]["names"] != list(self.skeleton.names)
                or self.meta["feature_dim"] != _feat.feature_dim(self.skeleton)):
            raise DatasetError("dataset skeleton/feature layout differs from this code; rebuild it")
        self.clips = json.loads((self.root / "clips.json").read_text())["clips"]
        self._features = np.load(self.root / "features.npy", mmap_mode="r" if mmap else None)
        if self._features.shape != (self.meta["total_frames"], self.meta["feature_dim"]):
            raise DatasetError(f"features.npy has shape {self._features.shape}, meta.json says "
                               f"({self.meta['total_frames']}, {self.meta['feature_dim']})")
        with np.load(self.root / "stats.npz") as st:
            self.mean = st["mean"]
            self.std = st["std"]
        self.fps = self.meta["fps"]

    def __len__(self) -> int:
        return len(self.clips)

    def indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.array([i for i, c in enumerate(self.clips) if c["split"] == split],
                        dtype=np.int64)

    def clip(self, i: int) -> dict:
        return self.clips[i]

    def features(self, i: int, mirrored: bool = False, normalized: bool = False) -> np.ndarray:
        c = self.clips[i]
        f = np.array(self._features[c["start"]:c["start"] + c["frames"]], dtype=np.float32)
        if mirrored:
            f = _feat.mirror_features(f, self.skeleton).astype(np.float32)
        return self.normalize(f) if normalized else f

    def captions(self, i: int, mirrored: bool = False) -> list:
        caps = self.clips[i]["captions"]
        return [_cap.mirror_text(t) for t in caps] if mirrored else list(caps)

    def content(self, i: int, mirrored: bool = False) -> str:
        c = self.clips[i]["content"]
        return _cap.mirror_label(c) if mirrored else c

    def sample(self, i: int, rng, mirror_prob: float = 0.5, normalized: bool = True) -> dict:
        rng = np.random.default_rng(rng)
        mirrored = bool(rng.random() < mirror_prob)
        caps = self.captions(i, mirrored)
        c = self.clips[i]
        return {"features": self.features(i, mirrored, normalized),
                "caption": caps[int(rng.integers(len(caps)))], "mirrored": mirrored,
                "content": self.content(i, mirrored), "style": c["style"], "clip_id": c["id"]}

    def normalize(self, f) -> np.ndarray:
        return ((np.asarray(f, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def denormalize(self, f) -> np.ndarray:
        return (np.asarray(f, dtype=np.float32) * self.std + self.mean).astype(np.float32)


def load_dataset(root=DEFAULT_OUT, mmap: bool = True) -> MotionDataset:
    return MotionDataset(root, mmap)
