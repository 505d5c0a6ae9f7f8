# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Peak memory and tasks of the daemon under the floods a project can mount, and under
the largest push; the figures behind the unit's MemoryMax and TasksMax.

    .venv/bin/python benchmarks/bench_isolation_memory.py [--projects 4]

Each scenario starts a fresh daemon (RLIMIT_NOFILE: this shell's hard limit; default limits) and reports
its VmHWM (peak resident set, /proc/PID/status) and its task count (threads plus the
audit writer process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import tempfile
import time

# The one daemon test harness, imported as the tests import it (bench_daemon.py links
# the checkout under .cache/collections the same way).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from checkout_path import add_checkout_to_path  # noqa: E402  pylint: disable=wrong-import-position

add_checkout_to_path()

from ansible_collections.remo.broker.tests.unit import broker_harness as H  # noqa: E402  pylint: disable=wrong-import-position

PING = b'{"op":"ping"}\n'


def _tasks(pid):
    children = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="ascii") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children += len(os.listdir("/proc/%s/task" % entry))
            except (OSError, ValueError, IndexError):
                continue
    return len(os.listdir("/proc/%d/task" % pid)) + children


def _fill(conns, seconds=5.0):
    """Send pings on every connection without reading until none takes more."""
    for conn in conns:
        conn.sock.setblocking(False)
    deadline = time.monotonic() + seconds
    block = PING * 4096
    while time.monotonic() < deadline:
        progress = False
        for conn in conns:
            try:
                conn.sock.send(block)
                progress = True
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                continue
        if not progress:
            break


def scenario(name, run, nofile=None):
    base = tempfile.mkdtemp(prefix="rb-mem-", dir="/tmp")
    # One process opens every connection here: lift the per-process cap (it stands for many).
    daemon = H.Daemon(base, ["--max-peer-connections", "100000"], client_timeout=30, nofile=nofile or resource.getrlimit(resource.RLIMIT_NOFILE)[1]).start()
    try:
        idle = daemon.vm_kib("VmHWM")
        run(daemon)
        peak = daemon.vm_kib("VmHWM")
        tasks = _tasks(daemon.pid)
        H.assert_healthy(daemon)
    finally:
        daemon.stop()
    print("%-42s idle %6.1f MiB  peak %6.1f MiB  tasks %d" % (name, idle / 1024, peak / 1024, tasks))
    return peak


def _connect(path):
    """A connection; a full accept queue (EAGAIN on a busy machine) is retried for 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return H.RawConn(path)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def flood_projects(projects, per_project, reading):
    def run(daemon):
        conns = []
        for index in range(projects):
            daemon.add_project("p%d" % index)
            conns += [_connect(daemon.project_socket("p%d" % index)) for _conn in range(per_project)]
        if not reading:
            _fill(conns)
        for conn in conns:
            conn.close()
    return run


def large_push(daemon):
    daemon.add_project("big", ["S%05d" % i for i in range(10)])
    # Close to MAX_ADMIN_MESSAGE_BYTES (1 MiB): 10,000 secrets of ~90 bytes.
    secrets = {"S%05d" % i: "v" * 90 for i in range(10000)}
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.admin_socket)
    line = json.dumps({"op": "push-creds", "secrets": secrets}).encode() + b"\n"
    assert len(line) < 1048576, len(line)
    sock.sendall(line)
    reply = b""
    while not reply.endswith(b"\n"):
        reply += sock.recv(1 << 20)
    sock.close()
    assert json.loads(reply)["ok"] is True, reply[:200]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--projects", type=int, default=4, help="hostile projects in the flood scenarios")
    args = parser.parse_args()
    scenario("idle daemon", lambda daemon: None)
    scenario("%d projects x 256 idle connections" % args.projects, flood_projects(args.projects, 256, True))
    scenario("%d projects x 256 never-reading flooders" % args.projects, flood_projects(args.projects, 256, False))
    scenario("push of 10,000 secrets (~1 MiB)", large_push)


if __name__ == "__main__":
    main()
