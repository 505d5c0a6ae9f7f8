# shellcheck shell=sh
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# remo-secrets shell hook (POSIX sh, sourced by login shells through /etc/profile.d and
# by interactive bash through bash.bashrc).  Fetches the env secrets from the broker
# at every shell start, so a new shell sees current values; nothing is cached on disk.
if [ -x /usr/local/bin/remo-secrets ] && [ "${_REMO_SECRETS_SHELL:-}" != "$$" ]; then
    _REMO_SECRETS_SHELL=$$
    # shellcheck source=/dev/null
    . /usr/local/share/remo-secrets/options.sh
    # A short retry: a shell must not hang when the broker is down (it says so on stderr).
    _remo_env=$(/usr/local/bin/remo-secrets env --tries 2 --delay-ms 100 ${REMO_SECRETS_SOCKET_OPT:+--socket "$REMO_SECRETS_SOCKET_OPT"}) || :
    eval "$_remo_env"
    unset _remo_env
fi
