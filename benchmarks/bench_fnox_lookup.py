# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: 50 secrets through ``remo.broker.fnox`` vs 50 ``lookup('pipe', 'fnox get NAME')``.

The "fnox" on the pipe side is a stand-in /bin/sh script that prints a value (a real fnox also
parses the config and decrypts, so the stand-in is a lower bound of the pipe cost); when a real
fnox binary is available (.cache/fnox/fnox) it is timed too.
The remo.broker.fnox side reads a real fnox.toml with 50 age-encrypted secrets (pyrage).

Two levels:
  plugin   - direct plugin invocation through ansible's lookup_loader, 50 separate run() calls
  playbook - ansible-playbook runs with 50 set_fact tasks, one lookup each

Usage: .venv/bin/python benchmarks/bench_fnox_lookup.py [--rounds 5] [--write docs/benchmarks-fnox.md]
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
N = 50
REAL_FNOX = next((p for p in (os.environ.get("REMO_BROKER_TEST_REAL_FNOX"), os.path.join(REPO, ".cache", "fnox", "fnox"))
                  if p and os.access(p, os.X_OK)), None)


def ensure_collection_link():
    link = os.path.join(COLLECTIONS, "ansible_collections", "remo", "broker")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)


def make_world(root):
    import pyrage
    home = os.path.join(root, "home")
    cfg = os.path.join(home, ".config", "fnox")
    proj = os.path.join(root, "proj")
    os.makedirs(cfg)
    os.makedirs(proj)
    ident = pyrage.x25519.Identity.generate()
    with open(os.path.join(cfg, "age.txt"), "w") as fh:
        fh.write(str(ident) + "\n")
    rec = ident.to_public()
    lines = ['[providers]\nage = { type = "age", recipients = ["%s"] }\n[secrets]\n' % rec]
    for i in range(N):
        ct = base64.b64encode(pyrage.encrypt(("value-%02d" % i).encode(), [rec])).decode()
        lines.append('S%02d = { provider = "age", value = "%s" }\n' % (i, ct))
    with open(os.path.join(proj, "fnox.toml"), "w") as fh:
        fh.write("".join(lines))
    fake = os.path.join(root, "bin", "fnox")
    os.makedirs(os.path.dirname(fake))
    with open(fake, "w") as fh:
        # POSIX sh starts faster than Python or the real fnox: a lower bound for the pipe side
        fh.write('#!/bin/sh\neval "last=\\${$#}"\nprintf \'value-%s\\n\' "${last#S}"\n')
    os.chmod(fake, 0o755)
    return home, proj, fake


def bench_plugin(home, proj, fake, rounds):
    os.environ["HOME"] = home
    os.environ["PATH"] = os.path.dirname(fake) + os.pathsep + os.environ.get("PATH", "")
    for k in [k for k in os.environ if k.startswith("FNOX_")]:
        del os.environ[k]
    sys.path.insert(0, COLLECTIONS)
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=[COLLECTIONS])._install()
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import lookup_loader
    from ansible.template import Templar
    from ansible_collections.remo.broker.plugins.plugin_utils import _fnox
    loader = DataLoader()
    loader.set_basedir(proj)
    templar = Templar(loader=loader)
    fnox = lookup_loader.get("remo.broker.fnox", loader=loader, templar=templar)
    pipe = lookup_loader.get("ansible.builtin.pipe", loader=loader, templar=templar)
    names = ["S%02d" % i for i in range(N)]
    res = {"fnox_cold": [], "fnox_warm": [], "pipe": []}
    for _round in range(rounds):
        _fnox.clear_caches()
        t = time.perf_counter()
        out = [fnox.run([n], variables={})[0] for n in names]
        res["fnox_cold"].append(time.perf_counter() - t)
        assert out == ["value-%02d" % i for i in range(N)], "fnox lookup returned wrong values"
        parses = _fnox.STATS["parses"]
        assert parses == 1, parses
        t = time.perf_counter()
        [fnox.run([n], variables={})[0] for n in names]
        res["fnox_warm"].append(time.perf_counter() - t)
        t = time.perf_counter()
        out = [pipe.run(["fnox get %s" % n], variables={})[0] for n in names]
        res["pipe"].append(time.perf_counter() - t)
        assert out == ["value-%02d" % i for i in range(N)], out[:2]
        if REAL_FNOX:
            t = time.perf_counter()
            out = [pipe.run(["%s get %s" % (REAL_FNOX, n)], variables={})[0] for n in names]
            res.setdefault("pipe_real", []).append(time.perf_counter() - t)
            assert out == ["value-%02d" % i for i in range(N)], out[:2]
    return res


def bench_playbook(home, proj, fake, rounds):
    def book(expr):
        tasks = "".join('    - ansible.builtin.set_fact:\n        v%02d: "{{ %s }}"\n      no_log: true\n'
                        % (i, expr % ("S%02d" % i)) for i in range(N))
        return "- hosts: localhost\n  gather_facts: false\n  connection: local\n  tasks:\n" + tasks
    paths = {}
    for name, expr in (("fnox", "lookup('remo.broker.fnox', '%s')"), ("pipe", "lookup('ansible.builtin.pipe', 'fnox get %s')"),
                       ("none", "'%s'")):
        paths[name] = os.path.join(proj, "bench_%s.yml" % name)
        with open(paths[name], "w") as fh:
            fh.write(book(expr))
    names = ", ".join("'S%02d'" % i for i in range(N))
    cmds = ", ".join("'fnox get S%02d'" % i for i in range(N))
    for name, expr in (("fnox1", "query('remo.broker.fnox', %s)" % names), ("pipe1", "query('ansible.builtin.pipe', %s)" % cmds)):
        paths[name] = os.path.join(proj, "bench_%s.yml" % name)
        with open(paths[name], "w") as fh:
            fh.write("- hosts: localhost\n  gather_facts: false\n  connection: local\n  tasks:\n"
                     "    - ansible.builtin.set_fact:\n        all_values: \"{{ %s }}\"\n      no_log: true\n"
                     "    - ansible.builtin.assert:\n        that: all_values | length == %d\n" % (expr, N))
    env = dict(os.environ)
    env.update({"HOME": home, "PATH": os.path.dirname(fake) + os.pathsep + env.get("PATH", ""),
                "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "ANSIBLE_LOCALHOST_WARNING": "0",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    res = {k: [] for k in paths}
    for _round in range(rounds):
        for name, path in paths.items():
            t = time.perf_counter()
            proc = subprocess.run([exe, "-i", "localhost,", path], env=env, capture_output=True, text=True, check=False)
            res[name].append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise SystemExit("playbook %s failed:\n%s" % (name, proc.stdout[-2000:] + proc.stderr[-2000:]))
    return res


def med(xs):
    return statistics.median(xs)


def report(plugin, playbook, rounds):
    lines = []
    lines.append("| level | remo.broker.fnox | pipe + `fnox get` stand-in | ratio (pipe / fnox) |")
    lines.append("|---|---|---|---|")
    lines.append("| plugin, 50 separate lookups, cold cache (1 parse) | %.1f ms | %.1f ms | %.1fx |"
                 % (med(plugin["fnox_cold"]) * 1e3, med(plugin["pipe"]) * 1e3, med(plugin["pipe"]) / med(plugin["fnox_cold"])))
    lines.append("| plugin, 50 separate lookups, warm cache (0 parses) | %.1f ms | %.1f ms | %.1fx |"
                 % (med(plugin["fnox_warm"]) * 1e3, med(plugin["pipe"]) * 1e3, med(plugin["pipe"]) / med(plugin["fnox_warm"])))
    if "pipe_real" in plugin:
        lines.append("| plugin, 50 separate lookups, pipe to the real fnox 1.31 binary | %.1f ms | %.1f ms | %.1fx |"
                     % (med(plugin["fnox_cold"]) * 1e3, med(plugin["pipe_real"]) * 1e3,
                        med(plugin["pipe_real"]) / med(plugin["fnox_cold"])))
    if playbook:
        base = med(playbook["none"])
        f, p = med(playbook["fnox"]), med(playbook["pipe"])
        lines.append("| ansible-playbook, 50 set_fact tasks (whole run) | %.2f s | %.2f s | %.2fx |" % (f, p, p / f))
        lines.append("| ansible-playbook, 50 tasks: lookup cost above a no-lookup run (%.2f s) | %.0f ms | %.0f ms | %.1fx |"
                     % (base, (f - base) * 1e3, (p - base) * 1e3, (p - base) / max(f - base, 1e-3)))
        f1, p1 = med(playbook["fnox1"]), med(playbook["pipe1"])
        lines.append("| ansible-playbook, one task with 50 terms (whole run) | %.2f s | %.2f s | %.2fx |" % (f1, p1, p1 / f1))
    lines.append("")
    lines.append("Medians of %d rounds; Python %s, %s, %d CPUs."
                 % (rounds, platform.python_version(), platform.machine(), os.cpu_count() or 0))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-playbook", action="store_true")
    ap.add_argument("--write", help="write the results into this markdown file")
    args = ap.parse_args()
    ensure_collection_link()
    with tempfile.TemporaryDirectory() as root:
        home, proj, fake = make_world(root)
        playbook = None if args.no_playbook else bench_playbook(home, proj, fake, max(1, args.rounds // 2 + 1))
        plugin = bench_plugin(home, proj, fake, args.rounds)
    table = report(plugin, playbook, args.rounds)
    print(table)
    if args.write:
        with open(args.write, "w") as fh:
            fh.write("# Benchmark: `remo.broker.fnox` vs `lookup('pipe', 'fnox get NAME')`\n\n"
                     "Command:\n\n```\n.venv/bin/python benchmarks/bench_fnox_lookup.py --rounds %d --write %s\n```\n\n"
                     "50 secrets, all age-encrypted in one real `fnox.toml` (pyrage), read by 50 separate lookups. "
                     "The pipe side runs a stand-in `fnox` (a `/bin/sh` script that only prints a value), so its "
                     "cost is a lower bound: a real `fnox get` also parses the config and decrypts (row 3 uses it). The fnox lookup "
                     "side parses the config once per process (cold) and then re-validates the cache with `stat()` "
                     "(warm); every lookup still reads the age identity and decrypts.\n\n%s\n"
                     % (args.rounds, args.write, table))


if __name__ == "__main__":
    main()
