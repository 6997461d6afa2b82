#!/usr/bin/env bash
# Runs every test: unit tests, fuzz seeds, and the integration suite twice,
# on the in-process kfake broker and on a real Apache Kafka broker started
# here (testenv/kafka) and stopped on exit; then the JavaScript SDK's suite
# (sdk/js: node:test against relays built from this tree, on both logs, and
# the demo page and the operator console in headless Chromium), and the
# Socket.IO migration example (examples/socketio-chat, in Chromium). The
# real-broker run is required: it fails, never skips, when the broker or kcat
# is missing. Then the fault tests on a three-broker cluster (testenv/faults.sh),
# every fuzz target for 4000 inputs on top of its corpus, and two 60-second soaks
# (make soak: chaos with relay and broker kills and churning clients; the second
# with --follow interest).
#
# Usage: testenv/test.sh [go test flags...]   (default: -race -count=1 ./...)
set -euo pipefail
cd "$(dirname "$0")/.."

testenv/setup.sh

started=""
if [[ -z "${ROOMLOG_TEST_BROKERS:-}" ]]; then
  trap 'testenv/kafka/stop.sh >&2' EXIT
  line="$(testenv/kafka/start.sh | tail -n 1)"
  export "${line?}"
  started=1
fi
echo "test: real broker at $ROOMLOG_TEST_BROKERS${started:+ (started here)}" >&2

export ROOMLOG_REQUIRE_KAFKA=1
if (($#)); then
  go test "$@"
else
  go test -race -count=1 -timeout 20m ./...
  # The benchmarks run once each, so they cannot rot unnoticed (figures come
  # from `make bench`, not from here).
  go test -run '^$' -bench . -benchtime 1x ./record/ ./consumer/ ./relay/
  (cd sdk/js && npm test)
  # The Socket.IO migration example, both versions, from its own run.sh (uses the SDK's test helpers and the
  # relay npm test just built).
  (cd examples/socketio-chat && ROOMLOG_BIN="$PWD/../../bin/roomlog" npm test)
  # The real broker is not needed any more: free its memory and CPU for the
  # cluster of the fault tests.
  if [[ -n "$started" ]]; then
    testenv/kafka/stop.sh >&2
    trap - EXIT
  fi
  testenv/faults.sh
  # Each fuzz target for a number of inputs on top of its corpus (a count,
  # not a duration: Go 1.26's fuzz coordinator can fail a duration run with a
  # bare "context deadline exceeded" when a loaded worker misses the
  # deadline, golang/go#75804), and a one-minute soak.
  make fuzz FUZZTIME="${ROOMLOG_CI_FUZZTIME:-4000x}"
  make soak SOAK_DURATION="${ROOMLOG_CI_SOAK:-60s}"
  # The same with relays that follow only their rooms' partitions (loads and
  # drops under kills: --follow interest, docs/scaling.md).
  make soak SOAK_DURATION="${ROOMLOG_CI_SOAK:-60s}" SOAK_FLAGS="-- --follow interest --follow-idle 5s"
fi
