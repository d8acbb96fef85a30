# SPDX-License-Identifier: GPL-3.0-or-later
"""How long "Understood as" takes for a prompt typed into the Generate Motion panel.

With the shipped sMDM package and text encoder (onnxruntime, ``--threads`` intra-op threads):

  cold   the first prompt of a session: load the text encoder, embed the label phrases,
         then the prompt (once per Blender session; the panel does it on a thread)
  new    a prompt not seen before: one text-encoder call + cosine similarities (what the panel
         does in its draw after typing; the bar, issue 13: within 50 ms)
  cached the same prompt again (every redraw): a dict lookup

``new`` is the median (and 90th percentile) over ``--prompts`` distinct prompts of the
prompt-robustness yardstick (``training/yardstick_prompts.tsv``, written the way animators
type). As a side figure it prints how often the text-only nearest content is the content the
yardstick row asks for (all rows), and how often a row is reported "not understood".

Usage: .venv/bin/python benchmarks/understood_as.py [--threads 2] [--prompts 50]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()
sys.path.insert(0, str(ROOT / "training"))

from sparse_motion.inference import understand as ua  # noqa: E402
from sparse_motion.inference.package import load_package  # noqa: E402
from sparse_motion.inference.runtime import RuntimeSettings  # noqa: E402

import yardstick  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "smdm-default"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=50)
    args = ap.parse_args(argv)

    settings = RuntimeSettings(device="CPU", threads=args.threads)
    pkg = load_package(Path(args.model))
    rows = yardstick.load_prompts()
    ua.clear()
    t0 = time.perf_counter()
    first = ua.understand("a person walks forward", pkg, settings=settings)
    cold = time.perf_counter() - t0
    prompts = [r["prompt"] for r in rows[:args.prompts]]
    times = []
    for p in prompts:
        t0 = time.perf_counter()
        ua.understand(p, pkg, settings=settings)
        times.append(1000.0 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    for p in prompts:
        ua.understand(p, pkg, settings=settings)
    cached_us = 1e6 * (time.perf_counter() - t0) / len(prompts)
    right = not_understood = style_right = styled = neutral = 0
    for r in rows:
        u = ua.understand(r["prompt"], pkg, settings=settings)
        right += u.content == r["content"]
        not_understood += not u.understood
        if r["style"] == yardstick.ANY_STYLE:
            neutral += u.style == ua.NEUTRAL_STYLE
        else:
            styled += 1
            style_right += u.style == r["style"]

    times.sort()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"{args.threads} threads, model {pkg.name} {pkg.version}, "
          f"{len(ua.known_labels(pkg).contents)} contents / "
          f"{len(ua.known_labels(pkg).styles)} styles ({ua.known_labels(pkg).source})")
    print(f"cold (encoder + label phrases + 1 prompt): {cold:.2f} s  -> {first.line()}")
    print(f"new prompt: median {statistics.median(times):.1f} ms, "
          f"p90 {times[int(0.9 * (len(times) - 1))]:.1f} ms, max {times[-1]:.1f} ms "
          f"over {len(times)} prompts (bar: 50 ms)")
    print(f"cached prompt: {cached_us:.1f} µs")
    print(f"yardstick ({len(rows)} prompts): nearest content = asked content "
          f"{right / len(rows):.1%}; not understood {not_understood / len(rows):.1%}; "
          f"nearest style = asked style {style_right / styled:.1%} ({styled} prompts with a "
          f"style); prompts without one read as {ua.NEUTRAL_STYLE} "
          f"{neutral / (len(rows) - styled):.1%}")


if __name__ == "__main__":
    main()
