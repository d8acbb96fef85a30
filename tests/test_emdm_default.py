# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped EMDM package (never retrained in CI): intact, non-commercial like its data, a
choice beside sMDM (which stays the default), 10 steps, deterministic for a seed, the same on
onnxruntime and PyTorch, and it follows prompts."""
from pathlib import Path

import numpy as np
import pytest

from sparse_motion.inference.emdm import EmdmModel
from sparse_motion.inference.runtime import RuntimeSettings

from shipped_checks import (check_a_choice_beside_smdm, check_shipped_package,
                            check_walks_travel_and_hand_raises_stay)

PKG = Path(__file__).resolve().parents[1] / "models" / "emdm-default"


@pytest.fixture(scope="module")
def model():
    return EmdmModel(PKG, settings=RuntimeSettings(threads=2)).load()


def test_package_is_intact_non_commercial_and_not_the_generate_default():
    pkg = check_shipped_package(PKG, "emdm", "train_emdm.py", 30e6)
    assert set(pkg.files) == {"generator.onnx", "stats.npz"}
    assert pkg.manifest["model"]["steps"] == pkg.manifest["model"]["steps_t"] == 10
    assert pkg.training["init_from"] == "models/smdm-default/denoiser.pt"
    check_a_choice_beside_smdm("emdm", "emdm-default")


def test_walks_travel_and_hand_raises_stay(model):
    check_walks_travel_and_hand_raises_stay(model)


def test_same_seed_same_motion_and_torch_agrees(model):
    a = model.generate("a person jumps in place", seconds=4, seed=5)
    b = model.generate("a person jumps in place", seconds=4, seed=5)
    c = model.generate("a person jumps in place", seconds=4, seed=6)
    np.testing.assert_array_equal(a.features[0], b.features[0])
    assert np.abs(a.features[0] - c.features[0]).max() > 1e-2
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    t = EmdmModel(PKG, backend="torch", settings=RuntimeSettings(threads=2)).load()
    assert t.backend == "torch"
    got = t.generate("a person jumps in place", seconds=4, seed=5)
    # normalised features (the 1e-3 is on the model's own scale)
    diff = np.abs((got.features[0] - a.features[0]) / model.std).max()
    assert diff < 1e-3, diff
