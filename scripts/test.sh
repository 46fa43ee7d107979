#!/usr/bin/env bash
# Install what the tests need (into .venv) and run the test suite.
#   scripts/test.sh            fast suite (what CI runs)
#   scripts/test.sh --slow     only the tests marked slow
#   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh "train,onnx,dev"
# flatc decodes .ms files with the official schema in tests/test_msformat_official_schema.py.
if ! command -v flatc >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing flatbuffers-compiler (flatc) for the official-schema checks"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flatbuffers-compiler; } \
    >/tmp/flatc-install.log 2>&1 || echo "[test] flatc install failed (see /tmp/flatc-install.log); those tests will skip"
fi
# The official MindSpore Lite tools' stand-ins (tests/official_fixtures.py): built here so CI always
# tries; a failed build is printed now and again in pytest's summary, and only those tests skip.
if [ -z "${MSLITE_STANDIN_BIN:-}" ] && [ -f ../shared/mslite/build.sh ]; then
  if bin=$(bash ../shared/mslite/build.sh 2>/tmp/mslite-build.log | tail -n 1) && [ -x "$bin/benchmark" ]; then
    export MSLITE_STANDIN_BIN="$bin"
    echo "[test] official MindSpore Lite stand-ins: $bin"
  else
    export MSLITE_BUILD_ERROR="build.sh failed: $(tail -n 3 /tmp/mslite-build.log | tr '\n' ' ')"
    echo "[test] WARNING: $MSLITE_BUILD_ERROR; the official-tool tests will skip" >&2
  fi
fi
marker="not slow"
if [ "${1:-}" = "--slow" ]; then marker="slow"; shift; fi
set +e
python -m pytest -m "$marker" -p no:cacheprovider -rs "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "ERROR: pytest collected no tests (exit 5); refusing to pass." >&2
  exit 1
fi
exit "$rc"
