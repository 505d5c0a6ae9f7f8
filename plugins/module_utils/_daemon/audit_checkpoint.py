# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Checkpoints of the audit chain, (seq, head hash), kept OUTSIDE the audit log.

The writer process records one after its first write, then at most every
``AUDIT_CHECKPOINT_INTERVAL`` while lines are written, and at exit; ``audit verify``
compares the log with them (docs/daemon.md#audit-log says what that detects).

Stores (``--audit-checkpoint``):

* ``journal``: one entry per checkpoint sent to journald over its native datagram
  socket (fields REMO_AUDIT_LOG, REMO_AUDIT_SEQ, REMO_AUDIT_HEAD).  journald owns the
  journal files and stamps each entry with the sender's uid (``_UID``), so the daemon's
  account can add entries but not rewrite or remove old ones; verify trusts only
  entries sent by root or by the owner of the log (or its directory).
* ``file:PATH``: JSON lines appended to PATH.  Only as strong as the file's
  protection: whoever can write PATH can rewrite the anchors too (e.g. the daemon's
  account, unless root made the file append-only with ``chattr +a``).
* ``none``; ``auto`` is ``journal`` when the journal socket exists, else ``none``.
"""

from __future__ import annotations

import json
import os

from ansible_collections.remo.broker.plugins.module_utils._protocol import JOURNAL_IDENTIFIER, JOURNAL_SOCKET


def open_store(spec, journal_socket=JOURNAL_SOCKET):
    """The store named by ``spec`` (see the module docstring), or None; ValueError if bad."""
    if spec == "auto":
        spec = "journal" if os.path.exists(journal_socket) else "none"
    if spec == "none":
        return None
    if spec == "journal":
        return JournalStore(journal_socket)
    if spec.startswith("file:") and os.path.isabs(spec[5:]) and "\0" not in spec:
        return FileStore(spec[5:])
    raise ValueError("audit checkpoint store must be auto, journal, none or file:/ABSOLUTE/PATH, not %r" % spec)


class JournalStore:
    """Checkpoints as journald entries (native protocol, stdlib socket; read with journalctl)."""

    name = "journal"

    def __init__(self, socket_path=JOURNAL_SOCKET):
        self.socket_path = socket_path
        self._sock = None

    def record(self, log_path, seq, head):
        """Send one checkpoint entry; raises OSError."""
        import socket
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        fields = (("MESSAGE", "audit checkpoint seq=%d head=%s log=%s" % (seq, head, log_path)),
                  ("SYSLOG_IDENTIFIER", JOURNAL_IDENTIFIER), ("PRIORITY", "6"), ("REMO_AUDIT_LOG", log_path),
                  ("REMO_AUDIT_SEQ", str(seq)), ("REMO_AUDIT_HEAD", head))
        self._sock.sendto("".join("%s=%s\n" % field for field in fields).encode("utf-8", "surrogateescape"),
                          self.socket_path)

    def read(self, log_path):
        """[(seq, head, where)] of the trusted entries for ``log_path``; raises OSError."""
        import subprocess
        argv = ["journalctl", "--no-pager", "-o", "json", "SYSLOG_IDENTIFIER=" + JOURNAL_IDENTIFIER,
                "REMO_AUDIT_LOG=" + log_path] + ["_UID=%d" % uid for uid in sorted(_trusted_uids(log_path))]
        # The daemon's CLI (audit verify), not an Ansible module: no AnsibleModule.run_command here.
        res = subprocess.run(argv, capture_output=True, check=False, timeout=120)  # pylint: disable=ansible-bad-function
        if res.returncode != 0:
            raise OSError("journalctl failed (%d): %s" % (res.returncode, res.stderr.decode("utf-8", "replace").strip()))
        out = []
        for raw in res.stdout.splitlines():
            try:
                entry = json.loads(raw)
                out.append((int(entry["REMO_AUDIT_SEQ"]), str(entry["REMO_AUDIT_HEAD"]),
                            "journal entry at %s" % entry.get("__REALTIME_TIMESTAMP", "?")))
            except (ValueError, KeyError, TypeError):
                continue
        return out


class FileStore:
    """Checkpoints appended as JSON lines to a file (weaker than the journal: see above)."""

    def __init__(self, path):
        self.path = path
        self.name = "file:" + path
        self._fd = None

    def record(self, log_path, seq, head):
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.write(self._fd, json.dumps({"log": log_path, "seq": seq, "head": head}, separators=(",", ":")).encode() + b"\n")

    def read(self, log_path):
        out = []
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return out
        with fh:
            for n, raw in enumerate(fh, 1):
                try:
                    entry = json.loads(raw)
                    if entry.get("log") == log_path:
                        out.append((int(entry["seq"]), str(entry["head"]), "%s line %d" % (self.path, n)))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
        return out


def _trusted_uids(log_path):
    """Root and the accounts owning the log or its directory (the daemon's)."""
    uids = {0}
    for path in (log_path, os.path.dirname(log_path)):
        try:
            uids.add(os.stat(path).st_uid)
        except OSError:
            pass
    return uids
