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
    "pair_captions",
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

# Subjects without a style ("the character ..."), and nouns that a style adjective can qualify.
_GENERIC = ("a person", "someone", "the person", "a character", "the character", "a figure")
_NOUNS = ("person", "man", "woman", "character", "figure", "guy")

# Verb phrases in the base form (imperative: "jog forward"); the third person ("jogs
# forward") and the gerund ("jogging forward") are derived by _third / _gerund. Right-side
# variants are built with mirror_text so that mirroring a caption gives a caption of the
# mirrored label. Kept distinct between neighbours: raising a hand never says "wave", dash
# always says how fast, a one-hand goodbye never says "both".
_ACTIONS = {
    "walk": ("walk forward", "walk straight ahead", "walk forward at a steady pace",
             "walk in a straight line", "take a walk forward", "stroll forward",
             "stride forward", "amble ahead", "trudge forward", "march forward",
             "pace forward", "step forward at walking speed", "wander ahead",
             "walk along", "saunter forward", "plod ahead"),
    "run": ("run forward", "run straight ahead", "jog forward", "run in a straight line",
            "jog along", "run at a steady pace", "go for a run", "trot forward",
            "lope forward", "run at a moderate pace", "jog ahead at an easy pace",
            "break into a jog", "run along"),
    "dash": ("dash forward", "sprint forward at full speed", "break into a sprint",
             "dash ahead as fast as possible", "sprint flat out", "bolt forward",
             "race ahead at top speed", "rush forward as fast as possible",
             "charge forward at full speed", "tear off at full speed", "sprint all out",
             "make a mad dash forward", "run as fast as possible"),
    "walk-back": ("walk backward", "walk backwards", "step backward several times",
                  "back up step by step", "retreat backwards", "reverse slowly",
                  "move backward on foot", "step back", "back off step by step",
                  "walk in reverse"),
    "walk-left": ("walk forward, drifting to the left", "walk diagonally forward to the left",
                  "walk ahead while veering to the left", "walk forward and to the left",
                  "drift left while walking", "walk at an angle to the left",
                  "veer left while walking forward", "stroll diagonally to the left",
                  "walk toward the front left", "angle left while walking"),
    "walk-turn-left": ("walk and turn left", "walk forward and then turn to the left",
                       "make a left turn while walking", "walk in a curve to the left",
                       "turn left while walking", "walk around a corner to the left",
                       "walk and swing round to the left", "curve to the left on foot",
                       "walk and take a left", "change direction to the left while walking",
                       "stroll forward and turn left"),
    "bow": ("bow", "bow politely", "bend forward in a bow", "give a bow", "take a bow",
            "bow deeply", "bow from the waist", "make a polite bow", "bow in greeting",
            "lean forward in a respectful bow", "bow the head and upper body"),
    "bye": ("wave goodbye with one hand", "wave a hand to say goodbye",
            "say goodbye with a wave of the hand", "wave farewell with one hand",
            "bid farewell with one hand", "wave one hand in farewell",
            "say bye with a single hand", "give a one-handed goodbye wave",
            "see someone off with a wave of one hand"),
    "byebye": ("wave goodbye with both hands", "wave both hands to say goodbye",
               "say goodbye, waving both hands", "wave farewell with both arms",
               "bid farewell with both hands", "wave both arms in farewell",
               "say bye-bye with both hands", "give a two-handed goodbye wave",
               "see someone off waving both hands"),
    "guide": ("gesture to show someone the way", "point the way with an open hand",
              "guide someone with a sweeping hand gesture", "show the way",
              "direct someone with an open palm", "usher someone along",
              "indicate the direction with an arm", "lead the way with a hand gesture",
              "motion someone to go ahead", "show someone where to go"),
    "respond": ("raise a hand to answer", "respond by raising a hand", "raise a hand in reply",
                "answer with a raised hand", "put a hand up to respond",
                "acknowledge with a raised hand", "reply with a quick hand gesture",
                "react with a lifted hand"),
    "call": ("call out to someone", "call someone over", "call to someone with a gesture",
             "beckon someone over", "shout to get someone's attention",
             "hail someone from afar", "cup the hands and call out",
             "summon someone with a beckoning gesture", "yell to someone",
             "call for someone to come", "gesture for someone to come closer"),
    "punch": ("punch the air", "throw a series of punches",
              "box with quick punches", "throw a punch", "jab", "throw jabs and hooks",
              "throw a hook", "throw an uppercut", "box",
              "strike with the fists", "hit with a fist", "swing a fist",
              "punch forward", "shadowbox", "throw a one-two combination"),
    "kick": ("kick", "throw a series of kicks", "kick out with the legs",
             "perform several kicks", "kick the air", "throw a kick", "kick forward",
             "do a front kick", "do a roundhouse kick", "strike with the foot",
             "kick high", "deliver a kick", "swing a leg in a kick"),
    "slash": ("slash with a sword", "swing a sword with both hands",
              "slash with an imaginary blade", "cut through the air with a sword",
              "swing a sword", "cut with a sword", "slash", "strike with a blade",
              "swing a katana", "hack with a sword", "slice with a sword",
              "make sword cuts", "slash diagonally with a blade", "wield a sword",
              "chop downward with a sword"),
    "dance-long": ("dance", "perform a long dance", "dance for a long while",
                   "perform a long dance routine", "dance around", "bust some moves",
                   "dance to the music", "groove to a beat", "do a dance routine",
                   "move to the rhythm", "boogie", "perform a dance"),
    "dance-short": ("dance", "perform a short dance", "dance a short routine",
                    "do a brief dance", "dance around", "bust a quick move",
                    "dance to the music", "groove to a beat", "do a quick dance",
                    "move to the rhythm", "boogie", "perform a dance"),
    "wave-both-hands": ("wave both hands", "wave with both hands", "wave both hands in the air",
                        "raise both arms and wave", "wave both arms",
                        "wave both hands side to side", "wave hello with both hands",
                        "wave enthusiastically with both arms", "flap both hands in a wave",
                        "give a big two-handed wave", "wave both arms overhead"),
    "wave-left-hand": ("wave the left hand", "wave with the left hand",
                       "wave the left hand side to side", "wave the left arm in the air",
                       "wave hello with the left hand", "give a wave with the left hand",
                       "wave the left hand back and forth", "greet someone with a left-hand wave",
                       "wave a left hand at someone"),
    "raise-up-both-hands": ("raise both hands", "raise both hands up high",
                            "put both hands up in the air", "lift both arms above the head",
                            "hold both hands up", "throw both arms up", "hoist both arms",
                            "reach up with both hands", "lift both hands overhead",
                            "stretch both arms up", "hold both arms up high"),
    "raise-up-left-hand": ("raise the left hand", "raise the left hand up high",
                           "put the left hand up", "lift the left arm above the head",
                           "hold the left hand up", "hoist the left arm", "stick the left hand up",
                           "reach up with the left hand", "lift the left hand overhead",
                           "stretch the left arm up", "hold the left arm up high"),
}
for _c in [c for c in _ACTIONS if "left" in c.split("-")]:
    _ACTIONS[mirror_label(_c)] = tuple(mirror_text(p) for p in _ACTIONS[_c])

# Nouns for "a <style adjective> <noun>" and "<noun> by <subject>" shapes.
_ACTION_NOUNS = {
    "walk": ("walk", "stroll", "walk forward", "march"),
    "run": ("run", "jog", "run forward", "jog forward"),
    "dash": ("sprint", "dash", "full-speed sprint", "dash forward"),
    "walk-back": ("walk backward", "backward walk", "retreat on foot"),
    "walk-left": ("walk to the left", "diagonal walk to the left", "leftward drift"),
    "walk-turn-left": ("left turn while walking", "walk with a left turn", "walking turn to the left"),
    "bow": ("polite bow", "deep bow"),
    "bye": ("one-handed goodbye wave", "goodbye wave with one hand", "farewell wave with one hand"),
    "byebye": ("two-handed goodbye wave", "goodbye wave with both hands", "farewell wave with both arms"),
    "guide": ("guiding gesture", "gesture showing the way", "way-pointing gesture"),
    "respond": ("raised hand in reply", "hand raised to answer", "answering hand gesture"),
    "call": ("call to someone", "beckoning call", "shout to someone"),
    "punch": ("punch", "jab", "series of punches", "punching combo", "hook punch"),
    "kick": ("front kick", "series of kicks", "roundhouse kick"),
    "slash": ("sword slash", "sword swing", "blade strike", "slashing attack"),
    "dance-long": ("long dance", "dance routine"),
    "dance-short": ("short dance", "quick dance"),
    "wave-both-hands": ("wave with both hands", "two-handed wave", "big wave with both arms"),
    "wave-left-hand": ("left-hand wave", "left-handed wave"),
    "raise-up-both-hands": ("raising of both hands", "both arms raised overhead", "two-armed raise"),
    "raise-up-left-hand": ("raising of the left hand", "left arm raised overhead", "left-hand raise"),
}
for _c in [c for c in _ACTION_NOUNS if "left" in c.split("-")]:
    _ACTION_NOUNS[mirror_label(_c)] = tuple(mirror_text(p) for p in _ACTION_NOUNS[_c])

# Optional detail clauses per content ("..., arms swinging at the sides.").
_DETAILS = {
    "walk": ("arms swinging at the sides", "for several steps", "one foot after the other"),
    "run": ("arms pumping", "feet pounding the ground", "at a steady running pace"),
    "dash": ("arms pumping hard", "legs driving hard", "at top speed"),
    "walk-back": ("facing forward the whole time", "without turning around"),
    "walk-left": ("heading to the front left",),
    "walk-turn-left": ("changing direction to the left",),
    "bow": ("bending at the waist",),
    "bye": ("with a single hand",),
    "byebye": ("with both arms",),
    "guide": ("with an open palm",),
    "respond": ("as if answering a question",),
    "call": ("trying to get attention",),
    "punch": ("fists up in a guard", "with both fists"),
    "kick": ("leg extended", "balancing on one leg"),
    "slash": ("gripping an invisible blade", "with a two-handed grip"),
    "dance-long": ("to a rhythm",),
    "dance-short": ("to a rhythm",),
    "wave-both-hands": ("arms high over the head",),
    "wave-left-hand": ("the other arm at rest",),
    "raise-up-both-hands": ("arms straight up",),
    "raise-up-left-hand": ("the other arm at rest",),
}
for _c in [c for c in _DETAILS if "left" in c.split("-")]:
    _DETAILS[mirror_label(_c)] = tuple(mirror_text(p) for p in _DETAILS[_c])

# Per style: adjectives (for subjects and nouns), styled subjects, manners (after the verb
# phrase: adverbs and phrases), leads (sentence openers).
_STYLES = {
    "normal": ((), (), ("in a normal way", "in an ordinary manner", "casually",
                        "in a relaxed, natural way", "naturally", "normally"), ()),
    "happy": (("happy", "cheerful", "joyful", "glad", "delighted"),
              ("a happy person",),
              ("happily", "cheerfully", "in a happy mood", "looking happy and cheerful",
               "joyfully", "gleefully", "with a spring in the step"),
              ("In a cheerful mood", "Feeling happy", "Full of joy")),
    "sad": (("sad", "unhappy", "gloomy", "sorrowful", "depressed", "miserable"),
            ("a sad person",),
            ("sadly", "in a sad, gloomy way", "looking dejected", "with drooping shoulders",
             "mournfully", "glumly", "sorrowfully", "with the head hanging low"),
            ("Feeling sad", "Looking downcast", "Heartbroken")),
    "angry": (("angry", "furious", "irritated", "enraged", "mad", "annoyed"),
              ("an angry person",),
              ("angrily", "in an angry way", "looking furious", "full of anger", "furiously",
               "aggressively", "in a rage"),
              ("In a fit of anger", "Clearly angry", "Seething with rage")),
    "proud": (("proud", "confident", "dignified", "self-assured", "haughty"),
              ("a proud person",),
              ("proudly", "with the chest held high", "in a proud, dignified manner",
               "confidently", "haughtily", "with the head held high"),
              ("With great pride", "Chest out and head high")),
    "not-confident": (("timid", "insecure", "unconfident", "shy", "nervous", "hesitant"),
                      ("a timid person",),
                      ("timidly", "without confidence", "hesitantly and shyly",
                       "in an unsure way", "nervously", "shyly", "hesitantly",
                       "with little self-confidence"),
                      ("Lacking confidence", "Shy and unsure")),
    "masculinity": (("masculine", "macho", "manly", "tough"),
                    ("a macho man", "a tough guy"),
                    ("in a masculine way", "with a manly, macho attitude",
                     "in a strong, masculine manner", "in a macho way", "manfully"),
                    ("With a macho attitude",)),
    "masculine": (("masculine", "manly", "burly", "rugged"),
                  ("a manly man",),
                  ("in a masculine way", "in a manly manner", "with a masculine bearing",
                   "like a tough man"),
                  ("With a masculine bearing",)),
    "feminine": (("feminine", "graceful", "elegant", "dainty", "ladylike"),
                 ("a feminine woman", "a graceful lady"),
                 ("in a feminine way", "gracefully and femininely", "with feminine elegance",
                  "gracefully", "elegantly", "daintily"),
                 ("With feminine grace",)),
    "childish": (("childish", "childlike", "playful", "little", "young"),
                 ("a child", "a kid", "a little boy", "a little girl", "a toddler"),
                 ("like a child", "in a childish way", "playfully, like a little kid",
                  "childishly", "playfully", "like a kid"),
                 ("Like a little child",)),
    "old": (("old", "elderly", "aged", "frail", "senior"),
            ("a senior", "an old man", "an old woman", "a grandpa", "a grandma"),
            ("like an old person", "slowly, like someone elderly",
             "with the stiffness of old age", "stiffly, like an old man", "frailly",
             "with an old person's stiff gait"),
            ("Stiff with age",)),
    "elderly": (("elderly", "old", "aged", "frail", "senior"),
                ("a senior citizen", "an old man", "an old woman", "a grandpa", "a grandma"),
                ("like an elderly person", "slowly and carefully, like an old person",
                 "with the caution of old age", "stiffly, like an old man", "frailly",
                 "with an old person's stiff gait"),
                ("Slow with age",)),
    "tired": (("tired", "weary", "worn-out", "sleepy", "fatigued"),
              ("a tired person",),
              ("tiredly", "wearily", "looking tired", "as if worn out", "sluggishly",
               "lethargically", "drowsily"),
              ("Worn out", "Feeling tired")),
    "exhausted": (("exhausted", "worn-out", "drained", "spent", "weary"),
                  ("an exhausted person",),
                  ("in an exhausted way", "with an exhausted look", "as if completely exhausted",
                   "wearily, out of energy", "exhaustedly", "barely able to keep going",
                   "dragging the feet"),
                  ("Completely exhausted", "Out of energy", "Running on empty")),
    "active": (("energetic", "lively", "active", "dynamic", "vigorous", "peppy"),
               ("an active person",),
               ("energetically", "full of energy", "in a lively, active way",
                "with lots of energy", "vigorously", "dynamically", "briskly"),
               ("Full of energy", "Bursting with energy")),
    "youthful": (("young", "youthful", "teenage", "spry"),
                 ("a teenager", "a young man", "a young woman"),
                 ("youthfully", "with youthful energy", "in a young, lively way",
                  "with a youthful bounce", "like a teenager"),
                 ("Young and lively",)),
    "musical": (("theatrical", "musical", "dramatic", "showy"),
                ("a musical performer", "a theatrical performer", "a stage actor",
                 "a Broadway performer"),
                ("theatrically, like in a musical", "in an exaggerated, stage-musical style",
                 "as if performing in a musical", "theatrically", "dramatically",
                 "with showy, theatrical flair"),
                ("Like an actor in a musical", "With theatrical flair")),
    "giant": (("giant", "huge", "heavy", "lumbering", "hulking", "massive"),
              ("a giant", "a huge, heavy giant", "an ogre", "a troll"),
              ("like a giant", "with heavy, lumbering movements", "like a huge, heavy giant",
               "heavily", "ponderously", "with huge, heavy steps"),
              ("Like a giant", "Heavy and lumbering")),
    "chimpira": (("thuggish", "cocky", "swaggering", "delinquent", "rowdy"),
                 ("a thug", "a street punk", "a delinquent", "a gangster", "a hoodlum",
                  "a yakuza wannabe"),
                 ("like a thug", "with a swaggering, thuggish attitude",
                  "like a cocky street punk", "cockily", "with a swagger",
                  "like a gangster"),
                 ("Like a swaggering thug",)),
}

assert set(_ACTIONS) == set(ALL_CONTENTS), sorted(set(ALL_CONTENTS) ^ set(_ACTIONS))
assert set(_ACTION_NOUNS) == set(ALL_CONTENTS), sorted(set(ALL_CONTENTS) ^ set(_ACTION_NOUNS))
assert set(_DETAILS) == set(ALL_CONTENTS), sorted(set(ALL_CONTENTS) ^ set(_DETAILS))
assert set(_STYLES) == set(ALL_STYLES), sorted(set(ALL_STYLES) ^ set(_STYLES))

# ------------------------------------------------------------------ verb forms

_DOUBLE = {"run", "jog", "trot", "step", "hop", "stop", "cut", "put", "chop", "drop", "bob",
           "skip", "shrug", "jab", "grab", "hit", "sit", "swim", "slip", "plod", "clap",
           "flap", "dig", "get", "cup"}
_IRREGULAR_3RD = {"go": "goes", "do": "does", "be": "is", "have": "has", "box": "boxes"}


# second verbs of "walk and turn left" (conjugated too: "walks and turns left")
_AND_VERBS = ("turn", "wave", "call", "swing", "take")


def _conjugate(base: str, form) -> str:
    out = form(base)
    for v in _AND_VERBS:
        out = re.sub(rf"\band {v}\b", lambda m: "and " + form(v), out)
    return out


def _third(base: str) -> str:
    """Third person singular of a base verb phrase ("jog forward" -> "jogs forward")."""
    return _conjugate(base, _third1)


def _gerund(base: str) -> str:
    """Gerund of a base verb phrase ("jog forward" -> "jogging forward")."""
    return _conjugate(base, _gerund1)


def _third1(base: str) -> str:
    verb, _, rest = base.partition(" ")
    if verb in _IRREGULAR_3RD:
        v = _IRREGULAR_3RD[verb]
    elif re.search(r"(s|sh|ch|x|z|o)$", verb):
        v = verb + "es"
    elif re.search(r"[^aeiou]y$", verb):
        v = verb[:-1] + "ies"
    else:
        v = verb + "s"
    return f"{v} {rest}".strip()


def _gerund1(base: str) -> str:
    verb, _, rest = base.partition(" ")
    if verb in _DOUBLE:
        v = verb + verb[-1] + "ing"
    elif verb.endswith("ie"):
        v = verb[:-2] + "ying"
    elif verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and verb != "be":
        v = verb[:-1] + "ing"
    else:
        v = verb + "ing"
    return f"{v} {rest}".strip()


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# British / American spellings and common misspellings: a caption containing the key also
# appears with the value (bounded: one rewrite per caption, see _spellings).
_SPELLINGS = (
    ("toward", "towards"), ("backward", "backwards"), ("forward", "forwards"),
    ("gray", "grey"), ("theatrically", "theatricaly"), ("energetically", "energeticaly"),
    ("goodbye", "good-bye"), ("tired", "tierd"), ("exhausted", "exausted"),
    ("elderly", "elderley"), ("gracefully", "gracefuly"), ("waves", "wavs"),
    ("raises", "rasies"), ("punches", "punchs"), ("sword", "sowrd"), ("angrily", "angrilly"),
    ("happily", "happly"), ("proudly", "proudley"), ("walks", "wlaks"), ("runs", "runns"),
    ("sprints", "sprnts"), ("dances", "dacnes"), ("kicks", "kciks"), ("bows", "bowes"),
)


def _sentence(s: str) -> str:
    s = " ".join(s.split())
    return s[:1].upper() + s[1:] + "."


def _check_labels(content, style):
    if content not in _ACTIONS:
        raise ValueError(f"unknown content label {content!r}; known: {', '.join(ALL_CONTENTS)}")
    if style not in _STYLES:
        raise ValueError(f"unknown style label {style!r}; known: {', '.join(ALL_STYLES)}")


def _pick(seq, i, k):
    """``k`` items of ``seq`` starting at ``i`` (cyclic): a bounded, deterministic rotation
    that pairs every verb with every subject or manner across the verbs of a content."""
    if not seq:
        return ()
    return tuple(seq[(i + j) % len(seq)] for j in range(min(k, len(seq))))


def _variants(content: str, style: str) -> set:
    adjs, extra_subjects, manners, leads = _STYLES[style]
    styled = tuple(f"{_article(a)} {a} {n}" for a in adjs for n in _NOUNS) + extra_subjects
    out = set()
    acts = _ACTIONS[content]
    details = _DETAILS[content]
    for i, base in enumerate(acts):
        act = _third(base)
        ger = _gerund(base)
        # subject first: "An elderly man jogs forward." (the plain sentence for normal style)
        for subj in _pick(styled, 3 * i, 6) if styled else _GENERIC:
            out.add(_sentence(f"{subj} {act}"))
        for g in _pick(_GENERIC, i, 3):
            for man in _pick(manners, i, 4):
                out.add(_sentence(f"{g} {act}, {man}"))
                if "," not in act and "," not in man:
                    out.add(_sentence(f"{g} {act} {man}"))
            for lead in _pick(leads, i, 2):
                out.add(_sentence(f"{lead}, {g} {act}"))
        # imperative: "Jog forward wearily." / "Wearily, jog forward."
        for man in _pick(manners, 2 * i, 3):
            out.add(_sentence(f"{base} {man}") if "," not in base else
                    _sentence(f"{base}, {man}"))
        for subj in _pick(styled, 5 * i + 1, 2):
            out.add(_sentence(f"{base} like {subj}"))
        if not styled and " " in base:  # "Jog forward." (never a bare label: "Bow.")
            out.add(_sentence(base))
        # gerund: "An old woman jogging forward." / "The character jogging forward, wearily."
        for subj in _pick(styled, 7 * i + 2, 2) if styled else _pick(_GENERIC, i, 2):
            out.add(_sentence(f"{subj} {ger}"))
        for man in _pick(manners, 3 * i + 1, 1):
            out.add(_sentence(f"{_pick(_GENERIC, i, 1)[0]} {ger}, {man}"))
        # detail clause: "A tired man jogs forward, arms pumping."
        for det in _pick(details, i, 1):
            for subj in _pick(styled, 11 * i + 3, 1) if styled else _pick(_GENERIC, i, 1):
                out.add(_sentence(f"{subj} {act}, {det}"))
            for man in _pick(manners, 5 * i + 2, 1):
                out.add(_sentence(f"{_pick(_GENERIC, i + 2, 1)[0]} {act}, {det}, {man}"))
    # noun phrases: "A weary jog." / "A jog by an old man." / "The character does a sprint."
    for k, noun in enumerate(_ACTION_NOUNS[content]):
        for a in _pick(adjs, k, 3):
            out.add(_sentence(f"{_article(a)} {a} {noun}"))
        for subj in _pick(styled, 4 * k, 2):
            out.add(_sentence(f"{_article(noun)} {noun} by {subj}"))
        for man in _pick(manners, k, 2):
            out.add(_sentence(f"{_article(noun)} {noun}, {man}"))
        if not styled:
            out.add(_sentence(f"{_article(noun)} {noun}"))
    # spelling variants: British/American and common typos (one rewrite per caption)
    for s in list(out):
        for a, b in _SPELLINGS:
            m = re.search(rf"\b{a}\b", s, flags=re.IGNORECASE)
            if m:
                w = m.group(0)
                out.add(s[:m.start()] + (b[:1].upper() + b[1:] if w[:1].isupper() else b)
                        + s[m.end():])
                break
    return out


def caption_variants(content: str, style: str) -> list:
    """Every caption the templates make for ``(content, style)``, sorted, no duplicates.

    Sentence shapes: styled subject first ("An elderly man jogs forward."), generic subject
    with a manner ("The character jogs forward, wearily."), leads ("Worn out, someone jogs
    forward."), imperatives ("Jog forward wearily."), gerunds, detail clauses and noun
    phrases ("A weary jog."), plus British/American spellings and common typos. Verb, subject
    and manner lists are combined by a bounded rotation, so every pair stays at a few hundred
    captions and this enumeration is exhaustive (no random draws)."""
    _check_labels(content, style)
    return sorted(_variants(content, style))


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


def pair_captions(content: str, style: str, n: int) -> list:
    """The fixed draw of ``n`` captions a pair is trained with (``train_smdm.py
    --captions-per-pair``); its first ones are what prompt grounding anchors to."""
    return captions(content, style, n, clip_seed(f"{content}|{style}"))


def clip_captions(clip_id: str, content: str, style: str, n: int = 8) -> list:
    """:func:`captions` seeded by :func:`clip_seed` of ``clip_id``."""
    return captions(content, style, n, clip_seed(clip_id))
