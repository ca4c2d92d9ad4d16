# fabrik-node: one binary for every layer of the build cache.
# `make run` starts an edge on the embedded defaults; `make test` runs every
# test, installing the real build tools the end-to-end tests need first.

GO       ?= go
BIN      := bin/fabrik-node
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/tuist/fabrik-node/node.Version=$(VERSION)
PKGS     := $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: all build run test unit e2e tools bench lint proto clean soak fuzz fuzz-short

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fabrik-node

# Runs an edge with no config: store under $XDG_CACHE_HOME/fabrik, Gradle,
# Nx and Turborepo on 127.0.0.1:5071, Bazel on 127.0.0.1:9092, health on
# 127.0.0.1:8888, metrics and API on 127.0.0.1:9091.
run: build
	./$(BIN) --role edge --log-level info

# Everything: lint (gofmt, go mod tidy -diff, vet, staticcheck), unit and
# integration tests, then end-to-end tests with real clients. Tools are
# installed by the project's own script (idempotent).
test: tools lint unit fuzz-short e2e

unit:
	$(GO) test -count=1 -timeout 15m $(PKGS)

e2e:
	bash scripts/e2e.sh

tools:
	bash scripts/install-tools.sh all

bench: build
	bash scripts/bench.sh

# Every fuzz target (scripts/fuzz.sh) for 2,000 inputs each (a count, not a
# duration: a short -fuzztime duration can end in a spurious "context deadline
# exceeded" on a loaded machine; 20 targets: about a minute of CPU,
# 2-4 minutes wall on 2 cores), part of `make test`; `make fuzz` runs each
# for FUZZTIME (60s).
fuzz-short:
	FUZZTIME=2000x bash scripts/fuzz.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-60s} bash scripts/fuzz.sh

# 30 minutes of mixed traffic against an edge and a regional over MinIO,
# failing on any request error or unbounded RSS/goroutine growth
# (SOAK_DURATION to shorten). Not part of `make test`.
soak:
	bash scripts/soak.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'); exit 1)
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

proto:
	bash scripts/gen-proto.sh

clean:
	rm -rf bin
