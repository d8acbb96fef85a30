# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion classifiers (content and style) trained on real motion, for the prompt-robustness
yardstick (``training/yardstick.py``, ``training/evaluate.py --yardstick``).

The package (``models/classifiers/``, written by ``training/train_classifiers.py``, kind
``motion-classifier``) holds one small 1-D conv net per *head* (``content.onnx``,
``style.onnx``: normalised 257-d features at 20 fps -> class logits), the feature
normalisation and, in the manifest, each head's classes and how dataset labels map onto them
(``label_map``: e.g. style ``elderly`` -> ``old``: the two datasets name the same style
differently)::

    clf = MotionClassifier()                      # the registry's motion-classifier package
    p = clf.probabilities([f1, f2], "content")    # raw (F, 257) features -> (2, classes)
    clf.classes("content")[p.argmax(1)[0]]
    clf.class_of("style", "elderly")              # 'old'

A motion is classified by windows of ``window`` frames every ``hop`` frames (the last one
ending at the last frame); the class probabilities are the mean of the windows' softmax. A
motion shorter than a window is classified whole (repeating its last frame up to
``min_frames``). Loading goes through the package layer (sha256 of every file, ONNX
signatures, onnxruntime sessions shared per process via ``runtime``).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelPackageError
from .package import ModelPackage, describe_errors, load_package
from .runtime import RuntimeSettings

__all__ = ["KIND", "MotionClassifier", "softmax", "cut_windows"]

KIND = "motion-classifier"
_WHAT = {"manifest.json": "manifest", "stats.npz": "statistics file"}


def softmax(logits, axis: int = -1) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def cut_windows(f: np.ndarray, window: int, hop: int, min_frames: int) -> np.ndarray:
    """``(W, L, D)`` windows of a ``(F, D)`` array: every ``hop`` frames, the last one ending at
    the last frame; a motion of at most ``window`` frames is one window (its last frame
    repeated up to ``min_frames``)."""
    F = f.shape[0]
    if F < min_frames:
        f = np.concatenate([f, np.repeat(f[-1:], min_frames - F, axis=0)])
    if f.shape[0] <= window:
        return f[None]
    starts = list(range(0, F - window + 1, hop))
    if starts[-1] != F - window:
        starts.append(F - window)
    return np.stack([f[s:s + window] for s in starts])


class MotionClassifier:
    """Classify motions with a ``motion-classifier`` package (default: the registry's)."""

    def __init__(self, package: str | os.PathLike | ModelPackage | None = None, *,
                 threads: int = 0, device: str = "AUTO", providers: Sequence[str] | None = None):
        self._package_arg = package
        self.settings = RuntimeSettings(device=device, threads=int(threads))
        self._providers = list(providers) if providers is not None else None
        self._lock = threading.Lock()
        self._package: ModelPackage | None = None
        self._sessions: dict | None = None
        self.mean = self.std = None

    # --- loading ---------------------------------------------------------------------------

    def _resolve(self) -> ModelPackage:
        arg = self._package_arg
        if isinstance(arg, ModelPackage):
            if arg.kind != KIND:
                raise ModelPackageError(f"{arg.label} is a {arg.kind} model, not a {KIND} model")
            return arg
        if arg is None:
            from . import registry

            return registry.get_registry().default(KIND)
        return load_package(Path(arg), kind=KIND)

    @staticmethod
    def _check_manifest(pkg: ModelPackage) -> None:
        m = pkg.manifest
        problems = []
        heads = m.get("heads")
        if not isinstance(heads, dict) or not heads:
            problems.append("heads must map a head name to {file, classes}")
            heads = {}
        for name, h in heads.items():
            if not (isinstance(h, dict) and h.get("file") in pkg.files
                    and isinstance(h.get("classes"), list) and len(h["classes"]) >= 2):
                problems.append(f"heads[{name!r}] must name a listed file and >= 2 classes")
            elif not isinstance(h.get("label_map", {}), dict):
                problems.append(f"heads[{name!r}].label_map must be an object")
        for key in ("window", "hop", "min_frames"):
            if not isinstance(m.get(key), int) or m[key] < 1:
                problems.append(f"{key} must be a positive integer")
        if pkg.stats_file is None:
            problems.append("stats must name the normalisation file")
        if problems:
            raise ModelPackageError(f"motion classifier manifest invalid ({pkg.path}): "
                                    + "; ".join(problems))

    def load(self) -> "MotionClassifier":
        if self._sessions is not None:
            return self
        with self._lock:
            if self._sessions is not None:
                return self
            pkg = self._resolve()
            with describe_errors("motion classifier", pkg.path, _WHAT):
                self._check_manifest(pkg)
                pkg.verify()
                stats = pkg.load_stats()
                sessions = {name: pkg.session(h["file"], self.settings, providers=self._providers)
                            for name, h in pkg.manifest["heads"].items()}
            D = pkg.feature_dim
            mean = np.asarray(stats.get("mean"), dtype=np.float32)
            std = np.asarray(stats.get("std"), dtype=np.float32)
            if mean.shape != (D,) or std.shape != (D,) or not np.all(std > 0):
                raise ModelPackageError(f"motion classifier {pkg.stats_file} must hold mean/std "
                                        f"of shape ({D},) with std > 0 ({pkg.path})")
            self._package, self.mean, self.std = pkg, mean, std
            self._sessions = sessions
        return self

    def release(self) -> None:
        with self._lock:
            if self._package is not None:
                self._package.release()
            self._sessions = None

    # --- properties ------------------------------------------------------------------------

    @property
    def package(self) -> ModelPackage:
        return self.load()._package

    @property
    def manifest(self) -> dict:
        return self.package.manifest

    @property
    def heads(self) -> tuple:
        return tuple(self.manifest["heads"])

    def classes(self, head: str) -> list:
        return list(self._head(head)["classes"])

    def class_of(self, head: str, label: str) -> str | None:
        """The class a dataset label counts as (``label_map``), None when the head lacks it."""
        h = self._head(head)
        c = (h.get("label_map") or {}).get(label, label)
        return c if c in h["classes"] else None

    def _head(self, head: str) -> dict:
        heads = self.manifest["heads"]
        if head not in heads:
            raise ValueError(f"unknown head {head!r}; the package has {', '.join(heads)}")
        return heads[head]

    # --- classifying -----------------------------------------------------------------------

    def windows(self, features) -> np.ndarray:
        """Normalised windows ``(W, L, D)`` of one raw ``(F, D)`` motion."""
        self.load()
        f = np.asarray(features, dtype=np.float32)
        D = self.package.feature_dim
        if f.ndim != 2 or f.shape[1] != D or f.shape[0] < 1:
            raise ValueError(f"a motion must be a (frames >= 1, {D}) feature array, got {f.shape}")
        if not np.all(np.isfinite(f)):
            raise ValueError("motion contains NaN or infinite values")
        m = self.manifest
        return cut_windows((f - self.mean) / self.std, m["window"], m["hop"],
                           m["min_frames"]).astype(np.float32)

    def probabilities(self, motions, head: str) -> np.ndarray:
        """``(N, classes)``: mean softmax over each motion's windows."""
        self.load()
        h = self._head(head)
        sess = self._sessions[head]
        out = np.zeros((len(motions), len(h["classes"])), dtype=np.float64)
        for i, f in enumerate(motions):
            w = self.windows(f)
            logits = sess.run(["logits"], {"features": w})[0]
            out[i] = softmax(logits).mean(0)
        return out

    def predict(self, motions) -> dict:
        """``{head: (N, classes) probabilities}`` for every head."""
        return {h: self.probabilities(motions, h) for h in self.heads}

    def __repr__(self) -> str:
        return f"MotionClassifier({self._package_arg!r})"
