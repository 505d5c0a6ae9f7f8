# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the collection: this file is not a public API. It may change in any
# release without notice; do not import it from outside remo.broker.

"""Plumbing shared by the remo.broker modules.

* :func:`broker_argument_spec` / :func:`merge_argument_spec` add the connection
  options documented once in ``doc_fragments/broker.py`` to a module's own spec.
* :class:`BrokerModule` wraps an ``AnsibleModule``: it builds the socket client and
  turns every ``BrokerError`` into one ``fail_json(msg, failure={code, message,
  details})``, with a plain-language hint for the connection failures people hit
  most (daemon not running, wrong path, no permission).

Nothing here ever puts a request payload into a message: the payloads of
``push-creds`` and ``diff-creds`` are secret values.
"""

from __future__ import annotations

import copy
import errno
import os

from ansible.module_utils.basic import env_fallback

from ansible_collections.remo.broker.plugins.module_utils._broker_client import (
    BrokerClient,
    BrokerConnectionError,
    BrokerError,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DEFAULT_ADMIN_SOCKET,
    DEFAULT_CLIENT_TIMEOUT,
    E_CONNECTION_ERROR,
    E_INTERNAL_ERROR,
    E_PAYLOAD_TOO_LARGE,
    MAX_ADMIN_MESSAGE_BYTES,
    SOCKET_ENV_VAR,
)


def broker_argument_spec():
    """Connection options shared by every broker module (doc fragment ``remo.broker.broker``)."""
    return dict(
        socket_path=dict(
            type="path",
            default=DEFAULT_ADMIN_SOCKET,
            fallback=(env_fallback, [SOCKET_ENV_VAR]),
        ),
        timeout=dict(type="float", default=DEFAULT_CLIENT_TIMEOUT),
    )


def merge_argument_spec(spec=None, **kwargs):
    """Return the shared connection options merged with a module's own ``spec``.

    Module options win on a name clash, so a module can narrow a shared option.
    ``kwargs`` are merged last (handy for one-off options in tests).
    """
    merged = broker_argument_spec()
    merged.update(copy.deepcopy(spec or {}))
    merged.update(kwargs)
    return merged


def _connection_advice(socket_path, error):
    """What to do about a failed connect, based on errno and what is on disk."""
    details = getattr(error, "details", None) or {}
    err_no = details.get("errno")
    lowered = ("%s" % getattr(error, "message", error)).lower()
    if err_no in (errno.EACCES, errno.EPERM) or "permission denied" in lowered:
        return "run the task as root (become: true) or as a member of the admin socket's group"
    if "timed out" in lowered:
        return "check the daemon's health (systemctl status remo-broker), or raise the timeout option"
    where = "set the socket_path option or the %s environment variable" % SOCKET_ENV_VAR
    if not os.path.exists(socket_path):
        return "%s does not exist: start remo-broker, or %s" % (socket_path, where)
    return "start remo-broker, or %s" % where


def failure_dict(error):
    """The ``failure`` return value for a ``BrokerError``: code, message and details."""
    return dict(
        code=getattr(error, "code", None) or E_INTERNAL_ERROR,
        message="%s" % (getattr(error, "message", None) or error),
        details=dict(getattr(error, "details", None) or {}),
    )


class BrokerModule:
    """Thin helper around an ``AnsibleModule`` whose spec came from :func:`merge_argument_spec`."""

    def __init__(self, module):
        self.module = module
        self._client = None

    @property
    def socket_path(self):
        return self.module.params["socket_path"]

    @property
    def client(self):
        if self._client is None:
            self._client = BrokerClient(self.socket_path, timeout=self.module.params["timeout"])
        return self._client

    def request(self, op, what=None, **fields):
        """Send one admin request; on error fail the module (never returns on failure).

        ``what`` is a short human description of the step ("checking which secrets differ")
        used as the message prefix. Only the daemon's code, message and details are
        reported; the request fields are never echoed.
        """
        try:
            reply = self.client.request(op, **fields)
        except BrokerError as exc:  # BrokerConnectionError included
            self.fail_broker(exc, what=what or op)
        reply = dict(reply or {})
        reply.pop("ok", None)
        return reply

    def fail_broker(self, error, what=None, **result):
        """``fail_json`` for a ``BrokerError``: ``msg`` plus ``failure={code, message, details}``."""
        failure = failure_dict(error)
        if isinstance(error, BrokerConnectionError) or failure["code"] == E_CONNECTION_ERROR:
            msg = "%s (%s)" % (failure["message"], _connection_advice(self.socket_path, error))
        else:
            msg = "remo-broker refused %s: %s: %s" % (what or "the request", failure["code"], failure["message"])
            if failure["code"] == E_PAYLOAD_TOO_LARGE:
                msg += " (the admin socket accepts messages of at most %d bytes, 1 MiB)" % MAX_ADMIN_MESSAGE_BYTES
        result.setdefault("socket_path", self.socket_path)
        self.module.fail_json(msg=msg, failure=failure, **result)
