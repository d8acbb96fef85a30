# SPDX-License-Identifier: GPL-3.0-or-later
""""Understood as" (inference/understand.py) with the shipped sMDM package and the shipped
text encoder: clear prompts give their content and style, bad prompts (empty, 2,000
characters, other languages, emoji, noise) a clear "not understood" or note, never an error;
results and label embeddings are cached."""
import json
import shutil
from pathlib import Path

import pytest

from sparse_motion.inference import understand as ua
from sparse_motion.inference.package import load_package
from sparse_motion.motion import captions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pkg():
    ua.clear()
    package = load_package(ROOT / "models" / "smdm-default")
    ua.warm(package)
    yield package
    ua.clear()


@pytest.mark.parametrize("prompt, content, style", [
    ("a person runs fast", "run", ("normal", "active")),  # "fast": energetic, or no style
    ("a man runs", "run", "normal"),
    ("waves with the left hand", "wave-left-hand", "normal"),
    ("someone raises the right hand", "raise-up-right-hand", "normal"),
    ("he kicks angrily", "kick", "angry"),
    ("an exhausted man walks forward", "walk", "exhausted"),
    ("a sad woman walks backwards", "walk-back", "sad"),
    ("bows politely", "bow", "normal"),
])
def test_clear_prompts_are_understood(pkg, prompt, content, style):
    u = ua.understand(prompt, pkg)
    styles = style if isinstance(style, tuple) else (style,)
    assert u.understood and u.content == content and u.style in styles, u
    assert u.content_similarity >= ua.CONTENT_MIN
    assert 0.0 < u.content_confidence <= 1.0 and 0.0 < u.style_confidence <= 1.0
    assert u.alternatives[0][0] == content
    assert u.line().startswith(f"Understood as: {content} (") and f", {u.style} (" in u.line()
    pairs = ua.known_labels(ua._package(pkg)).pairs  # the shipped model lists them
    assert pairs and ("kick", "angry") not in pairs and ("run", "normal") in pairs
    if (u.content, u.style) in pairs:
        assert u.note == ""
    else:  # kick has one clip, not angry: said, not silently made up
        assert u.note == (f"no training clip shows {u.content} in the {u.style} style: the "
                          "motion may not show that style")


@pytest.mark.parametrize("prompt, english", [
    ("人が歩く", False),                    # Japanese: "a person walks"
    ("eine Person läuft schnell durch den Park", True),  # German, Latin letters
    ("🏃‍♂️💨🔥", False),
    ("x" * 2000, True),
    ("asdf qwer zxcv", True),
    ("she bakes a chocolate cake in the oven", True),  # no such content in the data
    ("sits down on a chair", True),
])
def test_prompts_it_cannot_read_are_reported_not_understood(pkg, prompt, english):
    u = ua.understand(prompt, pkg)
    assert not u.understood
    assert u.content in captions.ALL_CONTENTS  # the closest one is still named
    assert u.content_similarity < ua.CONTENT_MIN
    assert u.line().startswith(f"Not understood: closest is {u.content} (")
    assert "low confidence" in u.line()
    assert "no content the model knows is close" in u.note
    assert ("English only" in u.note) is (not english)
    m = u.to_manifest()
    assert m["understood"] is False and m["content"] == u.content


def test_empty_prompt_is_a_note(pkg):
    for text in ("", "   ", "\n\t"):
        u = ua.understand(text, pkg)
        assert u.content is None and u.style is None and not u.understood
        assert u.line() == "Empty prompt: type what the motion shows"


def test_a_2000_character_prompt_is_read_from_its_start(pkg):
    text = ("A person runs fast along the beach, " * 60)[:2000]
    assert len(text) == 2000
    u = ua.understand(text, pkg)
    assert u.understood and u.content == "run"
    assert "only its first 64 tokens are read" in u.note


def test_non_strings_are_refused(pkg):
    with pytest.raises(TypeError):
        ua.understand(None, pkg)


def test_manifest_entry(pkg):
    m = ua.understand("an old man walks slowly", pkg).to_manifest()
    assert set(m) == {"content", "content_confidence", "style", "style_confidence",
                      "understood"}
    assert m["content"] == "walk" and m["style"] in ("old", "elderly")
    assert isinstance(m["content_confidence"], float) and 0 < m["style_confidence"] <= 1


def test_results_are_cached_by_prompt_and_model(pkg, tmp_path):
    text = "someone waves both hands happily"
    assert ua.lookup(text, pkg) is None
    assert ua.ready(pkg)
    indexes = len(ua._indexes)
    u = ua.understand(text, pkg)
    assert ua.lookup(text, pkg) is u and ua.understand(text, pkg) is u
    assert u.content == "wave-both-hands" and u.style == "happy"
    assert len(ua._indexes) == indexes  # label embeddings are not computed again
    # another model (here: another version of the same folder's files) has its own entries
    copy = tmp_path / "smdm-default"
    shutil.copytree(pkg.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps(dict(manifest, version="9.9.9")))
    other = load_package(copy)
    assert ua.lookup(text, other) is None
    assert ua.understand(text, other).content == "wave-both-hands"
    assert ua.lookup(text, other) is not u and ua.lookup(text, pkg) is u


def test_known_labels_come_from_the_manifest_else_the_captions(pkg):
    shipped = ua.known_labels(pkg)   # the shipped package lists its training labels
    assert shipped.source == "manifest" and "dance-long" not in shipped.contents
    assert set(shipped.contents) < set(captions.ALL_CONTENTS) and "run" in shipped.contents
    fallback = ua.known_labels({})
    assert fallback.source == "captions"
    assert fallback.contents == captions.ALL_CONTENTS and fallback.styles == captions.ALL_STYLES
    line_c, line_s = fallback.short(4)
    assert line_c == f"{len(captions.ALL_CONTENTS)} contents: bow, bye, byebye, call, … " \
                     f"(+{len(captions.ALL_CONTENTS) - 4})"
    assert line_s.startswith(f"{len(captions.ALL_STYLES)} styles: active, angry")
    manifest = {"labels": {"content": ["walk", "run", "bow"], "style": ["normal", "tired"]}}
    own = ua.known_labels(manifest)
    assert (own.contents, own.styles, own.source) == (("walk", "run", "bow"),
                                                      ("normal", "tired"), "manifest")
    assert ua.known_labels({"training": {"labels": manifest["labels"]}}) == own


def test_only_the_models_labels_are_answers(pkg):
    enc = ua.encoder_for(pkg)
    labels = ua.Labels(("walk", "bow"), ("normal", "tired"), "manifest")
    u = ua._compute("a person runs fast", enc, labels)
    assert u.content == "walk" and u.style == "normal"  # run is not among them
    u = ua._compute("a weary person bows", enc, labels)
    assert (u.content, u.style) == ("bow", "tired")
    assert "no training clip" not in u.note  # pairs not listed: nothing to say


def test_a_pair_without_a_clip_is_said(pkg):
    """Where the data cannot support a request (a content and style no training clip shows
    together), the understanding says so instead of silently making something else."""
    enc = ua.encoder_for(pkg)
    manifest = {"labels": {"content": ["walk", "bow"], "style": ["normal", "tired"],
                           "pairs": [["walk", "normal"], ["walk", "tired"], ["bow", "normal"]]}}
    labels = ua.known_labels(manifest)
    assert ("bow", "tired") not in labels.pairs and ("walk", "tired") in labels.pairs
    u = ua._compute("a weary person bows", enc, labels)
    assert (u.content, u.style) == ("bow", "tired") and u.understood
    assert u.note == ("no training clip shows bow in the tired style: the motion may not "
                      "show that style")
    assert u.to_manifest()["note"] == u.note
    u = ua._compute("a weary person walks", enc, labels)
    assert (u.content, u.style) == ("walk", "tired") and u.note == ""


def test_label_phrases_come_from_the_caption_tables():
    waves = ua.label_phrases("content", "wave-right-hand")
    assert len(waves) == len(ua._captions._ACTIONS["wave-right-hand"])
    assert "A person waves with the right hand." in waves
    assert all(p.startswith("A person ") and p.endswith(".") for p in waves)
    tired = ua.label_phrases("style", "tired")
    assert "wearily" in tired and "a tired person" in tired
    assert ua.label_phrases("content", "jump-high") == ["A person does jump high."]
    assert ua.label_phrases("style", "sleepy") == ["sleepy"]
    with pytest.raises(ValueError):
        ua.label_phrases("colour", "red")


def test_the_named_side_wins():
    """Sentence embeddings hardly tell "right hand" from "left hand": a prompt that names one
    side gets the content of that side when the model knows it; two sides, none, or a
    content without sides leave the nearest content as it is."""
    known = ("wave-left-hand", "wave-right-hand", "wave-both-hands", "walk-turn-left",
             "walk-turn-right", "walk-left", "walk", "raise-up-left-hand")
    sv = ua._side_variant
    assert sv("waves with the right hand", "wave-left-hand", known) == "wave-right-hand"
    assert sv("Right hand waving", "wave-both-hands", known) == "wave-right-hand"
    assert sv("waving, then turns left", "walk-turn-right", known) == "walk-turn-left"
    assert sv("sidesteps to the left", "walk-left", known) == "walk-left"
    # raise-up-right-hand is not among the known contents: left as it is
    assert sv("raises the right arm", "raise-up-left-hand", known) == "raise-up-left-hand"
    assert sv("left then right hand", "wave-left-hand", known) == "wave-left-hand"
    assert sv("waves both hands", "wave-both-hands", known) == "wave-both-hands"
    assert sv("the wave goes leftwards", "wave-right-hand", known) == "wave-right-hand"  # a word
    assert sv("walks to the right", "walk", known) == "walk"


def test_right_hand_prompts_are_understood_on_their_side(pkg):
    for text, want in (("a man waves his right hand", "wave-right-hand"),
                       ("a woman waves with her left hand", "wave-left-hand"),
                       ("he lifts his right hand up high", "raise-up-right-hand")):
        u = ua.understand(text, pkg)
        assert u.content == want, (text, u.content)
        assert u.alternatives[0][0] == want and 0.0 < u.content_confidence <= 1.0


def test_a_named_style_word_wins():
    """A style word of the caption generator's tables names the style, where the sentence
    embedding weighs it less than the action around it (the neutral style won these); typos
    of one letter in long words count, a negated word and words common in other senses do
    not."""
    styles = captions.ALL_STYLES
    sw = ua._style_words
    assert sw("a farewell wave with one hand, sad", styles) == {"sad"}
    assert sw("angry one-handed goodbye", styles) == {"angry"}
    assert sw("exausted jogger", styles) == {"exhausted"}           # a dropped letter
    assert sw("waves like a kid", styles) == {"childish"}
    assert sw("an old man bows", styles) == {"old", "elderly"}      # the embedding picks
    assert sw("he is not happy about it", styles) == frozenset()    # negated
    assert sw("a little bow to the guests", styles) == frozenset()
    assert sw("flails both hands over the head", styles) == frozenset()  # not "frail"
    assert sw("sad and angry", ("sad", "normal")) == {"sad"}        # only the model's styles
    assert ua._near("exausted", "exhausted") and ua._near("agnry", "angry")
    assert not ua._near("flails", "frailly")


def test_named_style_in_understanding(pkg):
    for text, want in (("a farewell wave with one hand, sad", ("sad",)),
                       ("angry one-handed goodbye wave", ("angry",)),
                       ("left hand waves side to side slowly, elderly", ("elderly", "old"))):
        u = ua.understand(text, pkg)
        assert u.style in want, (text, u.style)
        assert 0.0 < u.style_confidence <= 1.0
