# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The audit log file: its hash chain, the torn-tail repair at start, `audit verify`."""

from __future__ import annotations

import hashlib
import json
import os
import stat

from ansible_collections.remo.broker.plugins.module_utils._protocol import AUDIT_GENESIS


def line_hash(line):
    """The chain link of one line (bytes without the newline)."""
    return hashlib.sha256(line).hexdigest()


def read_last_line(path):
    """Last complete line of ``path`` (bytes without newline) or None."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                return None
            data = b""
            pos = st.st_size
            while pos > 0:
                step = min(65536, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
                if b"\n" in data.rstrip(b"\n") or pos == 0:
                    break
            stripped = data.rstrip(b"\n")
            if not stripped:
                return None
            return stripped.rsplit(b"\n", 1)[-1]
    except OSError:
        return None


def truncate_torn_tail(path):
    """Cut an incomplete last line (a crash mid-write) so the chain resumes cleanly.

    Returns the number of bytes removed (0 when the file ends with a newline, is empty,
    missing or not a regular file).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return 0
        size = st.st_size
        if os.pread(fd, 1, size - 1) == b"\n":
            return 0
        pos = size
        keep = 0
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            chunk = os.pread(fd, step, pos)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = pos + idx + 1
                break
        os.ftruncate(fd, keep)
        return size - keep
    except OSError:
        return 0
    finally:
        os.close(fd)


def audit_verify(path):
    """Check the hash chain of ``path``: (ok, lines_checked, message)."""
    prev = AUDIT_GENESIS
    n = 0
    try:
        fh = open(path, "rb")
    except OSError as exc:
        return False, 0, "cannot read %s: %s" % (path, exc.strerror)
    with fh:
        for n, raw in enumerate(fh, 1):
            line = raw.rstrip(b"\n")
            try:
                ev = json.loads(line)
            except ValueError:
                return False, n, "line %d is not valid JSON" % n
            if not isinstance(ev, dict):
                return False, n, "line %d is not a JSON object" % n
            got = ev.get("prev")
            if n == 1 and got != prev and isinstance(got, str) and len(got) == 64:
                # The file may start mid-chain (rotated); accept its first link.
                prev = got
            if got != prev:
                return False, n, ("line %d: hash chain broken (prev does not match line %d); "
                                  "a line was removed, inserted or edited at or before line %d" % (n, n - 1, n - 1 if n > 1 else 1))
            prev = line_hash(line)
    return True, n, "%d lines verified" % n
