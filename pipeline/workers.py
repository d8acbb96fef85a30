# SPDX-License-Identifier: GPL-3.0-or-later
"""Worker processes that never outlive the process that started them (bpy-free).

A batch run with ``--workers N`` starts N child processes. If the parent dies without a
chance to clean up (SIGKILL, the OOM killer, a farm manager killing one pid), its workers must
die too, or they go on writing files and manifests nobody reads. Two mechanisms, both set up
by the worker itself with :func:`die_with_parent` as it starts:

* Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment its
  parent exits (set after ``exec``, so it holds; checked against the parent's pid right after,
  so a parent that died before the call is noticed too).
* Everywhere else, and as a fallback: a daemon thread that polls ``os.getppid()``; when the
  parent is gone the worker is re-parented and the thread kills it.

The parent side, :func:`stop`, ends the workers it started when it leaves early (an error,
Ctrl-C, SIGTERM turned into an exception by the caller).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time

__all__ = ["die_with_parent", "set_parent_death_signal", "stop"]

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL if hasattr(signal, "SIGKILL") else 9
                            ) -> bool:
    """Linux: ask the kernel to send ``sig`` to this process when its parent exits. Returns
    whether it was set (False on other systems or without libc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die() -> None:
    """End this process at once: its parent is gone, nothing of it is wanted any more (an
    item being made is redone by the next run, which reads only what was recorded)."""
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)  # no SIGKILL (Windows)


def _watch(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    _die()


def die_with_parent(parent_pid: int, *, interval: float = 0.25,
                    pdeathsig: bool = True) -> threading.Thread:
    """Call first thing in a worker: it dies when the process ``parent_pid`` (its parent)
    does. Returns the watchdog thread (a daemon)."""
    parent_pid = int(parent_pid)
    if pdeathsig:
        set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was set
        _die()
    t = threading.Thread(target=_watch, args=(parent_pid, float(interval)),
                         name="sparse-motion-parent-watch", daemon=True)
    t.start()
    return t


def stop(procs, timeout: float = 5.0) -> None:
    """Terminate the still running processes of ``procs`` (``subprocess.Popen``), kill those
    that do not end within ``timeout`` seconds, and reap them all."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.terminate()
    deadline = time.monotonic() + timeout
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
