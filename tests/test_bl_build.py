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
            "models/text-minilm-l6/model.onnx"} <= names
    assert not any(n.startswith(("tests/", "tools/", "training/", ".venv", "wheels/", "dist/"))
                   for n in names)
    assert built.stat().st_size < 40e6


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
            items=lambda self, context: registry.enum_items("kmm", reg))

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
