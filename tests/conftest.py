# SPDX-License-Identifier: GPL-3.0-or-later
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import devimport  # noqa: E402

devimport.load()

# caches the code keeps between sessions (label embeddings) go to a folder of this run, not
# the user's ~/.cache (subprocesses inherit it)
if "SPARSE_MOTION_CACHE" not in os.environ:
    import atexit
    import shutil

    os.environ["SPARSE_MOTION_CACHE"] = tempfile.mkdtemp(prefix="sparse-motion-cache-")
    atexit.register(shutil.rmtree, os.environ["SPARSE_MOTION_CACHE"], ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "blender: needs the bpy module (run on every Blender version)")
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU and a CUDA build of onnxruntime "
                            "or torch; skips with the reason where there is none")


def pytest_collection_modifyitems(items):
    # Tests in modules that import bpy are the Blender tests, run on 4.5, 5.0 and 4.2.
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and "bpy" in vars(module):
            item.add_marker("blender")
