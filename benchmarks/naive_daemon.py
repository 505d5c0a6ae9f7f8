# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Calibration row for benchmarks/bench_daemon.py: a "naive asyncio daemon".

A streams server (readline / write / drain per line) that ``json.loads`` each request,
looks the secret up, ``json.dumps`` the reply and writes one audit line per request
(``json.dumps`` + ``os.write``, no batching, no hash chain): a floor a daemon should beat by far (about
0.2 x the bare streams echo server at saturation here).

    python3 benchmarks/naive_daemon.py SOCKET_PATH AUDIT_LOG
"""

import asyncio
import json
import os
import signal
import sys
import time

SECRETS = {"TOKEN": "ghp_" + "x" * 36}


async def main(path, audit_path):
    fd = os.open(audit_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                req = json.loads(line)
                name = req.get("name")
                if req.get("op") == "get" and name in SECRETS:
                    reply = {"ok": True, "name": name, "value": SECRETS[name]}
                else:
                    reply = {"ok": False, "code": "not_found", "message": "no such secret"}
                os.write(fd, (json.dumps({"ts": time.time(), "event": "get", "name": name,
                                          "outcome": "ok" if reply["ok"] else "not_found"}) + "\n").encode())
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(handle, path, backlog=1024)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
