#!/usr/bin/env bash
# The two README commands:
#   scripts/dev.sh demo   prepare the machine, then run the site playbook against a
#                         local container instance (no cloud account needed)
#   scripts/dev.sh test   prepare the machine, then run every test; exits non-zero
#                         on any failure
# `scripts/dev.sh test STAGE...` runs only the named stages
# (lint sanity units provisioning build docs molecule e2e); `--no-bootstrap` skips the
# preparation;
# `scripts/dev.sh test --list` prints the stages a run would go through.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export PATH="$ROOT/.venv/bin:$PATH"
# Our checkout first, then the collections the PyPI `ansible` bundle installed.
site_packages=("$ROOT"/.venv/lib/python3*/site-packages)
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections:${site_packages[0]}"
# Stages that must not see the venv's bundled collections unset this for themselves.
export ANSIBLE_NOCOLOR=1 PY_COLORS=0

usage() { sed -n '2,10p' "$0"; }
VENVS="$ROOT/.cache/venvs"
# The ansible-core versions the unit suite and sanity run on (see meta/runtime.yml);
# REMO_CORE_VENVS=newest runs those stages on one of them only.
read -r -a CORE_VENVS <<<"${REMO_CORE_VENVS:-oldest newest}"

bootstrap=1
list=0
cmd=${1:-}
[ $# -gt 0 ] && shift
stages=()
for arg in "$@"; do
  case "$arg" in
    --no-bootstrap) bootstrap=0 ;;
    --list) list=1 ;;
    *) stages+=("$arg") ;;
  esac
done

banner() { printf '\n==== %s ====\n' "$*"; }

# --- stages -----------------------------------------------------------------
# copy_checkout DEST: the files git knows about (tracked and new, not ignored), as a
# fresh clone of this working tree would have them.
copy_checkout() {
  rm -rf "$1"; mkdir -p "$1"
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
  done | tar --null -T - -cf - | tar -xf - -C "$1"
}

stage_lint() {
  local rc=0 fresh="$ROOT/.cache/fresh-clone/remo.broker"
  # As a contributor runs it: from the root, paths from ansible.cfg, nothing exported
  # (with ANSIBLE_COLLECTIONS_PATH set, ansible-lint would install this collection
  # into ~/.ansible instead of the checkout's own .ansible/).
  banner "ansible-lint (this checkout, ansible.cfg)"
  env -u ANSIBLE_COLLECTIONS_PATH ansible-lint --profile production || rc=1
  # A fresh clone has no .cache/collections and no exported paths.
  banner "ansible-lint (fresh clone, nothing prepared)"
  copy_checkout "$fresh"
  (cd "$fresh" && env -u ANSIBLE_COLLECTIONS_PATH ansible-lint --profile production) || rc=1
  banner "role READMEs match their argument specs"
  python scripts/gen_role_readme.py --check || rc=1
  banner "docsite pages match docs/"
  python scripts/gen_docsite.py --check || rc=1
  banner "antsibull-changelog lint"
  antsibull-changelog lint || rc=1
  banner "the fragments make a correct changelog"
  python scripts/check_changelog.py || rc=1
  return $rc
}

# ansible-test needs the collection at .../ansible_collections/remo/broker and
# refuses symlinked roots, so sanity runs on a copy of the files git knows about,
# once per tested ansible-core.
stage_sanity() {
  local rc=0 name venv py dest
  for name in "${CORE_VENVS[@]}"; do
    venv="$VENVS/$name" dest="$ROOT/.cache/sanity/$name/ansible_collections/remo/broker"
    copy_checkout "$dest"
    (cd "$dest" && git init -q && git add -A >/dev/null) || return 1
    py=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    banner "ansible-test sanity: $("$venv/bin/ansible" --version | sed -n 1p), Python $py"
    (cd "$dest" && PATH="$venv/bin:$PATH" ansible-test sanity --local --python "$py" --color no) || rc=1
  done
  return $rc
}

# The unit suite on each tested ansible-core, each in its own venv (no collections
# installed there); coverage is measured on the oldest.
stage_units() {
  local rc=0 name venv cov
  for name in "${CORE_VENVS[@]}"; do
    venv="$VENVS/$name"
    banner "unit suite: $("$venv/bin/ansible" --version | sed -n 1p)"
    cov=()
    if [ "$name" = oldest ]; then
      rm -f .coverage .coverage.*
      cov=(--cov --cov-report=term --cov-report=xml:.cache/coverage.xml)
    fi
    # pytest's exit code 5 ("no tests collected") must fail CI too.  The provisioning
    # tests drive hetzner.hcloud, which these ansible-core-only venvs do not have: the
    # provisioning and e2e stages run them with the project venv.
    PATH="$venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections" \
      "$venv/bin/python" -m pytest -p no:cacheprovider --ignore=tests/unit/provisioning "${cov[@]}" || rc=1
  done
  return $rc
}

# The Hetzner Cloud API stand-in's own tests (strictness, answer shapes), with the
# project venv and its hetzner.hcloud.
stage_provisioning() {
  python -m pytest -p no:cacheprovider -m "not e2e" tests/unit/provisioning
}

# Whole playbooks against the stand-in and its server containers (hetzner_site,
# hetzner_teardown, site on a plain SSH host), and the README's first command
# (local_site) from a fresh clone. Two pytest-xdist workers; --dist loadfile keeps each
# module in one worker, in file order, and hands out the biggest first: the Hetzner
# module to one, the two one-test modules (plain SSH host, demo) to the other, which
# overlap its API calls and SSH round trips.
stage_e2e() {
  python -m pytest -p no:cacheprovider -n 2 --dist loadfile -m e2e tests/unit/provisioning
}

# doc_renders NAME [ansible-doc args]: the docs render without warnings (run with the
# caller's ANSIBLE_COLLECTIONS_PATH and PATH).
doc_renders() {
  local name=$1 err status=0; shift
  err=$(ansible-doc "$@" "$name" 2>&1 >/dev/null) || status=$?
  if [ $status -ne 0 ] || [[ "$err" == *WARNING* ]]; then
    printf '%s\nansible-doc %s failed\n' "$err" "$name"
    return 1
  fi
}

# galaxy.yml's dependencies, one "namespace.name" a line.
# The collections galaxy.yml declares, with their own dependencies.
declared_dependencies() {
  local site=("$ROOT"/.venv/lib/python3*/site-packages/ansible_collections)
  python scripts/dependency_closure.py "${site[0]}"
}

# place_dependencies DIR: copy those collections from the project venv into
# DIR/ansible_collections, as Galaxy would have installed them.
place_dependencies() {
  local dest=$1/ansible_collections dep site=("$ROOT"/.venv/lib/python3*/site-packages/ansible_collections)
  for dep in $(declared_dependencies); do
    mkdir -p "$dest/${dep%%.*}"
    cp -r "${site[0]}/${dep/.//}" "$dest/${dep/.//}"
  done
}

# installed_check DIR EXTRA: as a user with only ansible-core (the oldest tested) and the
# collection installed in DIR: every plugin's docs render and every playbook resolves by
# FQCN. EXTRA is a collections path with what the README says a playbook also needs.
installed_check() {
  local installed=$1 extra=$2 rc=0 plugin type name core_path="$VENVS/oldest/bin:$PATH"
  for plugin in plugins/modules/*.py plugins/lookup/*.py plugins/filter/*.py plugins/inventory/*.py; do
    [ -e "$plugin" ] || continue
    type=$(basename "$(dirname "$plugin")"); name=$(basename "$plugin" .py)
    [ "$type" = modules ] && type=module
    PATH="$core_path" ANSIBLE_COLLECTIONS_PATH="$installed" doc_renders "remo.broker.$name" -t "$type" || rc=1
  done
  for playbook in playbooks/*.yml; do
    name=$(basename "$playbook" .yml)
    PATH="$core_path" ANSIBLE_COLLECTIONS_PATH="$installed:$extra" ansible-playbook --syntax-check "remo.broker.$name" >/dev/null \
      || { echo "remo.broker.$name does not resolve from the installed collection"; rc=1; }
  done
  [ -f "$installed/ansible_collections/remo/broker/roles/broker_install/files/remo_broker.py" ] || { echo "daemon missing from tarball"; rc=1; }
  return $rc
}

stage_build() {
  local dist="$ROOT/.cache/dist" work="$ROOT/.cache/build-check" tarball rc=0 site
  rm -rf "$dist" "$work"; mkdir -p "$dist" "$work/installed" "$work/extra"
  banner "ansible-galaxy collection build"
  ansible-galaxy collection build --force --output-path "$dist" . || return 1
  tarball=$(echo "$dist"/remo-broker-*.tar.gz)
  site=("$ROOT"/.venv/lib/python3*/site-packages/ansible_collections)
  # Declared dependencies come from the venv's collections, placed where the offline
  # install finds them already installed; nothing else is there.
  place_dependencies "$work/installed"
  # What the README names for the demo playbook, outside the installed path.
  mkdir -p "$work/extra/ansible_collections/community"
  cp -r "${site[0]}/community/docker" "$work/extra/ansible_collections/community/docker"
  banner "offline install into an ansible-core-only venv ($("$VENVS/oldest/bin/ansible" --version | sed -n 1p))"
  PATH="$VENVS/oldest/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$work/installed" \
    ansible-galaxy collection install --offline -p "$work/installed" "$tarball" || return 1
  installed_check "$work/installed" "$work/extra" || rc=1
  banner "galaxy-importer"
  galaxy_importer "$tarball" || rc=1
  banner "execution environment"
  execution_environment "$tarball" "$work" || rc=1
  return $rc
}

# galaxy_importer TARBALL: Galaxy's own import checks, offline; fails on any error.
galaxy_importer() {
  local out status=0
  out=$(cd "$(dirname "$1")" && PATH="$VENVS/publish/bin:$PATH" env -u ANSIBLE_COLLECTIONS_PATH \
    python -m galaxy_importer.main "$(basename "$1")" 2>&1) || status=$?
  printf '%s\n' "$out" | grep -v '^\s*$'
  [ $status -eq 0 ] && [[ "$out" == *"Importer processing completed successfully"* ]] && ! grep -q '^ERROR' <<<"$out"
}

# execution_environment TARBALL WORK: ansible-builder makes a build context for the
# example EE (the image itself needs a container registry, which this network lacks),
# and introspecting the installed collection yields the lookup's Python packages.
execution_environment() {
  local ctx="$2/ee" reqs
  mkdir -p "$ctx"
  cp docs/execution-environment/execution-environment.yml "$ctx/"
  cp "$1" "$ctx/remo-broker.tar.gz"
  (cd "$ctx" && PATH="$VENVS/publish/bin:$PATH" ansible-builder create -f execution-environment.yml -c context >/dev/null) || return 1
  if [ ! -f "$ctx/context/Dockerfile" ] || [ ! -f "$ctx/context/_build/collections/remo-broker.tar.gz" ]; then
    echo "ansible-builder made no usable build context"; return 1
  fi
  reqs=$(PATH="$VENVS/publish/bin:$PATH" ansible-builder introspect "$2/installed") || return 1
  for pkg in tomli pyrage; do
    grep -q "^- '${pkg}[<>=].*# from collection remo.broker" <<<"$reqs" || { printf '%s\nEE introspection lacks %s\n' "$reqs" "$pkg"; return 1; }
  done
  echo "build context: $ctx/context; collection Python requirements: tomli, pyrage"
}

# The collection's docsite: antsibull-docs lint, then the site built with Sphinx. Both
# read a copy of the tracked files (antsibull-docs copies the whole collection tree,
# which here would include .cache and .venv).
stage_docs() {
  local docsite="$ROOT/.cache/docsite" copy="$ROOT/.cache/docs-check" rc=0
  copy_checkout "$copy/ansible_collections/remo/broker"
  # The collections the docs link to (galaxy.yml's dependencies), from the project venv.
  place_dependencies "$copy"
  # Local to this stage: the stages after it (molecule, e2e) need the project venv's python.
  local -x PATH="$VENVS/publish/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$copy"
  banner "antsibull-docs lint-collection-docs --plugin-docs"
  (cd "$copy/ansible_collections/remo/broker" && antsibull-docs lint-collection-docs --plugin-docs .) || rc=1
  banner "antsibull-docs sphinx-init + build"
  rm -rf "$docsite"; mkdir -p "$docsite"
  antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir "$docsite" remo.broker >/dev/null || return 1
  # docs.ansible.com and docs.python.org are unreachable here: their inventories fail to
  # load and labels defined there stay unresolved. Any other warning fails the stage.
  sed -i 's/ -W --keep-going/ --keep-going/' "$docsite/build.sh"
  (cd "$docsite" && ./build.sh >"$docsite/build.log" 2>&1) || { tail -40 "$docsite/build.log"; return 1; }
  if grep -E 'WARNING|ERROR' "$docsite/build.log" | grep -v -e 'failed to reach any of the inventories' \
       -e "undefined label: '" | grep . || grep -E "undefined label: 'ansible_collections\.remo\.broker\." "$docsite/build.log"; then
    echo "the docsite build warned (log: $docsite/build.log)"; return 1
  fi
  [ -f "$docsite/build/html/collections/remo/broker/index.html" ] || { echo "no collection index page"; return 1; }
  echo "site: $docsite/build/html/collections/remo/broker/index.html"
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
  local all=(lint sanity units provisioning build docs molecule e2e) passed=0 failed=0 failures=() start
  [ ${#stages[@]} -gt 0 ] || stages=("${all[@]}")
  for stage in "${stages[@]}"; do
    declare -F "stage_$stage" >/dev/null || { echo "unknown stage: $stage"; usage; return 2; }
  done
  if [ $list = 1 ]; then printf '%s\n' "${stages[@]}"; return 0; fi
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
    if [ $bootstrap = 1 ] && [ $list = 0 ]; then bash "$ROOT/scripts/bootstrap.sh" || exit 1; fi
    if [ "$cmd" = test ]; then run_tests; else run_demo "${stages[@]}"; fi
    ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
