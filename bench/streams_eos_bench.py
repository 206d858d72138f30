#!/usr/bin/python3
"""bench/streams_eos_bench.py — the word-count example end to end against
rilld, at_least_once against exactly_once_v2 (issue 5).

Usage: RILL_BUILD=build /usr/bin/python3 bench/streams_eos_bench.py [lines] [repeat]

A fresh rilld from RILL_BUILD on a free loopback port (data under the build
directory). `lines` lines of 1-6 words from 12 (default 100000) are produced
to wordcount-input (4 partitions) first; then example_wordcount
(examples/wordcount.c: split, repartition by word, count in a RocksDB store
with a changelog, wordcount-output) runs with one stream thread under each
guarantee in turn (`repeat` rounds, default 3, guarantees alternating; a new
application.id per run, so every run counts everything from the start).
Measured from its start until its group has committed the end of every
input partition: wall time and the example's CPU seconds (/proc). Both
guarantees run with commit.interval.ms=100 (exactly-once's default) and
also exactly_once_v2 with 1000; the ratio is of medians. Prints a table for
bench/RESULTS.md.
"""
import os
import random
import shutil
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from rilltest import BUILD, Broker, ck_create_topic, ck_producer  # noqa: E402
from streams_e2e import input_ends, run_until_committed  # noqa: E402

PROG = os.path.join(BUILD, "example_wordcount")
WORDS = ["apple", "banana", "cherry", "the", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango", "nut"]


def run(broker, guarantee, commit_ms, n, tmp, ends):
    app_id = "wc-bench-%s-%d-%d" % (guarantee.replace("_", ""), commit_ms, n)
    return run_until_committed(broker, PROG, app_id,
                               ["--state-dir", os.path.join(tmp, "state"), "--commit-ms", str(commit_ms),
                                "--set", "processing.guarantee=" + guarantee, "--set", "default.dsl.store=rocksDB"],
                               os.path.join(tmp, app_id + ".log"), "wordcount-input", ends)


def main():
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    tmp = tempfile.mkdtemp(prefix="streams-eos-", dir=BUILD)
    broker = Broker(data_dir=tmp, props={"group.initial.rebalance.delay.ms": 0})
    broker.start()
    try:
        ck_create_topic(broker, "wordcount-input", partitions=4)
        ck_create_topic(broker, "wordcount-output", partitions=4)
        prod = ck_producer(broker, linger_ms=20, batch_num_messages=10000, queue_buffering_max_messages=500000)
        rnd = random.Random(1)
        words = 0
        for i in range(lines):
            ws = [rnd.choice(WORDS) for _ in range(rnd.randint(1, 6))]
            words += len(ws)
            while True:
                try:
                    prod.produce("wordcount-input", key=str(i).encode(), value=" ".join(ws).encode())
                    break
                except BufferError:
                    prod.poll(0.1)
        assert prod.flush(120) == 0
        ends = input_ends(broker, "wordcount-input")
        modes = [("at_least_once", 100), ("exactly_once_v2", 100), ("exactly_once_v2", 1000)]
        res = {m: [] for m in modes}
        for r in range(repeat):
            for m in (modes if r % 2 == 0 else modes[::-1]):
                res[m].append(run(broker, m[0], m[1], r, tmp, ends))
        print("| guarantee | commit.interval.ms | lines (words) | wall s median (incl. start) | CPU s median "
              "| lines/s (wall) | vs at_least_once (wall) |")
        print("|---|---|---|---|---|---|---|")
        base = statistics.median(w for w, _ in res[modes[0]])
        for m in modes:
            wall = statistics.median(w for w, _ in res[m])
            cpu = statistics.median(c for _, c in res[m])
            print("| %s | %d | %d (%d) | %.2f | %.2f | %.0f | %.2fx |"
                  % (m[0], m[1], lines, words, wall, cpu, lines / wall, base / wall))
        print("runs (wall s, CPU s): %s" % {"%s/%d" % m: [(round(w, 2), round(c, 2)) for w, c in v]
                                           for m, v in res.items()})
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
