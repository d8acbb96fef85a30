# SPDX-License-Identifier: GPL-3.0-or-later
"""Caption -> embedding text encoder (all-MiniLM-L6-v2, shipped as an ONNX model package).

A model package is a folder with ``manifest.json``, ``model.onnx`` and ``tokenizer.json``
(see ``models/text-minilm-l6/`` and ``training/export_text_encoder.py``). The ONNX graph
already contains mean pooling and L2 normalisation, so ``encode`` returns unit vectors::

    enc = TextEncoder(default_package_dir())
    emb = enc.encode(["a person walks forward", "someone waves both hands"])  # (2, 384)
    similarity = emb @ emb.T

Loading is lazy: the constructor only records settings; the first ``encode`` (or an
explicit ``load()``) reads the manifest, checks the files' sha256 once and opens the
onnxruntime session. Only numpy, onnxruntime and tokenizers are used; nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ModelPackageError

DEFAULT_PACKAGE = "text-minilm-l6"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "embedding"
MAX_THREADS = 4


def default_package_dir() -> Path:
    """The text-encoder package shipped inside the extension."""
    return Path(__file__).resolve().parents[1] / "models" / DEFAULT_PACKAGE


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Intra-op threads used when none are given: ``min(4, usable CPUs)``."""
    return min(MAX_THREADS, _cpu_count())


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build offers it, always with the CPU as fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TextEncoder:
    """Encode captions into L2-normalised float32 embeddings of shape (B, dim).

    ``package_dir``: folder with manifest.json, model.onnx, tokenizer.json.
    ``providers``: onnxruntime execution providers; default CUDA if available, else CPU.
    ``threads``: intra-op threads; default ``min(4, CPU count)``.
    ``batch_size``: captions per onnxruntime call (each batch is padded to its longest).
    """

    def __init__(
        self,
        package_dir: str | os.PathLike | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_size: int = 64,
    ):
        self.package_dir = Path(package_dir) if package_dir is not None else default_package_dir()
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.threads = int(threads) if threads is not None else default_threads()
        self.batch_size = int(batch_size)
        self._requested_providers = list(providers) if providers is not None else None
        self._lock = threading.Lock()
        self._manifest: dict | None = None
        self._session = None
        self._tokenizer = None

    # --- loading ---------------------------------------------------------------------------

    def _file(self, name: str, what: str) -> Path:
        path = self.package_dir / name
        if not path.is_file():
            raise ModelPackageError(f"text encoder {what} missing: {path}")
        return path

    def _read_manifest(self) -> dict:
        path = self._file(MANIFEST_FILE, "manifest")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelPackageError(f"text encoder manifest unreadable: {path}: {exc}") from exc
        problems = []
        if not isinstance(manifest, dict):
            raise ModelPackageError(f"text encoder manifest is not a JSON object: {path}")
        if manifest.get("kind") != "text-encoder":
            problems.append(f"kind is {manifest.get('kind')!r}, expected 'text-encoder'")
        for key in ("dim", "max_length"):
            if not isinstance(manifest.get(key), int) or manifest[key] < 1:
                problems.append(f"{key} must be a positive integer")
        files = manifest.get("files")
        if not isinstance(files, dict):
            problems.append("files is missing")
        else:
            for name in (MODEL_FILE, TOKENIZER_FILE):
                entry = files.get(name)
                if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                    problems.append(f"files[{name!r}].sha256 is missing")
        if problems:
            raise ModelPackageError(f"text encoder manifest invalid ({path}): " + "; ".join(problems))
        return manifest

    def _verify(self, path: Path, expected: str, what: str) -> None:
        actual = file_sha256(path)
        if actual != expected.lower():
            raise ModelPackageError(
                f"checksum mismatch for text encoder {what} {path}: expected sha256 {expected}, "
                f"got {actual}; the file is corrupt or was modified (reinstall the extension)"
            )

    def load(self) -> "TextEncoder":
        """Check the package and open the session (once; later calls are no-ops)."""
        if self._session is not None:
            return self
        with self._lock:
            if self._session is not None:
                return self
            manifest = self._read_manifest()
            model_path = self._file(MODEL_FILE, "model file")
            tok_path = self._file(TOKENIZER_FILE, "tokenizer file")
            self._verify(model_path, manifest["files"][MODEL_FILE]["sha256"], "model file")
            self._verify(tok_path, manifest["files"][TOKENIZER_FILE]["sha256"], "tokenizer file")
            tokenizer = self._make_tokenizer(tok_path, manifest)
            session = self._make_session(model_path)
            self._check_signature(session, model_path)
            self._manifest, self._tokenizer = manifest, tokenizer
            self._session = session
        return self

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

    def _make_session(self, model_path: Path):
        import onnxruntime as ort

        def options():
            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
            # The shipped model stores its MatMul weights as int8 behind DequantizeLinear
            # (weight-only quantisation). Without QDQ fusion onnxruntime constant-folds them
            # into float32 weights once at load, then runs the plain float32 kernels: exact
            # (the export's parity numbers are measured this way) and as fast as fp32.
            so.add_session_config_entry("session.disable_quant_qdq", "1")
            so.log_severity_level = 3  # errors only
            return so

        providers = self._requested_providers or default_providers()
        try:
            return ort.InferenceSession(str(model_path), options(), providers=providers)
        except Exception as exc:
            if providers != ["CPUExecutionProvider"] and self._requested_providers is None:
                # e.g. a CUDA build without a usable GPU/driver: fall back to the CPU
                try:
                    return ort.InferenceSession(
                        str(model_path), options(), providers=["CPUExecutionProvider"])
                except Exception as cpu_exc:
                    exc = cpu_exc
            raise ModelPackageError(
                f"text encoder model file could not be loaded by onnxruntime: {model_path}: {exc}"
            ) from exc

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
