# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The Hetzner Cloud API stand-in is strict where the API is, through the hcloud client
that hetzner.hcloud vendors (so its answers parse the way the modules read them).

These tests exercise the HTTP side only; the machines behind servers are recorded, not
started (test_hetzner_site.py boots real ones).
"""

from __future__ import annotations

import pytest

from ansible_collections.hetzner.hcloud.plugins.module_utils.vendor.hcloud import APIException, Client
from ansible_collections.hetzner.hcloud.plugins.module_utils.vendor.hcloud.firewalls import (
    FirewallResource, FirewallRule)

from tests.hcloud_standin.api import StandIn

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbkCXBG3V3Nl4uA3nPy2Pj6qR4Vk6B3uY0x9y0f9QzX test"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGrLxJ0OE9B7b6xXvVQ2o1s9aP5q0m2q3J4x0c1bZt2Y other"


class RecordingMachines:
    """Stands in for the container backend: records what would be started."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args))


@pytest.fixture
def api():
    standin = StandIn("secret-token", RecordingMachines()).start()
    yield standin
    standin.httpd.shutdown()
    standin.httpd.server_close()


@pytest.fixture
def client(api):
    return Client(token="secret-token", api_endpoint=api.endpoint, poll_interval=0.05)


def _error(call):
    with pytest.raises(APIException) as info:
        call()
    return info.value


def test_wrong_token_is_401(api):
    err = _error(Client(token="wrong", api_endpoint=api.endpoint).ssh_keys.get_all)
    assert err.code == "unauthorized"


def test_unknown_fields_are_rejected(client):
    err = _error(lambda: client.request("POST", "/ssh_keys", json={"name": "k", "public_key": PUBLIC_KEY, "colour": 1}))
    assert err.code == "invalid_input"
    assert err.details == {"fields": [{"name": "colour", "messages": ["unknown field"]}]}


def test_unknown_query_parameters_are_rejected(client):
    err = _error(lambda: client.request("GET", "/servers", params={"nmae": "x"}))
    assert err.code == "invalid_input"


@pytest.mark.parametrize("labels", [{"remo:managed": "true"}, {"remo_managed": "yes!"}, {"-x": "a"},
                                    {"hetzner.cloud/x": "a"}, {"remo_x": 1}])
def test_label_format_is_enforced(client, labels):
    err = _error(lambda: client.ssh_keys.create(name="k", public_key=PUBLIC_KEY, labels=labels))
    assert err.code == "invalid_input"


def test_remo_underscore_labels_are_accepted(client):
    key = client.ssh_keys.create(name="k", public_key=PUBLIC_KEY, labels={"remo_managed": "true", "remo_instance": ""})
    assert key.labels == {"remo_managed": "true", "remo_instance": ""}


def test_name_and_fingerprint_clashes_are_409(client):
    client.ssh_keys.create(name="k", public_key=PUBLIC_KEY)
    assert _error(lambda: client.ssh_keys.create(name="k", public_key=OTHER_KEY)).code == "uniqueness_error"
    assert _error(lambda: client.ssh_keys.create(name="k2", public_key=PUBLIC_KEY)).code == "uniqueness_error"
    assert client.ssh_keys.get_by_fingerprint(client.ssh_keys.get_by_name("k").fingerprint).name == "k"


def test_pagination_and_label_selectors(client):
    rule = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0"])
    for i in range(60):
        client.firewalls.create(name=f"fw{i}", rules=[rule], labels={"remo_role": "even" if i % 2 else "odd"})
    page, meta = client.firewalls.get_list(page=2, per_page=25)
    assert len(page) == 25 and meta.pagination.next_page == 3 and meta.pagination.total_entries == 60
    assert len(client.firewalls.get_all()) == 60  # follows next_page across three pages
    assert len(client.firewalls.get_all(label_selector="remo_role=even")) == 30
    assert len(client.firewalls.get_all(label_selector="remo_role in (even,odd),!remo_other")) == 60
    assert client.firewalls.get_all(label_selector="remo_role!=even,remo_role!=odd") == []
    assert _error(lambda: client.firewalls.get_list(per_page=51)).code == "invalid_input"


@pytest.mark.parametrize("rule", [
    {"direction": "in", "protocol": "tcp", "port": "22", "source_ips": ["10.0.0.1/8"]},  # host bits set
    {"direction": "in", "protocol": "tcp", "source_ips": ["0.0.0.0/0"]},  # tcp without port
    {"direction": "in", "protocol": "icmp", "port": "22", "source_ips": ["0.0.0.0/0"]},
    {"direction": "in", "protocol": "tcp", "port": "22"},  # no sources
    {"direction": "sideways", "protocol": "tcp", "port": "22", "source_ips": ["0.0.0.0/0"]},
])
def test_invalid_firewall_rules_are_rejected(client, rule):
    err = _error(lambda: client.request("POST", "/firewalls", json={"name": "fw", "rules": [rule]}))
    assert err.code == "invalid_input"


def test_server_lifecycle_with_firewall_and_volume(api, client):
    key = client.ssh_keys.create(name="k", public_key=PUBLIC_KEY)
    firewall = client.firewalls.create(name="fw", rules=[]).firewall
    volume = client.volumes.create(name="v", size=10, location=client.locations.get_by_name("fsn1"), format="ext4")
    volume.action.wait_until_finished()
    server_type = client.server_types.get_by_name("cx22")
    image = client.images.get_by_name_and_architecture("debian-12", server_type.architecture, include_deprecated=True)
    created = client.servers.create(name="srv", server_type=server_type, image=image, ssh_keys=[key],
                                    firewalls=[firewall], volumes=[volume.volume], labels={"remo_managed": "true"},
                                    location=client.locations.get_by_name("fsn1"), user_data="#cloud-config\n")
    created.action.wait_until_finished()
    server = client.servers.get_by_name("srv")
    assert server.status == "running" and server.public_net.ipv4.ip == "127.0.0.1"
    assert server.datacenter.location.name == "fsn1" and server.image.name == "debian-12"
    assert [f.firewall.id for f in server.public_net.firewalls] == [firewall.id]
    assert client.volumes.get_by_name("v").server.id == server.id
    assert ("create_server", (server.id, "srv", "#cloud-config\n", [PUBLIC_KEY])) in api.state.machines.calls

    assert _error(lambda: client.servers.create(name="srv", server_type=server_type, image=image)).code == "uniqueness_error"
    assert _error(lambda: client.firewalls.delete(firewall)).code == "resource_in_use"
    err = _error(lambda: client.firewalls.apply_to_resources(firewall, [FirewallResource(type="server", server=server)]))
    assert err.code == "firewall_already_applied"
    for action in client.firewalls.remove_from_resources(firewall, [FirewallResource(type="server", server=server)]):
        action.wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.firewalls == []

    assert _error(lambda: client.volumes.get_by_name("v").resize(10)).code == "invalid_input"  # only grows
    client.volumes.get_by_name("v").resize(12).wait_until_finished()
    client.servers.delete(server).wait_until_finished()
    assert client.volumes.get_by_name("v").server is None  # deleting a server detaches, never deletes
    assert client.firewalls.delete(firewall) is True


def test_server_names_must_be_hostnames(client):
    server_type = client.server_types.get_by_name("cx22")
    image = client.images.get_by_name_and_architecture("debian-12", "x86")
    assert _error(lambda: client.servers.create(name="under_score", server_type=server_type, image=image)).code == "invalid_input"
