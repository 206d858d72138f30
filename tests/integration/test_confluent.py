"""Debian's python3-confluent-kafka (librdkafka 2.0.2) against rilld.

Producer and assign()-based Consumer (no group commits): keys, values,
headers, CreateTime timestamps, null vs empty keys/values, binary bytes,
every codec, acks 0/1/all, many partitions with the default partitioner,
messages near and over message.max.bytes, metadata, AdminClient create and
delete (validate_only, TOPIC_ALREADY_EXISTS, invalid names), auto-creation,
offsets_for_times and watermarks, long-poll fetch and an idle consumer that
does not make the broker spin."""
import json
import os
import random
import time

import confluent_kafka as ck
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

import kwire
from rilltest import (Delivery, ck_admin, ck_consume, ck_consumer, ck_create_topic, ck_produce_sync,
                      ck_producer, ck_read_partition, ck_wait_topic, unique, wait_until)

MESSAGE_MAX_BYTES = 1048588  # rilld's default, as Kafka's


def produce_all(broker, topic, records, **conf):
    """records: list of dicts with produce() kwargs. Returns the delivery
    reports in production order; every one must have succeeded."""
    p = ck_producer(broker, **conf)
    dr = Delivery()
    for r in records:
        p.produce(topic, on_delivery=dr, **r)
        p.poll(0)
    ck_produce_sync(p)
    errs = dr.errors()
    assert not errs, "delivery failed for %d record(s), first: %s" % (len(errs), errs[0][0])
    assert len(dr.reports) == len(records)
    return dr.ok()


def headers_of(m):
    return m.headers() or []


def on_disk_batches(broker, topic, partition):
    return [x for seg in broker.segment_files(topic, partition) for x in kwire.read_segment_batches(seg)]


# ---------------------------------------------------------------------------
# the seeds' producer example
# ---------------------------------------------------------------------------

def test_seed_producer_example(shared_broker):
    topic = unique("seed")
    producer = ck.Producer({'bootstrap.servers': shared_broker.bootstrap})
    producer.produce(topic, key='user-1', value='hello rill')
    producer.produce(topic, key=b'user-2', value=b'second')
    left = producer.flush(30)
    assert left == 0, "%d message(s) not delivered" % left
    msgs = ck_read_partition(shared_broker, topic, 0, 0, 2)
    assert [(m.key(), m.value(), m.offset()) for m in msgs] == [
        (b'user-1', b'hello rill', 0), (b'user-2', b'second', 1)]


# ---------------------------------------------------------------------------
# record contents, byte for byte
# ---------------------------------------------------------------------------

def test_keys_values_headers_timestamps(shared_broker):
    topic = ck_create_topic(shared_broker, unique("rec"), partitions=1)
    base_ts = 1_600_000_000_000
    records = []
    for i in range(50):
        records.append(dict(
            key=b"key-%03d" % i,
            value=b"value-%03d-" % i + bytes(range(i % 7)),
            timestamp=base_ts + i * 1000 + (i % 3),
            headers=[("h1", b"v%d" % i), ("h1", b"duplicate key keeps order"),
                     ("empty", b""), ("bin", bytes([0, 255, 10, 13]))],
            partition=0))
    reports = produce_all(shared_broker, topic, records)
    assert [m.offset() for m in reports] == list(range(50)), "delivery offsets not 0..49"
    msgs = ck_read_partition(shared_broker, topic, 0, 0, 50)
    for i, (m, r) in enumerate(zip(msgs, records)):
        assert m.offset() == i
        assert m.key() == r["key"], "offset %d key %r != %r" % (i, m.key(), r["key"])
        assert m.value() == r["value"], "offset %d value %r != %r" % (i, m.value(), r["value"])
        assert headers_of(m) == r["headers"], "offset %d headers %r != %r" % (i, headers_of(m), r["headers"])
        assert m.timestamp() == (ck.TIMESTAMP_CREATE_TIME, r["timestamp"]), \
            "offset %d timestamp %r, produced CreateTime %d" % (i, m.timestamp(), r["timestamp"])


def test_null_and_empty_keys_and_values(shared_broker):
    topic = ck_create_topic(shared_broker, unique("nulls"), partitions=1)
    cases = [(None, None), (None, b""), (b"", None), (b"", b""), (b"k", None), (None, b"v"), (b"k", b"v")]
    produce_all(shared_broker, topic, [dict(key=k, value=v, partition=0) for k, v in cases])
    msgs = ck_read_partition(shared_broker, topic, 0, 0, len(cases))
    got = [(m.key(), m.value()) for m in msgs]
    assert got == cases, "null/empty distinction lost:\n sent %r\n read %r" % (cases, got)
    for m in msgs:
        assert m.headers() is None, "headers appeared on a record produced without: %r" % m.headers()


def test_binary_bytes_various_sizes(shared_broker):
    topic = ck_create_topic(shared_broker, unique("bin"), partitions=1)
    rng = random.Random(1234)
    sizes = [0, 1, 2, 127, 128, 255, 256, 1000, 16383, 16384, 65536, 300_000]
    records = [dict(key=bytes(range(256)), value=bytes(range(256)) * 4, partition=0)]
    for n in sizes:
        records.append(dict(key=rng.randbytes(n % 1000), value=rng.randbytes(n), partition=0))
    produce_all(shared_broker, topic, records)
    msgs = ck_read_partition(shared_broker, topic, 0, 0, len(records))
    for m, r in zip(msgs, records):
        assert m.key() == r["key"] and m.value() == r["value"], \
            "offset %d: binary record differs (value %d bytes read, %d sent)" % (
                m.offset(), len(m.value() or b""), len(r["value"]))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(shared_broker, codec):
    topic = ck_create_topic(shared_broker, unique("codec-" + codec), partitions=1)
    rng = random.Random(codec)
    records = []
    for i in range(300):
        v = (b"%s compressible %05d " % (codec.encode(), i)) * rng.randint(1, 20)
        if i % 10 == 0:
            v += rng.randbytes(50)  # some incompressible bytes too
        records.append(dict(key=b"k%05d" % i, value=v, headers=[("i", b"%d" % i)], partition=0,
                            timestamp=1_700_000_000_000 + i))
    produce_all(shared_broker, topic, records, compression_type=codec, linger_ms=100)
    msgs = ck_read_partition(shared_broker, topic, 0, 0, len(records))
    for i, (m, r) in enumerate(zip(msgs, records)):
        assert (m.key(), m.value(), headers_of(m), m.timestamp()[1]) == (
            r["key"], r["value"], r["headers"], r["timestamp"]), "%s: offset %d differs" % (codec, i)
    batches = on_disk_batches(shared_broker, topic, 0)
    assert batches, "no batches on disk for %s-0" % topic
    codecs = {kwire.CODEC_NAMES[b["codec"]] for b in batches}
    assert codecs == {codec}, "%s: stored batches use codecs %s (should be stored verbatim)" % (codec, codecs)
    assert all(b["crc_ok"] for b in batches), "a stored batch fails its CRC"
    assert [b["offset"] for b in batches][0] == 0
    offs = [(b["offset"], b["offset"] + b["last_offset_delta"]) for b in batches]
    for (a0, a1), (b0, _) in zip(offs, offs[1:]):
        assert b0 == a1 + 1, "stored batch offsets are not contiguous: %r" % offs


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(shared_broker, acks):
    topic = ck_create_topic(shared_broker, unique("acks" + acks), partitions=1)
    n = 200
    p = ck_producer(shared_broker, acks=acks)
    dr = Delivery()
    for i in range(n):
        p.produce(topic, key=b"%d" % i, value=b"acks=%s #%d" % (acks.encode(), i), partition=0, on_delivery=dr)
        p.poll(0)
    ck_produce_sync(p)
    assert not dr.errors(), "acks=%s: delivery errors %s" % (acks, dr.errors()[:3])
    if acks != "0":
        assert [m.offset() for m in dr.ok()] == list(range(n)), "acks=%s: delivery offsets not 0..%d" % (acks, n - 1)
    # acks=0 gets no response: the records become visible once durable
    msgs = ck_read_partition(shared_broker, topic, 0, 0, n, timeout=30)
    assert [m.value() for m in msgs] == [b"acks=%s #%d" % (acks.encode(), i) for i in range(n)]


def test_many_partitions_default_partitioner(shared_broker):
    nparts = 12
    topic = ck_create_topic(shared_broker, unique("parts"), partitions=nparts)
    records = []
    for i in range(1200):
        records.append(dict(key=b"user-%d" % (i % 150), value=b"seq-%05d" % i))
    for i in range(60):
        records.append(dict(key=None, value=b"nokey-%05d" % i))
    reports = produce_all(shared_broker, topic, records)
    where = {}
    for m in reports:
        where.setdefault(m.partition(), []).append((m.offset(), m.key(), m.value()))
    assert len(where) >= nparts // 2, "default partitioner used only partitions %s" % sorted(where)
    key_part = {}
    for m in reports:
        if m.key() is not None:
            assert key_part.setdefault(m.key(), m.partition()) == m.partition(), \
                "key %r went to partitions %d and %d" % (m.key(), key_part[m.key()], m.partition())
    total = 0
    for part, sent in where.items():
        sent.sort()
        assert [o for o, _, _ in sent] == list(range(len(sent))), "partition %d offsets not contiguous" % part
        msgs = ck_read_partition(shared_broker, topic, part, 0, len(sent))
        got = [(m.offset(), m.key(), m.value()) for m in msgs]
        assert got == sent, "partition %d: read back differs from the delivery reports" % part
        total += len(msgs)
    assert total == len(records)
    # per key, records are in production order
    for key in key_part:
        part = key_part[key]
        seq = [v for _, k, v in where[part] if k == key]
        assert seq == sorted(seq), "key %r out of order in partition %d" % (key, part)


def test_large_messages_and_one_over_message_max_bytes(shared_broker):
    topic = ck_create_topic(shared_broker, unique("large"), partitions=1)
    # the producer allows more than the broker, so the broker is the one to refuse
    p = ck_producer(shared_broker, **{"message.max.bytes": 4_000_000, "linger.ms": 0,
                                      "batch.size": 4_000_000, "compression.type": "none"})
    rng = random.Random(5)
    ok_sizes = [500_000, 1_000_000, MESSAGE_MAX_BYTES - 200]
    dr = Delivery()
    for n in ok_sizes:
        p.produce(topic, key=b"big", value=rng.randbytes(n), partition=0, on_delivery=dr)
        ck_produce_sync(p)  # one batch each
    assert not dr.errors(), "a message of %s bytes (under message.max.bytes) failed: %s" % (
        ok_sizes, dr.errors())
    assert [m.offset() for m in dr.ok()] == [0, 1, 2]
    sent = [m.value() for m in dr.ok()]
    c = ck_consumer(shared_broker)
    try:
        _, high_before = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()
    assert high_before == 3

    over = Delivery()
    p.produce(topic, key=b"big", value=rng.randbytes(MESSAGE_MAX_BYTES + 1000), partition=0, on_delivery=over)
    ck_produce_sync(p)
    assert len(over.reports) == 1
    err, _ = over.reports[0]
    assert err is not None, "a record over message.max.bytes was accepted by the broker"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, "expected MSG_SIZE_TOO_LARGE from the broker, got %s" % err

    msgs = ck_read_partition(shared_broker, topic, 0, 0, 3, **{"fetch.max.bytes": 2_000_000})
    for m, v in zip(msgs, sent):
        assert m.value() == v, "large message at offset %d differs (%d bytes read, %d sent)" % (
            m.offset(), len(m.value()), len(v))
    c = ck_consumer(shared_broker)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()
    assert high == 3, "the refused message moved the end offset to %d" % high


def test_log_append_time_topic(shared_broker):
    """A topic with message.timestamp.type=LogAppendTime: the broker stamps
    the batch, consumers see LogAppendTime, and the Produce response carries
    the append time (it is -1 for CreateTime topics, see test_bad_input)."""
    admin = ck_admin(shared_broker)
    topic = unique("logappend")
    fs = admin.create_topics([NewTopic(topic, 1, 1, config={"message.timestamp.type": "LogAppendTime"})],
                             operation_timeout=20, request_timeout=20)
    fs[topic].result(timeout=30)
    ck_wait_topic(shared_broker, topic, 1, admin=admin)
    t_before = int(time.time() * 1000)
    produce_all(shared_broker, topic, [dict(value=b"v%d" % i, timestamp=1_000_000_000_000 + i, partition=0)
                                       for i in range(5)])
    t_after = int(time.time() * 1000)
    msgs = ck_read_partition(shared_broker, topic, 0, 0, 5)
    for m in msgs:
        tstype, ts = m.timestamp()
        assert tstype == ck.TIMESTAMP_LOG_APPEND_TIME, "timestamp type %d on a LogAppendTime topic" % tstype
        assert t_before - 1000 <= ts <= t_after + 1000, "LogAppendTime %d outside the produce window" % ts
    with kwire.Conn(shared_broker.port) as c:
        res = c.produce(9, [(topic, [(0, kwire.build_batch([(b"k", b"raw", [])], base_ts=42))])])
    r = res[(topic, 0)]
    assert r["error"] == 0 and r["log_append_time"] >= t_before, "Produce v9 on LogAppendTime topic: %r" % r
    batches = on_disk_batches(shared_broker, topic, 0)
    assert all(b["attributes"] & 0x08 for b in batches), "stored batches lack the LogAppendTime attribute bit"
    assert all(b["crc_ok"] for b in batches), "a restamped batch was stored with a stale CRC"


# ---------------------------------------------------------------------------
# metadata and admin
# ---------------------------------------------------------------------------

def test_list_topics_metadata(shared_broker):
    topic = ck_create_topic(shared_broker, unique("md"), partitions=5)
    admin = ck_admin(shared_broker)
    md = admin.list_topics(timeout=10)
    assert isinstance(md.cluster_id, str) and md.cluster_id, "cluster id %r" % md.cluster_id
    assert md.controller_id == 1, "controller id %r (node.id is 1)" % md.controller_id
    assert list(md.brokers) == [1], md.brokers
    br = md.brokers[1]
    assert (br.host, br.port) == ("127.0.0.1", shared_broker.port), "broker advertised as %s:%s" % (br.host, br.port)
    assert topic in md.topics, "topic missing from metadata: %s" % sorted(md.topics)
    t = md.topics[topic]
    assert t.error is None, t.error
    assert sorted(t.partitions) == list(range(5))
    for pid, pm in t.partitions.items():
        assert pm.error is None and pm.leader == 1 and list(pm.replicas) == [1] and list(pm.isrs) == [1], \
            "partition %d: leader %s replicas %s isrs %s error %s" % (pid, pm.leader, pm.replicas, pm.isrs, pm.error)
    # the cluster id is stable across requests and restarts of the client
    assert ck_admin(shared_broker).list_topics(timeout=10).cluster_id == md.cluster_id


def test_cluster_id_survives_restart(broker):
    cid = ck_admin(broker).list_topics(timeout=10).cluster_id
    broker.restart()
    assert ck_admin(broker).list_topics(timeout=10).cluster_id == cid, "cluster id changed across a restart"


def _create(admin, topics, **kw):
    fs = admin.create_topics(topics, operation_timeout=20, request_timeout=20, **kw)
    out = {}
    for name, f in fs.items():
        try:
            f.result(timeout=30)
            out[name] = None
        except KafkaException as e:
            out[name] = e.args[0]
    return out


def test_admin_create_topics(shared_broker):
    admin = ck_admin(shared_broker)
    name = unique("created")
    res = _create(admin, [NewTopic(name, 3, 1)])
    assert res[name] is None, "create_topics failed: %s" % res[name]
    ck_wait_topic(shared_broker, name, 3, admin=admin)
    assert os.path.isdir(shared_broker.partition_dir(name, 2)), "no partition dir for %s-2" % name

    again = _create(admin, [NewTopic(name, 3, 1)])
    assert again[name] is not None and again[name].code() == KafkaError.TOPIC_ALREADY_EXISTS, \
        "creating an existing topic: %s" % again[name]

    # validate_only: answers as if created, creates nothing
    vname = unique("validate-only")
    res = _create(admin, [NewTopic(vname, 2, 1)], validate_only=True)
    assert res[vname] is None, "validate_only create failed: %s" % res[vname]
    md = admin.list_topics(timeout=10)
    assert vname not in md.topics, "validate_only created the topic"
    assert not any(d.startswith(vname + "-") for d in shared_broker.topic_dirs()), "validate_only wrote to disk"
    res = _create(admin, [NewTopic(name, 3, 1)], validate_only=True)
    assert res[name] is not None and res[name].code() == KafkaError.TOPIC_ALREADY_EXISTS, \
        "validate_only of an existing topic: %s" % res[name]


@pytest.mark.parametrize("bad", ["has space", "a" * 250, ".", "..", "slash/in/name", "star*", "ümlaut", ""])
def test_admin_create_invalid_topic_names(shared_broker, bad):
    admin = ck_admin(shared_broker)
    res = _create(admin, [NewTopic(bad, 1, 1)])
    err = res[bad]
    assert err is not None, "topic name %r was accepted" % bad
    assert err.code() == KafkaError.TOPIC_EXCEPTION, "topic name %r: expected INVALID_TOPIC_EXCEPTION, got %s" % (bad, err)
    md = admin.list_topics(timeout=10)
    assert bad not in md.topics, "invalid topic %r appears in metadata" % bad


def test_admin_create_with_partitions_and_config(shared_broker):
    admin = ck_admin(shared_broker)
    name = unique("cfg")
    res = _create(admin, [NewTopic(name, 7, 1, config={"segment.bytes": "1048576", "retention.ms": "3600000"})])
    assert res[name] is None, "create with configs failed: %s" % res[name]
    ck_wait_topic(shared_broker, name, 7, admin=admin)


def test_admin_delete_topics(shared_broker):
    admin = ck_admin(shared_broker)
    name = ck_create_topic(shared_broker, unique("doomed"), partitions=2)
    produce_all(shared_broker, name, [dict(value=b"x%d" % i, partition=i % 2) for i in range(10)])
    fs = admin.delete_topics([name], operation_timeout=20, request_timeout=20)
    fs[name].result(timeout=30)
    wait_until(lambda: name not in admin.list_topics(timeout=5).topics, 20, "deleted topic to leave metadata")
    wait_until(lambda: not os.path.exists(shared_broker.partition_dir(name, 0))
               and not os.path.exists(shared_broker.partition_dir(name, 1)), 30,
               "partition dirs of the deleted topic to go away")

    # deleting an unknown topic
    fs = admin.delete_topics([unique("never-existed")], operation_timeout=20, request_timeout=20)
    (f,) = fs.values()
    with pytest.raises(KafkaException) as ei:
        f.result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value

    # the name can be used again, and starts empty
    res = _create(admin, [NewTopic(name, 1, 1)])
    assert res[name] is None, "re-creating a deleted topic failed: %s" % res[name]
    ck_wait_topic(shared_broker, name, 1, admin=admin)
    reports = produce_all(shared_broker, name, [dict(value=b"fresh", partition=0)])
    assert reports[0].offset() == 0, "re-created topic did not start at offset 0"


def test_auto_create_on_produce(broker_factory):
    b = broker_factory(props={"num.partitions": 3})
    topic = unique("auto-produce")
    reports = produce_all(b, topic, [dict(key=b"k%d" % i, value=b"v%d" % i) for i in range(30)])
    md = ck_admin(b).list_topics(topic=topic, timeout=10)
    assert topic in md.topics and md.topics[topic].error is None
    assert len(md.topics[topic].partitions) == 3, "auto-created with %d partitions, num.partitions=3" % len(
        md.topics[topic].partitions)
    assert {m.partition() for m in reports} <= {0, 1, 2}


def test_auto_create_on_metadata(shared_broker):
    """Metadata v1 requests create unknown topics when auto-creation is on;
    a librdkafka producer's metadata lookup does too."""
    topic = unique("auto-md")
    with kwire.Conn(shared_broker.port) as c:
        def created():
            _, md = kwire.parse_metadata_v1(c.roundtrip(kwire.API_METADATA, 1, kwire.metadata_v1_body([topic])))
            t = md["topics"].get(topic)
            assert t is not None, "Metadata v1 answered without the requested topic"
            assert t["error"] in (0, 5), "Metadata v1 for a new topic: error %d" % t["error"]  # 5: LEADER_NOT_AVAILABLE
            return t["error"] == 0 and len(t["partitions"]) == 1
        wait_until(created, 20, "Metadata v1 to auto-create %s" % topic)
    ck_wait_topic(shared_broker, topic, 1)


def test_auto_create_disabled(broker_factory):
    b = broker_factory(props={"auto.create.topics.enable": "false"})
    topic = unique("no-auto")
    p = ck_producer(b, **{"message.timeout.ms": 3000})
    dr = Delivery()
    p.produce(topic, value=b"nowhere", on_delivery=dr)
    p.flush(15)
    assert len(dr.reports) == 1 and dr.reports[0][0] is not None, "produce to a missing topic succeeded"
    assert dr.reports[0][0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                                       KafkaError._MSG_TIMED_OUT), dr.reports[0][0]
    with kwire.Conn(b.port) as c:
        _, md = kwire.parse_metadata_v1(c.roundtrip(kwire.API_METADATA, 1, kwire.metadata_v1_body([topic])))
    assert md["topics"][topic]["error"] == 3, "Metadata v1 for a missing topic with auto-creation off: %r" % (
        md["topics"][topic],)  # UNKNOWN_TOPIC_OR_PARTITION
    assert topic not in ck_admin(b).list_topics(timeout=10).topics
    assert not any(d.startswith(topic) for d in b.topic_dirs()), "a topic dir was created with auto-creation off"


# ---------------------------------------------------------------------------
# offsets
# ---------------------------------------------------------------------------

def test_offsets_for_times_and_watermarks(shared_broker):
    topic = ck_create_topic(shared_broker, unique("times"), partitions=1)
    t0 = 1_650_000_000_000
    produce_all(shared_broker, topic, [dict(value=b"t%d" % i, timestamp=t0 + i * 1000, partition=0)
                                       for i in range(10)])
    c = ck_consumer(shared_broker)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)

        def lookup(ts):
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            return tp.offset
        assert lookup(t0) == 0
        assert lookup(t0 - 100_000) == 0
        assert lookup(t0 + 2500) == 3, "first offset with timestamp >= t0+2.5s should be 3"
        assert lookup(t0 + 9000) == 9
        assert lookup(t0 + 9001) == -1, "a timestamp past every record should give offset -1 (end)"
    finally:
        c.close()


def test_watermarks_of_empty_partition(shared_broker):
    topic = ck_create_topic(shared_broker, unique("empty"), partitions=2)
    c = ck_consumer(shared_broker)
    try:
        for p in (0, 1):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) == (0, 0)
    finally:
        c.close()


def test_seek_to_middle_with_assign(shared_broker):
    topic = ck_create_topic(shared_broker, unique("seek"), partitions=1)
    produce_all(shared_broker, topic, [dict(value=b"m%d" % i, partition=0) for i in range(100)])
    msgs = ck_read_partition(shared_broker, topic, 0, 57, 100)
    assert [m.value() for m in msgs] == [b"m%d" % i for i in range(57, 100)]
    assert [m.offset() for m in msgs] == list(range(57, 100))


# ---------------------------------------------------------------------------
# long poll
# ---------------------------------------------------------------------------

def test_long_poll_delivers_new_record_quickly(shared_broker):
    """A consumer parked in a long poll (fetch.wait.max.ms=5000) gets a record
    produced later well before its wait expires: the append wakes the fetch."""
    topic = ck_create_topic(shared_broker, unique("longpoll"), partitions=1)
    c = ck_consumer(shared_broker, **{"fetch.wait.max.ms": 5000, "fetch.min.bytes": 1})
    p = ck_producer(shared_broker, **{"linger.ms": 0, "acks": "all"})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # let the consumer reach its parked fetch: nothing to read yet
        assert c.consume(num_messages=1, timeout=1.5) == []
        latencies = []
        for i in range(3):
            t0 = time.monotonic()
            p.produce(topic, value=b"wake-%d" % i, partition=0)
            p.poll(0)
            (m,) = ck_consume(c, 1, timeout=10, what="record produced during a long poll")
            latencies.append(time.monotonic() - t0)
            assert m.value() == b"wake-%d" % i and m.offset() == i
            ck_produce_sync(p)
        assert max(latencies) < 1.5, "long poll latencies %s s (fetch.wait.max.ms=5000): fetch not woken by the " \
            "append" % ["%.3f" % x for x in latencies]
    finally:
        c.close()


def test_idle_consumer_does_not_spin(shared_broker):
    """While a consumer idles for 3 s on an empty partition the broker stays
    nearly idle, and the consumer's fetches are parked (few Fetch requests)."""
    topic = ck_create_topic(shared_broker, unique("idle"), partitions=1)
    stats = []
    c = ck_consumer(shared_broker, **{"fetch.wait.max.ms": 1000, "statistics.interval.ms": 500,
                                      "stats_cb": lambda s: stats.append(json.loads(s))})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert c.consume(num_messages=1, timeout=1.0) == []  # settle: connected, fetching

        def fetch_count():
            if not stats:
                return None
            return sum(br.get("req", {}).get("Fetch", 0) for br in stats[-1]["brokers"].values())

        def next_stats():
            # statistics callbacks are served from consume()
            n = len(stats)
            wait_until(lambda: c.consume(num_messages=1, timeout=0.1) == [] and len(stats) > n, 5,
                       "a fresh statistics report")
        next_stats()
        fetches0 = fetch_count()
        cpu0 = shared_broker.cpu_seconds()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:
            assert c.consume(num_messages=1, timeout=0.5) == []
        elapsed = time.monotonic() - t0
        cpu = shared_broker.cpu_seconds() - cpu0
        next_stats()
        fetches = fetch_count() - fetches0
    finally:
        c.close()
    assert cpu < 0.3, "rilld used %.2f CPU-s while one consumer idled for %.1f s (spinning?)" % (cpu, elapsed)
    assert fetches <= 12, "%d Fetch requests in ~%.1f s with fetch.wait.max.ms=1000: the broker is not " \
        "parking empty fetches" % (fetches, elapsed)
