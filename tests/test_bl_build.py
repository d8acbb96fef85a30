# SPDX-License-Identifier: GPL-3.0-or-later
"""The extension build (tools/build_extension.py) with this Blender version's own
blender_ext.py, without wheels (no network in tests), and the built zip installed into a
scratch Blender user folder: registration, the model registry's user folder, the text encoder."""
import json
import os
import platform
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_extension as be  # noqa: E402

HOST = {("Linux", "x86_64"): "linux-x64", ("Windows", "AMD64"): "windows-x64",
        ("Darwin", "arm64"): "macos-arm64"}.get((platform.system(), platform.machine()))
BLENDER_EXT = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core/bl_pkg/cli/blender_ext.py"


def test_manifest_generation_keeps_committed_manifest_valid():
    text = (ROOT / "blender_manifest.toml").read_text()
    src = tomllib.loads(text)
    assert "wheels" not in src and "platforms" not in src  # only build copies carry them
    new = be.build_manifest_text(text, platforms=["linux-x64", "windows-x64"],
                                 wheels=["./wheels/a-1.0-cp311-cp311-win_amd64.whl"])
    data = tomllib.loads(new)
    assert data["platforms"] == ["linux-x64", "windows-x64"]
    assert data["wheels"] == ["./wheels/a-1.0-cp311-cp311-win_amd64.whl"]
    assert data["permissions"] == src["permissions"] and data["build"] == src["build"]
    again = tomllib.loads(be.build_manifest_text(new, platforms=["macos-arm64"], wheels=[]))
    assert again["platforms"] == ["macos-arm64"] and "wheels" not in again


def test_wheel_tags():
    assert be.wheel_platforms("onnxruntime-1.31.1-cp311-cp311-manylinux_2_27_x86_64."
                              "manylinux_2_28_x86_64.whl") == {"linux-x64"}
    assert be.wheel_platforms("tokenizers-0.23.3-cp310-abi3-macosx_11_0_arm64.whl") == {"macos-arm64"}
    assert be.wheel_platforms("x-1-py3-none-any.whl") == {"any"}
    assert be.wheel_pythons_ok("tokenizers-0.23.3-cp310-abi3-win_amd64.whl", "3.13")
    assert be.wheel_pythons_ok("onnxruntime-1.31.1-cp311-cp311-win_amd64.whl", "3.11")
    assert not be.wheel_pythons_ok("onnxruntime-1.31.1-cp311-cp311-win_amd64.whl", "3.13")
    assert be.pinned_requirements() == ["onnxruntime==1.31.1", "tokenizers==0.23.3"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if HOST is None:
        pytest.skip(f"no extension platform for {platform.system()} {platform.machine()}")
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, str(ROOT / "tools/build_extension.py"), "--no-wheels",
                          "--platforms", HOST, "--out", str(out), "--blender-ext", str(BLENDER_EXT)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    zips = sorted(out.glob("*.zip"))
    assert [z.name for z in zips] == [f"sparse_motion-0.1.0-{HOST.replace('-', '_')}.zip"]
    return zips[0]


def test_build_without_wheels(built):
    with zipfile.ZipFile(built) as z:
        names = set(z.namelist())
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert manifest["platforms"] == [HOST] and "wheels" not in manifest
    assert manifest["build"]["generated"] == {"platforms": [HOST], "wheels": []}
    assert {"__init__.py", "inference/package.py", "inference/registry.py",
            "models/text-minilm-l6/model.onnx", "models/emdm-default/generator.onnx"} <= names
    assert not any(n.startswith(("tests/", "tools/", "training/", ".venv", "wheels/", "dist/"))
                   for n in names)
    # the shipped models, zipped: text encoder 23 MB, sMDM 22 MB, KMM 28 MB, EMDM 14 MB,
    # classifiers and evaluator 7 MB (no wheels here): 78 MB
    assert built.stat().st_size < 85e6


def test_installed_zip_uses_the_user_models_folder(built, tmp_path):
    # a user copy of the shipped text encoder with a higher version, to be found in the
    # extension's user folder (bpy.utils.extension_path_user(__package__, "models"))
    script = textwrap.dedent(f"""
        import json, shutil, sys
        import bpy
        bpy.ops.extensions.package_install_files(filepath={str(built)!r}, repo="user_default",
                                                 enable_on_install=True)
        assert "sparse_motion" in {{a.module.rsplit(".", 1)[-1] for a in
                                    bpy.context.preferences.addons}}
        from bl_ext.user_default.sparse_motion.inference import registry, text_encoder
        user_dir = registry.blender_user_models_dir()
        src = text_encoder.default_package_dir()
        dst = user_dir / "my-encoder"
        shutil.copytree(src, dst)
        m = json.loads((dst / "manifest.json").read_text())
        m["version"] = "1.0.1"
        (dst / "manifest.json").write_text(json.dumps(m))
        reg = registry.get_registry()
        enc = reg.get("text-minilm-l6")
        emb = text_encoder.TextEncoder(enc.path, threads=1).encode(["a person walks"])
        print("RESULT " + json.dumps({{"user_dir": str(user_dir), "used": str(enc.path),
                                       "version": enc.version, "shape": list(emb.shape),
                                       "problems": [str(r) for r in reg.problems]}}))
    """)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert Path(result["user_dir"]).is_relative_to(tmp_path / "blender-user")
    assert Path(result["used"]).parent == Path(result["user_dir"]) and result["version"] == "1.0.1"
    assert result["shape"] == [1, 384]
    assert len(result["problems"]) == 1 and "replaced by the user copy" in result["problems"][0]


def test_enum_items_work_in_an_enum_property():
    from sparse_motion.inference import registry

    reg = registry.Registry(user_dirs=[])

    class SPARSEMOTION_PG_enum_test(bpy.types.PropertyGroup):
        model: bpy.props.EnumProperty(
            items=lambda self, context: registry.enum_items("text-encoder", reg))
        missing: bpy.props.EnumProperty(
            items=lambda self, context: registry.enum_items("no-such-kind", reg))

    bpy.utils.register_class(SPARSEMOTION_PG_enum_test)
    try:
        bpy.types.Scene.sm_enum_test = bpy.props.PointerProperty(type=SPARSEMOTION_PG_enum_test)
        props = bpy.context.scene.sm_enum_test
        assert props.model == "DEFAULT"  # an unset property: the default model
        assert reg.resolve("text-encoder", props.model).name == "text-minilm-l6"
        props.model = "text-minilm-l6"
        assert props.model == "text-minilm-l6"
        assert reg.resolve("text-encoder", props.model).name == "text-minilm-l6"
        assert props.missing == "NONE"
    finally:
        del bpy.types.Scene.sm_enum_test
        bpy.utils.unregister_class(SPARSEMOTION_PG_enum_test)


# --- the GPU build (issue 18): onnxruntime-gpu instead of onnxruntime -------------------------

def test_gpu_build_options(tmp_path):
    assert be.gpu_requirements("12") == ["onnxruntime-gpu==1.26.0", "tokenizers==0.23.3"]
    assert be.gpu_requirements("13")[0] == "onnxruntime-gpu==1.31.1"
    assert be.zip_name("sparse_motion", "0.1.0", "windows-x64", "12") == \
        "sparse_motion-0.1.0-windows_x64-cuda12.zip"
    assert be.zip_name("sparse_motion", "0.1.0", "linux-x64") == "sparse_motion-0.1.0-linux_x64.zip"
    # both builds' wheels in one folder: each build finds its own
    for name in ("onnxruntime-1.31.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
                 "onnxruntime_gpu-1.26.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
                 "onnxruntime_gpu-1.26.0-cp311-cp311-win_amd64.whl"):
        (tmp_path / name).write_bytes(b"")
    assert be.find_wheel(tmp_path, "onnxruntime-gpu==1.26.0", "linux-x64", "3.11").name.startswith(
        "onnxruntime_gpu-1.26.0-cp311-cp311-manylinux")
    assert be.find_wheel(tmp_path, "onnxruntime==1.31.1", "linux-x64", "3.11").name.startswith(
        "onnxruntime-1.31.1")
    assert be.find_wheel(tmp_path, "onnxruntime-gpu==1.26.0", "macos-arm64", "3.11") is None
    res = subprocess.run([sys.executable, str(ROOT / "tools/build_extension.py"), "--gpu",
                          "--platforms", "macos-arm64", "--blender-ext", str(BLENDER_EXT)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "--gpu: no CUDA on macos-arm64" in res.stderr


GPU_SCRIPT = r"""
import glob, importlib, json, os, sys
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
assert "onnxruntime" not in sys.modules
res = bpy.ops.extensions.package_install_files(filepath=sys.argv[-1], repo="user_default",
                                               enable_on_install=True)
assert res == {"FINISHED"}, res
# in Blender the extension's wheels are the only onnxruntime; here the test venv has the CPU
# one too, so the extension's site-packages go first
(site,) = glob.glob(os.path.join(bpy.utils.user_resource("EXTENSIONS"), ".local", "lib",
                                 "python*", "site-packages"))
sys.path.insert(0, site)
importlib.invalidate_caches()
import onnxruntime
from bl_ext.user_default.sparse_motion import preferences
from bl_ext.user_default.sparse_motion.inference import runtime
prefs = bpy.context.preferences.addons["bl_ext.user_default.sparse_motion"].preferences
prefs.device, prefs.threads = "CUDA", 1
before = preferences.device_choice(prefs)
r = bpy.ops.sparse_motion.generate_motion(prompt="a person walks forward", seconds=2, seed=1,
                                          steps=10)
after = preferences.device_choice(prefs)
sessions = [{"file": os.path.basename(str(i.path)), "device": i.device, "providers": i.providers}
            for i in runtime.cached_sessions()]
print("RESULT " + json.dumps({
    "ort_file": onnxruntime.__file__, "site": site, "ort_version": onnxruntime.__version__,
    "providers": onnxruntime.get_available_providers(), "op": sorted(r),
    "before": before.to_manifest(), "after": after.to_manifest(), "sessions": sessions}))
"""


@pytest.fixture(scope="module")
def gpu_zip(tmp_path_factory):
    if HOST not in be.GPU_PLATFORMS:
        pytest.skip(f"no GPU build for {HOST}")
    out = tmp_path_factory.mktemp("dist-gpu")
    # the real onnxruntime-gpu wheel: from the wheel folder ($SPARSE_MOTION_WHEELS or ./wheels),
    # downloaded from PyPI into it when missing
    res = subprocess.run([sys.executable, str(ROOT / "tools/build_extension.py"), "--gpu",
                          "--platforms", HOST, "--out", str(out), "--blender-ext", str(BLENDER_EXT)],
                         capture_output=True, text=True, timeout=900)
    if res.returncode != 0 and "pip download failed" in res.stdout + res.stderr:
        pytest.skip("the onnxruntime-gpu wheel could not be downloaded: " + res.stderr[-500:])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "built and validated" in res.stdout
    (z,) = out.glob("*.zip")
    assert z.name == f"sparse_motion-0.1.0-{HOST.replace('-', '_')}-cuda12.zip"
    return z


def test_gpu_zip_installs_and_falls_back_to_the_cpu(gpu_zip, tmp_path):
    with zipfile.ZipFile(gpu_zip) as z:
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert [w.split("/")[-1].split("-")[0] for w in manifest["wheels"]] == ["onnxruntime_gpu",
                                                                            "tokenizers"]
    script = tmp_path / "gpu.py"
    script.write_text(GPU_SCRIPT)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user"),
           "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(script), str(gpu_zip)], capture_output=True,
                         text=True, timeout=600, env=env, cwd=tmp_path)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stdout[-3000:] + res.stderr[-3000:]
    r = json.loads(lines[-1][len("RESULT "):])
    assert Path(r["ort_file"]).is_relative_to(r["site"]) and r["ort_version"] == "1.26.0"
    assert "CUDAExecutionProvider" in r["providers"]  # the GPU build of onnxruntime
    assert r["op"] == ["FINISHED"]
    from sparse_motion.inference import runtime

    gpus, why = runtime.cuda_gpus()
    if gpus:
        pytest.skip(f"this machine has a GPU ({gpus[0]}): the fallback is not what runs here")
    for d in (r["before"], r["after"]):  # no GPU here: CUDA asked for, the CPU used, and why
        assert d["requested"] == "CUDA" and d["used"] == "CPU", d
        assert d["reason"] == (f"CUDA requested, onnxruntime-gpu found no NVIDIA GPU ({why}): "
                               "running on the CPU")
    assert r["sessions"] and all(s["device"] == "CPU" and s["providers"] == ["CPUExecutionProvider"]
                                 for s in r["sessions"]), r["sessions"]
    assert {"denoiser.onnx", "model.onnx"} <= {s["file"] for s in r["sessions"]}
