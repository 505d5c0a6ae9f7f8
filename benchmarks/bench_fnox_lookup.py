# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: 50 secrets through ``remo.broker.fnox`` vs 50 ``lookup('pipe', 'fnox get NAME')``.

The "fnox" on the pipe side is a stand-in /bin/sh script that prints a value (a real fnox also
parses the config and decrypts, so the stand-in is a lower bound of the pipe cost); when a real
fnox binary is available (.cache/fnox/fnox) it is timed too.
The remo.broker.fnox side reads a real fnox.toml with 50 age-encrypted secrets (pyrage).

Two levels:
  playbook - ansible-playbook runs: 50 set_fact tasks with one lookup each (age secrets, plain
             secrets, bytecode cache on and off), one task with 50 terms, and a 50-task run with
             no lookup as the floor. Wall and CPU time; the ratio is pipe / fnox from the same run.
  plugin   - direct plugin invocation through ansible's lookup_loader, 50 separate run() calls

Usage: .venv/bin/python benchmarks/bench_fnox_lookup.py [--rounds 5] [--playbook-rounds N] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import resource
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
    plain = os.path.join(root, "proj_plain")
    os.makedirs(plain)
    with open(os.path.join(plain, "fnox.toml"), "w") as fh:
        fh.write('[providers]\nplain = { type = "plain" }\n[secrets]\n'
                 + "".join('S%02d = { provider = "plain", value = "value-%02d" }\n' % (i, i) for i in range(N)))
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
    """Time whole ansible-playbook runs; returns {scenario: [(wall s, cpu s), ...]}.

    CPU is user+sys of ansible-playbook and every process it started (workers, pipe's shells), which
    other load on the machine disturbs less than wall time. Bytecode caching is on, as in a default
    Python (PYTHONDONTWRITEBYTECODE is dropped; .pyc files go to a temporary PYTHONPYCACHEPREFIX,
    filled by one untimed run of every playbook). The *_nopyc scenarios run with
    PYTHONDONTWRITEBYTECODE=1 and an empty cache prefix: every module not byte-compiled at install
    time (all collection code, unlike ansible-core's) is compiled from source in every worker.
    """
    def book(expr):
        tasks = "".join('    - ansible.builtin.set_fact:\n        v%02d: "{{ %s }}"\n      no_log: true\n'
                        % (i, expr % ("S%02d" % i)) for i in range(N))
        return "- hosts: localhost\n  gather_facts: false\n  connection: local\n  tasks:\n" + tasks
    plain_proj = os.path.join(os.path.dirname(proj), "proj_plain")
    paths = {}
    for name, where, expr in (("none", proj, "'%s'"),
                              ("pipe", proj, "lookup('ansible.builtin.pipe', 'fnox get %s')"),
                              ("fnox", proj, "lookup('remo.broker.fnox', '%s')"),
                              ("fnox_plain", plain_proj, "lookup('remo.broker.fnox', '%s')")):
        paths[name] = os.path.join(where, "bench_%s.yml" % name)
        with open(paths[name], "w") as fh:
            fh.write(book(expr))
    names = ", ".join("'S%02d'" % i for i in range(N))
    cmds = ", ".join("'fnox get S%02d'" % i for i in range(N))
    for name, expr in (("pipe1", "query('ansible.builtin.pipe', %s)" % cmds), ("fnox1", "query('remo.broker.fnox', %s)" % names)):
        paths[name] = os.path.join(proj, "bench_%s.yml" % name)
        with open(paths[name], "w") as fh:
            fh.write("- hosts: localhost\n  gather_facts: false\n  connection: local\n  tasks:\n"
                     "    - ansible.builtin.set_fact:\n        all_values: \"{{ %s }}\"\n      no_log: true\n"
                     "    - ansible.builtin.assert:\n        that: all_values | length == %d\n" % (expr, N))
    env = dict(os.environ)
    env.update({"HOME": home, "PATH": os.path.dirname(fake) + os.pathsep + env.get("PATH", ""),
                "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "ANSIBLE_LOCALHOST_WARNING": "0",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(os.path.dirname(home), "pycache")
    nopyc = dict(env, PYTHONDONTWRITEBYTECODE="1")
    del nopyc["PYTHONPYCACHEPREFIX"]     # ansible-core keeps the .pyc files pip wrote at install time
    stale = [d for d, _dirs, _files in os.walk(os.path.join(REPO, "plugins")) if d.endswith("__pycache__")]
    if stale:
        print("note: %s exist; the *_nopyc rows will use them" % ", ".join(stale), file=sys.stderr)
    runs = [(name, path, env) for name, path in paths.items()]
    runs += [(name + "_nopyc", paths[name], nopyc) for name in ("pipe", "fnox")]
    exe = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

    def run(path, run_env):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run([exe, "-i", "localhost,", path], env=run_env, cwd=os.path.dirname(path),
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit("playbook %s failed:\n%s" % (path, proc.stdout[-2000:] + proc.stderr[-2000:]))
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    for name, path, run_env in runs:     # warm-up: fills the bytecode cache, page cache
        if not name.endswith("_nopyc"):
            run(path, run_env)
    res = {name: [] for name, _path, _env in runs}
    for _round in range(rounds):
        for name, path, run_env in runs:
            res[name].append(run(path, run_env))
    return res


def med(xs):
    return statistics.median(xs)


def report(plugin, playbook, rounds, playbook_rounds):
    lines = []
    lines.append("| scenario | remo.broker.fnox | pipe + `fnox get` stand-in | ratio (pipe / fnox) |")
    lines.append("|---|---|---|---|")
    if playbook:
        def wall(name):
            return med([w for w, _c in playbook[name]])

        def cpu(name):
            return med([c for _w, c in playbook[name]])
        for label, f, p in (("50 tasks, one lookup each (age secrets)", "fnox", "pipe"),
                            ("50 tasks, one lookup each (plain secrets, no pyrage import)", "fnox_plain", "pipe"),
                            ("50 tasks, one lookup each, bytecode cache off (PYTHONDONTWRITEBYTECODE=1)", "fnox_nopyc", "pipe_nopyc"),
                            ("one task with 50 terms", "fnox1", "pipe1")):
            lines.append("| ansible-playbook, %s: wall | %.2f s | %.2f s | **%.2fx** |" % (label, wall(f), wall(p), wall(p) / wall(f)))
            lines.append("| ansible-playbook, %s: CPU | %.2f s | %.2f s | %.2fx |" % (label, cpu(f), cpu(p), cpu(p) / cpu(f)))
        base_w, base_c = wall("none"), cpu("none")
        for label, f in (("age", "fnox"), ("plain", "fnox_plain")):
            lines.append("| per task, above a 50-task run with no lookup (%.2f s wall, %.2f s CPU), %s: wall / CPU "
                         "| %.1f / %.1f ms | %.1f / %.1f ms | %.2fx / %.2fx |"
                         % (base_w, base_c, label, (wall(f) - base_w) * 1e3 / N, (cpu(f) - base_c) * 1e3 / N,
                            (wall("pipe") - base_w) * 1e3 / N, (cpu("pipe") - base_c) * 1e3 / N,
                            (wall("pipe") - base_w) / max(wall(f) - base_w, 1e-3), (cpu("pipe") - base_c) / max(cpu(f) - base_c, 1e-3)))
    lines.append("| plugin in one process, 50 run() calls, cold cache (1 parse) | %.1f ms | %.1f ms | %.1fx |"
                 % (med(plugin["fnox_cold"]) * 1e3, med(plugin["pipe"]) * 1e3, med(plugin["pipe"]) / med(plugin["fnox_cold"])))
    lines.append("| plugin in one process, 50 run() calls, warm cache (0 parses) | %.1f ms | %.1f ms | %.1fx |"
                 % (med(plugin["fnox_warm"]) * 1e3, med(plugin["pipe"]) * 1e3, med(plugin["pipe"]) / med(plugin["fnox_warm"])))
    if "pipe_real" in plugin:
        lines.append("| plugin in one process, 50 run() calls, pipe to the real fnox binary instead of the stand-in | %.1f ms | %.1f ms | %.1fx |"
                     % (med(plugin["fnox_cold"]) * 1e3, med(plugin["pipe_real"]) * 1e3,
                        med(plugin["pipe_real"]) / med(plugin["fnox_cold"])))
    lines.append("")
    lines.append("Medians of %d playbook rounds and %d plugin rounds; Python %s, ansible-core %s, %s, %d CPUs."
                 % (playbook_rounds, rounds, platform.python_version(), _ansible_version(), platform.machine(), os.cpu_count() or 0))
    return "\n".join(lines)


def _ansible_version():
    from ansible.release import __version__
    return __version__


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--playbook-rounds", type=int, help="rounds of ansible-playbook runs (default: --rounds)")
    ap.add_argument("--no-playbook", action="store_true")
    ap.add_argument("--write", help="write the results into this markdown file, between %s and %s if it has them"
                    % (START, END))
    args = ap.parse_args()
    pb_rounds = args.playbook_rounds or args.rounds
    ensure_collection_link()
    with tempfile.TemporaryDirectory() as root:
        home, proj, fake = make_world(root)
        playbook = None if args.no_playbook else bench_playbook(home, proj, fake, pb_rounds)
        plugin = bench_plugin(home, proj, fake, args.rounds)
    table = report(plugin, playbook, args.rounds, pb_rounds)
    print(table)
    if args.write:
        cmd = ".venv/bin/python benchmarks/bench_fnox_lookup.py --rounds %d%s --write %s" % (
            args.rounds, " --playbook-rounds %d" % args.playbook_rounds if args.playbook_rounds else "", args.write)
        block = "%s\n\nCommand:\n\n```\n%s\n```\n\n%s\n\n%s" % (START, cmd, table, END)
        text = ""
        if os.path.exists(args.write):
            with open(args.write) as fh:
                text = fh.read()
        if START in text and END in text:
            text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
        else:
            text = "# Benchmark: `remo.broker.fnox` vs `lookup('pipe', 'fnox get NAME')`\n\n" + block + "\n"
        with open(args.write, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
