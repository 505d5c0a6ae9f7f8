# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The vault's store: one fnox-format TOML file whose values are age-encrypted.

Layout (what ``fnox get`` reads with the same identity)::

    [providers.age]
    type = "age"
    recipients = ["age1..."]

    [secrets.NAME]
    provider = "age"
    value = "<base64 of binary age v1>"

Values are encrypted and decrypted by the ``age`` command with the value on a pipe,
never in argv or a file.  Writes go to a temporary file in the same directory and are
renamed into place, under an exclusive lock, so a reader sees either the old or the
new store and the watcher's inotify sees one IN_MOVED_TO.
"""

import base64
import fcntl
import glob
import os
import re
import subprocess
import tomllib

STORE_DIR = os.environ.get("REMO_VAULT_STORE_DIR", "/var/lib/remo-vault")
KEY_DIR = os.environ.get("REMO_VAULT_KEY_DIR", "/run/remo-vault-key")
STORE_NAME = "fnox.toml"
PROVIDER = "age"
# The broker's secret-name rule (protocol 2).
NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,128}$")
# Bounds: one value, the number of names, the whole file (the broker's admin message
# limit is 1 MiB; base64 of age adds about a third).
MAX_VALUE_BYTES = 64 * 1024
MAX_SECRETS = 1000
MAX_STORE_BYTES = 1536 * 1024
AGE_TIMEOUT = 20


class VaultError(Exception):
    """A failure whose message is safe to print: it never carries a value."""


def check_name(name):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise VaultError("invalid secret name %r: names match %s" % (name, NAME_RE.pattern))
    return name


def store_path(store_dir=None):
    return os.path.join(store_dir or STORE_DIR, STORE_NAME)


def identity_files(key_dir=None):
    """Every identity on the key tmpfs: the current one and, during a rotation, the next."""
    key_dir = key_dir or KEY_DIR
    found = [p for p in sorted(glob.glob(os.path.join(key_dir, "identity*"))) if not p.endswith(".tmp")]
    if not found:
        raise VaultError("no vault key in %s yet (is remo-vault-key.service active?)" % key_dir)
    return found


def _age(argv, data):
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=AGE_TIMEOUT, check=False)
    except FileNotFoundError:
        raise VaultError("the age command is not installed") from None
    except subprocess.TimeoutExpired:
        raise VaultError("%s timed out" % argv[0]) from None
    if proc.returncode != 0:
        # age's own message names no plaintext (it never sees it on error paths it reports).
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise VaultError("%s failed: %s" % (argv[0], reason[-1] if reason else "exit %d" % proc.returncode))
    return proc.stdout


def recipient_of(identity_file):
    return _age(["age-keygen", "-y", identity_file], b"").decode().strip()


def encrypt(plaintext, recipient):
    return base64.b64encode(_age(["age", "-r", recipient], plaintext)).decode("ascii")


def decrypt(value, identities):
    try:
        blob = base64.b64decode(value, validate=True)
    except ValueError:
        blob = value.encode()   # fnox falls back to the raw bytes too
    argv = ["age", "-d"]
    for ident in identities:
        argv += ["-i", ident]
    return _age(argv, blob)


def _toml_string(text):
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class Store:
    """The store file; ``load`` and ``save`` keep every bound."""

    def __init__(self, store_dir=None, key_dir=None):
        self.dir = store_dir or STORE_DIR
        self.key_dir = key_dir or KEY_DIR
        self.path = store_path(self.dir)
        self.recipients = []
        self.values = {}   # name -> base64 ciphertext

    def lock(self):
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def load(self):
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(MAX_STORE_BYTES + 1)
        except FileNotFoundError:
            self.recipients, self.values = [], {}
            return self
        if len(raw) > MAX_STORE_BYTES:
            raise VaultError("%s is larger than %d bytes" % (self.path, MAX_STORE_BYTES))
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise VaultError("%s is not valid TOML: %s" % (self.path, exc)) from None
        provider = doc.get("providers", {}).get(PROVIDER, {})
        self.recipients = [r for r in provider.get("recipients", []) if isinstance(r, str)]
        values = {}
        for name, entry in doc.get("secrets", {}).items():
            if not NAME_RE.fullmatch(name):
                raise VaultError("%s: secret name %r is not a valid broker name" % (self.path, name))
            if not isinstance(entry, dict) or entry.get("provider") != PROVIDER or not isinstance(entry.get("value"), str):
                raise VaultError("%s: [secrets.%s] must have provider = %r and a string value" % (self.path, name, PROVIDER))
            values[name] = entry["value"]
        if len(values) > MAX_SECRETS:
            raise VaultError("%s holds more than %d secrets" % (self.path, MAX_SECRETS))
        self.values = values
        return self

    def render(self):
        lines = ["# remo vault store (fnox format); values are age-encrypted. Edit with remo-vault.",
                 "[providers.%s]" % PROVIDER, 'type = "age"',
                 "recipients = [%s]" % ", ".join(_toml_string(r) for r in self.recipients), ""]
        for name in sorted(self.values):
            lines += ["[secrets.%s]" % name, 'provider = "%s"' % PROVIDER, "value = %s" % _toml_string(self.values[name]), ""]
        return "\n".join(lines).encode("utf-8")

    def save(self):
        data = self.render()
        if len(data) > MAX_STORE_BYTES or len(self.values) > MAX_SECRETS:
            raise VaultError("the store would exceed its bounds (%d secrets, %d bytes)" % (MAX_SECRETS, MAX_STORE_BYTES))
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def current_recipient(self):
        """The recipient of the current identity (``identity``, not ``identity.next``)."""
        return recipient_of(identity_files(self.key_dir)[0])

    def decrypt_one(self, name):
        return decrypt(self.values[name], identity_files(self.key_dir))

    def decrypt_all(self):
        """name -> str.  Every value must decrypt; a partial set is never returned."""
        identities = identity_files(self.key_dir)
        out = {}
        for name in sorted(self.values):
            try:
                out[name] = decrypt(self.values[name], identities).decode("utf-8")
            except UnicodeDecodeError:
                raise VaultError("secret %s is not UTF-8 text" % name) from None
            except VaultError as exc:
                raise VaultError("secret %s: %s" % (name, exc)) from None
        return out
