# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is not a public API: it can change at
# any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
# module, in the generated daemon roles/broker_install/files/remo_broker.py.

"""Open files and use directories only when no untrusted account can have swapped them.

A project's workspace is writable from inside its container, so anything under it can
be renamed, replaced or symlinked away from under a read-only mount.  The broker must
therefore read its allowlists, and keep its own state, only where every directory on
the way is owned by a trusted account and writable by nobody else.

The walk opens one component at a time, relative to the directory already opened
(``dir_fd``) and with ``O_NOFOLLOW``, so a symlink or a rename anywhere on the path
cannot redirect it between the check and the read.  Stdlib only, no side effects.
"""

from __future__ import annotations

import os
import stat

# A directory others may write is still safe when it is sticky and root-owned (/tmp):
# nobody but its owner can rename or delete an entry in it.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)


class UntrustedPathError(ValueError):
    """``path`` cannot be trusted; ``reason`` says why and ``fix`` how to repair it.

    Never carries file contents.
    """

    def __init__(self, path, reason, fix=None):
        self.path = path
        self.reason = reason
        self.fix = fix
        text = "%s: %s" % (path, reason)
        if fix:
            text += " (fix: %s)" % fix
        super().__init__(text)


def _owner_name(uid):
    try:
        import pwd  # pylint: disable=import-outside-toplevel
        return "%s (uid %s)" % (pwd.getpwuid(uid).pw_name, uid)
    except (ImportError, KeyError):
        return "uid %d" % uid


def _check_directory(path, info, trusted_uids, root_group_ok=False):
    """Raise unless the opened directory ``info`` is safe to resolve names in.

    ``root_group_ok``: a root-owned directory its group may write (not others) is accepted
    too, for parents such as Ubuntu's ``/var/log`` (``0775 root:syslog``).
    """
    if info.st_uid not in trusted_uids:
        raise UntrustedPathError(path, "directory is owned by %s, not by root or the broker's account"
                                 % _owner_name(info.st_uid), "chown root %s" % path)
    if info.st_mode & _WRITABLE_BY_OTHERS:
        if info.st_uid == 0 and (info.st_mode & stat.S_ISVTX or (root_group_ok and not info.st_mode & stat.S_IWOTH)):
            return
        raise UntrustedPathError(path, "directory is writable by group or others (mode %04o)"
                                 % stat.S_IMODE(info.st_mode), "chmod go-w %s" % path)


def _split(path):
    path = os.fspath(path)
    if not os.path.isabs(path):
        raise UntrustedPathError(path, "not an absolute path")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UntrustedPathError(path, "'..' is not allowed in a trusted path")
    return path, parts


def _open_parent(path, parts, trusted_uids, root_group_ok=False):
    """A dir fd for the parent of ``path`` after checking every directory from ``/``."""
    fd = os.open("/", _O_PATH | _O_DIRECTORY | _O_CLOEXEC)
    walked = "/"
    try:
        _check_directory(walked, os.fstat(fd), trusted_uids, root_group_ok)
        for part in parts[:-1]:
            walked = os.path.join(walked, part)
            try:
                child = os.open(part, _O_PATH | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                raise UntrustedPathError(walked, "does not exist") from None
            except OSError as exc:
                raise _link_or_error(fd, part, walked, exc) from None
            os.close(fd)
            fd = child
            _check_directory(walked, os.fstat(fd), trusted_uids, root_group_ok)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link_or_error(dir_fd, name, path, exc):
    """The error for a component that ``O_NOFOLLOW``/``O_DIRECTORY`` refused to open."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        return UntrustedPathError(path, "is a symbolic link; trusted paths never follow links",
                                  "replace the link with the real directory or file")
    if info is not None and not stat.S_ISDIR(info.st_mode):
        return UntrustedPathError(path, "is not a directory")
    if isinstance(exc, PermissionError):
        return UntrustedPathError(path, "permission denied: the broker cannot search this directory")
    return UntrustedPathError(path, "cannot open: %s" % (exc.strerror or exc))


def trusted_uids_for(*extra):
    """Root plus this process's effective uid plus ``extra`` (a frozenset)."""
    return frozenset((0, os.geteuid()) + tuple(uid for uid in extra if uid is not None))


def read_trusted_file(path, max_bytes, trusted_uids=None):
    """The bytes of ``path`` when it and every directory above it are trusted.

    Trusted means: reached without following a symlink; every directory owned by an
    account in ``trusted_uids`` (default: root and this process's account) and not
    writable by group or others (a root-owned sticky directory such as /tmp is fine);
    the file itself regular, owned by a trusted account, not writable by group or
    others, and at most ``max_bytes`` long.  Raises :class:`UntrustedPathError` with
    the failing path, the reason and the fix.
    """
    trusted_uids = trusted_uids_for() if trusted_uids is None else frozenset(trusted_uids)
    path, parts = _split(path)
    if not parts:
        raise UntrustedPathError(path, "is a directory, not a file")
    parent = _open_parent(path, parts, trusted_uids)
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            raise UntrustedPathError(path, "not found") from None
        except PermissionError:
            raise UntrustedPathError(path, "permission denied: the broker cannot read this file") from None
        except OSError as exc:
            raise _link_or_error(parent, parts[-1], path, exc) from None
    finally:
        os.close(parent)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedPathError(path, "is a directory, not a file" if stat.S_ISDIR(info.st_mode)
                                     else "not a regular file")
        if info.st_uid not in trusted_uids:
            raise UntrustedPathError(path, "file is owned by %s, not by root or the broker's account"
                                     % _owner_name(info.st_uid), "install an approved copy owned by root")
        if info.st_mode & _WRITABLE_BY_OTHERS:
            raise UntrustedPathError(path, "file is writable by group or others (mode %04o)"
                                     % stat.S_IMODE(info.st_mode), "chmod go-w %s" % path)
        if info.st_size > max_bytes:
            raise UntrustedPathError(path, "larger than %d bytes" % max_bytes)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UntrustedPathError(path, "larger than %d bytes" % max_bytes)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_private_directory(path, owner_uid, label="directory", root_group_parents=False):
    """Raise unless ``path`` is a real directory owned by ``owner_uid`` that nobody else can write.

    Every directory above it must be owned by root or ``owner_uid`` and not writable by
    others (a root-owned sticky directory such as /tmp is fine; with ``root_group_parents``
    also a root-owned one only its group may write).  ``label`` names the directory's role
    in the message ("state directory", ...).
    """
    path, parts = _split(path)
    trusted = frozenset((0, owner_uid))
    try:
        parent = _open_parent(path, parts, trusted, root_group_parents) if parts else None
    except UntrustedPathError as exc:
        raise UntrustedPathError(exc.path, "%s %s: %s" % (label, path, exc.reason), exc.fix) from None
    try:
        if parent is None:
            info = os.lstat("/")
        else:
            try:
                info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                raise UntrustedPathError(path, "%s does not exist" % label) from None
    finally:
        if parent is not None:
            os.close(parent)
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedPathError(path, "%s is a symbolic link" % label, "replace it with a real directory")
    if not stat.S_ISDIR(info.st_mode):
        raise UntrustedPathError(path, "%s is not a directory" % label)
    if info.st_uid != owner_uid:
        raise UntrustedPathError(path, "%s is owned by %s, expected %s" % (
            label, _owner_name(info.st_uid), _owner_name(owner_uid)), "chown %d %s" % (owner_uid, path))
    if info.st_mode & _WRITABLE_BY_OTHERS:
        raise UntrustedPathError(path, "%s is writable by group or others (mode %04o)" % (
            label, stat.S_IMODE(info.st_mode)), "chmod go-w %s" % path)
