#!/usr/bin/python3
"""bench/group_bench.py — consumer group benchmarks (issue 3).

Usage: RILL_BUILD=build /usr/bin/python3 bench/group_bench.py [--quick] [--skip-default]

A fresh rilld from RILL_BUILD (default ./build) on a free loopback port, data
under the build directory (a real disk, not tmpfs), driven by Debian's
confluent-kafka (librdkafka 2.0.2):

  1. Failover: a group of two members over a 6-partition topic that a producer
     writes to every 20 ms per partition. The victim is a separate process; at
     T0 it is killed (SIGKILL) or closed (LeaveGroup). Measured: T0 to the
     first record the survivor receives from a partition the victim owned.
     With SIGKILL this is session.timeout.ms (detection) + a rebalance + a
     fetch; rows for librdkafka's default session.timeout.ms (45 s), 6 s
     (Kafka's group.min.session.timeout.ms) and 1.5 s (rilld started with
     group.min.session.timeout.ms=1000), plus the graceful close.
  2. Offset commits: members of a Stable group committing one partition's
     offset synchronously in a loop (each commit is acknowledged after its
     record in __consumer_offsets is fsynced, coord.h G6): 1 client, and 4
     clients (4 groups) at once. Measured: commits/s and latency p50/p99/max.

Prints one table; paste it with the header into bench/RESULTS.md.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import confluent_kafka as ck  # noqa: E402
from confluent_kafka import TopicPartition  # noqa: E402

from rilltest import BUILD, Broker, ck_create_topic, ck_producer  # noqa: E402

VICTIM = r'''
import select, sys, confluent_kafka as ck
conf = {"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "latest",
        "enable.auto.commit": False, "fetch.wait.max.ms": 50, "socket.nagle.disable": True}
if sys.argv[4] != "default":
    conf["session.timeout.ms"] = int(sys.argv[4])
    conf["heartbeat.interval.ms"] = max(100, int(sys.argv[4]) // 10)
c = ck.Consumer(conf)
def on_assign(consumer, parts):
    print("ASSIGNED " + ",".join(str(p.partition) for p in parts), flush=True)
c.subscribe([sys.argv[3]], on_assign=on_assign)
while True:
    c.poll(0.05)
    if select.select([sys.stdin], [], [], 0)[0]:
        if sys.stdin.readline().strip() == "close":
            c.close()
            print("CLOSED", flush=True)
            sys.exit(0)
'''


class Writer(threading.Thread):
    def __init__(self, broker, topic, parts):
        super().__init__(daemon=True)
        self.p = ck_producer(broker, linger_ms=0)
        self.topic, self.parts = topic, parts
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            for p in range(self.parts):
                self.p.produce(self.topic, value=b"x", partition=p)
            self.p.poll(0)
            time.sleep(0.02)
        self.p.flush(10)


def failover_once(broker, session, mode, script, n):
    topic = "fo-%s-%s-%d" % (session, mode, n)
    group = "g-" + topic
    ck_create_topic(broker, topic, 6)
    w = Writer(broker, topic, 6)
    w.start()
    victim = subprocess.Popen([sys.executable, script, broker.bootstrap, group, topic, str(session)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = victim.stdout.readline()
        assert line.startswith("ASSIGNED"), line
        conf = {"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "latest",
                "enable.auto.commit": False, "fetch.wait.max.ms": 50, "socket.nagle.disable": True}
        if session != "default":
            conf["session.timeout.ms"] = session
            conf["heartbeat.interval.ms"] = max(100, session // 10)
        c = ck.Consumer(conf)
        mine = set()

        def on_assign(consumer, parts):
            mine.clear()
            mine.update(p.partition for p in parts)
        c.subscribe([topic], on_assign=on_assign, on_revoke=lambda consumer, parts: mine.clear())
        deadline = time.monotonic() + 120
        while len(mine) != 3:
            c.poll(0.05)
            assert time.monotonic() < deadline, "no 3+3 split"
        # the survivor is reading its own partitions
        t_settle = time.monotonic() + 1
        while time.monotonic() < t_settle:
            c.poll(0.05)
        theirs = set(range(6)) - mine
        t0 = time.monotonic()
        if mode == "kill":
            victim.kill()
        else:
            victim.stdin.write("close\n")
            victim.stdin.flush()
        took = None
        deadline = t0 + 180
        while took is None and time.monotonic() < deadline:
            m = c.poll(0.02)
            if m is not None and m.error() is None and m.partition() in theirs:
                took = time.monotonic() - t0
        c.close()
        return took
    finally:
        w.stop_ev.set()
        w.join()
        if victim.poll() is None:
            victim.kill()
        victim.wait()


def commit_bench(broker, clients, seconds):
    topic = "commits-%d" % clients
    ck_create_topic(broker, topic, 1)
    lat = []
    counts = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def run(i):
        c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-commit-%d-%d" % (clients, i),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        got = []
        c.subscribe([topic], on_assign=lambda consumer, parts: got.append(1))
        while not got:
            c.poll(0.05)
        ready.wait()
        mine, n, end = [], 0, time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
            t = time.perf_counter()
            c.commit(offsets=[TopicPartition(topic, 0, n)], asynchronous=False)
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)
            counts.append(n)
        c.close()
    ths = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in ths:
        t.start()
    ready.wait()
    t0 = time.monotonic()
    for t in ths:
        t.join()
    wall = time.monotonic() - t0
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000
    return sum(counts) / wall, pct(50), pct(99), lat[-1] * 1000


def main():
    quick = "--quick" in sys.argv
    skip_default = "--skip-default" in sys.argv or quick
    base = tempfile.mkdtemp(prefix="group-bench-", dir=BUILD)
    b = Broker(data_dir=base, props={"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000})
    b.start()
    script = os.path.join(base, "victim.py")
    with open(script, "w") as f:
        f.write(VICTIM)
    rows = []
    try:
        reps = 1 if quick else 3
        cases = [(6000, "kill", reps), (1500, "kill", reps), (6000, "close", reps)]
        if not skip_default:
            cases.insert(0, ("default", "kill", 1))
        for session, mode, n in cases:
            took = [failover_once(b, session, mode, script, i) for i in range(n)]
            ok = [t for t in took if t is not None]
            label = "failover %s, session.timeout.ms=%s" % ("SIGKILL" if mode == "kill" else "close (LeaveGroup)",
                                                            "45000 (default)" if session == "default" else session)
            rows.append((label, "%d" % n, "median %.2f s, max %.2f s" % (statistics.median(ok), max(ok))
                         if ok else "never", ""))
            print(rows[-1], file=sys.stderr, flush=True)
        for clients in (1, 4):
            rate, p50, p99, mx = commit_bench(b, clients, 3 if quick else 10)
            rows.append(("sync offset commits, %d client(s)" % clients, "-", "%.0f commits/s" % rate,
                         "p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (p50, p99, mx)))
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        b.stop()
        shutil.rmtree(base, ignore_errors=True)
    print("| scenario | runs | result | latency |")
    print("|---|---|---|---|")
    for r in rows:
        print("| %s |" % " | ".join(r))


if __name__ == "__main__":
    main()
