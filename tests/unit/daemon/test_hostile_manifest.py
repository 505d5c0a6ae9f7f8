# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A hostile manifest cannot stall the daemon for the other projects or the admin socket.

The daemon parses manifests on its event loop.  Project A keeps reloading the
manifests that used to freeze it for seconds (a 64 KiB dotted key) and the largest
texts the parsing limits let through, while project B's ``get`` and the admin
``status`` are timed on their own connections.  Latencies are compared with the same
run's idle figures, not with a fixed budget alone, so a loaded machine does not fail
the test; benchmarks/bench_manifest.py reports the same figures.
"""

from __future__ import annotations

import json
import os
import signal
import time

from ansible_collections.remo.broker.plugins.module_utils import _manifest as m
from ansible_collections.remo.broker.tests.unit import hostile_manifests as hostile
from ansible_collections.remo.broker.tests.unit.broker_harness import assert_healthy, wait_for

VALUE = "bee-token-value"
# Before the limits one reload held the event loop for ~20 s.  The event loop's hold
# is the daemon's CPU per reload (the budget: 50 ms); what B sees in wall time is that
# stretched by the share of a core the daemon gets, so its bound only has to be far
# below the attack on a machine shared by many test runs.
MAX_RELOAD_CPU_SECONDS = 0.05


def _measured_by_coverage():
    try:
        import coverage
    except ImportError:
        return False
    return coverage.Coverage.current() is not None


# Under coverage (the units stage measures the daemon's own process) every line is
# traced and costs several times its CPU; the budget is checked untraced
# (benchmarks/bench_manifest.py gives the figure).
if _measured_by_coverage():
    MAX_RELOAD_CPU_SECONDS *= 6
MAX_STALL_SECONDS = 1.0
IDLE_FACTOR = 3.0


def test_hostile_reloads_do_not_stall_other_projects(broker_factory):
    broker = broker_factory(rate_limit=0)
    broker.add_project("bee", ("TOKEN",))
    broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
    hostile_dir = broker.make_project(hostile.PROJECT, ("A_TOKEN",))    # the manifests' project name
    result = hostile.reload_under_probes(
        broker, hostile.PROJECT, os.path.join(hostile_dir, ".remo", "manifest.toml"), hostile.worst_manifests(m), rounds=3,
        victim_socket=broker.project_socket("bee"), victim_get=b'{"op":"get","name":"TOKEN"}\n',
        victim_check=lambda reply: reply.get("ok") is True and reply.get("value") == VALUE)
    assert not result["failures"], result["failures"][:3]

    # each reload had the outcome parsing has in process: the same located error, or applied
    expected = {}
    for label, text in hostile.worst_manifests(m):
        try:
            m.parse_manifest(text, expected_project=hostile.PROJECT)
            expected[label] = None
        except m.ManifestError as exc:
            expected[label] = (exc.line, exc.column, exc.key)
    for label, dummy, reply in result["reloads"]:
        if expected[label] is None:
            assert reply["ok"] is True, (label, reply)
        else:
            assert reply["ok"] is False and reply["code"] == "manifest_invalid", (label, reply)
            details = reply["details"]
            assert (details["line"], details["column"], details["key"]) == expected[label], (label, reply)
    assert expected["dotted key, 64 KiB (the original attack)"] == (3, 17, "a.a.a.a.a.a.a.a.a")

    figures = {}
    for probe in ("get", "status"):
        idle, during = result[probe]["idle"], result[probe]["hostile"]
        assert len(during) >= 10, (probe, len(during))
        bound = max(MAX_STALL_SECONDS, IDLE_FACTOR * max(idle))
        figures[probe] = {"idle_p99_ms": 1000 * hostile.percentile(idle, 0.99), "idle_max_ms": 1000 * max(idle),
                          "hostile_p99_ms": 1000 * hostile.percentile(during, 0.99), "hostile_max_ms": 1000 * max(during),
                          "bound_ms": 1000 * bound, "samples": len(during)}
        assert max(during) < bound, (probe, figures[probe])
    figures["reload_max_ms"] = 1000 * max(seconds for dummy, seconds, dummy2 in result["reloads"])
    manifest_path = os.path.join(hostile_dir, ".remo", "manifest.toml")
    cpu = {label: hostile.reload_cpu_seconds(broker, hostile.PROJECT, manifest_path, text, 3)
           for label, text in hostile.worst_manifests(m)}
    figures["reload_cpu_max_ms"] = 1000 * max(cpu.values())
    assert max(cpu.values()) < MAX_RELOAD_CPU_SECONDS, {label: round(1000 * v, 1) for label, v in cpu.items()}
    print("hostile reload figures: " + json.dumps(figures, sort_keys=True))
    assert_healthy(broker, "bee")


# ---------------------------------------------------------------------------
# SIGHUP: every project's manifest at once
# ---------------------------------------------------------------------------
RELOADED_PROJECTS = 24      # at ~50 ms of parsing each, a reload that held the loop would stall >1 s


def _named(text, name):
    """A hostile manifest (written for project ``p``) for project ``name``."""
    return text.replace(hostile.HEAD, 'schema_version = 2\nproject = "%s"\n' % name, 1)


def test_sighup_reload_of_many_hostile_manifests_serves_others_in_between(broker_factory):
    broker = broker_factory(rate_limit=0)
    broker.add_project("bee", ("TOKEN",))
    broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
    heaviest = dict(hostile.worst_manifests(m))["template placeholders, at the limits"]   # valid, ~64 KiB
    names = ["h%02d" % index for index in range(RELOADED_PROJECTS)]
    invalid = names[len(names) // 2]
    paths = {name: os.path.join(broker.make_project(name, ("A_TOKEN",)), ".remo", "manifest.toml") for name in names}
    for name, path in paths.items():
        text = _named(heaviest, name)
        if name == invalid:         # as expensive, and refused at its last line
            text = _named(hostile.largest_valid_manifest(m), name) + "bogus = 1\n"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    # Each status answered records how many projects already serve their new allowlist.
    progress = []
    gets = []

    def switched(reply):
        projects = {p["name"]: p for p in reply["projects"]}
        progress.append((time.perf_counter(), sum(projects[n]["allowlist"] == ["A"] for n in names),
                         projects[invalid]["manifest_error"]))
        return reply.get("ok") is True

    def served(reply):
        gets.append(time.perf_counter())
        return reply.get("ok") is True and reply.get("value") == VALUE

    probes = {"get": hostile._Probe(broker.project_socket("bee"), b'{"op":"get","name":"TOKEN"}\n', served),
              "status": hostile._Probe(broker.admin_socket, b'{"op":"status"}\n', switched)}
    try:
        wait_for(lambda: all(len(p.samples["idle"]) >= 100 or p.failures for p in probes.values()), 120,
                 what="the idle latency samples")
        for probe in probes.values():
            probe.phase = "hostile"
        signalled = time.perf_counter()
        broker.send_signal(signal.SIGHUP)
        wait_for(lambda: any(p.failures for p in probes.values()) or
                 (progress[-1][0] > signalled and progress[-1][1] == len(names) - 1 and progress[-1][2]),
                 300, what="every manifest reloaded")
    finally:
        for probe in probes.values():
            probe.stop()
    assert not [f for p in probes.values() for f in p.failures]

    # The admin socket answered while the reload was under way, and so did B.
    during = [(at, count) for at, count, dummy in progress if at > signalled and 0 < count < len(names) - 1]
    assert len({count for dummy, count in during}) >= 2, "no status answered between two projects' reloads"
    first, last = during[0][0], during[-1][0]
    assert any(first < at < last for at in gets), "no get answered during the reload"
    figures = {"reload_wall_ms": 1000 * (progress[-1][0] - signalled), "partial_states": len(during)}
    for name, probe in probes.items():
        idle, busy = probe.samples["idle"], probe.samples["hostile"]
        bound = max(MAX_STALL_SECONDS, IDLE_FACTOR * max(idle))
        figures[name] = {"idle_max_ms": 1000 * max(idle), "reload_max_ms": 1000 * max(busy), "bound_ms": 1000 * bound}
        assert max(busy) < bound, (name, figures)
    print("SIGHUP reload figures: " + json.dumps(figures, sort_keys=True))

    # The refused manifest kept its previous allowlist; the error names the file, line and key.
    project = {p["name"]: p for p in broker.status()["projects"]}[invalid]
    assert project["allowlist"] == ["A_TOKEN"]
    assert project["manifest_error"].startswith(paths[invalid] + ":515:1: secrets.S127.bogus: unknown key"), project
    assert_healthy(broker, "bee")
