# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way operators explain a greyed-out button, run work and tell the user about it."""
from ..errors import SparseMotionError


def run_and_report(operator, work):
    """Call ``work()``; a SparseMotionError becomes an ERROR report and CANCELLED (nothing was
    changed), otherwise the result's warnings and ``message()`` are reported."""
    try:
        result = work()
    except SparseMotionError as exc:
        operator.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    for warning in getattr(result, "warnings", ()):
        operator.report({"WARNING"}, warning)
    operator.report({"INFO"}, result.message())
    return {"FINISHED"}


def poll_problem(operator_cls, problem):
    """Poll result for a problem text (None = can run): greyed-out buttons say why."""
    if problem:
        operator_cls.poll_message_set(problem)
        return False
    return True
