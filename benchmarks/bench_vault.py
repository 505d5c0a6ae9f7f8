# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: how long a changed secret takes to be served, through the vault vs a direct push.

Runs ON an instance where broker_install, vault_key and vault_sidecar converged and a
project is registered whose manifest allows NAME (the Molecule scenario ``vault`` sets
that up).  Each change is timed from the moment the writer starts until a ``get`` on the
project's socket, made as the project's uid, returns the new value:

  vault    printf VALUE | docker exec -i remo-vault remo-vault set NAME
           (docker exec, age encryption, atomic write, inotify, 100 ms debounce,
           decryption, push-creds)
  direct   one push-creds of the same set on the admin socket (the floor: no vault)

The ratio is vault / direct from the same run.  Afterwards the vault's set is pushed
again (remo-reload) so the broker holds what the vault holds.

Usage (as root on the instance):
  python3 bench_vault.py --project-socket /run/remo-broker/app.sock --uid 1000 --name APP_TOKEN [--changes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ADMIN = "/run/remo-broker/admin.sock"


def request(path, payload):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline() or b"{}")
    finally:
        sock.close()


def poller(project_socket, name, uid):
    """A child running as the project's uid: reads a value per line, answers the
    CLOCK_MONOTONIC time at which the socket first served it."""
    rfd, wfd = os.pipe()
    rfd2, wfd2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wfd)
        os.close(rfd2)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        with os.fdopen(rfd) as want_in, os.fdopen(wfd2, "w") as out:
            for line in want_in:
                want, deadline = line.rstrip("\n"), time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        reply = request(project_socket, {"op": "get", "name": name})
                    except OSError:
                        reply = {}
                    if reply.get("value") == want:
                        break
                    time.sleep(0.001)
                out.write("%r\n" % time.monotonic())
                out.flush()
        os._exit(0)
    os.close(rfd)
    os.close(wfd2)
    return pid, os.fdopen(wfd, "w"), os.fdopen(rfd2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--project-socket", required=True)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--container", default="remo-vault")
    args = parser.parse_args()
    pid, to_poller, from_poller = poller(args.project_socket, args.name, args.uid)
    results = {"vault": [], "direct": []}
    for i in range(args.changes):
        for mode in ("direct", "vault"):
            value = "bench-%s-%d-%d" % (mode, os.getpid(), i)
            to_poller.write(value + "\n")
            to_poller.flush()
            start = time.monotonic()
            if mode == "vault":
                subprocess.run(["docker", "exec", "-i", args.container, "remo-vault", "set", args.name],
                               input=value.encode(), check=True, stdout=subprocess.DEVNULL)
            else:
                reply = request(ADMIN, {"op": "push-creds", "secrets": {args.name: value}})
                assert reply.get("ok"), reply
            results[mode].append((float(from_poller.readline()) - start) * 1000)
    to_poller.close()
    os.waitpid(pid, 0)
    subprocess.run(["docker", "exec", args.container, "remo-reload"], check=True, stdout=subprocess.DEVNULL)
    summary = {}
    for mode, ms in results.items():
        summary[mode] = {"p50_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1), "n": len(ms)}
    summary["ratio_p50_vault_over_direct"] = round(summary["vault"]["p50_ms"] / summary["direct"]["p50_ms"], 1)
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
