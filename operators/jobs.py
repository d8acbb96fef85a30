# SPDX-License-Identifier: GPL-3.0-or-later
"""Model work off the UI thread: a :class:`Job` (worker thread with progress and cancel) and
:class:`JobOperator`, the modal half shared by the operators that run one (Generate Motion,
Make Variations): a timer updates the progress shown in the panel and the window's progress
indicator, Esc cancels, and the result is applied on the main thread (one undo step)."""
from __future__ import annotations

import sys
import threading

import bpy

from ..errors import Cancelled, SparseMotionError
from .reporting import poll_problem, reports_user_errors, run_and_report


class Job:
    """One piece of model work (a generation, variations) on a worker thread: ``progress``
    (0..1), ``status``, ``cancel()``, ``done``; afterwards its result in ``generation``, or
    ``error`` (or ``cancelled``)."""

    def __init__(self, work):
        self._work = work
        self._cancel = threading.Event()
        self.progress = 0.0
        self.status = "starting"
        self.generation = None
        self.error = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name="sparse-motion-worker",
                                       daemon=True)

    def start(self) -> "Job":
        self.thread.start()
        return self

    def _progress(self, fraction, status):
        self.progress = float(fraction)
        self.status = status

    def _run(self):
        try:
            self.generation = self._work(self._progress, self._cancel.is_set)
        except Cancelled:
            self.cancelled = True
        except BaseException as exc:  # reported on the main thread
            self.error = exc

    def cancel(self):
        self._cancel.set()
        self.status = "cancelling"

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def wait(self, timeout=None):
        self.thread.join(timeout)
        return self.done


def redraw(context):
    """Redraw the 3D viewports (the N-panel shows the progress)."""
    screen = context.screen
    if screen is None:
        return
    for area in screen.areas:
        if area.type == "VIEW_3D":
            area.tag_redraw()


class JobOperator:
    """Mixin for a modal operator whose work runs on a :class:`Job`. ``invoke`` calls
    :meth:`start_job` (and keeps the job where the panel finds it); ``job_label`` names the
    work in the reports.

    An operator that defines :meth:`prepare_job` gets ``execute`` (blocking: headless,
    scripts) and ``invoke`` (the job, kept as its module's ``current_job``; headless it
    blocks too) from here."""

    job_label = "Work"

    def prepare_job(self, context):
        """Main thread: the checks (a SparseMotionError: reported, nothing changed), then
        ``(work, apply)``: ``work(progress, cancel)`` runs the model (on the worker thread),
        ``apply(result)`` writes it (main thread, one undo step)."""
        raise NotImplementedError

    def execute(self, context):
        def blocking():
            work, apply = self.prepare_job(context)
            return apply(work(None, None))

        return run_and_report(self, blocking)

    @reports_user_errors
    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        work, apply = self.prepare_job(context)
        sys.modules[type(self).__module__].current_job = self.start_job(context, work, apply)
        return {"RUNNING_MODAL"}

    def start_job(self, context, work, apply) -> Job:
        """Start ``work(progress, cancel)`` on a worker thread; ``apply(result)`` runs on the
        main thread when it is done. Returns the job; ``invoke`` returns RUNNING_MODAL."""
        self._job = Job(work).start()
        self._apply = apply
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        return self._job

    def _finish(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        redraw(context)

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        context.window_manager.progress_update(int(100 * job.progress))
        redraw(context)
        if not job.done:
            return {"RUNNING_MODAL"}
        self._finish(context)
        if job.cancelled:
            self.report({"INFO"}, f"{self.job_label} cancelled: nothing was changed")
            return {"CANCELLED"}
        if job.error is not None:
            if isinstance(job.error, SparseMotionError):
                self.report({"ERROR"}, str(job.error))
            else:
                self.report({"ERROR"}, f"{self.job_label} failed: {type(job.error).__name__}: "
                                       f"{job.error}")
            return {"CANCELLED"}
        return run_and_report(self, lambda: self._apply(job.generation))

    def cancel(self, context):  # Blender is closing the window while the job runs
        self._job.cancel()
        self._finish(context)


# --------------------------------------------------------------------------- job modules
# An operator module that runs jobs (Generate Motion, Make Variations, Fill Between) keeps its
# running job in a module global ``current_job`` (the panel shows its progress) and has
# ``running()``; these make the rest of it: the Cancel operator and register/unregister.


def cancel_operator(module_name: str, idname: str, description: str, not_running: str):
    """The Cancel operator of the job module ``module_name``: greyed out with ``not_running``
    while no job runs; cancels ``current_job`` (nothing is written)."""

    def module():
        return sys.modules[module_name]

    def poll(cls, context):
        return poll_problem(cls, None if module().running() else not_running)

    def execute(self, context):
        module().current_job.cancel()
        return {"FINISHED"}

    name = "SPARSEMOTION_OT_" + idname.split(".", 1)[1]
    return type(name, (bpy.types.Operator,), {
        "__doc__": description, "bl_idname": idname, "bl_label": "Cancel",
        "bl_description": description, "bl_options": {"INTERNAL"},
        "poll": classmethod(poll), "execute": execute})


def job_module_registration(module_name: str, classes, menus=()):
    """``(register, unregister)`` for a job module: its ``classes``, each ``(add, remove,
    entry)`` of ``menus``; unregistering cancels the running job first."""
    register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)

    def register():
        register_classes()
        for add, _remove, entry in menus:
            add(entry)

    def unregister():
        for _add, remove, entry in menus:
            remove(entry)
        job = sys.modules[module_name].current_job
        if job is not None:
            job.cancel()
        unregister_classes()

    return register, unregister
