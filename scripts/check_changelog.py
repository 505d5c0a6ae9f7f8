# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove that the changelog fragments make a correct changelog for the next release.

Runs ``antsibull-changelog release`` on a scratch copy of the collection (the checkout
is not touched) and checks the result: a release summary; every module, plugin, role
and playbook of the collection listed as new exactly once (roles and playbooks through
``add object.*`` fragments, which antsibull-changelog cannot detect); no module
announced again in the change sections; development-only entries kept out of the
major and minor changes.

Usage: python3 scripts/check_changelog.py   (antsibull-changelog and ansible-doc on PATH)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ["changelogs", "galaxy.yml", "meta", "plugins", "roles", "playbooks"]
# Words that mark a development-only change; such entries belong under ``trivial``.
DEVELOPMENT = re.compile(r"\b(bootstrap|test command|CI|Molecule scenario|ansible-lint|sanity)\b")


def collection_content():
    names = {"module": set(), "role": set(), "playbook": set(), "plugin": set()}
    for path in os.listdir(os.path.join(ROOT, "plugins", "modules")):
        if path.endswith(".py") and not path.startswith("_"):
            names["module"].add(path[:-3])
    for kind in os.listdir(os.path.join(ROOT, "plugins")):
        if kind in ("modules", "module_utils", "doc_fragments", "plugin_utils") or kind.startswith("_"):
            continue
        for path in os.listdir(os.path.join(ROOT, "plugins", kind)):
            if path.endswith(".py") and not path.startswith("_"):
                names["plugin"].add("%s/%s" % (kind, path[:-3]))
    names["role"] = {d for d in os.listdir(os.path.join(ROOT, "roles")) if os.path.isdir(os.path.join(ROOT, "roles", d))}
    names["playbook"] = {p[:-4] for p in os.listdir(os.path.join(ROOT, "playbooks")) if p.endswith(".yml")}
    return names


def main():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    errors = []
    with tempfile.TemporaryDirectory(prefix="remo-changelog-") as scratch:
        for name in SHIPPED:
            src = os.path.join(ROOT, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(scratch, name))
        proc = subprocess.run(["antsibull-changelog", "release", "--version", str(version), "--date", "2000-01-01"],
                              cwd=scratch, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 1
        with open(os.path.join(scratch, "changelogs", "changelog.yaml"), encoding="utf-8") as handle:
            release = yaml.safe_load(handle)["releases"][str(version)]
        with open(os.path.join(scratch, "CHANGELOG.md"), encoding="utf-8") as handle:
            rendered = handle.read()

    changes = release.get("changes", {})
    if not changes.get("release_summary"):
        errors.append("no release_summary fragment for %s" % version)
    content = collection_content()
    listed = {
        "module": [m["name"] for m in release.get("modules", [])],
        "plugin": ["%s/%s" % (kind, p["name"]) for kind, plugins in release.get("plugins", {}).items() for p in plugins],
        "role": [o["name"] for o in release.get("objects", {}).get("role", [])],
        "playbook": [o["name"] for o in release.get("objects", {}).get("playbook", [])],
    }
    for kind, names in content.items():
        for name in sorted(names):
            count = listed[kind].count(name)
            if count != 1:
                hint = " (add it under 'add object.%s' in a fragment)" % kind if kind in ("role", "playbook") and not count else ""
                errors.append("%s %s is listed %d times as new%s" % (kind, name, count, hint))
    for section in ("major_changes", "minor_changes", "breaking_changes", "bugfixes"):
        for entry in changes.get(section, []):
            if re.search(r"\bnew (module|lookup|plugin|role|playbook)\b", entry):
                errors.append("%s announces new content that the changelog lists already: %s" % (section, entry[:90]))
            if section in ("major_changes", "minor_changes") and DEVELOPMENT.search(entry):
                errors.append("%s holds a development-only entry (use trivial): %s" % (section, entry[:90]))
    for module in content["module"]:
        hits = len(re.findall(r"remo\\?\.broker\\?\.%s\\? \\?-" % re.escape(module).replace("_", r"\\?_"), rendered))
        if hits != 1:
            errors.append("CHANGELOG.md names module %s as new %d times" % (module, hits))
    for error in errors:
        print("changelog: " + error, file=sys.stderr)
    if not errors:
        print("changelog for %s: release summary, %s" % (version, ", ".join(
            "%d %s(s)" % (len(v), k) for k, v in sorted(listed.items()))))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
