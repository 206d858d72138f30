#!/usr/bin/python3
"""bench/txn_bench.py — transactions (issue 5): commit latency and commits/s
of small transactions, and the throughput of a transactional copier.

Usage: RILL_BUILD=build /usr/bin/python3 bench/txn_bench.py [--txns N] [--records M]

A fresh rilld from RILL_BUILD (default ./build) on a free loopback port, data
under the build directory (a real disk, not tmpfs). confluent-kafka 2.0.2
(librdkafka 2.0.2), in this process:
 1. small transactions: N transactions of 10 records of 100 B to one
    partition, one after the other (begin, produce, commit); the latency of
    commit_transaction() (flush of the records, EndTxn with its markers, all
    durable) and of the whole transaction, p50/p99, and transactions/s;
 2. the same with an idempotent (non-transactional) producer flushing every
    10 records, as the baseline of what the transaction adds;
 3. the copier: M records of 100 B in a 6-partition topic, copied by one
    process (tests/fault/txn_copier.py's loop, 500 records per transaction,
    read_committed consumer, send_offsets_to_transaction) to another topic;
    records/s from its first commit to the last, checked exactly once.
Prints one table with the command, machine and date; paste it into
bench/RESULTS.md.
"""
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from rilltest import BUILD, Broker, ck_consumer, ck_create_topic, ck_producer  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def small_txns(b, n):
    topic = ck_create_topic(b, "bench-txn-small", partitions=1)
    p = ck_producer(b, transactional_id="bench-small", linger_ms=0)
    p.init_transactions(30)
    commit_ms, total_ms = [], []
    v = b"x" * 100
    t_start = time.monotonic()
    for _ in range(n):
        t0 = time.monotonic()
        p.begin_transaction()
        for _ in range(10):
            p.produce(topic, value=v)
        t1 = time.monotonic()
        p.commit_transaction(30)
        t2 = time.monotonic()
        commit_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)
    el = time.monotonic() - t_start
    return commit_ms, total_ms, n / el


def idem_baseline(b, n):
    topic = ck_create_topic(b, "bench-idem-small", partitions=1)
    p = ck_producer(b, enable_idempotence=True, linger_ms=0)
    lat = []
    v = b"x" * 100
    t_start = time.monotonic()
    for _ in range(n):
        t0 = time.monotonic()
        for _ in range(10):
            p.produce(topic, value=v)
        assert p.flush(30) == 0
        lat.append((time.monotonic() - t0) * 1000)
    return lat, n / (time.monotonic() - t_start)


def copier(b, m):
    import confluent_kafka as ck
    tin = ck_create_topic(b, "bench-cp-in", partitions=6)
    tout = ck_create_topic(b, "bench-cp-out", partitions=6)
    p = ck_producer(b, linger_ms=20)
    v = b"y" * 100
    for i in range(m):
        p.produce(tin, value=v, partition=i % 6)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0
    c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": "bench-copier", "isolation.level": "read_committed",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50})
    tp = ck.Producer({"bootstrap.servers": b.bootstrap, "transactional.id": "bench-copier", "linger.ms": 5})
    tp.init_transactions(30)
    c.assign([ck.TopicPartition(tin, i) for i in range(6)])
    copied, txns = 0, 0
    t0 = None
    deadline = time.monotonic() + 600
    while copied < m and time.monotonic() < deadline:
        msgs = c.consume(num_messages=500, timeout=0.2)
        if not msgs:
            continue
        if t0 is None:
            t0 = time.monotonic()
        tp.begin_transaction()
        nxt = {}
        for msg in msgs:
            assert msg.error() is None
            tp.produce(tout, value=msg.value(), partition=msg.partition())
            nxt[msg.partition()] = msg.offset() + 1
        tp.send_offsets_to_transaction([ck.TopicPartition(tin, k, o) for k, o in nxt.items()],
                                       c.consumer_group_metadata(), 30)
        tp.commit_transaction(30)
        copied += len(msgs)
        txns += 1
    el = time.monotonic() - t0
    c.close()
    assert copied == m, copied
    # exactly once: the committed output holds m records (read until 1 s passes without more)
    rc = ck_consumer(b, isolation_level="read_committed")
    rc.assign([ck.TopicPartition(tout, i, 0) for i in range(6)])
    got, last = 0, time.monotonic()
    while time.monotonic() - last < 1.0:
        batch = rc.consume(num_messages=10000, timeout=0.2)
        got += len(batch)
        if batch:
            last = time.monotonic()
    rc.close()
    assert got == m, got
    return m / el, txns, el


def main():
    n, m = 300, 200000
    args = sys.argv[1:]
    if "--txns" in args:
        n = int(args[args.index("--txns") + 1])
    if "--records" in args:
        m = int(args[args.index("--records") + 1])
    parent = tempfile.mkdtemp(prefix="txn-bench-", dir=BUILD)
    b = Broker(data_dir=parent)
    b.start()
    try:
        commit_ms, total_ms, tps = small_txns(b, n)
        idem_ms, ips = idem_baseline(b, n)
        cps, txns, el = copier(b, m)
    finally:
        if b.running():
            b.stop()
        subprocess.run(["rm", "-rf", parent])
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE).stdout
    print("bench: %s  commit %s  %s, %d cores, Linux %s" % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                                          commit.decode().strip(), cpu, os.cpu_count(),
                                                          platform.release()))
    print("command: RILL_BUILD=%s /usr/bin/python3 bench/txn_bench.py --txns %d --records %d" % (BUILD, n, m))
    print()
    print("| scenario | count | per s | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    print("| transaction of 10 x 100 B, commit_transaction() | %d | %.0f | %.2f | %.2f | %.1f |" % (
        n, tps, statistics.median(commit_ms), pct(commit_ms, 0.99), max(commit_ms)))
    print("| transaction of 10 x 100 B, begin to committed | %d | %.0f | %.2f | %.2f | %.1f |" % (
        n, tps, statistics.median(total_ms), pct(total_ms, 0.99), max(total_ms)))
    print("| idempotent 10 x 100 B + flush (baseline) | %d | %.0f | %.2f | %.2f | %.1f |" % (
        n, ips, statistics.median(idem_ms), pct(idem_ms, 0.99), max(idem_ms)))
    print("| copier, 500 records per transaction, 6 partitions | %d records, %d txns, %.1f s | %.0f records/s | | | |" % (
        m, txns, el, cps))


if __name__ == "__main__":
    main()
