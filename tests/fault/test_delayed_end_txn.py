"""A delayed EndTxn (issue 5; the KAFKA-17754 pattern) with librdkafka's
transactional producer (confluent-kafka): a loopback proxy of ours, which
the broker advertises so every client connection goes through it, holds
back the EndTxn(commit) of transaction i on its connection: the broker does
not see it, the client's request times out, librdkafka drops that
connection and commits again on a new one. The client then begins
transaction i+1 and produces its first half. Only then does the proxy
deliver the held EndTxn on the old connection (still open to the broker).

What must hold (txncoord.c T8): the broker refuses the late EndTxn
(INVALID_TXN_STATE, read by the proxy from the broker's answer); the
read_committed end (the LSO) stays at transaction i+1's first record until
the client commits it, so the transaction is never torn; after all
iterations read_committed reads every record of every committed
transaction exactly once, in order. Without T8 the late EndTxn commits the
first half early and librdkafka's next produce of the transaction fails.
The CI variant runs 8 iterations, the soak variant 60."""
import struct
import time

import pytest

import kwire
from lproxy import LoopbackProxy, close_quietly, frames_from
from rilltest import ck_create_topic, ck_producer, ck_read_until, unique

API_END_TXN = 26
FLEXIBLE_END_TXN = 3  # EndTxn is flexible from v3: the response header has tagged fields


class HoldProxy(LoopbackProxy):
    """Pumps bytes between clients and the broker, parsing the client's
    request frames. Once armed, the next EndTxn request is not forwarded:
    from then on that connection's client side gets nothing more (the
    client times out and leaves), while its broker side stays open.
    release() sends the held frame on it and returns the error code of the
    broker's answer."""

    def __init__(self):
        self.armed = False
        self.held = None  # {"frame", "server", "resp" (bytes the broker sent after the hold)}
        super().__init__()

    def serve(self, c, s):
        st = {"held": None}
        self.spawn(self._c2s, c, s, st)
        self.spawn(self._s2c, c, s, st)

    def _c2s(self, c, s, st):
        try:
            for frames in frames_from(c):
                if st["held"] is not None:
                    continue  # the client's side of a held connection: dropped
                out = b""
                for frame in frames:
                    api = struct.unpack(">h", frame[4:6])[0] if len(frame) >= 6 else -1
                    with self.lock:
                        if api == API_END_TXN and self.armed and st["held"] is None:
                            self.armed = False
                            st["held"] = {"frame": frame, "server": s, "resp": b""}
                            self.held = st["held"]
                            self.lock.notify_all()
                    if st["held"] is not None:
                        break
                    out += frame
                if out:
                    s.sendall(out)
        except OSError:
            pass
        close_quietly(c)
        if st["held"] is None:
            close_quietly(s)

    def _s2c(self, c, s, st):
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                with self.lock:
                    if st["held"] is not None:
                        st["held"]["resp"] += data
                        self.lock.notify_all()
                        continue
                c.sendall(data)
        except OSError:
            pass
        close_quietly(c)

    def arm(self):
        with self.lock:
            self.held = None
            self.armed = True

    def wait_held(self, timeout):
        with self.lock:
            assert self.lock.wait_for(lambda: self.held is not None, timeout), "no EndTxn reached the proxy"

    def release(self, timeout=15):
        """Delivers the held EndTxn; returns the broker's error code for it."""
        h = self.held
        frame = h["frame"]
        version = struct.unpack(">h", frame[6:8])[0]
        corr = struct.unpack(">i", frame[8:12])[0]
        h["server"].sendall(frame)

        def answer():
            data = h["resp"]
            while len(data) >= 4:
                n = struct.unpack(">i", data[:4])[0]
                if len(data) < 4 + n:
                    return None
                payload, data = data[4:4 + n], data[4 + n:]
                r = kwire.Reader(payload)
                if r.i32() != corr:
                    continue  # an answer to an earlier request of that connection
                if version >= FLEXIBLE_END_TXN:
                    r.tags()
                r.i32()  # throttle
                return r.i16()
            return None

        with self.lock:
            assert self.lock.wait_for(lambda: answer() is not None, timeout), "the broker did not answer the late EndTxn"
            err = answer()
        close_quietly(h["server"])
        return err



def lso(broker, topic):
    """(last stable offset, high watermark) of partition 0."""
    with kwire.Conn(broker.port) as q:
        return kwire.list_latest(q, topic, 0, 1), kwire.list_latest(q, topic, 0, 0)


def commit_with_retries(p, deadline):
    """commit_transaction, again while librdkafka says the error is
    retriable (its EndTxn timed out)."""
    from confluent_kafka import KafkaException
    tries = 0
    while True:
        tries += 1
        try:
            p.commit_transaction(max(1.0, deadline - time.monotonic()))
            return tries
        except KafkaException as e:
            err = e.args[0]
            assert err.retriable() and time.monotonic() < deadline, "commit failed: %s" % err
            assert not err.fatal() and not err.txn_requires_abort(), err


def run_delayed_end_txn(broker_factory, iterations, per_half=20):
    proxy = HoldProxy()
    try:
        broker = broker_factory(props={"advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % proxy.port}, start=False)
        broker.start()
        proxy.target = broker.port
        topic = ck_create_topic(broker, unique("late-endtxn"), partitions=1)
        p = ck_producer(broker, **{"bootstrap.servers": "127.0.0.1:%d" % proxy.port,
                                   "transactional.id": unique("tid"), "socket.timeout.ms": 1500,
                                   "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
                                   "transaction.timeout.ms": 60000})
        p.init_transactions(30)
        expect = []
        refused = 0
        commit_tries = []

        def produce_half(tag):
            vals = [b"%s-%d" % (tag, k) for k in range(per_half)]
            for v in vals:
                p.produce(topic, value=v, partition=0)
            assert p.flush(30) == 0
            return vals

        p.begin_transaction()
        pending = produce_half(b"t0a") + produce_half(b"t0b")
        for i in range(iterations):
            proxy.arm()
            deadline = time.monotonic() + 60
            commit_tries.append(commit_with_retries(p, deadline))
            proxy.wait_held(5)  # the first EndTxn was held, the commit went through on a new connection
            expect += pending
            # transaction i+1 begins and writes its first half
            p.begin_transaction()
            first_half = produce_half(b"t%da" % (i + 1))
            stable_before, end_before = lso(broker, topic)
            assert stable_before < end_before, "transaction %d's first half is not open" % (i + 1)
            err = proxy.release()
            assert err == 48, "the late EndTxn got %d, not INVALID_TXN_STATE" % err
            refused += 1
            assert lso(broker, topic)[0] == stable_before, "the late EndTxn ended transaction %d early" % (i + 1)
            pending = first_half + produce_half(b"t%db" % (i + 1))
        p.commit_transaction(30)
        expect += pending
        end = lso(broker, topic)
        assert end[0] == end[1]
        got = ck_read_until(broker, topic, 0, end[1], isolation_level="read_committed")
        assert got == expect, "committed %d records, read_committed read %d" % (len(expect), len(got))
        print("iterations %d, late EndTxns refused %d, commit calls per transaction %s, records %d" % (
            iterations, refused, commit_tries, len(got)))
        broker.check()
    finally:
        proxy.close()


def test_delayed_end_txn(broker_factory):
    run_delayed_end_txn(broker_factory, 8)


@pytest.mark.soak
def test_delayed_end_txn_soak(broker_factory):
    run_delayed_end_txn(broker_factory, 60)
