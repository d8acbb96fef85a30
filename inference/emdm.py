# SPDX-License-Identifier: GPL-3.0-or-later
"""Text to motion in a few steps with an EMDM package (bpy-free: numpy + onnxruntime; the same
weights in PyTorch as a fallback).

::

    model = EmdmModel(registry.get_registry().default("emdm")).load()
    gen = model.generate("a person walks forward", seconds=6, seed=7)   # a Generation
    gen.features[0], gen.keys[0], gen.motion(0)

EMDM (``inference/emdm_net.py``) learns each of T large denoising steps with a conditional GAN,
so T = 10 steps (the package's ``steps_t``) replace diffusion's 50+. The sampling loop runs in
numpy: x at the top level is N(0, I); each step the generator predicts x0 from (x_k, t_k, text,
z) — the sparse generator (the shipped one: sMDM's denoiser plus z) also takes keyframes,
chosen as sMDM chooses them (uniform, then Visvalingam-Whyatt keyframes of the last estimate
once t <= gamma·1000) — with classifier-free guidance ``u + g·(c − u)`` over one batch holding
the conditional rows and the unconditional ones (zero text, the same z) — and, unless it is the
last step, x is drawn from the posterior q(x_j | x_k, x0) at the next level. Fewer steps than
trained are allowed when they divide T (their levels are trained levels). Keyframes:
Visvalingam-Whyatt on the result (``generation.vw_keyframes``), as for every model that does
not choose its own.

Random numbers: result ``r`` draws from ``numpy.random.default_rng([seed, r])`` — x at the top
level, then per step z (64) and, before the next step, the posterior noise — so the same seed
gives the same motions whatever the number of results.

``backend``: "onnx", "torch" (the weights of ``generator.onnx`` in PyTorch — needs torch and
the ``onnx`` package — CUDA when the runtime settings allow it and torch has it, else the CPU)
or "auto" (onnx, and torch when onnxruntime cannot load the intact graph, e.g. an operator this
onnxruntime lacks). None: the package's ``model.backend`` (default "auto"). A missing or
modified file is an error either way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import Cancelled, InputError
from . import emdm_net as _net
from . import generation as _gen
from . import smdm_core as _core
from .errors import ModelPackageError
from .package import ModelPackage, PackageError, describe_errors, load_package
from .runtime import RuntimeSettings, state_from_onnx
from .text_encoder import TextEncoder

__all__ = ["KIND", "EmdmModel", "BACKENDS", "MIN_SECONDS", "MAX_RESULTS"]

KIND = "emdm"
ONNX_FILE = "generator.onnx"
BACKENDS = ("onnx", "torch", "auto")
MIN_SECONDS = 0.5
MAX_RESULTS = 16
_WHAT = {ONNX_FILE: "generator", "stats.npz": "normalisation statistics"}


class EmdmModel(_gen.SampledModel):
    """An EMDM package ready to sample. Thread-safe: one generation at a time per instance.
    After ``load``: ``backend`` ("onnx" or "torch") and ``fallback`` (why onnxruntime was
    not used, or None)."""

    def __init__(self, package: ModelPackage | str | Path, *, settings: RuntimeSettings | None = None,
                 backend: str | None = None, text_encoder: TextEncoder | None = None):
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        super().__init__(package, settings=settings, text_encoder=text_encoder)
        self.requested_backend = backend
        self.backend = None
        self.fallback = None
        self.mean = self.std = None

    # --- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        with describe_errors("EMDM model", self.package_dir, _WHAT):
            pkg = self.package or load_package(self.package_dir, kind=KIND)
            cfg = pkg.manifest.get("model") or {}
            if (cfg.get("prediction", "x0") != "x0" or ONNX_FILE not in pkg.files
                    or "generator" not in cfg or "steps_t" not in cfg):
                raise ModelPackageError(f"{pkg.label} is not an EMDM package this version can "
                                        f"run (needs {ONNX_FILE} predicting x0 and the "
                                        "generator's settings)")
            mean, std = _gen.feature_stats(pkg)
            gcfg = _net.GeneratorConfig.from_dict(cfg["generator"])
            backend = self.requested_backend or cfg.get("backend", "auto")
            run, fallback = None, None
            if backend in ("onnx", "auto"):
                try:
                    run, backend = self._onnx_runner(pkg), "onnx"
                except PackageError as exc:
                    # only an intact graph onnxruntime cannot load goes to PyTorch; a missing
                    # or modified file, or a wrong signature, is a broken package
                    if backend == "onnx" or exc.problem != "load":
                        raise
                    fallback = f"onnxruntime cannot run {ONNX_FILE}: {exc}"
            if run is None:
                try:
                    run, backend = self._torch_runner(pkg, gcfg), "torch"
                except ModelPackageError as exc:
                    if fallback is None:
                        raise
                    raise ModelPackageError(f"{fallback}; the PyTorch path failed too: {exc}") from exc
        enc = self._text_encoder or self._make_text_encoder(pkg)
        T = int(cfg["steps_t"])
        self.package, self.mean, self.std, self.net = pkg, mean, std, gcfg
        self.backend, self.fallback = backend, fallback
        self.config = {"guidance": 2.5, "key_fraction": 0.2, "gamma": 0.1, "min_frames": 10,
                       "max_frames": 200, **cfg, "steps": int(cfg.get("steps", T))}
        self.timesteps = _net.grid_timesteps(T)
        self.abar = _net.level_alphas(T)
        self._text_encoder = enc
        self._run = run

    def _onnx_runner(self, pkg):
        sess = pkg.session(ONNX_FILE, self.settings)

        def run(feeds):
            return sess.run(["x0"], feeds)[0]
        return run

    def _torch_runner(self, pkg, gcfg):
        onnx_path = pkg.verify(ONNX_FILE)

        def build(torch):
            gen = _net.build_generator(torch, gcfg)
            state = state_from_onnx(torch, onnx_path)
            missing = [k for k in gen.state_dict() if k not in state]
            if missing:
                raise ModelPackageError(f"{ONNX_FILE} lacks weights {missing[:5]} for the "
                                        "PyTorch path (exported optimised?) — re-export it")
            gen.load_state_dict({k: v for k, v in state.items() if k in gen.state_dict()})
            return gen

        runner = pkg.torch_module(build, None, self.settings)
        self._device = runner.choice

        def run(feeds):
            return runner(*(feeds[k] for k in _net.input_names(gcfg)))
        return run

    # --- checks ----------------------------------------------------------------------------

    @property
    def steps_t(self) -> int:
        """The number of denoising steps the model was trained for (T)."""
        return int(self.load().config["steps_t"])

    def check_request(self, text, frames, steps, guidance, gamma=0.0, results=1,
                      key_fraction=0.2) -> str:
        """Raise InputError for anything the animator must change; returns the cleaned prompt
        (``gamma`` is sMDM's and ignored: the signature is the same for every model)."""
        text = self._check_text_and_length(text, frames, MIN_SECONDS)
        choices = _net.step_choices(self.steps_t)
        if int(steps) not in choices:
            raise InputError(f"Steps must be one of {', '.join(map(str, choices))} for this model "
                             f"(trained for {self.steps_t} steps), got {steps}")
        _gen.check_sampling(guidance, results, MAX_RESULTS, key_fraction)
        return text

    # --- sampling (generate: generation.SampledModel) ------------------------------------

    def _sample(self, emb, N, seed, steps, guidance, R, progress, cancel):
        """Normalised x0 ``(R, N, D)``: ``steps`` generator steps down the trained levels."""
        D = self.mean.shape[0]
        Z = self.net.z_dim
        levels = _net.sampling_levels(self.steps_t, steps)
        rngs = [np.random.default_rng([seed, r]) for r in range(R)]
        x = np.stack([g.standard_normal((N, D)) for g in rngs]).astype(np.float32)
        cond = guidance != 1.0
        text = np.repeat(emb[None], R, axis=0)
        if cond:
            text = np.concatenate([text, np.zeros_like(text)])
        x0 = None
        keys = [_core.uniform_keys(N, _core.key_count(N, self.config["key_fraction"]))] * R
        for i, k in enumerate(levels):
            if cancel is not None and cancel():
                raise Cancelled()
            t = self.timesteps[k - 1]
            z = np.stack([g.standard_normal(Z) for g in rngs]).astype(np.float32)
            feeds = {"x_t": x, "t": np.full(R, t, dtype=np.int64), "text": text, "z": z}
            if self.net.sparse:  # keyframes as sMDM samples them (uniform, then VW late)
                if x0 is not None and t <= self.config["gamma"] * _core.TIMESTEPS:
                    keys = [_core.vw_keys(self._positions(x0[r]), len(keys[0])) for r in range(R)]
                feeds.update(zip(_net.KEY_INPUTS, _core.interpolation_batch(keys, N)))
            if cond:
                feeds = {n: (v if n == "text" else np.concatenate([v, v])) for n, v in feeds.items()}
            out = np.asarray(self._run(feeds), dtype=np.float32)
            x0 = out[R:] + guidance * (out[:R] - out[R:]) if cond else out
            if i + 1 < len(levels):
                c0, ck, sigma = _net.posterior_coefficients(self.abar[levels[i + 1]], self.abar[k])
                eps = np.stack([g.standard_normal((N, D)) for g in rngs])
                x = (c0 * x0 + ck * x + sigma * eps).astype(np.float32)
            if progress is not None:
                progress((i + 1) / len(levels), f"step {i + 1}/{len(levels)}")
        return x0

    def __repr__(self) -> str:
        return (f"EmdmModel({str(self.package_dir)!r}, "
                f"backend={self.backend or self.requested_backend!r})")
