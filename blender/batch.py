# SPDX-License-Identifier: GPL-3.0-or-later
"""Batch generation, the Blender half: one item of a prompts file → files + a manifest entry.

:func:`run_item` starts from an empty scene (or the item's target ``.blend``), generates the
item's motions with :mod:`.generate` (the model stays loaded between items) — or, for an item
with a ``reference`` (a BVH or an armature in a .blend), makes ``count`` variations of it with
:mod:`.variations` — and writes
``<out>/<id>/<id>.blend`` and one ``.bvh`` / ``.fbx`` per result; an item with ``segments``
becomes one action from that timeline (:mod:`.timeline`). It returns the manifest entry; any
error is raised (the caller records it and goes on).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import bpy

from ..errors import InputError
from ..inference import metrics as _metrics
from ..inference import understand
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


def _path_for(item, target):
    """A row's ``path`` (see ``pipeline.batch``): JSON points → a :class:`.paths.PathSource`;
    ``FILE.blend::Object`` → the object (the target's open file, else appended from FILE)."""
    from . import paths

    if not item.path:
        return None, None
    if item.path[:1] in "[{":
        return None, paths.points_from_json(item.path)
    file, _, name = item.path.partition("::")
    if item.target and Path(item.target.partition("::")[0]).resolve() == Path(file).resolve():
        obj = bpy.data.objects.get(name)
    else:
        if not Path(file).is_file():
            raise InputError(f"path file not found: {file}")
        with bpy.data.libraries.load(str(Path(file).resolve())) as (src, dst):
            if name not in src.objects:
                raise InputError(f"no object '{name}' in {file}")
            dst.objects = [name]
        obj = dst.objects[0]
        bpy.context.scene.collection.objects.link(obj)
    if obj is None:
        raise InputError(f"no object '{name}' in {file}")
    return obj, None


def open_reference(spec: str, scale="auto", ground=True):
    """``FILE.bvh`` (imported onto a new armature: ``scale`` and ``ground`` as in
    :func:`.bvh_io.import_bvh`, the unit detected and the feet on the floor by default),
    ``FILE.blend``, ``FILE.blend::Object`` or ``FILE.blend::Object::Action`` → (armature,
    action or None: the one it plays)."""
    path, _, rest = spec.partition("::")
    obj_name, _, action_name = rest.partition("::")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"reference file not found: {path}")
    if p.suffix.lower() == ".bvh":
        if rest:
            raise InputError(f"{spec}: a BVH reference takes no ::Object or ::Action")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        return bvh_io.import_bvh(str(p.resolve()), name=p.stem, scale=scale, ground=ground), None
    if p.suffix.lower() != ".blend":
        raise InputError(f"{path}: give a .blend or a .bvh file as the reference")
    obj = _open_target(f"{path}::{obj_name}" if obj_name else path)
    action = None
    if action_name:
        action = bpy.data.actions.get(action_name)
        if action is None:
            raise InputError(f"no action '{action_name}' in {path}")
    return obj, action


def _write_files(obj, made, folder: Path, item_id: str, formats) -> list:
    """The .blend, and a .bvh / .fbx per action of ``made``; the last action plays."""
    files = []
    if "blend" in formats:
        path = folder / f"{item_id}.blend"
        path.unlink(missing_ok=True)  # an item redone after a kill: no .blend1 backup
        bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()), check_existing=False,
                                    compress=False)
        files.append(path)
    for r, action in enumerate(made):
        stem = item_id if len(made) == 1 else f"{item_id}-{r + 1}"
        if "bvh" in formats:
            actions.play(obj, action)
            path = folder / f"{stem}.bvh"
            bvh_io.export_bvh(obj, str(path.resolve()), scale=100.0)
            files.append(path)
        if "fbx" in formats:
            path = folder / f"{stem}.fbx"
            _export_fbx(obj, action, path.resolve())
            files.append(path)
    actions.play(obj, made[-1])
    return files


def _run_variations(item, out_dir: Path, formats, threads: int, t0: float) -> dict:
    """A reference item: ``count`` variations of the reference action (blender/variations)."""
    from . import variations as var

    obj, action = open_reference(item.reference)
    req = var.VariationRequest(obj=obj, action=action, count=item.count, seconds=item.seconds,
                               seed=item.seed, novelty=item.novelty, method=item.method.upper(),
                               threads=threads)
    result = var.make_variations(req)
    return {
        "status": "ok", "prompt": item.prompt, "reference": item.reference,
        "method": item.method, "novelty": item.novelty, "seed": item.seed,
        "count": item.count, "seconds": item.seconds, "frames": result.frames,
        "trained": result.trained, "metrics": {"keys": result.keys},
        **_written(item, out_dir, formats, obj, result, t0),
    }


def _written(item, out_dir: Path, formats, obj, result, t0: float) -> dict:
    """The item's files written (:func:`_write_files`, ``result.actions``) and its manifest
    entry's ``actions``, ``files``, ``timings`` (``result.timings`` and the whole item) and
    ``warnings``."""
    folder = out_dir / item.id
    folder.mkdir(parents=True, exist_ok=True)
    files = _write_files(obj, result.actions, folder, item.id, formats)
    return {"actions": [a.name for a in result.actions],
            "files": [str(p.relative_to(out_dir)) for p in files],
            "timings": {**{k: round(v, 4) for k, v in result.timings.items()},
                        "item": round(time.perf_counter() - t0, 4)},
            "warnings": list(result.warnings)}


def _run_timeline(item, out_dir: Path, formats, target, mapping, keys, device, threads,
                  t0: float) -> dict:
    """A row with segments: one action from the timeline (blender/timeline), its markers
    saved in the .blend."""
    from . import timeline as tl

    req = tl.TimelineRequest(segments=json.loads(item.segments), seed=item.seed,
                             model=item.model, key_mode=keys[0], key_percent=keys[1],
                             target=target, mapping=mapping, device=device, threads=threads)
    result = tl.generate_timeline(req)
    return {
        "status": "ok", "prompt": item.prompt, "segments": result.segments,
        "seed": item.seed, "count": 1, "seconds": item.seconds, "frames": result.frames,
        "keys_mode": item.keys, "model": req.package.name,
        "model_version": req.package.version, "target": item.target or None,
        "metrics": {"keys": result.keys, "key_frames": result.key_frames},
        **_written(item, out_dir, formats, result.obj, result, t0),
    }


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
        return _run_variations(item, out_dir, formats, threads, t0)
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
    if item.segments:
        return _run_timeline(item, out_dir, formats, target, mapping, (key_mode, pct), device,
                             threads, t0)
    path, points = _path_for(item, target)
    steps = {} if item.steps is None else {"steps": item.steps, "lcm_steps": item.steps}
    req = gen.GenerateRequest(prompt=item.prompt, seconds=item.seconds, seed=item.seed,
                              results=item.count, model=item.model, guidance=item.guidance,
                              key_mode=key_mode, key_percent=pct, target=target,
                              mapping=mapping, device=device, threads=threads, path=path,
                              path_points=points, **steps)
    model, prompt, frames = gen.prepare(req)
    req.prompt = prompt
    generation = gen.sample(model, req, frames)
    result = gen.apply(generation, req)
    written = _written(item, out_dir, formats, result.obj, result, t0)
    skating = []
    for r in range(len(generation.features)):
        q, x = generation.motion(r)
        skating.append(_metrics.foot_skating_ratio(canon.canonical_forward_kinematics(q, x)))
    pkg = model.package
    understood = understand.understand(req.prompt, pkg, settings=model.settings)
    return {
        "status": "ok", "prompt": item.prompt, "seed": item.seed, "count": item.count,
        "seconds": item.seconds, "frames": result.frames, "steps": generation.steps,
        "guidance": generation.guidance, "keys_mode": item.keys, "path": result.path or None,
        "model": pkg.name, "model_version": pkg.version,
        "device": model.device.to_manifest(),  # where it ran and why (CUDA asked, CPU used: why)
        "target": item.target or None, "understood_as": understood.to_manifest(),
        "metrics": {"keys": result.keys, "key_frames": result.key_frames,
                    "foot_skating": [round(float(s), 4) for s in skating]},
        **written,
    }
