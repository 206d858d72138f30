"""The transactional copier of tests/fault/test_txn_copier.py (run as a
separate process so it can be killed with SIGKILL): reads topic IN with
read_committed from the offsets committed for GROUP, and for each batch of
records, in one transaction, produces value b"copied:" + value to OUT and
commits the input offsets with send_offsets_to_transaction. Any error ends
the process with status 3; stdout says "ready" once initialised,
"produced N" once a transaction's records are written (with PAUSE_MS) and
"committed N" after each transaction (the test restarts it, as after a crash).

usage: txn_copier.py BOOTSTRAP IN OUT NPARTS GROUP TRANSACTIONAL_ID [PAUSE_MS [BATCH]]
(PAUSE_MS: time spent "transforming" inside each transaction, so that a
kill often lands between the first produce and the commit.)"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main():
    bootstrap, tin, tout, nparts, group, tid = sys.argv[1:7]
    nparts = int(nparts)
    pause = int(sys.argv[7]) / 1000.0 if len(sys.argv) > 7 else 0.0
    batch = int(sys.argv[8]) if len(sys.argv) > 8 else 50
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50,
                  "socket.nagle.disable": True})
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 2,
                  "transaction.timeout.ms": 10000, "message.timeout.ms": 10000, "socket.nagle.disable": True})
    p.init_transactions(30)
    c.assign([TopicPartition(tin, i) for i in range(nparts)])  # from the committed offsets
    print("ready", flush=True)
    while True:
        msgs = c.consume(num_messages=batch, timeout=0.2)
        if not msgs:
            continue
        p.begin_transaction()
        nxt = {}
        for m in msgs:
            if m.error() is not None:
                raise KafkaException(m.error())
            p.produce(tout, value=b"copied:" + m.value(), partition=m.partition())
            nxt[m.partition()] = m.offset() + 1
        if pause:
            p.flush(30)  # the records are in the log, the transaction open
            print("produced %d" % len(msgs), flush=True)
            time.sleep(pause)
        p.send_offsets_to_transaction([TopicPartition(tin, k, v) for k, v in nxt.items()],
                                      c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        print("committed %d" % len(msgs), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        print("copier error: %s" % e, file=sys.stderr, flush=True)
        sys.exit(3)
