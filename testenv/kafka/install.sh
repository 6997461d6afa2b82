#!/usr/bin/env bash
# Fetch Apache Kafka (org.apache.kafka:kafka_2.13 + kafka-tools + log4j2) and
# all their runtime dependencies from Maven Central into
#   ${ROOMLOG_KAFKA_HOME:-$HOME/.cache/roomlog/kafka-<version>}/libs
# Idempotent: does nothing when that folder is already complete.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pom_src="$KAFKA_SCRIPT_DIR/pom.xml"
[[ -f "$pom_src" ]] || kafka_die "missing $pom_src"

# The marker records what was installed; a changed version or pom.xml reinstalls.
want_marker="version=$KAFKA_VERSION pom=$(cksum <"$pom_src" | cut -d' ' -f1)"

if [[ -f "$KAFKA_MARKER" ]] && [[ "$(cat "$KAFKA_MARKER")" == "$want_marker" ]]; then
  kafka_log "Kafka $KAFKA_VERSION already installed in $KAFKA_LIBS"
  exit 0
fi

kafka_require_java
command -v mvn >/dev/null 2>&1 || kafka_die "mvn (Apache Maven) not found; install it (Debian: apt-get install -y maven)"

mkdir -p "$KAFKA_HOME_DIR"

# Serialise concurrent installs of the same version.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$KAFKA_HOME_DIR/.install.lock"
  flock 9
  if [[ -f "$KAFKA_MARKER" ]] && [[ "$(cat "$KAFKA_MARKER")" == "$want_marker" ]]; then
    kafka_log "Kafka $KAFKA_VERSION already installed in $KAFKA_LIBS (by a concurrent install)"
    exit 0
  fi
fi

kafka_log "installing Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS ..."
start_s=$SECONDS

# Work on a copy of the pom in the install folder so that nothing is written
# into the source tree, and download into a temp folder that only becomes
# libs/ once complete.
cp "$pom_src" "$KAFKA_HOME_DIR/pom.xml"
tmp_libs="$(mktemp -d "$KAFKA_HOME_DIR/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp_libs"' EXIT

mvn_log="$KAFKA_HOME_DIR/mvn-install.log"
# shellcheck disable=SC2086
if ! mvn -B -q ${ROOMLOG_KAFKA_MVN_ARGS:-} \
    -f "$KAFKA_HOME_DIR/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$tmp_libs" >"$mvn_log" 2>&1; then
  tail -n 40 "$mvn_log" >&2 || true
  kafka_die "mvn dependency:copy-dependencies failed for Kafka $KAFKA_VERSION (full log: $mvn_log)"
fi

# Sanity-check that the jars with the main classes we use are there.
for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" \
           "kafka-server-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
           "kafka-storage-$KAFKA_VERSION.jar" "kafka-raft-$KAFKA_VERSION.jar"; do
  [[ -f "$tmp_libs/$jar" ]] || kafka_die "download incomplete: $jar missing (see $mvn_log)"
done
ls "$tmp_libs"/log4j-core-*.jar "$tmp_libs"/log4j-slf4j*-impl-*.jar >/dev/null 2>&1 \
  || kafka_die "download incomplete: log4j2 jars missing (see $mvn_log)"

echo "$want_marker" >"$tmp_libs/.roomlog-complete"
rm -rf "$KAFKA_LIBS"
mv "$tmp_libs" "$KAFKA_LIBS"
trap - EXIT

kafka_log "installed Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name "*.jar" | wc -l) jars, $(du -sh "$KAFKA_LIBS" | cut -f1), in $((SECONDS - start_s))s"
