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
DEV_ARGS ?=
TEST_FLAGS ?= -count=1 -timeout 20m

.PHONY: all build dev test lint deps-build deps-test clean
all: build

deps-build:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

build: deps-build
	go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/bulwarkd ./cmd/bulwarkctl

dev: build
	@echo "bulwarkctl is in $(CURDIR)/bin; run: export PATH=$(CURDIR)/bin:\$$PATH"
	./bin/bulwarkd dev --hosts $(HOSTS) $(DEV_ARGS)

# Every test, including those against embedded etcd, libvirt's test driver
# and real processes. Tests that need more than this machine offers skip
# loudly; CI installs everything so they run there.
test: deps-test build
	go vet ./...
	BULWARK_TEST_BIN=$(CURDIR)/bin go test -race $(TEST_FLAGS) ./...

lint: deps-build
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	staticcheck ./...

clean:
	rm -rf bin dist
