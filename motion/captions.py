# SPDX-License-Identifier: GPL-3.0-or-later
"""Natural-language captions for the Bandai Namco content x style labels.

The dataset has no free text, only a content label (``walk-turn-left``) and a style label
(``elderly``) per clip. :func:`caption_variants` turns a pair into every sentence our
templates make (tens to hundreds per pair, e.g. "An elderly person walks and turns left.",
"Someone waves both hands, full of energy."); :func:`captions` picks ``n`` of them
deterministically from a seed, :func:`clip_captions` seeds that from a clip id. No caption is
a bare label: actions are verb phrases, styles are subjects ("a tired person") or manners
("wearily", "like a giant").

:func:`mirror_text` swaps left and right in a sentence (``left-hand``, ``Left``, ``LEFT``,
``leftward``, ``clockwise``/``counterclockwise`` too) for mirrored training samples, and
:func:`mirror_label` does the same for content labels.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np

__all__ = [
    "CONTENT_LABELS",
    "STYLE_LABELS",
    "ALL_CONTENTS",
    "ALL_STYLES",
    "caption_variants",
    "captions",
    "clip_captions",
    "clip_seed",
    "mirror_text",
    "mirror_label",
]

#: Label lists of each dataset (``cfg/content_label.txt`` / ``cfg/style_label.txt``).
CONTENT_LABELS = {
    1: ("walk", "run", "dash", "walk-back", "walk-left", "walk-right", "bow", "bye", "guide",
        "byebye", "respond", "call", "punch", "kick", "slash", "dance-long", "dance-short"),
    2: ("walk", "walk-turn-left", "walk-turn-right", "run", "wave-both-hands", "wave-left-hand",
        "wave-right-hand", "raise-up-both-hands", "raise-up-left-hand", "raise-up-right-hand"),
}
STYLE_LABELS = {
    1: ("normal", "happy", "sad", "angry", "proud", "not-confident", "masculinity", "feminine",
        "childish", "old", "tired", "active", "musical", "giant", "chimpira"),
    2: ("active", "elderly", "exhausted", "feminine", "masculine", "normal", "youthful"),
}
ALL_CONTENTS = tuple(sorted(set(CONTENT_LABELS[1]) | set(CONTENT_LABELS[2])))
ALL_STYLES = tuple(sorted(set(STYLE_LABELS[1]) | set(STYLE_LABELS[2])))

# =========================================================================== mirroring text

_MIRROR_RE = re.compile(
    r"\b(?P<clock>counter-?clockwise|anti-?clockwise|clockwise)\b"
    r"|\b(?P<side>left|right)(?P<suffix>wards?|most|handed|hander|hand)?\b",
    re.IGNORECASE)
# "right" that does not mean a side
_NOT_SIDE = re.compile(r"(?:\ball\s+$)", re.IGNORECASE)
_NOT_SIDE_AFTER = re.compile(r"^\s+(?:away|now)\b", re.IGNORECASE)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _mirror_sub(m: re.Match) -> str:
    text = m.string
    if m.group("clock") is not None:
        w = m.group("clock")
        new = "counterclockwise" if w.lower() == "clockwise" else "clockwise"
        return _match_case(new, w)
    side = m.group("side")
    if side.lower() == "right" and (_NOT_SIDE.search(text[:m.start()])
                                    or _NOT_SIDE_AFTER.match(text[m.end():])):
        return m.group(0)
    new = "right" if side.lower() == "left" else "left"
    return _match_case(new, side) + (m.group("suffix") or "")


def mirror_text(text: str) -> str:
    """Swap left and right in ``text``, keeping case and suffixes.

    ``left``/``right`` as words or word starts (``left-hand``, ``left-handed``, ``leftwards``,
    ``rightmost``), ``Left``, ``LEFT``; ``clockwise`` <-> ``counterclockwise`` (``anti-``
    and ``counter-clockwise`` become ``clockwise``). "all right", "right away" and "right now"
    are left alone. Meant for motion captions, where "left" is a direction, not the past of
    "leave".
    """
    if not isinstance(text, str):
        raise TypeError(f"mirror_text expects a str, got {type(text).__name__}")
    return _MIRROR_RE.sub(_mirror_sub, text)


def mirror_label(content: str) -> str:
    """Content label of the mirrored motion (``wave-left-hand`` -> ``wave-right-hand``)."""
    if not isinstance(content, str):
        raise TypeError(f"mirror_label expects a str, got {type(content).__name__}")
    parts = content.split("-")
    swap = {"left": "right", "right": "left"}
    return "-".join(swap.get(p, p) for p in parts)


# =========================================================================== phrases

_GENERIC = ("a person", "someone", "the person", "a character", "a figure")

# Verb phrases (third person singular). Right-side variants are built with mirror_text so
# that mirroring a caption gives a caption of the mirrored label.
_ACTIONS = {
    "walk": ("walks forward", "walks straight ahead", "walks forward at a steady pace",
             "walks in a straight line", "takes a walk forward"),
    "run": ("runs forward", "runs straight ahead", "jogs forward", "runs in a straight line"),
    "dash": ("dashes forward", "sprints forward at full speed", "breaks into a sprint",
             "dashes ahead as fast as possible"),
    "walk-back": ("walks backward", "walks backwards", "steps backward several times",
                  "backs up step by step"),
    "walk-left": ("walks forward, drifting to the left", "walks diagonally forward to the left",
                  "walks ahead while veering to the left", "walks forward and to the left"),
    "walk-turn-left": ("walks and turns left", "walks forward and then turns to the left",
                       "makes a left turn while walking", "walks in a curve to the left"),
    "bow": ("bows", "bows politely", "bends forward in a bow", "gives a bow"),
    "bye": ("waves goodbye with one hand", "waves a hand to say goodbye",
            "says goodbye with a wave of the hand"),
    "byebye": ("waves goodbye with both hands", "waves both hands to say goodbye",
               "says goodbye, waving both hands"),
    "guide": ("gestures to show someone the way", "points the way with an open hand",
              "guides someone with a sweeping hand gesture"),
    "respond": ("raises a hand to answer", "responds by raising a hand",
                "raises a hand in reply"),
    "call": ("calls out to someone", "calls someone over", "calls to someone with a gesture"),
    "punch": ("throws punches", "punches the air", "throws a series of punches",
              "boxes with quick punches"),
    "kick": ("kicks", "throws a series of kicks", "kicks out with the legs",
             "performs several kicks"),
    "slash": ("slashes with a sword", "swings a sword with both hands",
              "slashes with an imaginary blade", "cuts through the air with a sword"),
    "dance-long": ("dances", "performs a long dance", "dances for a long while",
                   "performs a long dance routine"),
    "dance-short": ("dances", "performs a short dance", "dances a short routine",
                    "does a brief dance"),
    "wave-both-hands": ("waves both hands", "waves with both hands", "waves both hands in the air",
                        "raises both arms and waves"),
    "wave-left-hand": ("waves the left hand", "waves with the left hand",
                       "raises the left hand and waves", "waves the left arm in the air"),
    "raise-up-both-hands": ("raises both hands", "raises both hands up high",
                            "puts both hands up in the air", "lifts both arms above the head"),
    "raise-up-left-hand": ("raises the left hand", "raises the left hand up high",
                           "puts the left hand up", "lifts the left arm above the head"),
}
for _c in [c for c in _ACTIONS if "left" in c.split("-")]:
    _ACTIONS[mirror_label(_c)] = tuple(mirror_text(p) for p in _ACTIONS[_c])


# Per style: styled subjects, manners (after the verb phrase), leads (sentence openers).
_STYLES = {
    "normal": ((), ("in a normal way", "in an ordinary manner", "casually",
                    "in a relaxed, natural way"), ()),
    "happy": (("a happy person", "a cheerful person", "a joyful person"),
              ("happily", "cheerfully", "in a happy mood", "looking happy and cheerful"),
              ("In a cheerful mood", "Feeling happy")),
    "sad": (("a sad person", "an unhappy person", "a gloomy person"),
            ("sadly", "in a sad, gloomy way", "looking dejected", "with drooping shoulders"),
            ("Feeling sad", "Looking downcast")),
    "angry": (("an angry person", "a furious person", "an irritated person"),
              ("angrily", "in an angry way", "looking furious", "full of anger"),
              ("In a fit of anger", "Clearly angry")),
    "proud": (("a proud person", "a proud, confident person"),
              ("proudly", "with the chest held high", "in a proud, dignified manner"),
              ("With great pride", "Chest out and head high")),
    "not-confident": (("a timid person", "an insecure person", "an unconfident person"),
                      ("timidly", "without confidence", "hesitantly and shyly",
                       "in an unsure way"),
                      ("Lacking confidence", "Shy and unsure")),
    "masculinity": (("a masculine person", "a macho person", "a manly figure"),
                    ("in a masculine way", "with a manly, macho attitude",
                     "in a strong, masculine manner"),
                    ("With a macho attitude",)),
    "masculine": (("a masculine person", "a manly person"),
                  ("in a masculine way", "in a manly manner", "with a masculine bearing"),
                  ("With a masculine bearing",)),
    "feminine": (("a feminine person", "a graceful, feminine person"),
                 ("in a feminine way", "gracefully and femininely", "with feminine elegance"),
                 ("With feminine grace",)),
    "childish": (("a child", "a childish person", "a playful kid"),
                 ("like a child", "in a childish way", "playfully, like a little kid"),
                 ("Like a little child",)),
    "old": (("an old person", "an elderly person", "a senior"),
            ("like an old person", "slowly, like someone elderly", "with the stiffness of old age"),
            ("Stiff with age",)),
    "elderly": (("an elderly person", "an old person", "a senior citizen"),
                ("like an elderly person", "slowly and carefully, like an old person",
                 "with the caution of old age"),
                ("Slow with age",)),
    "tired": (("a tired person", "a weary person", "a worn-out person"),
              ("tiredly", "wearily", "looking tired", "as if worn out"),
              ("Worn out", "Feeling tired")),
    "exhausted": (("an exhausted person", "a worn-out person", "a drained person"),
                  ("in an exhausted way", "with an exhausted look", "as if completely exhausted",
                   "wearily, out of energy"),
                  ("Completely exhausted", "Out of energy")),
    "active": (("an energetic person", "a lively person", "an active person"),
               ("energetically", "full of energy", "in a lively, active way",
                "with lots of energy"),
               ("Full of energy", "Bursting with energy")),
    "youthful": (("a young person", "a youthful person"),
                 ("youthfully", "with youthful energy", "in a young, lively way"),
                 ("Young and lively",)),
    "musical": (("a musical performer", "a theatrical performer"),
                ("theatrically, like in a musical", "in an exaggerated, stage-musical style",
                 "as if performing in a musical"),
                ("Like an actor in a musical", "With theatrical flair")),
    "giant": (("a giant", "a huge, heavy giant"),
              ("like a giant", "with heavy, lumbering movements", "like a huge, heavy giant"),
              ("Like a giant", "Heavy and lumbering")),
    "chimpira": (("a thug", "a street punk", "a delinquent"),
                 ("like a thug", "with a swaggering, thuggish attitude",
                  "like a cocky street punk"),
                 ("Like a swaggering thug",)),
}

assert set(_ACTIONS) == set(ALL_CONTENTS), sorted(set(ALL_CONTENTS) ^ set(_ACTIONS))
assert set(_STYLES) == set(ALL_STYLES), sorted(set(ALL_STYLES) ^ set(_STYLES))


def _sentence(s: str) -> str:
    s = " ".join(s.split())
    return s[:1].upper() + s[1:] + "."


def _check_labels(content, style):
    if content not in _ACTIONS:
        raise ValueError(f"unknown content label {content!r}; known: {', '.join(ALL_CONTENTS)}")
    if style not in _STYLES:
        raise ValueError(f"unknown style label {style!r}; known: {', '.join(ALL_STYLES)}")


def caption_variants(content: str, style: str) -> list:
    """Every caption the templates make for ``(content, style)``, sorted, no duplicates."""
    _check_labels(content, style)
    subjects, manners, leads = _STYLES[style]
    out = set()
    for act in _ACTIONS[content]:
        # Normal style: the plain sentence ("A person walks forward.") is a fine caption.
        for subj in subjects or _GENERIC:
            out.add(_sentence(f"{subj} {act}"))
        for g in _GENERIC:
            for man in manners:
                out.add(_sentence(f"{g} {act}, {man}"))
                if "," not in act and "," not in man and not act.endswith("ly"):
                    out.add(_sentence(f"{g} {act} {man}"))
            for lead in leads:
                out.add(_sentence(f"{lead}, {g} {act}"))
    return sorted(out)


def clip_seed(clip_id: str) -> int:
    """A stable 63-bit seed from a clip id (sha256; Python's ``hash`` is salted per run)."""
    return int.from_bytes(hashlib.sha256(str(clip_id).encode()).digest()[:8], "little") >> 1


def captions(content: str, style: str, n: int | None = None, seed: int = 0) -> list:
    """``n`` distinct captions for ``(content, style)`` (all of them if ``n`` is None or
    larger), in an order fixed by ``seed``."""
    allc = caption_variants(content, style)
    order = np.random.default_rng(int(seed)).permutation(len(allc))
    picked = [allc[i] for i in order]
    if n is None:
        return picked
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return picked[:int(n)]


def clip_captions(clip_id: str, content: str, style: str, n: int = 8) -> list:
    """:func:`captions` seeded by :func:`clip_seed` of ``clip_id``."""
    return captions(content, style, n, clip_seed(clip_id))
