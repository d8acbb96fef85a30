# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny sMDM package trained in seconds on synthetic motion (tests and smoke runs).

Two kinds of clip on the canonical skeleton, each with a few captions:

* "walk": the root moves forward (+Z) about 4 cm per frame, the legs swing;
* "arms": the root stays, both upper arms rise.

Trained with the real training code (``train_smdm.train``, the ``tiny`` configuration),
exported to ONNX with the real exporter and written as a real package (synthetic data, so
no data licence restriction)::

    .venv/bin/python training/tiny_smdm.py OUT_DIR [--steps 300] [--seed 0]

Options after ``--steps``/``--seed`` go to ``train_smdm`` (e.g. ``--device cpu --dropout 0
--log-every 1 --stop-at 12 --resume``); ``--no-export`` only trains (the history is in
``OUT_DIR.work/checkpoint.pt``). It runs under torchrun like ``train_smdm``
(``tests/test_distributed.py``)::

    torchrun --standalone --nproc_per_node 2 training/tiny_smdm.py OUT_DIR --no-export --device cpu
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "training"))
import distributed  # noqa: E402
import train_smdm as ts  # noqa: E402  (sets up the sparse_motion import)

from sparse_motion.motion import canonical as canon  # noqa: E402
from sparse_motion.motion import features as feat  # noqa: E402
from sparse_motion.inference.text_encoder import TextEncoder  # noqa: E402

CAPTIONS = {
    "walk": ["a person walks forward", "someone walks straight ahead", "a man is walking forward"],
    "arms": ["a person raises both arms", "someone lifts both arms up", "a man raises his arms"],
}
NAME = "smdm-tiny-test"


def _axis_angle(axis, angle):
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    a = np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(a / 2), np.sin(a / 2) * axis], axis=-1)


def synthetic_clip(kind: str, frames: int, rng):
    """Canonical motion ``(local_quats (F, 21, 4), root_translation (F, 3))`` of one kind."""
    sk = canon.SKELETON
    J = sk.num_joints
    q = np.zeros((frames, J, 4))
    q[..., 0] = 1.0
    t = np.arange(frames, dtype=np.float64)
    x = np.zeros((frames, 3))
    x[:, 1] = sk.offsets[0][1]
    j = {n: i for i, n in enumerate(sk.names)}
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "walk":
        speed = rng.uniform(3.5, 4.5)
        x[:, 2] = speed * t
        x[:, 1] += 2.0 * np.sin(2 * (0.35 * t + phase))
        swing = 0.5 * np.sin(0.35 * t + phase)
        q[:, j["UpperLeg_L"]] = _axis_angle([0, 0, 1], swing)
        q[:, j["UpperLeg_R"]] = _axis_angle([0, 0, 1], -swing)
    elif kind == "arms":
        lift = np.clip(t / max(frames * rng.uniform(0.5, 0.8), 1), 0, 1) * rng.uniform(1.1, 1.4)
        q[:, j["UpperArm_L"]] = _axis_angle([0, 1, 0], lift)
        q[:, j["UpperArm_R"]] = _axis_angle([0, 1, 0], -lift)
    else:
        raise ValueError(kind)
    return q / np.linalg.norm(q, axis=-1, keepdims=True), x


def synthetic_data(rng, clips_per_kind=24, lengths=(40, 72)):
    """(features list, kind list) of raw 257-d features."""
    feats, kinds = [], []
    for kind in CAPTIONS:
        for _ in range(clips_per_kind):
            n = int(rng.integers(lengths[0], lengths[1] + 1))
            q, x = synthetic_clip(kind, n, rng)
            feats.append(feat.motion_to_features(q, x).astype(np.float32))
            kinds.append(kind)
    return feats, kinds


def build(out: Path, steps: int = 300, seed: int = 0, log=print, *, train_args=(),
          export: bool = True) -> dict | None:
    """Train, export and package; returns the manifest (None with ``export=False``, and on
    ranks other than 0 under torchrun). ``train_args``: more ``train_smdm`` options."""
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    raw, kinds = synthetic_data(rng)
    allf = np.concatenate(raw)
    mean = allf.mean(0)
    std = np.maximum(allf.std(0), 1e-2).astype(np.float32)
    norm = [((f - mean) / std).astype(np.float32) for f in raw]
    texts = [c for k in CAPTIONS for c in CAPTIONS[k]]
    enc = TextEncoder(ts.TEXT_ENCODER_DIR)
    emb = enc.encode(texts).astype(np.float32)
    rows = {k: np.array([texts.index(c) for c in CAPTIONS[k]]) for k in CAPTIONS}
    areas = [ts.core.vw_areas(feat.features_to_positions(f)) for f in raw]
    caps = [rows[k] for k in kinds]
    # no mirror images: the synthetic kinds are already symmetric
    data = ts.TrainClips(norm, norm, areas, caps, caps, stats=(mean, std))
    args = ts.parse_args(["--config", "tiny", "--seed", str(seed), "--steps", str(steps),
                          "--work", str(out) + ".work", "--warmup", "30", "--ema", "0.99",
                          *train_args])
    ctx = distributed.setup(args.device, amp=not args.no_amp, torch=torch)
    model, cfg, step, n_params, history = ts.train(args, torch, data, emb, log_fn=lambda m: None,
                                                   ctx=ctx)
    ctx.close()
    if not export or not ctx.is_main:
        return None
    onnx_path = Path(args.work) / "denoiser.onnx"
    ts.export_onnx(torch, model, onnx_path)
    err = ts.parity(torch, model, onnx_path)
    te_manifest = json.loads((ts.TEXT_ENCODER_DIR / "manifest.json").read_text())
    manifest = ts.write_package(
        out, onnx_path, cfg, mean, std, te_manifest, name=NAME, version="0.1.0",
        description="Tiny sMDM trained on synthetic motion (tests only)",
        training={"command": f"training/tiny_smdm.py {out} --steps {steps} --seed {seed}",
                  "seed": seed, "steps": step, "data": [{"name": "synthetic", "license": "GPL-3.0-or-later"}],
                  "parity_max_abs": err, "final_mse": history[-1]["mse"] if history else None},
        default=False, data_licence=False, torch_model=model,
        torch_dtype="float32")
    log(f"tiny sMDM: {n_params:,} parameters, {step} steps, parity {err:.1e}, "
        f"{time.perf_counter() - t0:.1f} s")
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-export", action="store_true", help="train only")
    a, rest = ap.parse_known_args(argv)
    build(Path(a.out), a.steps, a.seed, train_args=rest, export=not a.no_export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
