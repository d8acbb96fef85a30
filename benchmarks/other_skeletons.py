# SPDX-License-Identifier: GPL-3.0-or-later
"""Rewrite Bandai clips as BVH files of other skeleton conventions, for the benchmark.

Each clip becomes two files we write ourselves:
  3ch-XYZ-60fps   root 6 channels, every other joint rotation-only (3 channels), channel order
                  X Y Z, resampled to 60 fps (slerp)
  3ch-YZX-120fps  the same with channel order Y Z X, at 120 fps
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sparse_motion.motion import bvh as bvh_io
from sparse_motion.motion import rotations


def slerp_resample(q, factor):
    """(F, J, 4) unit quaternions at `factor`× the frame rate (F-1)*factor+1 frames."""
    q = q.copy()
    for f in range(1, len(q)):  # continuous signs per joint
        flip = np.sum(q[f] * q[f - 1], axis=-1) < 0
        q[f, flip] *= -1
    n = (len(q) - 1) * factor + 1
    pos = np.arange(n) / factor
    i0 = np.minimum(np.floor(pos).astype(int), len(q) - 2)
    t = (pos - i0)[:, None, None]
    a, b = q[i0], q[i0 + 1]
    dot = np.clip(np.sum(a * b, axis=-1, keepdims=True), -1.0, 1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    small = s < 1e-6
    wa = np.where(small, 1 - t, np.sin((1 - t) * theta) / np.where(small, 1, s))
    wb = np.where(small, t, np.sin(t * theta) / np.where(small, 1, s))
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def linear_resample(x, factor):
    n = (len(x) - 1) * factor + 1
    pos = np.arange(n) / factor
    i0 = np.minimum(np.floor(pos).astype(int), len(x) - 2)
    t = (pos - i0)[:, None]
    return (1 - t) * x[i0] + t * x[i0 + 1]


def convert(src: bvh_io.Bvh, order: str, factor: int) -> bvh_io.Bvh:
    """Rotation-only joints in BVH channel order `order`; joints whose position channels
    move (the Bandai Hips) keep them."""
    quats = slerp_resample(src.local_quaternions(), factor)
    blender_order = rotations.bvh_order_to_blender(order)
    axes = ["XYZ".index(a) for a in order]
    joints, columns = [], []
    for j, joint in enumerate(src.joints):
        rot = [f"{a}rotation" for a in order]
        pos = src.motion[:, src.position_channels(j)] if src.has_position(j) else None
        moves = pos is not None and np.ptp(pos, axis=0).max() > 1e-6
        chans = (["Xposition", "Yposition", "Zposition"] if moves else []) + rot
        joints.append(bvh_io.BvhJoint(joint.name, joint.parent, joint.offset, chans, joint.end_site))
        if moves:
            columns.append(linear_resample(pos, factor))
        euler = np.degrees(rotations.quat_to_euler(quats[:, j], blender_order))
        euler = np.unwrap(np.radians(euler), axis=0)
        columns.append(np.degrees(euler)[:, axes])
    return bvh_io.Bvh(joints, src.frame_time / factor, np.concatenate(columns, axis=1))


def variants(clips, data_dir, tmp: Path):
    for zname, member in clips:
        src = bvh_io.read(zipfile.ZipFile(Path(data_dir) / zname).read(member))
        for order, factor in (("XYZ", 2), ("YZX", 4)):
            label = f"{Path(member).stem}:3ch-{order}-{30 * factor}fps"
            path = tmp / f"{Path(member).stem}_3ch_{order}_{30 * factor}.bvh"
            bvh_io.write(convert(src, order, factor), path)
            yield label, path
