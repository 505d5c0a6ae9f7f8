# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo_broker_push against a real daemon: check mode, real run, idempotence, diff, errors."""

from __future__ import annotations

import os
import uuid

import pytest

from ansible_collections.remo.broker.plugins.modules import remo_broker_push
from ansible_collections.remo.broker.tests.unit.plugins.modules.module_runner import (
    run_module,
    run_module_as,
)

NOBODY = 65534


def canary(tag="v"):
    return "CANARY-%s-%s" % (tag, uuid.uuid4().hex)


def push(args, **kwargs):
    return run_module(remo_broker_push.main, args, **kwargs)


def assert_no_values(result, *values):
    text = result["_raw"]
    for value in values:
        assert value not in text


def test_check_then_push_then_idempotent(daemon, conn):
    values = [canary("gh"), canary("npm"), canary("aws")]
    secrets = {"GITHUB_TOKEN": values[0], "NPM_TOKEN": values[1], "aws": {"access_key_id": values[2]}}

    checked = push(dict(conn, secrets=secrets), check_mode=True, diff=True)
    assert checked["_rc"] == 0 and checked["changed"] is True
    assert checked["added"] == ["GITHUB_TOKEN", "NPM_TOKEN", "aws"]
    assert checked["secret_count"] == 3
    assert daemon.status()["secret_count"] == 0, "check mode must not push"
    assert_no_values(checked, *values)

    real = push(dict(conn, secrets=secrets), diff=True)
    assert real["changed"] is True
    assert real["secret_count"] == 3
    assert real["secrets_loaded_at"]
    assert real["added"] == ["GITHUB_TOKEN", "NPM_TOKEN", "aws"]
    assert real["removed"] == [] and real["changed_names"] == []
    assert real["diff"]["before"] == ""
    assert real["diff"]["after"] == "GITHUB_TOKEN\nNPM_TOKEN\naws\n"
    assert_no_values(real, *values)
    assert daemon.status()["secret_count"] == 3

    again = push(dict(conn, secrets=secrets), diff=True)
    assert again["changed"] is False
    assert again["added"] == again["removed"] == again["changed_names"] == []
    assert again["secret_count"] == 3
    assert again["secrets_loaded_at"] == real["secrets_loaded_at"]
    assert again["diff"]["before"] == again["diff"]["after"]

    checked_again = push(dict(conn, secrets=secrets), check_mode=True)
    assert checked_again["changed"] is False


def test_change_remove_and_diff_markers(daemon, conn):
    old, new = canary("old"), canary("new")
    push(dict(conn, secrets={"A": old, "B": old, "C": old}))

    desired = {"A": old, "B": new, "D": new}
    checked = push(dict(conn, secrets=desired), check_mode=True, diff=True)
    assert checked["changed"] is True
    assert (checked["added"], checked["removed"], checked["changed_names"]) == (["D"], ["C"], ["B"])
    assert checked["diff"]["before"] == "A\nB\nC\n"
    assert checked["diff"]["after"] == "A\nB (changed)\nD\n"
    assert_no_values(checked, old, new)

    real = push(dict(conn, secrets=desired), diff=True)
    assert (real["added"], real["removed"], real["changed_names"]) == (["D"], ["C"], ["B"])
    assert real["secret_count"] == 3
    assert_no_values(real, old, new)
    assert push(dict(conn, secrets=desired))["changed"] is False


def test_structured_field_change_is_detected(daemon, conn):
    a, b = canary("a"), canary("b")
    push(dict(conn, secrets={"aws": {"access_key_id": a, "secret_access_key": a}}))
    result = push(dict(conn, secrets={"aws": {"access_key_id": a, "secret_access_key": b}}), diff=True)
    assert result["changed"] is True and result["changed_names"] == ["aws"]
    assert_no_values(result, a, b)


def test_absent_clears_and_is_idempotent(daemon, conn):
    value = canary()
    push(dict(conn, secrets={"X": value, "Y": value}))

    checked = push(dict(conn, state="absent"), check_mode=True, diff=True)
    assert checked["changed"] is True and checked["removed"] == ["X", "Y"]
    assert checked["diff"]["before"] == "X\nY\n" and checked["diff"]["after"] == ""
    assert daemon.status()["secret_count"] == 2

    real = push(dict(conn, state="absent"))
    assert real["changed"] is True and real["secret_count"] == 0
    assert daemon.status()["secret_count"] == 0

    again = push(dict(conn, state="absent"))
    assert again["changed"] is False and again["removed"] == []


def test_empty_map_is_a_valid_push(daemon, conn):
    push(dict(conn, secrets={"X": canary()}))
    result = push(dict(conn, secrets={}))
    assert result["changed"] is True and result["removed"] == ["X"] and result["secret_count"] == 0


def test_secrets_required_when_present(conn):
    result = push(dict(conn))
    assert result["failed"] and "secrets" in result["msg"]


@pytest.mark.parametrize("bad", [1234, True, ["x"], {"field": 5}])
def test_bad_value_types_name_the_secret_not_the_value(conn, bad):
    result = push(dict(conn, secrets={"GOOD": "ok-value", "BAD": bad}))
    assert result["failed"]
    assert "BAD" in result["msg"] and "quote it" in result["msg"]
    assert "ok-value" not in result["_raw"]


def test_bad_name(conn):
    result = push(dict(conn, secrets={"no-dashes": "v"}))
    assert result["failed"] and "no-dashes" in result["msg"]


def test_oversized_push_names_the_limit_not_the_value(daemon, conn):
    marker = canary("big")
    big = marker + ("x" * (1024 * 1024))
    result = push(dict(conn, secrets={"BIG": big}))
    assert result["failed"]
    assert "1 MiB" in result["msg"] and "1048576" in result["msg"]
    assert result["failure"]["code"] == "payload_too_large"
    assert marker not in result["_raw"]
    assert daemon.status()["secret_count"] == 0


def test_values_are_masked_in_invocation(conn):
    value = canary()
    # ansible-core 2.21+ returns the invocation only with inject_invocation enabled.
    result = push(dict(conn, secrets={"TOKEN": value}, _ansible_inject_invocation=True), verbosity=3)
    assert value not in result["_raw"]
    invocation = result.get("invocation", {}).get("module_args", {})
    # names stay readable, values are replaced by Ansible's no_log marker
    assert invocation["secrets"] == {"TOKEN": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}


def test_daemon_down(tmp_path):
    missing = str(tmp_path / "nothing-here" / "admin.sock")
    value = canary()
    result = push(dict(socket_path=missing, secrets={"TOKEN": value}))
    assert result["failed"]
    assert result["failure"]["code"] == "connection_error"
    assert "is remo-broker running" in result["msg"]
    assert missing in result["msg"] and "socket_path" in result["msg"]
    assert value not in result["_raw"]


def test_socket_path_from_environment(daemon, monkeypatch):
    monkeypatch.setenv("REMO_BROKER_SOCKET", daemon.admin_socket)
    result = push(dict(secrets={"X": canary()}))
    assert result["changed"] is True and result["socket_path"] == daemon.admin_socket


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged uid")
def test_permission_denied_as_unprivileged_user(daemon, conn):
    os.chmod(daemon.admin_socket, 0o660)
    value = canary()
    result = run_module_as(NOBODY, NOBODY, remo_broker_push.main, dict(conn, secrets={"TOKEN": value}))
    assert "_child_error" not in result, result
    assert result["failed"]
    assert result["failure"]["code"] == "connection_error"
    assert "permission denied" in result["msg"].lower()
    assert "become" in result["msg"]
    assert value not in result["_raw"]
    assert daemon.status()["secret_count"] == 0


# ---------------------------------------------------------------------------
# push sources
# ---------------------------------------------------------------------------
def test_source_push_keeps_the_other_sources(daemon, conn):
    mine, theirs = canary("mine"), canary("vault")
    daemon.admin_ok("push-creds", secrets={"VAULT_ONLY": theirs, "SHARED": theirs}, source="vault")

    checked = push(dict(conn, source="ansible", secrets={"MINE": mine}), check_mode=True)
    assert checked["changed"] is True and checked["added"] == ["MINE"] and checked["removed"] == []
    assert checked["source"] == "ansible" and daemon.status()["secret_count"] == 2

    real = push(dict(conn, source="ansible", secrets={"MINE": mine, "SHARED": mine}), diff=True)
    assert real["changed"] is True and real["source"] == "ansible"
    assert real["added"] == ["MINE", "SHARED"] and real["removed"] == []
    assert real["secret_count"] == 2 and real["conflicts"] == ["SHARED"]
    assert_no_values(real, mine, theirs)
    status = daemon.status()
    assert status["secret_count"] == 3, "the vault's names are still served"
    assert status["conflicts"] == [{"name": "SHARED", "served_from": "ansible", "also_in": ["vault"]}]

    again = push(dict(conn, source="ansible", secrets={"MINE": mine, "SHARED": mine}))
    assert again["changed"] is False and again["secret_count"] == 2
    assert again["secrets_loaded_at"] == real["secrets_loaded_at"] and again["conflicts"] == ["SHARED"]

    # The default source (no source option) is another source again.
    default = push(dict(conn, secrets={"OTHER": mine}))
    assert default["source"] == "default" and default["added"] == ["OTHER"] and default["removed"] == []
    assert daemon.status()["secret_count"] == 4


def test_absent_with_a_source_clears_only_that_source(daemon, conn):
    value = canary()
    push(dict(conn, source="ansible", secrets={"A": value}))
    daemon.admin_ok("push-creds", secrets={"V": value}, source="vault")

    checked = push(dict(conn, source="ansible", state="absent"), check_mode=True, diff=True)
    assert checked["changed"] is True and checked["removed"] == ["A"]
    assert checked["diff"]["before"] == "A\n" and daemon.status()["secret_count"] == 2

    real = push(dict(conn, source="ansible", state="absent"))
    assert real["changed"] is True and real["removed"] == ["A"] and real["source"] == "ansible"
    assert [s["name"] for s in daemon.status()["sources"]] == ["vault"]
    assert push(dict(conn, source="ansible", state="absent"))["changed"] is False


def test_absent_without_a_source_clears_every_source(daemon, conn):
    value = canary()
    push(dict(conn, secrets={"A": value}))
    daemon.admin_ok("push-creds", secrets={"V": value, "A": value}, source="vault")
    real = push(dict(conn, state="absent"), diff=True)
    assert real["changed"] is True and real["source"] is None
    assert real["removed"] == ["A", "V"] and real["diff"]["before"] == "A\nV\n"
    status = daemon.status()
    assert status["secret_count"] == 0 and status["sources"] == []
    assert push(dict(conn, state="absent"))["changed"] is False


def test_bad_source_is_refused_before_the_daemon_is_asked(daemon, conn):
    value = canary()
    result = push(dict(conn, source="Not A Source", secrets={"A": value}))
    assert result["failed"] and "Not A Source" in result["msg"] and "^[a-z]" in result["msg"]
    assert value not in result["_raw"]
    assert daemon.status()["secret_count"] == 0
