# shoal: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO ?= go
PKGS := ./...
FUZZTIME ?= 4s
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GOLANGCI_LINT_VERSION := v2.15.0

.PHONY: all build deps demo test unit lab-smoke fuzz fuzz-long lint bench bench-go bench-smoke bench-faults clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/shoal ./cmd/shoal

## demo: a local cluster (origin registry, seeder, 4 daemons) and a real pull on every node at once
demo:
	$(GO) run ./cmd/shoal demo

## test: format and vet checks, every test with -race (real origin registry,
## real containerd, the OCI conformance suite), the bench lab's smoke scenario
## (network namespaces, every mode must complete), the Helm chart on a real
## single-node Kubernetes cluster (make test-k8s), then each fuzz target briefly
test: deps lint unit lab-smoke test-k8s fuzz

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

# Tests that need a tool make deps installs fail rather than skip when it is
# missing under make (harness.UnderMake).
unit: export SHOAL_MAKE_TEST := 1
unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	# The swarm at full scale (8 nodes, 256 MiB at once) runs without -race,
	# which slows libp2p's stream stack several-fold.
	set -o pipefail; $(GO) test -count=1 -timeout 10m -run 'TestEightNodesAtOnce' -v ./p2p/swarm/ | grep -E '^(---|ok|FAIL|\s+swarm_test)'

# The rollout lab's smoke scenario through the real shoal-bench binary (root,
# iproute2, docker-registry): fails when a mode does not complete or a result
# file is missing. TestFaultsLab is a small version of the fault scenarios
# kill-nodes and liar-garbage (4 nodes): it fails when a pull on a live node
# fails or a corrupt byte is seen.
lab-smoke:
	SHOAL_LAB=1 $(GO) test -count=1 -timeout 12m -run 'TestSmokeLab|TestFaultsLab|TestNamespacesUseTheCongestionControl' -v ./bench/lab/ 2>&1 | tail -60; exit $${PIPESTATUS[0]}

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

## bench-faults: the fault scenarios of the rollout lab (root, iproute2, docker-registry),
## each fault beside the same rollout without it; results.md (faults table) and
## fault-*.png in FAULTS_OUT (about 30 min). The default size (12 nodes, 128 MiB in 4
## layers, 20 Mbit/s links) keeps the lab link-bound on a shared 2-core machine; on a
## quiet one try FAULTS_SIZE="--nodes 12 --image-size 268435456 --layers 4 --node-rate 50mbit --origin-rate 50mbit".
FAULTS_OUT ?= bench-results/faults-$(shell date -u +%Y-%m-%d)
FAULTS_SIZE ?= --nodes 12 --image-size 134217728 --layers 4 --node-rate 20mbit --origin-rate 20mbit
bench-faults:
	$(GO) run ./bench/cmd/shoal-bench --scenario faults $(FAULTS_SIZE) --out $(FAULTS_OUT)

clean:
	rm -rf bin

## bench-load: 1,000 requests at once on one real daemon (with a real seeder
## and origin; bench/load), every answer checked, peak RSS and warm GET
## latency against the origin's; report in bench-results/load/results.md
.PHONY: bench-load
bench-load:
	SHOAL_LOAD_REQUESTS=1000 SHOAL_LOAD_OUT=$(CURDIR)/bench-results/load $(GO) test -count=1 -timeout 15m -run '^TestLoad$$' -v ./bench/load/ 2>&1 | grep -v '^\s*{"level"'; exit $${PIPESTATUS[0]}

# --- deployment: image, chart manifests (deploy/image, deploy/helm, deploy/manifests) ---
IMAGE_REPO ?= ghcr.io/shoal-dev/shoal
IMAGE_TAG ?= $(VERSION)
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_OUT ?= bin/image
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

.PHONY: image manifests

## image: the shoal OCI image (IMAGE_PLATFORMS as an index) without Docker:
## $(IMAGE_OUT)/oci (OCI layout) and $(IMAGE_OUT)/shoal-image.tar (ctr images import)
image:
	rm -rf $(IMAGE_OUT) && mkdir -p bin/image-build
	set -e; bins=""; for p in $(IMAGE_PLATFORMS); do \
	  os=$${p%%/*}; arch=$${p#*/}; out=bin/image-build/$$os-$$arch/shoal; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $$out ./cmd/shoal; \
	  bins="$$bins --binary $$p=$$out"; \
	done; \
	$(GO) run ./deploy/image/cmd/shoal-image $$bins --version $(VERSION) --tag $(IMAGE_TAG) --repo $(IMAGE_REPO) \
	  --revision "$(REVISION)" --created $(SOURCE_DATE_EPOCH) --out $(IMAGE_OUT)

## manifests: regenerate deploy/manifests/shoal.yaml from the chart and
## deploy/systemd/snippets from the config generators
manifests:
	SHOAL_UPDATE_MANIFESTS=1 $(GO) test -count=1 -run 'TestManifestsMatchChart' ./deploy/helm/
	SHOAL_UPDATE_MANIFESTS=1 $(GO) test -count=1 -run 'TestSystemdSnippets' ./cmd/shoal/

# --- the real-cluster test (internal/harness/kube, deploy/k8stest) ---
K8S_IMAGE_OUT ?= bin/image-k8s
K8S_IMAGE_REPO ?= shoal.test/shoal
K8S_IMAGE_TAG ?= e2e
.PHONY: k8s-deps test-k8s

## k8s-deps: etcd, containerd, runc, iptables, CNI plugins (Debian) and the
## Kubernetes and Helm binaries, built once into /var/cache/shoal-k8s (.ci/install-k8s.sh)
k8s-deps:
	bash .ci/install-k8s.sh

## test-k8s: a real single-node cluster on loopback (etcd, kube-apiserver,
## controller-manager, scheduler, a kubelet on its own containerd): the chart
## validated by the apiserver, installed with the image of `make image`, a pull
## through shoal, an upgrade and an uninstall (root; SHOAL_K8S=1 turns it on)
test-k8s: k8s-deps
	$(MAKE) image IMAGE_OUT=$(K8S_IMAGE_OUT) IMAGE_REPO=$(K8S_IMAGE_REPO) IMAGE_TAG=$(K8S_IMAGE_TAG) IMAGE_PLATFORMS=linux/$$($(GO) env GOARCH)
	set -o pipefail; SHOAL_K8S=1 SHOAL_IMAGE_TAR=$(abspath $(K8S_IMAGE_OUT))/shoal-image.tar SHOAL_IMAGE_REF=$(K8S_IMAGE_REPO):$(K8S_IMAGE_TAG) \
	  $(GO) test -p 1 -count=1 -timeout 20m -v ./internal/harness/kube/ ./deploy/k8stest/ 2>&1 | \
	  grep -vE '^=== (RUN|PAUSE|CONT)'

## bench-range: lazy pulls (issue 12 part 3): the last 8 MiB and 8 concurrent slices of a
## cold 512 MiB blob that one paced peer holds, against the whole GET, in one run
## (SHOAL_BENCH_RANGE_MIB, SHOAL_BENCH_RANGE_RATE_MIB tune it)
.PHONY: bench-range
bench-range:
	$(GO) test -run '^$$' -bench BenchmarkRangeColdBlob -benchtime 3x -timeout 30m ./bench/

## bench-dht: the DHT at size (issue 11 item 7; bench/dht): 300 real daemon DHT hosts
## on 127.0.0.1 in 6 processes, provider lookups without churn and while 10% of the
## hosts restart, DHT_RUNS runs under nice; results.md/results.json in bench-results/dht
DHT_RUNS ?= 3
DHT_FLAGS ?= --hosts 300
.PHONY: bench-dht
bench-dht:
	$(GO) build -o bin/shoal-dht ./bench/cmd/shoal-dht
	nice -n 10 bin/shoal-dht $(DHT_FLAGS) --runs $(DHT_RUNS) --out bench-results/dht

## sim: the discrete-event simulator (issue 11; bench/sim), a quick run: 100 nodes x
## 256 MiB on 1 Gbit/s links, the daemon's scheduler (p2p/plan) on every node
## sim-full: the N sweep (10, 100, 1,000, 10,000 nodes x 1 GiB in 4 layers on 1 Gbit/s)
## and 1,000 nodes with 5% leaving mid-rollout; plots (x-ideal-vs-n.svg,
## completion-cdf.png) and sweep.md into bench-results/sim
SIM_FLAGS ?=
.PHONY: sim sim-full
sim:
	$(GO) build -o bin/shoal-sim ./bench/cmd/shoal-sim
	bin/shoal-sim --nodes 100 --image-size 268435456 --layers 4 --node-rate 1gbit --origin-rate 1gbit $(SIM_FLAGS) --out bench-results/sim/quick
sim-full:
	$(GO) build -o bin/shoal-sim ./bench/cmd/shoal-sim
	nice -n 10 bin/shoal-sim --sweep --sweep-nodes 10,100,1000,10000 --sweep-churn-nodes 1000 --image-size 1073741824 --layers 4 \
		--node-rate 1gbit --origin-rate 1gbit $(SIM_FLAGS) --out bench-results/sim
