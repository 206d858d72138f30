"""Log compaction (cleanup.policy=compact) with real clients: random keys,
values and tombstones through confluent-kafka producers (uncompressed, gzip,
zstd), the cleaner made prompt (small segment.bytes, min.cleanable.dirty.ratio
0, log.cleaner.backoff.ms 100), then a full read from offset 0 compared with
the model: below the cleaner checkpoint the latest record per key, from it on
the full history. Also: keyless records refused with INVALID_RECORD (87),
tombstones expiring after delete.retention.ms, __consumer_offsets compacted
and replayed to the same committed offsets after a restart, and ENOSPC
injected into a cleaning pass (st.clean.write)."""
import os
import random
import re

import confluent_kafka as ck
import pytest
from confluent_kafka import TopicPartition

from rilltest import Delivery, ck_consumer, ck_create_topic, ck_produce_sync, ck_producer, unique, wait_until

PROPS = {"log.cleaner.backoff.ms": 100, "group.initial.rebalance.delay.ms": 0}
TOPIC_CFG = {"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0"}


def cleaner_offset(broker, topic, partition=0):
    """The partition's entry of cleaner-offset-checkpoint, or -1."""
    path = os.path.join(broker.data_dir, "cleaner-offset-checkpoint")
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return -1
    for ln in lines[2:]:
        parts = ln.split()
        if len(parts) == 3 and parts[0] == topic and int(parts[1]) == partition:
            return int(parts[2])
    return -1


def produce_model(broker, topic, n, nkeys, compression="none", seed=1, tomb_every=9):
    """Produces n keyed records (some tombstones); returns {offset: (key, value)}."""
    rnd = random.Random(seed)
    p = ck_producer(broker, **{"compression.type": compression, "linger.ms": 20, "batch.num.messages": 50})
    d = Delivery()
    for i in range(n):
        k = b"key-%d" % rnd.randrange(nkeys)
        v = None if rnd.randrange(tomb_every) == 0 else b"val-%d-%s" % (i, b"x" * rnd.randrange(40))
        p.produce(topic, key=k, value=v, on_delivery=d)
        if i % 200 == 0:
            p.poll(0)
    ck_produce_sync(p)
    assert not d.errors(), d.errors()[:3]
    return {m.offset(): (m.key(), m.value()) for m in d.ok()}


def read_from_zero(broker, topic, partition=0, timeout=30):
    c = ck_consumer(broker)
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    assert lo == 0, "compaction moved the log start offset to %d" % lo
    c.assign([TopicPartition(topic, partition, 0)])
    out = {}
    last = -1

    def done():
        nonlocal last
        for m in c.consume(num_messages=500, timeout=0.2):
            assert m.error() is None, m.error()
            assert m.offset() > last, "offsets not increasing: %d after %d" % (m.offset(), last)
            last = m.offset()
            out[m.offset()] = (m.key(), m.value())
        return last >= hi - 1
    wait_until(done, timeout, "a full read of %s-%d up to %d" % (topic, partition, hi))
    c.close()
    return out


def expected(model, end, keep_tombstones=True):
    latest = {}
    for off in sorted(model):
        if off < end:
            latest[model[off][0]] = off
    exp = {}
    for off, (k, v) in model.items():
        if off < end:
            if latest[k] != off or (v is None and not keep_tombstones):
                continue
        exp[off] = (k, v)
    return exp


def read_stable(broker, topic, model, keep_tombstones=True):
    """Reads once the cleaner checkpoint stops moving; checks the model."""
    wait_until(lambda: cleaner_offset(broker, topic) > 0, 30, "a compaction pass over %s" % topic)
    for _ in range(20):
        e1 = cleaner_offset(broker, topic)
        got = read_from_zero(broker, topic)
        if cleaner_offset(broker, topic) == e1:
            break
    exp = expected(model, e1, keep_tombstones)
    missing = sorted(set(exp) - set(got))[:5]
    extra = sorted(set(got) - set(exp))[:5]
    assert got == exp, "after compaction up to %d: missing %s, unexpected %s" % (e1, missing, extra)
    return e1, got


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_compaction_matches_model(broker_factory, compression):
    b = broker_factory(props=PROPS)
    topic = unique("cmp-" + compression)
    ck_create_topic(b, topic, 1, config=TOPIC_CFG)
    model = produce_model(b, topic, 3000, 50, compression=compression, seed=len(compression))
    # a first pass may run while the producer is still writing; wait for the
    # passes that follow it to cover most of the log
    wait_until(lambda: cleaner_offset(b, topic) > 1500, 30, "compaction past offset 1500 of %s" % topic)
    e, got = read_stable(b, topic, model)
    assert e > 1500 and len(got) < len(model) / 2, "little was compacted: end %d, %d of %d left" % (
        e, len(got), len(model))
    assert re.search(r"compacted \[\d+, \d+\).*record\(s\) removed", b.log_text())
    # a restart keeps the state and the checkpoint (no work redone)
    b.restart()
    assert cleaner_offset(b, topic) >= e
    assert read_from_zero(b, topic) == got


def test_keyless_record_refused(broker_factory):
    b = broker_factory(props=PROPS)
    topic = unique("cmp-nokey")
    ck_create_topic(b, topic, 1, config=TOPIC_CFG)
    p = ck_producer(b, **{"message.send.max.retries": 0})
    d = Delivery()
    p.produce(topic, value=b"no key", on_delivery=d)
    ck_produce_sync(p)
    errs = d.errors()
    assert len(errs) == 1 and errs[0][0].code() == 87, errs  # INVALID_RECORD
    c = ck_consumer(b)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0), "something was stored"
    # keyed records are still accepted, and a delete-policy topic takes keyless ones
    p.produce(topic, key=b"k", value=b"v", on_delivery=d)
    other = unique("plain")
    ck_create_topic(b, other, 1)
    p.produce(other, value=b"no key", on_delivery=d)
    ck_produce_sync(p)
    assert len(d.ok()) == 2
    c.close()


def test_tombstones_expire(broker_factory):
    b = broker_factory(props=PROPS)
    topic = unique("cmp-tomb")
    cfg = dict(TOPIC_CFG)
    cfg["delete.retention.ms"] = "0"
    ck_create_topic(b, topic, 1, config=cfg)
    model = produce_model(b, topic, 1500, 30, seed=7, tomb_every=3)
    e, got = read_stable(b, topic, model, keep_tombstones=False)
    assert all(v is not None for off, (k, v) in got.items() if off < e)


def test_consumer_offsets_compacted_and_replayed(broker_factory):
    props = dict(PROPS)
    props.update({"offsets.topic.num.partitions": 1, "offsets.topic.segment.bytes": 4096})
    b = broker_factory(props=props)
    topic = unique("cmp-grp")
    ck_create_topic(b, topic, 3)
    c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-compact", "enable.auto.commit": False})
    last = {}
    for i in range(150):
        offs = [TopicPartition(topic, p, i * 3 + p + 1) for p in range(3)]
        c.commit(offsets=offs, asynchronous=False)
        last = {p: i * 3 + p + 1 for p in range(3)}
    wait_until(lambda: cleaner_offset(b, "__consumer_offsets") > 0, 30, "compaction of __consumer_offsets")
    assert re.search(r"__consumer_offsets-0: compacted .* [1-9]\d* record\(s\) removed", b.log_text())
    c.close()
    for clean in (True, False):
        b.restart(clean=clean)
        c2 = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": "g-compact", "enable.auto.commit": False})
        got = {p.partition: p.offset for p in c2.committed([TopicPartition(topic, p) for p in range(3)], timeout=20)}
        assert got == last, "committed offsets after compaction and restart: %s, want %s" % (got, last)
        c2.close()


def test_enospc_during_cleaning(broker_factory):
    b = broker_factory(props=PROPS, env={"RILL_FAILPOINTS": "st.clean.write=ENOSPC*3"})
    topic = unique("cmp-nospc")
    ck_create_topic(b, topic, 1, config=TOPIC_CFG)
    model = produce_model(b, topic, 1500, 40, seed=3)
    wait_until(lambda: "compaction pass abandoned" in b.log_text(), 30, "an abandoned pass")
    # the failpoint is used up after three hits: a later pass succeeds
    read_stable(b, topic, model)
    assert not os.path.exists(os.path.join(b.partition_dir(topic, 0), "cleaner-staging"))


def test_list_offsets_after_compaction(broker_factory):
    """ListOffsets earliest stays 0, latest the high watermark, and by
    timestamp answers the first surviving record at or after the time."""
    b = broker_factory(props=PROPS)
    topic = unique("cmp-lo")
    ck_create_topic(b, topic, 1, config=TOPIC_CFG)
    rnd = random.Random(11)
    p = ck_producer(b, **{"linger.ms": 20, "batch.num.messages": 50})
    d = Delivery()
    t0 = 1_700_000_000_000
    for i in range(2000):
        p.produce(topic, key=b"key-%d" % rnd.randrange(25), value=b"v%d" % i, timestamp=t0 + i, on_delivery=d)
    ck_produce_sync(p)
    assert not d.errors(), d.errors()[:3]
    model = {m.offset(): (m.key(), m.value()) for m in d.ok()}
    ts_of = {m.offset(): m.timestamp()[1] for m in d.ok()}
    e, got = read_stable(b, topic, model)
    c = ck_consumer(b)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, len(model))
    survivors = sorted(got)
    removed = [o for o in sorted(model) if o not in got and o < e]
    assert removed, "nothing was compacted"
    for target_off in removed[-300:] + survivors[:3]:  # near the survivors, where batches lost their tails
        target = ts_of[target_off]
        want = min(o for o in survivors if ts_of[o] >= target)
        res = c.offsets_for_times([TopicPartition(topic, 0, target)], timeout=10)
        assert res[0].offset == want, "ts %d (offset %d, removed=%s): got %d, want %d" % (
            target, target_off, target_off not in got, res[0].offset, want)
    # a fetch at a removed offset starts at the next surviving record
    c.assign([TopicPartition(topic, 0, removed[0])])
    first = None
    for _ in range(100):
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            first = m.offset()
            break
    assert first == min(o for o in survivors if o > removed[0])
    c.close()


def test_broker_default_policy_and_compact_delete(broker_factory):
    """log.cleanup.policy=compact makes a topic created without configs
    compacted (keyless records refused); cleanup.policy=compact,delete
    compacts too."""
    props = dict(PROPS)
    props["log.cleanup.policy"] = "compact"
    b = broker_factory(props=props)
    plain = unique("cmp-default")
    ck_create_topic(b, plain, 1)
    p = ck_producer(b, **{"message.send.max.retries": 0})
    d = Delivery()
    p.produce(plain, value=b"no key", on_delivery=d)
    ck_produce_sync(p)
    assert [e.code() for e, m in d.errors()] == [87]
    both = unique("cmp-both")
    cfg = dict(TOPIC_CFG)
    cfg["cleanup.policy"] = "compact,delete"
    ck_create_topic(b, both, 1, config=cfg)
    model = produce_model(b, both, 1500, 30, seed=5)
    read_stable(b, both, model)


@pytest.mark.parametrize("clean", [True, False])
def test_failure_after_commit_finished_at_restart(broker_factory, clean):
    """An error after the swap's commit point (st.clean.swapped) takes the
    partition offline (produce gets KAFKA_STORAGE_ERROR); the restart (clean
    stop or kill -9) finishes the swap: the log matches the model and takes
    writes again."""
    b = broker_factory(props=PROPS, env={"RILL_FAILPOINTS": "st.clean.swapped=EIO*1"})
    topic = unique("cmp-commit")
    ck_create_topic(b, topic, 1, config=TOPIC_CFG)
    model = produce_model(b, topic, 1500, 40, seed=9)
    wait_until(lambda: "failed after its commit point" in b.log_text(), 30, "the injected failure")
    p = ck_producer(b, **{"message.send.max.retries": 0, "message.timeout.ms": 5000})
    d = Delivery()
    p.produce(topic, key=b"k", value=b"refused", on_delivery=d)
    p.flush(10)
    assert [e.code() for e, m in d.errors()] == [56], d.reports  # KAFKA_STORAGE_ERROR
    if clean:
        b.stop(expect_clean=False)  # a fatal log: no clean-shutdown marker
        b.env.pop("RILL_FAILPOINTS")
        b.start()
    else:
        b.env.pop("RILL_FAILPOINTS")
        b.restart(clean=False)
    assert "finishing an interrupted compaction swap" in b.log_text()
    e, got = read_stable(b, topic, model)
    more = produce_model(b, topic, 10, 40, seed=10)
    assert min(more) == max(model) + 1
