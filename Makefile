# shoal: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
PKGS := ./...
FUZZTIME ?= 4s
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOLANGCI_LINT_VERSION := v2.15.0

.PHONY: all build deps demo test unit lab-smoke fuzz fuzz-long lint bench bench-go bench-smoke clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/shoal ./cmd/shoal

## demo: a local cluster (origin registry, seeder, 4 daemons) and a real pull on every node at once
demo:
	$(GO) run ./cmd/shoal demo

## test: format and vet checks, every test with -race (real origin registry,
## real containerd, the OCI conformance suite), the bench lab's smoke scenario
## (network namespaces, every mode must complete), then each fuzz target briefly
test: deps lint unit lab-smoke fuzz

## deps: install what the tests use when it is missing (idempotent; quick when present)
deps:
	bash .ci/install-deps.sh

# lint: gofmt, go vet, golangci-lint (.golangci.yml; installed at
# GOLANGCI_LINT_VERSION when missing). Which packages may import which (and
# that only tests import the test helpers) is internal/layout's test, run
# with the others; depguard repeats the main rules at lint time.
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@lint=$$(command -v golangci-lint || true); \
	if [ -z "$$lint" ]; then \
	  echo "installing golangci-lint $(GOLANGCI_LINT_VERSION)"; \
	  $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) || exit 1; \
	  gobin=$$($(GO) env GOBIN); gopath=$$($(GO) env GOPATH); \
	  lint=$$(command -v golangci-lint || echo "$${gobin:-$${gopath%%:*}/bin}/golangci-lint"); \
	fi; \
	have=$$("$$lint" version --short 2>/dev/null); \
	if [ "v$$have" != "$(GOLANGCI_LINT_VERSION)" ]; then echo "note: $$lint is $$have, .golangci.yml is checked with $(GOLANGCI_LINT_VERSION)"; fi; \
	echo "$$lint run $(PKGS)"; "$$lint" run $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	# The swarm at full scale (8 nodes, 256 MiB at once) runs without -race,
	# which slows libp2p's stream stack several-fold.
	set -o pipefail; $(GO) test -count=1 -timeout 10m -run 'TestEightNodesAtOnce' -v ./p2p/swarm/ | grep -E '^(---|ok|FAIL|\s+swarm_test)'

# The rollout lab's smoke scenario through the real shoal-bench binary (root,
# iproute2, docker-registry): fails when a mode does not complete or a result
# file is missing.
lab-smoke:
	SHOAL_LAB=1 $(GO) test -count=1 -timeout 6m -run 'TestSmokeLab' -v ./bench/lab/ 2>&1 | tail -40; exit $${PIPESTATUS[0]}

# Every Fuzz* target in the module, run for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    if ! $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg > /tmp/shoal-fuzz.log 2>&1; then \
	      cat /tmp/shoal-fuzz.log; \
	      if grep -q 'Failing input written' /tmp/shoal-fuzz.log || ! grep -q 'context deadline exceeded' /tmp/shoal-fuzz.log; then exit 1; fi; \
	      echo "(the fuzzer's own deadline hit a run in progress; no failing input: not a finding)"; \
	    fi; \
	  done; \
	done

fuzz-long:
	$(MAKE) fuzz FUZZTIME=2m

## bench-go: the node and the swarm against the origin on loopback, in one run
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./bench/

## bench: the rollout lab (root, iproute2, docker-registry): cold-rollout, 20 nodes,
## 512 MiB in 4 layers, 100 Mbit/s links, modes shoal, direct, one-peer (30-45 min)
bench:
	$(GO) run ./bench/cmd/shoal-bench --scenario cold-rollout --nodes 20 --image-size 536870912 --layers 4 \
	  --node-rate 100mbit --origin-rate 100mbit --modes shoal,direct,one-peer --out bench-results/cold-rollout

## bench-smoke: 3 nodes, 32 MiB in 2 layers, every mode (about a minute)
bench-smoke:
	$(GO) run ./bench/cmd/shoal-bench --scenario smoke --out bench-results/smoke

clean:
	rm -rf bin

## bench-range: lazy pulls (issue 12 part 3): the last 8 MiB and 8 concurrent slices of a
## cold 512 MiB blob that one paced peer holds, against the whole GET, in one run
## (SHOAL_BENCH_RANGE_MIB, SHOAL_BENCH_RANGE_RATE_MIB tune it)
.PHONY: bench-range
bench-range:
	$(GO) test -run '^$$' -bench BenchmarkRangeColdBlob -benchtime 3x -timeout 30m ./bench/
