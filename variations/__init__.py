# SPDX-License-Identifier: GPL-3.0-or-later
"""Variations of one reference motion; no bpy.

* :mod:`.channels` -- an action's curves (any skeleton) ↔ a (T, D) feature array (numpy).
* :mod:`.motiondreamer` -- MotionDreamer (VQ tokenizer + sliding-window masked transformer),
  trained on the one reference (imports torch; import it only where torch is wanted).
* :mod:`.genmm` -- the training-free GenMM baseline (generative motion matching, SIGGRAPH 2023).
* :mod:`.metrics` -- the one-to-many evaluation metrics used by MotionDreamer / SinMDM / GANimator
  (coverage, global/local diversity, inter/intra diversity, harmonic mean).
"""
