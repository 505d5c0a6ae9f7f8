# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Conformance of the real daemon process with docs/protocol.md (protocol 2).

Every op, every error code and every bad-input case, over real Unix sockets.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import time

import pytest

from ansible_collections.remo.broker.plugins.module_utils._broker_client import BrokerError
from ansible_collections.remo.broker.plugins.module_utils import _protocol as P

from ansible_collections.remo.broker.tests.unit.broker_harness import (
    CANARIES,
    RawConn,
    acl_users,
    raw_exchange,
    wait_for,
    write_manifest,
)

TOKEN, AWS_SECRET, FIELD_VALUE, OTHER = CANARIES


def _push(broker, secrets):
    return broker.call("push-creds", secrets=secrets)


# ---------------------------------------------------------------------------
# admin socket
# ---------------------------------------------------------------------------
def test_admin_socket_mode_and_status_shape(broker):
    st = os.stat(broker.admin_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    status = broker.call("status")
    assert status["ok"] is True
    assert status["protocol_version"] == 2
    assert status["daemon_version"] == P.DAEMON_VERSION
    assert status["secret_count"] == 0
    assert status["secrets_loaded_at"] is None
    assert status["projects"] == []
    assert isinstance(status["uptime_seconds"], float)
    assert set(status["audit"]) >= {"path", "healthy", "write_errors", "last_error"}
    assert status["audit"]["path"] == broker.audit_log


def test_admin_ping(broker):
    reply = broker.call("ping", project="ignored-extra-field")
    assert reply["protocol_version"] == 2
    assert reply["daemon_version"] == P.DAEMON_VERSION


def test_register_creates_project_socket(broker):
    pdir = broker.make_project("alpha", ["GITHUB_TOKEN"], register=False)
    reply = broker.call("register", name="alpha", project_path=pdir, expected_uid=4321)
    assert reply["changed"] is True
    assert reply["name"] == "alpha"
    assert reply["socket_dir"] == os.path.join(broker.run_dir, "projects", "alpha")
    assert reply["socket_path"] == os.path.join(reply["socket_dir"], "alpha.sock")
    assert os.path.realpath(broker.project_socket("alpha")) == reply["socket_path"]   # host-side symlink
    dir_st = os.lstat(reply["socket_dir"])
    # The daemon keeps the directory (it replaces the socket in it after a restart);
    # the socket's owner and mode decide who connects.
    assert stat.S_ISDIR(dir_st.st_mode) and stat.S_IMODE(dir_st.st_mode) == 0o755
    assert dir_st.st_uid == os.geteuid()
    assert reply["manifest_path"] == os.path.join(pdir, ".remo", "manifest.toml")
    assert len(reply["manifest_sha256"]) == 64
    assert reply["allowlist"] == ["GITHUB_TOKEN"]
    st = os.stat(reply["socket_path"])
    assert stat.S_IMODE(st.st_mode) == 0o660
    # The daemon keeps the socket and lets uid 4321 connect through an ACL entry
    # (test_resource_isolation.py connects as real uids).
    assert st.st_uid == os.geteuid()
    assert acl_users(reply["socket_path"]) == {4321: 6}
    status = broker.call("status")
    (proj,) = status["projects"]
    assert proj["name"] == "alpha"
    assert proj["expected_uid"] == 4321
    assert proj["allowlist_size"] == 1
    assert set(proj["counters"]) == set(P.COUNTER_NAMES)
    assert proj["project_path"] == pdir
    for key in ("manifest_path", "manifest_sha256", "allowlist"):
        assert proj[key] == reply[key]
    assert (proj["socket_path"], proj["socket_dir"]) == (reply["socket_path"], reply["socket_dir"])


def test_register_default_expected_uid_is_directory_owner(broker):
    pdir = broker.make_project("owner", ["A"], register=False)
    reply = broker.call("register", name="owner", project_path=pdir)
    assert reply["expected_uid"] == os.stat(pdir).st_uid


def test_register_again_is_idempotent_and_conflict_on_other_path(broker):
    pdir = broker.make_project("beta", ["A"], register=False)
    uid = os.getuid()
    assert broker.call("register", name="beta", project_path=pdir, expected_uid=uid)["changed"] is True
    assert broker.call("register", name="beta", project_path=pdir, expected_uid=uid)["changed"] is False
    write_manifest(pdir, "beta", ["A", "B"])
    again = broker.call("register", name="beta", project_path=pdir, expected_uid=uid)
    assert again["changed"] is True and again["allowlist"] == ["A", "B"]
    other = broker.make_project("beta-other", ["A"], register=False)
    with pytest.raises(BrokerError) as err:
        broker.call("register", name="beta", project_path=other)
    assert err.value.code == "conflict"


@pytest.mark.parametrize("fields", [
    {"name": "Bad Name", "project_path": "/tmp"},
    {"name": "admin", "project_path": "/tmp"},
    {"name": "ok", "project_path": "relative/path"},
    {"name": "ok", "project_path": "/tmp", "expected_uid": -1},
    {"name": "ok", "project_path": "/tmp", "expected_uid": "0"},
    {"project_path": "/tmp"},
])
def test_register_invalid_payload(broker, fields):
    with pytest.raises(BrokerError) as err:
        broker.call("register", **fields)
    assert err.value.code == "invalid_payload"


def test_register_manifest_not_found(broker):
    pdir = os.path.join(broker.projects_root, "empty")
    os.makedirs(pdir)
    with pytest.raises(BrokerError) as err:
        broker.call("register", name="empty", project_path=pdir)
    assert err.value.code == "manifest_not_found"
    assert err.value.details["file"].endswith(".remo/manifest.toml")
    assert not os.path.exists(broker.project_socket("empty"))


def test_register_manifest_invalid_has_location(broker):
    pdir = os.path.join(broker.projects_root, "broken")
    write_manifest(pdir, "broken", [], raw='schema_version = 2\nproject = "broken"\n\n[secrets.A]\nfetch_as = "env"\nbogus = 1\n')
    with pytest.raises(BrokerError) as err:
        broker.call("register", name="broken", project_path=pdir)
    assert err.value.code == "manifest_invalid"
    details = err.value.details
    assert details["file"].endswith("manifest.toml")
    assert details["line"] == 6
    assert details["column"] >= 1
    assert "bogus" in details["key"]


def test_register_manifest_project_mismatch(broker):
    pdir = os.path.join(broker.projects_root, "mismatch")
    write_manifest(pdir, "someone-else", ["A"])
    with pytest.raises(BrokerError) as err:
        broker.call("register", name="mismatch", project_path=pdir)
    assert err.value.code == "manifest_invalid"


def test_unregister_removes_socket(broker):
    broker.make_project("gone", ["A"])
    assert os.path.exists(broker.project_socket("gone"))
    assert broker.call("unregister", name="gone") == {"ok": True, "name": "gone", "changed": True}
    assert not os.path.exists(broker.project_socket("gone"))
    assert broker.call("unregister", name="gone")["changed"] is False
    assert broker.call("status")["projects"] == []


def test_reload_unknown_and_bad_manifest_keeps_allowlist(broker):
    with pytest.raises(BrokerError) as err:
        broker.call("reload", name="nobody")
    assert err.value.code == "not_registered"
    pdir = broker.make_project("rel", ["A"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN, "B": OTHER})
    assert broker.call("reload", name="rel")["changed"] is False
    write_manifest(pdir, "rel", [], raw='schema_version = 2\nproject = "rel"\n[secrets.B]\nfetch_as = "nope"\n')
    with pytest.raises(BrokerError) as err:
        broker.call("reload", name="rel")
    assert err.value.code == "manifest_invalid"
    assert err.value.details["line"] == 4
    assert broker.project_call("rel", "get", name="A")["value"] == TOKEN
    with pytest.raises(BrokerError) as err:
        broker.project_call("rel", "get", name="B")
    assert err.value.code == "denied"
    write_manifest(pdir, "rel", ["B"])
    reply = broker.call("reload", name="rel")
    assert reply["changed"] is True and reply["allowlist"] == ["B"]
    assert broker.project_call("rel", "get", name="B")["value"] == OTHER


# ---------------------------------------------------------------------------
# credentials
# ---------------------------------------------------------------------------
def test_push_diff_clear_cycle(broker):
    broker.make_project("creds", ["A", "B", "S"], expected_uid=os.getuid())
    first = _push(broker, {"A": TOKEN, "B": OTHER})
    assert first["secret_count"] == 2
    assert first["added"] == ["A", "B"] and first["removed"] == [] and first["changed"] == []
    assert first["loaded_at"].endswith("Z")
    assert broker.call("status")["secrets_loaded_at"] == first["loaded_at"]
    diff = broker.call("diff-creds", secrets={"A": TOKEN, "S": {"k": FIELD_VALUE}})
    assert diff == {"ok": True, "source": "default", "added": ["S"], "removed": ["B"], "changed": [],
                    "unchanged_count": 1}
    diff = broker.call("diff-creds", secrets={"A": AWS_SECRET, "B": OTHER})
    assert diff["changed"] == ["A"] and diff["unchanged_count"] == 1
    # diff does not change anything
    assert broker.project_call("creds", "get", name="A")["value"] == TOKEN
    second = _push(broker, {"A": AWS_SECRET, "S": {"k": FIELD_VALUE, "j": "x"}})
    assert second["added"] == ["S"] and second["removed"] == ["B"] and second["changed"] == ["A"]
    assert broker.project_call("creds", "get", name="A")["value"] == AWS_SECRET
    whole = broker.project_call("creds", "get", name="S")
    assert json.loads(whole["value"]) == {"k": FIELD_VALUE, "j": "x"}
    assert broker.project_call("creds", "get", name="S", field="k")["value"] == FIELD_VALUE
    with pytest.raises(BrokerError) as err:
        broker.project_call("creds", "get", name="S", field="missing")
    assert err.value.code == "not_found"
    with pytest.raises(BrokerError) as err:
        broker.project_call("creds", "get", name="B")
    assert err.value.code == "not_found"
    cleared = broker.call("clear-creds")
    assert cleared == {"ok": True, "source": None, "secret_count": 0, "cleared": 2}
    assert broker.call("status")["secret_count"] == 0
    with pytest.raises(BrokerError) as err:
        broker.project_call("creds", "get", name="A")
    assert err.value.code == "not_found"


def test_push_records_counts_only_in_audit(broker):
    _push(broker, {"A": TOKEN, "B": OTHER})
    events = [e for e in broker.audit_events() if e["event"] == "push-creds"]
    assert events and events[-1]["secret_count"] == 2 and events[-1]["added"] == 2
    assert events[-1]["decision"] == "allow" and events[-1]["outcome"] == "ok"


@pytest.mark.parametrize("secrets", [
    "not-an-object",
    {"bad-name!": "x"},
    {"A": 5},
    {"A": {"f": 1}},
    {"A": {"": "x"}},
    {"A": None},
])
def test_push_invalid_payload(broker, secrets):
    with pytest.raises(BrokerError) as err:
        broker.call("push-creds", secrets=secrets)
    assert err.value.code == "invalid_payload"
    # The reply never echoes values.
    assert "x" not in err.value.message.split() or "secret" in err.value.message


def test_push_payload_too_large(broker):
    with pytest.raises(BrokerError) as err:
        broker.call("push-creds", secrets={"BIG": "v" * (P.MAX_PROJECT_MESSAGE_BYTES + 10)})
    assert err.value.code == "payload_too_large"
    assert "vvvv" not in err.value.message


def test_push_is_atomic_on_error(broker):
    broker.make_project("atomic", ["A"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN})
    with pytest.raises(BrokerError):
        broker.call("push-creds", secrets={"A": OTHER, "B": 7})
    assert broker.project_call("atomic", "get", name="A")["value"] == TOKEN


def test_push_thousand_secrets_is_fast(broker):
    secrets = {"S%04d" % i: "value-%d-%s" % (i, "x" * 40) for i in range(1000)}
    start = time.perf_counter()
    reply = _push(broker, secrets)
    elapsed = time.perf_counter() - start
    assert reply["secret_count"] == 1000
    assert elapsed < 0.5  # generous for CI; the daemon-side work is a few ms


def test_non_utf8_value_is_returned_base64(broker):
    import base64
    broker.make_project("b64", ["RAW"], expected_uid=os.getuid())
    # A lone surrogate cannot be encoded as UTF-8: the reply carries value_b64.
    line = b'{"op":"push-creds","secrets":{"RAW":"ab\\udcffcd"}}\n'
    (reply,), _closed = raw_exchange(broker.admin_socket, line, max_lines=1)
    assert reply["ok"] is True
    got = broker.project_call("b64", "get", name="RAW")
    assert "value" not in got
    assert base64.b64decode(got["value_b64"]) == b"ab\xffcd"


# ---------------------------------------------------------------------------
# project socket
# ---------------------------------------------------------------------------
def test_project_ping_info(broker):
    pdir = os.path.join(broker.projects_root, "inf")
    write_manifest(pdir, "inf", [], raw=(
        'schema_version = 2\nproject = "inf"\n\n[secrets.GITHUB_TOKEN]\nfetch_as = "env"\nenv_var = "GH_TOKEN"\n\n'
        '[secrets.AWS]\nfetch_as = "file"\nfile_path = "/run/secrets/aws/config"\nfile_mode = "0400"\n'
        'template = "[default]\\nkey={{access_key_id}}\\n"\n'))
    broker.call("register", name="inf", project_path=pdir, expected_uid=os.getuid())
    ping = broker.project_call("inf", "ping", project="inf")
    assert ping == {"ok": True, "protocol_version": 2, "daemon_version": P.DAEMON_VERSION, "project": "inf"}
    info = broker.project_call("inf", "info")
    assert info["project"] == "inf"
    assert info["allowlist"] == ["GITHUB_TOKEN", "AWS"]
    by_name = {s["name"]: s for s in info["secrets"]}
    assert by_name["GITHUB_TOKEN"]["fetch_as"] == "env" and by_name["GITHUB_TOKEN"]["env_var"] == "GH_TOKEN"
    assert by_name["AWS"]["fetch_as"] == "file"
    assert by_name["AWS"]["file_path"] == "/run/secrets/aws/config"
    assert by_name["AWS"]["file_mode"] == "0400"


def test_get_denied_is_audited_as_deny(broker):
    broker.make_project("den", ["A"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN, "B": OTHER})
    with pytest.raises(BrokerError) as err:
        broker.project_call("den", "get", name="B")
    assert err.value.code == "denied"
    assert OTHER not in str(err.value)
    with pytest.raises(BrokerError) as err:
        broker.project_call("den", "get", name="not a valid name")
    assert err.value.code == "denied"
    events = [e for e in broker.audit_events() if e["event"] == "get"]
    assert events[-2]["name"] == "B" and events[-2]["decision"] == "deny" and events[-2]["outcome"] == "denied"
    assert events[-1]["name"] is None and events[-1]["decision"] == "deny"
    for ev in events:
        assert ev["peer_uid"] == os.getuid() and isinstance(ev["peer_pid"], int)
        assert isinstance(ev["latency_us"], int) and ev["project"] == "den"
    counters = broker.call("status")["projects"][0]["counters"]
    assert counters["denied"] == 2


def test_get_allowed_and_not_found_audited(broker):
    broker.make_project("aud", ["A", "MISSING"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN})
    assert broker.project_call("aud", "get", name="A")["value"] == TOKEN
    with pytest.raises(BrokerError) as err:
        broker.project_call("aud", "get", name="MISSING")
    assert err.value.code == "not_found"
    events = [e for e in broker.audit_events() if e["event"] == "get"]
    assert (events[-2]["decision"], events[-2]["outcome"]) == ("allow", "ok")
    assert (events[-1]["decision"], events[-1]["outcome"]) == ("allow", "not_found")
    required = {"ts", "event", "project", "name", "decision", "outcome", "peer_pid", "peer_uid", "latency_us", "prev"}
    assert required <= set(events[-1])
    counters = broker.call("status")["projects"][0]["counters"]
    assert counters["allowed"] == 1 and counters["not_found"] == 1


def test_peer_unexpected(broker):
    broker.make_project("peer", ["A"], expected_uid=os.getuid() + 4242)
    lines, closed = raw_exchange(broker.project_socket("peer"), b'{"op":"ping"}\n')
    assert closed
    assert lines == [{"ok": False, "code": "peer_unexpected", "message": lines[0]["message"]}]
    events = [e for e in broker.audit_events() if e["outcome"] == "peer_unexpected"]
    assert events and events[-1]["decision"] == "deny" and events[-1]["peer_uid"] == os.getuid()
    assert broker.call("status")["projects"][0]["counters"]["peer_unexpected"] == 1


def test_rate_limited(broker_factory):
    broker = broker_factory("--rate-limit", "5", "--rate-burst", "3")
    broker.make_project("rl", ["A"], expected_uid=os.getuid())
    payload = b'{"op":"ping"}\n' * 6
    lines, _closed = raw_exchange(broker.project_socket("rl"), payload, max_lines=6)
    assert [ln["ok"] for ln in lines[:3]] == [True, True, True]
    limited = [ln for ln in lines if not ln["ok"]]
    assert limited and all(ln["code"] == "rate_limited" for ln in limited)
    assert all(0 < ln["retry_after_seconds"] <= 1 for ln in limited)
    time.sleep(max(ln["retry_after_seconds"] for ln in limited))   # the bucket refills with time
    assert broker.project_call("rl", "ping")["ok"] is True
    assert broker.call("status")["projects"][0]["counters"]["rate_limited"] == len(limited)
    assert any(e["outcome"] == "rate_limited" for e in broker.audit_events())


def test_pipelined_requests_answered_in_order(broker_factory):
    broker = broker_factory("--rate-limit", "0")
    names = ["N%02d" % i for i in range(20)]
    broker.make_project("pipe", names, expected_uid=os.getuid())
    _push(broker, {n: "v-%s" % n for n in names})
    payload = b"".join(json.dumps({"op": "get", "name": n}).encode() + b"\n" for n in names * 5)
    lines, _closed = raw_exchange(broker.project_socket("pipe"), payload, max_lines=100)
    assert [ln["name"] for ln in lines] == names * 5
    assert [ln["value"] for ln in lines] == ["v-%s" % n for n in names * 5]


def test_watch_reports_changed_names_only(broker):
    broker.make_project("w", ["A", "B"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN, "B": OTHER, "C": "c"})
    conn = RawConn(broker.project_socket("w"), timeout=3)
    conn.send(b'{"op":"watch"}\n')
    first = json.loads(conn.read_line())
    assert first == {"ok": True, "watching": ["A", "B"]}
    # unchanged push: no event; change of a name outside the allowlist: no event
    _push(broker, {"A": TOKEN, "B": OTHER, "C": "c2"})
    conn.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        conn.read_line()
    conn.sock.settimeout(3)
    _push(broker, {"A": AWS_SECRET, "C": "c2"})
    event = json.loads(conn.read_line())
    assert event["event"] == "changed" and event["names"] == ["A", "B"] and event["at"].endswith("Z")
    assert TOKEN.encode() not in json.dumps(event).encode()
    broker.call("clear-creds")
    event = json.loads(conn.read_line())
    assert event["names"] == ["A"]
    conn.close()


def test_watch_survives_client_timeout(broker_factory):
    broker = broker_factory("--client-timeout", "0.3")
    broker.make_project("wt", ["A"], expected_uid=os.getuid())
    conn = RawConn(broker.project_socket("wt"), timeout=3)
    conn.send(b'{"op":"watch"}\n')
    assert json.loads(conn.read_line())["ok"] is True
    time.sleep(0.8)   # longer than the client timeout: a watcher is never timed out
    _push(broker, {"A": TOKEN})
    assert json.loads(conn.read_line())["names"] == ["A"]
    conn.close()


# ---------------------------------------------------------------------------
# bad input: protocol_error, connection closed, daemon keeps serving
# ---------------------------------------------------------------------------
BAD_LINES = [
    pytest.param(b"\xff\xfe{not utf8}\n", id="non-utf8"),
    pytest.param(b"{this is not json\n", id="non-json"),
    pytest.param(b'["op", "get"]\n', id="json-array"),
    pytest.param(b'"just a string"\n', id="json-string"),
    pytest.param(b'{"op":"frobnicate"}\n', id="unknown-op"),
    pytest.param(b'{"name":"A"}\n', id="missing-op"),
    pytest.param(b'{"op":"get"}\n', id="get-without-name"),
    pytest.param(b'{"op":"status"}\n', id="admin-op-on-project-socket"),
]


@pytest.mark.parametrize("payload", BAD_LINES)
def test_project_bad_input(broker, payload):
    broker.make_project("bad", ["A"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN})
    lines, closed = raw_exchange(broker.project_socket("bad"), payload + b'{"op":"ping"}\n')
    assert closed
    assert len(lines) == 1 and lines[0]["ok"] is False and lines[0]["code"] == "protocol_error"
    assert broker.project_call("bad", "get", name="A")["value"] == TOKEN
    assert broker.call("status")["projects"][0]["counters"]["protocol_error"] == 1
    assert any(e["outcome"] == "protocol_error" and e["project"] == "bad" for e in broker.audit_events())


@pytest.mark.parametrize("payload", BAD_LINES[:6] + [pytest.param(b'{"op":"get","name":"A"}\n', id="project-op-on-admin")])
def test_admin_bad_input(broker, payload):
    lines, closed = raw_exchange(broker.admin_socket, payload)
    assert closed
    assert len(lines) == 1 and lines[0]["code"] == "protocol_error"
    assert broker.call("status")["ok"] is True


def test_project_oversize_message(broker):
    broker.make_project("big", ["A"], expected_uid=os.getuid())
    # Over the limit without a newline: rejected as soon as the buffer passes the cap.
    lines, closed = raw_exchange(broker.project_socket("big"), b"x" * (P.MAX_PROJECT_MESSAGE_BYTES + 100))
    assert closed and lines[0]["code"] == "protocol_error"
    # Over the limit with a newline in the same write.
    big = json.dumps({"op": "get", "name": "A", "pad": "p" * P.MAX_PROJECT_MESSAGE_BYTES}).encode() + b"\n"
    lines, closed = raw_exchange(broker.project_socket("big"), big)
    assert closed and lines[0]["code"] == "protocol_error"
    # Exactly at the limit is fine.
    base = {"op": "ping", "pad": ""}
    room = P.MAX_PROJECT_MESSAGE_BYTES - len(json.dumps(base).encode())
    ok = json.dumps({"op": "ping", "pad": "p" * room}).encode()
    assert len(ok) == P.MAX_PROJECT_MESSAGE_BYTES
    lines, _closed = raw_exchange(broker.project_socket("big"), ok + b"\n", max_lines=1)
    assert lines[0]["ok"] is True
    assert broker.project_call("big", "ping")["ok"] is True


def test_admin_oversize_message(broker):
    payload = json.dumps({"op": "push-creds", "secrets": {"A": "z" * P.MAX_ADMIN_MESSAGE_BYTES}}).encode() + b"\n"
    lines, closed = raw_exchange(broker.admin_socket, payload, timeout=5)
    assert closed and lines[0]["code"] == "protocol_error"
    # a push just under 1 MiB total works
    many = {"S%05d" % i: "v" * 900 for i in range(1000)}
    assert len(json.dumps({"op": "push-creds", "secrets": many})) < P.MAX_ADMIN_MESSAGE_BYTES
    assert broker.call("push-creds", secrets=many)["secret_count"] == 1000


def test_slow_loris_is_closed_and_others_served(broker_factory):
    broker = broker_factory("--client-timeout", "0.5")
    broker.make_project("slow", ["A"], expected_uid=os.getuid())
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.settimeout(5)
    slow.connect(broker.project_socket("slow"))
    slow.sendall(b'{"op":"pi')
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.settimeout(5)
    idle.connect(broker.admin_socket)
    start = time.monotonic()
    assert broker.project_call("slow", "ping")["ok"] is True
    data = b""
    while True:
        chunk = slow.recv(4096)
        if not chunk:
            break
        data += chunk
    elapsed = time.monotonic() - start
    assert 0.3 < elapsed < 3.0
    assert json.loads(data.splitlines()[0])["code"] == "protocol_error"
    assert idle.recv(4096).startswith(b'{"ok":false')
    assert idle.recv(4096) == b""
    slow.close()
    idle.close()
    assert broker.call("status")["ok"] is True


def test_blank_lines_are_ignored(broker):
    broker.make_project("blank", ["A"], expected_uid=os.getuid())
    lines, _closed = raw_exchange(broker.project_socket("blank"), b'\n\n{"op":"ping"}\n', max_lines=1)
    assert lines[0]["ok"] is True


def test_status_never_contains_values(broker):
    broker.make_project("canary", ["A", "S"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN, "S": {"secret_key": AWS_SECRET, "f": FIELD_VALUE}})
    broker.project_call("canary", "get", name="A")
    raw = json.dumps(broker.call("status"))
    for canary in CANARIES:
        assert canary not in raw
    info = json.dumps(broker.project_call("canary", "info"))
    for canary in CANARIES:
        assert canary not in info


def test_audit_file_mode_and_chain(broker):
    broker.make_project("chain", ["A"], expected_uid=os.getuid())
    broker.project_call("chain", "ping")
    events = broker.audit_events()
    assert stat.S_IMODE(os.stat(broker.audit_log).st_mode) == 0o640
    assert events[0]["prev"] == "0" * 64
    import hashlib
    with open(broker.audit_log, "rb") as fh:
        raw = fh.read().splitlines()
    for prev_line, event in zip(raw, events[1:]):
        assert event["prev"] == hashlib.sha256(prev_line).hexdigest()


def test_audit_write_failure_is_reported_and_get_is_refused(broker_factory):
    broker = broker_factory(start=False)
    broker.audit_log = "/dev/full"
    broker.start()
    broker.make_project("full", ["A"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN})
    audit = wait_for(lambda a: a["write_errors"] and not a["available"], what="the failed audit write to be reported",
                     get=lambda: broker.call("status")["audit"])
    assert audit["write_errors"] >= 1
    assert audit["healthy"] is False
    assert "No space left on device" in audit["last_error"] and "No space left" in audit["unavailable_reason"]
    with pytest.raises(BrokerError) as refused:
        broker.project_call("full", "get", name="A")
    assert refused.value.code == "audit_unavailable" and TOKEN not in refused.value.message
    assert broker.project_call("full", "ping")["ok"] is True


# ---------------------------------------------------------------------------
# docs/protocol.md is the protocol: its `status` field lists match a real reply
# ---------------------------------------------------------------------------
PROTOCOL_DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "protocol.md")


def _documented_fields(text):
    """{name: None | set(subfields)} from a run of `name`, `name: {a, b}` tokens."""
    fields = {}
    for token in re.findall(r"`([^`]+)`", text):
        name, sep, rest = token.partition(":")
        name = name.strip().split()[0]
        fields[name] = set(re.findall(r"[a-z_]+", rest)) if sep and "{" in rest else None
    return fields


def _protocol_doc():
    with open(PROTOCOL_DOC, encoding="utf-8") as handle:
        return handle.read()


def test_documented_status_fields_are_the_real_ones(broker):
    doc = _protocol_doc()
    row = next(line for line in doc.splitlines() if line.startswith("| `status` |"))
    documented = _documented_fields(row.split("|")[3])
    entry_text = doc.split("Each entry of `status.projects`:", 1)[1].split("\n\n", 1)[0]
    documented_entry = _documented_fields(entry_text.split("(null, or", 1)[0])
    broker.make_project("docs", ["A"], expected_uid=os.getuid())
    _push(broker, {"A": TOKEN})
    broker.call("push-creds", secrets={"A": OTHER}, source="vault")     # non-empty sources and conflicts
    reply = broker.call("status")
    reply.pop("ok")
    assert set(documented) == set(reply), "docs/protocol.md `status` row vs the daemon"
    for name, subfields in documented.items():
        if subfields is not None:
            value = reply[name]
            for item in value if isinstance(value, list) else [value]:
                assert subfields == set(item), "docs/protocol.md status.%s vs the daemon" % name
    (project,) = reply["projects"]
    assert set(documented_entry) == set(project), "docs/protocol.md status.projects entry vs the daemon"
    assert documented_entry["counters"] == set(project["counters"])


def test_documented_register_fields_are_the_real_ones(broker):
    row = next(line for line in _protocol_doc().splitlines() if line.startswith("| `register` |"))
    documented = _documented_fields(row.split("|")[3])
    pdir = broker.make_project("docreg", ["A"], register=False)
    reply = broker.call("register", name="docreg", project_path=pdir)
    reply.pop("ok")
    assert set(documented) == set(reply)
