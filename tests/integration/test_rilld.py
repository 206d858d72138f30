"""rilld itself: --help lists Kafka-named settings with defaults; bad settings
fail fast with a reason; a properties file is read and the command line
overrides it; SIGTERM shuts down cleanly (clean-shutdown marker, checkpoint)
and the next start trusts the log without a recovery scan; data and topic
ids survive restarts."""
import os
import subprocess

from rilltest import RILLD, Broker, Delivery, ck_consume, ck_create_topic, ck_consumer, ck_produce_sync, ck_producer, unique

from confluent_kafka import TopicPartition


def run_rilld(args, timeout=20):
    return subprocess.run([RILLD] + args, capture_output=True, timeout=timeout, text=True)


def test_help_lists_settings_with_defaults():
    r = run_rilld(["--help"])
    assert r.returncode == 0, r.stderr
    for name, default in [("listeners", "PLAINTEXT://127.0.0.1:9092"), ("log.dirs", "./var"),
                          ("num.partitions", "1"), ("default.replication.factor", "1"),
                          ("auto.create.topics.enable", "true"), ("log.segment.bytes", "1073741824"),
                          ("log.roll.ms", "604800000"), ("message.max.bytes", "1048588"),
                          ("socket.request.max.bytes", "104857600"), ("log.flush.interval.messages", None),
                          ("log.flush.interval.ms", None)]:
        assert "--" + name in r.stdout, name
        if default:
            line_at = r.stdout.index("--" + name + " ")
            assert "default: " + default in r.stdout[line_at:line_at + 400], (name, default)


def test_bad_settings_fail_with_reason(tmp_path):
    cases = [
        (["--no.such.setting", "1"], "unknown setting 'no.such.setting'"),
        (["--num.partitions", "zero"], "not an integer"),
        (["--default.replication.factor", "3"], "single node"),
        (["--listeners", "SSL://127.0.0.1:1"], "PLAINTEXT://HOST:PORT"),
        (["--auto.create.topics.enable", "maybe"], "not true or false"),
        (["--config", str(tmp_path / "missing.properties")], "cannot read config file"),
    ]
    for args, why in cases:
        r = run_rilld(args + ["--log.dirs", str(tmp_path / "d")])
        assert r.returncode != 0, args
        assert why in r.stderr, (args, r.stderr)


def test_properties_file_and_command_line_override(tmp_path):
    conf = tmp_path / "rilld.properties"
    conf.write_text("# comment\nnum.partitions = 4\nauto.create.topics.enable=true\nlog.segment.bytes=1048576\n")
    b = Broker(data_dir=str(tmp_path / "b"), props={"config": str(conf), "num.partitions": 3})
    try:
        b.start()
        t = unique("auto")
        p = ck_producer(b)
        d = Delivery()
        p.produce(t, b"x", on_delivery=d)  # auto-created with the command line's num.partitions
        ck_produce_sync(p)
        assert len(d.ok()) == 1 and not d.errors(), d.errors()
        md = p.list_topics(t, timeout=10)
        assert len(md.topics[t].partitions) == 3
    finally:
        b.cleanup()


def test_sigterm_clean_shutdown_then_restart_without_recovery(broker):
    t = unique("clean")
    ck_create_topic(broker, t, partitions=2)
    p = ck_producer(broker, **{"acks": "1"})
    d = Delivery()
    for i in range(500):
        p.produce(t, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2, on_delivery=d)
    ck_produce_sync(p)
    assert len(d.ok()) == 500 and not d.errors(), d.errors()[:3]
    md = p.list_topics(t, timeout=10)
    topic_id_before = getattr(md.topics[t], "topic_id", None)
    broker.stop()  # SIGTERM; exit code 0 required
    assert os.path.exists(os.path.join(broker.data_dir, ".kafka_cleanShutdown"))
    ckpt = open(os.path.join(broker.data_dir, "recovery-point-offset-checkpoint")).read().split("\n")
    assert ckpt[0] == "0"
    entries = {tuple(line.split()[:2]): int(line.split()[2]) for line in ckpt[2:] if line.strip()}
    assert entries[(t, "0")] == 250 and entries[(t, "1")] == 250, entries
    log_at = broker.log_size()
    broker.start()
    # the marker is consumed at start (the broker is running again)
    assert not os.path.exists(os.path.join(broker.data_dir, ".kafka_cleanShutdown"))
    after = broker.log_since(log_at)
    assert "unclean" not in after and "recover" not in after.lower(), after
    c = ck_consumer(broker)
    c.assign([TopicPartition(t, 0, 0), TopicPartition(t, 1, 0)])
    got = ck_consume(c, 500)
    c.close()
    assert sorted(m.key() for m in got) == sorted(b"k%d" % i for i in range(500))
    for m in got:
        assert m.value() == b"v" + m.key()[1:] and m.offset() == int(m.key()[1:]) // 2
    md = ck_producer(broker).list_topics(t, timeout=10)
    assert getattr(md.topics[t], "topic_id", None) == topic_id_before
