"""Debian's python3-kafka (kafka-python 2.0.2) against rilld.

kafka-python guesses the broker's release from ApiVersions; it must connect
without api_version and pick a release that has record batch v2 (>= 0.11).
KafkaProducer / KafkaConsumer (assign + seek_to_beginning, no group),
codecs (gzip always; snappy/lz4/zstd when their Python modules exist),
KafkaAdminClient create/delete, end/beginning offsets and offsets_for_times,
and records crossing between kafka-python and librdkafka."""
import random
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import codec as kcodec
from kafka import errors as kerrors
from kafka.admin import KafkaAdminClient, NewTopic

from rilltest import ck_create_topic, ck_read_partition, ck_producer, ck_produce_sync, unique, wait_until


def producer(broker, **kw):
    conf = dict(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, request_timeout_ms=30000)
    conf.update(kw)
    return KafkaProducer(**conf)


def consumer(broker, **kw):
    conf = dict(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", fetch_max_wait_ms=100, request_timeout_ms=30000)
    conf.update(kw)
    return KafkaConsumer(**conf)


def read(broker, topic, partition, count, timeout=30, **kw):
    """assign + seek_to_beginning, then poll until `count` records."""
    c = consumer(broker, **kw)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            assert time.monotonic() < deadline, "kafka-python read %d of %d records of %s[%d] in %ss" % (
                len(out), count, topic, partition, timeout)
            for recs in c.poll(timeout_ms=500, max_records=count - len(out)).values():
                out.extend(recs)
        return out
    finally:
        c.close()


def send_all(p, topic, records, timeout=30):
    futs = [p.send(topic, **r) for r in records]
    p.flush(timeout=timeout)
    return [f.get(timeout=timeout) for f in futs]


def test_connects_without_api_version(shared_broker):
    p = producer(shared_broker)
    try:
        v = p.config["api_version"]
        assert v is not None and tuple(v) >= (0, 11), \
            "kafka-python inferred broker version %r from ApiVersions; record batch v2 needs >= 0.11" % (v,)
    finally:
        p.close()
    c = consumer(shared_broker)
    try:
        assert c.bootstrap_connected(), "KafkaConsumer did not connect"
        assert tuple(c.config["api_version"]) >= (0, 11), c.config["api_version"]
    finally:
        c.close()


def test_roundtrip_keys_values_headers_timestamps(shared_broker):
    topic = ck_create_topic(shared_broker, unique("kp"), partitions=1)
    t0 = 1_600_000_000_000
    records = []
    for i in range(60):
        records.append(dict(key=None if i % 10 == 3 else b"key-%d" % i,
                            value=None if i % 10 == 7 else b"value-%d-" % i + bytes(range(i % 256)),
                            headers=[("h", b"%d" % i), ("bin", bytes([0, 1, 254, 255]))] if i % 2 else [],
                            partition=0, timestamp_ms=t0 + i))
    p = producer(shared_broker)
    try:
        metas = send_all(p, topic, records)
    finally:
        p.close()
    assert [m.offset for m in metas] == list(range(60)), "RecordMetadata offsets %s" % [m.offset for m in metas]
    got = read(shared_broker, topic, 0, 60)
    for i, (r, s) in enumerate(zip(got, records)):
        assert r.offset == i
        assert r.key == s["key"], "offset %d key %r != %r" % (i, r.key, s["key"])
        assert r.value == s["value"], "offset %d value %r != %r" % (i, r.value, s["value"])
        assert list(r.headers) == s["headers"], "offset %d headers %r != %r" % (i, r.headers, s["headers"])
        assert (r.timestamp, r.timestamp_type) == (s["timestamp_ms"], 0), \
            "offset %d timestamp %r type %r, produced CreateTime %d" % (i, r.timestamp, r.timestamp_type, s["timestamp_ms"])
    # and librdkafka reads the same bytes
    msgs = ck_read_partition(shared_broker, topic, 0, 0, 60)
    for m, s in zip(msgs, records):
        assert (m.key(), m.value(), m.headers() or []) == (s["key"], s["value"], s["headers"])


CODECS = {
    "gzip": kcodec.has_gzip,
    "snappy": kcodec.has_snappy,
    "lz4": kcodec.has_lz4,
    "zstd": kcodec.has_zstd,
}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_codecs(shared_broker, codec):
    if not CODECS[codec]():
        pytest.skip("kafka-python cannot %s here: its Python module (python3-%s) is not installed" % (
            codec, {"snappy": "snappy", "lz4": "lz4", "zstd": "zstandard", "gzip": "?"}[codec]))
    topic = ck_create_topic(shared_broker, unique("kp-" + codec), partitions=1)
    rng = random.Random(codec)
    records = [dict(key=b"k%d" % i, value=(b"%s payload %d " % (codec.encode(), i)) * rng.randint(1, 30),
                    partition=0) for i in range(300)]
    p = producer(shared_broker, compression_type=codec, linger_ms=50)
    try:
        send_all(p, topic, records)
    finally:
        p.close()
    got = read(shared_broker, topic, 0, len(records))
    assert [(r.key, r.value) for r in got] == [(s["key"], s["value"]) for s in records], \
        "%s: kafka-python read back different records" % codec
    msgs = ck_read_partition(shared_broker, topic, 0, 0, len(records))
    assert [(m.key(), m.value()) for m in msgs] == [(s["key"], s["value"]) for s in records], \
        "%s: librdkafka read back different records" % codec


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_reads_what_librdkafka_compressed(shared_broker, codec):
    """Batches written by librdkafka with each codec kafka-python can decode."""
    if codec != "none" and not CODECS[codec]():
        pytest.skip("kafka-python cannot decode %s here (Python module missing)" % codec)
    topic = ck_create_topic(shared_broker, unique("kp-cross-" + codec), partitions=1)
    p = ck_producer(shared_broker, **{"compression.type": codec, "linger.ms": 20})
    sent = []
    for i in range(50):
        v = b"%s %d " % (codec.encode(), i) * 10
        p.produce(topic, key=b"k%d" % i, value=v, partition=0, headers=[("i", b"%d" % i)])
        sent.append((b"k%d" % i, v, [("i", b"%d" % i)]))
    ck_produce_sync(p)
    got = read(shared_broker, topic, 0, len(sent))
    assert [(r.key, r.value, list(r.headers)) for r in got] == sent


def test_many_partitions(shared_broker):
    topic = ck_create_topic(shared_broker, unique("kp-parts"), partitions=8)
    p = producer(shared_broker)
    try:
        metas = send_all(p, topic, [dict(key=b"key-%d" % (i % 40), value=b"%d" % i) for i in range(400)])
    finally:
        p.close()
    by_part = {}
    for i, m in enumerate(metas):
        by_part.setdefault(m.partition, []).append((m.offset, b"%d" % i))
    assert len(by_part) >= 4, "kafka-python's partitioner used only %s" % sorted(by_part)
    for part, sent in by_part.items():
        got = read(shared_broker, topic, part, len(sent))
        assert [(r.offset, r.value) for r in got] == sorted(sent), "partition %d differs" % part


def test_admin_create_delete_topics(shared_broker):
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap, request_timeout_ms=30000)
    try:
        name = unique("kp-admin")
        admin.create_topics([NewTopic(name=name, num_partitions=3, replication_factor=1)], timeout_ms=20000)
        wait_until(lambda: name in admin.list_topics(), 20, "created topic in kafka-python's list_topics")
        c = consumer(shared_broker)
        try:
            wait_until(lambda: c.partitions_for_topic(name) == {0, 1, 2}, 20, "3 partitions of %s" % name)
        finally:
            c.close()
        with pytest.raises(kerrors.TopicAlreadyExistsError):
            admin.create_topics([NewTopic(name=name, num_partitions=3, replication_factor=1)], timeout_ms=20000)
        with pytest.raises(kerrors.InvalidTopicError):
            admin.create_topics([NewTopic(name="bad name!", num_partitions=1, replication_factor=1)], timeout_ms=20000)
        vname = unique("kp-validate")
        admin.create_topics([NewTopic(name=vname, num_partitions=1, replication_factor=1)],
                            timeout_ms=20000, validate_only=True)
        assert vname not in admin.list_topics(), "validate_only created the topic"

        admin.delete_topics([name], timeout_ms=20000)
        wait_until(lambda: name not in admin.list_topics(), 20, "deleted topic to leave kafka-python's list_topics")
        with pytest.raises(kerrors.UnknownTopicOrPartitionError):
            admin.delete_topics([name], timeout_ms=20000)
    finally:
        admin.close()


def test_offsets(shared_broker):
    topic = ck_create_topic(shared_broker, unique("kp-offsets"), partitions=2)
    t0 = 1_650_000_000_000
    p = producer(shared_broker)
    try:
        send_all(p, topic, [dict(value=b"%d" % i, partition=0, timestamp_ms=t0 + 1000 * i) for i in range(10)])
    finally:
        p.close()
    c = consumer(shared_broker)
    try:
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 0}
        res = c.offsets_for_times({tp0: t0 + 4500})
        assert res[tp0] is not None and res[tp0].offset == 5 and res[tp0].timestamp == t0 + 5000, res
        res = c.offsets_for_times({tp0: t0})
        assert res[tp0].offset == 0 and res[tp0].timestamp == t0, res
        res = c.offsets_for_times({tp0: t0 + 10_000, tp1: t0})
        assert res[tp0] is None and res[tp1] is None, "no record at or after the timestamp should give None: %r" % res
    finally:
        c.close()
