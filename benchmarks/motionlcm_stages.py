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
how well prompts are understood (that is the yardstick's job). ``--package DIR``: also the
exported package through the runtime (*package N*), to compare the ONNX path with PyTorch.

A stage as a generator for the evaluator and the yardstick (``StageGenerator``)::

    PYTHONPATH=benchmarks .venv-train/bin/python training/evaluate.py --yardstick \
        --generator motionlcm_stages:StageGenerator \
        --generator-kwargs '{"work": "build/motionlcm/cpu-wide", "stage": "teacher", "guidance": 2.5}'
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


class Stages:
    """The trained stages of a MotionLCM work folder in PyTorch: the VAE (``vae-final.pt``),
    the teacher (``teacher-final.pt`` or, while it trains, the EMA in ``teacher.pt``) and
    the student (``distill-final.pt``; None until it exists)."""

    def __init__(self, work, config="cpu-wide", dataset=None, threads=1, skip=10):
        import torch

        import train_motionlcm as tm
        from sparse_motion.inference.text_encoder import TextEncoder

        torch.set_num_threads(int(threads))
        self.torch, self.skip = torch, int(skip)
        work = Path(work or ROOT / "build" / "motionlcm" / config)
        cfg = tm.CONFIGS[config]
        self.data = d = _ds.load_dataset(dataset or str(_ds.DEFAULT_OUT))
        self.fps = float(d.meta["fps"])
        self.mean, self.std = np.asarray(d.mean, np.float64), np.asarray(d.std, np.float64)
        self.vcfg = vcfg = net.VaeConfig(feature_dim=len(self.mean), **cfg["vae"])
        vpath = work / "vae-final.pt" if (work / "vae-final.pt").is_file() else work / "vae.pt"
        vst = torch.load(vpath, weights_only=False, map_location="cpu")
        self.vae = net.build_vae(torch, vcfg)
        self.vae.load_state_dict(vst["ema"] if "ema" in vst else vst["model"])
        self.vae.eval()
        self.lm, self.ls = vst.get("lat_mean"), vst.get("lat_std")   # none while the VAE trains
        self.enc = TextEncoder(tm.ts.TEXT_ENCODER_DIR, threads=int(threads))
        dcfg = net.DenoiserConfig(tokens=vcfg.tokens, latent_dim=vcfg.latent_dim,
                                  text_dim=self.enc.dim, **cfg["den"])
        self.teacher = None
        tpath = work / "teacher-final.pt" if (work / "teacher-final.pt").is_file() \
            else work / "teacher.pt"
        if tpath.is_file() and self.lm is not None:
            self.teacher = net.build_denoiser(torch, dcfg)
            self.teacher.load_state_dict(load(torch, tpath, "ema"))
            self.teacher.eval()
        self.student = None
        if (work / "distill-final.pt").is_file() and self.lm is not None:
            scfg = net.DenoiserConfig(**{**dcfg.to_dict(), "guidance_embed": True,
                                         "consistency": True})
            self.student = net.build_denoiser(torch, scfg)
            self.student.load_state_dict(load(torch, work / "distill-final.pt"))
            self.student.eval()
        self.abar = torch.tensor(core.cosine_alphas_cumprod(core.TIMESTEPS), dtype=torch.float32)
        self.names = (vpath.name, tpath.name if self.teacher is not None else "-",
                      "distill-final.pt" if self.student is not None else "-")

    def embed(self, caption):
        return self.torch.as_tensor(self.enc.encode([caption]), dtype=self.torch.float32)

    def decode(self, z, N):
        """Normalised features (N, D) of normalised latent tokens."""
        with self.torch.no_grad():
            return self.vae.decode(z * self.ls + self.lm, self.torch.arange(N))[0].numpy()

    def rebuild(self, f_norm):
        torch = self.torch
        with torch.no_grad():
            rec, _mu, _lv = self.vae(torch.as_tensor(f_norm[None], dtype=torch.float32),
                                     torch.arange(len(f_norm)), sample=False)
        return rec[0].numpy()

    def teacher_sample(self, emb, N, g, steps=50, guidance=5.0):
        """DDIM with classifier-free guidance on x0."""
        torch, abar = self.torch, self.abar
        z = torch.randn(1, self.vcfg.tokens, self.vcfg.latent_dim, generator=g)
        ts = core.ddim_timesteps(steps)
        n = torch.tensor([N])
        with torch.no_grad():
            for k, t in enumerate(ts):
                tt = torch.tensor([int(t)])
                c = self.teacher(z, tt, emb, n)
                u = self.teacher(z, tt, torch.zeros_like(emb), n)
                x0 = u + guidance * (c - u)
                ab = abar[t]
                eps = (z - ab.sqrt() * x0) / (1 - ab).sqrt()
                if k + 1 < len(ts):
                    ap_ = abar[ts[k + 1]]
                    z = ap_.sqrt() * x0 + (1 - ap_).sqrt() * eps
                else:
                    z = x0
        return self.decode(z, N)

    def student_sample(self, emb, N, steps, g, guidance=5.0):
        """The consistency sampler (as ``inference/motionlcm.py``), in PyTorch."""
        torch, abar = self.torch, self.abar
        z = torch.randn(1, self.vcfg.tokens, self.vcfg.latent_dim, generator=g)
        n, w = torch.tensor([N]), torch.tensor([guidance], dtype=torch.float32)
        ts = net.lcm_timesteps(steps, self.skip, core.TIMESTEPS)
        with torch.no_grad():
            for k, t in enumerate(ts):
                x0 = self.student(z, torch.tensor([int(t)]), emb, n, w)
                if k + 1 < len(ts):
                    ap_ = abar[int(ts[k + 1])]
                    z = ap_.sqrt() * x0 + (1 - ap_).sqrt() * torch.randn(z.shape, generator=g)
                else:
                    z = x0
        return self.decode(z, N)


class StageGenerator:
    """A stage as a generator for ``training/evaluate.py`` (``--generator
    motionlcm_stages:StageGenerator`` with ``PYTHONPATH=benchmarks``): ``stage`` "teacher"
    (``steps`` DDIM steps) or "student" (``steps`` consistency steps), guidance ``guidance``;
    raw features, feet locked as Generate Motion does unless ``foot_lock`` is False."""

    def __init__(self, work=None, config="cpu-wide", stage="teacher", steps=50, guidance=5.0,
                 threads=1, foot_lock=True, max_frames=200, min_frames=10):
        self.s = Stages(work, config, threads=threads)
        self.stage, self.steps, self.guidance = stage, int(steps), float(guidance)
        self.foot_lock, self.max_frames, self.min_frames = bool(foot_lock), max_frames, min_frames

    def generate(self, text, length_frames, seed):
        from sparse_motion.inference.generation import Generation

        s = self.s
        n = int(min(max(int(length_frames), self.min_frames), self.max_frames))
        g = s.torch.Generator().manual_seed(int(seed))
        emb = s.embed(text)
        f = (s.teacher_sample(emb, n, g, self.steps, self.guidance) if self.stage == "teacher"
             else s.student_sample(emb, n, self.steps, g, self.guidance))
        f = (f * s.std + s.mean).astype(np.float32)
        if not self.foot_lock:
            return f
        # decoded and feet locked as every model's result is (Generation.motion)
        gen = Generation(text=text, seed=int(seed), fps=s.fps, features=f[None], keys=[None],
                         steps=self.steps, guidance=self.guidance, gamma=0.0,
                         model=f"MotionLCM {self.stage}")
        return _feat.motion_to_features(*gen.motion(0)).astype(np.float32)


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
    ap.add_argument("--package", default=None,
                    help="also sample this exported package (ONNX, the runtime's code path) "
                         "at the --student-steps and --guidance")
    a = ap.parse_args(argv)
    S = Stages(a.work, a.config, a.dataset, a.threads, a.skip)
    torch, d, fps, mean, std = S.torch, S.data, S.fps, S.mean, S.std
    teacher, student = S.teacher, S.student
    print(f"VAE: {S.names[0]}; teacher: {S.names[1]}; student: {S.names[2]}; "
          f"guidance {a.guidance}")

    pkg = None
    if a.package:
        from sparse_motion.inference.motionlcm import MotionLcmModel
        from sparse_motion.inference.runtime import RuntimeSettings
        pkg = MotionLcmModel(a.package, settings=RuntimeSettings(threads=a.threads)).load()
    steps_list = [int(s) for s in a.student_steps.split(",")]
    stages = ["real", "vae"] + (["teacher"] if teacher is not None else []) + \
        ([f"student {s}" for s in steps_list] if student is not None else []) + \
        ([f"package {s}" for s in steps_list] if pkg is not None else [])
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
            acc["vae"].append(measures(S.rebuild(f), mean, std, fps))
            caption = _cap.captions(content, d.clip(i)["style"], n=1, seed=k)[0]
            emb = S.embed(caption)
            g = torch.Generator().manual_seed(a.seed * 1000 + k)
            if teacher is not None:
                acc["teacher"].append(measures(S.teacher_sample(emb, N, g, a.teacher_steps,
                                                               a.guidance), mean, std, fps))
            if student is not None:
                for s in steps_list:
                    acc[f"student {s}"].append(measures(S.student_sample(emb, N, s, g, a.guidance),
                                                        mean, std, fps))
            if pkg is not None:
                for s in steps_list:
                    gen = pkg.generate(caption, N, seed=a.seed * 1000 + k, steps=s,
                                       guidance=a.guidance, foot_lock=False)
                    acc[f"package {s}"].append(measures((gen.features[0] - mean) / std,
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
