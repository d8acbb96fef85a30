# SPDX-License-Identifier: GPL-3.0-or-later
"""Variations of one reference motion, numpy only (no bpy, no torch).

* :mod:`.genmm` -- the training-free GenMM baseline (generative motion matching, SIGGRAPH 2023).
* :mod:`.metrics` -- the one-to-many evaluation metrics used by MotionDreamer / SinMDM / GANimator
  (coverage, global/local diversity, inter/intra diversity, harmonic mean).
"""
