#!/usr/bin/env bash
# ansible-test entry point: the leak check itself lives in the pytest driver, which
# starts the daemon, writes fnox.toml with fresh canaries, runs playbook.yml four ways
# (-vvv; plain, --diff, --check, --check --diff) and scans output and written files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
collection=$(cd "$here/../../../.." && pwd)
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider "$collection/tests/unit/plugins/test_leak_canary.py" "$@"
