# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Secret memory: after ``clear-creds`` or a replacing push no copy of a value is left in
any process of the daemon, and the serving process is locked out of swap.

The scan reads /proc/PID/maps and /proc/PID/mem of the serving process AND of its audit
writer process (the daemon is not dumpable: root with CAP_SYS_PTRACE is needed).  Each
value is a fresh canary; the scan counts its raw bytes, which is how it appears in the
request line, its decoded text, the parsed string (one byte per character for ASCII) and
every encoded reply.  Counts before any wiping (the daemon as it was before
secret_memory.py) are in docs/daemon.md "Secret memory".
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import uuid

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import RawConn, memory_hits, wait_for, wait_idle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")

PROJECT = "mem"
BULK = 40       # more values of other sizes: freed copies cannot all be reused before the scan
NAMES = ("TOKEN", "PEM", "aws", "UNI") + tuple("BULK_%02d" % i for i in range(BULK))


def canaries():
    """Fresh values: a plain token, a PEM-like value with JSON escapes, a field, a non-ASCII one."""
    tag = uuid.uuid4().hex
    plain = "CANARY-plain-" + tag
    pem = "CANARY-pem-" + tag
    field = "CANARY-field-" + tag
    uni = "CANARY-uni-" + tag
    secrets = {
        "TOKEN": plain,
        "PEM": "-----BEGIN KEY-----\n%s\n\"quoted\" \\ tail\n-----END KEY-----\n" % pem,
        "aws": {"access_key_id": "AKIA-not-secret", "secret_access_key": field},
        "UNI": "\u00e9%s\u00fc\u2603" % uni,
    }
    bulk = "CANARY-bulk-" + tag
    for i in range(BULK):
        secrets["BULK_%02d" % i] = "%s-%02d-%s" % (bulk, i, "b" * (7 * i))
    return secrets, (plain, pem, field, uni, bulk)


def counts(broker, needles):
    """{needle: (serving process hits, writer process hits)}; no request in between."""
    writer = broker.writer_pid
    wait_idle(broker.pid)
    return {n: (memory_hits(broker.pid, n.encode()), memory_hits(writer, n.encode())) for n in needles}


def held(needles):
    """What the store holds: one get reply per value, two for the field (object and field)."""
    return {needles[0]: (1, 0), needles[1]: (1, 0), needles[2]: (2, 0), needles[3]: (1, 0), needles[4]: (BULK, 0)}


def use(broker, secrets):
    """diff + push through the collection's client, gets, two more diffs, pipelined gets."""
    client = broker.client()
    client.request("diff-creds", secrets=secrets)
    client.request("push-creds", secrets=secrets)
    for _round in range(3):
        assert broker.project(PROJECT, "get", name="TOKEN")["value"] == secrets["TOKEN"]
        assert broker.project(PROJECT, "get", name="PEM")["value"] == secrets["PEM"]
        assert broker.project(PROJECT, "get", name="UNI")["value"] == secrets["UNI"]
        assert json.loads(broker.project(PROJECT, "get", name="aws")["value"]) == secrets["aws"]
        got = broker.project(PROJECT, "get", name="aws", field="secret_access_key")
        assert got["value"] == secrets["aws"]["secret_access_key"]
    # The raw harness client too: a differently formatted request line (", " separators).
    broker.admin_ok("diff-creds", secrets=secrets)
    # A request longer than one read (asyncio reads 256 KiB at most), refused after
    # parsing; the values are in its last read.
    refused = broker.admin("diff-creds", secrets=dict({"PAD": "p" * 300000}, **secrets))
    assert refused["ok"] is False and refused["code"] == "payload_too_large"
    # Pipelined, last (nothing reuses the freed memory before the scan): the replies of
    # one read leave in one joined buffer.
    names = ["TOKEN", "PEM", "aws"] + sorted(n for n in secrets if n.startswith("BULK_"))
    conn = RawConn(broker.project_socket(PROJECT))
    try:
        conn.send(b"".join(b'{"op":"get","name":"%s"}\n' % n.encode() for n in names))
        replies = [json.loads(conn.read_line()) for _name in names]
    finally:
        conn.close()
    assert [r["name"] for r in replies] == names and all(r["ok"] for r in replies)


# The in-place overwrite of Python's copies depends on CPython's object layout, which
# the daemon probes at start; on an interpreter where the probe fails it reports
# value_wipe false and only its own buffers are zeroed.  The copy counts below hold where
# the wipe is on; where it is off they are not asserted (reported as skipped), and
# test_value_wipe_is_on_where_the_layout_is_known pins where: on for CPython 3.11
# (Debian 12's), 3.12 (Ubuntu 24.04's) and 3.13, the versions the daemon runs on.
WIPE_LAYOUT_KNOWN = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info[:2] <= (3, 13)


def require_value_wipe(broker):
    hardening = broker.status()["hardening"]
    if not hardening["value_wipe"]:
        pytest.skip("value_wipe is off in this interpreter (%s): copy counts not asserted"
                    % sys.version.split()[0])


@pytest.fixture
def loaded(broker_factory):
    broker = broker_factory(rate_limit=0)
    require_value_wipe(broker)
    broker.writer_pid = wait_for(lambda: broker.status()["audit"]["writer_pid"], what="the audit writer")
    assert broker.writer_pid != broker.pid
    broker.make_project(PROJECT, NAMES, expected_uid=os.getuid())
    secrets, needles = canaries()
    use(broker, secrets)
    # The scan sees what the store holds; nothing in the writer, which never holds values.
    found = counts(broker, needles)
    assert found == held(needles), found
    return broker, secrets, needles


def test_clear_creds_leaves_no_copy_in_any_process(loaded):
    broker, _secrets, needles = loaded
    assert broker.admin_ok("clear-creds")["cleared"] == 4 + BULK
    assert counts(broker, needles) == {n: (0, 0) for n in needles}


def test_replacing_push_leaves_no_copy_of_the_old_values(loaded):
    broker, _secrets, needles = loaded
    new, new_needles = canaries()
    del new["UNI"]                  # removed by the push
    broker.client().request("push-creds", secrets=new)
    assert counts(broker, needles) == {n: (0, 0) for n in needles}
    still = counts(broker, new_needles)
    expect = held(new_needles)
    expect[new_needles[3]] = (0, 0)
    assert still == expect, still


def test_repushing_the_same_values_keeps_one_copy(loaded):
    broker, secrets, needles = loaded
    for _round in range(3):
        reply = broker.client().request("push-creds", secrets=secrets)
        assert reply["changed"] == [] and reply["added"] == []
    assert counts(broker, needles) == held(needles)


def test_rejected_push_leaves_no_copy(broker_factory):
    broker = broker_factory()
    require_value_wipe(broker)
    broker.writer_pid = wait_for(lambda: broker.status()["audit"]["writer_pid"], what="the audit writer")
    secrets, needles = canaries()
    secrets["BAD"] = 5              # the whole push is refused after the others were encoded
    reply = broker.admin("push-creds", secrets=secrets)
    assert reply["ok"] is False and reply["code"] == "invalid_payload"
    assert counts(broker, needles) == {n: (0, 0) for n in needles}


def status_kib(pid, key):
    with open("/proc/%d/status" % pid, encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (key, pid))


def test_serving_process_is_locked_out_of_swap(broker):
    hardening = broker.status()["hardening"]
    assert hardening["memory_locked"] is True and hardening["memory_lock_error"] is None
    assert status_kib(broker.pid, "VmLck") > 0
    # Locked on fault: the lock does not fault in the whole address space.
    assert status_kib(broker.pid, "VmRSS") < status_kib(broker.pid, "VmSize")


def test_value_wipe_is_on_where_the_layout_is_known(broker):
    assert broker.status()["hardening"]["value_wipe"] is WIPE_LAYOUT_KNOWN


def _unprivileged(limit):
    """A wrapper that runs the daemon without CAP_IPC_LOCK and with RLIMIT_MEMLOCK ``limit``."""
    if not (shutil.which("setpriv") and shutil.which("prlimit")):
        pytest.skip("needs setpriv and prlimit (util-linux)")
    return ["prlimit", "--memlock=%d:%d" % (limit, limit), "setpriv", "--inh-caps=-ipc_lock",
            "--bounding-set=-ipc_lock", "--"]


def test_lock_works_without_privilege_when_the_limit_allows(broker_factory):
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard != resource.RLIM_INFINITY and hard < (256 << 20):
        pytest.skip("RLIMIT_MEMLOCK hard limit %d bytes is below the daemon's address space" % hard)
    broker = broker_factory(wrapper=_unprivileged(256 << 20))
    assert broker.status()["hardening"]["memory_locked"] is True
    assert status_kib(broker.pid, "VmLck") > 0


def test_a_lock_that_cannot_be_taken_is_reported_and_serving_goes_on(broker_factory):
    broker = broker_factory(wrapper=_unprivileged(64 << 10))
    hardening = broker.status()["hardening"]
    assert hardening["memory_locked"] is False
    assert "RLIMIT_MEMLOCK is 65536 bytes" in hardening["memory_lock_error"]
    assert status_kib(broker.pid, "VmLck") == 0
    assert "mlockall" in wait_for(broker.stderr, what="the warning on stderr")


def test_require_memory_lock_refuses_to_start_without_it(broker_factory):
    broker = broker_factory("--require-memory-lock", wrapper=_unprivileged(64 << 10), start=False)
    broker.start(wait=False)
    assert broker.proc.wait(timeout=60) == 2
    assert "LimitMEMLOCK" in broker.stderr()


def test_require_memory_lock_starts_when_locked(broker_factory):
    broker = broker_factory("--require-memory-lock")
    assert broker.status()["hardening"]["memory_locked"] is True
