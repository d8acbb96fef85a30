# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the extension folder importable as the package ``sparse_motion`` outside Blender.

The repository root *is* the extension package (Blender loads it as
``bl_ext.<repo>.sparse_motion``). Tests, benchmarks and training scripts load it under the
plain name ``sparse_motion`` so that the relative imports inside it work. The package's
``__init__`` imports nothing from bpy at import time, so the bpy-free core loads anywhere.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "sparse_motion"


def load():
    """Import the extension as ``sparse_motion`` (idempotent) and return the module."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(
        NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module


def script_argv(argv=None) -> list:
    """A script's own arguments: after ``--`` when run as ``blender --python SCRIPT -- ARGS``,
    else ``sys.argv[1:]`` (the bpy module)."""
    argv = sys.argv if argv is None else argv
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def run_script(main) -> None:
    """Run ``main(script_argv())`` and exit with its return code (None: 0); an error meant
    for the user (``SparseMotionError``) is printed as ``error: …`` and exits 1."""
    from sparse_motion.errors import SparseMotionError

    try:
        code = main(script_argv())
    except SparseMotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code or 0)
