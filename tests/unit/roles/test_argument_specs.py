# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Every role's meta/argument_specs.yml must describe its defaults exactly.

ansible-core validates arguments against argument_specs but never checks that the
specs agree with defaults/main.yml; a default added without a spec (or a spec whose
default differs) would silently document the wrong behaviour.
"""
import pathlib

import pytest
import yaml

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "tasks" / "main.yml").exists())


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role):
    specs_file = role / "meta" / "argument_specs.yml"
    assert specs_file.exists(), f"{role.name}: meta/argument_specs.yml is missing"
    options = yaml.safe_load(specs_file.read_text())["argument_specs"]["main"]["options"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    defaults = defaults or {}

    assert sorted(options) == sorted(defaults), f"{role.name}: argument_specs and defaults name different variables"
    for name, spec in options.items():
        assert spec.get("description"), f"{role.name}: {name} has no description"
        assert spec.get("default") == defaults[name], f"{role.name}: {name} default differs between defaults/main.yml and argument_specs"
        assert name.startswith(role.name + "_"), f"{role.name}: {name} lacks the role prefix"


def test_some_role_is_checked():
    assert ROLE_DIRS, "no roles found"
