"""Protocol versions no real client here exercises (librdkafka 2.0.2 stops at
Fetch v11, kafka-python at v10): flexible Produce v11, Fetch v12-v16 with
topic ids, long poll, max-bytes rules, ListOffsets v8 incl. max timestamp,
DescribeCluster, DeleteTopics v6 by id, refused old versions. The checks live
in tests/integration/clients/proto_check.c (our codec, checked against Kafka's
specs by scripts/check_schemas.py); this runs it against a real rilld."""
import os
import subprocess

from rilltest import BUILD, unique


def test_proto_check(broker):
    exe = os.path.join(BUILD, "proto_check")
    r = subprocess.run([exe, "127.0.0.1", str(broker.port), unique("proto")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, "proto_check failed:\n" + r.stdout + r.stderr
    assert "all checks passed" in r.stdout
