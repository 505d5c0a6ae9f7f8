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


def audit_verify(paths, checkpoints=None):
    """Check the chain of ``paths`` (oldest first, one chain) against ``checkpoints``.

    ``checkpoints``: [(seq, head, where)] from the checkpoint store (audit_checkpoint.py),
    or None when there is none.  Returns (ok, lines_checked, message).

    The chain: line 1 of the first file is seq 1 with the genesis ``prev``; every later
    line has the next seq and ``prev`` = sha256 of the line before.  A checkpoint (S, H)
    says line S hashed to H when it was written: the line at seq S must still hash to H,
    and the log must reach seq S.
    """
    anchors = {}
    for seq, head, where in checkpoints or ():
        if seq in anchors and anchors[seq][0] != head:
            return False, 0, "checkpoints disagree about seq %d (%s, %s): the checkpoint store was written by " \
                             "someone else too" % (seq, anchors[seq][1], where)
        anchors[seq] = (head, where)
    prev = AUDIT_GENESIS
    last_seq = 0
    n = 0
    for path in paths:
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            if anchors:
                continue        # the checkpoints below then say what is missing
            return False, 0, "cannot read %s: file not found" % path
        except OSError as exc:
            return False, n, "cannot read %s: %s" % (path, exc.strerror)
        with fh:
            for lineno, raw in enumerate(fh, 1):
                n += 1
                where = "%s line %d" % (path, lineno)
                line = raw.rstrip(b"\n")
                try:
                    ev = json.loads(line)
                except ValueError:
                    return False, n, "%s is not valid JSON" % where
                if not isinstance(ev, dict):
                    return False, n, "%s is not a JSON object" % where
                seq = ev.get("seq")
                if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                    return False, n, "%s has no sequence number (seq)" % where
                if seq != last_seq + 1:
                    if last_seq == 0:
                        return False, n, ("%s starts the chain at seq %d: lines 1..%d are not there (deleted, or "
                                          "rotated into an older file: give it first with another --audit-log)"
                                          % (where, seq, seq - 1))
                    return False, n, "%s has seq %d after seq %d: lines were removed or inserted" % (where, seq, last_seq)
                if ev.get("prev") != prev:
                    return False, n, ("%s: hash chain broken (prev does not match the line before); "
                                      "a line was removed, inserted or edited just before it" % where)
                prev = line_hash(line)
                last_seq = seq
                anchor = anchors.get(seq)
                if anchor is not None and anchor[0] != prev:
                    return False, n, ("%s (seq %d) does not match the checkpoint in %s: the log was rewritten at or "
                                      "before this line and the chain recomputed" % (where, seq, anchor[1]))
    beyond = [seq for seq in anchors if seq > last_seq]
    if beyond:
        top = max(beyond)
        return False, n, ("the log ends at seq %d but %s checkpointed seq %d: lines %d..%d were cut from the end"
                          % (last_seq, anchors[top][1], top, last_seq + 1, top))
    if checkpoints is None:
        return True, n, "%d lines verified (chain only: no checkpoint store)" % n
    return True, n, "%d lines verified, %d checkpoint(s) matched" % (n, len(anchors))
