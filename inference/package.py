# SPDX-License-Identifier: GPL-3.0-or-later
"""Model packages: a folder with ``manifest.json`` and the files it lists (bpy-free).

Every model Sparse Motion runs (text encoder, sMDM, evaluator, MotionDreamer, …) ships as a
*model package*; the format is described in ``docs/model-packages.md``. This module reads and
checks packages and writes them for training scripts::

    pkg = load_package("models/smdm-default")          # manifest checked, files present
    sess = pkg.session("denoiser.onnx", RuntimeSettings(device="AUTO"))  # sha256 + signature
    stats = pkg.load_stats()                            # {"mean": …, "std": …}

    # in a training script, after exporting the files into out_dir:
    ModelPackage.create(out_dir, name="smdm-default", kind="smdm", version="1.0.0", …)

Checks are split by cost. ``load_package`` is cheap (it reads the manifest and stats the
files): JSON, required keys, format version, file names, presence and sizes. The sha256 of a
file is computed the first time the file is used (``verify``/``session``/``load_stats``) and
remembered per process, keyed by the file's path, size and modification time. The ONNX
inputs/outputs are compared with the manifest when the session is created.

Every problem raises :class:`PackageError` (a :class:`ModelPackageError`) whose message says
which model and file are affected and what the animator can do about it.
"""
from __future__ import annotations

import contextlib

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import ModelPackageError

__all__ = [
    "FORMAT_VERSION", "MANIFEST_FILE", "TEXT_ENCODER_KIND", "DTYPES",
    "PackageError", "IncompatiblePackageError",
    "TensorSpec", "FileEntry", "ModelPackage",
    "load_package", "read_manifest", "write_manifest", "file_sha256", "cached_sha256",
    "parse_version", "version_satisfies",
]

#: The manifest format this code reads and writes. Packages with a higher number are refused
#: ("update the extension"); the number goes up only for changes older code cannot read.
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
TEXT_ENCODER_KIND = "text-encoder"

#: Manifest dtype names and onnxruntime's type strings.
DTYPES = {
    "float32": "tensor(float)", "float16": "tensor(float16)", "bfloat16": "tensor(bfloat16)",
    "float64": "tensor(double)", "int64": "tensor(int64)", "int32": "tensor(int32)",
    "int16": "tensor(int16)", "int8": "tensor(int8)", "uint8": "tensor(uint8)",
    "bool": "tensor(bool)", "string": "tensor(string)",
}
_ORT_TO_DTYPE = {v: k for k, v in DTYPES.items()}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_FIX = "reinstall the extension (or the model), or remove the folder {folder}"


# --- errors ---------------------------------------------------------------------------------

class PackageError(ModelPackageError):
    """A model package problem, with machine-readable details for callers and the registry.

    ``problem``: ``missing-folder``, ``missing-manifest``, ``bad-json``, ``invalid``,
    ``wrong-kind``, ``format-too-new``, ``incompatible``, ``missing-file``, ``size``,
    ``checksum``, ``load`` (onnxruntime/torch could not open the file) or ``signature``
    (the ONNX inputs/outputs differ from the manifest). ``package``: the model name when
    known; ``file``: the file name inside the package; ``path``: the affected path.
    """

    def __init__(self, message: str, *, problem: str, package: str | None = None,
                 file: str | None = None, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.problem = problem
        self.package = package
        self.file = file
        self.path = Path(path) if path is not None else None


class IncompatiblePackageError(PackageError):
    """The package is intact but this version of Sparse Motion cannot use it (format too new,
    another skeleton or representation, a text encoder that is not installed, …)."""


# --- versions -------------------------------------------------------------------------------

def parse_version(text: str) -> tuple:
    """Sort key of a semantic version ``MAJOR.MINOR.PATCH[-pre][+build]`` (build ignored,
    a pre-release sorts before its release). ValueError when ``text`` is not semver."""
    m = _SEMVER_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a semantic version such as '1.0.0'")
    major, minor, patch, pre = int(m[1]), int(m[2]), int(m[3]), m[4]
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def version_satisfies(version: str, requirement: str) -> bool:
    """Whether ``version`` meets ``requirement``: ``"*"`` (any), ``"=1.2.3"`` (exactly),
    ``">=1.2.0"`` (at least), or a plain ``"1.2.0"`` meaning compatible (same major version,
    at least this one; for 0.x the minor must match too, as in Cargo/npm caret ranges)."""
    requirement = requirement.strip()
    if requirement in ("", "*"):
        return True
    v = parse_version(version)
    if requirement.startswith(">="):
        return v >= parse_version(requirement[2:].strip())
    if requirement.startswith("="):
        return v == parse_version(requirement[1:].strip())
    r = parse_version(requirement.lstrip("^").strip())
    if v < r:
        return False
    return v[0] == r[0] and (r[0] != 0 or v[1] == r[1])


# --- checksums ------------------------------------------------------------------------------

def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file as lowercase hex (streamed, 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_sha_cache: dict[str, tuple[int, int, str]] = {}
_sha_lock = threading.Lock()


def cached_sha256(path: str | os.PathLike, hasher: Callable[[Path], str] | None = None) -> str:
    """``file_sha256`` remembered per process, keyed by (real path, size, mtime): a file
    is hashed again only after it changed on disk."""
    path = Path(path)
    st = path.stat()
    key = os.path.realpath(path)
    with _sha_lock:
        hit = _sha_cache.get(key)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = (hasher or file_sha256)(path).lower()
        _sha_cache[key] = (st.st_size, st.st_mtime_ns, digest)
        return digest


# --- manifest pieces ------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    """One ONNX input or output: name, dtype (a key of :data:`DTYPES`) and shape, whose
    entries are ints (fixed), strings (symbolic, e.g. ``"batch"``) or None (anything)."""

    name: str
    dtype: str
    shape: tuple = ()

    @classmethod
    def from_dict(cls, d: Mapping) -> "TensorSpec":
        return cls(str(d["name"]), str(d["dtype"]), tuple(d.get("shape", ())))

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_node_arg(cls, arg) -> "TensorSpec":
        """From an onnxruntime ``NodeArg`` (``session.get_inputs()[i]``)."""
        dtype = _ORT_TO_DTYPE.get(arg.type, arg.type)
        shape = tuple(d if isinstance(d, (int, str)) or d is None else None for d in arg.shape)
        return cls(arg.name, dtype, shape)

    def mismatch(self, other: "TensorSpec") -> str | None:
        """Why the session tensor ``other`` does not fit this spec (None when it does)."""
        if other.dtype != self.dtype:
            return f"{self.name!r} is {other.dtype}, manifest says {self.dtype}"
        if other.shape and self.shape and len(other.shape) != len(self.shape):
            return (f"{self.name!r} has {len(other.shape)} dimensions {list(other.shape)}, "
                    f"manifest says {list(self.shape)}")
        for a, b in zip(self.shape, other.shape):
            if isinstance(a, int) and isinstance(b, int) and a != b:
                return f"{self.name!r} has shape {list(other.shape)}, manifest says {list(self.shape)}"
        return None


@dataclass(frozen=True)
class FileEntry:
    """A file of the package: sha256, size, and for ONNX files the input/output spec.
    ``extra`` keeps the entry's other keys (``opset``, ``purpose``, ``session_config``, …)."""

    name: str
    sha256: str
    size: int | None = None
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None
    optional: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_onnx(self) -> bool:
        return self.inputs is not None


def _check_tensor_list(value, where: str, problems: list[str]) -> None:
    if not isinstance(value, list) or not value:
        problems.append(f"{where} must be a non-empty list of {{name, dtype, shape}}")
        return
    names = set()
    for i, t in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{w} must be an object")
            continue
        if not isinstance(t.get("name"), str) or not t["name"]:
            problems.append(f"{w}.name must be a non-empty string")
        elif t["name"] in names:
            problems.append(f"{w}.name {t['name']!r} is repeated")
        else:
            names.add(t["name"])
        if t.get("dtype") not in DTYPES:
            problems.append(f"{w}.dtype {t.get('dtype')!r} is not one of {', '.join(DTYPES)}")
        shape = t.get("shape", [])
        if not isinstance(shape, list) or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                or (isinstance(d, str) and d) for d in shape):
            problems.append(f"{w}.shape must be a list of ints, names (symbolic) or null")


def _check_file_name(name: str) -> str | None:
    if not isinstance(name, str) or not name or name.strip() != name:
        return f"file name {name!r} is empty or has surrounding spaces"
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"file name {name!r} must be relative and use '/'"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"file name {name!r} must stay inside the package folder"
    if name == MANIFEST_FILE:
        return f"the manifest cannot list itself ({name!r})"
    return None


def _positive_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _validate(manifest: dict) -> list[str]:
    """Problems of a manifest whose format_version is supported (empty when valid)."""
    problems: list[str] = []
    name = manifest.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append("name must be lowercase letters, digits, '.', '_' or '-' "
                        f"(at most 64), got {name!r}")
    kind = manifest.get("kind")
    if not isinstance(kind, str) or not _NAME_RE.match(kind):
        problems.append(f"kind must be a short lowercase word such as 'smdm', got {kind!r}")
    version = manifest.get("version")
    try:
        parse_version(version)
    except ValueError:
        problems.append(f"version must be semantic ('1.0.0'), got {version!r}")
    if not isinstance(manifest.get("commercial_use"), bool):
        problems.append("commercial_use must be true or false (false when any training data "
                        "or upstream model forbids commercial use)")
    if "default" in manifest and not isinstance(manifest["default"], bool):
        problems.append("default must be true or false")

    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("files must be an object {file name: {sha256, size, …}}")
        files = {}
    for fname, entry in files.items():
        if (why := _check_file_name(fname)) is not None:
            problems.append(why)
            continue
        where = f"files[{fname!r}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object")
            continue
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA_RE.match(sha.lower()):
            problems.append(f"{where}.sha256 must be 64 hex digits")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            problems.append(f"{where}.size must be a byte count")
        if "optional" in entry and not isinstance(entry["optional"], bool):
            problems.append(f"{where}.optional must be true or false")
        has_io = "inputs" in entry or "outputs" in entry
        if fname.lower().endswith(".onnx") or has_io:
            _check_tensor_list(entry.get("inputs"), f"{where}.inputs", problems)
            _check_tensor_list(entry.get("outputs"), f"{where}.outputs", problems)
        cfg = entry.get("session_config")
        if cfg is not None and not (isinstance(cfg, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in cfg.items())):
            problems.append(f"{where}.session_config must map strings to strings")

    if kind != TEXT_ENCODER_KIND:
        # a motion model: what it generates/reads must be stated
        if not isinstance(manifest.get("skeleton"), str) or not manifest.get("skeleton"):
            problems.append("skeleton must name the skeleton, e.g. 'bandai-21'")
        if not _positive_number(manifest.get("fps")):
            problems.append("fps must be a positive number, e.g. 20")
        rep = manifest.get("representation")
        if not (isinstance(rep, dict) and isinstance(rep.get("name"), str) and rep["name"]
                and isinstance(rep.get("feature_dim"), int) and rep["feature_dim"] > 0):
            problems.append("representation must be {\"name\": …, \"feature_dim\": …}, "
                            "e.g. {\"name\": \"humanml3d-257\", \"feature_dim\": 257}")
    stats = manifest.get("stats")
    if stats is not None:
        sfile = stats.get("file") if isinstance(stats, dict) else stats
        if not isinstance(sfile, str) or sfile not in files:
            problems.append(f"stats must name a file listed in files, got {sfile!r}")
    enc = manifest.get("text_encoder")
    if enc is not None:
        if not (isinstance(enc, dict) and isinstance(enc.get("name"), str) and enc["name"]):
            problems.append("text_encoder must be {\"name\": …, \"version\": …}")
        elif "version" in enc:
            try:
                version_satisfies("0.0.0", str(enc["version"]))
            except ValueError:
                problems.append(f"text_encoder.version {enc['version']!r} is not a version "
                                "requirement such as '1.0.0' or '>=1.2.0'")
    training = manifest.get("training")
    if training is not None:
        if not isinstance(training, dict):
            problems.append("training must be an object {data, command, seed, …}")
        else:
            data = training.get("data", [])
            if not isinstance(data, list) or not all(
                    isinstance(d, dict) and isinstance(d.get("name"), str)
                    and isinstance(d.get("license"), str) for d in data):
                problems.append("training.data must be a list of {name, license, …}")
            elif manifest.get("commercial_use") is True and any(
                    d.get("commercial_use") is False or "-NC" in d["license"].upper()
                    for d in data):
                problems.append("commercial_use must be false: training data "
                                + ", ".join(repr(d["name"]) for d in data if
                                            d.get("commercial_use") is False
                                            or "-NC" in d["license"].upper())
                                + " is licensed for non-commercial use only")
            if "command" in training and not isinstance(training["command"], str):
                problems.append("training.command must be a string")
            if "seed" in training and training["seed"] is not None and (
                    not isinstance(training["seed"], int) or isinstance(training["seed"], bool)):
                problems.append("training.seed must be an integer or null")
    if "metrics" in manifest and not isinstance(manifest["metrics"], dict):
        problems.append("metrics must be an object")
    runtime = manifest.get("runtime")
    if runtime is not None:
        cfg = runtime.get("onnxruntime_session_config") if isinstance(runtime, dict) else None
        if not isinstance(runtime, dict) or (cfg is not None and not (
                isinstance(cfg, dict) and all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in cfg.items()))):
            problems.append("runtime.onnxruntime_session_config must map strings to strings")
    return problems


# --- the package ----------------------------------------------------------------------------

class ModelPackage:
    """A checked model package (use :func:`load_package`). Cheap to create; files are hashed
    and sessions opened only when used. Thread-safe."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.kind: str = manifest["kind"]
        self.version: str = manifest["version"]
        self.format_version: int = manifest["format_version"]
        self.files: dict[str, FileEntry] = {}
        for fname, e in manifest["files"].items():
            known = ("sha256", "size", "inputs", "outputs", "optional")
            self.files[fname] = FileEntry(
                name=fname, sha256=e["sha256"].lower(), size=e.get("size"),
                inputs=tuple(TensorSpec.from_dict(t) for t in e["inputs"]) if "inputs" in e else None,
                outputs=tuple(TensorSpec.from_dict(t) for t in e["outputs"]) if "outputs" in e else None,
                optional=bool(e.get("optional", False)),
                extra={k: v for k, v in e.items() if k not in known})
        self._lock = threading.RLock()
        self._verified: set[tuple[str, int, int]] = set()  # (file, size, mtime_ns)
        self._sessions: dict[str, Path] = {}  # ONNX files whose sessions were handed out

    # --- manifest fields -----------------------------------------------------------------

    @property
    def label(self) -> str:
        """How messages name the model: ``Model 'smdm-default'``."""
        return f"Model '{self.name}'"

    @property
    def version_key(self) -> tuple:
        return parse_version(self.version)

    @property
    def is_default(self) -> bool:
        return bool(self.manifest.get("default", False))

    @property
    def skeleton(self) -> str | None:
        return self.manifest.get("skeleton")

    @property
    def fps(self) -> float | None:
        return self.manifest.get("fps")

    @property
    def representation(self) -> dict | None:
        return self.manifest.get("representation")

    @property
    def feature_dim(self) -> int | None:
        rep = self.representation
        return rep.get("feature_dim") if rep else None

    @property
    def stats_file(self) -> str | None:
        stats = self.manifest.get("stats")
        return stats.get("file") if isinstance(stats, dict) else stats

    @property
    def text_encoder(self) -> dict | None:
        """The text encoder this model needs: ``{"name": …, "version": …}`` or None."""
        return self.manifest.get("text_encoder")

    @property
    def commercial_use(self) -> bool:
        return bool(self.manifest["commercial_use"])

    @property
    def training(self) -> dict:
        return self.manifest.get("training") or {}

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics") or {}

    @property
    def description(self) -> str:
        return str(self.manifest.get("description", ""))

    def onnx_files(self) -> list[str]:
        return [n for n, e in self.files.items() if e.is_onnx]

    # --- files ---------------------------------------------------------------------------

    def _entry(self, name: str) -> FileEntry:
        try:
            return self.files[name]
        except KeyError:
            raise PackageError(
                f"{self.label} has no file {name!r} in its manifest (it has "
                f"{', '.join(sorted(self.files))}) — the package does not fit this version of "
                "Sparse Motion; reinstall the extension or the model",
                problem="invalid", package=self.name, file=name, path=self.path) from None

    def file_path(self, name: str) -> Path:
        """Absolute path of a listed file; PackageError ``missing-file`` when it is absent."""
        self._entry(name)
        path = self.path / name
        if not path.is_file():
            raise PackageError(
                f"{self.label} is missing file {name} ({path}) — "
                + _FIX.format(folder=self.path),
                problem="missing-file", package=self.name, file=name, path=path)
        return path

    def check_sizes(self, names: Iterable[str] | None = None) -> None:
        """Cheap check (no hashing): the files exist and have the sizes the manifest says."""
        for fname in (names if names is not None else self.files):
            entry = self._entry(fname)
            path = self.path / fname
            if not path.is_file():
                if entry.optional and names is None:
                    continue
                self.file_path(fname)
            if entry.size is not None:
                size = path.stat().st_size
                if size != entry.size:
                    raise PackageError(
                        f"{self.label} file {fname} is incomplete or corrupt: {size:,} bytes, "
                        f"the manifest says {entry.size:,} — "
                        + _FIX.format(folder=self.path),
                        problem="size", package=self.name, file=fname, path=path)

    def verify(self, names: str | Iterable[str] | None = None, *,
               hasher: Callable[[Path], str] | None = None) -> Path | None:
        """Check sha256 of the named file(s) (all non-optional files when None), once per
        package object and file version. Returns the path when one name is given.
        ``hasher(path) -> hex`` replaces :func:`file_sha256` (to count or speed up)."""
        single = isinstance(names, str)
        todo = [names] if single else list(names) if names is not None else [
            n for n, e in self.files.items() if not e.optional or (self.path / n).is_file()]
        path = None
        for fname in todo:
            entry = self._entry(fname)
            path = self.file_path(fname)
            st = path.stat()
            token = (fname, st.st_size, st.st_mtime_ns)
            with self._lock:
                if token in self._verified:
                    continue
                self.check_sizes([fname])
                actual = cached_sha256(path, hasher)
                if actual != entry.sha256:
                    raise PackageError(
                        f"{self.label} file {fname} is corrupt or was modified (checksum "
                        f"mismatch: expected sha256 {entry.sha256[:12]}…, got {actual[:12]}…; "
                        f"{path}) — " + _FIX.format(folder=self.path),
                        problem="checksum", package=self.name, file=fname, path=path)
                self._verified.add(token)
        return path if single else None

    def load_stats(self) -> dict:
        """The normalisation statistics (``stats`` file, a .npz or .npy) as numpy arrays."""
        import numpy as np

        name = self.stats_file
        if name is None:
            raise PackageError(f"{self.label} has no normalisation statistics (no 'stats' in "
                               "its manifest) — reinstall the extension or the model",
                               problem="invalid", package=self.name, path=self.path)
        path = self.verify(name)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except AttributeError:  # a .npy file: np.load returned the array itself
            return {"stats": np.load(path, allow_pickle=False)}
        except Exception as exc:
            raise PackageError(f"{self.label} statistics file {name} is unreadable ({exc}) — "
                               + _FIX.format(folder=self.path),
                               problem="load", package=self.name, file=name, path=path) from exc

    # --- running -------------------------------------------------------------------------

    def session_config(self, name: str) -> dict[str, str]:
        """onnxruntime session config entries the package asks for (manifest
        ``runtime.onnxruntime_session_config``, then the file's ``session_config``)."""
        cfg = dict((self.manifest.get("runtime") or {}).get("onnxruntime_session_config") or {})
        cfg.update(self._entry(name).extra.get("session_config") or {})
        return cfg

    def session(self, name: str | None = None, settings=None, *, providers: Sequence[str] | None = None,
                hasher: Callable[[Path], str] | None = None):
        """The onnxruntime session of ONNX file ``name`` (the only ONNX file when None).

        ``settings``: a :class:`~.runtime.RuntimeSettings` (device and threads; default AUTO
        and automatic threads). The file's sha256 is checked first (once), the session
        comes from the process-wide cache in :mod:`.runtime`, and its inputs/outputs are
        compared with the manifest."""
        from . import runtime

        if name is None:
            onnx = self.onnx_files()
            if len(onnx) != 1:
                raise ValueError(f"{self.label} has {len(onnx)} ONNX files "
                                 f"({', '.join(onnx)}); name the one to open")
            name = onnx[0]
        entry = self._entry(name)
        if not entry.is_onnx:
            raise ValueError(f"{self.label} file {name} is not an ONNX model")
        path = self.verify(name, hasher=hasher)
        try:
            sess = runtime.get_session(path, settings, providers=providers,
                                       config=self.session_config(name),
                                       label=f"{self.label} file {name}")
        except ModelPackageError as exc:
            raise PackageError(f"{exc} — " + _FIX.format(folder=self.path), problem="load",
                               package=self.name, file=name, path=path) from exc
        problem = self._signature_problem(entry, sess)
        if problem is not None:
            runtime.release(path)
            raise PackageError(
                f"{self.label} file {name} does not match its manifest: {problem} — the package "
                "was built wrongly; reinstall the extension or the model",
                problem="signature", package=self.name, file=name, path=path)
        with self._lock:
            self._sessions[name] = path
        return sess

    @staticmethod
    def _signature_problem(entry: FileEntry, sess) -> str | None:
        got_in = {a.name: TensorSpec.from_node_arg(a) for a in sess.get_inputs()}
        got_out = {a.name: TensorSpec.from_node_arg(a) for a in sess.get_outputs()}
        want_in = {t.name: t for t in entry.inputs}
        missing = [n for n in want_in if n not in got_in]
        extra = [n for n in got_in if n not in want_in]
        missing_out = [t.name for t in entry.outputs if t.name not in got_out]
        if missing or extra or missing_out:
            return (f"the model has inputs {sorted(got_in)} and outputs {sorted(got_out)}, the "
                    f"manifest lists inputs {sorted(want_in)} and outputs "
                    f"{[t.name for t in entry.outputs]}")
        for spec in (*entry.inputs, *entry.outputs):
            got = got_in.get(spec.name) or got_out[spec.name]
            if (why := spec.mismatch(got)) is not None:
                return why
        return None

    def torch_module(self, build: Callable, name: str | None = None, settings=None):
        """A part that runs with PyTorch (for layers that do not export to ONNX): ``build(torch)``
        returns the ``nn.Module``; ``name`` is its listed weights file (a state dict, loaded
        with ``weights_only=True``). Raises ModelPackageError when torch is not installed."""
        from . import runtime

        path = self.verify(name) if name is not None else None
        return runtime.load_torch_module(build, weights=path, settings=settings,
                                         label=f"{self.label}" + (f" file {name}" if name else ""))

    def release(self) -> int:
        """Drop this package's cached onnxruntime sessions (frees their memory once nobody
        else holds them). Returns how many were dropped."""
        from . import runtime

        with self._lock:
            paths, self._sessions = list(self._sessions.values()), {}
        return sum(runtime.release(p) for p in paths)

    def __repr__(self) -> str:
        return f"ModelPackage({self.name!r}, kind={self.kind!r}, version={self.version!r}, {str(self.path)!r})"

    # --- writing -------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike, **fields) -> "ModelPackage":
        """Write ``manifest.json`` into ``directory`` (see :func:`write_manifest`, whose
        keyword arguments these are) and load the result."""
        files = fields.pop("files")
        write_manifest(directory, fields, files=files)
        return load_package(directory)


def _raise_invalid(path: Path, manifest: dict, problems: list[str]) -> None:
    name = manifest.get("name") if isinstance(manifest.get("name"), str) else path.parent.name
    raise PackageError(
        f"Model '{name}' has an invalid manifest ({path}): " + "; ".join(problems)
        + " — reinstall the extension (or the model), or remove the folder " + str(path.parent),
        problem="invalid", package=name, file=MANIFEST_FILE, path=path)


def read_manifest(directory: str | os.PathLike) -> dict:
    """The parsed manifest of ``directory``, checked only for JSON errors and the format version."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PackageError(
            f"Model folder {directory} is missing — reinstall the extension, or remove it from "
            "the model folders (SPARSE_MOTION_MODELS)", problem="missing-folder", path=directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise PackageError(
            f"Folder {directory} is not a Sparse Motion model package (manifest.json is "
            "missing) — reinstall the model, or remove the folder",
            problem="missing-manifest", file=MANIFEST_FILE, path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"Model manifest {path} is unreadable ({exc}) — reinstall the model, "
                           f"or remove the folder {directory}",
                           problem="bad-json", file=MANIFEST_FILE, path=path) from exc
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PackageError(
            f"Model manifest {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
            f"{exc.colno} — reinstall the model, or fix or remove the folder {directory}",
            problem="bad-json", file=MANIFEST_FILE, path=path) from exc
    if not isinstance(manifest, dict):
        raise PackageError(f"Model manifest {path} is not a JSON object — reinstall the model, "
                           f"or remove the folder {directory}",
                           problem="bad-json", file=MANIFEST_FILE, path=path)
    fv = manifest.get("format_version")
    name = manifest.get("name") if isinstance(manifest.get("name"), str) else directory.name
    if not isinstance(fv, int) or isinstance(fv, bool) or fv < 1:
        _raise_invalid(path, manifest, [f"format_version must be a whole number >= 1 "
                                        f"(this extension writes {FORMAT_VERSION}), got {fv!r}"])
    if fv > FORMAT_VERSION:
        raise IncompatiblePackageError(
            f"Model '{name}' uses model package format {fv}, but this version of Sparse Motion "
            f"reads format {FORMAT_VERSION} at most — update the Sparse Motion extension to use "
            f"it, or remove the folder {directory}",
            problem="format-too-new", package=name, file=MANIFEST_FILE, path=path)
    return manifest


def load_package(directory: str | os.PathLike, *, kind: str | None = None,
                 check_files: bool = True) -> ModelPackage:
    """Read and check the package in ``directory`` (no hashing: see module docstring).

    ``kind``: the kind the caller needs (PackageError ``wrong-kind`` otherwise).
    ``check_files``: also check that the files exist with the right sizes.
    """
    directory = Path(directory).absolute()
    manifest = read_manifest(directory)
    path = directory / MANIFEST_FILE
    problems = _validate(manifest)
    if problems:
        _raise_invalid(path, manifest, problems)
    if kind is not None and manifest["kind"] != kind:
        raise PackageError(
            f"Model '{manifest['name']}' is a {manifest['kind']} model, not a {kind} model "
            f"({directory}) — choose another model, or reinstall the extension",
            problem="wrong-kind", package=manifest["name"], file=MANIFEST_FILE, path=path)
    pkg = ModelPackage(directory, manifest)
    if check_files:
        pkg.check_sizes()
    return pkg


def _infer_onnx_spec(path: Path) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return {"inputs": [TensorSpec.from_node_arg(a).to_dict() for a in sess.get_inputs()],
            "outputs": [TensorSpec.from_node_arg(a).to_dict() for a in sess.get_outputs()]}


def write_manifest(directory: str | os.PathLike, manifest: Mapping[str, Any], *,
                   files: Mapping[str, Mapping | None] | Sequence[str] | None = None) -> Path:
    """Write ``directory/manifest.json`` for the files already in ``directory``.

    ``manifest``: the other fields (name, kind, version, skeleton, fps, representation,
    stats, text_encoder, commercial_use, training, metrics, …); ``format_version`` is set.
    ``files``: file names, or {name: extra entry fields} (``inputs``/``outputs``,
    ``optional``, ``purpose``, ``session_config``, …); default: ``manifest["files"]``.
    sha256 and size are computed here; ONNX files without an ``inputs``/``outputs`` spec
    get it from onnxruntime (dims named in the ONNX graph stay symbolic). The result is
    validated (PackageError ``invalid``) before anything is written."""
    directory = Path(directory)
    out = {"format_version": FORMAT_VERSION}
    out.update({k: v for k, v in manifest.items() if k not in ("format_version", "files")})
    if files is None:
        files = manifest.get("files", {})
    if not isinstance(files, Mapping):
        files = {n: None for n in files}
    entries = {}
    for fname, extra in files.items():
        if (why := _check_file_name(fname)) is not None:
            raise ValueError(why)
        path = directory / fname
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in files) does not exist")
        entry = {"sha256": file_sha256(path), "size": path.stat().st_size}
        extra = dict(extra or {})
        extra.pop("sha256", None), extra.pop("size", None)
        if fname.lower().endswith(".onnx") and ("inputs" not in extra or "outputs" not in extra):
            spec = _infer_onnx_spec(path)
            extra.setdefault("inputs", spec["inputs"])
            extra.setdefault("outputs", spec["outputs"])
        entry.update(extra)
        entries[fname] = entry
    out["files"] = entries
    problems = _validate(out)
    if problems:
        raise PackageError(f"manifest for {directory} is invalid: " + "; ".join(problems),
                           problem="invalid", package=out.get("name"), path=directory)
    target = directory / MANIFEST_FILE
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


@contextlib.contextmanager
def describe_errors(label: str, package_dir, file_labels: Mapping[str, str]):
    """Turn a PackageError into a ModelPackageError that starts with what ``label`` (e.g.
    "text encoder") was doing and which of its files failed; the package layer's message,
    naming the model, the file and the fix, follows."""
    try:
        yield
    except PackageError as exc:
        what = file_labels.get(exc.file, f"file {exc.file}")
        path = exc.path or package_dir
        prefix = {
            "missing-folder": f"{label} package folder missing: {package_dir}",
            "missing-manifest": f"{label} manifest missing: {path}",
            "bad-json": f"{label} manifest unreadable: {path}",
            "wrong-kind": f"{label} manifest has the wrong kind: {path}",
            "missing-file": f"{label} {what} missing: {path}",
            "size": f"checksum mismatch for {label} {what} {path}",
            "checksum": f"checksum mismatch for {label} {what} {path}",
            "load": f"{label} {what} could not be loaded: {path}",
            "signature": f"{label} {what} has the wrong signature: {path}",
        }.get(exc.problem, f"{label} manifest invalid ({path})")
        raise ModelPackageError(f"{prefix}: {exc}") from exc
