"""Fixtures that start REAL daemon processes (see daemon_helpers.py).

``broker_factory(*serve_args)`` starts ``remo_broker.py serve`` with its own run dir,
state dir and audit log; ``broker`` is one started with defaults.  At teardown every
daemon is stopped and every file it wrote (stdout, stderr, audit log, state) is
checked for the planted canary values.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from daemon_helpers import CANARIES, Daemon  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def broker_factory():
    daemons = []
    bases = []

    def make(*extra_args, env=None, start=True, base=None):
        if base is None:
            base = tempfile.mkdtemp(prefix="rb", dir="/tmp")
            bases.append(base)
        daemon = Daemon(base, extra_args, env)
        daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make
    for daemon in daemons:
        try:
            daemon.stop()
        except Exception:  # pylint: disable=broad-except
            pass
    # No canary value in any file a daemon wrote (stdout, stderr, audit, state).
    leaks = []
    for daemon in daemons:
        for path in daemon.written_files():
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            for canary in CANARIES:
                if canary.encode() in data:
                    leaks.append((path, canary))
    for base in bases:
        shutil.rmtree(base, ignore_errors=True)
    assert not leaks, "canary values leaked into files: %r" % leaks


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
