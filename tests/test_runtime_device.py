# SPDX-License-Identifier: GPL-3.0-or-later
"""Which device a model runs on and why (issue 18), with the onnxruntime and torch installed
here: on a machine without a CUDA-capable onnxruntime or torch, a CUDA request runs on the CPU
and says so in one line, the same line the preferences, the panel and batch manifests show.
GPU tests are marked ``gpu`` and skip with the reason where no GPU is present."""
import sys

import numpy as np
import pytest

from sparse_motion.inference import runtime
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.runtime import RuntimeSettings

ort = pytest.importorskip("onnxruntime")
CUDA_ORT = "CUDAExecutionProvider" in ort.get_available_providers()
NO_CUDA_ORT = pytest.mark.skipif(CUDA_ORT, reason="this onnxruntime is the GPU build")


def _tiny_onnx(path):
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [1, 2, 3, 4, 5, 6])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    path.write_bytes(model.SerializeToString())
    return path


@NO_CUDA_ORT
def test_cuda_requested_without_cuda_onnxruntime_runs_on_the_cpu(tmp_path):
    choice = runtime.resolve_device("CUDA")
    assert (choice.requested, choice.device, choice.fallback) == ("CUDA", "CPU", True)
    assert choice.reason.startswith("CUDA requested, no CUDA-capable onnxruntime: running on the CPU")
    sess = runtime.get_session(_tiny_onnx(tmp_path / "m.onnx"), RuntimeSettings(device="CUDA", threads=1))
    info = runtime.session_info(sess)
    assert info.device == "CPU" and info.providers == ["CPUExecutionProvider"]
    assert info.note == choice.reason and info.choice == choice
    assert runtime.device_status(RuntimeSettings(device="CUDA")) == choice
    assert choice.to_manifest() == {"requested": "CUDA", "used": "CPU", "reason": choice.reason,
                                    "engine": "onnxruntime"}
    (y,) = sess.run(None, {"x": np.ones((1, 3), np.float32)})
    np.testing.assert_allclose(y, [[9.0, 12.0]])


@NO_CUDA_ORT
def test_automatic_and_cpu_choices_say_why(tmp_path):
    auto = runtime.resolve_device("AUTO")
    assert auto.device == "CPU" and not auto.fallback
    assert auto.reason.startswith("automatic, no CUDA-capable onnxruntime")
    cpu = runtime.resolve_device("cpu")
    assert (cpu.requested, cpu.device, cpu.reason) == ("CPU", "CPU", "CPU chosen")
    sess = runtime.get_session(_tiny_onnx(tmp_path / "m.onnx"), RuntimeSettings(device="CPU", threads=1))
    assert runtime.session_info(sess).note is None
    assert runtime.device_status(RuntimeSettings(device="CPU")) == cpu


def test_the_driver_probe_answers_without_a_toolkit():
    names, why = runtime.cuda_gpus()
    assert isinstance(names, tuple)
    if names:
        pytest.skip(f"this machine has NVIDIA GPUs: {', '.join(names)}")
    assert why and ("driver" in why or "GPU" in why)


# --- the PyTorch path ---------------------------------------------------------------------------

def test_torch_device_on_a_cpu_build():
    torch = pytest.importorskip("torch")
    if torch.version.cuda:
        pytest.skip("this torch is a CUDA build")
    choice = runtime.resolve_torch_device("CUDA", torch)
    assert (choice.device, choice.torch_device, choice.engine) == ("CPU", "cpu", "torch")
    assert choice.reason == (f"CUDA requested, PyTorch {torch.__version__} has no CUDA support "
                             "(a CPU build): running on the CPU")
    assert runtime.resolve_torch_device("AUTO", torch).reason.startswith("automatic, PyTorch")
    assert runtime.resolve_torch_device("CPU", torch).reason == "CPU chosen"
    # the torch hook uses the same choice and says it
    runner = runtime.load_torch_module(lambda t: t.nn.Linear(3, 2),
                                       settings=RuntimeSettings(device="CUDA", threads=1))
    assert runner.device == "cpu" and runner.choice == choice
    assert runner(np.ones((1, 3), np.float32)).shape == (1, 2)


def test_torch_device_without_torch_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ModelPackageError, match="Mamba part needs PyTorch.*not installed"):
        runtime.resolve_torch_device("AUTO", label="Mamba part")


def test_settings_are_checked():
    with pytest.raises(ValueError, match="device must be one of AUTO, CPU, CUDA"):
        runtime.resolve_device("GPU")
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        runtime.resolve_torch_device("ROCM", torch)


# --- on a GPU (skipped here, with the reason) ----------------------------------------------------

@pytest.mark.gpu
def test_cuda_session_on_a_gpu(tmp_path):
    names, why = runtime.cuda_gpus()
    if not names:
        pytest.skip(f"no GPU: {why}")
    if not CUDA_ORT:
        pytest.skip("no GPU build of onnxruntime (onnxruntime-gpu) installed")
    sess = runtime.get_session(_tiny_onnx(tmp_path / "m.onnx"), RuntimeSettings(device="CUDA", threads=1))
    info = runtime.session_info(sess)
    assert info.device == "CUDA", info.note
    (y,) = sess.run(None, {"x": np.ones((1, 3), np.float32)})
    np.testing.assert_allclose(y, [[9.0, 12.0]], rtol=1e-3)
    assert runtime.release() >= 1
