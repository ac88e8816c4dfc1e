#!/usr/bin/env bash
# buf breaking: compare protos/ with the previous commit of main.
# Skipped (with a line saying so) when that commit has no protos yet.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=node_modules/.bin/buf
if ! git rev-parse --verify -q HEAD~1 >/dev/null || ! git cat-file -e HEAD~1:protos/buf.yaml 2>/dev/null; then
  echo "buf breaking: no protos in the previous commit; nothing to compare"
  exit 0
fi
"$BUF" breaking protos --against ".git#ref=HEAD~1,subdir=protos"
echo "buf breaking: no breaking changes against HEAD~1"
