# SPDX-License-Identifier: GPL-3.0-or-later
"""Text to motion with an sMDM model package (bpy-free: numpy + onnxruntime).

::

    model = SmdmModel(registry.get_registry().default("smdm")).load()
    gen = model.generate("a person waves with the left hand", frames=200, seed=7)
    gen.features[0]          # (200, 257) raw features, 20 fps
    gen.motion(0)            # (local_quats (200, 21, 4), root_translation (200, 3) cm)
    gen.keys[0]              # the model's keyframes (frame indices) at the last step

The sampling loop runs in numpy: DDIM (eta 0) over the 1000-step cosine schedule, the
denoiser (one ONNX call per step, batch = results × 2 for classifier-free guidance) predicts
x0. Keyframes: uniform for t > γ·T, then Visvalingam-Whyatt re-selected on the current
estimate's joint positions (sMDM's dynamic mask). ``backend="torch"`` runs the same loop with
the package's PyTorch weights (``denoiser.pt``, for comparison; needs torch).

The random numbers of result ``r`` come from ``numpy.random.default_rng([seed, r])``: the same
seed gives the same motions whatever the number of results asked for.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Cancelled, InputError
from ..motion import features as _feat
from ..motion import footlock as _footlock
from . import smdm_core as core
from .errors import ModelPackageError
from .package import ModelPackage, describe_errors, load_package
from .runtime import RuntimeSettings
from .text_encoder import TextEncoder

__all__ = ["KIND", "SmdmModel", "SmdmGenerator", "Generation", "Cancelled", "MIN_SECONDS", "MAX_SECONDS",
           "MIN_STEPS", "MAX_STEPS"]

KIND = "smdm"
ONNX_FILE = "denoiser.onnx"
TORCH_FILE = "denoiser.pt"
MIN_SECONDS = 0.5
MAX_SECONDS = 20.0
MIN_STEPS = 10
MAX_STEPS = 1000
MAX_RESULTS = 16
MAX_PROMPT_CHARS = 1000
_WHAT = {ONNX_FILE: "denoiser", TORCH_FILE: "PyTorch weights",
         "stats.npz": "normalisation statistics"}


@dataclass
class Generation:
    text: str
    seed: int
    fps: float
    features: np.ndarray                 # (R, F, 257) raw (denormalised)
    keys: list                           # R arrays of keyframe indices
    steps: int
    guidance: float
    gamma: float
    model: str
    timings: dict = field(default_factory=dict)  # seconds: text, sampling, decoding
    foot_lock: bool = True
    _decoded: dict = field(default_factory=dict, repr=False)

    def motion(self, r: int = 0, foot_lock: bool | None = None):
        """Result ``r`` as canonical motion: ``(local_quats (F, 21, 4), root_translation (F, 3))``,
        with planted feet on the floor and held still (:func:`~..motion.footlock.lock_feet`,
        contacts from the model's own foot-contact channels and the foot heights) unless
        ``foot_lock`` (default: the generation's setting) is False. Decoded once, then kept."""
        lock = self.foot_lock if foot_lock is None else bool(foot_lock)
        if (r, lock) not in self._decoded:
            f = self.features[r]
            q, x = _feat.features_to_motion(f)
            contacts = f[:, _feat.feature_layout()["foot_contacts"]]
            self._decoded[(r, lock)] = (_footlock.lock_feet(q, x, contacts=contacts) if lock
                                        else (q, x))
        return self._decoded[(r, lock)]

    @property
    def frames(self) -> int:
        return int(self.features.shape[1])


class SmdmModel:
    """An sMDM package ready to sample. Thread-safe: one generation at a time per instance."""

    def __init__(self, package: ModelPackage | str | Path, *, settings: RuntimeSettings | None = None,
                 backend: str = "onnx", text_encoder: TextEncoder | None = None):
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
        self.package = package if isinstance(package, ModelPackage) else None
        self.package_dir = Path(package.path if isinstance(package, ModelPackage) else package)
        self.settings = settings or RuntimeSettings()
        self.backend = backend
        self._text_encoder = text_encoder
        self._own_encoder = text_encoder is None
        self._run = None
        self._lock = threading.Lock()
        self.mean = self.std = None
        self.abar = core.cosine_alphas_cumprod(core.TIMESTEPS)

    # --- loading ---------------------------------------------------------------------------

    def load(self) -> "SmdmModel":
        if self._run is not None:
            return self
        with self._lock:
            if self._run is not None:
                return self
            with describe_errors("sMDM model", self.package_dir, _WHAT):
                pkg = self.package or load_package(self.package_dir, kind=KIND)
                cfg = (pkg.manifest.get("model") or {})
                if cfg.get("prediction", "x0") != "x0" or ONNX_FILE not in pkg.files:
                    raise ModelPackageError(f"{pkg.label} is not an sMDM package this version "
                                            "can run (needs denoiser.onnx predicting x0)")
                stats = pkg.load_stats()
                D = pkg.feature_dim
                mean = np.asarray(stats["mean"], dtype=np.float32)
                std = np.asarray(stats["std"], dtype=np.float32)
                if mean.shape != (D,) or std.shape != (D,) or not np.all(std > 0):
                    raise ModelPackageError(f"{pkg.label}: stats.npz must hold mean/std ({D},)")
                if self.backend == "onnx":
                    sess = pkg.session(ONNX_FILE, self.settings)

                    def run(feeds):
                        return sess.run(["x0"], feeds)[0]
                else:
                    from .smdm_net import DenoiserConfig, build_denoiser

                    net_cfg = DenoiserConfig.from_dict(cfg.get("config") or {})
                    runner = pkg.torch_module(lambda torch: build_denoiser(torch, net_cfg),
                                              TORCH_FILE, self.settings)

                    def run(feeds):
                        return runner(*(feeds[k] for k in ("x_t", "t", "text", "key_idx",
                                                            "interp_left", "interp_w")))
            enc = self._text_encoder or self._make_text_encoder(pkg)
            self.package, self.mean, self.std = pkg, mean, std
            self.config = {"key_fraction": core.KEY_FRACTION, "gamma": 0.1, "guidance": 2.5,
                           "steps": 50, **cfg}
            self._text_encoder = enc
            self._run = run
        return self

    def _make_text_encoder(self, pkg: ModelPackage) -> TextEncoder:
        req = pkg.text_encoder or {}
        name = req.get("name", "text-minilm-l6")
        candidates = [pkg.path.parent / name]
        try:
            from . import registry

            rec = registry.get_registry().record(name)
            if rec is not None and rec.package is not None:
                candidates.insert(0, rec.package.path)
        except Exception:  # the registry is a convenience here; the sibling folder suffices
            pass
        path = next((p for p in candidates if (p / "manifest.json").is_file()), None)
        if path is None:
            raise ModelPackageError(f"{pkg.label} needs the text encoder '{name}', which is not "
                                    "installed — reinstall the extension")
        enc = TextEncoder(path, threads=self.settings.resolved_threads,
                          device=self.settings.device)
        enc.check_requirement(req, pkg.label)
        return enc

    def release(self) -> None:
        with self._lock:
            if self.package is not None:
                self.package.release()
            if self._own_encoder and self._text_encoder is not None:
                self._text_encoder.release()
                self._text_encoder = None
            self._run = None

    @property
    def loaded(self) -> bool:
        return self._run is not None

    @property
    def fps(self) -> float:
        pkg = self.package or self.load().package
        return float(pkg.fps or 20)

    @property
    def name(self) -> str:
        pkg = self.package or self.load().package
        return pkg.label

    # --- checks ----------------------------------------------------------------------------

    def check_request(self, text, frames, steps, guidance, gamma, results, key_fraction) -> str:
        """Raise InputError for anything the animator must change; returns the cleaned prompt."""
        text = (text or "").strip()
        if not text:
            raise InputError("The prompt is empty: describe the motion, e.g. "
                             "'a person waves with the left hand'")
        if len(text) > MAX_PROMPT_CHARS:
            raise InputError(f"The prompt is {len(text)} characters long; keep it under "
                             f"{MAX_PROMPT_CHARS}")
        fps = self.fps
        seconds = frames / fps
        if not (MIN_SECONDS - 1e-9 <= seconds <= MAX_SECONDS + 1e-9):
            raise InputError(f"Length {seconds:.2f} s is out of range: generate between "
                             f"{MIN_SECONDS:g} and {MAX_SECONDS:g} seconds")
        if not MIN_STEPS <= int(steps) <= MAX_STEPS:
            raise InputError(f"Steps must be between {MIN_STEPS} and {MAX_STEPS}, got {steps}")
        if not (np.isfinite(guidance) and 0.0 <= guidance <= 20.0):
            raise InputError(f"Guidance must be between 0 and 20, got {guidance}")
        if not 0.0 <= gamma <= 1.0:
            raise InputError(f"Gamma must be between 0 and 1, got {gamma}")
        if not 1 <= int(results) <= MAX_RESULTS:
            raise InputError(f"Number of results must be between 1 and {MAX_RESULTS}")
        if not 0.0 < key_fraction <= 1.0:
            raise InputError(f"Keyframe fraction must be in (0, 1], got {key_fraction}")
        return text

    # --- sampling --------------------------------------------------------------------------

    def generate(self, text: str, frames: int | None = None, seed: int = 0, *,
                 seconds: float | None = None, steps: int | None = None,
                 guidance: float | None = None, gamma: float | None = None, results: int = 1,
                 key_fraction: float | None = None, foot_lock: bool = True,
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Generation:
        """Sample ``results`` motions of ``frames`` frames (or ``seconds``) for ``text``."""
        self.load()
        if (frames is None) == (seconds is None):
            raise ValueError("give frames or seconds")
        fps = self.fps
        if frames is None:
            frames = int(round(float(seconds) * fps))
        frames = int(frames)
        steps = int(steps if steps is not None else self.config["steps"])
        guidance = float(guidance if guidance is not None else self.config["guidance"])
        gamma = float(gamma if gamma is not None else self.config["gamma"])
        key_fraction = float(key_fraction if key_fraction is not None
                             else self.config["key_fraction"])
        results = int(results)
        text = self.check_request(text, frames, steps, guidance, gamma, results, key_fraction)
        if int(seed) < 0:
            raise InputError(f"The seed must be 0 or more, got {seed}")
        timings = {}
        with self._lock:
            t0 = time.perf_counter()
            emb = self._text_encoder.encode([text]).astype(np.float32)[0]
            timings["text"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            x0n, keys = self._sample(emb, frames, int(seed), steps, guidance, gamma, results,
                                     key_fraction, progress, cancel)
            timings["sampling"] = time.perf_counter() - t0
        feats = x0n * self.std + self.mean
        return Generation(text=text, seed=int(seed), fps=fps, features=feats.astype(np.float32),
                          keys=keys, steps=steps, guidance=guidance, gamma=gamma,
                          model=f"{self.package.name} {self.package.version}", timings=timings,
                          foot_lock=bool(foot_lock))

    def _positions(self, x0n_r):
        return _feat.features_to_positions(x0n_r * self.std + self.mean)

    def _sample(self, emb, N, seed, steps, guidance, gamma, R, key_fraction, progress, cancel):
        D = self.mean.shape[0]
        K = core.key_count(N, key_fraction)
        x = np.stack([np.random.default_rng([seed, r]).standard_normal((N, D))
                      for r in range(R)]).astype(np.float32)
        ts = core.ddim_timesteps(steps)
        cond = guidance != 1.0
        text = np.repeat(emb[None], R, axis=0)
        if cond:
            text = np.concatenate([text, np.zeros_like(text)])
        uniform = core.uniform_keys(N, K)
        keys = [uniform] * R
        x0 = None
        threshold = gamma * core.TIMESTEPS
        for i, t in enumerate(ts):
            if cancel is not None and cancel():
                raise Cancelled()
            if x0 is not None and gamma > 0 and t <= threshold:
                keys = [core.vw_keys(self._positions(x0[r]), len(uniform)) for r in range(R)]
            key_idx, left, w = core.interpolation_batch(keys, N)
            feeds = {"x_t": x, "t": np.full(R, t, dtype=np.int64), "text": text,
                     "key_idx": key_idx, "interp_left": left, "interp_w": w}
            if cond:
                feeds = {k: (v if k == "text" else np.concatenate([v, v])) for k, v in feeds.items()}
            out = np.asarray(self._run(feeds), dtype=np.float32)
            if cond:
                x0 = out[R:] + guidance * (out[:R] - out[R:])
            else:
                x0 = out
            ab = self.abar[t]
            ab_prev = self.abar[ts[i + 1]] if i + 1 < len(ts) else 1.0
            if i + 1 < len(ts):
                eps = (x - np.sqrt(ab) * x0) / np.sqrt(1.0 - ab)
                x = (np.sqrt(ab_prev) * x0 + np.sqrt(1.0 - ab_prev) * eps).astype(np.float32)
            if progress is not None:
                progress((i + 1) / len(ts), f"step {i + 1}/{len(ts)}")
        return x0, [np.asarray(k, dtype=np.int64) for k in keys]

    def __repr__(self) -> str:
        return f"SmdmModel({str(self.package_dir)!r}, backend={self.backend!r})"


class SmdmGenerator:
    """:class:`~.evaluator.Generator` over a package, for ``training/evaluate.py``:
    ``generate(text, length_frames, seed)`` → ``(F, 257)`` raw features. Lengths are clamped
    to ``[min_frames, max_frames]`` (the training crops are at most 200 frames)."""

    def __init__(self, package=None, steps: int = 50, guidance: float = 2.5, gamma: float = 0.1,
                 backend: str = "onnx", max_frames: int = 200, min_frames: int = 10,
                 threads: int = 0, foot_lock: bool = True):
        if package is None:
            from . import registry

            package = registry.get_registry().default(KIND)
        self.model = SmdmModel(package, backend=backend,
                               settings=RuntimeSettings(threads=int(threads))).load()
        self.kw = dict(steps=steps, guidance=guidance, gamma=gamma)
        self.max_frames, self.min_frames = int(max_frames), int(min_frames)
        self.foot_lock = bool(foot_lock)

    def generate(self, text: str, length_frames: int, seed: int) -> np.ndarray:
        n = int(min(max(int(length_frames), self.min_frames), self.max_frames))
        gen = self.model.generate(text, n, int(seed), **self.kw)
        if not self.foot_lock:
            return gen.features[0]
        return _feat.motion_to_features(*gen.motion(0)).astype(np.float32)
