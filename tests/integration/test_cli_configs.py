"""`rill topic alter-config|describe|add-partitions|delete-records` and
`rill broker config|alter-config` against rilld: the changes are checked with
confluent-kafka's AdminClient and consumers, the errors with the broker's
reason and exit code 1."""
from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource

from rilltest import ck_admin, ck_consumer, ck_create_topic, unique

from test_cli import rill, rows


def topic_configs(broker, t):
    a = ck_admin(broker)
    return list(a.describe_configs([ConfigResource("topic", t)]).values())[0].result(timeout=30)


def test_alter_config_and_describe(broker):
    t = ck_create_topic(broker, unique("cli-cfg"), config={"retention.ms": "5000"})
    _, _, err = rill(["topic", "alter-config", t, "segment.bytes=200000", "cleanup.policy=compact"], broker)
    assert "configs changed" in err
    cfg = topic_configs(broker, t)
    assert cfg["segment.bytes"].value == "200000" and cfg["retention.ms"].value == "5000"  # others kept
    rill(["topic", "alter-config", t, "--delete", "retention.ms"], broker)
    cfg = topic_configs(broker, t)
    assert cfg["retention.ms"].is_default and cfg["cleanup.policy"].value == "compact"

    _, out, _ = rill(["topic", "describe", t], broker)
    parts, configs = out.split("\n\n")
    assert rows(configs) == [["TOPIC", "CONFIG", "VALUE", "SOURCE", "READ_ONLY"],
                             [t, "cleanup.policy", "compact", "DYNAMIC_TOPIC_CONFIG", "no"],
                             [t, "segment.bytes", "200000", "DYNAMIC_TOPIC_CONFIG", "no"]]
    _, out, _ = rill(["topic", "describe", t, "--all-configs", "--no-header"], broker)
    every = {r[1]: r for r in rows(out.split("\n\n")[1])}
    assert every["retention.ms"][2:] == ["604800000", "DEFAULT_CONFIG", "no"]
    assert len(every) >= 20

    # errors: bad value, unknown name (the broker's reason, exit 1); dry run changes nothing
    _, _, err = rill(["topic", "alter-config", t, "segment.bytes=1"], broker, expect=1)
    assert "INVALID_CONFIG" in err and "segment.bytes" in err
    _, _, err = rill(["topic", "alter-config", t, "no.such=1"], broker, expect=1)
    assert "INVALID_CONFIG" in err
    rill(["topic", "alter-config", t, "segment.bytes=300000", "--dry-run"], broker)
    assert topic_configs(broker, t)["segment.bytes"].value == "200000"
    _, _, err = rill(["topic", "alter-config", "missing-" + t, "retention.ms=1"], broker, expect=1)
    assert "UNKNOWN_TOPIC" in err
    _, _, err = rill(["topic", "alter-config", t], broker, expect=2)
    assert "nothing to change" in err


def test_add_partitions(broker):
    t = ck_create_topic(broker, unique("cli-addp"), partitions=2)
    _, out, _ = rill(["topic", "add-partitions", t, "-p", "5"], broker)
    assert rows(out) == [["TOPIC", "STATUS"], [t, "OK"]]
    _, out, _ = rill(["topic", "list", "--no-header"], broker)
    assert [t, "5", "1"] in rows(out)
    _, out, err = rill(["topic", "add-partitions", t, "-p", "3"], broker, expect=1)
    assert rows(out)[1] == [t, "INVALID_PARTITIONS"] and "INVALID_PARTITIONS" in err


def test_delete_records(broker):
    t = ck_create_topic(broker, unique("cli-delrec"))
    rill(["produce", t, "-p", "0"], broker, input=b"a\nb\nc\nd\n")
    _, out, _ = rill(["topic", "delete-records", t, "-p", "0", "--before", "2"], broker)
    assert rows(out) == [["TOPIC", "PARTITION", "LOG_START"], [t, "0", "2"]]
    c = ck_consumer(broker)
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (2, 4)
    finally:
        c.close()
    _, out, _ = rill(["topic", "delete-records", t, "-p", "0", "--no-header"], broker)
    assert rows(out) == [[t, "0", "4"]]  # no --before: up to the high watermark
    _, _, err = rill(["topic", "delete-records", t, "-p", "0", "--before", "99"], broker, expect=1)
    assert "OFFSET_OUT_OF_RANGE" in err


def test_broker_config(broker):
    _, out, _ = rill(["broker", "config"], broker)
    assert rows(out) == [["CONFIG", "VALUE", "SOURCE", "READ_ONLY"]]  # nothing dynamic yet
    _, _, err = rill(["broker", "alter-config", "message.max.bytes=2000000", "log.retention.ms=60000"], broker)
    assert "configs changed" in err
    rill(["broker", "alter-config", "--delete", "log.retention.ms"], broker)
    _, out, _ = rill(["broker", "config", "--no-header"], broker)
    assert rows(out) == [["message.max.bytes", "2000000", "DYNAMIC_BROKER_CONFIG", "no"]]
    _, out, _ = rill(["broker", "config", "--all", "--no-header"], broker)
    every = {r[0]: r for r in rows(out)}
    assert every["log.dirs"][3] == "yes" and every["log.retention.ms"][1:3] == ["604800000", "DEFAULT_CONFIG"]
    t = ck_create_topic(broker, unique("cli-brk"))
    assert topic_configs(broker, t)["max.message.bytes"].value == "2000000"
    _, _, err = rill(["broker", "alter-config", "log.dirs=/x"], broker, expect=1)
    assert "INVALID_REQUEST" in err and "dynamically" in err
    _, _, err = rill(["broker", "alter-config", "message.max.bytes=-1", "--node", "1"], broker, expect=1)
    assert "INVALID_CONFIG" in err
