# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Everything README.md and docs/*.md name exists, and every README command runs.

* Files: every repository path in inline code or a link (placeholders such as NAME or
  <stage> match anything), and every relative link target.
* Content: every ``remo.broker.X`` is a module, plugin, role, playbook or action group.
* ``scripts/dev.sh`` invocations anywhere name a real command and real stages.
* README shell blocks: each command is run, in a form that cannot recurse into this test
  run: ``scripts/dev.sh test`` runs with ``--list`` (the stage list it would go through,
  which must be every stage, the way ``.ci/run`` calls it); ``scripts/dev.sh demo`` runs
  the real demo playbook with ``--syntax-check``; the ``ansible-galaxy`` build and install
  commands run for real on a copy of the checkout. A README command this test does not
  know fails it, so a new one gets a check.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGES = ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".md"))
TOP = {name for name in os.listdir(ROOT) if not name.startswith((".git", ".cache", ".venv"))} | {".ci"}
DEV = os.path.join(ROOT, "scripts", "dev.sh")
PLACEHOLDER = re.compile(r"<[^>]*>|\b[A-Z][A-Z_]{2,}\b(\.\.\.)?")


def read(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
        return handle.read()


def code_spans(text):
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def shell_blocks(text):
    return [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S)
            for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


# Stages that `scripts/dev.sh test` leaves out of the default run; the README must name
# each one, so a reader knows how to run it.
# None today: every stage runs by default.
OPT_IN_STAGES = set()


def dev_stages():
    """The stages of the default run (``scripts/dev.sh test --list``)."""
    out = subprocess.run(["bash", DEV, "test", "--list"], capture_output=True, text=True, check=True, timeout=60).stdout
    return out.split()


def all_dev_stages():
    with open(DEV, encoding="utf-8") as handle:
        return re.findall(r"^stage_([a-z0-9]+)\(\)", handle.read(), re.M)


def repo_path(token):
    token = token.split("::")[0].rstrip(".,:;)")
    first = token.split("/")[0]
    if "/" not in token and token not in TOP:
        return None
    if first not in TOP:
        return None
    return PLACEHOLDER.sub("*", token)


@pytest.mark.parametrize("page", PAGES)
def test_named_files_exist(page):
    text = read(page)
    missing = []
    for span in code_spans(text):
        words = span.split()
        if not words:
            continue
        pattern = repo_path(words[0])
        if pattern and not glob.glob(os.path.join(ROOT, pattern)):
            missing.append(span)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target.split("#")[0]))
        if not os.path.exists(path):
            missing.append(target)
    assert not missing, "%s names files that do not exist: %s" % (page, missing)


def collection_names():
    names = {n[:-3] for n in os.listdir(os.path.join(ROOT, "plugins", "modules")) if n.endswith(".py")}
    for kind in os.listdir(os.path.join(ROOT, "plugins")):
        if os.path.isdir(os.path.join(ROOT, "plugins", kind)):
            names |= {n[:-3] for n in os.listdir(os.path.join(ROOT, "plugins", kind)) if n.endswith(".py")}
    names |= set(os.listdir(os.path.join(ROOT, "roles")))
    names |= {n.rsplit(".", 1)[0] for n in os.listdir(os.path.join(ROOT, "playbooks")) if n.endswith((".yml", ".yaml"))}
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as handle:
        names |= set((yaml.safe_load(handle) or {}).get("action_groups") or {})
    return names


@pytest.mark.parametrize("page", PAGES)
def test_named_content_exists(page):
    known = collection_names()
    named = set(re.findall(r"(?<!ansible_collections\.)\bremo\.broker\.([a-z_][a-z0-9_]*)", read(page)))
    assert not named - known, "%s names remo.broker content that does not exist: %s" % (page, sorted(named - known))


@pytest.mark.parametrize("page", PAGES)
def test_dev_sh_invocations_are_real(page):
    stages = set(all_dev_stages())
    problems = []
    for span in code_spans(read(page)) + shell_blocks(read(page)):
        if not span.startswith("scripts/dev.sh"):
            continue
        words = [w for w in shlex.split(span)[1:] if not PLACEHOLDER.fullmatch(w)]
        if not words:
            continue  # the script itself, named as a file
        if words[0] not in ("test", "demo", "help", "--help"):
            problems.append(span)
        elif words[0] == "test" and not set(w for w in words[1:] if not w.startswith("--")) <= stages:
            problems.append(span)
    assert not problems, "%s: unknown scripts/dev.sh commands or stages: %s" % (page, problems)


def test_dev_sh_stage_list_fails_on_unknown_stage():
    proc = subprocess.run(["bash", DEV, "test", "no_such_stage", "--list"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "unknown stage: no_such_stage" in proc.stdout


def copy_checkout(dest):
    """The files git knows about; outside a git checkout (an installed collection), all files."""
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.copytree(ROOT, dest, symlinks=True, ignore=shutil.ignore_patterns(".git", ".cache", ".venv", ".ansible"))
        return
    for name in proc.stdout.splitlines():
        src = os.path.join(ROOT, name)
        if os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, name))


def test_every_readme_command_runs(tmp_path):
    commands = shell_blocks(read("README.md"))
    assert commands, "README.md has no sh blocks"
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"))
    checkout = tmp_path / "checkout"
    copy_checkout(checkout)
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as handle:
        ci = handle.read()
    for command in commands:
        argv = shlex.split(command)
        if argv[:2] == ["scripts/dev.sh", "test"]:
            assert re.search(r"^exec bash scripts/dev\.sh test$", ci, re.M), ".ci/run does not run scripts/dev.sh test"
            listed = dev_stages()
            assert listed[:len(argv) - 2] or listed, command
            skipped = set(all_dev_stages()) - set(listed)
            assert skipped == OPT_IN_STAGES, "scripts/dev.sh test skips stages: %s" % (skipped - OPT_IN_STAGES)
            for stage in sorted(OPT_IN_STAGES):
                assert "scripts/dev.sh test %s" % stage in read("README.md"), "README.md does not say how to run %s" % stage
        elif argv[:2] == ["scripts/dev.sh", "demo"]:
            proc = subprocess.run(["bash", DEV, "demo", "--no-bootstrap", "--syntax-check"], capture_output=True,
                                  text=True, timeout=300, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        elif argv[:3] == ["ansible-galaxy", "collection", "build"]:
            proc = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=300, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        elif argv[:3] == ["ansible-galaxy", "collection", "install"]:
            expanded = [m for a in argv for m in (sorted(glob.glob(str(checkout / a))) if "*" in a else [a])]
            assert len(expanded) == len(argv), "%s: the tarball it names was not built" % command
            # The declared dependencies are already installed (from the project venv), as
            # Galaxy would have brought them; this machine cannot reach Galaxy.
            site = next(glob.iglob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "ansible_collections")))
            deps = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "dependency_closure.py"), site],
                                  capture_output=True, text=True, check=True, timeout=60).stdout.split()
            for dep in deps:
                namespace, name = dep.split(".")
                shutil.copytree(os.path.join(site, namespace, name),
                                tmp_path / "installed" / "ansible_collections" / namespace / name)
            proc = subprocess.run(expanded + ["-p", str(tmp_path / "installed"), "--offline"], cwd=checkout, env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert (tmp_path / "installed" / "ansible_collections" / "remo" / "broker" / "MANIFEST.json").exists()
        else:
            pytest.fail("README command %r has no check in %s" % (command, __file__))
