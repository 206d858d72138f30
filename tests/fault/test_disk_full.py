"""Disk full: a log dir on a small tmpfs fills up under acks=all produce.
Appends that hit ENOSPC answer KAFKA_STORAGE_ERROR for that partition and
leave nothing behind; every acknowledged record is read back once space
returns, and again after kill -9 and a restart; producing works again without
a restart. Needs root to mount the tmpfs (skipped otherwise, with the reason).
The injected-ENOSPC variant of the same rule is tests/fault/test_crash.py
(st.append.write failpoint)."""
import os
import subprocess

import pytest

import kwire
from rilltest import ERR, Broker, ck_create_topic, ck_read_partition, err_name, unique

FS_SIZE = "8m"
FILLER_BYTES = 3 << 20
VALUE_BYTES = 16 << 10


@pytest.fixture
def tmpfs_broker(request, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a size-limited tmpfs (running as uid %d)" % os.geteuid())
    b = Broker(data_dir=str(tmp_path / "b"),
               props={"log.segment.bytes": 1 << 20, "log.index.size.max.bytes": 4096})
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + FS_SIZE, "tmpfs", b.data_dir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs (%s)" % (r.stderr.strip() or r.returncode))
    try:
        yield b
    finally:
        try:
            b.cleanup()
        finally:
            subprocess.run(["umount", "-l", b.data_dir], check=False)


def value_of(i):
    return (b"rec-%06d-" % i).ljust(VALUE_BYTES, b"x")


def produce_one(conn, topic, i):
    batch = kwire.build_batch([(b"k%d" % i, value_of(i), [])])
    return conn.produce(9, [(topic, [(0, batch)])], acks=-1)[(topic, 0)]


def test_disk_full_then_space_returns(tmpfs_broker):
    b = tmpfs_broker
    filler = os.path.join(b.data_dir, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * FILLER_BYTES)
    b.start()
    topic = ck_create_topic(b, unique("full"), partitions=1)
    acked, errors, i = [], [], 0
    with kwire.Conn(b.port) as c:
        # bounded: 8 MiB of tmpfs holds < 512 values of 16 KiB
        while len(errors) < 5 and i < 1000:
            res = produce_one(c, topic, i)
            if res["error"] == 0:
                assert res["base_offset"] == len(acked), "offsets must stay contiguous: %s" % res
                acked.append(i)
            else:
                assert res["error"] == ERR["KAFKA_STORAGE_ERROR"], err_name(res["error"])
                errors.append(i)
            i += 1
        assert len(errors) == 5, "the filesystem never filled (%d appends acknowledged)" % len(acked)
        assert acked, "nothing was acknowledged before the disk filled"
        # space returns: appends are accepted again, no restart needed
        os.unlink(filler)
        for _ in range(20):
            res = produce_one(c, topic, i)
            assert res["error"] == 0, "append after space returned: %s" % err_name(res["error"])
            assert res["base_offset"] == len(acked)
            acked.append(i)
            i += 1
    want = [value_of(k) for k in acked]
    assert [m.value() for m in ck_read_partition(b, topic, 0, 0, len(acked))] == want
    b.kill9()
    b.start()
    assert [m.value() for m in ck_read_partition(b, topic, 0, 0, len(acked))] == want
    stored = sum(x["count"] for s in b.segment_files(topic, 0) for x in kwire.read_segment_batches(s))
    assert stored == len(acked), "failed appends left %d record(s) on disk" % (stored - len(acked))
