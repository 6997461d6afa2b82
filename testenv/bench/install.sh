#!/usr/bin/env bash
# Installs what the peer benchmarks need, when missing (idempotent):
#   redis-server, nodejs, npm (Debian packages), perf when available (linux-perf)
#   Centrifugo v6.9.1 (go install) into testenv/bench/.bin
#   socket.io 4.8, @socket.io/redis-adapter, redis (npm ci from the committed lock file) in testenv/bench/socketio
#   Apache Kafka for roomlog on real Kafka (testenv/kafka/install.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
CENTRIFUGO_VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
  # Debian starts a system redis on 6379; the benchmarks run their own on another port.
fi

mkdir -p "$here/.bin"
if ! "$here/.bin/centrifugo" version >/dev/null 2>&1 ||
  [[ "$(go version -m "$here/.bin/centrifugo" 2>/dev/null | awk '$1=="mod" {print $3}')" != "$CENTRIFUGO_VERSION" ]]; then
  echo "install: centrifugo $CENTRIFUGO_VERSION (go install, a few minutes)" >&2
  GOBIN="$here/.bin" go install "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
fi

if [[ ! -d "$here/socketio/node_modules/socket.io" || ! -d "$here/socketio/node_modules/@socket.io/redis-adapter" ]]; then
  echo "install: socket.io (npm ci)" >&2
  (cd "$here/socketio" && npm ci --no-audit --no-fund)
fi

"$root/testenv/kafka/install.sh" >&2
echo "install: ok" >&2
