# SPDX-License-Identifier: GPL-3.0-or-later
"""Model packages (inference/package.py), the registry (inference/registry.py) and the
onnxruntime runtime (inference/runtime.py), on tiny ONNX models built here with onnx.helper.
Runs without bpy and without torch (the torch test runs only where torch is installed)."""
import json
import os
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="pip install -r requirements-test.txt")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from sparse_motion.inference import registry as reg_mod  # noqa: E402
from sparse_motion.inference import runtime  # noqa: E402
from sparse_motion.inference.errors import ModelPackageError  # noqa: E402
from sparse_motion.inference.package import (  # noqa: E402
    FORMAT_VERSION, IncompatiblePackageError, ModelPackage, PackageError, file_sha256,
    load_package, parse_version, version_satisfies, write_manifest,
)
from sparse_motion.inference.registry import Registry  # noqa: E402
from sparse_motion.inference.runtime import RuntimeSettings  # noqa: E402
from sparse_motion.inference.text_encoder import default_package_dir  # noqa: E402

IN, OUT = 4, 3
RNG = np.random.default_rng(0)
W = RNG.standard_normal((IN, OUT)).astype(np.float32)
B = RNG.standard_normal(OUT).astype(np.float32)
CPU = RuntimeSettings(device="CPU", threads=1)


def make_onnx(path, input_name="x", output_name="y"):
    """y = x @ W + b with x: (batch, 4) float32."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", [input_name, "W"], ["h"]),
         helper.make_node("Add", ["h", "B"], [output_name])],
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", IN])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", OUT])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


MOTION_FIELDS = dict(
    skeleton="bandai-21", fps=20,
    representation={"name": "humanml3d-257", "feature_dim": 257},
    stats="stats.npz",
    text_encoder={"name": "text-tiny", "version": "1.0.0"},
    commercial_use=False,
    training={"data": [{"name": "Bandai Namco Research Motion Dataset", "license": "CC-BY-NC-4.0",
                        "commercial_use": False}],
              "command": ".venv-train/bin/python training/train_smdm.py --seed 0", "seed": 0},
    metrics={"fid": 0.5},
)


def make_package(directory, name="smdm-test", version="1.0.0", kind="smdm", **fields):
    make_onnx(directory / "model.onnx")
    np.savez(directory / "stats.npz", mean=np.zeros(257, np.float32), std=np.ones(257, np.float32))
    manifest = {**MOTION_FIELDS, **fields}
    return ModelPackage.create(directory, name=name, kind=kind, version=version,
                               files=["model.onnx", "stats.npz"], **manifest)


def make_encoder(directory, name="text-tiny", version="1.0.0"):
    make_onnx(directory / "model.onnx", input_name="tokens", output_name="embedding")
    return ModelPackage.create(directory, name=name, kind="text-encoder", version=version,
                               files=["model.onnx"], commercial_use=True)


@pytest.fixture()
def pkg(tmp_path):
    return make_package(tmp_path / "smdm-test")


@pytest.fixture(autouse=True)
def _fresh_cache():
    runtime.release()
    yield
    runtime.release()


def manifest_of(directory):
    return json.loads((directory / "manifest.json").read_text())


def edit_manifest(directory, **changes):
    m = manifest_of(directory)
    m.update(changes)
    (directory / "manifest.json").write_text(json.dumps(m, indent=2))


# --- format: create, load, run ----------------------------------------------------------

def test_create_writes_checksums_and_onnx_spec(pkg):
    m = manifest_of(pkg.path)
    assert m["format_version"] == FORMAT_VERSION
    assert (m["name"], m["kind"], m["version"]) == ("smdm-test", "smdm", "1.0.0")
    assert m["commercial_use"] is False
    assert m["training"]["data"][0]["license"] == "CC-BY-NC-4.0"
    entry = m["files"]["model.onnx"]
    assert entry["sha256"] == file_sha256(pkg.path / "model.onnx")
    assert entry["size"] == (pkg.path / "model.onnx").stat().st_size
    assert entry["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", IN]}]
    assert entry["outputs"] == [{"name": "y", "dtype": "float32", "shape": ["batch", OUT]}]
    assert "inputs" not in m["files"]["stats.npz"]
    assert pkg.onnx_files() == ["model.onnx"]
    assert (pkg.skeleton, pkg.fps, pkg.feature_dim, pkg.stats_file) == ("bandai-21", 20, 257, "stats.npz")
    assert pkg.text_encoder == {"name": "text-tiny", "version": "1.0.0"}
    assert not pkg.commercial_use and pkg.metrics == {"fid": 0.5}


def test_load_and_run_on_cpu(pkg):
    loaded = load_package(pkg.path, kind="smdm")
    sess = loaded.session("model.onnx", CPU)
    x = RNG.standard_normal((5, IN)).astype(np.float32)
    (y,) = sess.run(["y"], {"x": x})
    np.testing.assert_allclose(y, x @ W + B, rtol=1e-5, atol=1e-5)
    info = runtime.session_info(sess)
    assert info.device == "CPU" and info.providers == ["CPUExecutionProvider"]
    assert info.threads == 1 and info.note is None
    assert loaded.session(settings=CPU) is sess  # the only ONNX file, same cached session
    stats = loaded.load_stats()
    assert stats["mean"].shape == (257,) and np.all(stats["std"] == 1)


def test_shipped_text_encoder_package_is_valid():
    te = load_package(default_package_dir(), kind="text-encoder")
    assert te.name == "text-minilm-l6" and te.format_version == FORMAT_VERSION
    assert te.commercial_use is True and te.is_default
    assert te.metrics["cosine_vs_torch_min"] >= 0.99
    assert te.session_config("model.onnx") == {"session.disable_quant_qdq": "1"}
    te.verify()  # every file's sha256


def test_session_options(pkg, tmp_path):
    sess = pkg.session("model.onnx", RuntimeSettings(device="CPU", threads=2))
    so = sess.get_session_options()
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    import onnxruntime as ort

    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # session config entries from the manifest reach the session
    other = make_package(tmp_path / "cfg", name="smdm-cfg",
                         runtime={"onnxruntime_session_config": {"session.disable_quant_qdq": "1"}})
    so = other.session(settings=CPU).get_session_options()
    assert so.get_session_config_entry("session.disable_quant_qdq") == "1"


def test_session_cache_and_release(pkg):
    a = pkg.session("model.onnx", CPU)
    assert load_package(pkg.path).session("model.onnx", CPU) is a  # one load per process
    assert runtime.get_session(pkg.path / "model.onnx", CPU) is a
    basic = RuntimeSettings(device="CPU", threads=1, optimization="basic")
    assert runtime.get_session(pkg.path / "model.onnx", basic) is not a
    b = pkg.session("model.onnx", RuntimeSettings(device="CPU", threads=2))
    assert b is not a
    assert {i.threads for i in runtime.cached_sessions()} >= {1, 2}
    assert pkg.release() >= 2
    assert runtime.session_info(a) is None
    c = pkg.session("model.onnx", CPU)
    assert c is not a
    assert runtime.release() >= 1 and runtime.cached_sessions() == []


def test_checksum_computed_once_then_again_after_a_change(pkg):
    calls = []

    def hasher(path):
        calls.append(path.name)
        return file_sha256(path)

    pkg.verify("model.onnx", hasher=hasher)
    pkg.verify("model.onnx", hasher=hasher)
    load_package(pkg.path).verify("model.onnx", hasher=hasher)  # process-wide cache
    assert calls == ["model.onnx"]
    model = pkg.path / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, new content
    model.write_bytes(bytes(data))
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    with pytest.raises(PackageError, match="checksum mismatch"):
        pkg.verify("model.onnx", hasher=hasher)
    assert calls == ["model.onnx", "model.onnx"]


# --- broken packages --------------------------------------------------------------------

def test_corrupt_onnx_names_the_file(pkg):
    model = pkg.path / "model.onnx"
    data = bytearray(model.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 8] = bytes(b ^ 0xFF for b in data[mid:mid + 8])
    model.write_bytes(bytes(data))
    loaded = load_package(pkg.path)  # cheap checks pass: same size
    with pytest.raises(PackageError) as info:
        loaded.session("model.onnx", CPU)
    err = info.value
    assert isinstance(err, ModelPackageError)
    assert (err.problem, err.file, err.package) == ("checksum", "model.onnx", "smdm-test")
    msg = str(err)
    assert "Model 'smdm-test'" in msg and "model.onnx" in msg and "reinstall" in msg


def test_unloadable_onnx_with_matching_checksum(pkg):
    spec = manifest_of(pkg.path)["files"]["model.onnx"]
    (pkg.path / "model.onnx").write_bytes(b"not an onnx model at all")
    m = manifest_of(pkg.path)
    files = {"model.onnx": {"inputs": spec["inputs"], "outputs": spec["outputs"]}, "stats.npz": None}
    write_manifest(pkg.path, m, files=files)
    with pytest.raises(PackageError, match="model.onnx could not be loaded by onnxruntime") as info:
        load_package(pkg.path).session("model.onnx", CPU)
    assert info.value.problem == "load"


def test_truncated_file_found_without_hashing(pkg):
    model = pkg.path / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(PackageError, match="model.onnx is incomplete or corrupt") as info:
        load_package(pkg.path)
    assert info.value.problem == "size"


def test_missing_file(pkg):
    os.remove(pkg.path / "model.onnx")
    with pytest.raises(PackageError, match="Model 'smdm-test' is missing file model.onnx") as info:
        load_package(pkg.path)
    assert info.value.problem == "missing-file" and "reinstall the extension" in str(info.value)


def test_optional_file_may_be_missing(tmp_path):
    d = tmp_path / "p"
    make_onnx(d / "model.onnx")
    (d / "notes.txt").write_text("reference data")
    pkg = ModelPackage.create(d, name="enc", kind="text-encoder", version="1.0.0",
                              commercial_use=True, files={"model.onnx": None, "notes.txt": {"optional": True}})
    os.remove(d / "notes.txt")
    load_package(d).verify()
    with pytest.raises(PackageError, match="missing file notes.txt"):
        pkg.verify("notes.txt")


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(PackageError, match="is missing") as info:
        load_package(tmp_path / "nowhere")
    assert info.value.problem == "missing-folder"
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="manifest.json is missing") as info:
        load_package(tmp_path / "empty")
    assert info.value.problem == "missing-manifest"


def test_bad_json_names_the_line(pkg):
    text = json.dumps(manifest_of(pkg.path), indent=2).splitlines()
    text[2] = text[2].rstrip(",")  # drop a comma on line 3
    (pkg.path / "manifest.json").write_text("\n".join(text))
    with pytest.raises(PackageError, match=r"not valid JSON: .* at line [34], column \d+") as info:
        load_package(pkg.path)
    assert info.value.problem == "bad-json" and "manifest.json" in str(info.value)


def test_format_too_new(pkg):
    edit_manifest(pkg.path, format_version=FORMAT_VERSION + 1, future_field={"x": 1})
    with pytest.raises(IncompatiblePackageError, match="update the Sparse Motion extension") as info:
        load_package(pkg.path)
    assert info.value.problem == "format-too-new" and "smdm-test" in str(info.value)


def test_invalid_manifest_lists_every_problem(pkg):
    m = manifest_of(pkg.path)
    del m["skeleton"], m["format_version"]
    (pkg.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="format_version must be"):
        load_package(pkg.path)
    m["format_version"] = 1
    m["version"] = "1.0"
    m["commercial_use"] = True  # but trained on CC BY-NC data
    m["files"]["model.onnx"]["inputs"][0]["dtype"] = "float31"
    m["files"]["../evil.bin"] = {"sha256": "0" * 64}
    (pkg.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError) as info:
        load_package(pkg.path)
    msg = str(info.value)
    assert info.value.problem == "invalid" and msg.startswith("Model 'smdm-test' has an invalid manifest")
    for part in ("skeleton must", "version must be semantic", "commercial_use must be false",
                 "dtype 'float31'", "must stay inside the package folder"):
        assert part in msg, part


def test_wrong_kind(pkg):
    with pytest.raises(PackageError, match="is a smdm model, not a text-encoder model") as info:
        load_package(pkg.path, kind="text-encoder")
    assert info.value.problem == "wrong-kind"


def test_onnx_signature_checked_when_session_opens(pkg):
    m = manifest_of(pkg.path)
    m["files"]["model.onnx"]["inputs"][0]["name"] = "motion"
    (pkg.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="does not match its manifest: .*inputs \\['x'\\]") as info:
        load_package(pkg.path).session("model.onnx", CPU)
    assert info.value.problem == "signature"
    assert runtime.cached_sessions() == []  # the mismatching session was dropped
    m["files"]["model.onnx"]["inputs"][0].update(name="x", shape=["batch", 5])
    (pkg.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PackageError, match="'x' has shape \\['batch', 4\\], manifest says"):
        load_package(pkg.path).session("model.onnx", CPU)


def test_write_manifest_rejects_bad_input(tmp_path):
    make_onnx(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="inside the package"):
        write_manifest(tmp_path, {"name": "x", "kind": "text-encoder", "version": "1.0.0",
                                  "commercial_use": True}, files=["../model.onnx"])
    with pytest.raises(FileNotFoundError):
        write_manifest(tmp_path, {}, files=["nothing.onnx"])
    with pytest.raises(PackageError, match="fps must be"):
        write_manifest(tmp_path, {"name": "x", "kind": "smdm", "version": "1.0.0",
                                  "commercial_use": True, "skeleton": "bandai-21",
                                  "representation": {"name": "humanml3d-257", "feature_dim": 257}},
                       files=["model.onnx"])
    assert not (tmp_path / "manifest.json").exists()


def test_versions():
    order = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0", "1.0.1", "1.2.0", "10.0.0"]
    assert sorted(order, key=parse_version) == order
    assert parse_version("1.0.0+build.5") == parse_version("1.0.0")
    for bad in ("1.0", "v1.0.0", "01.0.0", "", None):
        with pytest.raises(ValueError):
            parse_version(bad)
    assert version_satisfies("1.4.2", "1.2.0") and not version_satisfies("2.0.0", "1.2.0")
    assert not version_satisfies("1.1.9", "1.2.0")
    assert version_satisfies("0.3.5", "0.3.1") and not version_satisfies("0.4.0", "0.3.1")
    assert version_satisfies("3.0.0", ">=1.2.0") and version_satisfies("7.7.7", "*")
    assert version_satisfies("1.2.0", "=1.2.0") and not version_satisfies("1.2.1", "=1.2.0")


# --- runtime ------------------------------------------------------------------------------

def test_settings_and_threads():
    s = RuntimeSettings.from_preferences(SimpleNamespace(device="cpu", threads=0))
    assert s.device == "CPU" and s.resolved_threads == min(4, runtime.physical_cores())
    assert 1 <= runtime.physical_cores() <= runtime.usable_cpus()
    assert RuntimeSettings.from_preferences(SimpleNamespace(device="CUDA", threads=3)).resolved_threads == 3
    assert RuntimeSettings.from_preferences(None) == RuntimeSettings()
    with pytest.raises(ValueError):
        RuntimeSettings(device="TPU")
    with pytest.raises(ValueError):
        RuntimeSettings(threads=-1)


def test_provider_choice(monkeypatch):
    monkeypatch.setattr(runtime, "available_providers", lambda: ["CPUExecutionProvider"])
    assert runtime.select_providers("AUTO") == (["CPUExecutionProvider"], None)
    providers, note = runtime.select_providers("CUDA")
    assert providers == ["CPUExecutionProvider"] and "onnxruntime-gpu" in note
    monkeypatch.setattr(runtime, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "cuda_gpus", lambda: ((), "no NVIDIA driver"))
    assert runtime.select_providers("AUTO") == (["CPUExecutionProvider"], None)
    providers, note = runtime.select_providers("CUDA")
    assert providers == ["CPUExecutionProvider"] and "found no NVIDIA GPU (no NVIDIA driver)" in note
    monkeypatch.setattr(runtime, "cuda_gpus", lambda: (("Test GPU",), None))
    providers, note = runtime.select_providers("AUTO")
    assert runtime._provider_names(providers) == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert note is None
    assert runtime.select_providers("CPU") == (["CPUExecutionProvider"], None)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_cuda_request_falls_back_to_cpu(pkg, monkeypatch):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA build of onnxruntime is installed")
    # pretend a GPU build and a GPU: the session still opens, on the CPU, with a note saying why
    monkeypatch.setattr(runtime, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "cuda_gpus", lambda: (("Test GPU",), None))
    sess = pkg.session("model.onnx", RuntimeSettings(device="CUDA", threads=1))
    info = runtime.session_info(sess)
    assert info.device == "CPU" and info.note.startswith("CUDA requested, onnxruntime-gpu could not "
                                                         "start CUDA")
    assert info.note.endswith("running on the CPU") and info.choice.fallback
    (y,) = sess.run(None, {"x": np.ones((1, IN), np.float32)})
    np.testing.assert_allclose(y[0], W.sum(0) + B, rtol=1e-5)


def test_torch_missing_gives_clear_error(pkg, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ModelPackageError, match="Model 'smdm-test' needs PyTorch"):
        pkg.torch_module(lambda torch: None)
    assert isinstance(runtime.TorchRunner(None, "cpu"), runtime.TorchModule)


def test_torch_path_runs_a_module(tmp_path):
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(IN, OUT)
    torch.save(lin.state_dict(), tmp_path / "part.pt")
    make_onnx(tmp_path / "model.onnx")
    pkg = ModelPackage.create(tmp_path, name="enc", kind="text-encoder", version="1.0.0",
                              commercial_use=True, files=["model.onnx", "part.pt"])
    part = pkg.torch_module(lambda t: t.nn.Linear(IN, OUT), "part.pt", CPU)
    x = np.ones((2, IN), np.float32)
    np.testing.assert_allclose(part(x), lin(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)
    part.release()


# --- registry -----------------------------------------------------------------------------

@pytest.fixture()
def roots(tmp_path):
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    make_encoder(shipped / "text-tiny")
    make_package(shipped / "smdm-test")
    return shipped, user


def statuses(reg):
    return {(r.name or r.path.name, r.source): r.status for r in reg.records}


def test_registry_lists_good_and_reports_broken(roots):
    shipped, _ = roots
    bad_json = make_package(shipped / "bad-json", name="bad-json").path
    (bad_json / "manifest.json").write_text('{"name": "bad-json",\n "kind": }')
    missing = make_package(shipped / "missing-file", name="missing-file").path
    os.remove(missing / "stats.npz")
    too_new = make_package(shipped / "too-new", name="too-new").path
    edit_manifest(too_new, format_version=FORMAT_VERSION + 1)
    make_package(shipped / "smpl", name="smdm-smpl", skeleton="smpl-22")
    make_package(shipped / "needs-v2", name="needs-v2", text_encoder={"name": "text-tiny", "version": "2.0.0"})
    (shipped / "stray").mkdir()
    (shipped / "__pycache__").mkdir()
    (shipped / "notes.txt").write_text("not a folder")

    reg = Registry([shipped], [])
    assert [p.name for p in reg.packages("smdm")] == ["smdm-test"]
    assert [p.name for p in reg.packages()] == ["smdm-test", "text-tiny"]
    assert reg.kinds() == ["smdm", "text-encoder"]
    by_path = {r.path.name: r for r in reg.records}
    assert "__pycache__" not in by_path and "notes.txt" not in by_path
    assert by_path["bad-json"].status == "broken" and "line 2" in by_path["bad-json"].message
    assert by_path["missing-file"].status == "broken"
    assert "missing file stats.npz" in by_path["missing-file"].message
    assert by_path["too-new"].status == "incompatible" and "update" in by_path["too-new"].message
    assert by_path["smpl"].status == "incompatible" and "'smpl-22'" in by_path["smpl"].message
    assert by_path["needs-v2"].status == "incompatible"
    assert "needs the text encoder 'text-tiny' 2.0.0, but version 1.0.0" in by_path["needs-v2"].message
    assert by_path["stray"].status == "broken" and "manifest.json is missing" in by_path["stray"].message
    assert len(reg.problems) == 6
    assert "[broken]" in reg.report() and "[ok] smdm-test 1.0.0" in reg.report()
    with pytest.raises(ModelPackageError, match="missing file stats.npz"):
        reg.get("missing-file")
    with pytest.raises(IncompatiblePackageError, match="smpl-22"):
        reg.get("smdm-smpl")
    with pytest.raises(ModelPackageError, match="No model named 'nope'.*smdm-test"):
        reg.get("nope", kind="smdm")
    assert reg.get("smdm-test", kind="smdm").session(settings=CPU) is not None


@pytest.mark.parametrize("user_version, used", [("1.1.0", "user"), ("1.0.0", "shipped"),
                                                ("0.9.0", "shipped"), ("1.0.0-rc.1", "shipped")])
def test_user_package_overrides_shipped_only_when_newer(roots, user_version, used):
    shipped, user = roots
    make_package(user / "my-copy", version=user_version)
    reg = Registry([shipped], [user])
    pkg = reg.get("smdm-test")
    assert pkg.version == (user_version if used == "user" else "1.0.0")
    assert pkg.path.parent == (user if used == "user" else shipped)
    other = "shipped" if used == "user" else "user"
    st = statuses(reg)
    assert st[("smdm-test", used)] == "ok" and st[("smdm-test", other)] == "unused"
    msg = next(r.message for r in reg.records if r.source == other and r.name == "smdm-test")
    assert ("replaced by the user copy" in msg) if used == "user" else ("is not used" in msg)
    assert [p.name for p in reg.packages("smdm")] == ["smdm-test"]


def test_same_name_twice_in_user_folders(roots, tmp_path):
    shipped, user = roots
    make_package(user / "a", name="mine", version="2.0.0")
    make_package(tmp_path / "user2" / "b", name="mine", version="2.1.0")
    reg = Registry([shipped], [user, tmp_path / "user2"])
    assert reg.get("mine").version == "2.1.0"
    assert sum(r.status == "unused" for r in reg.records) == 1


def test_user_folder_may_be_a_package_and_env_var(roots, monkeypatch, tmp_path):
    shipped, _ = roots
    single = make_package(tmp_path / "single", name="solo").path
    monkeypatch.setenv(reg_mod.ENV_VAR, os.pathsep.join([str(single), str(tmp_path / "absent")]))
    assert reg_mod.user_models_dirs() == [single, tmp_path / "absent"]
    reg = Registry([shipped])
    assert "solo" in [p.name for p in reg.packages("smdm")]
    absent = [r for r in reg.problems if r.path == tmp_path / "absent"]
    assert absent and "does not exist" in absent[0].message


def test_default_per_kind_and_enum_items(roots):
    shipped, user = roots
    make_package(shipped / "a-first", name="a-first")
    make_package(user / "z-flagged", name="z-flagged", default=True, description="Best one.")
    reg = Registry([shipped], [user])
    assert reg.default("smdm").name == "z-flagged"  # flagged beats alphabetical and shipped
    assert reg.default("smdm", preferred="smdm-test").name == "smdm-test"
    assert reg.default("smdm", preferred="gone").name == "z-flagged"
    assert reg.default("text-encoder").name == "text-tiny"
    items = reg.enum_items("smdm")
    assert [i[0] for i in items] == ["DEFAULT", "a-first", "smdm-test", "z-flagged"]
    assert items[0] == ("DEFAULT", "Default (z-flagged 1.0.0)",
                        "The default smdm model, now z-flagged 1.0.0", 0)
    ident, label, desc, number = items[3]
    assert label == "z-flagged 1.0.0" and "the default" in desc and "installed by you" in desc
    assert "non-commercial" in desc and "Best one." in desc
    numbers = [i[3] for i in items[1:]]
    assert len(set(numbers)) == 3 and 0 not in numbers
    again = Registry([shipped], []).enum_items("smdm")  # numbers stable per name
    assert {i[0]: i[3] for i in again[1:]}.items() <= {i[0]: i[3] for i in items}.items()
    assert reg.resolve("smdm", "DEFAULT").name == "z-flagged"
    assert reg.resolve("smdm", "").name == "z-flagged"  # an unset or vanished choice
    assert reg.resolve("smdm", "gone").name == "z-flagged"
    assert reg.resolve("smdm", "a-first").name == "a-first"
    assert reg.resolve("smdm", "text-tiny").name == "z-flagged"  # another kind
    assert reg.enum_items("motiondreamer") == [
        ("NONE", "No motiondreamer model", "No usable motiondreamer model is installed", 0)]
    with pytest.raises(ModelPackageError, match="No usable motiondreamer model"):
        reg.default("motiondreamer")
    with pytest.raises(ModelPackageError, match="No usable motiondreamer model"):
        reg.resolve("motiondreamer", "NONE")
    kept = reg_mod.enum_items("smdm", reg)
    assert reg_mod._enum_keepalive["smdm"] is kept


def test_default_names_broken_packages(tmp_path):
    d = make_package(tmp_path / "s" / "only", name="only").path
    os.remove(d / "model.onnx")
    reg = Registry([tmp_path / "s"], [], representations=None)
    with pytest.raises(ModelPackageError, match="No usable smdm model.*missing file model.onnx"):
        reg.default("smdm")


def test_shipped_registry_has_no_problems():
    reg = Registry(user_dirs=[])
    assert reg.problems == [], reg.report()
    assert reg.default("text-encoder").name == "text-minilm-l6"


def test_user_dir_outside_blender_is_none():
    assert reg_mod.blender_user_models_dir() is None  # not an installed extension here


def test_registry_never_raises_on_unreadable_folder(roots, monkeypatch):
    shipped, _ = roots

    def boom(directory, **kw):
        raise OSError("disk on fire")

    monkeypatch.setattr(reg_mod, "load_package", boom)
    reg = Registry([shipped], [])
    assert reg.packages() == [] and all(r.status == "broken" for r in reg.records)
    assert "disk on fire" in reg.records[0].message


def test_package_copy_keeps_working(pkg, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pkg.path, copy)
    moved = load_package(copy)
    moved.verify()
    assert moved.session(settings=CPU) is not pkg.session(settings=CPU)
