# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""galaxy.yml and meta/runtime.yml say what the shipped content really needs and tests.

* Every collection a role or plugin uses by FQCN is a declared dependency; one that only
  a playbook uses is either declared or named in the README next to that playbook.
* ``requires_ansible`` is the oldest ansible-core the test command runs on.
* build_ignore keeps everything the shipped tests and the README's commands need.
* Each action group's modules document their membership, and no other module does.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FQCN = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*\b")
OWN = {("ansible", "builtin"), ("remo", "broker"), ("ansible", "legacy")}


def load(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def files_under(*dirs, ext=(".yml", ".yaml", ".py", ".j2")):
    for top in dirs:
        for dirpath, _dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            for filename in filenames:
                if filename.endswith(ext):
                    yield os.path.join(dirpath, filename)


IMPORT = re.compile(r"\bansible_collections\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\b")


def collections_used(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".py"):
        return {"%s.%s" % m.groups() for m in IMPORT.finditer(text) if m.groups() not in OWN}
    # Only task keys, connection names and module references, not prose in comments.
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return {"%s.%s" % m.groups() for m in FQCN.finditer(code)
            if m.groups() not in OWN and not m.group(0).startswith(("group.", "ansible_collections."))
            and re.search(r"(^|[\s:'\"(])%s(:|\s*$|['\"])" % re.escape(m.group(0)), code, re.M)}


def test_roles_and_plugins_use_only_declared_collections():
    declared = set(load("galaxy.yml").get("dependencies") or {})
    used = {}
    for path in files_under("roles", "plugins"):
        for name in collections_used(path):
            used.setdefault(name, []).append(os.path.relpath(path, ROOT))
    undeclared = {name: where for name, where in used.items() if name not in declared}
    assert not undeclared, "declare these in galaxy.yml dependencies: %s" % undeclared


def test_playbook_only_collections_are_named_in_the_readme():
    declared = set(load("galaxy.yml").get("dependencies") or {})
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    problems = []
    for path in files_under("playbooks"):
        playbook = os.path.basename(path).rsplit(".", 1)[0]
        for name in collections_used(path) - declared:
            # Both in one paragraph of the README.
            if not any(playbook in para and name in para for para in readme.split("\n\n")):
                problems.append("%s uses %s: declare it or say so in README.md" % (os.path.relpath(path, ROOT), name))
    assert not problems, problems


def test_fqcn_scan_finds_a_use():
    # The scan must see what it is meant to see, or the tests above prove nothing.
    assert "community.docker" in collections_used(os.path.join(ROOT, "playbooks", "local_site.yml"))


def test_requires_ansible_is_the_oldest_tested_version():
    required = load("meta/runtime.yml")["requires_ansible"]
    with open(os.path.join(ROOT, "requirements", "ansible-core-oldest.lock"), encoding="utf-8") as handle:
        oldest = re.search(r"^ansible-core==(\S+)$", handle.read(), re.M).group(1)
    assert required == ">=%s" % oldest, "requires_ansible %s, but the oldest tested ansible-core is %s" % (required, oldest)
    galaxy_info = [load(os.path.join("roles", r, "meta", "main.yml"))["galaxy_info"] for r in os.listdir(os.path.join(ROOT, "roles"))
                   if os.path.exists(os.path.join(ROOT, "roles", r, "meta", "main.yml"))]
    for info in galaxy_info:
        assert oldest.startswith(str(info["min_ansible_version"])), info


def test_build_ignore_keeps_what_tests_and_readme_need():
    ignore = load("galaxy.yml").get("build_ignore") or []
    needed = [os.path.relpath(p, ROOT) for p in files_under("tests", "scripts", "requirements", "benchmarks", ext=("",))]
    needed += ["conftest.py", "pyproject.toml", "ansible.cfg", "README.md", "LICENSE"]
    dropped = []
    for path in needed:
        if "__pycache__" in path or path.endswith(".pyc"):
            continue
        parts = path.split(os.sep)
        for pattern in ignore:
            if any(fnmatch.fnmatch(os.sep.join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
                dropped.append((path, pattern))
    assert not dropped, "build_ignore drops files the shipped tests or the README need: %s" % dropped[:10]


def module_doc(name):
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".cache", "collections"))
    out = subprocess.run([ansible_doc, "--json", "-t", "module", "remo.broker." + name], env=env,
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out)["remo.broker." + name]["doc"]


MODULES = sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "plugins", "modules")) if n.endswith(".py") and not n.startswith("_"))


@pytest.mark.parametrize("name", MODULES)
def test_action_group_membership_is_documented(name):
    groups = load("meta/runtime.yml").get("action_groups") or {}
    expected = sorted("remo.broker.%s" % group for group, members in groups.items()
                      if name in members or "remo.broker." + name in members)
    documented = module_doc(name).get("attributes", {}).get("action_group", {}).get("membership", [])
    assert sorted(documented) == expected, "%s: documented action groups %s, meta/runtime.yml says %s" % (name, documented, expected)
