#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: remo_broker_info
short_description: Report the state of the remo-broker daemon
version_added: 0.1.0
description:
  - Asks the remo-broker daemon on the managed host for its C(status) over the admin
    socket and returns it, for use with M(ansible.builtin.assert) or M(ansible.builtin.debug).
  - Reports versions, uptime, how many secrets the daemon holds and when they were
    loaded, every registered project with its allowlist (secret names) and request
    counters, and the health of the audit log.
  - Warns when the audit log cannot be written, since the daemon then refuses to serve
    secrets (or, with C(--audit-fail-open), serves them unrecorded).
  - Never changes anything and never returns secret values; the daemon has no request
    that would return one on the admin socket.
author:
  - remo.broker contributors (@remo-broker)
extends_documentation_fragment:
  - remo.broker.broker
  - remo.broker.attributes
  - remo.broker.attributes.actiongroup_broker
  - remo.broker.attributes.info_module
options: {}
seealso:
  - module: remo.broker.remo_broker_push
  - module: remo.broker.remo_manifest
  - plugin: remo.broker.fnox
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Read the broker status
  remo.broker.remo_broker_info:
  become: true
  register: broker

- name: The broker speaks protocol 2 and holds the pushed secrets
  ansible.builtin.assert:
    that:
      - broker.status.protocol_version == 2
      - broker.status.secret_count > 0
      - broker.status.audit.healthy

- name: The project myrepo is registered and may read GITHUB_TOKEN
  ansible.builtin.assert:
    that:
      - "'GITHUB_TOKEN' in (broker.status.projects | selectattr('name', '==', 'myrepo') | first).allowlist"

- name: Talk to a broker with a non-default run directory
  remo.broker.remo_broker_info:
    socket_path: /tmp/remo-broker-test/admin.sock
    timeout: 2
"""

RETURN = r"""
status:
  description:
    - The daemon's C(status) reply, without the protocol's C(ok) flag.
  returned: success
  type: dict
  contains:
    protocol_version:
      description: Admin protocol version spoken by the daemon; V(2) for this collection.
      type: int
      sample: 2
    daemon_version:
      description: Version of the running daemon.
      type: str
      sample: 0.1.0
    uptime_seconds:
      description: Seconds since the daemon started.
      type: float
      sample: 3612.5
    secret_count:
      description: Number of secret names the daemon serves (the union of every push source).
      type: int
      sample: 4
    secrets_loaded_at:
      description: When a source last pushed the secrets it holds now (ISO-8601, UTC), or V(null) if none holds any.
      type: str
      sample: "2026-06-01T09:30:00Z"
    sources:
      description:
        - The push sources that hold secrets, in precedence order (the default source first,
          then the others by name); see M(remo.broker.remo_broker_push) O(remo.broker.remo_broker_push#module:source).
      type: list
      elements: dict
      contains:
        name:
          description: Source name; V(default) for pushes without a source.
          type: str
          sample: vault
        secret_count:
          description: Number of names the source holds.
          type: int
          sample: 3
        loaded_at:
          description: When the source last pushed (ISO-8601, UTC).
          type: str
          sample: "2026-06-01T09:30:00Z"
    conflicts:
      description: Names held by more than one source, sorted, each served from the first source in precedence order.
      type: list
      elements: dict
      contains:
        name:
          description: The secret name.
          type: str
          sample: GITHUB_TOKEN
        served_from:
          description: The source whose value the daemon serves.
          type: str
          sample: default
        also_in:
          description: The other sources holding the name, in precedence order.
          type: list
          elements: str
          sample: [vault]
    pid:
      description: Process id of the serving daemon process.
      type: int
      sample: 812
    projects:
      description: Registered projects.
      type: list
      elements: dict
      contains:
        name:
          description: Project name.
          type: str
          sample: myrepo
        project_path:
          description: The project's directory on the instance.
          type: str
          sample: /home/dev/src/myrepo
        manifest_path:
          description: The manifest the allowlist was read from.
          type: str
          sample: /home/dev/src/myrepo/.remo/manifest.toml
        manifest_sha256:
          description: SHA-256 of the manifest file the daemon loaded.
          type: str
          sample: 9f2c6d5e0b1a4f7c8e3d2a1b0c9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f
        socket_path:
          description: The project's socket, inside its socket directory.
          type: str
          sample: /run/remo-broker/projects/myrepo/myrepo.sock
        socket_dir:
          description:
            - The project's socket directory, which the daemon keeps across its restarts; a
              devcontainer bind-mounts this directory (not the socket file).
          type: str
          sample: /run/remo-broker/projects/myrepo
        expected_uid:
          description: The only uid the project socket answers (checked with C(SO_PEERCRED)).
          type: int
          sample: 1000
        allowlist:
          description: Secret names the project may read.
          type: list
          elements: str
          sample: [GITHUB_TOKEN, NPM_TOKEN]
        allowlist_size:
          description: Number of names in RV(status.projects[].allowlist).
          type: int
          sample: 2
        counters:
          description: Requests on the project socket by outcome since the daemon started.
          type: dict
          sample: {allowed: 12, denied: 1, not_found: 0, rate_limited: 0, peer_unexpected: 0, protocol_error: 0,
                   connections_refused: 0, audit_unavailable: 0}
        attestation:
          description:
            - The container the project socket serves alone (set by the C(attest) admin op that
              C(remo-devcontainer up) sends), or V(null) when any process with the expected uid may connect.
            - C(hierarchy) is the cgroup v1 controller list, or an empty string for cgroup v2.
          type: dict
          sample: {container_id: 4f1c0e7d2b9a8c6e5d3f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d, hierarchy: "",
                   cgroup: /system.slice/docker-4f1c0e7d2b9a8c6e5d3f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d.scope}
        manifest_error:
          description: Why the last reload of the manifest failed (the old allowlist stays), or V(null).
          type: str
          sample: null
    audit:
      description: Health of the audit log and of its writer process.
      type: dict
      contains:
        path:
          description: The audit log file.
          type: str
          sample: /var/log/remo-broker/audit.jsonl
        healthy:
          description: Whether every event so far was written.
          type: bool
          sample: true
        write_errors:
          description: Failed writes since the daemon started.
          type: int
          sample: 0
        last_error:
          description: The last write error, or V(null).
          type: str
          sample: null
        buffered:
          description: Events accepted but not yet written.
          type: int
          sample: 0
        dropped:
          description: Events lost because the writer could not keep up or failed.
          type: int
          sample: 0
        lines_written:
          description: Lines the writer appended since the daemon started.
          type: int
          sample: 1520
        writer_pid:
          description: Process id of the audit writer process.
          type: int
          sample: 813
        backpressure:
          description: Whether the daemon is pausing project sockets until the writer catches up.
          type: bool
          sample: false
        paused_projects:
          description: Projects over their share of the audit backlog, whose connections are not read for now.
          type: list
          elements: str
          sample: []
        available:
          description:
            - Whether the audit log can be written. While it cannot, the daemon answers C(get)
              with C(audit_unavailable) (fail closed) and the module warns.
          type: bool
          sample: true
        unavailable_reason:
          description: Why the audit log cannot be written (full disk, dead or stalled writer), or V(null).
          type: str
          sample: null
        fail_open:
          description: Whether the daemon serves secrets even when the audit log cannot be written.
          type: bool
          sample: false
        checkpoint_store:
          description: Where the audit chain's checkpoints go (V(journal), C(file:PATH) or V(none)).
          type: str
          sample: journal
        checkpoint_seq:
          description: Sequence number of the last checkpointed audit line, or V(null) before the first.
          type: int
          sample: 1520
        checkpoint_errors:
          description: Checkpoints that could not be recorded since the daemon started.
          type: int
          sample: 0
        checkpoint_error:
          description: The last checkpoint error, or V(null).
          type: str
          sample: null
    rate_limit:
      description: The per-project token bucket.
      type: dict
      contains:
        rps:
          description: Requests per second each project socket may make; V(0) when disabled.
          type: float
          sample: 100.0
        burst:
          description: Burst size of the bucket.
          type: float
          sample: 200.0
    connections:
      description:
        - Open connections, the limits in force and refusals since the daemon started
          (see the collection's docs/daemon.md, "Resource limits"); C(turn_waits) counts the
          times a connection waited for its project's next turn ("Fair turns").
      type: dict
      sample: {open: 3, admin_open: 1, project_open: 2, descriptor_limit: 65536, project_budget: 65182,
               max_project: 256, max_peer: 64, max_admin: 32, refused: 0, accept_failures: 0, turn_waits: 0}
    hardening:
      description: >-
        Process hardening in effect: C(dumpable) is V(0) when core dumps and ptrace by
        other processes of the same user are off, C(rlimit_core) the core size limit
        (each V(null) when it could not be set); C(memory_locked) whether the serving
        process is locked out of swap (C(mlockall)), with C(memory_lock_error) saying why
        not; C(value_wipe) whether the daemon overwrites the copies of a value it drops.
      type: dict
      sample: {dumpable: 0, rlimit_core: 0, memory_locked: true, memory_lock_error: null, value_wipe: true}
socket_path:
  description: The admin socket that was queried.
  returned: always
  type: str
  sample: /run/remo-broker/admin.sock
failure:
  description:
    - The daemon's or the client's error when the module failed; C(connection_error) when
      the socket is missing, refuses the connection, denies permission or times out.
  returned: failure
  type: dict
  contains:
    code:
      description: Error code, for example C(connection_error) or C(protocol_error).
      type: str
    message:
      description: Error message; never contains secret values.
      type: str
    details:
      description: Extra structured information, may be empty.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.remo.broker.plugins.module_utils._module_base import (
    BrokerModule,
    merge_argument_spec,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import OP_STATUS


def main():
    module = AnsibleModule(argument_spec=merge_argument_spec({}), supports_check_mode=True)
    broker = BrokerModule(module)
    status = broker.request(OP_STATUS, what="the status request")
    audit = status.get("audit") or {}
    if audit.get("available") is False:
        module.warn("the broker cannot write its audit log (%s): %s" % (
            audit.get("unavailable_reason"),
            "it serves secrets anyway (fail-open)" if audit.get("fail_open") else "get is refused with audit_unavailable"))
    module.exit_json(changed=False, status=status, socket_path=broker.socket_path)


if __name__ == "__main__":
    main()
