# roomlog. `make run` starts a relay on the embedded broker; `make test` runs
# every test, including the real-Kafka run (installing what it needs).

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
SHELL   := bash

.PHONY: build run test test-short test-faults lint bench fuzz clean cluster chaos soak

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/roomlog ./cmd/roomlog

# A relay on ws://localhost:8080/ws with the embedded broker in ./roomlog-data,
# for local development: anonymous clients, plain WebSocket on loopback.
run: build
	./bin/roomlog relay --anonymous --listen 127.0.0.1:8080

# Everything: unit, fuzz seeds, integration on kfake and on real Kafka (-race).
test:
	testenv/test.sh

# The fault tests: a three-broker Kafka cluster (started and stopped here)
# under broker SIGKILLs, below min.insync.replicas, a relay SIGSTOPped past its
# lease, and the embedded broker on a full disk (testenv/faulttest).
test-faults:
	testenv/faults.sh

# Fast loop: kfake only, no real broker.
test-short:
	$(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs each fuzz target for FUZZTIME (default 30s) on top of its seed corpus
# (testdata/fuzz/<target>/, where go test also writes any crasher it finds:
# commit it with the fix). CI runs FUZZTIME=4000x: a count of inputs, since
# a duration can fail spuriously on a loaded machine in Go 1.26
# (golang/go#75804).
FUZZTIME ?= 30s
fuzz:
	@missing=$$(comm -23 <(git ls-files '*_test.go' | xargs grep -hoE '^func Fuzz[A-Za-z0-9_]+' | sed 's/^func //' | sort -u) \
		<(grep -oE "fuzz '\^Fuzz[A-Za-z0-9_]+" Makefile | sed "s/^fuzz '\^//" | sort -u)); \
		if [ -n "$$missing" ]; then echo "fuzz targets missing from the Makefile's fuzz list: $$missing"; exit 1; fi
	$(GO) test ./record/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/procstat/ -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./record/ -run '^$$' -fuzz '^FuzzParsePos$$' -fuzztime $(FUZZTIME)
	$(GO) test ./record/ -run '^$$' -fuzz '^FuzzDecodeControl$$' -fuzztime $(FUZZTIME)
	$(GO) test ./record/ -run '^$$' -fuzz '^FuzzParseOrigin$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzDecodeFrame$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzDecodeAuthFrame$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzDecodeAPIRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/wsread/ -run '^$$' -fuzz '^FuzzSkipPongs$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzDecodeControlRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./record/ -run '^$$' -fuzz '^FuzzParseSIORef$$' -fuzztime $(FUZZTIME)
	$(GO) test ./record/ -run '^$$' -fuzz '^FuzzDecodeLease$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzParseSIOOffset$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzDecodeSIOAuth$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/ -run '^$$' -fuzz '^FuzzDecodeSIOEvent$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/auth/ -run '^$$' -fuzz '^FuzzParseRooms$$' -fuzztime $(FUZZTIME)
	$(GO) test ./relay/auth/ -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME)
	$(GO) test ./consumer/ -run '^$$' -fuzz '^FuzzDecodeSnapshot$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/engineio/ -run '^$$' -fuzz '^FuzzDecodePacket$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/engineio/ -run '^$$' -fuzz '^FuzzDecodePayload$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/socketio/ -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/socketio/ -run '^$$' -fuzz '^FuzzSplitArray$$' -fuzztime $(FUZZTIME)

# A local fleet: a broker and three relays on 127.0.0.1:8081-8083, until Ctrl-C.
# CLUSTER_FLAGS=--kafka uses real Apache Kafka instead of the embedded broker.
cluster:
	testenv/cluster/cluster.sh $(CLUSTER_FLAGS)

# Kill and restart relays under traffic; report lost/duplicated/out-of-order.
chaos: build
	$(GO) run ./testenv/chaos --build=false --bin bin/roomlog $(CHAOS_FLAGS)

# The soak: chaos for SOAK_DURATION (default 10 minutes) with everything at
# once: relays SIGKILLed and SIGTERMed and restarted, the broker SIGKILLed and
# restarted, clients leaving and resuming elsewhere every few seconds. Reports
# lost, duplicated and out-of-order messages; fails on any. CI runs 60 s.
SOAK_DURATION ?= 10m
soak: build
	$(GO) run ./testenv/chaos --build=false --bin bin/roomlog --duration $(SOAK_DURATION) --kill-broker --churn 5s \
		--relays 3 --publishers 6 --subscribers 12 --rooms 4 --settle 60s --keep=false $(SOAK_FLAGS)

clean:
	rm -rf bin

# Side-by-side benchmarks against Centrifugo and Socket.IO (issue 7): installs the peers when missing,
# runs every scenario for every system and writes docs/benchmarks.md (testenv/bench/).
# What each relay and the broker cost as relays are added for the same
# traffic (docs/scaling.md); SCALING_FLAGS, e.g. --placement share.
.PHONY: bench-scaling
bench-scaling: build
	$(GO) run ./testenv/scaling --bin bin/roomlog $(SCALING_FLAGS)

.PHONY: bench-peers
bench-peers:
	testenv/bench/install.sh
	testenv/bench/run.sh
