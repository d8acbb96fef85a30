# SPDX-License-Identifier: GPL-3.0-or-later
"""The prompt-robustness yardstick (issue 13): prompts as animators write them, held out of
every training caption, scored by motion classifiers trained on real motion.

``yardstick_prompts.tsv`` (next to this file) holds 345 hand-written prompts, each labelled
with the content and style it asks for (style ``any`` when it names none) and its kinds
(paraphrase, synonym-verb, typo, spelling, unseen-pair, rare-content, extra-detail,
word-order, terse). :func:`load_prompts` reads and checks it; :func:`training_captions`
enumerates every caption the training pipelines can see (all template variants of every
content x style pair and their left/right mirror images, normalised by :func:`normalize`);
:func:`leaks` lists the prompts found among them (none, tested in ``tests/test_yardstick.py``).

:func:`score` turns the classifier's predictions for the generated motions into the
yardstick's numbers: content accuracy (all prompts; prompts whose content has at least
``min_clips`` clips), content top-3, style accuracy (prompts that name a style), per content
and per kind. ``training/evaluate.py --yardstick`` runs it.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

PROMPTS_FILE = Path(__file__).resolve().parent / "yardstick_prompts.tsv"
KINDS = ("paraphrase", "synonym-verb", "typo", "spelling", "unseen-pair", "rare-content",
         "extra-detail", "word-order", "terse")
ANY_STYLE = "any"
#: "contents with data": at least this many clips in the dataset (the issue's bar)
MIN_CLIPS = 15

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lowercase, every run of non-alphanumerics (punctuation, whitespace) one space, trimmed."""
    return _NON_WORD.sub(" ", str(text).lower()).strip()


def load_prompts(path=PROMPTS_FILE) -> list:
    """The yardstick rows ``{prompt, content, style, kinds}`` (``#`` lines are comments, the
    first other line the header). ValueError on an unknown label or kind, a duplicate prompt
    (after :func:`normalize`) or a malformed line."""
    from sparse_motion.motion import captions as _cap

    rows, seen = [], {}
    header = None
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if header is None:
            header = cells
            if header != ["prompt", "content", "style", "kind"]:
                raise ValueError(f"{path}:{n}: header must be prompt, content, style, kind")
            continue
        if len(cells) != 4:
            raise ValueError(f"{path}:{n}: {len(cells)} columns, expected 4")
        prompt, content, style, kind = (c.strip() for c in cells)
        kinds = tuple(k.strip() for k in kind.split(","))
        if not prompt:
            raise ValueError(f"{path}:{n}: empty prompt")
        if content not in _cap.ALL_CONTENTS:
            raise ValueError(f"{path}:{n}: unknown content {content!r}")
        if style != ANY_STYLE and style not in _cap.ALL_STYLES:
            raise ValueError(f"{path}:{n}: unknown style {style!r}")
        if bad := [k for k in kinds if k not in KINDS]:
            raise ValueError(f"{path}:{n}: unknown kind {bad}; known: {', '.join(KINDS)}")
        key = normalize(prompt)
        if key in seen:
            raise ValueError(f"{path}:{n}: duplicate of line {seen[key]}: {prompt!r}")
        seen[key] = n
        rows.append({"prompt": prompt, "content": content, "style": style, "kinds": kinds})
    return rows


def training_captions() -> set:
    """Every caption the training pipelines draw (normalised): all template variants of every
    content x style pair (the clips' stored captions are a subset) and their mirror images
    (the mirroring augmentation)."""
    from sparse_motion.motion import captions as _cap

    out = set()
    for content in _cap.ALL_CONTENTS:
        for style in _cap.ALL_STYLES:
            for c in _cap.caption_variants(content, style):
                out.add(normalize(c))
                out.add(normalize(_cap.mirror_text(c)))
    return out


def leaks(prompts, captions=None) -> list:
    """The prompts (strings or rows) that occur among ``captions`` (normalised; default
    :func:`training_captions`)."""
    captions = training_captions() if captions is None else captions
    texts = [p["prompt"] if isinstance(p, dict) else p for p in prompts]
    return [t for t in texts if normalize(t) in captions]


# =========================================================================== scoring


def _acc(hits):
    return float(np.mean(hits)) if len(hits) else None


def score(rows, content_probs, style_probs, content_classes, style_classes, style_class_of,
          content_clips: dict, results_per_prompt: int, min_clips: int = MIN_CLIPS) -> dict:
    """Yardstick numbers for the generated motions.

    ``rows``: the prompts; ``content_probs`` ``(P * R, C)`` / ``style_probs`` ``(P * R, S)``:
    the classifiers' probabilities for result r of prompt p at row ``p * R + r``;
    ``style_class_of``: a dataset style label -> its classifier class; ``content_clips``:
    clips per content in the dataset. Every result counts (accuracy over P * R motions).
    """
    R = int(results_per_prompt)
    content_probs = np.asarray(content_probs)
    style_probs = np.asarray(style_probs)
    if content_probs.shape[0] != len(rows) * R or style_probs.shape[0] != len(rows) * R:
        raise ValueError("need results_per_prompt predictions per prompt")
    c_top = np.argsort(-content_probs, axis=1)
    s_pred = style_probs.argmax(1)
    per = []
    for p, row in enumerate(rows):
        want_c = content_classes.index(row["content"]) if row["content"] in content_classes else -1
        want_s = (style_classes.index(style_class_of(row["style"]))
                  if row["style"] != ANY_STYLE else None)
        for r in range(R):
            k = p * R + r
            per.append({
                "prompt": row["prompt"], "content": row["content"], "style": row["style"],
                "kinds": row["kinds"], "result": r,
                "pred_content": content_classes[c_top[k, 0]],
                "content_ok": bool(c_top[k, 0] == want_c),
                "content_top3": bool(want_c in c_top[k, :3]),
                "pred_style": style_classes[s_pred[k]],
                "style_ok": None if want_s is None else bool(s_pred[k] == want_s)})

    def summary(items):
        styled = [x["style_ok"] for x in items if x["style_ok"] is not None]
        return {"n": len(items),
                "content": _acc([x["content_ok"] for x in items]),
                "content_top3": _acc([x["content_top3"] for x in items]),
                "style": _acc(styled), "n_style": len(styled)}

    rich = [x for x in per if content_clips.get(x["content"], 0) >= min_clips]
    out = {"prompts": len(rows), "results_per_prompt": R, "min_clips": int(min_clips),
           "all": summary(per), f"content_ge{min_clips}": summary(rich),
           "unseen_pair": summary([x for x in per if "unseen-pair" in x["kinds"]]),
           "per_content": {c: summary([x for x in per if x["content"] == c])
                           for c in sorted({x["content"] for x in per})},
           "per_kind": {k: summary([x for x in per if k in x["kinds"]])
                        for k in KINDS if any(k in x["kinds"] for x in per)},
           "confusions": {}, "results": per}
    conf = {}
    for x in per:
        if not x["content_ok"]:
            key = f"{x['content']} -> {x['pred_content']}"
            conf[key] = conf.get(key, 0) + 1
    out["confusions"] = dict(sorted(conf.items(), key=lambda kv: -kv[1])[:15])
    return out
