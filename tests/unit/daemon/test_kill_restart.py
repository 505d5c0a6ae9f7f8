# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""SIGKILL the daemon in the middle of load, restart it on the same directories.

After the restart: every registration is back (each project socket answers ping),
no secret survived (``not_found`` until the next push), ``remo_broker.py audit verify``
still passes, and the unique canary secret value is in no file under the run, state
and log directories, nor anywhere under /tmp.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import time
import uuid

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon, assert_healthy, scan_for, wait_for

PROJECTS = ["kp%d" % i for i in range(6)]
NAMES = ["CANARY_TOKEN", "CANARY_STRUCT", "PLAIN"]


def _load_client(paths, deadline, depth, out_q):
    """Pipelined gets on several project sockets until the daemon goes away."""
    ok = errors = 0
    req = b"".join(b'{"op":"get","name":"%s"}\n' % name.encode() for name in NAMES) * depth
    expected = req.count(b"\n")
    conns = []
    try:
        for path in paths:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(path)
            conns.append(sock)
        while time.monotonic() < deadline:
            for sock in conns:
                sock.sendall(req)
            for sock in conns:
                got, buf = 0, b""
                while got < expected:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise ConnectionResetError
                    buf += chunk
                    got = buf.count(b"\n")
                ok += buf.count(b'{"ok":true')
                errors += buf.count(b'{"ok":false')
    except (OSError, ConnectionResetError):
        pass  # the daemon was killed under us: expected
    out_q.put((ok, errors))


def _start_load(broker, n_procs=3, seconds=20.0):
    ctx = multiprocessing.get_context("fork")
    out_q = ctx.Queue()
    deadline = time.monotonic() + seconds
    procs = []
    for i in range(n_procs):
        paths = [broker.project_socket(p) for p in PROJECTS[i::n_procs] + PROJECTS[:1]]
        proc = ctx.Process(target=_load_client, args=(paths, deadline, 8, out_q), daemon=True)
        proc.start()
        procs.append(proc)
    return procs, out_q


def _setup(broker, canary):
    for name in PROJECTS:
        broker.add_project(name, NAMES)
    broker.admin_ok("push-creds", secrets={
        "CANARY_TOKEN": canary,
        "CANARY_STRUCT": {"user": "u", "password": canary + "-pw"},
        "PLAIN": "plain-value",
    })
    got = broker.project(PROJECTS[0], "get", name="CANARY_TOKEN")
    assert got.get("value") == canary


def _complete_lines(path):
    with open(path, "rb") as handle:
        data = handle.read()
    return data[:data.rfind(b"\n") + 1].splitlines()


def _check_restarted(broker):
    status = assert_healthy(broker)
    assert sorted(p["name"] for p in status["projects"]) == sorted(PROJECTS), status["projects"]
    assert status["secret_count"] == 0 and status["secrets_loaded_at"] is None
    for name in PROJECTS:
        ping = broker.project(name, "ping")
        assert ping.get("ok") is True and ping["project"] == name and ping["protocol_version"] == 2, ping
        for secret in NAMES:
            got = broker.project(name, "get", name=secret)
            assert got.get("ok") is False and got["code"] == "not_found", got
    # Serving again after the next push.
    broker.admin_ok("push-creds", secrets={"PLAIN": "after-restart"})
    assert broker.project(PROJECTS[-1], "get", name="PLAIN") == {"ok": True, "name": "PLAIN", "value": "after-restart"}


@pytest.mark.slow
def test_sigkill_mid_load_then_restart(tmp_path):
    canary = "CANARY-kill-%s" % uuid.uuid4().hex
    born = time.time() - 1.0
    broker = Daemon(tmp_path, rate_limit=0)
    broker.start()
    try:
        _setup(broker, canary)
        procs, out_q = _start_load(broker)
        # Let the load run until the audit writer has written several batches.
        wait_for(lambda: broker.admin("status")["audit"]["lines_written"] > 5000, 60, interval=0.05,
                 what="several audit batches")
        audit_before = os.path.getsize(broker.audit_log)
        broker.kill()
        results = [out_q.get(timeout=30) for _i in procs]
        for proc in procs:
            proc.join(timeout=30)
        ok = sum(r[0] for r in results)
        assert ok > 1000, "the load clients got only %d replies before the kill" % ok
        assert sum(r[1] for r in results) == 0
        assert audit_before > 0
        with open(broker.audit_log, "rb") as handle:
            torn = not handle.read().endswith(b"\n")
        lines_at_kill = _complete_lines(broker.audit_log)

        broker.start()
        _check_restarted(broker)
        # Every complete audit line written before the kill is still there, in order.
        after = _complete_lines(broker.audit_log)
        assert after[:len(lines_at_kill)] == lines_at_kill
    finally:
        rc = broker.stop()
    assert rc == 0, broker.stderr()[-3000:]
    verify_rc, out = broker.audit_verify()
    assert verify_rc == 0, "audit verify after SIGKILL (torn last line: %s): %s" % (torn, out)
    print("\nkill: %d gets served before SIGKILL; audit %s" % (ok, out.strip()))

    # The canary is in no file under the daemon's dirs, nor anywhere under /tmp.
    roots = [broker.run_dir, broker.state_dir, broker.log_dir, broker.base, "/tmp"]
    hits = scan_for(canary.encode(), roots, newer_than=born)
    assert hits == [], "canary value found on disk: %r" % hits
    # Sanity check of the scanner itself: it does find a planted file.
    probe = os.path.join(broker.base, "probe.txt")
    with open(probe, "w", encoding="ascii") as handle:
        handle.write("x" * 5 + canary)
    assert scan_for(canary.encode(), [broker.base]) == [probe]
    os.unlink(probe)


def test_torn_audit_line_after_kill_is_handled(tmp_path):
    """SIGKILL can cut a multi-page audit write mid-line; a restart must not break the chain.

    The daemon's decision: at start it cuts the incomplete last line (it was never a
    complete event), logs a warning, and records ``audit_truncated_bytes`` in its
    ``start`` event; the chain resumes from the last complete line.
    """
    broker = Daemon(tmp_path, rate_limit=0)
    broker.start()
    try:
        broker.add_project(PROJECTS[0], NAMES)
        for _i in range(20):
            broker.project(PROJECTS[0], "get", name="PLAIN")
        broker.audit_events(until=lambda evs: sum(e["event"] == "get" for e in evs) >= 20)
        broker.kill()
        complete = _complete_lines(broker.audit_log)
        assert complete, "no audit lines before the kill"
        # Simulate the tear: the first half of a line, no newline.
        fragment = complete[-1][: len(complete[-1]) // 2]
        with open(broker.audit_log, "ab") as handle:
            handle.write(fragment)
        broker.start()
        _check_restarted_one = broker.project(PROJECTS[0], "ping")
        assert _check_restarted_one.get("ok") is True
        for _i in range(5):
            broker.project(PROJECTS[0], "get", name="PLAIN")
    finally:
        rc = broker.stop()
    assert rc == 0
    verify_rc, out = broker.audit_verify()
    assert verify_rc == 0, out
    after = _complete_lines(broker.audit_log)
    assert after[:len(complete)] == complete, "complete lines from before the kill were lost or changed"
    events = []
    for line in after[len(complete):]:
        try:
            events.append(json.loads(line).get("event"))
        except ValueError:
            events.append(None)
    assert "start" in events and "get" in events, events
    start = json.loads(after[len(complete) + events.index("start")])
    assert start.get("audit_truncated_bytes") == len(fragment), start
    assert "incomplete line" in broker.stderr()
