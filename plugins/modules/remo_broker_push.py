#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: remo_broker_push
short_description: Load secrets into the remo-broker daemon's memory, or clear them
version_added: 0.1.0
description:
  - Pushes a complete map of secrets to the remo-broker daemon over its admin socket
    (the C(push-creds) request). The push atomically replaces everything the push source
    O(source) held; names left out of O(secrets) are dropped from that source. Other
    sources (for example the vault sidecar's, C(vault)) keep their names; the daemon
    serves the union.
  - With O(state=absent) the daemon forgets the secrets of O(source), or every secret of
    every source when O(source) is not set (the C(clear-creds) request).
  - Before pushing, the module asks the daemon which names a push would add, remove or
    change (the C(diff-creds) request). The daemon compares values in constant time and
    answers with names only, so the module is idempotent and supports check mode without
    any value or digest ever leaving the daemon.
  - Secret values never appear in the module's output, in its diff, in its error messages,
    or in C(-vvv) invocation output (O(secrets) is C(no_log)).
author:
  - remo.broker contributors (@remo-broker)
extends_documentation_fragment:
  - remo.broker.broker
  - remo.broker.attributes
  - remo.broker.attributes.actiongroup_broker
attributes:
  check_mode:
    support: full
    details:
      - Check mode asks the daemon what would change (C(diff-creds)) and pushes nothing.
  diff_mode:
    support: full
    details:
      - The diff lists secret names only; changed names carry a C((changed)) marker.
        Values are never shown.
  idempotent:
    support: full
    details:
      - The module reports a change only when the source's holdings differ from O(secrets).
options:
  secrets:
    description:
      - The complete set of secrets the daemon should hold, keyed by name.
      - Names match C(^[A-Za-z0-9_]{1,128}$).
      - A value is a string, or a mapping of field names to strings for a structured
        secret (for example an AWS key pair whose fields a manifest C(template) fills in).
      - Other value types (numbers, booleans, lists) are rejected; quote them.
      - The whole request must stay under the daemon's 1 MiB admin message limit.
      - Required when O(state=present). Ignored when O(state=absent).
    type: dict
  source:
    description:
      - The push source the task manages. Each source's names are replaced only by pushes
        of that source, so a playbook and the vault sidecar (source C(vault)) do not erase
        each other.
      - When a name is held by several sources, the daemon serves the value of the default
        source, else of the first other source in name order; RV(conflicts) lists such names
        and the daemon's C(status) reports them (M(remo.broker.remo_broker_info)).
      - Not set means the default source (named C(default)) for O(state=present), and every
        source for O(state=absent).
      - Names match C(^[a-z][a-z0-9_-]{0,31}$); the daemon holds at most 16 sources.
    type: str
    version_added: 0.1.0
  state:
    description:
      - V(present) makes O(source) hold exactly O(secrets).
      - V(absent) clears every secret of O(source), or of every source when O(source) is not set.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The daemon keeps secrets in memory only; after it restarts it holds none until the
    next push, and this module will then report a change.
seealso:
  - module: remo.broker.remo_broker_info
  - module: remo.broker.remo_manifest
  - plugin: remo.broker.fnox
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Push the secrets the projects may read
  remo.broker.remo_broker_push:
    secrets:
      GITHUB_TOKEN: "{{ lookup('remo.broker.fnox', 'GITHUB_TOKEN') }}"
      NPM_TOKEN: "{{ lookup('remo.broker.fnox', 'NPM_TOKEN') }}"
      aws:
        access_key_id: "{{ lookup('remo.broker.fnox', 'AWS_ACCESS_KEY_ID') }}"
        secret_access_key: "{{ lookup('remo.broker.fnox', 'AWS_SECRET_ACCESS_KEY') }}"
  become: true
  register: push

- name: Show what changed (names only)
  ansible.builtin.debug:
    msg: "added={{ push.added }} removed={{ push.removed }} changed={{ push.changed_names }}"

- name: Push the playbook's secrets beside the vault sidecar's (source vault)
  remo.broker.remo_broker_push:
    source: ansible
    secrets:
      CI_DEPLOY_KEY: "{{ lookup('remo.broker.fnox', 'CI_DEPLOY_KEY') }}"
  become: true

- name: Set the socket once for every broker module in a block
  module_defaults:
    group/remo.broker.broker:
      socket_path: /run/remo-broker/admin.sock
  become: true
  block:
    - name: Forget every secret (for example before tearing an instance down)
      remo.broker.remo_broker_push:
        state: absent
"""

RETURN = r"""
source:
  description:
    - The push source the task managed (V(default) when O(source) is not set), or V(null)
      when O(state=absent) without O(source) cleared every source.
  returned: success
  type: str
  sample: default
secret_count:
  description:
    - Number of secrets the source holds after the task (in check mode, would hold); after
      clearing every source, V(0).
  returned: success
  type: int
  sample: 3
secrets_loaded_at:
  description:
    - When the source's current secrets were loaded (ISO-8601, UTC), or V(null) when it holds none.
    - In check mode, the time of the last real push.
  returned: success
  type: str
  sample: "2026-06-01T09:30:00Z"
conflicts:
  description:
    - Names of the source that another source also holds, sorted. The daemon serves each
      from the default source first, then from the other sources in name order.
    - In check mode, the conflicts the source has now among the names of O(secrets).
  returned: success
  type: list
  elements: str
  sample: [GITHUB_TOKEN]
added:
  description: Names the push added (or would add), sorted.
  returned: success
  type: list
  elements: str
  sample: [NPM_TOKEN]
removed:
  description: Names the push or the clear removed (or would remove), sorted.
  returned: success
  type: list
  elements: str
  sample: [OLD_TOKEN]
changed_names:
  description: Names whose value changed (or would change), sorted. Values are never returned.
  returned: success
  type: list
  elements: str
  sample: [GITHUB_TOKEN]
socket_path:
  description: The admin socket that was used.
  returned: always
  type: str
  sample: /run/remo-broker/admin.sock
failure:
  description:
    - The error when the module failed. C(code) is the daemon's error code (for example
      C(invalid_payload), C(payload_too_large)) or C(connection_error). Never contains values.
  returned: failure
  type: dict
  contains:
    code:
      description: Error code.
      type: str
    message:
      description: Error message.
      type: str
    details:
      description: Extra structured information, may be empty.
      type: dict
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.remo.broker.plugins.module_utils._module_base import (
    BrokerModule,
    merge_argument_spec,
)
from ansible_collections.remo.broker.plugins.module_utils._protocol import (
    DEFAULT_SOURCE,
    E_PAYLOAD_TOO_LARGE,
    MAX_ADMIN_MESSAGE_BYTES,
    OP_CLEAR_CREDS,
    OP_DIFF_CREDS,
    OP_PUSH_CREDS,
    OP_STATUS,
    SECRET_NAME_PATTERN,
    SECRET_NAME_RE,
    SOURCE_NAME_PATTERN,
    SOURCE_NAME_RE,
)

DIFF_HEADER = "remo-broker secrets (names only)"


def _type_name(value):
    return type(value).__name__


def validate_secrets(module, secrets):
    """Check names and value shapes locally; messages name the secret, never its value."""
    problems = []
    for name in sorted(secrets, key=str):
        value = secrets[name]
        if not isinstance(name, str) or not SECRET_NAME_RE.fullmatch(name):
            problems.append("secret name %r does not match %s" % (name, SECRET_NAME_PATTERN))
            continue
        if isinstance(value, str):
            continue
        if isinstance(value, dict):
            for field in sorted(value, key=str):
                if not isinstance(value[field], str):
                    problems.append(
                        "secrets.%s.%s must be a string, got %s (quote it)" % (name, field, _type_name(value[field]))
                    )
            continue
        problems.append(
            "secrets.%s must be a string or a mapping of strings, got %s (quote it)" % (name, _type_name(value))
        )
    if problems:
        module.fail_json(msg="invalid secrets: " + "; ".join(problems))


def check_size(module, secrets):
    """Refuse a push the daemon would reject for size, before anything is sent."""
    size = len(to_bytes(json.dumps({"op": OP_PUSH_CREDS, "secrets": secrets}, separators=(",", ":")))) + 1
    if size > MAX_ADMIN_MESSAGE_BYTES:
        module.fail_json(
            msg=(
                "the push of %d secrets is %d bytes, above the daemon's admin message limit of "
                "%d bytes (1 MiB); push fewer or smaller secrets" % (len(secrets), size, MAX_ADMIN_MESSAGE_BYTES)
            ),
            failure=dict(
                code=E_PAYLOAD_TOO_LARGE,
                message="push of %d bytes exceeds the %d byte limit" % (size, MAX_ADMIN_MESSAGE_BYTES),
                details=dict(size_bytes=size, limit_bytes=MAX_ADMIN_MESSAGE_BYTES, secret_count=len(secrets)),
            ),
        )


def names_diff(before_names, after_names, changed_names):
    """``--diff`` text: one name per line, a ``(changed)`` marker on changed names."""
    changed = set(changed_names)

    def render(names):
        return "".join("%s%s\n" % (n, " (changed)" if n in changed else "") for n in sorted(names))

    return dict(
        before="".join("%s\n" % n for n in sorted(before_names)),
        after=render(after_names),
        before_header=DIFF_HEADER,
        after_header=DIFF_HEADER,
    )


def _sorted_names(reply, key):
    return sorted(str(n) for n in (reply.get(key) or []))


def _source_status(broker, source):
    """(secret_count, loaded_at, conflicting names) of ``source`` from the daemon's status."""
    status = broker.request(OP_STATUS, what="the status request")
    for entry in status.get("sources") or []:
        if entry.get("name") == source:
            conflicts = sorted(c["name"] for c in status.get("conflicts") or []
                               if source == c.get("served_from") or source in (c.get("also_in") or []))
            return entry.get("secret_count", 0), entry.get("loaded_at"), conflicts
    return 0, None, []


def run_present(module, broker, secrets, source):
    validate_secrets(module, secrets)
    check_size(module, secrets)
    fields = dict(secrets=secrets)
    if module.params["source"] is not None:
        fields["source"] = source

    delta = broker.request(OP_DIFF_CREDS, what="the diff-creds request", **fields)
    added = _sorted_names(delta, "added")
    removed = _sorted_names(delta, "removed")
    changed_names = _sorted_names(delta, "changed")
    changed = bool(added or removed or changed_names)

    result = dict(changed=changed, source=source, added=added, removed=removed, changed_names=changed_names)

    if changed and not module.check_mode:
        pushed = broker.request(OP_PUSH_CREDS, what="the push-creds request", **fields)
        result["secret_count"] = pushed.get("secret_count", len(secrets))
        result["secrets_loaded_at"] = pushed.get("loaded_at")
        result["conflicts"] = _sorted_names(pushed, "conflicts")
        # The push reports what it really did; prefer it over the prediction.
        for ours, theirs in (("added", "added"), ("removed", "removed"), ("changed_names", "changed")):
            if theirs in pushed:
                result[ours] = _sorted_names(pushed, theirs)
        result["changed"] = bool(result["added"] or result["removed"] or result["changed_names"])
    else:
        count, loaded_at, conflicts = _source_status(broker, source)
        result["secret_count"] = len(secrets) if changed else count
        result["secrets_loaded_at"] = loaded_at
        result["conflicts"] = [n for n in conflicts if n in secrets] if changed else conflicts

    if module._diff:
        after_names = set(str(n) for n in secrets)
        before_names = (after_names - set(added)) | set(removed)
        result["diff"] = names_diff(before_names, after_names, result["changed_names"])
    return result


def run_absent(module, broker, source):
    # diff-creds against an empty map names everything a source holds, values stay inside.
    if source is None:
        status = broker.request(OP_STATUS, what="the status request")
        sources = [entry.get("name") for entry in status.get("sources") or []]
    else:
        sources = [source]
    held = set()
    for name in sources:
        delta = broker.request(OP_DIFF_CREDS, what="the diff-creds request", secrets={}, source=name)
        held.update(_sorted_names(delta, "removed"))
    held = sorted(held)
    changed = bool(held)
    result = dict(changed=changed, source=source, added=[], removed=held, changed_names=[], secret_count=0,
                  secrets_loaded_at=None, conflicts=[])
    if changed and not module.check_mode:
        cleared = broker.request(OP_CLEAR_CREDS, what="the clear-creds request",
                                 **({} if source is None else {"source": source}))
        if source is None:
            result["secret_count"] = cleared.get("secret_count", 0)
    if module._diff:
        result["diff"] = names_diff(held, [], [])
    return result


def main():
    argument_spec = merge_argument_spec(
        dict(
            secrets=dict(type="dict", no_log=True),
            source=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        )
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ("secrets",))],
        supports_check_mode=True,
    )
    source = module.params["source"]
    if source is not None and not SOURCE_NAME_RE.fullmatch(source):
        module.fail_json(msg="source %r does not match %s" % (source, SOURCE_NAME_PATTERN))
    broker = BrokerModule(module)
    if module.params["state"] == "present":
        result = run_present(module, broker, module.params["secrets"], source or DEFAULT_SOURCE)
    else:
        result = run_absent(module, broker, source)
    result["socket_path"] = broker.socket_path
    module.exit_json(**result)


if __name__ == "__main__":
    main()
