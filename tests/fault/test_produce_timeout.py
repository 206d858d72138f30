"""acks=all and Produce timeout_ms: when syncs stall longer than the
request's timeout_ms, the broker answers REQUEST_TIMED_OUT (Kafka's code for
an ack wait that expired) instead of waiting forever; the data written is
still there once the sync completes; a request with a long enough timeout
succeeds; late sync completions after the answer do not disturb the broker.
The stall is injected with the failpoint st.fsync.delay_ms."""
from confluent_kafka import TopicPartition

import kwire
from rilltest import ERR, ck_consumer, ck_create_topic, ck_read_partition, unique, wait_until


def test_acks_all_times_out_then_data_is_durable(broker_factory):
    b = broker_factory(env={"RILL_FAILPOINTS": "st.fsync.delay_ms=1500"})
    topic = ck_create_topic(b, unique("slowsync"), partitions=1)
    with kwire.Conn(b.port, timeout=30) as c:
        batch = kwire.build_batch([(b"k0", b"v0", [])])
        corr = c.next_corr()
        c.send(kwire.produce_request(9, corr, [(topic, [(0, batch)])], acks=-1, timeout_ms=200))
        got, res = kwire.parse_produce_response(9, c.recv_frame(10))
        assert got == corr
        assert res[(topic, 0)]["error"] == ERR["REQUEST_TIMED_OUT"], res
        # a generous timeout waits for the (slow) sync and succeeds
        batch = kwire.build_batch([(b"k1", b"v1", [])])
        corr = c.next_corr()
        c.send(kwire.produce_request(9, corr, [(topic, [(0, batch)])], acks=-1, timeout_ms=20000))
        got, res = kwire.parse_produce_response(9, c.recv_frame(25))
        assert res[(topic, 0)]["error"] == 0 and res[(topic, 0)]["base_offset"] == 1, res
    # the timed-out batch was written and became durable after all
    msgs = ck_read_partition(b, topic, 0, 0, 2)
    assert [m.value() for m in msgs] == [b"v0", b"v1"]
    cons = ck_consumer(b)
    try:
        assert cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 2)
    finally:
        cons.close()
    b.check()


def test_many_timeouts_then_clean_shutdown(broker_factory):
    """Answers that time out while callbacks are still pending must neither
    leak nor crash, including at shutdown (ASan builds check the leaks)."""
    b = broker_factory(env={"RILL_FAILPOINTS": "st.fsync.delay_ms=400"})
    topic = ck_create_topic(b, unique("timeouts"), partitions=3)
    with kwire.Conn(b.port, timeout=30) as c:
        corrs = []
        for i in range(30):
            parts = [(p, kwire.build_batch([(b"k", b"%d-%d" % (i, p), [])])) for p in range(3)]
            corr = c.next_corr()
            c.send(kwire.produce_request(9, corr, [(topic, parts)], acks=-1, timeout_ms=1))
            corrs.append(corr)
        codes = []
        for corr in corrs:
            got, res = kwire.parse_produce_response(9, c.recv_frame(30))
            assert got == corr
            codes += [res[(topic, p)]["error"] for p in range(3)]
        assert set(codes) <= {0, ERR["REQUEST_TIMED_OUT"]}, codes
        assert ERR["REQUEST_TIMED_OUT"] in codes
    cons = ck_consumer(b)
    try:
        wait_until(lambda: cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1] == 30, 30,
                   "every written batch to become durable")
    finally:
        cons.close()
    b.stop()  # exit code 0, no sanitizer report
