# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the extension's panels live: the 3D viewport's N-panel, tab "Motion"."""

MAIN_PANEL = "SPARSEMOTION_PT_main"


class MotionTab:
    """Mixin for every panel of the tab; sub-panels add ``bl_parent_id = MAIN_PANEL``."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Motion"
