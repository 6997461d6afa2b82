#!/usr/bin/env bash
# Stop the three-broker cluster that cluster-start.sh started on
# ${ROOMLOG_KAFKA_CLUSTER_PORT:-19192} (each node with stop.sh: SIGTERM, then
# SIGKILL after ROOMLOG_KAFKA_STOP_TIMEOUT) and remove its data, unless
# ROOMLOG_KAFKA_KEEP=1. Idempotent.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pids=()
for ((n = 1; n <= KAFKA_CLUSTER_NODES; n++)); do
  ROOMLOG_KAFKA_PORT="$(kafka_node_port "$n")" "$KAFKA_SCRIPT_DIR/stop.sh" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
if [[ "${ROOMLOG_KAFKA_KEEP:-0}" == 1 ]]; then
  kafka_log "keeping the cluster's data in $KAFKA_CLUSTER_DIR (ROOMLOG_KAFKA_KEEP=1)"
elif [[ -d "$KAFKA_CLUSTER_DIR" ]]; then
  # (each node's stop.sh kept its data: the cluster's folder holds it all)
  rm -rf -- "$KAFKA_CLUSTER_DIR"
  kafka_log "removed the cluster's data in $KAFKA_CLUSTER_DIR"
fi
exit "$rc"
