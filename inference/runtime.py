# SPDX-License-Identifier: GPL-3.0-or-later
"""Where and how models run: onnxruntime sessions, and a PyTorch path for parts that do not
export (bpy-free; never imports bpy or torch at module import).

    settings = RuntimeSettings.from_preferences(preferences.get(context))  # AUTO/CPU/CUDA, threads
    sess = get_session(path, settings, config={"session.disable_quant_qdq": "1"})
    release()                                                # drop every cached session

Device: ``AUTO`` uses CUDA when the installed onnxruntime offers ``CUDAExecutionProvider``
(the ``onnxruntime-gpu`` build) and a GPU answers, else the CPU; ``CUDA`` asks for the GPU and
falls back to the CPU with a note (:func:`session_info`) when it cannot; ``CPU`` never uses
the GPU. Which device is used and why, in one line for people: :func:`device_status`
(onnxruntime) and :func:`resolve_torch_device` (the PyTorch path, same setting), both a
:class:`DeviceChoice`. On the GPU the memory arena grows only by what is asked for
(:data:`CUDA_OPTIONS`) and is freed with the session (:func:`release`). Threads: the preference, or ``min(physical cores, 4)`` when it is 0. Sessions never
spin (``session.intra_op.allow_spinning=0``) so idle inference threads leave Blender's CPU
alone, run one operator at a time (inter-op 1) and are cached per process by (file, device,
threads, options): a model is loaded once, whoever asks for it.

Model packages (:mod:`.package`) open their sessions through here; use this module directly
only for files that are not in a package.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from .errors import ModelPackageError

__all__ = [
    "state_from_onnx",
    "DEVICES", "CPU_PROVIDER", "CUDA_PROVIDER", "RuntimeSettings", "SessionInfo",
    "physical_cores", "usable_cpus", "default_threads", "available_providers",
    "select_providers", "session_options", "get_session", "session_info", "cached_sessions",
    "release", "TorchModule", "TorchRunner", "import_torch", "load_torch_module",
    "DeviceChoice", "cuda_gpus", "resolve_device", "device_status", "resolve_torch_device",
]

DEVICES = ("AUTO", "CPU", "CUDA")
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
MAX_AUTO_THREADS = 4
#: CUDA provider options: grow the GPU memory arena only by what is asked for (not by powers
#: of two), so the model leaves as much GPU memory as possible to Blender's viewport and
#: Cycles; the arena is freed when the session is released (:func:`release`).
CUDA_OPTIONS = {"arena_extend_strategy": "kSameAsRequested"}
_OPT_LEVELS = ("disable", "basic", "extended", "all")


# --- settings -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuntimeSettings:
    """Device (``AUTO``/``CPU``/``CUDA``), intra-op threads (0 = automatic) and graph
    optimisation level (``disable``/``basic``/``extended``/``all``)."""

    device: str = "AUTO"
    threads: int = 0
    optimization: str = "all"

    def __post_init__(self):
        device = str(self.device).upper()
        if device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        object.__setattr__(self, "device", device)
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise ValueError(f"threads must be 0 (automatic) or a positive integer, got {self.threads!r}")
        if self.optimization not in _OPT_LEVELS:
            raise ValueError(f"optimization must be one of {', '.join(_OPT_LEVELS)}, "
                             f"got {self.optimization!r}")

    @classmethod
    def from_preferences(cls, prefs: Any = None) -> "RuntimeSettings":
        """From the add-on preferences (``preferences.get(context)``: ``device``, ``threads``);
        missing attributes fall back to the defaults."""
        if prefs is None:
            return cls()
        return cls(device=str(getattr(prefs, "device", "AUTO") or "AUTO"),
                   threads=int(getattr(prefs, "threads", 0) or 0))

    @property
    def resolved_threads(self) -> int:
        return self.threads or default_threads()


# --- CPU count ------------------------------------------------------------------------------

def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _linux_physical(cpus: Sequence[int]) -> int | None:
    cores = set()
    for cpu in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                cores.add((base / name).read_text().strip())
                break
            except OSError:
                continue
        else:
            return None
    return len(cores) or None


def _macos_physical() -> int | None:
    import subprocess

    # performance cores on Apple silicon (efficiency cores slow a synchronous op down)
    for key in ("hw.perflevel0.physicalcpu", "hw.physicalcpu"):
        try:
            out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=2)
            if out.returncode == 0 and out.stdout.strip().isdigit():
                return int(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return None


def _windows_physical() -> int | None:
    import ctypes
    from ctypes import wintypes

    class Info(ctypes.Structure):  # SYSTEM_LOGICAL_PROCESSOR_INFORMATION
        _fields_ = [("mask", ctypes.c_size_t), ("relationship", ctypes.c_int),
                    ("reserved", ctypes.c_ulonglong * 2)]

    k32 = ctypes.windll.kernel32
    size = wintypes.DWORD(0)
    k32.GetLogicalProcessorInformation(None, ctypes.byref(size))
    buf = (Info * (size.value // ctypes.sizeof(Info)))()
    if not k32.GetLogicalProcessorInformation(buf, ctypes.byref(size)):
        return None
    return sum(1 for info in buf if info.relationship == 0) or None  # RelationProcessorCore


_physical: int | None = None


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads not counted; on Apple silicon the
    performance cores). Falls back to :func:`usable_cpus`. Cached."""
    global _physical
    if _physical is None:
        n = None
        try:
            if sys.platform.startswith("linux"):
                try:
                    cpus = sorted(os.sched_getaffinity(0))
                except (AttributeError, OSError):
                    cpus = list(range(os.cpu_count() or 1))
                n = _linux_physical(cpus)
            elif sys.platform == "darwin":
                n = _macos_physical()
            elif sys.platform == "win32":
                n = _windows_physical()
        except Exception:  # never fail over a CPU count
            n = None
        _physical = max(1, min(n or usable_cpus(), usable_cpus()))
    return _physical


def default_threads() -> int:
    """Intra-op threads when the preference is 0: ``min(physical cores, 4)``."""
    return min(MAX_AUTO_THREADS, physical_cores())


# --- devices: what is used, and why ------------------------------------------------------

@dataclass(frozen=True)
class DeviceChoice:
    """Where models run and why, for the preferences, the panel and batch manifests.

    ``requested``: ``AUTO``/``CPU``/``CUDA``; ``device``: ``CPU`` or ``CUDA`` (actually used,
    or what a new session will use); ``reason``: one line, e.g. "CUDA requested, no
    CUDA-capable onnxruntime: running on the CPU"; ``engine``: ``onnxruntime`` or ``torch``."""

    requested: str
    device: str
    reason: str
    engine: str = "onnxruntime"

    @property
    def fallback(self) -> bool:
        """CUDA was asked for and the CPU is used."""
        return self.requested == "CUDA" and self.device == "CPU"

    @property
    def torch_device(self) -> str:
        return "cuda" if self.device == "CUDA" else "cpu"

    def to_manifest(self) -> dict:
        return {"requested": self.requested, "used": self.device, "reason": self.reason,
                "engine": self.engine}


def _asked(requested: str) -> str:
    return "CUDA requested" if requested == "CUDA" else "automatic"


_CU_ERRORS = {100: "no CUDA-capable device", 35: "the NVIDIA driver is too old",
              3: "the driver is not initialised", 999: "unknown driver error"}


@functools.lru_cache(maxsize=1)
def cuda_gpus() -> tuple[tuple[str, ...], str | None]:
    """``(names of the NVIDIA GPUs the CUDA driver sees, why none when empty)``, asked of the
    driver itself (``libcuda`` / ``nvcuda.dll`` through ctypes: no CUDA toolkit, no torch).
    Cached for the process."""
    import ctypes

    libs = {"win32": ["nvcuda.dll"], "darwin": []}.get(sys.platform, ["libcuda.so.1", "libcuda.so"])
    cu = None
    for lib in libs:
        try:
            cu = ctypes.CDLL(lib)
            break
        except OSError:
            continue
    if cu is None:
        return (), "no NVIDIA driver" + (f": {libs[0]} not found" if libs else " on macOS")
    try:
        rc = cu.cuInit(0)
        if rc != 0:
            return (), f"the CUDA driver answers {_CU_ERRORS.get(rc, f'error {rc}')}"
        count = ctypes.c_int(0)
        cu.cuDeviceGetCount(ctypes.byref(count))
        names = []
        for i in range(count.value):
            dev, buf = ctypes.c_int(0), ctypes.create_string_buffer(256)
            cu.cuDeviceGet(ctypes.byref(dev), i)
            cu.cuDeviceGetName(buf, 256, dev)
            names.append(buf.value.decode("utf-8", "replace") or f"GPU {i}")
    except (AttributeError, OSError) as exc:  # a driver library without the calls we use
        return (), f"the CUDA driver could not be asked ({exc})"
    return tuple(names), (None if names else "the CUDA driver sees no GPU")


def ort_cuda_version() -> str | None:
    """The CUDA version the installed onnxruntime-gpu was built for (``"12.8"``), else None."""
    try:
        from onnxruntime.capi import build_and_package_info as info
    except ImportError:
        return None
    return getattr(info, "cuda_version", None) or None


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_device(device: str = "AUTO") -> DeviceChoice:
    """Where a new onnxruntime session of ``device`` (``AUTO``/``CPU``/``CUDA``) will run, and
    why: CUDA needs the ``CUDAExecutionProvider`` of an onnxruntime-gpu build *and* a GPU the
    NVIDIA driver sees (:func:`cuda_gpus`); otherwise the CPU, with the reason. A session that
    then fails to start CUDA (e.g. the CUDA runtime or cuDNN libraries missing) says so in its
    :class:`SessionInfo` (:func:`device_status`)."""
    device = RuntimeSettings(device=device).device
    if device == "CPU":
        return DeviceChoice("CPU", "CPU", "CPU chosen")
    asked = _asked(device)
    if CUDA_PROVIDER not in available_providers():
        return DeviceChoice(device, "CPU", f"{asked}, no CUDA-capable onnxruntime: running on the "
                                           "CPU (the GPU build of the extension has onnxruntime-gpu)")
    names, why = cuda_gpus()
    if not names:
        return DeviceChoice(device, "CPU", f"{asked}, onnxruntime-gpu found no NVIDIA GPU ({why}): "
                                           "running on the CPU")
    return DeviceChoice(device, "CUDA", f"{asked}: onnxruntime-gpu (CUDA {ort_cuda_version() or '?'}) "
                                        f"on {names[0]}")


def select_providers(device: str = "AUTO") -> tuple[list, str | None]:
    """(onnxruntime providers for ``device``, a note when a CUDA request cannot be met).
    The CPU is always last, as the fallback."""
    return _providers_for(resolve_device(device))


def _providers_for(choice: DeviceChoice) -> tuple[list, str | None]:
    """:func:`select_providers` of a device already resolved."""
    if choice.device == "CUDA":
        return [(CUDA_PROVIDER, dict(CUDA_OPTIONS)), CPU_PROVIDER], None
    return [CPU_PROVIDER], (choice.reason if choice.fallback else None)


def _provider_names(providers: Sequence) -> tuple[str, ...]:
    return tuple(p[0] if isinstance(p, (tuple, list)) else p for p in providers)


def session_options(threads: int, config: Mapping[str, str] | None = None,
                    optimization: str = "all"):
    """``onnxruntime.SessionOptions``: ``threads`` intra-op threads, inter-op 1, sequential
    execution, no spinning, the graph optimisation level, errors-only logging, plus the
    session config entries in ``config``."""
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = levels[optimization]
    so.log_severity_level = 3  # errors only
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    for key, value in (config or {}).items():
        so.add_session_config_entry(str(key), str(value))
    return so


# --- the session cache ----------------------------------------------------------------------

@dataclass
class SessionInfo:
    """What :func:`get_session` made: file, device actually used (``CPU``/``CUDA``), the
    session's providers, threads, a note when the requested device could not be used, and
    the :class:`DeviceChoice` (device and why; None for explicit providers)."""

    path: Path
    device: str
    providers: list[str]
    threads: int
    note: str | None = None
    key: tuple = field(default=(), repr=False)
    choice: DeviceChoice | None = None


_cache: dict[tuple, tuple[Any, SessionInfo]] = {}
_lock = threading.RLock()
_last_choice: dict[str, DeviceChoice] = {}  # requested device -> what its last session got


def _cuda_start_failed(requested: str, detail: str) -> DeviceChoice:
    libs = ort_cuda_version()
    need = f"CUDA {libs.split('.')[0]} runtime and cuDNN 9 libraries" if libs else "CUDA libraries"
    return DeviceChoice(requested, "CPU", f"{_asked(requested)}, onnxruntime-gpu could not start "
                                          f"CUDA ({detail}; are the {need} installed? see "
                                          "docs/gpu.md): running on the CPU")


def _preload_cuda_libraries() -> None:
    """CUDA/cuDNN from NVIDIA's pip wheels (``nvidia-*-cu12``) installed beside onnxruntime-gpu:
    onnxruntime's own ``preload_dlls`` loads them; system libraries need nothing."""
    import importlib.util

    if importlib.util.find_spec("nvidia") is None:
        return
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls(directory="")
        except Exception:  # the session then says what is missing
            pass


def get_session(path: str | os.PathLike, settings: RuntimeSettings | None = None, *,
                providers: Sequence | None = None, config: Mapping[str, str] | None = None,
                label: str | None = None):
    """The ``onnxruntime.InferenceSession`` of ``path``, created once per process for each
    (file version, device, threads, options) and then shared.

    ``settings``: device, threads and optimisation (default: AUTO, automatic threads).
    ``providers``: an explicit onnxruntime provider list, used as is (no fallback).
    ``config``: session config entries (e.g. ``{"session.disable_quant_qdq": "1"}``).
    ``label``: how error messages name the file (``"Model 'x' file y.onnx"``).
    Raises ModelPackageError when onnxruntime cannot open the file (or is not installed).
    """
    settings = settings or RuntimeSettings()
    path = Path(path)
    label = label or str(path)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelPackageError(
            "onnxruntime is not installed in Blender's Python — reinstall the Sparse Motion "
            "extension for your platform (it bundles onnxruntime)") from exc
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelPackageError(f"{label} is missing ({path}): {exc}") from exc
    choice = None
    if providers is not None:
        chosen, fallback = list(providers), False
    else:
        choice = resolve_device(settings.device)
        chosen, _ = _providers_for(choice)
        fallback = _provider_names(chosen) != (CPU_PROVIDER,)
    threads = settings.resolved_threads
    cfg = {str(k): str(v) for k, v in (config or {}).items()}
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, _provider_names(chosen), threads,
           settings.optimization, tuple(sorted(cfg.items())))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            if hit[1].choice is not None:
                _last_choice[settings.device] = hit[1].choice
            return hit[0]
        if fallback:
            _preload_cuda_libraries()
        try:
            sess = ort.InferenceSession(str(path), session_options(threads, cfg, settings.optimization),
                                        providers=chosen)
        except Exception as exc:
            if not fallback:
                raise ModelPackageError(f"{label} could not be loaded by onnxruntime ({path}): "
                                        f"{exc}") from exc
            # e.g. onnxruntime-gpu without a usable GPU/driver: the CPU still works
            try:
                sess = ort.InferenceSession(str(path), session_options(threads, cfg, settings.optimization),
                                            providers=[CPU_PROVIDER])
            except Exception as cpu_exc:
                raise ModelPackageError(f"{label} could not be loaded by onnxruntime ({path}): "
                                        f"{cpu_exc}") from cpu_exc
            choice = _cuda_start_failed(settings.device, str(exc).splitlines()[0][:200])
        used = list(sess.get_providers())
        if CUDA_PROVIDER in _provider_names(chosen) and CUDA_PROVIDER not in used \
                and choice is not None and choice.device == "CUDA":
            choice = _cuda_start_failed(settings.device, "the CUDA provider did not load")
        note = choice.reason if choice is not None and choice.fallback else None
        info = SessionInfo(path=path, device="CUDA" if CUDA_PROVIDER in used else "CPU",
                           providers=used, threads=threads, note=note, key=key, choice=choice)
        _cache[key] = (sess, info)
        if choice is not None:
            _last_choice[settings.device] = choice
        return sess


def device_status(settings: RuntimeSettings | None = None) -> DeviceChoice:
    """The device and why, for ``settings.device``: what the last session opened with that
    request actually got (a CUDA start that failed included), else what a new one would get
    (:func:`resolve_device`). What the preferences, the panel and batch manifests show."""
    device = (settings or RuntimeSettings()).device
    with _lock:
        last = _last_choice.get(device)
    return last or resolve_device(device)


def session_info(session) -> SessionInfo | None:
    """The :class:`SessionInfo` of a cached session (None for a session not made here)."""
    with _lock:
        for sess, info in _cache.values():
            if sess is session:
                return info
    return None


def cached_sessions() -> list[SessionInfo]:
    with _lock:
        return [info for _, info in _cache.values()]


def release(path: str | os.PathLike | None = None) -> int:
    """Drop cached sessions: all of them, or those of one file, or of every file under a
    folder (a package). The memory is freed once no caller holds the session any more.
    Returns how many were dropped."""
    with _lock:
        if path is None:
            n = len(_cache)
            _cache.clear()
            return n
        target = os.path.realpath(path)
        prefix = target.rstrip(os.sep) + os.sep
        drop = [k for k in _cache if k[0] == target or k[0].startswith(prefix)]
        for k in drop:
            del _cache[k]
        return len(drop)


# --- PyTorch (optional) ---------------------------------------------------------------------

@runtime_checkable
class TorchModule(Protocol):
    """A model part that runs with PyTorch rather than onnxruntime (e.g. a Mamba scan or a
    GAN part that does not export): numpy arrays in, numpy array(s) out."""

    def __call__(self, *inputs: Any, **named: Any) -> Any: ...

    def release(self) -> None: ...


def import_torch(label: str = "This model"):
    """``import torch``, or ModelPackageError with what to do when it is not installed."""
    try:
        import torch
    except ImportError as exc:
        raise ModelPackageError(
            f"{label} needs PyTorch for parts that do not run in onnxruntime, and PyTorch is "
            "not installed in Blender's Python — choose a model that runs with onnxruntime "
            "only, or install torch into Blender's Python") from exc
    return torch


def resolve_torch_device(device: str = "AUTO", torch=None,
                         label: str = "This model") -> DeviceChoice:
    """The torch device for ``device`` (``AUTO``/``CPU``/``CUDA``, the same setting as the
    onnxruntime sessions) and why: CUDA when torch was built with CUDA and
    ``torch.cuda.is_available()``; otherwise the CPU with the reason ("CUDA requested,
    PyTorch 2.13.0+cpu has no CUDA support: running on the CPU"). ``.torch_device`` is the
    string for ``.to()``. Raises ModelPackageError (:func:`import_torch`'s message) when torch
    is not installed."""
    device = RuntimeSettings(device=device).device
    torch = torch or import_torch(label)
    if device == "CPU":
        return DeviceChoice("CPU", "CPU", "CPU chosen", "torch")
    asked = _asked(device)
    version = getattr(torch, "__version__", "?")
    if not getattr(torch.version, "cuda", None):
        return DeviceChoice(device, "CPU", f"{asked}, PyTorch {version} has no CUDA support (a "
                                           "CPU build): running on the CPU", "torch")
    if not torch.cuda.is_available():
        names, why = cuda_gpus()
        detail = why or "the driver does not fit this build"
        return DeviceChoice(device, "CPU", f"{asked}, PyTorch {version} (CUDA "
                                           f"{torch.version.cuda}) finds no usable GPU ({detail}): "
                                           "running on the CPU", "torch")
    return DeviceChoice(device, "CUDA", f"{asked}: PyTorch {version} (CUDA {torch.version.cuda}) "
                                        f"on {torch.cuda.get_device_name(0)}", "torch")


class TorchRunner:
    """Runs an ``nn.Module`` in inference mode on numpy arrays (implements TorchModule)."""

    def __init__(self, module, device: str, torch_module=None, choice: DeviceChoice | None = None):
        self.module = module
        self.device = device
        self._torch = torch_module
        self.choice = choice  # the device and why (resolve_torch_device)

    def _to_torch(self, x):
        torch = self._torch
        if isinstance(x, torch.Tensor):
            return x.to(self.device)
        import numpy as np

        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return x

    def _to_numpy(self, y):
        torch = self._torch
        if isinstance(y, torch.Tensor):
            return y.detach().to("cpu").numpy()
        if isinstance(y, (tuple, list)):
            return type(y)(self._to_numpy(v) for v in y)
        if isinstance(y, dict):
            return {k: self._to_numpy(v) for k, v in y.items()}
        return y

    def __call__(self, *inputs, **named):
        if self.module is None:
            raise RuntimeError("this PyTorch model part was released")
        with self._torch.inference_mode():
            out = self.module(*(self._to_torch(x) for x in inputs),
                              **{k: self._to_torch(v) for k, v in named.items()})
        return self._to_numpy(out)

    def release(self) -> None:
        self.module = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def state_from_onnx(torch, path) -> dict:
    """A module's state dict from the initializers of its ONNX export (exported unoptimised,
    so every parameter keeps its name and layout): the PyTorch path of a package reads the
    same weights as onnxruntime, and the package holds one copy. Needs the ``onnx`` package."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise ModelPackageError("The PyTorch path of this model reads its weights from the "
                                "ONNX files and needs the 'onnx' package beside torch — install "
                                "it where torch is installed, or use the onnxruntime path") from exc
    m = onnx.load(str(path))
    return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}


def load_torch_module(build: Callable, *, weights: str | os.PathLike | None = None,
                      settings: RuntimeSettings | None = None,
                      label: str = "This model") -> TorchRunner:
    """Build a PyTorch part: ``build(torch)`` returns the ``nn.Module``; ``weights`` is a
    state dict file (loaded with ``weights_only=True``). Device from ``settings`` (CUDA when
    AUTO/CUDA and ``torch.cuda.is_available()``); threads are set when ``settings.threads``
    is given; ``.choice`` of the result says which device and why (:func:`resolve_torch_device`).
    torch is imported only here."""
    torch = import_torch(label)
    settings = settings or RuntimeSettings()
    choice = resolve_torch_device(settings.device, torch, label)
    device = choice.torch_device
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        module = build(torch)
        if weights is not None:
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        module = module.eval().to(device)
    except Exception as exc:
        raise ModelPackageError(f"{label} could not be loaded by PyTorch: {exc}") from exc
    return TorchRunner(module, device, torch, choice)
