# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures for the module tests: a real remo-broker daemon (tests/unit/broker_harness.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def daemon(broker_factory):
    """A fresh daemon per test."""
    return broker_factory()


@pytest.fixture
def conn(daemon):
    """Module arguments that point at the fixture daemon."""
    return {"socket_path": daemon.admin_socket, "timeout": 5.0}


@pytest.fixture
def traversable_daemon(broker_factory):
    """A daemon whose directories an unprivileged uid can traverse.

    Lets a permission test reach the socket itself, so the denial comes from the
    socket's mode (or from one directory the test locks), not from a parent directory.
    """
    broker = broker_factory()
    os.chmod(broker.base, 0o755)
    os.chmod(broker.run_dir, 0o755)
    return broker
