# SPDX-License-Identifier: GPL-3.0-or-later
"""Which MotionLCM stage loses the gait: real test clips, their VAE reconstructions, the
teacher's own samples (DDIM, classifier-free guidance) and the distilled student's (1 and 4
steps), measured alike per content.

::

    .venv-train/bin/python benchmarks/motionlcm_stages.py --config cpu-wide \\
        --work build/motionlcm/cpu-wide --contents walk,run,wave-right-hand

For each content, the first ``--clips`` test clips of it with at least 60 frames (at most
200, the training crop) are measured as they are (*real*), rebuilt by the VAE from their
latent mean (*vae*), and generated from a caption of the clip's (content, style) pair at the
clip's length (*teacher*: ``--teacher-steps`` DDIM steps, guidance ``--guidance``; *student
N*: the consistency sampler, N steps). The teacher's weights are ``teacher-final.pt`` or,
while it trains, the EMA in ``teacher.pt``; the student is skipped until ``distill-final.pt``
exists. Measures, on the decoded motion without foot locking: the root's mean ground-plane
speed (cm/s: does a walk travel) and the mean joint speed (``physics.measure``). Captions
come from the caption generator, as in training: this asks what each stage can make, not
how well prompts are understood (that is the yardstick's job).
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
from sparse_motion.inference import smdm_core as core  # noqa: E402
from sparse_motion.motion import canonical as _can  # noqa: E402
from sparse_motion.motion import captions as _cap  # noqa: E402
from sparse_motion.motion import dataset as _ds  # noqa: E402
from sparse_motion.motion import features as _feat  # noqa: E402
from sparse_motion.motion import physics  # noqa: E402


def measures(f_norm, mean, std, fps):
    """``(root speed cm/s, mean joint speed cm/s)`` of normalised features (N, 257)."""
    q, x = _feat.features_to_motion(np.asarray(f_norm, np.float64) * std + mean)
    step = np.linalg.norm(np.diff(x[:, [0, 2]], axis=0), axis=1)
    pos = _can.canonical_forward_kinematics(q, x)
    return float(step.mean() * fps), float(physics.measure(pos, fps)["mean_joint_speed_cm_s"])


def load(torch, path: Path, key="model"):
    st = torch.load(path, weights_only=False, map_location="cpu")
    return st[key] if key in st else st["model"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="cpu-wide")
    ap.add_argument("--work", default=None, help="checkpoints (build/motionlcm/<config>)")
    ap.add_argument("--dataset", default=str(_ds.DEFAULT_OUT))
    ap.add_argument("--contents", default="walk,run,wave-right-hand")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--teacher-steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--student-steps", default="1,4")
    ap.add_argument("--skip", type=int, default=10, help="the distillation's --skip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    import train_motionlcm as tm
    from sparse_motion.inference.text_encoder import TextEncoder

    torch.set_num_threads(a.threads)
    work = Path(a.work or ROOT / "build" / "motionlcm" / a.config)
    cfg = tm.CONFIGS[a.config]
    d = _ds.load_dataset(a.dataset)
    fps = float(d.meta["fps"])
    mean, std = np.asarray(d.mean, np.float64), np.asarray(d.std, np.float64)
    vcfg = net.VaeConfig(feature_dim=len(mean), **cfg["vae"])
    vpath = work / "vae-final.pt" if (work / "vae-final.pt").is_file() else work / "vae.pt"
    vst = torch.load(vpath, weights_only=False, map_location="cpu")
    vae = net.build_vae(torch, vcfg)
    vae.load_state_dict(vst["ema"] if "ema" in vst else vst["model"])
    vae.eval()
    lm, ls = vst.get("lat_mean"), vst.get("lat_std")   # none while the VAE trains
    enc = TextEncoder(tm.ts.TEXT_ENCODER_DIR, threads=a.threads)
    dcfg = net.DenoiserConfig(tokens=vcfg.tokens, latent_dim=vcfg.latent_dim,
                              text_dim=enc.dim, **cfg["den"])
    teacher = None
    tpath = work / "teacher-final.pt" if (work / "teacher-final.pt").is_file() else work / "teacher.pt"
    if tpath.is_file() and lm is not None:
        teacher = net.build_denoiser(torch, dcfg)
        teacher.load_state_dict(load(torch, tpath, "ema"))
        teacher.eval()
    student = None
    if (work / "distill-final.pt").is_file() and lm is not None:
        scfg = net.DenoiserConfig(**{**dcfg.to_dict(), "guidance_embed": True, "consistency": True})
        student = net.build_denoiser(torch, scfg)
        student.load_state_dict(load(torch, work / "distill-final.pt"))
        student.eval()
    abar = torch.tensor(core.cosine_alphas_cumprod(core.TIMESTEPS), dtype=torch.float32)
    skip = a.skip
    print(f"VAE: {vpath.name}; teacher: {tpath.name if teacher is not None else '-'}; student: "
          f"{'distill-final.pt' if student is not None else '-'}; guidance {a.guidance}")

    def decode(z, N):
        with torch.no_grad():
            return vae.decode(z * ls + lm, torch.arange(N))[0].numpy()

    def teacher_sample(emb, N, g):
        z = torch.randn(1, vcfg.tokens, vcfg.latent_dim, generator=g)
        ts = np.linspace(core.TIMESTEPS - 1, 0, a.teacher_steps).round().astype(int)
        n = torch.tensor([N])
        with torch.no_grad():
            for k, t in enumerate(ts):
                tt = torch.tensor([int(t)])
                c = teacher(z, tt, emb, n)
                u = teacher(z, tt, torch.zeros_like(emb), n)
                x0 = u + a.guidance * (c - u)
                ab = abar[t]
                eps = (z - ab.sqrt() * x0) / (1 - ab).sqrt()
                if k + 1 < len(ts):
                    ap_ = abar[ts[k + 1]]
                    z = ap_.sqrt() * x0 + (1 - ap_).sqrt() * eps
                else:
                    z = x0
        return decode(z, N)

    def student_sample(emb, N, steps, g):
        z = torch.randn(1, vcfg.tokens, vcfg.latent_dim, generator=g)
        n, w = torch.tensor([N]), torch.tensor([a.guidance], dtype=torch.float32)
        ts = net.lcm_timesteps(steps, skip, core.TIMESTEPS)
        with torch.no_grad():
            for k, t in enumerate(ts):
                x0 = student(z, torch.tensor([int(t)]), emb, n, w)
                if k + 1 < len(ts):
                    ap_ = abar[int(ts[k + 1])]
                    z = ap_.sqrt() * x0 + (1 - ap_).sqrt() * torch.randn(z.shape, generator=g)
                else:
                    z = x0
        return decode(z, N)

    stages = ["real", "vae"] + (["teacher"] if teacher is not None else []) + \
        ([f"student {s}" for s in a.student_steps.split(",")] if student is not None else [])
    rows = []
    for content in a.contents.split(","):
        idx = [int(i) for i in d.indices("test") if d.clip(int(i))["content"] == content
               and d.clip(int(i))["frames"] >= 60][:a.clips]
        if not idx:
            print(f"{content}: no test clips")
            continue
        acc = {s: [] for s in stages}
        for k, i in enumerate(idx):
            f = (d.features(i)[:200] - mean) / std
            N = len(f)
            acc["real"].append(measures(f, mean, std, fps))
            with torch.no_grad():
                rec, _mu, _lv = vae(torch.as_tensor(f[None], dtype=torch.float32),
                                    torch.arange(N), sample=False)
            acc["vae"].append(measures(rec[0].numpy(), mean, std, fps))
            caption = _cap.captions(content, d.clip(i)["style"], n=1, seed=k)[0]
            emb = torch.as_tensor(enc.encode([caption]), dtype=torch.float32)
            g = torch.Generator().manual_seed(a.seed * 1000 + k)
            if teacher is not None:
                acc["teacher"].append(measures(teacher_sample(emb, N, g), mean, std, fps))
            if student is not None:
                for s in a.student_steps.split(","):
                    acc[f"student {s}"].append(measures(student_sample(emb, N, int(s), g),
                                                        mean, std, fps))
        for s in stages:
            v = np.asarray(acc[s])
            rows.append((content, len(idx), s, v[:, 0].mean(), v[:, 1].mean()))
    print("\n| content | clips | stage | root speed cm/s | joint speed cm/s |")
    print("|---|---|---|---|---|")
    for c, n, s, r, j in rows:
        print(f"| {c} | {n} | {s} | {r:.1f} | {j:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
