#!/usr/bin/env bash
# Start a three-broker Apache Kafka cluster (KRaft, each node a broker and a
# controller in one JVM, a static quorum of the three) on 127.0.0.1, with
# replication factor 3, min.insync.replicas 2 and unclean leader election
# off, and wait until every node serves requests. Node N listens on
# ${ROOMLOG_KAFKA_CLUSTER_PORT:-19192} + 2(N-1), its controller on the next port.
# Last line of output (stdout): ROOMLOG_TEST_CLUSTER=127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>
#
#   cluster-start.sh           start the cluster (idempotent: running nodes are kept)
#   cluster-start.sh --node N  start node N again after it was killed, on its data
#
# Each node is started by start.sh (same environment: ROOMLOG_KAFKA_HEAP_OPTS,
# default here -Xmx384m -Xms128m; ROOMLOG_KAFKA_START_TIMEOUT; ...). State:
# ${TMPDIR:-/tmp}/roomlog-kafka-cluster-<port>/ (cluster id, node-N data dirs);
# each node's pid file is that of start.sh, ${TMPDIR:-/tmp}/roomlog-kafka-<node port>/broker.pid.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

only=""
case "${1:-}" in
  "") ;;
  --node)
    only="${2:-}"
    [[ "$only" =~ ^[1-9]$ ]] && (( only <= KAFKA_CLUSTER_NODES )) || kafka_die "--node wants 1..$KAFKA_CLUSTER_NODES, got '$only'"
    ;;
  *) kafka_die "usage: cluster-start.sh [--node N]" ;;
esac

"$KAFKA_SCRIPT_DIR/install.sh" >&2
kafka_require_java
mkdir -p "$KAFKA_CLUSTER_DIR"

# One cluster id for every node, kept for restarts.
id_file="$KAFKA_CLUSTER_DIR/cluster-id"
if [[ ! -s "$id_file" ]]; then
  [[ -z "$only" ]] || kafka_die "no cluster on $KAFKA_CLUSTER_PORT to restart node $only in; run cluster-start.sh first"
  kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$id_file"
fi
cluster_id="$(cat "$id_file")"
voters="$(kafka_cluster_voters)"

# start_node N: start.sh for node N, in the background (the nodes only become
# ready together: a controller quorum needs two of the three).
start_node() {
  local n="$1"
  ROOMLOG_KAFKA_PORT="$(kafka_node_port "$n")" \
  ROOMLOG_KAFKA_DATA="$KAFKA_CLUSTER_DIR/node-$n" \
  ROOMLOG_KAFKA_NODE_ID="$n" \
  ROOMLOG_KAFKA_VOTERS="$voters" \
  ROOMLOG_KAFKA_CLUSTER_ID="$cluster_id" \
  ROOMLOG_KAFKA_HEAP_OPTS="${ROOMLOG_KAFKA_HEAP_OPTS:--Xmx384m -Xms128m}" \
    "$KAFKA_SCRIPT_DIR/start.sh" >"$KAFKA_CLUSTER_DIR/node-$n.start.log" 2>&1
}

t0=$SECONDS
pids=()
nodes=()
for ((n = 1; n <= KAFKA_CLUSTER_NODES; n++)); do
  [[ -z "$only" || "$only" == "$n" ]] || continue
  start_node "$n" &
  pids+=($!)
  nodes+=("$n")
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    kafka_log "node ${nodes[$i]} did not start:"
    sed 's/^/  /' "$KAFKA_CLUSTER_DIR/node-${nodes[$i]}.start.log" >&2
    failed=1
  fi
done
if ((failed)); then
  [[ -n "$only" ]] || "$KAFKA_SCRIPT_DIR/cluster-stop.sh" >&2 || true
  kafka_die "the cluster did not start"
fi
kafka_log "cluster serving on $(kafka_cluster_bootstrap) after $((SECONDS - t0))s (node${only:+ $only}${only:-s 1-$KAFKA_CLUSTER_NODES} started; stop: $KAFKA_SCRIPT_DIR/cluster-stop.sh)"
echo "ROOMLOG_TEST_CLUSTER=$(kafka_cluster_bootstrap)"
