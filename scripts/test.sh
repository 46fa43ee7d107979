#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the test suite.
#   scripts/test.sh            fast suite (what CI runs)
#   scripts/test.sh --slow     only the tests marked slow
#   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh "train,onnx,dev"
marker="not slow"
if [ "${1:-}" = "--slow" ]; then marker="slow"; shift; fi
set +e
python -m pytest -m "$marker" -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "ERROR: pytest collected no tests (exit 5); refusing to pass." >&2
  exit 1
fi
exit "$rc"
