#!/usr/bin/env bash
# Copyright (c) remo.broker contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Devcontainer delivery benchmark, run ON the instance of the Molecule scenario
# `instance` after converge and verify (docs/benchmarks.md):
#
#   molecule converge -s instance && molecule verify -s instance
#   docker exec -i remo-site-instance bash -s < benchmarks/bench_devcontainer.sh
#
# Same-run ratios:
#   up:       `remo-devcontainer up a` until A's env and file secrets are present, vs a bare
#             `devcontainer up` of a repository with the same devcontainer.json (same image,
#             no feature); both with warm image caches, container removed before each run
#   rotation: push -> A's file rewritten (20 changes, polled inside the container every
#             5 ms), vs the push command's own round trip
#   restart:  `systemctl restart remo-broker` + push until A's running container is served
#             again, vs until the restarted broker's admin socket answers the push
# Values are throw-away canaries; nothing is written outside /run (tmpfs).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
CHANGES=${CHANGES:-20}
AS_REMO=(runuser -u remo -- env HOME=/home/remo PATH=/usr/local/bin:/usr/bin:/bin)
WORK=$(mktemp -d /run/bench-devcontainer.XXXXXX)
trap 'rm -rf "$WORK"; [ -n "${POLLER:-}" ] && kill "$POLLER" 2>/dev/null || true' EXIT

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
secrets() { printf '{"A_TOKEN":"bench-canary-tok","A_AWS":{"access_key_id":"bench-canary-%s","secret_access_key":"x"},"A_HOME":"h","B_TOKEN":"b"}' "$1"; }
container() { docker ps -q --filter "label=devcontainer.local_folder=$1"; }
A_LABEL=/home/remo/.local/state/remo-devcontainer/a
BARE=/home/remo/projects/bare

secrets 0 | remo-broker push >/dev/null
# Warm both image caches (feature image and the bare -uid image) before timing.
"${AS_REMO[@]}" devcontainer up --workspace-folder "$BARE" >/dev/null
"${AS_REMO[@]}" remo-devcontainer up a >/dev/null

up_bare=() up_feature=()
for _ in $(seq "$ROUNDS"); do
  docker rm -f "$(container "$BARE")" >/dev/null
  t0=$(now)
  "${AS_REMO[@]}" devcontainer up --workspace-folder "$BARE" >/dev/null
  up_bare+=("$(ms "$t0" "$(now)")")

  docker rm -f "$(container "$A_LABEL")" >/dev/null
  t0=$(now)
  "${AS_REMO[@]}" remo-devcontainer up a >/dev/null
  c=$(container "$A_LABEL")
  until docker exec "$c" sh -c 'grep -q bench-canary-0 /run/secrets/aws/credentials && tr "\0" "\n" </proc/1/environ | grep -q ^A_TOKEN=' 2>/dev/null; do :; done
  up_feature+=("$(ms "$t0" "$(now)")")
done

# Rotation: a poller inside A prints a timestamp whenever the file's content changes.
c=$(container "$A_LABEL")
docker exec "$c" sh -c 'prev=""; while :; do cur=$(cat /run/secrets/aws/credentials 2>/dev/null); if [ "$cur" != "$prev" ]; then date +%s%N; prev=$cur; fi; sleep 0.005; done' >"$WORK/changes" &
POLLER=$!
until [ -s "$WORK/changes" ]; do sleep 0.05; done
rotation=() push=()
for i in $(seq "$CHANGES"); do
  seen=$(wc -l <"$WORK/changes")
  t0=$(now)
  secrets "$i" | remo-broker push >/dev/null
  push+=("$(ms "$t0" "$(now)")")
  while [ "$(wc -l <"$WORK/changes")" -le "$seen" ]; do sleep 0.002; done
  rotation+=("$(ms "$t0" "$(sed -n "$((seen + 1))p" "$WORK/changes")")")
done
kill "$POLLER"; POLLER=""

# Broker restart: a prober inside A waits for a successful get.
restart_ready=() restart_served=()
for _ in $(seq 3); do
  docker exec "$c" sh -c 'while remo-secrets get A_TOKEN --tries 1 >/dev/null 2>&1; do sleep 0.01; done; until remo-secrets get A_TOKEN --tries 1 >/dev/null 2>&1; do sleep 0.01; done; date +%s%N' >"$WORK/served" &
  prober=$!
  sleep 0.5
  t0=$(now)
  systemctl restart remo-broker.service
  until secrets r | remo-broker push >/dev/null 2>&1; do sleep 0.01; done
  restart_ready+=("$(ms "$t0" "$(now)")")
  wait "$prober"
  restart_served+=("$(ms "$t0" "$(cat "$WORK/served")")")
done

python3 - "${up_bare[*]}" "${up_feature[*]}" "${rotation[*]}" "${push[*]}" "${restart_ready[*]}" "${restart_served[*]}" <<'PY'
import statistics, sys
bare, feat, rot, push, ready, served = ([int(x) for x in a.split()] for a in sys.argv[1:])
med = statistics.median
print("up: bare devcontainer up p50 %d ms (runs %s); remo-devcontainer up until secrets present p50 %d ms (runs %s); ratio %.2f"
      % (med(bare), bare, med(feat), feat, med(feat) / med(bare)))
print("rotation over %d changes: p50 %d ms, max %d ms; push round trip p50 %d ms; ratio p50 %.2f"
      % (len(rot), med(rot), max(rot), med(push), med(rot) / max(med(push), 1)))
print("broker restart: served again p50 %d ms (runs %s), broker answering p50 %d ms (runs %s); ratio %.2f"
      % (med(served), served, med(ready), ready, med(served) / med(ready)))
PY
