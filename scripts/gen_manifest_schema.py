# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regenerate docs/schema/remo-manifest.schema.json from plugins/module_utils/_manifest.py.

Usage: python3 scripts/gen_manifest_schema.py [--check]
With --check, exit 1 when the shipped file differs from the generated schema.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(ROOT, "docs", "schema", "remo-manifest.schema.json")


def _import_manifest():
    collections = os.path.join(ROOT, ".cache", "collections")
    link = os.path.join(collections, "ansible_collections", "remo", "broker")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if collections not in sys.path:
        sys.path.insert(0, collections)
    from ansible_collections.remo.broker.plugins.module_utils import _manifest  # pylint: disable=import-outside-toplevel
    return _manifest


def render_schema_text(manifest_module=None):
    """The exact text docs/schema/remo-manifest.schema.json must contain."""
    import json  # pylint: disable=import-outside-toplevel
    module = manifest_module or _import_manifest()
    return json.dumps(module.manifest_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv):
    text = render_schema_text()
    current = None
    if os.path.exists(SCHEMA_PATH):
        with open(SCHEMA_PATH, encoding="utf-8") as handle:
            current = handle.read()
    if "--check" in argv:
        if current != text:
            sys.stderr.write("%s is stale: run python3 scripts/gen_manifest_schema.py\n" % SCHEMA_PATH)
            return 1
        return 0
    if current != text:
        with open(SCHEMA_PATH, "w", encoding="utf-8") as handle:
            handle.write(text)
        print("wrote %s" % SCHEMA_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
