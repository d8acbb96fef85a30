# SPDX-License-Identifier: GPL-3.0-or-later
"""The bpy-free keyframe engine: dense per-frame channel values → sparse Bezier keys.

Modules (import what you need; this package imports nothing itself):

* :mod:`.continuity` — quaternion sign and Euler wrap/branch continuity before reduction.
* :mod:`.vw` — Visvalingam–Whyatt significance of every frame of a whole N-D trajectory.
* :mod:`.bezier` — Blender-equivalent evaluation of Bezier segments under the one-third handle
  rule, and least-squares handle fits ('FREE' per segment, 'ALIGNED' C¹).
* :mod:`.reduce` — :func:`reduce_keys`, the reducer (synchronised keys, errors in cm).
* :mod:`.optimal` — the dynamic-programming floor for benchmarks.
* :mod:`.metrics` — joint position error statistics.
* :mod:`.rig` — forward kinematics of Blender rigs (supplies ``points_fn``).
"""
