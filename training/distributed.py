# SPDX-License-Identifier: GPL-3.0-or-later
"""Training on one device or several GPUs: device choice, torchrun/DDP, rank-0 work, mixed
precision, checkpoints that resume on any device count. Shared by the training scripts.

A script adopts it in five places::

    import distributed

    distributed.add_args(ap)                      # --device auto|cpu|cuda, --no-amp
    ctx = distributed.setup(args.device, amp=not args.no_amp)   # torchrun's env, or 1 process
    model = build(torch).to(ctx.device)           # load checkpoints into this (unwrapped) one
    net = ctx.wrap(model)                         # DistributedDataParallel when world > 1
    ...
    x = ctx.shard(global_batch)                   # this rank's rows of a batch all ranks drew
    with ctx.autocast():                          # bf16 on CUDA (not with --no-amp), else nothing
        loss = loss_fn(net(x))
    ctx.mean(float(loss))                         # the global value, for logs and history
    if ctx.is_main: torch.save(model.state_dict(), path)        # unwrapped: any device count
    ctx.log(msg)                                  # printed by rank 0 only
    with ctx.main_first(): build_cache()          # rank 0 first, the others then read it
    ctx.close()

Conventions that make one process and N processes train the same model:

* Every rank uses the same seeds and draws the *global* batch (data and noise) alike, then
  keeps its slice (:meth:`Context.shard`); DDP averages the gradients, so a step equals the
  one-process step on the same global batch (to float rounding). ``--batch`` is the global
  batch: it must divide by the number of processes. The loss curve of ``torchrun
  --nproc_per_node 2`` on the CPU matches one process (``tests/test_distributed.py``).
* Checkpoints hold the unwrapped module's ``state_dict`` (no ``module.`` prefix), the
  optimiser state and the RNG states, written by rank 0; every rank loads the same file, so a
  run resumes on another device count (2 GPUs -> 8, or a GPU run finished on the CPU).
* Mixed precision: ``torch.autocast("cuda", bfloat16)`` around the forward pass on CUDA
  devices that support bf16; the losses are then computed in float32. Never on the CPU, no
  GradScaler needed (bf16 keeps float32's range).
* Backends: ``nccl`` on CUDA (one GPU per process: ``cuda:LOCAL_RANK``), ``gloo`` on the CPU.

Launch (docs/gpu.md): one process ``python training/train_smdm.py --device cuda ...``; one
node ``torchrun --standalone --nproc_per_node 4 training/train_smdm.py --device cuda ...``;
several nodes ``torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint
HOST:29500 ...`` on each node (or under SLURM's ``srun``).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()

from sparse_motion.inference.runtime import resolve_torch_device  # noqa: E402

__all__ = ["Context", "add_args", "setup", "from_args", "world_from_env"]

DEVICES = ("auto", "cpu", "cuda")


def add_args(ap) -> None:
    """``--device auto|cpu|cuda`` (auto: CUDA when torch has it) and ``--no-amp`` (no bf16
    autocast on CUDA)."""
    ap.add_argument("--device", choices=DEVICES, default="auto",
                    help="auto: CUDA when this torch has it and a GPU answers, else the CPU; "
                         "under torchrun one GPU per process")
    ap.add_argument("--no-amp", action="store_true",
                    help="train in float32 on CUDA too (default: bf16 autocast on CUDA)")


def world_from_env(env=None) -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from torchrun's environment (0, 1, 0 without it)."""
    env = os.environ if env is None else env
    return (int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


@dataclass
class Context:
    """One process's place in the run: ``rank``/``world``/``local_rank``, ``device`` (a
    ``torch.device``), ``backend`` (``gloo``/``nccl``/None for one process), ``amp`` (the
    autocast dtype or None) and ``reason`` (which device and why, one line)."""

    torch: object
    rank: int
    world: int
    local_rank: int
    device: object
    backend: str | None
    amp: object
    reason: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def log(self, msg: str) -> None:
        if self.is_main:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def wrap(self, model, find_unused: bool = False):
        """``model`` in DistributedDataParallel when there are several processes, else as is.
        Train through the wrapper; save and load the unwrapped ``model``."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return self.torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=find_unused)

    def shard(self, x):
        """This rank's rows of ``x`` (a global batch every rank drew alike): rows
        ``rank * n … (rank + 1) * n`` with ``n = len(x) / world``."""
        if not self.distributed:
            return x
        n, rest = divmod(len(x), self.world)
        if rest:
            raise ValueError(f"the global batch of {len(x)} does not divide among {self.world} "
                             "processes: choose a batch that is a multiple of the process count")
        return x[self.rank * n:(self.rank + 1) * n]

    def autocast(self):
        """bf16 autocast on CUDA (unless ``--no-amp``), a no-op elsewhere."""
        if self.amp is None:
            return contextlib.nullcontext()
        return self.torch.autocast("cuda", dtype=self.amp)

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (the global loss of equal shards)."""
        if not self.distributed:
            return float(value)
        t = self.torch.tensor([float(value)], dtype=self.torch.float64,
                              device=self.device if self.backend == "nccl" else "cpu")
        self.torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def average_gradients(self, module) -> None:
        """Average ``module``'s gradients over the processes (for a module trained without
        the DDP wrapper, e.g. a GAN discriminator whose loss needs gradients with respect to
        its input, which DistributedDataParallel does not support). One process: nothing."""
        if not self.distributed:
            return
        for p in module.parameters():
            if p.grad is not None:
                self.torch.distributed.all_reduce(p.grad)
                p.grad /= self.world

    def barrier(self) -> None:
        if self.distributed:
            self.torch.distributed.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """Run the block on rank 0 first, then on the others (e.g. a cache rank 0 writes and the
        others read)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def close(self) -> None:
        if self.distributed and self.torch.distributed.is_initialized():
            self.torch.distributed.destroy_process_group()


def from_args(args, torch=None) -> Context:
    """:func:`setup` from a script's ``--device``/``--no-amp`` (:func:`add_args`), after
    ``torch.set_num_threads(args.threads)`` when the script has ``--threads`` and it is set."""
    if torch is None:
        import torch
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return setup(args.device, amp=not args.no_amp, torch=torch)


def setup(device: str = "auto", *, amp: bool = True, torch=None) -> Context:
    """This process's :class:`Context`: the device (``auto``/``cpu``/``cuda``, resolved as the
    runtime resolves the add-on's AUTO/CPU/CUDA setting, with its reason), and under torchrun
    the process group (nccl on CUDA, gloo on the CPU; one GPU per local rank). ``--device
    cuda`` where CUDA cannot be used stops with the reason instead of training on the CPU."""
    if torch is None:
        import torch
    rank, world, local = world_from_env()
    choice = resolve_torch_device(device.upper(), torch, "Training")
    if device.lower() == "cuda" and choice.device != "CUDA":
        raise SystemExit(f"--device cuda: {choice.reason.replace(': running on the CPU', '')}")
    if choice.device == "CUDA":
        n = torch.cuda.device_count()
        if local >= n:
            raise SystemExit(f"local rank {local} has no GPU: this node has {n}; start at most "
                             f"{n} processes per node (torchrun --nproc_per_node {n})")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
        backend = "nccl"
        use_amp = amp and torch.cuda.is_bf16_supported()
    else:
        dev, backend, use_amp = torch.device("cpu"), "gloo", False
    if world > 1:
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend=backend)
    else:
        backend = None
    reason = choice.reason + (f"; {world} processes ({backend})" if world > 1 else "")
    return Context(torch=torch, rank=rank, world=world, local_rank=local, device=dev,
                   backend=backend, amp=torch.bfloat16 if use_amp else None, reason=reason)
