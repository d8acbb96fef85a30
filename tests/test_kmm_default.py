# SPDX-License-Identifier: GPL-3.0-or-later
"""The shipped KMM package (never retrained in CI): intact, non-commercial like its data, a
choice beside sMDM (which stays the default), and it follows prompts — alone and as a
timeline."""
from pathlib import Path

import numpy as np
import pytest

from sparse_motion.inference import timeline as tl
from sparse_motion.inference.kmm import KmmModel
from sparse_motion.inference.runtime import RuntimeSettings

from shipped_checks import (check_a_choice_beside_smdm, check_shipped_package,
                            check_walks_travel_and_hand_raises_stay)

PKG = Path(__file__).resolve().parents[1] / "models" / "kmm-default"


@pytest.fixture(scope="module")
def model():
    return KmmModel(PKG, settings=RuntimeSettings(threads=2)).load()


def test_package_is_intact_non_commercial_and_not_the_generate_default():
    pkg = check_shipped_package(PKG, "kmm", "train_kmm.py", 30e6)
    assert "dance-long" not in pkg.manifest["labels"]["content"]  # no clip of it was seen
    check_a_choice_beside_smdm("kmm", "kmm-default")


def test_walks_travel_and_hand_raises_stay(model):
    check_walks_travel_and_hand_raises_stay(model)


def test_a_timeline_walks_then_waves_in_one_motion(model):
    T = tl.generate(model, [("a person walks forward", 5), ("a person waves both hands", 4)],
                    seed=0)
    assert T.method == "native" and T.frames == 180
    (a0, b0), (a1, b1) = T.ranges
    first = np.linalg.norm(T.root[b0 - 1, [0, 2]] - T.root[a0, [0, 2]])
    second = np.linalg.norm(T.root[b1 - 1, [0, 2]] - T.root[a1, [0, 2]])
    assert first > 90 and second < first / 2, (first, second)
    step = np.linalg.norm(np.diff(T.root, axis=0), axis=1)
    assert step[b0 - 1] < 20  # cm per frame at the boundary: no jump
