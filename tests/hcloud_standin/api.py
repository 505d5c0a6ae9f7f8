# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A strict, stateful local stand-in for the part of the Hetzner Cloud API that the
hetzner.hcloud modules used by remo.broker call (test code, never shipped).

Endpoints: /servers (+ actions poweron, poweroff, shutdown, reboot, reset), /ssh_keys,
/firewalls (+ actions set_rules, apply_to_resources, remove_from_resources), /volumes
(+ actions attach, detach, resize, change_protection), the lookups /server_types,
/images, /locations, /datacenters, and /actions/{id}. Lists are paginated
(page, per_page <= 50, meta.pagination) and filter by name and label_selector.

Strictness: a wrong or missing bearer token is 401 unauthorized; unknown body fields,
bad labels (the "remo:" form), bad names, CIDRs and rules are 422 invalid_input; a
name already taken is 409 uniqueness_error; unknown query parameters are 422 too, so
a client that sends something the stand-in does not understand fails loudly.
"""

from __future__ import annotations

import datetime
import itertools
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import catalog
from .machines import MachineError, Machines, linux_device
from .validate import (APIError, MAX_USER_DATA, check_fields, check_labels, check_name, check_rule, invalid,
                       label_matcher, ssh_fingerprint)

PUBLIC_IPV4 = "127.0.0.1"
# How long a request waits for its action before answering "running" (clients poll).
ACTION_GRACE_SECONDS = 1.5


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


class State:
    """Every resource the project holds, plus the machines that back servers and volumes."""

    def __init__(self, machines: Machines):
        self.machines = machines
        self.lock = threading.RLock()
        self.ids = itertools.count(1000)
        self.ssh_keys: dict[int, dict] = {}
        self.firewalls: dict[int, dict] = {}
        self.volumes: dict[int, dict] = {}
        self.servers: dict[int, dict] = {}
        self.actions: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []

    # --- actions ---------------------------------------------------------
    def action(self, command: str, resources: list[tuple[int, str]], work=None) -> dict:
        """Start an action; its work runs in the background and it finishes when that does."""
        action = {"id": next(self.ids), "command": command, "status": "running", "progress": 0,
                  "started": _now(), "finished": None, "error": None,
                  "resources": [{"id": rid, "type": rtype} for rid, rtype in resources]}
        self.actions[action["id"]] = action
        done = threading.Event()

        def run():
            try:
                if work is not None:
                    work()
                result = ("success", None)
            except MachineError as exc:
                result = ("error", {"code": "action_failed", "message": str(exc)})
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # Any other failure must end the action too, or clients poll for 30 min.
                result = ("error", {"code": "action_failed", "message": f"{type(exc).__name__}: {exc}"})
            with self.lock:
                action["status"], action["error"] = result
                action["progress"], action["finished"] = 100, _now()
            done.set()

        threading.Thread(target=run, daemon=True).start()
        # Release the state lock while the work runs, so polls can read the action.
        depth = 0
        while True:
            try:
                self.lock.release()
                depth += 1
            except RuntimeError:
                break
        done.wait(ACTION_GRACE_SECONDS)
        for _level in range(depth):
            self.lock.acquire()
        return dict(action)

    # --- lookups ---------------------------------------------------------
    def find(self, collection: dict | list, ref: object, field: str) -> dict:
        items = collection.values() if isinstance(collection, dict) else collection
        for item in items:
            if ref == item["id"] or ref == item["name"] or (isinstance(ref, str) and ref.isdigit() and int(ref) == item["id"]):
                return item
        raise invalid(field, f"{field} '{ref}' not found")

    def name_taken(self, collection: dict, name: str, resource: str, exclude: int | None = None) -> None:
        if any(item["name"] == name and item["id"] != exclude for item in collection.values()):
            raise APIError(409, "uniqueness_error", f"{resource} with the same name already exists",
                           {"fields": [{"name": "name"}]})

    # --- rendering -------------------------------------------------------
    def firewalls_of(self, server: dict) -> list[dict]:
        out = []
        for firewall in self.firewalls.values():
            for res in firewall["applied_to"]:
                direct = res["type"] == "server" and res["server"]["id"] == server["id"]
                by_label = res["type"] == "label_selector" and label_matcher(res["label_selector"]["selector"])(server["labels"])
                if direct or by_label:
                    out.append({"id": firewall["id"], "status": "applied"})
                    break
        return out

    def render_server(self, server: dict) -> dict:
        out = {k: v for k, v in server.items() if not k.startswith("_")}
        out["public_net"] = {
            "ipv4": ({"id": server["id"] + 1, "ip": PUBLIC_IPV4, "blocked": False,
                      "dns_ptr": "localhost"} if server["_ipv4"] else None),
            "ipv6": ({"id": server["id"] + 2, "ip": "2001:db8::/64", "blocked": False, "dns_ptr": []}
                     if server["_ipv6"] else None),
            "floating_ips": [], "firewalls": self.firewalls_of(server),
        }
        out["volumes"] = [v["id"] for v in self.volumes.values() if v["server"] == server["id"]]
        return out

    def render_firewall(self, firewall: dict) -> dict:
        out = dict(firewall)
        applied = []
        for res in firewall["applied_to"]:
            entry = json.loads(json.dumps(res))
            if res["type"] == "label_selector":
                match = label_matcher(res["label_selector"]["selector"])
                entry["applied_to_resources"] = [{"type": "server", "server": {"id": s["id"]}}
                                                 for s in self.servers.values() if match(s["labels"])]
            applied.append(entry)
        out["applied_to"] = applied
        return out


def _paginate(items: list, query: dict) -> tuple[list, dict]:
    try:
        page = int(query.pop("page", ["1"])[0])
        per_page = int(query.pop("per_page", ["25"])[0])
    except ValueError as exc:
        raise APIError(422, "invalid_input", "page and per_page must be integers") from exc
    if page < 1 or not 1 <= per_page <= 50:
        raise APIError(422, "invalid_input", "page must be >= 1 and per_page between 1 and 50")
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    meta = {"pagination": {"page": page, "per_page": per_page, "previous_page": page - 1 if page > 1 else None,
                           "next_page": page + 1 if page < last else None, "last_page": last,
                           "total_entries": len(items)}}
    return chunk, meta


class Handler(BaseHTTPRequestHandler):
    """One API request. The server object carries `state` and `token`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass  # quiet: the tests read the request log from State.requests

    def _reply(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Correlation-Id", secrets.token_hex(8))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        state: State = self.server.state
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {self.server.token}":
                raise APIError(401, "unauthorized", "unable to authenticate")
            body = None
            if method in ("POST", "PUT"):
                try:
                    body = json.loads(raw or b"{}")
                except ValueError as exc:
                    raise APIError(400, "json_error", "request body is not valid JSON") from exc
            parts = [p for p in url.path.split("/") if p]
            if not parts or parts[0] != "v1":
                raise APIError(404, "not_found", "no such endpoint")
            with state.lock:
                state.requests.append((method, url.path))
                status, result = route(state, method, parts[1:], query, body)
            self._reply(status, result)
        except APIError as exc:
            self._reply(exc.status, exc.body())

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")


LIST_FILTERS = {
    "servers": {"name", "label_selector", "status", "sort"},
    "ssh_keys": {"name", "label_selector", "fingerprint", "sort"},
    "firewalls": {"name", "label_selector", "sort"},
    "volumes": {"name", "label_selector", "status", "sort"},
    "server_types": {"name"},
    "locations": {"name"},
    "datacenters": {"name"},
    "images": {"name", "label_selector", "type", "architecture", "include_deprecated", "bound_to", "status", "sort"},
}


def _collection(state: State, name: str):
    return {"servers": state.servers, "ssh_keys": state.ssh_keys, "firewalls": state.firewalls,
            "volumes": state.volumes, "server_types": catalog.SERVER_TYPES, "locations": catalog.LOCATIONS,
            "datacenters": catalog.DATACENTERS, "images": catalog.IMAGES}[name]


def _render(state: State, kind: str, item: dict) -> dict:
    if kind == "servers":
        return state.render_server(item)
    if kind == "firewalls":
        return state.render_firewall(item)
    return dict(item)


SINGULAR = {"servers": "server", "ssh_keys": "ssh_key", "firewalls": "firewall", "volumes": "volume",
            "server_types": "server_type", "locations": "location", "datacenters": "datacenter", "images": "image"}


def route(state: State, method: str, parts: list[str], query: dict, body):
    """Dispatch one request; returns (HTTP status, JSON body)."""
    if parts[:1] == ["actions"] and len(parts) == 2 and method == "GET":
        action = state.actions.get(int(parts[1])) if parts[1].isdigit() else None
        if action is None:
            raise APIError(404, "not_found", "action not found")
        return 200, {"action": dict(action)}
    kind = parts[0] if parts else ""
    if kind not in SINGULAR:
        raise APIError(404, "not_found", f"no such endpoint /{'/'.join(parts)}")
    items = _collection(state, kind)
    if len(parts) == 1 and method == "GET":
        return 200, _list(state, kind, items, query)
    if len(parts) == 1 and method == "POST":
        return CREATE[kind](state, body)
    if not parts[1].isdigit():
        raise APIError(404, "not_found", "not found")
    values = items.values() if isinstance(items, dict) else items
    item = next((i for i in values if i["id"] == int(parts[1])), None)
    if item is None:
        raise APIError(404, "not_found", f"{SINGULAR[kind]} with ID '{parts[1]}' not found")
    if len(parts) == 2 and method == "GET":
        return 200, {SINGULAR[kind]: _render(state, kind, item)}
    if kind not in CREATE:
        raise APIError(405, "method_not_allowed", "read-only resource")
    if len(parts) == 2 and method == "PUT":
        return _update(state, kind, item, body)
    if len(parts) == 2 and method == "DELETE":
        return DELETE[kind](state, item)
    if len(parts) == 4 and parts[2] == "actions" and method == "POST":
        handler = ACTIONS.get((kind, parts[3]))
        if handler is None:
            raise APIError(404, "not_found", f"no action {parts[3]} for {kind}")
        return handler(state, item, body)
    raise APIError(404, "not_found", "no such endpoint")


def _list(state: State, kind: str, items, query: dict) -> dict:
    unknown = set(query) - LIST_FILTERS[kind] - {"page", "per_page"}
    if unknown:
        raise APIError(422, "invalid_input", f"unknown query parameters: {', '.join(sorted(unknown))}")
    values = list(items.values() if isinstance(items, dict) else items)
    if "name" in query:
        values = [i for i in values if i["name"] == query["name"][0]]
    if "label_selector" in query:
        match = label_matcher(query["label_selector"][0])
        values = [i for i in values if match(i.get("labels") or {})]
    if "fingerprint" in query:
        values = [i for i in values if i["fingerprint"] == query["fingerprint"][0]]
    if "architecture" in query:
        values = [i for i in values if i["architecture"] in query["architecture"]]
    if "status" in query:
        values = [i for i in values if i.get("status") in query["status"]]
    if "type" in query:
        values = [i for i in values if i["type"] in query["type"]]
    chunk, meta = _paginate(values, dict(query))
    return {kind: [_render(state, kind, i) for i in chunk], "meta": meta}


def _update(state: State, kind: str, item: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"name", "labels"})
    if "name" in body:
        state.name_taken(_collection(state, kind), check_name(body["name"], hostname=kind == "servers"),
                         SINGULAR[kind], exclude=item["id"])
        if kind == "servers":
            raise invalid("name", "renaming servers is not supported by the stand-in")
        item["name"] = body["name"]
    if "labels" in body:
        item["labels"] = check_labels(body["labels"])
    return 200, {SINGULAR[kind]: _render(state, kind, item)}


# --- ssh keys ----------------------------------------------------------------
def create_ssh_key(state: State, body) -> tuple[int, dict]:
    body = check_fields(body, {"name", "public_key", "labels"}, ("name", "public_key"))
    name = check_name(body["name"])
    fingerprint = ssh_fingerprint(body["public_key"])
    labels = check_labels(body.get("labels"))
    state.name_taken(state.ssh_keys, name, "SSH key")
    if any(k["fingerprint"] == fingerprint for k in state.ssh_keys.values()):
        raise APIError(409, "uniqueness_error", "SSH key with the same fingerprint already exists",
                       {"fields": [{"name": "public_key"}]})
    key = {"id": next(state.ids), "name": name, "fingerprint": fingerprint,
           "public_key": body["public_key"].strip(), "labels": labels, "created": _now()}
    state.ssh_keys[key["id"]] = key
    return 201, {"ssh_key": dict(key)}


def delete_ssh_key(state: State, key: dict) -> tuple[int, None]:
    del state.ssh_keys[key["id"]]
    return 204, None


# --- firewalls ---------------------------------------------------------------
def _check_resources(state: State, resources, field: str) -> list[dict]:
    if not isinstance(resources, list):
        raise invalid(field, "must be a list")
    out = []
    for res in resources:
        res = check_fields(res, {"type", "server", "label_selector"}, ("type",))
        if res["type"] == "server":
            server_ref = check_fields(res.get("server"), {"id"}, ("id",))
            if server_ref["id"] not in state.servers:
                raise invalid(field, f"server {server_ref['id']} not found")
            out.append({"type": "server", "server": {"id": server_ref["id"]}})
        elif res["type"] == "label_selector":
            selector = check_fields(res.get("label_selector"), {"selector"}, ("selector",))["selector"]
            label_matcher(selector)
            out.append({"type": "label_selector", "label_selector": {"selector": selector}})
        else:
            raise invalid(field, "type must be server or label_selector")
    return out


def create_firewall(state: State, body) -> tuple[int, dict]:
    body = check_fields(body, {"name", "labels", "rules", "apply_to"}, ("name",))
    name = check_name(body["name"])
    labels = check_labels(body.get("labels"))
    rules = [check_rule(rule, i) for i, rule in enumerate(body.get("rules") or [])]
    apply_to = _check_resources(state, body.get("apply_to") or [], "apply_to")
    state.name_taken(state.firewalls, name, "firewall")
    firewall = {"id": next(state.ids), "name": name, "labels": labels, "rules": rules, "applied_to": apply_to,
                "created": _now()}
    state.firewalls[firewall["id"]] = firewall
    actions = [state.action("apply_firewall", [(firewall["id"], "firewall")])] if apply_to else []
    return 201, {"firewall": state.render_firewall(firewall), "actions": actions}


def delete_firewall(state: State, firewall: dict) -> tuple[int, None]:
    if firewall["applied_to"]:
        raise APIError(422, "resource_in_use", f"firewall {firewall['id']} is still in use")
    del state.firewalls[firewall["id"]]
    return 204, None


def firewall_set_rules(state: State, firewall: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"rules"}, ("rules",))
    if not isinstance(body["rules"], list):
        raise invalid("rules", "must be a list")
    firewall["rules"] = [check_rule(rule, i) for i, rule in enumerate(body["rules"])]
    actions = [state.action("set_firewall_rules", [(firewall["id"], "firewall")])]
    return 201, {"actions": actions}


def firewall_apply(state: State, firewall: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"apply_to"}, ("apply_to",))
    for res in _check_resources(state, body["apply_to"], "apply_to"):
        if res in firewall["applied_to"]:
            raise APIError(422, "firewall_already_applied", "firewall is already applied to this resource")
        firewall["applied_to"].append(res)
    return 201, {"actions": [state.action("apply_firewall", [(firewall["id"], "firewall")])]}


def firewall_remove(state: State, firewall: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"remove_from"}, ("remove_from",))
    for res in _check_resources(state, body["remove_from"], "remove_from"):
        if res not in firewall["applied_to"]:
            raise APIError(422, "firewall_already_removed", "firewall is not applied to this resource")
        firewall["applied_to"].remove(res)
    return 201, {"actions": [state.action("remove_firewall", [(firewall["id"], "firewall")])]}


# --- volumes -----------------------------------------------------------------
def _check_size(size: object) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or not 10 <= size <= 10240:
        raise invalid("size", "size must be an integer between 10 and 10240 (GB)")
    return size


def create_volume(state: State, body) -> tuple[int, dict]:
    body = check_fields(body, {"name", "size", "labels", "location", "server", "automount", "format"},
                        ("name", "size"))
    name = check_name(body["name"])
    size = _check_size(body["size"])
    labels = check_labels(body.get("labels"))
    if (body.get("location") is None) == (body.get("server") is None):
        raise invalid("location", "exactly one of location and server is required")
    server = state.servers.get(body["server"]) if body.get("server") is not None else None
    if body.get("server") is not None and server is None:
        raise invalid("server", f"server {body['server']} not found")
    location = server["datacenter"]["location"] if server else state.find(catalog.LOCATIONS, body["location"], "location")
    if body.get("format") not in (None, "ext4", "xfs"):
        raise invalid("format", "must be ext4 or xfs")
    state.name_taken(state.volumes, name, "volume")
    volume = {"id": next(state.ids), "name": name, "size": size, "labels": labels, "location": location,
              "server": None, "linux_device": None, "format": body.get("format"), "status": "creating",
              "protection": {"delete": False}, "created": _now()}
    volume["linux_device"] = linux_device(volume["id"])
    state.volumes[volume["id"]] = volume

    def work():
        state.machines.create_volume(volume["id"], size, volume["format"])
        with state.lock:
            volume["status"] = "available"

    action = state.action("create_volume", [(volume["id"], "volume")], work)
    next_actions = []
    if server is not None:
        next_actions.append(_attach(state, volume, server))
    return 201, {"volume": dict(volume), "action": action, "next_actions": next_actions}


def _attach(state: State, volume: dict, server: dict) -> dict:
    if volume["server"] is not None:
        raise APIError(422, "volume_already_attached", "volume is already attached to a server")
    if volume["location"]["id"] != server["datacenter"]["location"]["id"]:
        raise invalid("server", "volume and server must be in the same location")
    volume["server"] = server["id"]
    running = server["status"] == "running"
    name = server["name"]

    def work():
        if running:
            state.machines.plug(name, volume["id"])

    return state.action("attach_volume", [(volume["id"], "volume"), (server["id"], "server")], work)


def volume_attach(state: State, volume: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"server", "automount"}, ("server",))
    server = state.servers.get(body["server"])
    if server is None:
        raise invalid("server", f"server {body['server']} not found")
    return 201, {"action": _attach(state, volume, server)}


def volume_detach(state: State, volume: dict, body) -> tuple[int, dict]:
    check_fields(body, set())
    server = state.servers.get(volume["server"])
    if server is None:
        raise APIError(422, "volume_not_attached", "volume is not attached")
    volume["server"] = None
    running = server["status"] == "running"
    name = server["name"]
    action = state.action("detach_volume", [(volume["id"], "volume"), (server["id"], "server")],
                          lambda: state.machines.unplug(name, volume["id"], running))
    return 201, {"action": action}


def volume_resize(state: State, volume: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"size"}, ("size",))
    size = _check_size(body["size"])
    if size <= volume["size"]:
        raise invalid("size", "volumes can only grow")
    volume["size"] = size
    action = state.action("resize_volume", [(volume["id"], "volume")],
                          lambda: state.machines.resize_volume(volume["id"], size))
    return 201, {"action": action}


def change_protection(state: State, item: dict, body) -> tuple[int, dict]:
    body = check_fields(body, {"delete", "rebuild"})
    for key in ("delete", "rebuild"):
        if key in body:
            if not isinstance(body[key], bool):
                raise invalid(key, "must be a boolean")
            item["protection"][key] = body[key]
    return 201, {"action": state.action("change_protection", [(item["id"], "volume")])}


def delete_volume(state: State, volume: dict) -> tuple[int, None]:
    if volume["protection"]["delete"]:
        raise APIError(403, "protected", "volume is delete-protected")
    if volume["server"] is not None:
        raise APIError(422, "resource_in_use", "volume is still attached to a server")
    del state.volumes[volume["id"]]
    state.machines.delete_volume(volume["id"])
    return 204, None


# --- servers -----------------------------------------------------------------
SERVER_FIELDS = {"name", "server_type", "image", "location", "datacenter", "start_after_create", "ssh_keys",
                 "volumes", "networks", "firewalls", "user_data", "labels", "automount", "placement_group",
                 "public_net"}


def create_server(state: State, body) -> tuple[int, dict]:
    body = check_fields(body, SERVER_FIELDS, ("name", "server_type", "image"))
    name = check_name(body["name"], hostname=True)
    labels = check_labels(body.get("labels"))
    server_type = state.find(catalog.SERVER_TYPES, body["server_type"], "server_type")
    image = state.find([i for i in catalog.IMAGES if i["architecture"] == server_type["architecture"]],
                       body["image"], "image")
    if body.get("location") is not None and body.get("datacenter") is not None:
        raise invalid("location", "location and datacenter are mutually exclusive")
    if body.get("datacenter") is not None:
        datacenter = state.find(catalog.DATACENTERS, body["datacenter"], "datacenter")
    else:
        location = state.find(catalog.LOCATIONS, body.get("location") or "fsn1", "location")
        datacenter = next(dc for dc in catalog.DATACENTERS if dc["location"]["id"] == location["id"])
    for unsupported in ("networks", "placement_group"):
        if body.get(unsupported):
            raise invalid(unsupported, f"{unsupported} are not emulated by the stand-in")
    user_data = body.get("user_data")
    if user_data is not None and (not isinstance(user_data, str) or len(user_data.encode()) > MAX_USER_DATA):
        raise invalid("user_data", "user_data must be a string of at most 32 KiB")
    keys = [state.find(state.ssh_keys, ref, "ssh_keys") for ref in body.get("ssh_keys") or []]
    volumes = [state.find(state.volumes, ref, "volumes") for ref in body.get("volumes") or []]
    for volume in volumes:
        if volume["server"] is not None:
            raise APIError(422, "volume_already_attached", f"volume {volume['id']} is already attached")
        if volume["location"]["id"] != datacenter["location"]["id"]:
            raise invalid("volumes", f"volume {volume['id']} is in another location")
    firewalls = []
    for ref in body.get("firewalls") or []:
        ref = check_fields(ref, {"firewall"}, ("firewall",))
        firewalls.append(state.find(state.firewalls, ref["firewall"], "firewalls"))
    public_net = check_fields(body.get("public_net") or {}, {"enable_ipv4", "enable_ipv6", "ipv4", "ipv6"})
    if public_net.get("ipv4") or public_net.get("ipv6"):
        raise invalid("public_net", "primary IPs are not emulated by the stand-in")
    state.name_taken(state.servers, name, "server")

    server = {"id": next(state.ids), "name": name, "status": "initializing", "created": _now(),
              "server_type": server_type, "datacenter": datacenter, "image": image, "iso": None,
              "rescue_enabled": False, "locked": False, "backup_window": None, "outgoing_traffic": 0,
              "ingoing_traffic": 0, "included_traffic": 21990232555520, "protection": {"delete": False, "rebuild": False},
              "labels": labels, "private_net": [], "primary_disk_size": server_type["disk"],
              "placement_group": None, "load_balancers": [],
              "_ipv4": public_net.get("enable_ipv4", True), "_ipv6": public_net.get("enable_ipv6", True)}
    state.servers[server["id"]] = server
    for volume in volumes:
        volume["server"] = server["id"]
    for firewall in firewalls:
        firewall["applied_to"].append({"type": "server", "server": {"id": server["id"]}})
    start = body.get("start_after_create", True)
    public_keys = [k["public_key"] for k in keys]
    volume_ids = [v["id"] for v in volumes]

    def work():
        state.machines.create_server(server["id"], name, user_data, public_keys)
        if start:
            state.machines.start(name, volume_ids)
        with state.lock:
            server["status"] = "running" if start else "off"

    action = state.action("create_server", [(server["id"], "server")], work)
    next_actions = [state.action("start_server", [(server["id"], "server")])] if start else []
    return 201, {"server": state.render_server(server), "action": action, "next_actions": next_actions,
                 "root_password": None if keys else secrets.token_urlsafe(12)}


def _attached_volumes(state: State, server: dict) -> list[int]:
    return [v["id"] for v in state.volumes.values() if v["server"] == server["id"]]


def _power(command: str, target: str):
    def handler(state: State, server: dict, body) -> tuple[int, dict]:
        check_fields(body, set())
        name, volumes = server["name"], _attached_volumes(state, server)
        running = server["status"] == "running"
        stop = running and command != "poweron"
        start = command in ("reboot", "reset") or (command == "poweron" and not running)

        def work():
            if stop:
                state.machines.stop(name, graceful=command in ("shutdown", "reboot"))
            if start:
                state.machines.start(name, volumes)
            with state.lock:
                server["status"] = target

        label = "start_server" if command == "poweron" else f"{command}_server"
        return 201, {"action": state.action(label, [(server["id"], "server")], work)}
    return handler


def delete_server(state: State, server: dict) -> tuple[int, dict]:
    if server["protection"]["delete"]:
        raise APIError(403, "protected", "server is delete-protected")
    # Deleting a server detaches its volumes and takes it out of every firewall.
    for volume in state.volumes.values():
        if volume["server"] == server["id"]:
            volume["server"] = None
    for firewall in state.firewalls.values():
        firewall["applied_to"] = [r for r in firewall["applied_to"]
                                  if not (r["type"] == "server" and r["server"]["id"] == server["id"])]
    del state.servers[server["id"]]
    name = server["name"]
    return 200, {"action": state.action("delete_server", [(server["id"], "server")],
                                        lambda: state.machines.delete_server(name))}


CREATE = {"ssh_keys": create_ssh_key, "firewalls": create_firewall, "volumes": create_volume,
          "servers": create_server}
DELETE = {"ssh_keys": delete_ssh_key, "firewalls": delete_firewall, "volumes": delete_volume,
          "servers": delete_server}
ACTIONS = {
    ("firewalls", "set_rules"): firewall_set_rules,
    ("firewalls", "apply_to_resources"): firewall_apply,
    ("firewalls", "remove_from_resources"): firewall_remove,
    ("volumes", "attach"): volume_attach,
    ("volumes", "detach"): volume_detach,
    ("volumes", "resize"): volume_resize,
    ("volumes", "change_protection"): change_protection,
    ("servers", "poweron"): _power("poweron", "running"),
    ("servers", "poweroff"): _power("poweroff", "off"),
    ("servers", "shutdown"): _power("shutdown", "off"),
    ("servers", "reboot"): _power("reboot", "running"),
    ("servers", "reset"): _power("reset", "running"),
}


class StandIn:
    """The stand-in API on 127.0.0.1 in a background thread.

    >>> api = StandIn(token, machines); api.start(); api.endpoint  # http://127.0.0.1:PORT/v1
    """

    def __init__(self, token: str, machines: Machines, port: int = 0):
        self.state = State(machines)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        self.httpd.token = token
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> StandIn:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.state.machines.close()
