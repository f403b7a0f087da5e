# Bulwark. `make dev` runs a dev cluster; `make test` runs every test.
# Both install what they need first (Debian 12, root or sudo).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
# Go 1.26.8's standard library has known vulnerabilities fixed in 1.27.3.
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.Version=$(VERSION) -X main.Commit=$(COMMIT) -X main.Date=$(DATE) \
	-X github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl.Version=$(VERSION) \
	-X github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl.Commit=$(COMMIT) \
	-X github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl.Date=$(DATE)

HOSTS ?= 3
# DRIVER=test (simulated VMs, no root) or DRIVER=containerd (real containers, root)
DRIVER ?= test
DEV_ARGS ?=
TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all build dev test lint deps-build deps-test clean packages chaos bench fuzz
all: build

deps-build:
	@scripts/deps.sh build

# The test suite drives real daemons (libvirtd + QEMU, Debian's fence_redfish):
# installed here, started by the tests themselves.
deps-test:
	@scripts/deps.sh test
	@scripts/deps-real.sh

build: deps-build
	go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/bulwarkd ./cmd/bulwarkctl

dev: build
	@if [ "$(DRIVER)" = containerd ] || [ "$(DRIVER)" = qemu ]; then scripts/deps-real.sh; fi
	@echo "bulwarkctl is in $(CURDIR)/bin; run: export PATH=$(CURDIR)/bin:\$$PATH"
	./bin/bulwarkd dev --hosts $(HOSTS) --driver $(DRIVER) $(DEV_ARGS)

# Every test, including those against embedded etcd, libvirt's test driver
# and real processes. Tests that need more than this machine offers skip
# loudly; CI installs everything so they run there.
test: deps-test build
	go vet ./...
	BULWARK_TEST_BIN=$(CURDIR)/bin go test -race $(TEST_FLAGS) ./...
	VERSION='$(VERSION)' scripts/packages.sh
	scripts/test-packages.sh

# Fuzz what parses user input (sizes, placement expressions, floating IPs,
# published ports, volumes, workload specs, config files) and the domain XML
# renderer: each target for FUZZTIME, one after another (go test fuzzes one
# target per run). `make test` replays the committed seeds in each package's
# testdata/fuzz/<Target>/; a crasher found here is written there too: fix
# the bug and commit the crasher as a new seed. E.g. `make fuzz FUZZTIME=5m`.
FUZZTIME ?= 20s
FUZZ_TARGETS := ./api:FuzzParseByteSize ./api:FuzzPlacement ./api:FuzzParseVIPPrefix \
	./api:FuzzParsePublish ./api:FuzzVolumeSpec ./server:FuzzDecodeSpec \
	./drivers/libvirt:FuzzRenderDomain ./config:FuzzLoadFile
fuzz: deps-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Seeded random faults (crash, hang, partition, BMC outages) against a dev
# cluster; fails on any double run or lost workload. `make test` runs a short one.
CHAOS_FAULTS ?= 30
CHAOS_SEED ?= 1
chaos: deps-test build
	./bin/bulwarkd bench chaos --faults $(CHAOS_FAULTS) --seed $(CHAOS_SEED)

# The benchmarks behind docs/benchmarks.md.
bench: build
	./bin/bulwarkd bench placement --hosts 1000 --workloads 50000
	./bin/bulwarkd bench failover --rounds 9 --fault crash,hang,partition
	GOTOOLCHAIN=$(GOTOOLCHAIN) go test -run xxx -bench . -benchtime 5x ./scheduler

# bulwark-server, bulwark-agent and bulwarkctl as .deb and .rpm in dist/
# (nfpm, pinned in tools/nfpm). `make test` builds and tests them too.
packages: build
	VERSION='$(VERSION)' scripts/packages.sh

lint: deps-build
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	staticcheck ./...

clean:
	rm -rf bin dist
