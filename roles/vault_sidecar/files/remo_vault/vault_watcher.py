# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""remo-vault-watcher: keep the broker's copy of the vault's secrets current.

It pushes the full decrypted set to the broker's admin socket

* when it starts,
* after the store changes (inotify on the store's directory, debounced), and
* whenever the broker comes back from a restart: the admin socket's inode changed
  (a restarted broker binds a new socket), or the last attempt failed (it was down).

It never polls the broker: every admin request is an audit line, so an idle watcher
only stats the socket.

Everything it logs is a count, a name or an error that carries no value.  Memory is
bounded: one inotify read buffer, the store's own bounds, the last push's metadata.
"""

import os
import select
import signal
import sys
import time

import vault_broker
import vault_inotify
import vault_store

DEBOUNCE_SECONDS = float(os.environ.get("REMO_VAULT_DEBOUNCE", "0.1"))
# A steady stream of writes still gets pushed this long after its first change.
MAX_DEFER_SECONDS = 1.0
# How often the admin socket's inode is compared (one stat, nothing sent).
SOCKET_CHECK_SECONDS = 0.25
RETRY_MIN, RETRY_MAX = 0.25, 5.0
# A bind-mounted run directory that was deleted on the host (the broker's unit removed
# and recreated it) can never show the new socket: exit so Docker's restart policy
# starts the container again with a fresh mount.
EXIT_STALE_MOUNT = 75


def log(message):
    sys.stderr.write("remo-vault-watcher: %s\n" % message)
    sys.stderr.flush()


def socket_identity(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def mount_is_stale(path):
    try:
        return os.stat(os.path.dirname(path)).st_nlink == 0
    except OSError:
        return False


class Watcher:
    def __init__(self, socket_path=None, store=None):
        self.socket_path = socket_path or vault_broker.ADMIN_SOCKET
        self.store = store or vault_store.Store()
        self.pending = True           # push at start
        self.pushed_socket = None      # (dev, ino) of the socket the last push reached
        self.retry = RETRY_MIN
        self.next_attempt = 0.0
        self.last_error = None
        self.stop = False

    def push_now(self):
        """Decrypt and push; True on success.  Errors are logged once per new reason."""
        try:
            ident = socket_identity(self.socket_path)
            secrets = self.store.load().decrypt_all()
            reply = vault_broker.push(secrets, self.socket_path)
        except (vault_store.VaultError, vault_broker.BrokerUnavailable, vault_broker.BrokerRefused) as exc:
            reason = str(exc)
            if reason != self.last_error:
                log("push failed, will retry: %s" % reason)
                self.last_error = reason
            return False
        self.pushed_socket, self.last_error = ident, None
        log("pushed %d secret(s) (added %d, removed %d, changed %d)" % (
            reply.get("secret_count", len(secrets)), len(reply.get("added", [])),
            len(reply.get("removed", [])), len(reply.get("changed", []))))
        return True

    def broker_came_back(self):
        if socket_identity(self.socket_path) != self.pushed_socket:
            return "admin socket changed"
        return None

    def run(self):
        ino = vault_inotify.Inotify()
        ino.add_watch(self.store.dir, vault_inotify.IN_CLOSE_WRITE | vault_inotify.IN_MOVED_TO
                      | vault_inotify.IN_DELETE | vault_inotify.IN_CREATE)
        poller = select.poll()
        poller.register(ino.fd, select.POLLIN)
        changed_at = first_change = None
        log("watching %s, pushing to %s (source %r)" % (self.store.path, self.socket_path, vault_broker.PUSH_SOURCE))
        while not self.stop:
            if mount_is_stale(self.socket_path):
                log("%s was removed on the host; exiting so the container restarts with a fresh mount"
                    % os.path.dirname(self.socket_path))
                return EXIT_STALE_MOUNT
            now = time.monotonic()
            if changed_at is not None:
                due = min(changed_at + DEBOUNCE_SECONDS, first_change + MAX_DEFER_SECONDS)
                timeout = max(0.0, due - now)
            elif self.pending:
                timeout = max(0.0, self.next_attempt - now)
            else:
                timeout = SOCKET_CHECK_SECONDS
            if poller.poll(int(timeout * 1000) + 1):
                names = ino.read_names()
                if names & {vault_store.STORE_NAME, "*overflow*"}:
                    changed_at = time.monotonic()
                    first_change = first_change or changed_at
                if changed_at is None or time.monotonic() < first_change + MAX_DEFER_SECONDS:
                    continue
            now = time.monotonic()
            if changed_at is not None and (now >= changed_at + DEBOUNCE_SECONDS or now >= first_change + MAX_DEFER_SECONDS):
                changed_at = first_change = None
                self.pending, self.next_attempt = True, 0.0
            if not self.pending:
                reason = self.broker_came_back()
                if reason:
                    log("%s: pushing again" % reason)
                    self.pending, self.next_attempt = True, 0.0
            if self.pending and now >= self.next_attempt:
                if self.push_now():
                    self.pending, self.retry = False, RETRY_MIN
                else:
                    self.next_attempt = now + self.retry
                    self.retry = min(RETRY_MAX, self.retry * 2)
        return 0


def main():
    watcher = Watcher()

    def _stop(_signum, _frame):
        watcher.stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return watcher.run()
