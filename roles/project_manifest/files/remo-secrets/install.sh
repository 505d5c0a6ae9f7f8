#!/bin/sh
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# remo-secrets feature install (runs as root during the image build, POSIX sh only:
# the image may have no Python and no bash).  Installs the static client, the
# entrypoint, and the shell hooks that fetch env secrets at shell start.  No secret
# exists at build time, and nothing written here ever holds one.
set -eu

FEATURE_DIR=$(cd "$(dirname "$0")" && pwd)
SHARE=/usr/local/share/remo-secrets

if [ ! -x "$FEATURE_DIR/remo-secrets" ]; then
    echo "remo-secrets: the static client is missing from $FEATURE_DIR (the project_manifest role builds it)" >&2
    exit 1
fi

mkdir -p "$SHARE" /usr/local/bin /etc/profile.d
cp "$FEATURE_DIR/remo-secrets" /usr/local/bin/remo-secrets
chmod 0755 /usr/local/bin/remo-secrets
cp "$FEATURE_DIR/entrypoint.sh" "$FEATURE_DIR/shell-hook.sh" "$SHARE/"
chmod 0644 "$SHARE/entrypoint.sh" "$SHARE/shell-hook.sh"

# Options are not secrets; the entrypoint and the hooks read them from here.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
    echo "REMO_SECRETS_SOCKET_OPT=$(quote "${SOCKET:-}")"
    echo "REMO_SECRETS_TRIES=$(quote "${TRIES:-20}")"
    echo "REMO_SECRETS_DELAY_MS=$(quote "${RETRYDELAYMS:-250}")"
    echo "REMO_SECRETS_REQUIRE=$(quote "${REQUIREBROKER:-false}")"
    echo "REMO_SECRETS_SIGNAL=$(quote "${SIGNALONCHANGE:-}")"
} > "$SHARE/options.sh"
chmod 0644 "$SHARE/options.sh"

# Login shells (the devcontainer CLI's environment probe is one) and interactive
# bash shells both fetch the env secrets when they start.
ln -sf "$SHARE/shell-hook.sh" /etc/profile.d/remo-secrets.sh
for rc in /etc/bash.bashrc /etc/bash/bashrc /etc/zsh/zshrc; do
    if [ -f "$rc" ] && ! grep -q 'remo-secrets/shell-hook.sh' "$rc"; then
        printf '\n# remo-secrets: env secrets from the broker, fetched at shell start\n[ -r %s/shell-hook.sh ] && . %s/shell-hook.sh\n' "$SHARE" "$SHARE" >> "$rc"
    fi
done

# /run/secrets must be tmpfs; Docker gives every container a tmpfs /dev/shm, and the
# client refuses to write a secret anywhere that is not tmpfs.
if [ -e /run/secrets ] && [ ! -L /run/secrets ]; then
    if [ -n "$(ls -A /run/secrets 2>/dev/null)" ]; then
        echo "remo-secrets: /run/secrets exists in the image and is not empty; cannot place it on tmpfs" >&2
        exit 1
    fi
    rmdir /run/secrets
fi
mkdir -p /run
ln -sfn /dev/shm/remo-secrets/run-secrets /run/secrets
echo "remo-secrets: installed /usr/local/bin/remo-secrets and the shell hooks"
