# SPDX-License-Identifier: GPL-3.0-or-later
"""Make Variations in Blender (blender/variations.py, the operator and the panel) on a rig that
is not the canonical skeleton: other bone names, Euler (3-channel) joints, a posed rest. GenMM
runs everywhere; MotionDreamer (a small real training) where torch is installed (4.5)."""
import importlib.util
import threading

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import variation_rig as vr  # noqa: E402
from sparse_motion.blender import actions, fcurve_io  # noqa: E402
from sparse_motion.blender import variations as var  # noqa: E402
from sparse_motion.errors import InputError  # noqa: E402
from sparse_motion.operators import variations as var_op  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="MotionDreamer needs torch")


def tiny_config(**kw):
    from sparse_motion.variations.motiondreamer import Config

    base = dict(hidden=32, latent=16, codes=16, width=32, heads=2, layers=2, vq_steps=60,
                tr_steps=80, vq_batch=16, tr_batch=16, tr_crop=16, vq_lr=3e-3, tr_lr=3e-3,
                dropout=0.0)
    base.update(kw)
    return Config(**base)


@pytest.fixture(scope="module", autouse=True)
def addon(tmp_path_factory):
    cache = tmp_path_factory.mktemp("variations-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(var.CACHE_ENV, str(cache))
        with fx.addon_registered():
            yield cache
        var.release_models()


@pytest.fixture
def rig():
    fx.reset()
    obj = vr.make_rig()
    vr.animate(obj, seconds=4)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


def datablocks():
    scene = bpy.context.scene
    return (sorted(o.name for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions),
            scene.frame_start, scene.frame_end)


def curve_values(obj, action):
    chans = actions.channels_for(obj, action)
    curves = sorted(chans.fcurves, key=lambda fc: (fc.data_path, fc.array_index))
    return {(fc.data_path, fc.array_index): (fcurve_io.key_frames(fc), fcurve_io.key_values(fc))
            for fc in curves}


def test_genmm_variations_are_new_sparse_actions(rig):
    reference = rig.animation_data.action
    snap = fx.snapshot()
    res = var.make_variations(var.VariationRequest(obj=rig, count=2, seed=5, method="GENMM",
                                                   seconds=6.0))
    assert fx.snapshot()[reference.name][0] == snap[reference.name][0]  # keys untouched
    assert [a.name for a in res.actions] == [f"{reference.name} var 5", f"{reference.name} var 6"]
    assert rig.animation_data.action == res.actions[-1]
    assert reference.use_fake_user and res.actions[0].use_fake_user
    assert res.frames == 180 and bpy.context.scene.frame_end == 180
    for a in res.actions:
        meta = dict(a["sparse_motion"])
        assert meta["variation_of"] == reference.name and meta["method"] == "GENMM"
        curves = curve_values(rig, a)
        frames = {tuple(f) for f, _ in curves.values() if len(f) > 2}
        assert len(frames) == 1  # keys on the same frames for every moving curve
        (keys,) = frames
        assert keys[0] == 1 and keys[-1] == 180 and len(keys) < 180 / 2
    # variations, not copies of the reference or of each other
    a, b = (curve_values(rig, x) for x in res.actions)
    path = 'pose.bones["L_thigh"].rotation_euler'
    ref_vals = curve_values(rig, reference)[(path, 0)][1]
    assert len(ref_vals) == 120
    assert not np.array_equal(a[(path, 0)][1], b[(path, 0)][1])
    assert "GenMM" in res.message() and "no training" in res.message()


def test_operator_is_one_undo_step(rig):
    before = datablocks()
    bpy.ops.ed.undo_push(message="start")
    bpy.ops.ed.undo_push(message="before variations")
    assert bpy.ops.sparse_motion.make_variations(count=2, method="GENMM") == {"FINISHED"}
    after = datablocks()
    assert len(after[1]) == len(before[1]) + 2
    bpy.ops.ed.undo_push(message="Make Variations")
    bpy.ops.ed.undo()
    assert datablocks() == before
    bpy.ops.ed.redo()
    assert datablocks() == after


def _short_action(obj, frames):
    action, chans = actions.new_action_for(obj, "Short")
    fc = chans.new_fcurve('pose.bones["L_thigh"].rotation_euler', 0, "L_thigh")
    fcurve_io.write_dense(fc, np.arange(1, frames + 1, dtype=float),
                          np.sin(np.arange(frames) * 0.3))
    return action


def _location_only_action(obj):
    action, chans = actions.new_action_for(obj, "LocOnly")
    fc = chans.new_fcurve('pose.bones["pelvis_ctrl"].location', 1, "pelvis_ctrl")
    fcurve_io.write_dense(fc, np.arange(1, 61, dtype=float), np.linspace(0, 1, 60))
    return action


@pytest.mark.parametrize("case, words", [
    ("mesh", "not an armature"),
    ("no_action", "no action"),
    ("location_only", "no bone rotation curves"),
    ("too_short", "at least 44 frames"),
    ("count", "1 to 32 variations"),
    ("torch_missing", "GenMM"),
])
def test_bad_input_is_reported_and_changes_nothing(rig, case, words):
    req = var.VariationRequest(obj=rig, method="MOTIONDREAMER" if HAS_TORCH else "GENMM")
    if case == "mesh":
        bpy.ops.mesh.primitive_cube_add()
        req.obj = bpy.context.active_object
    elif case == "no_action":
        rig.animation_data.action = None
    elif case == "location_only":
        req.action = _location_only_action(rig)
    elif case == "too_short":
        if not HAS_TORCH:
            pytest.skip("the MotionDreamer length check runs after the torch check")
        req.action = _short_action(rig, 30)
    elif case == "count":
        req.count = 0
    elif case == "torch_missing":
        if HAS_TORCH:
            pytest.skip("torch is installed here")
        req.method = "MOTIONDREAMER"
    before, snap = datablocks(), fx.snapshot()
    with pytest.raises(InputError, match=words):
        var.make_variations(req)
    assert datablocks() == before and fx.snapshot() == snap


def test_operator_reports_bad_input_and_poll_explains(rig):
    fx.snapshot()
    before = datablocks()
    rig.animation_data.action = None
    with pytest.raises(RuntimeError, match="no action"):
        bpy.ops.sparse_motion.make_variations(method="GENMM")
    assert datablocks()[1] == before[1]
    bpy.ops.mesh.primitive_cube_add()
    assert "not an armature" in var_op.variations_problem(bpy.context)
    assert not bpy.ops.sparse_motion.make_variations.poll()


def test_panel_shows_settings_reason_and_progress(rig):
    from sparse_motion.panels.motion_panel import SPARSEMOTION_PT_variations

    def draw():
        return fx.draw_panel(SPARSEMOTION_PT_variations)

    settings = bpy.context.scene.sparse_motion
    settings.var_method = "GENMM"
    log = draw()
    assert ("operator", "sparse_motion.make_variations") in log
    assert ("prop", "var_novelty") in log and ("prop", "var_action") in log
    assert not any(k == "label" for k, _ in log)
    settings.var_method = "MOTIONDREAMER"
    no_torch = ("label", "MotionDreamer needs PyTorch in Blender's Python: choose GenMM")
    assert (no_torch in draw()) == (not HAS_TORCH)
    rig.animation_data.action = None
    assert ("label", "'VarRig' plays no action: pick a reference action") in draw()
    release = threading.Event()
    job = var_op.Job(lambda progress, cancel: (progress(0.4, "Learning to vary: step 10/80, "
                                                            "loss 2.1, 30 s left"),
                                               release.wait(5))).start()
    old = var_op.current_job
    var_op.current_job = job
    try:
        while job.progress == 0.0:
            job.wait(0.01)
        log = draw()
        assert ("progress", "Learning to vary: step 10/80, loss 2.1, 30 s left (40 %)") in log
        assert ("operator", "sparse_motion.cancel_variations") in log
        assert ("operator", "sparse_motion.make_variations") not in log
        assert "Variations are being made" in var_op.variations_problem(bpy.context)
    finally:
        release.set()
        job.wait(5)
        var_op.current_job = old


@needs_torch
def test_motiondreamer_seed_determinism_and_cache_hit(rig, addon):
    cfg = tiny_config()
    req = dict(obj=rig, count=2, seed=11, method="MOTIONDREAMER", config=cfg)
    var.release_models()
    first = var.make_variations(var.VariationRequest(**req))
    assert first.trained and "trained" in first.message()
    assert len(list(addon.glob("motiondreamer-*.pt"))) >= 1
    keys_first = [curve_values(rig, a) for a in first.actions]
    # asking again: from the cache (memory, then disk), same variations
    again = var.make_variations(var.VariationRequest(**req))
    assert not again.trained and "cached model" in again.message()
    assert again.timings["training"] < 0.5 * first.timings["training"]
    var.release_models()
    from_disk = var.make_variations(var.VariationRequest(**req))
    assert not from_disk.trained
    for res in (again, from_disk):
        for a, ref_keys in zip(res.actions, keys_first):
            got = curve_values(rig, a)
            assert got.keys() == ref_keys.keys()
            for k in got:
                np.testing.assert_allclose(got[k][0], ref_keys[k][0])
                np.testing.assert_allclose(got[k][1], ref_keys[k][1], atol=1e-5)
    # another seed: other variations
    other = var.make_variations(var.VariationRequest(**{**req, "seed": 12, "count": 1}))
    path = ('pose.bones["L_thigh"].rotation_euler', 0)
    assert not np.array_equal(curve_values(rig, other.actions[0])[path][1],
                              keys_first[0][path][1]) or \
        curve_values(rig, other.actions[0])[path][0].shape != keys_first[0][path][0].shape


@needs_torch
def test_cancel_mid_training_leaves_nothing(rig, addon):
    cfg = tiny_config(tr_steps=5000)
    var.release_models()
    before, snap = datablocks(), fx.snapshot()
    cached = set(addon.glob("*"))
    plan = var.prepare(var.VariationRequest(obj=rig, count=3, seed=99, config=cfg))
    assert not var.cached(plan)
    seen = []

    def work(progress, cancel):
        def prog(f, status):
            seen.append(status)
            progress(f, status)
        return var.compute(plan, prog, cancel)

    job = var_op.Job(work).start()
    while not any("Learning to vary" in s and "left" in s for s in seen) and not job.done:
        job.wait(0.02)
    job.cancel()
    assert job.wait(60)
    assert job.cancelled and job.generation is None and job.error is None
    assert any(s.startswith("Learning motion patterns") for s in seen)
    assert datablocks() == before and fx.snapshot() == snap
    assert set(addon.glob("*")) == cached  # no half-trained model in the cache
    assert not var.cached(plan)
