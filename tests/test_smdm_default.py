# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped default sMDM package (never retrained in CI): intact, and it follows prompts."""
from pathlib import Path

import numpy as np
import pytest

from sparse_motion.inference import registry
from sparse_motion.inference.runtime import RuntimeSettings
from sparse_motion.inference.smdm import SmdmModel
from sparse_motion.motion import canonical as canon

from shipped_checks import check_shipped_package

PKG = Path(__file__).resolve().parents[1] / "models" / "smdm-default"
NAMES = canon.SKELETON.names


@pytest.fixture(scope="module")
def model():
    return SmdmModel(PKG, settings=RuntimeSettings(threads=2)).load()


def test_package_is_the_registered_default_and_intact():
    check_shipped_package(PKG, "smdm", "train_smdm.py", 25e6)
    assert registry.Registry().scan().default("smdm").name == "smdm-default"


def _pose_facts(gen):
    q, x = gen.motion(0)
    p = canon.canonical_forward_kinematics(q, x)
    head = p[:, NAMES.index("Head"), 1].mean()
    return {"left": p[:, NAMES.index("Hand_L"), 1].max() - head,
            "right": p[:, NAMES.index("Hand_R"), 1].max() - head,
            "travel": x[-1, [0, 2]] - x[0, [0, 2]]}


def test_hands_follow_the_prompt(model):
    left = _pose_facts(model.generate("A person waves the left hand.", 100, seed=0, steps=20))
    right = _pose_facts(model.generate("A person waves the right hand.", 100, seed=0, steps=20))
    assert left["left"] > 0 > left["right"]      # the left hand above the head, not the right
    assert right["right"] > 0 > right["left"]


def test_walking_goes_forward_and_backward(model):
    fwd = _pose_facts(model.generate("A person walks forward.", 100, seed=0, steps=20))
    back = _pose_facts(model.generate("A person walks backwards.", 100, seed=0, steps=20))
    wave = _pose_facts(model.generate("A person waves the left hand.", 100, seed=0, steps=20))
    assert fwd["travel"][1] > 200 and back["travel"][1] < -100   # cm along +Z (forward)
    assert np.linalg.norm(wave["travel"]) < 50
