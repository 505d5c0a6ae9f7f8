# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Hostile and maximal manifests of a chosen size, for the parsing-limit tests and benchmark.

``HOSTILE[name](size)`` returns TOML text of about ``size`` bytes whose shape is the
attack ``name``: one that made tomllib (or the position scanner) quadratic, or one
that maximises the work per byte.  ``at_limits(name)`` is the largest such text
the parser still accepts structurally (so tomllib parses it), and
``largest_valid_manifest()`` the biggest manifest that passes every rule.
``reload_under_probes`` times another project's requests while a real daemon reloads
them.  Stdlib only (and the stdlib harness): ``benchmarks/bench_manifest.py`` imports
it too.
"""

from __future__ import annotations

import json
import os
import threading
import time

from ansible_collections.remo.broker.tests.unit.broker_harness import RawConn, wait_for

PROJECT = "p"
HEAD = 'schema_version = 2\nproject = "%s"\n' % PROJECT


def _repeat(unit, size, head=HEAD, tail="\n"):
    count = max(1, (size - len(head) - len(tail)) // len(unit))
    return head + unit * count + tail


def _numbered(template, size, head=HEAD, tail=""):
    """``head`` + template % i for i = 0, 1, ... while the text stays within ``size``."""
    out = [head]
    length = len(head) + len(tail)
    index = 0
    while True:
        piece = template % index
        if length + len(piece) > size and index:
            break
        out.append(piece)
        length += len(piece)
        index += 1
    return "".join(out) + tail


def dotted_key(size):
    """``a.a.a. ... = 1``: tomllib and the old scanner were quadratic in the parts."""
    return _repeat("a.", size, tail="a = 1\n")


def dotted_header(size):
    return _repeat("a.", size, head=HEAD + "[", tail="a]\n")


def dotted_inline(size):
    return _repeat("a.", size, head=HEAD + "x = { ", tail="a = 1 }\n")


def deep_inline_tables(size):
    depth = max(1, (size - len(HEAD) - 6) // 7)
    return HEAD + "x = " + "{ a = " * depth + "1" + " }" * depth + "\n"


def deep_arrays(size):
    depth = max(1, (size - len(HEAD) - 6) // 2)
    return HEAD + "x = " + "[" * depth + "]" * depth + "\n"


def many_tables(size):
    return _numbered("[t%d]\n", size)


def many_keys(size):
    return _numbered("k%d = 1\n", size)


def many_secrets(size):
    return _numbered("[secrets.S%d]\n", size)


def many_array_elements(size):
    return _repeat("1,", size, head=HEAD + "x = [", tail="1]\n")


def many_inline_entries(size):
    return _numbered("k%d = 1, ", size, head=HEAD + "x = { ", tail="z = 1 }\n")


def long_string(size):
    return _repeat("a", size, head=HEAD + 'x = "', tail='"\n')


def escapes(size):
    return _repeat("\\t", size, head=HEAD + 'x = "', tail='"\n')


def small_lines(size):
    return _repeat("#\n", size)


def long_keys(size):
    return _numbered('"%04d' + "k" * 250 + '" = 1\n', size)


def template_placeholders(size):
    """One file secret whose template has thousands of distinct ``{{field}}`` placeholders."""
    head = HEAD + '[secrets.A]\nfetch_as = "file"\nfile_path = "/run/secrets/a"\ntemplate = """'
    return _numbered("{{f%d}}", size, head=head, tail='"""\n')


HOSTILE = {
    "dotted key": dotted_key,
    "dotted table header": dotted_header,
    "dotted key in an inline table": dotted_inline,
    "nested inline tables": deep_inline_tables,
    "nested arrays": deep_arrays,
    "many tables": many_tables,
    "many keys": many_keys,
    "many secrets": many_secrets,
    "many array elements": many_array_elements,
    "many inline-table entries": many_inline_entries,
    "one long string": long_string,
    "string escapes": escapes,
    "many small lines": small_lines,
    "long quoted keys": long_keys,
    "template placeholders": template_placeholders,
}


def largest_accepted(make, limits):
    """``make(size)`` for the largest size whose text passes the structure limits, or None.

    ``limits`` is the ``_manifest`` module: its MAX_MANIFEST_BYTES and its structure scan.
    """
    def accepted(size):
        text = make(size)
        return len(text.encode("utf-8")) <= limits.MAX_MANIFEST_BYTES and limits._Locator(text).problem is None

    low, high = 64, limits.MAX_MANIFEST_BYTES
    if not accepted(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if accepted(middle):
            low = middle
        else:
            high = middle - 1
    return make(low)


def largest_valid_manifest(limits):
    """The biggest manifest every rule accepts: the most secrets, each with every key.

    ``limits`` is the ``_manifest`` module (its MAX_MANIFEST_* constants).
    """
    lines = [HEAD.rstrip("\n")]
    for index in range(limits.MAX_MANIFEST_SECRETS):
        name = "S%03d" % index
        if index % 2:
            lines += ["[secrets.%s]" % name, 'fetch_as = "env"', 'env_var = "E_%s"' % name]
        else:
            lines += ["[secrets.%s]" % name, 'fetch_as = "file"', 'file_path = "/run/secrets/%s"' % name,
                      'file_mode = "0400"', 'template = "id={{id}}\\nkey={{key}}\\n"']
    return "\n".join(lines) + "\n"


def typical_manifest():
    """A manifest as projects write them: a few env and file secrets, comments, a cache table."""
    return "\n".join([
        "# which secrets this project's devcontainer may read",
        "schema_version = 2",
        'project = "p"',
        "",
        "[secrets.GITHUB_TOKEN]",
        'fetch_as = "env"',
        "",
        "[secrets.NPM]",
        'env_var = "NODE_AUTH_TOKEN"',
        "",
        "[secrets.AWS_CONFIG]",
        'fetch_as = "file"',
        'file_path = "/run/secrets/aws/config"',
        'file_mode = "0400"',
        'template = """',
        "[default]",
        "aws_access_key_id={{access_key_id}}",
        "aws_secret_access_key={{secret_access_key}}",
        '"""',
        "",
        "[cache]",
        "ttl_seconds = 600",
        "max_entries = 16",
    ]) + "\n"


# ---------------------------------------------------------------------------
# A real daemon under hostile reloads
# ---------------------------------------------------------------------------
def worst_manifests(limits):
    """(label, text) of the attack that froze the daemon and of each shape at the limits' edge."""
    out = [("dotted key, 64 KiB (the original attack)", dotted_key(limits.MAX_MANIFEST_BYTES))]
    for name, make in HOSTILE.items():
        text = largest_accepted(make, limits)
        if text is not None and len(text) >= 2048:
            out.append(("%s, at the limits" % name, text))
    out.append(("largest valid manifest", largest_valid_manifest(limits)))
    return out


class _Probe:
    """A thread timing one request at a time on one persistent connection."""

    def __init__(self, path, line, check):
        self.conn = RawConn(path, timeout=120.0)
        self.line = line
        self.check = check
        self.phase = "idle"
        self.samples = {"idle": [], "hostile": []}
        self.failures = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            phase = self.phase
            start = time.perf_counter()
            self.conn.send(self.line)
            reply = self.conn.read_line()
            elapsed = time.perf_counter() - start
            if reply is None or not self.check(json.loads(reply)):
                self.failures.append(reply)
                return
            if phase == self.phase:     # a sample spanning a phase change counts for neither
                self.samples[phase].append(elapsed)

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=120)
        self.conn.close()


def reload_under_probes(broker, project, manifest_path, manifests, rounds, victim_socket, victim_get, victim_check,
                        idle_samples=300, timeout=120.0):
    """Time the victim's ``get`` and the admin ``status`` while ``project`` reloads ``manifests``.

    First ``idle_samples`` of each probe with nothing else happening, then every
    manifest written over ``manifest_path`` and reloaded, ``rounds`` times.  Returns
    ``{"get": {"idle": [s...], "hostile": [...]}, "status": {...}, "reloads":
    [(label, seconds, reply), ...], "failures": [...]}``.
    """
    probes = {
        "get": _Probe(victim_socket, victim_get, victim_check),
        "status": _Probe(broker.admin_socket, b'{"op":"status"}\n', lambda reply: reply.get("ok") is True),
    }
    reloads = []
    try:
        wait_for(lambda: all(len(p.samples["idle"]) >= idle_samples or p.failures for p in probes.values()),
                 timeout, what="the idle latency samples")
        for probe in probes.values():
            probe.phase = "hostile"
        for dummy in range(rounds):
            for label, text in manifests:
                staging = manifest_path + ".new"
                with open(staging, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(staging, manifest_path)
                start = time.perf_counter()
                reply = broker.admin("reload", name=project)
                reloads.append((label, time.perf_counter() - start, reply))
    finally:
        for probe in probes.values():
            probe.stop()
    result = {name: probe.samples for name, probe in probes.items()}
    result["reloads"] = reloads
    result["failures"] = [failure for probe in probes.values() for failure in probe.failures]
    return result


def schedstat_ns(pid):
    """CPU nanoseconds every thread of ``pid`` has run so far (/proc/PID/task/*/schedstat)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid), encoding="ascii") as handle:
            total += int(handle.read().split()[0])
    return total


def reload_cpu_seconds(broker, project, manifest_path, text, repeat):
    """Median CPU seconds the daemon spends on one ``reload`` of ``text`` (nothing else running)."""
    with open(manifest_path, "w", encoding="utf-8") as handle:
        handle.write(text)
    samples = []
    for dummy in range(repeat):
        before = schedstat_ns(broker.pid)
        broker.admin("reload", name=project)
        samples.append((schedstat_ns(broker.pid) - before) / 1e9)
    return sorted(samples)[len(samples) // 2]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
