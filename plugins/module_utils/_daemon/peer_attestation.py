# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""Container attestation: is a project-socket peer a process of the project's container?

Every devcontainer on an instance runs as the same uid, so ``SO_PEERCRED`` cannot tell
one project's container from another's or from the user's own shell.  After
``devcontainer up`` the launcher sends ``attest`` with the container's id and its main
pid; the broker reads that pid's ``/proc/PID/cgroup`` and keeps the container's cgroup
(the path up to the component that names the id: ``/docker/ID`` with Docker's cgroupfs
driver, ``.../docker-ID.scope`` with its systemd driver; cgroup v1 or v2).  A peer is in
the container when its cgroup, in the same hierarchy, is that path or below it.
Paths are read in the broker's own cgroup namespace, so a peer cannot rename them.

Pid reuse: the peer's pid comes from ``SO_PEERCRED`` (the process that called
``connect``).  The broker takes a pidfd of that process (``SO_PEERPIDFD``, Linux 6.5;
``pidfd_open`` of the pid before) BEFORE it reads the cgroup, and checks the pidfd's
process is still alive AFTER: a live process keeps its pid, so the cgroup read was its
own.  See docs/devcontainer.md for what this does and does not stop.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket

from ansible_collections.remo.broker.plugins.module_utils._daemon.replies import err
from ansible_collections.remo.broker.plugins.module_utils._protocol import E_PEER_UNEXPECTED

# asm-generic value (x86, arm, riscv, ...); Python defines the name only from 3.13.
SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
CONTAINER_ID_RE = re.compile(r"[0-9a-f]{64}")
# Hierarchies in order of preference: the cgroup v2 tree, then systemd's v1 tree.
_PREFERRED_KEYS = ("", "name=systemd")
NOT_IN_CONTAINER_REPLY = err(E_PEER_UNEXPECTED, "peer is not a process of the container attested for this project socket")


class AttestationError(Exception):
    """The attest request names a pid that is not in the container it claims."""


def read_cgroups(pid):
    """{controllers: path} of ``pid`` from /proc/PID/cgroup ("" is the cgroup v2 tree)."""
    with open("/proc/%d/cgroup" % pid, "rb") as handle:
        data = handle.read(65536).decode("utf-8", "surrogateescape")
    paths = {}
    for line in data.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    return paths


def _container_prefix(path, container_id):
    """The part of ``path`` up to the component that names the container, or None."""
    components = path.split("/")
    for i, part in enumerate(components):
        if part in (container_id, "docker-%s.scope" % container_id):
            return "/".join(components[:i + 1])
    return None


def container_cgroup(pid, container_id):
    """(hierarchy, cgroup path) of the container ``container_id`` whose process ``pid`` is."""
    try:
        paths = read_cgroups(pid)
    except OSError as exc:
        raise AttestationError("cannot read the cgroup of pid %s: %s" % (pid, exc.strerror or type(exc).__name__)) from None
    keys = [k for k in _PREFERRED_KEYS if k in paths] + sorted(k for k in paths if k not in _PREFERRED_KEYS)
    for key in keys:
        prefix = _container_prefix(paths[key], container_id)
        if prefix is not None:
            return key, prefix
    raise AttestationError("pid %s is not a process of container %s (its cgroup names another container or none)"
                           % (pid, container_id))


def _peer_pidfd(sock, pid):
    """A pidfd of the connecting process, or None when the kernel cannot give one."""
    try:
        return sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError as exc:
        if exc.errno not in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP):
            return None      # ESRCH: the peer is gone, and its pid may name another process already
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _alive(pidfd):
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except PermissionError:
        return True      # another user's live process
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def peer_in_container(sock, pid, attestation):
    """True when the peer ``pid`` on ``sock`` is a process of the attested container."""
    if not pid or pid < 0:
        return False
    pidfd = _peer_pidfd(sock, pid)
    if pidfd is None:
        return False
    try:
        try:
            path = read_cgroups(pid).get(attestation["hierarchy"])
        except OSError:
            return False     # gone, or hidden from the broker (ProtectProc=invisible)
        if not _alive(pidfd):
            return False     # exited: the pid may already name another process
    finally:
        os.close(pidfd)
    prefix = attestation["cgroup"]
    return path is not None and (path == prefix or path.startswith(prefix + "/"))


def attestation_record(container_id, pid):
    """The attestation stored for a project (and in the registrations file)."""
    hierarchy, cgroup = container_cgroup(pid, container_id)
    return {"container_id": container_id, "hierarchy": hierarchy, "cgroup": cgroup}


# Matches no peer (a cgroup path never holds a NUL byte): a damaged record fails closed.
REFUSE_ALL = {"container_id": None, "hierarchy": "", "cgroup": "\0"}


def restored_record(entry):
    """The attestation of a registrations-file entry: None when it has none, REFUSE_ALL when damaged."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        return REFUSE_ALL
    cid, hierarchy, cgroup = entry.get("container_id"), entry.get("hierarchy"), entry.get("cgroup")
    if not (isinstance(cid, str) and CONTAINER_ID_RE.fullmatch(cid) and isinstance(hierarchy, str)
            and isinstance(cgroup, str) and _container_prefix(cgroup, cid) == cgroup):
        return REFUSE_ALL
    return {"container_id": cid, "hierarchy": hierarchy, "cgroup": cgroup}
