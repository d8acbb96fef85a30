# SPDX-License-Identifier: GPL-3.0-or-later
"""What every text-to-motion model shares (bpy-free: numpy + onnxruntime).

* :class:`Generation` — the result of one request, whatever model made it: raw features,
  the keyframes to write, and ``motion(r)`` (decoded, feet on the floor and locked);
* :func:`check_prompt`, :func:`check_length` — the animator's input checks (``InputError``);
* :func:`feature_stats` — a package's normalisation mean/std, checked;
* :func:`text_encoder_for` — the caption encoder a package was trained with, checked;
* :func:`vw_keyframes` — Visvalingam-Whyatt keyframes of generated features, for models that
  do not choose their own (the keyframe engine's ``vw``);
* :class:`TextToMotionModel` — the base of the model classes (package, runtime settings,
  text encoder, loaded state, release); :class:`SampledModel` — its ``generate`` for models
  that sample features and take Visvalingam-Whyatt keyframes (EMDM);
* :func:`check_sampling` — guidance, result count and keyframe fraction checks;
* :data:`KINDS` and :func:`open_model` — the text-to-motion package kinds and the model class
  that runs each (sMDM, MotionLCM, KMM, EMDM).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..motion import features as _feat
from ..motion import footlock as _footlock
from .errors import ModelPackageError
from .package import ModelPackage
from .runtime import DeviceChoice, RuntimeSettings, device_status
from .text_encoder import TextEncoder

__all__ = ["Generation", "TextToMotionModel", "SampledModel", "KINDS", "MAX_PROMPT_CHARS",
           "check_prompt", "check_length", "check_results", "check_sampling", "feature_stats",
           "text_encoder_for", "vw_keyframes", "open_model", "ModelGenerator"]

#: Text-to-motion package kinds and the model class of each (module, class).
KINDS = {
    "smdm": ("smdm", "SmdmModel"),
    "motionlcm": ("motionlcm", "MotionLcmModel"),
    "kmm": ("kmm", "KmmModel"),
    "emdm": ("emdm", "EmdmModel"),
}
MAX_PROMPT_CHARS = 1000


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
    understood_as: dict | None = None    # the prompt's nearest content and style (understand)
    grounded: bool = False               # conditioned on the understood pair too (grounding)
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


# --------------------------------------------------------------------------- input checks


def check_prompt(text) -> str:
    """The cleaned prompt; InputError when it is empty or too long."""
    text = (text or "").strip()
    if not text:
        raise InputError("The prompt is empty: describe the motion, e.g. "
                         "'a person waves with the left hand'")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt is {len(text)} characters long; keep it under "
                         f"{MAX_PROMPT_CHARS}")
    return text


def check_length(frames: int, fps: float, min_seconds: float, max_seconds: float) -> None:
    seconds = frames / fps
    if not (min_seconds - 1e-9 <= seconds <= max_seconds + 1e-9):
        raise InputError(f"Length {seconds:.2f} s is out of range: generate between "
                         f"{min_seconds:g} and {max_seconds:g} seconds")


def check_results(results: int, max_results: int) -> None:
    if not 1 <= int(results) <= max_results:
        raise InputError(f"Number of results must be between 1 and {max_results}")


def check_sampling(guidance: float, results: int, max_results: int, key_fraction: float) -> None:
    """The checks every model makes of guidance (0..20), the number of results and the
    keyframe fraction (0, 1] (InputError)."""
    if not (np.isfinite(guidance) and 0.0 <= guidance <= 20.0):
        raise InputError(f"Guidance must be between 0 and 20, got {guidance}")
    check_results(results, max_results)
    if not 0.0 < key_fraction <= 1.0:
        raise InputError(f"Keyframe fraction must be in (0, 1], got {key_fraction}")


# --------------------------------------------------------------------------- package parts


def feature_stats(pkg: ModelPackage) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` float32 ``(D,)`` of the package's ``stats.npz``, checked."""
    stats = pkg.load_stats()
    D = pkg.feature_dim
    mean = np.asarray(stats["mean"], dtype=np.float32)
    std = np.asarray(stats["std"], dtype=np.float32)
    if mean.shape != (D,) or std.shape != (D,) or not np.all(std > 0):
        raise ModelPackageError(f"{pkg.label}: stats.npz must hold mean/std ({D},)")
    return mean, std


def text_encoder_for(pkg: ModelPackage, settings) -> TextEncoder:
    """The text encoder ``pkg`` names (the registry's, else a sibling folder), checked against
    the package's requirement (name, version, model sha256)."""
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
    enc = TextEncoder(path, threads=settings.resolved_threads, device=settings.device)
    enc.check_requirement(req, pkg.label)
    return enc


# --------------------------------------------------------------------------- keyframes


def vw_keyframes(features, fraction: float) -> np.ndarray:
    """Keyframes of raw features ``(F, D)``: round(fraction·F) frames (at least 2, ends
    included) chosen by Visvalingam-Whyatt on the joint world positions."""
    from . import smdm_core as core

    f = np.asarray(features)
    return core.vw_keys(_feat.features_to_positions(f), core.key_count(len(f), fraction))


# --------------------------------------------------------------------------- models


class TextToMotionModel:
    """What the model classes share: the package (or its folder), runtime settings, the text
    encoder (given, or the package's own, made by ``load``), and ``_run``: what ``load`` made
    to run the networks (None until loaded). Subclasses implement ``_load`` and ``generate``."""

    def __init__(self, package: ModelPackage | str | Path, *,
                 settings: RuntimeSettings | None = None, text_encoder: TextEncoder | None = None):
        self.package = package if isinstance(package, ModelPackage) else None
        self.package_dir = Path(package.path if isinstance(package, ModelPackage) else package)
        self.settings = settings or RuntimeSettings()
        self._text_encoder = text_encoder
        self._own_encoder = text_encoder is None
        self._run = None
        self._device: DeviceChoice | None = None  # set by load: where it runs and why
        self._lock = threading.Lock()

    def load(self):
        """Open the package's files (once; later calls return at once)."""
        if self._run is None:
            with self._lock:
                if self._run is None:
                    self._load()
                    # the sessions were just opened: their device (a model with a PyTorch
                    # part sets its own in _load)
                    self._device = self._device or device_status(self.settings)
        return self

    @property
    def device(self) -> DeviceChoice:
        """Where the model runs and why (``runtime.DeviceChoice``): what its sessions got once
        loaded, else what they would get."""
        return self._device or device_status(self.settings)

    def _load(self) -> None:
        """Set ``package``, ``_text_encoder``, ``_run`` and what sampling needs (under the lock)."""
        raise NotImplementedError

    def _make_text_encoder(self, pkg: ModelPackage) -> TextEncoder:
        return text_encoder_for(pkg, self.settings)

    def release(self) -> None:
        with self._lock:
            if self.package is not None:
                self.package.release()
            if self._own_encoder and self._text_encoder is not None:
                self._text_encoder.release()
                self._text_encoder = None
            self._run = None
            self._device = None

    @property
    def loaded(self) -> bool:
        return self._run is not None

    def _request(self, frames, seconds, steps, guidance, key_fraction):
        """``(frames, steps, guidance, key_fraction)``: frames from ``seconds`` when not given,
        the others from the package's ``config`` defaults."""
        if (frames is None) == (seconds is None):
            raise ValueError("give frames or seconds")
        frames = int(round(float(seconds) * self.fps)) if frames is None else int(frames)
        c = self.config
        return (frames, int(steps if steps is not None else c["steps"]),
                float(guidance if guidance is not None else c["guidance"]),
                float(key_fraction if key_fraction is not None else c["key_fraction"]))

    def _encode(self, text: str, seed, timings: dict, grounding=None) -> tuple:
        """``(embedding (E,), understood_as, grounded)``: the conditioning for ``text`` (timed
        as ``text``), after checking the seed. ``grounding``: None = the package's setting
        (``config["grounding"]``; absent = off), False = off, a dict = those settings
        (:func:`~.understand.ground`)."""
        if int(seed) < 0:
            raise InputError(f"The seed must be 0 or more, got {seed}")
        t0 = time.perf_counter()
        emb = self._text_encoder.encode([text]).astype(np.float32)[0]
        g = self.config.get("grounding") if grounding is None else grounding
        understood, grounded = None, False
        if g:
            from . import understand as _ua

            emb, u, grounded = _ua.ground(text, emb, self.package, self._text_encoder,
                                         g if isinstance(g, dict) else None)
            understood = u.to_manifest()
        timings["text"] = time.perf_counter() - t0
        return emb, understood, grounded

    def _positions(self, xn):
        """Joint positions of one sampled motion ``xn`` (normalised features; models whose
        ``_load`` sets ``mean`` and ``std``)."""
        return _feat.features_to_positions(xn * self.std + self.mean)

    @property
    def fps(self) -> float:
        pkg = self.package or self.load().package
        return float(pkg.fps or 20)

    @property
    def name(self) -> str:
        pkg = self.package or self.load().package
        return pkg.label


class SampledModel(TextToMotionModel):
    """A text-to-motion model that samples normalised features and leaves the keyframes to
    Visvalingam-Whyatt (:func:`vw_keyframes`). Subclasses implement ``_load``,
    ``check_request(text, frames, steps, guidance, gamma, results, key_fraction)`` (returns
    the cleaned prompt) and ``_sample(emb, frames, seed, steps, guidance, results, progress,
    cancel)`` → normalised features ``(results, ≥ frames, D)``; this class resolves the
    request, encodes the prompt and makes the :class:`Generation`."""

    def generate(self, text: str, frames: int | None = None, seed: int = 0, *,
                 seconds: float | None = None, steps: int | None = None,
                 guidance: float | None = None, gamma: float | None = None, results: int = 1,
                 key_fraction: float | None = None, foot_lock: bool = True, grounding=None,
                 progress=None, cancel=None) -> Generation:
        """Sample ``results`` motions of ``frames`` frames (or ``seconds``) for ``text``
        (``gamma`` is sMDM's and ignored: the signature is the same for every model)."""
        self.load()
        frames, steps, guidance, key_fraction = self._request(frames, seconds, steps, guidance,
                                                              key_fraction)
        results = int(results)
        text = self.check_request(text, frames, steps, guidance, 0.0, results, key_fraction)
        timings = {}
        with self._lock:
            emb, understood, grounded = self._encode(text, seed, timings, grounding)
            t0 = time.perf_counter()
            xn = self._sample(emb, frames, int(seed), steps, guidance, results, progress, cancel)
            timings["sampling"] = time.perf_counter() - t0
        feats = (np.asarray(xn)[:, :frames] * self.std + self.mean).astype(np.float32)
        t0 = time.perf_counter()
        keys = [vw_keyframes(f, key_fraction) for f in feats]
        timings["keyframes"] = time.perf_counter() - t0
        return Generation(text=text, seed=int(seed), fps=self.fps, features=feats, keys=keys,
                          steps=steps, guidance=guidance, gamma=0.0,
                          model=f"{self.package.name} {self.package.version}", timings=timings,
                          foot_lock=bool(foot_lock), understood_as=understood,
                          grounded=grounded)

    def _sample(self, emb, frames, seed, steps, guidance, results, progress, cancel):
        raise NotImplementedError

    @property
    def max_seconds(self) -> float:
        """The longest motion: the package's ``max_frames``."""
        return self.load().config["max_frames"] / self.fps

    def _check_text_and_length(self, text, frames, min_seconds: float) -> str:
        """The cleaned prompt, after checking it and the length (at least ``min_seconds`` and
        the package's ``min_frames``, at most :attr:`max_seconds`)."""
        self.load()
        text = check_prompt(text)
        check_length(frames, self.fps, max(min_seconds, self.config["min_frames"] / self.fps),
                     self.max_seconds)
        return text


# --------------------------------------------------------------------------- models by kind


def open_model(package: ModelPackage | str | Path, **kwargs):
    """The model object for a text-to-motion package (``SmdmModel``, ``MotionLcmModel``, …),
    chosen by its manifest's kind; ``kwargs`` go to the class (``settings``, …)."""
    import importlib

    from .package import load_package

    pkg = package if isinstance(package, ModelPackage) else load_package(package)
    if pkg.kind not in KINDS:
        raise ModelPackageError(f"{pkg.label} is a {pkg.kind} model, not a text-to-motion model "
                                f"({', '.join(KINDS)}) — choose another model")
    mod, cls = KINDS[pkg.kind]
    return getattr(importlib.import_module(f"{__package__}.{mod}"), cls)(pkg, **kwargs)


class ModelGenerator:
    """:class:`~.evaluator.Generator` over any text-to-motion package (``open_model``), for
    ``training/evaluate.py``: ``generate(text, length_frames, seed)`` → ``(F, 257)`` raw
    features, as Generate Motion writes them (foot locking) unless ``foot_lock`` is False.
    Lengths are clamped to ``[min_frames, max_frames]``; ``None`` options are the package's
    defaults; ``kind``: the registry's default package of that kind when ``package`` is None;
    ``model_kwargs`` go to the model class (e.g. ``backend`` for sMDM)."""

    def __init__(self, package=None, kind: str = "smdm", steps: int | None = None,
                 guidance: float | None = None, gamma: float | None = None,
                 max_frames: int = 200, min_frames: int = 10, threads: int = 0,
                 foot_lock: bool = True, grounding=None, key_fraction: float | None = None,
                 **model_kwargs):
        if package is None:
            from . import registry

            package = registry.get_registry().default(kind)
        self.model = open_model(package, settings=RuntimeSettings(threads=int(threads)),
                                **model_kwargs).load()
        self.kw = {k: v for k, v in dict(steps=steps, guidance=guidance, gamma=gamma,
                                         key_fraction=key_fraction).items() if v is not None}
        self.kw["grounding"] = grounding
        self.max_frames, self.min_frames = int(max_frames), int(min_frames)
        self.foot_lock = bool(foot_lock)

    def generate(self, text: str, length_frames: int, seed: int) -> np.ndarray:
        n = int(min(max(int(length_frames), self.min_frames), self.max_frames))
        gen = self.model.generate(text, n, int(seed), **self.kw)
        if not self.foot_lock:
            return gen.features[0]
        return _feat.motion_to_features(*gen.motion(0)).astype(np.float32)
