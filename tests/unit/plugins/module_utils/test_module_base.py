# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_module_base: shared argspec and BrokerError -> fail_json(failure=...) mapping."""

from __future__ import annotations

import errno
import json
import os
import socket
import threading

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.remo.broker.plugins.module_utils._broker_client import (
    BrokerConnectionError,
    BrokerError,
)
from ansible_collections.remo.broker.plugins.module_utils._module_base import (
    BrokerModule,
    broker_argument_spec,
    failure_dict,
    merge_argument_spec,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DEFAULT_ADMIN_SOCKET,
    DEFAULT_CLIENT_TIMEOUT,
)
from ansible_collections.remo.broker.tests.unit.plugins.modules.module_runner import run_module


def make_main(spec=None, action=None):
    def main():
        module = AnsibleModule(argument_spec=merge_argument_spec(spec), supports_check_mode=True)
        broker = BrokerModule(module)
        if action is not None:
            action(module, broker)
        module.exit_json(changed=False, params=dict(socket_path=module.params["socket_path"],
                                                    timeout=module.params["timeout"]))
    return main


def test_argument_spec_shape():
    spec = broker_argument_spec()
    assert set(spec) == {"socket_path", "timeout"}
    assert spec["socket_path"]["type"] == "path"
    assert spec["socket_path"]["default"] == DEFAULT_ADMIN_SOCKET
    assert spec["socket_path"]["fallback"][1] == ["REMO_BROKER_SOCKET"]
    assert spec["timeout"] == {"type": "float", "default": DEFAULT_CLIENT_TIMEOUT}


def test_merge_keeps_module_options_and_does_not_alias():
    own = {"state": {"type": "str", "default": "present"}, "timeout": {"type": "float", "default": 1.0}}
    merged = merge_argument_spec(own, extra={"type": "bool"})
    assert merged["state"] == own["state"] and merged["state"] is not own["state"]
    assert merged["timeout"]["default"] == 1.0
    assert merged["extra"] == {"type": "bool"}
    assert "socket_path" in merged
    assert broker_argument_spec()["timeout"]["default"] == DEFAULT_CLIENT_TIMEOUT


def test_defaults_env_fallback_and_explicit(monkeypatch, tmp_path):
    monkeypatch.delenv("REMO_BROKER_SOCKET", raising=False)
    result = run_module(make_main(), {})
    assert result["params"] == {"socket_path": DEFAULT_ADMIN_SOCKET, "timeout": DEFAULT_CLIENT_TIMEOUT}

    monkeypatch.setenv("REMO_BROKER_SOCKET", str(tmp_path / "env.sock"))
    assert run_module(make_main(), {})["params"]["socket_path"] == str(tmp_path / "env.sock")
    explicit = run_module(make_main(), {"socket_path": "~/x.sock", "timeout": 2})
    assert explicit["params"]["socket_path"] == os.path.expanduser("~/x.sock")
    assert explicit["params"]["timeout"] == 2.0


def test_failure_dict():
    err = BrokerError("conflict", "name taken", {"name": "demo"})
    assert failure_dict(err) == {"code": "conflict", "message": "name taken", "details": {"name": "demo"}}
    assert failure_dict(BrokerError("protocol_error", "bad", None))["details"] == {}


def serve_once(path, reply):
    """A one-shot NDJSON server on a real AF_UNIX socket (returns the thread)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    seen = {}

    def run():
        conn = server.accept()[0]
        with conn:
            buf = b""
            while not buf.endswith(b"\n"):
                buf += conn.recv(65536)
            seen["request"] = json.loads(buf)
            conn.sendall(json.dumps(reply).encode() + b"\n")
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, seen


def test_request_strips_ok_and_sends_fields(tmp_path):
    path = str(tmp_path / "admin.sock")
    thread, seen = serve_once(path, {"ok": True, "secret_count": 2})
    box = {}

    def action(module, broker):
        box["reply"] = broker.request("status", what="status", extra=1)

    run_module(make_main(action=action), {"socket_path": path})
    thread.join(5)
    assert box["reply"] == {"secret_count": 2}
    assert seen["request"] == {"op": "status", "extra": 1}


def test_daemon_error_becomes_failure(tmp_path):
    path = str(tmp_path / "admin.sock")
    thread, seen = serve_once(path, {"ok": False, "code": "manifest_invalid", "message": "m.toml:3:1: x: bad",
                                     "details": {"file": "m.toml", "line": 3, "column": 1, "key": "x"}})

    def action(module, broker):
        broker.request("reload", what="the reload request", name="demo")

    result = run_module(make_main(action=action), {"socket_path": path})
    thread.join(5)
    assert result["failed"]
    assert result["msg"] == "remo-broker refused the reload request: manifest_invalid: m.toml:3:1: x: bad"
    assert result["failure"] == {"code": "manifest_invalid", "message": "m.toml:3:1: x: bad",
                                 "details": {"file": "m.toml", "line": 3, "column": 1, "key": "x"}}
    assert result["socket_path"] == path


def test_payload_too_large_names_the_limit(tmp_path):
    path = str(tmp_path / "admin.sock")
    thread = serve_once(path, {"ok": False, "code": "payload_too_large", "message": "too big"})[0]

    def action(module, broker):
        broker.request("push-creds", what="the push", secrets={})

    result = run_module(make_main(action=action), {"socket_path": path})
    thread.join(5)
    assert "1 MiB" in result["msg"] and "1048576" in result["msg"]


def test_missing_socket_message(tmp_path):
    path = str(tmp_path / "nope.sock")

    def action(module, broker):
        broker.request("status")

    result = run_module(make_main(action=action), {"socket_path": path})
    assert result["failure"]["code"] == "connection_error"
    assert "is remo-broker running" in result["msg"]
    assert "does not exist" in result["msg"] and "REMO_BROKER_SOCKET" in result["msg"]


@pytest.mark.parametrize("error, expected", [
    (BrokerConnectionError("Error connecting: permission denied", {"errno": errno.EACCES}), "become: true"),
    (BrokerConnectionError("timed out after 5.0s waiting", {}), "raise the timeout option"),
])
def test_connection_advice(tmp_path, error, expected):
    def action(module, broker):
        broker.fail_broker(error)

    result = run_module(make_main(action=action), {"socket_path": str(tmp_path / "s")})
    assert expected in result["msg"]
    assert result["failure"]["code"] == "connection_error"
