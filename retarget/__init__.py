# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting: canonical motion onto the animator's own rig (bone mapping, rest-pose
alignment, root motion, foot pinning). bpy-free; the Blender side is :mod:`..blender.retarget`.
"""
