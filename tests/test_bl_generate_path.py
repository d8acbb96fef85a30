# SPDX-License-Identifier: GPL-3.0-or-later
"""The model menu and Follow path on real Blender, with the tiny MotionLCM package trained in
the test (``smdm_fixture.tiny_lcm_package``) beside the tiny sMDM one: both kinds in the
menu, MotionLCM's own options, sparse keys, the pelvis on a curve's ground projection and at
keyed empties (measured by Blender evaluating the written action), bad paths reported with
nothing changed."""
import json
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import bl_fixtures as fx  # noqa: E402
import smdm_fixture  # noqa: E402
from sparse_motion.blender import actions  # noqa: E402
from sparse_motion.blender import generate as gen  # noqa: E402
from sparse_motion.inference import registry  # noqa: E402
from sparse_motion.inference.generation import KINDS  # noqa: E402
from sparse_motion.panels import motion_panel  # noqa: E402

LCM, SMDM = smdm_fixture.LCM_NAME, smdm_fixture.NAME
PROMPT = "a person walks forward"


@pytest.fixture(scope="module", autouse=True)
def addon(tmp_path_factory):
    with fx.addon_with_models(tmp_path_factory.mktemp("models"),
                              [smdm_fixture.tiny_package(), smdm_fixture.tiny_lcm_package()]) as m:
        yield m


def counts():
    return (len(bpy.data.objects), len(bpy.data.actions), len(bpy.data.armatures),
            len(bpy.data.curves), bpy.context.scene.frame_current,
            bpy.context.scene.frame_start, bpy.context.scene.frame_end)


def request(**kw):
    base = dict(prompt=PROMPT, seconds=3.0, seed=1, model=LCM, lcm_steps=2)
    base.update(kw)
    return gen.GenerateRequest(**base)


def make_curve(name, points, kind="BEZIER", location=(0, 0, 0)):
    """A one-spline curve object through ``points`` (metres, object space)."""
    cu = bpy.data.curves.new(name, "CURVE")
    cu.dimensions = "3D"
    sp = cu.splines.new(kind)
    if kind == "BEZIER":
        sp.bezier_points.add(len(points) - 1)
        for b, p in zip(sp.bezier_points, points):
            b.co = p
            b.handle_left_type = b.handle_right_type = "AUTO"
    else:
        sp.points.add(len(points) - 1)
        for b, p in zip(sp.points, points):
            b.co = (*p, 1.0)
        if kind == "NURBS":
            sp.use_endpoint_u = True
    obj = bpy.data.objects.new(name, cu)
    obj.location = location
    bpy.context.scene.collection.objects.link(obj)
    return obj


def hips_world(obj, frames):
    """Blender's evaluation of the written action: the Hips head in the world (m)."""
    scene = bpy.context.scene
    out = []
    for f in frames:
        scene.frame_set(int(f))
        out.append(tuple(obj.matrix_world @ obj.pose.bones["Hips"].head))
    return np.array(out)


def polyline_distance(p, line):
    """Distance of each point ``p (F, 2)`` to the polyline ``line (N, 2)``."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(np.einsum("fnk,nk->fn", p[:, None] - a[None], ab)
                / np.maximum((ab * ab).sum(1), 1e-12), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(p[:, None] - closest, axis=2).min(axis=1)


# --------------------------------------------------------------------------- the model menu


def test_model_menu_lists_both_kinds_with_their_descriptions():
    fx.reset()
    items = registry.enum_items(tuple(KINDS))
    ids = [i[0] for i in items]
    assert ids[0] == "DEFAULT" and {SMDM, LCM} <= set(ids)
    desc = {i[0]: i[2] for i in items}
    assert "motionlcm model" in desc[LCM] and "Tiny MotionLCM" in desc[LCM]
    assert "smdm model" in desc[SMDM]
    settings = bpy.context.scene.sparse_motion
    settings.gen_model = LCM
    settings.gen_prompt = PROMPT
    drawn = fx.draw_panel(motion_panel.SPARSEMOTION_PT_generate)
    props = [v for k, v in drawn if k == "prop"]
    assert "gen_lcm_steps" in props and "gen_guidance" not in props and "gen_steps" not in props
    assert "gen_follow" in props
    assert ("label", motion_panel.PATH_NEEDS_LCM) not in drawn
    assert settings.gen_lcm_steps == "4"  # the default
    settings.gen_model = SMDM
    drawn = fx.draw_panel(motion_panel.SPARSEMOTION_PT_generate)
    props = [v for k, v in drawn if k == "prop"]
    assert "gen_guidance" in props and "gen_steps" in props and "gen_lcm_steps" not in props
    assert "gen_follow" in props  # greyed out, "Follow Path (MotionLCM)"
    assert ("label", motion_panel.PATH_NEEDS_LCM) not in drawn
    # a path asked of sMDM stops Generate with the same reason
    settings.gen_follow = "OBJECT"
    settings.gen_path = make_curve("Path", [(0, 0, 0), (2, 0, 0)])
    drawn = fx.draw_panel(motion_panel.SPARSEMOTION_PT_generate)
    assert drawn.count(("label", motion_panel.PATH_NEEDS_LCM)) == 2
    settings.gen_follow = "NONE"
    motion_panel._cancel_redraws()


def test_understood_as_works_for_the_selected_motionlcm_model():
    from sparse_motion.inference import understand

    fx.reset()
    settings = bpy.context.scene.sparse_motion
    settings.gen_model, settings.gen_prompt = LCM, "a person runs fast"
    pkg = registry.get_registry().resolve(tuple(KINDS), settings.gen_model)
    assert pkg.name == LCM
    understand.warm(pkg)
    lines = [v for k, v in fx.draw_panel(motion_panel.SPARSEMOTION_PT_generate)
             if k == "label"]
    assert any(line.startswith(("Understood as", "Not understood")) for line in lines), lines
    assert any(line.startswith("Knows ") for line in lines)
    motion_panel._cancel_redraws()


def test_motionlcm_generation_writes_sparse_keys():
    fx.reset()
    bpy.context.scene.render.fps = 20
    gen.get_model(LCM).load()  # timed below without the loading
    times = []
    for steps in (1, 2, 4):
        t0 = time.perf_counter()
        res = gen.generate(request(lcm_steps=steps, seed=steps))
        times.append(time.perf_counter() - t0)
        action = res.actions[0]
        keys = {tuple(np.round(fcurve_frames(fc)).astype(int))
                for fc in actions.channels_for(res.obj).fcurves}
        assert len(keys) == 1  # every channel keyed on the same frames
        kf = next(iter(keys))
        assert kf[0] == 1 and kf[-1] == 60 and len(kf) <= 0.25 * 60
        meta = action["sparse_motion"]
        assert meta["steps"] == steps and meta["model"].startswith(LCM) and meta["path"] == ""
    curve = make_curve("Path", QUARTER, "BEZIER")
    t0 = time.perf_counter()
    gen.generate(request(lcm_steps=4, path=curve))
    t_path = time.perf_counter() - t0
    print(f"\nMotionLCM tiny, 3 s (60 frames), end to end (text, sampling, decoding, keys "
          f"written; model loaded): 1/2/4 steps {times[0]:.3f} / {times[1]:.3f} / "
          f"{times[2]:.3f} s; 4 steps along a curve (read, control, fit) {t_path:.3f} s")
    # through the operator (one undo step), the MotionLCM steps as an enum
    n = len(bpy.data.actions)
    assert bpy.ops.sparse_motion.generate_motion(prompt=PROMPT, seconds=2, model=LCM,
                                                 lcm_steps="1") == {"FINISHED"}
    assert len(bpy.data.actions) == n + 1


def fcurve_frames(fc):
    co = np.zeros(2 * len(fc.keyframe_points))
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2]


# --------------------------------------------------------------------------- follow path


def _even_targets(ground, F):
    """Where the pelvis should be at each of ``F`` frames: evenly along ``ground`` by arc
    length."""
    cum = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(ground, axis=0), axis=1))])
    s = np.linspace(0, cum[-1], F)
    return np.stack([np.interp(s, cum, ground[:, 0]), np.interp(s, cum, ground[:, 1])], 1), cum


def _placed_without_path(req, F, seed):
    """The same request without the path (ground cm in Blender's axes, m), placed like the
    path's result: what the ControlNet and the fit add."""
    free = gen.get_model(LCM).generate(PROMPT, F, seed, steps=2)
    _q, x = req.path_control.placement.to_world(*free.motion(0))
    return np.stack([x[:, 0], -x[:, 2]], axis=1) / 100.0


#: A quarter circle of radius 1.5 m (2.36 m) from its start heading +X to its end heading +Y.
QUARTER = [(0, 0, 1.5), (0.75, 0.2, 1.5), (1.3, 0.75, 1.5), (1.5, 1.5, 1.5)]


@pytest.mark.parametrize("kind", ["BEZIER", "NURBS", "POLY"])
def test_pelvis_follows_the_curves_ground_projection(kind):
    fx.reset()
    bpy.context.scene.render.fps = 20
    # drawn 1.5 m up in the air (its ground projection is followed) from (2, 1), over 3 s:
    # ~0.8 m/s, the tiny model's walking pace
    curve = make_curve("Path", QUARTER, kind, location=(2, 1, 0))
    ground = _curve_ground(curve)
    F = 60
    target, cum = _even_targets(ground, F)
    rows = {}
    for fit in (True, False):
        req = request(seconds=3.0, path=curve, seed=0, fit_path=fit)
        res = gen.generate(req)
        assert res.path == "Curve 'Path'" and "along Curve 'Path'" in res.message()
        assert res.frames == F and res.actions[0]["sparse_motion"]["path_fit"] == fit
        hips = hips_world(res.obj, np.arange(1, F + 1))[:, :2]
        rows["fitted" if fit else "ControlNet only"] = hips
    rows["without the path"] = _placed_without_path(req, F, 0)
    print(f"\n{kind} quarter circle, {cum[-1]:.2f} m in 3 s (cm):")
    for name, hips in rows.items():
        d_curve = polyline_distance(hips, ground) * 100
        d_target = np.linalg.norm(hips - target, axis=1) * 100
        print(f"  {name:>16}: to the curve mean {d_curve.mean():5.1f} max {d_curve.max():5.1f}; "
              f"to the even-pace point mean {d_target.mean():5.1f} max {d_target.max():5.1f}; "
              f"end {d_target[-1]:5.1f}")
    hips = rows["fitted"]
    d_curve = polyline_distance(hips, ground) * 100
    d_target = np.linalg.norm(hips - target, axis=1) * 100
    assert d_target[0] < 8.0                      # starts at the path's start
    assert d_curve.mean() < 6.0 and d_curve.max() < 15.0
    assert d_target.mean() < 8.0 and d_target.max() < 20.0
    set_off = (hips[12] - hips[0]) / np.linalg.norm(hips[12] - hips[0])
    arrive = (hips[-1] - hips[-13]) / np.linalg.norm(hips[-1] - hips[-13])
    assert set_off[0] > 0.9 and arrive[1] > 0.8   # along the path: +X, then +Y
    # what the tiny ControlNet alone does is loose: it must not be far off a plain walk
    free = polyline_distance(rows["without the path"], ground).mean()
    assert polyline_distance(rows["ControlNet only"], ground).mean() < free + 0.1


def test_pace_from_the_prompt():
    fx.reset()
    bpy.context.scene.render.fps = 20
    curve = make_curve("Path", [(0, 0, 0), (1.2, 0, 0), (2.2, 0.6, 0)], "POLY")
    even = gen.generate(request(seconds=3.0, path=curve, seed=4))
    paced = gen.generate(request(seconds=3.0, path=curve, seed=4, pace="PROMPT"))
    a = hips_world(even.obj, np.arange(1, 61))[:, :2]
    b = hips_world(paced.obj, np.arange(1, 61))[:, :2]
    d = polyline_distance(b, _curve_ground(curve)) * 100
    print(f"\npace from the prompt: pelvis to the curve mean {d.mean():.1f} cm; differs from "
          f"the even pace by up to {np.abs(a - b).max() * 100:.1f} cm")
    assert np.linalg.norm(b[0]) * 100 < 8.0 and d.mean() < 6.0
    with pytest.raises(Exception, match="Pace must be one of"):
        gen.generate(request(path=curve, pace="FAST"))


def _curve_ground(curve):
    from sparse_motion.blender import paths

    return paths._curve_world_points(curve)[:, :2]


def keyed_empties(name, keys):
    """A collection ``name`` of empties, one per ``{frame: location}``, keyed there."""
    coll = bpy.data.collections.new(name)
    bpy.context.scene.collection.children.link(coll)
    for f, p in keys.items():
        e = bpy.data.objects.new(f"Mark{f}", None)
        coll.objects.link(e)
        e.location = p
        e.keyframe_insert("location", frame=f)
    return coll


def test_empties_are_reached_at_their_key_frames():
    fx.reset()
    scene = bpy.context.scene
    scene.render.fps = 20
    keys = {1: (-1.0, 0.5, 0.0), 30: (-1.0, -0.6, 0.0), 60: (-0.3, -1.5, 0.0)}
    coll = keyed_empties("Waypoints", keys)
    scene.frame_set(17)
    before = counts()
    frames = sorted(keys)
    want = np.array([keys[f][:2] for f in frames])
    dist = {}
    for fit in (True, False):
        req = request(seconds=3.0, path_collection=coll, seed=2, fit_path=fit)
        res = gen.generate(req)
        assert scene.frame_current == 17  # reading the empties at their frames put it back
        hips = hips_world(res.obj, frames)[:, :2]
        dist[fit] = np.linalg.norm(hips - want, axis=1) * 100
        scene.frame_set(17)
    free = _placed_without_path(req, 60, 2)[np.array(frames) - 1]
    d_free = np.linalg.norm(free - want, axis=1) * 100
    print(f"\nempties at frames {frames}: pelvis distance fitted {np.round(dist[True], 1)} cm, "
          f"ControlNet only {np.round(dist[False], 1)} cm, without the empties (placed the "
          f"same way) {np.round(d_free, 1)} cm")
    assert dist[True].max() < 3.0
    assert dist[False][0] < 8.0
    assert len(bpy.data.objects) == before[0] + 2  # two rigs; the empties untouched


def test_a_path_onto_a_moved_canonical_target_rig():
    fx.reset()
    bpy.context.scene.render.fps = 20
    rig = gen.generate(request(seconds=2.0, seed=3)).obj
    rig.location = (5.0, -2.0, 0.0)
    rig.rotation_euler = (0.0, 0.0, 0.7)
    bpy.context.view_layer.update()
    curve = make_curve("Path", [(0, 0, 0), (0, 1.2, 0), (0.4, 2.4, 0)], "POLY")
    res = gen.generate(request(seconds=3.0, target=rig, path=curve, seed=0))
    assert res.obj == rig and not res.created_rig
    hips = hips_world(rig, np.arange(1, res.frames + 1))[:, :2]
    d = polyline_distance(hips, _curve_ground(curve)) * 100
    print(f"\nmoved target rig: pelvis to the curve mean {d.mean():.1f} cm, max {d.max():.1f} cm, "
          f"start {np.linalg.norm(hips[0]) * 100:.1f} cm from the path's start")
    assert np.linalg.norm(hips[0]) * 100 < 8.0
    assert d.mean() < 6.0 and d.max() < 15.0


def _follow_onto(rig, what, bones=("Hips",), location=(1.0, -1.0, 0.0)):
    """Generate along the quarter circle onto ``rig``; the pelvis (the mean of ``bones``'
    heads, Blender's evaluation) to the curve: ``(mean, max, start)`` cm, printed."""
    bpy.context.view_layer.update()
    curve = make_curve("Path", QUARTER, "POLY", location=location)
    res = gen.generate(request(seconds=3.0, target=rig, path=curve, seed=0))
    assert res.obj == rig and not res.created_rig
    hips = []
    for f in range(1, res.frames + 1):
        bpy.context.scene.frame_set(f)
        hips.append(np.mean([np.array(rig.matrix_world @ rig.pose.bones[b].head)
                             for b in bones], axis=0)[:2])
    hips, ground = np.array(hips), _curve_ground(curve)
    d = polyline_distance(hips, ground) * 100
    start = np.linalg.norm(hips[0] - ground[0]) * 100
    print(f"\n{what}: pelvis to the curve mean {d.mean():.1f} cm, max {d.max():.1f} cm, start "
          f"{start:.1f} cm from the path's start")
    return d.mean(), d.max(), start


def test_a_path_onto_a_retargeted_rig():
    """Through the retargeting path: a rig from a Bandai-layout BVH (not tagged; detected,
    retargeted), imported 1.2 times the canonical size and moved and turned."""
    import test_retarget_core as core
    from sparse_motion.blender import bvh_io
    from sparse_motion.motion import canonical as canon

    fx.reset()
    bpy.context.scene.render.fps = 20
    qa, xa = core.procedural_walk(2.0)
    rig = bvh_io.import_bvh(canon.canonical_to_bvh(qa, xa, 20, bandai_layout=True),
                            scale=0.012, name="canonical")
    rig.location, rig.rotation_euler = (-3.0, 2.0, 0.0), (0.0, 0.0, -0.5)
    mean, most, start = _follow_onto(rig, "retargeted rig (1.2x, moved, turned)")
    assert start < 8.0 and mean < 6.0 and most < 15.0


@pytest.mark.parametrize("key", ["mixamo", "rigify"])
def test_a_path_onto_another_rig(key):
    """Rigs that are not the canonical skeleton (Mixamo: 0.01 scale and 90 degrees about X
    on the object; Rigify): the retargeting's own placement (leg ratio, body frame). The
    pelvis is measured at the mid-point of the upper legs (the retargeting's hip centre)."""
    import test_bl_retarget as blr
    import test_retarget_core as core
    from sparse_motion.blender import retarget as bl_retarget

    fx.reset()
    bpy.context.scene.render.fps = 20
    rig = blr.build(core.RIGS[key]())
    rig.location = (1.0, 2.0, 0.0)
    mapping = bl_retarget.resolve_mapping(rig)
    legs = [mapping.bones[f"UpperLeg_{s}"] for s in "LR"]
    mean, most, start = _follow_onto(rig, f"{key} rig (hip centre)", legs, (1.0, 2.0, 0.0))
    assert start < 10.0 and mean < 10.0 and most < 25.0


# --------------------------------------------------------------------------- bad input


def _scene_with_things():
    fx.reset()
    bpy.context.scene.render.fps = 20
    bpy.ops.mesh.primitive_cube_add()
    make_curve("One", [(0, 0, 0)])
    make_curve("Sprint", [(0, 0, 0), (100, 0, 0)], "POLY")
    make_curve("Far", [(0, 0, 0), (1500, 0, 0), (1502, 0, 0)], "POLY")
    nan = make_curve("NaN", [(0, 0, 0), (1, 0, 0), (2, 0, 0)], "POLY")
    nan.data.splines[0].points[1].co = (float("nan"), 0.0, 0.0, 1.0)
    make_curve("Spot", [(1, 1, 0), (1, 1, 2)], "POLY")  # vertical: no ground length
    e = bpy.data.objects.new("Unkeyed", None)
    bpy.context.scene.collection.objects.link(e)


@pytest.mark.parametrize("path, model, words", [
    ("One", LCM, "has 1 point: a path needs at least two"),
    ("Sprint", LCM, "100.0 m in 2.95 s .* at most 8 m/s"),
    ("Cube", LCM, "'Cube' is a mesh, not a curve"),
    ("NaN", LCM, "not numbers \\(NaN or infinite\\)"),
    ("Far", LCM, "1.5 km from the world origin"),
    ("Spot", LCM, "has no length"),
    ("Unkeyed", LCM, "'Unkeyed' has no keys"),
    ("Sprint", SMDM, "Follow path needs a MotionLCM model"),
    ("Gone", LCM, "No object named 'Gone'"),
])
def test_bad_paths_are_reported_and_change_nothing(path, model, words):
    _scene_with_things()
    before, snap = counts(), fx.snapshot()
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.sparse_motion.generate_motion(prompt=PROMPT, seconds=3, model=model, path=path)
    assert counts() == before and fx.snapshot() == snap
    curve = bpy.data.objects.get(path)
    if curve is not None and curve.type == "CURVE":
        assert curve.data.bevel_depth == 0.0


def test_a_bevelled_curve_is_read_as_its_spline_and_left_as_it_was():
    from sparse_motion.blender import paths

    fx.reset()
    curve = make_curve("Tube", [(0, 0, 0), (1, 0, 0), (2, 1, 0)])
    plain = paths._curve_world_points(curve)
    curve.data.bevel_depth, curve.data.extrude = 0.2, 0.1
    thick = paths._curve_world_points(curve)
    np.testing.assert_allclose(thick, plain, atol=1e-6)
    assert (curve.data.bevel_depth, curve.data.extrude) == pytest.approx((0.2, 0.1))


def test_empties_must_start_at_the_first_frame_and_be_walkable():
    fx.reset()
    scene = bpy.context.scene
    scene.render.fps = 20
    keyed_empties("Late", {10: (0, 0, 0), 40: (1, 0, 0)})
    before, snap = counts(), fx.snapshot()
    with pytest.raises(RuntimeError, match="first key is at motion frame 10"):
        bpy.ops.sparse_motion.generate_motion(prompt=PROMPT, seconds=3, model=LCM,
                                              path_collection="Late")
    assert counts() == before and fx.snapshot() == snap


# --------------------------------------------------------------------------- batch rows


def test_batch_rows_follow_json_points_and_a_curve_in_a_blend(tmp_path):
    from sparse_motion.blender import batch as bl_batch
    from sparse_motion.pipeline import batch as pb

    fx.reset()
    curve = make_curve("Drawn", [(0, 0, 0), (0.8, 0.0, 0), (1.6, 0.5, 0), (2.0, 1.2, 0)], "POLY")
    ground = _curve_ground(curve)
    blend = tmp_path / "layout.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False)
    rows = json.dumps([
        {"id": "json", "prompt": PROMPT, "seconds": 3, "seed": 0, "model": LCM, "steps": 2,
         "path": [list(p) for p in ((0, 0, 0), (0.8, 0.0, 0), (1.6, 0.5, 0), (2.0, 1.2, 0))]},
        {"id": "blend", "prompt": PROMPT, "seconds": 3, "seed": 0, "model": LCM, "steps": 2,
         "path": f"{blend}::Drawn"},
        {"id": "keyed", "prompt": PROMPT, "seconds": 3, "seed": 0, "model": LCM,
         "path": {"points": [[0, 0, 0], [0.5, -1.0, 0], [1.0, -2.0, 0]],
                  "frames": [1, 30, 60]}},
    ])
    items = pb.parse_prompts(rows, "rows.json")
    entries = {}
    for item in items:
        entries[item.id] = bl_batch.run_item(item, tmp_path / "out", formats=("blend",), fps=20)
    assert entries["json"]["path"] == "The path" and entries["json"]["steps"] == 2
    assert entries["blend"]["path"] == "Curve 'Drawn'"
    assert entries["keyed"]["steps"] == 4  # MotionLCM's default
    for name in ("json", "blend"):  # the same request: the same motion, on the curve
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out" / name / f"{name}.blend"))
        rig = bpy.data.objects["Generated Motion"]
        hips = hips_world(rig, np.arange(1, 61))[:, :2]
        d = polyline_distance(hips, ground) * 100
        print(f"\nbatch row '{name}': pelvis to the path mean {d.mean():.1f} cm, "
              f"max {d.max():.1f} cm")
        assert np.linalg.norm(hips[0]) * 100 < 8.0 and d.mean() < 6.0
    fx.reset()
    fx.ensure_registered()
