# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A tomli too old for TOML 1.1 is refused with the required version and the reason.

Uses the real tomli 2.0.1 release (its wheel, fetched by scripts/bootstrap.sh) in a
separate interpreter, so the lookup meets exactly what a user with that tomli has.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
OLD_TOMLI = glob.glob(os.path.join(REPO, ".cache", "wheels", "tomli-2.0.1", "tomli-2.0.1-*.whl"))
# TOML 1.1 as fnox writes it: a multi-line inline table with a trailing comma.
FNOX_TOML = 'root = true\n[secrets]\nA = {\n  provider = "p",\n  value = "x",\n}\n'
PROBE = """
import sys
from ansible_collections.remo.broker.plugins.plugin_utils import _fnox
import tomli
print("tomli", tomli.__version__)
try:
    _fnox.parse_config_text("/srv/fnox.toml", sys.stdin.read())
except _fnox.FnoxError as exc:
    print("ERROR", exc)
else:
    print("PARSED")
"""


def run_probe(*path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*path, os.path.join(REPO, ".cache", "collections")]))
    proc = subprocess.run([sys.executable, "-c", PROBE], input=FNOX_TOML, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout


def test_old_tomli_is_refused_with_version_and_reason():
    assert OLD_TOMLI, "run scripts/bootstrap.sh: it fetches the tomli 2.0.1 wheel this test uses"
    out = run_probe(OLD_TOMLI[0])
    assert "tomli 2.0.1" in out, out
    assert "ERROR" in out and "tomli>=2.4.0 is required to parse fnox's TOML 1.1 config files" in out, out
    assert "but tomli 2.0.1 is installed" in out and "pip install 'tomli>=2.4.0'" in out, out


def test_current_tomli_parses_the_same_file():
    out = run_probe()
    assert "PARSED" in out, out


def test_missing_pyrage_names_its_purpose(monkeypatch):
    monkeypatch.setattr(_fnox, "HAS_PYRAGE", False)
    with pytest.raises(_fnox.FnoxDependencyError) as caught:
        _fnox.check_dependencies(need_age=True)
    message = str(caught.value)
    assert "pyrage>=1.4.0 is required to decrypt age-encrypted secrets, but it is not installed" in message
    assert "read fnox configs" not in message


def test_version_comparison():
    assert _fnox._version_tuple("2.0.1") < (2, 4, 0) <= _fnox._version_tuple("2.4.0")
    assert _fnox._version_tuple("2.10.0rc1") > (2, 4, 0)
