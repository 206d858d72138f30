"""The librdkafka C program tests/integration/clients/produce_consume.c
(built by CMake into $RILL_BUILD/produce_consume) against rilld: acks=all
records with keys, values, headers and timestamps across partitions, read
back with assign() and compared byte for byte at their delivered offsets."""
import os
import subprocess

import pytest

from rilltest import BUILD, ck_create_topic, unique

PROG = os.path.join(BUILD, "produce_consume")


def run_prog(broker, topic, count, partitions, codec="none", timeout=180):
    assert os.access(PROG, os.X_OK), "%s not built (cmake --build %s --target produce_consume)" % (PROG, BUILD)
    p = subprocess.run([PROG, broker.bootstrap, topic, str(count), str(partitions), codec],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, "produce_consume exited %d:\n%s" % (p.returncode, out[-8000:])
    assert "OK %d records" % count in out, out[-2000:]


def test_c_client_roundtrip(shared_broker):
    topic = ck_create_topic(shared_broker, unique("c-client"), partitions=4)
    run_prog(shared_broker, topic, 3000, 4)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_c_client_codecs(shared_broker, codec):
    topic = ck_create_topic(shared_broker, unique("c-" + codec), partitions=3)
    run_prog(shared_broker, topic, 600, 3, codec)


def test_c_client_after_restart(broker):
    """The same program against data written before a clean restart: the
    second run appends after what is there and reads only its own records
    back, so it runs on a fresh topic; the first topic must still be intact,
    which a second pass over it checks via offsets."""
    t1 = ck_create_topic(broker, unique("c-before"), partitions=2)
    run_prog(broker, t1, 500, 2)
    broker.restart()
    t2 = ck_create_topic(broker, unique("c-after"), partitions=2)
    run_prog(broker, t2, 500, 2)
    from rilltest import ck_consumer
    from confluent_kafka import TopicPartition
    c = ck_consumer(broker)
    try:
        for p in range(2):
            assert c.get_watermark_offsets(TopicPartition(t1, p), timeout=10) == (0, 250), \
                "topic written before the restart lost records"
    finally:
        c.close()
