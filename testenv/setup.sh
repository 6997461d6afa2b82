#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing
# that is already there: Go (checked, not installed), a JDK 17+ and Maven for
# the real Kafka broker (testenv/kafka), kcat, the independent Kafka client
# the interop tests drive, and Pebble, the ACME server the TLS tests run. Idempotent; needs root (or sudo) only when
# something is missing.
set -euo pipefail

need=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || need+=(kcat)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ! command -v java >/dev/null 2>&1 || ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
  need+=(openjdk-17-jdk-headless)
fi

if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v go >/dev/null 2>&1 || { echo "setup: Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }
go version | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])' || { echo "setup: Go 1.26 or newer is required, found $(go version)" >&2; exit 1; }

# Pebble, a real ACME server, for the TLS tests (from the Go module proxy).
gobin="$(go env GOPATH)/bin"
if ! command -v pebble >/dev/null 2>&1 && [ ! -x "$gobin/pebble" ]; then
  echo "setup: installing pebble" >&2
  go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1
fi

# Fetch the Kafka jars now so a slow download is reported here, not as a
# test timeout.
"$(dirname "$0")/kafka/install.sh" >&2
echo "setup: ready" >&2
