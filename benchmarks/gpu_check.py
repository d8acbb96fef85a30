# SPDX-License-Identifier: GPL-3.0-or-later
"""The GPU check (issue 18): one command for a maintainer with an NVIDIA GPU.

    .venv/bin/python benchmarks/gpu_check.py [--json gpu-check.json] [--train-minutes 2]

It needs the GPU build of onnxruntime in the Python it runs in (``pip install
onnxruntime-gpu==1.26.0`` for CUDA 12 in place of ``onnxruntime``; docs/gpu.md) and, for the
training run, a CUDA build of torch. In order:

1. **Providers**: onnxruntime's version and execution providers, the GPUs the NVIDIA driver
   sees, torch's CUDA, and where a CUDA request lands and why (``runtime.DeviceChoice``).
2. **Parity, CPU vs GPU, for every shipped package** (``models/*``: the text encoder, every
   text-to-motion model, the motion classifiers and the evaluator): each model is used as
   the extension uses it on the CPU while every onnxruntime call is recorded, then each
   recorded call is run again on a CUDA session of the same file; the worst |CPU - GPU| per
   file (bar: 1e-3). The whole 10 s generation is compared too (information: 50 sampling
   steps carry rounding differences along). The PyTorch path (sMDM's ``backend="torch"``
   with the package's ``denoiser.pt``) is compared the same way when torch has CUDA.
3. **Time per 10 s motion** per text-to-motion model at its default steps (text, sampling,
   decoding; the median of ``--repeats`` after a warm-up), CPU and GPU, and the ratio. The
   issue's bar: sMDM at 50 steps <= 0.15 s on the GPU (writing the keys in Blender adds
   ~10 ms: ``benchmarks/generate.py``).
4. **GPU memory** of this process (``nvidia-smi``) with each model loaded, and after
   ``runtime.release()`` (the arena grows only by what is asked: kSameAsRequested).
5. **Training smoke run**: ``torchrun --nproc_per_node <GPUs>`` of the tiny sMDM for
   ``--train-minutes`` with ``--device cuda`` (DDP over nccl, bf16): steps done, loss at the
   start and the end.

Without a GPU (or without the GPU builds) it says so plainly, skips the GPU parts with the
reason, still measures the CPU times, and exits 0. Exit 1: a GPU was there and a parity bar
was missed or the training run failed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.inference import registry as _registry  # noqa: E402
from sparse_motion.inference import runtime  # noqa: E402
from sparse_motion.inference.generation import KINDS, open_model  # noqa: E402
from sparse_motion.inference.runtime import RuntimeSettings  # noqa: E402

PROMPT = "a person walks forward and waves with the right hand"
PROMPTS = [PROMPT, "someone jumps twice", "an old man sits down slowly", "a person kicks"]
SECONDS = 10.0
PARITY_BAR = 1e-3
SMDM_BAR_S = 0.15


def say(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- 1. providers


def environment() -> dict:
    import onnxruntime as ort

    gpus, why = runtime.cuda_gpus()
    env = {"python": platform.python_version(), "platform": platform.platform(),
           "onnxruntime": ort.__version__, "onnxruntime_cuda": runtime.ort_cuda_version(),
           "providers": ort.get_available_providers(), "gpus": list(gpus), "no_gpu_reason": why,
           "onnxruntime_cuda_request": runtime.resolve_device("CUDA").to_manifest()}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["torch_gpus"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
        env["torch_cuda_request"] = runtime.resolve_torch_device("CUDA", torch).to_manifest()
    except ImportError:
        env["torch"] = None
        env["torch_gpus"] = 0
    return env


# --------------------------------------------------------------------------- 2. parity


@contextlib.contextmanager
def recording(calls: list):
    """Every ``InferenceSession.run`` made inside: ``(model file, output names, feeds)``
    appended to ``calls`` (the first 3 per file), the call itself unchanged."""
    import onnxruntime as ort

    cls = ort.InferenceSession
    original = cls.run
    seen: dict = {}

    def run(self, output_names, input_feed, run_options=None):
        info = runtime.session_info(self)
        if info is not None and seen.get(info.path, 0) < 3:
            seen[info.path] = seen.get(info.path, 0) + 1
            calls.append((info, output_names, {k: np.array(v) for k, v in input_feed.items()}))
        return original(self, output_names, input_feed, run_options)

    cls.run = run
    try:
        yield calls
    finally:
        cls.run = original


def use_every_package(reg, settings: RuntimeSettings) -> dict:
    """Use every shipped package as the extension does; returns each text-to-motion model's
    generated features (name -> (F, 257))."""
    from sparse_motion.inference.classifier import MotionClassifier
    from sparse_motion.inference.evaluator import Evaluator
    from sparse_motion.inference.text_encoder import TextEncoder

    out = {}
    for pkg in reg.packages(tuple(KINDS)):
        model = open_model(pkg, settings=settings)
        gen = model.generate(PROMPT, seconds=SECONDS, seed=0)
        out[pkg.name] = gen.features[0]
        model.release()
    motions = list(out.values()) or [np.zeros((200, 257), np.float32)]
    for pkg in reg.packages("text-encoder"):
        TextEncoder(pkg.path, threads=settings.resolved_threads, device=settings.device).encode(PROMPTS)
    for pkg in reg.packages("motion-classifier"):
        MotionClassifier(pkg, threads=settings.resolved_threads, device=settings.device).predict(motions)
    for pkg in reg.packages("evaluator"):
        ev = Evaluator(pkg.path, threads=settings.resolved_threads, device=settings.device)
        ev.embed_motion(motions)
        ev.embed_text(PROMPTS)
    return out


def parity(reg, threads: int) -> dict:
    """Per ONNX file: the worst |CPU - GPU| over the recorded calls; and per generated model
    the whole generation's worst difference."""
    calls: list = []
    with recording(calls):
        cpu_out = use_every_package(reg, RuntimeSettings(device="CPU", threads=threads))
    files = {}
    for info, names, feeds in calls:
        config = dict(info.key[-1]) if info.key else {}
        cpu = runtime.get_session(info.path, RuntimeSettings(device="CPU", threads=threads),
                                  config=config)
        gpu = runtime.get_session(info.path, RuntimeSettings(device="CUDA", threads=threads),
                                  config=config)
        got = runtime.session_info(gpu)
        if got.device != "CUDA":
            raise SystemExit(f"{info.path}: the CUDA session runs on the CPU: {got.note}")
        a, b = cpu.run(names, feeds), gpu.run(names, feeds)
        worst = max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                    for x, y in zip(a, b))
        key = f"{info.path.parent.name}/{info.path.name}"
        files[key] = max(files.get(key, 0.0), worst)
    runtime.release()
    gpu_out = use_every_package(reg, RuntimeSettings(device="CUDA", threads=threads))
    generations = {k: float(np.max(np.abs(cpu_out[k] - gpu_out[k]))) for k in cpu_out}
    runtime.release()
    return {"files": files, "generation_max_abs": generations}


def torch_parity(reg) -> dict:
    """The PyTorch path: one denoiser call of each sMDM package's ``denoiser.pt`` (backend
    torch) on the CPU and on CUDA, on the same inputs: the worst |CPU - GPU|."""
    from sparse_motion.inference import smdm_core as core

    out = {}
    rng = np.random.default_rng(0)
    for pkg in reg.packages("smdm"):
        if "denoiser.pt" not in pkg.files:
            continue
        B, N = 2, 200
        keys, left, w = core.interpolation_batch([core.uniform_keys(N, core.key_count(N))] * B, N)
        feeds = {"x_t": rng.standard_normal((B, N, pkg.feature_dim)).astype(np.float32),
                 "t": np.array([10, 500], np.int64), "key_idx": keys, "interp_left": left,
                 "interp_w": w, "text": rng.standard_normal((B, 384)).astype(np.float32)}
        got = []
        for device in ("CPU", "CUDA"):
            model = open_model(pkg, settings=RuntimeSettings(device=device), backend="torch").load()
            if model.device.device != device:
                raise SystemExit(f"{pkg.name}: torch on {device}: {model.device.reason}")
            got.append(np.asarray(model._run(feeds), np.float64))
            model.release()
        out[f"{pkg.name}/denoiser.pt"] = float(np.max(np.abs(got[0] - got[1])))
    return out


# --------------------------------------------------------------------------- 3./4. time, memory


def gpu_memory_mib() -> float | None:
    """This process's GPU memory (MiB) as nvidia-smi reports it; None when it cannot say."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    res = subprocess.run([smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30)
    used = [float(parts[1]) for line in res.stdout.splitlines()
            if len(parts := [p.strip() for p in line.split(",")]) == 2 and parts[0] == str(os.getpid())]
    return sum(used) if res.returncode == 0 else None


def time_model(pkg, settings: RuntimeSettings, repeats: int) -> dict:
    model = open_model(pkg, settings=settings).load()
    model.generate(PROMPT, seconds=SECONDS, seed=0)  # warm-up (sessions, CUDA kernels)
    memory = gpu_memory_mib() if model.device.device == "CUDA" else None
    totals = []
    for r in range(repeats):
        t0 = time.perf_counter()
        gen = model.generate(PROMPT, seconds=SECONDS, seed=r + 1)
        gen.motion(0)
        totals.append(time.perf_counter() - t0)
    out = {"seconds": statistics.median(totals), "steps": model.config.get("steps"),
           "device": model.device.to_manifest(), "gpu_memory_mib": memory}
    model.release()
    runtime.release()
    out["gpu_memory_after_release_mib"] = gpu_memory_mib() if memory is not None else None
    return out


# --------------------------------------------------------------------------- 5. training


def training_smoke(minutes: float, gpus: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gpu-check-train-") as tmp:
        out = Path(tmp) / "tiny"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(gpus), str(ROOT / "training" / "tiny_smdm.py"), str(out), "--no-export",
               "--device", "cuda", "--steps", "1000000", "--max-minutes", str(minutes),
               "--batch", str(16 * gpus), "--log-every", "50"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=minutes * 60 + 600)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            return {"ok": False, "command": " ".join(cmd[1:]), "error": res.stderr[-3000:]}
        import torch

        hist = torch.load(f"{out}.work/checkpoint.pt", weights_only=False)["history"]
    return {"ok": True, "processes": gpus, "wall_s": round(wall, 1), "steps": hist[-1]["step"],
            "mse_first": hist[0]["mse"], "mse_last": hist[-1]["mse"]}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: automatic)")
    ap.add_argument("--train-minutes", type=float, default=2.0)
    ap.add_argument("--no-train", action="store_true", help="skip the training smoke run")
    args = ap.parse_args(argv)
    reg = _registry.Registry(user_dirs=[])
    res = {"environment": environment()}
    env = res["environment"]
    say("== Providers")
    for k in ("python", "onnxruntime", "onnxruntime_cuda", "providers", "gpus", "torch",
              "torch_cuda", "torch_gpus"):
        say(f"  {k:18s} {env.get(k)}")
    say(f"  CUDA request      onnxruntime: {env['onnxruntime_cuda_request']['reason']}")
    if "torch_cuda_request" in env:
        say(f"  CUDA request      torch: {env['torch_cuda_request']['reason']}")
    gpu = runtime.resolve_device("CUDA").device == "CUDA"
    if not gpu:
        why = env["no_gpu_reason"] or env["onnxruntime_cuda_request"]["reason"]
        say(f"\nNO GPU here ({why}): the GPU parity, GPU times, GPU memory and training run "
            "are skipped; the CPU times follow.")
    failed = []

    say("\n== Parity CPU vs GPU (max |diff| per model file; bar 1e-3)")
    if gpu:
        res["parity"] = parity(reg, args.threads)
        for f, d in sorted(res["parity"]["files"].items()):
            ok = d <= PARITY_BAR
            failed += [] if ok else [f"parity {f}"]
            say(f"  {f:40s} {d:.2e}  {'ok' if ok else 'MISSED'}")
        for k, d in res["parity"]["generation_max_abs"].items():
            say(f"  {k + ' (whole 10 s generation)':40s} {d:.2e}  (information)")
    else:
        say("  skipped: no GPU")
    if env.get("torch_gpus"):
        res["torch_parity"] = torch_parity(reg)
        for f, d in res["torch_parity"].items():
            failed += [] if d <= PARITY_BAR else [f"torch parity {f}"]
            say(f"  {f + ' (PyTorch path)':40s} {d:.2e}  {'ok' if d <= PARITY_BAR else 'MISSED'}")
    else:
        say("  PyTorch path skipped: no GPU for torch")

    say(f"\n== Time per {SECONDS:g} s motion at the default steps (median of {args.repeats})")
    res["timing"] = {}
    for pkg in reg.packages(tuple(KINDS)):
        row = res["timing"][pkg.name] = {
            "cpu": time_model(pkg, RuntimeSettings(device="CPU", threads=args.threads), args.repeats)}
        line = f"  {pkg.name:22s} {row['cpu']['steps']} steps: CPU {row['cpu']['seconds']:.3f} s"
        if gpu:
            row["gpu"] = time_model(pkg, RuntimeSettings(device="CUDA", threads=args.threads),
                                    args.repeats)
            g = row["gpu"]
            line += (f", GPU {g['seconds']:.3f} s ({row['cpu']['seconds'] / g['seconds']:.1f}x); "
                     f"GPU memory {g['gpu_memory_mib']} MiB loaded, "
                     f"{g['gpu_memory_after_release_mib']} MiB after release")
            if pkg.kind == "smdm" and g["steps"] == 50:
                line += f"; bar {SMDM_BAR_S} s {'met' if g['seconds'] <= SMDM_BAR_S else 'MISSED'}"
        else:
            line += ", GPU skipped: no GPU"
        say(line)

    say(f"\n== Training smoke run ({args.train_minutes:g} min, DDP on the available GPUs)")
    if args.no_train:
        say("  skipped: --no-train")
    elif not env.get("torch_gpus"):
        reason = (env.get("torch_cuda_request") or {}).get("reason", "torch is not installed")
        say(f"  skipped: no GPU for torch ({reason})")
    else:
        res["training"] = t = training_smoke(args.train_minutes, env["torch_gpus"])
        if t["ok"]:
            say(f"  {t['processes']} processes: {t['steps']} steps in {t['wall_s']} s, "
                f"mse {t['mse_first']:.4f} -> {t['mse_last']:.4f}")
        else:
            failed.append("training")
            say(f"  FAILED: {t['command']}\n{t['error']}")
    res["gpu"] = gpu
    res["failed"] = failed
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    say("\n" + ("all GPU checks passed" if gpu and not failed else
                f"failed: {', '.join(failed)}" if failed else "no GPU: GPU checks skipped"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
