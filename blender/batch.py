# SPDX-License-Identifier: GPL-3.0-or-later
"""Batch generation, the Blender half: one item of a prompts file → files + a manifest entry.

:func:`run_item` starts from an empty scene (or the item's target ``.blend``), generates the
item's motions with :mod:`.generate` (the model stays loaded between items), and writes
``<out>/<id>/<id>.blend`` and one ``.bvh`` / ``.fbx`` per result. It returns the manifest
entry; any error is raised (the caller records it and goes on).
"""
from __future__ import annotations

import time
from pathlib import Path

import bpy

from ..errors import InputError
from ..inference import metrics as _metrics
from ..motion import canonical as canon
from . import actions, bvh_io
from . import generate as gen

FORMATS = ("blend", "bvh", "fbx")


def _open_target(spec: str):
    """``FILE.blend`` or ``FILE.blend::Object`` → the armature object (the file is opened)."""
    path, _, name = spec.partition("::")
    if not Path(path).is_file():
        raise InputError(f"target file not found: {path}")
    bpy.ops.wm.open_mainfile(filepath=str(Path(path).resolve()), load_ui=False)
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise InputError(f"no object '{name}' in {path}")
        return obj
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise InputError(f"{path} has {len(arms)} armatures in its scene: name one as "
                         f"{path}::Object")
    return arms[0]


def _export_fbx(obj, action, path: Path):
    import addon_utils

    addon_utils.enable("io_scene_fbx", default_set=True)
    actions.play(obj, action)
    for o in bpy.context.view_layer.objects:
        o.select_set(o == obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, object_types={"ARMATURE"},
                             bake_anim=True, bake_anim_use_all_actions=False,
                             bake_anim_use_nla_strips=False, add_leaf_bones=False)


def run_item(item, out_dir: Path, *, formats=("blend", "bvh"), fps: int = 30,
             device: str = "AUTO", threads: int = 0) -> dict:
    """Generate one :class:`~..pipeline.batch.BatchItem`; returns its manifest entry."""
    t0 = time.perf_counter()
    if item.reference:
        raise InputError("reference actions (variations) are not available yet: remove the "
                         "'reference' value")
    target = None
    if item.target:
        target = _open_target(item.target)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    if not item.target:
        scene.render.fps, scene.render.fps_base = int(fps), 1.0
    mapping = None
    if item.mapping:
        from ..retarget import mapping as rmap

        mapping = rmap.load_preset(item.mapping)
    key_mode, pct = ("MODEL", 20.0) if item.keys == "model" else ("PERCENT", float(item.keys))
    req = gen.GenerateRequest(prompt=item.prompt, seconds=item.seconds, seed=item.seed,
                              results=item.count, model=item.model, guidance=item.guidance,
                              steps=item.steps, key_mode=key_mode, key_percent=pct,
                              target=target, mapping=mapping, device=device, threads=threads)
    model, prompt, frames = gen.prepare(req)
    req.prompt = prompt
    generation = gen.sample(model, req, frames)
    result = gen.apply(generation, req)
    folder = out_dir / item.id
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    if "blend" in formats:
        path = folder / f"{item.id}.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()), check_existing=False,
                                    compress=False)
        files.append(path)
    last = result.actions[-1]
    for r, action in enumerate(result.actions):
        stem = item.id if len(result.actions) == 1 else f"{item.id}-{r + 1}"
        if "bvh" in formats:
            actions.play(result.obj, action)
            path = folder / f"{stem}.bvh"
            bvh_io.export_bvh(result.obj, str(path.resolve()), scale=100.0)
            files.append(path)
        if "fbx" in formats:
            path = folder / f"{stem}.fbx"
            _export_fbx(result.obj, action, path.resolve())
            files.append(path)
    actions.play(result.obj, last)
    skating = []
    for r in range(len(generation.features)):
        q, x = generation.motion(r)
        skating.append(_metrics.foot_skating_ratio(canon.canonical_forward_kinematics(q, x)))
    pkg = model.package
    return {
        "status": "ok", "prompt": item.prompt, "seed": item.seed, "count": item.count,
        "seconds": item.seconds, "frames": result.frames, "steps": item.steps,
        "guidance": item.guidance, "keys_mode": item.keys,
        "model": pkg.name, "model_version": pkg.version,
        "target": item.target or None, "actions": [a.name for a in result.actions],
        "files": [str(p.relative_to(out_dir)) for p in files],
        "metrics": {"keys": result.keys, "key_frames": result.key_frames,
                    "foot_skating": [round(float(s), 4) for s in skating]},
        "timings": {**{k: round(v, 4) for k, v in result.timings.items()},
                    "item": round(time.perf_counter() - t0, 4)},
        "warnings": list(result.warnings),
    }
