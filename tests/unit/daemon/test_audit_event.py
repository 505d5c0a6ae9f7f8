# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The one audit event type, its one builder, and the writer's reading of it."""

from __future__ import annotations

import hashlib
import json
import mmap
import time

from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_event import AuditEvent, audit_event
from ansible_collections.remo.broker.plugins.module_utils._daemon.audit_writer import PAGE_SIZE, AuditFileWriter
from ansible_collections.remo.broker.plugins.module_utils._protocol import AUDIT_GENESIS


def test_builder_fills_every_field_in_order():
    t0 = time.perf_counter()
    before = time.time()
    event = AuditEvent(*audit_event("get", "demo", "ok", "allow", "TOKEN", (41, 1000), t0, {"n": 1}))
    assert before <= event.ts <= time.time()
    assert (event.event, event.project, event.name, event.decision, event.outcome) == ("get", "demo", "TOKEN", "allow", "ok")
    assert (event.peer_pid, event.peer_uid, event.extra) == (41, 1000, {"n": 1})
    assert event.latency_us >= 0
    assert AuditEvent(*audit_event("stop", None, "ok", None, None, (1, 0), 0)).latency_us == 0


def test_writer_formats_each_field_under_its_name(tmp_path):
    writer = AuditFileWriter(str(tmp_path / "audit.jsonl"), None, AUDIT_GENESIS, mmap.mmap(-1, PAGE_SIZE))
    fields = audit_event("get", "demo", "denied", "deny", "TOKEN", (41, 1000), time.perf_counter(), {"added": 2})
    writer.format_batch([fields])
    (line,) = writer.pending
    record = json.loads(line)
    event = AuditEvent(*fields)
    for name in ("event", "project", "name", "decision", "outcome", "peer_pid", "peer_uid", "latency_us"):
        assert record[name] == getattr(event, name), name
    assert record["added"] == 2 and record["prev"] == AUDIT_GENESIS
    writer.format_batch([fields])
    assert json.loads(writer.pending[1])["prev"] == hashlib.sha256(line).hexdigest()
