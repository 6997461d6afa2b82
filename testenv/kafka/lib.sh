# shellcheck shell=bash disable=SC2034
# Shared settings for install.sh / start.sh / stop.sh. Sourced, not run.
#
# Environment (all optional):
#   ROOMLOG_KAFKA_VERSION   Kafka version from Maven Central (default below)
#   ROOMLOG_KAFKA_HOME      install folder (default ~/.cache/roomlog/kafka-<version>)
#   ROOMLOG_KAFKA_PORT      PLAINTEXT port on 127.0.0.1 (default 19092; controller = port+1)
#   ROOMLOG_KAFKA_DATA      data dir to use instead of a fresh mktemp -d one
#   ROOMLOG_KAFKA_KEEP=1    stop.sh keeps the data dir
#   ROOMLOG_KAFKA_PROBE=java  readiness probe with Kafka's Java tool even if kcat is installed
#   JAVA_HOME               java to use (default: java on PATH)

ROOMLOG_KAFKA_DEFAULT_VERSION=4.4.0

KAFKA_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION="${ROOMLOG_KAFKA_VERSION:-$ROOMLOG_KAFKA_DEFAULT_VERSION}"
KAFKA_HOME_DIR="${ROOMLOG_KAFKA_HOME:-${HOME:-/root}/.cache/roomlog/kafka-${KAFKA_VERSION}}"
KAFKA_LIBS="$KAFKA_HOME_DIR/libs"
KAFKA_MARKER="$KAFKA_LIBS/.roomlog-complete"

KAFKA_PORT="${ROOMLOG_KAFKA_PORT:-19092}"
KAFKA_HOST=127.0.0.1
if ! [[ "$KAFKA_PORT" =~ ^[0-9]+$ ]] || (( KAFKA_PORT < 1 || KAFKA_PORT > 65534 )); then
  echo "kafka: ROOMLOG_KAFKA_PORT must be a port number below 65535, got '$KAFKA_PORT'" >&2
  exit 2
fi
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"

# Well-known state folder for the broker on this port: pid file, data dir path.
KAFKA_STATE_DIR="${TMPDIR:-/tmp}/roomlog-kafka-${KAFKA_PORT}"
KAFKA_PID_FILE="$KAFKA_STATE_DIR/broker.pid"
KAFKA_DATA_FILE="$KAFKA_STATE_DIR/data-dir"       # path of the data dir in use
KAFKA_OWNED_FILE="$KAFKA_STATE_DIR/data-dir-owned" # present if start.sh made the data dir

if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  KAFKA_JAVA="$JAVA_HOME/bin/java"
else
  KAFKA_JAVA="java"
fi

kafka_log() { echo "kafka: $*" >&2; }
kafka_die() { echo "kafka: ERROR: $*" >&2; exit 1; }

# kafka_java_major prints the major version of $KAFKA_JAVA (e.g. 17).
kafka_java_major() {
  local v
  v="$("$KAFKA_JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  v="${v#1.}"
  echo "${v%%[.+-]*}"
}

kafka_require_java() {
  command -v "$KAFKA_JAVA" >/dev/null 2>&1 || kafka_die "java not found (need a JDK/JRE 17 or newer; set JAVA_HOME or put java on PATH)"
  local major
  major="$(kafka_java_major)"
  [[ "$major" =~ ^[0-9]+$ ]] || kafka_die "cannot tell the version of $KAFKA_JAVA"
  (( major >= 17 )) || kafka_die "Kafka $KAFKA_VERSION brokers need Java 17 or newer; $KAFKA_JAVA is Java $major"
}

# kafka_port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
kafka_port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null
}

# kafka_pid prints the pid of the broker this state dir tracks, if it is alive
# and really is our broker (guards against a recycled pid).
kafka_pid() {
  [[ -f "$KAFKA_PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$KAFKA_PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' || return 1
  fi
  echo "$pid"
}

# kafka_probe: a real Kafka request (metadata / ApiVersions) against the broker.
# Uses kcat (or kafkacat) when installed, else Kafka's own BrokerApiVersionsCommand
# (ROOMLOG_KAFKA_PROBE=java forces the latter).
kafka_probe() {
  local kc=""
  if [[ "${ROOMLOG_KAFKA_PROBE:-auto}" != java ]]; then
    kc="$(command -v kcat || command -v kafkacat || true)"
  fi
  if [[ -n "$kc" ]]; then
    "$kc" -L -b "$KAFKA_BOOTSTRAP" -m 5 2>/dev/null | grep -q 'broker [0-9]* at' && return 0
    return 1
  fi
  kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    2>/dev/null | grep -q "^$KAFKA_BOOTSTRAP"
}

# kafka_tool MAINCLASS ARGS...: run a Kafka command-line tool (small heap, quick JIT).
# e.g. kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --list
kafka_tool() {
  "$KAFKA_JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -cp "$KAFKA_LIBS/*" "$@"
}

# The three-broker cluster (cluster-start.sh, cluster-stop.sh): node N (1..3)
# listens on KAFKA_CLUSTER_PORT + 2(N-1), its controller on the port after;
# each node is a broker started by start.sh, with its state in the usual
# per-port folder and its data under the cluster's state folder.
KAFKA_CLUSTER_NODES=3
KAFKA_CLUSTER_PORT="${ROOMLOG_KAFKA_CLUSTER_PORT:-19192}"
if ! [[ "$KAFKA_CLUSTER_PORT" =~ ^[0-9]+$ ]] || (( KAFKA_CLUSTER_PORT < 1 || KAFKA_CLUSTER_PORT > 65530 )); then
  echo "kafka: ROOMLOG_KAFKA_CLUSTER_PORT must be a port number below 65531, got '$KAFKA_CLUSTER_PORT'" >&2
  exit 2
fi
KAFKA_CLUSTER_DIR="${TMPDIR:-/tmp}/roomlog-kafka-cluster-${KAFKA_CLUSTER_PORT}"

# kafka_node_port N: node N's PLAINTEXT port.
kafka_node_port() { echo $((KAFKA_CLUSTER_PORT + 2 * ($1 - 1))); }

# kafka_cluster_bootstrap: every node's address, comma separated.
kafka_cluster_bootstrap() {
  local n out=""
  for ((n = 1; n <= KAFKA_CLUSTER_NODES; n++)); do
    out+="${out:+,}$KAFKA_HOST:$(kafka_node_port "$n")"
  done
  echo "$out"
}

# kafka_cluster_voters: the static controller quorum, id@host:port,...
kafka_cluster_voters() {
  local n out=""
  for ((n = 1; n <= KAFKA_CLUSTER_NODES; n++)); do
    out+="${out:+,}$n@$KAFKA_HOST:$(($(kafka_node_port "$n") + 1))"
  done
  echo "$out"
}
