# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The configure play converges every instance role, in the order they depend on each
other, and every site playbook runs that same play (so a role added to it reaches
Hetzner, inventory hosts and the local instance alike)."""

from __future__ import annotations

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The broker's admin group exists before the sidecar joins it; the key is unsealed
# before the sidecar mounts it; projects register with a running broker.
ROLE_ORDER = [
    "remo.broker.instance_base",
    "remo.broker.broker_install",
    "remo.broker.vault_key",
    "remo.broker.vault_sidecar",
    "remo.broker.project_manifest",
]


def load(name):
    with open(os.path.join(ROOT, "playbooks", name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_configure_lists_every_instance_role_in_order():
    (play,) = load("configure.yml")
    assert [entry["role"] for entry in play["roles"]] == ROLE_ORDER
    assert not play.get("tasks") and not play.get("pre_tasks") and not play.get("post_tasks")


def test_every_instance_role_is_in_the_configure_play():
    shipped = {"remo.broker." + name for name in os.listdir(os.path.join(ROOT, "roles"))}
    # hetzner_server provisions the server the configure play then runs on.
    assert shipped - set(ROLE_ORDER) == {"remo.broker.hetzner_server"}


@pytest.mark.parametrize("playbook", ["site.yml", "hetzner_site.yml", "local_site.yml"])
def test_site_playbooks_import_the_configure_play(playbook):
    imports = [play["ansible.builtin.import_playbook"] for play in load(playbook)
               if "ansible.builtin.import_playbook" in play]
    assert imports == ["remo.broker.configure"]
    for play in load(playbook):
        roles = [r["role"] if isinstance(r, dict) else r for r in play.get("roles", [])]
        assert not set(roles) & set(ROLE_ORDER), "%s runs an instance role outside the configure play" % playbook
