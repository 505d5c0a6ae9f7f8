"""Constants of the wire protocol (the single source of truth)."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.remo.broker.plugins.module_utils import _protocol as P

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_daemon_version_equals_galaxy_version():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        match = re.search(r"^version:\s*['\"]?([^'\"\s]+)", fh.read(), re.MULTILINE)
    assert match, "galaxy.yml has no version"
    assert P.DAEMON_VERSION == match.group(1)


def test_protocol_version_and_limits():
    assert P.PROTOCOL_VERSION == 2
    assert P.MAX_PROJECT_MESSAGE_BYTES == 65536
    assert P.MAX_ADMIN_MESSAGE_BYTES == 1048576
    assert P.MAX_REPLY_BYTES >= P.MAX_ADMIN_MESSAGE_BYTES
    assert P.DRAIN_TIMEOUT == 5.0


def test_default_paths():
    assert P.DEFAULT_RUN_DIR == "/run/remo-broker"
    assert P.DEFAULT_STATE_DIR == "/var/lib/remo-broker"
    assert P.DEFAULT_AUDIT_LOG == "/var/log/remo-broker/audit.jsonl"
    assert P.DEFAULT_ADMIN_SOCKET == "/run/remo-broker/admin.sock"
    assert P.admin_socket_path("/run/x/") == "/run/x/admin.sock"
    assert P.project_socket_path("/run/x", "demo") == "/run/x/demo.sock"


def test_ops_and_error_codes():
    assert P.ADMIN_OPS == {"status", "register", "unregister", "reload", "push-creds", "diff-creds", "clear-creds", "ping"}
    assert P.PROJECT_OPS == {"get", "ping", "info", "watch"}
    assert P.ADMIN_ERROR_CODES == {"protocol_error", "invalid_payload", "payload_too_large", "manifest_invalid",
                                   "manifest_not_found", "not_registered", "conflict", "internal_error"}
    assert P.PROJECT_ERROR_CODES == {"denied", "not_found", "rate_limited", "protocol_error", "internal_error",
                                     "peer_unexpected"}
    assert P.E_CONNECTION_ERROR not in P.ERROR_CODES
    assert P.COUNTER_NAMES == ("allowed", "denied", "not_found", "rate_limited", "peer_unexpected", "protocol_error")


def test_exit_codes_distinct():
    codes = [P.EXIT_OK, P.EXIT_BROKER_ERROR, P.EXIT_USAGE, P.EXIT_CONNECT, P.EXIT_MANIFEST_INVALID,
             P.EXIT_AUDIT_VERIFY_FAILED]
    assert codes == [0, 1, 2, 3, 4, 5]


def test_patterns_are_the_documented_ones():
    assert P.PROJECT_NAME_RE.pattern == r"^[a-z0-9][a-z0-9_-]{0,63}$"
    assert P.SECRET_NAME_RE.pattern == r"^[A-Za-z0-9_]{1,128}$"


@pytest.mark.parametrize("name,ok", [
    ("demo", True), ("a", True), ("0-x_y", True), ("a" * 64, True),
    ("a" * 65, False), ("-a", False), ("_a", False), ("Demo", False), ("", False), ("a b", False),
    ("demo\n", False), ("admin", False), (None, False), (5, False),
])
def test_is_valid_project_name(name, ok):
    assert P.is_valid_project_name(name) is ok


@pytest.mark.parametrize("name,ok", [
    ("GITHUB_TOKEN", True), ("gh", True), ("a" * 128, True), ("9", True),
    ("a" * 129, False), ("", False), ("A-B", False), ("A.B", False), ("A\n", False), (None, False),
])
def test_is_valid_secret_name(name, ok):
    assert P.is_valid_secret_name(name) is ok


def test_module_has_no_side_effects_and_is_stdlib():
    with open(P.__file__, encoding="utf-8") as fh:
        text = fh.read()
    assert "PRIVATE to the collection" in text
    assert "\nassert " not in text and "    assert " not in text
