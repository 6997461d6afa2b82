#!/usr/bin/env bash
# Runs every benchmark scenario against every system in one run, then writes
# docs/benchmarks.md (and docs/benchmarks/*.png) from the results.
#
#   testenv/bench/run.sh                   full size (issue 7's scenarios)
#   SCALE=small testenv/bench/run.sh       1k connections, short: checks every adapter and scenario
#   SYSTEMS="roomlog-embedded centrifugo" SCENARIOS="fanout failure" testenv/bench/run.sh
#   REPORT=0 ...                           results only, no docs/benchmarks.md
#   CONNS=5000 ROOMS=25 RATE=200 ...       another fan-out layout (full scale; a report of it is not the page's)
#   FANOUT_WARM=10s ...                    scenario 1's warm-up (default 90s: a fresh Kafka JVM compiles for a minute)
#   RELAY_ENV=GOMAXPROCS=1 ...             environment for the relays (BROKER_ENV: roomlog broker; NODE_ENV: Centrifugo)
#
# Systems: roomlog-embedded and roomlog-kafka (native /ws clients), roomlog-socketio (the roomlog-embedded fleet
# driven through the relays' /socket.io/ with the same Socket.IO client protocol as the peer), centrifugo, socketio
# (Socket.IO 4.8 + Redis adapter).
#
# Results: testenv/bench/out/results/<scenario>-<system>[-<rate>].json; server logs in out/logs/<scenario>.
# Each load run is bounded (roomlog-bench --timeout, and `timeout` around it); servers are
# stopped by pid at the end, also on failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${BENCH_OUT:-$here/out}"
export BENCH_OUT="$out"
SCALE="${SCALE:-full}"
SYSTEMS="${SYSTEMS:-roomlog-embedded roomlog-kafka roomlog-socketio centrifugo socketio}"
SCENARIOS="${SCENARIOS:-fanout failure idle bigroom churn sweep}"
PROFILE="${PROFILE:-1}"
mkdir -p "$out/results" "$out/logs"
cd "$root"

# Binaries: an unstripped relay (for perf), and the generator.
export ROOMLOG_BIN="$out/roomlog"
if ! go build -o "$ROOMLOG_BIN.new" ./cmd/roomlog; then
  [[ -x "$ROOMLOG_BIN" ]] || exit 1
  echo "run: roomlog does not build now; using the relay built earlier ($ROOMLOG_BIN)" >&2
else
  mv "$ROOMLOG_BIN.new" "$ROOMLOG_BIN"
fi
go build -o "$out/roomlog-bench" ./cmd/roomlog-bench
export PATH="$here/.bin:$PATH"
BENCH="$out/roomlog-bench"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ "$SCALE" == small ]]; then
  CONNS=1000 ROOMS=100 RATE=200 DUR=8s WARM=2s FANOUT_WARM=2s BIG_CONNS=500 BIG_DUR=8s IDLE_CONNS=2000 IDLE_NODES=2 IDLE_PROCS=1
  CHURN=100 PROCS=1 SWEEP_RATES="100 400" SWEEP_DUR=5s
else
  CONNS="${CONNS:-10000}" ROOMS="${ROOMS:-1000}" RATE="${RATE:-2000}" DUR=60s WARM="${WARM:-10s}" FANOUT_WARM="${FANOUT_WARM:-90s}" BIG_CONNS=5000 BIG_DUR="${BIG_DUR:-30s}" IDLE_CONNS="${IDLE_CONNS:-50000}"
  IDLE_NODES="${IDLE_NODES:-4}" IDLE_PROCS="${IDLE_PROCS:-4}" CHURN=1000 PROCS=2 SWEEP_RATES="${SWEEP_RATES:-500 4000}"
  SWEEP_DUR="${SWEEP_DUR:-15s}"
fi

# Environment of the run, for the report.
{
  echo "## Machine and versions"
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| date | $(date -u +%Y-%m-%dT%H:%MZ) |"
  echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores visible (nproc) |"
  echo "| memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) |"
  echo "| kernel | $(uname -r) |"
  echo "| descriptors | $(ulimit -Hn) per process (hard limit) |"
  tree="clean"
  if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then tree="with uncommitted changes"; fi
  echo "| roomlog | \`$("$ROOMLOG_BIN" version 2>/dev/null | head -1)\` (built from the work tree at $(git -C "$root" rev-parse --short HEAD 2>/dev/null), $tree), $(go version | cut -d' ' -f3) |"
  echo "| Apache Kafka | $(basename "$(ls -d "${HOME:-/root}"/.cache/roomlog/kafka-* 2>/dev/null | head -1)" 2>/dev/null), $(java -version 2>&1 | head -1) |"
  echo "| Centrifugo | $(go version -m "$here/.bin/centrifugo" 2>/dev/null | awk '$1=="mod" {print $3}') (go install; reports itself as a development build) |"
  echo "| Socket.IO | socket.io $(node -p "require('$here/socketio/node_modules/socket.io/package.json').version"), @socket.io/redis-adapter $(node -p "require('$here/socketio/node_modules/@socket.io/redis-adapter/package.json').version"), Node.js $(node --version) |"
  echo "| Redis | $(redis-server --version | awk '{print $3}' | sed 's/v=//') |"
  echo "| scale | $SCALE |"
  echo
} >"$out/env.md"
: >"$out/commands.txt"

cleanup() { "$here/servers.sh" stop all || true; }
trap cleanup EXIT

proto_of() {
  case "$1" in roomlog-socketio) echo socketio ;; roomlog-*) echo roomlog ;; *) echo "$1" ;; esac
}

# bench SYSTEM SCENARIO RESULT-NAME ARGS...: one bounded load run.
bench() {
  local sys="$1" sc="$2" name="$3"; shift 3
  local args=(-system "$sys" -scenario "$sc" -proto "$(proto_of "$sys")" -url "$(cat "$out/run/$sys.urls")"
    -pid-file "$out/run/$sys.pids" -quiet -out "$out/results/$name.json" "$@")
  [[ "$sys" == centrifugo ]] && args+=(-centrifugo-secret roomlog-bench-secret)
  echo "roomlog-bench run ${args[*]}" | sed "s|$out|testenv/bench/out|g" >>"$out/commands.txt"
  echo "=== $sys / $name" >&2
  timeout 900 "$BENCH" run "${args[@]}" | tail -1 || echo "!!! $sys / $name failed" >&2
}

# profile SYSTEM SECONDS DELAY: perf samples of the system's server processes, from DELAY seconds after the
# run starts (connecting takes up to about 10 s, then the warm-up).
profile() {
  local sys="$1" secs="$2" delay="$3"
  [[ "$PROFILE" == 1 ]] && command -v perf >/dev/null || return 0
  local pids
  pids="$(awk '{print $2}' "$out/run/$sys.pids" | paste -sd,)"
  ( sleep "$delay"
    perf record -F 499 -g -o "$out/perf-$sys.data" -p "$pids" -- sleep "$secs" >/dev/null 2>&1 || exit 0
    perf report -i "$out/perf-$sys.data" --stdio --no-children --sort comm,dso,sym 2>/dev/null \
      | grep -v '^$' | grep -E '^ +[0-9]' | head -40 >"$out/profile-$sys-fanout.txt" || true
  ) &
}

# Scenario by scenario, every system in turn (so that a cut-short run still compares them all).
for sc in $SCENARIOS; do
  export BENCH_LOGS="$out/logs/$sc"
  for sys in $SYSTEMS; do
    case "$sc" in
      fanout)
        "$here/servers.sh" start "$sys" 2
        [[ "$sys" == roomlog-* || "$SCALE" == full ]] && profile "$sys" 20 $((${FANOUT_WARM%s} + 12))
        bench "$sys" fanout "fanout-$sys" -conns "$CONNS" -rooms "$ROOMS" -rate "$RATE" -warmup "$FANOUT_WARM" -duration "$DUR" -procs "$PROCS"
        wait
        ;;
      sweep)
        "$here/servers.sh" start "$sys" 2
        for r in $SWEEP_RATES; do
          bench "$sys" sweep "sweep-$sys-$r" -conns "$CONNS" -rooms "$ROOMS" -rate "$r" -warmup 3s -duration "$SWEEP_DUR" -procs "$PROCS"
        done
        ;;
      bigroom)
        "$here/servers.sh" start "$sys" 2
        bench "$sys" bigroom "bigroom-$sys" -conns "$BIG_CONNS" -rooms 1 -publishers 10 -rate 50 -warmup 5s -duration "$BIG_DUR" -procs 1
        ;;
      churn)
        "$here/servers.sh" start "$sys" 2
        bench "$sys" churn "churn-$sys" -conns "$CONNS" -rooms "$ROOMS" -rate "$RATE" -churn "$CHURN" -warmup 5s -duration "${CHURN_DUR:-30s}" -procs "$PROCS"
        ;;
      failure)
        "$here/servers.sh" start "$sys" 2
        killname=node2
        [[ "$sys" == roomlog-* ]] && killname=relay2
        bench "$sys" failure "failure-$sys" -conns "$CONNS" -rooms "$ROOMS" -rate "$RATE" -warmup "$WARM" -duration "$DUR" -procs "$PROCS" -kill "$killname" -drain 10s
        ;;
      idle)
        "$here/servers.sh" start "$sys" "$IDLE_NODES"
        bench "$sys" idle "idle-$sys" -conns "$IDLE_CONNS" -rooms $((IDLE_CONNS / 10)) -rate 0 -warmup 1s -duration 5s -procs "$IDLE_PROCS" -src-ips 64
        ;;
    esac
    "$here/servers.sh" stop "$sys"
  done
done

if [[ "${REPORT:-1}" == 1 ]]; then
  "$BENCH" report -in "$out" -out docs/benchmarks.md -plots docs/benchmarks -notes "$here/notes.md"
  echo "wrote docs/benchmarks.md" >&2
fi
