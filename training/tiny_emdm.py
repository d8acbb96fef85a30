# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny EMDM package trained in a minute or two on tiny_smdm's synthetic motion ("walk": the
root goes forward, "arms": both arms rise), for the tests and smoke runs. The GAN runs with
the real training code (``train_emdm``, the ``tiny`` configuration: T = 10 levels, geometric
losses, R1, EMA), then the real exporter and packaging (synthetic data: no data licence
restriction)::

    .venv/bin/python training/tiny_emdm.py OUT_DIR [--seed 0] [train_emdm options]

The work folder ``OUT_DIR.work`` keeps the checkpoint (losses in its history).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import tiny_motionlcm  # noqa: E402  (sets up the sparse_motion import)
import train_emdm as te  # noqa: E402

NAME = "emdm-tiny-test"
#: The package's licence, default flag and description: synthetic data, tests only.
EXPORT = dict(data_licence=False, default=False,
              description="Tiny EMDM trained on synthetic motion (tests only)",
              data_meta={"data": [{"name": "synthetic", "license": "GPL-3.0-or-later"}]})


def build(out: Path, seed: int = 0, log=print, extra_args=(), export: bool = True):
    """Train (and export unless ``export`` is False); returns the manifest, or the trainer
    when not exported."""
    import torch

    torch.set_num_threads(1)  # two threads crawl when the cores are shared
    t0 = time.perf_counter()
    data, emb, mean, std = tiny_motionlcm.tiny_data(seed)
    args = te.parse_args(["--config", "tiny", "--seed", str(seed), "--work", str(out) + ".work",
                          "--warmup", "20", "--ema", "0.95", "--log-every", "25",
                          "--captions-per-pair", "0", "--balance", "0",
                          "--export", str(out), "--name", NAME, "--version", "0.1.0",
                          *extra_args])
    trainer = te.Trainer(args, torch, data, emb, mean, std, log_fn=lambda m: None)
    done = trainer.train()
    trainer.ctx.close()
    if not export or not trainer.ctx.is_main:
        return trainer
    assert done, "the tiny run stopped early"
    log(f"tiny EMDM: {args.steps} steps in {time.perf_counter() - t0:.1f} s")
    return te.export(trainer, args, torch, mean, std, log_fn=log,
                     command=f"training/tiny_emdm.py {out} --seed {seed}", **EXPORT)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-export", action="store_true", help="train only")
    a, rest = ap.parse_known_args(argv)  # the rest: train_emdm options (--device, --steps, ...)
    build(Path(a.out), a.seed, extra_args=rest, export=not a.no_export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
