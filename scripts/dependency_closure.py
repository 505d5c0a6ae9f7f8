# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the collections galaxy.yml depends on, with their own dependencies, one per line.

Each dependency's dependencies are read from its MANIFEST.json in the collections
directory given as the argument (the project venv's bundled collections), so an offline
install can be handed everything it would otherwise fetch from Galaxy.
"""

import json
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def closure(collections_dir):
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as handle:
        todo = list(yaml.safe_load(handle).get("dependencies") or {})
    seen = []
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        manifest = os.path.join(collections_dir, *name.split("."), "MANIFEST.json")
        with open(manifest, encoding="utf-8") as handle:
            todo.extend(json.load(handle)["collection_info"].get("dependencies") or {})
    return seen


if __name__ == "__main__":
    print("\n".join(closure(sys.argv[1])))
