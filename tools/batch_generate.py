# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate motion for every prompt of a prompts file, headless (pipelines and farms).

  .venv/bin/python tools/batch_generate.py PROMPTS --out DIR [options]
  blender --background --python tools/batch_generate.py -- PROMPTS --out DIR [options]

PROMPTS: .txt (one prompt a line), .csv (header with 'prompt' and any of seconds, seed, model,
count, steps, guidance, keys, target, mapping, path (MotionLCM: FILE.blend::Curve or JSON
points), id; or 'reference' (a .bvh or FILE.blend[::Object
[::Action]]) with method and novelty for variations of that action) or .json (a list of such
objects); see pipeline/batch.py. Per item: DIR/<id>/<id>.blend, <id>[-k].bvh / .fbx, and an entry in
DIR/manifest.json (files, seed, model version, timings, metrics, or the error).

  --formats blend,bvh,fbx   what to write per item (default blend,bvh)
  --shard i/n               this machine's share: items whose number modulo n is i-1; its
                            manifest is DIR/manifest.shard-i-of-n.json (merge with --merge)
  --workers N               N processes on this machine, the model loaded once in each; the
                            items to do are decided once, here, and split among them; they
                            die with this process (even a SIGKILLed one)
  --merge                   merge every manifest.*.json of DIR into DIR/manifest.json, then stop
  --blend-all               also collect every ok item's armature and actions into DIR/all.blend
  --seconds --seed --model --count --steps --guidance --keys   defaults for the items
  --fps 30 --threads 0 --device AUTO|CPU|CUDA   (N seconds at F fps: round(N x F) frames)

Resumable: items already 'ok' in the manifest are skipped (--retry-failed also redoes failed
ones). A failing item is recorded with its error and the batch goes on. Exit code: 0 when
every item of this run is ok, 1 when any failed, 2 for a bad command line or prompts file.
Progress (k/n items, n those this run does; time left) goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devimport  # noqa: E402

devimport.load()
import bpy  # noqa: E402

from sparse_motion.errors import SparseMotionError  # noqa: E402
from sparse_motion.pipeline import batch as pb  # noqa: E402
from sparse_motion.pipeline import workers  # noqa: E402

SCRIPT = Path(__file__).resolve()


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="batch_generate.py",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("prompts")
    ap.add_argument("--out", required=True)
    ap.add_argument("--formats", default="blend,bvh")
    ap.add_argument("--shard", default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # k/N, internal
    ap.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--blend-all", action="store_true")
    ap.add_argument("--retry-failed", action="store_true")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None)  # None: the model's default
    ap.add_argument("--guidance", type=float, default=2.5)
    ap.add_argument("--keys", default="model")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="AUTO", choices=("AUTO", "CPU", "CUDA"))
    args = ap.parse_args(argv)
    args.formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    bad = [f for f in args.formats if f not in ("blend", "bvh", "fbx")]
    if bad or not args.formats:
        ap.error(f"--formats takes blend, bvh and fbx, got {','.join(args.formats)}")
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    return args


def manifest_path(out: Path, shard) -> Path:
    i, n = shard
    return out / ("manifest.json" if n == 1 else f"manifest.shard-{i}-of-{n}.json")


def failed_entry(item, exc) -> dict:
    message = str(exc) if isinstance(exc, SparseMotionError) else \
        f"{type(exc).__name__}: {exc}"
    return {"status": "failed", "prompt": item.prompt, "seed": item.seed, "error": message,
            "traceback": None if isinstance(exc, SparseMotionError)
            else traceback.format_exc(limit=6)}


def run_items(items, out: Path, manifest: pb.Manifest, args, progress=None):
    from sparse_motion.blender.batch import run_item

    ok = True
    for item in items:
        try:
            entry = run_item(item, out, formats=args.formats, fps=args.fps, device=args.device,
                             threads=args.threads)
        except Exception as exc:  # recorded; the batch goes on
            entry = failed_entry(item, exc)
        manifest.record(item.id, entry)
        ok &= entry["status"] == "ok"
        if progress:
            progress.update(item.id, entry["status"] == "ok")
    return ok


def child_command(argv_rest):
    """The command that runs this script again: Blender's own binary inside Blender, this
    Python with the bpy module otherwise (bpy.app.binary_path is empty there)."""
    binary = getattr(bpy.app, "binary_path", "") or ""
    if binary:
        return [binary, "--background", "--factory-startup", "--python", str(SCRIPT), "--",
                *argv_rest]
    return [sys.executable, str(SCRIPT), *argv_rest]


def run_workers(pending, out, manifest, args, argv):
    """N child processes, worker k given pending[k::N] (its to-do list, decided here, once);
    each records into its own manifest, folded into ``manifest`` (saved) as items finish.
    The workers die with this process (pipeline/workers.py), however it ends."""
    n = min(args.workers, len(pending))
    files = [pb.WorkerFiles(manifest.path, k + 1, n) for k in range(n)]
    procs, logs = [], []
    todo = {it.id for it in pending}
    progress = pb.Progress(len(pending))
    seen, stamps = set(), {}

    def collect(force=False):
        for wf in files:
            try:
                st = wf.part.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # rewritten: a new file
            if not force and stamps.get(wf.k) == stamp:
                continue
            try:
                part = pb.Manifest.load(wf.part)
            except SparseMotionError:
                continue  # cannot happen (written atomically); read again next time
            stamps[wf.k] = stamp
            for k, v in part.entries.items():
                if k in todo and k not in seen:
                    seen.add(k)
                    manifest.record(k, v)
                    progress.update(k, v.get("status") == "ok")

    try:
        for k, wf in enumerate(files):
            wf.part.unlink(missing_ok=True)
            wf.write_todo(it.id for it in pending[k::n])
            logs.append(open(wf.log, "w", encoding="utf-8"))
            cmd = child_command([*argv, "--worker", f"{k + 1}/{n}", "--workers", "1",
                                 "--parent-pid", str(os.getpid())])
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=logs[-1]))
        while any(p.poll() is None for p in procs):
            collect()
            time.sleep(0.2)
        collect(force=True)
    finally:
        workers.stop(procs)
        for f in logs:
            f.close()
    for p, wf in zip(procs, files):
        if p.returncode not in (0, 1):
            err = wf.log.read_text(encoding="utf-8", errors="replace")
            sys.stderr.write(f"worker {wf.k}/{n} failed (exit {p.returncode}):\n"
                             f"{err[-2000:]}\n")
        wf.remove()
    return all(manifest.done(it.id) for it in pending)


def blend_all(out: Path, manifest: pb.Manifest) -> Path:
    """One .blend with every ok item's objects and actions (appended from the item files)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    for item_id in sorted(manifest.entries):
        entry = manifest.entries[item_id]
        blend = next((f for f in entry.get("files", []) if f.endswith(".blend")), None)
        if entry.get("status") != "ok" or blend is None:
            continue
        with bpy.data.libraries.load(str(out / blend), link=False) as (src, dst):
            dst.objects = [n for n in src.objects]
            dst.actions = [n for n in src.actions]
        coll = bpy.data.collections.new(item_id)
        scene.collection.children.link(coll)
        for obj in dst.objects:
            if obj is not None:
                coll.objects.link(obj)
        for action in dst.actions:
            if action is not None:
                action.use_fake_user = True
    path = out / "all.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()), check_existing=False)
    return path


def merge_all(out: Path) -> pb.Manifest:
    main = pb.Manifest.load(out / "manifest.json")
    for part in sorted(out.glob("manifest.*.json")):
        main.merge(pb.Manifest.load(part))
    main.save()
    return main


def main(argv):
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        m = merge_all(out)
        print(f"merged {len(m.entries)} items into {m.path}")
        if args.blend_all:
            print(f"wrote {blend_all(out, m)}")
        return 0 if all(v.get("status") == "ok" for v in m.entries.values()) else 1
    defaults = pb.Defaults(seconds=args.seconds, seed=args.seed, model=args.model,
                           count=args.count, steps=args.steps, guidance=args.guidance,
                           keys=args.keys)
    try:
        items = pb.read_prompts(args.prompts, defaults)
        shard = pb.parse_shard(args.shard)
    except SparseMotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    items = pb.select_shard(items, *shard)
    mpath = manifest_path(out, shard)
    if args.worker:  # a child of --workers: the items its parent gave it, its own manifest
        if args.parent_pid:
            workers.die_with_parent(args.parent_pid)
        wf = pb.WorkerFiles(mpath, *pb.parse_shard(args.worker))
        ids = wf.read_todo()
        by_id = {it.id: it for it in items}
        mine = [by_id[i] for i in ids if i in by_id]
        return 0 if run_items(mine, out, pb.Manifest(wf.part), args) else 1
    manifest = pb.Manifest.load(mpath)
    pb.recover_worker_manifests(manifest)  # saved before anything else is decided
    pending = pb.to_do(items, manifest, args.retry_failed)
    skipped = len(items) - len(pending)
    print(f"{len(items)} items in this {'shard' if shard[1] > 1 else 'run'}, {skipped} already "
          f"in the manifest, {len(pending)} to do", file=sys.stderr)
    if pending:
        if args.workers > 1 and len(pending) > 1:
            run_workers(pending, out, manifest, args, argv)
        else:
            run_items(pending, out, manifest, args, pb.Progress(len(pending)))
    manifest.save()
    if args.blend_all:
        print(f"wrote {blend_all(out, manifest)}", file=sys.stderr)
    failed = [it.id for it in items if manifest.entries.get(it.id, {}).get("status") != "ok"]
    for it in failed:
        error = manifest.entries.get(it, {}).get("error") or "not done (its worker stopped)"
        print(f"failed: {it}: {error}", file=sys.stderr)
    print(f"{len(items) - len(failed)}/{len(items)} items ok; manifest {mpath}")
    return 1 if failed else 0


if __name__ == "__main__":
    devimport.run_script(main)
