#!/usr/bin/env bash
# The fault tests (testenv/faulttest): starts a three-broker Apache Kafka
# cluster (testenv/kafka/cluster-start.sh, on ROOMLOG_KAFKA_CLUSTER_PORT,
# default 19192..19197), runs the tests against it and stops it on exit.
# With ROOMLOG_TEST_CLUSTER already set, uses that cluster (started by
# cluster-start.sh: the tests kill and restart its nodes) and leaves it running.
#
# Usage: testenv/faults.sh [go test flags...]   (default: -race -count=1 -v)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${ROOMLOG_TEST_CLUSTER:-}" ]]; then
  trap 'testenv/kafka/cluster-stop.sh >&2' EXIT
  line="$(testenv/kafka/cluster-start.sh | tail -n 1)"
  export "${line?}"
fi
echo "faults: Kafka cluster at $ROOMLOG_TEST_CLUSTER" >&2

export ROOMLOG_FAULT_TESTS=1 ROOMLOG_REQUIRE_CLUSTER=1
# The full-disk test mounts a tmpfs: required where that is permitted (root).
if [[ "$(id -u)" == 0 ]]; then
  export ROOMLOG_REQUIRE_TMPFS=1
fi
if (($#)); then
  go test "$@" ./testenv/faulttest/
else
  # -v shows each fault's traffic table; the relays' info lines (in a failed
  # test's log) are left out. pipefail carries go test's status.
  go test -race -count=1 -timeout 15m -v ./testenv/faulttest/ 2>&1 | { grep -v 'level=INFO' || true; }
fi
