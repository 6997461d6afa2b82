#!/usr/bin/env bash
# A local roomlog fleet in the foreground: one broker and three relays on
# 127.0.0.1, until Ctrl-C (or SIGTERM), which stops everything it started.
#
#   testenv/cluster/cluster.sh                 # embedded broker (roomlog broker) on 127.0.0.1:9092
#   testenv/cluster/cluster.sh --kafka         # real Apache Kafka via testenv/kafka/start.sh (127.0.0.1:19092)
#   testenv/cluster/cluster.sh --data-dir DIR  # keep the broker's data in DIR (default: a temp folder)
#
# Options:
#   --kafka            use real Kafka (testenv/kafka/start.sh; stopped again on exit)
#   --data-dir DIR     broker data folder (embedded broker, or ROOMLOG_KAFKA_DATA for --kafka); kept on exit
#   --relays N         number of relays (default 3)
#   --base-port P      relay N listens on 127.0.0.1:P+N-1 (default 8081)
#   --broker-port P    embedded broker port (default 9092)
#   --no-build         use bin/roomlog as it is
#   -h, --help         this text
#
# The relays accept clients without a token (ROOMLOG_ANONYMOUS=true: local
# development only) and listen on 127.0.0.1, so they serve plain ws://.
#
# Logs go to a temp folder printed at start (broker.log, relay-N.log); it is kept on exit.
# The children run in their own sessions (setsid), so a Ctrl-C reaches only this
# script, which then stops the relays first (they drain) and the broker last.
# If this script is killed with SIGKILL it cannot clean up: stop the pids it printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/bin/roomlog"

use_kafka=0
data_dir=""
relays=3
base_port=8081
broker_port=9092
build=1

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }

while (($#)); do
  case "$1" in
    --kafka) use_kafka=1 ;;
    --data-dir) [[ $# -ge 2 ]] || die "--data-dir needs a folder"; data_dir="$2"; shift ;;
    --data-dir=*) data_dir="${1#*=}" ;;
    --relays) [[ $# -ge 2 ]] || die "--relays needs a number"; relays="$2"; shift ;;
    --relays=*) relays="${1#*=}" ;;
    --base-port) [[ $# -ge 2 ]] || die "--base-port needs a port"; base_port="$2"; shift ;;
    --base-port=*) base_port="${1#*=}" ;;
    --broker-port) [[ $# -ge 2 ]] || die "--broker-port needs a port"; broker_port="$2"; shift ;;
    --broker-port=*) broker_port="${1#*=}" ;;
    --no-build) build=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cluster: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
# shellcheck disable=SC2015 # die only when the check fails, as intended
[[ "$relays" =~ ^[0-9]+$ ]] && ((relays >= 1 && relays <= 50)) || die "--relays must be 1..50"
# shellcheck disable=SC2015
[[ "$base_port" =~ ^[0-9]+$ ]] && ((base_port >= 1024 && base_port + relays <= 65535)) || die "--base-port must be 1024..65535"
# shellcheck disable=SC2015
[[ "$broker_port" =~ ^[0-9]+$ ]] && ((broker_port >= 1024 && broker_port <= 65535)) || die "--broker-port must be 1024..65535"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_status URL prints the HTTP status code (000 when nothing answers).
http_status() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
  else
    local hostport="${1#http://}" path
    path="/${hostport#*/}"; hostport="${hostport%%/*}"
    ( exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}" || exit 0
      printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
      read -r -t 2 _ code _ <&3 && printf '%s' "$code" ) 2>/dev/null || true
  fi
}

for ((i = 0; i < relays; i++)); do
  port_open $((base_port + i)) && die "127.0.0.1:$((base_port + i)) is already in use (another cluster? use --base-port)"
done
if ((!use_kafka)); then
  port_open "$broker_port" && die "127.0.0.1:$broker_port is already in use (use --broker-port)"
fi

if ((build)); then
  version="$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)"
  log "building $bin ($version)"
  (cd "$root" && go build -ldflags "-X main.version=$version" -o bin/roomlog ./cmd/roomlog)
fi
[[ -x "$bin" ]] || die "$bin missing (run without --no-build)"

logs="$(mktemp -d "${TMPDIR:-/tmp}/roomlog-cluster.XXXXXX")"
[[ -n "$data_dir" ]] || data_dir="$logs/data"
mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"

broker_pid=""
kafka_started=0
relay_pids=()
cleaned=0

# cleanup: relays first (SIGTERM: they drain and close sockets with 1001),
# then the broker. Waits for every child; SIGKILL after a timeout.
cleanup() {
  ((cleaned)) && return
  cleaned=1
  trap '' INT TERM
  log "stopping ..."
  local pid deadline
  for pid in "${relay_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + 20))
  for pid in "${relay_pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$broker_pid" ]]; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while kill -0 "$broker_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  if ((kafka_started)); then
    "$root/testenv/kafka/stop.sh" >&2 || true
  fi
  log "stopped; logs kept in $logs, data in $data_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "logs in $logs"
if ((use_kafka)); then
  log "starting Apache Kafka (testenv/kafka/start.sh; the first run installs it) ..."
  kafka_out="$logs/kafka-start.out"
  kafka_started=1
  ROOMLOG_KAFKA_DATA="$data_dir" ROOMLOG_KAFKA_KEEP=1 "$root/testenv/kafka/start.sh" >"$kafka_out" \
    || { cat "$kafka_out" >&2; die "testenv/kafka/start.sh failed"; }
  brokers="$(sed -n 's/^ROOMLOG_TEST_BROKERS=//p' "$kafka_out" | tail -n1)"
  [[ -n "$brokers" ]] || die "testenv/kafka/start.sh printed no ROOMLOG_TEST_BROKERS line"
else
  brokers="127.0.0.1:$broker_port"
  setsid "$bin" broker --listen "$brokers" --data-dir "$data_dir" >"$logs/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 1 100); do
    port_open "$broker_port" && break
    kill -0 "$broker_pid" 2>/dev/null || { tail -n 20 "$logs/broker.log" >&2; die "broker exited"; }
    sleep 0.1
  done
  port_open "$broker_port" || die "broker not listening on $brokers after 10s (see $logs/broker.log)"
fi
log "broker on $brokers"

for ((i = 1; i <= relays; i++)); do
  port=$((base_port + i - 1))
  ROOMLOG_ANONYMOUS=true setsid "$bin" relay --brokers "$brokers" --listen "127.0.0.1:$port" --relay-name "relay-$i" >"$logs/relay-$i.log" 2>&1 &
  relay_pids+=($!)
done

for ((i = 1; i <= relays; i++)); do
  port=$((base_port + i - 1))
  pid="${relay_pids[i - 1]}"
  ok=0
  for _ in $(seq 1 600); do
    [[ "$(http_status "http://127.0.0.1:$port/readyz")" == 200 ]] && { ok=1; break; }
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logs/relay-$i.log" >&2; die "relay-$i exited while starting"; }
    sleep 0.1
  done
  ((ok)) || die "relay-$i not ready on 127.0.0.1:$port after 60s (see $logs/relay-$i.log)"
done

echo
echo "roomlog cluster up: broker $brokers, $relays relays"
for ((i = 1; i <= relays; i++)); do
  port=$((base_port + i - 1))
  echo "  relay-$i  ws://127.0.0.1:$port/ws   (http://127.0.0.1:$port/readyz, pid ${relay_pids[i - 1]}, log $logs/relay-$i.log)"
done
[[ -n "$broker_pid" ]] && echo "  broker   $brokers   (pid $broker_pid, log $logs/broker.log, data $data_dir)"
echo
last_port=$((base_port + relays - 1))
echo "Demo (publish on relay-$relays, watch it arrive on relay-1 with the same pos):"
echo "  ./bin/roomlog client --url ws://127.0.0.1:$base_port/ws --room lobby & sleep 1; (sleep 1; echo '\"hello\"') | timeout 3 ./bin/roomlog client --url ws://127.0.0.1:$last_port/ws --room lobby; kill %1"
echo "Or interactively, in two terminals (type a line in either):"
echo "  ./bin/roomlog client --url ws://127.0.0.1:$base_port/ws --room lobby"
echo "  ./bin/roomlog client --url ws://127.0.0.1:$last_port/ws --room lobby"
echo "Ctrl-C stops everything."
echo

# Stay in the foreground; report children that exit (a relay killed by hand
# is not restarted).
watch=("${relay_pids[@]}")
[[ -n "$broker_pid" ]] && watch+=("$broker_pid")
while :; do
  if ((${#watch[@]} == 0)); then
    log "every process has exited; Ctrl-C to clean up"
    while :; do sleep 3600; done
  fi
  exited=""
  if wait -n -p exited "${watch[@]}"; then st=0; else st=$?; fi
  [[ -n "$exited" ]] || continue # interrupted by a signal: its trap runs
  for ((i = 1; i <= relays; i++)); do
    [[ "${relay_pids[i - 1]}" == "$exited" ]] && log "relay-$i (pid $exited) exited with status $st; see $logs/relay-$i.log"
  done
  [[ "$exited" == "$broker_pid" ]] && log "broker (pid $exited) exited with status $st; see $logs/broker.log"
  rest=()
  for pid in "${watch[@]}"; do [[ "$pid" == "$exited" ]] || rest+=("$pid"); done
  watch=("${rest[@]}")
done
