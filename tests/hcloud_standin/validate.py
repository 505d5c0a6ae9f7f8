# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Request validation the way the Hetzner Cloud API does it, and its error shape."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

# A label key is an optional DNS-subdomain prefix and "/", then a name; values are names
# or empty. "remo:managed" has a ':' and is rejected, "remo_managed" is fine.
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
LABEL_KEY = re.compile(rf"^{_LABEL_PREFIX}{_LABEL_NAME}$")
LABEL_VALUE = re.compile(rf"^(?:{_LABEL_NAME})?$")
# Server names must be valid hostnames (RFC 1123).
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$")
MAX_USER_DATA = 32 * 1024


class APIError(Exception):
    """An API error: HTTP status plus the JSON error object."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(field: str, message: str) -> APIError:
    return APIError(422, "invalid_input", f"invalid input in field '{field}'",
                    {"fields": [{"name": field, "messages": [message]}]})


def check_fields(body: object, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(body, dict):
        raise APIError(400, "json_error", "request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise APIError(422, "invalid_input", f"invalid input in fields '{', '.join(unknown)}'",
                       {"fields": [{"name": f, "messages": ["unknown field"]} for f in unknown]})
    for field in required:
        if body.get(field) is None:
            raise invalid(field, "Missing data for required field.")
    return body


def check_labels(labels: object, field: str = "labels") -> dict:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise invalid(field, "must be an object")
    for key, value in labels.items():
        if not LABEL_KEY.match(key) or key.startswith("hetzner.cloud/"):
            raise invalid(field, f"label key '{key}' is invalid")
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise invalid(field, f"label value '{value}' of key '{key}' is invalid")
    return dict(labels)


def check_name(name: object, field: str = "name", hostname: bool = False) -> str:
    if not isinstance(name, str) or not name or len(name) > 128:
        raise invalid(field, "must be a non-empty string of at most 128 characters")
    if hostname and not HOSTNAME.match(name):
        raise invalid(field, f"'{name}' is not a valid hostname (RFC 1123)")
    return name


def ssh_fingerprint(public_key: object) -> str:
    """MD5 fingerprint of an OpenSSH public key line, as the API reports it."""
    parts = public_key.split() if isinstance(public_key, str) else []
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise invalid("public_key", "invalid SSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise invalid("public_key", "invalid SSH public key") from exc
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def check_cidrs(ips: object, field: str) -> list[str]:
    if not isinstance(ips, list):
        raise invalid(field, "must be a list")
    for ip in ips:
        try:
            ipaddress.ip_network(ip, strict=True)
        except (TypeError, ValueError) as exc:
            raise invalid(field, f"'{ip}' is not a valid network in CIDR notation") from exc
    return list(ips)


def check_rule(rule: object, index: int) -> dict:
    where = f"rules[{index}]"
    rule = check_fields(rule, {"direction", "protocol", "port", "source_ips", "destination_ips", "description"},
                        ("direction", "protocol"))
    if rule["direction"] not in ("in", "out"):
        raise invalid(where + ".direction", "must be one of: in, out")
    if rule["protocol"] not in ("tcp", "udp", "icmp", "esp", "gre"):
        raise invalid(where + ".protocol", "must be one of: tcp, udp, icmp, esp, gre")
    port = rule.get("port")
    if rule["protocol"] in ("tcp", "udp"):
        if not isinstance(port, str) or not re.match(r"^(any|\d{1,5}(-\d{1,5})?)$", port):
            raise invalid(where + ".port", "tcp and udp rules need a port or port range")
    elif port is not None:
        raise invalid(where + ".port", f"port is not allowed for protocol {rule['protocol']}")
    source = check_cidrs(rule.get("source_ips") or [], where + ".source_ips")
    destination = check_cidrs(rule.get("destination_ips") or [], where + ".destination_ips")
    if rule["direction"] == "in" and (not source or destination):
        raise invalid(where, "in rules need source_ips and no destination_ips")
    if rule["direction"] == "out" and (not destination or source):
        raise invalid(where, "out rules need destination_ips and no source_ips")
    description = rule.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 255):
        raise invalid(where + ".description", "at most 255 characters")
    return {"direction": rule["direction"], "protocol": rule["protocol"], "port": port,
            "source_ips": source, "destination_ips": destination, "description": description}


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def label_matcher(selector: str):
    """Compile a label selector (k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b))."""
    tests = []
    for term in _split_selector(selector):
        match = re.match(r"^([^\s=!(),]+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if match:
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if op == "in":
                tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
            continue
        match = re.match(r"^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$", term)
        if match:
            key, op, value = match.groups()
            if op == "!=":
                tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        match = re.match(r"^(!?)([^\s=!(),]+)$", term)
        if not match:
            raise APIError(422, "invalid_input", f"invalid label_selector '{selector}'")
        negate, key = match.groups()
        tests.append((lambda labels, k=key: k not in labels) if negate else (lambda labels, k=key: k in labels))
    return lambda labels: all(test(labels) for test in tests)
