# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate Motion on real Blender (the bpy wheel) with a tiny sMDM model trained and exported
in the test (``smdm_fixture``): sparse Bezier keys on the model's keyframes, seeds, undo,
cancel, a target armature, and bad input leaving the file unchanged."""
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import smdm_fixture  # noqa: E402
from sparse_motion.blender import actions  # noqa: E402
from sparse_motion.blender import generate as gen  # noqa: E402
from sparse_motion.inference import registry  # noqa: E402
from sparse_motion.inference import understand  # noqa: E402
from sparse_motion.operators import generate as gen_op  # noqa: E402

MODEL = smdm_fixture.NAME


@pytest.fixture(scope="module", autouse=True)
def addon(tmp_path_factory):
    with fx.addon_with_models(tmp_path_factory.mktemp("models"),
                              [smdm_fixture.tiny_package()]) as models:
        yield models


def datablocks():
    return (sorted(o.name for o in bpy.data.objects), sorted(a.name for a in bpy.data.actions),
            sorted(a.name for a in bpy.data.armatures), bpy.context.scene.frame_start,
            bpy.context.scene.frame_end)


def keys_of(action, obj):
    """{(data_path, index): (co array, interpolations)} of the action's curves for obj."""
    out = {}
    for fc in actions.channels_for(obj).fcurves if actions.channels_for(obj).action == action \
            else []:
        n = len(fc.keyframe_points)
        co = np.zeros(2 * n, dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = (co.reshape(n, 2),
                                               {k.interpolation for k in fc.keyframe_points})
    return out


def request(**kw):
    base = dict(prompt="a person walks forward", seconds=3.0, seed=1, model=MODEL, steps=12)
    base.update(kw)
    return gen.GenerateRequest(**base)


def test_generate_writes_sparse_keys_on_the_models_keyframes():
    fx.reset()
    bpy.context.scene.render.fps = 20
    res = gen.generate(request(frame_start=5))
    obj, action = res.obj, res.actions[0]
    assert obj.type == "ARMATURE" and res.created_rig and action.name == "a person walks forward #1"
    assert actions.channels_for(obj).action == action
    keys = keys_of(action, obj)
    assert keys
    frames = {tuple(np.round(co[:, 0]).astype(int)) for co, _ in keys.values()}
    assert len(frames) == 1  # synchronised keys
    kf = np.array(next(iter(frames)))
    F = 60
    assert kf[0] == 5 and kf[-1] == 5 + F - 1 and len(kf) <= 0.25 * F  # the model's ~20 %
    assert all(interp == {"BEZIER"} for _, interp in keys.values())
    assert action["sparse_motion"]["prompt"] == "a person walks forward"
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (5, 5 + F - 1)
    # the hips really travel forward as the prompt says (Blender's own evaluation)
    hips = obj.pose.bones["Hips"]
    bpy.context.scene.frame_set(5)
    p0 = (obj.matrix_world @ hips.head).copy()
    bpy.context.scene.frame_set(5 + F - 1)
    p1 = obj.matrix_world @ hips.head
    assert (p1 - p0).length > 1.0  # metres: ~4 cm per frame in training
    assert "keyframes" in res.message() and res.timings["writing"] > 0


def test_same_seed_same_keys_and_other_frame_rates():
    fx.reset()
    bpy.context.scene.render.fps = 24
    a = gen.generate(request(seed=7))
    ka = keys_of(a.actions[0], a.obj)
    b = gen.generate(request(seed=7))
    kb = keys_of(b.actions[0], b.obj)
    assert ka.keys() == kb.keys()
    for k in ka:
        np.testing.assert_array_equal(ka[k][0], kb[k][0])
    c = gen.generate(request(seed=8))
    kc = keys_of(c.actions[0], c.obj)
    assert any(not np.array_equal(ka[k][0], kc[k][0]) for k in ka if k in kc)
    # 3 s at 24 fps: 72 frames, 1–72 (the model's 60 frames at 20 fps, resampled)
    assert max(co[:, 0].max() for co, _ in ka.values()) == 72 == a.frames


def test_several_results_and_percentage_keys_onto_a_target():
    fx.reset()
    first = gen.generate(request(prompt="a person raises both arms"))
    rig = first.obj
    before = first.actions[0]
    res = gen.generate(request(results=3, target=rig, key_mode="PERCENT", key_percent=10))
    assert res.obj == rig and len(res.actions) == 3 and not res.created_rig
    assert actions.channels_for(rig).action == res.actions[-1]
    assert before.use_fake_user and all(a.use_fake_user for a in res.actions[:-1])
    assert [a.name for a in res.actions] == [f"a person walks forward #1.{i}" for i in (1, 2, 3)]
    n_frames = {len(fc.keyframe_points) for fc in actions.channels_for(rig).fcurves}
    assert max(n_frames) <= 0.1 * 60 + 2


@pytest.mark.parametrize("seconds, fps, frames", [
    (6, 30, 180), (20, 30, 600), (6, 24, 144), (6, 20, 120), (2.5, 25, 63), (0.5, 60, 30)])
def test_n_seconds_at_f_fps_give_round_n_times_f_frames(seconds, fps, frames):
    """The length rule, through the Generate Motion operator: frames 1 … round(N × F)."""
    fx.reset()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    assert bpy.ops.sparse_motion.generate_motion(prompt="a person walks forward",
                                                 seconds=seconds, model=MODEL,
                                                 steps=10) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    action = actions.channels_for(obj).action
    assert tuple(action.frame_range) == (1.0, float(frames))
    assert (scene.frame_start, scene.frame_end) == (1, frames)
    assert gen.clip_frames(seconds, fps) == frames


def test_scene_frames_are_the_models_motion_at_the_scene_rate():
    """30 fps frame 1 + 3k shows the model's frame 2k (same time, 0.1k s): nothing is
    stretched; the last 30 fps frame, a third of a model frame past its last one, holds it."""
    def hips_track(fps):
        fx.reset()
        bpy.context.scene.render.fps = fps
        res = gen.generate(request(seed=3, key_mode="PERCENT", key_percent=100.0))
        hips = res.obj.pose.bones["Hips"]
        track = []
        for f in range(1, res.frames + 1):
            bpy.context.scene.frame_set(f)
            track.append(tuple(res.obj.matrix_world @ hips.head))
        return np.array(track)

    at20, at30 = hips_track(20), hips_track(30)
    assert (len(at20), len(at30)) == (60, 90)
    np.testing.assert_allclose(at30[0::3], at20[0::2], atol=1e-4)
    np.testing.assert_allclose(at30[-1], at20[-1], atol=1e-4)
    assert np.linalg.norm(at30[-1] - at30[0]) > 0.1  # it moves (metres)


def test_operator_is_one_undo_step():
    fx.reset()
    fx.assert_one_undo_step(lambda: bpy.ops.sparse_motion.generate_motion(
        prompt="a person walks forward", seconds=2, model=MODEL, steps=10), datablocks)


def test_cancelled_job_changes_nothing():
    fx.reset()
    fx.make_armature("Other")
    before, snap = datablocks(), fx.snapshot()
    req = request(steps=200)
    model, prompt, frames = gen.prepare(req)
    started = []

    def work(progress, cancel):
        def prog(f, msg):
            started.append(f)
            progress(f, msg)
        return gen.sample(model, req, frames, prog, cancel)

    job = gen_op.Job(work).start()
    while not started and not job.done:
        job.wait(0.01)
    job.cancel()
    assert job.wait(30)
    assert job.cancelled and job.generation is None and job.error is None
    assert len(started) < 200
    assert datablocks() == before and fx.snapshot() == snap


@pytest.mark.parametrize("kwargs, words", [
    (dict(prompt="  "), "prompt is empty"),
    (dict(seconds=0.0), "out of range"),
    (dict(seconds=600.0), "out of range"),
    (dict(model="no-such-model"), "No model named 'no-such-model'"),
    (dict(target="Cube"), "not an armature"),
])
def test_bad_input_is_reported_and_changes_nothing(kwargs, words):
    fx.reset()
    fx.make_armature("Other")
    bpy.ops.mesh.primitive_cube_add()
    before, snap = datablocks(), fx.snapshot()
    args = dict(prompt="a person walks forward", seconds=2, model=MODEL, steps=10)
    args.update(kwargs)
    if args["model"] not in [i[0] for i in registry.enum_items("smdm")]:
        with pytest.raises(TypeError):  # an enum value that does not exist
            bpy.ops.sparse_motion.generate_motion(**args)
        with pytest.raises(Exception, match=words):
            gen.generate(request(model=args["model"]))
    else:
        with pytest.raises(RuntimeError, match=words):
            bpy.ops.sparse_motion.generate_motion(**args)
    assert datablocks() == before and fx.snapshot() == snap


@pytest.mark.parametrize("damage, words", [("missing", "is missing file denoiser.onnx"),
                                           ("corrupt", "checksum mismatch")])
def test_broken_model_files_are_reported(addon, tmp_path, damage, words):
    fx.reset()
    with smdm_fixture.broken_package(addon, damage) as name:
        before = datablocks()
        with pytest.raises(Exception, match=words):
            gen.generate(request(model=name))
        assert datablocks() == before


def test_panel_explains_why_generate_is_disabled():
    fx.reset()
    assert gen_op.generate_problem(bpy.context, "  ") == "Type a prompt describing the motion"
    assert gen_op.generate_problem(bpy.context, "a person waves") is None
    fx.make_armature("Rig")
    bpy.ops.object.mode_set(mode="EDIT")
    assert "Object or Pose Mode" in gen_op.generate_problem(bpy.context, "a person waves")
    bpy.ops.object.mode_set(mode="OBJECT")


def test_panel_shows_settings_reason_and_progress():
    from sparse_motion.panels.motion_panel import SPARSEMOTION_PT_generate

    def draw():
        return fx.draw_panel(SPARSEMOTION_PT_generate)

    fx.reset()
    settings = bpy.context.scene.sparse_motion
    settings.gen_prompt = ""
    log = draw()
    assert ("operator", "sparse_motion.generate_motion") in log
    assert ("label", "Type a prompt describing the motion") in log
    assert ("prop", "gen_seconds") in log and ("prop", "gen_target") in log
    settings.gen_prompt = "a person walks forward"
    understand.warm(registry.get_registry().resolve("smdm", settings.gen_model))
    labels = [t for k, t in draw() if k == "label"]
    assert labels[0].startswith("Understood as: walk (")  # and no problem under the button
    assert [t for t in labels[1:] if not t.startswith("Knows ")] == []
    # while a job runs: progress and Cancel instead of the button
    release = __import__("threading").Event()
    job = gen_op.Job(lambda progress, cancel: (progress(0.25, "step 5/20"), release.wait(5)))
    gen_op.current_job = job.start()
    try:
        job.wait(0.2)
        log = draw()
        assert ("progress", "step 5/20 (25 %)") in log
        assert ("operator", "sparse_motion.cancel_generation") in log
        assert ("operator", "sparse_motion.generate_motion") not in log
        assert bpy.ops.sparse_motion.generate_motion.poll() is False
    finally:
        release.set()
        job.wait(5)
        gen_op.current_job = None


def understood_as(prompt):
    """The panel's "Understood as" lines for ``prompt`` (the label under the prompt field)."""
    from sparse_motion.panels.motion_panel import SPARSEMOTION_PT_generate

    bpy.context.scene.sparse_motion.gen_prompt = prompt
    return [t for k, t in fx.draw_panel(SPARSEMOTION_PT_generate) if k == "label"]


def test_panel_shows_what_the_prompt_is_understood_as():
    from sparse_motion.panels import motion_panel

    fx.reset()
    understand.clear()
    pkg = registry.get_registry().resolve("smdm", bpy.context.scene.sparse_motion.gen_model)
    # cold: the text encoder loads on a thread, the panel says so and redraws when it is done
    lines = understood_as("a person runs fast")
    assert lines[0] == motion_panel.UNDERSTANDING
    thread = understand.warm_async(pkg)
    polls = list(motion_panel._waiting.values())
    assert len(polls) == 1 and bpy.app.timers.is_registered(polls[0])  # the redraw timer
    thread.join(60)
    assert not thread.is_alive() and thread.error is None
    lines = understood_as("a person runs fast")
    assert lines[0].startswith("Understood as: run (") and lines[0].endswith(" ms")
    u = understand.lookup("a person runs fast", pkg)
    assert u is not None and u.content == "run"
    assert understood_as("a person runs fast")[0] == lines[0]  # redraws: the cached result
    assert understood_as("waves with the left hand")[0].startswith(
        "Understood as: wave-left-hand (")
    assert understood_as("he kicks angrily")[0].startswith("Understood as: kick (")
    assert ", angry (" in understood_as("he kicks angrily")[0]
    assert ", normal (" in understood_as("a man runs")[0]
    # what the model knows, under it
    known = understand.known_labels(pkg)
    assert lines[1:] == ["Knows " + line for line in known.short()]
    assert lines[1].startswith(f"Knows {len(known.contents)} contents: ")
    # bpy as a module runs no timers: unregistering takes the redraw timer away (one left
    # registered at exit crashes bpy 4.2 in its static destructors, rc 139)
    assert bpy.app.timers.is_registered(polls[0])
    fx.unregister()
    try:
        assert not bpy.app.timers.is_registered(polls[0]) and not motion_panel._waiting
    finally:
        fx.ensure_registered()


@pytest.mark.parametrize("prompt", ["人が歩く", "eine Person läuft schnell", "🏃‍♂️💨",
                                    "q" * 2000, "she bakes a cake"])
def test_panel_says_plainly_when_a_prompt_is_not_understood(prompt):
    pkg = registry.get_registry().resolve("smdm", bpy.context.scene.sparse_motion.gen_model)
    understand.warm(pkg)
    lines = understood_as(prompt)
    assert lines[0].startswith("Not understood: closest is ") and "low confidence" in lines[0]
    assert lines[1].startswith("No content the model knows is close to this prompt")
    assert all(t.startswith("Knows ") for t in lines[2:])


def test_panel_with_an_empty_or_long_prompt():
    pkg = registry.get_registry().resolve("smdm", bpy.context.scene.sparse_motion.gen_model)
    understand.warm(pkg)
    lines = understood_as("   ")
    assert "Type a prompt describing the motion" in lines
    assert not any(t.startswith(("Understood as", "Not understood")) for t in lines)
    lines = understood_as(("A person runs fast along the beach, " * 60)[:2000])
    assert lines[0].startswith("Understood as: run (")
    assert lines[1] == "Long prompt: only its first 64 tokens are read"


@pytest.mark.parametrize("prompt, warned", [("she bakes a chocolate cake in the oven", True),
                                            ("a person walks forward", False)])
def test_a_prompt_the_model_does_not_understand_is_said_plainly(prompt, warned):
    """With grounding on (the shipped package's setting), a prompt far from every content the
    model knows still generates, and the report says the motion may not show what was asked."""
    fx.reset()
    req = request(prompt=prompt)
    model, text, frames = gen.prepare(req)
    g = model.generate(text, frames, req.seed, steps=req.steps,
                       grounding={"weight": 0.5, "min_confidence": 0.3})
    assert g.understood_as is not None and g.understood_as["understood"] is not warned
    res = gen.apply(g, req)
    said = [w for w in res.warnings if w.startswith("Prompt not understood")]
    assert bool(said) is warned and res.actions
    if warned:
        assert "closest content: " in said[0]
