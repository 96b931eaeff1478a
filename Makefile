# udfhost — `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
GO ?= go
BIN := bin/udfhost
EX := bin/examples
WAT := $(wildcard examples/wat/*.wat)
GOEX := $(notdir $(wildcard examples/go/*))
EXAMPLES := $(patsubst examples/wat/%.wat,$(EX)/%.wasm,$(WAT)) $(patsubst %,$(EX)/%.wasm,$(GOEX))
TOOLS := $(CURDIR)/.cache/bin

.PHONY: all deps build examples test demo bench proto vet lint clean

all: build examples

deps:
	@scripts/install-deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/udfhost

examples: deps $(EXAMPLES)

$(EX)/%.wasm: examples/wat/%.wat
	@mkdir -p $(EX)
	wat2wasm -o $@ $<

.SECONDEXPANSION:
$(EX)/%.wasm: $$(wildcard examples/go/$$*/*.go) $$(wildcard guest/*.go)
	@mkdir -p $(EX)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@ ./examples/go/$*

# The hostile-artifact corpus (test/hostile) for `udfhost security-test`:
# WAT and Go guests built like the examples, fuzz-found modules and the
# manifest copied, so that bin/hostile is self-contained.
.PHONY: hostile security-test
HOSTILE := bin/hostile
HOSTILE_FILES := $(patsubst test/hostile/%.wat,$(HOSTILE)/%.wasm,$(wildcard test/hostile/*.wat)) \
  $(patsubst %,$(HOSTILE)/%.wasm,$(notdir $(wildcard test/hostile/go/*))) \
  $(patsubst test/hostile/fuzz/%,$(HOSTILE)/%,$(wildcard test/hostile/fuzz/*.bin)) $(HOSTILE)/manifest.json

hostile: deps $(HOSTILE_FILES)

$(HOSTILE)/%.wasm: test/hostile/%.wat
	@mkdir -p $(HOSTILE)
	wat2wasm -o $@ $<

$(HOSTILE)/%.wasm: $$(wildcard test/hostile/go/$$*/*.go) $$(wildcard guest/*.go)
	@mkdir -p $(HOSTILE)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o $@ ./test/hostile/go/$*

$(HOSTILE)/%: test/hostile/fuzz/%
	@mkdir -p $(HOSTILE)
	cp $< $@

$(HOSTILE)/manifest.json: test/hostile/manifest.json
	@mkdir -p $(HOSTILE)
	cp $< $@

# Starts a server on a temporary data directory and attacks it with the
# corpus; exits with the suite's status.
security-test: deps build examples hostile
	scripts/security-test.sh

# Re-measures the upload scan's compile-cost model against the wazero in
# go.mod: the worst module the scan accepts at each limit, compiled as the
# jailed compile worker does, against its budget (docs/SECURITY.md). Run it
# at every wazero upgrade; it takes a few minutes and exits 1 on FAIL.
.PHONY: costmodel
costmodel:
	$(GO) run ./artifacts/internal/wasmscan/costmodel

vet:
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./guest/ ./examples/go/...

# Guest packages (the SDK and the wasm programs built with it) are checked
# as what they are, GOOS=wasip1 GOARCH=wasm, and without U1000: staticcheck
# does not see that a //go:wasmexport function is used by the host.
GUEST_PKGS := ./guest/... ./examples/go/... ./test/hostile/go/...
HOST_PKGS = $(shell $(GO) list ./... | grep -v -E '^github.com/udfhost/udfhost/(guest|examples/go|test/hostile/go)(/|$$)')

# go.mod and go.sum say exactly what the code imports; staticcheck (pinned in
# scripts/install-deps.sh) finds nothing.
lint: deps
	$(GO) mod tidy -diff
	$(TOOLS)/staticcheck $(HOST_PKGS)
	GOOS=wasip1 GOARCH=wasm $(TOOLS)/staticcheck -checks inherit,-U1000 $(GUEST_PKGS)

# The packages whose code runs concurrently, again under the race detector.
RACE_PKGS := ./audit/ ./internal/server/ ./sandbox/... ./artifacts/ ./pods/

# Every test, including the end-to-end suite against real servers started by
# the tests, the concurrent packages under -race, and one iteration of every
# benchmark so none can rot.
test: deps vet lint build examples hostile
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...
	$(GO) run ./internal/tools/benchreport -quick -out bin/BENCHMARKS.quick.md

# The benchmark suite: writes docs/BENCHMARKS.md from one run.
bench: deps build examples
	$(GO) run ./internal/tools/benchreport -out docs/BENCHMARKS.md

demo: deps build examples
	scripts/demo.sh

proto:
	@scripts/install-deps.sh tools
	PATH="$(TOOLS):$$PATH" protoc -I proto \
	  --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  proto/udfhost/v1/*.proto

clean:
	rm -rf bin .cache
