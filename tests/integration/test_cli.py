"""The `rill` CLI against rilld: topic create/list/describe/delete (tables,
per-topic errors, exit codes), produce -> consume round trips (keys, key
delimiter, headers, partitions, tombstones, every codec, start offsets,
counts), a cross-check of `rill produce` with confluent_kafka, the perf tools'
--json summaries, and the error paths (usage errors exit 2, an unreachable
broker exits 1 with the reason)."""
import json
import os
import subprocess

import pytest

from rilltest import RILL_CLI, ck_consumer, free_port, unique


def rill(args, broker=None, input=None, timeout=60, expect=0):
    cmd = [RILL_CLI] + list(args)
    if broker is not None:
        cmd += ["-b", broker.bootstrap]
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if expect is not None:
        assert p.returncode == expect, "rill %s exited %d (expected %d)\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(args), p.returncode, expect, out, err)
    return p.returncode, out, err


def rows(out):
    return [line.split("\t") for line in out.splitlines() if line]


def create(broker, name, partitions, *extra):
    _, out, _ = rill(["topic", "create", name, "-p", str(partitions), "--no-header"] + list(extra), broker)
    assert rows(out) == [[name, "OK"]]
    return name


def test_topic_lifecycle(broker):
    t = unique("cli-topic")
    _, out, _ = rill(["topic", "create", t, "-p", "3", "-c", "retention.ms=604800000"], broker)
    assert rows(out) == [["TOPIC", "STATUS"], [t, "OK"]]

    # a second create fails for that topic, with the broker's reason
    _, out, err = rill(["topic", "create", t, "-p", "3"], broker, expect=1)
    assert rows(out)[1] == [t, "TOPIC_ALREADY_EXISTS"]
    assert "already exists" in err.lower()

    _, out, _ = rill(["topic", "list", "--no-header"], broker)
    assert [t, "3", "1"] in rows(out)

    _, out, _ = rill(["topic", "describe", t], broker)
    parts, configs = out.split("\n\n")  # partitions, then the non-default configs
    assert rows(configs) == [["TOPIC", "CONFIG", "VALUE", "SOURCE", "READ_ONLY"],
                             [t, "retention.ms", "604800000", "DYNAMIC_TOPIC_CONFIG", "no"]]
    r = rows(parts)
    assert r[0] == ["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "LOG_START", "END", "SIZE"]
    assert [x[1] for x in r[1:]] == ["0", "1", "2"]
    for x in r[1:]:
        assert x[0] == t and x[5:] == ["0", "0", "0"], x  # empty: 0 bytes on disk (DescribeLogDirs)

    _, out, _ = rill(["topic", "delete", t, "--no-header"], broker)
    assert rows(out) == [[t, "OK"]]
    _, _, err = rill(["topic", "describe", t], broker, expect=1)
    assert "does not exist" in err
    _, out, _ = rill(["topic", "delete", t, "--no-header"], broker, expect=1)
    assert rows(out) == [[t, "UNKNOWN_TOPIC_OR_PART"]]


def test_produce_consume_round_trip(broker):
    t = create(broker, unique("cli-rt"), 2)
    lines = b"one\ntwo\n\nfour with spaces\nlast-without-newline"
    _, _, err = rill(["produce", t, "-p", "1", "-k", "K", "-H", "h1=v1", "-H", "h2"], broker, input=lines)
    assert "produced 5 records" in err

    _, out, _ = rill(["consume", t, "-e", "-q", "-f", "%t|%p|%o|%k|%v|%h|%K|%S"], broker)
    got = [line.split("|") for line in out.split("\n")[:-1]]
    expect_vals = ["one", "two", "", "four with spaces", "last-without-newline"]
    assert len(got) == 5, out
    for i, (g, v) in enumerate(zip(got, expect_vals)):
        assert g[:7] == [t, "1", str(i), "K", v, "h1=v1,h2=<null>", "1"], g
        assert g[7] == str(len(v))

    _, out, _ = rill(["topic", "describe", t, "--no-header"], broker)
    assert [x[6] for x in rows(out)] == ["0", "5"]
    # SIZE: bytes on disk; equals the partition's segment files
    sizes = [int(x[7]) for x in rows(out)]
    on_disk = sum(os.path.getsize(f) for f in broker.segment_files(t, 1))
    assert sizes == [0, on_disk] and on_disk > 0, (sizes, on_disk)

    # start offsets and counts
    _, out, _ = rill(["consume", t, "-p", "1", "-o", "-2", "-e", "-q"], broker)
    assert out == "four with spaces\nlast-without-newline\n"
    _, out, _ = rill(["consume", t, "-p", "1", "-o", "1", "-n", "2", "-q", "-f", "%o:%v\\n"], broker)
    assert out == "1:two\n2:\n"
    _, out, _ = rill(["consume", t, "-o", "end", "-e", "-q"], broker)
    assert out == ""


def test_key_delimiter_and_tombstones(broker):
    t = create(broker, unique("cli-kd"), 1)
    rill(["produce", t, "-K", ":", "-Z"], broker, input=b"a:1\n:2\nb:\nnokey\n\n")
    _, out, _ = rill(["consume", t, "-e", "-q", "-f", "%k=%v", "--null", "NULL"], broker)
    assert out.splitlines() == ["a=1", "NULL=2", "b=NULL", "NULL=nokey", "NULL=NULL"]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_each_codec(broker, codec):
    t = create(broker, unique("cli-z-" + codec), 1)
    values = ["v%04d-%s" % (i, "x" * (i % 50)) for i in range(300)]
    rill(["produce", t, "-z", codec, "--acks", "1"], broker, input=("\n".join(values) + "\n").encode())
    _, out, _ = rill(["consume", t, "-e", "-q"], broker)
    assert out.splitlines() == values


def test_rill_produce_read_by_confluent_kafka(broker):
    import confluent_kafka as ck
    t = create(broker, unique("cli-ck"), 1)
    rill(["produce", t, "-k", "key", "-H", "src=rill"], broker, input=b"alpha\nbeta\n")
    c = ck_consumer(broker)
    c.assign([ck.TopicPartition(t, 0, ck.OFFSET_BEGINNING)])
    got = []
    try:
        for _ in range(200):
            m = c.poll(0.1)
            if m is None:
                if len(got) == 2:
                    break
                continue
            assert m.error() is None, m.error()
            got.append((m.key(), m.value(), m.headers()))
    finally:
        c.close()
    assert got == [(b"key", b"alpha", [("src", b"rill")]), (b"key", b"beta", [("src", b"rill")])]


def test_perf_tools_json(broker):
    t = create(broker, unique("cli-perf"), 3)
    _, out, _ = rill(["perf", "produce", t, "--num-records", "3000", "--record-size", "200", "--acks", "all",
                      "--json"], broker)
    j = json.loads(out.strip().splitlines()[-1])
    assert j["tool"] == "produce" and j["records"] == 3000 and j["failed"] == 0 and j["partitions"] == 3
    assert j["records_per_s"] > 0 and 0 < j["latency_p50_ms"] <= j["latency_p99_ms"] <= j["latency_max_ms"]

    _, out, _ = rill(["perf", "consume", t, "--num-records", "3000", "--json"], broker)
    j = json.loads(out.strip().splitlines()[-1])
    assert j["tool"] == "consume" and j["records"] == 3000 and j["bytes"] == 3000 * 200 and j["complete"]

    _, out, _ = rill(["perf", "e2e", t, "--rate", "1000", "--num-records", "1000", "--json"], broker)
    j = json.loads(out.strip().splitlines()[-1])
    assert j["tool"] == "e2e" and j["received"] == 1000 and j["lost"] == 0 and j["duplicates"] == 0
    assert 0 < j["e2e_p50_ms"] <= j["e2e_p99_ms"] <= j["e2e_max_ms"]

    # -P over more partitions than the topic has is refused before producing
    _, _, err = rill(["perf", "produce", t, "--num-records", "10", "-P", "5"], broker, expect=1)
    assert "only 3 partitions" in err


def test_produce_to_missing_partition_fails(broker):
    t = create(broker, unique("cli-np"), 1)
    _, _, err = rill(["produce", t, "-p", "4"], broker, input=b"x\n", expect=1)
    assert "partition 4 does not exist" in err


def test_unreachable_broker_fails_with_reason():
    port = free_port()  # nothing listens here
    for args in (["topic", "list"], ["topic", "describe", "t"], ["consume", "t", "-e"]):
        code, _, err = rill(args + ["-b", "127.0.0.1:%d" % port, "--timeout", "2000"], expect=None, timeout=30)
        assert code == 1, (args, err)
        assert "error:" in err and ("refused" in err.lower() or "timed out" in err.lower()), err


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["topic"], ["topic", "create"], ["topic", "create", "x", "-p", "0"],
    ["topic", "list", "-p", "3"], ["produce"], ["produce", "t", "--acks", "2"], ["produce", "t", "-z", "brotli"],
    ["consume", "t", "-o", "sideways"], ["consume", "t", "-f", "%q"], ["consume", "t", "-X", "novalue"],
    ["perf", "produce", "t"], ["perf", "e2e", "t", "--num-records", "5"], ["perf", "consume", "t", "--acks", "1"],
])
def test_usage_errors_exit_2(args):
    code, out, err = rill(args, expect=2, timeout=10)
    assert out == "" and err, (args, out, err)


def test_help_exits_0():
    for args in (["help"], ["help", "topic"], ["topic", "create", "--help"], ["produce", "--help"],
                 ["consume", "--help"], ["perf", "e2e", "--help"]):
        _, out, _ = rill(args, timeout=10)
        assert "Usage" in out or "usage" in out.lower()
