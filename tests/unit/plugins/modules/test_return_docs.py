# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Each module's RETURN documents exactly what it returns against a real daemon.

For every module in plugins/modules, the scenarios below run it (success, check mode and
failure paths) against the ``daemon`` fixture and compare each result with RETURN:

* every returned key is documented (Ansible's own result keys aside), at every depth of
  ``contains``;
* every value has the documented type, and so does every documented ``sample``;
* every key documented as ``returned: always`` or ``success`` is there on success.

A module without scenarios here fails the test, so new modules are covered.
"""

from __future__ import annotations

import importlib
import os

import pytest
import yaml

from ansible_collections.remo.broker.tests.unit.broker_harness import COLLECTION_ROOT
from ansible_collections.remo.broker.tests.unit.plugins.modules.module_runner import run_module

MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(COLLECTION_ROOT, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))
# Keys Ansible adds or handles itself; documented in its common return values.
COMMON = {"changed", "failed", "msg", "exception", "invocation", "diff", "warnings", "deprecations", "skipped", "_rc", "_raw"}
TYPES = {
    "str": (str,), "int": (int,), "float": (float, int), "bool": (bool,), "list": (list,),
    "dict": (dict,), "complex": (dict, list), "raw": (object,), "path": (str,),
}
MANIFEST = """\
schema_version = 2
project = "retdoc"

[secrets.GITHUB_TOKEN]
fetch_as = "env"

[secrets.aws]
fetch_as = "file"
file_path = "/run/secrets/aws/config"
file_mode = "0400"
template = "[default]\\naws_access_key_id={{access_key_id}}\\n"
"""


def write_project(root):
    project = root / "retdoc"
    (project / ".remo").mkdir(parents=True, exist_ok=True)
    (project / ".remo" / "manifest.toml").write_text(MANIFEST)
    return str(project)


def scenarios(name, conn, tmp_path, monkeypatch):
    """(label, args, run_module keyword arguments, expect_failure) for module ``name``."""
    missing = {"socket_path": str(tmp_path / "no-daemon" / "admin.sock"), "timeout": 2.0}
    if name == "remo_broker_push":
        return [
            ("push", dict(conn, secrets={"A": "value-a", "B": "value-b"}), {}, False),
            ("push again, diff", dict(conn, secrets={"A": "value-a", "C": "value-c"}), {"diff": True}, False),
            ("check mode", dict(conn, secrets={"D": "value-d"}), {"check_mode": True}, False),
            ("source", dict(conn, source="vault", secrets={"A": "value-v"}), {}, False),
            ("source unchanged", dict(conn, source="vault", secrets={"A": "value-v"}), {}, False),
            ("clear a source", dict(conn, source="vault", state="absent"), {}, False),
            ("clear", dict(conn, state="absent"), {}, False),
            ("daemon down", dict(missing, secrets={"A": "value-a"}), {}, True),
        ]
    if name == "remo_broker_info":
        # A daemon with secrets and a project, so that every field of the status has content.
        from ansible_collections.remo.broker.plugins.modules import remo_broker_push, remo_manifest
        assert not run_module(remo_broker_push.main, dict(conn, secrets={"GITHUB_TOKEN": "v"})).get("failed")
        assert not run_module(remo_manifest.main, dict(conn, project_path=write_project(tmp_path),
                                                       approved_root=str(tmp_path / "approved"),
                                                       expected_uid=os.getuid())).get("failed")
        return [
            ("status", dict(conn), {}, False),
            ("daemon down", dict(missing), {}, True),
        ]
    if name == "remo_manifest":
        project = write_project(tmp_path)
        (tmp_path / "synth").mkdir()
        conn = dict(conn, approved_root=str(tmp_path / "approved"))
        return [
            ("validated", dict(project_path=project, state="validated"), {}, False),
            ("register", dict(conn, project_path=project, expected_uid=os.getuid()), {"diff": True}, False),
            ("unregister", dict(conn, name="retdoc", state="absent"), {}, False),
            ("synthesize", dict(conn, project_path=str(tmp_path / "synth"), name="synth", expected_uid=os.getuid(),
                                secrets=[{"name": "NPM_TOKEN", "fetch_as": "env"}]), {}, False),
            ("missing manifest", dict(project_path=str(tmp_path / "empty"), state="validated"), {}, True),
        ]
    if name == "remo_vault_secret":
        # The sidecar's own CLI behind a strict ``docker`` stand-in (see test_remo_vault_secret.py).
        from ansible_collections.remo.broker.tests.unit.plugins.modules.test_remo_vault_secret import make_sidecar
        vault = {"container": "remo-vault-test", "docker_cli": make_sidecar(tmp_path, monkeypatch.setenv)["docker"]}
        return [
            ("set", dict(vault, name="NPM_TOKEN", value="value-1"), {"diff": True}, False),
            ("unchanged", dict(vault, name="NPM_TOKEN", value="value-1"), {}, False),
            ("check mode", dict(vault, name="NPM_TOKEN", value="value-2"), {"check_mode": True, "diff": True}, False),
            ("remove", dict(vault, name="NPM_TOKEN", state="absent"), {}, False),
            ("sidecar down", dict(vault, container="no-such-sidecar", name="NPM_TOKEN", value="value-1"), {}, True),
        ]
    return None


def documented(name):
    module = importlib.import_module("ansible_collections.remo.broker.plugins.modules." + name)
    return module, yaml.safe_load(module.RETURN) or {}


def type_ok(value, spec):
    kind = spec.get("type", "str")
    if value is None:
        # Only where the description says the value may be null.
        return "null" in str(spec.get("description", "")).lower()
    if kind in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def compare(value, spec, where, problems, check_required=True):
    """Check ``value`` against the RETURN entry ``spec``."""
    if not type_ok(value, spec):
        problems.append("%s: returned %s, documented type %s" % (where, type(value).__name__, spec.get("type")))
        return
    contains = spec.get("contains")
    if spec.get("type") == "list":
        for i, item in enumerate(value):
            element = {"type": spec.get("elements", "raw"), "contains": contains} if contains else {"type": spec.get("elements", "raw")}
            compare(item, element, "%s[%d]" % (where, i), problems, check_required)
    elif contains and isinstance(value, dict):
        compare_dict(value, contains, where, problems, check_required)


def compare_dict(result, specs, where, problems, check_required, skip=()):
    for key, value in result.items():
        if key in skip:
            continue
        if key not in specs:
            problems.append("%s%s: returned but not documented" % (where + "." if where else "", key))
            continue
        compare(value, specs[key], (where + "." if where else "") + key, problems, check_required)
    if check_required:
        for key, spec in specs.items():
            if spec.get("returned") in ("always", "success") and key not in result:
                problems.append("%s%s: documented as returned %s but missing"
                                % (where + "." if where else "", key, spec.get("returned")))


def check_samples(specs, where, problems):
    for key, spec in specs.items():
        path = (where + "." if where else "") + key
        if spec.get("type") not in TYPES:
            problems.append("%s: unknown type %r" % (path, spec.get("type")))
            continue
        if "sample" in spec:
            compare(spec["sample"], spec, path + " (sample)", problems, check_required=False)
        if spec.get("contains"):
            check_samples(spec["contains"], path, problems)


@pytest.mark.parametrize("name", MODULES)
def test_samples_have_the_documented_types(name):
    returns = documented(name)[1]
    problems = []
    check_samples(returns, "", problems)
    assert not problems, "%s RETURN samples:\n  %s" % (name, "\n  ".join(problems))


@pytest.mark.parametrize("name", MODULES)
def test_results_match_return_docs(name, conn, tmp_path, monkeypatch):
    module, returns = documented(name)
    runs = scenarios(name, conn, tmp_path, monkeypatch)
    assert runs, "%s has no scenarios in %s: add the invocations that exercise its RETURN" % (name, __file__)
    problems, seen = [], set()
    for label, args, kwargs, expect_failure in runs:
        result = run_module(module.main, args, **kwargs)
        assert bool(result.get("failed")) is expect_failure, "%s %s: %s" % (name, label, result.get("msg"))
        returned = {key: value for key, value in result.items() if key not in COMMON}
        seen.update(returned)
        # On failure only what the failure returns is required; the rest must still match.
        compare_dict(returned, returns, "", problems, check_required=not expect_failure)
        problems[:] = ["%s (%s)" % (p, label) if not p.endswith(")") else p for p in problems]
    never = sorted(set(returns) - seen)
    assert not problems, "%s returns differ from RETURN:\n  %s" % (name, "\n  ".join(problems))
    assert not never, "%s documents %s, which no scenario returned" % (name, never)
