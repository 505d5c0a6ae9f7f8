# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo_broker_info against a real daemon."""

from __future__ import annotations

import os
import uuid

import pytest

from ansible_collections.remo.broker.plugins.module_utils._protocol import PROTOCOL_VERSION
from ansible_collections.remo.broker.plugins.modules import remo_broker_info
from ansible_collections.remo.broker.tests.unit.plugins.modules.module_runner import (
    run_module,
    run_module_as,
)


def info(args, **kwargs):
    return run_module(remo_broker_info.main, args, **kwargs)


def test_status_is_returned_without_ok(daemon, conn):
    result = info(conn)
    assert result["_rc"] == 0
    assert result["changed"] is False
    status = result["status"]
    assert "ok" not in status
    assert status["protocol_version"] == PROTOCOL_VERSION
    assert status["secret_count"] == 0
    assert status["secrets_loaded_at"] is None
    assert status["projects"] == []
    assert result["socket_path"] == daemon.admin_socket


def test_never_changes_in_check_and_diff_mode(daemon, conn):
    before = daemon.status()
    for check_mode in (False, True):
        result = info(conn, check_mode=check_mode, diff=True)
        assert result["changed"] is False
        assert "diff" not in result
    after = daemon.status()
    assert after["secret_count"] == before["secret_count"]
    assert after["projects"] == before["projects"]


def test_reports_counts_never_values(daemon, conn):
    value = "CANARY-%s" % uuid.uuid4().hex
    reply = daemon.request({"op": "push-creds", "secrets": {"TOKEN": value}})
    assert reply["ok"] is True
    result = info(conn)
    assert result["status"]["secret_count"] == 1
    assert result["status"]["secrets_loaded_at"]
    assert value not in result["_raw"]


def test_daemon_down(tmp_path):
    missing = str(tmp_path / "admin.sock")
    result = info(dict(socket_path=missing))
    assert result["failed"]
    assert result["failure"]["code"] == "connection_error"
    assert "is remo-broker running" in result["msg"] and missing in result["msg"]


def test_stale_socket_file_refuses_connection(tmp_path):
    import socket

    path = str(tmp_path / "admin.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()  # the file stays, nobody listens: ECONNREFUSED
    result = info(dict(socket_path=path, timeout=1))
    assert result["failed"] and result["failure"]["code"] == "connection_error"
    assert "is remo-broker running" in result["msg"]


def test_bad_timeout_type_is_rejected(conn):
    result = info(dict(conn, timeout="soon"))
    assert result["failed"] and "timeout" in result["msg"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged uid")
def test_permission_denied_on_socket_mode(traversable_daemon):
    os.chmod(traversable_daemon.admin_socket, 0o000)
    result = run_module_as(65534, 65534, remo_broker_info.main, dict(socket_path=traversable_daemon.admin_socket))
    assert "_child_error" not in result, result
    assert result["failed"] and result["failure"]["code"] == "connection_error"
    assert "permission denied" in result["msg"].lower()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged uid")
def test_permission_denied_on_socket_directory(traversable_daemon):
    os.chmod(traversable_daemon.run_dir, 0o700)
    result = run_module_as(65534, 65534, remo_broker_info.main, dict(socket_path=traversable_daemon.admin_socket))
    assert "_child_error" not in result, result
    assert result["failed"] and result["failure"]["code"] == "connection_error"
    assert "permission denied" in result["msg"].lower()


def test_warns_when_the_audit_log_cannot_be_written(broker_factory, capfd):
    from ansible_collections.remo.broker.tests.unit.broker_harness import wait_for
    broker = broker_factory(start=False)
    broker.audit_log = "/dev/full"      # every write fails: the daemon refuses get
    broker.start()
    broker.admin("status")              # an event, so the writer tries (and fails) to write
    conn = {"socket_path": broker.admin_socket, "timeout": 5.0}
    result = wait_for(lambda r: r["status"]["audit"]["available"] is False, 20, interval=0.1,
                      what="the failing audit log to be reported", get=lambda: info(conn))
    assert result["_rc"] == 0 and "No space left" in result["status"]["audit"]["unavailable_reason"]
    import json
    # In the result (plain strings or WarningSummary objects, by core version); once the
    # controller's display is set up in this process (other tests run plays), core
    # prints module warnings to stderr instead.
    warnings = json.dumps(result.get("warnings")) + capfd.readouterr().err
    assert "cannot write its audit log" in warnings and "get is refused with audit_unavailable" in warnings, result
