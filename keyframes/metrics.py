# SPDX-License-Identifier: GPL-3.0-or-later
"""Error of a reduced animation, measured where the eye sees it: joint world positions, in cm.

All statistics are taken over every (frame, point) distance: ``max`` is the worst distance of
any point at any frame, ``p95`` the 95th percentile and ``mean`` the mean of those distances.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ErrorStats",
    "distances",
    "joint_errors",
    "stats_from_distances",
    "frame_errors",
    "positions",
]


def _takes_rows(points_fn) -> bool:
    try:
        params = inspect.signature(points_fn).parameters
    except (TypeError, ValueError):
        return False
    return "rows" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def positions(points_fn, values, rows=None) -> np.ndarray:
    """Call the caller's forward kinematics: ``points_fn(values (n, C)) → (n, P, 3)`` cm.

    ``rows`` (n,) are the dense frame indices the rows stand for (a probe row stands for the
    frame it was nudged from). They are passed as ``points_fn(values, rows=rows)`` when the
    function takes a ``rows`` argument, so that it can fill in channels it keeps to itself
    (curves that move the points but are not being reduced). A (n, 3P) result is reshaped.
    """
    values = np.asarray(values, dtype=np.float64)
    if rows is not None and _takes_rows(points_fn):
        p = points_fn(values, rows=np.asarray(rows, dtype=np.intp))
    else:
        p = points_fn(values)
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] % 3 == 0:
        p = p.reshape(len(p), -1, 3)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[0] != len(values):
        raise ValueError(f"points_fn must return (n, P, 3) positions, got {p.shape}")
    return p


@dataclass(frozen=True)
class ErrorStats:
    """Joint position error statistics in cm over all (frame, point) distances."""

    max: float
    p95: float
    mean: float

    def as_dict(self) -> dict:
        return {"max": self.max, "p95": self.p95, "mean": self.mean}

    def __str__(self) -> str:
        return f"max {self.max:.3f} cm, p95 {self.p95:.3f} cm, mean {self.mean:.3f} cm"


def distances(pos_a, pos_b) -> np.ndarray:
    """(T, P) Euclidean distances between two (T, P, 3) position arrays."""
    a = np.asarray(pos_a, dtype=np.float64)
    b = np.asarray(pos_b, dtype=np.float64)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"position arrays must both be (T, P, 3); got {a.shape} and {b.shape}")
    d = a - b
    return np.sqrt(np.einsum("...i,...i->...", d, d))


def stats_from_distances(dist) -> ErrorStats:
    """:class:`ErrorStats` of an array of distances (any shape)."""
    d = np.asarray(dist, dtype=np.float64).reshape(-1)
    if d.size == 0:
        return ErrorStats(0.0, 0.0, 0.0)
    return ErrorStats(float(d.max()), float(np.percentile(d, 95)), float(d.mean()))


def joint_errors(pos_a, pos_b) -> ErrorStats:
    """Error statistics between two (T, P, 3) position arrays (cm)."""
    return stats_from_distances(distances(pos_a, pos_b))


def frame_errors(pos_a, pos_b, reduce: str = "max") -> np.ndarray:
    """Per-frame error (T,): the ``'max'`` or ``'mean'`` over points of the distance."""
    d = distances(pos_a, pos_b)
    if d.ndim == 1:
        return d
    if reduce == "max":
        return d.max(axis=1)
    if reduce == "mean":
        return d.mean(axis=1)
    raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
