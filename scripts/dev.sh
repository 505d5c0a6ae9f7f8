#!/usr/bin/env bash
# The two README commands:
#   scripts/dev.sh demo   prepare the machine, then run the site playbook against a
#                         local container instance (no cloud account needed)
#   scripts/dev.sh test   prepare the machine, then run every test; exits non-zero
#                         on any failure
# `scripts/dev.sh test STAGE...` runs only the named stages
# (lint sanity units build molecule); `--no-bootstrap` skips the preparation.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export PATH="$ROOT/.venv/bin:$PATH"
# Our checkout first, then the collections the PyPI `ansible` bundle installed.
site_packages=("$ROOT"/.venv/lib/python3*/site-packages)
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections:${site_packages[0]}"
export ANSIBLE_NOCOLOR=1 PY_COLORS=0

usage() { sed -n '2,9p' "$0"; }

bootstrap=1
cmd=${1:-}
[ $# -gt 0 ] && shift
stages=()
for arg in "$@"; do
  case "$arg" in
    --no-bootstrap) bootstrap=0 ;;
    *) stages+=("$arg") ;;
  esac
done

banner() { printf '\n==== %s ====\n' "$*"; }

# --- stages -----------------------------------------------------------------
stage_lint() {
  ansible-lint --profile production --offline
}

# ansible-test needs the collection at .../ansible_collections/remo/broker and
# refuses symlinked roots, so sanity runs on a copy of the files git knows about.
stage_sanity() {
  local dest="$ROOT/.cache/sanity/ansible_collections/remo/broker"
  rm -rf "$dest"; mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar --null -T - -cf - | tar -xf - -C "$dest"
  (cd "$dest" && git init -q && git add -A >/dev/null &&
     ansible-test sanity --local --python 3.11 --color no)
}

stage_units() {
  rm -f .coverage .coverage.*
  # pytest's exit code 5 ("no tests collected") must fail CI too.
  python -m pytest --cov --cov-report=term --cov-report=xml:.cache/coverage.xml "$@"
}

# doc_renders COLLECTIONS_PATH NAME [ansible-doc args]: the docs render without warnings.
doc_renders() {
  local path=$1 name=$2 err status=0; shift 2
  err=$(ANSIBLE_COLLECTIONS_PATH="$path" ansible-doc "$@" "$name" 2>&1 >/dev/null) || status=$?
  if [ $status -ne 0 ] || [[ "$err" == *WARNING* ]]; then
    printf '%s\nansible-doc %s failed\n' "$err" "$name"
    return 1
  fi
}

stage_build() {
  local dist="$ROOT/.cache/dist" installed
  rm -rf "$dist"; mkdir -p "$dist"
  ansible-galaxy collection build --force --output-path "$dist" . || return 1
  installed=$(mktemp -d)
  # Install the tarball offline into an empty collections path, as a user would,
  # and prove the installed copy resolves its plugins by FQCN.
  ANSIBLE_COLLECTIONS_PATH="$installed" ansible-galaxy collection install --offline --no-deps --force \
    -p "$installed" "$dist"/remo-broker-*.tar.gz || return 1
  local rc=0
  local module
  for module in plugins/modules/*.py; do
    module=$(basename "$module" .py)
    doc_renders "$installed" "remo.broker.$module" || rc=1
  done
  doc_renders "$installed" remo.broker.fnox -t lookup || rc=1
  # An FQCN playbook from the installed copy must resolve too.
  ANSIBLE_COLLECTIONS_PATH="$installed" ansible-playbook --syntax-check remo.broker.local_site >/dev/null || { echo "remo.broker.local_site does not resolve"; rc=1; }
  [ -f "$installed/ansible_collections/remo/broker/roles/broker_install/files/remo_broker.py" ] || { echo "daemon missing from tarball"; rc=1; }
  rm -rf "$installed"
  return $rc
}

stage_molecule() {
  local rc=0 scenario
  for file in extensions/molecule/*/molecule.yml; do
    scenario=$(basename "$(dirname "$file")")
    [ "$scenario" = utils ] && continue
    banner "molecule test -s $scenario"
    molecule test -s "$scenario" || rc=1
  done
  return $rc
}

run_tests() {
  local all=(lint sanity units build molecule) passed=0 failed=0 failures=() start
  [ ${#stages[@]} -gt 0 ] || stages=("${all[@]}")
  for stage in "${stages[@]}"; do
    declare -F "stage_$stage" >/dev/null || { echo "unknown stage: $stage"; usage; return 2; }
  done
  for stage in "${stages[@]}"; do
    banner "stage $stage"
    start=$SECONDS
    if "stage_$stage"; then
      passed=$((passed + 1)); echo "stage $stage passed in $((SECONDS - start)) s"
    else
      failed=$((failed + 1)); failures+=("$stage"); echo "stage $stage FAILED after $((SECONDS - start)) s"
    fi
  done
  banner "summary"
  [ $failed -eq 0 ] || echo "failed stages: ${failures[*]}"
  echo "stages: $passed passed, $failed failed"
  [ $failed -eq 0 ]
}

run_demo() {
  ansible-playbook -i localhost, playbooks/local_site.yml "$@"
}

case "$cmd" in
  test|demo)
    if [ $bootstrap = 1 ]; then bash "$ROOT/scripts/bootstrap.sh" || exit 1; fi
    if [ "$cmd" = test ]; then run_tests; else run_demo "${stages[@]}"; fi
    ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
