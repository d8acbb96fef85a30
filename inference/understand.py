# SPDX-License-Identifier: GPL-3.0-or-later
""""Understood as": what a text-to-motion model will make of a prompt, from its text embedding
alone (bpy-free; the Generate Motion panel and batch manifests show it)::

    u = understand("a tired person walks forward", package)   # package: the sMDM ModelPackage
    u.content, u.content_confidence, u.style, u.style_confidence  # 'walk', 0.4, 'tired', 0.7
    u.line()              # 'Understood as: walk (40 %), tired (70 %) · 12 ms'
    lookup(text, package) # the cached result or None (what a panel's draw calls)

How: each content and style label the model knows (:func:`known_labels`: the manifest's
``labels``, else every label of the caption generator) is described by the caption
generator's own phrase tables (``motion.captions``: a content's verb phrases as "A person
<verb phrase>.", a style's subjects and manners, e.g. "a tired person", "wearily"); the
embeddings (a content's averaged into one unit vector) are computed once per text encoder and
kept in memory. A prompt's embedding is compared with them by cosine
similarity; the confidence is a softmax over the similarities at :data:`TEMPERATURE`.

- Content: the nearest content; when its similarity is under :data:`CONTENT_MIN` the prompt
  is *not understood* (nothing the data has a content for, another language, emoji, noise) and
  the result says so, naming the closest content with "(low confidence)".
- Style: the style whose :data:`STYLE_TOP` best phrases are closest (mean similarity); the
  neutral style (``normal``) stands for "no style asked" and scores at least
  :data:`STYLE_MIN`, so a prompt without a style word reads as normal.

Results are cached by (prompt text, model) — a redraw is a dict lookup; the first prompt
after loading also loads the text encoder and embeds the label phrases (:func:`warm`, about
a second on 2 cores), every new prompt after that is one encoder call (about 10-20 ms, see
``benchmarks/understood_as.py``).
"""
from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..motion import captions as _captions
from .package import ModelPackage, load_package
from .runtime import RuntimeSettings
from .text_encoder import TextEncoder

__all__ = ["CONTENT_MIN", "STYLE_MIN", "TEMPERATURE", "NEUTRAL_STYLE", "Labels",
           "Understanding", "known_labels", "label_phrases", "encoder_for", "understand",
           "lookup", "ready", "warm", "warm_async", "clear", "anchor_embedding", "ground",
           "GROUNDING_DEFAULTS"]

#: Below this cosine similarity of the nearest content the prompt is "not understood".
CONTENT_MIN = 0.35
#: A style word must reach this similarity to count; the neutral style scores at least this.
STYLE_MIN = 0.45
#: A style's score: the mean similarity of its this many best phrases.
STYLE_TOP = 2
#: Softmax temperature over cosine similarities for the confidences.
TEMPERATURE = 0.05
#: The style a prompt without a style word gets.
NEUTRAL_STYLE = "normal"
#: Results kept (prompt x model); the oldest go first.
CACHE_SIZE = 512


@dataclass(frozen=True)
class Labels:
    """The contents and styles a model knows, and where the list comes from
    (``"manifest"`` or ``"captions"``)."""

    contents: tuple
    styles: tuple
    source: str
    pairs: frozenset = frozenset()  # (content, style) with a training clip; empty: not listed

    def short(self, n: int = 8) -> tuple[str, str]:
        """Two short lines for a panel: ``'24 contents: bow, bye, ... '`` and the styles."""
        def one(what, names):
            shown = ", ".join(names[:n]) + (f", … (+{len(names) - n})" if len(names) > n else "")
            return f"{len(names)} {what}: {shown}"
        return one("contents", list(self.contents)), one("styles", list(self.styles))


@dataclass(frozen=True)
class Understanding:
    """What the model makes of one prompt. ``content``/``style`` are the nearest labels (None
    only for an empty prompt); ``understood`` is False when the nearest content is too far."""

    text: str
    content: str | None
    content_confidence: float
    content_similarity: float
    style: str | None
    style_confidence: float
    style_similarity: float
    understood: bool
    note: str = ""
    ms: float = 0.0
    alternatives: tuple = field(default=())  # ((content, confidence), ...) best first

    def line(self) -> str:
        """One line for the panel."""
        if self.content is None:
            return self.note
        if not self.understood:
            return (f"Not understood: closest is {self.content} "
                    f"(similarity {self.content_similarity:.2f}, low confidence)")
        return (f"Understood as: {self.content} ({100 * self.content_confidence:.0f} %), "
                f"{self.style} ({100 * self.style_confidence:.0f} %) · {self.ms:.0f} ms")

    def to_manifest(self) -> dict:
        """The batch manifest's ``understood_as``."""
        out = {"content": self.content, "content_confidence": round(self.content_confidence, 4),
               "style": self.style, "style_confidence": round(self.style_confidence, 4),
               "understood": self.understood}
        if self.note:
            out["note"] = self.note
        return out


# --------------------------------------------------------------------------- labels

def _manifest_of(package) -> dict:
    if isinstance(package, dict):
        return package
    return getattr(package, "manifest", None) or {}


def known_labels(package=None) -> Labels:
    """The labels of ``package`` (a ModelPackage or its manifest): ``labels`` =
    ``{"content": [...], "style": [...]}`` at the top of the manifest or under ``training``;
    else (and for a missing list) every label the caption generator has."""
    m = _manifest_of(package)
    labels = m.get("labels") or (m.get("training") or {}).get("labels") or {}
    contents = tuple(str(c) for c in labels.get("content") or ())
    styles = tuple(str(s) for s in labels.get("style") or ())
    source = "manifest" if contents and styles else "captions"
    pairs = frozenset((str(p[0]), str(p[1])) for p in labels.get("pairs") or ()
                      if source == "manifest")
    return Labels(contents or _captions.ALL_CONTENTS, styles or _captions.ALL_STYLES, source,
                  pairs)


def _phrase(label: str) -> str:
    return label.replace("-", " ")


def label_phrases(kind: str, label: str) -> list:
    """The sentences that describe a label, from the caption generator's phrase tables: a
    content's verb phrases ("A person waves with the left hand."), a style's adjectives,
    subjects and manners ("tired", "a tired person", "wearily"). A label the tables lack: its
    words; tables of an unknown shape: a few of the generator's own captions."""
    if kind not in ("content", "style"):
        raise ValueError(f"kind must be 'content' or 'style', got {kind!r}")
    table = _captions._ACTIONS if kind == "content" else _captions._STYLES
    entry = table.get(label)
    if entry is None:
        return [f"A person does {_phrase(label)}."] if kind == "content" else [_phrase(label)]
    if kind == "content":
        third = getattr(_captions, "_third", None)  # verb phrases in the base form: conjugate
        if all(isinstance(a, str) for a in entry):
            return [f"A person {third(a) if third else a}." for a in entry]
    elif len(entry) in (3, 4) and all(isinstance(t, tuple) for t in entry):
        # (subjects, manners, leads) or (adjectives, subjects, manners, leads)
        words = entry[:3] if len(entry) == 4 else entry[:2]
        out = [w for t in words for w in t]
        if out:
            return out
    # unknown table shape: the generator's own captions (content: plain style; style: walks)
    if kind == "content":
        return _captions.captions(label, NEUTRAL_STYLE, n=8, seed=0)
    return _captions.captions("walk", label, n=8, seed=0)


class _LabelIndex:
    """Label embeddings: per content the unit mean of its phrases' embeddings (rows in label
    order); per style the embeddings of each of its phrases (a style is scored by its
    :data:`STYLE_TOP` best phrases: one style word in a prompt is close to one phrase, not to
    the mean of a long list of them)."""

    def __init__(self, encoder: TextEncoder, labels: Labels):
        self.labels = labels
        emb, sizes = self._embed(encoder, "content", labels.contents)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        means = np.add.reduceat(emb, starts, axis=0) / np.asarray(sizes, np.float32)[:, None]
        self.contents = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        self.style_phrases, sizes = self._embed(encoder, "style", labels.styles)
        self.style_owner = np.repeat(np.arange(len(labels.styles)), sizes)
        self.neutral = labels.styles.index(NEUTRAL_STYLE) if NEUTRAL_STYLE in labels.styles else None

    @staticmethod
    def _embed(encoder, kind, names):
        phrases = [label_phrases(kind, n) for n in names]
        return _encode_cached(encoder, [p for ps in phrases for p in ps]), [len(ps) for ps in phrases]


    def style_scores(self, emb: np.ndarray) -> np.ndarray:
        sims = self.style_phrases @ emb
        out = np.empty(len(self.labels.styles), np.float32)
        for i in range(len(out)):
            s = sims[self.style_owner == i]
            out[i] = np.sort(s)[-STYLE_TOP:].mean()
        return out


#: Where label embeddings are kept between sessions (None: not kept). Set by the Blender
#: layer to the extension's user folder; ``SPARSE_MOTION_CACHE`` overrides; default
#: ``~/.cache/sparse_motion``. Embedding the label phrases takes seconds on a CPU (about 1,000
#: phrases), reading them back milliseconds: the first generation of a session would
#: otherwise wait for it when grounding is on.
CACHE_ENV = "SPARSE_MOTION_CACHE"
cache_dir: Path | None = Path("~/.cache/sparse_motion").expanduser()


def _cache_folder() -> Path | None:
    import os

    env = os.environ.get(CACHE_ENV)
    return Path(env) / "understand" if env else (cache_dir / "understand" if cache_dir else None)


def _encode_cached(encoder: TextEncoder, phrases: list) -> np.ndarray:
    """``encoder.encode(phrases)``, kept on disk by (encoder model, phrases); a cache that
    cannot be read or written is ignored (the embeddings are computed)."""
    import hashlib
    import os

    folder = _cache_folder()
    sha = encoder.manifest["files"]["model.onnx"]["sha256"]
    key = hashlib.sha256(("\n".join([sha, *phrases])).encode("utf-8")).hexdigest()[:24]
    path = None if folder is None else folder / f"labels-{key}.npy"
    if path is not None:
        try:
            emb = np.load(path)
            if emb.shape[0] == len(phrases):
                return emb
        except (OSError, ValueError):
            pass
    emb = encoder.encode(phrases)
    if path is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{key}.{os.getpid()}.npy"
            np.save(tmp, emb)
            os.replace(tmp, path)
        except OSError:
            pass
    return emb


# --------------------------------------------------------------------------- caches

_lock = threading.Lock()  # held only for dict reads and writes
_encoders: dict = {}      # (model key, settings) -> TextEncoder (shared per encoder folder)
_indexes: dict = {}       # (encoder model sha256, Labels) -> _LabelIndex
_results: "OrderedDict" = OrderedDict()  # (text, model key) -> Understanding
_warming: dict = {}       # model key -> Thread


def _package(package) -> ModelPackage:
    if isinstance(package, ModelPackage):
        return package
    if package is None:
        from .registry import get_registry

        return get_registry().default("smdm")
    return load_package(Path(package))


def _model_key(pkg: ModelPackage) -> tuple:
    return (pkg.name, pkg.version, str(pkg.path))


def encoder_for(package, settings: RuntimeSettings | None = None) -> TextEncoder:
    """The text encoder ``package`` was trained with (found and checked as the model itself
    finds it, ``SmdmModel``), one per encoder folder and settings; ``package`` may be a
    ModelPackage, a folder, or None for the default sMDM model."""
    from .smdm import SmdmModel

    pkg = _package(package)
    settings = settings or RuntimeSettings()
    key = (_model_key(pkg), settings)
    with _lock:
        enc = _encoders.get(key)
    if enc is not None:
        return enc
    # SmdmModel._make_text_encoder: the one place that finds and checks a model's text encoder
    # (it loads it: the requirement check reads its manifest). Not under the lock: a panel's
    # draw must never wait for a load on another thread.
    enc = SmdmModel(pkg, settings=settings)._make_text_encoder(pkg)
    with _lock:
        same = next((e for e in _encoders.values()
                     if e.package_dir == enc.package_dir and e.settings == enc.settings), None)
        return _encoders.setdefault(key, same or enc)


def _index(encoder: TextEncoder, labels: Labels) -> _LabelIndex:
    key = (encoder.manifest["files"]["model.onnx"]["sha256"], labels)
    with _lock:
        idx = _indexes.get(key)
    if idx is not None:
        return idx
    idx = _LabelIndex(encoder, labels)  # not under the lock (see encoder_for)
    with _lock:
        return _indexes.setdefault(key, idx)


def _softmax(sims: np.ndarray) -> np.ndarray:
    z = (sims - sims.max()) / TEMPERATURE
    e = np.exp(z)
    return e / e.sum()


def _non_english(text: str) -> bool:
    letters = [ch for ch in text if unicodedata.category(ch)[0] in "LS"]
    if not letters:
        return True
    other = sum(1 for ch in letters if not ("a" <= ch.lower() <= "z"))
    return other > 0.3 * len(letters)


_SIDE_WORDS = {"left": re.compile(r"\bleft\b", re.I), "right": re.compile(r"\bright\b", re.I)}
_HAND = re.compile(r"\b(hand|arm|palm)\b", re.I)


def _side_variant(text: str, content: str, contents) -> str:
    """The side the prompt names, where the text embedding does not tell it: sentence
    embeddings put "waves with the right hand" and "... left hand" almost on one point, so the
    nearest content often has the other side. A prompt that names one side only ("left" or
    "right" as a word) gets the same content on that side, when the model knows it
    (wave-left-hand → wave-right-hand, walk-turn-right → walk-turn-left; a both-hands content
    when the prompt names one hand). Otherwise ``content`` as it is."""
    named = [side for side, rx in _SIDE_WORDS.items() if rx.search(text)]
    if len(named) != 1:
        return content
    side, other = named[0], "right" if named[0] == "left" else "left"
    parts = content.split("-")
    if other in parts:
        cand = "-".join(side if p == other else p for p in parts)
    elif content.endswith("-both-hands") and _HAND.search(text):
        cand = content[:-len("both-hands")] + f"{side}-hand"
    else:
        return content
    return cand if cand in contents else content


#: Nouns of the caption generator's styled subjects that say nothing about style.
_GENERIC_NOUNS = frozenset({"person", "man", "woman", "lady", "guy", "boy", "girl", "citizen",
                            "performer", "actor", "wannabe"})
#: A style word after one of these is not asked for ("not happy", "without energy").
_NEGATIONS = frozenset({"not", "never", "no", "without", "nor", "isnt"})
#: Words of the style tables too common in other senses ("a little wave", "spent a while").
_AMBIGUOUS = frozenset({"little", "spent"})
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
_style_vocab: dict | None = None


def _style_vocabulary() -> dict:
    """``{word: frozenset(styles)}``: the one-word adjectives, adverbs and subject nouns of the
    caption generator's style tables (``motion/captions.py``; "old" names old and elderly,
    "kid" childish), not the words that any subject could have (person, woman, ...)."""
    global _style_vocab
    if _style_vocab is None:
        vocab: dict = {}
        for style, (adjs, subjects, manners, _leads) in _captions._STYLES.items():
            words = [a.lower() for a in adjs + manners if " " not in a]
            nouns = [sub.split()[-1].lower() for sub in subjects]
            nouns = [n for n in nouns if n not in _GENERIC_NOUNS]
            words += nouns + [n + "s" for n in nouns if not n.endswith(("s", "y"))]  # kids
            for w in words:
                if w not in _AMBIGUOUS:
                    vocab.setdefault(w, set()).add(style)
        _style_vocab = {w: frozenset(v) for w, v in vocab.items()}
    return _style_vocab


def _near(a: str, b: str) -> bool:
    """One typo apart: a letter dropped, added, changed or two swapped."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k in range(len(a)) if a[k] != b[k]), len(a))
    return a[i:] == b[i + 1:]


def _style_words(text: str, styles) -> frozenset:
    """The styles ``styles`` (the model's) that the prompt names by a word of the caption
    generator's style tables (:func:`_style_vocabulary`), typos of one letter in words of six
    letters or more included, a negated word ("not happy") excluded. Sentence embeddings
    weigh a trailing "…, sad" or "angry one-handed wave" less than the action around it, and
    the neutral style then wins; a named style word is what the animator asked for."""
    vocab = _style_vocabulary()
    words = _WORD.findall(text.lower())
    found: set = set()
    for k, w in enumerate(words):
        if k > 0 and words[k - 1] in _NEGATIONS:
            continue
        hit = vocab.get(w)
        if hit is None and len(w) >= 6:
            near = [v for v in vocab if len(v) >= 6 and _near(w, v)]
            hit = frozenset().union(*(vocab[v] for v in near)) if near else None
        if hit:
            found |= hit
    return frozenset(found & set(styles))


def _compute(text: str, encoder: TextEncoder, labels: Labels,
             emb: np.ndarray | None = None) -> Understanding:
    t0 = time.perf_counter()
    idx = _index(encoder, labels)
    t0 = time.perf_counter()  # the prompt's own cost: encode + nearest
    if emb is None:
        emb = encoder.encode([text])[0]
    cs = idx.contents @ emb
    ss = idx.style_scores(emb)
    if idx.neutral is not None:
        ss[idx.neutral] = max(ss[idx.neutral], STYLE_MIN)
    cp, sp = _softmax(cs), _softmax(ss)
    order = np.argsort(-cp)
    c, s = int(order[0]), int(np.argmax(sp))
    named = _style_words(text, labels.styles)
    if named and labels.styles[s] not in named:
        # a style the prompt names by its word: the nearest of those (confidence among them)
        pick = np.array([st in named for st in labels.styles])
        sp = _softmax(np.where(pick, ss, -np.inf))
        s = int(np.argmax(sp))
    understood = bool(cs[c] >= CONTENT_MIN)
    side = labels.contents.index(_side_variant(text, labels.contents[c], labels.contents))
    if side != c:  # the named side: it takes the pair's confidence (left and right as one)
        cp = cp.copy()
        cp[side], cp[c] = cp[side] + cp[c], min(cp[side], cp[c])
        order = np.argsort(-cp)
        c = side
    notes = []
    if not understood:
        notes.append("no content the model knows is close to this prompt"
                     + (" (the text encoder reads English only)" if _non_english(text) else
                        " (prompts are read as English)"))
    elif labels.pairs and (labels.contents[c], labels.styles[s]) not in labels.pairs:
        # say so instead of silently making something else (issue 13)
        notes.append(f"no training clip shows {labels.contents[c]} in the {labels.styles[s]} "
                     "style: the motion may not show that style")
    if len(text.split()) > 0.75 * encoder.max_length:
        notes.append(f"long prompt: only its first {encoder.max_length} tokens are read")
    ms = 1000.0 * (time.perf_counter() - t0)
    return Understanding(
        text=text, content=labels.contents[c], content_confidence=float(cp[c]),
        content_similarity=float(cs[c]), style=labels.styles[s],
        style_confidence=float(sp[s]), style_similarity=float(ss[s]), understood=understood,
        note="; ".join(notes), ms=ms,
        alternatives=tuple((labels.contents[i], float(cp[i])) for i in order[:3]))


def _empty(text: str) -> Understanding:
    return Understanding(text=text, content=None, content_confidence=0.0,
                         content_similarity=0.0, style=None, style_confidence=0.0,
                         style_similarity=0.0, understood=False,
                         note="Empty prompt: type what the motion shows")


def lookup(text: str, package) -> Understanding | None:
    """The cached result for ``text`` with ``package`` (a ModelPackage), or None."""
    key = (text, _model_key(package))
    with _lock:
        u = _results.get(key)
        if u is not None:
            _results.move_to_end(key)
        return u


def understand(text: str, package=None, *, encoder: TextEncoder | None = None,
               settings: RuntimeSettings | None = None,
               embedding: np.ndarray | None = None) -> Understanding:
    """What ``package``'s model makes of ``text`` (cached by text and model). Never raises for
    any string: an empty one gives a note; a missing or broken text encoder raises
    ModelPackageError, as generating would."""
    if not isinstance(text, str):
        raise TypeError(f"understand expects a str prompt, got {type(text).__name__}")
    pkg = _package(package)
    hit = lookup(text, pkg)
    if hit is not None:
        return hit
    clean = " ".join(text.split())
    if not clean:
        u = _empty(text)
    else:
        enc = encoder or encoder_for(pkg, settings)
        # the caller's embedding of the same text saves an encoder call (generation has it)
        u = _compute(clean, enc, known_labels(pkg), embedding if clean == text else None)
        if clean != text:
            u = _replace_text(u, text)
    with _lock:
        _results[(text, _model_key(pkg))] = u
        while len(_results) > CACHE_SIZE:
            _results.popitem(last=False)
    return u


def _replace_text(u: Understanding, text: str) -> Understanding:
    from dataclasses import replace

    return replace(u, text=text)


def ready(package, settings: RuntimeSettings | None = None) -> bool:
    """True when a new prompt costs one encoder call: the encoder is loaded and the label
    embeddings are computed."""
    pkg = _package(package)
    settings = settings or RuntimeSettings()
    with _lock:
        enc = _encoders.get((_model_key(pkg), settings))
        if enc is None or enc._session is None:
            return False
        return (enc.manifest["files"]["model.onnx"]["sha256"], known_labels(pkg)) in _indexes


def warm(package=None, settings: RuntimeSettings | None = None) -> None:
    """Load the text encoder and embed the label phrases now (blocking)."""
    pkg = _package(package)
    _index(encoder_for(pkg, settings).load(), known_labels(pkg))


def warm_async(package, settings: RuntimeSettings | None = None) -> threading.Thread:
    """:func:`warm` on a background thread (one per model at a time); errors are kept on
    the thread as ``error``."""
    pkg = _package(package)
    key = _model_key(pkg)
    with _lock:
        th = _warming.get(key)
        if th is not None and th.is_alive():
            return th

        def run():
            try:
                warm(pkg, settings)
            except Exception as exc:  # shown by the caller (the panel)
                th.error = exc

        th = threading.Thread(target=run, name="sparse-motion-understand", daemon=True)
        th.error = None
        _warming[key] = th
        th.start()
        return th


def warming_error(package) -> Exception | None:
    """The error of the last :func:`warm_async` of ``package``, if it failed."""
    key = _model_key(_package(package))
    with _lock:
        th = _warming.get(key)
    return getattr(th, "error", None) if th is not None and not th.is_alive() else None


def clear() -> None:
    """Forget every cached result, label embedding and encoder."""
    with _lock:
        _results.clear()
        _indexes.clear()
        _encoders.clear()
        _anchors.clear()


# --------------------------------------------------------------------------- grounding

#: Prompt grounding (issue 13): a text-to-motion model learned its text conditioning from the
#: caption generator's sentences about (content, style) pairs; an everyday prompt embeds off
#: that manifold and the model follows it poorly, although the prompt's nearest content and
#: style (:func:`understand`) are right far more often. Grounding conditions the model on
#: ``(1 - weight) * prompt + weight * anchor`` (renormalised), the anchor being the mean
#: embedding of ``captions`` training captions of the understood pair — when the content is
#: understood with at least ``min_confidence``; otherwise on the prompt alone. A package sets
#: it in its manifest (``model.grounding``); these are the defaults, tuned on
#: ``training/dev_prompts.tsv`` (never on the yardstick).
GROUNDING_DEFAULTS = {"weight": 0.7, "min_confidence": 0.3, "captions": 16}

_anchors: dict = {}  # (encoder sha256, content, style, n) -> unit (E,) embedding


def anchor_embedding(content: str, style: str, encoder: TextEncoder, n: int = 16) -> np.ndarray:
    """The unit mean embedding of ``n`` training captions of ``(content, style)``: the first
    ``n`` of the draw ``training/train_smdm.py --captions-per-pair`` makes for the pair."""
    key = (encoder.manifest["files"]["model.onnx"]["sha256"], content, style, int(n))
    with _lock:
        e = _anchors.get(key)
    if e is not None:
        return e
    caps = _captions.pair_captions(content, style, int(n))
    e = encoder.encode(caps).astype(np.float32).mean(axis=0)
    e = e / max(float(np.linalg.norm(e)), 1e-12)
    with _lock:
        return _anchors.setdefault(key, e)


def ground(text: str, emb: np.ndarray, package, encoder: TextEncoder,
           settings: dict | None = None) -> tuple[np.ndarray, Understanding, bool]:
    """``(embedding, understanding, grounded)``: the conditioning for ``text`` whose own
    embedding is ``emb`` (see :data:`GROUNDING_DEFAULTS`; ``settings`` overrides them)."""
    g = {**GROUNDING_DEFAULTS, **(settings or {})}
    pkg = _package(package)
    u = understand(text, pkg, encoder=encoder, embedding=emb)
    w = float(g["weight"])
    if (not u.understood or u.content is None or u.content_confidence < float(g["min_confidence"])
            or w <= 0.0):
        return emb, u, False
    anchor = anchor_embedding(u.content, u.style, encoder, int(g["captions"]))
    mixed = (1.0 - w) * np.asarray(emb, np.float32) + w * anchor
    mixed *= float(np.linalg.norm(emb)) / max(float(np.linalg.norm(mixed)), 1e-12)
    return mixed.astype(np.float32), u, True
