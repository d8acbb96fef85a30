# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from sparse_motion.keyframes import metrics


def test_joint_errors_known_values():
    a = np.zeros((2, 2, 3))
    b = np.zeros((2, 2, 3))
    b[0, 0] = [3, 4, 0]  # 5
    b[1, 1] = [0, 0, 1]  # 1
    s = metrics.joint_errors(a, b)
    assert s.max == 5.0
    assert s.mean == pytest.approx(6 / 4)
    assert s.p95 == pytest.approx(np.percentile([5, 0, 0, 1], 95))
    np.testing.assert_allclose(metrics.frame_errors(a, b), [5, 1])
    np.testing.assert_allclose(metrics.frame_errors(a, b, "mean"), [2.5, 0.5])
    assert s.as_dict() == {"max": s.max, "p95": s.p95, "mean": s.mean}


def test_joint_errors_validation_and_empty():
    with pytest.raises(ValueError):
        metrics.joint_errors(np.zeros((2, 3, 3)), np.zeros((2, 2, 3)))
    s = metrics.stats_from_distances(np.zeros((0, 4)))
    assert (s.max, s.p95, s.mean) == (0.0, 0.0, 0.0)
