"""Consumer groups against rilld (issue 3): the classic group protocol
(JoinGroup, SyncGroup, Heartbeat, LeaveGroup) driven by Debian's
confluent-kafka (librdkafka 2.0.2), committed offsets stored in
__consumer_offsets and surviving kill -9, the seeds' assignment example,
session-timeout failover, and Kafka's error codes for bad input (spoken
directly on the wire with kwire)."""
import socket
import struct
import time

import confluent_kafka as ck
import pytest
from confluent_kafka import TopicPartition

from rilltest import (Delivery, ck_create_topic, ck_produce_sync, ck_producer, unique, wait_until)

GROUP_PROPS = {"group.initial.rebalance.delay.ms": 0}


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(props=GROUP_PROPS)


def produce_n(broker, topic, n, partitions=None, prefix="m"):
    p = ck_producer(broker)
    dr = Delivery()
    for i in range(n):
        kw = {"value": ("%s-%d" % (prefix, i)).encode(), "on_delivery": dr}
        if partitions:
            kw["partition"] = i % partitions
        p.produce(topic, **kw)
        p.poll(0)
    ck_produce_sync(p)
    assert not dr.errors()
    return dr.ok()


def group_consumer(broker, group, **conf):
    c = {"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "socket.nagle.disable": True, "fetch.wait.max.ms": 100,
         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    c.update(conf)
    return ck.Consumer(c)


class Tracker:
    """Records the assignment a consumer holds (on_assign / on_revoke)."""

    def __init__(self):
        self.assigned = set()

    def on_assign(self, consumer, parts):
        self.assigned = set((p.topic, p.partition) for p in parts)

    def on_revoke(self, consumer, parts):
        self.assigned = set()


def subscribe(consumer, topic):
    t = Tracker()
    consumer.subscribe([topic], on_assign=t.on_assign, on_revoke=t.on_revoke)
    return t


def poll_all(consumers, seconds):
    """Polls every consumer for a while; returns {index: [messages]}."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None:
                assert m.error() is None, "consumer %d: %s" % (i, m.error())
                got[i].append(m)
    return got


def poll_until(consumers, trackers, pred, timeout, what):
    """Polls every consumer until pred(trackers) holds; returns messages."""
    got = {i: [] for i in range(len(consumers))}
    deadline = time.monotonic() + timeout
    while True:
        for i, c in enumerate(consumers):
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                got[i].append(m)
        if pred(trackers):
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; assignments: %s" % (
                what, [sorted(t.assigned) for t in trackers]))


def test_seed_consumer_round_trip(gbroker):
    """The seeds' consumer: subscribe, poll, commit; a new consumer of the
    same group resumes after the committed offset."""
    topic = unique("orders")
    ck_create_topic(gbroker, topic, 1)
    produce_n(gbroker, topic, 10)
    consumer = ck.Consumer({'bootstrap.servers': gbroker.bootstrap, 'group.id': 'order-processor',
                            'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 6 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        seen.append(msg)
        if len(seen) == 6:
            consumer.commit(message=msg, asynchronous=False)
    assert [m.value() for m in seen] == [("m-%d" % i).encode() for i in range(6)]
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 6
    consumer.close()

    c2 = group_consumer(gbroker, 'order-processor')
    c2.subscribe([topic])
    rest = []
    deadline = time.monotonic() + 30
    while len(rest) < 4 and time.monotonic() < deadline:
        m = c2.poll(0.5)
        if m is not None and m.error() is None:
            rest.append(m)
    assert [m.offset() for m in rest] == [6, 7, 8, 9]
    c2.commit(asynchronous=False)
    assert c2.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 10
    c2.close()


def test_second_consumer_triggers_rebalance_and_split(gbroker):
    topic = unique("split")
    ck_create_topic(gbroker, topic, 4)
    c1 = group_consumer(gbroker, "g-split")
    t1 = subscribe(c1, topic)
    poll_until([c1], [t1], lambda ts: len(ts[0].assigned) == 4, 30, "c1 owns all 4 partitions")
    c2 = group_consumer(gbroker, "g-split")
    t2 = subscribe(c2, topic)
    poll_until([c1, c2], [t1, t2], lambda ts: len(ts[0].assigned) == 2 and len(ts[1].assigned) == 2, 30,
               "a 2+2 split")
    assert not (t1.assigned & t2.assigned)
    c2.close()
    poll_until([c1], [t1], lambda ts: len(ts[0].assigned) == 4, 30, "c1 owns all 4 partitions again")
    c1.close()


def test_seed_assignment_example(gbroker):
    """Topic with 3 partitions; group "analytics" with 3 consumers gets one
    partition each; group "notification" with 2 consumers splits 2+1; a 4th
    analytics consumer stays idle; both groups read every message."""
    topic = unique("events")
    ck_create_topic(gbroker, topic, 3)
    n = 60
    produce_n(gbroker, topic, n, partitions=3)
    analytics = [group_consumer(gbroker, "analytics") for _ in range(3)]
    notification = [group_consumer(gbroker, "notification") for _ in range(2)]
    ta = [subscribe(c, topic) for c in analytics]
    tn = [subscribe(c, topic) for c in notification]
    everyone = analytics + notification
    got = poll_until(everyone, ta + tn,
                     lambda ts: [len(t.assigned) for t in ts[:3]] == [1, 1, 1]
                     and sorted(len(t.assigned) for t in ts[3:]) == [1, 2], 45, "the 1/1/1 and 2+1 assignments")
    assert set().union(*[t.assigned for t in ta]) == {(topic, p) for p in range(3)}
    assert set().union(*[t.assigned for t in tn]) == {(topic, p) for p in range(3)}
    # every message at least once per group (nothing is committed, so a
    # partition moved by a rebalance is read again from the start)
    want = set(("m-%d" % i).encode() for i in range(n))
    a_vals = set(m.value() for i in range(3) for m in got[i])
    n_vals = set(m.value() for i in range(3, 5) for m in got[i])
    deadline = time.monotonic() + 30
    while (a_vals != want or n_vals != want) and time.monotonic() < deadline:
        more = poll_all(everyone, 0.5)
        a_vals |= set(m.value() for i in range(3) for m in more[i])
        n_vals |= set(m.value() for i in range(3, 5) for m in more[i])
    assert a_vals == want, "analytics read %d distinct of %d" % (len(a_vals), n)
    assert n_vals == want, "notification read %d distinct of %d" % (len(n_vals), n)
    # a 4th analytics consumer: 3 partitions, 4 members -> one stays idle
    fourth = group_consumer(gbroker, "analytics")
    t4 = subscribe(fourth, topic)
    allt = ta + [t4]
    poll_until(analytics + [fourth], allt,
               lambda ts: sorted(len(t.assigned) for t in ts) == [0, 1, 1, 1], 45, "three busy and one idle")
    for c in everyone + [fourth]:
        c.close()


def test_committed_offsets_survive_kill9(broker_factory):
    b = broker_factory(props=GROUP_PROPS)
    topic = unique("durable")
    ck_create_topic(b, topic, 2)
    produce_n(b, topic, 40, partitions=2)
    c = group_consumer(b, "g-durable")
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 40 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m)
            if len(got) % 5 == 0:
                c.commit(message=m, asynchronous=False)
    assert len(got) == 40  # the 40th was committed in the loop
    before = {p.partition: p.offset for p in c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)],
                                                          timeout=10)}
    assert before == {0: 20, 1: 20}
    c.close()
    for _ in range(2):
        b.restart(clean=False)
        c2 = group_consumer(b, "g-durable")
        after = {p.partition: p.offset for p in c2.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)],
                                                              timeout=20)}
        assert after == before, "committed offsets after kill -9: %s, before: %s" % (after, before)
        c2.close()
    # new records after the restart: a consumer resumes exactly there
    produce_n(b, topic, 4, partitions=2, prefix="new")
    c3 = group_consumer(b, "g-durable")
    c3.subscribe([topic])
    rest = []
    deadline = time.monotonic() + 30
    while len(rest) < 4 and time.monotonic() < deadline:
        m = c3.poll(0.2)
        if m is not None and m.error() is None:
            rest.append(m)
    assert sorted(m.value() for m in rest) == sorted(("new-%d" % i).encode() for i in range(4))
    assert all(m.offset() >= 20 for m in rest)
    c3.close()


MEMBER_SCRIPT = r'''
import sys, confluent_kafka as ck
c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "session.timeout.ms": 6000,
                 "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest", "enable.auto.commit": False})
def on_assign(consumer, parts):
    print("ASSIGNED %d" % len(parts), flush=True)
c.subscribe([sys.argv[3]], on_assign=on_assign)
while True:
    c.poll(0.1)
'''


def test_killed_member_partitions_move_after_session_timeout(gbroker, tmp_path):
    import subprocess
    import sys
    topic = unique("failover")
    ck_create_topic(gbroker, topic, 4)
    script = tmp_path / "member.py"
    script.write_text(MEMBER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), gbroker.bootstrap, "g-failover", topic],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ASSIGNED"), line
        c = group_consumer(gbroker, "g-failover")
        t = subscribe(c, topic)
        poll_until([c], [t], lambda ts: len(ts[0].assigned) == 2, 30, "a 2+2 split with the child member")
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        poll_until([c], [t], lambda ts: len(ts[0].assigned) == 4, 30, "the survivor owning all 4 partitions")
        took = time.monotonic() - t0
        assert took >= 3, "partitions moved after %.1fs, before the 6 s session timeout could pass" % took
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------
# bad input on the wire (kwire): Kafka's error codes
# ---------------------------------------------------------------------------

import kwire  # noqa: E402

UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL = 25, 22, 23
INVALID_SESSION_TIMEOUT, REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID = 26, 27, 79, 82
SUBSCRIPTION = kwire.i16(0) + kwire.array(["t"], kwire.string) + kwire.i32(-1)


def join_body(version, group, member="", ptype="consumer", protos=(("range", SUBSCRIPTION),),
              session=10000, instance=None):
    b = kwire.string(group) + kwire.i32(session)
    if version >= 1:
        b += kwire.i32(30000)
    b += kwire.string(member)
    if version >= 5:
        b += kwire.string(instance)
    b += kwire.string(ptype)
    b += kwire.array(list(protos), lambda p: kwire.string(p[0]) + kwire.nbytes(p[1]))
    return b


def join(conn, version, *a, **kw):
    r = kwire.Reader(conn.roundtrip(11, version, join_body(version, *a, **kw)), 4)
    if version >= 2:
        r.i32()
    err, gen = r.i16(), r.i32()
    proto, leader, member = r.string(), r.string(), r.string()
    return err, gen, member, leader


def heartbeat(conn, version, group, gen, member, instance=None):
    body = kwire.string(group) + kwire.i32(gen) + kwire.string(member)
    if version >= 3:
        body += kwire.string(instance)
    r = kwire.Reader(conn.roundtrip(12, version, body), 4)
    if version >= 1:
        r.i32()
    return r.i16()


def sync(conn, group, gen, member, assignments=()):
    body = kwire.string(group) + kwire.i32(gen) + kwire.string(member) + kwire.array(
        list(assignments), lambda a: kwire.string(a[0]) + kwire.nbytes(a[1]))
    r = kwire.Reader(conn.roundtrip(14, 1, body), 4)
    r.i32()
    return r.i16()


def commit_v2(conn, group, gen, member, topic, partition, offset, metadata=""):
    body = (kwire.string(group) + kwire.i32(gen) + kwire.string(member) + kwire.i64(-1) +
            kwire.array([topic], lambda t: kwire.string(t) + kwire.array(
                [partition], lambda p: kwire.i32(p) + kwire.i64(offset) + kwire.string(metadata))))
    r = kwire.Reader(conn.roundtrip(8, 2, body), 4)
    r.i32()  # topics count
    r.string()
    r.i32()
    r.i32()
    return r.i16()


def test_group_errors_on_the_wire(gbroker):
    topic = unique("wire")
    ck_create_topic(gbroker, topic, 1)
    c1 = kwire.Conn(gbroker.port)
    g = "g-wire"
    assert heartbeat(c1, 1, g, 1, "nobody") == UNKNOWN_MEMBER_ID
    assert join(c1, 1, g, session=100)[0] == INVALID_SESSION_TIMEOUT
    err, gen, me, leader = join(c1, 1, g)
    assert err == 0 and gen == 1 and leader == me
    assert heartbeat(c1, 1, g, gen, me) == 0
    assert heartbeat(c1, 1, g, gen + 5, me) == ILLEGAL_GENERATION
    assert heartbeat(c1, 1, g, gen, "someone-else") == UNKNOWN_MEMBER_ID
    assert sync(c1, g, gen + 1, me) == ILLEGAL_GENERATION
    assert sync(c1, g, gen, me, [(me, b"\x00\x01")]) == 0
    assert commit_v2(c1, g, gen, me, topic, 0, 5) == 0
    assert commit_v2(c1, g, gen - 1, me, topic, 0, 6) == ILLEGAL_GENERATION
    assert commit_v2(c1, g, gen, "stranger", topic, 0, 6) == UNKNOWN_MEMBER_ID
    assert commit_v2(c1, g, gen, me, "no-such-topic-x", 0, 6) == 3  # UNKNOWN_TOPIC_OR_PARTITION
    # another protocol type, or no common assignor: INCONSISTENT_GROUP_PROTOCOL
    c2 = kwire.Conn(gbroker.port)
    assert join(c2, 1, g, ptype="connect")[0] == INCONSISTENT_GROUP_PROTOCOL
    assert join(c2, 1, g, protos=(("weird", b""),))[0] == INCONSISTENT_GROUP_PROTOCOL
    # KIP-394: v4+ without a member id gets MEMBER_ID_REQUIRED and an id
    err, _, mid, _ = join(c2, 4, g)
    assert err == MEMBER_ID_REQUIRED and mid
    # joining with it starts a rebalance (parked until c1 rejoins): c1's
    # heartbeat says REBALANCE_IN_PROGRESS
    c2.send(kwire.request(11, 4, 77, join_body(4, g, member=mid)))
    wait_until(lambda: heartbeat(c1, 1, g, gen, me) == REBALANCE_IN_PROGRESS, 10, "REBALANCE_IN_PROGRESS")
    assert sync(c1, g, gen, me) == REBALANCE_IN_PROGRESS
    err, gen2, me2, leader2 = join(c1, 1, g, member=me)
    assert err == 0 and gen2 == gen + 1 and me2 == me
    payload = c2.recv_frame()
    r = kwire.Reader(payload, 4)
    r.i32()
    assert r.i16() == 0 and r.i32() == gen2
    assert heartbeat(c1, 1, g, gen, me) == ILLEGAL_GENERATION
    c1.sock.close()
    c2.sock.close()


def test_static_member_fenced(gbroker):
    c1 = kwire.Conn(gbroker.port)
    g = "g-static"
    err, gen, a, _ = join(c1, 5, g, instance="inst-1")
    assert err == 0
    assert sync(c1, g, gen, a, [(a, b"x")]) == 0
    assert heartbeat(c1, 3, g, gen, a, instance="inst-1") == 0
    # the same instance restarts: new member id, same generation (no rebalance)
    err, gen_b, b, _ = join(c1, 5, g, instance="inst-1")
    assert err == 0 and b != a
    assert heartbeat(c1, 3, g, gen_b, a, instance="inst-1") in (FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID)
    assert heartbeat(c1, 3, g, gen_b, b, instance="inst-1") in (0, REBALANCE_IN_PROGRESS)
    assert heartbeat(c1, 3, g, gen_b, b, instance="inst-2") == FENCED_INSTANCE_ID
    c1.sock.close()


def offsets_partition_for(group, n=50):
    """Kafka's partitionFor: abs(Java String.hashCode(group)) % n (ASCII ids)."""
    h = 0
    for ch in group:
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    h = 0 if h == -(1 << 31) else abs(h)
    return h % n


def high_watermark(conn, topic, partition):
    """ListOffsets v1 latest: the high watermark (what is durable, D-rules)."""
    body = kwire.i32(-1) + kwire.array([topic], lambda t: kwire.string(t) + kwire.array(
        [partition], lambda p: kwire.i32(p) + kwire.i64(-1)))
    r = kwire.Reader(conn.roundtrip(2, 1, body), 4)
    assert r.i32() == 1
    r.string()
    assert r.i32() == 1
    r.i32()
    assert r.i16() == 0
    r.i64()
    return r.i64()


def test_sync_group_answers_after_group_record_is_durable(broker_factory):
    """G7: the leader's assignments are handed out only once the group
    record holding them is durable. Every flusher round is stalled by 700 ms,
    so an answer given before the sync would see a high watermark of
    __consumer_offsets below the record."""
    b = broker_factory(props=GROUP_PROPS, env={"RILL_FAILPOINTS": "st.fsync.delay_ms=700"})
    g = "g-durable-sync"
    part = offsets_partition_for(g)
    c = kwire.Conn(b.port)
    err, gen, me, leader = join(c, 1, g)
    assert err == 0 and leader == me
    assert sync(c, g, gen, me, [(me, b"\x00\x07assignment")]) == 0
    hw = high_watermark(c, "__consumer_offsets", part)
    # read the partition (what becomes durable) until the group record of
    # this generation shows up: it must lie below what was durable when the
    # SyncGroup answer arrived
    key = kwire.i16(2) + kwire.string(g)
    cons = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": "reader-x", "enable.auto.commit": False})
    cons.assign([TopicPartition("__consumer_offsets", part, 0)])
    stable_offsets = []
    deadline = time.monotonic() + 20
    while not stable_offsets and time.monotonic() < deadline:
        m = cons.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        if m.key() == key and m.value() is not None:
            v = kwire.Reader(m.value())
            assert v.i16() == 3
            v.string()
            if v.i32() == gen and b"\x00\x07assignment" in m.value():
                stable_offsets.append(m.offset())
    cons.close()
    c.sock.close()
    assert stable_offsets, "no group record with generation %d's assignment" % gen
    assert stable_offsets[0] < hw, "SyncGroup answered at hw %d before record %d was durable" % (hw, stable_offsets[0])


def test_offset_metadata_too_large(gbroker):
    topic = unique("meta")
    ck_create_topic(gbroker, topic, 1)
    c = kwire.Conn(gbroker.port)
    g = "g-meta"
    err, gen, me, _ = join(c, 1, g)
    assert err == 0
    assert sync(c, g, gen, me, [(me, b"")]) == 0
    # offset.metadata.max.bytes defaults to 4096
    assert commit_v2(c, g, gen, me, topic, 0, 3, metadata="m" * 4096) == 0
    assert commit_v2(c, g, gen, me, topic, 0, 4, metadata="m" * 4097) == 12  # OFFSET_METADATA_TOO_LARGE
    cons = ck.Consumer({"bootstrap.servers": gbroker.bootstrap, "group.id": g, "enable.auto.commit": False})
    got = cons.committed([TopicPartition(topic, 0)], timeout=10)
    cons.close()
    assert got[0].offset == 3  # the oversized commit changed nothing
    c.sock.close()


def group_state(conn, group):
    """DescribeGroups v0: the group's state name."""
    r = kwire.Reader(conn.roundtrip(15, 0, kwire.array([group], kwire.string)), 4)
    assert r.i32() == 1
    assert r.i16() == 0
    assert r.string() == group
    return r.string()


def join_members_v1(conn, group, corr):
    """Sends JoinGroup v1 without waiting for the answer."""
    conn.send(kwire.request(11, 1, corr, join_body(1, group)))


def read_join_v1(conn):
    r = kwire.Reader(conn.recv_frame(timeout=30), 4)
    err, gen = r.i16(), r.i32()
    r.string()
    leader, member = r.string(), r.string()
    members = r.array(lambda rr: (rr.string(), rr.bytes_()))
    return err, gen, member, leader, [m[0] for m in members]


def test_default_initial_rebalance_delay_gathers_members(broker_factory):
    """group.initial.rebalance.delay.ms at Kafka's default (3000): the first
    rebalance of a new group waits, so two members joining 300 ms apart end
    up in one generation together (with the delay at 0 the first member
    would form generation 1 alone, as test_group_errors_on_the_wire shows)."""
    b = broker_factory()
    g = "g-delay"
    c1, c2 = kwire.Conn(b.port, timeout=30), kwire.Conn(b.port, timeout=30)
    join_members_v1(c1, g, 101)
    # c1's join stays parked during the delay: the group is PreparingRebalance
    # until it passes; a second member joins inside it
    c3 = kwire.Conn(b.port)
    wait_until(lambda: group_state(c3, g) == "PreparingRebalance", 10, "PreparingRebalance")
    join_members_v1(c2, g, 102)
    e1, gen1, m1, leader1, members1 = read_join_v1(c1)
    e2, gen2, m2, leader2, members2 = read_join_v1(c2)
    assert e1 == 0 and e2 == 0
    assert gen1 == gen2 == 1
    assert leader1 == leader2 == m1
    assert sorted(members1) == sorted([m1, m2]) and members2 == []
    c1.sock.close()
    c2.sock.close()
