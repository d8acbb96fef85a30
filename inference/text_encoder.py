# SPDX-License-Identifier: GPL-3.0-or-later
"""Caption -> embedding text encoder (all-MiniLM-L6-v2, shipped as an ONNX model package).

A model package is a folder with ``manifest.json``, ``model.onnx`` and ``tokenizer.json``
(see ``models/text-minilm-l6/`` and ``training/export_text_encoder.py``). The ONNX graph
already contains mean pooling and L2 normalisation, so ``encode`` returns unit vectors::

    enc = TextEncoder(default_package_dir())
    emb = enc.encode(["a person walks forward", "someone waves both hands"])  # (2, 384)
    similarity = emb @ emb.T

Loading is lazy: the constructor only records settings; the first ``encode`` (or an
explicit ``load()``) reads the package (``package.load_package``), checks the files' sha256
once and opens the onnxruntime session through ``runtime`` (shared per process; ``device`` and
``threads`` as in the preferences). Only numpy, onnxruntime and tokenizers are used; nothing
is downloaded.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import runtime
from .errors import ModelPackageError
from .package import (describe_errors, file_sha256,  # noqa: F401 (file_sha256: API)
                      load_package, version_satisfies)
from .runtime import RuntimeSettings

DEFAULT_PACKAGE = "text-minilm-l6"
KIND = "text-encoder"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "embedding"
MAX_THREADS = runtime.MAX_AUTO_THREADS


def default_package_dir() -> Path:
    """The text-encoder package shipped inside the extension."""
    return Path(__file__).resolve().parents[1] / "models" / DEFAULT_PACKAGE


def _cpu_count() -> int:
    """Physical cores this process may use (see ``runtime.physical_cores``)."""
    return runtime.physical_cores()


def default_threads() -> int:
    """Intra-op threads used when none are given: ``min(4, physical cores)``."""
    return min(MAX_THREADS, _cpu_count())


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build offers it, always with the CPU as fallback."""
    return list(runtime._provider_names(runtime.select_providers("AUTO")[0]))


_WHAT = {MODEL_FILE: "model file", TOKENIZER_FILE: "tokenizer file", MANIFEST_FILE: "manifest"}



class TextEncoder:
    """Encode captions into L2-normalised float32 embeddings of shape (B, dim).

    ``package_dir``: folder with manifest.json, model.onnx, tokenizer.json.
    ``providers``: onnxruntime execution providers, used as given (overrides ``device``).
    ``threads``: intra-op threads; default ``min(4, physical cores)``.
    ``batch_size``: captions per onnxruntime call (each batch is padded to its longest).
    ``device``: ``AUTO`` (CUDA if available, else CPU), ``CPU`` or ``CUDA`` (see ``runtime``).
    """

    def __init__(
        self,
        package_dir: str | os.PathLike | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_size: int = 64,
        device: str = "AUTO",
    ):
        self.package_dir = Path(package_dir) if package_dir is not None else default_package_dir()
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.threads = int(threads) if threads is not None else default_threads()
        self.batch_size = int(batch_size)
        self.settings = RuntimeSettings(device=device, threads=self.threads)
        self._requested_providers = list(providers) if providers is not None else None
        self._lock = threading.Lock()
        self._manifest: dict | None = None
        self._package = None
        self._session = None
        self._tokenizer = None

    # --- loading ---------------------------------------------------------------------------

    def check_requirement(self, requirement: dict | None, user: str) -> "TextEncoder":
        """Raise ModelPackageError unless this encoder is the one a model was trained with:
        ``requirement`` is the model manifest's ``text_encoder`` (``name``, ``version``
        requirement, optional exact ``model_sha256``); ``user`` names the model in messages."""
        req = requirement or {}
        have = self.manifest["files"][MODEL_FILE]["sha256"]
        expected = req.get("model_sha256")
        if expected and have != expected:
            raise ModelPackageError(
                f"{user} was trained on text embeddings of a different text-encoder model "
                f"than {self.package_dir} (model sha256 {have}, expected {expected})")
        spec = str(req.get("version", "*"))
        if not version_satisfies(self.manifest["version"], spec):
            raise ModelPackageError(
                f"{user} needs the text encoder '{req.get('name')}' {spec}, "
                f"{self.package_dir} is version {self.manifest['version']}")
        return self

    def _check_manifest(self, manifest: dict) -> None:
        path = self.package_dir / MANIFEST_FILE
        problems = []
        for key in ("dim", "max_length"):
            if not isinstance(manifest.get(key), int) or manifest[key] < 1:
                problems.append(f"{key} must be a positive integer")
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if name not in manifest["files"]:
                problems.append(f"files[{name!r}] is missing")
        if problems:
            raise ModelPackageError(f"text encoder manifest invalid ({path}): " + "; ".join(problems))

    def load(self) -> "TextEncoder":
        """Check the package and open the session (once; later calls are no-ops)."""
        if self._session is not None:
            return self
        with self._lock:
            if self._session is not None:
                return self

            def hasher(p):  # looked up at call time, so tests can count the hashing
                return file_sha256(p)

            with describe_errors("text encoder", self.package_dir, _WHAT):
                package = load_package(self.package_dir, kind=KIND)
                manifest = package.manifest
                self._check_manifest(manifest)
                package.verify(MODEL_FILE, hasher=hasher)
                tok_path = package.verify(TOKENIZER_FILE, hasher=hasher)
                tokenizer = self._make_tokenizer(tok_path, manifest)
                # the package's runtime.onnxruntime_session_config keeps
                # session.disable_quant_qdq=1: the weight-only DequantizeLinear nodes are folded
                # into float32 weights at load, then plain float32 kernels run (exact, fast)
                session = package.session(MODEL_FILE, self.settings,
                                          providers=self._requested_providers, hasher=hasher)
            self._check_signature(session, self.package_dir / MODEL_FILE)
            self._manifest, self._tokenizer, self._package = manifest, tokenizer, package
            self._session = session
        return self

    def release(self) -> None:
        """Forget the session (and drop it from the runtime cache); the next use reloads."""
        with self._lock:
            if self._package is not None:
                self._package.release()
            self._session = self._package = None

    def _make_tokenizer(self, path: Path, manifest: dict):
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a plain Exception on bad JSON
            raise ModelPackageError(f"text encoder tokenizer file unreadable: {path}: {exc}") from exc
        tok.enable_truncation(max_length=int(manifest["max_length"]))
        # pad to the longest caption of each batch (overrides the file's fixed padding)
        pad_id = int(manifest.get("pad_id", 0))
        pad_token = tok.id_to_token(pad_id) or "[PAD]"
        tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
        return tok

    def _check_signature(self, session, model_path: Path) -> None:
        inputs = {i.name for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if missing or OUTPUT_NAME not in outputs:
            raise ModelPackageError(
                f"text encoder model file has the wrong signature: {model_path}: inputs "
                f"{sorted(inputs)}, outputs {outputs}; expected inputs {list(INPUT_NAMES)} "
                f"and output {OUTPUT_NAME!r}"
            )
        self._feed_names = [n for n in INPUT_NAMES if n in inputs]

    # --- properties ------------------------------------------------------------------------

    @property
    def manifest(self) -> dict:
        self.load()
        return self._manifest

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def max_length(self) -> int:
        return int(self.manifest["max_length"])

    @property
    def providers(self) -> list[str]:
        """Providers of the open session (loads the package)."""
        self.load()
        return list(self._session.get_providers())

    # --- encoding --------------------------------------------------------------------------

    @staticmethod
    def _check_texts(texts: Iterable[str]) -> list[str]:
        if isinstance(texts, (str, bytes)):
            raise TypeError("TextEncoder.encode expects a list of strings, not a single string; "
                            "wrap it: encode([text])")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text encoder input {i} is {type(t).__name__}, expected str")
            if not t.strip():
                raise ValueError(f"text encoder input {i} is an empty string; "
                                 "give a non-empty caption, e.g. 'a person walks forward'")
        return texts

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 array (len(texts), dim), each row of unit L2 norm.

        Raises ValueError for an empty/blank caption, TypeError for non-strings and
        ModelPackageError when the model package is missing or corrupt.
        """
        texts = self._check_texts(texts)
        self.load()
        dim = self.dim
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        out = np.empty((len(texts), dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            enc = self._tokenizer.encode_batch(batch)
            feeds = {
                "input_ids": np.asarray([e.ids for e in enc], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64),
            }
            feeds = {k: feeds[k] for k in self._feed_names}
            emb = self._session.run([OUTPUT_NAME], feeds)[0]
            if emb.shape != (len(batch), dim):
                raise ModelPackageError(
                    f"text encoder model returned shape {emb.shape}, expected ({len(batch)}, {dim})")
            out[start:start + len(batch)] = emb
        # the graph normalises already; do it again in float32 so callers can rely on it
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def __repr__(self) -> str:
        state = "loaded" if self._session is not None else "not loaded"
        return f"TextEncoder({str(self.package_dir)!r}, threads={self.threads}, {state})"
