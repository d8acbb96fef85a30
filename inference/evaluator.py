# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion/text evaluator: embeddings and text-to-motion metrics (numpy + onnxruntime).

The evaluator package (``models/evaluator/``, written by ``training/train_evaluator.py``)
holds two ONNX graphs trained contrastively on the Bandai Namco dataset — a motion encoder
(normalised 257-d features at 20 fps -> 256-d unit vector) and a text projection (the
shipped MiniLM sentence embedding -> 256-d unit vector) — plus the feature normalisation
statistics and the embedding statistics of the dataset splits (FID references)::

    ev = Evaluator()                                  # the shipped package
    m = ev.embed_motion([features_a, features_b])     # raw (F, 257) features -> (2, 256)
    t = ev.embed_text(["a person walks forward", "someone waves both hands"])
    scores = ev.evaluate(motions, captions)           # R-precision, FID, MM-Dist, ...

A text-to-motion model is evaluated through the small :class:`Generator` protocol (see
``training/evaluate.py``); :class:`NoiseGenerator` is the Gaussian-noise baseline.

Loading is lazy (first use, or ``load()``): the package is read with
``package.load_package`` (kind ``evaluator``), every file's sha256 is checked once
(:class:`ModelPackageError` on a mismatch) and the onnxruntime sessions open through
``runtime`` (shared per process; ``device`` and ``threads`` as for the text encoder).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from . import metrics as _met
from .errors import ModelPackageError
from .package import describe_errors, load_package
from .runtime import RuntimeSettings
from .text_encoder import TextEncoder, default_threads

__all__ = ["Evaluator", "Generator", "NoiseGenerator", "default_package_dir"]

DEFAULT_PACKAGE = "evaluator"
DEFAULT_TEXT_ENCODER = "text-minilm-l6"
KIND = "evaluator"
MANIFEST_FILE = "manifest.json"
MOTION_FILE = "motion_encoder.onnx"
TEXT_FILE = "text_projection.onnx"
STATS_FILE = "stats.npz"
REFERENCE_FILE = "reference_stats.npz"
REQUIRED_FILES = (MOTION_FILE, TEXT_FILE, STATS_FILE, REFERENCE_FILE)


def default_package_dir() -> Path:
    """The evaluator package shipped inside the extension."""
    return Path(__file__).resolve().parents[1] / "models" / DEFAULT_PACKAGE


_WHAT = {MOTION_FILE: "motion encoder file", TEXT_FILE: "text projection file",
         STATS_FILE: "statistics file", REFERENCE_FILE: "statistics file",
         MANIFEST_FILE: "manifest"}



@runtime_checkable
class Generator(Protocol):
    """A text-to-motion model as the evaluation sees it."""

    def generate(self, text: str, length_frames: int, seed: int) -> np.ndarray:
        """``(length_frames, 257)`` raw (not normalised) features at 20 fps for ``text``;
        deterministic for a given ``seed``."""
        ...


class Evaluator:
    """Embed motions and captions with the evaluator package and compute metrics.

    ``package_dir``: folder with manifest.json, motion_encoder.onnx, text_projection.onnx,
    stats.npz, reference_stats.npz (default: the shipped ``models/evaluator``).
    ``text_encoder``: a :class:`TextEncoder` or its package folder (default: the package the
    manifest names, next to this one; its model checksum must match the manifest's).
    ``providers`` / ``threads`` / ``device``: onnxruntime settings, as for :class:`TextEncoder`.
    ``refeaturize``: score the motion the extension would show. The redundant 257-d vector
    is decoded as the extension decodes it (root channels + 6D rotations,
    ``features_to_motion``) and encoded again (``motion_to_features``: FK positions,
    velocities and contacts consistent with the rotations) before embedding, and the
    physical metrics use those FK positions. Real data is unchanged by this (to float32
    precision); generated features whose position/velocity channels disagree with their
    rotations are judged by the rotations. ``False`` embeds the features as given.
    """

    def __init__(self, package_dir: str | os.PathLike | None = None, *,
                 text_encoder: TextEncoder | str | os.PathLike | None = None,
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 device: str = "AUTO", refeaturize: bool = True):
        self.package_dir = Path(package_dir) if package_dir is not None else default_package_dir()
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = int(threads) if threads is not None else default_threads()
        self.settings = RuntimeSettings(device=device, threads=self.threads)
        self.refeaturize = bool(refeaturize)
        self._providers = list(providers) if providers is not None else None
        self._text_encoder_arg = text_encoder
        self._text_encoder: TextEncoder | None = None
        self._lock = threading.Lock()
        self._manifest: dict | None = None
        self._package = None
        self._motion = None
        self._text = None
        self.mean = self.std = None
        self._reference: dict | None = None

    # --- loading ---------------------------------------------------------------------------

    def _check_manifest(self, package) -> None:
        """The evaluator's own manifest fields (the package layer checked the rest)."""
        manifest = package.manifest
        problems = []
        for key in ("feature_dim", "embedding_dim", "min_frames"):
            if not isinstance(manifest.get(key), int) or manifest[key] < 1:
                problems.append(f"{key} must be a positive integer")
        if not problems and package.feature_dim != manifest["feature_dim"]:
            problems.append(f"representation.feature_dim {package.feature_dim} differs from "
                            f"feature_dim {manifest['feature_dim']}")
        for name in REQUIRED_FILES:
            if name not in package.files:
                problems.append(f"files[{name!r}] is missing")
        if package.stats_file != STATS_FILE:
            problems.append(f"stats must be {STATS_FILE!r}")
        if problems:
            raise ModelPackageError(f"evaluator manifest invalid ({package.path / MANIFEST_FILE}): "
                                    + "; ".join(problems))

    def load(self) -> "Evaluator":
        """Check the package and open the sessions (once; later calls are no-ops)."""
        if self._motion is not None:
            return self
        with self._lock:
            if self._motion is not None:
                return self
            with describe_errors("evaluator", self.package_dir, _WHAT):
                package = load_package(self.package_dir, kind=KIND)
                self._check_manifest(package)
                manifest = package.manifest
                package.verify(REQUIRED_FILES)
                stats = package.load_stats()
                ref_path = package.verify(REFERENCE_FILE)
            try:
                mean = np.asarray(stats["mean"], dtype=np.float32)
                std = np.asarray(stats["std"], dtype=np.float32)
                with np.load(ref_path, allow_pickle=False) as rf:
                    reference = {k: rf[k].astype(np.float64) for k in rf.files}
            except Exception as exc:
                raise ModelPackageError(f"evaluator statistics unreadable in {self.package_dir}: "
                                        f"{exc}") from exc
            D = manifest["feature_dim"]
            if mean.shape != (D,) or std.shape != (D,) or not np.all(std > 0):
                raise ModelPackageError(f"evaluator {STATS_FILE} must hold mean/std of shape "
                                        f"({D},) with std > 0")
            text_encoder = self._make_text_encoder(manifest)
            with describe_errors("evaluator", self.package_dir, _WHAT):
                motion = package.session(MOTION_FILE, self.settings, providers=self._providers)
                text = package.session(TEXT_FILE, self.settings, providers=self._providers)
            for sess, inp, name in ((motion, "features", MOTION_FILE),
                                    (text, "sentence_embedding", TEXT_FILE)):
                names_in = [i.name for i in sess.get_inputs()]
                names_out = [o.name for o in sess.get_outputs()]
                if names_in != [inp] or "embedding" not in names_out:
                    raise ModelPackageError(
                        f"evaluator model file has the wrong signature: "
                        f"{self.package_dir / name}: inputs {names_in}, outputs {names_out}; "
                        f"expected [{inp!r}] -> 'embedding'")
            self._package, self._manifest, self.mean, self.std = package, manifest, mean, std
            self._reference = reference
            self._text_encoder = text_encoder
            self._text = text
            self._motion = motion
        return self

    def release(self) -> None:
        """Forget the sessions (and drop them from the runtime cache); the next use reloads.
        A text encoder made here is released too (one passed in is left alone)."""
        with self._lock:
            if self._package is not None:
                self._package.release()
            if self._text_encoder is not None and self._text_encoder is not self._text_encoder_arg:
                self._text_encoder.release()
            self._package = self._motion = self._text = None

    def _make_text_encoder(self, manifest: dict) -> TextEncoder:
        req = manifest.get("text_encoder") or {}
        arg = self._text_encoder_arg
        if isinstance(arg, TextEncoder):
            enc = arg
        else:
            if arg is None:
                arg = self.package_dir.resolve().parent / req.get("name", DEFAULT_TEXT_ENCODER)
            enc = TextEncoder(arg, providers=self._providers, threads=self.threads,
                              device=self.settings.device)
        enc.check_requirement(req, f"the evaluator in {self.package_dir}")
        return enc

    # --- properties ------------------------------------------------------------------------

    @property
    def manifest(self) -> dict:
        self.load()
        return self._manifest

    @property
    def embedding_dim(self) -> int:
        return int(self.manifest["embedding_dim"])

    @property
    def feature_dim(self) -> int:
        return int(self.manifest["feature_dim"])

    @property
    def fps(self) -> int:
        return int(self.manifest["fps"])

    @property
    def min_frames(self) -> int:
        return int(self.manifest["min_frames"])

    @property
    def text_encoder(self) -> TextEncoder:
        self.load()
        return self._text_encoder

    def reference(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` of the motion embeddings of a dataset split (``train``/``val``/
        ``test``), shipped in the package for FID."""
        self.load()
        if f"{split}_mu" not in self._reference:
            known = sorted({k.rsplit("_", 1)[0] for k in self._reference})
            raise ValueError(f"no reference statistics for {split!r}; known: {known}")
        return self._reference[f"{split}_mu"], self._reference[f"{split}_sigma"]

    def normalize(self, features) -> np.ndarray:
        self.load()
        return ((np.asarray(features, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def denormalize(self, features) -> np.ndarray:
        self.load()
        return (np.asarray(features, dtype=np.float32) * self.std + self.mean).astype(np.float32)

    # --- embedding -------------------------------------------------------------------------

    def _check_motion(self, i, m) -> np.ndarray:
        a = np.asarray(m, dtype=np.float32)
        D = self.feature_dim
        if a.ndim != 2 or a.shape[1] != D or a.shape[0] < 1:
            raise ValueError(f"motion {i} must be a (frames >= 1, {D}) feature array, got shape "
                             f"{a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"motion {i} contains NaN or infinite values")
        return a

    def prepare(self, motion, return_positions: bool = False):
        """The features that are embedded for raw ``(F, 257)`` features (see
        ``refeaturize``), float32; ``return_positions`` also gives ``(F, 21, 3)`` world joint
        positions (cm, floor at y = 0) for the physical metrics."""
        from ..motion import features as _feat

        a = self._check_motion(0, motion)
        if self.refeaturize:
            q, x = _feat.features_to_motion(a.astype(np.float64))
            f, pos = _feat.motion_to_features(q, x, fps=float(self.fps), return_positions=True)
            f = f.astype(np.float32)
        else:
            f = a
            pos = _feat.features_to_positions(a.astype(np.float64)) if return_positions else None
        return (f, pos) if return_positions else f

    def _encoder_input(self, i, m) -> np.ndarray:
        a = self._check_motion(i, m)
        if self.refeaturize:
            a = self.prepare(a)
        if a.shape[0] < self.min_frames:   # too short for the encoder: repeat the last frame
            a = np.concatenate([a, np.repeat(a[-1:], self.min_frames - a.shape[0], axis=0)])
        return a

    def embed_motion(self, motions, batch_size: int = 64) -> np.ndarray:
        """Embed raw ``(F, 257)`` feature arrays (20 fps; each clip whole): ``(N, 256)``
        float32 unit vectors. Clips shorter than ``min_frames`` (4) repeat their last frame.
        With ``refeaturize`` (default) the features are first made consistent with their
        root and rotation channels (:meth:`prepare`)."""
        if isinstance(motions, np.ndarray) and motions.ndim == 2:
            raise TypeError("embed_motion expects a list of (F, 257) arrays; wrap one: [motion]")
        self.load()
        motions = [self._encoder_input(i, m) for i, m in enumerate(motions)]
        out = np.zeros((len(motions), self.embedding_dim), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, m in enumerate(motions):
            by_len.setdefault(m.shape[0], []).append(i)
        for _, ids in sorted(by_len.items()):
            for s in range(0, len(ids), batch_size):
                chunk = ids[s:s + batch_size]
                x = self.normalize(np.stack([motions[i] for i in chunk]))
                out[chunk] = self._motion.run(["embedding"], {"features": x})[0]
        return out

    def project_text(self, sentence_embeddings) -> np.ndarray:
        """Map text-encoder embeddings ``(N, 384)`` to the joint space: ``(N, 256)``."""
        self.load()
        e = np.asarray(sentence_embeddings, dtype=np.float32)
        if e.ndim != 2:
            raise ValueError(f"sentence embeddings must be (N, dim), got shape {e.shape}")
        if e.shape[0] == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return self._text.run(["embedding"], {"sentence_embedding": e})[0]

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions (through the text encoder package): ``(N, 256)`` unit vectors."""
        return self.project_text(self.text_encoder.encode(texts))

    def embed_texts_unique(self, texts) -> tuple[list, np.ndarray]:
        """Embed each distinct caption once: ``(unique_texts, embeddings)``."""
        uniq = sorted(set(texts))
        return uniq, self.embed_text(uniq) if uniq else np.zeros((0, self.embedding_dim))

    # --- metrics ---------------------------------------------------------------------------

    def evaluate(self, motions, texts, *, reference="train", repeats: int = 20, seed: int = 0,
                 batch_size: int = 32, mm_groups=None, physical: bool = True,
                 motion_embeddings=None) -> dict:
        """All metrics of ``motions`` (raw ``(F, 257)`` arrays) against ``texts``.

        ``texts[i]`` is motion ``i``'s caption, or a list of captions (each repeat picks one
        at random). ``reference``: FID reference — a split name of the shipped statistics
        (``train``, ``val``, ``test``), ``(mu, sigma)``, an ``(N, 256)`` embedding array, or
        None (no FID). ``repeats``: random batchings (and caption picks) for R-precision and
        MM-Dist, reported as mean and 95 % half-width. ``mm_groups``: list (one per text) of
        lists of >= 2 generated motions of the same text, for multimodality. ``physical``:
        also foot skating, jitter and ground penetration (from the features' positions).

        Returns a dict: ``n``, ``r_precision_top1/2/3`` (+ ``_ci95``), ``mm_dist``
        (+ ``_ci95``), ``fid``, ``diversity``, ``multimodality`` (None without
        ``mm_groups``), ``foot_skating``, ``foot_contacts``, ``jitter``,
        ``ground_penetration``.
        """
        n = len(motions)
        if len(texts) != n:
            raise ValueError(f"{n} motions but {len(texts)} texts")
        caps = [[t] if isinstance(t, str) else list(t) for t in texts]
        if any(not c for c in caps):
            raise ValueError("every motion needs at least one caption")
        m = (np.asarray(motion_embeddings, dtype=np.float32) if motion_embeddings is not None
             else self.embed_motion(motions))
        uniq, temb = self.embed_texts_unique([t for c in caps for t in c])
        row = {t: k for k, t in enumerate(uniq)}
        rows = [np.array([row[t] for t in c]) for c in caps]
        rng = np.random.default_rng(seed)
        rp, mmd = [], []
        for r in range(int(repeats)):
            pick = np.array([c[rng.integers(len(c))] for c in rows])
            t = temb[pick]
            rp.append(_met.r_precision(m, t, batch_size=batch_size, top_k=3,
                                       seed=(seed, r)))
            mmd.append(_met.matching_score(m, t))
        rp = np.array(rp)
        half = 1.96 / np.sqrt(max(len(rp), 1))
        out = {"n": n}
        for k in range(3):
            out[f"r_precision_top{k + 1}"] = float(rp[:, k].mean())
            out[f"r_precision_top{k + 1}_ci95"] = float(rp[:, k].std() * half)
        out["mm_dist"] = float(np.mean(mmd))
        out["mm_dist_ci95"] = float(np.std(mmd) * half)
        out["fid"] = self._fid(m, reference)
        out["diversity"] = float(np.mean([_met.diversity(m, 300, seed=(seed, r))
                                          for r in range(max(1, int(repeats)))]))
        out["multimodality"] = None
        if mm_groups is not None:
            groups = [self.embed_motion(g) for g in mm_groups]
            out["multimodality"] = _met.multimodality(groups, seed=seed)
        if physical:
            out.update(_met.physical_metrics(
                [self.prepare(f, return_positions=True)[1] for f in motions], fps=self.fps))
        return out

    def _fid(self, m, reference):
        if reference is None:
            return None
        if isinstance(reference, str):
            mu, sigma = self.reference(reference)
        elif isinstance(reference, tuple) and len(reference) == 2:
            mu, sigma = reference
        else:
            mu, sigma = _met.gaussian_stats(reference)
        return _met.fid(m, reference=(mu, sigma))

    def __repr__(self) -> str:
        state = "loaded" if self._motion is not None else "not loaded"
        return f"Evaluator({str(self.package_dir)!r}, threads={self.threads}, {state})"


class NoiseGenerator:
    """Baseline: Gaussian noise in normalised feature space, denormalised with the
    evaluator's statistics (ignores the text)."""

    def __init__(self, evaluator: Evaluator | None = None, scale: float = 1.0):
        self.evaluator = evaluator if evaluator is not None else Evaluator()
        self.scale = float(scale)

    def generate(self, text: str, length_frames: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((int(length_frames), self.evaluator.feature_dim)) * self.scale
        return self.evaluator.denormalize(z)
