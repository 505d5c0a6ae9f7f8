# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret resolution: plain, age (x25519 + ssh-ed25519, every identity source and their order),
defaults, env fallback, if_missing, json_path/line, sync, and delegation to a stand-in fnox."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pytest

from ansible_collections.remo.broker.plugins.plugin_utils import _fnox
from test_fnox_support import AgeKey, SshKey, encrypt, fake_calls, fake_fnox, fx, write  # noqa: F401  pylint: disable=unused-import

CANARY = "canary-7f3a-{{ 7*6 }}"


def age_config(fx, key_file=None, identity=None, extra_providers="", secrets=None, recipients=()):
    fields = ['type = "age"', "recipients = [%s]" % ", ".join('"%s"' % r for r in recipients)]
    if key_file is not None:
        fields.append('key_file = "%s"' % key_file)
    if identity is not None:
        fields.append('identity = { provider = "%s", value = "%s" }' % identity)
    text = "[providers]\nage = { %s }\n%s[secrets]\n" % (", ".join(fields), extra_providers)
    for name, spec in (secrets or {}).items():
        text += "%s = %s\n" % (name, spec)
    return fx.write("work/proj/fnox.toml", text)


# --- plain, defaults, env, if_missing ---------------------------------------------------

def test_plain_returns_value_verbatim(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             "A = { provider = \"p\", value = '''  spaced\nmulti  \n''' }\n")
    assert fx.get("A") == "  spaced\nmulti  \n"


def test_default_interpolation_and_errors(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             'HOST = { provider = "p", value = "db.internal" }\n'
             'PORT = { default = "5432" }\n'
             'URL = { default = "postgres://${HOST}:${PORT}/app" }\n'
             'NESTED = { default = "[${URL}]" }\n'
             'LITERAL = { default = "no ${refs" }\n'
             'UNDEF = { default = "${NOPE}" }\n'
             'CYC1 = { default = "${CYC2}" }\nCYC2 = { default = "${CYC1}" }\n'
             'SELF = { default = "${SELF}" }\n'
             'EMPTYREF = { default = "${}" }\n')
    assert fx.get("URL") == "postgres://db.internal:5432/app"
    assert fx.get("NESTED") == "[postgres://db.internal:5432/app]"
    assert fx.get("LITERAL") == "no ${refs"
    with pytest.raises(_fnox.FnoxConfigError, match="undefined secret 'NOPE'"):
        fx.get("UNDEF")
    with pytest.raises(_fnox.FnoxConfigError, match="cycle"):
        fx.get("CYC1")
    with pytest.raises(_fnox.FnoxConfigError, match="cycle"):
        fx.get("SELF")
    with pytest.raises(_fnox.FnoxConfigError, match="empty interpolation"):
        fx.get("EMPTYREF")


def test_interpolated_ref_missing_under_ignore_renders_empty(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             'OPT = { if_missing = "ignore" }\nURL = { default = "a${OPT}b" }\n')
    assert fx.get("URL", override=None) == "ab"
    with pytest.raises(_fnox.FnoxConfigError, match="references 'OPT', which has no value"):
        fx.get("URL", override="error")


def test_env_fallback_and_priority(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             'E = {}\nD = { default = "from-default" }\nV = { provider = "p", value = "from-provider" }\n')
    fx.env.update({"E": "from-env", "D": "env-loses", "V": "env-loses"})
    assert fx.get("E") == "from-env"
    assert fx.get("D") == "from-default"
    assert fx.get("V") == "from-provider"


@pytest.mark.parametrize("secret_level,top_level,env,override,expected", [
    (None, None, {}, None, None),                                   # fnox's default is warn
    ("error", None, {}, None, "raise"),
    ("ignore", "error", {}, None, None),                            # secret beats top level
    (None, "error", {}, None, "raise"),
    (None, None, {"FNOX_IF_MISSING_DEFAULT": "error"}, None, "raise"),
    (None, "ignore", {"FNOX_IF_MISSING_DEFAULT": "error"}, None, None),
    ("ignore", None, {"FNOX_IF_MISSING": "error"}, None, "raise"),  # env beats secret
    ("ignore", None, {"FNOX_IF_MISSING": "ignore"}, "error", "raise"),  # flag beats env
])
def test_if_missing_priority(fx, secret_level, top_level, env, override, expected):
    text = '[providers]\np = { type = "plain" }\n'
    if top_level:
        text = 'if_missing = "%s"\n' % top_level + text
    text += "[secrets]\nM = { %s }\n" % ('if_missing = "%s"' % secret_level if secret_level else "")
    fx.write("work/proj/fnox.toml", text)
    fx.env.update(env)
    if expected == "raise":
        with pytest.raises(_fnox.FnoxMissing):
            fx.get("M", override=override)
    else:
        assert fx.get("M", override=override) is expected


def test_provider_error_falls_back_to_default_only_if_set(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             'A = { provider = "ghost", value = "x", default = "fallback" }\n'
             'B = { provider = "ghost", value = "x", if_missing = "ignore" }\n')
    assert fx.get("A") == "fallback"
    with pytest.raises(_fnox.FnoxProviderError, match="'ghost'"):
        fx.get("B", override=None)


# --- json_path / line ------------------------------------------------------------------

def test_json_path(fx):
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             "J = { provider = \"p\", value = '{\"a\": {\"b.c\": \"deep\", \"n\": 5, \"o\": {\"z\": 1, \"y\": [1, 2]}}, \"nil\": null}' }\n"
             'J1 = { provider = "p", value = "@J", json_path = "a.b\\\\.c" }\n')
    raw = '{"a": {"b.c": "deep", "n": 5, "o": {"z": 1, "y": [1, 2]}}, "nil": null}'
    assert _fnox.extract_json_path("K", raw, "a.b\\.c") == "deep"
    assert _fnox.extract_json_path("K", raw, "a.n") == "5"
    assert _fnox.extract_json_path("K", raw, "a.o") == '{"y":[1,2],"z":1}'
    assert _fnox.extract_json_path("K", raw, "nil") == "null"
    with pytest.raises(_fnox.FnoxConfigError, match="not found") as err:
        _fnox.extract_json_path("K", raw, "a.missing")
    assert "deep" not in str(err.value)
    with pytest.raises(_fnox.FnoxConfigError, match="not valid JSON") as err:
        _fnox.extract_json_path("K", "not-json " + CANARY, "a")
    assert CANARY not in str(err.value)
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             "J = { provider = \"p\", value = '%s', json_path = 'a.b\\.c' }\n" % raw +
             'D = { default = \'{"k": "from-default"}\', json_path = "k" }\n')
    assert fx.get("J") == "deep"
    assert fx.get("D") == "from-default"
    fx.env["E"] = '{"k": [1]}'
    fx.write("work/proj/fnox.local.toml", '[secrets]\nE = { json_path = "k" }\n')
    assert fx.get("E") == "[1]"


def test_line(fx):
    assert _fnox.rust_lines("a\r\nb\n") == ["a", "b"]
    assert _fnox.rust_lines("a\n\nb") == ["a", "", "b"]
    assert _fnox.rust_lines("") == []
    assert _fnox.rust_lines("\n") == [""]
    assert _fnox.rust_lines("a\u2028b") == ["a\u2028b"]   # not str.splitlines
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[secrets]\n'
             'L = { provider = "p", value = "user\\r\\npass\\n", line = 2 }\n'
             'L0 = { provider = "p", value = "x", line = 0 }\n'
             'L9 = { provider = "p", value = "x", line = 9 }\n'
             'BOTH = { provider = "p", value = "x", line = 1, json_path = "a" }\n')
    assert fx.get("L") == "pass"
    with pytest.raises(_fnox.FnoxConfigError, match="1-indexed"):
        fx.get("L0")
    with pytest.raises(_fnox.FnoxConfigError, match="out of range"):
        fx.get("L9")
    with pytest.raises(_fnox.FnoxConfigError, match="mutually exclusive"):
        fx.get("BOTH")


# --- age -------------------------------------------------------------------------------

def test_age_key_file_relative_to_declaring_file(fx):
    k = AgeKey()
    write(os.path.join(fx.root, "work", "keys", "k.txt"), k.file_text())
    fx.write("work/fnox.toml", '[providers]\nage = { type = "age", recipients = ["%s"], key_file = "keys/k.txt" }\n' % k.recipient)
    fx.write("work/proj/fnox.toml", '[secrets]\nA = { provider = "age", value = "%s" }\n' % encrypt(CANARY, [k.recipient]))
    assert fx.get("A") == CANARY


def test_age_tilde_key_file(fx):
    k = AgeKey()
    write(os.path.join(fx.home, "k.txt"), k.file_text())
    age_config(fx, key_file="~/k.txt", secrets={"A": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    assert fx.get("A") == "v"


def test_age_identity_order(fx):
    """FNOX_AGE_KEY > identity(plain) > key_file > FNOX_AGE_KEY_FILE > $FNOX_CONFIG_DIR/age.txt."""
    keys = [AgeKey() for _k in range(5)]
    env_key, ident_key, file_key, envfile_key, default_key = keys
    write(os.path.join(fx.root, "keyfile.txt"), file_key.file_text())
    write(os.path.join(fx.root, "envfile.txt"), envfile_key.file_text())
    write(os.path.join(fx.cfgdir, "age.txt"), default_key.file_text())

    def only_for(k):
        return encrypt("decrypted-by-" + k.recipient[-6:], [k.recipient])

    def setup(with_identity, with_key_file, secret_for):
        age_config(fx, key_file=os.path.join(fx.root, "keyfile.txt") if with_key_file else None,
                   identity=("keys", ident_key.secret) if with_identity else None,
                   extra_providers='keys = { type = "plain" }\n',
                   secrets={"S": '{ provider = "age", value = "%s" }' % only_for(secret_for)})

    fx.env["FNOX_AGE_KEY"] = env_key.file_text()
    fx.env["FNOX_AGE_KEY_FILE"] = os.path.join(fx.root, "envfile.txt")
    setup(True, True, env_key)
    assert fx.get("S").endswith(env_key.recipient[-6:])
    # the winner is used exclusively: a value for the next source down fails
    setup(True, True, ident_key)
    with pytest.raises(_fnox.FnoxDecryptError, match="FNOX_AGE_KEY"):
        fx.get("S")
    del fx.env["FNOX_AGE_KEY"]
    assert fx.get("S").endswith(ident_key.recipient[-6:])
    setup(False, True, file_key)
    assert fx.get("S").endswith(file_key.recipient[-6:])
    setup(False, False, envfile_key)
    assert fx.get("S").endswith(envfile_key.recipient[-6:])
    del fx.env["FNOX_AGE_KEY_FILE"]
    setup(False, False, default_key)
    assert fx.get("S").endswith(default_key.recipient[-6:])


def test_empty_fnox_age_key_still_wins_and_fails(fx):
    k = AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), k.file_text())
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    fx.env["FNOX_AGE_KEY"] = ""
    with pytest.raises(_fnox.FnoxDecryptError, match="no identity matched"):
        fx.get("S")


def test_fnox_age_key_file_relative_to_cwd_and_tilde(fx):
    k = AgeKey()
    write(os.path.join(fx.proj, "rel.txt"), k.file_text())
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    fx.env["FNOX_AGE_KEY_FILE"] = "rel.txt"
    assert fx.get("S") == "v"
    write(os.path.join(fx.home, "t.txt"), k.file_text())
    fx.env["FNOX_AGE_KEY_FILE"] = "~/t.txt"
    assert fx.get("S") == "v"


def test_ssh_ed25519_identity_from_each_source(fx):
    s = SshKey()
    value = encrypt(CANARY, [s.recipient])
    keyfile = write(os.path.join(fx.root, "id_ed25519"), s.private, mode=0o600)
    age_config(fx, key_file=keyfile, recipients=[s.recipient], secrets={"S": '{ provider = "age", value = "%s" }' % value})
    assert fx.get("S") == CANARY
    age_config(fx, recipients=[s.recipient], secrets={"S": '{ provider = "age", value = "%s" }' % value})
    fx.env["FNOX_AGE_KEY"] = s.private
    assert fx.get("S") == CANARY
    del fx.env["FNOX_AGE_KEY"]
    fx.env["FNOX_AGE_KEY_FILE"] = keyfile
    assert fx.get("S") == CANARY
    del fx.env["FNOX_AGE_KEY_FILE"]
    shutil.copy(keyfile, os.path.join(fx.cfgdir, "age.txt"))
    assert fx.get("S") == CANARY
    # an identity from a plain provider (TOML multi-line string)
    fx.write("work/proj/fnox.toml", '[providers]\nk = { type = "plain" }\n'
             "age = { type = \"age\", recipients = [], identity = { provider = \"k\", value = '''%s''' } }\n"
             '[secrets]\nS = { provider = "age", value = "%s" }\n' % (s.private, value))
    os.remove(os.path.join(fx.cfgdir, "age.txt"))
    assert fx.get("S") == CANARY


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen not installed")
def test_passphrase_protected_ssh_key_is_refused_clearly(fx):
    key = os.path.join(fx.root, "enc_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", key], check=True)
    with open(key + ".pub") as fh:
        pub = " ".join(fh.read().split()[:2])
    age_config(fx, key_file=key, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [pub])})
    with pytest.raises(_fnox.FnoxDecryptError, match="passphrase"):
        fx.get("S")


def test_wrong_key(fx):
    right, wrong = AgeKey(), AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), wrong.file_text())
    value = encrypt(CANARY, [right.recipient])
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % value})
    with pytest.raises(_fnox.FnoxDecryptError) as err:
        fx.get("S")
    msg = str(err.value)
    assert "no identity matched" in msg and "age.txt" in msg
    assert value not in msg and value[:40] not in msg and wrong.secret not in msg and CANARY not in msg


def test_missing_key_names_every_place_looked(fx):
    k = AgeKey()
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    with pytest.raises(_fnox.FnoxAgeKeyNotFound) as err:
        fx.get("S")
    msg = str(err.value)
    for needle in ("FNOX_AGE_KEY", "identity", "key_file", "FNOX_AGE_KEY_FILE", os.path.join(fx.cfgdir, "age.txt")):
        assert needle in msg


def test_missing_key_file_and_default_fallback(fx):
    k = AgeKey()
    age_config(fx, key_file="nope.txt", secrets={
        "S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient]),
        "D": '{ provider = "age", value = "%s", default = "dflt" }' % encrypt("v", [k.recipient])})
    with pytest.raises(_fnox.FnoxAgeKeyNotFound, match="nope.txt"):
        fx.get("S")
    assert fx.get("D") == "dflt"


def test_bad_identity_file_reports_line_not_content(fx):
    k = AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), "# ok\n\nAGE-SECRET-KEY-1NOTVALID%s\n" % CANARY)
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    with pytest.raises(_fnox.FnoxDecryptError, match="line 3") as err:
        fx.get("S")
    assert CANARY not in str(err.value)


def test_multiple_identities_and_crlf(fx):
    a, b = AgeKey(), AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), "# two keys\r\n%s\r\n%s\r\n" % (a.secret, b.secret))
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [b.recipient])})
    assert fx.get("S") == "v"


def test_binary_value_fallback_and_armor_rejected(fx):
    import pyrage
    k = AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), k.file_text())
    blob = pyrage.encrypt(b"x", [k.identity.to_public()])
    # not base64 -> raw bytes of the value are used (fnox's fallback): a raw text that isn't age fails cleanly
    age_config(fx, secrets={"S": '{ provider = "age", value = "age-encryption.org/v1 but garbage" }'})
    with pytest.raises(_fnox.FnoxDecryptError, match="corrupt"):
        fx.get("S")
    assert _fnox._decode_b64_or_raw(base64.b64encode(blob).decode()) == blob
    assert _fnox._decode_b64_or_raw("not base64!") == b"not base64!"
    armored = pyrage.encrypt(b"x", [k.identity.to_public()], armored=True)
    assert pyrage.decrypt(armored, [k.identity]) == b"x"     # pyrage accepts armor, fnox does not
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % base64.b64encode(armored).decode()})
    with pytest.raises(_fnox.FnoxDecryptError, match="armored"):
        fx.get("S")


def test_binary_plaintext_must_be_utf8(fx):
    k = AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), k.file_text())
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt(b"\xff\xfe", [k.recipient])})
    with pytest.raises(_fnox.FnoxDecryptError, match="UTF-8"):
        fx.get("S")


def test_sync_is_used_instead_of_provider(fx):
    k = AgeKey()
    write(os.path.join(fx.cfgdir, "age.txt"), k.file_text())
    fx.write("work/proj/fnox.toml", 'default_provider = "op"\n[providers]\nop = { type = "1password", vault = "v" }\n'
             'sync-age = { type = "age", recipients = ["%s"] }\n'
             '[secrets]\nS = { provider = "op", value = "op://x/y" }\n' % k.recipient)
    # without the sync cache the 1password provider needs the binary
    with pytest.raises(_fnox.NeedsBinary, match="1password"):
        fx.get("S")
    fx.write("work/proj/fnox.local.toml", '[secrets]\nS = { provider = "op", value = "op://x/y", '
             'sync = { provider = "sync-age", value = "%s" } }\n' % encrypt("synced", [k.recipient]))
    assert fx.get("S") == "synced"


def test_plugin_identity_and_non_plain_identity_need_binary(fx):
    k = AgeKey()
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    fx.env["FNOX_AGE_KEY"] = "AGE-PLUGIN-YUBIKEY-1QQQ\n"
    with pytest.raises(_fnox.NeedsBinary, match="plugin"):
        fx.get("S")
    del fx.env["FNOX_AGE_KEY"]
    age_config(fx, identity=("kc", "id"), extra_providers='kc = { type = "keychain", service = "s" }\n',
               secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [k.recipient])})
    with pytest.raises(_fnox.NeedsBinary, match="keychain"):
        fx.get("S")


def test_identities_not_cached_across_resolvers(fx):
    a, b = AgeKey(), AgeKey()
    path = write(os.path.join(fx.cfgdir, "age.txt"), a.file_text())
    age_config(fx, secrets={"S": '{ provider = "age", value = "%s" }' % encrypt("v", [b.recipient])})
    with pytest.raises(_fnox.FnoxDecryptError):
        fx.get("S")
    write(path, b.file_text())     # rotate the key: the next lookup sees it
    assert fx.get("S") == "v"


# --- the binary ---------------------------------------------------------------------------

def test_binary_argv_env_stdin_cwd_and_newline(fx):
    fake = fake_fnox(fx.root, value="bin-value\n")
    out = _fnox.run_binary("KEY", fx.proj, fake, ["staging", "prod"], "/abs/fnox.toml", fx.env, timeout=20)
    assert out == "bin-value\n"       # exactly one trailing newline removed
    call = fake_calls(fake)[-1]
    assert call["argv"] == ["--if-missing", "error", "-c", "/abs/fnox.toml", "-P", "staging", "-P", "prod", "get", "KEY"]
    assert call["cwd"] == fx.proj
    assert call["non_interactive"] == "true"
    assert call["stdin"] == "" and call["stdin_tty"] is False


def test_binary_not_found_names_option_env_and_provider(fx):
    with pytest.raises(_fnox.FnoxBinaryNotFound) as err:
        _fnox.run_binary("K", fx.proj, "fnox-does-not-exist", env=fx.env, reason="provider 'op' (type '1password')")
    msg = str(err.value)
    assert "binary" in msg and "REMO_BROKER_FNOX_BINARY" in msg and "'op'" in msg and "1password" in msg
    with pytest.raises(_fnox.FnoxBinaryNotFound):
        _fnox.run_binary("K", fx.proj, os.path.join(fx.root, "nope", "fnox"), env=fx.env)


def test_binary_timeout(fx):
    fake = fake_fnox(fx.root, sleep=5)
    with pytest.raises(_fnox.FnoxTimeout, match="0.5 seconds"):
        _fnox.run_binary("K", fx.proj, fake, env=fx.env, timeout=0.5)


def test_binary_nonzero_exit_reports_code_not_stderr(fx):
    stderr = "Error: fnox::encryption::age::decrypt_failed\n  x leaked %s\n" % CANARY
    fake = fake_fnox(fx.root, exit_code=1, stderr=stderr)
    with pytest.raises(_fnox.FnoxBinaryError) as err:
        _fnox.run_binary("K", fx.proj, fake, env=fx.env)
    msg = str(err.value)
    assert "exit code 1" in msg and "fnox::encryption::age::decrypt_failed" in msg
    assert CANARY not in msg and "leaked" not in msg
    assert err.value.returncode == 1


def test_binary_maps_not_found_and_missing(fx):
    fake = fake_fnox(fx.root, exit_code=1, stderr="  x Secret 'K' not found\n  fnox::secret::not_found\n")
    with pytest.raises(_fnox.FnoxNotDefined):
        _fnox.run_binary("K", fx.proj, fake, env=fx.env)
    fake = fake_fnox(fx.root, exit_code=1, stderr="Error: fnox::config::error\n  x Secret 'K' not found and no default provided\n",
                     name="fnox2")
    with pytest.raises(_fnox.FnoxMissing):
        _fnox.run_binary("K", fx.proj, fake, env=fx.env)


def test_session_delegates_only_non_native(fx):
    fake = fake_fnox(fx.root, value="from-binary")
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\nop = { type = "1password" }\n'
             '[secrets]\nN = { provider = "p", value = "native" }\nB = { provider = "op", value = "op://v/i/f" }\n')
    s = _fnox.FnoxSession(fx.proj, env=fx.env, binary=fake, profile="dev")
    assert s.get("N") == "native" and s.last_path == "native"
    assert s.get("B") == "from-binary" and s.last_path == "binary"
    assert len(fake_calls(fake)) == 1
    assert fake_calls(fake)[0]["argv"][-4:] == ["-P", "dev", "get", "B"]
    s = _fnox.FnoxSession(fx.proj, env=fx.env, binary=fake, native=False, config="sub/x.toml")
    assert s.get("N") == "from-binary"
    assert fake_calls(fake)[-1]["argv"] == ["--if-missing", "error", "-c", os.path.join(fx.proj, "sub/x.toml"), "get", "N"]


def test_session_missing_binary_for_delegated_provider(fx):
    fx.write("work/proj/fnox.toml", '[providers]\nv = { type = "vault", address = "https://v" }\n[secrets]\nB = { provider = "v", value = "p" }\n')
    s = _fnox.FnoxSession(fx.proj, env=fx.env, binary="no-such-fnox-binary")
    with pytest.raises(_fnox.FnoxBinaryNotFound, match="provider 'v' \\(type 'vault'\\)"):
        s.get("B")


def test_leases_delegate(fx):
    fake = fake_fnox(fx.root, value="leased")
    fx.write("work/proj/fnox.toml", '[providers]\np = { type = "plain" }\n[leases.aws]\ntype = "aws-sts"\n'
             '[secrets]\nA = { provider = "p", value = "x" }\n')
    assert _fnox.FnoxSession(fx.proj, env=fx.env, binary=fake).get("AWS_ACCESS_KEY_ID") == "leased"


def test_missing_dependency_message(monkeypatch):
    monkeypatch.setattr(_fnox, "HAS_PYRAGE", False)
    with pytest.raises(_fnox.FnoxDependencyError, match="pip install"):
        _fnox.check_dependencies(need_age=True)
    _fnox.check_dependencies(need_age=False)
