#!/usr/bin/python3
"""bench/streams_e2e.py — the stock-statistics example end to end against rilld
(issue 6).

Usage: RILL_BUILD=build /usr/bin/python3 bench/streams_e2e.py [events]

A fresh rilld from RILL_BUILD on a free loopback port (data under the build
directory). `events` trades (default 200000; value: ask price, double
big-endian; 100 tickers; timestamps 0-4 ms apart) are produced to
stockstats-trades (4 partitions) first; then example_stockstats
(examples/stockstats.c: hopping 5 s windows advancing by 1 s, 5 outputs per
trade) starts with one stream thread, for each store type. Measured from
its start until its group has committed the end of every input partition:
wall time, and the example's CPU seconds (utime+stime from /proc) — events/s
per core = events / CPU seconds. Start-up (group join, topic creation) is
inside the wall time. Prints one table for bench/RESULTS.md.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import confluent_kafka as ck  # noqa: E402
from confluent_kafka import TopicPartition  # noqa: E402

from rilltest import BUILD, Broker, _proc_stat, ck_create_topic, ck_producer  # noqa: E402

PROG = os.path.join(BUILD, "example_stockstats")


def committed_end(broker, app_id, ends, topic="stockstats-trades"):
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": app_id, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in ends], timeout=10)
        return all(tp.offset >= ends[tp.partition] for tp in got)
    finally:
        c.close()


def input_ends(broker, topic, partitions=4):
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "x"})
    try:
        return {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1] for q in range(partitions)}
    finally:
        c.close()


def run_until_committed(broker, prog, app_id, args, log_path, topic, ends):
    """Runs an example program from its start until its group has committed
    ends (partition -> offset) of topic: (wall s, the program's CPU s)."""
    log = open(log_path, "wb")
    t0 = time.monotonic()
    p = subprocess.Popen([prog, "--bootstrap", broker.bootstrap, "--app-id", app_id] + list(args),
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    cpu = 0.0
    while time.monotonic() - t0 < 600:
        if p.poll() is not None:
            raise SystemExit("example exited %s; see %s" % (p.returncode, log.name))
        cpu = _proc_stat(p.pid)
        if committed_end(broker, app_id, ends, topic):
            break
        time.sleep(0.1)
    wall = time.monotonic() - t0
    p.terminate()
    p.wait(timeout=60)
    log.close()
    return wall, cpu


def run(broker, events, store, tmp):
    app_id = "stockstats-bench-" + store
    return run_until_committed(broker, PROG, app_id,
                               ["--state-dir", os.path.join(tmp, "state-" + store), "--commit-ms", "500",
                                "--set", "default.dsl.store=" + store],
                               os.path.join(tmp, app_id + ".log"), "stockstats-trades",
                               input_ends(broker, "stockstats-trades"))


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    tmp = tempfile.mkdtemp(prefix="streams-e2e-", dir=BUILD)
    broker = Broker(data_dir=tmp, props={"group.initial.rebalance.delay.ms": 0})
    broker.start()
    try:
        ck_create_topic(broker, "stockstats-trades", partitions=4)
        ck_create_topic(broker, "stockstats-output", partitions=4)
        prod = ck_producer(broker, linger_ms=20, batch_num_messages=10000, queue_buffering_max_messages=500000)
        x, ts = 0x9E3779B97F4A7C15, 0
        for i in range(events):
            x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
            x ^= x >> 7
            x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
            ts += x % 5
            ticker = "TICK%03d" % ((x >> 8) % 100)
            price = 10 + ((x >> 20) % 10000) / 100.0
            while True:
                try:
                    prod.produce("stockstats-trades", key=ticker.encode(), value=struct.pack(">d", price),
                                 timestamp=ts + 1)
                    break
                except BufferError:
                    prod.poll(0.1)
        assert prod.flush(120) == 0
        print("| store | events | wall s (incl. start) | example CPU s | events/s per core |")
        print("|---|---|---|---|---|")
        for store in ("in_memory", "rocksDB"):
            wall, cpu = run(broker, events, store, tmp)
            print("| %s | %d | %.1f | %.2f | %.0f |" % (store, events, wall, cpu, events / cpu))
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
