#!/usr/bin/env bash
# One command to check everything: format + lint, types, buf lint, buf breaking, generated-code drift.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/.bin

echo "== biome (format + lint, warnings are errors)"
"$bin/biome" ci --error-on-warnings .

echo "== tsc"
"$bin/tsc" -p .

echo "== buf lint"
"$bin/buf" lint

echo "== buf breaking (against main)"
if git rev-parse --verify -q main >/dev/null && git cat-file -e main:buf.yaml 2>/dev/null; then
  "$bin/buf" breaking --against ".git#branch=main"
else
  echo "no proto on main yet: skipped"
fi

echo "== generated code drift"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PATH="$PWD/$bin:$PATH" "$bin/buf" generate -o "$tmp"
if ! diff -r "$tmp/src/gen" src/gen; then
  echo "src/gen differs from 'npm run generate': regenerate and commit" >&2
  exit 1
fi
echo "check: all passed"
