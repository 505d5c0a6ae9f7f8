# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark manifest parsing: the worst manifest the limits allow against a typical one.

Not a test: run it by hand.

    .venv/bin/python benchmarks/bench_manifest.py [--repeat 9] [--rounds 3] [--skip-before]
                                                  [--json benchmarks/results/bench_manifest.json]

Three parts, each reported as a ratio against a baseline measured in the same run:

* in process: CPU time of ``parse_manifest`` on every hostile shape at the edge of the
  limits (tests/unit/hostile_manifests.py) and on the largest valid manifest, against a
  typical manifest; and, unless ``--skip-before``, what tomllib alone (the parse before
  the limits existed) spends on the 64 KiB dotted key of the original attack;
* the daemon: CPU the serving process spends on one ``reload`` of each of them (from
  /proc/PID/schedstat, nanoseconds), against the reload of the typical manifest.  The
  event loop runs nothing else meanwhile, so this is the stall every other project sees
  on an idle machine;
* isolation: project B's ``get`` latency and the admin ``status`` latency, each on its own
  connection, while project A reloads every hostile manifest ``--rounds`` times, against
  the same probes' idle p99.

The daemon runs as the tests start it (tests/unit/broker_harness.py), audit log on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from checkout_path import add_checkout_to_path  # noqa: E402  pylint: disable=wrong-import-position

add_checkout_to_path()

# pylint: disable=wrong-import-position
from ansible_collections.remo.broker.plugins.module_utils import _manifest as m  # noqa: E402
from ansible_collections.remo.broker.tests.unit import hostile_manifests as hostile  # noqa: E402
from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon  # noqa: E402

VALUE = "bench-value"
TYPICAL = "typical manifest (3 secrets)"


def parse_cpu_ms(text, repeat):
    """Best-of-``repeat`` CPU milliseconds of one parse_manifest (a refusal counts: it is the work done)."""
    best = None
    for dummy in range(repeat):
        start = time.process_time()
        try:
            m.parse_manifest(text, expected_project=hostile.PROJECT)
        except m.ManifestError:
            pass
        elapsed = time.process_time() - start
        best = elapsed if best is None else min(best, elapsed)
    return 1000 * best


def outcome(text):
    try:
        m.parse_manifest(text, expected_project=hostile.PROJECT)
    except m.ManifestError as exc:
        return "refused: %s: %s" % (exc.key if len(exc.key) < 40 else exc.key[:37] + "...", exc.reason.split(" (", maxsplit=1)[0])
    return "valid"


def machine():
    with open("/proc/loadavg", encoding="ascii") as handle:
        load = handle.read().split()[0]
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "load_at_start": float(load),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--repeat", type=int, default=9, help="repetitions per in-process parse and per daemon reload")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of hostile reloads during the isolation probes")
    parser.add_argument("--skip-before", action="store_true", help="do not time tomllib alone on the 64 KiB dotted key")
    parser.add_argument("--json", default=os.path.join(HERE, "results", "bench_manifest.json"))
    args = parser.parse_args(argv)

    shapes = [(TYPICAL, hostile.typical_manifest())] + hostile.worst_manifests(m)
    res = {"machine": machine(), "parse": [], "reload": [], "isolation": {}}
    for label, text in shapes:
        res["parse"].append({"shape": label, "bytes": len(text.encode()), "cpu_ms": parse_cpu_ms(text, args.repeat),
                             "outcome": outcome(text)})
    if not args.skip_before:
        text = hostile.dotted_key(m.MAX_MANIFEST_BYTES)
        start = time.process_time()
        tomllib.loads(text)
        res["before_ms"] = 1000 * (time.process_time() - start)

    base = tempfile.mkdtemp(prefix="rbbench-manifest-", dir="/tmp")
    broker = Daemon(base, rate_limit=0).start()
    try:
        broker.add_project("bee", ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": VALUE})
        project_dir = broker.make_project(hostile.PROJECT, ("A_TOKEN",))
        manifest_path = os.path.join(project_dir, ".remo", "manifest.toml")
        for label, text in shapes:
            cpu = hostile.reload_cpu_seconds(broker, hostile.PROJECT, manifest_path, text, args.repeat)
            res["reload"].append({"shape": label, "cpu_ms": 1000 * cpu})
        probes = hostile.reload_under_probes(
            broker, hostile.PROJECT, manifest_path, shapes[1:], args.rounds, broker.project_socket("bee"),
            b'{"op":"get","name":"TOKEN"}\n', lambda reply: reply.get("value") == VALUE)
        if probes["failures"]:
            raise SystemExit("a probe failed: %r" % probes["failures"][:3])
        for probe in ("get", "status"):
            idle, during = probes[probe]["idle"], probes[probe]["hostile"]
            res["isolation"][probe] = {
                "idle_p99_ms": 1000 * hostile.percentile(idle, 0.99), "idle_max_ms": 1000 * max(idle),
                "hostile_p99_ms": 1000 * hostile.percentile(during, 0.99), "hostile_max_ms": 1000 * max(during),
                "idle_samples": len(idle), "hostile_samples": len(during)}
        res["isolation"]["reloads"] = len(probes["reloads"])
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
    with open("/proc/loadavg", encoding="ascii") as handle:
        res["machine"]["load_at_end"] = float(handle.read().split()[0])
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(res, handle, indent=1, sort_keys=True)
        handle.write("\n")
    print(render(res))


def render(res):
    parse = {row["shape"]: row for row in res["parse"]}
    reload_ = {row["shape"]: row for row in res["reload"]}
    typical_parse, typical_reload = parse[TYPICAL]["cpu_ms"], reload_[TYPICAL]["cpu_ms"]
    lines = ["| manifest | bytes | outcome | parse CPU | × typical | daemon CPU per reload | × typical |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for row in res["parse"]:
        shape = row["shape"]
        lines.append("| %s | %d | %s | %.2f ms | %.1f | %.2f ms | %.1f |" % (
            shape, row["bytes"], row["outcome"], row["cpu_ms"], row["cpu_ms"] / typical_parse,
            reload_[shape]["cpu_ms"], reload_[shape]["cpu_ms"] / typical_reload))
    if "before_ms" in res:
        lines.append("| dotted key, 64 KiB, tomllib alone (before the limits) | %d | parsed | %.0f ms | %.0f | | |" % (
            parse[res["parse"][1]["shape"]]["bytes"], res["before_ms"], res["before_ms"] / typical_parse))
    lines += ["", "| probe, on its own connection | idle p99 | during hostile reloads: p99 | max | max / idle p99 |",
              "|---|---:|---:|---:|---:|"]
    for probe, label in (("get", "project B `get`"), ("status", "admin `status`")):
        row = res["isolation"][probe]
        lines.append("| %s | %.2f ms | %.2f ms | %.2f ms | %.1f |" % (
            label, row["idle_p99_ms"], row["hostile_p99_ms"], row["hostile_max_ms"], row["hostile_max_ms"] / row["idle_p99_ms"]))
    mach = res["machine"]
    lines += ["", "%d reloads; Python %s, %d CPUs, load average %.1f at start and %.1f at the end; %s." % (
        res["isolation"]["reloads"], mach["python"], mach["nproc"], mach["load_at_start"], mach["load_at_end"], mach["date"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
