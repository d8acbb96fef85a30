# SPDX-License-Identifier: GPL-3.0-or-later
"""benchmarks/gpu_check.py runs anywhere: without a GPU it says so plainly, skips the GPU
parts with the reason and exits 0 after the CPU times; with one, it exits 0 only when every
shipped package's CPU/GPU parity holds and the training run works."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_here(tmp_path):
    out = tmp_path / "gpu-check.json"
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--repeats",
                          "1", "--no-train", "--threads", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    env = data["environment"]
    assert env["onnxruntime"] and "CPUExecutionProvider" in env["providers"]
    assert data["timing"]["smdm-default"]["cpu"]["seconds"] > 0
    assert data["timing"]["smdm-default"]["cpu"]["steps"] == 50
    if data["gpu"]:  # a GPU machine: every parity bar held
        assert data["failed"] == [] and data["parity"]["files"]
        assert all(d <= 1e-3 for d in data["parity"]["files"].values())
        assert data["timing"]["smdm-default"]["gpu"]["device"]["used"] == "CUDA"
    else:
        assert "NO GPU here (" in res.stdout and "no GPU: GPU checks skipped" in res.stdout
        assert "parity" not in data and "gpu" not in data["timing"]["smdm-default"]
        assert res.stdout.count("skipped") >= 3
