# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Attacks on the audit log, against a real daemon: flood, starve, fill the disk, rewrite.

* A client repeating rate-limited or malformed requests writes one line plus one
  summary per interval, with exact counts, not a line per request.
* One project's audit volume (the writer stuck, so its backlog grows) pauses that
  project only; another project's requests keep being answered.
* A full audit filesystem (a 64 KiB tmpfs) makes ``get`` answer ``audit_unavailable``
  (``status`` says why) until space is freed; ``--audit-fail-open`` serves and says so.
* Someone who can rewrite the log file but not the checkpoint store: a re-chained
  edit, inserted or deleted lines, deleted first lines, a cut tail (also across a
  restart) and a deleted file all fail ``audit verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon, RawConn, request, stop_process, wait_for

VALUE = "tok-audit-hardening-0c1d"
GET = b'{"op":"get","name":"TOKEN"}\n'


class Flood:
    """One connection that pipelines ``lines``; a reader thread counts replies by code."""

    def __init__(self, path, lines):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.codes = {}
        self.replies = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._sender = threading.Thread(target=self._send, args=(lines,), daemon=True)
        self._sender.start()

    def _send(self, lines):
        try:
            self.sock.sendall(lines)
        except OSError:
            pass

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                reply = json.loads(line)
                code = "ok" if reply.get("ok") else reply.get("code")
                self.codes[code] = self.codes.get(code, 0) + 1
            self.replies += len(lines)

    def wait(self, n, timeout=120):
        wait_for(lambda: self.replies >= n, timeout, what="%d replies (have %d)" % (n, self.replies))
        return self

    def close(self):
        self.sock.close()


def _daemon(base, *args, **kwargs):
    anchor = os.path.join(str(base), "anchor")
    os.makedirs(anchor, exist_ok=True)
    return Daemon(base, ("--audit-checkpoint", "file:" + os.path.join(anchor, "checkpoints.jsonl")) + args, **kwargs)


def _verify(broker, *logs):
    """(rc, output) of `audit verify` with the daemon's checkpoint store."""
    store = broker.extra_args[broker.extra_args.index("--audit-checkpoint") + 1]
    argv = ["audit", "verify", "--audit-checkpoint", store]
    for log in logs or (broker.audit_log,):
        argv += ["--audit-log", log]
    res = broker.run_cli(*argv, timeout=300)
    return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")


def _outcomes(events, outcome, event=None):
    return [e for e in events if e["outcome"] == outcome and (event is None or e["event"] == event)]


def _counted(lines):
    """Outcomes an event list stands for: a first line is one, a summary line its repeats."""
    return sum(e.get("repeats", 1) for e in lines)


# ---------------------------------------------------------------------------
# Coalescing
# ---------------------------------------------------------------------------
def test_rate_limited_flood_writes_a_line_and_a_summary_per_interval(tmp_path):
    broker = _daemon(tmp_path, "--rate-burst", "5", rate_limit=1).start()
    try:
        broker.add_project("fl", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        n = 30000
        t0 = time.monotonic()
        flood = Flood(broker.project_socket("fl"), GET * n).wait(n)
        elapsed = time.monotonic() - t0
        limited = flood.codes.get("rate_limited", 0)
        # the burst of 5 and one token a second pass; everything else is refused
        assert set(flood.codes) == {"ok", "rate_limited"} and flood.codes["ok"] <= 5 + elapsed + 1, flood.codes
        counters = broker.admin("status")["projects"][0]["counters"]
        assert counters["rate_limited"] == limited
        # every rate-limited reply is accounted for, once the interval's summary is out
        events = broker.audit_events(until=lambda ev: _counted(_outcomes(ev, "rate_limited")) >= limited, timeout=30)
        lines = _outcomes(events, "rate_limited")
        assert _counted(lines) == limited, lines
        assert lines[0].get("repeats") is None and lines[0]["peer_pid"] == os.getpid()
        # one first line, then one summary per elapsed interval (1 s), not one line per request
        assert len(lines) <= 2 + elapsed + 2, (len(lines), elapsed)
        assert all(e["event"] == "request" and e["decision"] == "deny" and e["project"] == "fl" for e in lines)
        flood.close()
    finally:
        broker.stop()
    rc, out = _verify(broker)
    assert rc == 0, out


def test_protocol_error_flood_from_one_peer_is_coalesced(tmp_path):
    broker = _daemon(tmp_path, rate_limit=0).start()
    try:
        broker.add_project("pe", ("TOKEN",))
        n = 400
        for _i in range(n):
            conn_reply = request(broker.project_socket("pe"), {"op": "no-such-op"})
            assert conn_reply["code"] == "protocol_error"
        events = broker.audit_events(until=lambda ev: _counted(_outcomes(ev, "protocol_error")) >= n, timeout=30)
        lines = _outcomes(events, "protocol_error")
        assert _counted(lines) == n
        assert len(lines) <= 2 + 60, len(lines)     # n requests, a handful of intervals
        assert broker.admin("status")["projects"][0]["counters"]["protocol_error"] == n
    finally:
        broker.stop()


def test_the_coalescing_table_is_bounded_however_many_peers():
    """More peers than the table holds: the rest are counted per (event, project, outcome)."""
    from ansible_collections.remo.broker.plugins.module_utils._daemon import audit_coalesce
    emitted = []
    coalescer = audit_coalesce.Coalescer(emitted.append)
    peers = audit_coalesce.COALESCE_ENTRIES + 500
    for pid in range(peers):
        for _r in range(3):
            coalescer.emit("request", "p", "rate_limited", "deny", (pid, 1000), 0)
    assert len(coalescer.table) == audit_coalesce.COALESCE_ENTRIES + 1
    coalescer.flush()
    assert sum((e[9] or {}).get("repeats", 1) for e in emitted) == peers * 3
    # the first peer past the bound is logged in full, then everything of the rest is counted
    assert [e[6] for e in emitted if e[9] is None][-1] == audit_coalesce.COALESCE_ENTRIES
    folded = [e for e in emitted if e[6] is None]
    assert len(folded) == 1 and folded[0][9] == {"repeats": 500 * 3 - 1}
    coalescer.flush()
    assert not coalescer.table      # quiet keys are forgotten


# ---------------------------------------------------------------------------
# Per-project backpressure
# ---------------------------------------------------------------------------
def test_a_project_flooding_the_audit_does_not_stall_another(tmp_path):
    # the writer is stopped on purpose: backpressure, not the stall detection, is under test
    broker = _daemon(tmp_path, "--audit-stall-timeout", "600", rate_limit=0).start()
    flood = None
    writer = None
    try:
        broker.add_project("a", ("TOKEN",))
        broker.add_project("b", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        share = 10000 // 2
        b_conn = RawConn(broker.project_socket("b"))     # connected before the flood, and new ones below
        writer = broker.admin("status")["audit"]["writer_pid"]
        stop_process(writer)     # the writer consumes nothing: every event stays in the backlog
        total = 40000
        flood = Flood(broker.project_socket("a"), GET * total)
        audit = wait_for(lambda s: s["paused_projects"] == ["a"], 60, what="project a to be paused",
                         get=lambda: broker.admin("status")["audit"])
        assert audit["backpressure"] is True
        served_a = wait_for(lambda: flood.replies if flood.replies >= share else 0, 60, what="a's replies")
        assert served_a < total
        # b is still read and answered while a is paused (before the writer counts as stalled)
        latencies = []
        for i in range(100):
            t0 = time.monotonic()
            if i % 2:
                assert broker.project("b", "get", name="TOKEN")["value"] == VALUE
            else:
                b_conn.send(GET)
                assert json.loads(b_conn.read_line())["value"] == VALUE
            latencies.append(time.monotonic() - t0)
        b_conn.close()
        latencies.sort()
        assert latencies[98] < 0.5, latencies[-5:]
        assert broker.admin("status")["audit"]["paused_projects"] == ["a"]
        assert flood.replies - served_a <= 262144 // len(GET) + 1024    # at most the read and batch in flight
        os.kill(writer, signal.SIGCONT)
        writer = None
        flood.wait(total)
        assert flood.codes == {"ok": total}, flood.codes
        wait_for(lambda: not broker.admin("status")["audit"]["paused_projects"], 30, what="a to be resumed")
    finally:
        if writer is not None:
            os.kill(writer, signal.SIGCONT)
        if flood is not None:
            flood.close()
        broker.stop()
    rc, out = _verify(broker)
    assert rc == 0, out


def test_a_stalled_writer_fails_closed_then_recovers(tmp_path):
    broker = _daemon(tmp_path, "--audit-stall-timeout", "2", rate_limit=0).start()
    writer = None
    try:
        broker.add_project("st", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        writer = broker.admin("status")["audit"]["writer_pid"]
        stop_process(writer)
        reply = wait_for(lambda r: r.get("code") == "audit_unavailable", 60, interval=0.2,
                         what="get to be refused by a stalled writer",
                         get=lambda: broker.project("st", "get", name="TOKEN"))
        assert VALUE not in json.dumps(reply)
        audit = broker.admin("status")["audit"]
        assert audit["available"] is False and "consumed nothing" in audit["unavailable_reason"], audit
        os.kill(writer, signal.SIGCONT)
        writer = None
        wait_for(lambda r: r.get("value") == VALUE, 30, interval=0.1, what="get to be served again",
                 get=lambda: broker.project("st", "get", name="TOKEN"))
        assert broker.admin("status")["audit"]["available"] is True
    finally:
        if writer is not None:
            os.kill(writer, signal.SIGCONT)
        broker.stop()


def test_a_dead_writer_fails_closed(tmp_path):
    broker = _daemon(tmp_path, rate_limit=0).start()
    try:
        broker.add_project("dw", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        os.kill(broker.admin("status")["audit"]["writer_pid"], signal.SIGKILL)
        reply = wait_for(lambda r: r.get("code") == "audit_unavailable", 30, interval=0.05,
                         what="get to be refused once the writer is gone",
                         get=lambda: broker.project("dw", "get", name="TOKEN"))
        assert "audit writer process exited" in reply["message"]
        assert broker.project("dw", "get", name="OTHER")["code"] == "denied"
        assert broker.project("dw", "ping")["ok"] is True
        assert broker.admin("status")["audit"]["unavailable_reason"] == "audit writer process exited"
    finally:
        broker.stop()


# ---------------------------------------------------------------------------
# A full audit filesystem
# ---------------------------------------------------------------------------
@pytest.fixture
def small_audit_disk():
    """A base dir whose log/ is a 64 KiB tmpfs (unmounted afterwards)."""
    if os.geteuid() != 0:
        pytest.fail("the full-disk attack needs root (mount -t tmpfs)")
    base = tempfile.mkdtemp(prefix="rbfull", dir="/tmp")
    log_dir = os.path.join(base, "log")
    os.makedirs(log_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0750", "remo-audit-full", log_dir], check=True)
    try:
        yield base
    finally:
        subprocess.run(["umount", "-l", log_dir], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _fill(directory):
    """Fill the filesystem of ``directory`` to the last byte; returns the filler's path."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (4096, 1):
            try:
                while os.write(fd, b"x" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return path


def test_a_full_audit_disk_refuses_get_until_space_is_freed(small_audit_disk):
    broker = _daemon(small_audit_disk, rate_limit=0).start()
    try:
        broker.add_project("fd", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        assert broker.project("fd", "get", name="TOKEN")["value"] == VALUE
        broker.audit_events()
        filler = _fill(broker.log_dir)
        reply = wait_for(lambda r: r.get("code") == "audit_unavailable", 30, interval=0.05,
                         what="get to be refused on a full disk",
                         get=lambda: broker.project("fd", "get", name="TOKEN"))
        assert VALUE not in json.dumps(reply) and "No space left" in reply["message"], reply
        status = broker.admin("status")
        audit = status["audit"]
        assert audit["available"] is False and audit["healthy"] is False, audit
        assert "No space left on device" in audit["unavailable_reason"], audit
        assert status["projects"][0]["counters"]["audit_unavailable"] >= 1
        # refusing values changes nothing else: denied stays denied, ping answers
        assert broker.project("fd", "get", name="OTHER")["code"] == "denied"
        assert broker.project("fd", "ping")["ok"] is True
        os.unlink(filler)
        wait_for(lambda r: r.get("value") == VALUE, 30, interval=0.05, what="get to be served after space is freed",
                 get=lambda: broker.project("fd", "get", name="TOKEN"))
        audit = broker.admin("status")["audit"]
        assert audit["available"] is True and audit["unavailable_reason"] is None, audit
        events = broker.audit_events()
        health = [e["outcome"] for e in events if e["event"] == "audit"]
        assert health[:1] == ["audit_unavailable"] and health[-1] == "ok", health
        assert _outcomes(events, "audit_unavailable", "get"), "the refused gets are in the log once it is written"
    finally:
        broker.stop()
    rc, out = _verify(broker)
    assert rc == 0, out


def test_fail_open_serves_on_a_full_disk_and_says_so(small_audit_disk):
    broker = _daemon(small_audit_disk, "--audit-fail-open", rate_limit=0).start()
    try:
        broker.add_project("fo", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        assert "--audit-fail-open" in broker.stderr()
        starts = broker.audit_events(until=lambda ev: any(e["event"] == "start" for e in ev))
        assert [e.get("audit_fail_open") for e in starts if e["event"] == "start"] == [1]
        filler = _fill(broker.log_dir)
        audit = wait_for(lambda a: a["available"] is False, 30, interval=0.05, what="the failure to be reported",
                         get=lambda: (broker.project("fo", "ping"), broker.admin("status")["audit"])[1])
        assert audit["fail_open"] is True and "No space left" in audit["unavailable_reason"]
        assert broker.project("fo", "get", name="TOKEN")["value"] == VALUE
        assert "serving secrets anyway" in broker.stderr()
        os.unlink(filler)
    finally:
        broker.stop()


# ---------------------------------------------------------------------------
# Rewriting the log (the checkpoint store is out of reach)
# ---------------------------------------------------------------------------
def _rechain(lines):
    """The attacker's rewrite: seq renumbered from 1, every prev recomputed from the genesis."""
    out = []
    prev = "0" * 64
    for i, raw in enumerate(lines):
        ev = json.loads(raw)
        ev["seq"] = i + 1
        ev["prev"] = prev
        line = json.dumps(ev, separators=(",", ":")).encode()
        prev = hashlib.sha256(line).hexdigest()
        out.append(line)
    return out


@pytest.fixture
def written_log(tmp_path):
    """A stopped daemon whose log holds allowed and denied gets; the original lines."""
    broker = _daemon(tmp_path, rate_limit=0).start()
    broker.add_project("cx", ("TOKEN",))
    broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
    for i in range(30):
        broker.project("cx", "get", name="TOKEN" if i % 3 else "SECRET_OF_B")
    assert broker.stop() == 0
    with open(broker.audit_log, "rb") as handle:
        original = handle.read().splitlines()
    return broker, original


def _write(path, lines):
    with open(path, "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))


def test_the_untouched_log_verifies_against_its_checkpoints(written_log):
    broker, original = written_log
    rc, out = _verify(broker)
    assert rc == 0 and "checkpoint(s) matched" in out, out
    checkpoints = [json.loads(line) for line in open(broker.extra_args[1][5:], "rb")]
    assert checkpoints[-1]["seq"] == len(original)      # the stop anchors the last line


def test_a_rechained_deny_to_allow_edit_is_detected(written_log):
    broker, original = written_log
    i = next(i for i, line in enumerate(original) if b'"decision":"deny"' in line and b'"event":"get"' in line)
    edited = list(original)
    edited[i] = edited[i].replace(b'"decision":"deny"', b'"decision":"allow"').replace(b'"outcome":"denied"',
                                                                                       b'"outcome":"ok"')
    _write(broker.audit_log, _rechain(edited))
    rc, out = broker.audit_verify()     # chain only: the rewrite is consistent, so it passes ...
    assert rc == 0, out
    rc, out = _verify(broker)           # ... and the checkpoints catch it
    assert rc == 5 and "does not match the checkpoint" in out, out


@pytest.mark.parametrize("attack", ["insert", "delete", "delete_first", "delete_first_no_rechain", "cut_tail",
                                    "delete_file"])
def test_rewrites_by_someone_without_the_checkpoint_store_are_detected(written_log, attack):
    broker, original = written_log
    lines = list(original)
    if attack == "insert":
        lines = _rechain(lines[:10] + [lines[5]] + lines[10:])
    elif attack == "delete":
        lines = _rechain(lines[:10] + lines[11:])
    elif attack == "delete_first":
        lines = _rechain(lines[3:])
    elif attack == "delete_first_no_rechain":
        lines = lines[3:]
    elif attack == "cut_tail":
        lines = lines[:-5]
    if attack == "delete_file":
        os.unlink(broker.audit_log)
    else:
        _write(broker.audit_log, lines)
    rc, out = _verify(broker)
    assert rc == 5, (attack, out)
    assert "verification failed" in out


def test_a_tail_cut_before_a_restart_is_detected(written_log):
    broker, original = written_log
    _write(broker.audit_log, original[:-6])
    broker.start()      # the daemon continues the chain from the cut tail: the chain alone is whole
    for _i in range(20):    # ... past the old end: the new lines take the cut lines' seq numbers
        broker.project("cx", "ping")
    assert broker.stop() == 0
    assert broker.audit_verify()[0] == 0
    rc, out = _verify(broker)
    assert rc == 5 and "does not match the checkpoint" in out, out


def test_verify_without_a_checkpoint_store_warns(written_log):
    broker, _original = written_log
    res = broker.run_cli("audit", "verify", "--audit-log", broker.audit_log, "--audit-checkpoint", "none")
    assert res.returncode == 0 and b"only the chain is checked" in res.stderr


def test_status_reports_the_checkpoints(tmp_path):
    broker = _daemon(tmp_path, rate_limit=0).start()
    try:
        broker.add_project("cp", ("TOKEN",))
        audit = wait_for(lambda a: a["checkpoint_seq"], 20, what="a checkpoint",
                         get=lambda: broker.admin("status")["audit"])
        assert audit["checkpoint_store"].startswith("file:") and audit["checkpoint_errors"] == 0
    finally:
        broker.stop()


# ---------------------------------------------------------------------------
# The journal as the checkpoint store: a real journald in a private mount namespace
# ---------------------------------------------------------------------------
JOURNALD = "/lib/systemd/systemd-journald"
# A tmpfs over /run hides the host's (a journald there would be shared by every test).
JOURNAL_NAMESPACE = r'''
set -e
mount -t tmpfs -o mode=0755 remo-audit-journal /run
mkdir -p /run/systemd/journal /run/log
"$JOURNALD" &
JPID=$!
trap 'kill $JPID' EXIT
for i in $(seq 200); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
"$PYTHON" -c 'import sys; from ansible_collections.remo.broker.tests.unit.daemon import test_audit_hardening as t
t.journal_scenario(sys.argv[1])' "$BASE"
'''


def journal_scenario(base):
    """Run inside JOURNAL_NAMESPACE: prints a JSON object of what happened."""
    from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_checkpoint import JournalStore
    broker = Daemon(base, ("--audit-checkpoint", "auto"), rate_limit=0).start()
    broker.add_project("jr", ("TOKEN",))
    broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
    for i in range(20):
        broker.project("jr", "get", name="TOKEN" if i % 2 else "NOT_ALLOWED")
    store = broker.admin("status")["audit"]["checkpoint_store"]
    broker.stop()
    with open(broker.audit_log, "rb") as handle:
        original = handle.read().splitlines()
    last = json.loads(original[-1])["seq"]
    # Another account adds a checkpoint that contradicts the log: verify must not trust it.
    pid = os.fork()
    if pid == 0:
        os.setuid(65534)
        JournalStore().record(broker.audit_log, 3, "f" * 64)
        os._exit(0)
    os.waitpid(pid, 0)
    wait_for(lambda: any(seq == last for seq, _h, _w in JournalStore().read(broker.audit_log)), 30,
             what="journald to store the last checkpoint")

    def verify(store_spec):
        res = broker.run_cli("audit", "verify", "--audit-log", broker.audit_log, "--audit-checkpoint", store_spec)
        return [res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")]

    result = {"store": store, "clean": verify("journal")}
    i = next(i for i, line in enumerate(original) if b'"outcome":"denied"' in line)
    edited = list(original)
    edited[i] = edited[i].replace(b'"decision":"deny"', b'"decision":"allow"').replace(b'"outcome":"denied"',
                                                                                       b'"outcome":"ok"')
    _write(broker.audit_log, _rechain(edited))
    result["rehashed_chain_only"] = verify("none")
    result["rehashed"] = verify("journal")
    print(json.dumps(result))


def test_journal_checkpoints_detect_a_rechained_edit(tmp_path):
    if not os.path.exists(JOURNALD) or os.geteuid() != 0:
        pytest.fail("needs root and %s (systemd is in the test image)" % JOURNALD)
    import sys
    env = dict(os.environ, JOURNALD=JOURNALD, PYTHON=sys.executable, BASE=tempfile.mkdtemp(prefix="rbj", dir="/tmp"),
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", JOURNAL_NAMESPACE],
                             capture_output=True, env=env, timeout=300, check=False)
    finally:
        shutil.rmtree(env["BASE"], ignore_errors=True)
    assert res.returncode == 0, res.stderr.decode("utf-8", "replace")[-4000:]
    result = json.loads(res.stdout.splitlines()[-1])
    assert result["store"] == "journal"         # auto picked the journal once journald runs
    assert result["clean"][0] == 0 and "checkpoint(s) matched" in result["clean"][1], result["clean"]
    assert result["rehashed_chain_only"][0] == 0, result
    assert result["rehashed"][0] == 5 and "journal entry" in result["rehashed"][1], result["rehashed"]
