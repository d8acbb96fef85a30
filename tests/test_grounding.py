# SPDX-License-Identifier: GPL-3.0-or-later
"""Prompt grounding (inference/understand.ground, issue 13): a prompt the model understands is
conditioned on a mix of its own embedding and the mean embedding of training captions of its
nearest (content, style); a prompt it does not understand, or grounding off, leaves the
embedding as it is. With the shipped text encoder and sMDM package."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparse_motion.inference import understand as ua
from sparse_motion.inference.package import load_package
from sparse_motion.inference.smdm import SmdmModel
from sparse_motion.motion import captions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pkg():
    ua.clear()
    package = load_package(ROOT / "models" / "smdm-default")
    yield package
    ua.clear()


@pytest.fixture(scope="module")
def enc(pkg):
    return ua.encoder_for(pkg).load()


def test_anchor_is_the_unit_mean_of_training_captions(enc):
    a = ua.anchor_embedding("run", "tired", enc, 8)
    assert a.shape == (384,) and abs(np.linalg.norm(a) - 1.0) < 1e-5
    caps = captions.captions("run", "tired", 8, captions.clip_seed("run|tired"))
    want = enc.encode(caps).mean(0)
    assert np.allclose(a, want / np.linalg.norm(want), atol=1e-5)
    assert ua.anchor_embedding("run", "tired", enc, 8) is a  # cached
    # another pair is another anchor
    assert float(a @ ua.anchor_embedding("bow", "tired", enc, 8)) < 0.95


def test_an_understood_prompt_moves_toward_its_pair(pkg, enc):
    text = "a worn-out guy jogs along"
    emb = enc.encode([text])[0]
    out, u, grounded = ua.ground(text, emb, pkg, enc, {"weight": 0.7, "min_confidence": 0.0})
    assert grounded and u.content == "run"
    anchor = ua.anchor_embedding(u.content, u.style, enc, ua.GROUNDING_DEFAULTS["captions"])
    assert float(out @ anchor) > float(emb @ anchor) + 0.05
    assert abs(np.linalg.norm(out) - np.linalg.norm(emb)) < 1e-4   # the prompt's norm kept
    # weight 1: the anchor itself; weight 0: the prompt itself
    one, _, _ = ua.ground(text, emb, pkg, enc, {"weight": 1.0, "min_confidence": 0.0})
    assert np.allclose(one / np.linalg.norm(one), anchor, atol=1e-5)
    zero, _, g0 = ua.ground(text, emb, pkg, enc, {"weight": 0.0})
    assert not g0 and zero is emb


@pytest.mark.parametrize("text", ["she bakes a chocolate cake in the oven", "人が歩く",
                                  "asdf qwer zxcv"])
def test_a_prompt_not_understood_is_left_alone(pkg, enc, text):
    emb = enc.encode([text])[0]
    out, u, grounded = ua.ground(text, emb, pkg, enc)
    assert not u.understood and not grounded and out is emb


def test_confidence_threshold(pkg, enc):
    text = "a person walks"
    emb = enc.encode([text])[0]
    u = ua.understand(text, pkg)
    _, _, below = ua.ground(text, emb, pkg, enc, {"min_confidence": u.content_confidence + 1e-3})
    _, _, above = ua.ground(text, emb, pkg, enc, {"min_confidence": u.content_confidence - 1e-3})
    assert not below and above


def test_generation_records_understanding_and_follows_the_package_setting(tmp_path, pkg):
    """The package's ``model.grounding`` turns it on; ``grounding=False`` turns it off;
    the result records what the prompt was understood as."""
    dst = tmp_path / "smdm-grounded"
    shutil.copytree(pkg.path, dst, ignore=shutil.ignore_patterns("denoiser.pt"))
    m = json.loads((dst / "manifest.json").read_text())
    m["model"]["grounding"] = {"weight": 1.0, "min_confidence": 0.0}
    m["files"].pop("denoiser.pt", None)
    (dst / "manifest.json").write_text(json.dumps(m))
    shutil.copytree(ROOT / "models" / "text-minilm-l6", tmp_path / "text-minilm-l6")
    model = SmdmModel(dst).load()
    try:
        text = "a woman jogs"
        on = model.generate(text, 20, seed=1, steps=10)
        off = model.generate(text, 20, seed=1, steps=10, grounding=False)
        assert on.grounded and on.understood_as["content"] == "run"
        assert not off.grounded and off.understood_as is None
        assert not np.allclose(on.features, off.features)   # the conditioning changed
        # grounding with weight 1 == conditioning on the anchor: same as a training caption's
        # pair mean, whatever the wording of an understood prompt
        other = model.generate("someone jogging", 20, seed=1, steps=10)
        assert other.understood_as["content"] == "run"
        if other.understood_as["style"] == on.understood_as["style"]:
            assert np.allclose(other.features, on.features, atol=1e-4)
    finally:
        model.release()


def test_label_embeddings_are_kept_on_disk(tmp_path, monkeypatch, pkg, enc):
    """The label phrases are embedded once per encoder and read back in later sessions; a
    broken cache file is ignored."""
    monkeypatch.setenv(ua.CACHE_ENV, str(tmp_path))
    ua.clear()
    labels = ua.known_labels(pkg)
    first = ua._LabelIndex(enc, labels)
    files = sorted((tmp_path / "understand").glob("labels-*.npy"))
    assert len(files) == 2   # contents and styles
    again = ua._LabelIndex(enc, labels)
    assert np.array_equal(first.contents, again.contents)
    assert np.array_equal(first.style_phrases, again.style_phrases)
    files[0].write_bytes(b"not a numpy file")
    third = ua._LabelIndex(enc, labels)
    assert np.allclose(third.contents, first.contents, atol=1e-6)
    ua.clear()
