# shellcheck shell=sh
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# remo-secrets entrypoint.  The devcontainer CLI runs every feature's entrypoint as a
# line of the container's PID 1 `/bin/sh -c` script, right before `exec "$@"`; this one
# is SOURCED there (". entrypoint.sh"), so the env secrets it exports reach the main
# process without touching a file.  POSIX sh; it must not touch "$@" (the main
# command) and must not leave the shell unless requireBroker says so.
# shellcheck source=/dev/null
. /usr/local/share/remo-secrets/options.sh
if _remo_env=$(/usr/local/bin/remo-secrets env --tries "$REMO_SECRETS_TRIES" --delay-ms "$REMO_SECRETS_DELAY_MS" ${REMO_SECRETS_SOCKET_OPT:+--socket "$REMO_SECRETS_SOCKET_OPT"}); then
    eval "$_remo_env"
elif [ "$REMO_SECRETS_REQUIRE" = true ]; then
    echo "remo-secrets: the broker is required (requireBroker) and did not answer; stopping the container" >&2
    exit 1
else
    eval "$_remo_env"
    echo "remo-secrets: starting without (some) env secrets; new shells fetch them again" >&2
fi
unset _remo_env
# Files: rendered now, then kept current by the watcher (it reconnects after a
# broker restart).  Its own env gets no secrets: it needs none.
(env -i PATH=/usr/bin:/bin /usr/local/bin/remo-secrets watch --tries "$REMO_SECRETS_TRIES" --delay-ms "$REMO_SECRETS_DELAY_MS" \
    ${REMO_SECRETS_SOCKET_OPT:+--socket "$REMO_SECRETS_SOCKET_OPT"} \
    ${REMO_SECRETS_SIGNAL:+--signal "$REMO_SECRETS_SIGNAL" --signal-pid 1} </dev/null &)
