# SPDX-License-Identifier: GPL-3.0-or-later
"""Sparse Motion: AI-generated human motion as sparse, editable keyframes.

This file only registers. The bpy-free core (``keyframes``, ``motion``, ``inference``) never
imports bpy, so it can be imported and tested outside Blender; the Blender layer
(``blender``, ``operators``, ``panels``, ``preferences``) is imported on registration.

A plain script that imports ``bpy``, registers the extension and ends must exit by itself:
the ``bpy`` module (4.5) hangs forever in its C++ static destructors, and 4.2 can crash there,
when Python classes are still registered at interpreter exit. So registration also registers
an ``atexit`` hook that unregisters (Python runs it before ``bpy``'s own exit hook, which was
registered first); ``unregister()`` removes the hook again. In Blender itself the extension is
disabled at quit through ``unregister()`` as usual.
"""
import atexit

_modules = ()


def register():
    global _modules
    from . import preferences, properties, operators, panels

    _modules = (preferences, properties, operators, panels)
    for module in _modules:
        module.register()
    atexit.register(_unregister_at_exit)
    _set_cache_dir()


def _set_cache_dir():
    """Label embeddings ("Understood as", grounding) are kept in the extension's user folder
    (Blender 4.2+ extensions); as a plain package the core's default stays."""
    import bpy
    from pathlib import Path

    from .inference import understand

    try:
        understand.cache_dir = Path(bpy.utils.extension_path_user(__package__, path="cache",
                                                                  create=True))
    except (ValueError, AttributeError, OSError):
        pass


def unregister():
    global _modules
    atexit.unregister(_unregister_at_exit)
    for module in reversed(_modules):
        module.unregister()
    _modules = ()
    from .blender import generate, variations

    generate.release_models()  # the models' memory goes with the extension
    variations.release_models()


def _unregister_at_exit():
    if _modules:
        unregister()
