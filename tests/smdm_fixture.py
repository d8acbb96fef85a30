# SPDX-License-Identifier: GPL-3.0-or-later
"""The tiny sMDM package the tests generate with: trained and exported by
``training/tiny_smdm.py`` (real torch training, real ONNX export) once per source version,
cached in ``build/test-models`` (keyed by a hash of the code it depends on) so the Blender
4.5, 5.0 and 4.2 runs share it. Built with whichever Python has torch (this one, else the
repository's ``.venv``, else ``.venv-train``)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["training/tiny_smdm.py", "training/train_smdm.py", "training/distributed.py",
           "inference/smdm_net.py",
           "inference/smdm_core.py", "motion/features.py", "motion/canonical.py",
           "inference/package.py", "models/text-minilm-l6/manifest.json"]
NAME = "smdm-tiny-test"


def _key(sources=SOURCES) -> str:
    h = hashlib.sha256()
    for s in sources:
        h.update((ROOT / s).read_bytes())
    return h.hexdigest()[:12]


def _python_with_torch():
    cands = [Path(sys.executable), ROOT / ".venv" / "bin" / "python",
             ROOT / ".venv-train" / "bin" / "python"]
    for py in cands:
        if py.exists() and subprocess.run([str(py), "-c", "import torch, onnxscript"],
                                          capture_output=True).returncode == 0:
            return py
    return None


def cached_package(name: str, script: str, sources, keep_work: bool = False) -> Path:
    """``build/test-models/<key>/<name>``, built on first use by ``script OUT`` (a training
    script that trains, exports and packages); ``keep_work``: keep its ``OUT.work`` folder."""
    base = ROOT / "build" / "test-models" / _key(sources)
    out = base / name
    if (out / "manifest.json").is_file():
        return out
    py = _python_with_torch()
    if py is None:
        pytest.skip("torch is not installed: run tools/setup.sh to train the tiny test model")
    # a folder of this process: two test runs building the same model at once (two Blender
    # versions side by side) must not delete each other's half-built files
    tmp = base / f"{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(str(tmp) + ".work", ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([str(py), str(ROOT / script), str(tmp)], env=env,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{name} build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    if (out / "manifest.json").is_file():  # another run finished first: use its model
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(str(tmp) + ".work", ignore_errors=True)
        return out
    if keep_work:
        shutil.rmtree(str(out) + ".work", ignore_errors=True)
        os.replace(str(tmp) + ".work", str(out) + ".work")
    else:
        shutil.rmtree(str(tmp) + ".work", ignore_errors=True)
    os.replace(tmp, out)
    return out


def tiny_package() -> Path:
    """The folder ``build/test-models/<key>/smdm-tiny-test`` (built on first use)."""
    return cached_package(NAME, "training/tiny_smdm.py", SOURCES)


#: The tiny MotionLCM package (``training/tiny_motionlcm.py``: the four stages on synthetic
#: walks and arm raises), cached like the sMDM one; its work folder is kept (torch weights).
LCM_NAME = "motionlcm-tiny-test"
LCM_SOURCES = ["training/tiny_motionlcm.py", "training/train_motionlcm.py",
               "training/tiny_smdm.py", "training/train_smdm.py", "training/distributed.py",
               "inference/motionlcm_net.py",
               "inference/smdm_core.py", "motion/features.py", "motion/canonical.py",
               "inference/package.py", "models/text-minilm-l6/manifest.json"]


def tiny_lcm_package() -> Path:
    """The folder ``build/test-models/<key>/motionlcm-tiny-test`` (built on first use)."""
    return cached_package(LCM_NAME, "training/tiny_motionlcm.py", LCM_SOURCES, keep_work=True)


def copy_package(dst: Path) -> Path:
    """A private copy (to break) of the tiny package in ``dst``."""
    out = dst / NAME
    shutil.copytree(tiny_package(), out)
    return out


#: The tiny KMM package (``training/tiny_kmm.py``: tokenizer and masked Mamba on the synthetic
#: walks and arm raises), cached like the others.
KMM_NAME = "kmm-tiny-test"
KMM_SOURCES = ["training/tiny_kmm.py", "training/train_kmm.py", "training/tiny_motionlcm.py",
               "training/train_motionlcm.py", "training/tiny_smdm.py", "training/train_smdm.py",
               "training/distributed.py", "inference/kmm_net.py", "motion/features.py",
               "motion/canonical.py", "inference/package.py",
               "models/text-minilm-l6/manifest.json"]


def tiny_kmm_package() -> Path:
    """The folder ``build/test-models/<key>/kmm-tiny-test`` (built on first use)."""
    return cached_package(KMM_NAME, "training/tiny_kmm.py", KMM_SOURCES)


@contextlib.contextmanager
def broken_package(models: Path, damage: str):
    """The tiny package installed in the folder ``models`` (the registry's user folder) as
    ``smdm-broken-<damage>``: its ``denoiser.onnx`` missing (``"missing"``) or with 64 bytes
    overwritten (``"corrupt"``), or not installed at all (``"absent"``); the registry rescanned
    for the block and after it, the copy removed. Yields the name."""
    from sparse_motion.inference import registry

    name = "smdm-broken-" + damage
    pkg = models / name
    if damage != "absent":
        shutil.copytree(tiny_package(), pkg)
        manifest = json.loads((pkg / "manifest.json").read_text())
        manifest["name"] = name
        (pkg / "manifest.json").write_text(json.dumps(manifest))
        onnx = pkg / "denoiser.onnx"
        if damage == "missing":
            onnx.unlink()
        else:
            data = bytearray(onnx.read_bytes())
            data[1000:1064] = b"\1" * 64
            onnx.write_bytes(bytes(data))
    try:
        registry.get_registry(refresh=True)
        yield name
    finally:
        shutil.rmtree(pkg, ignore_errors=True)
        registry.get_registry(refresh=True)


#: The tiny EMDM package (``training/tiny_emdm.py``: the GAN on the synthetic walks and arm
#: raises, T = 10), cached like the others.
EMDM_NAME = "emdm-tiny-test"
EMDM_SOURCES = ["training/tiny_emdm.py", "training/train_emdm.py", "training/tiny_motionlcm.py",
                "training/train_motionlcm.py", "training/tiny_smdm.py", "training/train_smdm.py",
                "training/distributed.py", "inference/emdm_net.py",
                "inference/motionlcm_net.py", "inference/smdm_net.py", "inference/smdm_core.py",
                "motion/features.py", "motion/canonical.py", "inference/package.py",
                "models/text-minilm-l6/manifest.json"]


def tiny_emdm_package() -> Path:
    """The folder ``build/test-models/<key>/emdm-tiny-test`` (built on first use)."""
    return cached_package(EMDM_NAME, "training/tiny_emdm.py", EMDM_SOURCES)
