# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every module that talks to the remo-broker admin socket."""

    DOCUMENTATION = r"""
options:
  socket_path:
    description:
      - Path of the remo-broker admin socket on the managed host.
      - If not set, the value of the E(REMO_BROKER_SOCKET) environment variable is used,
        and if that is not set either, the daemon's default admin socket.
      - The user the module runs as must be able to connect to it; the installed daemon
        makes it C(0660) and owned by the C(remo-broker-admin) group, so use
        C(become) or a member of that group.
      - Set it once for a play with C(module_defaults) and the C(group/remo.broker.broker)
        action group.
    type: path
    default: /run/remo-broker/admin.sock
  timeout:
    description:
      - Seconds to wait for the daemon to accept the connection and to answer each request.
    type: float
    default: 5.0
notes:
  - The modules speak the remo-broker admin protocol (newline-delimited JSON over a Unix
    socket, protocol version 2) and need only the Python standard library on the managed host.
  - Errors reported by the daemon come back in RV(failure) with the daemon's C(code),
    C(message) and C(details); secret values never appear in them.
"""
