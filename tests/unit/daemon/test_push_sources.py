# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Push sources against a real daemon (docs/protocol.md "Push sources").

Each push replaces only its source's names; a push without ``source`` is the default
source's; the broker serves the union; a name held by two sources is served from the
default source first, then from the other sources by name, and ``status`` reports it;
``clear-creds`` with a source clears that source, without one every source.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import RawConn

PROJECT = "src"
NAMES = ("A", "B", "C", "D", "X")


@pytest.fixture
def daemon(broker_factory):
    broker = broker_factory(rate_limit=0)
    broker.make_project(PROJECT, NAMES, expected_uid=os.getuid())
    return broker


def served(broker, name):
    reply = broker.project(PROJECT, "get", name=name)
    return reply["value"] if reply["ok"] else reply["code"]


def push(broker, secrets, source=None):
    fields = {"secrets": secrets}
    if source is not None:
        fields["source"] = source
    return broker.admin_ok("push-creds", **fields)


def test_two_sources_do_not_erase_each_other(daemon):
    first = push(daemon, {"A": "default-a", "B": "default-b"})
    assert first["source"] == "default" and first["secret_count"] == 2
    vault = push(daemon, {"C": "vault-c"}, source="vault")
    assert vault["source"] == "vault" and vault["secret_count"] == 1 and vault["served_count"] == 3
    assert vault["added"] == ["C"] and vault["removed"] == []
    assert [served(daemon, n) for n in "ABC"] == ["default-a", "default-b", "vault-c"]

    # A replacing push of one source drops only that source's names.
    again = push(daemon, {"D": "vault-d"}, source="vault")
    assert again["removed"] == ["C"] and again["added"] == ["D"]
    assert [served(daemon, n) for n in "ABCD"] == ["default-a", "default-b", "not_found", "vault-d"]
    emptied = push(daemon, {})
    assert emptied["removed"] == ["A", "B"] and emptied["served_count"] == 1
    assert [served(daemon, n) for n in "ABD"] == ["not_found", "not_found", "vault-d"]
    status = daemon.status()
    assert status["secret_count"] == 1
    assert [s["name"] for s in status["sources"]] == ["vault"], "an emptied source is no source"


def test_absent_source_is_the_default_source(daemon):
    push(daemon, {"A": "one"})
    explicit = push(daemon, {"B": "two"}, source="default")
    assert explicit["removed"] == ["A"] and explicit["added"] == ["B"]
    assert daemon.admin_ok("push-creds", secrets={"A": "three"}, source=None)["removed"] == ["B"]
    diff = daemon.admin_ok("diff-creds", secrets={"A": "three"})
    assert diff["source"] == "default" and diff["unchanged_count"] == 1


def test_conflict_is_served_by_precedence_and_reported(daemon):
    push(daemon, {"X": "from-vault"}, source="vault")
    push(daemon, {"X": "from-alpha"}, source="alpha")
    assert served(daemon, "X") == "from-alpha", "named sources rank by name"
    reply = push(daemon, {"X": "from-default"})
    assert reply["conflicts"] == ["X"]
    assert served(daemon, "X") == "from-default", "the default source ranks first"
    status = daemon.status()
    assert status["conflicts"] == [{"name": "X", "served_from": "default", "also_in": ["alpha", "vault"]}]
    assert [s["name"] for s in status["sources"]] == ["default", "alpha", "vault"]
    assert all(s["secret_count"] == 1 and s["loaded_at"].endswith("Z") for s in status["sources"])
    assert status["secrets_loaded_at"] == max(s["loaded_at"] for s in status["sources"])
    assert status["secret_count"] == 1

    # Order of pushes does not matter: re-pushing a lower source does not win.
    push(daemon, {"X": "from-vault-2"}, source="vault")
    assert served(daemon, "X") == "from-default"
    # When the winner drops the name, the next source serves it.
    push(daemon, {})
    assert served(daemon, "X") == "from-alpha"
    push(daemon, {}, source="alpha")
    assert served(daemon, "X") == "from-vault-2"
    assert daemon.status()["conflicts"] == []


def test_watch_events_follow_the_served_value(daemon):
    push(daemon, {"X": "default-x"})
    conn = RawConn(daemon.project_socket(PROJECT), timeout=30)
    try:
        conn.send(b'{"op":"watch"}\n')
        assert json.loads(conn.read_line())["ok"] is True
        push(daemon, {"X": "shadowed"}, source="vault")          # not served: no event
        push(daemon, {"X": "default-x2"})                        # served value changed
        event = json.loads(conn.read_line())
        assert event["event"] == "changed" and event["names"] == ["X"]
        push(daemon, {})                                         # vault's value is served now
        event = json.loads(conn.read_line())
        assert event["names"] == ["X"]
        assert served(daemon, "X") == "shadowed"
        daemon.admin_ok("clear-creds", source="default")         # holds nothing: no event
        daemon.admin_ok("clear-creds", source="vault")
        assert json.loads(conn.read_line())["names"] == ["X"]
        push(daemon, {"A": "a"})
        # The first event after the silent ones is A's: nothing was sent in between.
        assert json.loads(conn.read_line())["names"] == ["A"]
    finally:
        conn.close()


def test_clear_one_source_or_all(daemon):
    push(daemon, {"A": "a", "X": "default-x"})
    push(daemon, {"C": "c", "X": "vault-x"}, source="vault")
    one = daemon.admin_ok("clear-creds", source="default")
    assert one["source"] == "default" and one["cleared"] == 2 and one["secret_count"] == 2
    assert [served(daemon, n) for n in "ACX"] == ["not_found", "c", "vault-x"]
    push(daemon, {"A": "a"})
    everything = daemon.admin_ok("clear-creds")
    assert everything["source"] is None and everything["cleared"] == 3 and everything["secret_count"] == 0
    assert [served(daemon, n) for n in "ACX"] == ["not_found"] * 3
    status = daemon.status()
    assert status["sources"] == [] and status["secret_count"] == 0 and status["secrets_loaded_at"] is None
    nothing = daemon.admin_ok("clear-creds", source="vault")
    assert nothing["cleared"] == 0


def test_diff_is_per_source(daemon):
    push(daemon, {"A": "a", "B": "b"})
    push(daemon, {"C": "c"}, source="vault")
    diff = daemon.admin_ok("diff-creds", secrets={"C": "c2", "D": "d"}, source="vault")
    assert (diff["added"], diff["removed"], diff["changed"], diff["unchanged_count"]) == (["D"], [], ["C"], 0)
    diff = daemon.admin_ok("diff-creds", secrets={}, source="vault")
    assert diff["removed"] == ["C"], "the default source's names are not the vault's"
    assert served(daemon, "C") == "c", "diff changes nothing"


@pytest.mark.parametrize("source", ["", "Vault", "1vault", "a" * 33, "va ult", "vault\n", 7, True, ["vault"], {}])
def test_bad_source_is_refused_and_changes_nothing(daemon, source):
    push(daemon, {"A": "a"})
    for op in ("push-creds", "diff-creds", "clear-creds"):
        reply = daemon.admin(op, secrets={"B": "b"}, source=source)
        assert reply["ok"] is False and reply["code"] == "invalid_payload", reply
        assert "source" in reply["message"]
    assert served(daemon, "A") == "a" and daemon.status()["secret_count"] == 1


def test_sources_are_bounded(daemon):
    for i in range(16):
        push(daemon, {"A": "v%d" % i}, source="s%02d" % i)
    reply = daemon.admin("push-creds", secrets={"A": "one-too-many"}, source="s16")
    assert reply["ok"] is False and reply["code"] == "payload_too_large" and "16" in reply["message"]
    assert served(daemon, "A") == "v0"
    push(daemon, {}, source="s03")               # an emptied source frees its slot
    assert push(daemon, {"A": "fits"}, source="s16")["secret_count"] == 1
    # The default source counts as one of them too.
    reply = daemon.admin("push-creds", secrets={"A": "x"})
    assert reply["ok"] is False and reply["code"] == "payload_too_large"


def test_sources_are_audited_by_name_never_by_value(daemon):
    push(daemon, {"A": "audit-canary-value"}, source="vault")
    daemon.admin_ok("clear-creds", source="vault")
    events = daemon.audit_events(until=lambda ev: any(e["event"] == "clear-creds" for e in ev))
    pushes = [e for e in events if e["event"] == "push-creds"]
    assert pushes[-1]["source"] == "vault" and pushes[-1]["secret_count"] == 1
    clears = [e for e in events if e["event"] == "clear-creds"]
    assert clears[-1]["source"] == "vault" and clears[-1]["cleared"] == 1
    with open(daemon.audit_log, encoding="utf-8") as handle:
        assert "audit-canary-value" not in handle.read()


def test_cli_push_and_clear_take_a_source(daemon):
    res = daemon.run_cli("push", "--socket", daemon.admin_socket, "--source", "vault", stdin=b'{"A": "cli-a"}')
    assert res.returncode == 0, res.stderr
    res = daemon.run_cli("push", "--socket", daemon.admin_socket, stdin=b'{"B": "cli-b"}')
    assert res.returncode == 0, res.stderr
    assert [served(daemon, n) for n in "AB"] == ["cli-a", "cli-b"]
    res = daemon.run_cli("clear", "--socket", daemon.admin_socket, "--source", "vault")
    assert res.returncode == 0, res.stderr
    assert [served(daemon, n) for n in "AB"] == ["not_found", "cli-b"]
    res = daemon.run_cli("clear", "--socket", daemon.admin_socket)
    assert res.returncode == 0, res.stderr
    assert daemon.status()["secret_count"] == 0


@pytest.mark.parametrize("names", [["A\nB"], ["A", "B\nC"], ["A", ""], ["A\n"], ["A", "b-c"], ["A", "N" * 129]],
                         ids=["newline", "newline-in-second", "empty", "trailing-newline", "dash", "too-long"])
def test_push_with_a_bad_name_is_refused_whole(daemon, names):
    """Names are checked all at once (one per line); a name holding a newline must not pass as two."""
    push(daemon, {"A": "kept"})
    reply = daemon.admin("push-creds", secrets=dict.fromkeys(names, "new-value"))
    assert reply["ok"] is False and reply["code"] == "invalid_payload", reply
    assert "does not match" in reply["message"]
    assert served(daemon, "A") == "kept"
    assert daemon.admin_ok("push-creds", secrets={"A": "v", "N" * 128: "w"})["secret_count"] == 2
