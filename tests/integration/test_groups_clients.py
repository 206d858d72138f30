"""Consumer groups with real clients, beyond the basics of test_groups.py:
the cooperative-sticky (incremental) and roundrobin assignors, rebalance
(max.poll.interval) timeout, static membership (group.instance.id),
auto.offset.reset earliest/latest/none, kafka-python's KafkaConsumer with a
group, and the group admin APIs (ListGroups, DescribeGroups, DeleteGroups,
OffsetFetch, OffsetDelete) through confluent-kafka and kafka-python's
KafkaAdminClient (confluent-kafka 1.7 only has list_groups; neither client
has OffsetDelete, which is spoken with kwire)."""
import threading
import time

import confluent_kafka as ck
import pytest
from confluent_kafka import TopicPartition

import kwire
from rilltest import ck_create_topic, unique, wait_until
from test_groups import group_consumer, poll_all, poll_until, produce_n, subscribe

# a low minimum session timeout keeps the timeout tests short
PROPS = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000}


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(props=PROPS)


class IncTracker:
    """Incremental assignment bookkeeping (cooperative-sticky): on_assign
    gets the partitions added, on_revoke those taken away."""

    def __init__(self):
        self.assigned = set()
        self.revoked = []  # every revoked partition, in order
        self.events = []

    def on_assign(self, consumer, parts):
        s = set((p.topic, p.partition) for p in parts)
        self.events.append(("assign", sorted(s)))
        self.assigned |= s

    def on_revoke(self, consumer, parts):
        s = set((p.topic, p.partition) for p in parts)
        self.events.append(("revoke", sorted(s)))
        self.revoked.extend(sorted(s))
        self.assigned -= s

    def on_lost(self, consumer, parts):
        self.on_revoke(consumer, parts)


def test_cooperative_sticky_keeps_partitions(gbroker):
    """A second member joins a cooperative-sticky group: the first gives up
    only the two partitions that move and is never revoked the two it keeps;
    when the second leaves, the first gets them back without losing any."""
    topic = unique("coop")
    ck_create_topic(gbroker, topic, 4)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    c1 = group_consumer(gbroker, "g-coop", **conf)
    t1 = IncTracker()
    c1.subscribe([topic], on_assign=t1.on_assign, on_revoke=t1.on_revoke, on_lost=t1.on_lost)
    poll_until([c1], [t1], lambda ts: len(ts[0].assigned) == 4, 30, "c1 owns all 4 partitions")
    assert c1.assignment() and len(c1.assignment()) == 4
    c2 = group_consumer(gbroker, "g-coop", **conf)
    t2 = IncTracker()
    c2.subscribe([topic], on_assign=t2.on_assign, on_revoke=t2.on_revoke, on_lost=t2.on_lost)
    poll_until([c1, c2], [t1, t2], lambda ts: len(ts[0].assigned) == 2 and len(ts[1].assigned) == 2, 30,
               "a 2+2 split")
    # settle: a cooperative rebalance takes two rounds; nothing more moves
    poll_all([c1, c2], 2)
    assert len(t1.assigned) == 2 and len(t2.assigned) == 2 and not (t1.assigned & t2.assigned)
    assert sorted(t1.revoked) == sorted(t2.assigned), "c1 revoked %s, c2 got %s (events %s)" % (
        t1.revoked, t2.assigned, t1.events)
    kept = set(t1.assigned)
    assert set((p.topic, p.partition) for p in c1.assignment()) == kept
    c2.close()
    poll_until([c1], [t1], lambda ts: len(ts[0].assigned) == 4, 30, "c1 owns all 4 partitions again")
    assert len(t1.revoked) == 2, "c1 lost partitions it kept: %s" % t1.events
    c1.close()


def test_roundrobin_assignor(gbroker):
    """Two single-partition topics, two members: range gives both partitions
    to one member, roundrobin one to each."""
    ta, tb = unique("rra"), unique("rrb")
    ck_create_topic(gbroker, ta, 1)
    ck_create_topic(gbroker, tb, 1)
    cs, ts = [], []
    for _ in range(2):
        c = group_consumer(gbroker, "g-rr", **{"partition.assignment.strategy": "roundrobin"})
        tr = subscribe(c, ta)
        c.unsubscribe()
        c.subscribe([ta, tb], on_assign=tr.on_assign, on_revoke=tr.on_revoke)
        cs.append(c)
        ts.append(tr)
    poll_until(cs, ts, lambda t: [len(x.assigned) for x in t] == [1, 1], 30, "one partition each")
    assert ts[0].assigned | ts[1].assigned == {(ta, 0), (tb, 0)}
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    try:
        d = admin.describe_consumer_groups(["g-rr"])[0]
        assert d.protocol == "roundrobin" and d.state == "Stable" and len(d.members) == 2
    finally:
        admin.close()
    for c in cs:
        c.close()


def _join_v1(group, session, rebalance, topics):
    sub = kwire.i16(0) + kwire.array(topics, kwire.string) + kwire.i32(-1)
    return (kwire.string(group) + kwire.i32(session) + kwire.i32(rebalance) + kwire.string("") +
            kwire.string("consumer") + kwire.array([("range", sub)],
                                                   lambda p: kwire.string(p[0]) + kwire.nbytes(p[1])))


def test_rebalance_timeout_removes_member_that_stops_polling(gbroker):
    """A member keeps heartbeating but never rejoins when a rebalance starts
    (an application stuck past max.poll.interval.ms): at its rebalance
    timeout the coordinator drops it and the others get its partitions."""
    topic = unique("maxpoll")
    ck_create_topic(gbroker, topic, 4)
    conn = kwire.Conn(gbroker.port)
    r = kwire.Reader(conn.roundtrip(11, 1, _join_v1("g-maxpoll", 10000, 3000, [topic])), 4)
    assert r.i16() == 0
    gen = r.i32()
    r.string()
    r.string()
    me = r.string()
    body = kwire.string("g-maxpoll") + kwire.i32(gen) + kwire.string(me) + kwire.array([])
    assert kwire.Reader(conn.roundtrip(14, 0, body), 4).i16() == 0
    stop = threading.Event()
    hb_errors = []

    def heartbeats():  # the stuck member's heartbeat thread keeps running
        hconn = kwire.Conn(gbroker.port)
        while not stop.is_set():
            b = kwire.string("g-maxpoll") + kwire.i32(gen) + kwire.string(me)
            hb_errors.append(kwire.Reader(hconn.roundtrip(12, 0, b), 4).i16())
            stop.wait(0.3)
        hconn.sock.close()
    th = threading.Thread(target=heartbeats, daemon=True)
    th.start()
    try:
        c = group_consumer(gbroker, "g-maxpoll", **{"session.timeout.ms": 3000, "max.poll.interval.ms": 6000})
        t = subscribe(c, topic)
        t0 = time.monotonic()
        poll_until([c], [t], lambda ts: len(ts[0].assigned) == 4, 30, "the polling member owning all 4")
        took = time.monotonic() - t0
        assert took >= 2.5, "the stuck member was dropped after %.1fs, before its 3 s rebalance timeout" % took
        wait_until(lambda: hb_errors and hb_errors[-1] == 25, 5, "UNKNOWN_MEMBER_ID for the dropped member")
        assert 27 in hb_errors  # it was told REBALANCE_IN_PROGRESS meanwhile
        c.close()
    finally:
        stop.set()
        th.join()
        conn.sock.close()


def test_max_poll_interval_exceeded_moves_partitions(gbroker):
    """librdkafka: a consumer that stops calling poll leaves the group after
    max.poll.interval.ms; the other member gets all partitions."""
    topic = unique("maxpoll2")
    ck_create_topic(gbroker, topic, 4)
    conf = {"session.timeout.ms": 2000, "max.poll.interval.ms": 4000}
    c1, c2 = group_consumer(gbroker, "g-maxpoll2", **conf), group_consumer(gbroker, "g-maxpoll2", **conf)
    t1, t2 = subscribe(c1, topic), subscribe(c2, topic)
    poll_until([c1, c2], [t1, t2], lambda ts: [len(x.assigned) for x in ts] == [2, 2], 30, "a 2+2 split")
    t0 = time.monotonic()
    poll_until([c1], [t1], lambda ts: len(ts[0].assigned) == 4, 30, "c1 owning all 4 while c2 does not poll")
    assert time.monotonic() - t0 >= 3
    c1.close()
    c2.close()


def test_static_member_restart_causes_no_rebalance(gbroker):
    """Static membership: a member with group.instance.id restarts within
    session.timeout.ms; the other member's assignment is never revoked and
    the restarted one gets its old partitions back."""
    topic = unique("static")
    ck_create_topic(gbroker, topic, 4)
    conf = {"session.timeout.ms": 10000}
    a = group_consumer(gbroker, "g-static2", **{"group.instance.id": "a"}, **conf)
    b = group_consumer(gbroker, "g-static2", **{"group.instance.id": "b"}, **conf)
    ta, tb = IncTracker(), IncTracker()
    a.subscribe([topic], on_assign=ta.on_assign, on_revoke=ta.on_revoke)
    b.subscribe([topic], on_assign=tb.on_assign, on_revoke=tb.on_revoke)
    poll_until([a, b], [ta, tb], lambda ts: [len(x.assigned) for x in ts] == [2, 2], 30, "a 2+2 split")
    poll_all([a, b], 1.5)
    assert [len(ta.assigned), len(tb.assigned)] == [2, 2]
    b_parts, a_parts = set(tb.assigned), set(ta.assigned)
    a_events = len(ta.events)
    b.close()  # a static member sends no LeaveGroup
    b2 = group_consumer(gbroker, "g-static2", **{"group.instance.id": "b"}, **conf)
    tb2 = IncTracker()
    b2.subscribe([topic], on_assign=tb2.on_assign, on_revoke=tb2.on_revoke)
    poll_until([a, b2], [ta, tb2], lambda ts: len(ts[1].assigned) == 2, 20, "the restarted member's assignment")
    poll_all([a, b2], 2)
    assert tb2.assigned == b_parts
    assert ta.assigned == a_parts and len(ta.events) == a_events, "a was rebalanced: %s" % ta.events[a_events:]
    a.close()
    b2.close()


def test_auto_offset_reset(gbroker):
    topic = unique("reset")
    ck_create_topic(gbroker, topic, 1)
    produce_n(gbroker, topic, 5)
    # earliest: from offset 0
    c = group_consumer(gbroker, unique("g-earliest"))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 5 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.offset())
    assert got == [0, 1, 2, 3, 4]
    c.close()
    # latest: only what is produced after the assignment
    c = group_consumer(gbroker, unique("g-latest"), **{"auto.offset.reset": "latest"})
    t = subscribe(c, topic)
    poll_until([c], [t], lambda ts: len(ts[0].assigned) == 1, 20, "assignment")
    # give the consumer time to resolve "latest" (ListOffsets) before producing
    assert not [m for m in poll_all([c], 2)[0] if m.error() is None]
    produce_n(gbroker, topic, 2, prefix="late")
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value())
    assert got == [b"late-0", b"late-1"]
    c.close()
    # none (librdkafka calls it "error"): an error, no records
    c = group_consumer(gbroker, unique("g-none"), **{"auto.offset.reset": "error"})
    c.subscribe([topic])
    err = None
    deadline = time.monotonic() + 20
    while err is None and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None:
            assert m.error() is not None, "read a record without a committed offset: %r" % m.value()
            err = m.error()
    assert err is not None and err.code() == ck.KafkaError._AUTO_OFFSET_RESET, err
    c.close()
    # kafka-python's 'none': NoOffsetForPartitionError
    from kafka import KafkaConsumer
    kc = KafkaConsumer(bootstrap_servers=gbroker.bootstrap, group_id=unique("g-none-kp"),
                       auto_offset_reset="none", enable_auto_commit=False, consumer_timeout_ms=10000)
    kc.subscribe([topic])
    from kafka.consumer.fetcher import NoOffsetForPartitionError
    with pytest.raises(NoOffsetForPartitionError):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kc.poll(timeout_ms=500)
    kc.close()


def test_kafka_python_group_consumer(gbroker):
    """kafka-python's KafkaConsumer with group_id: subscribe, poll, commit;
    another member of the group resumes at the commit; librdkafka sees the
    same committed offsets."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    topic = unique("kpgroup")
    ck_create_topic(gbroker, topic, 2)
    produce_n(gbroker, topic, 20, partitions=2)
    kc = KafkaConsumer(bootstrap_servers=gbroker.bootstrap, group_id="g-kp", auto_offset_reset="earliest",
                       enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500)
    kc.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 20 and time.monotonic() < deadline:
        for tp, recs in kc.poll(timeout_ms=500).items():
            seen.extend(recs)
    assert len(seen) == 20
    kc.commit()
    assert kc.committed(KTP(topic, 0)) == 10 and kc.committed(KTP(topic, 1)) == 10
    assert kc.assignment() == {KTP(topic, 0), KTP(topic, 1)}
    kc.close()
    c = group_consumer(gbroker, "g-kp")
    got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    assert [p.offset for p in got] == [10, 10]
    c.close()
    produce_n(gbroker, topic, 2, partitions=2, prefix="more")
    kc = KafkaConsumer(bootstrap_servers=gbroker.bootstrap, group_id="g-kp", auto_offset_reset="earliest",
                       enable_auto_commit=False)
    kc.subscribe([topic])
    rest = []
    deadline = time.monotonic() + 30
    while len(rest) < 2 and time.monotonic() < deadline:
        for tp, recs in kc.poll(timeout_ms=500).items():
            rest.extend(recs)
    assert sorted(r.value for r in rest) == [b"more-0", b"more-1"]
    kc.close()


def _offset_delete(port, group, topic, partitions):
    conn = kwire.Conn(port)
    body = kwire.string(group) + kwire.array([topic], lambda t: kwire.string(t) + kwire.array(
        partitions, kwire.i32))
    r = kwire.Reader(conn.roundtrip(47, 0, body), 4)
    top = r.i16()
    r.i32()
    res = {}
    for _ in range(r.i32()):
        r.string()
        for _ in range(r.i32()):
            p = r.i32()
            res[p] = r.i16()
    conn.sock.close()
    return top, res


def test_group_admin_apis(gbroker):
    """ListGroups (confluent-kafka list_groups, kafka-python
    list_consumer_groups), DescribeGroups, OffsetFetch for a group
    (list_consumer_group_offsets), OffsetDelete, DeleteGroups."""
    from kafka.admin import KafkaAdminClient
    from kafka import TopicPartition as KTP
    from kafka import errors as kerrors
    topic = unique("admin")
    ck_create_topic(gbroker, topic, 2)
    produce_n(gbroker, topic, 6, partitions=2)
    c = group_consumer(gbroker, "g-admin", **{"client.id": "admin-client"})
    t = subscribe(c, topic)
    poll_until([c], [t], lambda ts: len(ts[0].assigned) == 2, 30, "assignment")
    c.commit(offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 3)], asynchronous=False)
    idle = group_consumer(gbroker, "g-admin-idle")
    idle.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    idle.close()

    from rilltest import ck_admin
    groups = {g.id: g for g in ck_admin(gbroker).list_groups(timeout=10)}
    assert groups["g-admin"].state == "Stable" and groups["g-admin"].protocol == "range"
    assert len(groups["g-admin"].members) == 1
    assert groups["g-admin"].members[0].client_id == "admin-client"
    assert groups["g-admin-idle"].state == "Empty"

    admin = KafkaAdminClient(bootstrap_servers=gbroker.bootstrap)
    try:
        listed = dict(admin.list_consumer_groups())
        assert listed.get("g-admin") == "consumer" and "g-admin-idle" in listed
        d = admin.describe_consumer_groups(["g-admin"])[0]
        assert d.state == "Stable" and d.protocol_type == "consumer" and d.protocol == "range"
        (m,) = d.members
        assert m.client_id == "admin-client" and m.client_host.startswith("/127.0.0.1")
        assigned = m.member_assignment.assignment  # decoded by kafka-python
        assert sorted((tp, sorted(ps)) for tp, ps in assigned) == [(topic, [0, 1])]
        offs = admin.list_consumer_group_offsets("g-admin")
        assert {tp.partition: om.offset for tp, om in offs.items() if tp.topic == topic} == {0: 2, 1: 3}
        # a non-empty group cannot be deleted
        res = dict(admin.delete_consumer_groups(["g-admin"]))
        assert res["g-admin"] is kerrors.NonEmptyGroupError, res
        # OffsetDelete: refused for a partition the live group subscribes to
        top, parts = _offset_delete(gbroker.port, "g-admin", topic, [0])
        assert top == 0 and parts == {0: 86}, (top, parts)  # GROUP_SUBSCRIBED_TO_TOPIC
        # allowed on the empty group
        top, parts = _offset_delete(gbroker.port, "g-admin-idle", topic, [0])
        assert top == 0 and parts == {0: 0}
        assert admin.list_consumer_group_offsets("g-admin-idle", partitions=[KTP(topic, 0)])[KTP(topic, 0)].offset \
            == -1
        c.close()
        wait_until(lambda: admin.describe_consumer_groups(["g-admin"])[0].state == "Empty", 10, "group empty")
        res = dict(admin.delete_consumer_groups(["g-admin", "g-admin-idle", "g-never-was"]))
        assert res["g-admin"] is kerrors.NoError and res["g-admin-idle"] is kerrors.NoError, res
        assert res["g-never-was"] is kerrors.GroupIdNotFoundError, res
        listed = dict(admin.list_consumer_groups())
        assert "g-admin" not in listed and "g-admin-idle" not in listed
        d = admin.describe_consumer_groups(["g-admin"])[0]
        assert d.state == "Dead"
        assert admin.list_consumer_group_offsets("g-admin") == {} or all(
            om.offset == -1 for om in admin.list_consumer_group_offsets("g-admin").values())
    finally:
        admin.close()
