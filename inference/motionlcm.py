# SPDX-License-Identifier: GPL-3.0-or-later
"""Text to motion with a MotionLCM-V2 package (bpy-free: numpy + onnxruntime).

::

    model = MotionLcmModel(registry.get_registry().default("motionlcm")).load()
    gen = model.generate("a person walks forward", frames=200, seed=7, steps=1)
    gen.motion(0)          # the same Generation as sMDM's: decoded, feet locked
    # the pelvis along a path (cm, the generation's frame: frame 0 at the ground origin
    # facing +Z, Y up); only the frames where the mask is set are followed
    gen = model.generate("a person walks", 120, control=path, control_mask=mask)

Sampling (LCM's multistep consistency sampling): the latent starts as noise at the first of
the package's timesteps (1 step: [999]; 2: [999, 499]; 4: [999, 749, 499, 249]); each step
the student maps it to the clean latent z0 (one ONNX call, the guidance w is an input: no
doubled batch); between steps z0 is noised again to the next timestep. With control the
ControlNet turns the trajectory into residuals added inside the student (one more call per
step). The VAE decoder turns z0 into features; keyframes are Visvalingam-Whyatt on them
(``generation.vw_keyframes``), as for every model that does not choose its own.

The random numbers of result ``r`` come from ``numpy.random.default_rng([seed, r])``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Cancelled, InputError
from . import generation as _gen
from . import motionlcm_net as _net
from . import smdm_core as core
from .errors import ModelPackageError
from .generation import Generation
from .package import ModelPackage, describe_errors, load_package
from .runtime import RuntimeSettings
from .text_encoder import TextEncoder

__all__ = ["KIND", "MotionLcmModel", "MIN_STEPS", "MAX_STEPS", "MIN_SECONDS"]

KIND = "motionlcm"
FILES = ("decoder.onnx", "denoiser.onnx", "controlnet.onnx")
MIN_STEPS = 1
MAX_STEPS = 8
MIN_SECONDS = 0.5
MAX_RESULTS = 16
_WHAT = {"decoder.onnx": "VAE decoder", "denoiser.onnx": "consistency denoiser",
         "controlnet.onnx": "ControlNet", "stats.npz": "normalisation statistics"}


class MotionLcmModel(_gen.TextToMotionModel):
    """A MotionLCM package ready to sample. Thread-safe: one generation at a time."""

    def __init__(self, package: ModelPackage | str | Path, *, settings: RuntimeSettings | None = None,
                 text_encoder: TextEncoder | None = None):
        super().__init__(package, settings=settings, text_encoder=text_encoder)
        self.abar = core.cosine_alphas_cumprod(core.TIMESTEPS)

    # --- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        with describe_errors("MotionLCM model", self.package_dir, _WHAT):
            pkg = self.package or load_package(self.package_dir, kind=KIND)
            cfg = pkg.manifest.get("model") or {}
            missing = [f for f in FILES if f not in pkg.files]
            if missing or "denoiser" not in cfg:
                raise ModelPackageError(f"{pkg.label} is not a MotionLCM package this "
                                        f"version can run (needs {', '.join(FILES)})")
            mean, std = _gen.feature_stats(pkg)
            sessions = {f: pkg.session(f, self.settings) for f in FILES}
        enc = self._text_encoder or self._make_text_encoder(pkg)
        self.package, self.mean, self.std = pkg, mean, std
        self.net = _net.DenoiserConfig.from_dict(cfg["denoiser"])
        self.config = {"steps": 4, "guidance": 4.0, "skip": 10, "key_fraction":
                       core.KEY_FRACTION, "min_frames": 10, "max_frames": 200, **cfg}
        self._text_encoder = enc

        def run(fname, output, feeds):
            return sessions[fname].run([output], feeds)[0]

        self._run = run

    @property
    def max_seconds(self) -> float:
        return self.load().config["max_frames"] / self.fps

    # --- checks ----------------------------------------------------------------------------

    def check_request(self, text, frames, steps, guidance, gamma=0.0, results=1,
                      key_fraction=core.KEY_FRACTION) -> str:
        """Raise InputError for anything the animator must change; returns the cleaned prompt.
        (``gamma`` is sMDM's and ignored here: the signature is the same for every model.)"""
        self.load()
        text = _gen.check_prompt(text)
        _gen.check_length(frames, self.fps, max(MIN_SECONDS, self.config["min_frames"] / self.fps),
                          self.max_seconds)
        if not MIN_STEPS <= int(steps) <= MAX_STEPS:
            raise InputError(f"Steps must be between {MIN_STEPS} and {MAX_STEPS} for "
                             f"{self.name}, got {steps}")
        if not (np.isfinite(guidance) and 0.0 <= guidance <= 20.0):
            raise InputError(f"Guidance must be between 0 and 20, got {guidance}")
        _gen.check_results(results, MAX_RESULTS)
        if not 0.0 < key_fraction <= 1.0:
            raise InputError(f"Keyframe fraction must be in (0, 1], got {key_fraction}")
        return text

    @staticmethod
    def check_control(control, control_mask, frames: int):
        """``(control (F, 3) float32 cm, mask (F,) float32)``; InputError when unusable."""
        if control is None:
            if control_mask is not None:
                raise InputError("A control mask needs a control trajectory")
            return None
        c = np.asarray(control, dtype=np.float64)
        if c.shape != (frames, 3):
            raise InputError(f"The control trajectory must have one (x, y, z) point per frame, "
                             f"({frames}, 3); got shape {c.shape}")
        m = (np.isfinite(c).all(axis=1) if control_mask is None
             else np.asarray(control_mask, dtype=bool))
        if m.shape != (frames,):
            raise InputError(f"The control mask must have one value per frame ({frames}), "
                             f"got shape {m.shape}")
        if not m.any():
            raise InputError("The control trajectory has no frame to follow")
        if not np.isfinite(c[m]).all():
            raise InputError("The control trajectory has NaN or infinite points at frames "
                             "it should follow")
        if np.abs(c[m]).max() > 1e5:
            raise InputError("The control trajectory goes more than 1 km from the start")
        return (np.where(m[:, None], c, 0.0).astype(np.float32), m.astype(np.float32))

    # --- sampling --------------------------------------------------------------------------

    def timesteps(self, steps: int) -> np.ndarray:
        return _net.lcm_timesteps(steps, int(self.config["skip"]), core.TIMESTEPS)

    def generate(self, text: str, frames: int | None = None, seed: int = 0, *,
                 seconds: float | None = None, steps: int | None = None,
                 guidance: float | None = None, gamma: float | None = None, results: int = 1,
                 key_fraction: float | None = None, foot_lock: bool = True, grounding=None,
                 control=None, control_mask=None,
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> Generation:
        """Sample ``results`` motions of ``frames`` frames (or ``seconds``) for ``text``;
        ``control`` (F, 3) pelvis positions in cm, followed where ``control_mask`` (F,) is set
        (default: where the points are finite)."""
        self.load()
        fps = self.fps
        frames, steps, guidance, key_fraction = self._request(frames, seconds, steps, guidance,
                                                              key_fraction)
        results = int(results)
        text = self.check_request(text, frames, steps, guidance, 0.0, results, key_fraction)
        ctl = self.check_control(control, control_mask, frames)
        timings = {}
        with self._lock:
            emb, understood, grounded = self._encode(text, seed, timings, grounding)
            t0 = time.perf_counter()
            x = self._sample(emb, frames, int(seed), steps, guidance, results, ctl, progress,
                             cancel)
            timings["sampling"] = time.perf_counter() - t0
        feats = (x * self.std + self.mean).astype(np.float32)
        t0 = time.perf_counter()
        keys = [_gen.vw_keyframes(f, key_fraction) for f in feats]
        timings["keyframes"] = time.perf_counter() - t0
        return Generation(text=text, seed=int(seed), fps=fps, features=feats, keys=keys,
                          steps=steps, guidance=guidance, gamma=0.0,
                          model=f"{self.package.name} {self.package.version}", timings=timings,
                          foot_lock=bool(foot_lock), understood_as=understood,
                          grounded=grounded)

    def _sample(self, emb, N, seed, steps, guidance, R, ctl, progress, cancel):
        """Normalised features ``(R, N, D)``."""
        c = self.net
        T, dl = c.tokens, c.latent_dim
        ts = self.timesteps(steps)
        rngs = [np.random.default_rng([seed, r]) for r in range(R)]
        z = np.stack([g.standard_normal((T, dl)) for g in rngs]).astype(np.float32)
        feeds = {"text": np.repeat(emb[None], R, axis=0),
                 "length": np.full(R, N, dtype=np.int64),
                 "w": np.full(R, guidance, dtype=np.float32)}
        zero = np.zeros((R, c.layers, T + 2, c.width), dtype=np.float32)
        if ctl is not None:
            cfeeds = dict(feeds, control=np.repeat(ctl[0][None], R, axis=0),
                          control_mask=np.repeat(ctl[1][None], R, axis=0))
        z0 = z
        for i, t in enumerate(ts):
            if cancel is not None and cancel():
                raise Cancelled()
            tt = np.full(R, t, dtype=np.int64)
            residual = (self._run("controlnet.onnx", "residual", dict(cfeeds, z_t=z, t=tt))
                        if ctl is not None else zero)
            z0 = self._run("denoiser.onnx", "z0", dict(feeds, z_t=z, t=tt, residual=residual))
            if i + 1 < len(ts):
                ab = self.abar[ts[i + 1]]
                noise = np.stack([g.standard_normal((T, dl)) for g in rngs])
                z = (np.sqrt(ab) * z0 + np.sqrt(1.0 - ab) * noise).astype(np.float32)
            if progress is not None:
                progress((i + 1) / (len(ts) + 1), f"step {i + 1}/{len(ts)}")
        x = self._run("decoder.onnx", "x", {"z": z0.astype(np.float32),
                                             "frame_idx": np.arange(N, dtype=np.int64)})
        if progress is not None:
            progress(1.0, "decoded")
        return np.asarray(x, dtype=np.float32)

    def __repr__(self) -> str:
        return f"MotionLcmModel({str(self.package_dir)!r})"
