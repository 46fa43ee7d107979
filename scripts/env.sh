#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install the toolkit with the given extras.
# Sourced by demo.sh and test.sh:  source scripts/env.sh "train,onnx,dev"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOOLKIT_VENV:-$ROOT/.venv}"
EXTRAS="${1:-train,onnx,dev}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.toolkit-installed-$(cat "$ROOT/setup.cfg" "$ROOT/scripts/constraints.txt" | cksum | cut -d' ' -f1)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  echo "[env] installing toolkit[$EXTRAS] (first run downloads MindSpore, about 1 minute)"
  log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -c "$ROOT/scripts/constraints.txt" -e "$ROOT[$EXTRAS]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "[env] installation failed; full log in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1
