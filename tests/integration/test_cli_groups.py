"""`rill group list|describe|reset-offsets|delete` against rilld, with
confluent-kafka consumers making the groups: states, members, decoded
assignments, committed offsets, log end offsets and lag; reset-offsets' dry
run, every target, and its refusal on a group with members; delete."""
import time

import pytest
from confluent_kafka import TopicPartition

from rilltest import ck_create_topic, unique
from test_cli import rill, rows
from test_groups import group_consumer, poll_until, produce_n, subscribe

PROPS = {"group.initial.rebalance.delay.ms": 0}


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(props=PROPS)


def tables(out, header=True):
    """describe output: tables separated by one empty line (an empty table
    without a header is an empty block); header rows dropped."""
    blocks = [[]]
    for line in out.rstrip("\n").split("\n"):
        if line:
            blocks[-1].append(line.split("\t"))
        else:
            blocks.append([])
    return [b[1:] if header else b for b in blocks]


def committed(broker, group, topic, n):
    c = group_consumer(broker, group)
    try:
        return [p.offset for p in c.committed([TopicPartition(topic, p) for p in range(n)], timeout=10)]
    finally:
        c.close()


def test_group_list_describe_delete(gbroker):
    topic = unique("cli-grp")
    ck_create_topic(gbroker, topic, 3)
    produce_n(gbroker, topic, 30, partitions=3)
    c = group_consumer(gbroker, "cli-g1", **{"client.id": "cli-client"})
    t = subscribe(c, topic)
    poll_until([c], [t], lambda ts: len(ts[0].assigned) == 3, 30, "assignment")
    c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 10)], asynchronous=False)
    idle = group_consumer(gbroker, "cli-g2")
    idle.commit(offsets=[TopicPartition(topic, 2, 7)], asynchronous=False)
    idle.close()

    _, out, _ = rill(["group", "list"], gbroker)
    r = rows(out)
    assert r[0] == ["GROUP", "STATE", "TYPE"]
    listed = {x[0]: x[1:] for x in r[1:]}
    assert listed["cli-g1"] == ["Stable", "consumer"]
    assert listed["cli-g2"][0] == "Empty"

    _, out, _ = rill(["group", "describe", "cli-g1"], gbroker)
    summary, members, parts = tables(out)
    assert summary == [["cli-g1", "Stable", "range", "1", "1"]]
    (m,) = members
    assert m[0] == "cli-g1" and m[2] == "-" and m[3] == "cli-client" and m[4].startswith("/127.0.0.1")
    assert m[5] == ",".join("%s:%d" % (topic, p) for p in range(3))
    member_id = m[1]
    assert parts == [
        ["cli-g1", topic, "0", "4", "10", "6", member_id, "cli-client", m[4]],
        ["cli-g1", topic, "1", "10", "10", "0", member_id, "cli-client", m[4]],
        ["cli-g1", topic, "2", "-", "10", "-", member_id, "cli-client", m[4]],
    ]
    # an empty group: offsets without owners
    _, out, _ = rill(["group", "describe", "cli-g2", "--no-header"], gbroker)
    summary, members, parts = tables(out, header=False)
    assert summary == [["cli-g2", "Empty", "-", "0", "1"]] and members == []
    assert parts == [["cli-g2", topic, "2", "7", "10", "3", "-", "-", "-"]]

    # delete: refused while the group has a member, then done
    _, out, err = rill(["group", "delete", "cli-g1", "--no-header"], gbroker, expect=1)
    assert rows(out) == [["cli-g1", "NON_EMPTY_GROUP"]]
    c.close()
    deadline = time.monotonic() + 15
    while True:
        code, out, _ = rill(["group", "delete", "cli-g1", "cli-g2", "--no-header"], gbroker, expect=None)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert code == 0 and rows(out) == [["cli-g1", "OK"], ["cli-g2", "OK"]]
    _, out, _ = rill(["group", "list", "--no-header"], gbroker)
    assert not [x for x in rows(out) if x[0] in ("cli-g1", "cli-g2")]
    _, _, err = rill(["group", "describe", "cli-g1"], gbroker, expect=1)
    assert "does not exist" in err
    _, out, _ = rill(["group", "delete", "no-such-group", "--no-header"], gbroker, expect=1)
    assert rows(out) == [["no-such-group", "GROUP_ID_NOT_FOUND"]]


def test_group_reset_offsets(gbroker):
    topic = unique("cli-reset")
    ck_create_topic(gbroker, topic, 2)
    produce_n(gbroker, topic, 10, partitions=2)  # 5 per partition, offsets 0..4
    time.sleep(0.05)
    mid = time.time()
    time.sleep(0.05)
    produce_n(gbroker, topic, 10, partitions=2, prefix="late")  # offsets 5..9
    g = "cli-reset-g"
    c = group_consumer(gbroker, g)
    c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 8)], asynchronous=False)

    def reset(*target, execute=False, expect=0):
        args = ["group", "reset-offsets", g, "--topic", topic, "--no-header"] + list(target)
        if execute:
            args.append("--execute")
        return rill(args, gbroker, expect=expect)

    # dry run by default: a plan, nothing changed
    _, out, err = reset("--to-earliest")
    assert rows(out) == [[g, topic, "0", "3", "0"], [g, topic, "1", "8", "0"]]
    assert "dry run" in err
    assert committed(gbroker, g, topic, 2) == [3, 8]
    _, out, _ = reset("--to-latest")
    assert [x[4] for x in rows(out)] == ["10", "10"]
    _, out, _ = reset("--to-offset", "7")
    assert [x[4] for x in rows(out)] == ["7", "7"]
    _, out, _ = reset("--to-offset", "70")  # clamped to the end
    assert [x[4] for x in rows(out)] == ["10", "10"]
    _, out, _ = reset("--shift-by", "-5")
    assert [x[4] for x in rows(out)] == ["0", "3"]  # clamped at the start
    _, out, _ = reset("--shift-by", "1")
    assert [x[4] for x in rows(out)] == ["4", "9"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mid)) + ".%03dZ" % int((mid % 1) * 1000)
    _, out, _ = reset("--to-datetime", iso)
    assert [x[4] for x in rows(out)] == ["5", "5"]
    _, out, _ = reset("--to-datetime", "2000-01-01T00:00:00+02:00")
    assert [x[4] for x in rows(out)] == ["0", "0"]
    _, out, _ = reset("--to-datetime", "2100-01-01T00:00:00Z")
    assert [x[4] for x in rows(out)] == ["10", "10"]
    assert committed(gbroker, g, topic, 2) == [3, 8]
    # --execute applies
    _, out, err = reset("--to-datetime", iso, execute=True)
    assert committed(gbroker, g, topic, 2) == [5, 5]
    _, out, _ = reset("--shift-by", "-2", execute=True)
    assert committed(gbroker, g, topic, 2) == [3, 3]
    # a new consumer of the group starts there
    t = subscribe(c, topic)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 14 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append((m.partition(), m.offset()))
    assert sorted(got) == [(p, o) for p in range(2) for o in range(3, 10)]
    # refused while the group has an active member
    assert t.assigned
    _, out, err = reset("--to-earliest", execute=True, expect=1)
    assert "no active members" in err
    c.close()
    # a group that never existed: the offsets are created
    g = "cli-reset-new"
    _, out, _ = reset("--to-offset", "2", execute=True)
    assert committed(gbroker, g, topic, 2) == [2, 2]


def test_group_usage_errors(gbroker):
    for args, msg in [
        (["group", "reset-offsets", "g", "--to-earliest"], "missing --topic"),
        (["group", "reset-offsets", "g", "--topic", "t"], "missing a target"),
        (["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"], "exactly one"),
        (["group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"], "--to-datetime"),
        (["group", "reset-offsets", "g", "--topic", "t", "--shift-by", "x"], "--shift-by"),
        (["group", "describe"], "missing group name"),
        (["group", "list", "extra"], "unexpected argument"),
        (["group", "frobnicate"], "unknown group command"),
    ]:
        _, _, err = rill(args, gbroker, expect=2)
        assert msg in err, (args, err)
    _, out, _ = rill(["group", "reset-offsets", "--help"], None)
    assert "--to-datetime" in out and "--execute" in out
