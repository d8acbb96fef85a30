# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny KMM package trained in seconds on tiny_smdm's synthetic motion ("walk": the root
goes forward, "arms": both arms rise), for the tests and smoke runs. Both stages run with the
real training code (``train_kmm``, the ``tiny`` configuration), then the real exporter and
packaging (synthetic data: no data licence restriction)::

    .venv/bin/python training/tiny_kmm.py OUT_DIR [--seed 0] [train_kmm options]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import tiny_motionlcm  # noqa: E402  (sets up the sparse_motion import)
import train_kmm as tk  # noqa: E402

NAME = "kmm-tiny-test"


def build(out: Path, seed: int = 0, log=print, extra_args=()) -> dict:
    import torch

    torch.set_num_threads(1)  # two threads crawl when the cores are shared
    t0 = time.perf_counter()
    data, emb, mean, std = tiny_motionlcm.tiny_data(seed)
    args = tk.parse_args(["--config", "tiny", "--seed", str(seed), "--work", str(out) + ".work",
                          "--warmup", "20", "--ema", "0.95", "--log-every", "50",
                          "--captions-per-pair", "0", "--balance", "0", "--guidance", "2",
                          "--export", str(out), "--name", NAME, "--version", "0.1.0",
                          *extra_args])
    trainer = tk.Trainer(args, torch, data, emb, log_fn=lambda m: None)
    assert trainer.run()
    m = tk.export(trainer, args, torch, mean, std, data_licence=False, default=False,
                  command=f"training/tiny_kmm.py {out} --seed {seed}",
                  description="Tiny KMM trained on synthetic motion (tests only)",
                  data_meta={"data": [{"name": "synthetic", "license": "GPL-3.0-or-later"}]},
                  log_fn=lambda m: None)
    log(f"tiny KMM: {time.perf_counter() - t0:.1f} s")
    return m


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a, rest = ap.parse_known_args(argv)
    build(Path(a.out), a.seed, extra_args=rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
