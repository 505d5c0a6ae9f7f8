# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_broker_client against a real AF_UNIX server thread (community.docker's UnixSocketStreamTest pattern)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import threading

import pytest

from ansible_collections.remo.broker.plugins.module_utils._broker_client import (
    BrokerClient,
    BrokerConnectionError,
    BrokerError,
    _connect_error,
    decode_reply,
)

SECRET = "CANARY-client-request-9a8b"


class UnixServer:
    """Accepts connections; ``handler(conn, request_bytes)`` answers each."""

    def __init__(self, handler):
        self.dir = tempfile.mkdtemp(prefix="rbc", dir="/tmp")
        self.path = os.path.join(self.dir, "s.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.handler = handler
        self.requests = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                conn.settimeout(2)
                try:
                    while b"\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    continue
                self.requests.append(data)
                try:
                    self.handler(conn, data)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server_factory():
    servers = []

    def make(handler):
        srv = UnixServer(handler)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.close()


def reply_with(obj_or_bytes):
    def handler(conn, _data):
        payload = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode() + b"\n"
        conn.sendall(payload)
    return handler


def test_request_ok_and_wire_format(server_factory):
    srv = server_factory(reply_with({"ok": True, "protocol_version": 2}))
    reply = BrokerClient(srv.path).request("ping", project="demo")
    assert reply == {"ok": True, "protocol_version": 2}
    (raw,) = srv.requests
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert json.loads(raw) == {"op": "ping", "project": "demo"}


def test_reply_split_across_sends(server_factory):
    def handler(conn, _data):
        conn.sendall(b'{"ok": tr')
        conn.sendall(b'ue, "value": "x"}\n')
    srv = server_factory(handler)
    assert BrokerClient(srv.path).request("get", name="A")["value"] == "x"


def test_error_reply_raises_broker_error(server_factory):
    srv = server_factory(reply_with({"ok": False, "code": "manifest_invalid", "message": "f:1:2: k: bad",
                                     "details": {"file": "f", "line": 1, "column": 2, "key": "k"}}))
    with pytest.raises(BrokerError) as err:
        BrokerClient(srv.path).request("register", name="x", project_path="/p")
    assert not isinstance(err.value, BrokerConnectionError)
    assert err.value.code == "manifest_invalid"
    assert err.value.details["line"] == 1
    assert str(err.value) == "manifest_invalid: f:1:2: k: bad"
    assert err.value.to_dict()["code"] == "manifest_invalid"


def test_rate_limited_keeps_retry_after(server_factory):
    srv = server_factory(reply_with({"ok": False, "code": "rate_limited", "message": "slow down", "retry_after_seconds": 0.25}))
    with pytest.raises(BrokerError) as err:
        BrokerClient(srv.path).request("get", name="A")
    assert err.value.details["retry_after_seconds"] == 0.25


def test_missing_socket_is_actionable():
    path = "/tmp/definitely-missing-remo-broker-%d.sock" % os.getpid()
    with pytest.raises(BrokerConnectionError) as err:
        BrokerClient(path).request("status")
    assert err.value.code == "connection_error"
    assert "is remo-broker running and is the socket path right?" in err.value.message
    assert path in err.value.message


def test_refused_socket(tmp_path):
    d = tempfile.mkdtemp(prefix="rbc", dir="/tmp")
    path = os.path.join(d, "dead.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()  # bound but not listening: ECONNREFUSED
    try:
        with pytest.raises(BrokerConnectionError) as err:
            BrokerClient(path).request("status")
        assert "is remo-broker running" in err.value.message
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_permission_error_mentions_admin_group(code):
    err = _connect_error("/run/remo-broker/admin.sock", PermissionError(code, os.strerror(code)))
    assert isinstance(err, BrokerConnectionError)
    assert "is this user in the broker's admin group?" in err.message


def test_permission_error_through_connect(monkeypatch, server_factory):
    srv = server_factory(reply_with({"ok": True}))

    def deny(self, addr):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(socket.socket, "connect", deny)
    with pytest.raises(BrokerConnectionError) as err:
        BrokerClient(srv.path).request("status")
    assert "admin group" in err.value.message


def test_timeout_waiting_for_reply(server_factory):
    gate = threading.Event()

    def handler(conn, _data):
        gate.wait(3)
    srv = server_factory(handler)
    try:
        with pytest.raises(BrokerConnectionError) as err:
            BrokerClient(srv.path, timeout=0.2).request("push-creds", secrets={"A": SECRET})
        assert "timed out" in err.value.message
        assert SECRET not in err.value.message and SECRET not in str(err.value.details)
    finally:
        gate.set()


def test_connection_closed_without_reply(server_factory):
    srv = server_factory(lambda conn, data: None)
    with pytest.raises(BrokerConnectionError) as err:
        BrokerClient(srv.path).request("push-creds", secrets={"A": SECRET})
    assert "closed the connection" in err.value.message
    assert SECRET not in err.value.message


def test_reply_size_cap(server_factory):
    srv = server_factory(reply_with(b"x" * 5000))
    with pytest.raises(BrokerError) as err:
        BrokerClient(srv.path, max_reply_bytes=1024).request("status")
    assert err.value.code == "protocol_error" and "exceeds" in err.value.message


@pytest.mark.parametrize("payload,needle", [
    (b"not json\n", "not valid JSON"),
    (b"[1,2]\n", "not a JSON object"),
    (b'{"ok": false}\n', "without a message"),
])
def test_malformed_replies(server_factory, payload, needle):
    srv = server_factory(reply_with(payload))
    with pytest.raises(BrokerError) as err:
        BrokerClient(srv.path).request("status")
    assert needle in err.value.message


def test_unserializable_request_never_echoes_values():
    with pytest.raises(BrokerError) as err:
        BrokerClient("/nonexistent.sock").request("push-creds", secrets={"A": {SECRET}})
    assert err.value.code == "protocol_error"
    assert SECRET not in str(err.value)


def test_stream_yields_first_reply_then_events(server_factory):
    def handler(conn, _data):
        conn.sendall(b'{"ok": true, "watching": ["A"]}\n{"event": "changed", "names": ["A"], "at": "T"}\n')
    srv = server_factory(handler)
    gen = BrokerClient(srv.path).stream("watch")
    assert next(gen) == {"ok": True, "watching": ["A"]}
    assert next(gen)["names"] == ["A"]
    with pytest.raises(BrokerConnectionError):
        next(gen)


def test_decode_reply_events_only_when_allowed():
    assert decode_reply(b'{"event": "changed", "names": []}', events_ok=True)["event"] == "changed"
    with pytest.raises(BrokerError):
        decode_reply(b'{"event": "changed", "names": []}')


def test_module_banner_and_no_assert():
    from ansible_collections.remo.broker.plugins.module_utils import _broker_client
    with open(_broker_client.__file__, encoding="utf-8") as fh:
        text = fh.read()
    assert "PRIVATE to the collection" in text
    assert "    assert " not in text and "\nassert " not in text
