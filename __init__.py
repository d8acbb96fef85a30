# SPDX-License-Identifier: GPL-3.0-or-later
"""Sparse Motion: AI-generated human motion as sparse, editable keyframes.

This file only registers. The bpy-free core (``keyframes``, ``motion``, ``inference``) never
imports bpy, so it can be imported and tested outside Blender; the Blender layer
(``blender``, ``operators``, ``panels``, ``preferences``) is imported on registration.
"""

_modules = ()


def register():
    global _modules
    from . import preferences, properties, operators, panels

    _modules = (preferences, properties, operators, panels)
    for module in _modules:
        module.register()


def unregister():
    global _modules
    for module in reversed(_modules):
        module.unregister()
    _modules = ()
