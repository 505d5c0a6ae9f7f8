#!/bin/sh
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# A stand-in for gh (no GitHub here): `auth login --with-token` writes the token from
# stdin into $GH_CONFIG_DIR/hosts.yml the way gh does; `auth token` prints it.
set -eu
[ -n "${GH_CONFIG_DIR:-}" ] || { echo "gh stand-in: GH_CONFIG_DIR is not set" >&2; exit 2; }
case "$1 $2" in
  "auth login")
    token=$(cat)
    printf 'github.com:\n    oauth_token: %s\n    git_protocol: https\n    user: molecule\n' "$token" >"$GH_CONFIG_DIR/hosts.yml" ;;
  "auth token")
    sed -n 's/^ *oauth_token: //p' "$GH_CONFIG_DIR/hosts.yml" ;;
  *) echo "gh stand-in: unsupported: $*" >&2; exit 2 ;;
esac
