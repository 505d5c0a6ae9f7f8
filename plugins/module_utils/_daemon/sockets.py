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

import errno
import os
import socket
import stat
import struct

from ansible_collections.remo.broker.plugins.module_utils._daemon.process import log
from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_DIR_MODE, PROJECTS_DIR_MODE


def bind_unix(path, mode, uid=None, gid=None, refuse_live=False):
    """A listening, non-blocking AF_UNIX socket at ``path`` (a stale socket is replaced).

    ``uid``: the one other account allowed to connect (:func:`grant_connect`).
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
        chown(path, None, gid)
        grant_connect(path, uid, mode)
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


# POSIX ACL xattr (linux/posix_acl_xattr.h): version 2, then (tag u16, perm u16, id u32).
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def grant_connect(path, uid, mode):
    """Let ``uid`` connect to the socket at ``path`` without handing it the file.

    A POSIX ACL entry ``user:UID:rw`` needs no capability (the daemon owns the
    socket), so the unit keeps no CAP_CHOWN. Where the file system has no ACLs the
    socket is chowned to ``uid`` instead (root or CAP_CHOWN). The daemon still
    checks SO_PEERCRED on every connection.
    """
    if uid is None or uid == os.geteuid():
        try:
            os.removexattr(path, "system.posix_acl_access", follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
        return
    rw = 6
    acl = struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in (
        (_ACL_USER_OBJ, (mode >> 6) & 7, _ACL_UNDEFINED_ID),
        (_ACL_USER, rw, uid),
        (_ACL_GROUP_OBJ, (mode >> 3) & 7, _ACL_UNDEFINED_ID),
        (_ACL_MASK, rw | ((mode >> 3) & 7), _ACL_UNDEFINED_ID),
        (_ACL_OTHER, mode & 7, _ACL_UNDEFINED_ID)))
    try:
        os.setxattr(path, "system.posix_acl_access", acl, follow_symlinks=False)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
    chown(path, uid)


def chown(path, uid=None, gid=None):
    """chown when it changes something; a daemon without CAP_CHOWN logs and goes on."""
    if (uid is None or uid == os.geteuid()) and gid is None:
        return
    st = os.lstat(path)
    if (uid is None or uid == st.st_uid) and (gid is None or gid == st.st_gid):
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
