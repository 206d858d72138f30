"""Topic lifecycle against a real rilld (issue 4, first part): DeleteRecords
(v0 and flexible v2, spoken with tests/kwire.py since confluent-kafka 1.7 has
no delete_records), the log start offset in ListOffsets earliest and in
Fetch (a consumer below it resets per auto.offset.reset), persisted across a
restart and a kill -9; retention by time and by size run by the cleaner
thread (old segments deleted, the active one kept); CreatePartitions through
confluent-kafka's AdminClient (grow, produce to the new partition, metadata,
validate_only, shrinking and equal counts refused)."""
import os
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import NewPartitions

import kwire
from rilltest import (ck_admin, ck_consume, ck_consumer, ck_create_topic, ck_produce_sync, ck_producer,
                      ck_read_partition, ck_wait_topic, unique, wait_until)

API_DELETE_RECORDS = 21
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PARTITIONS = 37


def delete_records(broker, topic, parts, version=0, timeout_ms=5000):
    """parts: {partition: before_offset}. Returns {partition: (error, low_watermark)}."""
    ps = sorted(parts.items())
    if version >= 2:
        body = kwire.compact_array(
            [(topic, ps)],
            lambda t: kwire.compact_string(t[0]) + kwire.compact_array(
                t[1], lambda p: kwire.i32(p[0]) + kwire.i64(p[1]) + kwire.TAGS_NONE) + kwire.TAGS_NONE)
        body += kwire.i32(timeout_ms) + kwire.TAGS_NONE
    else:
        body = kwire.array([(topic, ps)], lambda t: kwire.string(t[0]) + kwire.array(
            t[1], lambda p: kwire.i32(p[0]) + kwire.i64(p[1])))
        body += kwire.i32(timeout_ms)
    with kwire.Conn(broker.port) as c:
        payload = c.roundtrip(API_DELETE_RECORDS, version, body, header_version=2 if version >= 2 else 1)
    rd = kwire.Reader(payload, 4)
    out = {}
    if version >= 2:
        rd.tags()
        rd.i32()

        def part(r):
            p, lw, err = r.i32(), r.i64(), r.i16()
            r.tags()
            out[p] = (err, lw)

        def top(r):
            assert r.compact_string() == topic
            r.compact_array(part)
            r.tags()
        rd.compact_array(top)
    else:
        rd.i32()

        def part(r):
            p, lw, err = r.i32(), r.i64(), r.i16()
            out[p] = (err, lw)

        def top(r):
            assert r.string() == topic
            r.array(part)
        rd.array(top)
    return out


def produce_n(broker, topic, n, partition=0, size=100, timestamp=None):
    """n records in small batches (5 each: several per small segment)."""
    p = ck_producer(broker, batch_num_messages=5)
    errs = []

    def dr(err, msg):
        if err is not None:
            errs.append(err)
    for i in range(n):
        kw = {"timestamp": timestamp} if timestamp else {}
        p.produce(topic, value=b"v%05d" % i + b"x" * size, key=b"k%d" % i, partition=partition, on_delivery=dr, **kw)
        if i % 100 == 0:
            p.poll(0)
    ck_produce_sync(p)
    assert not errs, errs[0]


def watermarks(broker, topic, partition=0):
    c = ck_consumer(broker)
    try:
        return c.get_watermark_offsets(ck.TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def test_delete_records(broker):
    topic = ck_create_topic(broker, unique("dr"), 2, config={"segment.bytes": "4096"})
    produce_n(broker, topic, 200)
    produce_n(broker, topic, 10, partition=1)
    nseg = len(broker.segment_files(topic, 0))
    assert nseg > 3
    assert watermarks(broker, topic) == (0, 200)
    # v0: move to 120 (a middle segment); past the high watermark is refused
    res = delete_records(broker, topic, {0: 120, 1: 11}, version=0)
    assert res[0] == (0, 120)
    assert res[1][0] == OFFSET_OUT_OF_RANGE
    assert watermarks(broker, topic) == (120, 200)
    assert watermarks(broker, topic, 1) == (0, 10)
    assert len(broker.segment_files(topic, 0)) < nseg
    # records before the start are gone: reading from it gives offset 120 first
    msgs = ck_read_partition(broker, topic, 0, 120, 200)
    assert [m.offset() for m in msgs] == list(range(120, 200))
    assert msgs[0].value().startswith(b"v00120")
    # a consumer at an old offset resets per auto.offset.reset
    c = ck_consumer(broker, auto_offset_reset="earliest")
    try:
        c.assign([ck.TopicPartition(topic, 0, 5)])
        m = ck_consume(c, 1)[0]
        assert m.offset() == 120
    finally:
        c.close()
    c = ck_consumer(broker, auto_offset_reset="latest")
    try:
        c.assign([ck.TopicPartition(topic, 0, 5)])
        time.sleep(1.0)  # let the reset to the end happen first
        produce_n(broker, topic, 1)
        m = ck_consume(c, 1)[0]
        assert m.offset() == 200
    finally:
        c.close()
    # v2 (flexible), -1 = the high watermark; never backwards; unknown partition
    res = delete_records(broker, topic, {0: 50}, version=2)
    assert res[0] == (0, 120)
    res = delete_records(broker, topic, {0: -1, 7: 1}, version=2)
    assert res[0] == (0, 201)
    assert res[7][0] == UNKNOWN_TOPIC_OR_PARTITION
    assert watermarks(broker, topic) == (201, 201)
    produce_n(broker, topic, 3)
    assert [m.offset() for m in ck_read_partition(broker, topic, 0, 201, 204)] == [201, 202, 203]
    # persisted across a clean restart and a kill -9
    broker.restart()
    assert watermarks(broker, topic) == (201, 204)
    res = delete_records(broker, topic, {0: 202, 1: 4}, version=1)
    assert res == {0: (0, 202), 1: (0, 4)}
    broker.kill9()
    broker.start()
    assert watermarks(broker, topic) == (202, 204)
    assert watermarks(broker, topic, 1) == (4, 10)


def test_retention_ms(broker_factory):
    b = broker_factory(props={"log.retention.check.interval.ms": 100})
    topic = ck_create_topic(b, unique("rt"), 1, config={"segment.bytes": "2048", "retention.ms": "60000"})
    old = int(time.time() * 1000) - 3600 * 1000  # an hour ago: past retention.ms
    produce_n(b, topic, 100, timestamp=old)
    nseg = len(b.segment_files(topic, 0))
    assert nseg > 3
    wait_until(lambda: len(b.segment_files(topic, 0)) == 1, 10, "old segments deleted by retention.ms")
    low, high = watermarks(b, topic)
    assert high == 100 and 0 < low < 100
    # the active segment stays, and what it holds is readable
    msgs = ck_read_partition(b, topic, 0, low, high)
    assert msgs[0].offset() == low
    # new records are recent: kept
    produce_n(b, topic, 5)
    time.sleep(0.5)
    assert watermarks(b, topic) == (low, 105)


def test_retention_bytes(broker_factory):
    b = broker_factory(props={"log.retention.check.interval.ms": 100})
    topic = ck_create_topic(b, unique("rb"), 1,
                            config={"segment.bytes": "2048", "retention.bytes": "5000", "retention.ms": "-1"})
    produce_n(b, topic, 200)

    def small():
        return sum(os.path.getsize(f) for f in b.segment_files(topic, 0)) <= 5000 + 2048
    wait_until(small, 10, "log trimmed to retention.bytes")
    low, high = watermarks(b, topic)
    assert high == 200 and low > 0
    assert [m.offset() for m in ck_read_partition(b, topic, 0, low, high)] == list(range(low, high))


def test_broker_default_retention(broker_factory):
    b = broker_factory(props={"log.retention.check.interval.ms": 100, "log.retention.bytes": 3000,
                              "log.segment.bytes": 2048})
    topic = ck_create_topic(b, unique("rd"), 1)
    produce_n(b, topic, 150)
    wait_until(lambda: watermarks(b, topic)[0] > 0, 10, "broker default log.retention.bytes applied")
    # compacted topics are not subject to retention
    ctopic = ck_create_topic(b, unique("rc"), 1, config={"cleanup.policy": "compact"})
    produce_n(b, ctopic, 150)
    time.sleep(0.5)
    assert watermarks(b, ctopic)[0] == 0


def test_create_partitions(broker):
    topic = ck_create_topic(broker, unique("cp"), 2)
    admin = ck_admin(broker)
    # validate_only changes nothing
    fs = admin.create_partitions([NewPartitions(topic, 4)], validate_only=True)
    fs[topic].result(timeout=10)
    md = admin.list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 2
    fs = admin.create_partitions([NewPartitions(topic, 4)])
    fs[topic].result(timeout=10)
    ck_wait_topic(broker, topic, 4)
    assert os.path.isdir(broker.partition_dir(topic, 3))
    produce_n(broker, topic, 3, partition=3)
    assert [m.offset() for m in ck_read_partition(broker, topic, 3, 0, 3)] == [0, 1, 2]
    # shrinking or keeping the count is refused with a message
    for n in (3, 4):
        fs = admin.create_partitions([NewPartitions(topic, n)])
        with pytest.raises(ck.KafkaException) as ei:
            fs[topic].result(timeout=10)
        err = ei.value.args[0]
        assert err.code() == INVALID_PARTITIONS, err
        assert "partitions" in err.str()
    # unknown topic
    fs = admin.create_partitions([NewPartitions(unique("nope"), 3)])
    with pytest.raises(ck.KafkaException) as ei:
        fs[list(fs)[0]].result(timeout=10)
    assert ei.value.args[0].code() == UNKNOWN_TOPIC_OR_PARTITION
    # survives a restart (the catalog has the new count)
    broker.restart()
    ck_wait_topic(broker, topic, 4)
    assert [m.offset() for m in ck_read_partition(broker, topic, 3, 0, 3)] == [0, 1, 2]


def test_create_partitions_ignores_orphan_dir(broker):
    """A leftover directory named like a new partition (an orphan the catalog
    never named) does not lend the new partition its records."""
    import shutil
    topic = ck_create_topic(broker, unique("co"), 1)
    other = ck_create_topic(broker, unique("cx"), 1)
    produce_n(broker, other, 7)
    broker.stop()
    shutil.copytree(broker.partition_dir(other, 0), broker.partition_dir(topic, 1))
    broker.start()
    admin = ck_admin(broker)
    admin.create_partitions([NewPartitions(topic, 2)])[topic].result(timeout=10)
    ck_wait_topic(broker, topic, 2)
    assert watermarks(broker, topic, 1) == (0, 0)
    produce_n(broker, topic, 2, partition=1)
    assert [m.value()[:6] for m in ck_read_partition(broker, topic, 1, 0, 2)] == [b"v00000", b"v00001"]
