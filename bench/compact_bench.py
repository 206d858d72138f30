#!/usr/bin/python3
"""bench/compact_bench.py — log compaction benchmark (issue 4, the cleaner).

Usage: RILL_BUILD=build /usr/bin/python3 bench/compact_bench.py [--records N] [--keys K] [--budget BYTES] [--repeat R]
       [--txn SIZE [--abort-every A]]

Two runs on fresh rillds from RILL_BUILD (default ./build), data under the
build directory (a real disk), the same workload each time: one
confluent-kafka producer (acks=all, linger.ms=5) writes N records of 100-byte
values with keys drawn from K distinct keys into a 1-partition topic with
cleanup.policy=compact, segment.bytes=1 MiB, min.cleanable.dirty.ratio=0.2.

  - "cleaner off": log.cleaner.enable=false;
  - "cleaner on": log.cleaner.enable=true, log.cleaner.backoff.ms=200,
    log.cleaner.dedupe.buffer.size=BUDGET (default 16 MiB).

With --txn SIZE the producer is transactional (transactional.id, acks=all
implied): SIZE records per transaction, every A-th transaction (--abort-every,
default 10; 0: none) aborted, the rest committed; the cleaner then maps the
committed records, removes the aborted ones and the markers it may (S20-S21).

Measured per run: producer records/s and MB/s of values, delivery latency
(produce() to acknowledgement) p50/p99; for the "on" runs the cleaner's
passes during the production (from rilld's log lines): dirty MB cleaned per
second of pass time (bytes of the segments holding the deduplicated range),
bytes read/written, records removed, the key map's size. Off and on runs
alternate (--repeat pairs) and the ratios on/off are medians over the pairs
of one invocation (single runs on this shared machine swing p99 by 2x).
"""
import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import confluent_kafka as ck  # noqa: E402

from rilltest import BUILD, Broker, ck_create_topic  # noqa: E402

PASS_RE = re.compile(r"compacted \[(\d+), (\d+)\): (\d+) segment\(s\), (\d+) -> (\d+) bytes, (\d+) record\(s\) removed "
                     r"\((\d+) aborted\), (\d+) marker\(s\) removed, dirty (\d+) bytes, map (\d+) bytes, (\d+) ms")
# fields of a pass tuple
P_READ, P_WRITTEN, P_REMOVED, P_ABORTED, P_MARKERS, P_DIRTY, P_MAP, P_MS = 3, 4, 5, 6, 7, 8, 9, 10


def run(enable, n, nkeys, budget, workdir, txn=0, abort_every=10):
    props = {"log.cleaner.enable": enable, "log.cleaner.backoff.ms": 200,
             "log.cleaner.dedupe.buffer.size": budget}
    b = Broker(data_dir=tempfile.mkdtemp(prefix="rill-cbench-", dir=workdir), props=props)
    b.start()
    try:
        topic = "cbench"
        ck_create_topic(b, topic, 1, config={"cleanup.policy": "compact", "segment.bytes": str(1 << 20),
                                             "min.cleanable.dirty.ratio": "0.2"})
        conf = {"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5,
                "socket.nagle.disable": True, "queue.buffering.max.messages": 200000}
        if txn:
            conf["transactional.id"] = "cbench-txn"
        p = ck.Producer(conf)
        if txn:
            p.init_transactions(30)
            p.begin_transaction()
        rnd = random.Random(42)
        lat = []
        errors = [0]
        value = b"v" * 100

        def cb(err, msg, t0):
            if err is not None:
                errors[0] += 1
            lat.append(time.perf_counter() - t0)
        start = time.perf_counter()
        for i in range(n):
            if txn and i and i % txn == 0:
                p.flush(120)  # an abort would purge what is still queued
                if abort_every and (i // txn) % abort_every == 0:
                    p.abort_transaction(60)
                else:
                    p.commit_transaction(60)
                p.begin_transaction()
            t0 = time.perf_counter()
            while True:
                try:
                    p.produce(topic, key=b"key-%d" % rnd.randrange(nkeys), value=value,
                              on_delivery=lambda e, m, t0=t0: cb(e, m, t0))
                    break
                except BufferError:
                    p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        p.flush(120)
        if txn:
            p.commit_transaction(60)
        elapsed = time.perf_counter() - start
        lat.sort()
        res = {
            "rate": n / elapsed, "mbs": n * 100 / elapsed / 2**20,
            "p50": lat[len(lat) // 2] * 1000, "p99": lat[int(len(lat) * 0.99)] * 1000,
            "errors": errors[0], "secs": elapsed,
        }
        passes = [tuple(int(x) for x in m.groups()) for m in PASS_RE.finditer(b.log_text())]
        res["passes"] = passes
        return res
    finally:
        b.stop()
        shutil.rmtree(b.base_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--keys", type=int, default=50000)
    ap.add_argument("--budget", type=int, default=16 << 20)
    ap.add_argument("--repeat", type=int, default=3, help="off/on pairs, alternating (medians reported)")
    ap.add_argument("--txn", type=int, default=0, help="records per transaction (0: not transactional)")
    ap.add_argument("--abort-every", type=int, default=10, help="with --txn: every n-th transaction aborts (0: none)")
    a = ap.parse_args()
    workdir = os.path.abspath(BUILD)
    pairs = []
    for _ in range(a.repeat):
        pairs.append((run(False, a.records, a.keys, a.budget, workdir, a.txn, a.abort_every),
                      run(True, a.records, a.keys, a.budget, workdir, a.txn, a.abort_every)))
    txn = ", transactions of %d records, every %s aborted" % (a.txn, a.abort_every or "none") if a.txn else ""
    print("compact bench: %s  records %d, keys %d, value 100 B, acks=all%s, budget %d B, %d off/on pairs" % (
        time.strftime("%Y-%m-%d %H:%M", time.gmtime()), a.records, a.keys, txn, a.budget, a.repeat))
    print("| run            | records/s | MB/s  | p50 ms | p99 ms | errors | cleaner passes | dirty MB/s cleaned |")
    print("|----------------|-----------|-------|--------|--------|--------|----------------|--------------------|")
    for i, (off, on) in enumerate(pairs):
        for name, r in (("cleaner off", off), ("cleaner on", on)):
            ps = r["passes"]
            ms = sum(x[P_MS] for x in ps)
            rate = "%.1f" % (sum(x[P_DIRTY] for x in ps) / 2**20 / (ms / 1000)) if ps and ms else "-"
            print("| %-11s #%d | %9.0f | %5.1f | %6.2f | %6.2f | %6d | %14d | %18s |" % (
                name, i + 1, r["rate"], r["mbs"], r["p50"], r["p99"], r["errors"], len(ps), rate))
    tr = statistics.median(on["rate"] / off["rate"] for off, on in pairs)
    pr = statistics.median(on["p99"] / off["p99"] for off, on in pairs)
    print("median ratios on/off over the pairs: throughput %.3f, p99 %.3f" % (tr, pr))
    ps = [x for _, on in pairs for x in on["passes"]]
    if ps:
        dirty = sum(x[P_DIRTY] for x in ps)
        ms = sum(x[P_MS] for x in ps)
        rd = sum(x[P_READ] for x in ps)
        wr = sum(x[P_WRITTEN] for x in ps)
        rm = sum(x[P_REMOVED] for x in ps)
        ab = sum(x[P_ABORTED] for x in ps)
        mk = sum(x[P_MARKERS] for x in ps)
        print("cleaner, all 'on' runs: %d passes, dirty %.1f MB in %.2f s of passes = %.1f MB/s dirty cleaned; "
              "read %.1f MB, wrote %.1f MB (%.1f MB/s read); %d records removed (%d aborted), %d markers removed; "
              "key map up to %.1f MB" % (
                  len(ps), dirty / 2**20, ms / 1000, dirty / 2**20 / max(ms / 1000, 1e-3), rd / 2**20, wr / 2**20,
                  rd / 2**20 / max(ms / 1000, 1e-3), rm, ab, mk, max(x[P_MAP] for x in ps) / 2**20))
    else:
        print("cleaner: no pass during the runs")


if __name__ == "__main__":
    main()
