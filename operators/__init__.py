# SPDX-License-Identifier: GPL-3.0-or-later
from . import bvh, fill, generate, reduce_keyframes, retarget, timeline, variations

_modules = (generate, timeline, fill, variations, reduce_keyframes, bvh, retarget)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
