#!/usr/bin/env bash
# Stop the Kafka broker that start.sh started on ${ROOMLOG_KAFKA_PORT:-19092}:
# SIGTERM (controlled shutdown), then SIGKILL after ${ROOMLOG_KAFKA_STOP_TIMEOUT:-30}s.
# Removes the temp data dir start.sh made, unless ROOMLOG_KAFKA_KEEP=1 (a dir
# given with ROOMLOG_KAFKA_DATA is never removed). Idempotent: no broker -> exit 0.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_timeout="${ROOMLOG_KAFKA_STOP_TIMEOUT:-30}"

if [[ ! -d "$KAFKA_STATE_DIR" ]]; then
  kafka_log "no broker started by these scripts on port $KAFKA_PORT; nothing to stop"
  exit 0
fi

if pid="$(kafka_pid)"; then
  kafka_log "stopping broker pid $pid on $KAFKA_BOOTSTRAP ..."
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kafka_log "broker pid $pid still running after ${stop_timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  kill -0 "$pid" 2>/dev/null && kafka_die "could not stop broker pid $pid"
  kafka_log "broker stopped"
else
  kafka_log "no running broker on port $KAFKA_PORT (cleaning up its state)"
fi

data="$(cat "$KAFKA_DATA_FILE" 2>/dev/null || true)"
if [[ -n "$data" && -d "$data" ]]; then
  if [[ "${ROOMLOG_KAFKA_KEEP:-0}" == 1 ]]; then
    kafka_log "keeping data dir $data (ROOMLOG_KAFKA_KEEP=1)"
  elif [[ -f "$KAFKA_OWNED_FILE" ]]; then
    rm -rf -- "$data"
    kafka_log "removed data dir $data"
  else
    kafka_log "keeping data dir $data (given with ROOMLOG_KAFKA_DATA)"
  fi
fi
rm -rf -- "$KAFKA_STATE_DIR"
