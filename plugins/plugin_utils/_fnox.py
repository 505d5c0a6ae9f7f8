# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE to the collection: this is not a public API and may change without notice.
"""Controller-side reader and resolver for fnox (https://github.com/jdx/fnox) configs.

It reproduces what ``fnox get KEY`` does for the providers that need no network
(``plain`` and ``age``), and runs the real ``fnox`` binary for everything else.
Behaviour follows fnox >= 1.32 (explicit ``-c`` paths also load the global config).

Security rules kept throughout this file:

* exceptions never carry a secret value, a ciphertext, identity material or text
  printed by the fnox binary (its stderr may echo provider output);
* parsed configs are cached (they hold only ciphertext and references); decrypted
  values and identities are never cached.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import importlib.metadata
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading

# tomli and pyrage are imported on first use, not with this module: tomli when a config file has to
# be parsed, pyrage when an age secret is decrypted. ansible-playbook runs each task in a new worker
# process, where these imports cost about 3 ms (tomli compiles its regexes) and 2 ms (pyrage loads a
# native library). HAS_TOMLI and HAS_PYRAGE are None until the first attempt, then True or False
# (tests set False to simulate a missing package).
HAS_TOMLI = None
HAS_PYRAGE = None
_OPTIONAL = {}


def _optional(name):
    """Return the optional module ``name``, importing it once; None when it cannot be imported."""
    if name not in _OPTIONAL:
        try:
            _OPTIONAL[name] = importlib.import_module(name)
        except ImportError:
            _OPTIONAL[name] = None
    return _OPTIONAL[name]


def _tomli():
    return None if HAS_TOMLI is False else _optional("tomli")


def _pyrage():
    return None if HAS_PYRAGE is False else _optional("pyrage")


DEFAULT_BINARY = "fnox"
BINARY_ENV = "REMO_BROKER_FNOX_BINARY"

# The oldest version of each controller-side package the lookup accepts, and what it is for.
# tomli 2.4.0 is the first that parses TOML 1.1 (multi-line inline tables, trailing commas,
# \e and \x escapes), which fnox writes; older ones reject valid fnox files. pyrage 1.4.0
# is the oldest tested for age decryption with X25519 and SSH identities.
DEPENDENCIES = {
    "tomli": ((2, 4, 0), "to parse fnox's TOML 1.1 config files"),
    "pyrage": ((1, 4, 0), "to decrypt age-encrypted secrets"),
}


def _version_tuple(text):
    parts = []
    for piece in str(text).split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def installed_version(name, module):
    """The version of the imported package ``name``, or None when it cannot be told."""
    if name not in _VERSIONS:
        version = getattr(module, "__version__", None)
        if version is None:
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                version = None
        _VERSIONS[name] = None if version is None else str(version)
    return _VERSIONS[name]


# Versions looked up once per process (pyrage has no __version__; metadata costs a scan).
_VERSIONS = {}


def dependency_problem(name):
    """None when ``name`` is importable and new enough; otherwise what is wrong and how to fix it."""
    minimum, reason = DEPENDENCIES[name]
    wanted = "%s>=%s" % (name, ".".join(str(n) for n in minimum))
    module = _tomli() if name == "tomli" else _pyrage()
    fix = "install it into the Python that runs ansible on the controller (%s): pip install '%s'" % (sys.executable, wanted)
    if module is None:
        return "the Python package %s is required %s, but it is not installed; %s" % (wanted, reason, fix)
    version = installed_version(name, module)
    if version is not None and _version_tuple(version) < minimum:
        return "the Python package %s is required %s, but %s %s is installed; %s" % (wanted, reason, name, version, fix)
    return None

# ----------------------------------------------------------------------------------------
# Errors.  Messages name secrets, files, env vars and fnox error codes; never values.


class FnoxError(Exception):
    """Base class; ``code`` mirrors fnox's diagnostic code where one exists."""

    code = "fnox::error"

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class FnoxDependencyError(FnoxError):
    code = "remo::fnox::dependency"


class FnoxConfigNotFound(FnoxError):
    code = "fnox::config::not_found"


class FnoxConfigError(FnoxError):
    """A config file failed to parse or validate."""

    code = "fnox::config::error"

    def __init__(self, message, path=None, line=None, column=None):
        where = ""
        if path:
            where = str(path)
            if line:
                where += ":%d" % line
                if column:
                    where += ":%d" % column
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line
        self.column = column


class FnoxNotDefined(FnoxError):
    """The key is not defined for the active profiles (fnox's SecretNotFound)."""

    code = "fnox::secret::not_found"

    def __init__(self, key, profiles, files):
        self.key = key
        self.files = list(files)
        msg = "secret %r is not defined for profile %s in %s" % (
            key, ",".join(profiles), ", ".join(self.files) or "(no config files)")
        super().__init__(msg)


class FnoxMissing(FnoxError):
    """The key is defined but nothing resolved it and if_missing is error."""

    code = "fnox::secret::missing"

    def __init__(self, key):
        self.key = key
        super().__init__("secret %r is defined but has no value: no provider value, no default and no "
                         "environment variable %s" % (key, key))


class FnoxProviderError(FnoxError):
    """A provider failed; fnox falls back to the secret's ``default`` on these."""

    code = "fnox::provider::error"


class FnoxAgeKeyNotFound(FnoxProviderError):
    code = "fnox::encryption::age::identity_not_found"


class FnoxDecryptError(FnoxProviderError):
    code = "fnox::encryption::age::decrypt_failed"


class FnoxBinaryNotFound(FnoxError):
    code = "remo::fnox::binary_not_found"


class FnoxTimeout(FnoxError):
    code = "remo::fnox::timeout"


class FnoxBinaryError(FnoxError):
    """The fnox binary exited non-zero; carries its exit code and fnox code only."""

    def __init__(self, message, returncode, fnox_code=None):
        super().__init__(message, code=fnox_code or "remo::fnox::exit_%d" % returncode)
        self.returncode = returncode
        self.fnox_code = fnox_code


class NeedsBinary(Exception):
    """Raised internally when a secret can only be resolved by the fnox binary."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def check_dependencies(need_age=False):
    problems = [problem for problem in map(dependency_problem, ("tomli", "pyrage") if need_age else ("tomli",)) if problem]
    if problems:
        raise FnoxDependencyError("; ".join(problems))


# ----------------------------------------------------------------------------------------
# Environment-derived settings (crates/fnox-core/src/env.rs, settings.toml).


def is_valid_profile_name(name):
    if not name or name in (".", ".."):
        return False
    for ch in name:
        if ch in "/\\,\0" or ord(ch) < 32 or 127 <= ord(ch) < 160:
            return False
    return True


def normalize_profiles(value):
    """Split comma lists, trim, drop invalid names; ``["default"]`` when nothing is left."""
    if value is None:
        items = []
    elif isinstance(value, str):
        items = [value]
    else:
        items = [str(v) for v in value]
    out = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if part and is_valid_profile_name(part):
                out.append(part)
    return out or ["default"]


def active_profiles(option, env):
    """The lookup option wins (like ``-P``), then ``FNOX_PROFILE``, then default."""
    if option:
        return normalize_profiles(option)
    return normalize_profiles(env.get("FNOX_PROFILE"))


def _home(env):
    return env.get("HOME") or os.path.expanduser("~")


def expand_tilde(path, env):
    if path == "~" or path.startswith("~/"):
        return _home(env) + path[1:]
    return path


def _abs_env_path(env, name):
    val = env.get(name)
    if val and os.path.isabs(val):
        return val
    return None


def config_dir(env):
    """``FNOX_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/fnox``, else ``~/.config/fnox`` (absolute only)."""
    explicit = _abs_env_path(env, "FNOX_CONFIG_DIR")
    if explicit:
        return explicit
    xdg = _abs_env_path(env, "XDG_CONFIG_HOME") or os.path.join(_home(env), ".config")
    return os.path.join(xdg, "fnox")


def env_bool(env, name):
    return str(env.get(name, "")).lower() in ("true", "1", "yes", "on")


def all_config_filenames(profiles):
    names = ["fnox.toml", ".fnox.toml"]
    for p in profiles:
        if p != "default":
            names.extend(["fnox.%s.toml" % p, ".fnox.%s.toml" % p])
    names.extend(["fnox.local.toml", ".fnox.local.toml"])
    return names


def uses_config_discovery(config):
    return not config or config in ("fnox.toml", ".fnox.toml", "fnox.local.toml", ".fnox.local.toml")


# ----------------------------------------------------------------------------------------
# Parsing and schema checks (crates/fnox-core/src/config.rs; every struct deny_unknown_fields).

TOP_KEYS = frozenset(("import", "root", "providers", "default_provider", "secrets", "profiles", "leases",
                      "if_missing", "env", "prompt_auth", "mcp", "daemon", "proxy", "age_key_file"))
PROFILE_KEYS = frozenset(("providers", "secrets", "default_provider", "leases"))
SECRET_KEYS = frozenset(("provider", "value", "default", "description", "if_missing", "env", "as_file",
                         "json_path", "line", "sync", "daemon_cache"))
IF_MISSING = ("error", "warn", "ignore")
PROVIDER_COMMON = frozenset(("type", "auth_command", "daemon_cache"))
# Field names per provider type (crates/fnox-core/providers/*.toml at fnox 29a297a).
PROVIDER_FIELDS = {
    "1password": ("vault", "account", "token"),
    "age": ("recipients", "key_file", "identity"),
    "aws-kms": ("key_id", "region", "profile", "role_arn", "endpoint"),
    "aws-ps": ("region", "profile", "role_arn", "prefix", "endpoint"),
    "aws-sm": ("region", "profile", "role_arn", "prefix", "endpoint"),
    "azure-ac": ("endpoint", "label", "prefix"),
    "azure-kms": ("vault_url", "key_name"),
    "azure-sm": ("vault_url", "prefix"),
    "bitwarden-sm": ("project_id", "profile"),
    "bitwarden": ("collection", "organization_id", "profile", "backend"),
    "doppler": ("project", "config", "token"),
    "fido2": ("credential_id", "salt", "rp_id", "pin"),
    "foks": ("prefix", "team", "home", "host", "bot_token"),
    "gcp-kms": ("project", "location", "keyring", "key"),
    "gcp-sm": ("project", "prefix"),
    "infisical": ("project_id", "environment", "path"),
    "keepass": ("database", "keyfile", "password"),
    "keeper-sm": ("config_file", "token"),
    "keychain": ("service", "prefix"),
    "password-store": ("prefix", "store_dir", "gpg_opts"),
    "passwordstate": ("base_url", "api_key", "password_list_id", "verify_ssl"),
    "plain": (),
    "proton-pass": ("vault", "agent_reason"),
    "vault": ("address", "path", "token", "namespace", "credential_command"),
    "yubikey": ("challenge", "slot"),
}


def _locate(text, key):
    """Best-effort (line, column) of ``key =`` in TOML text, for messages about unknown fields."""
    pat = re.compile(r'(^|[\s{,.\[])(?:"%s"|\'%s\'|%s)\s*=' % ((re.escape(key),) * 3), re.M)
    m = pat.search(text)
    if not m:
        return None, None
    start = m.start() + len(m.group(1))
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, col


class ParsedFile:
    """One config file, parsed and checked, with its source path attached to entries."""

    def __init__(self, path, data):
        self.path = path
        self.data = data


def _fail(path, text, key, message):
    line, col = _locate(text, key) if key else (None, None)
    raise FnoxConfigError(message, path=path, line=line, column=col)


def _check_str(path, text, where, key, val):
    if not isinstance(val, str):
        _fail(path, text, key, "%s: `%s` must be a string" % (where, key))


def _check_secret(path, text, where, name, sec):
    if not isinstance(sec, dict):
        _fail(path, text, name, "%s: secret `%s` must be a table" % (where, name))
    for k, v in sec.items():
        w = "%s.%s" % (where, name)
        if k not in SECRET_KEYS:
            _fail(path, text, k, "unknown field `%s` in [%s]; expected one of %s" % (k, w, ", ".join(sorted(SECRET_KEYS))))
        if k in ("provider", "value", "default", "description", "json_path"):
            _check_str(path, text, w, k, v)
        elif k == "if_missing" and v not in IF_MISSING:
            _fail(path, text, k, "[%s]: `if_missing` must be one of error, warn, ignore" % w)
        elif k == "env" and v not in (True, False, "exec"):
            _fail(path, text, k, '[%s]: `env` must be true, false or "exec"' % w)
        elif k in ("as_file", "daemon_cache") and not isinstance(v, bool):
            _fail(path, text, k, "[%s]: `%s` must be a boolean" % (w, k))
        elif k == "line" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            _fail(path, text, k, "[%s]: `line` must be a non-negative integer" % w)
        elif k == "sync":
            if not isinstance(v, dict) or set(v) != {"provider", "value"} or not all(isinstance(x, str) for x in v.values()):
                _fail(path, text, k, "[%s]: `sync` must be a table with string `provider` and `value`" % w)


def _check_provider(path, text, where, name, prov):
    w = "%s.%s" % (where, name)
    if not isinstance(prov, dict) or not isinstance(prov.get("type"), str):
        _fail(path, text, name, "[%s]: a provider must be a table with a string `type`" % w)
    ptype = prov["type"]
    fields = PROVIDER_FIELDS.get(ptype)
    if fields is None:
        # A provider type newer than this reader: left to the fnox binary to judge.
        return
    allowed = PROVIDER_COMMON.union(fields)
    for k in prov:
        if k not in allowed:
            _fail(path, text, k, "unknown field `%s` in [%s] (type %r); expected one of %s"
                  % (k, w, ptype, ", ".join(sorted(allowed))))
    if ptype == "age":
        rec = prov.get("recipients")
        if rec is None or not isinstance(rec, list) or not all(isinstance(r, str) for r in rec):
            _fail(path, text, "recipients" if rec is not None else name,
                  "[%s]: age provider needs `recipients`, a list of strings" % w)
        kf = prov.get("key_file")
        if kf is not None and not (isinstance(kf, str) or (isinstance(kf, dict) and set(kf) == {"secret"})):
            _fail(path, text, "key_file", '[%s]: `key_file` must be a string or {secret = "NAME"}' % w)
        ident = prov.get("identity")
        if ident is not None and not (isinstance(ident, dict) and set(ident) == {"provider", "value"}
                                      and all(isinstance(x, str) for x in ident.values())):
            _fail(path, text, "identity", '[%s]: `identity` must be {provider = "P", value = "V"}' % w)


def _check_section(path, text, where, data, is_profile):
    provs = data.get("providers", {})
    if not isinstance(provs, dict):
        _fail(path, text, "providers", "[%s]: `providers` must be a table" % where)
    for name, prov in provs.items():
        _check_provider(path, text, (where + ".providers").lstrip("."), name, prov)
    secs = data.get("secrets", {})
    if not isinstance(secs, dict):
        _fail(path, text, "secrets", "[%s]: `secrets` must be a table" % where)
    for name, sec in secs.items():
        _check_secret(path, text, (where + ".secrets").lstrip("."), name, sec)
    if "default_provider" in data:
        _check_str(path, text, where or "top level", "default_provider", data["default_provider"])
    if "leases" in data and not isinstance(data["leases"], dict):
        _fail(path, text, "leases", "[%s]: `leases` must be a table" % where)


def parse_config_text(path, text):
    """Parse TOML 1.1 text (tomli >= 2.5) and check it against fnox's schema."""
    check_dependencies()
    tomli = _tomli()
    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        raise FnoxConfigError("invalid TOML: %s" % getattr(exc, "msg", "parse error"), path=path,
                              line=getattr(exc, "lineno", None), column=getattr(exc, "colno", None)) from None
    for k in data:
        if k not in TOP_KEYS:
            _fail(path, text, k, "unknown top-level field `%s`; expected one of %s" % (k, ", ".join(sorted(TOP_KEYS))))
    if "import" in data and (not isinstance(data["import"], list) or not all(isinstance(i, str) for i in data["import"])):
        _fail(path, text, "import", "`import` must be a list of strings")
    if "root" in data and not isinstance(data["root"], bool):
        _fail(path, text, "root", "`root` must be a boolean")
    if "if_missing" in data and data["if_missing"] not in IF_MISSING:
        _fail(path, text, "if_missing", "`if_missing` must be one of error, warn, ignore")
    if "env" in data and data["env"] not in (True, False, "exec"):
        _fail(path, text, "env", '`env` must be true, false or "exec"')
    _check_section(path, text, "", data, False)
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        _fail(path, text, "profiles", "`profiles` must be a table")
    for pname, prof in profiles.items():
        if not isinstance(prof, dict):
            _fail(path, text, pname, "[profiles.%s] must be a table" % pname)
        for k in prof:
            if k not in PROFILE_KEYS:
                _fail(path, text, k, "unknown field `%s` in [profiles.%s]; expected one of %s"
                      % (k, pname, ", ".join(sorted(PROFILE_KEYS))))
        _check_section(path, text, "profiles.%s" % pname, prof, True)
    return ParsedFile(path, data)


def _stat_sig(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


_LOCK = threading.Lock()
_FILE_CACHE = {}     # path -> (sig, ParsedFile)
_LOAD_CACHE = {}     # key -> (probes, Config)
_CACHE_MAX = 256
STATS = {"parses": 0, "loads": 0, "load_hits": 0}


def clear_caches():
    with _LOCK:
        _FILE_CACHE.clear()
        _LOAD_CACHE.clear()
        for k in STATS:
            STATS[k] = 0


def load_file(path, probes):
    """Parse ``path`` once per (mtime, size, inode); record the probe for cache validation."""
    sig = _stat_sig(path)
    probes.append((path, sig))
    if sig is None:
        raise FnoxConfigError("cannot read config file (missing or unreadable)", path=path)
    with _LOCK:
        hit = _FILE_CACHE.get(path)
    if hit and hit[0] == sig:
        return hit[1]
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise FnoxConfigError("cannot read config file: %s" % exc.strerror, path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FnoxConfigError("config file is not valid UTF-8", path=path) from None
    parsed = parse_config_text(path, text)
    with _LOCK:
        STATS["parses"] += 1
        if len(_FILE_CACHE) >= _CACHE_MAX:
            _FILE_CACHE.clear()
        _FILE_CACHE[path] = (sig, parsed)
    return parsed


def _exists(path, probes):
    sig = _stat_sig(path)
    probes.append((path, sig))
    return sig is not None


# ----------------------------------------------------------------------------------------
# Merged config (Config::merge_configs, get_secrets, get_providers, get_default_provider).


class Entry:
    """A provider or secret table together with the file that declared it."""

    __slots__ = ("data", "source")

    def __init__(self, data, source):
        self.data = data
        self.source = source


class Config:
    def __init__(self):
        self.imports = []
        self.root = False
        self.scalars = {}            # if_missing, env, prompt_auth, age_key_file, mcp, daemon, proxy
        self.default_provider = None
        self.providers = {}
        self.secrets = {}
        self.leases = {}
        self.profiles = {}           # name -> {"providers", "secrets", "leases", "default_provider"}
        self.files = []              # loaded files, lowest priority first

    @classmethod
    def from_file(cls, parsed):
        cfg = cls()
        d = parsed.data
        src = parsed.path
        cfg.imports = list(d.get("import", []))
        cfg.root = bool(d.get("root", False))
        for k in ("if_missing", "env", "prompt_auth", "age_key_file", "mcp", "daemon", "proxy"):
            if k in d:
                cfg.scalars[k] = d[k]
        cfg.default_provider = d.get("default_provider")
        cfg.providers = dict((n, Entry(v, src)) for n, v in d.get("providers", {}).items())
        cfg.secrets = dict((n, Entry(v, src)) for n, v in d.get("secrets", {}).items())
        cfg.leases = dict((n, Entry(v, src)) for n, v in d.get("leases", {}).items())
        for pname, prof in d.get("profiles", {}).items():
            cfg.profiles[pname] = {
                "providers": dict((n, Entry(v, src)) for n, v in prof.get("providers", {}).items()),
                "secrets": dict((n, Entry(v, src)) for n, v in prof.get("secrets", {}).items()),
                "leases": dict((n, Entry(v, src)) for n, v in prof.get("leases", {}).items()),
                "default_provider": prof.get("default_provider"),
            }
        cfg.files = [src]
        return cfg


def merge(base, overlay):
    """Overlay wins; providers/secrets/leases entries are replaced whole, profiles merged per map."""
    out = Config()
    out.imports = list(base.imports) + [i for i in overlay.imports if i not in base.imports]
    out.root = base.root or overlay.root
    out.scalars = dict(base.scalars)
    out.scalars.update(overlay.scalars)
    out.default_provider = overlay.default_provider if overlay.default_provider is not None else base.default_provider
    for attr in ("providers", "secrets", "leases"):
        m = dict(getattr(base, attr))
        m.update(getattr(overlay, attr))
        setattr(out, attr, m)
    out.profiles = {}
    for name, prof in base.profiles.items():
        out.profiles[name] = {"providers": dict(prof["providers"]), "secrets": dict(prof["secrets"]),
                              "leases": dict(prof["leases"]), "default_provider": prof["default_provider"]}
    for name, prof in overlay.profiles.items():
        tgt = out.profiles.get(name)
        if tgt is None:
            out.profiles[name] = {"providers": dict(prof["providers"]), "secrets": dict(prof["secrets"]),
                                  "leases": dict(prof["leases"]), "default_provider": prof["default_provider"]}
            continue
        for attr in ("providers", "secrets", "leases"):
            tgt[attr].update(prof[attr])
        if prof["default_provider"] is not None:
            tgt["default_provider"] = prof["default_provider"]
    out.files = list(base.files) + [f for f in overlay.files if f not in base.files]
    return out


def _resolve_rel(path, base_dir, env):
    path = expand_tilde(path, env)
    if os.path.isabs(path):
        return path
    return os.path.join(base_dir, path)


def _apply_imports(cfg, directory, env, probes):
    for imp in list(cfg.imports):
        ipath = _resolve_rel(imp, directory, env)
        if not _exists(ipath, probes):
            raise FnoxConfigError("import file not found: %s" % ipath)
        cfg = merge(Config.from_file(load_file(ipath, probes)), cfg)
    return cfg


def _load_global(env, probes):
    gpath = os.path.join(config_dir(env), "config.toml")
    if _exists(gpath, probes):
        return Config.from_file(load_file(gpath, probes))
    return None


def _load_uncached(cwd, profiles, config, env, probes):
    gpath = os.path.join(config_dir(env), "config.toml")
    if not uses_config_discovery(config):
        path = config if os.path.isabs(config) else os.path.join(cwd, config)
        if not _exists(path, probes):
            raise FnoxConfigError("cannot read config file (missing or unreadable)", path=path)
        cfg = Config.from_file(load_file(path, probes))
        cfg = _apply_imports(cfg, os.path.dirname(path), env, probes)
        if path != gpath:
            glob = _load_global(env, probes)
            if glob is not None:
                cfg = merge(glob, cfg)
        return cfg
    names = all_config_filenames(profiles)
    layers = []          # nearest directory first
    found = False
    directory = cwd
    while True:
        dcfg = None
        for name in names:
            p = os.path.join(directory, name)
            if _exists(p, probes):
                fcfg = Config.from_file(load_file(p, probes))
                dcfg = fcfg if dcfg is None else merge(dcfg, fcfg)
                found = True
        if dcfg is not None:
            is_root = dcfg.root
            dcfg = _apply_imports(dcfg, directory, env, probes)
            layers.append(dcfg)
            if is_root:
                break
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    cfg = Config()
    glob = _load_global(env, probes)
    if glob is not None:
        cfg = glob
        found = True
    for layer in reversed(layers):
        cfg = merge(cfg, layer)
    if not found:
        raise FnoxConfigNotFound("no fnox configuration file found in %s or any parent directory "
                                 "(looked for %s), and no global config %s"
                                 % (cwd, ", ".join(names), gpath))
    return cfg


def load_config(cwd, profiles, config=None, env=None):
    """Discover, parse and merge like fnox; cached per process, revalidated by stat()."""
    check_dependencies()
    env = os.environ if env is None else env
    cwd = os.path.realpath(cwd)
    key = (cwd, tuple(profiles), config or "", config_dir(env), env.get("HOME", ""))
    with _LOCK:
        hit = _LOAD_CACHE.get(key)
    if hit is not None:
        probes, cfg = hit
        if all(_stat_sig(p) == sig for p, sig in probes):
            with _LOCK:
                STATS["load_hits"] += 1
            return cfg
    probes = []
    cfg = _load_uncached(cwd, profiles, config, env, probes)
    with _LOCK:
        STATS["loads"] += 1
        if len(_LOAD_CACHE) >= _CACHE_MAX:
            _LOAD_CACHE.clear()
        _LOAD_CACHE[key] = (probes, cfg)
    return cfg


def _overlay_profiles(base, cfg, profiles, section):
    """``base`` overlaid, entry by entry, with ``section`` of each active non-default profile."""
    out = dict(base)
    for p in profiles:
        if p != "default" and p in cfg.profiles:
            out.update(cfg.profiles[p][section])
    return out


def effective_secrets(cfg, profiles, no_defaults=False):
    has_non_default = any(p != "default" for p in profiles)
    base = {} if (has_non_default and no_defaults) else cfg.secrets
    return _overlay_profiles(base, cfg, profiles, "secrets")


def effective_providers(cfg, profiles):
    return _overlay_profiles(cfg.providers, cfg, profiles, "providers")


def effective_leases(cfg, profiles):
    return _overlay_profiles(cfg.leases, cfg, profiles, "leases")


def default_provider(cfg, profiles):
    providers = effective_providers(cfg, profiles)
    if not providers:
        if cfg.root:
            return None
        raise FnoxProviderError("no providers configured; add at least one provider to fnox.toml")
    name, where = None, "default"
    if cfg.default_provider is not None:
        name = cfg.default_provider
    for p in profiles:
        if p != "default" and p in cfg.profiles and cfg.profiles[p]["default_provider"] is not None:
            name, where = cfg.profiles[p]["default_provider"], p
    if name is not None:
        if name not in providers:
            raise FnoxProviderError("default provider %r not found in profile %r" % (name, where))
        return name
    if len(providers) == 1:
        return next(iter(providers))
    return None


def _is_plain(cfg, sec, profile):
    providers = effective_providers(cfg, [profile])
    name = sec.get("provider")
    if name is None and profile != "default" and profile in cfg.profiles:
        name = cfg.profiles[profile]["default_provider"]
    if name is None:
        name = cfg.default_provider
    if name is None and len(providers) == 1:
        name = next(iter(providers))
    return name is not None and name in providers and providers[name].data.get("type") == "plain"


def validate(cfg):
    """The subset of Config::validate that ``fnox get`` enforces."""
    if cfg.root and not cfg.providers and not cfg.profiles and not cfg.secrets:
        return
    issues = []

    def empty_value(name, entry, profile):
        if entry.data.get("value") == "" and not _is_plain(cfg, entry.data, profile):
            issues.append("secret %r%s has an empty value (%s)" % (
                name, "" if profile == "default" else " in profile %r" % profile, entry.source))

    for name, entry in cfg.secrets.items():
        empty_value(name, entry, "default")
    if not cfg.providers and not cfg.profiles and cfg.secrets:
        issues.append("no providers configured (add at least one provider)")
    if cfg.default_provider is not None and cfg.default_provider not in cfg.providers:
        issues.append("default provider %r not found in configuration" % cfg.default_provider)
    for pname, prof in cfg.profiles.items():
        providers = effective_providers(cfg, [pname])
        for name, entry in prof["secrets"].items():
            empty_value(name, entry, pname)
        if not providers and not cfg.root:
            issues.append("profile %r has no providers configured" % pname)
        if prof["default_provider"] is not None and prof["default_provider"] not in providers:
            issues.append("default provider %r not found in profile %r" % (prof["default_provider"], pname))
    if issues:
        raise FnoxConfigError("configuration is invalid: " + "; ".join(issues))


# ----------------------------------------------------------------------------------------
# Post-processing (secret_resolver.rs: extract_json_path, extract_line).


def split_key_path(path):
    parts, cur, i = [], [], 0
    while i < len(path):
        c = path[i]
        if c == "\\":
            if i + 1 < len(path):
                cur.append(path[i + 1])
                i += 2
                continue
            cur.append("\\")
        elif c == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _compact_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def extract_json_path(key, value, path):
    try:
        cur = json.loads(value)
    except ValueError as exc:
        raise FnoxConfigError("secret %r: json_path is set but the value is not valid JSON (line %s column %s)"
                              % (key, getattr(exc, "lineno", "?"), getattr(exc, "colno", "?"))) from None
    for part in split_key_path(path):
        if not isinstance(cur, dict) or part not in cur:
            raise FnoxConfigError("secret %r: JSON path %r not found in the value" % (key, path))
        cur = cur[part]
    if isinstance(cur, str):
        return cur
    if cur is None:
        return "null"
    return _compact_json(cur)


def rust_lines(value):
    """``str::lines()``: split on \\n, drop one trailing \\r per line, no final empty line."""
    if value == "":
        return []
    parts = value.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def extract_line(key, value, line):
    if line == 0:
        raise FnoxConfigError("secret %r: `line` must be a 1-indexed line number (got 0)" % key)
    lines = rust_lines(value)
    if line > len(lines):
        raise FnoxConfigError("secret %r: `line = %d` is out of range; the value has %d line(s)" % (key, line, len(lines)))
    return lines[line - 1]


def post_process(key, value, sec):
    jp, line = sec.get("json_path"), sec.get("line")
    if jp is not None and line is not None:
        raise FnoxConfigError("secret %r: `json_path` and `line` are mutually exclusive" % key)
    if jp is not None:
        if jp == "":
            raise FnoxConfigError("secret %r: json_path must not be empty" % key)
        return extract_json_path(key, value, jp)
    if line is not None:
        return extract_line(key, value, line)
    return value


def default_refs(default):
    refs, rest = [], default
    while True:
        start = rest.find("${")
        if start < 0:
            break
        after = rest[start + 2:]
        end = after.find("}")
        if end < 0:
            break
        name = after[:end]
        if name and name not in refs:
            refs.append(name)
        rest = after[end + 1:]
    return refs


def render_default(key, default, resolved):
    out, rest = [], default
    while True:
        start = rest.find("${")
        if start < 0:
            break
        out.append(rest[:start])
        after = rest[start + 2:]
        end = after.find("}")
        if end < 0:
            out.append(rest[start:])
            return "".join(out)
        name = after[:end]
        if not name:
            raise FnoxConfigError("secret %r has an empty interpolation reference in its default" % key)
        if name not in resolved:
            raise FnoxConfigError("secret %r references %r in its default, but %r did not resolve" % (key, name, name))
        if resolved[name] is not None:
            out.append(resolved[name])
        rest = after[end + 1:]
    out.append(rest)
    return "".join(out)


# ----------------------------------------------------------------------------------------
# age (providers/age.rs).

AGE_MAGIC = b"age-encryption.org/v1"


def _decode_b64_or_raw(value):
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return value.encode("utf-8")


def parse_identities(text, origin):
    """SSH private key first (unencrypted), else an age identity file. ``origin`` names the source."""
    check_dependencies(need_age=True)
    pyrage = _pyrage()
    if "PRIVATE KEY-----" in text:
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode("utf-8"))]
        except Exception:  # pylint: disable=broad-except
            # fnox then tries the text as an age identity file, which rejects line 1.
            raise FnoxDecryptError("the SSH private key from %s could not be used (passphrase-protected or "
                                   "unsupported keys cannot be used by fnox)" % origin) from None
    identities = []
    for number, line in enumerate(rust_lines(text), 1):
        if line == "" or line.startswith("#"):
            continue
        if line.upper().startswith("AGE-PLUGIN-"):
            raise NeedsBinary("the age identity from %s is a plugin identity" % origin)
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except Exception:  # pylint: disable=broad-except
            raise FnoxDecryptError("the identity file from %s contains non-identity data on line %d" % (origin, number)) from None
    return identities


# ----------------------------------------------------------------------------------------
# The resolver (secret_resolver.rs: resolve_secret_raw and friends).


class Resolver:
    """Resolves secrets of one merged config for one set of profiles, like ``fnox get``.

    ``if_missing_override`` plays the role of ``--if-missing``; the lookup passes ``error``.
    Identities read during one resolver's life are kept only on this object.
    """

    def __init__(self, cfg, profiles, cwd, env=None, no_defaults=None, if_missing_override=None):
        self.cfg = cfg
        self.profiles = list(profiles)
        self.cwd = cwd
        self.env = os.environ if env is None else env
        self.no_defaults = env_bool(self.env, "FNOX_NO_DEFAULTS") if no_defaults is None else no_defaults
        self.if_missing_override = if_missing_override or self.env.get("FNOX_IF_MISSING")
        self.secrets = effective_secrets(cfg, self.profiles, self.no_defaults)
        self.providers = effective_providers(cfg, self.profiles)
        self._identities = {}

    # -- public -------------------------------------------------------------------------

    def get(self, key):
        """Return the value, ``None`` (missing under warn/ignore), or raise. May raise NeedsBinary."""
        validate(self.cfg)
        if effective_leases(self.cfg, self.profiles):
            raise NeedsBinary("the config defines lease backends")
        if key not in self.secrets:
            raise FnoxNotDefined(key, self.profiles, self.cfg.files)
        return self._resolve(key, self.secrets[key].data, [key], batch=False)

    def native_provider_types(self):
        return ("plain", "age")

    # -- internals ----------------------------------------------------------------------

    def _if_missing(self, sec):
        for val in (self.if_missing_override, sec.get("if_missing"), self.cfg.scalars.get("if_missing"),
                    self.env.get("FNOX_IF_MISSING_DEFAULT")):
            if val is not None:
                val = str(val).lower()
                return val if val in IF_MISSING else "warn"
        return "warn"

    def _resolve(self, key, sec, stack, batch):
        try:
            value = self._from_provider(key, sec)
        except FnoxProviderError:
            if sec.get("default") is None:
                if not batch or self._if_missing(sec) == "error":
                    raise
                return None
            value = None
        if value is not None:
            return post_process(key, value, sec)
        default = sec.get("default")
        if default is not None:
            resolved = {}
            if "${" in default:
                for ref in default_refs(default):
                    if ref not in self.secrets:
                        raise FnoxConfigError("secret %r references undefined secret %r in its default" % (key, ref))
                    if ref in stack:
                        raise FnoxConfigError("interpolation dependency cycle among secrets: %s"
                                              % " -> ".join(stack[stack.index(ref):] + [ref]))
                    try:
                        resolved[ref] = self._resolve(ref, self.secrets[ref].data, stack + [ref], batch=True)
                    except FnoxMissing:
                        raise FnoxConfigError("secret %r: its default references %r, which has no value" % (key, ref)) from None
            return post_process(key, render_default(key, default, resolved), sec)
        if key in self.env:
            return post_process(key, self.env[key], sec)
        if self._if_missing(sec) == "error":
            raise FnoxMissing(key)
        return None

    def _from_provider(self, key, sec):
        sync = sec.get("sync")
        if sync is not None:
            pname, pvalue = sync["provider"], sync["value"]
        else:
            pvalue = sec.get("value")
            if pvalue is None:
                return None
            pname = sec.get("provider")
            if pname is None:
                pname = default_provider(self.cfg, self.profiles)
                if pname is None:
                    return None
        entry = self.providers.get(pname)
        if entry is None:
            raise FnoxProviderError("secret %r uses provider %r, which is not configured for profile %s"
                                    % (key, pname, ",".join(self.profiles)))
        ptype = entry.data.get("type")
        if ptype == "plain":
            return pvalue
        if ptype == "age":
            return self._age_decrypt(key, pname, entry, pvalue)
        raise NeedsBinary("provider %r (type %r) used by secret %r" % (pname, ptype, key))

    def _identity_text(self, pname, entry):
        """Return (text, origin) following fnox's order; origin names the source, never content."""
        if "FNOX_AGE_KEY" in self.env:
            return self.env["FNOX_AGE_KEY"], "environment variable FNOX_AGE_KEY"
        ident = entry.data.get("identity")
        if ident is not None:
            if ident["provider"] == pname:
                raise FnoxConfigError("provider %r: age identity refers to itself (%s -> %s)" % (pname, pname, pname))
            ref = self.providers.get(ident["provider"])
            if ref is None:
                raise FnoxProviderError("provider %r: identity provider %r is not configured" % (pname, ident["provider"]))
            if ref.data.get("type") != "plain":
                raise NeedsBinary("provider %r takes its age identity from provider %r (type %r)"
                                  % (pname, ident["provider"], ref.data.get("type")))
            return ident["value"], "the identity of provider %r (plain provider %r)" % (pname, ident["provider"])
        key_file = entry.data.get("key_file")
        if isinstance(key_file, dict):
            raise NeedsBinary("provider %r takes key_file from a secret reference" % pname)
        if key_file is not None:
            path = _resolve_rel(key_file, os.path.dirname(entry.source), self.env)
            origin = "key_file %s of provider %r" % (path, pname)
        elif "FNOX_AGE_KEY_FILE" in self.env:
            path = expand_tilde(self.env["FNOX_AGE_KEY_FILE"], self.env)
            if path and not os.path.isabs(path):
                path = os.path.join(self.cwd, path)
            origin = "FNOX_AGE_KEY_FILE=%s" % path
        else:
            path = os.path.join(config_dir(self.env), "age.txt")
            if not os.path.exists(path):
                raise FnoxAgeKeyNotFound(
                    "no age identity for provider %r: looked at FNOX_AGE_KEY (unset), the provider's `identity` and "
                    "`key_file` (unset), FNOX_AGE_KEY_FILE (unset) and %s (missing)" % (pname, path))
            origin = path
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise FnoxAgeKeyNotFound("cannot read the age identity for provider %r from %s: %s"
                                     % (pname, origin, exc.strerror)) from None
        try:
            return raw.decode("utf-8"), origin
        except UnicodeDecodeError:
            raise FnoxDecryptError("the age identity from %s is not UTF-8 text" % origin) from None

    def _age_decrypt(self, key, pname, entry, value):
        check_dependencies(need_age=True)
        if pname not in self._identities:
            text, origin = self._identity_text(pname, entry)
            self._identities[pname] = (parse_identities(text, origin), origin)
        identities, origin = self._identities[pname]
        blob = _decode_b64_or_raw(value)
        if not blob.startswith(AGE_MAGIC):
            raise FnoxDecryptError("secret %r: the value is not a binary age v1 file (fnox cannot read armored "
                                   "or other formats)" % key)
        try:
            plain = _pyrage().decrypt(blob, identities)
        except Exception as exc:  # pylint: disable=broad-except
            reason = "no identity matched" if "No matching keys" in str(exc) else "the age file is corrupt or truncated"
            raise FnoxDecryptError("secret %r: age decryption with provider %r failed (%s; identity from %s)"
                                   % (key, pname, reason, origin)) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise FnoxDecryptError("secret %r: decrypted value is not valid UTF-8" % key) from None


# ----------------------------------------------------------------------------------------
# The fnox binary (commands/get.rs through a subprocess).

_FNOX_CODE = r"\bfnox::[a-z0-9_]+(?:::[a-z0-9_]+)*"   # compiled by re's cache when first needed
_MISSING_PHRASE = "not found and no default provided"


def find_binary(binary):
    if os.sep in binary:
        return binary if (os.path.isfile(binary) and os.access(binary, os.X_OK)) else None
    return shutil.which(binary)


def binary_argv(path, key, profiles=None, config=None):
    argv = [path, "--if-missing", "error"]
    if config:
        argv += ["-c", config]
    for p in profiles or []:
        argv += ["-P", p]
    argv += ["get", key]
    return argv


def run_binary(key, cwd, binary=DEFAULT_BINARY, profiles=None, config=None, env=None, timeout=30, reason=None,
               profiles_explicit=True):
    """Run ``fnox get KEY``; return stdout minus exactly one trailing newline.

    Errors carry the exit code and the fnox diagnostic code found in stderr, never stderr
    text itself (provider failures can echo third-party output, which may hold secrets).
    """
    path = find_binary(binary or DEFAULT_BINARY)
    why = (" (needed for %s)" % reason) if reason else ""
    if path is None:
        raise FnoxBinaryNotFound("the fnox binary %r was not found%s; install fnox or point the lookup at it with "
                                 "the `binary` option or the %s environment variable" % (binary, why, BINARY_ENV))
    env = dict(os.environ if env is None else env)
    env["FNOX_NON_INTERACTIVE"] = "true"
    argv = binary_argv(path, key, profiles if profiles_explicit else None, config)
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FnoxTimeout("`fnox get %s` did not finish within %s seconds and was killed%s" % (key, timeout, why)) from None
    except OSError as exc:
        raise FnoxBinaryNotFound("the fnox binary %r could not be run (%s)%s; set the `binary` option or %s"
                                 % (path, exc.strerror, why, BINARY_ENV)) from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")
        codes = re.findall(_FNOX_CODE, err)
        fcode = codes[0] if codes else None
        if fcode == "fnox::secret::not_found":
            raise FnoxNotDefined(key, profiles or ["default"], ["(as reported by %s)" % path])
        if _MISSING_PHRASE in err and "'%s'" % key in err:
            raise FnoxMissing(key)
        if "No configuration file found" in err:
            raise FnoxConfigNotFound("fnox found no configuration file in %s or any parent directory" % cwd)
        raise FnoxBinaryError("`fnox get %s` failed with exit code %d%s%s; run it in %s to see fnox's own "
                              "diagnostic (its output is not shown here because it may contain secret material)"
                              % (key, proc.returncode, " and error code %s" % fcode if fcode else "", why, cwd),
                              proc.returncode, fcode)
    out = proc.stdout
    if out.endswith(b"\n"):
        out = out[:-1]
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise FnoxBinaryError("`fnox get %s` printed a value that is not UTF-8" % key, 0) from None


# ----------------------------------------------------------------------------------------
# One-call entry point used by the lookup plugin.


class FnoxSession:
    """Everything one lookup ``run()`` needs: one config load, one resolver, many keys."""

    def __init__(self, cwd, profile=None, config=None, env=None, binary=DEFAULT_BINARY, timeout=30, native=True):
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.profile_option = profile
        self.profiles = active_profiles(profile, self.env)
        self.config = config
        self.binary = binary or DEFAULT_BINARY
        self.timeout = timeout
        self.native = native
        self._resolver = None
        self.last_path = None   # "native" or "binary", for logging and tests

    def _get_resolver(self):
        if self._resolver is None:
            cfg = load_config(self.cwd, self.profiles, self.config, self.env)
            self._resolver = Resolver(cfg, self.profiles, os.path.realpath(self.cwd), self.env,
                                      if_missing_override="error")
        return self._resolver

    def get(self, key):
        if self.native:
            try:
                value = self._get_resolver().get(key)
                self.last_path = "native"
                return value
            except NeedsBinary as need:
                return self._binary(key, need.reason)
        return self._binary(key, None)

    def _binary(self, key, reason):
        self.last_path = "binary"
        config = None
        if self.config:
            config = self.config if uses_config_discovery(self.config) or os.path.isabs(self.config) \
                else os.path.join(self.cwd, self.config)
        return run_binary(key, self.cwd, self.binary, self.profiles, config, self.env, self.timeout, reason,
                          profiles_explicit=bool(self.profile_option) or "FNOX_PROFILE" in self.env)
