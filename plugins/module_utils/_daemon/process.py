# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Process plumbing of the daemon: the stderr log, sd_notify, hardening, heap trim."""

from __future__ import annotations

import os
import socket
import sys
import time

LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_threshold = [LOG_LEVELS["info"]]


def set_log_level(level):
    _threshold[0] = LOG_LEVELS[level]


def log(level, msg):
    """Lifecycle logging to stderr (journald under systemd).  Never pass values."""
    if LOG_LEVELS[level] >= _threshold[0]:
        try:
            sys.stderr.write("remo-broker[%d]: %s: %s\n" % (os.getpid(), level, msg))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def iso_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def sd_notify(message, env=None):
    """Send ``message`` to $NOTIFY_SOCKET (systemd Type=notify); False when unset/failed."""
    env = os.environ if env is None else env
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    elif addr[0] != "/":
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(addr)
        sock.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def harden_process():
    """No core dumps, no ptrace attach (PR_SET_DUMPABLE=0), RLIMIT_CORE=0."""
    result = {"dumpable": None, "rlimit_core": None}
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        result["rlimit_core"] = 0
    except (ImportError, OSError, ValueError):
        pass
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_dumpable = 4
        if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) == 0:
            result["dumpable"] = 0
    except (OSError, AttributeError):
        pass
    return result


def release_startup_memory():
    """Give the heap left over from starting up back to the OS (glibc only)."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
