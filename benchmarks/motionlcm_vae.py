# SPDX-License-Identifier: GPL-3.0-or-later
"""Held-out reconstruction of MotionLCM VAEs: how well each stage-1 VAE rebuilds test clips.

::

    .venv-train/bin/python benchmarks/motionlcm_vae.py \\
        cpu=build/motionlcm/cpu/vae-final.pt cpu-wide=build/motionlcm/cpu-wide/vae-final.pt

Each argument is ``CONFIG=PATH``: a config of ``training/train_motionlcm.py`` and the VAE
weights it wrote (``vae-final.pt``, the EMA). The first ``--clips`` clips of the dataset's
test split with at least 40 frames (the dataset cache, ``training/build_dataset.py``), at most
200 frames each, normalised as in training, are encoded and rebuilt from the latent mean; the
mean squared error over frames and features is averaged over the clips.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "training"))
import devimport  # noqa: E402

devimport.load()

import numpy as np  # noqa: E402

from sparse_motion.inference import motionlcm_net as net  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vaes", nargs="+", metavar="CONFIG=PATH")
    ap.add_argument("--dataset", default=str(_ds.DEFAULT_OUT))
    ap.add_argument("--clips", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    import train_motionlcm

    torch.set_num_threads(a.threads)
    d = _ds.load_dataset(a.dataset)
    idx = [int(i) for i in d.indices("test") if d.clip(int(i))["frames"] >= 40][:a.clips]
    for spec in a.vaes:
        name, _, path = spec.partition("=")
        cfg = net.VaeConfig(feature_dim=257, **train_motionlcm.CONFIGS[name]["vae"])
        vae = net.build_vae(torch, cfg)
        vae.load_state_dict(torch.load(path, weights_only=False, map_location="cpu")["model"])
        vae.eval()
        errs = []
        with torch.no_grad():
            for i in idx:
                f = (d.features(i)[:200] - d.mean) / d.std
                x = torch.as_tensor(f[None], dtype=torch.float32)
                rec, _mu, _lv = vae(x, torch.arange(x.shape[1]), sample=False)
                errs.append(float(((rec - x) ** 2).mean()))
        print(f"{name}: held-out reconstruction MSE {np.mean(errs):.3f} ({len(idx)} test clips, "
              f"{path})", flush=True)


if __name__ == "__main__":
    main()
