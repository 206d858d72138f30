"""Topic and broker configs against rilld: DescribeConfigs v0-v4,
AlterConfigs v0-v2 and IncrementalAlterConfigs v0-v1 on the raw wire (every
version, error cases, validate_only changing nothing), confluent-kafka's and
kafka-python's admin clients, kcat, persistence across SIGTERM and kill -9,
dynamic broker defaults flowing into topics, LogAppendTime stamping seen by a
consumer, message.timestamp.difference.max.ms rejection (INVALID_TIMESTAMP)
and broker-side recompression to the topic's compression.type."""
import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource

import kwire
from rilltest import (Delivery, ck_admin, ck_consumer, ck_create_topic, ck_produce_sync, ck_producer,
                      ck_read_partition, unique)

DESCRIBE, ALTER, INCREMENTAL = 32, 33, 44
TOPIC, BROKER = 2, 4
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
INVALID_CONFIG, INVALID_REQUEST, UNKNOWN_TOPIC, INVALID_TIMESTAMP = 40, 42, 3, 32
SRC_TOPIC, SRC_DYN_BROKER, SRC_DYN_DEFAULT, SRC_STATIC, SRC_DEFAULT = 1, 2, 3, 4, 5


# ---------------------------------------------------------------------------
# raw-wire encoders and parsers (declared from Kafka's message specs)
# ---------------------------------------------------------------------------

def _enc(flex):
    if flex:
        return kwire.compact_string, kwire.compact_array, kwire.TAGS_NONE
    return kwire.string, kwire.array, b""


def describe_body(v, resources, synonyms=False, docs=False):
    s, arr, tg = _enc(v >= 4)
    body = arr(resources, lambda r: kwire.i8(r[0]) + s(r[1]) + arr(r[2], s) + tg)
    if v >= 1:
        body += kwire.i8(1 if synonyms else 0)
    if v >= 3:
        body += kwire.i8(1 if docs else 0)
    return body + tg


def alter_body(v, resources, validate_only=False, incremental=False):
    flex = v >= (1 if incremental else 2)
    s, arr, tg = _enc(flex)

    def cfg(c):
        if incremental:
            return s(c[0]) + kwire.i8(c[1]) + s(c[2]) + tg
        return s(c[0]) + s(c[1]) + tg
    body = arr(resources, lambda r: kwire.i8(r[0]) + s(r[1]) + arr(r[2], cfg) + tg)
    return body + kwire.i8(1 if validate_only else 0) + tg


def _reader(payload, flex):
    r = kwire.Reader(payload)
    r.i32()  # correlation id
    if flex:
        r.tags()
    return r


def parse_describe(v, payload):
    flex = v >= 4
    r = _reader(payload, flex)
    rs = r.compact_string if flex else r.string
    ra = r.compact_array if flex else r.array
    r.i32()

    def syn(r):
        d = {"name": rs(), "value": rs(), "source": r.i8()}
        if flex:
            r.tags()
        return d

    def cfg(r):
        d = {"name": rs(), "value": rs(), "read_only": r.boolean()}
        if v == 0:
            d["is_default"] = r.boolean()
        else:
            d["source"] = r.i8()
        d["sensitive"] = r.boolean()
        if v >= 1:
            d["synonyms"] = ra(syn)
        if v >= 3:
            d["type"] = r.i8()
            d["doc"] = rs()
        if flex:
            r.tags()
        return d

    def res(r):
        d = {"error": r.i16(), "message": rs(), "type": r.i8(), "name": rs()}
        d["configs"] = {c["name"]: c for c in ra(cfg)}
        if flex:
            r.tags()
        return d
    out = ra(res)
    assert r.left() == (1 if flex else 0)
    return out


def parse_alter(v, payload, incremental=False):
    flex = v >= (1 if incremental else 2)
    r = _reader(payload, flex)
    rs = r.compact_string if flex else r.string
    ra = r.compact_array if flex else r.array
    r.i32()

    def res(r):
        d = {"error": r.i16(), "message": rs(), "type": r.i8(), "name": rs()}
        if flex:
            r.tags()
        return d
    return ra(res)


def describe(conn, v, resources, **kw):
    return parse_describe(v, conn.roundtrip(DESCRIBE, v, describe_body(v, resources, **kw),
                                            header_version=2 if v >= 4 else 1))


def alter(conn, v, resources, validate_only=False):
    return parse_alter(v, conn.roundtrip(ALTER, v, alter_body(v, resources, validate_only),
                                         header_version=2 if v >= 2 else 1))


def incremental(conn, v, resources, validate_only=False):
    return parse_alter(v, conn.roundtrip(INCREMENTAL, v, alter_body(v, resources, validate_only, True),
                                         header_version=2 if v >= 1 else 1), incremental=True)


def topic_value(conn, topic, name):
    res = describe(conn, 4, [(TOPIC, topic, [name])])[0]
    assert res["error"] == 0, res
    return res["configs"][name]


def brk_doc_ok(res):
    return all(c["doc"] for c in res["configs"].values())


def conn_of(broker):
    return kwire.Conn(broker.port)


# ---------------------------------------------------------------------------
# raw wire: every version
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("v", [0, 1, 2, 3, 4])
def test_describe_configs_versions(broker, v):
    t = ck_create_topic(broker, unique("dc%d" % v), config={"retention.ms": "123456"})
    with conn_of(broker) as c:
        res = describe(c, v, [(TOPIC, t, None), (BROKER, "1", ["log.retention.ms", "node.id"]),
                              (TOPIC, "no-such-topic", None)], synonyms=True, docs=True)
    assert [x["type"] for x in res] == [TOPIC, BROKER, TOPIC]
    top, brk, missing = res
    assert top["error"] == 0 and top["name"] == t
    rm, sb = top["configs"]["retention.ms"], top["configs"]["segment.bytes"]
    assert rm["value"] == "123456" and not rm["read_only"] and not rm["sensitive"]
    assert sb["value"] == "1073741824"
    assert {"cleanup.policy", "compression.type", "max.message.bytes", "message.timestamp.type",
            "min.insync.replicas", "segment.ms", "flush.messages"} <= set(top["configs"])
    if v == 0:
        assert rm["is_default"] is False and sb["is_default"] is True
    else:
        assert rm["source"] == SRC_TOPIC and sb["source"] == SRC_DEFAULT
        assert [(s["name"], s["source"]) for s in rm["synonyms"]] == [
            ("retention.ms", SRC_TOPIC), ("log.retention.ms", SRC_DEFAULT)]
    if v >= 3:
        assert rm["type"] == 5 and top["configs"]["cleanup.policy"]["type"] == 7  # LONG, LIST
        assert "segment" in rm["doc"] and brk_doc_ok(res[1])
    assert brk["error"] == 0 and set(brk["configs"]) == {"log.retention.ms", "node.id"}
    assert brk["configs"]["log.retention.ms"]["read_only"] is False
    assert brk["configs"]["node.id"]["read_only"] is True
    assert missing["error"] == UNKNOWN_TOPIC and missing["configs"] == {}


def test_describe_no_synonyms_or_docs_unless_asked(broker):
    t = ck_create_topic(broker, unique("dcq"), config={"retention.ms": "1000"})
    with conn_of(broker) as c:
        res = describe(c, 4, [(TOPIC, t, ["retention.ms"])])[0]
        assert res["configs"]["retention.ms"]["synonyms"] == [] and res["configs"]["retention.ms"]["doc"] is None
        res = describe(c, 4, [(BROKER, "7", None)])[0]
        assert res["error"] == INVALID_REQUEST and "7" in res["message"]
        res = describe(c, 4, [(9, "x", None)])[0]
        assert res["error"] == INVALID_REQUEST


@pytest.mark.parametrize("v", [0, 1, 2])
def test_alter_configs_versions(broker, v):
    t = ck_create_topic(broker, unique("ac%d" % v), config={"retention.ms": "1000"})
    with conn_of(broker) as c:
        # legacy AlterConfigs replaces the whole set of overrides
        res = alter(c, v, [(TOPIC, t, [("segment.bytes", "200000"), ("cleanup.policy", "compact")])])
        assert res == [{"error": 0, "message": None, "type": TOPIC, "name": t}]
        d = describe(c, 1, [(TOPIC, t, None)])[0]["configs"]
        assert d["segment.bytes"]["value"] == "200000" and d["segment.bytes"]["source"] == SRC_TOPIC
        assert d["cleanup.policy"]["value"] == "compact"
        assert d["retention.ms"]["source"] == SRC_DEFAULT  # gone: not in the new set
        # errors: bad value, unknown name, unknown topic, null value, duplicate key
        res = alter(c, v, [(TOPIC, t, [("segment.bytes", "abc")]), (TOPIC, t, [("no.such.config", "1")]),
                           (TOPIC, "missing-" + t, [("retention.ms", "1")]), (TOPIC, t, [("retention.ms", None)]),
                           (TOPIC, t, [("retention.ms", "1"), ("retention.ms", "2")])])
        assert [x["error"] for x in res] == [INVALID_CONFIG, INVALID_CONFIG, UNKNOWN_TOPIC, INVALID_REQUEST,
                                             INVALID_REQUEST]
        assert "segment.bytes" in res[0]["message"] and "no.such.config" in res[1]["message"]
        # validate_only: checked, nothing changed
        res = alter(c, v, [(TOPIC, t, [("retention.ms", "5")])], validate_only=True)
        assert res[0]["error"] == 0
        res = alter(c, v, [(TOPIC, t, [("retention.ms", "-7")])], validate_only=True)
        assert res[0]["error"] == INVALID_CONFIG
        assert topic_value(c, t, "segment.bytes")["value"] == "200000"
        assert topic_value(c, t, "retention.ms")["source"] == SRC_DEFAULT


@pytest.mark.parametrize("v", [0, 1])
def test_incremental_alter_configs_versions(broker, v):
    t = ck_create_topic(broker, unique("iac%d" % v), config={"retention.ms": "1000"})
    with conn_of(broker) as c:
        res = incremental(c, v, [(TOPIC, t, [("segment.bytes", SET, "300000"),
                                             ("cleanup.policy", APPEND, "compact")])])
        assert res[0]["error"] == 0, res
        assert topic_value(c, t, "retention.ms")["value"] == "1000"  # kept: incremental
        assert topic_value(c, t, "segment.bytes")["value"] == "300000"
        # APPEND without an override starts from the default (delete), as Kafka does
        assert topic_value(c, t, "cleanup.policy")["value"] == "delete,compact"
        res = incremental(c, v, [(TOPIC, t, [("cleanup.policy", APPEND, "delete")])])  # already there
        assert res[0]["error"] == 0 and topic_value(c, t, "cleanup.policy")["value"] == "delete,compact"
        res = incremental(c, v, [(TOPIC, t, [("cleanup.policy", SUBTRACT, "delete"), ("retention.ms", DELETE, None)])])
        assert res[0]["error"] == 0
        assert topic_value(c, t, "cleanup.policy")["value"] == "compact"
        assert topic_value(c, t, "retention.ms")["source"] == SRC_DEFAULT
        # errors
        res = incremental(c, v, [(TOPIC, t, [("retention.ms", APPEND, "5")]),
                                 (TOPIC, t, [("segment.bytes", SET, "1")]),
                                 (TOPIC, t, [("bogus", DELETE, None)]),
                                 (TOPIC, t, [("retention.ms", 9, "5")]),
                                 (TOPIC, "nope-" + t, [("retention.ms", SET, "5")]),
                                 (TOPIC, t, [("message.timestamp.type", SET, "Sometime")])])
        assert [x["error"] for x in res] == [INVALID_CONFIG, INVALID_CONFIG, INVALID_CONFIG, INVALID_REQUEST,
                                             UNKNOWN_TOPIC, INVALID_CONFIG]
        res = incremental(c, v, [(TOPIC, t, [("segment.bytes", SET, "400000")])], validate_only=True)
        assert res[0]["error"] == 0 and topic_value(c, t, "segment.bytes")["value"] == "300000"


def test_broker_dynamic_configs(broker):
    t = ck_create_topic(broker, unique("bdyn"))
    o = ck_create_topic(broker, unique("bdyn-over"), config={"retention.ms": "1000"})
    with conn_of(broker) as c:
        # the cluster default flows into topics that do not override it
        res = incremental(c, 1, [(BROKER, "", [("log.retention.ms", SET, "5000")])])
        assert res[0]["error"] == 0, res
        rm = describe(c, 4, [(TOPIC, t, ["retention.ms"])], synonyms=True)[0]["configs"]["retention.ms"]
        assert rm["value"] == "5000" and rm["source"] == SRC_DYN_DEFAULT
        assert rm["synonyms"][0] == {"name": "log.retention.ms", "value": "5000", "source": SRC_DYN_DEFAULT}
        assert topic_value(c, o, "retention.ms")["value"] == "1000"
        # the node level wins over the cluster default
        res = incremental(c, 1, [(BROKER, "1", [("log.retention.ms", SET, "7000")])])
        assert res[0]["error"] == 0
        b = describe(c, 4, [(BROKER, "1", ["log.retention.ms"])], synonyms=True)[0]["configs"]["log.retention.ms"]
        assert b["value"] == "7000" and b["source"] == SRC_DYN_BROKER
        assert [s["source"] for s in b["synonyms"]] == [SRC_DYN_BROKER, SRC_DYN_DEFAULT, SRC_DEFAULT]
        d = describe(c, 4, [(BROKER, "", None)])[0]
        assert d["error"] == 0 and list(d["configs"]) == ["log.retention.ms"]
        assert d["configs"]["log.retention.ms"]["value"] == "5000"
        # errors: read-only, unknown, bad value, wrong node; validate_only
        res = incremental(c, 1, [(BROKER, "1", [("log.dirs", SET, "/x")]), (BROKER, "", [("no.such", SET, "1")]),
                                 (BROKER, "", [("message.max.bytes", SET, "-5")]),
                                 (BROKER, "3", [("message.max.bytes", SET, "5000")])])
        assert [x["error"] for x in res] == [INVALID_REQUEST, INVALID_CONFIG, INVALID_CONFIG, INVALID_REQUEST]
        res = alter(c, 2, [(BROKER, "", [("message.max.bytes", "5000")])], validate_only=True)
        assert res[0]["error"] == 0
        assert topic_value(c, t, "max.message.bytes")["value"] == "1048588"
        # legacy AlterConfigs replaces the level's set: log.retention.ms goes
        res = alter(c, 2, [(BROKER, "", [("message.max.bytes", "5000")])])
        assert res[0]["error"] == 0
        assert topic_value(c, t, "max.message.bytes")["value"] == "5000"
        assert topic_value(c, t, "retention.ms")["value"] == "7000"
        res = incremental(c, 1, [(BROKER, "1", [("log.retention.ms", DELETE, None)])])
        assert res[0]["error"] == 0
        assert topic_value(c, t, "retention.ms") ["value"] == "604800000"
    # the new message.max.bytes is enforced at once
    p = ck_producer(broker)
    dr = Delivery()
    p.produce(t, value=b"x" * 20000, on_delivery=dr)
    ck_produce_sync(p)
    assert dr.errors() and "MSG_SIZE_TOO_LARGE" in str(dr.errors()[0][0])


def test_broker_default_cleanup_policy(broker):
    """log.cleanup.policy is a cluster-wide dynamic setting: set to compact,
    a topic without an override becomes compacted at once (keyless records
    refused with INVALID_RECORD); an override of its own wins."""
    t = ck_create_topic(broker, unique("bpol"))
    o = ck_create_topic(broker, unique("bpol-over"), config={"cleanup.policy": "delete"})
    with conn_of(broker) as c:
        res = incremental(c, 1, [(BROKER, "", [("log.cleanup.policy", SET, "compact")])])
        assert res[0]["error"] == 0, res
        cp = topic_value(c, t, "cleanup.policy")
        assert cp["value"] == "compact" and cp["source"] == SRC_DYN_DEFAULT
        assert topic_value(c, o, "cleanup.policy")["value"] == "delete"
        res = incremental(c, 1, [(BROKER, "", [("log.cleanup.policy", SET, "shred")])])
        assert res[0]["error"] == INVALID_CONFIG
    p = ck_producer(broker, **{"message.send.max.retries": 0})
    dr = Delivery()
    p.produce(t, value=b"no key", on_delivery=dr)
    p.produce(o, value=b"no key", on_delivery=dr)
    ck_produce_sync(p)
    assert [e.code() for e, m in dr.errors()] == [87]  # INVALID_RECORD, on the compacted topic only
    assert len(dr.ok()) == 1


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_configs_persist_across_restart(broker, how):
    t = ck_create_topic(broker, unique("persist"))
    with conn_of(broker) as c:
        assert incremental(c, 1, [(TOPIC, t, [("retention.ms", SET, "86400000"),
                                              ("message.timestamp.type", SET, "LogAppendTime")])])[0]["error"] == 0
        assert incremental(c, 1, [(BROKER, "", [("log.segment.bytes", SET, "500000")]),
                                  (BROKER, "1", [("log.roll.ms", SET, "3600000")])])[0]["error"] == 0
    if how == "kill9":
        broker.kill9()
        broker.start()
    else:
        broker.restart()
    with conn_of(broker) as c:
        d = describe(c, 4, [(TOPIC, t, None)])[0]["configs"]
        assert d["retention.ms"]["value"] == "86400000" and d["retention.ms"]["source"] == SRC_TOPIC
        assert d["message.timestamp.type"]["value"] == "LogAppendTime"
        assert d["segment.bytes"]["value"] == "500000" and d["segment.bytes"]["source"] == SRC_DYN_DEFAULT
        assert d["segment.ms"]["value"] == "3600000" and d["segment.ms"]["source"] == SRC_DYN_BROKER
    leftovers = [f for f in os.listdir(broker.partition_dir(t, 0) + "/..") if f.endswith(".tmp")]
    assert leftovers == []


def test_failed_config_write_changes_nothing(broker_factory):
    """A config change whose durable write fails (injected EIO) is answered
    KAFKA_STORAGE_ERROR and is not in effect; the next one succeeds."""
    b = broker_factory(env={"RILL_FAILPOINTS": "bk.configs.write=EIO*2"})
    t = ck_create_topic(b, unique("cfgfail"))
    with conn_of(b) as c:
        res = incremental(c, 1, [(TOPIC, t, [("retention.ms", SET, "1000")]),
                                 (BROKER, "", [("log.retention.ms", SET, "2000")])])
        assert [x["error"] for x in res] == [56, 56]  # KAFKA_STORAGE_ERROR
        assert topic_value(c, t, "retention.ms")["value"] == "604800000"
        assert describe(c, 4, [(BROKER, "", None)])[0]["configs"] == {}
        res = incremental(c, 1, [(TOPIC, t, [("retention.ms", SET, "1000")])])
        assert res[0]["error"] == 0 and topic_value(c, t, "retention.ms")["value"] == "1000"
    b.restart()
    with conn_of(b) as c:
        assert topic_value(c, t, "retention.ms")["value"] == "1000"


def test_static_broker_settings_describe_as_static(broker_factory):
    b = broker_factory(props={"log.retention.hours": 2, "message.max.bytes": 500000})
    t = ck_create_topic(b, unique("static"))
    with conn_of(b) as c:
        d = describe(c, 4, [(TOPIC, t, ["retention.ms", "max.message.bytes"])], synonyms=True)[0]["configs"]
        assert d["retention.ms"]["value"] == "7200000" and d["retention.ms"]["source"] == SRC_STATIC
        assert d["max.message.bytes"]["value"] == "500000" and d["max.message.bytes"]["source"] == SRC_STATIC
        assert [s["source"] for s in d["max.message.bytes"]["synonyms"]] == [SRC_STATIC, SRC_DEFAULT]
        # a dynamic default overrides the static value; deleting it restores the static one
        assert incremental(c, 1, [(BROKER, "", [("message.max.bytes", SET, "600000")])])[0]["error"] == 0
        assert topic_value(c, t, "max.message.bytes")["value"] == "600000"
        assert incremental(c, 1, [(BROKER, "", [("message.max.bytes", DELETE, None)])])[0]["error"] == 0
        assert topic_value(c, t, "max.message.bytes")["value"] == "500000"


# ---------------------------------------------------------------------------
# real clients
# ---------------------------------------------------------------------------

def test_confluent_admin(broker):
    t = ck_create_topic(broker, unique("ckadm"), partitions=2)
    a = ck_admin(broker)
    res = ConfigResource("topic", t, set_config={"retention.ms": "3600000", "max.message.bytes": "2000"})
    a.alter_configs([res])[res].result(timeout=30)
    got = a.describe_configs([ConfigResource("topic", t)])
    cfg = list(got.values())[0].result(timeout=30)
    assert cfg["retention.ms"].value == "3600000" and cfg["retention.ms"].source == SRC_TOPIC
    assert cfg["segment.bytes"].is_default
    bad = ConfigResource("topic", t, set_config={"retention.ms": "x"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([bad])[bad].result(timeout=30)
    assert e.value.args[0].code() == INVALID_CONFIG
    if hasattr(a, "incremental_alter_configs"):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
        r2 = ConfigResource("topic", t, incremental_configs=[
            ConfigEntry("segment.bytes", "1000000", incremental_operation=AlterConfigOpType.SET)])
        a.incremental_alter_configs([r2])[r2].result(timeout=30)
        cfg = list(a.describe_configs([ConfigResource("topic", t)]).values())[0].result(timeout=30)
        assert cfg["segment.bytes"].value == "1000000" and cfg["retention.ms"].value == "3600000"
    brk = list(a.describe_configs([ConfigResource("broker", "1")]).values())[0].result(timeout=30)
    assert brk["message.max.bytes"].value == "1048588" and brk["log.dirs"].is_read_only
    # create_partitions and delete_records through the same client
    from confluent_kafka.admin import NewPartitions
    a.create_partitions([NewPartitions(t, 4)])[t].result(timeout=30)
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions(t, 3)])[t].result(timeout=30)
    assert e.value.args[0].code() == 37  # INVALID_PARTITIONS


def test_kafka_python_admin(broker):
    from kafka.admin import ConfigResource as KPRes, ConfigResourceType, KafkaAdminClient
    t = ck_create_topic(broker, unique("kpadm"))
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        resp = a.alter_configs([KPRes(ConfigResourceType.TOPIC, t, configs={"retention.ms": "7200000"})])
        assert resp.resources[0][0] == 0, resp
        resp = a.describe_configs([KPRes(ConfigResourceType.TOPIC, t)])
        res = resp[0].resources[0]
        assert res[0] == 0
        entries = {e[0]: e[1] for e in res[4]}
        assert entries["retention.ms"] == "7200000" and entries["cleanup.policy"] == "delete"
        resp = a.describe_configs([KPRes(ConfigResourceType.BROKER, "1")])
        entries = {e[0]: e[1] for e in resp[0].resources[0][4]}
        assert entries["node.id"] == "1"
    finally:
        a.close()


def test_kcat_reads_recompressed_topic(broker):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if not kcat:
        pytest.skip("kcat is not installed")
    t = ck_create_topic(broker, unique("kcatz"), config={"compression.type": "zstd"})
    vals = [("v%d-" % i + "y" * 200) for i in range(50)]
    subprocess.run([kcat, "-b", broker.bootstrap, "-P", "-t", t, "-p", "0", "-z", "lz4"],
                   input=("\n".join(vals) + "\n").encode(), check=True, timeout=60)
    out = subprocess.run([kcat, "-b", broker.bootstrap, "-C", "-t", t, "-p", "0", "-o", "beginning", "-e",
                          "-c", str(len(vals)), "-q"], capture_output=True, timeout=60, check=True).stdout
    assert out.decode().split("\n")[:len(vals)] == vals
    attrs = {b["attributes"] & 7 for b in on_disk(broker, t)}
    assert attrs == {kwire.CODEC_ZSTD}


# ---------------------------------------------------------------------------
# what the configs do
# ---------------------------------------------------------------------------

def on_disk(broker, topic, partition=0):
    return [x for seg in broker.segment_files(topic, partition) for x in kwire.read_segment_batches(seg)]


def test_log_append_time_visible_to_consumer(broker):
    t = ck_create_topic(broker, unique("lat"), config={"message.timestamp.type": "LogAppendTime"})
    p = ck_producer(broker)
    dr = Delivery()
    before = int(time.time() * 1000)
    p.produce(t, value=b"a", timestamp=1000, on_delivery=dr)
    ck_produce_sync(p)
    assert not dr.errors()
    after = int(time.time() * 1000)
    msgs = ck_read_partition(broker, t, 0, 0, 1)
    ttype, ts = msgs[0].timestamp()
    assert ttype == 2 and before - 5 <= ts <= after + 5  # TIMESTAMP_LOG_APPEND_TIME
    # switched back to CreateTime: the producer's timestamp is kept
    with conn_of(broker) as c:
        assert incremental(c, 1, [(TOPIC, t, [("message.timestamp.type", DELETE, None)])])[0]["error"] == 0
    p.produce(t, value=b"b", timestamp=2000, on_delivery=dr)
    ck_produce_sync(p)
    msgs = ck_read_partition(broker, t, 0, 1, 2)
    assert msgs[0].timestamp() == (1, 2000)


def test_timestamp_difference_rejected(broker):
    t = ck_create_topic(broker, unique("tsdiff"), config={"message.timestamp.difference.max.ms": "60000"})
    now = int(time.time() * 1000)
    with conn_of(broker) as c:
        # every record counts: a late second record in an otherwise fine batch (uncompressed and zstd)
        late = [(b"k", b"v", []), (b"k2", b"v2", [], 3600000)]
        for codec in (kwire.CODEC_NONE, kwire.CODEC_ZSTD):
            res = c.produce(8, [(t, [(0, kwire.build_batch(late, base_ts=now, codec=codec))])])
            assert res[(t, 0)]["error"] == INVALID_TIMESTAMP and "offset 1" in res[(t, 0)]["error_message"]
        # NO_TIMESTAMP (-1) is not checked
        res = c.produce(8, [(t, [(0, kwire.build_batch([(b"k", b"v", [])], base_ts=-1))])])
        assert res[(t, 0)]["error"] == 0
        for ts, want in [(now - 3600000, INVALID_TIMESTAMP), (now + 3600000, INVALID_TIMESTAMP), (now, 0),
                         (-2 ** 62, INVALID_TIMESTAMP)]:
            batch = kwire.build_batch([(b"k", b"v", [])], base_ts=ts)
            res = c.produce(8, [(t, [(0, batch)])])
            part = res[(t, 0)]
            assert part["error"] == want, (ts, res)
            if want:
                assert "out of range" in part["error_message"]
    p = ck_producer(broker)
    dr = Delivery()
    p.produce(t, value=b"old", timestamp=now - 3600000, on_delivery=dr)
    ck_produce_sync(p)
    assert dr.errors() and "INVALID_TIMESTAMP" in str(dr.errors()[0][0])


@pytest.mark.parametrize("codec", ["lz4", "none"])
def test_recompression_to_topic_codec(broker, codec):
    t = ck_create_topic(broker, unique("recomp-" + codec), config={"compression.type": "zstd"})
    vals = [("record %d " % i).encode() + b"z" * 300 for i in range(200)]
    p = ck_producer(broker, compression_type=codec, linger_ms=50, batch_num_messages=1000)
    dr = Delivery()
    for i, v in enumerate(vals):
        p.produce(t, key=b"k%d" % i, value=v, headers=[("h", b"%d" % i)], on_delivery=dr)
    ck_produce_sync(p)
    assert not dr.errors()
    batches = on_disk(broker, t)
    assert batches and {b["attributes"] & 7 for b in batches} == {kwire.CODEC_ZSTD}
    stored = sum(b["size"] for b in batches)
    msgs = ck_read_partition(broker, t, 0, 0, len(vals))
    assert [m.value() for m in msgs] == vals
    assert [m.key() for m in msgs] == [b"k%d" % i for i in range(len(vals))]
    assert [m.headers() for m in msgs] == [[("h", b"%d" % i)] for i in range(len(vals))]
    assert stored < sum(len(v) for v in vals) / 5  # zstd shrinks the repetitive values
    # uncompressed: the broker decompresses
    u = ck_create_topic(broker, unique("decomp"), config={"compression.type": "uncompressed"})
    p = ck_producer(broker, compression_type="gzip")
    p.produce(u, value=b"plain" * 100, on_delivery=dr)
    ck_produce_sync(p)
    assert {b["attributes"] & 7 for b in on_disk(broker, u)} == {kwire.CODEC_NONE}
    assert ck_read_partition(broker, u, 0, 0, 1)[0].value() == b"plain" * 100


def test_null_and_empty_fields_answered(broker):
    """Empty names and null values (where the schema allows null) get
    per-resource errors; a null where the schema has no null (a resource or
    config name) is undecodable and closes the connection, as Kafka does."""
    t = ck_create_topic(broker, unique("nulls"))
    with conn_of(broker) as c:
        res = describe(c, 1, [(TOPIC, "", None), (BROKER, "x", ["", "node.id"]), (BROKER, "", None)])
        assert [x["error"] for x in res] == [UNKNOWN_TOPIC, INVALID_REQUEST, 0]
        res = incremental(c, 0, [(TOPIC, t, [("", SET, "1"), ("", SET, "2")]), (TOPIC, "", []),
                                 (BROKER, "x", [("message.max.bytes", SET, "5")]), (TOPIC, t, [("", DELETE, None)]),
                                 (TOPIC, t, [("retention.ms", SET, None)])])
        assert [x["error"] for x in res] == [INVALID_REQUEST, UNKNOWN_TOPIC, INVALID_REQUEST, INVALID_CONFIG,
                                             INVALID_REQUEST]
        res = alter(c, 0, [(TOPIC, t, [("", None)]), (BROKER, "", [("log.retention.ms", None)])])
        assert [x["error"] for x in res] == [INVALID_CONFIG, INVALID_REQUEST]
        assert alter(c, 0, []) == []
        assert topic_value(c, t, "retention.ms")["source"] == SRC_DEFAULT
    for api, v, body in [(DESCRIBE, 0, describe_body(0, [(TOPIC, None, None)])),
                         (ALTER, 0, alter_body(0, [(TOPIC, t, [(None, "1")])])),
                         (INCREMENTAL, 0, alter_body(0, [(TOPIC, None, [])], incremental=True))]:
        with conn_of(broker) as c:
            c.send(kwire.request(api, v, 5, body))
            c.wait_closed()
    with conn_of(broker) as c:
        assert describe(c, 0, [(TOPIC, t, ["retention.ms"])])[0]["error"] == 0
