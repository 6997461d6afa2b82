#!/usr/bin/env bash
# Runs the chat, either version, from one command; Ctrl-C stops everything it started.
#
#   examples/socketio-chat/run.sh [roomlog]   a roomlog relay on its embedded broker (bin/roomlog, built here),
#                                             the backend (bot and moderation, kafkajs) and the page's web server
#   examples/socketio-chat/run.sh original    redis-server and the Socket.IO cluster (sticky sessions, Redis
#                                             adapter), which serves the page itself
#
# Then open the printed address in two windows (add ?name=alice&room=lobby). Ports: WEB_PORT (8090), RELAY_PORT
# (8080), BROKER_PORT (9092, the embedded broker's Kafka listener), REDIS_PORT (6390). State and logs go to RUN_DIR
# (default examples/socketio-chat/.run; the log persists there between runs). Needs Go, Node.js 20+, and for the
# original redis-server (Debian: apt-get install redis-server).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mode="${1:-roomlog}"
WEB_PORT="${WEB_PORT:-8090}"
RELAY_PORT="${RELAY_PORT:-8080}"
BROKER_PORT="${BROKER_PORT:-9092}"
REDIS_PORT="${REDIS_PORT:-6390}"
RUN_DIR="${RUN_DIR:-$here/.run}"
mkdir -p "$RUN_DIR/logs"

# node_modules exactly as locked (npm ci when the lockfile changed since the last install).
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.roomlog-lock" 2>/dev/null; then
  echo "run: npm ci in $here" >&2
  (cd "$here" && npm ci --no-audit --no-fund >&2 && cp package-lock.json node_modules/.roomlog-lock)
fi

pids=()
stop() {
  trap - EXIT INT TERM
  # In reverse order: the page and the backend before the relay (or the server before Redis).
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap stop EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: a child whose output goes to RUN_DIR/logs/NAME.log.
start() {
  local name="$1"; shift
  "$@" >"$RUN_DIR/logs/$name.log" 2>&1 &
  pids+=("$!")
}

# wait_for NAME PATTERN: until the child's log has a line matching PATTERN (60 s at most).
wait_for() {
  local name="$1" pattern="$2" deadline=$((SECONDS + 60))
  until grep -qE "$pattern" "$RUN_DIR/logs/$name.log" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "run: $name is not ready after 60 s; its log:" >&2
      tail -n 20 "$RUN_DIR/logs/$name.log" >&2
      exit 1
    fi
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "run: a process exited; $name's log:" >&2; tail -n 20 "$RUN_DIR/logs/$name.log" >&2; exit 1; }
    done
    sleep 0.1
  done
}

case "$mode" in
  roomlog)
    roomlog="${ROOMLOG_BIN:-$root/bin/roomlog}"
    if [[ -z "${ROOMLOG_BIN:-}" ]]; then
      echo "run: go build -o bin/roomlog ./cmd/roomlog" >&2
      (cd "$root" && go build -o bin/roomlog ./cmd/roomlog)
    fi
    # The backend's key for the relay's HTTP API; made once, kept in RUN_DIR.
    [[ -s "$RUN_DIR/api-key" ]] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/api-key")
    start relay "$roomlog" relay --listen "127.0.0.1:$RELAY_PORT" --data-dir "$RUN_DIR/data" \
      --embedded-listen "127.0.0.1:$BROKER_PORT" --anonymous --api-key-file "$RUN_DIR/api-key" \
      --allowed-origins "http://127.0.0.1:$WEB_PORT,http://localhost:$WEB_PORT" --demo=false
    wait_for relay '"?msg"?[=:]"?serving'
    start backend env BROKERS="127.0.0.1:$BROKER_PORT" RELAY_URL="http://127.0.0.1:$RELAY_PORT" \
      API_KEY_FILE="$RUN_DIR/api-key" node "$here/roomlog/backend.mjs"
    start web env PORT="$WEB_PORT" RELAY_URL="http://127.0.0.1:$RELAY_PORT" node "$here/roomlog/web.mjs"
    wait_for backend '^backend: ready'
    wait_for web '^web: '
    ;;
  original)
    command -v redis-server >/dev/null || { echo "run: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no
    wait_for redis 'Ready to accept connections'
    start server env PORT="$WEB_PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" node "$here/original/server.mjs"
    wait_for server '^original: '
    ;;
  *)
    echo "usage: $0 [roomlog|original]" >&2
    exit 2
    ;;
esac

echo "ready: open http://127.0.0.1:$WEB_PORT/?room=lobby in two windows ($mode; logs in $RUN_DIR/logs)"
wait -n "${pids[@]}" || true
echo "run: a process exited; stopping (logs in $RUN_DIR/logs)" >&2
