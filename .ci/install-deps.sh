#!/usr/bin/env bash
# Installs the external tools the end-to-end tests use on a fresh Debian 12
# machine (run as root). Idempotent and quick when everything is present:
#   - containerd, ctr, runc  (cmd/shoal e2e_containerd_test.go)
#   - skopeo                 (client tests)
#   - docker-registry, ip, tc (the bench lab's smoke scenario: a real
#                             distribution/registry origin and network
#                             namespaces with shaped links)
#   - oci-conformance        (OCI distribution-spec conformance suite,
#                             cmd/shoal e2e_conformance_test.go)
#   - golangci-lint          (make lint, .golangci.yml)
#   - systemd-analyze        (cmd/shoal deploy_test.go: verify deploy/systemd units)
#   - promtool               (deploy/monitoring rules; Debian prometheus)
#   - containerd 2.x, ctr    (cmd/shoal e2e_multipart_test.go: multipart layer
#                             fetch; built by .ci/install-containerd2.sh)
set -euo pipefail

CONFORMANCE_MOD=github.com/opencontainers/distribution-spec/conformance
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
# SHOAL_CONFORMANCE_BIN (also read by the tests) overrides where the suite goes.
CONFORMANCE_BIN=${SHOAL_CONFORMANCE_BIN:-/usr/local/bin/oci-conformance}
STAMP=/usr/local/share/shoal-ci/oci-conformance.version

GOLANGCI_LINT_MOD=github.com/golangci/golangci-lint/v2/cmd/golangci-lint
GOLANGCI_LINT_VERSION=v2.15.0
# SHOAL_GOLANGCI_LINT_BIN overrides where golangci-lint goes (make lint finds
# it in PATH or in $HOME/go/bin).
GOLANGCI_LINT_BIN=${SHOAL_GOLANGCI_LINT_BIN:-/usr/local/bin/golangci-lint}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

# --- Debian packages -------------------------------------------------------
# promtool (deploy/monitoring: promtool check rules / test rules) comes with
# Debian's prometheus package; the server it installs is not started (no
# systemd here).
need_pkgs containerd:containerd ctr:containerd runc:runc skopeo:skopeo docker-registry:docker-registry \
	ip:iproute2 tc:iproute2 systemd-analyze:systemd promtool:prometheus

# --- OCI conformance suite ------------------------------------------------
if [[ -x $CONFORMANCE_BIN && -f $STAMP && $(cat "$STAMP") == "$CONFORMANCE_VERSION" ]]; then
	log "oci-conformance $CONFORMANCE_VERSION: present"
else
	need_go oci-conformance
	log "building oci-conformance $CONFORMANCE_VERSION"
	new_scratch
	(
		cd "$scratch"
		export GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off
		go mod init shoal.local/conformance-build >/dev/null 2>&1
		go get "$CONFORMANCE_MOD@$CONFORMANCE_VERSION"
		mkdir -p "$(dirname "$CONFORMANCE_BIN")"
		go build -buildvcs=false -o "$CONFORMANCE_BIN.tmp" "$CONFORMANCE_MOD"
		mv -f "$CONFORMANCE_BIN.tmp" "$CONFORMANCE_BIN"
	)
	mkdir -p "$(dirname "$STAMP")"
	echo "$CONFORMANCE_VERSION" >"$STAMP"
	log "installed $CONFORMANCE_BIN"
fi

# --- golangci-lint ----------------------------------------------------------
# The binary reports its own version, which serves as the stamp: a copy at
# GOLANGCI_LINT_BIN or in PATH (with $HOME/go/bin, as make lint searches) at
# GOLANGCI_LINT_VERSION is enough.
golangci_lint_version() { "$1" version --short 2>/dev/null || true; }
found=""
for cand in "$GOLANGCI_LINT_BIN" "$(PATH=$PATH:$HOME/go/bin command -v golangci-lint 2>/dev/null || true)"; do
	if [[ -n $cand && -x $cand && v$(golangci_lint_version "$cand") == "$GOLANGCI_LINT_VERSION" ]]; then
		found=$cand
		break
	fi
done
if [[ -n $found ]]; then
	log "golangci-lint $GOLANGCI_LINT_VERSION: present ($found)"
else
	need_go golangci-lint
	log "building golangci-lint $GOLANGCI_LINT_VERSION"
	new_scratch
	(
		cd "$scratch"
		export GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off GOBIN="$scratch/bin"
		go install "$GOLANGCI_LINT_MOD@$GOLANGCI_LINT_VERSION"
		mkdir -p "$(dirname "$GOLANGCI_LINT_BIN")"
		mv -f "$scratch/bin/golangci-lint" "$GOLANGCI_LINT_BIN.tmp"
		mv -f "$GOLANGCI_LINT_BIN.tmp" "$GOLANGCI_LINT_BIN"
	)
	have=$(golangci_lint_version "$GOLANGCI_LINT_BIN")
	[[ v$have == "$GOLANGCI_LINT_VERSION" ]] || { log "$GOLANGCI_LINT_BIN reports version '$have', want $GOLANGCI_LINT_VERSION"; exit 1; }
	log "installed $GOLANGCI_LINT_BIN"
fi

# --- containerd 2.x (multipart layer fetch; .ci/install-containerd2.sh) ------
bash "$here/install-containerd2.sh"
