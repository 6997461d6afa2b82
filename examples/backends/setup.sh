#!/usr/bin/env bash
# Installs the clients the backend examples (docs/backends.md) run with, into
# a cache folder outside the tree, and nothing already there:
#   $ROOMLOG_BACKENDS_CACHE (default ~/.cache/roomlog/backends)/
#     venv/          Python: confluent-kafka and kafka-python (python/requirements.txt)
#     java-libs/     Java: kafka-clients and its dependencies (java/pom.xml, from Maven Central)
# and node/node_modules with npm ci (kafkajs, from node/package-lock.json).
# Each part reinstalls only when its manifest changed. Idempotent; run by
# testenv/setup.sh and by examples/backends/backends_test.go.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${ROOMLOG_BACKENDS_CACHE:-$HOME/.cache/roomlog/backends}"
mkdir -p "$cache"
log() { echo "backends: $*" >&2; }

# Serialise concurrent runs (several test packages, several worktrees).
exec 9>"$cache/.lock"
flock 9

# stale DIR MANIFEST: whether DIR was installed from another MANIFEST.
stale() { ! cmp -s "$2" "$1/.roomlog-manifest" 2>/dev/null; }

if stale "$cache/venv" "$here/python/requirements.txt"; then
  log "installing the Python clients into $cache/venv"
  rm -rf "$cache/venv"
  python3 -m venv "$cache/venv" || { log "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  "$cache/venv/bin/pip" install -q --disable-pip-version-check -r "$here/python/requirements.txt" >&2
  cp "$here/python/requirements.txt" "$cache/venv/.roomlog-manifest"
fi

if stale "$cache/java-libs" "$here/java/pom.xml"; then
  log "fetching kafka-clients into $cache/java-libs"
  rm -rf "$cache/java-libs" "$cache/java-libs.tmp"
  mvn -B -q -f "$here/java/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$cache/java-libs.tmp" >&2
  cp "$here/java/pom.xml" "$cache/java-libs.tmp/.roomlog-manifest"
  mv "$cache/java-libs.tmp" "$cache/java-libs"
fi

if ! cmp -s "$here/node/package-lock.json" "$here/node/node_modules/.roomlog-lock" 2>/dev/null; then
  log "npm ci in $here/node"
  (cd "$here/node" && npm ci --no-audit --no-fund >&2 && cp package-lock.json node_modules/.roomlog-lock)
fi
