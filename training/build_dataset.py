# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the text-to-motion training dataset from the Bandai Namco Research Motion zips.

    .venv/bin/python training/build_dataset.py --data ../shared/data/bandai-namco \\
        --out ~/.cache/sparse_motion/dataset-v1

Reads the zips in place (nothing is unpacked) and writes features.npy, clips.json, stats.npz
and meta.json to --out (see sparse_motion.motion.dataset and docs/motion-representation.md).
--limit N builds a cross-section of N clips for a quick check.

Data: Bandai Namco Research Motion Dataset, Bandai Namco Research Inc., CC BY-NC 4.0;
anything trained on it is for non-commercial use only and must credit it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import devimport  # noqa: E402

devimport.load()
from sparse_motion.motion import canonical, dataset  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "bandai-namco"),
                    help="folder with the Bandai-Namco-Research-Motiondataset-*.zip files")
    ap.add_argument("--out", default=str(dataset.DEFAULT_OUT),
                    help="output folder (default %(default)s)")
    ap.add_argument("--fps", type=float, default=canonical.FPS,
                    help="frame rate of the features (default %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="build only N clips (quick check)")
    ap.add_argument("--captions-per-clip", type=int, default=dataset.CAPTIONS_PER_CLIP)
    args = ap.parse_args(argv)
    out = Path(args.out).expanduser().resolve()
    if out == ROOT or ROOT in out.parents:
        ap.error(f"--out {out} is inside the repository; cache derived data outside it")
    try:
        meta = dataset.build_dataset(args.data, out, fps=args.fps, limit=args.limit,
                                     captions_per_clip=args.captions_per_clip)
    except dataset.DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"fps {meta['fps']:g}, feature dim {meta['feature_dim']}, "
          f"{meta['num_clips']} clips, {meta['total_frames']} frames")
    for s in dataset.SPLITS:
        print(f"  {s:5s} {meta['split_counts'][s]:5d} clips {meta['split_frames'][s]:7d} frames "
              f"{len(meta['split_contents'][s])} contents")
    print(f"sources: {meta['sources']}")
    print(f"build time {meta['build_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
