# SPDX-License-Identifier: GPL-3.0-or-later
# Manual check on real Bandai Namco clips (not a test). Run from /work/main:
#   .venv/bin/python benchmarks/retarget_bandai.py
# Retarget real Bandai clips onto script-built rigs (metarig, UE5, Mixamo, constrained Rigify):
# joint error (% of height), planted-foot drift with pinning vs sliding without, keys kept.
# Reads ../shared/data in place; the rig builders are the tests' own.
import sys, time, zipfile
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests")); sys.path.insert(0, str(ROOT / "tools"))
import devimport; devimport.load()
import numpy as np
import bpy
import test_retarget_core as core
import test_bl_retarget as T
from sparse_motion.blender import retarget as R
from sparse_motion.blender.reduce import ReduceSettings
from sparse_motion.motion import bvh as B, canonical as canon
from sparse_motion.operators import retarget as ops

ops.register()
zf = zipfile.ZipFile(ROOT.parent / "shared/data/bandai-namco/Bandai-Namco-Research-Motiondataset-2.zip")
names = sorted(n for n in zf.namelist() if n.endswith(".bvh"))
want = ["walk_active_024", "run_feminine_021", "walk-turn-left_active_041", "wave-both-hands_", "raise-up-both-hands_elderly_006"]
clips = []
for w in want:
    n = next(n for n in names if w in n)
    clips.append((n.split("/")[-1][:-4], *canon.bandai_to_canonical(B.read(zf.read(n)))))
rows = []
for key in ("metarig", "ue5", "mixamo", "rigify"):
    spec = core.rigify_rig(constraints=True) if key == "rigify" else core.RIGS[key]()
    for clip, q, x in clips:
        q, x = q[:120], x[:120]
        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = T.build(spec)
        t0 = time.perf_counter()
        free = R.retarget_motion_result(q, x, 20, obj)
        err, path_err = T.check_positions(spec, obj, q, x)
        pinned_obj = T.build(spec, name="pinned")
        res = R.retarget_motion_result(q, x, 20, pinned_obj, foot_pinning=True,
                                       reduce=ReduceSettings(mode="ERROR", max_error_cm=1.0))
        dt = time.perf_counter() - t0
        sol = res.solution
        mw = np.array(pinned_obj.matrix_world)
        drift = slide = toe_drift = 0.0
        names_ = list(sol.bone_index)
        for side in sol.pins:
            for k, (bone, f, pins) in enumerate(sol.planted(side)):
                if not len(f):
                    continue
                pw = (pins @ mw[:3, :3].T + mw[:3, 3]) * 100
                got = T.world_heads(pinned_obj, [names_[bone]], res.frame_start + f)[:, 0]
                d = np.linalg.norm(got - pw, axis=1).max()
                if k == 0:
                    drift = max(drift, d)
                else:
                    toe_drift = max(toe_drift, d)
                got = T.world_heads(obj, [names_[bone]], free.frame_start + f)[:, 0]
                slide = max(slide, np.linalg.norm(got - pw, axis=1).max())
        unreached = sum(len(v) for v in sol.unreached.values())
        drop = 0 if sol.hip_drop is None else sol.hip_drop.max() * R._cm_per_armature_unit(pinned_obj)
        rr = res.reduce_result
        rows.append((key, clip, 100 * err, res.pinned_frames, drift, toe_drift, slide, unreached, drop,
                     rr.key_frames if rr else -1, res.frames, rr.max_cm if rr else -1, dt))
        print("%-8s %-40s err %.3f%%  pinned %3d  heel drift %.2f toe %.2f cm (unpinned %.2f)  unreached %d  hipdrop %.1f cm  keys %d/%d max %.2f cm  %.1fs" % rows[-1], flush=True)
