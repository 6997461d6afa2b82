#!/usr/bin/env bash
# Start and stop the systems under test, each as NODES server processes on 127.0.0.1.
#
#   servers.sh start roomlog-embedded [NODES]   one `roomlog broker` + NODES relays on it
#   servers.sh start roomlog-kafka    [NODES]   Apache Kafka (testenv/kafka, port $BENCH_KAFKA_PORT) + NODES relays
#   servers.sh start roomlog-socketio [NODES]   as roomlog-embedded (its clients use the relays' /socket.io/)
#   servers.sh start centrifugo       [NODES]   one redis-server + NODES Centrifugo v6 nodes (Redis engine)
#   servers.sh start socketio         [NODES]   one redis-server + NODES Node.js Socket.IO 4.8 servers (Redis adapter)
#   servers.sh stop  SYSTEM | all
#
# After start, out/run/SYSTEM.pids holds "name pid" lines (for roomlog-bench --pid-file) and
# out/run/SYSTEM.urls the comma-separated WebSocket endpoints. NODES defaults to 2.
# RELAY_FLAGS adds flags to every roomlog relay (an experiment, e.g. RELAY_FLAGS="--produce-linger 1ms");
# RELAY_ENV, BROKER_ENV and NODE_ENV add environment variables to the relays, to `roomlog broker` and to the
# Centrifugo nodes (e.g. GOMAXPROCS=1).
# Server logs go to out/logs, or BENCH_LOGS (run.sh gives each scenario its own, so that a later scenario does not
# overwrite the logs of one that lost messages).
# Every process is started by this script and stopped by pid; nothing else is touched.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${BENCH_OUT:-$here/out}"
run="$out/run"
logs="${BENCH_LOGS:-$out/logs}"
mkdir -p "$run" "$logs"
BIN="${BENCH_BIN:-$here/.bin}"
ROOMLOG="${ROOMLOG_BIN:-$root/bin/roomlog}"
REDIS_PORT="${BENCH_REDIS_PORT:-16379}"
BROKER_PORT="${BENCH_BROKER_PORT:-19192}"
export ROOMLOG_KAFKA_PORT="${BENCH_KAFKA_PORT:-19392}" # not the tests' 19092: they may run at the same time

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log() { echo "servers: $*" >&2; }

# wait_port PORT [SECONDS]
wait_port() {
  local port="$1" deadline=$((SECONDS + ${2:-60}))
  while (( SECONDS < deadline )); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.2
  done
  log "port $port did not open"; return 1
}

# wait_http URL [SECONDS]
wait_http() {
  local url="$1" deadline=$((SECONDS + ${2:-60}))
  while (( SECONDS < deadline )); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.2
  done
  log "$url did not answer"; return 1
}

start_redis() { # SYSTEM
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000 \
    --protected-mode no >"$logs/$1-redis.log" 2>&1 &
  echo "redis $!" >>"$run/$1.pids"
  wait_port "$REDIS_PORT" 20
}

start_relays() { # SYSTEM NODES BROKERS EXTRA...
  local sys="$1" n="$2" brokers="$3"; shift 3
  local topic="bench.$(date +%s)" urls=()
  # Newer relays refuse to start without an authentication choice.
  local help
  help="$("$ROOMLOG" relay --help 2>&1 || true)"
  if [[ "$help" == *--anonymous* ]]; then set -- "$@" --anonymous; fi
  for i in $(seq 1 "$n"); do
    local port=$((18080 + i))
    env ${RELAY_ENV:-} "$ROOMLOG" relay --brokers "$brokers" --listen "127.0.0.1:$port" --topic "$topic" \
      --relay-name "bench-$sys-$i" --log-level warn "$@" ${RELAY_FLAGS:-} >"$logs/$sys-relay$i.log" 2>&1 &
    echo "relay$i $!" >>"$run/$sys.pids"
    urls+=("ws://127.0.0.1:$port/ws")
  done
  for i in $(seq 1 "$n"); do wait_http "http://127.0.0.1:$((18080 + i))/healthz" 90; done
  (IFS=,; echo "${urls[*]}") >"$run/$sys.urls"
}

start() {
  local sys="$1" n="${2:-2}"
  stop "$sys" 2>/dev/null || true
  : >"$run/$sys.pids"
  case "$sys" in
    roomlog-embedded | roomlog-socketio)
      local data="$out/data/broker-$(date +%s)"
      mkdir -p "$data"
      env ${BROKER_ENV:-} "$ROOMLOG" broker --listen "127.0.0.1:$BROKER_PORT" --data-dir "$data" --log-level warn >"$logs/$sys-broker.log" 2>&1 &
      echo "broker $!" >>"$run/$sys.pids"
      wait_port "$BROKER_PORT" 30
      start_relays "$sys" "$n" "127.0.0.1:$BROKER_PORT"
      ;;
    roomlog-kafka)
      local line
      line="$("$root/testenv/kafka/start.sh" 2>>"$logs/$sys-kafka.log" | tail -1)"
      local brokers="${line#ROOMLOG_TEST_BROKERS=}"
      local kpid
      kpid="$(cat "${TMPDIR:-/tmp}/roomlog-kafka-$ROOMLOG_KAFKA_PORT/broker.pid")"
      echo "kafka $kpid" >>"$run/$sys.pids"
      start_relays "$sys" "$n" "$brokers" --replication-factor 1
      ;;
    centrifugo)
      start_redis "$sys"
      local urls=()
      for i in $(seq 1 "$n"); do
        local port=$((18100 + i))
        CENTRIFUGO_HTTP_SERVER_PORT="$port" CENTRIFUGO_HTTP_SERVER_ADDRESS=127.0.0.1 \
          CENTRIFUGO_ENGINE_REDIS_ADDRESS="redis://127.0.0.1:$REDIS_PORT" CENTRIFUGO_NODE_NAME="bench-$i" \
          env ${NODE_ENV:-} "$BIN/centrifugo" --config "$here/centrifugo.json" >"$logs/$sys-node$i.log" 2>&1 &
        echo "node$i $!" >>"$run/$sys.pids"
        urls+=("ws://127.0.0.1:$port/connection/websocket")
      done
      for i in $(seq 1 "$n"); do wait_port $((18100 + i)) 30; done
      (IFS=,; echo "${urls[*]}") >"$run/$sys.urls"
      ;;
    socketio)
      start_redis "$sys"
      local urls=()
      for i in $(seq 1 "$n"); do
        local port=$((18200 + i))
        PORT="$port" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$here/socketio/server.js" >"$logs/$sys-node$i.log" 2>&1 &
        echo "node$i $!" >>"$run/$sys.pids"
        urls+=("ws://127.0.0.1:$port")
      done
      for i in $(seq 1 "$n"); do wait_port $((18200 + i)) 30; done
      (IFS=,; echo "${urls[*]}") >"$run/$sys.urls"
      ;;
    *) log "unknown system $sys"; return 2 ;;
  esac
  sleep 1
  log "$sys: $(tr '\n' ' ' <"$run/$sys.pids")"
}

stop() {
  local sys="$1"
  if [[ "$sys" == all ]]; then
    for s in roomlog-embedded roomlog-kafka roomlog-socketio centrifugo socketio; do stop "$s"; done
    return
  fi
  local f="$run/$sys.pids"
  if [[ -f "$f" ]]; then
    while read -r name pid; do
      [[ -n "${pid:-}" && "$name" != kafka ]] || continue
      kill -TERM "$pid" 2>/dev/null || true
    done <"$f"
    for _ in $(seq 1 50); do
      local alive=0
      while read -r name pid; do
        [[ -n "${pid:-}" && "$name" != kafka ]] || continue
        kill -0 "$pid" 2>/dev/null && alive=1
      done <"$f"
      (( alive )) || break
      sleep 0.2
    done
    while read -r name pid; do
      [[ -n "${pid:-}" && "$name" != kafka ]] || continue
      kill -KILL "$pid" 2>/dev/null || true
    done <"$f"
    rm -f "$f" "$run/$sys.urls"
  fi
  if [[ "$sys" == roomlog-kafka ]]; then
    "$root/testenv/kafka/stop.sh" >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start) start "${2:?system}" "${3:-2}" ;;
  stop) stop "${2:?system or all}" ;;
  *) echo "usage: $0 start SYSTEM [NODES] | stop SYSTEM|all" >&2; exit 2 ;;
esac
