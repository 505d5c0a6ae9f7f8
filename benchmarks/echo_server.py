# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Baseline for benchmarks/bench_daemon.py: a bare asyncio Unix-socket line echo server.

It does the least a line-oriented asyncio server can do and has the same I/O shape as
the daemon (an ``asyncio.Protocol``; every complete line of one read is answered, all
answers of that read go out in ONE ``transport.write``), so the daemon's numbers can be
read as a ratio to "asyncio + the kernel" on the same machine in the same run.

    python3 benchmarks/echo_server.py SOCKET_PATH
"""

import asyncio
import os
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


async def main(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(Echo, path, backlog=1024)
    stop = loop.create_future()
    import signal
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    loop.add_signal_handler(signal.SIGINT, stop.set_result, None)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
