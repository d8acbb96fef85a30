# SPDX-License-Identifier: GPL-3.0-or-later
"""Text to motion, and long motion from a timeline of prompts, with a KMM package
(bpy-free: numpy + onnxruntime; the same weights in PyTorch as a fallback).

::

    model = KmmModel(registry.get_registry().default("kmm")).load()
    gen = model.generate("a person walks forward", seconds=6, seed=7)    # a Generation
    tl = timeline.generate(model, [("walk forward", 6), ("wave both hands", 3)])

Sampling is masked decoding over motion tokens (4 frames a token; ``inference/kmm_net.py``):
every layer-0 token to make starts as MASK; each of ``steps`` iterations the backbone
predicts them all (classifier-free guidance: logits u + g·(c − u), the unconditional pass with
zero text), a token is drawn for each from the top codes (Gumbel-max at ``temperature``), and
the least confident ones are masked again so that a share cos(π/2·(i+1)/steps) stays masked
(MoMask/MaskGIT). Then the residual layers 1..Q-1 are predicted one after the other (argmax,
guided), the codes summed and decoded to features. Every token carries the text embedding of
its own segment and its phase in it, so a timeline is ONE sequence: the bidirectional Mamba
sees the neighbours, and the transitions are made by the model, not blended afterwards.

Regenerating one segment keeps the other segments' tokens as they were (the context) and
decodes only that segment's tokens anew.

Random numbers: each segment draws its own (``default_rng([seed, iteration])`` over its
tokens), so another seed for one segment changes nothing of the others' draws.

``backend``: "onnx" (default; the package may ask for "torch" in ``model.backend``), "torch"
(the same weights read from the ONNX files, CUDA when present; needs torch and onnx), "auto"
(onnx, and torch when onnxruntime cannot load the graph).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import Cancelled, InputError
from ..motion import features as _feat
from ..motion import smoothness as _smooth
from . import generation as _gen
from . import kmm_net as _net
from .errors import ModelPackageError
from .package import ModelPackage, describe_errors, load_package
from .runtime import RuntimeSettings, state_from_onnx
from .text_encoder import TextEncoder

__all__ = ["KIND", "KmmModel", "MIN_STEPS", "MAX_STEPS", "MIN_SECONDS", "MAX_SECONDS"]

KIND = "kmm"
FILES = ("decoder.onnx", "backbone.onnx", "codebooks.npz")
#: Low-pass cut-off (Hz) of the decoded features unless the package's ``model.lowpass_hz``
#: says otherwise (0: off): the token decoder's output jitters from frame to frame (its jerk
#: 1.5x real's); 6 Hz is the usual cut-off for human motion (``motion.smoothness.lowpass``).
LOWPASS_HZ = 6.0
#: The feature channels the low-pass filters: all but the foot contacts.
_SMOOTHED = np.ones(_feat.feature_dim(), dtype=bool)
_SMOOTHED[_feat.feature_layout()["foot_contacts"]] = False
MIN_STEPS = 1
MAX_STEPS = 50
MIN_SECONDS = 0.5
MAX_SECONDS = 120.0
MAX_RESULTS = 16
_WHAT = {"decoder.onnx": "token decoder", "backbone.onnx": "masked Mamba",
         "codebooks.npz": "token codebooks", "stats.npz": "normalisation statistics"}
BACKENDS = ("onnx", "torch", "auto")


def _torch_part(module, state: dict, label: str):
    """Load ``state`` into ``module``: every parameter/buffer the runtime uses must be there
    (the alignment heads used only in training may be absent)."""
    own = module.state_dict()
    optional = ("motion_head.", "logit_scale")
    missing = [k for k in own if k not in state and not k.startswith(optional)]
    if missing:
        raise ModelPackageError(f"{label}: the ONNX file lacks weights {missing[:5]} for the "
                                "PyTorch path — re-export the package unoptimised")
    module.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return module


class KmmModel(_gen.SampledModel):
    """A KMM package ready to sample. Thread-safe: one generation at a time."""

    def __init__(self, package: ModelPackage | str | Path, *, settings: RuntimeSettings | None = None,
                 backend: str | None = None, text_encoder: TextEncoder | None = None):
        super().__init__(package, settings=settings, text_encoder=text_encoder)
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.requested_backend = backend
        self.backend = None

    # --- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        with describe_errors("KMM model", self.package_dir, _WHAT):
            pkg = self.package or load_package(self.package_dir, kind=KIND)
            cfg = pkg.manifest.get("model") or {}
            missing = [f for f in FILES if f not in pkg.files]
            if missing or "backbone" not in cfg or "tokenizer" not in cfg:
                raise ModelPackageError(f"{pkg.label} is not a KMM package this version can "
                                        f"run (needs {', '.join(FILES)})")
            mean, std = _gen.feature_stats(pkg)
            cb = np.load(pkg.verify("codebooks.npz"))["codebooks"].astype(np.float32)
            bcfg = _net.BackboneConfig.from_dict(cfg["backbone"])
            tcfg = _net.TokenizerConfig.from_dict(cfg["tokenizer"])
            if cb.shape != (bcfg.quantizers, bcfg.codes, tcfg.code_dim):
                raise ModelPackageError(f"{pkg.label}: codebooks.npz has shape {cb.shape}, the "
                                        f"manifest says {(bcfg.quantizers, bcfg.codes, tcfg.code_dim)}")
            backend = self.requested_backend or cfg.get("backend", "onnx")
            run = None
            if backend in ("onnx", "auto"):
                try:
                    run = self._onnx_runner(pkg)
                    backend = "onnx"
                except ModelPackageError:
                    if backend == "onnx":
                        raise
            if run is None:
                run = self._torch_runner(pkg, bcfg, tcfg)
                backend = "torch"
                from .runtime import resolve_torch_device

                self._device = resolve_torch_device(self.settings.device, label=pkg.label)
        enc = self._text_encoder or self._make_text_encoder(pkg)
        self.package, self.mean, self.std, self.codebooks = pkg, mean, std, cb
        self.net, self.tok = bcfg, tcfg
        self.backend = backend
        self.config = {"steps": 8, "guidance": 3.0, "temperature": 1.0, "top_k": 0.9,
                       "key_fraction": 0.2, "min_frames": 8, "max_frames": 2400,
                       "residual_guidance": True, "lowpass_hz": LOWPASS_HZ, **cfg}
        self._text_encoder = enc
        self._run = run

    def _onnx_runner(self, pkg):
        dec = pkg.session("decoder.onnx", self.settings)
        bb = pkg.session("backbone.onnx", self.settings)

        def run(part, feeds):
            if part == "backbone":
                return bb.run(["logits"], feeds)[0]
            return dec.run(["x"], feeds)[0]
        return run

    def _torch_runner(self, pkg, bcfg, tcfg):
        def build_backbone(torch):
            return _torch_part(_net.build_backbone(torch, bcfg),
                               state_from_onnx(torch, pkg.verify("backbone.onnx")),
                               f"{pkg.label} backbone.onnx")

        def build_decoder(torch):
            return _torch_part(_net.build_tokenizer_parts(torch, tcfg)[1],
                               state_from_onnx(torch, pkg.verify("decoder.onnx")),
                               f"{pkg.label} decoder.onnx")

        bb = pkg.torch_module(build_backbone, None, self.settings)
        dec = pkg.torch_module(build_decoder, None, self.settings)

        def run(part, feeds):
            if part == "backbone":
                return bb(*(feeds[k] for k in _net.BACKBONE_INPUTS))
            return dec(feeds["z"])
        return run

    # --- checks ----------------------------------------------------------------------------

    def check_request(self, text, frames, steps, guidance, gamma=0.0, results=1,
                      key_fraction=0.2) -> str:
        """Raise InputError for anything the animator must change; returns the cleaned prompt.
        (``gamma`` is sMDM's and ignored here: the signature is the same for every model.)"""
        self.load()
        text = _gen.check_prompt(text)
        _gen.check_length(frames, self.fps, max(MIN_SECONDS, self.config["min_frames"] / self.fps),
                          self.max_seconds)
        self._check_steps(steps)
        _gen.check_sampling(guidance, results, MAX_RESULTS, key_fraction)
        return text

    @staticmethod
    def _check_steps(steps):
        if not MIN_STEPS <= int(steps) <= MAX_STEPS:
            raise InputError(f"Steps must be between {MIN_STEPS} and {MAX_STEPS}, got {steps}")

    @property
    def max_seconds(self) -> float:
        return min(MAX_SECONDS, self.load().config["max_frames"] / self.fps)

    # --- sampling --------------------------------------------------------------------------

    def _sample(self, emb, frames, seed, steps, guidance, results, progress, cancel):
        """Normalised features ``(results, 4·ceil(frames/4), D)`` (``SampledModel.generate``
        makes the Generation): one sequence per result, result r drawing from [seed, r]."""
        L = self._tokens(frames)
        return np.stack([self._sequence([emb], [(0, L)], [[int(seed), r]], steps, guidance,
                                        progress, cancel)[0] for r in range(int(results))])

    def timeline_features(self, texts, lengths, seeds, *, hold=None, regenerate=None,
                          steps: int | None = None, guidance: float | None = None,
                          grounding=None, progress=None, cancel=None):
        """The long-motion sampler of :mod:`.timeline`: raw features ``(N, 257)`` of the
        segments ``texts`` (lengths in frames, one seed each) as one sequence, and the state a
        later :func:`~.timeline.regenerate` needs (the token ids). ``hold``: the previous
        :class:`~.timeline.Timeline`; ``regenerate``: the segment to make anew (the others'
        tokens are kept as context)."""
        self.load()
        steps = int(steps if steps is not None else self.config["steps"])
        guidance = float(guidance if guidance is not None else self.config["guidance"])
        self._check_steps(steps)
        _gen.check_sampling(guidance, 1, MAX_RESULTS, 0.2)
        N = int(sum(lengths))
        timings = {}
        with self._lock:
            embs = [self._encode(t, s, timings, grounding)[0] for t, s in zip(texts, seeds)]
            L = self._tokens(N)
            bounds = np.round(np.cumsum([0] + list(lengths)) / _net.DOWNSAMPLE).astype(int)
            bounds[-1] = L
            ranges = [(int(a), int(max(b, a + 1))) for a, b in zip(bounds[:-1], bounds[1:])]
            fixed = None
            if hold is not None and regenerate is not None:
                ids_old = (hold.state or {}).get("kmm_ids")
                if ids_old is None or ids_old.shape[0] != L:
                    raise InputError("This timeline was not made by this model's long-motion "
                                     "sampler: generate it again")
                a, b = ranges[int(regenerate)]
                fixed = np.ones(L, bool)
                fixed[a:b] = False
                fixed = (fixed, ids_old)
            x, ids = self._sequence(embs, ranges, [[int(s), 0] for s in seeds], steps, guidance,
                                    progress, cancel, fixed=fixed, return_ids=True)
        feats = (x[0, :N] * self.std + self.mean).astype(np.float32)
        return feats, {"kmm_ids": ids[0], "token_ranges": ranges}

    def _tokens(self, frames: int) -> int:
        return max(2, -(-int(frames) // _net.DOWNSAMPLE))

    def _sequence(self, embs, ranges, seeds, steps, guidance, progress, cancel, fixed=None,
                  return_ids=False):
        """Normalised features ``(1, 4L, D)`` of one sequence of ``L`` tokens whose segments
        ``ranges`` (token index ranges) carry ``embs`` and draw from ``seeds``; ``fixed``:
        ``(mask (L,), ids (L, Q))`` tokens kept as they are."""
        c = self.net
        K, Q = c.codes, c.quantizers
        L = ranges[-1][1]
        E = len(embs[0])
        text = np.zeros((1, L, E), np.float32)
        phase = np.zeros((1, L), np.float32)
        for e, (a, b) in zip(embs, ranges):
            text[0, a:b] = e
            phase[0, a:b] = np.linspace(0.0, 1.0, b - a) if b - a > 1 else 0.0
        ids = np.full((1, L, Q), K, np.int64)
        todo = np.ones(L, bool)
        if fixed is not None:
            todo = ~fixed[0]
            ids[0, ~todo] = fixed[1][~todo]
        rngs = [np.random.default_rng(s) for s in seeds]
        temp = float(self.config["temperature"])
        keep = max(1, int(round(K * (1.0 - float(self.config["top_k"])))))
        masked = todo.copy()
        n = int(todo.sum())
        total = steps + Q - 1
        guided = guidance != 1.0

        def logits(layer):
            if guided:
                feeds = {"ids": np.repeat(ids, 2, 0), "layer": np.full(2, layer, np.int64),
                         "text": np.concatenate([text, np.zeros_like(text)]),
                         "phase": np.repeat(phase, 2, 0)}
                lc, lu = self._run("backbone", feeds)
                return lu + guidance * (lc - lu)
            feeds = {"ids": ids, "layer": np.full(1, layer, np.int64), "text": text,
                     "phase": phase}
            return self._run("backbone", feeds)[0]

        for it in range(steps):
            if cancel is not None and cancel():
                raise Cancelled()
            if not masked.any():
                break
            lg = logits(0).astype(np.float64)                       # (L, K)
            g = np.concatenate([r.gumbel(size=(b - a, K)) for r, (a, b) in zip(rngs, ranges)])
            thr = np.partition(lg, K - keep, axis=1)[:, K - keep][:, None]
            lgf = np.where(lg >= thr, lg / max(temp, 1e-6), -np.inf)
            pick = np.argmax(lgf + (g if temp > 0 else 0.0), axis=1)
            p = np.exp(lgf - lgf.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            conf = p[np.arange(L), pick]
            ids[0, masked, 0] = pick[masked]
            remain = int(np.floor(n * _net.mask_schedule((it + 1) / steps)))
            if it + 1 == steps:
                remain = 0
            score = np.where(masked, np.log(conf + 1e-12) + (1.0 - (it + 1) / steps)
                             * np.concatenate([r.gumbel(size=b - a) for r, (a, b) in
                                               zip(rngs, ranges)]), np.inf)
            masked = np.zeros(L, bool)
            if remain > 0:
                masked[np.argsort(score)[:remain]] = True
            ids[0, masked, 0] = K
            if progress is not None:
                progress((it + 1) / (total + 1), f"step {it + 1}/{steps}")
        for q in range(1, Q):
            if cancel is not None and cancel():
                raise Cancelled()
            lg = logits(q)
            ids[0, todo, q] = np.argmax(lg, axis=1)[todo]
            if progress is not None:
                progress((steps + q) / (total + 1), f"layer {q + 1}/{Q}")
        z = sum(self.codebooks[q][ids[0, :, q]] for q in range(Q))[None].astype(np.float32)
        x = np.asarray(self._run("decoder", {"z": z}), dtype=np.float32)
        hz = float(self.config.get("lowpass_hz") or 0.0)
        if hz > 0:  # the token decoder's frame-to-frame jitter (not the contact channels)
            x = x.copy()
            x[0][:, _SMOOTHED] = _smooth.lowpass(x[0][:, _SMOOTHED], hz, self.fps)
        if progress is not None:
            progress(1.0, "decoded")
        return (x, ids) if return_ids else x

    def __repr__(self) -> str:
        return f"KmmModel({str(self.package_dir)!r}, backend={self.backend or self.requested_backend!r})"
