# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This file is PRIVATE to the collection.  It is not a public API: it can change at
# any time, without notice.  scripts/bundle_daemon.py also embeds it, as its own
# module, in the generated daemon roles/broker_install/files/remo_broker.py.

"""Every constant of the remo-broker wire protocol (protocol_version 2).

The single source of truth for the daemon, the socket client, the modules and the
manifest code (see docs/CONTRACTS.md and docs/protocol.md).  Stdlib only, no
module-level side effects.
"""

from __future__ import annotations

import re

PROTOCOL_VERSION = 2
# Must equal the `version` in galaxy.yml (a unit test compares them).
DAEMON_VERSION = "0.1.0"

# ---------------------------------------------------------------------------
# Default paths
# ---------------------------------------------------------------------------
DEFAULT_RUN_DIR = "/run/remo-broker"
DEFAULT_STATE_DIR = "/var/lib/remo-broker"
DEFAULT_AUDIT_LOG = "/var/log/remo-broker/audit.jsonl"
ADMIN_SOCKET_NAME = "admin.sock"
PROJECT_SOCKET_SUFFIX = ".sock"
# Per-project socket directories: RUN_DIR/projects/NAME/NAME.sock (docs/protocol.md).
PROJECTS_DIR_NAME = "projects"
REGISTRATIONS_FILE_NAME = "registrations.json"
DEFAULT_ADMIN_SOCKET = DEFAULT_RUN_DIR + "/" + ADMIN_SOCKET_NAME
# Environment variable the client CLI and the modules read for the socket path.
SOCKET_ENV_VAR = "REMO_BROKER_SOCKET"

# Socket / file modes
ADMIN_SOCKET_MODE = 0o660
PROJECT_SOCKET_MODE = 0o660
AUDIT_LOG_MODE = 0o640
STATE_FILE_MODE = 0o600
RUN_DIR_MODE = 0o755
PROJECTS_DIR_MODE = 0o755
# Owned by the daemon (it must replace the socket after a restart); others may only
# traverse it: the socket's own owner and mode decide who connects.
PROJECT_DIR_MODE = 0o755
STATE_DIR_MODE = 0o700
# The audit log's directory when the daemon creates it (the admin group may read the log).
AUDIT_DIR_MODE = 0o750

# ---------------------------------------------------------------------------
# Limits and timeouts
# ---------------------------------------------------------------------------
MAX_PROJECT_MESSAGE_BYTES = 65536
MAX_ADMIN_MESSAGE_BYTES = 1048576
# Largest reply a client accepts (a status of many projects can exceed a request cap).
MAX_REPLY_BYTES = 8 * 1048576
MAX_SECRETS = 10000

DEFAULT_CLIENT_TIMEOUT = 5.0          # client side: connect + reply
DEFAULT_SERVER_CLIENT_TIMEOUT = 10.0  # daemon side: max wait for a complete request line
DRAIN_TIMEOUT = 5.0                   # SIGTERM: time to finish in-flight requests
DEFAULT_RATE_LIMIT = 100.0            # requests/second per project; 0 disables
DEFAULT_RATE_BURST = 200
AUDIT_FLUSH_INTERVAL = 0.05           # seconds between audit batches
AUDIT_MAX_BUFFERED = 100000           # events kept in memory while the audit file fails
AUDIT_COALESCE_INTERVAL = 1.0         # seconds per summary line of one peer's repeated flood outcomes
AUDIT_CHECKPOINT_INTERVAL = 1.0       # seconds between chain checkpoints (seq, head) while lines are written
AUDIT_STALL_SECONDS = 10.0            # a writer that consumes nothing this long with events waiting is stalled
# Where `serve` anchors the chain and `audit verify` reads the anchors (docs/daemon.md#audit-log).
AUDIT_CHECKPOINT_STORES = ("auto", "journal", "none", "file:PATH")
JOURNAL_SOCKET = "/run/systemd/journal/socket"
JOURNAL_IDENTIFIER = "remo-broker-audit"

# Connection limits and per-connection memory (docs/daemon.md#resource-limits).
DEFAULT_MAX_PROJECT_CONNECTIONS = 256  # open connections per project socket
DEFAULT_MAX_PEER_CONNECTIONS = 64      # open connections per client process (SO_PEERCRED pid)
MAX_ADMIN_CONNECTIONS = 32             # open admin connections; their descriptors are always kept free
PROJECT_CONNECTION_FLOOR = 8           # connections each project can open whatever the others hold
FD_RESERVE_INTERNAL = 64               # stdio, epoll, audit file and pipe, state and manifest files
ACCEPT_BATCH = 64                      # connections one socket accepts per event-loop pass
LISTEN_BACKLOG = 1024                  # kernel queue of not yet accepted connections
# Descriptors the daemon never gives to project connections: internal use, the admin
# connections, and connections accepted in a burst before they are counted and refused.
FD_RESERVE = FD_RESERVE_INTERNAL + MAX_ADMIN_CONNECTIONS + 4 * ACCEPT_BATCH
LIMIT_REPORT_INTERVAL = 10.0           # seconds between refusal / accept-failure summaries
OUTPUT_HIGH_WATER = 65536              # unsent reply bytes that stop reading from a connection
OUTPUT_LOW_WATER = 16384               # ...and that resume it
REPLY_BATCH_BYTES = 262144             # replies to one read sent in one write; past it the output is checked
PROJECT_OUTPUT_HARD_LIMIT = 524288     # unsent bytes that close a project connection
# Unsent bytes that close an admin connection: room for the largest reply a client takes.
ADMIN_OUTPUT_HARD_LIMIT = MAX_REPLY_BYTES + OUTPUT_HIGH_WATER + REPLY_BATCH_BYTES
READ_CHUNK_BYTES = 262144              # asyncio's largest single read
PROJECT_TURN_REQUESTS = 32             # requests one project has answered per event-loop pass (project_turns.py)
RATE_LIMITED_TURN_COST = 4             # share a request costs while its project is out of rate-limit tokens

# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------
PROJECT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9_]{1,128}$"
PROJECT_NAME_RE = re.compile(PROJECT_NAME_PATTERN)
SECRET_NAME_RE = re.compile(SECRET_NAME_PATTERN)
# Project names that would collide with daemon files in RUN_DIR.
RESERVED_PROJECT_NAMES = frozenset(("admin",))
# Push sources (docs/protocol.md "Push sources"): a push without one goes to DEFAULT_SOURCE.
SOURCE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
SOURCE_NAME_RE = re.compile(SOURCE_NAME_PATTERN)
DEFAULT_SOURCE = "default"
MAX_SOURCES = 16

# ---------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------
OP_STATUS = "status"
OP_REGISTER = "register"
OP_UNREGISTER = "unregister"
OP_RELOAD = "reload"
OP_ATTEST = "attest"
OP_PUSH_CREDS = "push-creds"
OP_DIFF_CREDS = "diff-creds"
OP_CLEAR_CREDS = "clear-creds"
OP_GET = "get"
OP_PING = "ping"
OP_INFO = "info"
OP_WATCH = "watch"

ADMIN_OPS = frozenset((OP_STATUS, OP_REGISTER, OP_UNREGISTER, OP_RELOAD, OP_ATTEST, OP_PUSH_CREDS,
                       OP_DIFF_CREDS, OP_CLEAR_CREDS, OP_PING))
PROJECT_OPS = frozenset((OP_GET, OP_PING, OP_INFO, OP_WATCH))

# ---------------------------------------------------------------------------
# Error codes
# ---------------------------------------------------------------------------
E_PROTOCOL_ERROR = "protocol_error"
E_INVALID_PAYLOAD = "invalid_payload"
E_PAYLOAD_TOO_LARGE = "payload_too_large"
E_MANIFEST_INVALID = "manifest_invalid"
E_MANIFEST_NOT_FOUND = "manifest_not_found"
E_NOT_REGISTERED = "not_registered"
E_CONFLICT = "conflict"
E_INTERNAL_ERROR = "internal_error"
E_DENIED = "denied"
E_NOT_FOUND = "not_found"
E_RATE_LIMITED = "rate_limited"
E_PEER_UNEXPECTED = "peer_unexpected"
E_TOO_MANY_CONNECTIONS = "too_many_connections"
E_AUDIT_UNAVAILABLE = "audit_unavailable"
# Client side only: never sent by the daemon.
E_CONNECTION_ERROR = "connection_error"

ADMIN_ERROR_CODES = frozenset((E_PROTOCOL_ERROR, E_INVALID_PAYLOAD, E_PAYLOAD_TOO_LARGE,
                               E_MANIFEST_INVALID, E_MANIFEST_NOT_FOUND, E_NOT_REGISTERED,
                               E_CONFLICT, E_INTERNAL_ERROR, E_TOO_MANY_CONNECTIONS))
PROJECT_ERROR_CODES = frozenset((E_DENIED, E_NOT_FOUND, E_RATE_LIMITED, E_PROTOCOL_ERROR,
                                 E_INTERNAL_ERROR, E_PEER_UNEXPECTED, E_TOO_MANY_CONNECTIONS,
                                 E_AUDIT_UNAVAILABLE))
ERROR_CODES = ADMIN_ERROR_CODES | PROJECT_ERROR_CODES

# Audit decisions / outcomes
DECISION_ALLOW = "allow"
DECISION_DENY = "deny"
AUDIT_GENESIS = "0" * 64
# Per-project counters reported by `status`.
COUNTER_NAMES = ("allowed", "denied", "not_found", "rate_limited", "peer_unexpected", "protocol_error",
                 "connections_refused", "audit_unavailable")

# ---------------------------------------------------------------------------
# CLI exit codes (remo_broker.py client commands)
# ---------------------------------------------------------------------------
EXIT_OK = 0
EXIT_BROKER_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_MANIFEST_INVALID = 4
EXIT_AUDIT_VERIFY_FAILED = 5


def is_valid_project_name(name):
    """True when ``name`` is a usable project name (regex and not reserved)."""
    return isinstance(name, str) and PROJECT_NAME_RE.fullmatch(name) is not None and name not in RESERVED_PROJECT_NAMES


def is_valid_secret_name(name):
    """True when ``name`` matches SECRET_NAME_RE."""
    return isinstance(name, str) and SECRET_NAME_RE.fullmatch(name) is not None


def project_socket_path(run_dir, project):
    """Host-side path of the project socket of ``project`` (a symlink into its directory)."""
    return run_dir.rstrip("/") + "/" + project + PROJECT_SOCKET_SUFFIX


def project_socket_dir(run_dir, project):
    """The directory holding ``project``'s socket; it survives daemon restarts."""
    return run_dir.rstrip("/") + "/" + PROJECTS_DIR_NAME + "/" + project


def project_dir_socket_path(run_dir, project):
    """The socket itself, inside :func:`project_socket_dir`."""
    return project_socket_dir(run_dir, project) + "/" + project + PROJECT_SOCKET_SUFFIX


def admin_socket_path(run_dir):
    """Path of the admin socket in ``run_dir``."""
    return run_dir.rstrip("/") + "/" + ADMIN_SOCKET_NAME
