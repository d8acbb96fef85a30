# SPDX-License-Identifier: GPL-3.0-or-later
"""Model inference for Sparse Motion (bpy-free).

Runs the shipped ONNX model packages under ``models/`` with onnxruntime; imports only
numpy, onnxruntime and tokenizers (bundled as wheels), never downloads, and imports torch
only for a model part that needs it (``runtime.load_torch_module``).

- ``text_encoder``: ``TextEncoder`` turns captions into L2-normalised 384-d embeddings
  (all-MiniLM-L6-v2, package ``models/text-minilm-l6``).
- ``evaluator``: ``Evaluator`` embeds motions (257-d features at 20 fps) and captions into a
  joint 256-d space and scores text-to-motion models (package ``models/evaluator``);
  ``Generator`` is the protocol a model is evaluated through, ``NoiseGenerator`` the baseline.
- ``metrics``: FID, R-precision, MM-Dist, diversity, multimodality and the physical metrics
  (foot skating, jitter, ground penetration), numpy only.
- ``package``: the model package format (``load_package``, ``ModelPackage``,
  ``write_manifest``; see ``docs/model-packages.md``).
- ``registry``: the installed packages, one default per kind, and the broken ones.
- ``runtime``: onnxruntime sessions (``RuntimeSettings``: device, threads), cached per process.
- ``errors``: ``ModelPackageError`` for missing or corrupt model packages.
"""
