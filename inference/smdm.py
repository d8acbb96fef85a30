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

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Cancelled, InputError
from ..motion import features as _feat
from . import generation as _gen
from . import smdm_core as core
from .errors import ModelPackageError
from .generation import Generation
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
MAX_PROMPT_CHARS = _gen.MAX_PROMPT_CHARS
_WHAT = {ONNX_FILE: "denoiser", TORCH_FILE: "PyTorch weights",
         "stats.npz": "normalisation statistics"}


class SmdmModel(_gen.TextToMotionModel):
    """An sMDM package ready to sample. Thread-safe: one generation at a time per instance."""

    def __init__(self, package: ModelPackage | str | Path, *, settings: RuntimeSettings | None = None,
                 backend: str = "onnx", text_encoder: TextEncoder | None = None):
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
        super().__init__(package, settings=settings, text_encoder=text_encoder)
        self.backend = backend
        self.mean = self.std = None
        self.known_dim = 0
        self.abar = core.cosine_alphas_cumprod(core.TIMESTEPS)

    # --- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        with describe_errors("sMDM model", self.package_dir, _WHAT):
            pkg = self.package or load_package(self.package_dir, kind=KIND)
            cfg = (pkg.manifest.get("model") or {})
            if cfg.get("prediction", "x0") != "x0" or ONNX_FILE not in pkg.files:
                raise ModelPackageError(f"{pkg.label} is not an sMDM package this version "
                                        "can run (needs denoiser.onnx predicting x0)")
            mean, std = _gen.feature_stats(pkg)
            if self.backend == "onnx":
                sess = pkg.session(ONNX_FILE, self.settings)

                def run(feeds):
                    return sess.run(["x0"], feeds)[0]
            else:
                from .smdm_net import DenoiserConfig, build_denoiser, input_names

                net_cfg = DenoiserConfig.from_dict(cfg.get("config") or {})
                runner = pkg.torch_module(lambda torch: build_denoiser(torch, net_cfg),
                                          TORCH_FILE, self.settings)
                self._device = runner.choice

                names = input_names(net_cfg)

                def run(feeds):
                    return runner(*(feeds[k] for k in names))
        enc = self._text_encoder or self._make_text_encoder(pkg)
        self.package, self.mean, self.std = pkg, mean, std
        self.config = {"key_fraction": core.KEY_FRACTION, "gamma": 0.1, "guidance": 2.5,
                       "steps": 50, **cfg}
        self._text_encoder = enc
        # models trained with known keyframes (Fill Between) take two more inputs
        self.known_dim = int((cfg.get("config") or {}).get("known_dim", 0))
        self._run = run

    # --- checks ----------------------------------------------------------------------------

    @property
    def max_seconds(self) -> float:
        return MAX_SECONDS

    def check_request(self, text, frames, steps, guidance, gamma, results, key_fraction) -> str:
        """Raise InputError for anything the animator must change; returns the cleaned prompt."""
        text = _gen.check_prompt(text)
        _gen.check_length(frames, self.fps, MIN_SECONDS, MAX_SECONDS)
        if not MIN_STEPS <= int(steps) <= MAX_STEPS:
            raise InputError(f"Steps must be between {MIN_STEPS} and {MAX_STEPS}, got {steps}")
        if not (np.isfinite(guidance) and 0.0 <= guidance <= 20.0):
            raise InputError(f"Guidance must be between 0 and 20, got {guidance}")
        if not 0.0 <= gamma <= 1.0:
            raise InputError(f"Gamma must be between 0 and 1, got {gamma}")
        _gen.check_results(results, MAX_RESULTS)
        if not 0.0 < key_fraction <= 1.0:
            raise InputError(f"Keyframe fraction must be in (0, 1], got {key_fraction}")
        return text

    # --- sampling --------------------------------------------------------------------------

    def generate(self, text: str, frames: int | None = None, seed: int = 0, *,
                 seconds: float | None = None, steps: int | None = None,
                 guidance: float | None = None, gamma: float | None = None, results: int = 1,
                 key_fraction: float | None = None, foot_lock: bool = True, grounding=None,
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Generation:
        """Sample ``results`` motions of ``frames`` frames (or ``seconds``) for ``text``."""
        self.load()
        fps = self.fps
        frames, steps, guidance, key_fraction = self._request(frames, seconds, steps, guidance,
                                                              key_fraction)
        gamma = float(gamma if gamma is not None else self.config["gamma"])
        results = int(results)
        text = self.check_request(text, frames, steps, guidance, gamma, results, key_fraction)
        timings = {}
        with self._lock:
            emb, understood, grounded = self._encode(text, seed, timings, grounding)
            t0 = time.perf_counter()
            x0n, keys = self._sample(emb, frames, int(seed), steps, guidance, gamma, results,
                                     key_fraction, progress, cancel)
            timings["sampling"] = time.perf_counter() - t0
        feats = x0n * self.std + self.mean
        return Generation(text=text, seed=int(seed), fps=fps, features=feats.astype(np.float32),
                          keys=keys, steps=steps, guidance=guidance, gamma=gamma,
                          model=f"{self.package.name} {self.package.version}", timings=timings,
                          foot_lock=bool(foot_lock), understood_as=understood,
                          grounded=grounded)

    def fill(self, known, text: str = "", seed: int = 0, *, steps: int | None = None,
             guidance: float | None = None, gamma: float | None = None, results: int = 1,
             key_fraction: float | None = None, foot_lock: bool = True,
             strength: float | None = None,
             progress: Callable[[float, str], None] | None = None,
             cancel: Callable[[], bool] | None = None):
        """Motion through the animator's known poses (:class:`.inbetween.Keyframes`, canonical,
        at the model's 20 fps): imputation in the sampling loop, then placed in the animator's
        world and made exact at the known frames (:mod:`.inbetween`). ``text``: what happens in
        between (empty: unconditional, guidance off). ``strength`` < 1 starts the sampling from
        the known dense motion (what plays between the keys now) noised to ``strength``·T
        instead of pure noise (SDEdit); default (None): 1.0 for a model trained with known
        keys (pure noise: on validation clips its fill was closer to the real motion than from
        0.5 at gaps of 15 and 30 frames) and 0.5 for one that is not (from 1.0 its fill was
        further at every gap). Returns an :class:`.inbetween.Fill`."""
        from . import inbetween

        self.load()
        frames = int(known.frames)
        steps = int(steps if steps is not None else self.config["steps"])
        key_fraction = float(key_fraction if key_fraction is not None
                             else self.config["key_fraction"])
        gamma = float(gamma if gamma is not None else self.config["gamma"])
        text = (text or "").strip()
        guidance = float(guidance if guidance is not None else self.config["guidance"])
        if not text:
            guidance = 1.0
        self.check_request(text or "-", frames, steps, guidance, gamma, int(results),
                           key_fraction)
        if strength is None:
            strength = 1.0 if self.known_dim else 0.5
        imp = inbetween.Imputation(known, self.mean, self.std, float(strength))
        timings = {}
        with self._lock:
            if text:
                emb, _understood, _grounded = self._encode(text, seed, timings, False)
            else:
                if int(seed) < 0:
                    raise InputError(f"The seed must be 0 or more, got {seed}")
                emb = np.zeros(self._text_encoder.dim, dtype=np.float32)
                timings["text"] = 0.0
            t0 = time.perf_counter()
            x0n, keys = self._sample(emb, frames, int(seed), steps, guidance, gamma,
                                     int(results), key_fraction, progress, cancel, fill=imp)
            timings["sampling"] = time.perf_counter() - t0
        feats = (x0n * self.std + self.mean).astype(np.float32)
        gen = Generation(text=text, seed=int(seed), fps=self.fps, features=feats, keys=keys,
                         steps=steps, guidance=guidance, gamma=gamma,
                         model=f"{self.package.name} {self.package.version}", timings=timings,
                         foot_lock=bool(foot_lock))
        t0 = time.perf_counter()
        motions = [imp.finish(*gen.motion(r), relock=bool(foot_lock)) for r in range(len(feats))]
        timings["decoding"] = time.perf_counter() - t0
        return inbetween.Fill(motions=motions, keys=keys, known=imp.forced, generation=gen,
                              timings=timings)

    def _sample(self, emb, N, seed, steps, guidance, gamma, R, key_fraction, progress, cancel,
                fill=None):
        """DDIM; ``fill`` (an :class:`.inbetween.Imputation`): its keyframes (the known frames
        always among them) and its known values imposed on every estimate."""
        D = self.mean.shape[0]
        K = core.key_count(N, key_fraction)
        if fill is not None:
            K = fill.key_count(K)
        x = np.stack([np.random.default_rng([seed, r]).standard_normal((N, D))
                      for r in range(R)]).astype(np.float32)
        ts = core.ddim_timesteps(steps)
        if fill is not None:
            ts, x = fill.start(ts, x, self.abar)
        cond = guidance != 1.0
        text = np.repeat(emb[None], R, axis=0)
        if cond:
            text = np.concatenate([text, np.zeros_like(text)])
        known = {}  # the same every step: made once, for the guidance rows too
        if self.known_dim:  # zeros: nothing known (plain text-to-motion)
            shape = (2 * R if cond else R, N, self.known_dim)
            for name, v in (("known", None if fill is None else fill.known_in),
                            ("known_mask", None if fill is None else fill.known_mask)):
                known[name] = np.zeros(shape, np.float32) if v is None else \
                    np.ascontiguousarray(np.broadcast_to(v, shape), dtype=np.float32)
        uniform = core.uniform_keys(N, K) if fill is None else fill.uniform_keys(N, K)
        select = core.vw_keys if fill is None else fill.vw_keys
        keys = [uniform] * R
        x0 = None
        threshold = gamma * core.TIMESTEPS
        for i, t in enumerate(ts):
            if cancel is not None and cancel():
                raise Cancelled()
            if x0 is not None and gamma > 0 and t <= threshold:
                keys = [select(self._positions(x0[r]), len(uniform)) for r in range(R)]
            key_idx, left, w = core.interpolation_batch(keys, N)
            feeds = {"x_t": x, "t": np.full(R, t, dtype=np.int64), "text": text,
                     "key_idx": key_idx, "interp_left": left, "interp_w": w}
            if cond:
                feeds = {k: (v if k == "text" else np.concatenate([v, v])) for k, v in feeds.items()}
            feeds.update(known)
            out = np.asarray(self._run(feeds), dtype=np.float32)
            if cond:
                x0 = out[R:] + guidance * (out[:R] - out[R:])
            else:
                x0 = out
            if fill is not None and i + 1 < len(ts):  # the last estimate stays the model's
                x0 = fill.impose(x0)
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


class SmdmGenerator(_gen.ModelGenerator):
    """:class:`~.generation.ModelGenerator` with sMDM's evaluation settings (50 steps,
    guidance 2.5, γ 0.1; ``backend`` onnx or torch)."""

    def __init__(self, package=None, steps: int = 50, guidance: float = 2.5, gamma: float = 0.1,
                 backend: str = "onnx", max_frames: int = 200, min_frames: int = 10,
                 threads: int = 0, foot_lock: bool = True, grounding=None):
        super().__init__(package, KIND, steps, guidance, gamma, max_frames, min_frames, threads,
                         foot_lock, grounding, backend=backend)
