# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny MotionLCM package trained in seconds on tiny_smdm's synthetic motion ("walk": the
root goes forward, "arms": both arms rise), for the tests and smoke runs. All four stages run
with the real training code (``train_motionlcm``, the ``tiny`` configuration), then the real
exporter and packaging (synthetic data: no data licence restriction)::

    .venv/bin/python training/tiny_motionlcm.py OUT_DIR [--seed 0]

The work folder ``OUT_DIR.work`` keeps the stage weights (the tests compare torch and
onnxruntime with them).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import tiny_smdm  # noqa: E402  (sets up the sparse_motion import)
import train_motionlcm as tm  # noqa: E402
import train_smdm as ts  # noqa: E402

from sparse_motion.inference.text_encoder import TextEncoder  # noqa: E402

NAME = "motionlcm-tiny-test"


def tiny_data(seed: int):
    """(TrainClips, caption embeddings, feature mean, std) of the synthetic clips."""
    rng = np.random.default_rng(seed)
    raw, kinds = tiny_smdm.synthetic_data(rng)
    allf = np.concatenate(raw)
    mean = allf.mean(0)
    std = np.maximum(allf.std(0), 1e-2).astype(np.float32)
    norm = [((f - mean) / std).astype(np.float32) for f in raw]
    caps = tiny_smdm.CAPTIONS
    texts = [c for k in caps for c in caps[k]]
    emb = TextEncoder(ts.TEXT_ENCODER_DIR).encode(texts).astype(np.float32)
    rows = {k: np.array([texts.index(c) for c in caps[k]]) for k in caps}
    # VW keyframe areas (MotionLCM ignores them; EMDM's sparse generator trains on them)
    areas = [ts.core.vw_areas(tiny_smdm.feat.features_to_positions(f)) for f in raw]
    cap_rows = [rows[k] for k in kinds]
    return ts.TrainClips(norm, norm, areas, cap_rows, cap_rows), emb, mean, std


def build(out: Path, seed: int = 0, log=print, extra_args=()) -> dict:
    import torch

    torch.set_num_threads(1)  # two threads crawl when the cores are shared
    t0 = time.perf_counter()
    data, emb, mean, std = tiny_data(seed)
    args = tm.parse_args(["--config", "tiny", "--seed", str(seed), "--work", str(out) + ".work",
                          "--warmup", "10", "--ema", "0.9", "--stat-batches", "8", "--log-every", "10",
                          "--export", str(out), "--name", NAME, "--version", "0.1.0",
                          *extra_args])
    trainer = tm.Trainer(args, torch, data, emb, mean, std, log_fn=lambda m: None)
    assert trainer.run()
    trainer.ctx.close()
    if not trainer.ctx.is_main:  # under torchrun: rank 0 exports
        return trainer.history
    tm.export(trainer, args, torch, mean, std, data_licence=False, default=False,
              command=f"training/tiny_motionlcm.py {out} --seed {seed}",
              description="Tiny MotionLCM trained on synthetic motion (tests only)",
              data_meta={"data": [{"name": "synthetic", "license": "GPL-3.0-or-later"}]},
              log_fn=log)
    log(f"tiny MotionLCM: {time.perf_counter() - t0:.1f} s")
    return trainer.history


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a, rest = ap.parse_known_args(argv)  # the rest: train_motionlcm options (--device, ...)
    build(Path(a.out), a.seed, extra_args=rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
