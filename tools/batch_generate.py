# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate motion for every prompt of a prompts file, headless (pipelines and farms).

  .venv/bin/python tools/batch_generate.py PROMPTS --out DIR [options]
  blender --background --python tools/batch_generate.py -- PROMPTS --out DIR [options]

PROMPTS: .txt (one prompt a line), .csv (header with 'prompt' and any of seconds, seed, model,
count, steps, guidance, keys, target, mapping, id; or 'reference' (a .bvh or FILE.blend[::Object
[::Action]]) with method and novelty for variations of that action) or .json (a list of such
objects); see pipeline/batch.py. Per item: DIR/<id>/<id>.blend, <id>[-k].bvh / .fbx, and an entry in
DIR/manifest.json (files, seed, model version, timings, metrics, or the error).

  --formats blend,bvh,fbx   what to write per item (default blend,bvh)
  --shard i/n               this machine's share: items whose number modulo n is i-1; its
                            manifest is DIR/manifest.shard-i-of-n.json (merge with --merge)
  --workers N               N processes on this machine, the model loaded once in each
  --merge                   merge every manifest.*.json of DIR into DIR/manifest.json, then stop
  --blend-all               also collect every ok item's armature and actions into DIR/all.blend
  --seconds --seed --model --count --steps --guidance --keys   defaults for the items
  --fps 30 --threads 0 --device AUTO|CPU|CUDA

Resumable: items already 'ok' in the manifest are skipped (--retry-failed also redoes failed
ones). A failing item is recorded with its error and the batch goes on. Exit code: 0 when
every item of this run is ok, 1 when any failed, 2 for a bad command line or prompts file.
Progress (items done, time left) goes to stderr.
"""
from __future__ import annotations

import argparse
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
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--blend-all", action="store_true")
    ap.add_argument("--retry-failed", action="store_true")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--steps", type=int, default=50)
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


class Progress:
    """Items done and time left on stderr (one line per item when stderr is not a terminal)."""

    def __init__(self, total):
        self.total, self.done, self.failed = total, 0, 0
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def update(self, item_id, ok):
        self.done += 1
        self.failed += 0 if ok else 1
        el = time.perf_counter() - self.t0
        left = el / self.done * (self.total - self.done)
        bar = "#" * int(20 * self.done / max(self.total, 1))
        line = (f"[{bar:<20}] {self.done}/{self.total} items, {self.failed} failed, "
                f"{el:.0f} s elapsed, ~{left:.0f} s left — {item_id} {'ok' if ok else 'FAILED'}")
        sys.stderr.write(("\r" + line + " " * 8) if self.tty else line + "\n")
        if self.tty and self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


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
    """N child processes, each with pending[k::N]; their manifests are merged as they go."""
    n = min(args.workers, len(pending))
    procs, parts = [], []
    for k in range(n):
        part = out / f"manifest.worker-{k + 1}-of-{n}.json"
        parts.append(part)
        cmd = child_command([*argv, "--worker", f"{k + 1}/{n}", "--workers", "1"])
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
    progress = Progress(len(pending))
    seen = set()
    while True:
        alive = [p.poll() is None for p in procs]
        for part in parts:
            if part.is_file():
                try:
                    m = pb.Manifest.load(part)
                except SparseMotionError:
                    continue  # being written
                for k, v in m.entries.items():
                    if k not in seen:
                        seen.add(k)
                        manifest.entries[k] = v
                        progress.update(k, v.get("status") == "ok")
        if not any(alive):
            break
        time.sleep(0.2)
    manifest.save()
    for p, part in zip(procs, parts):
        err = p.stderr.read()
        if p.returncode not in (0, 1):
            sys.stderr.write(f"worker failed (exit {p.returncode}):\n{err[-2000:]}\n")
        part.unlink(missing_ok=True)
    return all(manifest.entries.get(it.id, {}).get("status") == "ok" for it in pending)


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
    if args.worker:  # a child of --workers: its slice of the pending items, its own manifest
        k, n = pb.parse_shard(args.worker)
        manifest = pb.Manifest.load(mpath)
        pending = [it for it in items if not manifest.done(it.id)
                   and (args.retry_failed or it.id not in manifest.entries)]
        part = pb.Manifest(out / f"manifest.worker-{k}-of-{n}.json")
        return 0 if run_items(pending[k - 1::n], out, part, args) else 1
    manifest = pb.Manifest.load(mpath)
    for part in sorted(out.glob("manifest.worker-*.json")):  # left by a killed run
        manifest.merge(pb.Manifest.load(part))
        part.unlink()
    pending = [it for it in items if not manifest.done(it.id)
               and (args.retry_failed or it.id not in manifest.entries)]
    skipped = len(items) - len(pending)
    print(f"{len(items)} items in this {'shard' if shard[1] > 1 else 'run'}, {skipped} already "
          f"in the manifest, {len(pending)} to do", file=sys.stderr)
    if pending:
        if args.workers > 1 and len(pending) > 1:
            run_workers(pending, out, manifest, args, argv)
        else:
            run_items(pending, out, manifest, args, Progress(len(pending)))
    manifest.save()
    if args.blend_all:
        print(f"wrote {blend_all(out, manifest)}", file=sys.stderr)
    failed = [it.id for it in items if manifest.entries.get(it.id, {}).get("status") != "ok"]
    for it in failed:
        print(f"failed: {it}: {manifest.entries.get(it, {}).get('error')}", file=sys.stderr)
    print(f"{len(items) - len(failed)}/{len(items)} items ok; manifest {mpath}")
    return 1 if failed else 0


if __name__ == "__main__":
    devimport.run_script(main)
