# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks shared by the tests of each shipped text-to-motion package (never retrained in CI):
the package itself, where the registry puts it, and that it follows two plain prompts."""
import numpy as np

from sparse_motion.inference import generation, registry
from sparse_motion.inference.package import load_package
from sparse_motion.motion import canonical as canon

NAMES = canon.SKELETON.names


def check_shipped_package(path, kind: str, script: str, max_bytes: float):
    """The package at ``path`` is intact, smaller than ``max_bytes``, non-commercial like its
    data, and made by ``training/<script>``; returns it."""
    pkg = load_package(path, kind=kind)
    pkg.verify()
    assert sum(f.size for f in pkg.files.values()) < max_bytes
    assert not pkg.commercial_use and "CC-BY-NC-4.0" in str(pkg.training["data"])
    assert pkg.manifest["training"]["command"].startswith(
        f".venv-train/bin/python training/{script}")
    return pkg


def check_a_choice_beside_smdm(kind: str, name: str):
    """``name`` is the registry's default of ``kind``, and sMDM stays Generate Motion's."""
    reg = registry.Registry().scan()
    assert reg.default(kind).name == name
    assert reg.default(tuple(generation.KINDS)).name == "smdm-default"


def travel(q, x):
    """Ground distance (cm) from the first frame's pelvis to the last's."""
    return float(np.linalg.norm(x[-1, [0, 2]] - x[0, [0, 2]]))


def hands_over_head(q, x):
    """Fraction of frames with a hand above the head."""
    p = canon.canonical_forward_kinematics(q, x)
    head = p[:, NAMES.index("Head"), 1]
    hands = np.maximum(p[:, NAMES.index("Hand_L"), 1], p[:, NAMES.index("Hand_R"), 1])
    return float(np.mean(hands > head))


def check_walks_travel_and_hand_raises_stay(model):
    """Walks travel > 90 cm in 5 s; hand raises stay (< 60 cm) with hands over the head."""
    walk = [travel(*model.generate("A person walks forward.", seconds=5, seed=s).motion(0))
            for s in range(3)]
    raise_ = [model.generate("A person raises both hands.", seconds=5, seed=s).motion(0)
              for s in range(3)]
    assert np.median(walk) > 90, walk
    assert np.median([travel(*m) for m in raise_]) < 60
    assert np.median([hands_over_head(*m) for m in raise_]) > 0.1
