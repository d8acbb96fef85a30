# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way operators explain a greyed-out button, run work and tell the user about it."""
import functools

from ..errors import SparseMotionError


def reports_user_errors(method):
    """Decorator for ``execute(self, context)`` / ``invoke(self, context, event)``: a
    SparseMotionError raised inside becomes an ERROR report and CANCELLED (the work raises
    before it changes anything). Blender checks the argument count, so the wrapper keeps it."""
    def call(operator, args):
        try:
            return method(operator, *args)
        except SparseMotionError as exc:
            operator.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

    if method.__code__.co_argcount == 3:
        def wrapper(self, context, event):
            return call(self, (context, event))
    else:
        def wrapper(self, context):
            return call(self, (context,))
    return functools.wraps(method)(wrapper)


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
