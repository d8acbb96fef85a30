# SPDX-License-Identifier: GPL-3.0-or-later
"""Model inference for Sparse Motion (bpy-free).

Runs the shipped ONNX model packages under ``models/`` with onnxruntime; imports only
numpy, onnxruntime and tokenizers (bundled as wheels), never torch, and never downloads.

- ``text_encoder``: ``TextEncoder`` turns captions into L2-normalised 384-d embeddings
  (all-MiniLM-L6-v2, package ``models/text-minilm-l6``).
- ``errors``: ``ModelPackageError`` for missing or corrupt model packages.
"""
