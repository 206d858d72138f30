"""Idempotent producer through a lossy connection (issue 5): librdkafka
(confluent-kafka) with enable.idempotence=true talks to rilld through a
loopback proxy of ours that cuts every connection after a random number of
bytes (either direction, mid-request or mid-response), so requests are lost,
responses are lost and batches are retried. The broker advertises the proxy,
so every connection the client makes goes through it. 100k unique records
(the soak variant: 1M) over 3 partitions must read back each exactly once,
in produce order per partition. And the same client through broker
restarts: rilld is killed (kill -9, and once SIGTERM) while batches are in
flight; after each restart the client resends what it had not seen
acknowledged, the rebuilt producer state recognises what was already
stored, and every record is still there exactly once, in order."""
import random
import socket
import time

import pytest

from confluent_kafka import TopicPartition

from lproxy import LoopbackProxy, close_quietly
from rilltest import ck_consumer, ck_create_topic, ck_producer, ck_read_partition, unique


class CutProxy(LoopbackProxy):
    """Pumps bytes both ways between each client and the broker; while
    `cutting` is set, each connection is reset after a random budget of
    bytes in one direction, chosen per connection: client to broker [lo, hi]
    (requests lost or torn), or broker to client [rlo, rhi] (responses lost:
    the broker stored batches the client will send again). The last chunk is
    forwarded only up to the budget."""

    def __init__(self, lo, hi, rlo, rhi, seed):
        self.lo, self.hi, self.rlo, self.rhi = lo, hi, rlo, rhi
        self.rng = random.Random(seed)
        self.cutting = True
        self.cuts = {"c2s": 0, "s2c": 0}
        super().__init__()

    def serve(self, c, s):
        with self.lock:
            if self.rng.random() < 0.5:
                budget = {"c2s": self.rng.randint(self.lo, self.hi), "s2c": 1 << 62}
            else:
                budget = {"c2s": 1 << 62, "s2c": self.rng.randint(self.rlo, self.rhi)}
        state = {"budget": budget, "dead": False}
        for src, dst, d in ((c, s, "c2s"), (s, c, "s2c")):
            self.spawn(self._pump, src, dst, d, state, c, s)

    def _kill(self, c, s):
        # RST, not FIN: what a dropped connection looks like. shutdown(SHUT_RD)
        # first wakes the other pump's blocked recv (a bare close would not,
        # and the socket would live on), sending nothing itself.
        for x in (c, s):
            try:
                x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            close_quietly(x, socket.SHUT_RD)

    def _pump(self, src, dst, d, state, c, s):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                cut = False
                with self.lock:
                    if state["dead"]:
                        break
                    if self.cutting:
                        left = state["budget"][d]
                        if len(data) >= left:
                            data, cut = data[:left], True
                            state["dead"] = True
                            self.cuts[d] += 1
                        else:
                            state["budget"][d] = left - len(data)
                if data:
                    dst.sendall(data)
                if cut:
                    break
        except OSError:
            pass
        with self.lock:
            state["dead"] = True
        self._kill(c, s)


class IdemRun:
    """One librdkafka producer with enable.idempotence=true writing record i
    (value b"p<partition>-<i>") to partition i % nparts; a fatal error or a
    failed delivery fails the test."""

    def __init__(self, broker, topic, nparts, timeout, **conf):
        self.broker, self.topic, self.nparts, self.timeout = broker, topic, nparts, timeout
        self.errors = []
        self.acked = 0
        c = {"enable.idempotence": True, "message.timeout.ms": int(timeout * 1000), "linger.ms": 2,
             "error_cb": lambda e: self.errors.append(e) if e.fatal() else None}
        c.update(conf)
        self.p = ck_producer(broker, **c)
        self.deadline = time.monotonic() + timeout

    def _dr(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.acked += 1

    def produce(self, i):
        while True:
            try:
                self.p.produce(self.topic, value=b"p%d-%08d" % (i % self.nparts, i), partition=i % self.nparts,
                               on_delivery=self._dr)
                break
            except BufferError:
                self.p.poll(0.05)
                assert time.monotonic() < self.deadline, "producer queue stuck"
        if i % 500 == 0:
            self.p.poll(0)
        assert not self.errors, self.errors[:3]

    def poll_until_acked(self, n):
        while self.acked < n and time.monotonic() < self.deadline and not self.errors:
            self.p.poll(0.001)

    def finish(self, total):
        """Waits for every delivery, then reads each partition back: each
        record exactly once, in produce order, nothing after them."""
        while self.acked + len(self.errors) < total and time.monotonic() < self.deadline and not self.errors:
            self.p.flush(1)
        assert not self.errors, "%d delivery/fatal errors, first: %s" % (len(self.errors), self.errors[:3])
        assert self.acked == total
        for part in range(self.nparts):
            want = [b"p%d-%08d" % (part, i) for i in range(part, total, self.nparts)]
            got = [m.value() for m in ck_read_partition(self.broker, self.topic, part, 0, len(want),
                                                        timeout=self.timeout)]
            assert got == want, "partition %d: %d records, first mismatch at %s" % (
                part, len(got), next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), None))
            assert high_watermark(self.broker, self.topic, part) == len(want)


def high_watermark(broker, topic, part):
    c = ck_consumer(broker)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
    finally:
        c.close()
    assert lo == 0
    return hi


def run_cut_producer(broker_factory, total, timeout):
    proxy = CutProxy(lo=2000, hi=120000, rlo=100, rhi=3000, seed=5)
    try:
        # debug log: the broker notes each duplicate batch it answered
        broker = broker_factory(props={"advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % proxy.port,
                                       "rill.log.level": "debug"}, start=False)
        broker.start()
        proxy.target = broker.port
        proxy.cutting = False  # topic creation and metadata on a calm line
        topic = ck_create_topic(broker, unique("idem-cuts"), partitions=3)
        proxy.cutting = True
        run = IdemRun(broker, topic, 3, timeout, **{
            "bootstrap.servers": "127.0.0.1:%d" % proxy.port, "batch.num.messages": 500,
            "reconnect.backoff.ms": 1, "reconnect.backoff.max.ms": 50, "retry.backoff.ms": 5})
        for i in range(total):
            run.produce(i)
        run.p.flush(0)
        while run.acked < total and time.monotonic() < run.deadline and not run.errors:
            run.p.flush(1)
        cuts = dict(proxy.cuts)
        proxy.cutting = False
        run.finish(total)
        assert cuts["c2s"] >= 5 and cuts["s2c"] >= 5, cuts
        dups = broker.log_text().count("duplicate batch of producer")
        assert dups >= 1, "no retried batch reached the broker as a duplicate (cuts %s)" % cuts
        print("records %d, connections %d, cuts %s, duplicate batches answered %d" % (
            total, proxy.conns, cuts, dups))
        broker.check()
    finally:
        proxy.close()


def test_idempotent_through_broker_restarts(broker_factory):
    total = 60000
    # small segments: rolls (and roll snapshots) happen during the run
    broker = broker_factory(props={"log.segment.bytes": 200000, "rill.log.level": "debug"})
    topic = ck_create_topic(broker, unique("idem-restarts"), partitions=3)
    run = IdemRun(broker, topic, 3, 120, **{"batch.num.messages": 200, "reconnect.backoff.ms": 10,
                                             "reconnect.backoff.max.ms": 100, "retry.backoff.ms": 10})
    restarts = [(total * k // 5, k != 2) for k in range(1, 5)]  # (after this many produced, kill -9?)
    for i in range(total):
        if restarts and i == restarts[0][0]:
            _, kill = restarts.pop(0)
            # let the client get going (acks flowing), then stop the broker
            # under it with batches in flight
            run.poll_until_acked(i - 3000)
            broker.restart(clean=not kill)
        run.produce(i)
    run.finish(total)
    dups = broker.log_text().count("duplicate batch of producer")  # the log spans every start
    assert dups >= 1, "no batch was resent across a restart: the test did not test dedup"
    print("records %d, restarts 4 (3 kill -9, 1 SIGTERM), duplicate batches answered %d" % (total, dups))
    broker.check()


def test_idempotent_through_cut_connections(broker_factory):
    run_cut_producer(broker_factory, 100000, timeout=120)


@pytest.mark.soak
def test_idempotent_through_cut_connections_soak(broker_factory):
    run_cut_producer(broker_factory, 1000000, timeout=900)
