# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Sparse Motion extension zips, one per platform, with the Python wheels it needs.

    .venv/bin/python tools/build_extension.py                 # download wheels, build dist/*.zip
    .venv/bin/python tools/build_extension.py --offline       # reuse ./wheels, no network
    .venv/bin/python tools/build_extension.py --no-wheels     # no wheels (CI check of the build)
    .venv/bin/python tools/build_extension.py --python 3.11 3.13   # also Blender 5.1 (Python 3.13)
    .venv/bin/python tools/build_extension.py --gpu           # onnxruntime-gpu, CUDA 12 (docs/gpu.md)
    .venv/bin/python tools/build_extension.py --gpu 13        # onnxruntime-gpu, CUDA 13

Steps:

1. Wheels: ``pip download --only-binary=:all: --no-deps`` of the run-time packages pinned in
   ``requirements-test.txt`` (onnxruntime, tokenizers) for each platform and Python version
   into ``./wheels/`` (git-ignored; never committed). Nothing else is bundled: numpy comes with
   Blender, and the code path we use (``InferenceSession``, ``Tokenizer.from_file``) imports
   none of onnxruntime's declared dependencies (flatbuffers, packaging, protobuf, sympy) nor
   tokenizers' huggingface_hub — checked in a venv holding only numpy + these two wheels.
2. Stage: the files git knows (tracked and untracked-but-not-ignored) are copied to a
   temporary folder, with a build copy of ``blender_manifest.toml`` that adds
   ``platforms = [...]`` and ``wheels = [...]``; the committed manifest is never changed.
3. ``blender_ext.py build --split-platforms`` (Blender's own tool, run with this Python)
   writes ``dist/sparse_motion-<version>-<platform>.zip``; each zip is then checked with
   ``blender_ext.py validate``.

``--gpu [12|13]`` builds the GPU zips instead, for linux-x64 and windows-x64 only (no CUDA on
macOS): the onnxruntime-gpu wheel of :data:`GPU_RUNTIMES` replaces the CPU onnxruntime, and
the zips are named ``sparse_motion-<version>-<platform>-cuda<N>.zip``. The CUDA runtime and
cuDNN libraries are not bundled (over a GB of NVIDIA wheels): they come from the system or
from NVIDIA's pip wheels in Blender's Python (``docs/gpu.md``). Wheels already in the wheel
folder (``--wheels-dir``, or ``$SPARSE_MOTION_WHEELS``, default ``./wheels``) are used as they
are; ``--offline`` never downloads.

The Blender tool is looked up in this order: ``--blender-ext``, ``$BLENDER_EXT``, the ``bpy``
module installed in this Python (found without importing it), a ``blender`` on PATH.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "blender_manifest.toml"
#: Run-time packages bundled as wheels; versions are pinned in requirements-test.txt.
RUNTIME_PACKAGES = ("onnxruntime", "tokenizers")
#: Blender platform -> pip ``--platform`` tags (pip expands macOS tags to older versions).
#: macOS: onnxruntime >= 1.2x publishes arm64 wheels for macOS 14+ only.
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                  "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_14_0_arm64"],
}
DEFAULT_PYTHONS = ("3.11",)  # Blender 4.2-5.0; add 3.13 for Blender 5.1
#: ``--gpu`` builds: CUDA major version -> the onnxruntime-gpu that replaces onnxruntime. 1.26.0
#: is the last onnxruntime-gpu on PyPI built for CUDA 12 (12.8, cuDNN 9); from 1.27 PyPI's
#: onnxruntime-gpu is built for CUDA 13, so the CUDA 13 build keeps the CPU build's version.
GPU_RUNTIMES = {"12": "onnxruntime-gpu==1.26.0", "13": "onnxruntime-gpu==1.31.1"}
GPU_PLATFORMS = ("linux-x64", "windows-x64")
STAGE_SKIP = {".git", "build", "dist", "wheels", ".pytest_cache", ".hypothesis", ".cache"}


def log(msg: str) -> None:
    print(msg, flush=True)


# --- requirements and wheels ----------------------------------------------------------------

def pinned_requirements(path: Path = ROOT / "requirements-test.txt") -> list[str]:
    """``name==version`` of :data:`RUNTIME_PACKAGES`, from the test requirements."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if m and m[1].lower() in RUNTIME_PACKAGES:
            pins[m[1].lower()] = m[2]
    missing = [p for p in RUNTIME_PACKAGES if p not in pins]
    if missing:
        raise SystemExit(f"{path} pins no version for {', '.join(missing)} (need name==version)")
    return [f"{p}=={pins[p]}" for p in RUNTIME_PACKAGES]


def gpu_requirements(cuda: str, path: Path = ROOT / "requirements-test.txt") -> list[str]:
    """:func:`pinned_requirements` with onnxruntime replaced by the onnxruntime-gpu of CUDA
    ``cuda`` (:data:`GPU_RUNTIMES`)."""
    if cuda not in GPU_RUNTIMES:
        raise SystemExit(f"--gpu {cuda}: no onnxruntime-gpu for CUDA {cuda} "
                         f"(CUDA {' or '.join(GPU_RUNTIMES)})")
    return [GPU_RUNTIMES[cuda] if r.startswith("onnxruntime==") else r
            for r in pinned_requirements(path)]


def zip_name(ext_id: str, version: str, platform: str, cuda: str | None = None) -> str:
    """The zip of one platform: Blender's ``<id>-<version>-<platform>.zip``, with
    ``-cuda<N>`` for a GPU build."""
    return f"{ext_id}-{version}-{platform.replace('-', '_')}{f'-cuda{cuda}' if cuda else ''}.zip"


def wheel_platforms(filename: str) -> set[str]:
    """Blender platforms a wheel file runs on (``any`` for pure-Python wheels)."""
    tags = filename[:-4].split("-")[-1].split(".")
    out = set()
    for tag in tags:
        if tag == "any":
            out.add("any")
        elif tag.startswith(("manylinux", "musllinux", "linux")):
            if tag.endswith("x86_64"):
                out.add("linux-x64")
            elif tag.endswith("aarch64"):
                out.add("linux-arm64")
        elif tag == "win_amd64":
            out.add("windows-x64")
        elif tag == "win_arm64":
            out.add("windows-arm64")
        elif tag.startswith("macosx"):
            if tag.endswith(("arm64", "universal2")):
                out.add("macos-arm64")
            if tag.endswith(("x86_64", "universal2", "intel")):
                out.add("macos-x64")
    return out


def wheel_pythons_ok(filename: str, python: str) -> bool:
    """Whether a wheel file loads in CPython ``python`` (``"3.11"``)."""
    py_tag, abi_tag = filename[:-4].split("-")[-3:-1]
    major, minor = (int(x) for x in python.split("."))
    for abi in abi_tag.split("."):
        if abi == "abi3":
            m = re.search(r"cp3(\d+)", py_tag)
            return m is not None and int(m[1]) <= minor
    for tag in py_tag.split("."):
        if tag in (f"cp{major}{minor}", f"py{major}{minor}", f"py{major}"):
            return True
    return False


def find_wheel(wheels_dir: Path, requirement: str, platform: str, python: str) -> Path | None:
    name, version = requirement.split("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}-"
    hits = sorted(p for p in wheels_dir.glob("*.whl") if p.name.lower().startswith(prefix)
                  and wheel_pythons_ok(p.name, python)
                  and (platform in (plats := wheel_platforms(p.name)) or "any" in plats))
    return hits[0] if hits else None


def download_wheels(wheels_dir: Path, requirements: list[str], platforms: list[str],
                    pythons: list[str], offline: bool) -> dict[str, list[Path]]:
    """The wheels for each platform (downloaded when not in ``wheels_dir`` yet)."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, list[Path]] = {}
    for platform in platforms:
        files: list[Path] = []
        for python in pythons:
            todo = [r for r in requirements if find_wheel(wheels_dir, r, platform, python) is None]
            if todo and offline:
                raise SystemExit(f"--offline: no wheel for {', '.join(todo)} ({platform}, Python "
                                 f"{python}) in {wheels_dir}; run once without --offline")
            if todo:
                cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps",
                       "--disable-pip-version-check", "--python-version", python,
                       "--implementation", "cp", "-d", str(wheels_dir)]
                for tag in PLATFORMS[platform]:
                    cmd += ["--platform", tag]
                log(f"pip download {' '.join(todo)} for {platform}, Python {python}")
                res = subprocess.run(cmd + todo, capture_output=True, text=True)
                if res.returncode != 0:
                    raise SystemExit(f"pip download failed for {platform} / Python {python}:\n"
                                     + res.stdout[-2000:] + res.stderr[-2000:])
            for r in requirements:
                wheel = find_wheel(wheels_dir, r, platform, python)
                if wheel is None:
                    raise SystemExit(f"no {r} wheel for {platform} / Python {python} in {wheels_dir}")
                if wheel not in files:
                    files.append(wheel)
        chosen[platform] = files
    return chosen


# --- manifest -------------------------------------------------------------------------------

def _toml_list(key: str, values: list[str]) -> str:
    if not values:
        return f"{key} = []\n"
    return f"{key} = [\n" + "".join(f'  "{v}",\n' for v in values) + "]\n"


def build_manifest_text(text: str, *, platforms: list[str], wheels: list[str]) -> str:
    """``text`` (a blender_manifest.toml) with top-level ``platforms`` and ``wheels`` set
    (replacing any), inserted before the first table so they stay top-level keys."""
    m = re.search(r"^\s*\[", text, flags=re.M)
    head, tail = (text[:m.start()], text[m.start():]) if m else (text, "")
    head = re.sub(r"^(platforms|wheels)\s*=\s*\[[^\]]*\]\s*\n?", "", head, flags=re.M)
    block = ("# Generated by tools/build_extension.py for this build; not in the committed "
             "manifest.\n" + _toml_list("platforms", platforms))
    if wheels:
        block += _toml_list("wheels", wheels)
    new = head.rstrip("\n") + "\n\n" + block + ("\n" + tail if tail else "")
    data = tomllib.loads(new)
    assert data.get("platforms") == platforms and data.get("wheels", []) == wheels
    return new


# --- staging and Blender's tool -------------------------------------------------------------

def source_files(root: Path) -> list[str]:
    """Files to stage: what git tracks or would track (ignored files left out); without git,
    everything but the usual build/cache folders."""
    if (root / ".git").exists() and shutil.which("git"):
        res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True)
        names = [n for n in res.stdout.decode("utf-8").split("\0") if n]
    else:
        names = [str(p.relative_to(root)).replace(os.sep, "/") for p in root.rglob("*") if p.is_file()]
    out = []
    for n in sorted(set(names)):
        first = n.split("/", 1)[0]
        if first in STAGE_SKIP or first.startswith(".venv") or "__pycache__" in n.split("/"):
            continue
        if (root / n).is_file():
            out.append(n)
    return out


def stage(root: Path, dest: Path, manifest_text: str, wheels: list[Path]) -> None:
    for n in source_files(root):
        target = dest / n
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / n, target)
    (dest / MANIFEST).write_text(manifest_text, encoding="utf-8")
    if wheels:
        (dest / "wheels").mkdir(exist_ok=True)
        for w in wheels:
            shutil.copy2(w, dest / "wheels" / w.name)


def find_blender_ext(explicit: str | None) -> Path:
    rel = "scripts/addons_core/bl_pkg/cli/blender_ext.py"
    candidates = [explicit, os.environ.get("BLENDER_EXT")]
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates += sorted(glob.glob(os.path.join(loc, "*", rel)), reverse=True)
    if blender := shutil.which("blender"):
        bdir = Path(os.path.realpath(blender)).parent
        candidates += sorted(glob.glob(str(bdir / "*" / rel)), reverse=True)
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise SystemExit("Blender's blender_ext.py was not found: pass --blender-ext "
                     f"<blender>/<version>/{rel} (or install the bpy module in this Python)")


def run_blender_ext(tool: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise SystemExit(f"blender_ext.py {args[0]} failed:\n{out}")
    return out


def check_zip(zpath: Path, platform: str, wheels: list[Path]) -> None:
    """The zip has the package, its models, the right wheels and none of the dev files."""
    with zipfile.ZipFile(zpath) as z:
        names = set(z.namelist())
        manifest = tomllib.loads(z.read(MANIFEST).decode("utf-8"))
    problems = []
    for need in ("__init__.py", "inference/runtime.py", "models/text-minilm-l6/manifest.json",
                 "models/text-minilm-l6/model.onnx"):
        if need not in names:
            problems.append(f"missing {need}")
    for bad in ("tests/", "tools/", "training/", "benchmarks/", ".venv", "build/", "wheels/../"):
        if any(n.startswith(bad) for n in names):
            problems.append(f"contains {bad}")
    in_zip = sorted(n for n in names if n.startswith("wheels/"))
    want = sorted(f"wheels/{w.name}" for w in wheels)
    if in_zip != want:
        problems.append(f"wheels {in_zip}, expected {want}")
    if manifest.get("build", {}).get("generated", {}).get("platforms") != [platform]:
        problems.append("manifest [build.generated] platforms is not " + platform)
    if problems:
        raise SystemExit(f"{zpath.name}: " + "; ".join(problems))


# --- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (dist/)")
    ap.add_argument("--wheels-dir", type=Path,
                    default=Path(os.environ.get("SPARSE_MOTION_WHEELS") or ROOT / "wheels"),
                    help="wheel folder and download cache ($SPARSE_MOTION_WHEELS, else ./wheels, "
                         "git-ignored)")
    ap.add_argument("--platforms", nargs="+", default=None, choices=list(PLATFORMS),
                    help=f"default: all ({', '.join(PLATFORMS)}); with --gpu: "
                         f"{', '.join(GPU_PLATFORMS)}")
    ap.add_argument("--gpu", nargs="?", const="12", choices=sorted(GPU_RUNTIMES), default=None,
                    help="bundle onnxruntime-gpu for this CUDA major version (12 when not given) "
                         "instead of onnxruntime")
    ap.add_argument("--python", nargs="+", default=list(DEFAULT_PYTHONS),
                    help="CPython versions to bundle wheels for (3.11: Blender 4.2-5.0)")
    ap.add_argument("--no-wheels", action="store_true", help="build without wheels (tests/CI)")
    ap.add_argument("--offline", action="store_true", help="only use wheels already downloaded")
    ap.add_argument("--blender-ext", help="path to Blender's blender_ext.py")
    ap.add_argument("--stage", type=Path, help="keep the staged source in this (new) folder")
    args = ap.parse_args(argv)
    if args.platforms is None:
        args.platforms = list(GPU_PLATFORMS if args.gpu else PLATFORMS)
    if args.gpu and (bad := [p for p in args.platforms if p not in GPU_PLATFORMS]):
        raise SystemExit(f"--gpu: no CUDA on {', '.join(bad)} (GPU builds: "
                         f"{', '.join(GPU_PLATFORMS)})")

    tool = find_blender_ext(args.blender_ext)
    text = (ROOT / MANIFEST).read_text(encoding="utf-8")
    source = tomllib.loads(text)
    if args.no_wheels:
        per_platform = {p: [] for p in args.platforms}
    else:
        reqs = gpu_requirements(args.gpu) if args.gpu else pinned_requirements()
        per_platform = download_wheels(args.wheels_dir, reqs, args.platforms, args.python,
                                       args.offline)
    all_wheels = sorted({w for ws in per_platform.values() for w in ws}, key=lambda w: w.name)
    manifest_text = build_manifest_text(
        text, platforms=list(args.platforms), wheels=[f"./wheels/{w.name}" for w in all_wheels])

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sparse_motion-stage-") as tmp:
        stage_dir = args.stage or Path(tmp) / source["id"]
        if args.stage and args.stage.exists():
            shutil.rmtree(args.stage)
        stage_dir.mkdir(parents=True)
        stage(ROOT, stage_dir, manifest_text, all_wheels)
        built = Path(tmp) / "dist"  # then moved to --out under its final name
        built.mkdir()
        log(f"building with {tool}")
        run_blender_ext(tool, "build", "--source-dir", str(stage_dir), "--output-dir",
                        str(built), "--split-platforms")
        for platform in args.platforms:
            zpath = built / zip_name(source["id"], source["version"], platform)
            if not zpath.is_file():
                raise SystemExit(f"expected {zpath.name} was not built")
            zpath = Path(shutil.move(zpath, args.out / zip_name(source["id"], source["version"],
                                                                platform, args.gpu)))
            run_blender_ext(tool, "validate", str(zpath))
            check_zip(zpath, platform, per_platform[platform])
            wheel_mb = sum(w.stat().st_size for w in per_platform[platform]) / 1e6
            rows.append((zpath, zpath.stat().st_size / 1e6, wheel_mb, per_platform[platform]))
    log("\nbuilt and validated:")
    for zpath, mb, wheel_mb, wheels in rows:
        log(f"  {zpath.name:45s} {mb:7.1f} MB  (wheels {wheel_mb:.1f} MB: "
            f"{', '.join(w.name for w in wheels) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
