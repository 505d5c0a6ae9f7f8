# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Isolation under an audit flood: project B's ``get`` latency while project A floods.

Not a test: run it by hand (numbers go to docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_audit_isolation.py [--requests 2000] [--rounds 1] [--json FILE]
                                                         [--daemon PATH|git:REV ...]

For each flood, a fresh daemon (the role's remo_broker.py, through the test harness)
with projects ``a`` and ``b``; B sends ``--requests`` sequential gets on one connection
while A runs the flood in a separate process, and B's p50/p99 are reported as a ratio to
B's idle p99 measured on the same daemon just before.  Floods:

* ``rate_limited``: the default rate limit (100/s, burst 200); A pipelines gets on 4
  connections without pause, so nearly every request is rate limited (coalesced audit);
* ``audit_volume``: ``--rate-limit 0``; A pipelines gets on 4 connections as fast as
  the daemon answers (one audit line each: the writer's backlog is A's).

Also reported: the daemon's peak RSS (VmHWM) and the audit lines written per flood.

``--daemon`` (repeatable: a file, or ``git:REV`` for the role's file at that commit)
compares daemons: each round runs every flood on each daemon in turn, so a noisy machine
weighs on all of them alike; ``--rounds`` repeats that and the median of each figure is
reported per daemon and flood.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from checkout_path import add_checkout_to_path  # noqa: E402  pylint: disable=wrong-import-position

add_checkout_to_path()

from ansible_collections.remo.broker.tests.unit.broker_harness import DAEMON, Daemon  # noqa: E402  pylint: disable=wrong-import-position
from bench_daemon import resolve_daemon  # noqa: E402  pylint: disable=wrong-import-position

GET = b'{"op":"get","name":"TOKEN"}\n'


def _flood(path, stop, connections=4, depth=256):
    """A's client: keep ``depth`` requests in flight on each connection until ``stop``."""
    socks = []
    for _i in range(connections):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.setblocking(False)
        socks.append(sock)
    burst = GET * depth
    pending = {sock: 0 for sock in socks}
    while not stop.is_set():
        for sock in socks:
            if pending[sock] < depth:
                try:
                    sock.send(burst)
                    pending[sock] += depth
                except BlockingIOError:
                    pass
            try:
                pending[sock] -= sock.recv(1 << 20).count(b"\n")
            except BlockingIOError:
                pass
        time.sleep(0)


def _latencies(path, n):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    out = []
    for _i in range(n):
        t0 = time.perf_counter()
        sock.sendall(GET)
        buf = b""
        while not buf.endswith(b"\n"):
            buf += sock.recv(65536)
        out.append(time.perf_counter() - t0)
    sock.close()
    out.sort()
    return out


def _pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid, encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run_point(name, rate_limit, requests, daemon=None):
    base = tempfile.mkdtemp(prefix="rbiso", dir="/tmp")
    broker = Daemon(base, rate_limit=rate_limit, daemon=daemon).start()
    try:
        for project in ("a", "b"):
            broker.add_project(project, ("TOKEN",))
        broker.admin_ok("push-creds", secrets={"TOKEN": "bench-value"})
        idle = _latencies(broker.project_socket("b"), requests)
        lines_before = broker.admin("status")["audit"]["lines_written"]
        stop = multiprocessing.Event()
        proc = multiprocessing.Process(target=_flood, args=(broker.project_socket("a"), stop), daemon=True)
        proc.start()
        time.sleep(1.0)     # the flood is running and the writer's backlog is A's
        loaded = _latencies(broker.project_socket("b"), requests)
        status = broker.admin("status")
        stop.set()
        proc.join(10)
        counters = {p["name"]: p["counters"] for p in status["projects"]}
        return {
            "flood": name,
            "b_idle_p50_us": round(_pct(idle, 0.5) * 1e6),
            "b_idle_p99_us": round(_pct(idle, 0.99) * 1e6),
            "b_flood_p50_us": round(_pct(loaded, 0.5) * 1e6),
            "b_flood_p99_us": round(_pct(loaded, 0.99) * 1e6),
            "b_flood_max_us": round(loaded[-1] * 1e6),
            "p99_ratio": round(_pct(loaded, 0.99) / _pct(idle, 0.99), 2),
            "a_requests": sum(counters["a"].values()),
            "a_rate_limited": counters["a"]["rate_limited"],
            "audit_lines_during_flood": status["audit"]["lines_written"] - lines_before,
            "peak_rss_kib": _vm_hwm_kib(broker.pid),
            "a_paused_at_end": status["audit"]["paused_projects"],
        }
    finally:
        broker.stop()


FLOODS = (("rate_limited", None), ("audit_volume", 0))


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="B's sequential gets per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="times every flood runs on every daemon (medians)")
    parser.add_argument("--daemon", action="append", default=None,
                        help="daemon file or git:REV (repeatable; default: the role's remo_broker.py)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="rbisod", dir="/tmp")
    specs = args.daemon or [DAEMON]
    daemons = [(spec, resolve_daemon(spec, base)) for spec in specs]
    runs = {(spec, flood): [] for spec in specs for flood, _rate in FLOODS}
    load_start = os.getloadavg()
    for _round in range(args.rounds):
        for flood, rate_limit in FLOODS:
            for spec, path in daemons:
                runs[(spec, flood)].append(run_point(flood, rate_limit, args.requests, path))
    points = []
    for (spec, flood), samples in runs.items():
        point = {"daemon": spec, "flood": flood, "rounds": len(samples)}
        for key, value in samples[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                point[key] = _median([s[key] for s in samples])
        point["p99_ratio_each"] = [s["p99_ratio"] for s in samples]
        points.append(point)
    results = {"load_average_start": load_start, "load_average_end": os.getloadavg(), "cpus": os.cpu_count(),
               "points": points}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
