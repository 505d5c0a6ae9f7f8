# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What container attestation costs a new connection (docs/benchmarks-daemon.md).

Not a test: run it by hand, as root, with Docker and the local ``remo-test/debian:bookworm``
image (scripts/bootstrap.sh builds it).

    .venv/bin/python benchmarks/bench_attestation.py [--connections 2000] [--rounds 3]

A client inside a real container does N cycles of connect, ``ping``, read the reply,
close, on its project socket (the feature's client connects once per fetch, and every
new shell fetches), and prints the time per cycle.  The same container measures the same
project twice per round, alternating: with the uid check only, then attested (pidfd,
``/proc/PID/cgroup`` read, liveness check).  Reported: the median per-connection time of
each, and their ratio (attested / uid only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from checkout_path import add_checkout_to_path  # noqa: E402  pylint: disable=wrong-import-position

add_checkout_to_path()

from ansible_collections.remo.broker.tests.unit.broker_harness import Daemon  # noqa: E402  pylint: disable=wrong-import-position

IMAGE = "remo-test/debian:bookworm"
UID = 4711

CYCLES = r"""
import socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b'{"op":"ping"}\n')
    if not s.recv(4096).startswith(b'{"ok":true'):
        sys.exit("refused")
    s.close()
print((time.perf_counter() - t0) / n * 1e6)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="rbbench", dir="/tmp")
    os.chmod(base, 0o755)
    daemon = Daemon(base, ["--rate-limit", "0"]).start()
    name = "attest-bench-%s" % uuid.uuid4().hex[:8]
    try:
        daemon.make_project("bench", ["TOKEN"], expected_uid=UID)
        cid = subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--user", str(UID), "--network", "none",
                              "-v", "%s:/run/remo-broker:ro" % os.path.join(daemon.run_dir, "projects", "bench"),
                              IMAGE, "sleep", "3600"], capture_output=True, text=True, check=True).stdout.strip()
        pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid], capture_output=True, text=True,
                                 check=True).stdout)
        times = {"uid only": [], "attested": []}
        for _round in range(args.rounds):
            for mode in times:
                if mode == "attested":
                    daemon.admin_ok("attest", name="bench", container_id=cid, pid=pid)
                else:
                    daemon.admin_ok("attest", name="bench", container_id=None)
                out = subprocess.run(["docker", "exec", cid, "python3", "-c", CYCLES, "/run/remo-broker/bench.sock",
                                      str(args.connections)], capture_output=True, text=True, check=True)
                times[mode].append(float(out.stdout))
        uid_only, attested = statistics.median(times["uid only"]), statistics.median(times["attested"])
        print("connections per run: %d, rounds: %d, kernel %s" % (args.connections, args.rounds, os.uname().release))
        print("connect+ping+close, uid only: %.1f us (runs: %s)" % (uid_only, ", ".join("%.1f" % t for t in times["uid only"])))
        print("connect+ping+close, attested: %.1f us (runs: %s)" % (attested, ", ".join("%.1f" % t for t in times["attested"])))
        print("ratio attested / uid only: %.2f" % (attested / uid_only))
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
