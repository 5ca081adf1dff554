#!/usr/bin/env bash
# `make test` on fresh clones of two commits, one after the other: set-up timed apart from the tests.
#
#     bash benchmarks/make_test_time.sh BEFORE AFTER > benchmarks/results/make_test_time.json
#
# Each commit is cloned from this repository into a temporary folder with ../shared beside it (as CI does),
# `make setup` is timed, then `make lint test-fast test-slow` with CI=true. Prints one JSON object.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seconds() { local start=$(date +%s.%N); "$@" > "$work/log" 2>&1 || { tail -20 "$work/log" >&2; exit 1; }; echo "$(date +%s.%N) - $start" | bc; }
echo "{"
for rev in "$@"; do
  dir="$work/$rev"; mkdir -p "$dir"; cp -r "$repo/../shared" "$dir/"
  git clone -q "$repo" "$dir/main" && git -C "$dir/main" checkout -q "$rev"
  commit=$(git -C "$dir/main" rev-parse --short HEAD)
  setup=$(cd "$dir/main" && seconds make setup)
  tests=$(cd "$dir/main" && seconds env CI=true make lint test-fast test-slow)
  counts=$(grep -E "passed|failed" "$work/log" | tr '\n' ';' | sed 's/"//g')
  sep=$([ "$rev" = "${@: -1}" ] && echo "" || echo ",")
  echo "  \"$rev\": {\"commit\": \"$commit\", \"setup_s\": $setup, \"tests_s\": $tests, \"pytest\": \"$counts\"}$sep"
done
echo "}"
