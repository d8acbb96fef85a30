#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up everything and run the whole test suite on Blender 4.5 LTS, then the Blender tests
# on 5.0 and 4.2. Works on a clean clone (no ../shared needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --torch 4.5 5.0 4.2
export HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
status=0
echo "== Blender 4.5 LTS: all tests"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@" || status=$?
for v in 50 42; do
  echo "== Blender $v: Blender tests"
  ".venv$v/bin/python" -m pytest tests -q -p no:cacheprovider -m blender "$@" || status=$?
done
exit $status
