# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Baselines for benchmarks/bench_daemon.py: bare asyncio Unix-socket line echo servers.

``--mode streams`` (the calibration, and the baseline the targets are judged
against): the canonical asyncio echo server, ``asyncio.start_unix_server`` with
``reader.readline()``, ``writer.write(line)`` and ``await writer.drain()`` per line.

``--mode protocol`` (a stricter floor, shown for context): an ``asyncio.Protocol`` with
the daemon's I/O shape: every complete line of one read is answered and all answers of
that read go out in ONE ``transport.write``.  It does the least a line-oriented asyncio
server can do.

    python3 benchmarks/echo_server.py [--mode streams|protocol] SOCKET_PATH
"""

import argparse
import asyncio
import os
import signal
import sys


class Echo(asyncio.Protocol):
    __slots__ = ("transport", "buf")

    def __init__(self):
        self.transport = None
        self.buf = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        out = []
        for line in lines:          # per line, as the daemon does: no whole-chunk shortcut
            out.append(line + b"\n")
        if out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def eof_received(self):
        return False


async def handle(reader, writer):
    """The canonical streams echo: one readline, one write, one drain per line."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(path, mode):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    loop = asyncio.get_running_loop()
    if mode == "streams":
        server = await asyncio.start_unix_server(handle, path, backlog=1024)
    else:
        server = await loop.create_unix_server(Echo, path, backlog=1024)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    async with server:
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--mode", choices=("streams", "protocol"), default="streams")
    parser.add_argument("path")
    opts = parser.parse_args()
    asyncio.run(main(opts.path, opts.mode))
