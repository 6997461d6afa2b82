#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# on 127.0.0.1:${ROOMLOG_KAFKA_PORT:-19092} and wait until it serves requests.
# Last line of output (stdout): ROOMLOG_TEST_BROKERS=127.0.0.1:<port>
# Idempotent: if our broker is already running on that port, says so and exits 0.
#
# Extra environment (see also lib.sh):
#   ROOMLOG_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   ROOMLOG_KAFKA_HEAP_OPTS      default "-Xmx512m -Xms256m"
#   ROOMLOG_KAFKA_JVM_OPTS       extra JVM flags
#   ROOMLOG_KAFKA_EXTRA_PROPS    extra server.properties lines (newline separated)
# Cluster mode (set by cluster-start.sh, which runs this script once per node):
#   ROOMLOG_KAFKA_VOTERS         static controller quorum, id@host:port,... (unset: single node)
#   ROOMLOG_KAFKA_NODE_ID        this node's id in that quorum
#   ROOMLOG_KAFKA_CLUSTER_ID     the cluster id every node is formatted with
#   ROOMLOG_KAFKA_MIN_ISR        min.insync.replicas (default 2 in cluster mode)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

timeout_s="${ROOMLOG_KAFKA_START_TIMEOUT:-90}"

# wait_ready PID LOGFILE: poll until the broker answers a real Kafka request.
wait_ready() {
  local pid="$1" log="$2" deadline=$((SECONDS + timeout_s))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      kafka_log "broker process $pid exited during startup; last lines of $log:"
      tail -n 40 "$log" >&2 2>/dev/null || true
      [[ -f "${log%/*}/broker.out" ]] && tail -n 20 "${log%/*}/broker.out" >&2
      return 1
    fi
    if kafka_port_open "$KAFKA_PORT" && kafka_probe; then
      return 0
    fi
    sleep 0.5
  done
  kafka_log "broker did not become ready within ${timeout_s}s; last lines of $log:"
  tail -n 40 "$log" >&2 2>/dev/null || true
  return 1
}

# Single node, or one node of a cluster with a static quorum.
node_id=1
replicas=1
min_isr=1
quorum_line="controller.quorum.bootstrap.servers=$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
format_args=(--standalone)
cluster_props=""
if [[ -n "${ROOMLOG_KAFKA_VOTERS:-}" ]]; then
  node_id="${ROOMLOG_KAFKA_NODE_ID:?ROOMLOG_KAFKA_NODE_ID is required with ROOMLOG_KAFKA_VOTERS}"
  [[ -n "${ROOMLOG_KAFKA_CLUSTER_ID:-}" ]] || kafka_die "ROOMLOG_KAFKA_CLUSTER_ID is required with ROOMLOG_KAFKA_VOTERS"
  replicas="$(tr ',' '\n' <<<"$ROOMLOG_KAFKA_VOTERS" | grep -c @)"
  min_isr="${ROOMLOG_KAFKA_MIN_ISR:-2}"
  quorum_line="controller.quorum.voters=$ROOMLOG_KAFKA_VOTERS"
  format_args=()
  # A killed broker is fenced (its partitions led elsewhere) after the
  # session timeout; shorter than the defaults (2 s, 9 s) so that faults
  # show within a test's patience, still well above a GC pause.
  cluster_props="min.insync.replicas=$min_isr
unclean.leader.election.enable=false
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000"
fi

# Already running?
if pid="$(kafka_pid)"; then
  data="$(cat "$KAFKA_DATA_FILE" 2>/dev/null || true)"
  kafka_log "broker already running on $KAFKA_BOOTSTRAP (pid $pid, data $data); waiting until it serves ..."
  wait_ready "$pid" "$data/logs/server.log" || kafka_die "the running broker (pid $pid) does not serve; run $KAFKA_SCRIPT_DIR/stop.sh"
  kafka_log "broker on $KAFKA_BOOTSTRAP is up"
  echo "ROOMLOG_TEST_BROKERS=$KAFKA_BOOTSTRAP"
  exit 0
fi

# Stale state from a broker that died: clean it up (as stop.sh would).
if [[ -f "$KAFKA_PID_FILE" ]]; then
  kafka_log "removing stale state of a broker that is no longer running ($KAFKA_STATE_DIR)"
  "$KAFKA_SCRIPT_DIR/stop.sh" >&2 || true
  mkdir -p "$KAFKA_STATE_DIR"
fi

for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
  if kafka_port_open "$p"; then
    kafka_die "port $KAFKA_HOST:$p is in use by another process (not a broker started by these scripts); stop it or set ROOMLOG_KAFKA_PORT"
  fi
done

"$KAFKA_SCRIPT_DIR/install.sh" >&2
kafka_require_java

t0=$SECONDS
mkdir -p "$KAFKA_STATE_DIR"

# Until the broker is launched, a failure removes what this script made
# (a failed launch is handled below: its logs are kept).
launched=0
cleanup_on_failure() {
  local rc=$?
  if (( rc != 0 && launched == 0 )); then
    if [[ -f "$KAFKA_OWNED_FILE" && -n "${data:-}" ]]; then rm -rf -- "$data"; fi
    rm -rf -- "$KAFKA_STATE_DIR"
  fi
}
trap cleanup_on_failure EXIT

# Data dir.
if [[ -n "${ROOMLOG_KAFKA_DATA:-}" ]]; then
  data="$ROOMLOG_KAFKA_DATA"
  mkdir -p "$data"
  data="$(cd "$data" && pwd)"
  rm -f "$KAFKA_OWNED_FILE"
else
  data="$(mktemp -d "${TMPDIR:-/tmp}/roomlog-kafka-data-${KAFKA_PORT}.XXXXXX")"
  : >"$KAFKA_OWNED_FILE"
fi
echo "$data" >"$KAFKA_DATA_FILE"
mkdir -p "$data/logs" "$data/kraft-logs"

props="$data/server.properties"
cat >"$props" <<EOF
# Written by roomlog testenv/kafka/start.sh: a KRaft test broker (broker and controller in one JVM).
process.roles=broker,controller
node.id=$node_id
$quorum_line
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/kraft-logs

num.partitions=1
default.replication.factor=$replicas
auto.create.topics.enable=false
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
$cluster_props

# Small machine (2 cores): fewer threads than the defaults.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
EOF
if [[ -n "${ROOMLOG_KAFKA_EXTRA_PROPS:-}" ]]; then
  printf '\n# ROOMLOG_KAFKA_EXTRA_PROPS\n%s\n' "$ROOMLOG_KAFKA_EXTRA_PROPS" >>"$props"
fi

log4j="$data/log4j2.properties"
cat >"$log4j" <<EOF
# Written by roomlog testenv/kafka/start.sh: broker logs go to $data/logs/server.log
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $data/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.requestlog.name = kafka.request.logger
logger.requestlog.level = WARN
EOF

# Format the storage (skipped when a reused ROOMLOG_KAFKA_DATA is already formatted).
if [[ -f "$data/kraft-logs/meta.properties" ]]; then
  kafka_log "storage in $data already formatted; reusing it"
else
  cluster_id="${ROOMLOG_KAFKA_CLUSTER_ID:-$(kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)}"
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || kafka_die "cluster id '$cluster_id' is not a Kafka cluster id"
  if ! kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$props" "${format_args[@]}" \
      >"$data/logs/format.log" 2>&1; then
    cat "$data/logs/format.log" >&2
    kafka_die "formatting the storage failed"
  fi
fi

heap_opts="${ROOMLOG_KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
# JVM flags as in Kafka's bin/kafka-run-class.sh, plus limits for a small machine.
# shellcheck disable=SC2206 # heap_opts is split into words on purpose
jvm_opts=(
  $heap_opts
  -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent
  -XX:MaxMetaspaceSize=192m -XX:MaxDirectMemorySize=256m -XX:ReservedCodeCacheSize=128m
  -Xss512k
  -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$log4j"
  -Dkafka.logs.dir="$data/logs"
)
# shellcheck disable=SC2206
jvm_opts+=(${ROOMLOG_KAFKA_JVM_OPTS:-})

kafka_log "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP (controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT), data $data"
# setsid: own session, so the broker outlives this script and ^C in its terminal.
# The inner shell writes its own pid, then execs java, so the pid file is java's.
# shellcheck disable=SC2016 # $$ and $1 expand in the inner shell
setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$KAFKA_PID_FILE" \
  "$KAFKA_JAVA" "${jvm_opts[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$props" \
  </dev/null >"$data/logs/broker.out" 2>&1 &
launched=1

# Wait for the pid file.
for _ in $(seq 1 50); do
  [[ -s "$KAFKA_PID_FILE" ]] && break
  sleep 0.1
done
pid="$(cat "$KAFKA_PID_FILE" 2>/dev/null || true)"
[[ "$pid" =~ ^[0-9]+$ ]] || kafka_die "broker did not start (no pid file); see $data/logs/broker.out"

if ! wait_ready "$pid" "$data/logs/server.log"; then
  kafka_log "stopping the broker that failed to start"
  ROOMLOG_KAFKA_KEEP=1 "$KAFKA_SCRIPT_DIR/stop.sh" >&2 || true
  kafka_die "Kafka broker did not start; logs kept in $data/logs"
fi

kafka_log "broker pid $pid serving on $KAFKA_BOOTSTRAP after $((SECONDS - t0))s (logs: $data/logs/server.log; stop: $KAFKA_SCRIPT_DIR/stop.sh)"
echo "ROOMLOG_TEST_BROKERS=$KAFKA_BOOTSTRAP"
