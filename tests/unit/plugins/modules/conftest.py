# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures for the module tests: a real remo-broker daemon on real sockets."""

from __future__ import annotations

import os

import pytest

from ansible_collections.remo.broker.tests.unit.plugins.modules.broker_daemon import (
    DAEMON,
    Daemon,
)


@pytest.fixture
def daemon(tmp_path):
    """A fresh daemon per test (its state dir and audit log live under ``tmp_path``)."""
    if not os.path.exists(DAEMON):
        pytest.fail("the bundled daemon %s is missing" % DAEMON)
    broker = Daemon(tmp_path / "broker").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def conn(daemon):
    """Module arguments that point at the fixture daemon."""
    return {"socket_path": daemon.admin_socket, "timeout": 5.0}


@pytest.fixture
def traversable_daemon():
    """A daemon whose directories an unprivileged uid can traverse (pytest's tmp is 0700).

    Lets a permission test reach the socket itself, so the denial comes from the
    socket's mode (or from one directory the test locks), not from pytest's tmp root.
    """
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="remo-broker-perm-")
    os.chmod(base, 0o755)
    broker = Daemon(base)
    try:
        broker.start()
        os.chmod(broker.run_dir, 0o755)
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
