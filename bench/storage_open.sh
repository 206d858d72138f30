#!/bin/sh
# bench/storage_open.sh — partition open time before/after (bench/storage_open.c).
#
# Usage: bench/storage_open.sh AFTER_BUILD [BEFORE_BUILD] [MIB] [SEG_MIB] [ROUNDS]
# For each build given: writes MIB MiB (default 1024) in SEG_MIB MiB segments
# (default 4) twice, plain records and with transactions, under
# AFTER_BUILD/bench-open (a real disk), then times ROUNDS (default 5) clean
# opens with a cold page cache and ROUNDS with a warm one. For AFTER_BUILD
# also one open after removing every .txnindex and snapshot (the first open
# after an upgrade: everything rebuilt from the segments). Removes its data.
# A BEFORE_BUILD is a build of an older tree with this bench file copied in:
#   git archive main | tar -x -C /tmp/base && cp bench/storage_open.c CMakeLists.txt /tmp/base/...
#   cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=RelWithDebInfo
#   cmake --build /tmp/base/build --target bench_storage_open
set -e
AFTER=$1 BEFORE=$2 MIB=${3:-1024} SEG=${4:-4} ROUNDS=${5:-5}
[ -n "$AFTER" ] || { echo "usage: $0 AFTER_BUILD [BEFORE_BUILD] [MIB] [SEG_MIB] [ROUNDS]" >&2; exit 2; }
DATA=$AFTER/bench-open
rm -rf "$DATA"
mkdir -p "$DATA"
echo "bench: $(date -u '+%Y-%m-%d %H:%M') UTC  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(uname -sr)"
for side in before after; do
    if [ $side = before ]; then B=$BEFORE; else B=$AFTER; fi
    [ -n "$B" ] || continue
    for kind in plain txn; do
        d=$DATA/$side-$kind
        arg=""; [ $kind = txn ] && arg=txn
        echo "== $side $kind ($B)"
        "$B/bench_storage_open" "$d" gen "$MIB" "$SEG" $arg
        "$B/bench_storage_open" "$d" open "$ROUNDS" cold | tail -1
        "$B/bench_storage_open" "$d" open "$ROUNDS" | tail -1
        if [ $side = after ]; then
            rm -f "$d"/bench-0/*.txnindex "$d"/bench-0/*.snapshot
            echo "-- after removing every .txnindex and snapshot (first open after an upgrade):"
            "$B/bench_storage_open" "$d" open 1 cold | tail -1
            "$B/bench_storage_open" "$d" open "$ROUNDS" cold | tail -1
        fi
        rm -rf "$d"
    done
done
rm -rf "$DATA"
