# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Seeded generators of mutated and random request lines for the daemon fuzz tests."""

from __future__ import annotations

import json
import random


def project_corpus(allowed, project):
    """One valid request of every project-socket op (plus variants)."""
    return [
        {"op": "get", "name": allowed[0]},
        {"op": "get", "name": allowed[-1], "field": "user"},
        {"op": "get", "name": "NOT_ALLOWED"},
        {"op": "get", "name": allowed[0], "project": project, "extra": [1, 2, {"x": None}]},
        {"op": "ping"},
        {"op": "ping", "project": project},
        {"op": "info"},
        {"op": "watch"},
        {"op": "status"},
    ]


def admin_corpus(project_path, secrets):
    """One valid request of every admin op.  Nothing here unregisters the fuzz target."""
    return [
        {"op": "ping"},
        {"op": "status"},
        {"op": "register", "name": "fz-other", "project_path": project_path},
        {"op": "register", "name": "fz-nope", "project_path": "/nonexistent/dir"},
        {"op": "reload", "name": "fz-other"},
        {"op": "unregister", "name": "fz-gone"},
        {"op": "push-creds", "secrets": secrets},
        {"op": "diff-creds", "secrets": secrets},
        {"op": "clear-creds"},
        {"op": "get", "name": "TOKEN"},
    ]


_INTERESTING_VALUES = [
    None, True, False, 0, -1, 1 << 63, 1 << 70, 1e308, -0.0, 3.5, "", " ", "\x00", "\ud800", "\udfff",
    "\ud83d\ude00", "a" * 300, "TOKEN\n", "../../etc/passwd", "/", "/tmp", "\u202e", [], {}, [[[]]],
    {"a": {"b": {"c": []}}}, ["TOKEN"], {"TOKEN": 1}, "admin", "0", "NaN",
]
_INTERESTING_RAW = [
    b"", b" ", b"\t", b"\r", b"\x00", b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"null", b"[]", b"{}",
    b'{"op":', b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"1" * 5000, b'"\\ud800"', b'"\\u0000"',
    b'{"op":"get","op":"ping"}', b'{"op":"get","name":"TOKEN"', b"\xef\xbb\xbf{}",
]


class Mutator:
    """Seeded generator of mutated / random request lines (bytes, each ending in b"\\n")."""

    def __init__(self, seed, corpus, limit):
        self.rnd = random.Random(seed)
        self.corpus = corpus
        self.encoded = [json.dumps(req, separators=(",", ":")).encode() for req in corpus]
        self.limit = limit

    def _json_value(self, depth=0):
        rnd = self.rnd
        kind = rnd.random()
        if kind < 0.45 or depth > 3:
            return rnd.choice(_INTERESTING_VALUES)
        if kind < 0.6:
            return rnd.randint(-(1 << 40), 1 << 40)
        if kind < 0.75:
            return "".join(chr(rnd.choice((rnd.randint(0, 0x7f), rnd.randint(0, 0x10ffff))))
                           for _i in range(rnd.randint(0, 40)))
        if kind < 0.9:
            return [self._json_value(depth + 1) for _i in range(rnd.randint(0, 4))]
        return {self.rnd.choice(("op", "name", "field", "secrets", "project", "x")): self._json_value(depth + 1)
                for _i in range(rnd.randint(0, 4))}

    def structural(self):
        """A valid JSON line with fields replaced, dropped, added or re-typed."""
        rnd = self.rnd
        req = dict(rnd.choice(self.corpus))
        for _i in range(rnd.randint(1, 3)):
            action = rnd.random()
            keys = list(req)
            if action < 0.35 and keys:
                req[rnd.choice(keys)] = self._json_value()
            elif action < 0.5 and keys:
                del req[rnd.choice(keys)]
            elif action < 0.75:
                req[rnd.choice(("extra", "field", "name", "secrets", "project", "op", "expected_uid"))] = self._json_value()
            elif action < 0.9:
                req["op"] = rnd.choice(("get", "ping", "info", "watch", "status", "register", "push-creds",
                                        "diff-creds", "clear-creds", "reload", "GET", "", "get ", None, 7))
            else:
                req = rnd.choice((self._json_value(), [req], "op"))
                break
        text = json.dumps(req, ensure_ascii=rnd.random() < 0.5)
        return text.encode("utf-8", "surrogatepass")

    def benign(self):
        """A request the daemon should answer without closing: right types, odd values."""
        rnd = self.rnd
        req = dict(rnd.choice(self.corpus))
        for _i in range(rnd.randint(0, 3)):
            action = rnd.random()
            if action < 0.4:
                req[rnd.choice(("extra", "x", "project", "pad", "secrets_", "\u0000"))] = self._json_value()
            elif action < 0.8 and isinstance(req.get("name"), str):
                req["name"] = rnd.choice((
                    "".join(chr(rnd.randint(0, 0x10ffff)) for _i in range(rnd.randint(0, 20))),
                    rnd.choice(("TOKEN", "DB", "API_KEY", "A" * 128, "A" * 129, "", "\ud800", "\x00",
                                "token", "T OKEN", "fz-other", "admin"))))
            elif "field" in req:
                req["field"] = rnd.choice(("user", "password", "", "\ud800", "nope"))
        text = json.dumps(req, ensure_ascii=rnd.random() < 0.5)
        return text.encode("utf-8", "surrogatepass")

    def bytewise(self):
        """A valid request with random byte edits (flip, insert, delete, splice)."""
        rnd = self.rnd
        data = bytearray(rnd.choice(self.encoded))
        for _i in range(rnd.randint(1, 4)):
            action = rnd.random()
            pos = rnd.randint(0, len(data))
            if action < 0.3 and data:
                data[min(pos, len(data) - 1)] = rnd.randint(0, 255)
            elif action < 0.5:
                data[pos:pos] = rnd.choice(_INTERESTING_RAW)
            elif action < 0.7 and data:
                del data[pos:pos + rnd.randint(1, 8)]
            elif action < 0.85:
                other = rnd.choice(self.encoded)
                data[pos:pos] = other[rnd.randint(0, len(other)):]
            else:
                data = data[:pos]
        return bytes(data)

    def random_bytes(self):
        rnd = self.rnd
        return bytes(rnd.getrandbits(8) for _i in range(rnd.randint(0, 200)))

    def special(self):
        """Huge lines, deep nesting, long numbers, NULs."""
        rnd = self.rnd
        pick = rnd.randint(0, 7)
        if pick == 0:
            depth = rnd.choice((100, 1000, 20000, self.limit // 2 - 10))
            return b"[" * depth + b"]" * depth
        if pick == 1:
            depth = rnd.choice((50, 900, 5000))
            return b'{"op":' * depth + b'"ping"' + b"}" * depth
        if pick == 2:
            # just over the limit (the daemon must refuse and close, never buffer forever)
            return b'{"op":"get","name":"' + b"A" * (self.limit + rnd.randint(1, 2000)) + b'"}'
        if pick == 3:
            # just under the limit: a valid but huge request
            return b'{"op":"ping","pad":"' + b"x" * (self.limit - rnd.randint(40, 200)) + b'"}'
        if pick == 4:
            return b'{"op":"get","name":' + b"9" * rnd.choice((10, 4300, 4301, 20000)) + b"}"
        if pick == 5:
            return b'{"op":"get","name":"TO\x00KEN"}'
        if pick == 6:
            return b'{"op":"get","name":"\\ud800\\udc00\\udfff"}'
        return b'{"op":"ping"}' + b" " * rnd.randint(1, 1000) + b"\x00"

    def message(self, benign=False):
        """One message: bytes ending in a newline (embedded newlines make several lines).

        ``benign`` mostly yields requests the daemon answers without closing the
        connection, so long pipelines get exercised too.
        """
        r = self.rnd.random()
        if benign and r < 0.95:
            return self.benign() + b"\n"
        if r < 0.38:
            body = self.structural()
        elif r < 0.73:
            body = self.bytewise()
        elif r < 0.83:
            body = self.random_bytes()
        elif r < 0.93:
            body = self.rnd.choice(self.encoded)
        else:
            body = self.special()
        return body + b"\n"

    def fragments(self, data):
        """Split ``data`` into 1-4 random pieces (exercises the daemon's line buffering)."""
        cuts = sorted(self.rnd.randint(0, len(data)) for _i in range(self.rnd.randint(0, 3)))
        out, prev = [], 0
        for cut in cuts + [len(data)]:
            out.append(data[prev:cut])
            prev = cut
        return [piece for piece in out if piece]
