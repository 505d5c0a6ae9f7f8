# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures that start REAL daemon processes through the one harness (broker_harness.py).

``broker_factory(*serve_args, env=None, start=True, base=None, **daemon_kwargs)`` starts
a daemon with its own short-path dirs under /tmp (AF_UNIX paths are limited to 108
bytes); ``broker`` is one started with defaults.  At teardown every daemon is stopped
and every file it wrote (stderr, audit log, state) is checked for the planted canaries.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from ansible_collections.remo.broker.tests.unit.broker_harness import CANARIES, Daemon


@pytest.fixture
def broker_factory():
    daemons = []
    bases = []

    def make(*extra_args, env=None, start=True, base=None, **kwargs):
        if base is None:
            base = tempfile.mkdtemp(prefix="rb", dir="/tmp")
            bases.append(base)
        daemon = Daemon(base, extra_args, env, **kwargs)
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
    leaks = []
    for daemon in daemons:
        for path in daemon.written_files():
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            leaks.extend((path, canary) for canary in CANARIES if canary.encode() in data)
    for base in bases:
        shutil.rmtree(base, ignore_errors=True)
    assert not leaks, "canary values leaked into files: %r" % leaks


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
