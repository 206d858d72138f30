#!/bin/sh
# Runs every libFuzzer target of a fuzz build for a few seconds each, starting
# from its seed corpus (copied, so the committed corpus is not modified).
# Fails if any target finds a crash, leak or sanitizer report.
set -eu
BUILD=$1
SECS=${2:-20}
status=0
for t in tests/fuzz/*/; do
  name=$(basename "$t")
  bin="$BUILD/fuzz_$name"
  [ -x "$bin" ] || { echo "fuzz.sh: $bin missing" >&2; exit 1; }
  work=$(mktemp -d)
  cp -r "$t/corpus/." "$work/" 2>/dev/null || true
  echo "fuzz.sh: $name for ${SECS}s"
  if "$bin" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/" "$work" > "$work.log" 2>&1; then
    tail -5 "$work.log"
  else
    echo "fuzz.sh: $name FAILED; its output:" >&2
    tail -60 "$work.log" >&2
    ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null >&2 || true
    status=1
  fi
  rm -rf "$work" "$work.log"
done
exit $status
