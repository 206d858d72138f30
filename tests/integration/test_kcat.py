"""kcat against rilld: -P (keys, headers, explicit partitions, each codec),
-C (byte-for-byte read back through a -f format), -L (metadata, plain and
JSON). The broker must store compressed batches as they came, so the codec
is also checked on disk."""
import json
import random
import shutil
import subprocess
import time

import pytest

import kwire
from rilltest import ck_create_topic, unique

KCAT = shutil.which("kcat") or "/usr/bin/kcat"
SEP = b"|"


def kcat(broker, args, input=None, timeout=60):
    cmd = [KCAT, "-b", broker.bootstrap, "-X", "socket.nagle.disable=true"] + list(args)
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert p.returncode == 0, "kcat %s exited %d\nstderr:\n%s" % (
        " ".join(args), p.returncode, p.stderr.decode(errors="replace"))
    return p


def kcat_produce(broker, topic, lines, partition=None, key_delim=b":", headers=(), codec=None, extra=()):
    args = ["-P", "-t", topic]
    if key_delim is not None:
        args += ["-K", key_delim.decode()]
    if partition is not None:
        args += ["-p", str(partition)]
    for h in headers:
        args += ["-H", h]
    if codec:
        args += ["-X", "compression.codec=" + codec]
    args += list(extra)
    p = kcat(broker, args, input=b"\n".join(lines) + b"\n")
    err = p.stderr.decode(errors="replace")
    assert "failed" not in err.lower(), "kcat -P reported:\n" + err
    return p


def kcat_consume(broker, topic, partition, count, fmt="%k|%s|%h|%p|%o|%T\\n"):
    """Reads `count` messages from the beginning of one partition and returns
    the output lines as bytes."""
    p = kcat(broker, ["-C", "-t", topic, "-p", str(partition), "-o", "beginning",
                      "-c", str(count), "-e", "-q", "-f", fmt])
    lines = p.stdout.split(b"\n")
    assert lines[-1] == b"", "kcat -C output does not end with a newline: %r" % p.stdout[-200:]
    return lines[:-1]


def parse_line(line):
    """key|value|headers|partition|offset|timestamp; key/value may hold any
    byte but '|' and '\\n', which the test data never contains."""
    parts = line.split(SEP)
    assert len(parts) == 6, "unexpected kcat line %r" % line
    k, v, h, p, o, t = parts
    return k, v, h.decode(), int(p), int(o), int(t)


def rand_bytes(rng, n, forbid=b"\n|:"):
    allowed = bytes(b for b in range(1, 256) if b not in forbid)
    return bytes(rng.choice(allowed) for _ in range(n))


def test_produce_consume_keys_headers_explicit_partitions(shared_broker):
    b = shared_broker
    topic = ck_create_topic(b, unique("kcat"), partitions=3)
    rng = random.Random(7)
    sent = {}
    t_before = int(time.time() * 1000)
    for p in range(3):
        recs = []
        for i in range(40):
            key = b"key-%d-%d-" % (p, i) + rand_bytes(rng, rng.randint(0, 20))
            value = ("value %d/%d é ✓ " % (p, i)).encode() + rand_bytes(rng, rng.randint(0, 300))
            recs.append((key, value))
        sent[p] = recs
        kcat_produce(b, topic, [k + b":" + v for k, v in recs], partition=p,
                     headers=["src=kcat", "part=p%d" % p, "dup=1", "dup=2"])
    t_after = int(time.time() * 1000)
    for p in range(3):
        lines = kcat_consume(b, topic, p, len(sent[p]))
        assert len(lines) == len(sent[p]), "partition %d: %d lines read, %d sent" % (p, len(lines), len(sent[p]))
        for i, (line, (key, value)) in enumerate(zip(lines, sent[p])):
            k, v, h, part, off, ts = parse_line(line)
            assert k == key, "partition %d offset %d: key %r != sent %r" % (p, i, k, key)
            assert v == value, "partition %d offset %d: value %r != sent %r" % (p, i, v, value)
            assert h == "src=kcat,part=p%d,dup=1,dup=2" % p, "partition %d offset %d: headers %r" % (p, i, h)
            assert part == p
            assert off == i, "partition %d: offsets not contiguous from 0 (line %d has %d)" % (p, i, off)
            assert t_before - 5000 <= ts <= t_after + 5000, "timestamp %d not within the produce window" % ts


def test_produce_without_key_and_default_partitioner(shared_broker):
    b = shared_broker
    topic = ck_create_topic(b, unique("kcat-nokey"), partitions=2)
    values = [b"plain line %d" % i for i in range(30)]
    kcat_produce(b, topic, values, key_delim=None)
    got = []
    for p in range(2):
        # -e stops at the end of the partition, so asking for more is fine
        p_out = kcat(b, ["-C", "-t", topic, "-p", str(p), "-o", "beginning", "-e", "-q",
                         "-f", "%o|%s|%K\\n"]).stdout
        for line in p_out.split(b"\n")[:-1]:
            off, v, klen = line.split(b"|")
            assert klen == b"-1", "a keyless message came back with key length %r" % klen
            got.append(v)
    assert sorted(got) == sorted(values), "kcat -P without key: read back %d of %d values" % (len(got), len(values))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(shared_broker, codec):
    b = shared_broker
    topic = ck_create_topic(b, unique("kcat-" + codec), partitions=1)
    # compressible values so that librdkafka really compresses
    recs = [(b"k%04d" % i, (b"compressible %s payload %04d " % (codec.encode(), i)) * 8) for i in range(200)]
    kcat_produce(b, topic, [k + b":" + v for k, v in recs], partition=0, codec=codec,
                 extra=["-X", "linger.ms=50"])
    lines = kcat_consume(b, topic, 0, len(recs))
    assert len(lines) == len(recs)
    for i, (line, (key, value)) in enumerate(zip(lines, recs)):
        k, v, h, part, off, ts = parse_line(line)
        assert (k, v, off) == (key, value, i), "%s: offset %d read back as key %r value %r offset %d" % (
            codec, i, k, v[:60], off)
    # stored verbatim: the batches on disk carry the codec the client used
    batches = [x for seg in b.segment_files(topic, 0) for x in kwire.read_segment_batches(seg)]
    assert batches, "no batches found on disk for %s-0 in %s" % (topic, b.data_dir)
    codecs = {kwire.CODEC_NAMES[x["codec"]] for x in batches}
    assert codecs == {codec}, "%s: batches on disk have codecs %s" % (codec, codecs)
    assert all(x["crc_ok"] for x in batches), "a stored batch fails its CRC"
    assert sum(x["count"] for x in batches) == len(recs)


def test_metadata_list(shared_broker):
    b = shared_broker
    topic = ck_create_topic(b, unique("kcat-md"), partitions=4)
    text = kcat(b, ["-L"]).stdout.decode()
    assert 'topic "%s" with 4 partitions' % topic in text, "kcat -L output lacks the topic:\n" + text
    assert "broker 1 at 127.0.0.1:%d" % b.port in text, "kcat -L output lacks the broker:\n" + text

    md = json.loads(kcat(b, ["-L", "-J", "-t", topic]).stdout)
    assert [x["id"] for x in md["brokers"]] == [1], md
    assert md["brokers"][0]["name"] == "127.0.0.1:%d" % b.port, md
    assert md.get("controllerid") == 1, "controller id %r, expected 1" % md.get("controllerid")
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, md
    t = topics[topic]
    assert "error" not in t, t
    parts = sorted(t["partitions"], key=lambda x: x["partition"])
    assert [x["partition"] for x in parts] == [0, 1, 2, 3]
    for x in parts:
        assert x["leader"] == 1, x
        assert [r["id"] for r in x["replicas"]] == [1], x
        assert [r["id"] for r in x["isrs"]] == [1], x


def test_consume_from_end_sees_new_messages(shared_broker):
    """kcat -C -o end waits (long poll) and gets what is produced afterwards.
    kcat resolves 'end' asynchronously, so the new message is produced again
    every 2 s until kcat prints one (bounded: 10 tries)."""
    b = shared_broker
    topic = ck_create_topic(b, unique("kcat-tail"), partitions=1)
    kcat_produce(b, topic, [b"old:before"], partition=0)
    cmd = [KCAT, "-b", b.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "end", "-c", "1", "-q", "-f", "%k|%s\\n"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = err = b""
    try:
        for _ in range(10):
            kcat_produce(b, topic, [b"new:after"], partition=0)
            try:
                out, err = proc.communicate(timeout=2)
                break
            except subprocess.TimeoutExpired:
                continue
        assert proc.returncode == 0, "kcat -C exited %s: %s" % (proc.returncode, err)
        assert out == b"new|after\n", "kcat -C -o end printed %r" % out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
