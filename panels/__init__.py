# SPDX-License-Identifier: GPL-3.0-or-later
from . import motion_panel, retarget_panel

_modules = (motion_panel, retarget_panel)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
