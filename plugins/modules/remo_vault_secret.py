#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: remo_vault_secret
short_description: Set or remove a secret in the remo vault sidecar's encrypted store
version_added: 0.1.0
description:
  - Sets or removes one secret in the store of the vault sidecar container that
    R(the vault_sidecar role,ansible_collections.remo.broker.vault_sidecar_role) runs.
    The sidecar's watcher then pushes the new set to the broker.
  - The module runs C(docker exec -i <container> remo-vault set NAME) on the managed host
    with the value on standard input, never in an argument.
  - Idempotence is decided inside the sidecar. It decrypts the stored value and compares
    it with the new one there; it answers only whether the value would change. No value
    or digest of a value leaves the sidecar.
  - Secret values never appear in the module's output, its diff, its error messages or
    C(-vvv) invocation output (O(value) is C(no_log)).
author:
  - remo.broker contributors (@remo-broker)
extends_documentation_fragment:
  - remo.broker.attributes
attributes:
  check_mode:
    support: full
    details:
      - The sidecar answers whether the value would change (C(remo-vault set --check)); nothing is written.
  diff_mode:
    support: full
    details:
      - The diff names the secret and whether it is absent, present or changed. Values are never shown.
  idempotent:
    support: full
    details:
      - Setting the value the store already holds reports no change.
options:
  name:
    description:
      - Name of the secret. It must match C(^[A-Za-z0-9_]{1,128}$), the broker's rule.
    type: str
    required: true
  value:
    description:
      - The secret's value, UTF-8 text of at most 64 KiB, kept exactly (a trailing newline included).
      - Required when O(state=present).
    type: str
  state:
    description:
      - V(present) makes the store hold O(value) under O(name).
      - V(absent) removes O(name) from the store.
    type: str
    choices: [present, absent]
    default: present
  container:
    description: Name of the running vault sidecar container.
    type: str
    default: remo-vault
  docker_cli:
    description: The C(docker) command on the managed host.
    type: path
    default: docker
notes:
  - Needs permission to use the Docker daemon on the managed host (root, or the C(docker) group).
  - The broker sees the change when the sidecar's watcher pushes it, usually well within a second.
seealso:
  - module: remo.broker.remo_broker_push
  - module: remo.broker.remo_manifest
"""

EXAMPLES = r"""
- name: Store the npm token in the vault
  remo.broker.remo_vault_secret:
    name: NPM_TOKEN
    value: "{{ lookup('remo.broker.fnox', 'NPM_TOKEN') }}"
  become: true

- name: Remove a secret nobody uses any more
  remo.broker.remo_vault_secret:
    name: OLD_TOKEN
    state: absent
  become: true
"""

RETURN = r"""
name:
  description: The secret's name.
  returned: always
  type: str
  sample: NPM_TOKEN
existed:
  description: Whether the store held O(name) before the task.
  returned: success
  type: bool
  sample: true
container:
  description: The sidecar container that was asked.
  returned: always
  type: str
  sample: remo-vault
rc:
  description:
    - The exit code of C(docker exec) when the sidecar command failed (for example 1 when
      the container does not exist). The message carries only the command's last error line,
      never the value.
  returned: failure
  type: int
  sample: 1
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.remo.broker.plugins.module_utils._protocol import SECRET_NAME_PATTERN, is_valid_secret_name

MAX_VALUE_BYTES = 64 * 1024


def _sidecar_error(module, stderr, rc):
    text = (stderr or "").strip()
    container = module.params["container"]
    lowered = text.lower()
    if "no such container" in lowered or "is not running" in lowered or "is restarting" in lowered:
        return "the vault sidecar container %s is not running (run the remo.broker.vault_sidecar role, or docker start %s)" % (
            container, container)
    if "permission denied" in lowered and "docker" in lowered:
        return "no permission to use the Docker daemon (become: true, or join the docker group)"
    # The sidecar's own errors never carry a value.
    return "remo-vault in %s failed (exit %d): %s" % (container, rc, text.splitlines()[-1] if text else "no message")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            value=dict(type="str", no_log=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            container=dict(type="str", default="remo-vault"),
            docker_cli=dict(type="path", default="docker"),
        ),
        required_if=[("state", "present", ("value",))],
        supports_check_mode=True,
    )
    name, state, container = module.params["name"], module.params["state"], module.params["container"]
    result = dict(changed=False, name=name, container=container)
    if not is_valid_secret_name(name):
        module.fail_json(msg="name %r is not a valid secret name: it must match %s" % (name, SECRET_NAME_PATTERN), **result)
    data = None
    if state == "present":
        data = module.params["value"].encode("utf-8")
        if not data:
            module.fail_json(msg="value for %s is empty; use state=absent to remove a secret" % name, **result)
        if len(data) > MAX_VALUE_BYTES:
            module.fail_json(msg="value for %s is larger than %d bytes" % (name, MAX_VALUE_BYTES), **result)
    docker = module.get_bin_path(module.params["docker_cli"], required=True)
    argv = [docker, "exec", "-i", container, "remo-vault"]
    argv += ["set", "--raw"] if state == "present" else ["rm"]
    argv += ["--json"] + (["--check"] if module.check_mode else []) + [name]
    rc, out, err = module.run_command(argv, data=data or b"", binary_data=True)
    if rc != 0:
        module.fail_json(msg=_sidecar_error(module, err, rc), rc=rc, **result)
    try:
        reply = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        module.fail_json(msg="remo-vault in %s answered something that is not JSON" % container, **result)
    result["changed"] = bool(reply.get("changed"))
    result["existed"] = bool(reply.get("existed"))
    if module._diff:
        before = "%s: %s\n" % (name, "present" if result["existed"] else "absent")
        if state == "absent":
            after = "%s: absent\n" % name
        else:
            after = "%s: present%s\n" % (name, " (new value)" if result["changed"] else "")
        result["diff"] = dict(before=before, after=after, before_header="vault store", after_header="vault store")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
