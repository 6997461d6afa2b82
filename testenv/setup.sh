#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing
# that is already there: Go (checked, not installed), a JDK 17+ and Maven for
# the real Kafka broker (testenv/kafka), kcat, the independent Kafka client
# the interop tests drive, Pebble, the ACME server the TLS tests run, Node.js
# 20+ with the official socket.io-client (testenv/socketio) for the Socket.IO
# interop tests, Chromium for the JavaScript SDK's browser tests (sdk/js),
# redis-server and the npm packages of examples/socketio-chat (its test runs
# the Socket.IO original beside the roomlog version), and Python 3 with venv
# for the backend examples, whose clients (examples/backends/setup.sh:
# confluent-kafka, kafka-python, kafkajs, kafka-clients) go into a cache; npm
# ci installs each from its lockfile. Idempotent; needs root (or sudo) only
# when something is missing.
set -euo pipefail

need=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || need+=(kcat)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ! command -v java >/dev/null 2>&1 || ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
  need+=(openjdk-17-jdk-headless)
fi

command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
# redis-server runs the Socket.IO original of examples/socketio-chat (its test
# starts its own on a free port, never a system one on 6379).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# python3 -m venv needs Debian's python3-venv (ensurepip); probe it in a
# throwaway folder.
venv_probe="$(mktemp -d)"
python3 -m venv "$venv_probe/v" >/dev/null 2>&1 || need+=(python3 python3-venv)
rm -rf "$venv_probe"

if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "setup: Node.js 20 or newer is required, found $(node --version)" >&2; exit 1; }

command -v go >/dev/null 2>&1 || { echo "setup: Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }
go version | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])' || { echo "setup: Go 1.26 or newer is required, found $(go version)" >&2; exit 1; }

# Pebble, a real ACME server, for the TLS tests (from the Go module proxy).
# v2.10.3 or later: earlier ones look up an ARI renewal's certificate by a
# serial without DER's leading zero byte, so about one renewal in 256 (a
# short serial with its high bit set) was refused, and the renewal test
# failed.
gobin="$(go env GOPATH)/bin"
pebble_version=v2.10.3
pebble_bin="$(command -v pebble 2>/dev/null || echo "$gobin/pebble")"
if ! go version -m "$pebble_bin" 2>/dev/null | grep -q "github.com/letsencrypt/pebble/v2[[:space:]]*$pebble_version"; then
  echo "setup: installing pebble $pebble_version" >&2
  GOBIN="$(dirname "$pebble_bin")" go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version"
fi

# npm packages, exactly as locked: npm ci in a folder whose lockfile changed
# since its last install.
npm_ci() {
  local dir="$1"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.roomlog-lock" 2>/dev/null; then
    echo "setup: npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund >&2 && cp package-lock.json node_modules/.roomlog-lock)
  fi
}
# socket.io-client for the Socket.IO interop tests; the SDK's dev
# dependencies (typescript, esbuild, playwright-core, ws...).
npm_ci "$(dirname "$0")/socketio"
npm_ci "$(dirname "$0")/../sdk/js"
# The Socket.IO migration example: socket.io, sticky sessions, the Redis adapter, kafkajs, socket.io-client.
npm_ci "$(dirname "$0")/../examples/socketio-chat"

# Fetch the Kafka jars now so a slow download is reported here, not as a
# test timeout.
"$(dirname "$0")/kafka/install.sh" >&2
# The backend examples' clients (docs/backends.md), into a cache.
"$(dirname "$0")/../examples/backends/setup.sh" >&2
echo "setup: ready" >&2
