# SPDX-License-Identifier: GPL-3.0-or-later
"""Pipeline tools (bpy-free): batch prompts files, shards, manifests."""
