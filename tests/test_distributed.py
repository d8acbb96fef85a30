# SPDX-License-Identifier: GPL-3.0-or-later
"""Training on several processes (training/distributed.py, issue 18 item 3): the tiny sMDM
trained under ``torchrun --nproc_per_node 2`` on the CPU (gloo) follows the loss curve of one
process on the same global batch, and its checkpoint resumes in one process where the
one-process run would be. The GPU form (nccl, one process per GPU) is marked ``gpu``."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import distributed  # noqa: E402

STEPS, SPLIT = 24, 12
# no dropout (its masks would differ between a batch of 16 and two of 8) and full learning
# rate from the first step, so a step without gradient averaging would show (5-27 % off)
TRAIN = ["--steps", str(STEPS), "--seed", "0", "--no-export", "--device", "cpu", "--dropout",
         "0", "--log-every", "1", "--warmup", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(cmd, timeout=120):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _tiny(out, *extra):
    return [str(ROOT / "training" / "tiny_smdm.py"), str(out), *TRAIN, *extra]


def _checkpoint(out):
    return torch.load(f"{out}.work/checkpoint.pt", weights_only=False, map_location="cpu")


def _curve(out):
    return np.array([h["batch_mse"] for h in _checkpoint(out)["history"]])


def test_two_processes_follow_one_and_resume_in_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, *_tiny(one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          *_tiny(two, "--stop-at", str(SPLIT))])
    ckpt = _checkpoint(two)
    assert ckpt["step"] == SPLIT and len(ckpt["history"]) == SPLIT
    assert not any(k.startswith("module.") for k in ckpt["model"])  # the unwrapped weights
    _run([sys.executable, *_tiny(two, "--resume")])  # 2 processes -> 1
    a, b = _curve(one), _curve(two)
    assert len(a) == len(b) == STEPS
    assert np.ptp(a) > 0.1  # a real curve: the batches and the model change
    np.testing.assert_allclose(b[:SPLIT], a[:SPLIT], rtol=1e-4)  # torchrun, 2 x 8 = 16
    np.testing.assert_allclose(b[SPLIT:], a[SPLIT:], rtol=1e-4)  # resumed on 1 process
    assert a[-6:].mean() < a[:6].mean()


def _context(rank, world):
    return distributed.Context(torch=torch, rank=rank, world=world, local_rank=rank,
                               device=torch.device("cpu"), backend="gloo", amp=None, reason="")


def test_shards_of_a_global_batch():
    x = np.arange(16)
    assert [list(_context(r, 2).shard(x)) for r in (0, 1)] == [list(range(8)), list(range(8, 16))]
    assert _context(0, 1).shard(x) is x
    with pytest.raises(ValueError, match="global batch of 15 does not divide among 2 processes"):
        _context(1, 2).shard(np.arange(15))


def test_one_process_needs_no_torchrun(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    ctx = distributed.setup("cpu")
    assert (ctx.rank, ctx.world, ctx.is_main, ctx.backend, ctx.amp) == (0, 1, True, None, None)
    assert ctx.device.type == "cpu" and ctx.reason == "CPU chosen"
    m = torch.nn.Linear(2, 2)
    assert ctx.wrap(m) is m and ctx.mean(3.5) == 3.5
    with ctx.autocast(), ctx.main_first():
        assert m(torch.ones(1, 2)).dtype == torch.float32
    assert distributed.world_from_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (3, 8, 1)


def test_cuda_asked_without_cuda_stops_with_the_reason():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="--device cuda: CUDA requested, PyTorch .* (no CUDA support|finds no usable GPU)"):
        distributed.setup("cuda")


@pytest.mark.gpu
def test_torchrun_on_the_gpus(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip(f"no GPU: {distributed.resolve_torch_device('CUDA', torch).reason}")
    n = torch.cuda.device_count()
    out = tmp_path / "gpu"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
          str(n), str(ROOT / "training" / "tiny_smdm.py"), str(out), "--steps", "48",
          "--no-export", "--device", "cuda", "--log-every", "1", "--batch", str(16 * n)], 300)
    curve = _curve(out)
    assert len(curve) == 48 and np.isfinite(curve).all() and curve[-8:].mean() < curve[:8].mean()
