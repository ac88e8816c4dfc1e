#!/usr/bin/env bash
# buf breaking: compare protos/ with the base ref: the last release tag (v*),
# or the previous commit when there is none. The same base as the HTTP API's
# guard (python -m tools.openapi_breaking), which picks it.
# Skipped (with a line saying so) when the base has no protos yet.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=node_modules/.bin/buf
PYTHON=${PYTHON:-.venv/bin/python}
if ! BASE=$("$PYTHON" -m tools.openapi_breaking base); then
  echo "buf breaking: no base commit; nothing to compare"
  exit 0
fi
if ! git cat-file -e "$BASE:protos/buf.yaml" 2>/dev/null; then
  echo "buf breaking: no protos in $BASE; nothing to compare"
  exit 0
fi
"$BUF" breaking protos --against ".git#ref=$BASE,subdir=protos"
echo "buf breaking: no breaking changes against $BASE"
