#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Create the development environment(s). Usage: tools/setup.sh [--torch] [4.5|5.0|4.2 ...]
# 4.5 (default) is the main environment in .venv: Blender 4.5 LTS as a module plus the runtime
# and test dependencies (onnxruntime: generation needs no torch). --torch (tools/test.sh passes
# it) adds CPU torch to .venv, to train the tiny models in the tests. Where torch comes from is
# pip's setting: SPARSE_MOTION_TORCH_INDEX (e.g. https://download.pytorch.org/whl/cpu) is
# passed as --extra-index-url; PIP_FIND_LINKS / pip.conf (a local wheel folder) work as usual.
# 5.0 and 4.2 create .venv50 / .venv42 with just what the Blender tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
torch=0
versions=()
for a in "$@"; do
  if [ "$a" = --torch ]; then torch=1; else versions+=("$a"); fi
done
[ ${#versions[@]} -eq 0 ] && versions=(4.5)
for v in "${versions[@]}"; do
  case "$v" in
    4.5) dir=.venv;   pin="bpy==4.5.15" ;;
    5.0) dir=.venv50; pin="bpy==5.0.1" ;;
    4.2) dir=.venv42; pin="bpy==4.2.23" ;;
    *) echo "unknown Blender version $v (4.5, 5.0 or 4.2)" >&2; exit 2 ;;
  esac
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  grep -v '^bpy==' requirements-test.txt > "$dir/requirements.txt"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$pin" -r "$dir/requirements.txt"
  if [ "$v" = 4.5 ] && [ "$torch" = 1 ]; then  # the tests that train and export a tiny model
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "$pin" \
      ${SPARSE_MOTION_TORCH_INDEX:+--extra-index-url "$SPARSE_MOTION_TORCH_INDEX"} \
      -r "$dir/requirements.txt" -r requirements-torch.txt
  fi
  echo "$dir: $("$dir/bin/python" -c 'import bpy; print("Blender", bpy.app.version_string)')"
done
