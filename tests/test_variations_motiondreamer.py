# SPDX-License-Identifier: GPL-3.0-or-later
"""MotionDreamer (variations/motiondreamer.py): its parts, a small real training on a synthetic
reference, seeds, the cache, cancelling and bad input. Needs torch (skipped without it)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sparse_motion.variations import motiondreamer as md  # noqa: E402
from sparse_motion.variations.metrics import evaluate_variations  # noqa: E402

# Small enough to train in a few seconds on 2 cores, big enough to learn the toy motion.
TINY = md.Config(hidden=32, latent=16, codes=16, width=32, heads=2, layers=2, vq_steps=100,
                 tr_steps=400, vq_batch=16, tr_batch=16, tr_crop=16, vq_lr=3e-3, tr_lr=3e-3,
                 dropout=0.0)


def reference(frames=160, dim=12, seed=0):
    """A periodic motion with two alternating 'moves' and a little noise, (frames, dim)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0
    phase = np.linspace(0, 2 * np.pi, dim, endpoint=False)
    slow = np.sin(2 * np.pi * 0.5 * t)[:, None]
    x = np.sin(2 * np.pi * 1.3 * t[:, None] + phase) * (1.0 + 0.5 * slow) \
        + 0.3 * np.cos(2 * np.pi * 0.4 * t[:, None] + 2 * phase)
    return (x + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    log = []
    model = md.train(reference(), seed=3, config=TINY, log=log)
    return model, log


def test_sparsemax_is_a_sparse_distribution_with_gradients():
    z = torch.tensor([[2.0, 1.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    p = md.sparsemax(z)
    assert torch.allclose(p.sum(-1), torch.ones(2))
    assert (p >= 0).all() and p[0, 2] == 0.0  # exact zeros, unlike softmax
    assert torch.allclose(p[1], torch.full((4,), 0.25))
    assert torch.allclose(p[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))  # a clear winner takes all
    (p * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_sliding_window_attention_is_local():
    """One SlidAttn layer: a token's output depends only on tokens at most 2W away."""
    torch.manual_seed(0)
    W = 3
    att = md.SlidingWindowAttention(16, 2, W, 2, 0.0).eval()
    for p in att.parameters():  # non-zero biases and queries too
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(1, 30, 16)
    y = att(x)
    x2 = x.clone()
    x2[0, 20] += 5.0
    y2 = att(x2)
    changed = (y2 - y).abs().amax(-1)[0] > 1e-6
    assert not changed[:20 - 2 * W].any() and not changed[20 + 2 * W + 1:].any()
    assert changed[20]
    # any length works, shorter than a window too
    assert att(torch.randn(2, 3, 16)).shape == (2, 3, 16)


def test_training_learns_and_samples_any_length(trained):
    model, log = trained
    tok = [r for r in log if r["stage"] == "tokenizer"]
    loc = [r for r in log if r["stage"] == "local"]
    assert tok[-1]["rec"] < 0.5 * tok[0]["rec"]
    assert np.mean([r["ce"] for r in loc[-3:]]) < loc[0]["ce"]
    ref = reference()
    rec = model.reconstruct(ref)
    assert np.abs(rec - ref).mean() < 0.25 * np.abs(ref - ref.mean(0)).mean()
    for length in (50, 161, 400):
        out = model.sample(length, seed=1)
        assert out.shape == (length, ref.shape[1]) and np.isfinite(out).all()
    # a variation, not a copy, and still made of the reference's material
    gens = [model.sample(len(ref), seed=s) for s in range(3)]
    ev = evaluate_variations(ref, gens, coverage_threshold=1.0)
    assert ev["coverage"] > 0.3
    assert ev["global_diversity"] > 0.0 and ev["inter_diversity"] > 0.0


def test_seed_determinism_and_novelty(trained):
    model, _ = trained
    a, b, c = (model.sample(120, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    close = model.sample(120, seed=7, novelty=0.0)
    assert not np.allclose(close, a)


def test_training_is_reproducible():
    cfg = md.Config(**{**TINY.to_json(), "vq_steps": 20, "tr_steps": 20})
    a = md.train(reference(), seed=1, config=cfg).sample(64, seed=0)
    b = md.train(reference(), seed=1, config=cfg).sample(64, seed=0)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m.pt")
    again = md.MotionDreamer.load(tmp_path / "m.pt")
    np.testing.assert_array_equal(again.sample(90, seed=2), model.sample(90, seed=2))
    assert again.info == model.info
    assert not list(tmp_path.glob("*.tmp*"))


def test_cache_hit_and_unreadable_entry(tmp_path):
    cfg = md.Config(**{**TINY.to_json(), "vq_steps": 20, "tr_steps": 20})
    ref = reference()
    m1, hit1 = md.train_cached(ref, tmp_path, seed=0, config=cfg)
    m2, hit2 = md.train_cached(ref, tmp_path, seed=0, config=cfg)
    assert (hit1, hit2) == (False, True)
    np.testing.assert_array_equal(m1.sample(80, seed=4), m2.sample(80, seed=4))
    # another seed or another reference is another model
    assert md.cache_key(ref, 1, cfg) != md.cache_key(ref, 0, cfg)
    assert md.cache_key(ref[1:], 0, cfg) != md.cache_key(ref, 0, cfg)
    (path,) = tmp_path.glob("motiondreamer-*.pt")
    path.write_bytes(b"not a model")
    _m3, hit3 = md.train_cached(ref, tmp_path, seed=0, config=cfg)
    assert hit3 is False and path.stat().st_size > 1000


def test_cancel_stops_training_and_writes_nothing(tmp_path):
    calls = []

    def progress(fraction, status):
        calls.append((fraction, status))

    with pytest.raises(md.Cancelled):
        md.train_cached(reference(), tmp_path, config=TINY, progress=progress,
                        cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2 and calls[-1][0] < 0.5
    assert "step" in calls[0][1] and "loss" in calls[0][1]
    assert not list(tmp_path.iterdir())


def test_bad_references():
    with pytest.raises(ValueError, match="needs at least 44 frames"):
        md.train(reference(frames=30), config=md.Config())
    bad = reference()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        md.train(bad, config=TINY)
    with pytest.raises(ValueError, match=r"\(T, D\)"):
        md.train(np.zeros(50, np.float32), config=TINY)
    assert md.min_frames() == 44
