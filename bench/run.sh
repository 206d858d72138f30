#!/bin/sh
# bench/run.sh BUILD [--quick] [--keep] — `make bench`: starts a fresh rilld
# from BUILD on a free loopback port, runs `rill perf` scenarios against it and
# prints one table (throughput, latency, CPU per GB on both sides, peak RSS).
# The work is done by bench/run.py (Debian's python3); see its top comment.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
[ $# -gt 0 ] && shift
exec /usr/bin/python3 "$here/run.py" "$build" "$@"
