# SPDX-License-Identifier: GPL-3.0-or-later
"""Batch generation, the bpy-free half: prompts files, items, shards and the manifest.

A prompts file is plain text (one prompt a line; blank lines and ``#`` comments skipped), CSV
(a header row with at least ``prompt``) or JSON (a list of objects, or ``{"items": [...]}``).
Per item: ``prompt`` (required), ``seconds`` (or ``length``), ``seed``, ``model``, ``count``,
``steps`` (the model's steps: sMDM's denoising steps, default 50; MotionLCM's 1, 2 or 4,
default 4), ``guidance``, ``keys`` (``model`` or a percentage), ``target`` (a ``.blend`` file
with the armature to animate, ``FILE.blend::Object``) and ``mapping`` (a bone-mapping preset
JSON for it), ``path`` (MotionLCM: a path for the pelvis — a curve or empty in a .blend,
``FILE.blend::Object``, or JSON points in world metres: ``[[x, y, z], ...]`` followed evenly,
or ``{"points": [...], "frames": [...]}`` reached at those scene frames), ``segments`` (a
timeline instead of one prompt: a JSON list ``[{"prompt": ..., "seconds": ..., "seed": ...},
…]`` made into one action, see ``docs/timeline.md``), ``id`` (default: the item's line
number and prompt). Missing values come from
the command line; an item without ``seed`` gets ``base seed + item number``, so the results
never depend on how the items are split.

Every item has a stable ``id``; the manifest (``manifest.json`` in the output folder) maps each
id to its status (``ok``/``failed``), files, seed, model and version, timings and metrics. A
run skips the ids the manifest already has as ``ok`` (resume); ``--shard i/n`` takes the items
whose position modulo n is i-1, so n machines together do every item exactly once.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = ["BatchItem", "Defaults", "PromptsError", "read_prompts", "parse_prompts",
           "parse_shard", "select_shard", "Manifest", "slug", "to_do", "WorkerFiles",
           "recover_worker_manifests", "Progress"]

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_KNOWN = {"id", "prompt", "seconds", "length", "seed", "model", "count", "steps", "guidance",
          "keys", "target", "mapping", "path", "reference", "method", "novelty", "segments"}
#: What a row with segments leaves out: each segment has its prompt and seconds, and a
#: timeline uses its model's own steps and guidance.
_NOT_WITH_SEGMENTS = ("prompt", "seconds", "length", "count", "steps", "guidance", "path",
                      "reference")
VARIATION_METHODS = ("motiondreamer", "genmm")


class PromptsError(InputError):
    """The prompts file cannot be read; the message names the file and line."""


@dataclass
class Defaults:
    seconds: float = 4.0
    seed: int = 0
    model: str = ""
    count: int = 1
    steps: int | None = None  # None: the model's default (sMDM 50, MotionLCM 4)
    guidance: float = 2.5
    keys: str = "model"


@dataclass
class BatchItem:
    index: int          # position in the file (0-based)
    line: int           # line number in the file (1-based; JSON: the item's number)
    id: str
    prompt: str
    seconds: float
    seed: int
    model: str = ""
    count: int = 1
    steps: int | None = None  # None: the model's default
    guidance: float = 2.5
    keys: str = "model"
    target: str = ""
    mapping: str = ""
    path: str = ""       # MotionLCM: FILE.blend::Object, or JSON points (see the module doc)
    reference: str = ""  # FILE.bvh or FILE.blend[::Object[::Action]]: variations of it
    method: str = "motiondreamer"  # with a reference: motiondreamer or genmm
    novelty: float = 0.5  # with a reference: 0 close … 1 novel
    segments: str = ""   # a timeline: JSON [{"prompt", "seconds", "seed"}, …], checked

    def to_dict(self) -> dict:
        return asdict(self)


def slug(text: str, n: int = 40, fallback: str = "item") -> str:
    """Lower-case letters and digits joined by '-', at most ``n`` characters (file names)."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s[:n].rstrip("-") or fallback


def _number(value, kind, where, name):
    try:
        v = kind(str(value).strip())
    except (TypeError, ValueError):
        raise PromptsError(f"{where}: {name} must be a{'n integer' if kind is int else ' number'},"
                           f" got {value!r}") from None
    if kind is float and not (v == v and abs(v) != float("inf")):
        raise PromptsError(f"{where}: {name} must be a finite number, got {value!r}")
    return v


def _item(raw: dict, index: int, line: int, where: str, d: Defaults) -> BatchItem:
    unknown = sorted(k for k in raw if k not in _KNOWN and k is not None)
    if unknown:
        raise PromptsError(f"{where}: unknown column(s) {', '.join(unknown)} (known: "
                           f"{', '.join(sorted(_KNOWN))})")
    prompt = str(raw.get("prompt") or "").strip()
    reference = str(raw.get("reference") or "").strip()

    def get(name, alt=None):
        v = raw.get(name)
        if (v is None or str(v).strip() == "") and alt:
            v = raw.get(alt)
        return None if v is None or str(v).strip() == "" else v
    segments = _segments(raw.get("segments"), where)
    if segments:
        extra = [k for k in _NOT_WITH_SEGMENTS if get(k) is not None]
        if extra:
            raise PromptsError(f"{where}: a row with segments takes no {', '.join(extra)} (each "
                               "segment has its own prompt and seconds; a timeline is one "
                               "action made with its model's own steps and guidance)")
    elif not prompt and not reference:
        raise PromptsError(f"{where}: the prompt is empty (give a prompt, segments, or a "
                           "reference to make variations of)")
    seconds = get("seconds", "length")
    seed = get("seed")
    count = get("count")
    steps = get("steps")
    guidance = get("guidance")
    item = BatchItem(
        index=index, line=line, id="", prompt=prompt,
        seconds=_number(seconds, float, where, "seconds") if seconds is not None
        else (0.0 if reference else sum(s["seconds"] for s in segments)
              if segments else d.seconds),
        seed=_number(seed, int, where, "seed") if seed is not None else d.seed + index,
        model=str(get("model") or d.model), count=_number(count, int, where, "count")
        if count is not None else d.count,
        steps=_number(steps, int, where, "steps") if steps is not None else d.steps,
        guidance=_number(guidance, float, where, "guidance") if guidance is not None
        else d.guidance,
        keys=str(get("keys") or d.keys), target=str(get("target") or ""),
        mapping=str(get("mapping") or ""), path=_path(raw.get("path"), where),
        reference=reference,
        method=str(get("method") or "motiondreamer").strip().lower(),
        novelty=_number(get("novelty"), float, where, "novelty") if get("novelty") is not None
        else 0.5, segments=json.dumps(segments) if segments else "")
    if item.method not in VARIATION_METHODS:
        raise PromptsError(f"{where}: method must be one of {', '.join(VARIATION_METHODS)}, got "
                           f"{item.method!r}")
    if not 0.0 <= item.novelty <= 1.0:
        raise PromptsError(f"{where}: novelty must be between 0 and 1, got {item.novelty}")
    if item.count < 1 or item.count > 16:
        raise PromptsError(f"{where}: count must be between 1 and 16, got {item.count}")
    if item.keys != "model":
        pct = _number(item.keys, float, where, "keys (model or a percentage)")
        if not 0 < pct <= 100:
            raise PromptsError(f"{where}: keys must be 'model' or a percentage in (0, 100]")
    name = prompt or (f"timeline-{segments[0]['prompt']}" if segments else
                      Path(reference.partition("::")[0]).stem + "-variations")
    item.id = str(get("id") or f"{index + 1:04d}-{slug(name)}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", item.id):
        raise PromptsError(f"{where}: id {item.id!r} may only use letters, digits, . _ -")
    return item


def _segments(value, where) -> list:
    """A row's ``segments`` checked, as ``[{"prompt", "seconds", "seed"}, …]`` (``[]``: none;
    the item keeps them as JSON text): a JSON list (in a CSV cell
    quoted; in a JSON file the list itself) of ``{"prompt", "seconds", "seed"}`` objects,
    checked by :func:`..inference.timeline.check_segments` (the rules of the panel's list)."""
    from ..inference.timeline import check_segments

    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise PromptsError(f"{where}: segments is not valid JSON ({exc.msg} at character "
                               f"{exc.pos})") from None
    if not isinstance(data, list):
        raise PromptsError(f"{where}: segments must be a JSON list of {{\"prompt\", "
                           f"\"seconds\", \"seed\"}} objects, got {type(data).__name__}")
    try:
        segments = check_segments(data, None)
    except InputError as exc:
        raise PromptsError(f"{where}: segments: {exc}") from None
    return [{"prompt": s.text, "seconds": s.seconds, "seed": s.seed} for s in segments]


def _path(value, where) -> str:
    """A row's ``path`` as text: JSON points (checked to parse; a JSON file may give the
    list or object itself) or ``FILE.blend::Object``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, str):
        return json.dumps(value)
    text = value.strip()
    if text[:1] in "[{":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptsError(f"{where}: path is not valid JSON ({exc.msg})") from None
        return text
    file, sep, obj = text.partition("::")
    if not sep or not obj or not file.lower().endswith(".blend"):
        raise PromptsError(f"{where}: path must be FILE.blend::Object (a curve or an empty) or "
                           f"JSON points [[x, y, z], ...], got {text!r}")
    return text


def parse_prompts(text: str, name: str = "prompts", fmt: str | None = None,
                  defaults: Defaults | None = None) -> list[BatchItem]:
    """Items of a prompts file's text; ``fmt`` is ``txt``, ``csv`` or ``json`` (default: from
    the name's suffix). Raises :class:`PromptsError` naming the line."""
    d = defaults or Defaults()
    fmt = (fmt or Path(name).suffix.lstrip(".") or "txt").lower()
    items = []
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptsError(f"{name}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(data, dict):
            data = data.get("items")
        if not isinstance(data, list):
            raise PromptsError(f"{name}: JSON must be a list of items or {{\"items\": [...]}}")
        for k, raw in enumerate(data):
            where = f"{name}, item {k + 1}"
            if isinstance(raw, str):
                raw = {"prompt": raw}
            if not isinstance(raw, dict):
                raise PromptsError(f"{where}: an item must be an object or a string")
            items.append(_item(raw, len(items), k + 1, where, d))
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"prompt", "reference", "segments"} & {
                f.strip() for f in reader.fieldnames}:
            raise PromptsError(f"{name}, line 1: the CSV header needs a 'prompt' (or "
                               "'segments' or 'reference') column")
        reader.fieldnames = [f.strip() for f in reader.fieldnames]
        for raw in reader:
            where = f"{name}, line {reader.line_num}"
            if None in raw:
                raise PromptsError(f"{where}: more values than columns")
            if not any((v or "").strip() for v in raw.values()):
                continue
            items.append(_item(raw, len(items), reader.line_num, where, d))
    elif fmt in ("txt", "text", "prompts"):
        for k, line in enumerate(text.splitlines()):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            items.append(_item({"prompt": s}, len(items), k + 1, f"{name}, line {k + 1}", d))
    else:
        raise PromptsError(f"{name}: unknown prompts format {fmt!r} (txt, csv or json)")
    seen = {}
    for it in items:
        if it.id in seen:
            raise PromptsError(f"{name}, line {it.line}: id {it.id!r} repeats line {seen[it.id]}")
        seen[it.id] = it.line
    if not items:
        raise PromptsError(f"{name}: no prompts in the file")
    return items


def read_prompts(path, defaults: Defaults | None = None, fmt: str | None = None):
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptsError(f"cannot read the prompts file {str(p)!r}: {exc}") from None
    return parse_prompts(text, p.name, fmt, defaults)


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` (1-based) → (i, n); None → (1, 1)."""
    if not spec:
        return 1, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise InputError(f"--shard must be i/n with 1 <= i <= n, got {spec!r}")
    return int(m.group(1)), int(m.group(2))


def select_shard(items, i: int, n: int):
    return [it for it in items if it.index % n == i - 1]


@dataclass
class Manifest:
    """``{id: entry}`` with atomic writes. Entries: ``status``, ``files``, ``seed``, ``model``,
    ``timings``, ``metrics``, ``error``, and the item's settings."""

    path: Path
    entries: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path) -> "Manifest":
        path = Path(path)
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"the manifest {str(path)!r} is unreadable ({exc}): move it away "
                             "to start over") from None
        return cls(path, dict(data.get("items", {})))

    def done(self, item_id: str) -> bool:
        return self.entries.get(item_id, {}).get("status") == "ok"

    def record(self, item_id: str, entry: dict) -> None:
        self.entries[item_id] = entry
        self.save()

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION,
                "items": {k: self.entries[k] for k in sorted(self.entries)}}
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def merge(self, other: "Manifest") -> None:
        for k, v in other.entries.items():
            if v.get("status") == "ok" or k not in self.entries:
                self.entries[k] = v


def to_do(items, manifest: Manifest, retry_failed: bool = False) -> list:
    """The items a run must do, decided once from the saved manifest: every item not ``ok``
    in it; a failed one only with ``retry_failed``."""
    return [it for it in items if not manifest.done(it.id)
            and (retry_failed or it.id not in manifest.entries)]


@dataclass
class WorkerFiles:
    """Worker ``k`` of ``n`` of a run whose manifest is ``manifest``: its own manifest (it
    records its items there; the parent folds them into the run's manifest), its to-do list
    (the ids the parent gave it) and its log (stderr)."""

    manifest: Path
    k: int
    n: int

    def _path(self, suffix: str) -> Path:
        m = Path(self.manifest)
        return m.with_name(f"{m.stem}.worker-{self.k}-of-{self.n}{suffix}")

    @property
    def part(self) -> Path:
        return self._path(".json")

    @property
    def todo(self) -> Path:
        return self._path(".todo")

    @property
    def log(self) -> Path:
        return self._path(".log")

    def write_todo(self, ids) -> None:
        tmp = self.todo.with_name(self.todo.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(list(ids)) + "\n", encoding="utf-8")
        os.replace(tmp, self.todo)

    def read_todo(self) -> list:
        try:
            return list(json.loads(self.todo.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the worker's to-do list {str(self.todo)!r}: "
                             f"{exc}") from None

    def remove(self) -> None:
        for p in (self.part, self.todo, self.log):
            p.unlink(missing_ok=True)

    @staticmethod
    def leftovers(manifest) -> list:
        """The worker manifests of ``manifest``'s run left by an earlier, killed run."""
        m = Path(manifest)
        return sorted(m.parent.glob(f"{m.stem}.worker-*-of-*.json"))


def recover_worker_manifests(manifest: Manifest) -> int:
    """Fold the worker manifests a killed run left into ``manifest``, save it, then delete
    them (in that order: a kill in between loses nothing). Returns how many were found."""
    parts = WorkerFiles.leftovers(manifest.path)
    for part in parts:
        manifest.merge(Manifest.load(part))
    if parts:
        manifest.save()
    for part in parts:
        part.unlink()
    for stale in Path(manifest.path).parent.glob(f"{Path(manifest.path).stem}.worker-*-of-*"):
        stale.unlink(missing_ok=True)  # to-do lists, logs and temporary files of that run
    return len(parts)


class Progress:
    """``k/n items, f failed, elapsed, ~left`` on ``stream`` (stderr), n the items this run
    does; one line per item, or a line rewritten in place on a terminal."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.failed = int(total), 0, 0
        self.t0 = time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, item_id: str, ok: bool, elapsed: float) -> str:
        left = max(0.0, elapsed / max(self.done, 1) * (self.total - self.done))
        bar = "#" * int(20 * min(self.done, self.total) / max(self.total, 1))
        return (f"[{bar:<20}] {self.done}/{self.total} items, {self.failed} failed, "
                f"{elapsed:.0f} s elapsed, ~{left:.0f} s left — {item_id} "
                f"{'ok' if ok else 'FAILED'}")

    def update(self, item_id: str, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        line = self.line(item_id, ok, time.perf_counter() - self.t0)
        self.stream.write(("\r" + line + " " * 8) if self.tty else line + "\n")
        if self.tty and self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()
