# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The read-only lookups: locations, datacenters, server types and images.

A small, fixed subset of the real catalogue with the real names, in the shapes the
API returns. Every image boots the same stand-in container (Debian bookworm); the name
is accepted and reported back.
"""

from __future__ import annotations

CREATED = "2024-01-01T00:00:00+00:00"

LOCATIONS = [
    {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1", "country": "DE", "city": "Falkenstein",
     "latitude": 50.47612, "longitude": 12.370071, "network_zone": "eu-central"},
    {"id": 2, "name": "nbg1", "description": "Nuremberg DC Park 1", "country": "DE", "city": "Nuremberg",
     "latitude": 49.452102, "longitude": 11.076665, "network_zone": "eu-central"},
    {"id": 3, "name": "hel1", "description": "Helsinki DC Park 1", "country": "FI", "city": "Helsinki",
     "latitude": 60.169855, "longitude": 24.938379, "network_zone": "eu-central"},
]


def _server_type(type_id, name, cores, memory, disk, architecture):
    return {
        "id": type_id, "name": name, "description": name.upper(), "category": "regular_purpose",
        "cores": cores, "memory": memory, "disk": disk, "prices": [], "storage_type": "local",
        "cpu_type": "shared", "architecture": architecture, "deprecated": False, "deprecation": None,
        "locations": [{"id": loc["id"], "name": loc["name"], "deprecation": None} for loc in LOCATIONS],
    }


SERVER_TYPES = [
    _server_type(22, "cpx11", 2, 2.0, 40, "x86"),
    _server_type(104, "cx22", 2, 4.0, 40, "x86"),
    _server_type(105, "cx32", 4, 8.0, 80, "x86"),
    _server_type(45, "cax11", 2, 4.0, 40, "arm"),
]

DATACENTERS = [
    {"id": 4, "name": "fsn1-dc14", "description": "Falkenstein 1 virtual DC 14", "location": LOCATIONS[0]},
    {"id": 2, "name": "nbg1-dc3", "description": "Nuremberg 1 virtual DC 3", "location": LOCATIONS[1]},
    {"id": 3, "name": "hel1-dc2", "description": "Helsinki 1 virtual DC 2", "location": LOCATIONS[2]},
]
for _dc in DATACENTERS:
    _ids = [t["id"] for t in SERVER_TYPES]
    _dc["server_types"] = {"available": _ids, "supported": _ids, "available_for_migration": _ids}


def _image(image_id, name, flavor, version, architecture):
    return {
        "id": image_id, "type": "system", "status": "available", "name": name,
        "description": f"{flavor.capitalize()} {version}", "image_size": None, "disk_size": 5,
        "created": CREATED, "created_from": None, "bound_to": None, "os_flavor": flavor,
        "os_version": version, "rapid_deploy": True, "protection": {"delete": False},
        "deprecated": None, "deleted": None, "labels": {}, "architecture": architecture,
    }


IMAGES = [
    _image(114690387, "debian-12", "debian", "12", "x86"),
    _image(161547269, "ubuntu-24.04", "ubuntu", "24.04", "x86"),
    _image(114690389, "debian-12", "debian", "12", "arm"),
]
