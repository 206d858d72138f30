#!/bin/sh
# Runs every libFuzzer target of a fuzz build for a few seconds each, starting
# from its seed corpus (copied, so the committed corpus is not modified).
set -eu
BUILD=$1
SECS=${2:-20}
for t in tests/fuzz/*/; do
  name=$(basename "$t")
  bin="$BUILD/fuzz_$name"
  [ -x "$bin" ] || { echo "fuzz.sh: $bin missing" >&2; exit 1; }
  work=$(mktemp -d)
  cp -r "$t/corpus/." "$work/" 2>/dev/null || true
  echo "fuzz.sh: $name for ${SECS}s"
  "$bin" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 "$work" 2>&1 | tail -5
  rm -rf "$work"
done
