#!/usr/bin/env bash
# Builds containerd 2.x (containerd and ctr) for the multipart-fetch test
# (cmd/shoal e2e_multipart_test.go): containerd 2.1+ fetches one layer as
# several parallel Range requests, which Debian's containerd 1.6 never does.
#
# `go install` of the module is refused (it has replace directives), so the
# module is downloaded into the module cache and built there. The binaries
# go to $SHOAL_CONTAINERD2_DIR (default /var/cache/shoal-containerd2/$VERSION)
# with a stamp; they are rebuilt only when the stamp differs. Idempotent;
# about 2 min on 2 idle cores with a cold build cache, well under a second
# when present. Called by .ci/install-deps.sh. With --version it only
# prints the version it builds.
#
# The version's one source is internal/harness/containerd2.version, which the
# Go test harness embeds (harness.Containerd2Version).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
MOD=github.com/containerd/containerd/v2
VERSION_FILE=$here/../internal/harness/containerd2.version
VERSION=$(tr -d '[:space:]' <"$VERSION_FILE")
[[ $VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
	log "$VERSION_FILE holds '$VERSION', not a vX.Y.Z version"
	exit 1
}
if [[ ${1:-} == --version ]]; then
	echo "$VERSION"
	exit 0
fi
TAGS="no_btrfs no_devmapper no_zfs"
DIR=${SHOAL_CONTAINERD2_DIR:-/var/cache/shoal-containerd2/$VERSION}
STAMP=$DIR/stamp
want="containerd=$VERSION tags=$TAGS cgo=0"

if [[ -f $STAMP && $(cat "$STAMP") == "$want" && -x $DIR/containerd && -x $DIR/ctr ]]; then
	log "containerd $VERSION: present in $DIR"
	exit 0
fi
need_go "containerd $VERSION"

start=$SECONDS
export GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off CGO_ENABLED=0
src=$(cd / && go mod download -json "$MOD@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $src && -d $src ]] || { log "go mod download $MOD@$VERSION gave no source directory"; exit 1; }
log "building containerd and ctr $VERSION from $src"
mkdir -p "$DIR"
rm -f "$STAMP"
(
	cd "$src"
	for cmd in containerd ctr; do
		go build -buildvcs=false -trimpath -tags "$TAGS" \
			-ldflags "-s -w -X $MOD/version.Version=$VERSION" \
			-o "$DIR/$cmd.tmp" "./cmd/$cmd"
		mv -f "$DIR/$cmd.tmp" "$DIR/$cmd"
	done
)
have=$("$DIR/containerd" --version)
[[ $have == *" $VERSION "* || $have == *" $VERSION" ]] || { log "$DIR/containerd reports '$have', want $VERSION"; exit 1; }
echo "$want" >"$STAMP"
log "built containerd $VERSION in $((SECONDS - start)) s: $DIR"
