# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run the stand-in by hand: python -m tests.hcloud_standin --token T --ssh-port NAME=PORT

Prints the endpoint to use as HCLOUD_ENDPOINT; Ctrl-C removes every container and
volume it made.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import tempfile

from .api import StandIn
from .machines import Machines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.hcloud_standin")
    parser.add_argument("--token", required=True, help="the bearer token clients must send")
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--image", default="remo-test/hcloud-server:bookworm", help="server container image")
    parser.add_argument("--ssh-port", action="append", default=[], metavar="NAME=PORT",
                        help="publish server NAME's sshd on 127.0.0.1:PORT (default: any free port)")
    args = parser.parse_args()
    ports = {name: int(port) for name, port in (item.split("=", 1) for item in args.ssh_port)}
    # Blocked, so sigwait receives them instead of the default handler killing us.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    with tempfile.TemporaryDirectory(prefix="hcloud-standin-") as state_dir:
        api = StandIn(args.token, Machines(args.image, f"hcloud-standin-{secrets.token_hex(3)}-", state_dir, ports), args.port).start()
        print(api.endpoint, flush=True)
        try:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            api.close()


if __name__ == "__main__":
    main()
