# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is part of the remo-broker daemon,
# generated into roles/broker_install/files/remo_broker.py by scripts/bundle_daemon.py.

"""The daemon's Unix sockets and the per-project socket directories (docs/protocol.md).

A project's socket lives in ``RUN_DIR/projects/NAME/NAME.sock``; the directory keeps
its identity across daemon restarts (it is reused, never recreated), so a container
that bind-mounts it sees the new socket after a restart.  ``RUN_DIR/NAME.sock`` is a
symlink to the socket for host-side tools.
"""

from __future__ import annotations

import os
import socket
import stat

from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_DIR_MODE, PROJECTS_DIR_MODE


def bind_unix(path, mode, uid=None, gid=None, refuse_live=False):
    """A listening, non-blocking AF_UNIX socket at ``path`` (a stale socket is replaced).

    ``refuse_live``: raise OSError when another process still answers on ``path``.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError("refusing to replace non-socket %s" % path)
        if refuse_live and _answers(path):
            raise OSError("another remo-broker is serving %s" % path)
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        chown(path, uid, gid)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _answers(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def chown(path, uid=None, gid=None):
    """chown when it changes something; a daemon without CAP_CHOWN logs and goes on."""
    if (uid is None or uid == os.geteuid()) and gid is None:
        return
    try:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
    except PermissionError:
        log("warning", "cannot chown %s (needs root or CAP_CHOWN)" % path)


def ensure_dir(path, mode):
    """Create ``path`` or reuse it (same inode), owned by the daemon with ``mode``.

    Refuses anything but a real directory.  A directory someone else created is taken
    over (chown needs root or CAP_CHOWN): the daemon must be able to replace the socket
    in it after every restart.
    """
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError("refusing to use %s: not a directory" % path)
    if st.st_uid != os.geteuid():
        os.chown(path, os.geteuid(), -1, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def open_project_dir(run_dir, project_dir):
    """RUN_DIR/projects/ and the project's own directory, both reused when present."""
    ensure_dir(os.path.dirname(project_dir), PROJECTS_DIR_MODE)
    ensure_dir(project_dir, PROJECT_DIR_MODE)


def link_socket(link, target):
    """Point the host-side path ``link`` at ``target`` (replaces a stale socket or link)."""
    try:
        st = os.lstat(link)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode) and os.readlink(link) == target:
            return
        if not (stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
            raise OSError("refusing to replace %s: not a socket or symlink" % link)
        os.unlink(link)
    os.symlink(target, link)


def remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass
