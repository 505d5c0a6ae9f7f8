# -*- coding: utf-8 -*-
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for plugins/module_utils/_manifest.py: formats, errors, locator, rendering."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import textwrap

import jsonschema
import pytest

from ansible_collections.remo.broker.plugins.module_utils import _manifest as m
from ansible_collections.remo.broker.plugins.module_utils._manifest import (
    ManifestError,
    Manifest,
    SecretSpec,
    discover_manifest,
    load_manifest,
    manifest_json_schema,
    parse_manifest,
    render_manifest,
    secrets_from_devcontainer,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SCHEMA_FILE = os.path.join(ROOT, "docs", "schema", "remo-manifest.schema.json")


def doc(text):
    return textwrap.dedent(text).lstrip("\n")


def error_of(text, **kwargs):
    kwargs.setdefault("path", "m.toml")
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, **kwargs)
    return info.value


# ---------------------------------------------------------------------------
# Valid fixtures: every format loads unchanged
# ---------------------------------------------------------------------------
V2_DESIGN = doc('''
    schema_version = 2
    project = "myrepo"            # equals the registered name

    [secrets.GITHUB_TOKEN]        # name ^[A-Za-z0-9_]{1,128}$
    fetch_as = "env"
    [secrets.AWS_CONFIG]
    fetch_as = "file"
    file_path = "/run/secrets/aws/config"
    file_mode = "0400"
    template = "[default]\\naws_access_key_id={{access_key_id}}\\n"
''')

V2_RICH = doc('''
    schema_version = 2
    project = "web-app_2"
    secrets.NPM_TOKEN = { env_var = "NODE_AUTH_TOKEN" }
    secrets."OPENAI_API_KEY".fetch_as = 'env'

    [secrets.KUBECONFIG_DATA]
    fetch_as = "file"
    file_path = "~/.kube/config"
    file_mode = 0o600

    [secrets.SSH_KEY]
    fetch_as = "file"
    file_path = "/dev/shm/ssh/../ssh/id_ed25519"
    file_mode = 384
    template = """
    {{ private_key }}
    """

    [cache]
    ttl_seconds = 600
    max_entries = 8
''')

BROKER_V1_MINIMAL = doc('''
    schema_version = 1

    [project]
    name = "myrepo"

    [allowlist]
    secrets = ["GITHUB_TOKEN"]
''')

BROKER_V1_FULL = doc('''
    schema_version = 1

    [project]
    name = "internal-tool"
    description = "Backend service; needs GitHub for git push, npm for publish, and Anthropic for the LLM features."

    [allowlist]
    secrets = [
      "GITHUB_TOKEN",
      "NPM_TOKEN",   # publish
      "ANTHROPIC_API_KEY",
    ]

    [cache]
    ttl_seconds = 600       # tighter than broker default
    max_entries = 64
''')

BROKER_V1_EMPTY = doc('''
    schema_version = 1
    [project]
    name = "quiet"
    [allowlist]
    secrets = []
''')

SIDECAR_V1 = doc('''
    schema_version = 1
    project        = "project-a"

    [secrets.gh]
    fetch_as = "env"
    env_var  = "GH_TOKEN"

    [secrets.openai_api_key]
    fetch_as = "env"

    [secrets.aws]
    fetch_as  = "file"
    file_path = "~/.aws/credentials"
    file_mode = "0600"
    template  = """
    [default]
    aws_access_key_id={{aws_access_key_id}}
    aws_secret_access_key={{aws_secret_access_key}}
    """

    [cache]
    default_ttl_seconds = 900
    default_max_entries = 50
''')

SIDECAR_V1_VAULT = doc('''
    schema_version = 1
    project = "_remo-vault"
''').replace('"_remo-vault"', '"remo-vault"')

VALID_FIXTURES = {
    "v2_design": V2_DESIGN,
    "v2_rich": V2_RICH,
    "broker_v1_minimal": BROKER_V1_MINIMAL,
    "broker_v1_full": BROKER_V1_FULL,
    "broker_v1_empty": BROKER_V1_EMPTY,
    "sidecar_v1": SIDECAR_V1,
    "sidecar_v1_no_secrets": SIDECAR_V1_VAULT,
    "v2_no_secrets": 'schema_version = 2\nproject = "p"\n',
}


def test_v2_design_example():
    manifest = parse_manifest(V2_DESIGN, path="/p/.remo/manifest.toml", expected_project="myrepo")
    assert isinstance(manifest, Manifest)
    assert manifest.source_format == "remo.v2"
    assert manifest.schema_version == 2
    assert manifest.project == "myrepo"
    assert manifest.allowlist == ("GITHUB_TOKEN", "AWS_CONFIG")
    assert manifest.secrets["GITHUB_TOKEN"] == SecretSpec("GITHUB_TOKEN", "env", "GITHUB_TOKEN", None, None, None)
    assert manifest.secrets["AWS_CONFIG"] == SecretSpec(
        "AWS_CONFIG", "file", None, "/run/secrets/aws/config", 0o400, "[default]\naws_access_key_id={{access_key_id}}\n")
    assert manifest.cache == {}
    assert manifest.path == "/p/.remo/manifest.toml"
    assert manifest.sha256 == hashlib.sha256(V2_DESIGN.encode()).hexdigest()


def test_v2_rich_dotted_inline_quoted_octal():
    manifest = parse_manifest(V2_RICH.encode())
    assert manifest.allowlist == ("NPM_TOKEN", "OPENAI_API_KEY", "KUBECONFIG_DATA", "SSH_KEY")
    assert manifest.secrets["NPM_TOKEN"].env_var == "NODE_AUTH_TOKEN"
    assert manifest.secrets["OPENAI_API_KEY"].env_var == "OPENAI_API_KEY"
    assert manifest.secrets["KUBECONFIG_DATA"].file_path == "~/.kube/config"
    assert manifest.secrets["KUBECONFIG_DATA"].file_mode == 0o600
    assert manifest.secrets["SSH_KEY"].file_path == "/dev/shm/ssh/id_ed25519"
    assert manifest.secrets["SSH_KEY"].file_mode == 0o600
    assert manifest.secrets["SSH_KEY"].template_fields == ("private_key",)
    assert manifest.cache == {"ttl_seconds": 600, "max_entries": 8}


def test_broker_v1_loads_unchanged():
    manifest = parse_manifest(BROKER_V1_FULL, expected_project="internal-tool")
    assert manifest.source_format == "remo-broker.v1"
    assert manifest.schema_version == 1
    assert manifest.project == "internal-tool"
    assert manifest.allowlist == ("GITHUB_TOKEN", "NPM_TOKEN", "ANTHROPIC_API_KEY")
    assert all(spec.fetch_as == "env" and spec.env_var == spec.name for spec in manifest.secrets.values())
    assert manifest.cache == {"ttl_seconds": 600, "max_entries": 64}
    assert parse_manifest(BROKER_V1_MINIMAL).allowlist == ("GITHUB_TOKEN",)
    assert parse_manifest(BROKER_V1_EMPTY).allowlist == ()


def test_sidecar_v1_loads_unchanged():
    manifest = parse_manifest(SIDECAR_V1, expected_project="project-a")
    assert manifest.source_format == "remo-sidecar.v1"
    assert manifest.schema_version == 1
    assert manifest.allowlist == ("gh", "openai_api_key", "aws")
    assert manifest.secrets["gh"].env_var == "GH_TOKEN"
    # remo's helper defaults env_var to the upper-cased secret name.
    assert manifest.secrets["openai_api_key"].env_var == "OPENAI_API_KEY"
    aws = manifest.secrets["aws"]
    assert (aws.fetch_as, aws.file_path, aws.file_mode) == ("file", "~/.aws/credentials", 0o600)
    assert aws.template_fields == ("aws_access_key_id", "aws_secret_access_key")
    # The sidecar's default_* cache keys are normalised.
    assert manifest.cache == {"ttl_seconds": 900, "max_entries": 50}
    assert parse_manifest(SIDECAR_V1_VAULT).allowlist == ()


def test_to_public_dict_is_json_and_has_no_template_text():
    public = parse_manifest(SIDECAR_V1, path="x.toml").to_public_dict()
    assert json.loads(json.dumps(public)) == public
    assert set(public) == {"project", "schema_version", "source_format", "path", "sha256", "secrets"}
    assert public["secrets"][2] == {"name": "aws", "fetch_as": "file", "env_var": None, "file_path": "~/.aws/credentials",
                                    "file_mode": "0600", "template_fields": ["aws_access_key_id", "aws_secret_access_key"]}
    assert public["secrets"][0]["file_mode"] is None
    assert "aws_access_key_id=" not in json.dumps(public)


def test_file_mode_default_and_str_int_forms():
    base = 'schema_version = 2\nproject = "p"\n[secrets.F]\nfetch_as = "file"\nfile_path = "/run/secrets/f"\n'
    assert parse_manifest(base).secrets["F"].file_mode == 0o400
    for text, mode in (('"0640"', 0o640), ('"444"', 0o444), ("0o604", 0o604), ("256", 0o400)):
        assert parse_manifest(base + "file_mode = %s\n" % text).secrets["F"].file_mode == mode


def test_custom_file_roots():
    text = 'schema_version = 2\nproject = "p"\n[secrets.F]\nfetch_as = "file"\nfile_path = "/srv/creds/f"\n'
    assert parse_manifest(text, file_roots=["/srv/creds"]).secrets["F"].file_path == "/srv/creds/f"
    err = error_of(text)
    assert (err.line, err.column, err.key) == (5, 13, "secrets.F.file_path")
    with pytest.raises(ManifestError):
        parse_manifest(text, file_roots=["relative"])


def test_crlf_and_bom_free_text():
    manifest = parse_manifest(V2_DESIGN.replace("\n", "\r\n"))
    assert manifest.allowlist == ("GITHUB_TOKEN", "AWS_CONFIG")
    err = error_of(V2_DESIGN.replace("\n", "\r\n").replace('"env"', '"nope"'))
    assert (err.line, err.column) == (5, 12)


# ---------------------------------------------------------------------------
# Errors: exact FILE:LINE:COL: KEY
# ---------------------------------------------------------------------------
HEAD = 'schema_version = 2\nproject = "p"\n'
SEC = HEAD + '[secrets.GH]\n'

ERRORS = [
    # (id, text, line, column, key, reason fragment)
    ("missing_schema_version", 'project = "p"\n', 1, 1, "schema_version", "missing required key"),
    ("schema_version_type", 'schema_version = "2"\nproject = "p"\n', 1, 18, "schema_version", "must be an integer"),
    ("schema_version_bool", 'schema_version = true\n', 1, 18, "schema_version", "must be an integer"),
    ("schema_version_unsupported", 'project = "p"\nschema_version = 3\n', 2, 18, "schema_version", "unsupported schema_version 3"),
    ("unknown_top_key", HEAD + 'projcet = "q"\n', 3, 1, "projcet", "unknown key"),
    ("unknown_top_table", HEAD + '[allowlist]\nsecrets = []\n', 3, 2, "allowlist", "unknown key"),
    ("missing_project", 'schema_version = 2\n', 1, 1, "project", "missing required key"),
    ("project_type", 'schema_version = 2\nproject = ["p"]\n', 2, 11, "project", "must be a string"),
    ("project_bad_name", 'schema_version = 2\nproject = "My Repo"\n', 2, 11, "project", "invalid project name"),
    ("project_mismatch", 'schema_version = 2\n\nproject   =   "other"\n', 3, 15, "project", "does not match the registered project \"p\""),
    ("secrets_not_table", HEAD + 'secrets = ["GH"]\n', 3, 11, "secrets", "must be a table"),
    ("secret_bad_name", HEAD + '[secrets."GH-TOKEN"]\n', 3, 10, "secrets.GH-TOKEN", "invalid secret name"),
    ("secret_not_table", HEAD + '[secrets]\nGH = "env"\n', 4, 6, "secrets.GH", "must be a table"),
    ("secret_unknown_key", SEC + 'fetch_as = "env"\n  envvar = "X"\n', 5, 3, "secrets.GH.envvar", "unknown key in [secrets.GH]"),
    ("fetch_as_bad", SEC + 'fetch_as = "stdin"\n', 4, 12, "secrets.GH.fetch_as", 'must be "env" or "file"'),
    ("fetch_as_type", SEC + 'fetch_as = 1\n', 4, 12, "secrets.GH.fetch_as", "must be a string"),
    ("env_var_type", SEC + 'env_var = 5\n', 4, 11, "secrets.GH.env_var", "must be a string"),
    ("env_var_invalid", SEC + 'env_var = "1GH"\n', 4, 11, "secrets.GH.env_var", "not a valid environment variable name"),
    ("env_var_dash", SEC + 'env_var = "GH-TOKEN"\n', 4, 11, "secrets.GH.env_var", "not a valid environment variable name"),
    ("env_var_path", SEC + 'env_var = "PATH"\n', 4, 11, "secrets.GH.env_var", "PATH is not allowed: it changes which programs"),
    ("env_var_ld_preload", SEC + 'env_var = "LD_PRELOAD"\n', 4, 11, "secrets.GH.env_var", "LD_* family changes how the dynamic loader"),
    ("env_var_ld_library_path", SEC + 'env_var = "LD_LIBRARY_PATH"\n', 4, 11, "secrets.GH.env_var", "not allowed"),
    ("env_var_pythonpath", SEC + 'env_var = "PYTHONPATH"\n', 4, 11, "secrets.GH.env_var", "makes an interpreter load"),
    ("env_var_node_options", SEC + 'env_var = "NODE_OPTIONS"\n', 4, 11, "secrets.GH.env_var", "makes an interpreter load"),
    ("env_var_bash_env", SEC + 'env_var = "BASH_ENV"\n', 4, 11, "secrets.GH.env_var", "makes shells run code"),
    ("env_var_env", SEC + 'env_var = "ENV"\n', 4, 11, "secrets.GH.env_var", "makes shells run code"),
    ("env_var_remo", SEC + 'env_var = "REMO_MANIFEST_PATH"\n', 4, 11, "secrets.GH.env_var", "reserved for the broker"),
    ("default_env_var_dangerous", HEAD + '\n[secrets.PATH]\n', 4, 10, "secrets.PATH", "the default env_var PATH"),
    ("default_env_var_invalid", HEAD + '[secrets.9LIVES]\n', 3, 10, "secrets.9LIVES", "not a valid environment variable"),
    ("duplicate_env_var", HEAD + '[secrets.A]\nenv_var = "TOKEN"\n[secrets.B]\nenv_var = "TOKEN"\n', 6, 11, "secrets.B.env_var",
     "environment variable TOKEN is already set by secret A"),
    ("duplicate_env_var_default", HEAD + '[secrets.A]\nenv_var = "B"\n[secrets.B]\n', 5, 10, "secrets.B", "already set by secret A"),
    ("file_on_env", SEC + 'file_path = "/run/secrets/x"\n', 4, 1, "secrets.GH.file_path", 'only allowed when fetch_as = "file"'),
    ("template_on_env", SEC + 'fetch_as = "env"\ntemplate = "{{a}}"\n', 5, 1, "secrets.GH.template", 'only allowed when fetch_as = "file"'),
    ("file_mode_on_env", SEC + 'file_mode = "0400"\n', 4, 1, "secrets.GH.file_mode", 'only allowed when fetch_as = "file"'),
    ("env_var_on_file", SEC + 'fetch_as = "file"\nfile_path = "/run/secrets/gh"\nenv_var = "GH"\n', 6, 1, "secrets.GH.env_var",
     'only allowed when fetch_as = "env"'),
    ("file_without_path", HEAD + '\n[secrets.GH]\nfetch_as = "file"\n', 4, 1, "secrets.GH", "requires file_path"),
    ("file_path_type", SEC + 'fetch_as = "file"\nfile_path = 1\n', 5, 13, "secrets.GH.file_path", "must be a string"),
    ("file_path_relative", SEC + 'fetch_as = "file"\nfile_path = "secrets/gh"\n', 5, 13, "secrets.GH.file_path", "must be absolute or start with ~/"),
    ("file_path_tilde_user", SEC + 'fetch_as = "file"\nfile_path = "~root/gh"\n', 5, 13, "secrets.GH.file_path", "not ~user"),
    ("file_path_outside_root", SEC + 'fetch_as = "file"\nfile_path = "/etc/gh"\n', 5, 13, "secrets.GH.file_path", "is not below an allowed root"),
    ("file_path_dotdot_escape", SEC + 'fetch_as = "file"\nfile_path = "/run/secrets/../../etc/shadow"\n', 5, 13, "secrets.GH.file_path",
     "is not below an allowed root"),
    ("file_path_home_escape", SEC + 'fetch_as = "file"\nfile_path = "~/../other/x"\n', 5, 13, "secrets.GH.file_path", "'..' climbs out of ~"),
    ("file_path_is_root", SEC + 'fetch_as = "file"\nfile_path = "/run/secrets/"\n', 5, 13, "secrets.GH.file_path", "is not below an allowed root"),
    ("file_path_control", SEC + 'fetch_as = "file"\nfile_path = "/run/secrets/a\\nb"\n', 5, 13, "secrets.GH.file_path", "control characters"),
    ("file_path_empty", SEC + 'fetch_as = "file"\nfile_path = ""\n', 5, 13, "secrets.GH.file_path", "non-empty"),
    ("duplicate_file_path", HEAD + '[secrets.A]\nfetch_as = "file"\nfile_path = "/dev/shm/x"\n[secrets.B]\nfetch_as = "file"\n'
     'file_path = "/dev/shm/y/../x"\n', 8, 13, "secrets.B.file_path", "already used by secret A"),
    ("file_mode_exec", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = "0700"\n', 6, 13, "secrets.GH.file_mode", "grants execute"),
    ("file_mode_group_write", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = "0620"\n', 6, 13, "secrets.GH.file_mode",
     "lets group or others write"),
    ("file_mode_other_write", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = 0o602\n', 6, 13, "secrets.GH.file_mode",
     "lets group or others write"),
    ("file_mode_setuid", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = "4400"\n', 6, 13, "secrets.GH.file_mode", "setuid"),
    ("file_mode_not_octal", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = "0o400"\n', 6, 13, "secrets.GH.file_mode",
     "octal string"),
    ("file_mode_digit_8", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = "0800"\n', 6, 13, "secrets.GH.file_mode", "octal string"),
    ("file_mode_decimal_400", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = 400\n', 6, 13, "secrets.GH.file_mode",
     "lets group or others write"),
    ("file_mode_float", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = 4.0\n', 6, 13, "secrets.GH.file_mode", "not a float"),
    ("file_mode_unreadable", SEC + 'fetch_as = "file"\nfile_path = "~/x"\nfile_mode = "0200"\n', 6, 13, "secrets.GH.file_mode",
     "does not let the owner read"),
    ("template_type", SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = 1\n', 6, 12, "secrets.GH.template", "must be a string"),
    ("template_empty", SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = ""\n', 6, 12, "secrets.GH.template", "must not be empty"),
    ("template_bad_field", SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = """\nuser={{user-name}}\n"""\n', 6, 12,
     "secrets.GH.template", "bad placeholder at character 6"),
    ("template_unclosed", SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = "a {{b"\n', 6, 12, "secrets.GH.template", "bad placeholder"),
    ("template_empty_field", SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = "{{ }}"\n', 6, 12, "secrets.GH.template", "bad placeholder"),
    ("cache_unknown", HEAD + '[cache]\nttl = 5\n', 4, 1, "cache.ttl", "unknown key in [cache] (allowed: ttl_seconds, max_entries)"),
    ("cache_range", HEAD + '[cache]\nttl_seconds = 0\n', 4, 15, "cache.ttl_seconds", "between 1 and 86400"),
    ("cache_type", HEAD + '[cache]\nmax_entries = "8"\n', 4, 15, "cache.max_entries", "must be an integer"),
    ("cache_not_table", HEAD + 'cache = 5\n', 3, 9, "cache", "must be a table"),
    ("array_of_tables", HEAD + '[[secrets]]\nfetch_as = "env"\n', 3, 1, "secrets", "must be a table, not a array"),
    # remo-broker v0.1
    ("v1_unknown_top", 'extra = 1\n' + BROKER_V1_MINIMAL, 1, 1, "extra", "remo-broker v0.1"),
    ("v1_allowlist_unknown", BROKER_V1_MINIMAL + 'extra = 1\n', 8, 1, "allowlist.extra", "unknown key in [allowlist] (allowed: secrets)"),
    ("v1_project_unknown", 'schema_version = 1\n[project]\nname = "p"\nowner = "me"\n[allowlist]\nsecrets = []\n', 4, 1, "project.owner",
     "unknown key in [project] (allowed: name, description)"),
    ("v1_missing_name", 'schema_version = 1\n[project]\ndescription = "x"\n[allowlist]\nsecrets = []\n', 2, 1, "project.name", "missing required key"),
    ("v1_missing_allowlist", 'schema_version = 1\n[project]\nname = "p"\n', 1, 1, "allowlist", "missing required table"),
    ("v1_missing_allowlist_secrets", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\n', 4, 1, "allowlist.secrets", "missing required key"),
    ("v1_secrets_not_array", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = "GH"\n', 5, 11, "allowlist.secrets",
     "must be an array"),
    ("v1_bad_name", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = [\n  "GH",\n  "bad name",\n]\n', 7, 3,
     "allowlist.secrets[1]", "invalid secret name"),
    ("v1_duplicate", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = ["GH", "NPM",\n    "GH"]\n', 6, 5,
     "allowlist.secrets[2]", "duplicate secret name GH"),
    ("v1_item_type", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = [1]\n', 5, 12, "allowlist.secrets[0]", "must be a string"),
    ("v1_dangerous", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = ["LD_PRELOAD"]\n', 5, 12, "allowlist.secrets[0]",
     "LD_* family"),
    ("v1_project_mismatch", 'schema_version = 1\n[project]\nname = "p"\n[allowlist]\nsecrets = []\n', 3, 8, "project.name", "does not match"),
    ("v1_description_long", 'schema_version = 1\n[project]\nname = "p"\ndescription = "%s"\n[allowlist]\nsecrets = []\n' % ("x" * 257), 4, 15,
     "project.description", "longer than 256"),
    ("v1_cache_range", BROKER_V1_MINIMAL + '[cache]\nmax_entries = 2000\n', 9, 15, "cache.max_entries", "between 1 and 1024"),
    ("v1_cache_sidecar_key", BROKER_V1_MINIMAL + '[cache]\ndefault_ttl_seconds = 5\n', 9, 1, "cache.default_ttl_seconds", "unknown key"),
    ("v1_secrets_table_mixed", BROKER_V1_MINIMAL + '[secrets.GH]\n', 8, 2, "secrets", "remo-broker v0.1"),
    # remo sidecar
    ("sidecar_cache_v01_key", 'schema_version = 1\nproject = "p"\n[cache]\nttl_seconds = 5\n', 4, 1, "cache.ttl_seconds",
     "allowed: default_ttl_seconds, default_max_entries"),
    ("sidecar_allowlist_mixed", 'schema_version = 1\nproject = "p"\n[allowlist]\nsecrets = []\n', 3, 2, "allowlist", "remo sidecar manifest"),
    ("sidecar_default_env_collision", 'schema_version = 1\nproject = "p"\n[secrets.gh]\n[secrets.GH]\n', 4, 10, "secrets.GH",
     "already set by secret gh"),
    ("sidecar_missing_project", 'schema_version = 1\n[secrets.gh]\n', 1, 1, "project", "missing required key"),
]


@pytest.mark.parametrize("text,line,column,key,reason", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_positions(text, line, column, key, reason):
    expected_project = "p" if key in ("project", "project.name") and "does not match" in reason else None
    if expected_project and "other" not in text:
        expected_project = "q"
    err = error_of(text, expected_project=expected_project)
    assert (err.file, err.line, err.column, err.key) == ("m.toml", line, column, key), str(err)
    assert reason in err.reason, str(err)
    assert str(err) == "m.toml:%d:%d: %s: %s" % (line, column, key, err.reason)
    assert isinstance(err, ValueError)
    assert err.to_dict() == {"file": "m.toml", "line": line, "column": column, "key": key, "reason": err.reason}


SYNTAX = [
    ("duplicate_table", HEAD + '[secrets.GH]\n[secrets.GH]\n', 4, 12),
    ("duplicate_key", HEAD + 'project = "q"\n', 3, 14),
    ("unterminated_string", 'schema_version = 2\nproject = "p\n', 2, 13),
    ("end_of_document", 'schema_version = 2\nproject = [\n', 3, 1),
    ("bad_header", 'schema_version = 2\n[secrets.\n', 2, 10),
]


@pytest.mark.parametrize("text,line,column", [s[1:] for s in SYNTAX], ids=[s[0] for s in SYNTAX])
def test_toml_syntax_errors_carry_tomllib_position(text, line, column):
    err = error_of(text)
    assert (err.line, err.column, err.key) == (line, column, "<toml>"), str(err)
    assert err.reason.startswith("TOML syntax error: ")
    assert "(at line" not in err.reason


def test_bad_utf8_position():
    err = error_of(b'schema_version = 2\nproject = "\xff"\n')
    assert (err.line, err.column, err.key) == (2, 12, "<toml>")
    assert "UTF-8" in err.reason


def test_size_cap():
    big = HEAD + "#" * m.MAX_MANIFEST_BYTES
    err = error_of(big)
    assert (err.line, err.column, err.key) == (0, 0, "<file>")
    assert "larger than 65536 bytes" in err.reason


def test_wrong_data_type():
    with pytest.raises(ManifestError):
        parse_manifest(12)


def test_lone_surrogate_text():
    err = error_of('schema_version = 2\nproject = "\ud800"\n')
    assert err.key == "<toml>"


def test_error_never_contains_template_text():
    text = SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = "s3cr3t-looking {{bad field}}"\n'
    err = error_of(text)
    assert "s3cr3t" not in str(err)


# ---------------------------------------------------------------------------
# Locator
# ---------------------------------------------------------------------------
LOCATOR_TEXT = "\n".join([
    "# comment with [brackets] and = signs",
    "top = 1",
    '"quoted key" = "v"   # trailing',
    'a.b . c = { x = 1, "y z" = [1, 2], n = { deep = true } }',
    "arr = [",
    '  "one", # comment, with comma',
    "  'two',",
    '  """three',
    'lines""",',
    "  [4, 5],",
    "]",
    "date = 1979-05-27 07:32:00Z",
    '[tbl . "sub.key"]',
    "k = \'\'\'lit",
    "\'\'\' # c",
    "m = 1",
    "[[aot]]",
    "v = 1",
    "[[aot]]",
    "v = 2",
    "[aot.child]",
    "w = 3",
]) + "\n"


@pytest.mark.parametrize("path,kind,expected", [
    (("top",), "key", (2, 1)),
    (("top",), "value", (2, 7)),
    (("quoted key",), "key", (3, 1)),
    (("quoted key",), "value", (3, 16)),
    (("a",), "key", (4, 1)),
    (("a", "b"), "key", (4, 3)),
    (("a", "b", "c"), "key", (4, 7)),
    (("a", "b", "c"), "value", (4, 11)),
    (("a", "b", "c", "x"), "value", (4, 17)),
    (("a", "b", "c", "y z"), "key", (4, 20)),
    (("a", "b", "c", "y z", 1), "value", (4, 32)),
    (("a", "b", "c", "n", "deep"), "value", (4, 49)),
    (("arr", 0), "value", (6, 3)),
    (("arr", 1), "value", (7, 3)),
    (("arr", 2), "value", (8, 3)),
    (("arr", 3), "value", (10, 3)),
    (("arr", 3, 1), "value", (10, 7)),
    (("date",), "value", (12, 8)),
    (("tbl",), "key", (13, 2)),
    (("tbl", "sub.key"), "key", (13, 8)),
    (("tbl", "sub.key"), "value", (13, 1)),
    (("tbl", "sub.key", "k"), "value", (14, 5)),
    (("tbl", "sub.key", "m"), "key", (16, 1)),
    (("aot",), "value", (17, 1)),
    (("aot", 0, "v"), "value", (18, 5)),
    (("aot", 1, "v"), "value", (20, 5)),
    (("aot", 1, "child", "w"), "key", (22, 1)),
    (("aot", 1, "child"), "value", (21, 1)),
    # fallbacks: unknown leaf -> nearest known ancestor; unknown root -> (1, 1)
    (("tbl", "sub.key", "missing"), "key", (13, 1)),
    (("a", "b", "c", "nope"), "value", (4, 11)),
    (("nothing", "here"), "key", (1, 1)),
    ((), "key", (1, 1)),
])
def test_locator(path, kind, expected):
    import tomllib
    tomllib.loads(LOCATOR_TEXT)  # the fixture is valid TOML
    assert m._Locator(LOCATOR_TEXT).locate(path, kind) == expected


def test_locator_escaped_quoted_keys():
    text = '"a\\u0062c" = 1\n[x."\\"q\\""]\n'
    loc = m._Locator(text)
    assert loc.locate(("abc",), "key") == (1, 1)
    assert loc.locate(("x", '"q"'), "key") == (2, 4)


def test_locator_never_raises_on_garbage():
    for text in ("", "[", "a = ", "a = [1,", '"unterminated', "x = {", "= 1", "a.\n", "'''", '"""', "[[a]", "a = { b = "):
        line, column = m._Locator(text).locate(("a", "b"), "value")
        assert line == 1 and 1 <= column <= len(text) + 1


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------
def test_load_manifest(tmp_path):
    project = tmp_path / "myrepo"
    (project / ".remo").mkdir(parents=True)
    target = project / ".remo" / "manifest.toml"
    target.write_text(V2_DESIGN)
    assert discover_manifest(str(project)) == str(target)
    manifest = load_manifest(str(target), expected_project="myrepo")
    assert manifest.path == str(target)
    assert manifest.sha256 == hashlib.sha256(V2_DESIGN.encode()).hexdigest()
    err = pytest.raises(ManifestError, load_manifest, target, expected_project="other").value
    assert (err.file, err.line, err.column, err.key) == (str(target), 2, 11, "project")


def test_load_manifest_errors(tmp_path):
    missing = tmp_path / "nope.toml"
    err = pytest.raises(ManifestError, load_manifest, str(missing)).value
    assert (err.line, err.column, err.key, err.reason) == (0, 0, "<file>", "not found")
    assert str(err) == "%s:0:0: <file>: not found" % missing
    err = pytest.raises(ManifestError, load_manifest, str(tmp_path)).value
    assert "directory" in err.reason
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (m.MAX_MANIFEST_BYTES + 1))
    assert "larger than" in pytest.raises(ManifestError, load_manifest, str(big)).value.reason
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    assert "not a regular file" in pytest.raises(ManifestError, load_manifest, str(fifo)).value.reason


def test_load_manifest_permission_denied(tmp_path):
    target = tmp_path / "m.toml"
    target.write_text(V2_DESIGN)
    target.chmod(0)
    tmp_path.chmod(0o755)
    if os.geteuid() != 0:
        err = pytest.raises(ManifestError, load_manifest, str(target)).value
        assert err.reason.startswith("permission denied")
        return
    # Root reads anything, so drop to an unprivileged uid in a child process.
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                load_manifest(str(target))
                result = b"loaded"
            except ManifestError as exc:
                result = exc.reason.encode()
        except BaseException as exc:  # pylint: disable=broad-except
            result = ("child failed: %r" % exc).encode()
        os.write(write_fd, result)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        reason = pipe.read().decode()
    os.waitpid(pid, 0)
    assert reason.startswith("permission denied"), reason


def test_load_manifest_reads_only_trusted_paths(tmp_path):
    project = tmp_path / "myrepo"
    (project / ".remo").mkdir(parents=True)
    target = project / ".remo" / "manifest.toml"
    target.write_text(V2_DESIGN)
    target.chmod(0o644)
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    err = pytest.raises(ManifestError, load_manifest, str(link)).value
    assert (err.file, err.key) == (str(link), "<file>") and "symbolic link" in err.reason
    (project / ".remo").chmod(0o775)
    err = pytest.raises(ManifestError, load_manifest, str(target)).value
    assert err.reason == ("directory is writable by group or others (mode 0775) (%s); fix: chmod go-w %s"
                          % (project / ".remo", project / ".remo")), err.reason
    (project / ".remo").chmod(0o755)
    err = pytest.raises(ManifestError, load_manifest, str(project / "absent" / "manifest.toml")).value
    assert err.reason == "not found (%s)" % (project / "absent")
    assert load_manifest(str(target), expected_project="myrepo").project == "myrepo"


def test_discover_manifest_errors(tmp_path):
    err = pytest.raises(ManifestError, discover_manifest, str(tmp_path / "absent")).value
    assert "does not exist" in err.reason
    err = pytest.raises(ManifestError, discover_manifest, str(tmp_path)).value
    assert err.file == str(tmp_path / ".remo" / "manifest.toml")
    assert err.reason.startswith("not found")
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer" / "remo-broker.toml").write_text(BROKER_V1_MINIMAL)
    err = pytest.raises(ManifestError, discover_manifest, str(tmp_path)).value
    assert ".devcontainer/remo-broker.toml" in err.reason


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------
SPECS = [
    {"name": "GITHUB_TOKEN"},
    {"name": "NPM", "fetch_as": "env", "env_var": "NPM_TOKEN"},
    {"name": "AWS", "fetch_as": "file", "file_path": "~/.aws/credentials", "file_mode": 0o600,
     "template": '[default]\naws_access_key_id={{id}}\nquote="\\ \t\x01"""\n'},
    {"name": "KUBE", "fetch_as": "file", "file_path": "/run/secrets/kube", "file_mode": "0440", "template": "{{ config }}", "env_var": None},
]


def test_render_round_trip():
    text = render_manifest("myrepo", SPECS)
    assert text == render_manifest("myrepo", SPECS)
    manifest = parse_manifest(text, expected_project="myrepo")
    assert manifest.source_format == "remo.v2"
    assert list(manifest.secrets.values()) == [
        SecretSpec("GITHUB_TOKEN", "env", "GITHUB_TOKEN"),
        SecretSpec("NPM", "env", "NPM_TOKEN"),
        SecretSpec("AWS", "file", None, "~/.aws/credentials", 0o600, SPECS[2]["template"]),
        SecretSpec("KUBE", "file", None, "/run/secrets/kube", 0o440, "{{ config }}"),
    ]
    assert 'template = """\n[default]\n' in text
    # re-rendering the parsed specs gives the same text
    again = render_manifest("myrepo", list(manifest.secrets.values()))
    assert again == text


def test_render_exact_text():
    assert render_manifest("p", [{"name": "A"}, {"name": "F", "fetch_as": "file", "file_path": "/dev/shm/f"}]) == (
        "# remo.broker project manifest: which secrets this project may read.\n"
        "schema_version = 2\n"
        'project = "p"\n'
        "\n"
        "[secrets.A]\n"
        'fetch_as = "env"\n'
        "\n"
        "[secrets.F]\n"
        'fetch_as = "file"\n'
        'file_path = "/dev/shm/f"\n'
        'file_mode = "0400"\n')


@pytest.mark.parametrize("project,specs,key", [
    (1, [], "project"),
    ("p", "nope", "secrets"),
    ("p", ["x"], "secrets[0]"),
    ("p", [{"name": "A", "colour": "red"}], "secrets[0].colour"),
    ("p", [{}], "secrets[0].name"),
    ("p", [{"name": "A"}, {"name": "A"}], "secrets[1].name"),
    ("p", [{"name": "A", "fetch_as": 1}], "secrets[0].fetch_as"),
    ("p", [{"name": "A", "env_var": 1}], "secrets[0].env_var"),
])
def test_render_rejects_bad_specs(project, specs, key):
    err = pytest.raises(ManifestError, render_manifest, project, specs).value
    assert err.key == key


def test_render_validates_by_parsing():
    err = pytest.raises(ManifestError, render_manifest, "p", [{"name": "A", "env_var": "LD_PRELOAD"}]).value
    assert err.file == "<rendered manifest>"
    assert err.key == "secrets.A.env_var"
    err = pytest.raises(ManifestError, render_manifest, "p", [{"name": "bad name"}]).value
    assert err.key == 'secrets."bad name"'
    err = pytest.raises(ManifestError, render_manifest, "Bad", []).value
    assert err.key == "project"
    assert render_manifest("p", [{"name": "F", "fetch_as": "file", "file_path": "/srv/x"}], file_roots=["/srv"])


# ---------------------------------------------------------------------------
# devcontainer.json
# ---------------------------------------------------------------------------
DEVCONTAINER = '''{
  // JSONC: comments and trailing commas
  "name": "web // not a comment",
  "image": "mcr.microsoft.com/devcontainers/base:ubuntu", /* block
  comment */
  "secrets": {
    "GITHUB_TOKEN": {"description": "a /* not a comment */ string",},
    "NPM_TOKEN": {
      "documentationUrl": "https://docs.npmjs.com/about-access-tokens",
    },
    "OPENAI_API_KEY": {},
  },
  "features": {"x": [1, 2,],},
}
'''


def test_devcontainer_secrets():
    specs = secrets_from_devcontainer(DEVCONTAINER)
    assert specs == [
        {"name": "GITHUB_TOKEN", "fetch_as": "env", "env_var": "GITHUB_TOKEN"},
        {"name": "NPM_TOKEN", "fetch_as": "env", "env_var": "NPM_TOKEN"},
        {"name": "OPENAI_API_KEY", "fetch_as": "env", "env_var": "OPENAI_API_KEY"},
    ]
    assert parse_manifest(render_manifest("web", specs)).allowlist == ("GITHUB_TOKEN", "NPM_TOKEN", "OPENAI_API_KEY")


def test_devcontainer_without_secrets_and_bom():
    assert secrets_from_devcontainer('\ufeff{"name": "x"} // end') == []
    assert secrets_from_devcontainer(b'{"secrets": {"A": {}}}') == [{"name": "A", "fetch_as": "env", "env_var": "A"}]


@pytest.mark.parametrize("text,line,column,key,reason", [
    ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "<json>", "Expecting ',' delimiter"),
    ('{\n  // c\n  "a": tru\n}', 3, 8, "<json>", "Expecting value"),
    ('[1, 2]', 1, 1, "<json>", "top level must be an object"),
    ('{"secrets": ["A"]}', 1, 2, "secrets", "must be an object"),
    ('{\n "secrets": {\n   "OK": {},\n   "bad-name": {}\n }\n}', 4, 4, 'secrets.bad-name', "invalid secret name"),
    ('{\n "secrets": {\n   "PATH": {}\n }\n}', 3, 4, "secrets.PATH", "PATH is not allowed"),
    ('{\n "secrets": {\n   "A": {},\n   "A": {}\n }\n}', 2, 2, "secrets", "listed twice"),
    ('{"a": "unterminated', 1, 7, "<json>", "Unterminated string"),
    (b'{"a": "\xff"}', 0, 0, "<json>", "UTF-8"),
    ('/* unterminated comment', 1, 24, "<json>", "Expecting value"),
])
def test_devcontainer_errors(text, line, column, key, reason):
    err = pytest.raises(ManifestError, secrets_from_devcontainer, text, "dc.json").value
    assert (err.file, err.line, err.column, err.key) == ("dc.json", line, column, key), str(err)
    assert reason in err.reason


def test_devcontainer_non_text():
    with pytest.raises(ManifestError):
        secrets_from_devcontainer(None)


# ---------------------------------------------------------------------------
# JSON Schema: shipped file, and schema/parser agreement
# ---------------------------------------------------------------------------
def _load_gen_script():
    spec = importlib.util.spec_from_file_location("gen_manifest_schema", os.path.join(ROOT, "scripts", "gen_manifest_schema.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_schema_is_generated():
    with open(SCHEMA_FILE, encoding="utf-8") as handle:
        shipped = handle.read()
    assert json.loads(shipped) == manifest_json_schema()
    assert shipped == _load_gen_script().render_schema_text(m), "run scripts/gen_manifest_schema.py"


def test_schema_is_valid_draft_2020_12():
    schema = manifest_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _schema_errors(text):
    import tomllib
    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    return list(validator.iter_errors(tomllib.loads(text)))


@pytest.mark.parametrize("name", sorted(VALID_FIXTURES))
def test_schema_accepts_valid_fixtures(name):
    parse_manifest(VALID_FIXTURES[name])
    assert _schema_errors(VALID_FIXTURES[name]) == []


def test_schema_accepts_rendered_manifest():
    assert _schema_errors(render_manifest("myrepo", SPECS)) == []


# Invalid fixtures whose rule JSON Schema can express.  Not here: duplicates after
# normalisation, defaulted env_var names, '..' normalisation, expected_project,
# file_path pointing at a root itself.
SCHEMA_EXPRESSIBLE = {
    "missing_schema_version", "schema_version_type", "schema_version_bool", "schema_version_unsupported", "unknown_top_key",
    "unknown_top_table", "missing_project", "project_type", "project_bad_name", "secrets_not_table", "secret_bad_name",
    "secret_not_table", "secret_unknown_key", "fetch_as_bad", "fetch_as_type", "env_var_type", "env_var_invalid", "env_var_dash",
    "env_var_path", "env_var_ld_preload", "env_var_ld_library_path", "env_var_pythonpath", "env_var_node_options",
    "env_var_bash_env", "env_var_env", "env_var_remo", "file_on_env", "template_on_env", "file_mode_on_env", "env_var_on_file",
    "file_without_path", "file_path_type", "file_path_relative", "file_path_tilde_user", "file_path_outside_root",
    "file_path_control", "file_path_empty", "file_mode_exec", "file_mode_group_write", "file_mode_other_write",
    "file_mode_setuid", "file_mode_not_octal", "file_mode_digit_8", "file_mode_decimal_400", "file_mode_float",
    "file_mode_unreadable", "template_type", "template_empty", "template_bad_field", "template_unclosed", "template_empty_field",
    "cache_unknown", "cache_range", "cache_type", "cache_not_table", "array_of_tables", "v1_unknown_top", "v1_project_unknown",
    "v1_allowlist_unknown", "v1_missing_name", "v1_missing_allowlist", "v1_missing_allowlist_secrets", "v1_secrets_not_array", "v1_bad_name",
    "v1_duplicate", "v1_item_type", "v1_dangerous", "v1_description_long", "v1_cache_range", "v1_cache_sidecar_key",
    "v1_secrets_table_mixed", "sidecar_cache_v01_key", "sidecar_allowlist_mixed", "sidecar_missing_project",
}


@pytest.mark.parametrize("case", [e for e in ERRORS if e[0] in SCHEMA_EXPRESSIBLE], ids=lambda e: e[0])
def test_schema_rejects_invalid_fixtures(case):
    text = case[1]
    with pytest.raises(ManifestError):
        parse_manifest(text)
    assert _schema_errors(text), "schema accepted %s" % case[0]


def test_schema_expressible_names_exist():
    assert SCHEMA_EXPRESSIBLE <= {e[0] for e in ERRORS}


def test_schema_file_mode_enum_matches_parser():
    modes = manifest_json_schema()["$defs"]["secret"]["properties"]["file_mode"]["oneOf"][1]["enum"]
    assert modes == [0o400, 0o404, 0o440, 0o444, 0o600, 0o604, 0o640, 0o644]


def test_no_side_effects_and_stdlib_only():
    with open(m.__file__, encoding="utf-8") as handle:
        source = handle.read()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == [
        "from __future__ import annotations", "import dataclasses", "import hashlib", "import json", "import os",
        "import re", "import tomllib",
        "from ansible_collections.remo.broker.plugins.module_utils._protocol import PROJECT_NAME_RE, SECRET_NAME_RE",
        "from ansible_collections.remo.broker.plugins.module_utils._trusted_path import (",
    ]
    assert "assert " not in source
    assert max(len(line) for line in source.splitlines()) <= 160


# ---------------------------------------------------------------------------
# Corners
# ---------------------------------------------------------------------------
def test_locator_multiline_escapes_and_quote_runs():
    text = 'a = """x \\""" y\n""""\nb = \'\'\'q\'\'\'\'\'\nc = """""""\nd = 1\n'
    import tomllib
    assert tomllib.loads(text)["a"] == 'x """ y\n"'
    loc = m._Locator(text)
    assert loc.locate(("b",), "key") == (3, 1)
    assert loc.locate(("c",), "key") == (4, 1)
    assert loc.locate(("d",), "value") == (5, 5)


def test_datetime_and_float_type_names():
    err = error_of('schema_version = 2\nproject = 1979-05-27\n')
    assert (err.line, err.column, err.reason) == (2, 11, "must be a string, not a date/time")
    err = error_of('schema_version = 2.0\n')
    assert err.reason == "must be an integer, not a float"


def test_long_keys_are_cut_short_in_messages():
    key = "K" * 200
    err = error_of('schema_version = 2\nproject = "p"\n%s = 1\n' % key)
    assert err.key == "K" * 77 + "..."
    assert (err.line, err.column) == (3, 1)


def test_load_manifest_permission_and_read_errors(tmp_path, monkeypatch):
    target = tmp_path / "m.toml"
    target.write_text(V2_DESIGN)

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(m.os, "open", deny)
        err = pytest.raises(ManifestError, load_manifest, str(target)).value
    assert (err.key, err.reason) == ("<file>", "permission denied: the broker cannot read this file")
    with monkeypatch.context() as patch:
        patch.setattr(m.os, "read", deny)
        assert pytest.raises(ManifestError, load_manifest, str(target)).value.reason.startswith("permission denied")
    with monkeypatch.context() as patch:
        patch.setattr(m.os, "read", broken)
        assert pytest.raises(ManifestError, load_manifest, str(target)).value.reason == "cannot read: Input/output error"
    with monkeypatch.context() as patch:
        patch.setattr(m.os, "open", broken)
        assert pytest.raises(ManifestError, load_manifest, str(target)).value.reason == "cannot read: Input/output error"


def test_devcontainer_deep_nesting():
    err = pytest.raises(ManifestError, secrets_from_devcontainer, "[" * 100000 + "]" * 100000).value
    assert err.key == "<json>"


def test_template_fields_repeat_once():
    text = SEC + 'fetch_as = "file"\nfile_path = "~/x"\ntemplate = "{{a}} {{ b }} {{a}}{{\tc\t}}"\n'
    assert parse_manifest(text).secrets["GH"].template_fields == ("a", "b", "c")
