# SPDX-License-Identifier: GPL-3.0-or-later
"""Processes seen from the tests (Linux /proc, else a signal 0): is a pid alive, which pids
are a process's children, waiting for a condition with a deadline."""
from __future__ import annotations

import os
import time
from pathlib import Path


def _stat(pid) -> list:
    """The fields of /proc/PID/stat after the command name (state, ppid, …)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        return _stat(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        if Path("/proc/self/stat").is_file():
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children(pid: int) -> list:
    """The pids whose parent is ``pid`` (Linux)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(_stat(stat.parent.name)[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def cmdline(pid: int) -> list:
    """The arguments of process ``pid`` (Linux; [] once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def wait_for(cond, timeout: float, step: float = 0.05) -> bool:
    """Poll ``cond()`` until it is true or ``timeout`` seconds have passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
