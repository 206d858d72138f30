"""Group churn (issue 3): 4 consumers in one group over 6 partitions while a
member joins, leaves (close: LeaveGroup) or is killed (SIGKILL: session
timeout) every few seconds and an acks=all producer writes. Each consumer is
its own process; it records every record it processes (flushed before the
commit that follows it) and every assignment with the generation it belongs
to (from consumer_group_metadata in on_assign). Checks:
  - 0 committed-offset regressions (a monitor polls OffsetFetch),
  - every acknowledged record processed at least once,
  - no partition assigned to two members in the same generation,
  - rilld survives (the fixture checks it after the test).
The CI variant churns for ~45 s; the soak variant for 5 minutes."""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import confluent_kafka as ck
import pytest
from confluent_kafka import TopicPartition

from rilltest import ck_create_topic, ck_producer, unique

PARTITIONS = 6
PROPS = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000}

MEMBER = r'''
import os, signal, struct, sys, time
import confluent_kafka as ck
boot, group, topic, out_path = sys.argv[1:5]
out = open(out_path, "a", buffering=1)
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
c = ck.Consumer({"bootstrap.servers": boot, "group.id": group, "auto.offset.reset": "earliest",
                 "enable.auto.commit": False, "session.timeout.ms": 3000, "heartbeat.interval.ms": 300,
                 "max.poll.interval.ms": 10000, "fetch.wait.max.ms": 100, "socket.nagle.disable": True})
def gen(consumer):
    md = consumer.consumer_group_metadata()
    return struct.unpack("<i", md[7:11])[0], md[11:].split(b"\0")[1].decode()
def on_assign(consumer, parts):
    g, mid = gen(consumer)
    out.write("A %d %s %s\n" % (g, mid, ",".join(str(p.partition) for p in parts)))
def on_revoke(consumer, parts):
    g, mid = gen(consumer)
    out.write("R %d %s %s\n" % (g, mid, ",".join(str(p.partition) for p in parts)))
c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
out.write("START %d\n" % os.getpid())
while not stop:
    msgs = c.consume(100, 0.2)
    last = {}
    for m in msgs:
        if m.error():
            continue
        out.write("P %d %d %s\n" % (m.partition(), m.offset(), m.value().decode()))
        last[m.partition()] = m.offset()
    if last:
        out.flush()
        try:
            c.commit(offsets=[ck.TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
        except ck.KafkaException as e:
            out.write("CERR %s\n" % e.args[0].name())
c.close()
out.write("CLOSED\n")
'''


class Member:
    def __init__(self, broker, group, topic, script, out_dir, n):
        self.path = os.path.join(out_dir, "member%d.log" % n)
        self.proc = subprocess.Popen([sys.executable, script, broker.bootstrap, group, topic, self.path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def leave(self):
        self.proc.send_signal(signal.SIGTERM)

    def kill(self):
        self.proc.kill()


class Producer(threading.Thread):
    def __init__(self, broker, topic):
        super().__init__(daemon=True)
        self.p = ck_producer(broker, acks="all")
        self.topic = topic
        self.acked = set()
        self.errors = []
        self.stop_ev = threading.Event()

    def _cb(self, err, msg):
        if err is None:
            self.acked.add(msg.value().decode())
        else:
            self.errors.append(err)

    def run(self):
        n = 0
        while not self.stop_ev.is_set():
            for _ in range(10):
                self.p.produce(self.topic, value=b"v-%d" % n, key=b"k%d" % n, on_delivery=self._cb)
                n += 1
            self.p.poll(0)
            time.sleep(0.05)  # ~200 records/s
        self.p.flush(30)


class CommitMonitor(threading.Thread):
    """Polls the group's committed offsets (OffsetFetch, no group join) and
    records every regression."""

    def __init__(self, broker, group, topic):
        super().__init__(daemon=True)
        self.c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                              "enable.auto.commit": False})
        self.topic = topic
        self.last = {}
        self.regressions = []
        self.polls = 0
        self.stop_ev = threading.Event()

    def run(self):
        tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        while not self.stop_ev.is_set():
            try:
                got = self.c.committed(tps, timeout=5)
            except ck.KafkaException:
                continue
            self.polls += 1
            for tp in got:
                if tp.offset < 0:
                    continue
                prev = self.last.get(tp.partition, -1)
                if tp.offset < prev:
                    self.regressions.append((tp.partition, prev, tp.offset))
                self.last[tp.partition] = max(prev, tp.offset)
            self.stop_ev.wait(0.1)
        self.c.close()


def run_churn(broker, tmp_path, churn_seconds, seed):
    rnd = random.Random(seed)
    topic = unique("churn")
    group = unique("g-churn")
    ck_create_topic(broker, topic, PARTITIONS)
    script = str(tmp_path / "member.py")
    with open(script, "w") as f:
        f.write(MEMBER)
    members, gone, n = [], [], 0

    def spawn():
        nonlocal n
        members.append(Member(broker, group, topic, script, str(tmp_path), n))
        n += 1
    for _ in range(4):
        spawn()
    prod = Producer(broker, topic)
    mon = CommitMonitor(broker, group, topic)
    prod.start()
    mon.start()
    actions = {"join": 0, "leave": 0, "kill": 0}
    try:
        deadline = time.monotonic() + churn_seconds
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(2.0, 4.0))
            alive = [m for m in members if m.proc.poll() is None]
            choice = rnd.choice(["join", "leave", "kill"])
            if len(alive) <= 3:
                choice = "join"
            elif len(alive) >= 5:
                choice = rnd.choice(["leave", "kill"])
            actions[choice] += 1
            if choice == "join":
                spawn()
            else:
                victim = rnd.choice(alive)
                victim.leave() if choice == "leave" else victim.kill()
                gone.append(victim)
        while len([m for m in members if m.proc.poll() is None]) < 4:
            spawn()
        prod.stop_ev.set()
        prod.join(60)
        assert not prod.errors, prod.errors[:5]
        acked = set(prod.acked)
        assert len(acked) > 1000

        def processed():
            seen = set()
            for m in members:
                if os.path.exists(m.path):
                    with open(m.path) as f:
                        for line in f:
                            if line.startswith("P "):
                                seen.add(line.split()[3])
            return seen
        drain_deadline = time.monotonic() + 60
        while True:
            missing = acked - processed()
            if not missing or time.monotonic() > drain_deadline:
                break
            time.sleep(0.5)
        assert not missing, "%d acknowledged records never processed, e.g. %s" % (len(missing),
                                                                                  sorted(missing)[:5])
    finally:
        prod.stop_ev.set()
        for m in members:
            if m.proc.poll() is None:
                m.leave()
        for m in members:
            try:
                m.proc.wait(20)
            except subprocess.TimeoutExpired:
                m.kill()
                m.proc.wait()
        mon.stop_ev.set()
        mon.join(30)
    assert mon.polls > 20
    assert not mon.regressions, "committed offsets went backwards: %s" % mon.regressions[:10]
    # no partition in two members' assignments of the same generation
    owners = {}  # (generation, partition) -> member id
    gens = set()
    for m in members:
        with open(m.path) as f:
            for line in f:
                if not line.startswith("A "):
                    continue
                parts = line.split()
                g, mid = int(parts[1]), parts[2]
                gens.add(g)
                for p in (parts[3].split(",") if len(parts) > 3 and parts[3] else []):
                    key = (g, int(p))
                    assert owners.setdefault(key, mid) == mid, \
                        "partition %s owned by %s and %s in generation %d" % (p, owners[key], mid, g)
    assert len(gens) >= sum(actions.values()) // 2, (sorted(gens), actions)
    return actions, len(gens)


def test_group_churn(broker_factory, tmp_path):
    b = broker_factory(props=PROPS)
    actions, ngens = run_churn(b, tmp_path, 45, seed=int(os.environ.get("RILL_CHURN_SEED", "3")))
    assert actions["join"] and (actions["leave"] or actions["kill"])


@pytest.mark.soak
def test_group_churn_soak(broker_factory, tmp_path):
    b = broker_factory(props=PROPS)
    run_churn(b, tmp_path, 300, seed=int(os.environ.get("RILL_CHURN_SEED", str(int(time.time())))))
